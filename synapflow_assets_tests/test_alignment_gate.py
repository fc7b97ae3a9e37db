"""The alignment gate judges correspondence against a null model (the same field flipped), not texture."""

import numpy as np
import pytest
from scipy import ndimage

from synapflow_assets.tracking.align import AlignParams, align_sessions


def world(seed: int, size: int = 800) -> np.ndarray:
    """Two wavy dendrites along y with spines on both sides: a sparse field like a lab's MIP time-lapse."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.zeros((size, size), np.float32)
    for _ in range(2):
        line = rng.uniform(150, size - 150) + 10 * np.sin(yy / rng.uniform(60, 120) + rng.uniform(0, 6))
        image += np.exp(-0.5 * ((xx - line) / 5.0) ** 2)
        for y in rng.uniform(0, size, 25).astype(int):
            x = line[y, 0] + rng.choice([-1, 1]) * rng.uniform(14, 22)
            image += rng.uniform(0.4, 1.0) * np.exp(-0.5 * (((xx - x) ** 2 + (yy - y) ** 2) / 4.5**2))
    return ndimage.gaussian_filter(image, 1.5)


def view(image: np.ndarray, dy: int, dx: int, seed: int, size: int = 480, brightness: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    crop = image[150 + dy : 150 + dy + size, 150 + dx : 150 + dx + size] * brightness
    return np.clip(200 * crop + 20 + rng.normal(0, 6, crop.shape), 0, 255).astype(np.uint8)[None]


@pytest.mark.parametrize("dy,dx", [(60, -25), (-90, 40), (30, 100)])
def test_same_field_with_dendrites_along_y_passes_and_another_field_fails(dy, dx):
    same_world, other_world = world(3), world(4)
    reference = view(same_world, 0, 0, seed=1)
    same = align_sessions(reference, view(same_world, dy, dx, seed=2, brightness=0.75))
    other = align_sessions(reference, view(other_world, dy, dx, seed=2))
    assert same.ok, same.problem()
    assert np.allclose(same.shift_yx, (-dy, -dx), atol=1.0), same.shift_yx
    assert same.margin >= AlignParams.min_margin > other.margin
    assert not other.ok and "no correspondence" in other.problem() and "flipped" in other.problem()
    assert f"{other.peak:.1f}" in other.problem() and f"{other.decoy_peak:.1f}" in other.problem()


def test_the_margin_comes_from_the_parameters_used():
    same_world = world(5)
    step = align_sessions(view(same_world, 0, 0, seed=1), view(same_world, 40, 40, seed=2), AlignParams(min_margin=50))
    assert step.min_margin == 50 and not step.ok and "min_margin 50" in step.problem()


def spines_along_y(seed: int, n: int = 30, size: int = 1024, side: float = 36.0) -> np.ndarray:
    """Spine centres on two dendrites along y (x fixed per dendrite, random y)."""
    rng = np.random.default_rng(seed)
    x = rng.choice([300.0, 700.0], n) + rng.choice([-25.0, 25.0], n)
    return np.stack([rng.uniform(0, size, n), x], axis=1)


def as_spines(yx: np.ndarray, side: float = 36.0):
    import polars as pl

    return pl.DataFrame(
        {
            "ymin": yx[:, 0] - side / 2,
            "ymax": yx[:, 0] + side / 2,
            "xmin": yx[:, 1] - side / 2,
            "xmax": yx[:, 1] + side / 2,
        }
    )


def test_spines_decide_the_gate_against_shifted_decoys():
    from synapflow_assets.tracking.correspondence import spine_correspondence

    rng = np.random.default_rng(0)
    earlier = spines_along_y(1)
    shift = np.array([60.0, -30.0])
    kept = earlier[rng.random(len(earlier)) < 0.8] + shift + rng.normal(0, 3, (1, 2))  # 80% re-detected, jittered
    same = spine_correspondence(as_spines(earlier), as_spines(kept), lambda yx: yx + shift, (1024, 1024))
    assert same.decisive and same.ok and same.matched >= 0.7 and same.decoy <= 0.35, same.describe()
    # another field whose dendrites run at the same x: the alignment lays them on each other, the spines differ
    other = spine_correspondence(as_spines(earlier), as_spines(spines_along_y(2)), lambda yx: yx, (1024, 1024))
    assert other.decisive and not other.ok, other.describe()
    assert other.matched < other.decoy + 0.2
    few = spine_correspondence(as_spines(earlier[:3]), as_spines(kept[:3]), lambda yx: yx + shift, (1024, 1024))
    assert not few.decisive  # too few spines: the image test decides


def test_a_few_spines_re_found_by_chance_leave_the_decision_to_the_image():
    """5 of 8 spines re-found where the decoys reach a third: more than the decoys, but chance (tail 0.08) -- two
    unrelated fields of the MIP stand-in over days did this. 8 of 11 against a quarter is not chance."""
    from synapflow_assets.tracking.correspondence import MAX_CHANCE, Correspondence

    by_chance = Correspondence(matched=5 / 8, decoy=1 / 3, n_spines=8, radius_px=29.0)
    assert by_chance.ok and by_chance.chance > MAX_CHANCE and by_chance.verdict is None
    assert "chance 0.08" in by_chance.describe()
    same = Correspondence(matched=8 / 11, decoy=0.25, n_spines=11, radius_px=20.0)
    assert same.verdict is True and same.chance < MAX_CHANCE
    assert Correspondence(matched=0.4, decoy=0.35, n_spines=20, radius_px=20.0).verdict is False
    assert Correspondence(matched=1.0, decoy=0.0, n_spines=3, radius_px=20.0).verdict is None  # too few


def test_fine_layers_are_aligned_binned_and_the_result_is_at_full_resolution():
    from synapflow_assets.tracking.align import binning_factor

    assert binning_factor(0.025, 0.1) == 4 and binning_factor(0.12, 0.1) == 1 and binning_factor(None, 0.1) == 1
    same_world = world(6)
    reference, moving = view(same_world, 0, 0, seed=1), view(same_world, 50, -70, seed=2)
    full = align_sessions(reference, moving)
    binned = align_sessions(reference, moving, pixel_size_um=0.05)  # binned 2x
    assert binned.shape_yx == full.shape_yx == (480, 480)
    assert np.allclose(binned.shift_yx, (-50, 70), atol=1.0) and np.allclose(full.shift_yx, (-50, 70), atol=1.0)
    grid = np.stack(np.meshgrid(np.arange(40, 440, 40), np.arange(40, 440, 40), indexing="ij"), -1).reshape(-1, 2)
    full_error, binned_error = (np.linalg.norm(a.map_points(grid) - (grid - [50, -70]), axis=1) for a in (full, binned))
    assert np.median(binned_error) < 1.0 and np.median(binned_error) <= np.median(full_error)
    # forward then back, in the overlap, at full resolution (0.06 um here; blocks of 32 working px fit a pure
    # translation with some noise, which the default smoothing trades for following real deformations)
    assert binned.consistency_px < 1.5
