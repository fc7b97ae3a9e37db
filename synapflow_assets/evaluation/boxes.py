"""Axis-aligned box geometry."""

from __future__ import annotations

import numpy as np

BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")


def box_iou(a, b) -> np.ndarray:
    """Pairwise intersection over union of two sets of axis-aligned boxes.

    Parameters
    ----------
    a : array_like, shape (n, 4)
        Boxes as ``xmin, ymin, xmax, ymax``.
    b : array_like, shape (m, 4)
        Boxes as ``xmin, ymin, xmax, ymax``.

    Returns
    -------
    numpy.ndarray, shape (n, m)
        IoU of every pair, computed by broadcasting (no Python loop). Pairs
        whose union has zero area (degenerate boxes) score 0, never NaN.
        Boxes with ``xmax < xmin`` (or ``ymax < ymin``) count as zero-area.
    """
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0.0, None) * np.clip(height, 0.0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0.0, None) * np.clip(a[:, 3] - a[:, 1], 0.0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0.0, None) * np.clip(b[:, 3] - b[:, 1], 0.0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
