"""Read one imaging session (a z-stack) from a TIFF file, a single PNG or a folder of PNG layers.

Public API: :func:`read_volume`, :func:`content_hash`, :func:`find_png_layers`, and the one place that decides
how a session input is read: the :class:`Reader` protocol, the table :data:`READERS` (suffix -> reader) with
:data:`FOLDER_READER` (a folder), and its questions :func:`reader_for`, :func:`session_suffix`,
:func:`session_name` and :func:`sidecar_path`. Every problem with an input is reported as :class:`InputError`
naming the file.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..store.locations import as_path
from .errors import InputError
from .png_stack import find_png_layers, is_layer_file, read_png_image, read_png_stack
from .scale import estimate_pixel_size as estimate_scale
from .sidecar import Sidecar, read_sidecar
from .tiff_stack import read_tiff_stack
from .validation import MAX_DECODED_MB, check_values
from .volume import Volume

__all__ = [
    "FOLDER_READER",
    "READERS",
    "Reader",
    "content_hash",
    "find_png_layers",
    "read_volume",
    "reader_for",
    "session_name",
    "session_suffix",
    "sidecar_path",
]

_AXES = ("z", "y", "x")
_CHUNK = 1 << 20


class Reader(Protocol):
    """What reading one kind of session input takes (a file, by its suffix in :data:`READERS`, or a folder)."""

    def refusal(self, path: Path) -> str | None:
        """Why ``path``, of this kind, is not a session on its own (None: it is one)."""
        ...

    def files(self, path: Path) -> list[Path]:
        """The files holding the session's pixels (for its size and the landing folder's change detector)."""
        ...

    def read(
        self, path: Path, *, channel: int | None, n_channels: int | None, sidecar: Sidecar | None, limits: dict
    ) -> tuple[np.ndarray, dict]:
        """The (z, y, x) layers of one channel and what the input says: ``format``, ``axes``, ``channel``,
        ``n_channels``, ``channel_choice``, ``voxel`` (sizes by source) and ``acquired_at``."""
        ...


class TiffReader:
    """A multi-page TIFF (OME, ImageJ, ScanImage or plain), through :func:`.tiff_stack.read_tiff_stack`."""

    def refusal(self, path: Path) -> str | None:
        return None

    def files(self, path: Path) -> list[Path]:
        return [path]

    def read(
        self, path: Path, *, channel: int | None, n_channels: int | None, sidecar: Sidecar | None, limits: dict
    ) -> tuple[np.ndarray, dict]:
        return read_tiff_stack(
            path,
            channel=channel,
            n_channels=n_channels,
            sidecar_channel=sidecar.channel if sidecar else None,
            sidecar_n_channels=sidecar.n_channels if sidecar else None,
            **limits,
        )


class PngReader:
    """One grey channel from a single-plane PNG (``folder=False``) or a folder of PNG layers (``folder=True``)."""

    def __init__(self, *, folder: bool) -> None:
        self.folder = folder
        self.format = "png-layers" if folder else "png"
        self._read: Callable[..., tuple[np.ndarray, dict]] = read_png_stack if folder else read_png_image

    def refusal(self, path: Path) -> str | None:
        if not self.folder and is_layer_file(path.name):
            return "a single PNG layer of a folder stack (<stack>_layerNN.png); pass the folder holding the layers"
        return None

    def files(self, path: Path) -> list[Path]:
        return sorted(path.glob("*.png")) if self.folder else [path]

    def read(
        self, path: Path, *, channel: int | None, n_channels: int | None, sidecar: Sidecar | None, limits: dict
    ) -> tuple[np.ndarray, dict]:
        side_channel = sidecar.channel if sidecar else None
        side_n = sidecar.n_channels if sidecar else None
        chosen = channel if channel is not None else (side_channel if side_channel is not None else 0)
        if chosen != 0 or (n_channels or side_n or 1) != 1:
            raise InputError(
                path,
                f"channel {chosen} of {n_channels or side_n or 1} requested, but a "
                f"{'PNG layer folder' if self.folder else 'PNG image'} has 1 channel (grey)",
            )
        data, extra = self._read(path, **limits)
        info = {
            "format": self.format,
            "axes": "ZYX",
            "channel": 0,
            "n_channels": 1,
            "channel_choice": "only channel",
            "voxel": {},
            "acquired_at": None,
            **extra,
        }
        return data, info


TIFF = TiffReader()
PNG_IMAGE = PngReader(folder=False)
READERS: dict[str, Reader] = {".ome.tiff": TIFF, ".ome.tif": TIFF, ".tiff": TIFF, ".tif": TIFF, ".png": PNG_IMAGE}
"""The one table of session files: suffix (lower case; the longest that matches wins) -> its reader. The
``.ome.*`` entries make ``day00.ome.tif`` the session ``day00``."""
FOLDER_READER: Reader = PngReader(folder=True)
"""The reader of a session given as a folder (of PNG layers)."""


def session_suffix(name: str) -> str | None:
    """The suffix of :data:`READERS` that the file name ``name`` ends with (case-insensitive, the longest), or
    None when no reader takes it (a name that is only a suffix, such as ``.tif``, included)."""
    lower = name.lower()
    return next((s for s in sorted(READERS, key=len, reverse=True) if lower.endswith(s) and len(lower) > len(s)), None)


def session_name(name: str) -> str:
    """``name`` without its reader's suffix (``day00.ome.tif`` -> ``day00``); as it is when no reader takes it."""
    suffix = session_suffix(name)
    return name[: -len(suffix)] if suffix else name


