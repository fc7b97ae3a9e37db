"""The dendrite length behind the density counts the dendrites that carry the spines, not an out-of-focus one."""

import numpy as np
import polars as pl
import pytest

from synapflow_assets.features.dendrite import SPINE_REACH_UM, session_density, spine_bearing


def two_dendrites() -> np.ndarray:
    """A sharp dendrite along y at x 60 and a wide blur (an out-of-focus dendrite) at x 200, in a 1-layer MIP."""
    x = np.arange(300, dtype=float)
    row = 200 * np.exp(-((x - 60) ** 2) / (2 * 4.0**2)) + 120 * np.exp(-((x - 200) ** 2) / (2 * 9.0**2))
    return np.broadcast_to(row, (240, 300))[None].copy()


def spines_at(points) -> pl.DataFrame:
    return pl.DataFrame({"y_px": [float(p[0]) for p in points], "x_px": [float(p[1]) for p in points]})


def test_only_the_dendrite_with_spines_counts():
    volume, voxel = two_dendrites(), (1.0, 0.1, 0.1)
    both = session_density(volume, 4, voxel)["dendrite_length_um"]
    carrying = session_density(volume, spines_at([(40, 80), (100, 42), (160, 78), (220, 44)]), voxel)
    assert carrying["dendrite_length_um"] == pytest.approx(24.0, rel=0.1)  # 240 px at 0.1 um/px
    assert both > 1.8 * carrying["dendrite_length_um"]  # with the blur counted
    assert carrying["spines_per_um"] == pytest.approx(4 / carrying["dendrite_length_um"])


def test_spines_out_of_reach_or_absent_keep_the_whole_mask():
    mask = np.zeros((50, 100), bool)
    mask[:, 10:16] = mask[:, 70:80] = True
    assert spine_bearing(mask, np.zeros((0, 2)), 5.0).sum() == mask.sum()
    assert spine_bearing(mask, [[25, 40]], 5.0).sum() == mask.sum()  # 24 px from both: no choice
    kept = spine_bearing(mask, [[25, 40], [10, 66]], 5.0)  # the second is 4 px from the band at x 70
    assert kept[:, 70:80].all() and not kept[:, 10:16].any()
    assert SPINE_REACH_UM == 3.0
