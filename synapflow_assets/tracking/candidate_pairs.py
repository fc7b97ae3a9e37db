"""Candidate pairs of boxes for sparse matching: only the pairs that can overlap, found with a k-d tree.

The pairwise functions of :mod:`..geometry` build (n, m) matrices, which do not fit in memory for a
field of 100,000 spines. A pair of boxes can only have a positive intersection (and so a positive IoU or
cover) when their centres are closer in x and in y than half the sum of their sides; these helpers list
exactly the pairs whose intersection has a positive area, in row-major order (``i``, then ``j``), so a
caller computing its score on them gets what the dense matrix holds at those places.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..geometry import centres


def _sides(boxes: np.ndarray) -> float:
    return float(np.max(boxes[:, 2:] - boxes[:, :2])) if len(boxes) else 0.0


def _intersecting(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    width = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    height = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    return (width > 0) & (height > 0)


def can_use_tree(*boxes: np.ndarray) -> bool:
    """Whether every coordinate is finite (a k-d tree needs it; callers fall back to dense matrices)."""
    return all(bool(np.isfinite(b).all()) for b in boxes)


def overlapping_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), sorted by i then j, of the boxes ``a[i]``, ``b[j]`` whose intersection has a positive area.

    Parameters
    ----------
    a : ndarray, shape (n, 4)
    b : ndarray, shape (m, 4)
        Boxes as ``xmin, ymin, xmax, ymax`` with finite coordinates.

    Returns
    -------
    (ndarray of int64, ndarray of int64)
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    radius = (_sides(a) + _sides(b)) / 2
    if not radius > 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    found = cKDTree(centres(a)).sparse_distance_matrix(cKDTree(centres(b)), radius, p=np.inf, output_type="ndarray")
    i, j = found["i"].astype(np.int64), found["j"].astype(np.int64)
    keep = _intersecting(a[i], b[j])
    i, j = i[keep], j[keep]
    order = np.lexsort((j, i))
    return i[order], j[order]


def overlapping_pairs_within(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) with ``i < j``, sorted by i then j, of the boxes of one set whose intersection has a
    positive area (see :func:`overlapping_pairs`)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    radius = _sides(boxes)
    if len(boxes) < 2 or not radius > 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = cKDTree(centres(boxes)).query_pairs(radius, p=np.inf, output_type="ndarray").astype(np.int64)
    i, j = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    keep = _intersecting(boxes[i], boxes[j])
    i, j = i[keep], j[keep]
    order = np.lexsort((j, i))
    return i[order], j[order]


def pairs_within_distance(a_points: np.ndarray, b_points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), sorted by i then j, of the points at most ``radius`` apart (Euclidean; a superset when the
    caller re-tests the distance with its own formula, as it should at the boundary)."""
    if not len(a_points) or not len(b_points):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    found = cKDTree(a_points).sparse_distance_matrix(cKDTree(b_points), radius, output_type="ndarray")
    i, j = found["i"].astype(np.int64), found["j"].astype(np.int64)
    order = np.lexsort((j, i))
    return i[order], j[order]
