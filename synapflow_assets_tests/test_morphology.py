"""Spine morphology (head diameter, neck length, head volume, shaft-normalised size) on rendered spines of known
shape, and the pieces it is built from (half-maximum widths, the PSF model, the neck path)."""

import numpy as np
import polars as pl
import pytest

from synapflow_assets.defs.feature_assets import _feature_schema
from synapflow_assets.features import FEATURE_COLUMNS, FEATURE_UNITS, spine_features
from synapflow_assets.features.distance import head_and_junction
from synapflow_assets.features.neck import chain_length
from synapflow_assets.features.psf import fwhm_table, half_max_width, radius_from_fwhm
from synapflow_assets.synthetic import SimulationParams
from synapflow_assets.synthetic.morphology import Dendrite, Spines
from synapflow_assets.synthetic.render import dendrite_points, render, spine_points
from synapflow_assets.synthetic.truth import boxes_table
from synapflow_assets.tracking.spines import summarize_spines

PARAMS = SimulationParams(shape=(12, 160, 256), layer_jitter_px=0)
VOX = PARAMS.voxel_size_um
#: (neck length, head radius, elongation) of the rendered spines: a long thin neck, a mushroom, a stubby spine.
SHAPES = {"thin": (2.0, 0.35, 1.0), "mushroom": (1.0, 0.65, 1.1), "stubby": (0.0, 0.5, 0.8)}


def _scene(brightness: float = 1.0, z_offset_um: float = 0.0, seed: int = 0):
    """A straight dendrite along x at y = 6 um with the three spines of :data:`SHAPES` pointing up (+y)."""
    x = np.arange(-2.0, 33.0, 0.12)
    z = 6.0 + z_offset_um
    centre = np.column_stack([np.full_like(x, z), np.full_like(x, 6.0), x])
    tangent = np.tile([0.0, 0.0, 1.0], (len(x), 1))
    dendrite = Dendrite(centre, tangent, 0.5, 0.5)
    n = len(SHAPES)
    neck, radius, elong = (np.array([s[k] for s in SHAPES.values()]) for k in range(3))
    spines = Spines(
        spine_id=np.arange(1, n + 1),
        dendrite_id=np.zeros(n, np.int64),
        type_code=np.array([2, 0, 1]),
        base_um=np.column_stack([np.full(n, z), np.full(n, 6.5), [6.0, 15.0, 24.0]]),
        direction=np.tile([0.0, 1.0, 0.0], (n, 1)),
        neck_length_um=neck,
        neck_radius_um=np.full(n, 0.09),
        head_radius_um=radius,
        head_elongation=elong,
    )
    d_pts, d_w = dendrite_points([dendrite], VOX)
    s_pts, s_w = spine_points(spines, VOX)
    vox = np.asarray(VOX)
    points = np.concatenate([d_pts / vox, (s_pts / vox).reshape(-1, 3)])
    weights = np.concatenate([d_w, s_w.ravel()])
    rng = np.random.default_rng(seed)
    volume = render(PARAMS, points, weights, brightness, np.zeros((PARAMS.shape[0], 2)), rng)
    head_px = spines.head_centre_um / vox
    boxes = boxes_table(PARAMS, spines.spine_id, spines.type_code, s_pts / vox, head_px, spines.head_radius_um)
    return volume, boxes.rename({"spine_id": "id"}), spines


def _features(volume, boxes) -> pl.DataFrame:
    spines = summarize_spines(boxes, VOX).with_columns(type=pl.lit(None, pl.String))
    return spine_features(volume, boxes, spines, VOX)


@pytest.fixture(scope="module")
def scene():
    volume, boxes, spines = _scene()
    return _features(volume, boxes), spines


def test_head_diameter_of_known_heads(scene):
    f, spines = scene
    np.testing.assert_allclose(f["head_diameter_um"].to_numpy(), 2 * spines.head_radius_um, atol=0.12)


def test_neck_length_long_thin_neck_and_stubby_spine(scene):
    f, _spines = scene
    neck = dict(zip(SHAPES, f["neck_length_um"].to_numpy(), strict=False))
    assert neck["thin"] == pytest.approx(2.0, abs=0.25)
    assert neck["mushroom"] == pytest.approx(1.0, abs=0.25)
    assert neck["stubby"] < 0.2


def test_head_volume_in_um3_orders_the_heads(scene):
    f, spines = scene
    vol = f["head_volume_um3"].to_numpy()
    np.testing.assert_allclose(vol, spines.head_volume_um3, rtol=0.5)
    assert list(np.argsort(vol)) == list(np.argsort(spines.head_volume_um3))
    np.testing.assert_allclose(f["shaft_diameter_um"].to_numpy(), 1.0, atol=0.15)


