"""Hand an animal to napari: every session's volume registered into the first session's frame (OME-Zarr), a
napari Tracks table and a points table with status and size, all in that frame.

napari reads ``<session>.ome.zarr`` with its OME-Zarr reader (``napari-ome-zarr``), ``tracks.csv``
(``track_id, t, z, y, x``) as a Tracks layer and ``points.csv`` (``t, z, y, x, status, size, track_id``) as a
Points layer with properties.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from scipy import ndimage

from .imaging.errors import InputError
from .imaging.ome_zarr import read_volume_zarr, write_volume
from .tracking.align import Alignment

TRACK_COLUMNS = ["track_id", "t", "z", "y", "x"]


def to_first_frame(
    steps: list[Alignment], yx: np.ndarray, z: np.ndarray, session: int
) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) points and layers of session ``session`` in the first session's frame (chained alignments back)."""
    yx = np.asarray(yx, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(z, dtype=np.float64).copy()
    for step in reversed(steps[:session]):
        yx = step.map_points_back(yx)
        z = z - step.z_shift
    return yx, z


def registered_volume(volume: np.ndarray, steps: list[Alignment], session: int) -> np.ndarray:
    """Session ``session``'s volume resampled into the first session's frame (bilinear in x/y, the integer z
    shift in z; zero outside)."""
    nz, ny, nx = volume.shape
    grid = np.stack(list(np.mgrid[0:ny, 0:nx]), axis=-1).reshape(-1, 2).astype(np.float64)
    dz = 0
    for step in steps[:session]:
        grid = step.map_points(grid)
        dz += step.z_shift
    out = np.zeros(volume.shape, dtype=np.float32)
    for z in range(nz):  # one 2D resampling per layer
        source = z + dz
        if 0 <= source < nz:
            out[z] = ndimage.map_coordinates(volume[source].astype(np.float32), grid.T, order=1, cval=0.0).reshape(
                ny, nx
            )
    return out.astype(volume.dtype)


def export_napari(
    root: Path,
    animal: str,
    out: Path,
    sessions: list[str],
    steps: list[Alignment],
    tracks: pl.DataFrame,
    sizes: pl.DataFrame,
) -> dict[str, Path]:
    """Write the registered volumes, ``tracks.csv`` and ``points.csv`` of one animal under ``out``.

    Parameters
    ----------
    sessions : session keys in acquisition order; ``steps[k]`` aligns ``sessions[k]`` to ``sessions[k + 1]``.
    tracks : the store's ``tracks`` rows of the animal (``session_index, track_id, status, xmin .. ymax,
        first_layer, last_layer``).
    sizes : ``session, spine_id, size`` of its spines.
    """
    root, out = Path(root), Path(out)
    if not len(tracks):
        raise InputError(root / "features.duckdb", f"no tracks of animal {animal!r} in the feature store")
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for k, session in enumerate(sessions):
        volume, voxel, _ = read_volume_zarr(root / "volumes" / animal / f"{session}.ome.zarr")
        registered = registered_volume(np.asarray(volume), steps, k)
        written[session] = write_volume(
            out / f"{session}.ome.zarr",
            registered,
            voxel,
            mip=registered.max(axis=0),
            attributes={"registered_to": sessions[0], "animal": animal, "session": session},
        )
    placed = (
        tracks.filter(pl.col("xmin").is_not_null())
        .join(sizes, on=["session", "spine_id"], how="left")
        .with_columns(
            y=(pl.col("ymin") + pl.col("ymax")) / 2,
            x=(pl.col("xmin") + pl.col("xmax")) / 2,
            z=(pl.col("first_layer") + pl.col("last_layer")) / 2,
        )
        .sort("session_index", "track_id")
    )
    frames = []
    for (k,), rows in placed.group_by("session_index", maintain_order=True):
        yx, z = to_first_frame(steps, rows.select("y", "x").to_numpy(), rows["z"].to_numpy(), int(k))
        frames.append(rows.with_columns(y=pl.Series(yx[:, 0]), x=pl.Series(yx[:, 1]), z=pl.Series(z), t=pl.lit(int(k))))
    points = (
        pl.concat(frames)
        .select("t", "z", "y", "x", "status", "size", "track_id")
        .with_columns([pl.col(c).round(2) for c in ("z", "y", "x")])
    )
    points.write_csv(out / "points.csv")
    in_view = points.filter(pl.col("status").is_in(["present", "new"]))
    in_view.select(TRACK_COLUMNS).sort("track_id", "t").write_csv(out / "tracks.csv")
    return {**written, "tracks": out / "tracks.csv", "points": out / "points.csv"}
