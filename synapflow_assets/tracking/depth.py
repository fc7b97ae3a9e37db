"""Depth tracking: link the 2D boxes of consecutive layers of one stack into 3D spines."""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import SynapFlowError
from ..geometry import centre_distance, centres, giou, pairwise_giou

FORBIDDEN = 1e6
_DENSE_PAIRS = 40_000


def pairs_within(a: np.ndarray, b: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) of the pairs whose box centres are at most ``max_distance`` apart (k-d tree).

    Parameters
    ----------
    a : ndarray, shape (n, 4)
    b : ndarray, shape (m, 4)
    max_distance : float

    Returns
    -------
    (ndarray of int64, ndarray of int64)
    """
    found = cKDTree(centres(a)).sparse_distance_matrix(cKDTree(centres(b)), max_distance, output_type="ndarray")
    return found["i"].astype(np.int64), found["j"].astype(np.int64)


class BoxError(SynapFlowError, ValueError):
    """Boxes that cannot be linked (NaN, degenerate or outside the image)."""


@dataclass(frozen=True)
class DepthLinkParams:
    """Parameters of depth linking; :data:`METHOD_PARAMS` reproduces the SynapFlow method.

    Our defaults differ from the method where the expert annotations say so:
    experts continue a spine across up to 4 missing layers, and detector
    noise is reduced by filling short gaps and smoothing boxes through depth.

    Attributes
    ----------
    max_cost : float
        A pair is linked when its cost ``-GIoU`` is below this (the method's
        0.0 means GIoU > 0).
    inactive_wait : int
        Layers a spine may be missing and still be continued (the method: 1).
    max_centre_distance_px : float or None
        Pairs whose box centres are farther apart are never linked (the
        method: no limit).
    min_layers : int
        3D spines seen on fewer layers are dropped (id -1). 1 keeps everything
        (the method; experts do annotate one-layer spines); 2 removes one-layer
        false positives.
    fill_gaps : int
        Add interpolated boxes on bridged gaps of at most this many layers
        (0: none). Longer bridged gaps keep the id but get no box.
    smooth_layers : int
        Half-width in layers of the smoothing of each spine's boxes through
        depth (0: off); applied by :func:`box_tables.link_table`.
    """

    max_cost: float = 0.0
    inactive_wait: int = 4
    max_centre_distance_px: float | None = 20.0
    min_layers: int = 1
    fill_gaps: int = 2
    smooth_layers: int = 2


METHOD_PARAMS = DepthLinkParams(
    inactive_wait=1, max_centre_distance_px=None, min_layers=1, fill_gaps=0, smooth_layers=0
)


def check_boxes(layers: np.ndarray, boxes: np.ndarray, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Validate boxes before linking.

    Parameters
    ----------
    layers : ndarray of int, shape (n,)
    boxes : ndarray, shape (n, 4)
        (xmin, ymin, xmax, ymax) in pixels.
    image_size : (height, width), optional
        When given, boxes entirely outside the image are an error. Linking
        itself does not need the size (GIoU is scale-invariant), and boxes
        partly outside are kept as they are.

    Returns
    -------
    ndarray of float64, shape (n, 4)

    Raises
    ------
    BoxError
        On NaN or infinite coordinates, negative layers, boxes with zero or
        negative width or height, or (with ``image_size``) boxes entirely
        outside the image; the message gives the first offending rows (0-based).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    problems = {
        "NaN or infinite coordinates": ~np.isfinite(boxes).all(axis=1),
        "negative layer index": np.asarray(layers) < 0,
        "zero or negative width or height": (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]),
    }
    if image_size is not None:
        height, width = image_size
        problems[f"entirely outside the {width:g}x{height:g} image"] = (
            (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | (boxes[:, 0] >= width) | (boxes[:, 1] >= height)
        )
    for problem, bad in problems.items():
        if bad.any():
            rows = np.flatnonzero(bad)
            more = ", ..." if len(rows) > 5 else ""
            raise BoxError(f"{len(rows)} boxes with {problem} (rows {', '.join(map(str, rows[:5]))}{more})")
    return boxes


def _dense_link_cost(track_boxes: np.ndarray, boxes: np.ndarray, params: DepthLinkParams) -> np.ndarray:
    cost = -pairwise_giou(track_boxes, boxes)
    if params.max_centre_distance_px is not None:
        cost[centre_distance(track_boxes, boxes) > params.max_centre_distance_px] = FORBIDDEN
    cost[cost >= params.max_cost] = FORBIDDEN
    return cost


def _is_dense(n_tracks: int, n_boxes: int, params: DepthLinkParams) -> bool:
    """Whether a layer is linked on the full cost matrix: without a distance gate, or when it is small."""
    return params.max_centre_distance_px is None or n_tracks * n_boxes <= _DENSE_PAIRS


def assign(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal assignment restricted to the rows and columns that have an allowed pair."""
    rows = np.flatnonzero((cost < max_cost).any(axis=1))
    cols = np.flatnonzero((cost < max_cost).any(axis=0))
    if not len(rows):
        return rows, cols
    r, c = linear_sum_assignment(cost[np.ix_(rows, cols)])
    keep = cost[rows[r], cols[c]] < max_cost
    return rows[r[keep]], cols[c[keep]]


