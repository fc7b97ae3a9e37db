"""Time tracking: the cost of linking the 3D spines of one session to those of a later one."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from ..geometry import centre_distance, centres, giou, pairwise_giou
from .candidate_pairs import can_use_tree, pairs_within_distance

#: Up to this many (earlier, later) pairs the costs are a dense matrix; above, only pairs within the gate.
_DENSE_PAIRS = 1_000_000


@dataclass(frozen=True)
class TimeLinkParams:
    """Parameters of linking spines across sessions (defaults: the SynapFlow method's cost, a stricter
    acceptance and a distance gate).

    Attributes
    ----------
    giou_weight, z_weight : float
        Cost = ``giou_weight * (-GIoU) + z_weight * z_cost`` of the projected
        median box and z-range (method: 1.5 and 0.3).
    max_cost : float
        A pair is linked when its cost is at most this (method: 0.5, which
        links boxes that do not overlap: GIoU down to -0.33). 0 links only
        boxes that overlap once aligned: from the simulator's true spines in
        dense fields (3 animals x 6 sessions) the mean errors of formation,
        elimination and survival fall from 0.013 / 0.017 / 0.033 to
        0.010 / 0.012 / 0.022, since a new spine next to an eliminated one is
        no longer taken for it.
    max_centre_distance_um : float
        Projected centres farther apart are never linked (in um, so the gate
        means the same at any pixel size; 1.8 um is the former 15 px at
        0.12 um/px).
    max_centre_distance_box : float
        Nor are centres farther apart than this fraction of the side
        (square root of the area) of the larger of the two boxes: where a box
        lands depends on its size (a dim, large box moves more), so the gate
        scales with it. On the MIP stand-in the same spine's centres lay
        within 0.31 of the larger box (true boxes) and 0.28 (the detector's),
        a spine formed next to an eliminated one at 0.35-0.8. At 0.45 the
        survival / formation / elimination error over days fell from
        0.101 / 0.040 / 0.047 to 0.092 / 0.035 / 0.042 (seed 12; tracking
        alone on the true boxes 0.082 / 0.023 / 0.025 to 0.058 / 0.020 /
        0.018), raw-like dense z-stacks from 0.053 / 0.026 / 0.031 to
        0.049 / 0.025 / 0.031, and no run hours apart changed; at 0.4 one
        spine hours apart was split in two (``bench/real_timelapse.py``,
        ``bench/dynamics.py``). In raw-like z-stacks 3 of 1,796 same-spine
        links of the true boxes lay above 0.45 (up to 0.58): the sparse
        field's error from them rose from 0.010 / 0.006 / 0.004 to
        0.013 / 0.008 / 0.003 while the dense one's fell from
        0.019 / 0.010 / 0.012 to 0.015 / 0.008 / 0.009.
    max_gap : int
        Sessions a spine may be missed and still be re-linked (0: method).
    border_px : float
        A spine whose projected centre falls this close to or beyond the edge
        of the later session, or whose z-range falls outside its layers, is
        out of view there, not eliminated.
    """

    giou_weight: float = 1.5
    z_weight: float = 0.3
    max_cost: float = 0.0
    max_centre_distance_um: float = 1.8
    max_centre_distance_box: float = 0.45
    max_gap: int = 1
    border_px: float = 2.0


def z_range_cost(first_a: ArrayLike, last_a: ArrayLike, first_b: ArrayLike, last_b: ArrayLike) -> np.ndarray:
    """The method's z cost for all pairs: ``1 - overlap / min(length)`` if the ranges overlap, else the gap in
    layers."""
    first_a, last_a = np.asarray(first_a, float)[:, None], np.asarray(last_a, float)[:, None]
    first_b, last_b = np.asarray(first_b, float)[None, :], np.asarray(last_b, float)[None, :]
    overlap = np.minimum(last_a, last_b) - np.maximum(first_a, first_b) + 1
    shortest = np.minimum(last_a - first_a, last_b - first_b) + 1
    return np.where(overlap > 0, 1 - overlap / shortest, np.maximum(first_a, first_b) - np.minimum(last_a, last_b))


def paired_z_range_cost(first_a: ArrayLike, last_a: ArrayLike, first_b: ArrayLike, last_b: ArrayLike) -> np.ndarray:
    """:func:`z_range_cost` of paired ranges ``a[k]`` and ``b[k]`` (the same arithmetic, so the same values)."""
    first_a, last_a = np.asarray(first_a, float), np.asarray(last_a, float)
    first_b, last_b = np.asarray(first_b, float), np.asarray(last_b, float)
    overlap = np.minimum(last_a, last_b) - np.maximum(first_a, first_b) + 1
    shortest = np.minimum(last_a - first_a, last_b - first_b) + 1
    return np.where(overlap > 0, 1 - overlap / shortest, np.maximum(first_a, first_b) - np.minimum(last_a, last_b))


def project_spines(
    spines: pl.DataFrame,
    map_points: Callable[[np.ndarray], np.ndarray],
    z_shift: int,
    shape_zyx: Sequence[int],
    border_px: float,
) -> pl.DataFrame:
    """Move spines of an earlier session into a later one.

    Parameters
    ----------
    spines : polars.DataFrame
        ``spine_id, first_layer, last_layer, xmin, ymin, xmax, ymax``.
    map_points : callable
        (n, 2) (y, x) points of the earlier session -> the later session.
    z_shift : int
    shape_zyx : shape of the later session
    border_px : float

    Returns
    -------
    polars.DataFrame
        Same columns, moved (boxes keep their size), and ``in_view`` (bool).
    """
    nz, ny, nx = shape_zyx
    centre = spines.select(((pl.col("ymin") + pl.col("ymax")) / 2), ((pl.col("xmin") + pl.col("xmax")) / 2)).to_numpy()
    moved = map_points(centre) - centre if len(spines) else np.zeros((0, 2))
    y, x = centre[:, 0] + moved[:, 0], centre[:, 1] + moved[:, 1]
    first = spines["first_layer"].to_numpy() + z_shift
    last = spines["last_layer"].to_numpy() + z_shift
    in_view = (
        (y >= border_px)
        & (y <= ny - 1 - border_px)
        & (x >= border_px)
        & (x <= nx - 1 - border_px)
        & (last >= 0)
        & (first <= nz - 1)
    )
    return spines.with_columns(
        ymin=pl.col("ymin") + moved[:, 0],
        ymax=pl.col("ymax") + moved[:, 0],
        xmin=pl.col("xmin") + moved[:, 1],
        xmax=pl.col("xmax") + moved[:, 1],
        first_layer=pl.Series(first),
        last_layer=pl.Series(last),
        in_view=pl.Series(in_view, dtype=pl.Boolean),
    )


#: Pixel size assumed for spine tables that carry no micrometre positions (the simulator's default).
DEFAULT_PIXEL_UM = 0.12


def pixel_size_um(spines: pl.DataFrame) -> float:
    """x pixel size of a session's spine table, from its ``x_um`` over ``x_px`` (``DEFAULT_PIXEL_UM``
    when it has no positions in um)."""
    if not {"x_um", "x_px"} <= set(spines.columns):
        return DEFAULT_PIXEL_UM
    ratio = spines.filter(pl.col("x_px") > 0).select(pl.col("x_um") / pl.col("x_px"))
    value = ratio.to_series().median() if len(ratio) else None
    return float(value) if isinstance(value, float) and value > 0 else DEFAULT_PIXEL_UM


def box_side(boxes: np.ndarray) -> np.ndarray:
    """Side of the square of each box's area (``xmin, ymin, xmax, ymax`` rows)."""
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))


