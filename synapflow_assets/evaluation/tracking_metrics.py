"""Multi-object tracking scores from trackeval: CLEAR-MOT, Identity and HOTA.

MOTA, MOTP, precision, recall, ID switches, fragmentations and the detection
counts come from ``trackeval.metrics.CLEAR``; IDF1/IDP/IDR from
``trackeval.metrics.Identity``; HOTA, DetA and AssA from
``trackeval.metrics.HOTA``. All three are fed the same IoU matrices
(:mod:`.sequence_data`) and combine sequences with their
``combine_sequences``.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import trackeval

from synapflow_assets.evaluation.sequence_data import sequence_data, split_sequences

RATIO_KEYS = ("mota", "motp", "idf1", "idp", "idr", "hota", "deta", "assa", "precision", "recall")
COUNT_KEYS = (
    "id_switches",
    "fragmentations",
    "num_truth",
    "num_predicted",
    "num_matches",
    "false_positives",
    "misses",
    "num_truth_ids",
    "num_predicted_ids",
)


def _evaluate(metric, data: dict) -> dict:
    """One trackeval metric over the sequences ``{name: trackeval data}``, combined as trackeval combines them."""
    per_sequence = {name: metric.eval_sequence(d) for name, d in data.items()}
    return next(iter(per_sequence.values())) if len(per_sequence) == 1 else metric.combine_sequences(per_sequence)


def _empty_scores() -> dict:
    scores = {key: math.nan for key in RATIO_KEYS}
    scores.update({key: 0 for key in COUNT_KEYS})
    return scores


def _prepare(truth, predicted, frame) -> dict:
    return {name: sequence_data(gt, tr, frame) for name, (gt, tr) in split_sequences(truth, predicted).items()}


def tracking_scores(
    truth: pl.DataFrame, predicted: pl.DataFrame, frame: str = "layer", iou_threshold: float = 0.5
) -> dict:
    """Score predicted tracks against true tracks.

    Parameters
    ----------
    truth, predicted : polars.DataFrame
        One row per box: ``<frame>`` (int), ``id`` (any sortable value: ints
        need not be contiguous, strings are fine), ``xmin, ymin, xmax, ymax``
        (float). Extra columns are ignored. If both have a ``sequence``
        column, each sequence is evaluated on its own and the results are
        combined as the libraries combine sequences (summed counts for
        CLEAR/Identity, ``HOTA.combine_sequences`` for HOTA).
    frame : str, default "layer"
        Column that orders the frames: ``"layer"`` for depth tracking,
        ``"session"`` (or similar) for time tracking.
    iou_threshold : float, default 0.5
        A truth/prediction pair can match for CLEAR/Identity metrics when
        ``IoU >= iou_threshold`` (and IoU > 0). HOTA ignores it: it averages
        over its own thresholds 0.05 ... 0.95.

    Returns
    -------
    dict
        Ratios (float): ``mota``, ``motp`` (mean IoU of matched pairs),
        ``idf1``, ``idp``, ``idr``,
        ``hota``, ``deta``, ``assa`` (means over trackeval's alpha
        thresholds), ``precision``, ``recall``.
        Counts (int): ``id_switches``, ``fragmentations`` (trackeval's: each
        time a true track is matched again after a frame, with truth and
        predictions, where it was not), ``num_truth``,
        ``num_predicted``, ``num_matches`` (all matched pairs, switches
        included), ``false_positives``, ``misses``, ``num_truth_ids``,
        ``num_predicted_ids`` (distinct ids, summed over sequences).
        A ratio whose denominator is zero is NaN (e.g. ``mota``/``recall``
        with no truth, ``precision``/``motp`` with no prediction/match, all
        ratios when both tables are empty); with no prediction ``hota`` is 0.

    Raises
    ------
    ValueError
        On a missing column, an id repeated within one frame, or a
        ``sequence`` column in only one of two non-empty tables.
    """
    sequences = _prepare(truth, predicted, frame)
    if all(d.num_gt_dets == 0 and d.num_tracker_dets == 0 for d in sequences.values()):
        return _empty_scores()

    config = {"THRESHOLD": iou_threshold, "PRINT_CONFIG": False}
    data = {name: d.trackeval_data() for name, d in sequences.items()}
    clear = _evaluate(trackeval.metrics.CLEAR(config), data)
    identity = _evaluate(trackeval.metrics.Identity(config), data)
    hota = _evaluate(trackeval.metrics.HOTA(), data)

    num_matches = int(clear["CLR_TP"])
    num_truth = num_matches + int(clear["CLR_FN"])
    num_predicted = num_matches + int(clear["CLR_FP"])
    return {
        "mota": float(clear["MOTA"]) if num_truth else math.nan,
        "motp": float(clear["MOTP"]) if num_matches else math.nan,
        "idf1": float(identity["IDF1"]),
        "idp": float(identity["IDP"]) if num_predicted else math.nan,
        "idr": float(identity["IDR"]) if num_truth else math.nan,
        "hota": float(np.mean(hota["HOTA"])),
        "deta": float(np.mean(hota["DetA"])),
        "assa": float(np.mean(hota["AssA"])),
        "precision": float(clear["CLR_Pr"]) if num_predicted else math.nan,
        "recall": float(clear["CLR_Re"]) if num_truth else math.nan,
        "id_switches": int(clear["IDSW"]),
        "fragmentations": int(clear["Frag"]),
        "num_truth": num_truth,
        "num_predicted": num_predicted,
        "num_matches": num_matches,
        "false_positives": int(clear["CLR_FP"]),
        "misses": int(clear["CLR_FN"]),
        "num_truth_ids": int(sum(d.num_gt_ids for d in sequences.values())),
        "num_predicted_ids": int(sum(d.num_tracker_ids for d in sequences.values())),
    }
