"""A data root and Dagster instance made by main at a925089 (``animal x session`` multi-partitions) are refused by
``ingest`` until ``upgrade`` moved them to ``animal/session`` partitions, without losing history or recomputing
anything the code did not change.

The archive holds what ``process_landed`` of that commit made from two animals
of two sessions each (m1: day00, day04; m2: day00, day06) with imported boxes:
the landing folder, the volumes and tables, ``features.duckdb`` and the
instance (its old layout had the phantom partitions m1|day06 and m2|day04).
"""

import tarfile
from pathlib import Path

import dagster as dg
import pytest

from synapflow_assets.defs.layout import upgrade_data_root
from synapflow_assets.defs.partition_upgrade import OLD_SESSIONS, old_layout, upgrade_partitions
from synapflow_assets.defs.partitions import ANIMALS, SESSIONS
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.pipeline import process_landed
from synapflow_assets.store.feature_store import query
from synapflow_assets.store.layout_version import OutdatedDataRoot

ARCHIVE = Path(__file__).parent / "data" / "lab_made_by_a925089.tar.xz"
SESSION_KEYS = ["m1/day00", "m1/day04", "m2/day00", "m2/day06"]
SESSION_ASSETS = ["raw_volume", "detections_2d", "spines_3d", "spine_features"]
#: What the code changed since the archive recomputes (by Dagster's code versions, not the upgrade): `spines_3d`
#: 1 -> 2 merges stacked duplicate boxes, so each session's spines and features and each animal run again.
CODE_CHANGED = [f"{key} (spines_3d, spine_features)" for key in SESSION_KEYS] + [
    f"{animal} (spine_tracks, spine_dynamics)" for animal in ("m1", "m2")
]


@pytest.fixture
def old_lab(tmp_path):
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(tmp_path, filter="data")
    root = tmp_path / "oldlab"
    with dg.DagsterInstance.from_config(str(root / "dagster")) as instance:
        yield root, instance


def latest(instance, asset, partition):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return records[0].asset_materialization if records else None


def test_the_old_layout_is_what_main_made(old_lab):
    _, instance = old_lab
    assert old_layout(instance)
    assert instance.get_dynamic_partitions(OLD_SESSIONS) == ["day00", "day04", "day06"]
    assert latest(instance, "spines_3d", "m1|day04") is not None


def test_upgrade_keeps_versions_and_history_and_nothing_is_recomputed(old_lab):
    root, instance = old_lab
    store = root / "features.duckdb"
    counts = {
        t: query(store, f"select count(*) as n from {t}")["n"][0] for t in ("spine_features", "tracks", "dynamics")
    }
    assert min(counts.values()) > 0
    old = {(a, k): latest(instance, a, k.replace("/", "|")) for a in SESSION_ASSETS for k in SESSION_KEYS}

    assert upgrade_partitions(instance) == SESSION_KEYS
    assert not old_layout(instance) and instance.get_dynamic_partitions(OLD_SESSIONS) == []
    assert instance.get_dynamic_partitions(SESSIONS.name) == SESSION_KEYS
    assert instance.get_dynamic_partitions(ANIMALS.name) == ["m1", "m2"]
    for (asset, key), before in old.items():
        after = latest(instance, asset, key)
        for tag in ("dagster/data_version", "dagster/code_version"):
            assert after.tags[tag] == before.tags[tag], (asset, key, tag)
        assert after.metadata.get("upstream_versions") == before.metadata.get("upstream_versions")
        assert latest(instance, asset, key.replace("/", "|")) == before  # the history stays
    assert upgrade_partitions(instance) == []

    lake = DataLake(root=str(root))
    assert upgrade_data_root(instance, lake, detection=DetectionSettings(source="imported")) == [
        "4 session partitions given the provenance of their landed inputs",
        f"{root / 'features.duckdb'}: feature store upgraded from schema 1",
    ]
    report = process_landed(instance, lake, detection=DetectionSettings(source="imported"))
    assert report.failed == {} and report.materialized == CODE_CHANGED
    for key in SESSION_KEYS:  # raw volumes and detections, whose code did not change, are kept
        for asset in ("raw_volume", "detections_2d"):
            assert (
                latest(instance, asset, key).tags["dagster/data_version"]
                == old[asset, key].tags["dagster/data_version"]
            )
    report = process_landed(instance, lake, detection=DetectionSettings(source="imported"))
    assert report.failed == {} and report.materialized == []
    assert sorted(report.up_to_date) == ["m1", *SESSION_KEYS[:2], "m2", *SESSION_KEYS[2:]]
    assert query(store, "select count(*) as n from dynamics")["n"][0] == counts["dynamics"]


def test_ingest_refuses_the_old_root_until_upgraded_and_a_new_session_runs_only_its_animal(old_lab):
    root, instance = old_lab
    from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

    lake = DataLake(root=str(root))
    with pytest.raises(
        OutdatedDataRoot, match=r"animal\|session partitions\); run `python -m synapflow_assets upgrade"
    ):
        process_landed(instance, lake, detection=DetectionSettings(source="imported"))
    assert old_layout(instance)  # nothing migrated on the way
    assert upgrade_data_root(instance, lake, detection=DetectionSettings(source="imported"))[0].startswith(
        "4 session partitions moved to animal/session"
    )
    assert process_landed(instance, lake, detection=DetectionSettings(source="imported")).materialized == CODE_CHANGED
    assert not old_layout(instance)
    third = simulate_animal(SimulationParams(shape=(6, 192, 192)), n_sessions=3, seed=4)[2]
    write_session(third, root / "landing", "m2", "day10")
    report = process_landed(instance, lake, detection=DetectionSettings(source="imported"))
    assert [m.split(" ")[0] for m in report.materialized] == ["m2/day10", "m2"]
    assert sorted(report.up_to_date) == ["m1", *SESSION_KEYS]
    assert instance.get_dynamic_partitions(SESSIONS.name) == [*SESSION_KEYS, "m2/day10"]
    assert SESSIONS.get_partition_keys(dynamic_partitions_store=instance) == [*SESSION_KEYS, "m2/day10"]


def test_ingest_refuses_in_one_line_and_the_upgrade_command_says_what_it_did(old_lab, monkeypatch, capsys):
    from synapflow_assets.__main__ import main

    root, _ = old_lab
    assert main(["ingest", "--data", str(root), "--source", "imported"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {root}: data root made by an older SynapFlow (Dagster instance with animal|session partitions); "
        f"run `python -m synapflow_assets upgrade --data {root}` once, then run again"
    ]
    assert main(["upgrade", "--data", str(root), "--source", "imported"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{root}: 4 session partitions moved to animal/session (m1/day00, m1/day04, m2/day00, m2/day06); their "
        "history stays on the run pages",
        f"{root}: 4 session partitions given the provenance of their landed inputs",
        f"{root}: {root / 'features.duckdb'}: feature store upgraded from schema 1",
    ]
    assert main(["upgrade", "--data", str(root)]) == 0
    assert "already at the current layout" in capsys.readouterr().out