def sparse_assign(
    rows: np.ndarray, cols: np.ndarray, cost: np.ndarray, n_rows: int, n_cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`assign` on a sparse list of allowed pairs (every other pair forbidden), without the dense matrix.

    The dense assignment takes as many allowed pairs as possible, then the cheapest such set (a forbidden
    pair costs more than any allowed pairs can save). Both are sums over the connected components of the
    graph of allowed pairs, so each component is assigned on its own: a pair alone in its component (the
    usual case) is taken as it is, a star (one row or column with all the others) by its cheapest pair, the
    others by :func:`assign` on the component's small matrix. The result is the dense one's whenever the
    optimum is unique.

    Parameters
    ----------
    rows, cols : ndarray of int, shape (k,)
        Allowed pairs (each at most once).
    cost : ndarray, shape (k,)
        Their costs.
    n_rows, n_cols : int

    Returns
    -------
    (ndarray of int64, ndarray of int64)
        Matched rows (ascending) and their columns.
    """
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if not len(rows):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    row_degree = np.bincount(rows, minlength=n_rows)
    col_degree = np.bincount(cols, minlength=n_cols)
    alone = (row_degree[rows] == 1) & (col_degree[cols] == 1)
    out_rows, out_cols = [rows[alone]], [cols[alone]]
    # stars (one row whose columns have no other row, or the reverse): one pair, the cheapest (ties: lowest index)
    widest_col = np.zeros(n_rows, np.int64)
    np.maximum.at(widest_col, rows, col_degree[cols])
    widest_row = np.zeros(n_cols, np.int64)
    np.maximum.at(widest_row, cols, row_degree[rows])
    for centre, other, star in (
        (rows, cols, ~alone & (widest_col[rows] == 1)),
        (cols, rows, ~alone & (widest_row[cols] == 1)),
    ):
        edge = np.flatnonzero(star)
        edge = edge[np.lexsort((other[edge], cost[edge], centre[edge]))]
        edge = edge[np.unique(centre[edge], return_index=True)[1]]
        out_rows.append(rows[edge])
        out_cols.append(cols[edge])
    rest = np.flatnonzero(~alone & (widest_col[rows] > 1) & (widest_row[cols] > 1))
    if len(rest):
        r, c, v = rows[rest], cols[rest], cost[rest]
        graph = coo_matrix((np.ones(len(r)), (r, n_rows + c)), shape=(n_rows + n_cols, n_rows + n_cols))
        _, label = connected_components(graph, directed=False)
        order = np.argsort(label[r], kind="stable")
        r, c, v = r[order], c[order], v[order]
        _, starts = np.unique(label[r], return_index=True)
        for part in np.split(np.arange(len(r)), starts[1:]):
            part_rows, i = np.unique(r[part], return_inverse=True)
            part_cols, j = np.unique(c[part], return_inverse=True)
            matrix = np.full((len(part_rows), len(part_cols)), FORBIDDEN)
            matrix[i, j] = v[part]
            a, b = assign(matrix, FORBIDDEN)
            out_rows.append(part_rows[a])
            out_cols.append(part_cols[b])
    matched_rows, matched_cols = np.concatenate(out_rows), np.concatenate(out_cols)
    order = np.argsort(matched_rows, kind="stable")
    return matched_rows[order], matched_cols[order]


def _link_sparse(track_boxes: np.ndarray, boxes: np.ndarray, params: DepthLinkParams) -> tuple[np.ndarray, np.ndarray]:
    """:func:`assign` of :func:`_dense_link_cost` from the pairs within the distance gate (k-d tree)."""
    assert params.max_centre_distance_px is not None
    i, j = pairs_within(track_boxes, boxes, params.max_centre_distance_px)
    cost = -giou(track_boxes[i], boxes[j])
    allowed = cost < params.max_cost
    return sparse_assign(i[allowed], j[allowed], cost[allowed], len(track_boxes), len(boxes))


def link_layers(
    layers: np.ndarray,
    boxes: np.ndarray,
    params: DepthLinkParams = DepthLinkParams(),
    image_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Assign a 3D spine id to every 2D box of one stack.

    Layer by layer, the boxes are matched to the spines still active (seen on
    one of the last ``inactive_wait + 1`` layers) by optimal assignment on the
    cost ``-GIoU``; unmatched boxes start new spines.

    Parameters
    ----------
    layers : ndarray of int, shape (n,)
        Layer index of each box; layers without boxes are allowed.
    boxes : ndarray, shape (n, 4)
        (xmin, ymin, xmax, ymax) in pixels.
    params : DepthLinkParams
    image_size : (height, width), optional
        Checks that no box lies entirely outside the image.

    Returns
    -------
    ids : ndarray of int64, shape (n,)
        3D spine id per box (0, 1, ... in order of first appearance), or -1
        for boxes of spines shorter than ``params.min_layers``.
    gaps : ndarray, shape (g, 6)
        Interpolated boxes on bridged layers as (id, layer, xmin, ymin, xmax,
        ymax); empty unless ``params.fill_gaps``.
    """
    layers = np.asarray(layers, dtype=np.int64).reshape(-1)
    boxes = check_boxes(layers, boxes, image_size)
    n = len(layers)
    track_of = np.full(n, -1, dtype=np.int64)
    last_box = np.empty((n, 4))
    last_layer = np.empty(n, dtype=np.int64)
    n_tracks = 0
    gaps = []
    order = np.argsort(layers, kind="stable")
    present, starts = np.unique(layers[order], return_index=True)
    for layer, rows in zip(present, np.split(order, starts[1:]), strict=False):
        active = np.flatnonzero(layer - last_layer[:n_tracks] - 1 <= params.inactive_wait)
        is_new = np.ones(len(rows), dtype=bool)
        if len(active):
            if _is_dense(len(active), len(rows), params):
                t_idx, b_idx = assign(_dense_link_cost(last_box[active], boxes[rows], params), params.max_cost)
            else:
                t_idx, b_idx = _link_sparse(last_box[active], boxes[rows], params)
            t_idx = active[t_idx]
            is_new[b_idx] = False
            b_rows = rows[b_idx]
            gap = layer - last_layer[t_idx] - 1
            fill = (gap > 0) & (gap <= params.fill_gaps)
            if fill.any():
                gaps.append(
                    _gap_boxes(t_idx[fill], last_layer[t_idx[fill]], last_box[t_idx[fill]], boxes[b_rows[fill]], layer)
                )
            track_of[b_rows] = t_idx
            last_box[t_idx] = boxes[b_rows]
            last_layer[t_idx] = layer
        new_rows = rows[is_new]
        created = n_tracks + np.arange(len(new_rows))
        track_of[new_rows] = created
        last_box[created] = boxes[new_rows]
        last_layer[created] = layer
        n_tracks += len(new_rows)
    gap_rows = np.concatenate(gaps) if gaps else np.zeros((0, 6))
    return _keep_long_tracks(track_of, gap_rows, params)


def _gap_boxes(
    tracks: np.ndarray, before: np.ndarray, before_box: np.ndarray, after_box: np.ndarray, layer: int
) -> np.ndarray:
    """Boxes interpolated linearly on the layers between ``before`` and ``layer`` of each linked track, as rows
    ``(track, layer, xmin, ymin, xmax, ymax)`` (by track, then layer)."""
    length = layer - before - 1
    which = np.repeat(np.arange(len(tracks)), length)
    step = np.arange(len(which)) - np.repeat(np.cumsum(length) - length, length) + 1
    w = (step / (layer - before[which]))[:, None]
    box = (1 - w) * before_box[which] + w * after_box[which]
    return np.column_stack([tracks[which], before[which] + step, box]).astype(np.float64)


def _keep_long_tracks(track_of: np.ndarray, gaps: np.ndarray, params: DepthLinkParams) -> tuple[np.ndarray, np.ndarray]:
    n_tracks = int(track_of.max()) + 1 if len(track_of) else 0
    counts = np.bincount(track_of, minlength=n_tracks) + np.bincount(gaps[:, 0].astype(np.int64), minlength=n_tracks)
    kept = counts >= params.min_layers
    new_id = np.full(n_tracks, -1, dtype=np.int64)
    order = np.flatnonzero(kept)
    new_id[order] = np.arange(len(order))
    ids = new_id[track_of] if len(track_of) else track_of
    if not params.fill_gaps or not len(gaps):
        return ids, np.zeros((0, 6))
    gaps[:, 0] = new_id[gaps[:, 0].astype(np.int64)]
    return ids, gaps[gaps[:, 0] >= 0]
