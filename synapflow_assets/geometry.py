"""Axis-aligned box geometry: the one place for box columns, IoU, GIoU, NMS and centres.

Boxes are ``(xmin, ymin, xmax, ymax)`` in pixels (continuous coordinates:
a box's width is ``xmax - xmin``, no ``+ 1`` pixel convention). Everything is
vectorised with numpy broadcasting; only :func:`nms`, which is greedy by
nature, loops (once per kept box, never per pair). numpy and polars only.

Public API
----------
BOX_COLUMNS
    Names of the four box columns of every box table.
BOX_SCHEMA
    polars schema of a detector's box table (boxes, ``score``, ``type``).
iou, box_iou
    IoU of paired boxes (broadcast) and of every pair of two sets.
giou, pairwise_giou
    Generalised IoU of paired boxes (broadcast) and of every pair.
nms
    Greedy class-agnostic non-maximum suppression.
centres, centre_distance, paired_centre_distance
    Box centres, and distances between them (every pair, or paired rows).
paired_box_cover
    :func:`box_cover` of paired rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
"""Box columns of every box table, in array order."""

BOX_SCHEMA = {
    "xmin": pl.Float64,
    "ymin": pl.Float64,
    "xmax": pl.Float64,
    "ymax": pl.Float64,
    "score": pl.Float64,
    "type": pl.String,
}
"""Schema of the box table a detector returns for one layer (model and LoG baseline)."""


def _boxes(boxes: ArrayLike) -> np.ndarray:
    """``boxes`` as a float64 array of shape (n, 4)."""
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Intersection over union of paired boxes, broadcast over leading axes.

    Parameters
    ----------
    a, b : array_like, shape (..., 4)
        Boxes as ``xmin, ymin, xmax, ymax``; the leading shapes broadcast.

    Returns
    -------
    numpy.ndarray of float64, shape (...)
        IoU of each pair, in [0, 1]. Boxes with ``xmax < xmin`` (or
        ``ymax < ymin``) count as zero-area; a pair whose union has no area
        (or is NaN) scores 0, never NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    width = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(width, 0.0, None) * np.clip(height, 0.0, None)
    area_a = np.clip(a[..., 2] - a[..., 0], 0.0, None) * np.clip(a[..., 3] - a[..., 1], 0.0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0.0, None) * np.clip(b[..., 3] - b[..., 1], 0.0, None)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Pairwise intersection over union of two sets of boxes.

    Parameters
    ----------
    a : array_like, shape (n, 4)
    b : array_like, shape (m, 4)
        Boxes as ``xmin, ymin, xmax, ymax`` (any shape that reshapes to
        ``(-1, 4)``, e.g. one box of shape (4,)).

    Returns
    -------
    numpy.ndarray of float64, shape (n, m)
        IoU of every pair (see :func:`iou` for degenerate boxes).
    """
    a, b = _boxes(a), _boxes(b)
    return iou(a[:, None, :], b[None, :, :])


