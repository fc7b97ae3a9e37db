"""Precision, recall and F1 from match counts: the one implementation of the package.

Every detection score of the package (2D boxes in :mod:`synapflow_assets.detection.evaluation`, 3D spines in
:mod:`.spine_matching`) turns its matching into these three ratios here, with one convention for empty inputs, the
one ``trackeval`` (:mod:`.tracking_metrics`) also follows: a ratio whose denominator is zero is undefined (NaN).

=================  ===========  ========  ====
case               precision    recall    F1
=================  ===========  ========  ====
no prediction      NaN          0         0
no truth           0            NaN       0
neither            NaN          NaN       NaN
=================  ===========  ========  ====
"""

from __future__ import annotations

import math


def precision_recall_f1(n_matched: int, n_predicted: int, n_truth: int) -> dict:
    """Precision, recall and F1 of a one-to-one matching.

    Parameters
    ----------
    n_matched : int
        Matched (true positive) pairs; at most ``min(n_predicted, n_truth)``.
    n_predicted, n_truth : int
        Predicted and true objects.

    Returns
    -------
    dict
        ``precision = tp / n_predicted`` (NaN with no prediction), ``recall = tp / n_truth`` (NaN with no truth),
        ``f1 = 2 tp / (n_predicted + n_truth)`` (NaN when both are empty, so 0 when only one is), and the counts
        ``tp``, ``fp``, ``fn`` (int).
    """
    tp, n_predicted, n_truth = int(n_matched), int(n_predicted), int(n_truth)
    if not 0 <= tp <= min(n_predicted, n_truth):
        raise ValueError(f"{tp} matches cannot come from {n_predicted} predicted and {n_truth} true objects")
    return {
        "precision": tp / n_predicted if n_predicted else math.nan,
        "recall": tp / n_truth if n_truth else math.nan,
        "f1": 2 * tp / (n_predicted + n_truth) if n_predicted + n_truth else math.nan,
        "tp": tp,
        "fp": n_predicted - tp,
        "fn": n_truth - tp,
    }
