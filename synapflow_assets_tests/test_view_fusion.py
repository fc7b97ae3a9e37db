"""Test-time views of the detector: mirror images map back to the tile, and the fused answer per spine is the
mean over views of each view's best box there."""

import numpy as np
import polars as pl
import pytest
import torch

from synapflow_assets.detection.inference import SpineDetector
from synapflow_assets.detection.model import build_model, tiny_spec
from synapflow_assets.detection.view_fusion import (
    VIEW_FLOOR,
    VIEWS,
    boxes_from_view,
    check_views,
    fuse_views,
    view_of,
)


@pytest.mark.parametrize("view", VIEWS)
def test_a_box_found_on_a_view_maps_back_onto_the_object(view):
    tile = np.zeros((40, 60))
    tile[5:12, 30:50] = 1.0  # an object at x 30-50, y 5-12
    seen = view_of(tile, view)
    ys, xs = np.nonzero(seen)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], float)
    np.testing.assert_array_equal(boxes_from_view(found, view, 40, 60), [[30, 5, 50, 12]])


def test_views_fuse_into_one_box_per_object_with_the_mean_score():
    spine = np.array([[10, 10, 20, 20]], float)
    other = np.array([[50, 50, 60, 62]], float)
    answers = [
        (np.concatenate([spine, other]), np.array([0.8, 0.6]), np.array([0, 2])),
        (spine + np.array([1, 0, 1, 0]), np.array([0.4]), np.array([1])),  # the second view misses `other`
    ]
    boxes, scores, labels = fuse_views(answers, iou_threshold=0.5)
    order = np.argsort(boxes[:, 0])
    np.testing.assert_allclose(scores[order], [0.6, 0.3])
    np.testing.assert_allclose(boxes[order][0], [10 + 0.4 / 1.2, 10, 20 + 0.4 / 1.2, 20])
    np.testing.assert_array_equal(labels[order], [0, 2])  # the label of the best box
    empty = fuse_views([(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))] * 2)
    assert [len(part) for part in empty] == [0, 0, 0]


def test_a_view_list_must_start_with_the_tile_itself():
    assert check_views(["none", "flip_x"]) == ("none", "flip_x")
    for bad in (["flip_x"], ["none", "none"], ["none", "rotate"], []):
        with pytest.raises(ValueError, match="test-time views"):
            check_views(bad)


def test_a_detector_with_views_saves_them_and_answers_in_layer_pixels(tmp_path):
    torch.manual_seed(0)
    detector = SpineDetector(build_model(tiny_spec(), seed=0), tiny_spec(), tile=256, overlap=64, device="cpu")
    layer = np.random.default_rng(2).integers(0, 4000, (96, 140)).astype(np.uint16)
    single = detector.detect_layer(layer, score_threshold=0.0)
    detector.set_options(views=("none", "flip_x", "flip_y"))
    fused = detector.detect_layer(layer, score_threshold=0.0)
    assert len(fused) > 0 and len(single) > 0
    assert (fused["xmin"] >= 0).all() and (fused["xmax"] <= 140).all() and (fused["ymax"] <= 96).all()
    # the candidates' pass at a low threshold holds exactly the boxes of a pass at the score threshold
    low = detector.detect_layer(layer, score_threshold=VIEW_FLOOR)
    threshold = float(low["score"].median())
    high = detector.detect_layer(layer, score_threshold=threshold)
    assert len(high) > 0 and high.sort("score").equals(low.filter(pl.col("score") >= threshold).sort("score"))
    detector.save(tmp_path / "model")
    assert SpineDetector.load(tmp_path / "model", device="cpu").views == ("none", "flip_x", "flip_y")
