"""Box-size calibration of a detector on annotated layers (plain Python, no dagster).

A detector can find spines at the right place yet draw boxes of the wrong
size for a data domain (the shipped model's boxes on real layers are ~1.6x
too large: IoU-0.5 scores are low while centre-distance scores are high).
:func:`calibrate_box_scale` measures the factor that makes them fit, to be
set as the detector's ``box_scale`` (inference config or ``DetectionSettings``)
for that domain. Calibrate on a training split, evaluate on validation.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..geometry import centre_distance
from ..setting_sections import DEFAULT_SCORE_THRESHOLD


def matched_size_ratios(predicted: np.ndarray, truth: np.ndarray, centre_px: float = 4.0) -> np.ndarray:
    """``sqrt(truth area / predicted area)`` of boxes paired one-to-one by centre distance.

    Parameters
    ----------
    predicted, truth : ndarray (N, 4), (M, 4)
        ``xmin, ymin, xmax, ymax`` boxes of one layer.
    centre_px : float
        Largest centre distance of a pair.

    Returns
    -------
    ndarray
        One ratio per pair (optimal assignment on centre distance).
    """
    predicted = np.asarray(predicted, np.float64).reshape(-1, 4)
    truth = np.asarray(truth, np.float64).reshape(-1, 4)
    if len(predicted) == 0 or len(truth) == 0:
        return np.zeros(0)
    distance = centre_distance(predicted, truth)
    rows, cols = linear_sum_assignment(np.where(distance <= centre_px, distance, 1e9))
    keep = distance[rows, cols] <= centre_px
    area_p = np.prod(np.clip(predicted[rows[keep], 2:] - predicted[rows[keep], :2], 1e-6, None), 1)
    area_t = np.prod(np.clip(truth[cols[keep], 2:] - truth[cols[keep], :2], 1e-6, None), 1)
    return np.sqrt(area_t / area_p)


def calibrate_box_scale(
    detector, samples, score_threshold: float = DEFAULT_SCORE_THRESHOLD, centre_px: float = 4.0
) -> dict:
    """The box-size factor of a detector on annotated layers, at its current ``upscale``.

    Parameters
    ----------
    detector : SpineDetector
        Its ``box_scale`` is ignored (set to 1 during the measurement, then restored).
    samples : list of data.Sample
        Annotated layers (``image``, ``boxes``).
    score_threshold : float
        Operating score of the detections that are paired.
    centre_px : float
        Largest centre distance of a pair.

    Returns
    -------
    dict
        ``box_scale`` (median ratio, 1.0 when nothing was paired), ``pairs``,
        ``q25`` and ``q75`` of the ratios.
    """
    previous, detector.box_scale = detector.box_scale, 1.0
    try:
        ratios = [
            matched_size_ratios(
                detector.detect_layer(s.image, score_threshold).select("xmin", "ymin", "xmax", "ymax").to_numpy(),
                s.boxes,
                centre_px,
            )
            for s in samples
        ]
    finally:
        detector.box_scale = previous
    pooled = np.concatenate(ratios) if ratios else np.zeros(0)
    if not len(pooled):
        return {"box_scale": 1.0, "pairs": 0, "q25": float("nan"), "q75": float("nan")}
    q25, median, q75 = np.percentile(pooled, [25, 50, 75])
    return {"box_scale": round(float(median), 3), "pairs": int(len(pooled)), "q25": float(q25), "q75": float(q75)}
