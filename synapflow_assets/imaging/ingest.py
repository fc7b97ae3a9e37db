"""Ingest one session: read and validate, register the layers, write OME-Zarr and projection."""

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..store.locations import as_path
from .ome_zarr import write_volume
from .readers import content_hash, read_volume, reader_for
from .registration import register_layers


@dataclass(frozen=True)
class IngestReport:
    """What ingesting one session produced."""

    source: Path
    target: Path
    input_hash: str
    shape: tuple[int, int, int]
    dtype: str
    voxel_size_um: tuple[float, float, float]
    voxel_size_source: str
    acquired_at: str | None
    layer_shifts: np.ndarray
    residual_px: float
    input_bytes: int
    metadata: dict


def preview_png(image: np.ndarray, max_size: int = 256) -> bytes:
    """A small 8-bit PNG of an image, contrast stretched between its 1st and 99.8th percentiles."""
    step = max(1, int(np.ceil(max(image.shape) / max_size)))
    small = image[::step, ::step].astype(np.float32)
    low, high = np.percentile(small, [1, 99.8])
    scaled = np.clip((small - low) / max(high - low, 1e-6), 0, 1)
    buffer = io.BytesIO()
    Image.fromarray((scaled * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_markdown(png: bytes, title: str) -> str:
    """Markdown that shows a PNG inline (for the Dagster UI)."""
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def input_size(path: Path) -> int:
    """The bytes of a session input: its file, or the layers of its folder (:meth:`.readers.Reader.files`)."""
    path = Path(path)
    return sum(f.stat().st_size for f in reader_for(path).files(path))


def ingest_session(
    source: Path,
    target: Path,
    *,
    max_layer_shift_px: float = 20.0,
    origin: str | None = None,
    **reader_options: Any,
) -> IngestReport:
    """Turn one landed session into a registered OME-Zarr volume.

    Parameters
    ----------
    source : Path
        The session's TIFF file or PNG-layer folder.
    target : Path
        The ``.ome.zarr`` folder to write (replaced atomically; nothing is left
        behind if any step fails).
    max_layer_shift_px : float
        Largest motion between consecutive layers taken as real.
    **reader_options
        Passed to :func:`synapflow_assets.imaging.readers.read_volume`
        (``channel``, ``n_channels``, ``pixel_size_um``, ``z_step_um``,
        ``default_voxel_size_um``, ``min_layers``). The channel and why it was
        chosen, the voxel size sources and any colour conversion are written
        to the OME-Zarr attributes.
    origin : str, optional
        Where the input is kept when ``source`` is a local copy of it (an object-store address), recorded as the source.
    """
    source, target = Path(source), as_path(target)
    input_hash = content_hash(source)
    volume = read_volume(source, **reader_options)
    aligned, shifts, residual = register_layers(volume.data, max_layer_shift_px)
    mip = aligned.max(axis=0)
    acquired = volume.acquired_at.isoformat() if volume.acquired_at else None
    attributes = {
        "source": str(origin or source),
        "input_hash": input_hash,
        "acquired_at": acquired,
        "voxel_size_source": volume.voxel_size_source,
        "voxel_size_sources": volume.metadata.get("voxel_size_sources"),
        "format": volume.metadata.get("format"),
        "channel": volume.metadata.get("channel"),
        "n_channels": volume.metadata.get("n_channels"),
        "channel_choice": volume.metadata.get("channel_choice"),
        "colour_note": volume.metadata.get("colour_note"),
        "layer_shifts_px": np.round(shifts, 3).tolist(),
        "registration_residual_px": residual,
    }
    write_volume(target, aligned, volume.voxel_size_um, mip=mip, attributes=attributes)
    return IngestReport(
        source=source,
        target=target,
        input_hash=input_hash,
        shape=(int(aligned.shape[0]), int(aligned.shape[1]), int(aligned.shape[2])),
        dtype=str(aligned.dtype),
        voxel_size_um=(float(volume.voxel_size_um[0]), float(volume.voxel_size_um[1]), float(volume.voxel_size_um[2])),
        voxel_size_source=volume.voxel_size_source,
        acquired_at=acquired,
        layer_shifts=shifts,
        residual_px=residual,
        input_bytes=input_size(source),
        metadata=dict(volume.metadata),
    )