def box_cover(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Pairwise share of the smaller box that two boxes have in common (intersection over the smaller area).

    Parameters
    ----------
    a : array_like, shape (n, 4)
    b : array_like, shape (m, 4)

    Returns
    -------
    numpy.ndarray of float64, shape (n, m)
        In [0, 1]; 1 when one box lies inside the other (zero-area boxes cover nothing).
    """
    a, b = _boxes(a), _boxes(b)
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return np.divide(width * height, smaller, out=np.zeros_like(smaller), where=smaller > 0)


def giou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Generalised IoU of paired boxes, broadcast over leading axes.

    ``GIoU = IoU - (hull - union) / hull`` with ``hull`` the area of the
    smallest box enclosing both: in [-1, 1], negative for disjoint boxes. It
    is a ratio of areas, so it is the same in pixels and in coordinates
    normalised by image width and height (square or not).

    Parameters
    ----------
    a, b : array_like, shape (..., 4)
        Boxes as ``xmin, ymin, xmax, ymax``; the leading shapes broadcast.

    Returns
    -------
    numpy.ndarray of float64, shape (...)
        Unlike :func:`iou`, areas are not clipped and nothing is guarded:
        boxes must have positive area (a pair of zero-area boxes gives NaN).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_w * inter_h
    union = area_a + area_b - inter
    hull = (np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 0], b[..., 0])) * (
        np.maximum(a[..., 3], b[..., 3]) - np.minimum(a[..., 1], b[..., 1])
    )
    return inter / union - (hull - union) / hull


def pairwise_giou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Generalised IoU of every box in ``a`` with every box in ``b``.

    Parameters
    ----------
    a : array_like, shape (n, 4)
    b : array_like, shape (m, 4)

    Returns
    -------
    numpy.ndarray of float64, shape (n, m)
        In [-1, 1] (see :func:`giou`).
    """
    return giou(np.asarray(a)[:, None, :], np.asarray(b)[None, :, :])


def nms(boxes: ArrayLike, scores: ArrayLike, *, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy class-agnostic non-maximum suppression.

    Boxes are visited by decreasing score (ties: lower index first); a box is
    kept unless a kept box overlaps it with IoU (:func:`iou`) strictly
    greater than ``iou_threshold``. Memory is O(n): each kept box is compared
    with the remaining boxes in one vectorised step.

    Parameters
    ----------
    boxes : array_like, shape (n, 4)
        Boxes as ``xmin, ymin, xmax, ymax``.
    scores : array_like, shape (n,)
    iou_threshold : float, default 0.5

    Returns
    -------
    numpy.ndarray of int64
        Indices of the kept boxes, by decreasing score.
    """
    boxes = _boxes(boxes)
    order = np.argsort(-np.asarray(scores), kind="stable").astype(np.int64)
    ranked = boxes[order]
    alive = np.ones(len(order), bool)
    for i in range(len(order)):
        if not alive[i]:
            continue
        rest = i + 1 + np.flatnonzero(alive[i + 1 :])
        if not len(rest):
            break
        alive[rest[iou(ranked[i], ranked[rest]) > iou_threshold]] = False
    return order[alive]


def centres(boxes: ArrayLike) -> np.ndarray:
    """(x, y) centre of each box.

    Parameters
    ----------
    boxes : array_like, shape (n, 4)

    Returns
    -------
    numpy.ndarray of float64, shape (n, 2)
    """
    boxes = _boxes(boxes)
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def centre_distance(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Distance between the centres of every pair of boxes.

    Parameters
    ----------
    a : array_like, shape (n, 4)
    b : array_like, shape (m, 4)

    Returns
    -------
    numpy.ndarray of float64, shape (n, m)
        Euclidean distances, computed as ``sqrt(dx**2 + dy**2)``
        (``numpy.linalg.norm``).
    """
    return np.linalg.norm(centres(a)[:, None, :] - centres(b)[None, :, :], axis=-1)


def paired_centre_distance(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Distance between the centres of paired boxes ``a[k]`` and ``b[k]``.

    Parameters
    ----------
    a, b : array_like, shape (n, 4)

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        Euclidean distances, computed with ``numpy.hypot`` (which can differ
        from :func:`centre_distance` in the last bit; both are kept as their
        callers always computed them).
    """
    ca, cb = centres(a), centres(b)
    if len(ca) != len(cb):
        raise ValueError(f"paired boxes need equal counts, got {len(ca)} and {len(cb)}")
    return np.hypot(ca[:, 0] - cb[:, 0], ca[:, 1] - cb[:, 1])


def paired_box_cover(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """:func:`box_cover` of paired boxes ``a[k]`` and ``b[k]`` (the same arithmetic, so the same values as the
    matrix's at those places).

    Parameters
    ----------
    a, b : array_like, shape (n, 4)

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
    """
    a, b = _boxes(a), _boxes(b)
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    smaller = np.minimum(area_a, area_b)
    return np.divide(width * height, smaller, out=np.zeros_like(smaller), where=smaller > 0)