def reader_for(path: Path) -> Reader:
    """The reader of a session input: :data:`FOLDER_READER` for a folder, else the one :data:`READERS` names for
    its suffix; `InputError` for a file no reader takes."""
    if path.is_dir():
        return FOLDER_READER
    suffix = session_suffix(path.name)
    if suffix is None:
        raise InputError(
            path,
            f"unsupported file type '{path.suffix.lower() or path.name}'; expected .tif/.tiff, a single-plane .png "
            "or a folder of PNG layers",
        )
    return READERS[suffix]


def sidecar_path(path: str | Path) -> Path:
    """Where the sidecar JSON of the input ``path`` would be (it may not exist): ``day00.json`` beside
    ``day00.tif``, ``day00.ome.tif``, ``day00.png`` or the folder ``day00/``."""
    where = as_path(path)
    name = where.name.rstrip("/")
    suffix = session_suffix(name)
    if suffix and not where.is_dir():
        name = name[: -len(suffix)]
    return where.parent / f"{name}.json"


def _check_default(default_voxel_size_um: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(v) for v in default_voxel_size_um)
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(
            f"default_voxel_size_um must be three positive numbers (z, y, x), got {default_voxel_size_um!r}"
        )
    return values


def read_volume(
    path: str | Path,
    *,
    channel: int | None = None,
    n_channels: int | None = None,
    pixel_size_um: float | None = None,
    z_step_um: float | None = None,
    default_voxel_size_um: tuple[float, float, float] = (1.0, 0.12, 0.12),
    min_layers: int = 1,
    max_layers: int = 2048,
    max_xy: int = 16384,
    max_decoded_mb: int = MAX_DECODED_MB,
    estimate_pixel_size: bool = True,
    animal_pixel_size_um: float | None = None,
) -> Volume:
    """Read and validate one session's z-stack.

    Parameters
    ----------
    path : str or Path
        A multi-page TIFF (``.tif``/``.tiff``, including ``.ome.tif``) or a
        folder of per-layer PNGs (``<stack>_layerNN.png`` or ``<stack>-NN.png``).
    channel : int, optional
        Channel to return from a multi-channel stack; default: the sidecar's
        ``channel``, else the brightest (``metadata["channel_choice"]`` says
        which rule chose it).
    n_channels : int, optional
        Number of channels interleaved page by page (page ``i`` belongs to
        channel ``i % n_channels``) when the file does not say; default: from
        ScanImage metadata, else the sidecar, else 1.
    pixel_size_um, z_step_um : float, optional
        x/y pixel size and z step set by the lab (settings); they win over
        the file's metadata (source ``settings``).
    default_voxel_size_um : tuple of float
        (z, y, x) used for every axis nothing else states (source ``default``).
    estimate_pixel_size : bool
        When nothing states the x/y pixel size, estimate it from the width of
        the dendrites (source ``estimated``, see :mod:`.scale`); the default
        is used only when no dendrite is found.
    animal_pixel_size_um : float, optional
        The animal's pooled estimate (:mod:`.animal_scale`): used instead of
        this session's own estimate when nothing states the size (source
        ``estimated``); the session's own estimate stays in the metadata.
    min_layers, max_layers : int
        Accepted number of layers (a single plane has 1 layer).
    max_xy : int
        Largest accepted layer width/height in pixels (at least 16 px are
        required).
    max_decoded_mb : int
        Largest decoded size of the file's pixels (MB), checked from its
        header before anything is allocated.

    Returns
    -------
    Volume
        ``data`` is (z, y, x): integer types as stored, float as float32;
        colour images are read as grey (``metadata["colour_note"]`` says so).
        Each of z, y, x voxel size comes from the first source that has it,
        in the order settings, OME, ImageJ, ScanImage, sidecar, default;
        ``voxel_size_source`` is the source of x/y and
        ``metadata["voxel_size_sources"]`` gives each axis.

    Raises
    ------
    InputError
        Any problem with the input (missing, empty, truncated, not a TIFF,
        unsupported layout or type, sizes out of range, NaN/Inf, blank image,
        bad PNG folder, bad sidecar, channel out of range).
    """
    path = Path(path)
    default = _check_default(default_voxel_size_um)
    reader = _check_input_path(path)
    sidecar = read_sidecar(sidecar_path(path))
    limits = {"min_layers": min_layers, "max_layers": max_layers, "max_xy": max_xy, "max_bytes": max_decoded_mb * 2**20}
    data, info = reader.read(path, channel=channel, n_channels=n_channels, sidecar=sidecar, limits=limits)
    data = check_values(path, data)
    settings = {
        axis: value
        for axis, value in (("z", z_step_um), ("y", pixel_size_um), ("x", pixel_size_um))
        if value is not None
    }
    candidates = {"settings": settings, **info.pop("voxel")}
    candidates["sidecar"] = (
        dict(zip(_AXES, sidecar.voxel_size_um, strict=False)) if sidecar and sidecar.voxel_size_um else {}
    )
    estimate = None
    if estimate_pixel_size and not any("x" in sizes for sizes in candidates.values()):
        estimate = estimate_scale(data)
        chosen = animal_pixel_size_um if animal_pixel_size_um is not None else estimate.pixel_size_um
        if chosen is not None:
            candidates["estimated"] = {"y": chosen, "x": chosen}
    candidates["default"] = dict(zip(_AXES, default, strict=False))
    sources = {axis: next(s for s, sizes in candidates.items() if axis in sizes) for axis in _AXES}
    voxel = tuple(float(candidates[sources[a]][a]) for a in _AXES)
    acquired = info.pop("acquired_at") or (sidecar.acquired_at if sidecar else None)

    metadata = {**info, "dtype": str(data.dtype), "voxel_size_sources": sources}
    if estimate is not None:
        metadata["pixel_size_estimate"] = {
            "pixel_size_um": estimate.pixel_size_um,
            "dendrite_width_px": round(estimate.dendrite_width_px, 2),
            "ridge_pixels": estimate.ridge_pixels,
            "animal_pixel_size_um": animal_pixel_size_um,
        }
    if sidecar:
        metadata["sidecar"] = str(sidecar.path)
    return Volume(
        data=data,
        voxel_size_um=(voxel[0], voxel[1], voxel[2]),
        source=path,
        voxel_size_source=sources["x"],
        acquired_at=acquired,
        metadata=metadata,
    )


