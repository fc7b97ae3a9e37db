"""Checks shared by the TIFF and PNG readers; each raises InputError."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from .errors import InputError

MIN_XY = 16


def check_dtype(path: Path, dtype: DTypeLike) -> None:
    """Reject data types that are not plain integers or floats (bool, complex...)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif":
        raise InputError(path, f"unsupported pixel type {dtype} (non-numeric); expected integer or float grey values")
    if dtype.kind in "ui" and dtype.itemsize > 4:
        raise InputError(path, f"unsupported pixel type {dtype}; expected 8, 16 or 32-bit integers or floats")


def check_shape(path: Path, n_layers: int, y: int, x: int, *, min_layers: int, max_layers: int, max_xy: int) -> None:
    """Check layer count and layer size, from metadata, before any pixel is read.

    Parameters
    ----------
    path : Path
        Input named in the error.
    n_layers, y, x : int
        Size of the chosen channel's stack.
    min_layers, max_layers, max_xy : int
        Limits passed to :func:`read_volume`.
    """
    check_layer_count(path, n_layers, min_layers=min_layers, max_layers=max_layers)
    if y > max_xy or x > max_xy:
        raise InputError(path, f"layer size {y}x{x} px is too large (max_xy={max_xy})")
    if y < MIN_XY or x < MIN_XY:
        raise InputError(path, f"layer size {y}x{x} px is too small (at least {MIN_XY} px expected)")


MAX_DECODED_MB = 4096
"""Default largest decoded size of one session (``imaging.max_decoded_mb``)."""


def check_decoded_size(path: Path, n_bytes: int, max_bytes: int) -> None:
    """Reject an input whose pixels would take more than ``max_bytes`` once decoded, from its header, before any
    memory is allocated (a decompression bomb is a few KB on disk)."""
    if n_bytes > max_bytes:
        raise InputError(
            path,
            f"decoded size {n_bytes / 2**20:,.0f} MB exceeds the limit of {max_bytes / 2**20:,.0f} MB "
            f"({path.stat().st_size if path.is_file() else 0:,} bytes on disk); raise imaging.max_decoded_mb in "
            "synapflow.yaml for a stack this large",
        )


def check_layer_count(path: Path, n_layers: int, *, min_layers: int, max_layers: int) -> None:
    """Reject fewer than ``min_layers`` or more than ``max_layers`` layers."""
    if n_layers < min_layers:
        word = "layer" if n_layers == 1 else "layers"
        raise InputError(
            path,
            f"{n_layers} {word}; at least {min_layers} layers are expected "
            "(imaging.min_layers in synapflow.yaml; 1 accepts single planes)",
        )
    if n_layers > max_layers:
        raise InputError(path, f"too many layers: {n_layers} > max_layers={max_layers}")


def check_values(path: Path, data: np.ndarray) -> np.ndarray:
    """Reject NaN/Inf and blank volumes; return float data as float32.

    Parameters
    ----------
    path : Path
    data : ndarray

    Returns
    -------
    ndarray
        ``data`` (float32 when it was a float type).
    """
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            n_nan = int(np.isnan(data).sum())
            n_inf = int(data.size - finite.sum()) - n_nan
            raise InputError(path, f"float data contains {n_nan} NaN and {n_inf} Inf values")
        if data.dtype != np.float32:
            if np.abs(data).max() > np.finfo(np.float32).max:
                raise InputError(path, "float values exceed the float32 range")
            data = data.astype(np.float32)
    if data.size and data.min() == data.max():
        raise InputError(path, f"blank image: all pixels equal {data.flat[0]}")
    return data


def check_voxel_size(path: Path, sizes: dict[str, float], source: str) -> None:
    """Reject non-positive or non-finite voxel sizes stated by ``source``."""
    for axis, value in sizes.items():
        if math.isinf(value):
            raise InputError(
                path, f"{source} metadata gives a resolution of 0 pixels per unit along {axis} (no voxel size)"
            )
        if not (math.isfinite(value) and value > 0):
            raise InputError(path, f"{source} metadata gives a non-positive voxel size {axis}={value}")
