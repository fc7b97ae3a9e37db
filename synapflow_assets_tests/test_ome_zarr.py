import json

import numpy as np
import pytest

from synapflow_assets.imaging.ome_zarr import read_mip, read_volume_zarr, write_volume


def test_volume_round_trip_with_ngff_multiscales(tmp_path):
    data = np.random.default_rng(0).integers(0, 4000, (5, 64, 96), dtype=np.uint16)
    target = write_volume(
        tmp_path / "day00.ome.zarr", data, (1.0, 0.12, 0.15), mip=data.max(0), attributes={"input_hash": "abc"}
    )
    back, scale, attrs = read_volume_zarr(target)
    np.testing.assert_array_equal(back, data)
    assert scale == (1.0, 0.12, 0.15) and attrs == {"input_hash": "abc"}
    np.testing.assert_array_equal(read_mip(target), data.max(0))
    level2, scale2, _ = read_volume_zarr(target, level=2)
    assert level2.shape == (5, 16, 24) and scale2 == (1.0, 0.48, 0.6)
    meta = json.loads((target / "zarr.json").read_text())["attributes"]["ome"]
    assert meta["version"] == "0.5"
    assert [a["unit"] for a in meta["multiscales"][0]["axes"]] == ["micrometer"] * 3


def test_failed_write_leaves_old_volume_and_no_temporary_folder(tmp_path):
    data = np.ones((2, 32, 32), dtype=np.uint16)
    target = write_volume(tmp_path / "v.ome.zarr", data, (1, 1, 1))
    with pytest.raises(TypeError):
        write_volume(target, data * 2, (1, 1, 1), attributes={"bad": object()})
    np.testing.assert_array_equal(read_volume_zarr(target)[0], data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.ome.zarr"]
