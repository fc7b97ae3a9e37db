"""A lab's single-plane MIP time-lapse (the simulated stand-in) through `ingest` with no option set."""

import dagster as dg
import polars as pl
import pytest

from synapflow_assets.defs.plausibility_checks import DESCRIPTIONS
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.imaging.animal_scale import read_record
from synapflow_assets.imaging.ome_zarr import read_volume_info
from synapflow_assets.pipeline import process_landed
from synapflow_assets.store.feature_store import query
from synapflow_assets.synthetic.mip_timelapse import simulate_mip_timelapse


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("timelapse")
    simulate_mip_timelapse(root / "landing", series=1, sessions=3, seed=5, detections=True)
    with dg.instance_for_test() as instance:
        report = process_landed(instance, DataLake(root=str(root)), detection=DetectionSettings(source="imported"))
        checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("spine_dynamics"), name) for name in DESCRIPTIONS]
        )
        spines_events = [
            e.asset_materialization
            for e in instance.fetch_materializations(dg.AssetKey("spines_3d"), limit=10).records
            if e.asset_materialization
        ]
    return root, report, checks, spines_events


def test_every_session_is_tracked_at_one_pooled_pixel_size(lab):
    root, report, _, _ = lab
    assert not report.failed, report.failed
    lake = DataLake(root=str(root))
    record = read_record(lake.pixel_size_record("series01"))
    assert record is not None and len(record.estimates) == 3
    voxels = {read_volume_info(lake.volume_path("series01", s))[1] for s in ("s00", "s01", "s02")}
    assert len(voxels) == 1 and next(iter(voxels))[2] == pytest.approx(record.pixel_size_um)
    dynamics = query(lake.store_path, "SELECT * FROM dynamics ORDER BY session_index")
    later = dynamics.filter(pl.col("session_index") > 0)
    assert len(dynamics) == 3
    assert (
        later.select(pl.col("survival_fraction", "formation_rate", "elimination_rate").null_count()).sum_horizontal()[0]
        == 0
    )
    assert later["survival_fraction"].min() >= 0.85, dynamics


def test_stacked_duplicates_are_merged_and_the_checks_pass(lab):
    _, _, checks, spines_events = lab
    assert sum(e.metadata["duplicates_merged"].value for e in spines_events) > 0
    assert len(checks) == len(DESCRIPTIONS)
    failed = {k.name: c.status.value for k, c in checks.items() if c.status.value != "SUCCEEDED"}
    assert not failed, failed


def test_the_report_lists_the_plausibility_checks(lab):
    from synapflow_assets.tools.report import build_report

    page = build_report(lab[0])
    assert "<h3>Plausibility</h3>" in page and page.count("<li>ok ") == len(DESCRIPTIONS)
    assert "events (0%) overlap another track" in page or "implausible" not in page


def test_a_png_time_lapse_ingests_one_file_per_session(tmp_path):
    """`<session>.png` sessions (8-bit, no pixel size, with their imported detections) are tracked."""
    import numpy as np
    import tifffile
    from PIL import Image

    from synapflow_assets.synthetic import SimulationParams, project_session, simulate_animal, write_session

    params = SimulationParams(shape=(8, 256, 256), layer_jitter_px=0.0)
    for sim in simulate_animal(params, n_sessions=2, seed=3):
        paths = write_session(project_session(sim), tmp_path / "landing", "m1", f"day{4 * sim.index:02d}")
        layer = tifffile.imread(paths["tif"]).astype(np.float64)
        grey = np.round(255 * (layer - layer.min()) / (layer.max() - layer.min())).astype(np.uint8)
        Image.fromarray(grey).save(paths["tif"].with_suffix(".png"))
        paths["tif"].unlink()
    with dg.instance_for_test() as instance:
        lake = DataLake(root=str(tmp_path))
        report = process_landed(instance, lake, detection=DetectionSettings(source="imported"))
    assert not report.failed, report.failed
    assert read_volume_info(lake.volume_path("m1", "day04"))[0] == (1, 256, 256)
    assert query(lake.store_path, "SELECT count(*) FROM dynamics WHERE animal = 'm1'").item() == 2
