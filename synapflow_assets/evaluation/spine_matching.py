"""The earlier lab's 3D spine score: mean x/y box plus z-range, one-to-one matching."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment

from synapflow_assets.evaluation.ratios import precision_recall_f1
from synapflow_assets.evaluation.sequence_data import SEQUENCE_COLUMN
from synapflow_assets.geometry import BOX_COLUMNS, box_iou

SPINE_COLUMNS = ("id", *BOX_COLUMNS, "z_start", "z_end")


def spines_from_boxes(boxes: pl.DataFrame, frame: str = "layer") -> pl.DataFrame:
    """Collapse per-layer boxes with ids into one row per 3D spine.

    Parameters
    ----------
    boxes : polars.DataFrame
        Columns ``<frame>, id, xmin, ymin, xmax, ymax`` (plus an optional
        ``sequence``, kept as a grouping key).
    frame : str, default "layer"
        The layer column.

    Returns
    -------
    polars.DataFrame
        ``[sequence,] id, xmin, ymin, xmax, ymax, z_start, z_end``: the mean
        box over the spine's layers and its first and last layer (inclusive),
        sorted by the keys.
    """
    keys = [SEQUENCE_COLUMN, "id"] if SEQUENCE_COLUMN in boxes.columns else ["id"]
    return (
        boxes.group_by(keys)
        .agg(
            *[pl.col(c).cast(pl.Float64).mean() for c in BOX_COLUMNS],
            pl.col(frame).min().alias("z_start"),
            pl.col(frame).max().alias("z_end"),
        )
        .sort(keys)
    )


def match_matrix(
    truth_spines: pl.DataFrame, predicted_spines: pl.DataFrame, z_overlap: float = 0.5, iou_threshold: float = 0.0
):
    """Which truth/predicted spine pairs may match, and their x/y IoU.

    A pair may match when the mean boxes' IoU is ``> iou_threshold`` and the
    z overlap ``min(z_end) - max(z_start) + 1`` (layers, inclusive) is
    ``> z_overlap`` times the shorter of the two z-ranges.

    Returns
    -------
    allowed : numpy.ndarray of bool, shape (n_truth, n_predicted)
    iou : numpy.ndarray of float, shape (n_truth, n_predicted)
    """
    iou = box_iou(truth_spines.select(BOX_COLUMNS).to_numpy(), predicted_spines.select(BOX_COLUMNS).to_numpy())
    ts, te = (truth_spines[c].to_numpy().astype(float) for c in ("z_start", "z_end"))
    ps, pe = (predicted_spines[c].to_numpy().astype(float) for c in ("z_start", "z_end"))
    overlap = np.minimum(te[:, None], pe[None, :]) - np.maximum(ts[:, None], ps[None, :]) + 1
    shorter = np.minimum((te - ts + 1)[:, None], (pe - ps + 1)[None, :])
    # The small tolerance keeps an overlap of exactly z_overlap from matching.
    allowed = (iou > iou_threshold) & (overlap > z_overlap * shorter + 1e-9)
    return allowed, iou


def _match_counts(truth: pl.DataFrame, predicted: pl.DataFrame, z_overlap, iou_threshold):
    n, m = truth.height, predicted.height
    if n == 0 or m == 0:
        return 0
    allowed, iou = match_matrix(truth, predicted, z_overlap, iou_threshold)
    # Maximise the number of matches first; among maximum matchings prefer
    # higher IoU (the IoU term summed over <= min(n, m) pairs stays below 1).
    weight = np.where(allowed, 1.0 + iou / (min(n, m) + 1), 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    return int(allowed[rows, cols].sum())


def spine_f1_3d(
    truth_spines: pl.DataFrame, predicted_spines: pl.DataFrame, z_overlap: float = 0.5, iou_threshold: float = 0.0
) -> dict:
    """Precision, recall and F1 of 3D spines, one-to-one matched.

    Parameters
    ----------
    truth_spines, predicted_spines : polars.DataFrame
        One row per 3D spine: ``id, xmin, ymin, xmax, ymax`` (mean box),
        ``z_start, z_end`` (first and last layer, inclusive); see
        :func:`spines_from_boxes`. With a ``sequence`` column in both, spines
        only match within their sequence and the counts are summed.
    z_overlap : float, default 0.5
        A match needs a z overlap strictly greater than this fraction of the
        shorter z-range (exactly 50 % does not match).
    iou_threshold : float, default 0.0
        A match needs an x/y IoU strictly greater than this (0: any overlap).

    Returns
    -------
    dict
        ``precision, recall, f1`` (float; NaN when the denominator is zero,
        e.g. precision with no prediction: :func:`.ratios.precision_recall_f1`)
        and ``tp, fp, fn`` (int). Matching
        is an optimal assignment (``scipy.optimize.linear_sum_assignment``)
        maximising the number of matches.
    """
    if SEQUENCE_COLUMN in truth_spines.columns and SEQUENCE_COLUMN in predicted_spines.columns:
        names = sorted(set(truth_spines[SEQUENCE_COLUMN].to_list()) | set(predicted_spines[SEQUENCE_COLUMN].to_list()))
        tp = sum(
            _match_counts(
                truth_spines.filter(pl.col(SEQUENCE_COLUMN) == name),
                predicted_spines.filter(pl.col(SEQUENCE_COLUMN) == name),
                z_overlap,
                iou_threshold,
            )
            for name in names
        )
    else:
        tp = _match_counts(truth_spines, predicted_spines, z_overlap, iou_threshold)
    return precision_recall_f1(tp, predicted_spines.height, truth_spines.height)
