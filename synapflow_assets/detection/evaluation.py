"""COCO-style scores of 2D spine detections (plain Python, no dagster).

Source of truth
---------------
Average precision (AP50, AP50:95, per-type AP50) comes from ``pycocotools``'
``COCOeval`` (the reference COCO implementation; 2.0.11 works with numpy 2),
run with one area range ("all") and no cap on detections per image, so that
crowded layers are not truncated at COCO's default 100. Precision, recall and
F1 at one operating point (IoU >= 0.5, or centre distance <= ``centre_px``)
come from a greedy, one-to-one, class-agnostic matching computed here: each
prediction, in decreasing score order, takes the best still-unmatched true box
(as COCOeval does). The matching is vectorised: candidate pairs are built for
all images at once, and the greedy assignment is resolved in rounds, each of
which commits every prediction whose choice can no longer be changed by a
higher-scoring one.

Public API
----------
detection_scores
    All scores of a predicted box table against the truth.
greedy_match
    The greedy one-to-one matching (returns the matched pairs).
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import polars as pl

from ..evaluation.ratios import precision_recall_f1
from ..geometry import BOX_COLUMNS, iou, paired_centre_distance

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
MAX_DETECTIONS = 100_000


def _check(table: pl.DataFrame, name: str, need_score: bool) -> None:
    need = ["image", *BOX_COLUMNS] + (["score"] if need_score else [])
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; it has {table.columns}")


def _image_codes(truth: pl.DataFrame, predicted: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer image ids (1-based) shared by both tables, whatever the ``image`` dtype."""
    images = pl.concat(
        [truth.select(pl.col("image").cast(pl.String)), predicted.select(pl.col("image").cast(pl.String))]
    )["image"]
    uniques = images.unique(maintain_order=True)
    lookup = dict(zip(uniques.to_list(), range(1, len(uniques) + 1), strict=False))
    t = np.array([lookup[v] for v in truth["image"].cast(pl.String).to_list()], dtype=np.int64)
    p = np.array([lookup[v] for v in predicted["image"].cast(pl.String).to_list()], dtype=np.int64)
    return t, p, len(uniques)


# --------------------------------------------------------------------------- matching


