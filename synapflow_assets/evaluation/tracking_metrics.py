"""Multi-object tracking scores: CLEAR-MOT and Identity (motmetrics), HOTA (trackeval).

Source of truth
---------------
MOTA, MOTP, IDF1/IDP/IDR, ID switches, fragmentations and the detection counts
come from ``motmetrics`` (``MOTAccumulator`` fed with distance matrices
computed here, because motmetrics 1.4's ``distances.iou_matrix`` calls
``np.asfarray``, removed in numpy 2). HOTA, DetA and AssA come from
``trackeval.metrics.HOTA``. :func:`trackeval_clear_identity` recomputes MOTA,
IDF1 and switches with trackeval's ``CLEAR``/``Identity`` so that the two
libraries can be cross-checked (the tests do so; they agree).
"""

from __future__ import annotations

import math

import motmetrics as mm
import numpy as np
import polars as pl
import trackeval

from synapflow_assets.evaluation.sequence_data import SequenceData, sequence_data, split_sequences

_MM_METRICS = [
    "mota", "motp", "idf1", "idp", "idr", "precision", "recall",
    "num_switches", "num_fragmentations", "num_objects", "num_predictions",
    "num_detections", "num_false_positives", "num_misses", "num_unique_objects",
]

RATIO_KEYS = ("mota", "motp", "idf1", "idp", "idr", "hota", "deta", "assa", "precision", "recall")
COUNT_KEYS = ("id_switches", "fragmentations", "num_truth", "num_predicted", "num_matches",
              "false_positives", "misses", "num_truth_ids", "num_predicted_ids")


def _accumulator(data: SequenceData, iou_threshold: float) -> mm.MOTAccumulator:
    """A motmetrics accumulator of one sequence; distance = 1 - IoU, NaN below threshold."""
    acc = mm.MOTAccumulator(auto_id=False)
    for index, (gt, tr, iou) in enumerate(zip(data.gt_ids, data.tracker_ids, data.similarity)):
        distance = 1.0 - iou
        distance[(iou < iou_threshold) | (iou <= 0)] = np.nan
        acc.update(gt, tr, distance, frameid=index)
    return acc


def _hota(sequences: dict) -> dict:
    """trackeval HOTA per sequence, combined with ``HOTA.combine_sequences``."""
    metric = trackeval.metrics.HOTA()
    per_sequence = {name: metric.eval_sequence(data.trackeval_data())
                    for name, data in sequences.items()}
    res = (next(iter(per_sequence.values())) if len(per_sequence) == 1
           else metric.combine_sequences(per_sequence))
    return {"hota": float(np.mean(res["HOTA"])), "deta": float(np.mean(res["DetA"])),
            "assa": float(np.mean(res["AssA"]))}


def _empty_scores() -> dict:
    scores = {key: math.nan for key in RATIO_KEYS}
    scores.update({key: 0 for key in COUNT_KEYS})
    return scores


def _prepare(truth, predicted, frame) -> dict:
    return {name: sequence_data(gt, tr, frame)
            for name, (gt, tr) in split_sequences(truth, predicted).items()}


def tracking_scores(truth: pl.DataFrame, predicted: pl.DataFrame, frame: str = "layer",
                    iou_threshold: float = 0.5) -> dict:
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
        Ratios (float): ``mota``, ``motp`` (mean IoU of matched pairs, i.e.
        ``1 -`` motmetrics' distance MOTP), ``idf1``, ``idp``, ``idr``,
        ``hota``, ``deta``, ``assa`` (means over trackeval's alpha
        thresholds), ``precision``, ``recall``.
        Counts (int): ``id_switches``, ``fragmentations``, ``num_truth``,
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

    accumulators = [_accumulator(data, iou_threshold) for data in sequences.values()]
    host = mm.metrics.create()
    if len(accumulators) == 1:
        summary = host.compute(accumulators[0], metrics=_MM_METRICS, name="all")
    else:
        summary = host.compute_many(accumulators, metrics=_MM_METRICS,
                                    names=list(sequences), generate_overall=True)
    row = summary.iloc[-1]  # the single sequence, or motmetrics' OVERALL row

    num_truth = int(row["num_objects"])
    num_predicted = int(row["num_predictions"])
    num_matches = int(row["num_detections"])
    scores = {
        "mota": float(row["mota"]) if num_truth else math.nan,
        "motp": 1.0 - float(row["motp"]) if num_matches else math.nan,
        "idf1": float(row["idf1"]),
        "idp": float(row["idp"]) if num_predicted else math.nan,
        "idr": float(row["idr"]) if num_truth else math.nan,
        "precision": float(row["precision"]) if num_predicted else math.nan,
        "recall": float(row["recall"]) if num_truth else math.nan,
        "id_switches": int(row["num_switches"]),
        "fragmentations": int(row["num_fragmentations"]),
        "num_truth": num_truth,
        "num_predicted": num_predicted,
        "num_matches": num_matches,
        "false_positives": int(row["num_false_positives"]),
        "misses": int(row["num_misses"]),
        "num_truth_ids": int(sum(d.num_gt_ids for d in sequences.values())),
        "num_predicted_ids": int(sum(d.num_tracker_ids for d in sequences.values())),
    }
    scores.update(_hota(sequences))
    return scores


def trackeval_clear_identity(truth: pl.DataFrame, predicted: pl.DataFrame,
                             frame: str = "layer", iou_threshold: float = 0.5) -> dict:
    """MOTA, IDF1 and ID switches computed by trackeval, for cross-checking.

    Parameters
    ----------
    truth, predicted, frame, iou_threshold
        As for :func:`tracking_scores`.

    Returns
    -------
    dict
        ``mota``, ``motp`` (mean IoU), ``idf1``, ``id_switches``,
        ``fragmentations`` from ``trackeval.metrics.CLEAR`` and ``Identity``,
        sequences combined with their ``combine_sequences``.
    """
    config = {"THRESHOLD": iou_threshold, "PRINT_CONFIG": False}
    clear = trackeval.metrics.CLEAR(config)
    identity = trackeval.metrics.Identity(config)
    sequences = _prepare(truth, predicted, frame)
    data = {name: d.trackeval_data() for name, d in sequences.items()}
    clear_res = clear.combine_sequences({n: clear.eval_sequence(d) for n, d in data.items()})
    id_res = identity.combine_sequences({n: identity.eval_sequence(d) for n, d in data.items()})
    return {"mota": float(clear_res["MOTA"]), "motp": float(clear_res["MOTP"]),
            "idf1": float(id_res["IDF1"]), "id_switches": int(clear_res["IDSW"]),
            "fragmentations": int(clear_res["Frag"])}