def test_brightness_and_focus_changes_leave_sizes_within_ten_percent(scene):
    f, _ = scene
    volume, boxes, _ = _scene(brightness=1.3, z_offset_um=0.4, seed=1)
    g = _features(volume, boxes)
    for column in ("head_volume_um3", "size_shaft_um"):
        np.testing.assert_allclose(g[column].to_numpy(), f[column].to_numpy(), rtol=0.1, err_msg=column)
    np.testing.assert_allclose(g["head_diameter_um"].to_numpy(), f["head_diameter_um"].to_numpy(), atol=0.06)


def test_every_feature_column_has_a_unit_in_the_schema(scene):
    assert set(FEATURE_COLUMNS) <= set(FEATURE_UNITS)
    assert FEATURE_UNITS["head_volume_um3"][0] == "um^3"
    assert all(FEATURE_UNITS[c][0] == "um" for c in ("head_diameter_um", "neck_length_um", "size_shaft_um"))
    schema = {c.name: c.description for c in _feature_schema(scene[0]).columns}
    assert schema["head_volume_um3"].endswith("[um^3]") and schema["neck_length_um"].endswith("[um]")


# ---------------------------------------------------------------- the pieces


def test_half_max_width_of_gaussians_and_pedestals():
    x = np.arange(-40, 40.25, 0.25)
    sigma = np.array([2.0, 3.0, 5.0])
    g = np.exp(-0.5 * (x[None] / sigma[:, None]) ** 2)
    width, offset = half_max_width(g, 0.25, centre_window=8)
    np.testing.assert_allclose(width, 2.3548 * sigma, rtol=0.01)
    np.testing.assert_allclose(offset, 0.0)
    # a pedestal on one side (a dendrite beside a head) is not counted: base = mean of the two side minima
    ramp = g[1] + 0.2 * (x > 0)
    w, _ = half_max_width(ramp[None], 0.25, centre_window=8)
    assert w[0] == pytest.approx(2.3548 * 3.0, rel=0.1)


def test_psf_model_inverts_and_tends_to_the_diameter():
    radius, width = fwhm_table(0.144, 1.0)
    assert np.all(np.diff(width) >= 0)
    assert width[0] == pytest.approx(2.3548 * 0.144, rel=0.02)  # a point: the PSF's own width
    back = radius_from_fwhm(width[40:], psf_sigma_xy_um=0.144, psf_sigma_z_um=1.0)
    np.testing.assert_allclose(back, radius[40:], rtol=1e-6)
    assert np.isnan(radius_from_fwhm([np.nan], psf_sigma_xy_um=0.144, psf_sigma_z_um=1.0)[0])
    big = radius_from_fwhm([4.0], psf_sigma_xy_um=0.144, psf_sigma_z_um=1.0, shape="cylinder")[0]
    assert 2.0 < big < 2.5  # a semicircle-like profile: FWHM a little below the diameter


def test_chain_length_uses_unbiased_steps():
    straight = np.column_stack([np.zeros(11), np.arange(11)])
    diagonal = np.column_stack([np.arange(11), np.arange(11)])
    assert chain_length(straight) == pytest.approx(10 * 0.948)
    assert chain_length(diagonal) == pytest.approx(10 * 1.343)
    assert chain_length(straight[:1]) == 0.0


def test_neck_path_is_kept_from_head_peak_to_junction():
    volume, boxes, _ = _scene()
    row = boxes.filter((pl.col("id") == 1) & (pl.col("layer") == 6)).row(0, named=True)
    x0, y0, x1, y1 = (int(np.ceil(row["xmin"])), int(np.ceil(row["ymin"])), int(row["xmax"]), int(row["ymax"]))
    g = 15
    crop = volume[6, max(y0 - g, 0) : y1 + g + 1, x0 - g : x1 + g + 1]
    inner = np.zeros(crop.shape, bool)
    inner[y0 - max(y0 - g, 0) : y1 - max(y0 - g, 0) + 1, g : g + x1 - x0 + 1] = True
    r = head_and_junction(crop, inner)
    assert r.reason == "ok"
    path = r.neck_path_yx
    assert np.abs(np.diff(path, axis=0)).max() <= 1  # 8-connected
    assert r.dendrite_mask[tuple(path[-1])] and not r.dendrite_mask[tuple(path[0])]
    assert np.hypot(*(path[0] - r.head_yx)) < 2  # starts at the head peak
    assert r.path_length_px * 0.12 == pytest.approx(2.0 + 0.35, abs=0.35)
