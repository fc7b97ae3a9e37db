"""Read one channel's z-stack from a multi-page TIFF, checking the file first.

Handles ImageJ hyperstacks, OME-TIFF, ScanImage-style files with channels
interleaved page by page (page ``i`` belongs to channel ``i % n_channels``)
and plain multi-page TIFFs, compressed or not. Singleton axes are squeezed;
one stack axis (``Z``, ``T``, ``I`` or ``Q``) and at most one channel axis
(``C``) may remain besides ``Y`` and ``X``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .colour import COLOUR_NOTE, colour_to_grey
from .errors import InputError
from .tiff_metadata import imagej_voxel_size, ome_info, scanimage_info, scanimage_settings
from .validation import MAX_DECODED_MB, check_decoded_size, check_dtype, check_shape, check_voxel_size

if TYPE_CHECKING:
    import tifffile

_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_LAYER_AXES = "ZTIQ"


@dataclass(frozen=True)
class AxisPlan:
    """How to turn the series array into (z, y, x) of one channel."""

    kept_axes: str
    kept_shape: tuple[int, ...]
    channel: int | None
    n_channels: int
    interleaved: bool
    n_layers: int
    colour: str | None = None
    channel_choice: str = "only channel"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _tifffile_warnings() -> Iterator[list[str]]:
    """Collect (and silence) tifffile's logged warnings."""
    logger = logging.getLogger("tifffile")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _check_integrity(path: Path, tif: tifffile.TiffFile, size: int, warnings: list[str]) -> None:
    """Raise when page headers or pixel data lie beyond the end of the file."""
    for message in warnings:
        match = re.search(r"invalid (?:page|value) offset (\d+)", message)
        if match and int(match.group(1)) >= size:
            raise InputError(path, f"truncated file: {size} bytes, but the TIFF refers to offset {match.group(1)}")
    try:
        seen: dict[int, int] = {}
        for page in tif.pages:
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):
                if count and offset + count > size:
                    raise InputError(
                        path, f"truncated file: {size} bytes, but page {page.index} needs bytes up to {offset + count}"
                    )
                if count and offset in seen:
                    raise InputError(
                        path,
                        f"pages {seen[offset]} and {page.index} share their pixel data (offset {offset}), as in a "
                        "decompression bomb; refused",
                    )
                seen[offset] = page.index
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"truncated or corrupt TIFF ({exc})") from None
    for message in warnings:
        if "corrupt" in message or "failed to reshape" in message:
            raise InputError(path, f"truncated or corrupt TIFF ({message.split('> ', 1)[-1]})")


def _colour_layout(path: Path, axes: str, shape: tuple[int, ...]) -> tuple[str | None, str, tuple[int, ...]]:
    """How colour samples are stored (None, ``"planes"`` or ``"rgb"``) and the axes and shape without them
    (sample planes become layers)."""
    dims = dict(zip(axes, shape, strict=False))
    if dims.get("S", 1) <= 1:
        return None, axes, tuple(shape)
    samples = dims["S"]
    if samples not in (3, 4):
        raise InputError(path, f"{samples} samples per pixel (axes {axes}) are not supported")
    if axes.index("S") < axes.index("Y") and all(dims[a] == 1 for a in axes if a not in "SYX"):
        return "planes", axes.replace("S", "Z"), tuple(shape)
    if axes.endswith("YXS"):
        return "rgb", axes[:-1], tuple(shape[:-1])
    raise InputError(path, f"unsupported colour layout (axes {axes}); save each channel as grey")


def _channel_choice(path: Path, channel: int | None, sidecar_channel: int | None, total: int) -> tuple[int | None, str]:
    """The channel to read (None: the brightest, decided on the pixels) of ``total``, and which rule chose it."""
    chosen = channel if channel is not None else sidecar_channel
    choice = (
        "configured"
        if channel is not None
        else "sidecar"
        if sidecar_channel is not None
        else ("only channel" if total == 1 else f"brightest of {total}")
    )
    if chosen is None and total == 1:
        chosen = 0
    if chosen is not None and not 0 <= chosen < total:
        word = "channel" if total == 1 else "channels"
        raise InputError(path, f"channel {chosen} is out of range: the file has {total} {word} (0..{total - 1})")
    return chosen, choice


