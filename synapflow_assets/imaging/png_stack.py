"""A z-stack stored as one grey PNG per layer in a folder, or a single-plane session stored as one PNG.

Layers are named ``<stack>_layerNN.png`` or ``<stack>-NN.png`` (any number of
digits, zero-padded or not, case-insensitive extension) and ordered by the
number, not by the name (``layer10`` comes after ``layer9``). Files that do
not match the pattern are ignored. All layers must belong to one stack, have
distinct numbers without gaps (the first number may be anything, e.g. 0 or 1),
the same size and the same bit depth (8- or 16-bit grey).

A single PNG (``<session>.png``, :func:`read_png_image`) is a one-layer stack.
Colour PNGs are read as grey (see ``colour.pil_to_grey``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .colour import COLOUR_MODES, pil_to_grey
from .errors import InputError
from .validation import MAX_DECODED_MB, check_decoded_size, check_dtype, check_layer_count, check_shape

if TYPE_CHECKING:
    from PIL import Image, ImageFile

_LAYER = re.compile(r"^(?P<stack>.+?)(?:_layer|-)(?P<n>\d+)\.png$", re.IGNORECASE)
#: A file named like a layer of a folder stack (``<stack>_layerNN.png``): never a session on its own.
_LAYER_FILE = re.compile(r"^.+_layer\d+\.png$", re.IGNORECASE)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

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


def is_layer_file(name: str) -> bool:
    """Whether a file name is that of one layer of a PNG folder stack (``<stack>_layerNN.png``)."""
    return bool(_LAYER_FILE.match(name))


def _open(path: Path) -> ImageFile.ImageFile:
    """The PIL image of a PNG file (header only); `InputError` for an empty file, one that is not a PNG,
    or a header PIL cannot read."""
    from PIL import Image

    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_PNG_SIGNATURE))
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise InputError(path, "empty file (0 bytes), not a PNG")
    if head != _PNG_SIGNATURE:
        raise InputError(path, "not a PNG file (no PNG signature at the start)")
    try:
        image = Image.open(path)
    except Exception as exc:
        raise InputError(path, f"corrupt or unreadable PNG ({exc})") from None
    if image.format != "PNG":
        image.close()
        raise InputError(path, f"not a PNG file (it is {image.format})")
    return image


def _check_mode(path: Path, image: Image.Image) -> str:
    """The grey PIL mode the image is read in ("L" for colour); `InputError` for an unsupported mode."""
    if image.mode not in _GREY_MODES and image.mode not in COLOUR_MODES:
        raise InputError(path, f"unsupported PNG (mode {image.mode}); grey or colour 8- or 16-bit images are expected")
    return "L" if image.mode in COLOUR_MODES else image.mode


def _decode(path: Path, image: Image.Image) -> tuple[np.ndarray, str | None]:
    """The pixels of an opened PNG as a grey array and the colour note; `InputError` for a corrupt or truncated one."""
    try:
        image.load()
        return pil_to_grey(image)
    except Exception as exc:
        raise InputError(path, f"corrupt or truncated PNG ({exc})") from None


def _narrow(data: np.ndarray) -> np.ndarray:
    """32-bit integer PNG data (PIL mode ``I``, how 16-bit grey PNGs often open) as uint16 when it fits."""
    if data.dtype == np.int32 and data.size and data.min() >= 0 and data.max() <= 65535:
        return data.astype(np.uint16)
    return data


def read_png_image(
    path: Path, *, min_layers: int, max_layers: int, max_xy: int, max_bytes: int = MAX_DECODED_MB * 2**20
) -> tuple[np.ndarray, dict]:
    """Read one PNG file as a one-layer (1, y, x) stack.

    The header (mode, size) is checked before the pixel data is decoded.

    Returns
    -------
    data : ndarray
        uint8 or uint16 (int32/float32 for the rare 32-bit PNG modes); a
        colour image is read as grey (see ``colour.pil_to_grey``).
    info : dict
        ``compression`` and, for a colour image, ``colour_note``.

    Raises
    ------
    InputError
        Empty, not a PNG, corrupt or truncated, unsupported mode, size out of
        range, or ``min_layers`` above 1.
    """
    path = Path(path)
    check_layer_count(path, 1, min_layers=min_layers, max_layers=max_layers)
    with _open(path) as image:
        mode = _check_mode(path, image)
        width, height = image.size
        check_shape(path, 1, height, width, min_layers=min_layers, max_layers=max_layers, max_xy=max_xy)
        check_dtype(path, np.dtype(_GREY_MODES[mode]))
        check_decoded_size(path, height * width * max(np.dtype(_GREY_MODES[mode]).itemsize, 4), max_bytes)
        plane, note = _decode(path, image)
    if plane.shape != (height, width):
        raise InputError(path, f"decoded image has shape {plane.shape}, the header says {height}x{width}")
    info = {"compression": "png"}
    if note:
        info["colour_note"] = note
    return _narrow(plane[np.newaxis]), info


def read_png_stack(
    folder: Path, *, min_layers: int, max_layers: int, max_xy: int, max_bytes: int = MAX_DECODED_MB * 2**20
) -> tuple[np.ndarray, dict]:
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
            modes.add(_check_mode(path, image))
            sizes.add(image.size)
    if len(sizes) > 1:
        raise InputError(folder, f"layers have mixed shapes (width x height): {sorted(sizes)}")
    if len({_GREY_MODES[m] for m in modes}) > 1:
        raise InputError(folder, f"layers have mixed bit depths (PIL modes {sorted(modes)})")
    width, height = sizes.pop()
    check_shape(folder, len(layers), height, width, min_layers=min_layers, max_layers=max_layers, max_xy=max_xy)
    dtype = np.dtype(_GREY_MODES[modes.pop()])
    check_dtype(folder, dtype)
    check_decoded_size(folder, len(layers) * height * width * dtype.itemsize, max_bytes)
    data = np.empty((len(layers), height, width), dtype=dtype)
    notes = set()
    for index, path in enumerate(layers):
        with _open(path) as image:
            data[index], note = _decode(path, image)
        if note:
            notes.add(note)
    data = _narrow(data)
    info = {"layers": [p.name for p in layers], "compression": "png"}
    if notes:
        info["colour_note"] = notes.pop()
    return data, info
