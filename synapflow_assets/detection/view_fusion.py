"""Test-time views: the detector answers on a tile and on its mirror images, and the answers are fused into one
box per spine (weighted box fusion), so that a spine's score is an average over views rather than the luck of
one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..geometry import box_iou, nms

#: The views a detector may look with; ``none`` is the tile as it is.
VIEWS = ("none", "flip_x", "flip_y", "flip_xy")
#: Lowest score of a view's box that enters the fusion.
VIEW_FLOOR = 0.05


def check_views(views: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``views`` as a tuple, starting with ``none``, each known and once.

    Raises
    ------
    ValueError
        Naming the unknown or repeated view.
    """
    views = tuple(views)
    unknown = [view for view in views if view not in VIEWS]
    if unknown or not views or views[0] != "none" or len(set(views)) != len(views):
        raise ValueError(f"test-time views must start with 'none' and be distinct, from {VIEWS}; got {list(views)}")
    return views


def view_of(tile: np.ndarray, view: str) -> np.ndarray:
    """The tile (height, width) as ``view`` sees it."""
    if view in ("flip_x", "flip_xy"):
        tile = tile[:, ::-1]
    if view in ("flip_y", "flip_xy"):
        tile = tile[::-1, :]
    return tile


def boxes_from_view(boxes: np.ndarray, view: str, height: int, width: int) -> np.ndarray:
    """Boxes (xyxy) found on ``view`` of a ``height`` x ``width`` tile, in the tile's own pixels."""
    out = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    if view in ("flip_x", "flip_xy"):
        out[:, [0, 2]] = width - out[:, [2, 0]]
    if view in ("flip_y", "flip_xy"):
        out[:, [1, 3]] = height - out[:, [3, 1]]
    return out


def fuse_views(
    answers: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *, iou_threshold: float = 0.55
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse the boxes of several views of one tile into one box per object.

    Boxes of all views are clustered around the survivors of a class-agnostic NMS (each box joins the survivor
    it overlaps most). A cluster's score is the mean over the views of each view's best score in it (a view with
    no box there counts 0), its box the score-weighted mean of its boxes, and its label the survivor's.

    Parameters
    ----------
    answers : list of (boxes (N, 4) xyxy, scores (N,), labels (N,))
        One entry per view, boxes in the same pixel frame.
    iou_threshold : float
        Boxes overlapping more than this are one object.

    Returns
    -------
    boxes : ndarray float64 (K, 4)
    scores : ndarray float64 (K,)
    labels : ndarray int64 (K,)
    """
    n_views = len(answers)
    boxes = np.concatenate([np.asarray(b, np.float64).reshape(-1, 4) for b, _, _ in answers])
    scores = np.concatenate([np.asarray(s, np.float64).reshape(-1) for _, s, _ in answers])
    labels = np.concatenate([np.asarray(k, np.int64).reshape(-1) for _, _, k in answers])
    view = np.repeat(np.arange(n_views), [len(np.reshape(s, -1)) for _, s, _ in answers])
    if not len(boxes):
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    leaders = nms(boxes, scores, iou_threshold=iou_threshold)
    cluster = box_iou(boxes, boxes[leaders]).argmax(1)
    best = np.zeros((len(leaders), n_views))
    np.maximum.at(best, (cluster, view), scores)
    weight = np.bincount(cluster, scores, len(leaders))
    summed = np.stack([np.bincount(cluster, boxes[:, c] * scores, len(leaders)) for c in range(4)], 1)
    fused = summed / np.maximum(weight, 1e-12)[:, None]
    return fused, best.mean(1), labels[leaders]


def predict_in_views(
    predict: Callable[[list[np.ndarray], float], list[tuple]],
    tiles: list[np.ndarray],
    views: tuple[str, ...],
    *,
    score_threshold: float,
    iou_threshold: float,
) -> list[tuple]:
    """``predict`` (equally sized tiles and a threshold -> per tile boxes, scores, labels) on every view of the
    tiles in one batch, fused per tile. Each view's boxes enter from :data:`VIEW_FLOOR` whatever the threshold,
    so that the fused boxes at or above a threshold are the same in a pass at any lower one."""
    h, w = tiles[0].shape
    seen = predict([view_of(t, v) for v in views for t in tiles], min(VIEW_FLOOR, score_threshold))
    results = []
    for b in range(len(tiles)):
        answers = []
        for k, view in enumerate(views):
            boxes, scores, labels = seen[k * len(tiles) + b]
            answers.append((boxes_from_view(boxes, view, h, w), scores, labels))
        boxes, scores, labels = fuse_views(answers, iou_threshold=iou_threshold)
        keep = scores >= score_threshold
        results.append((boxes[keep], scores[keep], labels[keep]))
    return results
