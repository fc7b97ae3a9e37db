"""Tests of the simulated single-plane MIP time-lapse (synapflow_assets.synthetic.mip_timelapse)."""

import itertools
import json
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import tifffile
from click.testing import CliRunner
from polars.testing import assert_frame_equal
from scipy import ndimage

from synapflow_assets.cli import app
from synapflow_assets.detection.imported import load_detections
from synapflow_assets.imaging.readers import read_volume
from synapflow_assets.synthetic import read_truth
from synapflow_assets.synthetic.mip_profile import PROFILES
from synapflow_assets.synthetic.mip_timelapse import FIRST_DAY, simulate_mip_series

IN_VIEW = ["present", "new"]


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    """One series of three sessions, written through ``synapflow simulate --profile mip-timelapse``."""
    out = tmp_path_factory.mktemp("mip")
    args = ["simulate", "--profile", "mip-timelapse", "--out", str(out), "--animals", "1", "--sessions", "3"]
    result = CliRunner().invoke(app, [*args, "--detections"])
    assert result.exit_code == 0, result.output
    return sorted((out / "series01").glob("*.tif"))


@pytest.fixture(scope="module")
def truth_only():
    """Truth of three series per profile, eight sessions each (no images)."""
    return {
        name: [simulate_mip_series(profile=name, sessions=8, seed=seed, render=False) for seed in range(3)]
        for name in PROFILES
    }


def test_files_are_single_uint8_planes_without_a_pixel_size(landing):
    assert [t.stem for t in landing] == ["s00", "s01", "s02"]
    times = []
    for tif in landing:
        with tifffile.TiffFile(tif) as f:
            assert len(f.pages) == 1 and not f.is_imagej and not f.is_ome
            page = f.pages.first
            assert page.shape == (1024, 1024) and page.dtype == np.uint8
            assert page.tags["XResolution"].value == (72, 1) and page.tags["ResolutionUnit"].value == 2  # inch
        sidecar = json.loads(tif.with_suffix(".json").read_text())
        assert "voxel_size_um" not in sidecar
        volume = read_volume(tif)
        assert volume.data.shape == (1, 1024, 1024) and volume.data.dtype == np.uint8
        assert volume.voxel_size_source in ("estimated", "default")
        assert set(volume.metadata["voxel_size_sources"].values()) <= {"estimated", "default"}
        assert tif.with_suffix(".done").exists()
        times.append(volume.acquired_at)
        image = volume.data[0]
        assert 0 < (image == 255).mean() < 0.02  # the brightest pixels saturate
        assert np.median(image) < 80
    assert times == sorted(times) and len({t.date() for t in times}) == 1
    assert all(timedelta(minutes=10) <= b - a <= timedelta(hours=3) for a, b in itertools.pairwise(times))


def test_truth_is_readable_and_consistent(landing):
    sizes = set()
    for tif in landing:
        boxes, spines = read_truth(tif)
        transform = json.loads(tif.with_suffix(".transform.json").read_text())
        sizes.add(transform["pixel_size_um"])
        assert 0.02 <= transform["pixel_size_um"] <= 0.05
        in_view = spines.filter(pl.col("status").is_in(IN_VIEW))
        assert sorted(boxes["spine_id"].to_list()) == sorted(in_view["spine_id"].to_list())
        assert (boxes["layer"] == 0).all()
        assert ((boxes["xmin"] >= 0) & (boxes["xmax"] <= 1023) & (boxes["xmin"] < boxes["xmax"])).all()
        assert ((boxes["ymin"] >= 0) & (boxes["ymax"] <= 1023) & (boxes["ymin"] < boxes["ymax"])).all()
        # each head lies in its box
        joined = boxes.join(in_view, on="spine_id")
        assert ((joined["x"] >= joined["xmin"]) & (joined["x"] <= joined["xmax"])).all()
        assert ((joined["y"] >= joined["ymin"]) & (joined["y"] <= joined["ymax"])).all()
    assert len(sizes) == 1


def test_out_of_view_is_marked_by_position_not_as_elimination(truth_only):
    for series in truth_only["mip-days"]:
        for s in series:
            spines = s.session.spines
            inside = (
                (pl.col("x").is_between(0, 1023)) & (pl.col("y").is_between(0, 1023)) & (pl.col("z").is_between(0, 6))
            )
            assert spines.filter(pl.col("status") == "out_of_view").filter(inside).is_empty()
            assert spines.filter(pl.col("status").is_in(IN_VIEW)).filter(~inside).is_empty()
    statuses = pl.concat(s.session.spines for series in truth_only["mip-timelapse"] for s in series)
    assert (statuses["status"] == "out_of_view").sum() > 0


