import dagster as dg
import polars as pl

from synapflow_assets.defs.feature_assets import spine_features
from synapflow_assets.defs.partitions import session_partition_key
from synapflow_assets.defs.plausibility_checks import DESCRIPTIONS
from synapflow_assets.defs.resources import DataLake, DetectionSettings

IMPORTED = DetectionSettings(source="imported")
from synapflow_assets.pipeline import process_landed
from synapflow_assets.store.feature_store import query
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

PARAMS = SimulationParams(shape=(16, 256, 256))


def stamps(lake, table, key="animal || '/' || session"):
    return dict(
        query(lake.store_path, f"SELECT {key} AS k, max(computed_at) AS t FROM {table} GROUP BY ALL").iter_rows()
    )


def test_store_is_recomputed_exactly_where_inputs_changed(tmp_path, instance):
    lake = DataLake(root=str(tmp_path))
    for animal, seed in (("m1", 1), ("m2", 2)):
        for sim in simulate_animal(PARAMS, n_sessions=3, seed=seed)[:2]:
            write_session(sim, tmp_path / "landing", animal, f"day{4 * sim.index:02d}")
    assert not process_landed(instance, lake, detection=IMPORTED).failed

    counts = query(lake.store_path, "SELECT animal, session, count(*) n FROM spine_features GROUP BY ALL ORDER BY ALL")
    spines = {(a, s): len(pl.read_parquet(lake.spines_path(a, s))) for a, s, _ in counts.rows()}
    assert {(a, s): n for a, s, n in counts.rows()} == spines
    lineage = query(
        lake.store_path,
        "SELECT DISTINCT model, code_version, run_id IS NOT NULL AS has_run FROM spine_features WHERE session = "
        "'day04' AND animal = 'm1'",
    )
    assert lineage.rows() == [("imported:day04.detections.csv", "4", True)]
    assert query(lake.store_path, "SELECT count(*) FROM dynamics").item() == 4
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("spine_dynamics"), name) for name in DESCRIPTIONS]
    )
    assert len(checks) == len(DESCRIPTIONS)  # the plausibility checks stay quiet on a simulated lab
    assert all(c.status.value == "SUCCEEDED" for c in checks.values()), {k.name: c.status for k, c in checks.items()}
    features_before, dynamics_before = stamps(lake, "spine_features"), stamps(lake, "dynamics", "animal")

    again = dg.materialize(
        [spine_features],
        instance=instance,
        resources={"lake": lake},
        partition_key=session_partition_key("m1", "day00"),
    )
    event = again.asset_materializations_for_node("spine_features")[0]
    assert event.metadata["unchanged"].value is True and stamps(lake, "spine_features") == features_before

    csv = tmp_path / "landing" / "m1" / "day04.detections.csv"
    table = pl.read_csv(csv)
    table.head(len(table) - 10).write_csv(csv)
    report = process_landed(instance, lake, detection=IMPORTED)
    assert report.materialized == [
        "m1/day04 (detections_2d, spines_3d, spine_features)",
        "m1 (spine_tracks, spine_dynamics)",
    ]
    after = stamps(lake, "spine_features")
    assert [k for k in after if after[k] != features_before[k]] == ["m1/day04"]
    dynamics_after = stamps(lake, "dynamics", "animal")
    assert dynamics_after["m2"] == dynamics_before["m2"] and dynamics_after["m1"] > dynamics_before["m1"]

    write_session(simulate_animal(PARAMS, n_sessions=3, seed=1)[2], tmp_path / "landing", "m1", "day08")
    report = process_landed(instance, lake, detection=IMPORTED)
    assert report.materialized == [
        "m1/day08 (raw_volume, detections_2d, spines_3d, spine_features)",
        "m1 (spine_tracks, spine_dynamics)",
    ]
    final = stamps(lake, "spine_features")
    assert {k for k in final if final[k] != after.get(k)} == {"m1/day08"}
    assert stamps(lake, "dynamics", "animal")["m2"] == dynamics_before["m2"]
    assert query(lake.store_path, "SELECT count(*) FROM dynamics WHERE animal = 'm1'").item() == 3

    exported = tmp_path / "export"
    from synapflow_assets.__main__ import main

    assert main(["export", "--out", str(exported), "--store", str(lake.store_path)]) == 0
    csv_rows = pl.read_csv(exported / "m1" / "day08.csv")
    assert csv_rows.columns[:10] == [
        "id",
        "filename",
        "width",
        "height",
        "class",
        "score",
        "xmin",
        "ymin",
        "xmax",
        "ymax",
    ]
    assert csv_rows["filename"][0].startswith("day08_layer")


def test_a_new_detector_version_replaces_exactly_the_detection_derived_rows(tmp_path, instance, embedded_registry):
    from synapflow_assets.defs.detector_assets import spine_detector
    from synapflow_assets.defs.volume_assets import raw_volume

    from .conftest import promote_shipped_copy

    lake = DataLake(root=str(tmp_path))
    for sim in simulate_animal(SimulationParams(shape=(6, 160, 192)), n_sessions=2, seed=4):
        write_session(sim, tmp_path / "landing", "m1", f"day{4 * sim.index:02d}")
    assert not process_landed(instance, lake).failed
    volumes = len(instance.fetch_materializations(raw_volume.key, limit=10).records)
    rows_before = query(lake.store_path, "SELECT session, count(*) FROM detections GROUP BY ALL ORDER BY ALL").rows()
    assert query(lake.store_path, "SELECT DISTINCT model_version FROM spine_features").rows() == [("1",)]
    features_before, dynamics_before = stamps(lake, "spine_features"), stamps(lake, "dynamics", "animal")
    assert process_landed(instance, lake).materialized == []

    assert promote_shipped_copy(lake.root, tmp_path / "v2").promoted
    dg.materialize([spine_detector], instance=instance, resources={"lake": lake})

    report = process_landed(instance, lake)
    assert report.materialized == [
        "m1/day00 (detections_2d, spines_3d, spine_features)",
        "m1/day04 (detections_2d, spines_3d, spine_features)",
        "m1 (spine_tracks, spine_dynamics)",
    ]
    assert len(instance.fetch_materializations(raw_volume.key, limit=10).records) == volumes
    for table in ("sessions", "detections", "spines", "spine_features", "tracks", "dynamics"):
        assert query(lake.store_path, f"SELECT DISTINCT model_version FROM {table}").rows() == [("2",)], table
    after = stamps(lake, "spine_features")
    assert all(after[k] > features_before[k] for k in features_before)
    assert stamps(lake, "dynamics", "animal")["m1"] > dynamics_before["m1"]
    assert (
        query(lake.store_path, "SELECT session, count(*) FROM detections GROUP BY ALL ORDER BY ALL").rows()
        == rows_before
    )
    assert process_landed(instance, lake).materialized == []
