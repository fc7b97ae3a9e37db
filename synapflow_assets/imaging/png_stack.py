"""A z-stack stored as one grey PNG per layer in a folder.

Layers are named ``<stack>_layerNN.png`` or ``<stack>-NN.png`` (any number of
digits, zero-padded or not, case-insensitive extension) and ordered by the
number, not by the name (``layer10`` comes after ``layer9``). Files that do
not match the pattern are ignored. All layers must belong to one stack, have
distinct numbers without gaps (the first number may be anything, e.g. 0 or 1),
the same size and the same bit depth (8- or 16-bit grey).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .colour import COLOUR_MODES, pil_to_grey
from .errors import InputError
from .validation import check_dtype, check_layer_count, check_shape

_LAYER = re.compile(r"^(?P<stack>.+?)(?:_layer|-)(?P<n>\d+)\.png$", re.IGNORECASE)

# PIL mode -> numpy dtype of a grey layer.
_GREY_MODES = {"L": np.uint8, "I;16": np.uint16, "I;16B": np.uint16, "I;16L": np.uint16, "I": np.int32, "F": np.float32}


def find_png_layers(folder: str | Path) -> list[Path]:
    """List the layer PNGs of a folder in numerical layer order.

    Parameters
    ----------
    folder : str or Path
        Folder holding ``<stack>_layerNN.png`` or ``<stack>-NN.png`` files.

    Returns
    -------
    list of Path
        Sorted by layer number.

    Raises
    ------
    InputError
        Not a folder; no matching layer; layers of several stacks; the same
        layer number twice (e.g. ``layer1`` and ``layer01``); a gap in the
        numbering (a missing layer would silently shift every later one).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder of PNG layers")
    found: dict[int, Path] = {}
    stacks: set[str] = set()
    for entry in sorted(folder.iterdir()):
        match = _LAYER.match(entry.name)
        if not match or not entry.is_file():
            continue
        stacks.add(match["stack"])
        number = int(match["n"])
        if number in found:
            raise InputError(folder, f"duplicate layer number {number}: {found[number].name} and {entry.name}")
        found[number] = entry
    if not found:
        raise InputError(folder, "no PNG layers found (expected files named <stack>_layerNN.png or <stack>-NN.png)")
    if len(stacks) > 1:
        raise InputError(folder, f"layers of several stacks in one folder: {sorted(stacks)}")
    numbers = sorted(found)
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        raise InputError(folder, f"gap in the layer numbering: layer(s) {missing[:10]} missing")
    return [found[n] for n in numbers]


def _open(path: Path):
    from PIL import Image

    try:
        image = Image.open(path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        raise InputError(path, f"corrupt or unreadable PNG ({exc})") from None
    if image.format != "PNG":
        image.close()
        raise InputError(path, f"not a PNG file (it is {image.format})")
    return image


def read_png_stack(folder: Path, *, min_layers: int, max_layers: int, max_xy: int) -> tuple[np.ndarray, dict]:
    """Read the layers of ``folder`` into a (z, y, x) array.

    Headers are checked (count, size, mode) before any pixel data is decoded.

    Returns
    -------
    data : ndarray
        uint8 or uint16 (int32/float32 for the rare 32-bit PNG modes); colour
        layers are read as grey (see ``colour.pil_to_grey``).
    info : dict
        ``layers`` (file names), ``compression`` and, for colour layers,
        ``colour_note``.
    """
    layers = find_png_layers(folder)
    check_layer_count(folder, len(layers), min_layers=min_layers, max_layers=max_layers)
    modes, sizes = set(), set()
    for path in layers:
        with _open(path) as image:
            if image.mode not in _GREY_MODES and image.mode not in COLOUR_MODES:
                raise InputError(
                    path, f"unsupported PNG (mode {image.mode}); grey or colour 8- or 16-bit layers are expected"
                )
            modes.add("L" if image.mode in COLOUR_MODES else image.mode)
            sizes.add(image.size)
    if len(sizes) > 1:
        raise InputError(folder, f"layers have mixed shapes (width x height): {sorted(sizes)}")
    if len({_GREY_MODES[m] for m in modes}) > 1:
        raise InputError(folder, f"layers have mixed bit depths (PIL modes {sorted(modes)})")
    width, height = sizes.pop()
    check_shape(folder, len(layers), height, width, min_layers=min_layers, max_layers=max_layers, max_xy=max_xy)
    dtype = np.dtype(_GREY_MODES[modes.pop()])
    check_dtype(folder, dtype)
    data = np.empty((len(layers), height, width), dtype=dtype)
    notes = set()
    for index, path in enumerate(layers):
        with _open(path) as image:
            try:
                image.load()
                data[index], note = pil_to_grey(image)
            except Exception as exc:  # noqa: BLE001
                raise InputError(path, f"corrupt or truncated PNG ({exc})") from None
        if note:
            notes.add(note)
    if dtype == np.int32 and data.min() >= 0 and data.max() <= 65535:
        data = data.astype(np.uint16)
    info = {"layers": [p.name for p in layers], "compression": "png"}
    if notes:
        info["colour_note"] = notes.pop()
    return data, info
