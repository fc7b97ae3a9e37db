import dagster as dg
import numpy as np

from synapflow_assets.definitions import defs
from synapflow_assets.defs.partitions import register_sessions, session_partition_key
from synapflow_assets.defs.resources import DataLake, DetectionSettings, ImagingSettings
from synapflow_assets.defs.volume_assets import raw_volume
from synapflow_assets.imaging.ome_zarr import read_volume_zarr
from synapflow_assets.imaging.readers import content_hash

from .conftest import write_stack


def materialize(instance, lake, animal, session):
    register_sessions(instance, [(animal, session)])
    return dg.materialize(
        [raw_volume],
        instance=instance,
        resources={"lake": lake, "imaging": ImagingSettings(), "detection": DetectionSettings(source="imported")},
        partition_key=session_partition_key(animal, session),
        raise_on_error=False,
    )


def test_definitions_load():
    assert dg.AssetKey("raw_volume") in defs.resolve_all_asset_keys()


def test_raw_volume_for_two_partitions_reads_back(tmp_path, instance):
    lake = DataLake(root=str(tmp_path))
    true = np.zeros((6, 2))
    true[:, 0] = np.arange(6) * 0.8 - 2.4
    write_stack(tmp_path / "landing" / "m1" / "day00.tif", shifts=true, seed=1)
    write_stack(tmp_path / "landing" / "m2" / "day04.tif", seed=2, spacing=2.0, pixel_um=0.1)
    for animal, session in (("m1", "day00"), ("m2", "day04")):
        assert materialize(instance, lake, animal, session).success

    data, scale, attrs = read_volume_zarr(lake.volume_path("m1", "day00"))
    assert data.shape == (6, 96, 128) and data.dtype == np.uint16
    np.testing.assert_allclose(scale, (1.5, 0.2, 0.2))
    np.testing.assert_allclose(attrs["layer_shifts_px"], true, atol=0.3)
    assert attrs["input_hash"] == content_hash(tmp_path / "landing" / "m1" / "day00.tif")
    np.testing.assert_allclose(read_volume_zarr(lake.volume_path("m2", "day04"))[1], (2.0, 0.1, 0.1))

    event = instance.get_latest_materialization_event(raw_volume.key)
    assert event.asset_materialization.tags["dagster/data_version"] == content_hash(
        tmp_path / "landing" / "m2" / "day04.tif"
    )
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(raw_volume.key, "registration_residual"), dg.AssetCheckKey(raw_volume.key, "shape_and_dtype")]
    )
    assert len(checks) == 2 and all(c.status.value == "SUCCEEDED" for c in checks.values())


def test_bad_file_fails_clearly_and_leaves_nothing_behind(tmp_path, instance):
    lake = DataLake(root=str(tmp_path))
    write_stack(tmp_path / "landing" / "m1" / "day00.tif")
    assert materialize(instance, lake, "m1", "day00").success
    bad = tmp_path / "landing" / "m1" / "day04.tif"
    bad.write_bytes(b"this is not an image")
    result = materialize(instance, lake, "m1", "day04")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "day04.tif" in failure.step_failure_data.error.message
    assert sorted(p.name for p in (tmp_path / "volumes" / "m1").iterdir()) == ["day00.mip.png", "day00.ome.zarr"]
    write_stack(bad, seed=5)
    assert materialize(instance, lake, "m1", "day04").success
    assert lake.volume_path("m1", "day04").is_dir()