def _candidate_pairs(t_img: np.ndarray, p_img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (prediction, truth) index pairs on the same image, built without a Python loop."""
    if len(t_img) == 0 or len(p_img) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(t_img, kind="stable")
    n_images = int(max(t_img.max(), p_img.max())) + 1
    counts = np.bincount(t_img, minlength=n_images)
    starts = np.cumsum(counts) - counts
    per_pred = counts[p_img]
    pair_p = np.repeat(np.arange(len(p_img)), per_pred)
    within = np.arange(len(pair_p)) - np.repeat(np.cumsum(per_pred) - per_pred, per_pred)
    pair_t = order[starts[p_img][pair_p] + within]
    return pair_p, pair_t


def greedy_match(
    rank: np.ndarray, pair_p: np.ndarray, pair_t: np.ndarray, affinity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching of predictions to true objects.

    Predictions are processed in increasing ``rank`` (0 = highest score); each
    takes the still-unmatched candidate with the highest affinity. Resolved in
    vectorised rounds: a prediction is committed once it has the best rank
    among the unresolved predictions competing for each of its remaining
    candidates (so no earlier prediction can take them any more).

    Parameters
    ----------
    rank : numpy.ndarray of int, shape (n_pred,)
        Distinct processing order of the predictions.
    pair_p, pair_t : numpy.ndarray of int, shape (n_pairs,)
        Admissible (prediction, truth) pairs (e.g. IoU >= 0.5).
    affinity : numpy.ndarray of float, shape (n_pairs,)
        Larger is better (IoU, or minus the centre distance).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Indices of matched predictions and of their true objects.
    """
    rank = np.asarray(rank, dtype=np.int64)
    pair_p, pair_t = np.asarray(pair_p, np.int64), np.asarray(pair_t, np.int64)
    affinity = np.asarray(affinity, float)
    n_pred = len(rank)
    n_truth = int(pair_t.max()) + 1 if len(pair_t) else 0
    # Sort pairs by prediction, then by decreasing affinity (ties: lower truth index).
    order = np.lexsort((pair_t, -affinity, pair_p))
    pair_p, pair_t = pair_p[order], pair_t[order]
    pred_done = np.zeros(n_pred, bool)
    truth_taken = np.zeros(n_truth, bool)
    matched_p, matched_t = [], []
    active = np.ones(len(pair_p), bool)
    big = np.iinfo(np.int64).max
    while True:
        active &= ~pred_done[pair_p] & ~truth_taken[pair_t]
        if not active.any():
            break
        ap, at = pair_p[active], pair_t[active]
        best_rank = np.full(n_truth, big)
        np.minimum.at(best_rank, at, rank[ap])
        blocked = np.bincount(ap, weights=(best_rank[at] != rank[ap]), minlength=n_pred) > 0
        first = np.r_[True, ap[1:] != ap[:-1]]  # best remaining candidate of each prediction
        commit = first & ~blocked[ap]
        cp, ct = ap[commit], at[commit]
        matched_p.append(cp)
        matched_t.append(ct)
        pred_done[cp] = True
        truth_taken[ct] = True
    if not matched_p:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(matched_p), np.concatenate(matched_t)


def _operating_point(t_box, p_box, t_img, p_img, score, iou_threshold, centre_px) -> tuple[dict, dict]:
    """Greedy precision / recall / F1 at IoU >= threshold and at centre distance <= centre_px."""
    rank = np.empty(len(score), np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(len(score))
    pair_p, pair_t = _candidate_pairs(t_img, p_img)
    a, b = p_box[pair_p], t_box[pair_t]
    overlap = iou(a, b)
    keep = overlap >= iou_threshold
    m_iou, _ = greedy_match(rank, pair_p[keep], pair_t[keep], overlap[keep])
    dist = paired_centre_distance(a, b)
    keep = dist <= centre_px
    m_c, _ = greedy_match(rank, pair_p[keep], pair_t[keep], -dist[keep])
    return (
        precision_recall_f1(len(m_iou), len(p_box), len(t_box)),
        precision_recall_f1(len(m_c), len(p_box), len(t_box)),
    )


# --------------------------------------------------------------------------- COCO AP


def _coco_ap(t_img, t_box, t_cat, p_img, p_box, p_cat, p_score, n_images: int, cat_ids: list[int]) -> np.ndarray:
    """COCOeval precision array averaged over recall -> AP per (IoU threshold, category).

    Returns
    -------
    numpy.ndarray, shape (10, len(cat_ids))
        NaN where a category has no true box.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:  # pragma: no cover - dependency missing
        raise ImportError("detection AP needs pycocotools (pip install pycocotools==2.0.11)") from error

    def dataset(img, box, cat, score=None):
        wh = box[:, 2:] - box[:, :2]
        anns = []
        for i in range(len(img)):
            ann = {
                "id": i + 1,
                "image_id": int(img[i]),
                "category_id": int(cat[i]),
                "bbox": [float(box[i, 0]), float(box[i, 1]), float(wh[i, 0]), float(wh[i, 1])],
                "area": float(wh[i, 0] * wh[i, 1]),
                "iscrowd": 0,
            }
            if score is not None:
                ann["score"] = float(score[i])
            anns.append(ann)
        return {
            "images": [{"id": i} for i in range(1, n_images + 1)],
            "categories": [{"id": c} for c in cat_ids],
            "annotations": anns,
        }

    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = COCO(), COCO()
        gt.dataset = dataset(t_img, t_box, t_cat)
        gt.createIndex()
        dt.dataset = dataset(p_img, p_box, p_cat, p_score)
        dt.createIndex()
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.params.imgIds = list(range(1, n_images + 1))
        ev.params.catIds = list(cat_ids)
        ev.params.iouThrs = IOU_THRESHOLDS.copy()
        ev.params.maxDets = [MAX_DETECTIONS]
        ev.params.areaRng = [[0.0, 1e12]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][:, :, :, 0, 0]  # (T, R, K)
    valid = precision > -1
    summed = np.where(valid, precision, 0.0).sum(axis=1)
    count = valid.sum(axis=1)
    return np.divide(summed, count, out=np.full(summed.shape, np.nan), where=count > 0)


def detection_scores(
    truth: pl.DataFrame,
    predicted: pl.DataFrame,
    per_type: bool = True,
    iou_threshold: float = 0.5,
    centre_px: float = 4.0,
) -> dict:
    """Score predicted boxes against true boxes, COCO-style and at one operating point.

    Parameters
    ----------
    truth : polars.DataFrame
        One row per true box: ``image`` (str or int; any value that names an
        image, e.g. a file name or ``"<stack>/<layer>"``), ``xmin, ymin, xmax,
        ymax`` (pixels) and, for per-type scores, ``type`` (str; null = no type).
    predicted : polars.DataFrame
        Same columns plus ``score``. Images absent from ``truth`` count as
        images without spines (every prediction there is a false positive).
    per_type : bool
        Also compute AP50 per spine type present in ``truth`` and their mean.
        A prediction counts for a type only if its ``type`` equals it.
    iou_threshold : float
        IoU of the precision / recall / F1 operating point.
    centre_px : float
        Centre distance (pixels) of the second operating point.

    Returns
    -------
    dict
        ``ap50``, ``ap50_95`` (class-agnostic COCO AP; NaN if there is no true
        box), ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn`` (greedy
        one-to-one, class-agnostic, IoU >= ``iou_threshold``, all predictions
        given: threshold the scores first), ``precision_centre``,
        ``recall_centre``, ``f1_centre``, ``tp_centre`` (centre distance <=
        ``centre_px``), ``n_truth``, ``n_predicted``, ``n_images``; with
        ``per_type``: ``ap50_per_type`` ({type: AP50}) and ``map50`` (mean
        over the types present in ``truth``; NaN if none has a type).
        Ratios from :func:`synapflow_assets.evaluation.ratios.precision_recall_f1`:
        one whose denominator is zero is NaN (precision without any prediction,
        recall without any truth); recall and F1 with no prediction are 0.
    """
    _check(truth, "truth", need_score=False)
    _check(predicted, "predicted", need_score=True)
    t_img, p_img, n_images = _image_codes(truth, predicted)
    t_box = truth.select(BOX_COLUMNS).cast(pl.Float64).to_numpy().reshape(-1, 4)
    p_box = predicted.select(BOX_COLUMNS).cast(pl.Float64).to_numpy().reshape(-1, 4)
    score = predicted["score"].cast(pl.Float64).to_numpy()
    if np.isnan(t_box).any() or np.isnan(p_box).any() or np.isnan(score).any():
        raise ValueError("NaN in box coordinates or scores")

    at_iou, at_centre = _operating_point(t_box, p_box, t_img, p_img, score, iou_threshold, centre_px)
    result: dict = {"n_images": n_images, "n_truth": len(t_box), "n_predicted": len(p_box)}
    if len(t_box) == 0:
        result.update(ap50=math.nan, ap50_95=math.nan)
    elif len(p_box) == 0:
        result.update(ap50=0.0, ap50_95=0.0)
    else:
        ap = _coco_ap(t_img, t_box, np.ones(len(t_box)), p_img, p_box, np.ones(len(p_box)), score, n_images, [1])[:, 0]
        result.update(ap50=float(ap[0]), ap50_95=float(np.mean(ap)))
    result.update(at_iou)
    result.update({f"{k}_centre": v for k, v in at_centre.items() if k in ("precision", "recall", "f1", "tp")})
    result["iou_threshold"] = iou_threshold
    result["centre_px"] = centre_px

    if per_type:
        t_type = truth["type"].cast(pl.String).to_list() if "type" in truth.columns else [None] * len(truth)
        p_type = predicted["type"].cast(pl.String).to_list() if "type" in predicted.columns else [None] * len(predicted)
        types = sorted({t for t in t_type if t is not None})
        per: dict = {}
        if types:
            codes = {t: i + 1 for i, t in enumerate(types)}
            tc = np.array([codes.get(t, 0) for t in t_type])
            pc = np.array([codes.get(t, 0) for t in p_type]) if p_type else np.zeros(0, int)
            tk, pk = tc > 0, pc > 0
            if pk.any():
                ap = _coco_ap(
                    t_img[tk],
                    t_box[tk],
                    tc[tk],
                    p_img[pk],
                    p_box[pk],
                    pc[pk],
                    score[pk],
                    n_images,
                    list(codes.values()),
                )[0]
                per = {t: float(ap[i]) if not np.isnan(ap[i]) else 0.0 for i, t in enumerate(types)}
            else:
                per = {t: 0.0 for t in types}
        result["ap50_per_type"] = per
        result["map50"] = float(np.mean(list(per.values()))) if per else math.nan
    return result
