"""Hand an animal to napari in micrometres: one OME-Zarr time series ``(t, z, y, x)`` of its sessions registered
into the first session's frame, a napari Tracks table and a points table, all in that frame and in micrometres.

napari shows ``<animal>.ome.zarr`` (napari-ome-zarr) with its ``scale`` of ``[1, z, y, x]`` micrometres,
``tracks.csv`` (``track_id, t, z_um, y_um, x_um``) as a Tracks layer and ``points.csv`` (``t, z_um, y_um, x_um,
status, size, track_id``) as a Points layer with properties; both tables are already in micrometres, so their
layers keep the scale 1. ``napari.json`` beside them states the units, axes, scale and sessions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import zarr
from scipy import ndimage

from ..imaging.errors import InputError
from ..imaging.ome_zarr import NGFF_VERSION, atomic_directory, read_volume_zarr
from ..tracking.align import Alignment
from ..tracking.rigid import rigid_unmap

UNIT = "micrometer"
"""The unit of the volume's scale and of the ``*_um`` columns (the NGFF spelling)."""
TRACK_COLUMNS = ["track_id", "t", "z_um", "y_um", "x_um"]
POINT_COLUMNS = ["t", "z_um", "y_um", "x_um", "status", "size", "track_id"]


def map_back_exactly(step: Alignment, yx: np.ndarray, *, iterations: int = 10) -> np.ndarray:
    """Moving-session (y, x) points (n, 2) in the reference frame, as the inverse of ``step.map_points`` (the map
    the volumes are resampled with): ``step.map_points_back`` refined by fixed-point iteration.

    Notes
    -----
    ``map_points_back`` comes from the field estimated in the other direction,
    which disagrees with ``map_points`` by the pair's forward-backward residual
    (pixels near the edges); the iteration removes that disagreement, so a
    point lands where the registered volume shows its structure.
    """
    yx = np.asarray(yx, dtype=np.float64).reshape(-1, 2)
    rigid = (step.rotation_deg, step.shift_yx, step.shape_yx)
    target = rigid_unmap(yx, *rigid)
    q = step.map_points_back(yx)
    for _ in range(iterations):
        q = q + target - rigid_unmap(step.map_points(q), *rigid)
    return q


def to_first_frame(
    steps: list[Alignment], yx: np.ndarray, z: np.ndarray, session: int
) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) points and layers of session ``session`` in the first session's frame (chained alignments back,
    each the exact inverse of the map :func:`registered_volume` resamples with)."""
    yx = np.asarray(yx, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(z, dtype=np.float64).copy()
    for step in reversed(steps[:session]):
        yx = map_back_exactly(step, yx)
        z = z - step.z_shift
    return yx, z


def from_first_frame(
    steps: list[Alignment], yx: np.ndarray, z: np.ndarray, session: int
) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) points and layers of the first session's frame in session ``session`` (chained alignments
    forward: the map :func:`registered_volume` resamples with)."""
    yx = np.asarray(yx, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(z, dtype=np.float64).copy()
    for step in steps[:session]:
        yx = step.map_points(yx)
        z = z + step.z_shift
    return yx, z


def registered_volume(
    volume: np.ndarray, steps: list[Alignment], session: int, *, layers: int | None = None
) -> np.ndarray:
    """Session ``session``'s volume resampled into the first session's frame (bilinear in x/y, the integer z
    shift in z; zero outside), with ``layers`` layers (default: as many as the volume)."""
    nz, ny, nx = volume.shape
    grid = np.stack(list(np.mgrid[0:ny, 0:nx]), axis=-1).reshape(-1, 2).astype(np.float64)
    grid, dz = from_first_frame(steps, grid, np.zeros(1), session)
    out = np.zeros((nz if layers is None else layers, ny, nx), dtype=np.float32)
    for z in range(len(out)):  # one 2D resampling per layer
        source = z + int(dz[0])
        if 0 <= source < nz:
            out[z] = ndimage.map_coordinates(volume[source].astype(np.float32), grid.T, order=1, cval=0.0).reshape(
                ny, nx
            )
    return out.astype(volume.dtype)


def time_series_metadata(name: str, voxel_size_um) -> dict:
    """NGFF ``multiscales`` entry of a ``(t, z, y, x)`` image: t an index (one per session), z, y, x in
    micrometres."""
    return {
        "name": name,
        "axes": [{"name": "t", "type": "time"}, *({"name": a, "type": "space", "unit": UNIT} for a in "zyx")],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, *map(float, voxel_size_um)]}]}
        ],
    }


