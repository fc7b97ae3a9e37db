"""Box geometry, vectorised: boxes are (..., 4) arrays of (xmin, ymin, xmax, ymax)."""
import numpy as np
from scipy.spatial import cKDTree


def giou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Generalised IoU of boxes ``a`` and ``b``, broadcast over leading axes.

    GIoU is a ratio of areas, so it is the same in pixels and in coordinates
    normalised by image width and height (square or not).
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


def pairwise_giou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """GIoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4): shape (n, m), in [-1, 1]."""
    return giou(np.asarray(a)[:, None, :], np.asarray(b)[None, :, :])


def centres(boxes: np.ndarray) -> np.ndarray:
    """(x, y) centre of each box, shape (n, 2)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between the centres of every pair of boxes, shape (n, m)."""
    return np.linalg.norm(centres(a)[:, None, :] - centres(b)[None, :, :], axis=-1)


def pairs_within(a: np.ndarray, b: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) of the pairs whose box centres are at most ``max_distance`` apart (k-d tree)."""
    found = cKDTree(centres(a)).sparse_distance_matrix(cKDTree(centres(b)), max_distance, output_type="ndarray")
    return found["i"].astype(np.int64), found["j"].astype(np.int64)