def _check_input_path(path: Path) -> Reader:
    """The reader of an existing session input (:func:`reader_for`); `InputError` for a missing path, a file no
    reader takes, or one its reader refuses (one layer of a PNG folder stack given on its own)."""
    if not path.exists():
        raise InputError(path, "does not exist")
    reader = reader_for(path)
    problem = reader.refusal(path)
    if problem is not None:
        raise InputError(path, problem)
    return reader


def _feed(digest: hashlib.blake2b, path: Path) -> None:
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)


def content_hash(path: str | Path) -> str:
    """Hex BLAKE2b digest (16 bytes) of an input's content and its sidecar.

    Parameters
    ----------
    path : str or path
        A TIFF file (hash of its bytes, read in chunks) or a PNG layer folder, local or on an object store
        (hash of the layer file names, in layer order, and their bytes).

    Returns
    -------
    str
        32 hex characters; the sidecar JSON bytes, when a sidecar exists, are
        included, so editing the sidecar changes the hash.

    Raises
    ------
    InputError
        The path does not exist, or the folder's layers are invalid.
    """
    where = as_path(path)
    digest = hashlib.blake2b(digest_size=16)
    if where.is_dir():
        for layer in find_png_layers(where):
            name = layer.name.encode("utf-8")
            digest.update(len(name).to_bytes(8, "little") + name)
            digest.update(layer.stat().st_size.to_bytes(8, "little"))
            _feed(digest, layer)
    elif where.is_file():
        _feed(digest, where)
    else:
        raise InputError(path, "does not exist")
    side = sidecar_path(path)
    if side.is_file():
        digest.update(b"\x00sidecar\x00")
        _feed(digest, side)
    return digest.hexdigest()