def test_motion_counts_and_pixel_sizes(truth_only):
    for name, all_series in truth_only.items():
        for series in all_series:
            assert len({s.pixel_size_um for s in series}) == 1 and 0.02 <= series[0].pixel_size_um <= 0.05
            drift = np.array([s.session.drift_px for s in series])
            steps = np.hypot(*np.diff(drift[:, 1:], axis=0).T)
            assert ((steps >= 25) & (steps <= 110)).all(), (name, steps)
            np.testing.assert_allclose(steps, [np.hypot(*s.shift_px) for s in series[1:]])
            assert (np.abs(np.diff([s.session.rotation_deg for s in series])) < 1.5).all()
            brightness = np.array([s.session.brightness for s in series])
            assert ((brightness >= 0.7) & (brightness <= 1.3)).all()
            counts = [s.session.spines["status"].is_in(IN_VIEW).sum() for s in series]
            assert all(14 <= c <= 40 for c in counts), (name, counts)


def test_dendrites_run_along_y(truth_only, landing):
    for series in truth_only["mip-timelapse"]:
        spines = series[0].session.spines.filter(pl.col("status").is_in(IN_VIEW))
        for _, group in spines.group_by("dendrite_id"):
            if len(group) < 6:
                continue
            cov = np.cov(group["y"].to_numpy(), group["x"].to_numpy())
            main = np.linalg.eigh(cov)[1][:, -1]
            assert np.degrees(np.arccos(abs(main[0]))) < 20
    image = ndimage.gaussian_filter(tifffile.imread(landing[0]).astype(float), 4)
    gy, gx = np.gradient(image)
    assert (gx**2).sum() > 2 * (gy**2).sum()


def test_survival_and_turnover(truth_only):
    def rates(series):
        first = set(series[0].session.spines.filter(pl.col("status").is_in(IN_VIEW))["spine_id"].to_list())
        survival, eliminated = [], []
        for prev, s in itertools.pairwise(series):
            spines = s.session.spines
            mine = spines.filter(pl.col("spine_id").is_in(list(first)))
            reference = len(first) - (mine["status"] == "out_of_view").sum()
            survival.append((mine["status"] == "present").sum() / reference)
            before = set(prev.session.spines.filter(pl.col("status").is_in(IN_VIEW))["spine_id"].to_list())
            lost = spines.filter((pl.col("status") == "eliminated") & pl.col("spine_id").is_in(list(before)))
            eliminated.append(len(lost) / len(before))
        return np.array(survival), np.array(eliminated)

    for series in truth_only["mip-timelapse"]:
        survival, _ = rates(series)
        assert survival.min() >= 0.95
    for series in truth_only["mip-timelapse"]:  # hours apart on one day
        assert len({s.acquired_at.date() for s in series}) == 1
    eliminations = np.concatenate([rates(series)[1] for series in truth_only["mip-days"]])
    assert 0.04 <= eliminations.mean() <= 0.2
    assert min(rates(series)[0][-1] for series in truth_only["mip-days"]) < 0.8
    gaps = [b.acquired_at - a.acquired_at for series in truth_only["mip-days"] for a, b in itertools.pairwise(series)]
    assert all(timedelta(days=1) < g < timedelta(days=5) for g in gaps)


def test_detections_miss_dim_spines_and_stack_duplicates(landing):
    missed, duplicated, found = 0, 0, 0
    for tif in landing:
        boxes, _ = read_truth(tif)
        detections = load_detections(tif.with_suffix(".detections.csv"), (1, 1024, 1024))
        visibility = json.loads(tif.with_suffix(".transform.json").read_text())["visibility"]
        cx = ((detections["xmin"] + detections["xmax"]) / 2).to_numpy()
        cy = ((detections["ymin"] + detections["ymax"]) / 2).to_numpy()
        for spine_id, x0, y0, x1, y1 in boxes.select("spine_id", "xmin", "ymin", "xmax", "ymax").rows():
            hits = int(((cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)).sum())
            found += hits > 0
            duplicated += hits > 1
            if hits == 0:
                missed += 1
                assert visibility[str(spine_id)] < 0.45  # only dim spines are missed
    assert missed > 0 and found > 0
    assert duplicated >= 0.05 * found


def test_seeds_are_reproducible(landing):
    series_seed = int(np.random.SeedSequence([0, 0]).generate_state(1)[0])
    again = simulate_mip_series(sessions=2, seed=series_seed, skip_render=(1,), start=FIRST_DAY)
    np.testing.assert_array_equal(again[0].session.volume[0], tifffile.imread(landing[0]))
    for mip, tif in zip(again, landing, strict=False):  # session k does not depend on how many sessions follow it
        boxes, spines = read_truth(tif)
        assert_frame_equal(mip.session.spines, spines)
        assert_frame_equal(mip.session.boxes, boxes, check_exact=False)
        assert json.loads(tif.with_suffix(".json").read_text())["acquired_at"] == mip.acquired_at.isoformat()
    other = simulate_mip_series(sessions=1, seed=series_seed + 1, render=False)
    assert other[0].pixel_size_um != again[0].pixel_size_um
    assert isinstance(again[1].acquired_at, datetime) and again[1].session.volume is None