def plan_axes(
    path: Path,
    axes: str,
    shape: tuple[int, ...],
    *,
    channel: int | None,
    n_channels: int | None,
    file_n_channels: int | None,
    sidecar_channel: int | None = None,
    sidecar_n_channels: int | None = None,
) -> AxisPlan:
    """Decide, from metadata only, how to extract one channel's z-stack.

    Parameters
    ----------
    path : Path
        Named in errors.
    axes, shape : str, tuple of int
        Of the TIFF series (tifffile axis codes).
    channel, n_channels : int or None
        As passed to :func:`read_volume`.
    file_n_channels : int or None
        Channel count stated by ScanImage metadata (for interleaved pages).
    sidecar_channel, sidecar_n_channels : int or None
        From the sidecar; used when the call passes None.

    Returns
    -------
    AxisPlan
        ``channel`` None means "the brightest" (decided on the pixels by
        :func:`extract`); ``channel_choice`` says how it was chosen.
        ``colour``: ``"rgb"`` for interleaved colour samples (read as grey,
        see ``colour.colour_to_grey``), ``"planes"`` for 3 or 4 sample planes
        stored in one page (what ``tifffile.imwrite`` makes of a (3|4, y, x)
        grey stack): read as layers.

    Raises
    ------
    InputError
        Samples other than 3 or 4, axes other than one stack and one channel
        axis, a channel count that disagrees with the file or does not divide
        the page count, a channel out of range.
    """
    colour, axes, shape = _colour_layout(path, axes, shape)
    dims = dict(zip(axes, shape, strict=False))
    kept = [(a, n) for a, n in zip(axes, shape, strict=False) if n > 1 or a in "YX"]
    kept_axes = "".join(a for a, _ in kept)
    described = f"axes {axes} with shape {tuple(shape)}"
    if not kept_axes.endswith("YX"):
        raise InputError(path, f"unsupported dimension order: {described}")
    others = kept_axes[:-2]
    unknown = [a for a in others if a not in _LAYER_AXES + "C"]
    if unknown or others.count("C") > 1:
        raise InputError(path, f"unsupported dimension order: {described} ({','.join(unknown) or 'C'} not understood)")
    stack = [a for a in others if a in _LAYER_AXES]
    if len(stack) > 1:
        sizes = ", ".join(f"{a}={dims[a]}" for a in stack)
        raise InputError(
            path,
            f"unsupported dimension order: {described}; several stack dimensions ({sizes}), one z-stack is expected",
        )
    n_pages = dims[stack[0]] if stack else 1
    if "C" in others:
        found = dims["C"]
        for given, who in ((n_channels, "n_channels"), (sidecar_n_channels, "sidecar n_channels")):
            if given is not None and given != found:
                raise InputError(path, f"{who}={given} but the file has {found} channels ({described})")
        total, interleaved = found, False
    else:
        total = next((n for n in (n_channels, file_n_channels, sidecar_n_channels) if n is not None), 1)
        if total < 1:
            raise InputError(path, f"n_channels must be >= 1, got {total}")
        interleaved = total > 1
        if interleaved and n_pages % total:
            raise InputError(
                path, f"{n_pages} pages are not a multiple of n_channels={total}; cannot de-interleave channels"
            )
    chosen, choice = _channel_choice(path, channel, sidecar_channel, total)
    n_layers = n_pages // total if interleaved else n_pages
    return AxisPlan(kept_axes, tuple(n for _, n in kept), chosen, total, interleaved, n_layers, colour, choice)


def brightness(stack: np.ndarray) -> float:
    """How much signal a channel holds: its 99.9th percentile above its median (on a sub-sample)."""
    sample = np.asarray(stack[:, ::4, ::4], dtype=np.float32)
    return float(np.percentile(sample, 99.9) - np.median(sample))


