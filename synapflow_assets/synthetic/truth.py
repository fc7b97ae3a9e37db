"""Ground-truth tables of one session: per-layer boxes and per-spine records."""

import numpy as np
import polars as pl

from .params import SPINE_TYPES, SimulationParams

BOX_SCHEMA = {
    "spine_id": pl.Int64,
    "layer": pl.Int32,
    "xmin": pl.Float64,
    "ymin": pl.Float64,
    "xmax": pl.Float64,
    "ymax": pl.Float64,
    "type": pl.String,
}
SPINE_SCHEMA = {
    "spine_id": pl.Int64,
    "status": pl.String,
    "type": pl.String,
    "z": pl.Float64,
    "y": pl.Float64,
    "x": pl.Float64,
    "z_um": pl.Float64,
    "y_um": pl.Float64,
    "x_um": pl.Float64,
    "size": pl.Float64,
    "head_radius_um": pl.Float64,
    "neck_length_um": pl.Float64,
    "dendrite_id": pl.Int64,
}
BOX_MARGIN_PX = 1.5


def in_view(head_px: np.ndarray, shape) -> np.ndarray:
    """True where a head centre (n, 3) lies inside the image in z, y and x."""
    return np.all((head_px >= 0) & (head_px <= np.asarray(shape) - 1), axis=1)


def boxes_table(
    params: SimulationParams,
    spine_id,
    type_code,
    points_px: np.ndarray,
    head_px: np.ndarray,
    head_half_depth_um: np.ndarray,
) -> pl.DataFrame:
    """One box per (spine, layer) on which a spine is visible.

    Parameters
    ----------
    spine_id, type_code : ndarray (n,)
    points_px : ndarray (n, k, 3)
        The spine's neck and head points in session pixels.
    head_px : ndarray (n, 3)
        Head centres in session pixels.
    head_half_depth_um : ndarray (n,)
        Half extent of the head along z.

    Notes
    -----
    A spine is visible on the layers within ``half depth + psf_sigma_layers``
    of its head centre; every box encloses the whole spine (neck and head) in
    x/y plus ``BOX_MARGIN_PX`` of blur, clipped to the image.
    """
    nz, ny, nx = params.shape
    half = head_half_depth_um / params.voxel_size_um[0] + params.psf_sigma_layers
    lo = np.clip(np.ceil(head_px[:, 0] - half), 0, nz - 1).astype(np.int64)
    hi = np.clip(np.floor(head_px[:, 0] + half), 0, nz - 1).astype(np.int64)
    count = np.maximum(hi - lo + 1, 0)
    rows = np.repeat(np.arange(len(spine_id)), count)
    layer = lo[rows] + np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)
    ymin = np.clip(points_px[..., 1].min(1) - BOX_MARGIN_PX, 0, ny - 1)
    ymax = np.clip(points_px[..., 1].max(1) + BOX_MARGIN_PX, 0, ny - 1)
    xmin = np.clip(points_px[..., 2].min(1) - BOX_MARGIN_PX, 0, nx - 1)
    xmax = np.clip(points_px[..., 2].max(1) + BOX_MARGIN_PX, 0, nx - 1)
    return pl.DataFrame(
        {
            "spine_id": np.asarray(spine_id)[rows],
            "layer": layer,
            "xmin": xmin[rows],
            "ymin": ymin[rows],
            "xmax": xmax[rows],
            "ymax": ymax[rows],
            "type": np.array(SPINE_TYPES, dtype=object)[type_code[rows]],
        },
        schema=BOX_SCHEMA,
    )


def spines_table(
    params: SimulationParams, spine_id, status, type_code, head_px, size, head_radius_um, neck_length_um, dendrite_id
) -> pl.DataFrame:
    """One row per spine with a status in this session, sorted by id."""
    head_px = np.asarray(head_px, float).reshape(-1, 3)
    um = head_px * np.asarray(params.voxel_size_um)
    df = pl.DataFrame(
        {
            "spine_id": spine_id,
            "status": np.asarray(status, dtype=object),
            "type": np.array(SPINE_TYPES, dtype=object)[np.asarray(type_code, int)],
            "z": head_px[:, 0],
            "y": head_px[:, 1],
            "x": head_px[:, 2],
            "z_um": um[:, 0],
            "y_um": um[:, 1],
            "x_um": um[:, 2],
            "size": size,
            "head_radius_um": head_radius_um,
            "neck_length_um": neck_length_um,
            "dendrite_id": dendrite_id,
        },
        schema=SPINE_SCHEMA,
    )
    return df.sort("spine_id")


GEOMETRY_SCHEMA = {
    "spine_id": pl.Int64,
    "head_z": pl.Float64,
    "head_y": pl.Float64,
    "head_x": pl.Float64,
    "base_z": pl.Float64,
    "base_y": pl.Float64,
    "base_x": pl.Float64,
    "head_to_dendrite_px": pl.Float64,
    "head_to_dendrite_um": pl.Float64,
}


def geometry_table(params: SimulationParams, spine_id, head_px, base_px) -> pl.DataFrame:
    """Ground-truth spine geometry in session pixels, one row per living spine, sorted by id.

    Parameters
    ----------
    params : SimulationParams
    spine_id : ndarray (n,)
    head_px, base_px : ndarray (n, 3)
        Head centre and junction with the dendrite (the spine's attachment
        point on the dendrite surface), session pixels (z, y, x).

    Returns
    -------
    polars.DataFrame
        ``spine_id``, ``head_z/y/x``, ``base_z/y/x`` (px), ``head_to_dendrite_px``
        (in-plane x/y distance head centre -> junction, pixels: what a per-layer
        measurement sees) and ``head_to_dendrite_um`` (3D distance in um).
    """
    head_px = np.asarray(head_px, float).reshape(-1, 3)
    base_px = np.asarray(base_px, float).reshape(-1, 3)
    d = head_px - base_px
    return pl.DataFrame(
        {
            "spine_id": spine_id,
            "head_z": head_px[:, 0],
            "head_y": head_px[:, 1],
            "head_x": head_px[:, 2],
            "base_z": base_px[:, 0],
            "base_y": base_px[:, 1],
            "base_x": base_px[:, 2],
            "head_to_dendrite_px": np.hypot(d[:, 1], d[:, 2]),
            "head_to_dendrite_um": np.linalg.norm(d * np.asarray(params.voxel_size_um), axis=1),
        },
        schema=GEOMETRY_SCHEMA,
    ).sort("spine_id")


def dendrite_length_in_view(params: SimulationParams, centres_px: list[np.ndarray]) -> float:
    """Length (um, x/y plane) of the dendrite centre lines inside the image in x/y.

    Parameters
    ----------
    centres_px : list of ndarray (m, 3)
        Each dendrite's centre-line samples in session pixels (z, y, x).
    """
    vy, vx = params.voxel_size_um[1:]
    total = 0.0
    for c in centres_px:
        inside = np.all((c[:, 1:] >= 0) & (c[:, 1:] <= np.asarray(params.shape[1:]) - 1), axis=1)
        seg = np.hypot(np.diff(c[:, 1]) * vy, np.diff(c[:, 2]) * vx)
        total += float(seg[inside[1:] & inside[:-1]].sum())
    return total
