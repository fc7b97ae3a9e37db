"""COCO-style detection scores on hand-built cases, and the LoG blob baseline."""

import math

import numpy as np
import polars as pl
import pytest

from synapflow_assets.detection.baseline import LogBlobDetector
from synapflow_assets.detection.evaluation import detection_scores, greedy_match

TRUTH = pl.DataFrame(
    {
        "image": ["a", "a", "a", "b"],
        "xmin": [0.0, 20.0, 40.0, 5.0],
        "ymin": [0.0, 0.0, 0.0, 5.0],
        "xmax": [10.0, 30.0, 50.0, 15.0],
        "ymax": [10.0, 10.0, 10.0, 15.0],
        "type": ["mushroom", "stubby", "mushroom", "thin"],
    }
)


def predictions(truth, scores):
    return truth.with_columns(score=pl.Series(scores, dtype=pl.Float64))


def test_perfect_predictions_score_one():
    s = detection_scores(TRUTH, predictions(TRUTH, [0.9, 0.8, 0.7, 0.6]))
    for key in ("ap50", "ap50_95", "precision", "recall", "f1", "precision_centre", "recall_centre", "map50"):
        assert s[key] == pytest.approx(1.0), key
    assert s["ap50_per_type"] == pytest.approx({"mushroom": 1.0, "stubby": 1.0, "thin": 1.0})
    assert (s["tp"], s["fp"], s["fn"], s["n_images"]) == (4, 0, 0, 2)


def test_one_miss_of_four():
    s = detection_scores(TRUTH, predictions(TRUTH, [0.9, 0.8, 0.7, 0.6]).head(3))
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 0.75, pytest.approx(6 / 7))
    assert s["ap50"] == pytest.approx(76 / 101)  # COCO's 101-point interpolation: recall 0..0.75 at precision 1
    assert s["ap50_per_type"] == pytest.approx({"mushroom": 1.0, "stubby": 1.0, "thin": 0.0})
    assert s["map50"] == pytest.approx(2 / 3)


def test_duplicate_lowers_precision_only():
    pred = pl.concat(
        [predictions(TRUTH, [0.9, 0.8, 0.7, 0.6]), predictions(TRUTH.head(1), [0.5]).with_columns(pl.col("xmin") + 1)]
    )
    s = detection_scores(TRUTH, pred)
    assert (s["tp"], s["fp"], s["precision"], s["recall"]) == (4, 1, 0.8, 1.0)
    assert s["ap50"] == pytest.approx(1.0)  # the duplicate ranks below every true positive
    ranked_first = pred.with_columns(score=pl.Series([0.9, 0.8, 0.7, 0.6, 0.95]))
    assert detection_scores(TRUTH, ranked_first)["ap50"] < 1.0


def test_iou_and_centre_thresholds():
    shifted = predictions(TRUTH, [0.9] * 4).with_columns(pl.col("xmin") + 6, pl.col("xmax") + 6)
    s = detection_scores(TRUTH, shifted, centre_px=4)
    assert s["recall"] == 0.0 and s["ap50"] == 0.0  # IoU 4/16 < 0.5
    assert s["recall_centre"] == 0.0
    s = detection_scores(TRUTH, shifted, centre_px=6)
    assert s["recall_centre"] == 1.0 and s["f1_centre"] == 1.0


def test_images_without_truth_or_predictions():
    s = detection_scores(TRUTH, predictions(TRUTH, [0.9] * 4).filter(pl.col("image") == "a"))
    assert s["recall"] == 0.75 and s["precision"] == 1.0
    extra = pl.DataFrame(
        {"image": ["c"], "xmin": [0.0], "ymin": [0.0], "xmax": [9.0], "ymax": [9.0], "type": ["thin"], "score": [0.99]}
    )
    s = detection_scores(TRUTH, pl.concat([predictions(TRUTH, [0.9] * 4), extra]))
    assert (s["tp"], s["fp"], s["n_images"]) == (4, 1, 3) and s["ap50"] < 1.0
    empty = predictions(TRUTH, [0.9] * 4).head(0)
    s = detection_scores(TRUTH, empty)
    assert (s["ap50"], s["recall"], s["f1"], s["map50"]) == (0.0, 0.0, 0.0, 0.0) and math.isnan(s["precision"])
    s = detection_scores(TRUTH.head(0), predictions(TRUTH, [0.9] * 4))
    assert math.isnan(s["ap50"]) and math.isnan(s["recall"]) and s["precision"] == 0.0
    with_int_images = TRUTH.with_columns(image=pl.Series([1, 1, 1, 2]))
    assert detection_scores(with_int_images, predictions(with_int_images, [0.5] * 4))["ap50"] == pytest.approx(1.0)


def test_greedy_matching_follows_score_order():
    # prediction 1 (higher score) takes truth 0 although prediction 0 overlaps it more
    p, t = greedy_match(np.array([1, 0]), np.array([0, 1, 1]), np.array([0, 0, 1]), np.array([0.9, 0.8, 0.6]))
    assert dict(zip(p.tolist(), t.tolist(), strict=False)) == {1: 0}


def blobs(shape, centres, sigma=2.5, amplitude=1000.0, background=100.0, noise=5.0, seed=0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, background)
    for y, x in centres:
        image += amplitude * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return image + np.random.default_rng(seed).normal(0, noise, shape)


def test_log_baseline_finds_blobs_at_known_positions():
    centres = [(30.0, 40.0), (80.0, 100.0), (100.0, 30.0), (20.0, 140.0)]
    found = LogBlobDetector().detect_layer(blobs((128, 160), centres).astype(np.uint16))
    assert len(found) == len(centres)
    cx = ((found["xmin"] + found["xmax"]) / 2).to_numpy()
    cy = ((found["ymin"] + found["ymax"]) / 2).to_numpy()
    for y, x in centres:
        assert np.min(np.hypot(cx - x, cy - y)) <= 2.0
    assert set(found["type"].to_list()) == {"spine"} and found["score"].is_between(0.5, 1.0).all()


def test_log_baseline_flat_layer_and_stack():
    det = LogBlobDetector()
    assert det.detect_layer(np.full((64, 64), 7, np.uint16)).is_empty()
    stack = np.stack([blobs((64, 64), [(32.0, 32.0)]), np.full((64, 64), 100.0)])
    found = det.detect_stack(stack)
    assert found.columns == ["layer", "xmin", "ymin", "xmax", "ymax", "score", "type"]
    assert found["layer"].to_list() == [0]
    with pytest.raises(ValueError, match="2D layer"):
        det.detect_layer(stack)