def extract(data: np.ndarray, plan: AxisPlan) -> tuple[np.ndarray, AxisPlan]:
    """Apply ``plan`` to the series array; returns a contiguous (z, y, x) array and the plan with
    its channel decided (the brightest when the plan left it open)."""
    if plan.channel is None:
        stacks = [extract(data, replace(plan, channel=c))[0] for c in range(plan.n_channels)]
        best = int(np.argmax([brightness(stack) for stack in stacks]))
        return stacks[best], replace(plan, channel=best)
    if plan.colour == "rgb":
        data = colour_to_grey(data)
    data = data.reshape(plan.kept_shape)
    axes = plan.kept_axes
    if "C" in axes:
        data = np.take(data, plan.channel, axis=axes.index("C"))
        axes = axes.replace("C", "")
    if len(axes) == 2:
        data = data[np.newaxis]
    if plan.interleaved:
        z, y, x = data.shape
        data = data.reshape(z // plan.n_channels, plan.n_channels, y, x)[:, plan.channel]
    return np.ascontiguousarray(data), plan


def _format(tif: tifffile.TiffFile, si: dict) -> str:
    if tif.is_ome:
        return "ome-tiff"
    if tif.is_imagej:
        return "imagej-tiff"
    if si.get("is_scanimage") or getattr(tif, "is_scanimage", False):
        return "scanimage-tiff"
    return "tiff"


def read_tiff_stack(
    path: Path,
    *,
    channel: int | None,
    n_channels: int | None,
    sidecar_channel: int | None,
    sidecar_n_channels: int | None,
    min_layers: int,
    max_layers: int,
    max_xy: int,
    max_bytes: int = MAX_DECODED_MB * 2**20,
) -> tuple[np.ndarray, dict]:
    """Validate and read one channel of a multi-page TIFF (refused from its header when its pixels would take
    more than ``max_bytes`` decoded, or when pages share their pixel data, as a decompression bomb's do).

    Returns
    -------
    data : ndarray
        (z, y, x), dtype of the file (float types unchanged here).
    info : dict
        ``format``, ``axes``, ``channel``, ``n_channels``, ``compression``,
        ``voxel`` (``{source: {axis: µm}}`` for ome/imagej/scanimage) and
        ``acquired_at`` (OME).
    """
    size = _checked_size(path)
    import tifffile

    with _tifffile_warnings() as warnings:
        try:
            tif = tifffile.TiffFile(path)
        except Exception as exc:
            raise InputError(path, f"truncated or corrupt TIFF, cannot be opened ({exc})") from None
        with tif:
            try:
                series = tif.series[0]
                axes, shape, dtype = series.axes, tuple(series.shape), series.dtype
                offset = series.dataoffset
                first = tif.pages.first
                ome_sizes, acquired = ome_info(tif.ome_metadata) if tif.is_ome else ({}, None)
                ij_sizes = imagej_voxel_size(tif.imagej_metadata, first) if tif.is_imagej else {}
                si = scanimage_info(scanimage_settings(tif))
                n_series = len(tif.series)
                compression = tifffile.COMPRESSION(first.compression).name.lower()
            except InputError:
                raise
            except Exception as exc:
                raise InputError(path, f"truncated or corrupt TIFF ({exc})") from None
            _check_integrity(path, tif, size, warnings)
            if offset is not None and offset + series.nbytes > size:
                raise InputError(
                    path, f"truncated file: {size} bytes, but the image data needs {offset + series.nbytes}"
                )
            fmt = _format(tif, si)
            if fmt == "tiff" and n_series > 1:
                raise InputError(
                    path, f"pages of different shapes or types ({n_series} series); one z-stack is expected"
                )
            check_dtype(path, dtype)
            plan = plan_axes(
                path,
                axes,
                shape,
                channel=channel,
                n_channels=n_channels,
                file_n_channels=si.get("n_channels"),
                sidecar_channel=sidecar_channel,
                sidecar_n_channels=sidecar_n_channels,
            )
            check_shape(
                path,
                plan.n_layers,
                plan.kept_shape[-2],
                plan.kept_shape[-1],
                min_layers=min_layers,
                max_layers=max_layers,
                max_xy=max_xy,
            )
            check_decoded_size(path, series.nbytes, max_bytes)
            try:
                data = series.asarray()
            except Exception as exc:
                raise InputError(path, f"pixel data cannot be decoded ({exc})") from None
    voxel = {"ome": ome_sizes, "imagej": ij_sizes, "scanimage": {a: si[a] for a in ("z", "y", "x") if a in si}}
    for source, sizes in voxel.items():
        check_voxel_size(path, sizes, source)
    stack, plan = extract(data, plan)
    info = {
        "format": fmt,
        "axes": axes,
        "channel": plan.channel,
        "n_channels": plan.n_channels,
        "channel_choice": plan.channel_choice,
        "compression": compression,
        "voxel": voxel,
        "acquired_at": acquired,
    }
    if plan.colour is not None:
        info["colour_note"] = _colour_note(plan)
    return stack, info


def _checked_size(path: Path) -> int:
    """The size of a file that is not empty and starts like a TIFF; `InputError` otherwise."""
    size = path.stat().st_size
    if size == 0:
        raise InputError(path, "empty file (0 bytes)")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head not in _MAGIC:
        raise InputError(path, f"not a TIFF file (starts with {head!r})")
    return size


def _colour_note(plan: AxisPlan) -> str:
    """What was done with colour samples."""
    if plan.colour == "rgb":
        return COLOUR_NOTE
    return f"{plan.n_layers} sample planes of one page read as {plan.n_layers} layers (a grey stack, not colour)"
