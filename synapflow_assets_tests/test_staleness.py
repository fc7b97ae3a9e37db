"""Staleness is Dagster's own: `ingest`, the landing sensor and the UI's stale badge give one answer.

The UI's answer is taken from Dagster's stale-status resolver over the full
definitions (what the web server computes for the badge); `ingest` and the
sensor call `stale_session_assets`.
"""

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from synapflow_assets.definitions import defs
from synapflow_assets.defs.graph import SESSION_ASSETS
from synapflow_assets.defs.landed_inputs import landed_volume
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.defs.staleness import stale_session_assets
from synapflow_assets.imaging.landing import scan_landing
from synapflow_assets.pipeline import process_landed
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

IMPORTED = DetectionSettings(source="imported")
PARTITION = "m1/day00"


@pytest.fixture
def lab(tmp_path):
    sim = simulate_animal(SimulationParams(shape=(6, 128, 128)), n_sessions=1, seed=2)[0]
    write_session(sim, tmp_path / "landing", "m1", "day00")
    return DataLake(root=str(tmp_path)), tmp_path / "landing" / "m1" / "day00.tif"


def ui_status(instance) -> dict[str, StaleStatus]:
    """The stale badge of each session asset of the partition, as the web server computes it."""
    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
    return {a.key.to_user_string(): resolver.get_status(a.key, PARTITION) for a in SESSION_ASSETS}


def observations(instance) -> int:
    return len(
        instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=landed_volume.key, asset_partitions=[PARTITION]), 100
        ).records
    )


def staleness(instance, lake):
    (item,), _ = scan_landing(lake.landing)
    return stale_session_assets(instance, item, detection=IMPORTED, lake=lake)


def test_ingest_and_the_ui_agree_and_a_changed_file_is_stale_for_both(lab, instance):
    lake, tif = lab
    assert ui_status(instance) == {name: StaleStatus.MISSING for name in ui_status(instance)}
    assert staleness(instance, lake).reasons == {a.key.to_user_string(): "never materialized" for a in SESSION_ASSETS}
    assert not process_landed(instance, lake, detection=IMPORTED).failed
    assert set(ui_status(instance).values()) == {StaleStatus.FRESH}
    assert process_landed(instance, lake, detection=IMPORTED).up_to_date == [PARTITION, "m1"]
    assert observations(instance) == 1  # an unchanged input adds no event

    data = bytearray(tif.read_bytes())
    data[-1] ^= 0xFF
    tif.write_bytes(bytes(data))
    found = staleness(instance, lake)
    assert found.stale == [a.key for a in SESSION_ASSETS]
    assert found.reasons["raw_volume"] == "landed_volume has a new data version"
    assert found.reasons["detections_2d"] == "raw_volume runs"
    status = ui_status(instance)
    assert status["raw_volume"] == StaleStatus.STALE and observations(instance) == 2
    report = process_landed(instance, lake, detection=IMPORTED)
    assert report.materialized[0] == f"{PARTITION} (raw_volume, detections_2d, spines_3d, spine_features)"
    assert set(ui_status(instance).values()) == {StaleStatus.FRESH}


def test_a_changed_detection_setting_leaves_the_volume_fresh(lab, instance):
    lake, _ = lab
    assert not process_landed(instance, lake, detection=IMPORTED).failed
    (lake.landing / "m1" / "synapflow.yaml").write_text("detection:\n  score_threshold: 0.5\n")
    found = staleness(instance, lake)
    assert [k.to_user_string() for k in found.stale] == ["detections_2d", "spines_3d", "spine_features"]
    assert found.reasons["detections_2d"] == "detection_inputs has a new data version"
    assert ui_status(instance)["raw_volume"] == StaleStatus.FRESH
