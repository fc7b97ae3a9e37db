"""Test-time upscaling and box-size calibration of the detector."""

import numpy as np
import pytest
import torch

from synapflow_assets.detection.calibration import calibrate_box_scale, matched_size_ratios
from synapflow_assets.detection.data import make_sample
from synapflow_assets.detection.inference import SpineDetector
from synapflow_assets.detection.model import build_model, tiny_spec


@pytest.fixture(scope="module")
def tiny_detector():
    torch.manual_seed(0)
    return SpineDetector(build_model(tiny_spec(), seed=0), tiny_spec(), tile=256, overlap=64, device="cpu")


@pytest.fixture(scope="module")
def layer():
    return np.random.default_rng(2).integers(0, 4000, (96, 140)).astype(np.uint16)


def _centres(table):
    boxes = table.select("xmin", "ymin", "xmax", "ymax").to_numpy()
    return (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]


def test_upscale_gives_boxes_in_layer_pixels(tiny_detector, layer):
    tiny_detector.set_options(upscale=2.0)
    try:
        boxes = tiny_detector.detect_layer(layer, score_threshold=0.0)
    finally:
        tiny_detector.set_options(upscale=1.0)
    assert len(boxes) > 0
    assert (boxes["xmin"] >= 0).all() and (boxes["xmax"] <= 140).all() and (boxes["ymax"] <= 96).all()
    assert (boxes["xmax"] > boxes["xmin"]).all()


def test_box_scale_shrinks_boxes_about_their_centres(tiny_detector, layer):
    plain = tiny_detector.detect_layer(layer, score_threshold=0.0)
    tiny_detector.set_options(box_scale=0.5)
    try:
        shrunk = tiny_detector.detect_layer(layer, score_threshold=0.0)
    finally:
        tiny_detector.set_options(box_scale=1.0)
    (c0, s0), (c1, s1) = _centres(plain), _centres(shrunk)
    inside = ((c0 - s0 / 2) > 0).all(1) & ((c0 + s0 / 2) < [140, 96]).all(1)
    assert inside.sum() > 0 and len(plain) == len(shrunk)
    np.testing.assert_allclose(c1[inside], c0[inside], atol=1e-4)
    np.testing.assert_allclose(s1[inside], s0[inside] * 0.5, atol=1e-4)


def test_options_are_saved_with_the_model_and_validated(tiny_detector, tmp_path):
    detector = SpineDetector(tiny_detector.model, tiny_detector.spec, device="cpu", upscale=1.5, box_scale=0.7)
    detector.save(tmp_path / "det")
    loaded = SpineDetector.load(tmp_path / "det", device="cpu")
    assert (loaded.upscale, loaded.box_scale) == (1.5, 0.7)
    with pytest.raises(ValueError, match="upscale must be a positive number"):
        loaded.set_options(upscale=0)
    with pytest.raises(ValueError, match="box_scale must be a positive number"):
        loaded.set_options(box_scale=float("nan"))
    with pytest.raises(ValueError, match="tile must be larger than the overlap"):
        loaded.set_options(tile=64)
    assert loaded.set_options(tile=128).tile == 128


def test_matched_size_ratios_pair_boxes_by_centre():
    truth = np.array([[10, 10, 20, 20], [50, 50, 58, 58]], float)
    predicted = np.array([[46, 46, 62, 62], [5, 5, 25, 25], [90, 90, 99, 99]], float)
    np.testing.assert_allclose(sorted(matched_size_ratios(predicted, truth)), [0.5, 0.5])
    assert len(matched_size_ratios(predicted[2:], truth)) == 0


def test_calibration_recovers_the_box_scale_of_a_detector(tiny_detector, layer):
    found = tiny_detector.detect_layer(layer, score_threshold=0.0)
    centre, size = _centres(found)
    truth = np.concatenate([centre - size * 0.3, centre + size * 0.3], 1)
    result = calibrate_box_scale(tiny_detector, [make_sample(layer, truth, np.zeros(len(truth)))], score_threshold=0.0)
    assert result["pairs"] == len(found) > 0 and result["box_scale"] == pytest.approx(0.6, abs=0.01)
    assert tiny_detector.box_scale == 1.0
