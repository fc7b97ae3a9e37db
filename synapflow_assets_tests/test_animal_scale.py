"""One pixel size per animal: estimates pooled and recorded once; sizes of one animal compared with a tolerance."""

import numpy as np
import polars as pl
import pytest
import tifffile
from scipy import ndimage

from synapflow_assets.defs.track_assets import check_one_scale
from synapflow_assets.imaging.animal_scale import landed_scale, pool_estimates, read_record, same_size
from synapflow_assets.imaging.readers import read_volume


def tube_layer(width_px: float, seed: int, size: int = 256) -> np.ndarray:
    """A uint8 layer with two dendrites along y of a given half-maximum width, noise and no pixel size."""
    rng = np.random.default_rng(seed)
    x = np.arange(size)[None, :].astype(float)
    y = np.arange(size)[:, None].astype(float)
    sigma = width_px / 2.355
    image = np.zeros((size, size))
    for centre in (70.0, 180.0):
        line = centre + 4 * np.sin(y / 40 + seed)
        image += np.exp(-0.5 * ((x - line) / sigma) ** 2)
    image = ndimage.gaussian_filter(image, 0.5) * 180 + 20 + rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_pool_estimates_median_and_spread():
    pooled = pool_estimates({"a": 0.021, "b": 0.026, "c": 0.023, "d": None})
    assert pooled is not None and pooled.pixel_size_um == pytest.approx(0.023)
    assert pooled.spread == pytest.approx(0.026 / 0.021 - 1) and set(pooled.estimates) == {"a", "b", "c"}
    assert pool_estimates({"a": None}) is None
    assert "median of 3 session" in pooled.describe()


def test_sessions_estimated_10_percent_apart_are_read_at_one_size(tmp_path):
    landing = tmp_path / "landing"
    (landing / "m1").mkdir(parents=True)
    for k, width in enumerate((10.0, 11.0, 10.5)):
        tifffile.imwrite(landing / "m1" / f"s{k}.tif", tube_layer(width, k))
    own = [read_volume(landing / "m1" / f"s{k}.tif").voxel_size_um[2] for k in range(3)]
    assert max(own) / min(own) - 1 > 0.05, own  # the sessions alone would disagree
    record = tmp_path / "volumes" / "m1" / "pixel_size.json"
    scale = landed_scale(landing, "m1", record)
    assert scale is not None and record.exists() and len(scale.estimates) == 3
    assert scale.pixel_size_um == pytest.approx(float(np.median(own)), rel=1e-6)
    sizes = {
        f"s{k}": read_volume(landing / "m1" / f"s{k}.tif", animal_pixel_size_um=scale.pixel_size_um).voxel_size_um
        for k in range(3)
    }
    assert len(set(sizes.values())) == 1
    check_one_scale("m1", {k: (v, "estimated") for k, v in sizes.items()})
    # recorded once: a new session does not move the animal's size
    tifffile.imwrite(landing / "m1" / "s3.tif", tube_layer(20.0, 3))
    assert landed_scale(landing, "m1", record) == read_record(record) == scale
    # a stated size is never replaced
    assert landed_scale(landing, "m1", tmp_path / "other.json", pixel_size_um=0.1) is None


def test_a_stated_2x_difference_fails_in_one_line():
    sizes = {"day00": ((1.0, 0.1, 0.1), "settings"), "day04": ((1.0, 0.2, 0.2), "imagej")}
    with pytest.raises(ValueError) as error:
        check_one_scale("mouse01", sizes)
    message = str(error.value)
    assert "\n" not in message and "day00 0.1 um (settings)" in message and "day04 0.2 um (imagej)" in message
    assert same_size({"a": 0.1, "b": 0.103}) and not same_size({"a": 0.1, "b": 0.11})
    check_one_scale("mouse01", {"a": ((1.0, 0.1, 0.1), "imagej"), "b": ((1.0, 0.1004, 0.1004), "ome")})


def test_pixel_size_of_a_spine_table_gates_links_in_um():
    from synapflow_assets.tracking.time import TimeLinkParams, link_costs

    def spines(x, pixel_um):
        return pl.DataFrame(
            {
                "spine_id": [1],
                "first_layer": [0],
                "last_layer": [0],
                "xmin": [x - 20.0],
                "xmax": [x + 20.0],
                "ymin": [80.0],
                "ymax": [120.0],
                "x_px": [x],
                "x_um": [x * pixel_um],
                "in_view": [True],
            }
        )

    # boxes of 40 px overlapping with centres 18 px apart: linked at 0.03 um/px (0.54 um), not at 0.12 (2.2 um)
    assert len(link_costs(spines(100.0, 0.03), spines(118.0, 0.03), TimeLinkParams(max_cost=0.5))) == 1
    assert len(link_costs(spines(100.0, 0.12), spines(118.0, 0.12), TimeLinkParams(max_cost=0.5))) == 0
