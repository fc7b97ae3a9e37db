"""The neck in one crop: the cheapest path from the head peak to the dendrite, kept with its length.

The path runs over the spine box grown by ``reach_px`` (the box encloses the
spine from its base to its head), 8-connected, each step costing its length
times ``1 / (floor + q)`` with ``q`` the excess over the dendrite's own
profile in units of the head's contrast, clipped to [0, 1]: it follows the
(faint) neck instead of cutting through the background to the nearest edge
point, which would shorten spines that leave the dendrite at an angle. Its end
is the junction with the dendrite; the path itself is read back from
Dijkstra's predecessor tree by pointer jumping (vectorised, a loop over the
log2 of the path's length only) and measured with Kulpa's unbiased step
lengths (:data:`.dendrite.KULPA_AXIAL`, :data:`.dendrite.KULPA_DIAGONAL`).
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import csgraph

from .dendrite import KULPA_AXIAL, KULPA_DIAGONAL
from .dendrite_lines import EIGHT
from .pixel_graph import pixel_graph

JUNCTION_REACH_PX = 3
PATH_FLOOR = 0.05


@dataclass(frozen=True)
class NeckPath:
    """Junction pixel (crop y, x), the path's pixels from the head peak to it (m, 2) and its length (px)."""

    junction: tuple[int, int]
    path_yx: np.ndarray
    length_px: float


def neck_path(
    excess: np.ndarray,
    dmask: np.ndarray,
    inner: np.ndarray,
    peak_yx: tuple[int, int],
    head_yx: np.ndarray,
    contrast: float,
    *,
    reach_px: int = JUNCTION_REACH_PX,
    floor: float = PATH_FLOOR,
) -> NeckPath:
    """Cheapest path from the head peak to the dendrite mask (see the module docstring).

    Parameters
    ----------
    excess : ndarray (h, w)
        Intensity above the dendrite's own blurred profile.
    dmask, inner : ndarray bool (h, w)
        Dendrite mask and spine box.
    peak_yx : (int, int)
        Head peak pixel.
    head_yx : ndarray (2,)
        Head centre (for the fallback).
    contrast : float
        Head peak over the background (unit of ``excess``).

    Returns
    -------
    NeckPath
        Falls back to the mask pixel nearest to the head centre, with the
        straight segment to it as the path, when no mask pixel is reachable.
    """
    _h, w = dmask.shape
    region = ndimage.binary_dilation(inner, EIGHT, iterations=reach_px)
    region[peak_yx] = True
    targets = region & dmask
    if targets.any():
        cost = np.where(dmask, 1.0 / (floor + 1.0), 1.0 / (floor + np.clip(excess / contrast, 0.0, 1.0))).ravel()
        graph, flat = pixel_graph(region, lambda p, q, dy, dx: 0.5 * (cost[p] + cost[q]) * np.hypot(dy, dx))
        src = int(np.searchsorted(flat, peak_yx[0] * w + peak_yx[1]))
        geo, pred = csgraph.dijkstra(graph, directed=False, indices=src, return_predecessors=True)
        tgt = np.flatnonzero(targets.ravel()[flat])
        if np.isfinite(geo[tgt]).any():
            end = int(tgt[int(np.argmin(geo[tgt]))])
            nodes = _tree_path(pred, end)
            yx = np.column_stack(np.divmod(flat[nodes], w))
            return NeckPath((int(yx[-1, 0]), int(yx[-1, 1])), yx, chain_length(yx))
    dy, dx = np.nonzero(dmask)
    j = int(np.argmin(np.hypot(dy - head_yx[0], dx - head_yx[1])))
    yx = np.array([peak_yx, (dy[j], dx[j])], float)
    return NeckPath((int(dy[j]), int(dx[j])), yx, float(np.hypot(*(yx[1] - yx[0]))))


def _tree_path(pred: np.ndarray, end: int) -> np.ndarray:
    """Nodes from the root of Dijkstra's predecessor tree to ``end``, by pointer jumping."""
    idx = np.arange(pred.size)
    parent = np.where(pred >= 0, pred, idx)
    jumps, depth = [parent], (parent != idx).astype(np.int64)
    while True:  # jumps[k] = the 2^k-th ancestor; depth = hops to the root
        last = jumps[-1]
        if np.array_equal(last[last], last):
            break
        depth = depth + depth[last]
        jumps.append(last[last])
    d = np.arange(int(depth[end]) + 1)
    node = np.full(d.size, end)
    for k, jump in enumerate(jumps):
        node = np.where((d >> k) & 1, jump[node], node)
    return node[::-1]


def chain_length(yx: np.ndarray) -> float:
    """Length (px) of an 8-connected pixel chain with Kulpa's step lengths (longer steps count straight)."""
    step = np.abs(np.diff(np.asarray(yx, float), axis=0))
    diagonal = (step[:, 0] > 0) & (step[:, 1] > 0) & (step.max(1) <= 1)
    axial = (step.max(1) <= 1) & ~diagonal & (step.sum(1) > 0)
    other = ~(diagonal | axial)
    return float(
        KULPA_DIAGONAL * diagonal.sum() + KULPA_AXIAL * axial.sum() + np.hypot(step[other, 0], step[other, 1]).sum()
    )