def _placed(steps: list[Alignment], tracks: pl.DataFrame, sizes: pl.DataFrame, voxel) -> pl.DataFrame:
    """Every placed track row with its box centre in the first session's frame, in micrometres."""
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
        frames.append(
            rows.with_columns(
                t=pl.lit(int(k)),
                z_um=pl.Series(z * voxel[0]),
                y_um=pl.Series(yx[:, 0] * voxel[1]),
                x_um=pl.Series(yx[:, 1] * voxel[2]),
            )
        )
    return pl.concat(frames).with_columns([pl.col(c).round(4) for c in ("z_um", "y_um", "x_um")])


def export_napari(
    root: Path,
    animal: str,
    out: Path,
    sessions: list[str],
    steps: list[Alignment],
    tracks: pl.DataFrame,
    sizes: pl.DataFrame,
) -> dict[str, Path]:
    """Write ``<animal>.ome.zarr`` (t, z, y, x), ``tracks.csv``, ``points.csv`` and ``napari.json`` of one
    animal under ``out``.

    Parameters
    ----------
    root : Path
        The data root (``volumes/<animal>/<session>.ome.zarr``).
    animal : str
    out : Path
        Folder to write.
    sessions : list of str
        Session keys in acquisition order; ``steps[k]`` aligns ``sessions[k]`` to ``sessions[k + 1]``.
    steps : list of Alignment
    tracks : polars.DataFrame
        The store's ``tracks`` rows of the animal (``session, session_index, track_id, spine_id, status,
        xmin .. ymax, first_layer, last_layer``, in pixels and layers of their session).
    sizes : polars.DataFrame
        ``session, spine_id, size`` of its spines.

    Returns
    -------
    dict
        ``{"volume", "tracks", "points", "sidecar"}`` -> Path.

    Notes
    -----
    Every session is resampled into the first session's frame and grid (its
    voxel size); a point at voxel index ``i`` of that grid is written at
    ``i * voxel_size_um``, which is where napari draws voxel ``i`` of an image
    with that scale, so tracks, points and volume overlay.
    """
    root, out = Path(root), Path(out)
    if not len(tracks):
        raise InputError(root / "features.duckdb", f"no tracks of animal {animal!r} in the feature store")
    out.mkdir(parents=True, exist_ok=True)
    paths = {s: root / "volumes" / animal / f"{s}.ome.zarr" for s in sessions}
    first, voxel, _ = read_volume_zarr(paths[sessions[0]])
    target = out / f"{animal}.ome.zarr"
    with atomic_directory(target) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        series = group.create_array(
            "0",
            shape=(len(sessions), *first.shape),
            dtype=first.dtype,
            chunks=(1, 1, *(min(256, s) for s in first.shape[1:])),
            dimension_names=("t", "z", "y", "x"),
        )
        for k, session in enumerate(sessions):
            volume = first if k == 0 else np.asarray(read_volume_zarr(paths[session])[0])
            series[k] = registered_volume(np.asarray(volume), steps, k, layers=first.shape[0])
        group.attrs.update(
            {
                "ome": {"version": NGFF_VERSION, "multiscales": [time_series_metadata(target.name, voxel)]},
                "synapflow": {"animal": animal, "sessions": sessions, "registered_to": sessions[0]},
            }
        )
    points = _placed(steps, tracks, sizes, voxel).select(POINT_COLUMNS)
    points.write_csv(out / "points.csv")
    in_view = points.filter(pl.col("status").is_in(["present", "new"]))
    in_view.select(TRACK_COLUMNS).sort("track_id", "t").write_csv(out / "tracks.csv")
    sidecar = {
        "animal": animal,
        "units": UNIT,
        "image": target.name,
        "axes": ["t", "z", "y", "x"],
        "scale": [1.0, *map(float, voxel)],
        "t": {str(k): s for k, s in enumerate(sessions)},
        "registered_to": sessions[0],
        "tracks": {"file": "tracks.csv", "columns": TRACK_COLUMNS, "layer_scale": [1.0, 1.0, 1.0, 1.0]},
        "points": {"file": "points.csv", "columns": POINT_COLUMNS},
    }
    (out / "napari.json").write_text(json.dumps(sidecar, indent=1) + "\n")
    return {
        "volume": target,
        "tracks": out / "tracks.csv",
        "points": out / "points.csv",
        "sidecar": out / "napari.json",
    }
