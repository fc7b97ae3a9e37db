"""Quick class-agnostic detection scores for learning curves (P/R/F1 at IoU 0.5 or centre distance, AP50)."""
from __future__ import annotations

import numpy as np

from .box_merge import box_iou


def _centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ca = (a[:, None, :2] + a[:, None, 2:]) / 2
    cb = (b[None, :, :2] + b[None, :, 2:]) / 2
    return np.sqrt(((ca - cb) ** 2).sum(-1))


def match_layer(pred: np.ndarray, scores: np.ndarray, truth: np.ndarray, criterion: str = "iou",
                threshold: float = 0.5) -> np.ndarray:
    """Greedy matching by decreasing score: which predictions are true positives.

    Parameters
    ----------
    pred : ndarray (N, 4)
        xyxy predictions.
    scores : ndarray (N,)
    truth : ndarray (M, 4)
    criterion : {"iou", "centre"}
        Match when IoU >= threshold, or when centre distance <= threshold px.
    threshold : float

    Returns
    -------
    ndarray bool (N,)
        True positive flags, in the order of ``pred``.
    """
    pred = np.asarray(pred, np.float64).reshape(-1, 4)
    truth = np.asarray(truth, np.float64).reshape(-1, 4)
    tp = np.zeros(len(pred), bool)
    if len(pred) == 0 or len(truth) == 0:
        return tp
    if criterion == "iou":
        quality = box_iou(pred, truth)
        ok = quality >= threshold
    else:
        quality = -_centre_distance(pred, truth)
        ok = -quality <= threshold
    used = np.zeros(len(truth), bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = np.where(ok[i] & ~used)[0]
        if len(candidates):
            j = candidates[np.argmax(quality[i, candidates])]
            used[j] = True
            tp[i] = True
    return tp


def score_detections(predictions: list[tuple[np.ndarray, np.ndarray]], truths: list[np.ndarray],
                     score_threshold: float = 0.5) -> dict[str, float]:
    """Class-agnostic precision / recall / F1 (IoU 0.5 and centre distance 4 px) and AP50.

    Parameters
    ----------
    predictions : list of (boxes (N, 4), scores (N,))
        Per layer; should include low-score boxes for a meaningful AP.
    truths : list of ndarray (M, 4)
        Ground truth per layer.
    score_threshold : float
        Operating point of precision / recall / F1.

    Returns
    -------
    dict
        ``precision, recall, f1`` (IoU 0.5), ``precision_c4, recall_c4, f1_c4``
        (centre distance <= 4 px), ``ap50`` and ``ap_c4`` (average precision
        with either criterion), ``best_f1`` / ``best_f1_c4`` and their score
        thresholds, ``n_truth``, ``n_pred``.
    """
    n_truth = int(sum(len(t) for t in truths))
    out: dict[str, float] = {"n_truth": n_truth}
    for suffix, criterion, threshold in (("", "iou", 0.5), ("_c4", "centre", 4.0)):
        tp_total = n_pred = 0
        all_scores, all_tp = [], []
        for (boxes, scores), truth in zip(predictions, truths):
            scores = np.asarray(scores).reshape(-1)
            keep = scores >= score_threshold
            tp = match_layer(np.asarray(boxes)[keep], scores[keep], truth, criterion, threshold)
            tp_total += int(tp.sum())
            n_pred += int(keep.sum())
            all_tp.append(match_layer(boxes, scores, truth, criterion, threshold))
            all_scores.append(scores)
        precision = tp_total / n_pred if n_pred else 0.0
        recall = tp_total / n_truth if n_truth else 0.0
        out[f"precision{suffix}"] = precision
        out[f"recall{suffix}"] = recall
        out[f"f1{suffix}"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if criterion == "iou":
            out["n_pred"] = n_pred
        scores_all = np.concatenate(all_scores) if all_scores else np.zeros(0)
        tp_all = np.concatenate(all_tp) if all_tp else np.zeros(0, bool)
        out["ap50" if criterion == "iou" else "ap_c4"] = average_precision(scores_all, tp_all, n_truth)
        out[f"best_f1{suffix}"], out[f"best_threshold{suffix}"] = best_f1(scores_all, tp_all, n_truth)
    return out


def best_f1(scores: np.ndarray, tp: np.ndarray, n_truth: int) -> tuple[float, float]:
    """The highest F1 (IoU 0.5) over score thresholds, and that threshold.

    Parameters
    ----------
    scores : ndarray (N,)
    tp : ndarray bool (N,)
        True-positive flags of a matching done on all boxes.
    n_truth : int

    Returns
    -------
    (float, float)
    """
    if n_truth == 0 or len(scores) == 0:
        return 0.0, 1.0
    order = np.argsort(-scores, kind="stable")
    tps = np.cumsum(np.asarray(tp, bool)[order])
    f1 = 2 * tps / (np.arange(1, len(order) + 1) + n_truth)
    best = int(np.argmax(f1))
    return float(f1[best]), float(scores[order][best])


def average_precision(scores: np.ndarray, tp: np.ndarray, n_truth: int) -> float:
    """All-point interpolated average precision.

    Parameters
    ----------
    scores : ndarray (N,)
    tp : ndarray bool (N,)
    n_truth : int

    Returns
    -------
    float
    """
    if n_truth == 0 or len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = np.asarray(tp, bool)[order]
    tps = np.cumsum(hits)
    precision = tps / np.arange(1, len(hits) + 1)
    recall = tps / n_truth
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    previous = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - previous) * precision))
