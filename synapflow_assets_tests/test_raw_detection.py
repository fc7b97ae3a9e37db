"""The detector at a physical scale: rendered raw-like layers, the pixel-size estimate, resampling to the
model's pixel size and back, training on the renderer, and the gate's raw-like validation set."""

import re

import numpy as np
import polars as pl
import pytest
from PIL import Image

from synapflow_assets.cli import main
from synapflow_assets.detection.data import raw_like_samples, resample
from synapflow_assets.detection.evaluation import detection_scores
from synapflow_assets.detection.gate import validation_score
from synapflow_assets.detection.inference import SpineDetector
from synapflow_assets.detection.invivo import INVIVO_IOU, invivo_layers
from synapflow_assets.detection.real_data import shared_data_root
from synapflow_assets.detection.registry import SHIPPED_FOLDER
from synapflow_assets.detection.training import VAL_RAW_SEED, TrainConfig, train
from synapflow_assets.imaging.readers import read_volume
from synapflow_assets.imaging.scale import estimate_pixel_size
from synapflow_assets.synthetic.raw_layer import RAW_SPINE_TYPES, RawLayerParams, render_raw_layer

#: Clean enough fields that the dendrite is the brightest tube: the estimate's stated regime.
CLEAN = RawLayerParams(
    dendrite_radius_um=(0.55, 0.55), n_debris=(0, 3), n_axons=(0, 1), peak_photons=(50, 400), field_um=30.0
)


def test_rendered_layer_has_raw_statistics_and_boxes_of_every_type():
    layers = [render_raw_layer(np.random.default_rng([3, k])) for k in range(6)]
    labels = np.concatenate([layer.labels for layer in layers])
    assert set(labels.tolist()) == set(range(len(RAW_SPINE_TYPES)))
    for layer in layers:
        h, w = layer.image.shape
        assert layer.image.dtype in (np.uint8, np.uint16) and h == w == round(46.0 / layer.pixel_size_um)
        assert 0.05 <= layer.pixel_size_um <= 0.3
        assert (layer.boxes[:, 2:] > layer.boxes[:, :2]).all() and (layer.boxes >= 0).all() and (layer.boxes <= w).all()
        zero_share = float((layer.image == 0).mean())
        assert zero_share < 0.5, "a raw layer has a noisy background, not a masked one"
        assert 0.5 < float(np.median(layer.spine_size_um)) < 3.0


def test_scale_estimate_recovers_the_pixel_size_of_rendered_layers_within_20_percent():
    for pixel in (0.06, 0.12, 0.24):
        estimates = [
            estimate_pixel_size(
                render_raw_layer(np.random.default_rng([11, k]), CLEAN, pixel_size_um=pixel).image
            ).pixel_size_um
            for k in range(5)
        ]
        ratios = np.array([np.nan if e is None else e / pixel for e in estimates])
        assert np.isnan(ratios).sum() <= 1 and 0.8 <= float(np.nanmedian(ratios)) <= 1.2, (pixel, np.round(ratios, 2))


def test_a_layer_without_structure_gets_no_estimate():
    noise = np.random.default_rng(0).poisson(20, (128, 128)).astype(np.uint16)
    assert estimate_pixel_size(np.full((64, 64), 7, np.uint16)).pixel_size_um is None
    assert estimate_pixel_size(noise).pixel_size_um is None or estimate_pixel_size(noise).ridge_pixels < 50


def test_a_png_without_pixel_size_is_read_with_an_estimated_one(tmp_path):
    layer = render_raw_layer(np.random.default_rng([11, 0]), CLEAN, pixel_size_um=0.12)
    folder = tmp_path / "day00"
    folder.mkdir()
    Image.fromarray(layer.image).save(folder / "day00_layer00.png")
    volume = read_volume(folder)
    assert volume.voxel_size_source == "estimated"
    assert volume.voxel_size_um[1] == volume.voxel_size_um[2] == pytest.approx(0.12, rel=0.2)
    assert volume.metadata["pixel_size_estimate"]["dendrite_width_px"] > 5
    stated = read_volume(folder, pixel_size_um=0.2)
    assert stated.voxel_size_source == "settings" and stated.voxel_size_um[2] == 0.2
    assert read_volume(folder, estimate_pixel_size=False).voxel_size_source == "default"


@pytest.fixture(scope="module")
def detector():
    model = SpineDetector.load(SHIPPED_FOLDER, device="cpu")
    model.pixel_size_um = model.pixel_size_um or 0.12
    return model


def _centres(frame):
    table = frame.select("xmin", "ymin", "xmax", "ymax").to_numpy()
    return (table[:, :2] + table[:, 2:]) / 2