def _within_gate(
    distance_px: np.ndarray, side_a: np.ndarray, side_b: np.ndarray, pixel: float, params: TimeLinkParams
) -> np.ndarray:
    """Whether centres ``distance_px`` apart pass both gates: ``max_centre_distance_um`` and
    ``max_centre_distance_box`` of the larger box side (arrays broadcast: a matrix or paired rows)."""
    return (distance_px * pixel <= params.max_centre_distance_um) & (
        distance_px <= params.max_centre_distance_box * np.maximum(side_a, side_b)
    )


def link_costs(projected: pl.DataFrame, later: pl.DataFrame, params: TimeLinkParams) -> pl.DataFrame:
    """All acceptable links (cost <= ``max_cost``) between projected earlier spines and later spines.

    Returns
    -------
    polars.DataFrame
        ``earlier_id, later_id, cost``: a sparse cost list; out-of-view
        spines have no links (the method's cost 10).
    """
    empty = pl.DataFrame(schema={"earlier_id": pl.Int64, "later_id": pl.Int64, "cost": pl.Float64})
    candidates = projected.filter(pl.col("in_view"))
    if not len(candidates) or not len(later):
        return empty
    a = candidates.select("xmin", "ymin", "xmax", "ymax").to_numpy()
    b = later.select("xmin", "ymin", "xmax", "ymax").to_numpy()
    pixel = pixel_size_um(later)
    side_a, side_b = box_side(a), box_side(b)
    if len(a) * len(b) <= _DENSE_PAIRS or not can_use_tree(a, b) or not pixel > 0:
        cost = params.giou_weight * -pairwise_giou(a, b) + params.z_weight * z_range_cost(
            candidates["first_layer"], candidates["last_layer"], later["first_layer"], later["last_layer"]
        )
        within = _within_gate(centre_distance(a, b), side_a[:, None], side_b[None, :], pixel, params)
        i, j = np.nonzero((cost <= params.max_cost) & within)
        cost = cost[i, j]
    else:
        # the pairs within the gate, with a margin for rounding; then the dense formulas on those pairs
        radius = params.max_centre_distance_um / pixel * (1 + 1e-6) + 1e-9
        i, j = pairs_within_distance(centres(a), centres(b), radius)
        cost = params.giou_weight * -giou(a[i], b[j]) + params.z_weight * paired_z_range_cost(
            candidates["first_layer"].to_numpy()[i],
            candidates["last_layer"].to_numpy()[i],
            later["first_layer"].to_numpy()[j],
            later["last_layer"].to_numpy()[j],
        )
        distance_px = np.linalg.norm(centres(a)[i] - centres(b)[j], axis=-1)
        keep = (cost <= params.max_cost) & _within_gate(distance_px, side_a[i], side_b[j], pixel, params)
        i, j, cost = i[keep], j[keep], cost[keep]
    return (
        pl.DataFrame(
            {
                "earlier_id": candidates["spine_id"].to_numpy()[i].astype(np.int64),
                "later_id": later["spine_id"].to_numpy()[j].astype(np.int64),
                "cost": cost,
            }
        )
        if len(i)
        else empty
    )