@pytest.mark.parametrize("zoom", [1.5, 2.0])
def test_boxes_come_back_in_the_layer_frame_at_any_pixel_size(detector, zoom):
    layer = render_raw_layer(np.random.default_rng([21, 0]), CLEAN, pixel_size_um=0.12)
    image = layer.image.astype(np.float32)
    reference = detector.detect_layer(image, 0.3, pixel_size_um=0.12)
    finer = resample(image, zoom)
    boxes = detector.detect_layer(finer, 0.3, pixel_size_um=0.12 / zoom)
    assert len(reference) >= 5
    h, w = finer.shape
    assert boxes["xmax"].max() <= w and boxes["ymax"].max() <= h and boxes["xmin"].min() >= 0
    back = _centres(boxes) / zoom
    distance = np.linalg.norm(_centres(reference)[:, None] - back[None], axis=2)
    found = (distance.min(axis=1) <= 2.0).mean()
    assert found >= 0.8, f"only {found:.0%} of the boxes found again at {zoom}x finer pixels"
    size = (boxes["xmax"] - boxes["xmin"]).median() / zoom
    assert size == pytest.approx((reference["xmax"] - reference["xmin"]).median(), rel=0.25)


def test_without_a_pixel_size_the_detector_estimates_it(detector):
    layer = render_raw_layer(np.random.default_rng([11, 1]), CLEAN, pixel_size_um=0.12)
    estimate = estimate_pixel_size(layer.image).pixel_size_um
    assert detector.zoom_for(detector.layer_pixel_size(layer.image, None)) == pytest.approx(
        estimate / detector.pixel_size_um
    )
    assert detector.zoom_for(detector.layer_pixel_size(layer.image, 0.24)) == pytest.approx(
        0.24 / detector.pixel_size_um
    )


def test_a_tiny_model_trains_on_raw_like_layers_and_its_loss_falls(tmp_path, no_shared_data):
    lines = []
    config = TrainConfig(
        steps=60,
        model="tiny",
        batch_size=2,
        sim_crop=96,
        crop=96,
        raw_layers=6,
        val_raw_layers=2,
        pool_weights=(("raw", 1.0),),
        sim_animals=1,
        sim_size=64,
        val_sim_animals=1,
        eval_every=60,
        checkpoint_every=60,
        lr=1e-3,
        warmup_steps=5,
        pretrain_steps=0,
    )
    final = train(config, tmp_path / "run", log=lines.append)
    losses = [float(m.group(1)) for line in lines if (m := re.match(r"step \d+ loss ([\d.]+) \(raw\)", line))]
    assert len(losses) == 6 and all("(raw)" in line for line in lines if line.startswith("step "))
    assert np.mean(losses[-2:]) < 0.92 * losses[0], losses
    entry = final["best"]["entry"]
    assert final["best"]["metric"] == "val_raw.ap50" and entry["val_raw"]["seed"] == VAL_RAW_SEED
    assert entry["val_raw"]["n_images"] == 2 and 0.0 <= entry["val_raw"]["ap50"] <= 1.0
    score, source = validation_score(entry)
    assert score == entry["val_raw"]["ap50"] and source.startswith(f"raw:seed={VAL_RAW_SEED},layers=2")
    saved = SpineDetector.load(tmp_path / "run" / "model")
    assert saved.pixel_size_um == config.pixel_size_um


def test_the_gate_prefers_the_raw_like_set_over_older_sets():
    entry = {
        "val_raw": {"ap50": 0.7, "n_truth": 900, "n_images": 16, "seed": VAL_RAW_SEED},
        "val_real": {"ap50": 0.9, "n_truth": 102},
        "val_sim": {"ap50": 0.8, "n_truth": 215},
    }
    assert validation_score(entry) == (0.7, f"raw:seed={VAL_RAW_SEED},layers=16,n_truth=900")
    del entry["val_raw"]
    assert validation_score(entry) == (0.9, "real:n_truth=102")


def test_raw_like_training_samples_carry_their_pixel_size():
    samples = raw_like_samples(6, 5)
    again = raw_like_samples(6, 5, workers=2)
    assert all(s.pixel_size_um is not None and 0.05 <= s.pixel_size_um <= 0.3 for s in samples)
    assert [s.name for s in samples] == [s.name for s in again]
    assert all(
        np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
        for a, b in zip(samples, again, strict=False)
    )


#: Measured with the shipped weights at defaults (see bench/detector.py); asserted with margin.
INVIVO_MIN_FOUND = 0.6
INVIVO_MAX_COUNT_RATIO = 1.5


@pytest.mark.skipif(not invivo_layers(), reason="../shared/data/real_layers absent")
def test_detect_finds_the_spines_of_raw_in_vivo_layers_at_default_settings(tmp_path, capsys):
    """The command a new user runs first, with no flag: the earlier detector's spines are found on raw layers."""
    layers = invivo_layers()
    out = tmp_path / "boxes.csv"
    paths = [str(shared_data_root() / "real_layers" / f"{layer.name}.png") for layer in layers]
    assert main(["detect", *paths, "--out", str(out), "--model", str(SHIPPED_FOLDER)]) == 0
    assert "estimated from the dendrite width" in capsys.readouterr().out
    ours = pl.read_csv(out).with_columns(image=pl.col("filename").str.replace(r"\.png$", ""))
    truth = pl.concat([layer.peer for layer in layers])
    scores = detection_scores(truth, ours, per_type=False, iou_threshold=INVIVO_IOU)
    assert scores["recall"] >= INVIVO_MIN_FOUND, scores
    assert scores["n_predicted"] <= INVIVO_MAX_COUNT_RATIO * scores["n_truth"], scores
