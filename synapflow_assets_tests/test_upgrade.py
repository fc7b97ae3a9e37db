"""Migrations run once, by ``upgrade``: ingest, the sensors and store writers only check the layout version.

An older data root (a feature store without the schema stamp and with fewer
columns; an instance with materializations made before the landed inputs were
observed) is refused with one line naming the root and the command; ``upgrade``
brings it to the current version, after which a rerun works and a second
``upgrade`` does nothing. A new root is created at the current version. The
archive of a root with the ``animal|session`` partitions is in
``test_partition_upgrade``.
"""

import re
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from synapflow_assets.__main__ import main
from synapflow_assets.defs.graph import SESSION_ASSETS, process_sessions_job
from synapflow_assets.defs.layout import LAYOUT_VERSION, check_layout, stamped_version, upgrade_data_root
from synapflow_assets.defs.partitions import register_sessions
from synapflow_assets.defs.resources import DataLake, DetectionSettings
from synapflow_assets.defs.staleness import asset_graph, stale_session_assets
from synapflow_assets.imaging.landing import scan_landing
from synapflow_assets.pipeline import process_landed, run_job
from synapflow_assets.store.feature_store import SCHEMA, VIEWS, FeatureStore, lineage_columns, upgrade_store
from synapflow_assets.store.layout_version import SCHEMA_VERSION, UPGRADES, OutdatedDataRoot, stored_version
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

IMPORTED = DetectionSettings(source="imported")
PARTITION = "m1/day00"
MORPHOLOGY = (
    "head_diameter_um",
    "head_diameter_fwhm_um",
    "neck_length_um",
    "head_volume_um3",
    "size_shaft_um",
    "shaft_diameter_um",
)
"""The columns of spine_features that only the ALTERs of schema 1 created (in new stores too)."""
ADDED = re.findall(r"ALTER TABLE (\w+) ADD COLUMN IF NOT EXISTS (\w+)", UPGRADES[1])


def columns(path: Path) -> dict[str, list[str]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        rows = connection.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE table_name != 'schema_version' "
            "ORDER BY table_name, column_index"
        ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


def old_store(path: Path) -> Path:
    """A store as written before the stamp: the columns `upgrade.sql` adds missing, no corrections table, no views."""
    with duckdb.connect(str(path)) as connection:
        connection.execute(SCHEMA)
        for table, column in ADDED:
            connection.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        connection.execute("DROP TABLE corrections")
    return path


def test_a_new_store_is_created_at_the_current_schema_as_an_old_new_one_was(tmp_path):
    with FeatureStore(tmp_path / "new.duckdb") as store:
        assert stored_version(store.connection) == SCHEMA_VERSION
    before = tmp_path / "before.duckdb"  # what a new store was: CREATE TABLEs without the morphology, every ALTER
    with duckdb.connect(str(before)) as connection:
        connection.execute(SCHEMA)
        for column in MORPHOLOGY:
            connection.execute(f"ALTER TABLE spine_features DROP COLUMN {column}")
        connection.execute(UPGRADES[1])
        connection.execute(VIEWS)
    assert columns(tmp_path / "new.duckdb") == columns(before)


def test_an_old_store_is_refused_until_upgraded_and_upgrade_is_then_a_no_op(tmp_path):
    path = old_store(tmp_path / "features.duckdb")
    with pytest.raises(OutdatedDataRoot) as refused:
        FeatureStore(path)
    assert str(refused.value) == (
        f"{tmp_path}: data root made by an older SynapFlow (feature store features.duckdb at schema 1, this version "
        f"needs {SCHEMA_VERSION}); run `python -m synapflow_assets upgrade --data {tmp_path}` once, then run again"
    )
    assert upgrade_store(path) == 1
    assert {t: set(c) for t, c in columns(path).items()} == {
        t: set(c) for t, c in columns(FeatureStore(tmp_path / "new.duckdb").path).items()
    }
    with FeatureStore(path) as store:
        lineage = lineage_columns("r", "1", None, None, {})
        store.replace_partition(
            {"dynamics": pl.DataFrame({"session": ["d0"], "formation_low": [0.1]})}, "m", None, lineage
        )
    assert upgrade_store(path) is None


@pytest.fixture
def lab(tmp_path):
    sim = simulate_animal(SimulationParams(shape=(6, 128, 128)), n_sessions=1, seed=2)[0]
    write_session(sim, tmp_path / "landing", "m1", "day00")
    return DataLake(root=str(tmp_path)), tmp_path / "landing" / "m1" / "day00.tif"


def staleness(instance, lake):
    (item,), _ = scan_landing(lake.landing)
    return stale_session_assets(instance, item, detection=IMPORTED, lake=lake)


def pointer(instance, asset="raw_volume") -> str:
    record = instance.fetch_materializations(dg.AssetKey(asset), 1).records[0]
    return record.asset_materialization.tags["dagster/input_event_pointer/landed_volume"]


def made_before_observations(instance, lake) -> None:
    """Materializations as made before the landed inputs were observed (pointer NULL), in an unstamped instance."""
    register_sessions(instance, [("m1", "day00")])
    resources = {"lake": lake, "detection": IMPORTED}
    assert run_job(process_sessions_job, instance, PARTITION, [a.key for a in SESSION_ASSETS], resources).success
    assert pointer(instance) == "NULL"


def test_a_new_data_root_is_stamped_without_any_migration(lab, instance):
    lake, _ = lab
    assert stamped_version(instance) is None
    assert not process_landed(instance, lake, detection=IMPORTED).failed
    assert stamped_version(instance) == LAYOUT_VERSION
    assert stored_version(duckdb.connect(str(lake.store_path), read_only=True)) == SCHEMA_VERSION
    assert upgrade_data_root(instance, lake, detection=IMPORTED) == []


def test_materializations_older_than_their_inputs_are_refused_then_given_the_provenance_by_upgrade(lab, instance):
    lake, tif = lab
    made_before_observations(instance, lake)
    line = (
        f"{lake.root}: data root made by an older SynapFlow (Dagster instance with materializations older than "
        f"their landed-input observations ({PARTITION})); run `python -m synapflow_assets upgrade --data "
        f"{lake.root}` once, then run again"
    )
    with pytest.raises(OutdatedDataRoot) as refused:
        process_landed(instance, lake, detection=IMPORTED)
    assert str(refused.value) == line
    assert pointer(instance) == "NULL" and stamped_version(instance) is None  # nothing migrated on the way

    assert upgrade_data_root(instance, lake, detection=IMPORTED) == [
        "1 session partitions given the provenance of their landed inputs"
    ]
    assert pointer(instance).isdigit() and stamped_version(instance) == LAYOUT_VERSION
    assert staleness(instance, lake).stale == []  # the input it read is the one landed: nothing recomputed
    assert upgrade_data_root(instance, lake, detection=IMPORTED) == []
    report = process_landed(instance, lake, detection=IMPORTED)
    assert report.failed == {} and report.materialized == ["m1 (spine_tracks, spine_dynamics)"]

    tif.write_bytes(tif.read_bytes() + b"\0")
    assert staleness(instance, lake).reasons["raw_volume"] == "landed_volume has a new data version"


def test_a_materialization_whose_input_changed_before_the_upgrade_runs_again(lab, instance):
    lake, tif = lab
    made_before_observations(instance, lake)
    tif.write_bytes(tif.read_bytes() + b"\0")
    assert upgrade_data_root(instance, lake, detection=IMPORTED) == [
        "1 session partitions given the provenance of their landed inputs; changed since computed, run by the "
        f"next ingest: {PARTITION} raw_volume"
    ]
    assert "dagster/input_event_pointer/landed_volume" not in (
        instance.fetch_materializations(dg.AssetKey("raw_volume"), 1).records[0].asset_materialization.tags
    )
    found = staleness(instance, lake)
    assert found.stale == [a.key for a in SESSION_ASSETS] and "landed_volume" in found.reasons["raw_volume"]
    resolver = CachingStaleStatusResolver(instance, asset_graph(), LoadingContextForTest(instance))
    assert resolver.get_status(dg.AssetKey("raw_volume"), PARTITION) == StaleStatus.STALE
    report = process_landed(instance, lake, detection=IMPORTED)
    assert report.failed == {} and report.materialized[0].startswith(f"{PARTITION} (raw_volume")
    assert pointer(instance).isdigit()


def test_the_commands_refuse_an_old_root_in_one_line_and_upgrade_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "landing").mkdir()
    old_store(tmp_path / "features.duckdb")
    assert main(["ingest", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {tmp_path}: data root made by an older SynapFlow (feature store features.duckdb at schema 1, this "
        f"version needs {SCHEMA_VERSION}); run `python -m synapflow_assets upgrade --data {tmp_path}` once, then "
        "run again"
    ]
    assert main(["upgrade", "--data", str(tmp_path)]) == 0
    assert (
        capsys.readouterr().out == f"{tmp_path}: {tmp_path / 'features.duckdb'}: feature store upgraded from schema 1\n"
    )
    assert main(["upgrade", "--data", str(tmp_path)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["ingest", "--data", str(tmp_path)]) == 0
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        check_layout(instance, DataLake(root=str(tmp_path)))  # stamped by the first ingest
        assert stamped_version(instance) == LAYOUT_VERSION


def test_a_root_of_a_newer_version_is_refused_not_upgraded(tmp_path, instance):
    from synapflow_assets.defs.layout import LAYOUT_KEY
    from synapflow_assets.store.feature_store import StoreError

    instance.run_storage.set_cursor_values({LAYOUT_KEY: str(LAYOUT_VERSION + 1)})
    with pytest.raises(
        StoreError, match=rf"^{re.escape(str(tmp_path))}: its Dagster instance is at layout {LAYOUT_VERSION + 1}, newer"
    ):
        check_layout(instance, DataLake(root=str(tmp_path)))


def test_a_root_at_layout_2_is_refused_then_its_3d_spines_adopt_their_depth_settings(lab, instance):
    """Layout 2 linked boxes through depth with run config: `upgrade` gives each `spines_3d` the observation of
    the `depth` settings it was made with (the defaults), so nothing is recomputed; a lab whose settings now
    differ sees those `spines_3d` run again."""
    from synapflow_assets.defs.layout import LAYOUT_KEY

    lake, _ = lab
    made_before_observations(instance, lake)
    instance.run_storage.set_cursor_values({LAYOUT_KEY: "2"})
    with pytest.raises(OutdatedDataRoot, match=f"Dagster instance at layout 2, this version needs {LAYOUT_VERSION}"):
        check_layout(instance, lake)
    assert upgrade_data_root(instance, lake, detection=IMPORTED) == [
        "1 session partitions given the provenance of their landed inputs",
        f"Dagster instance raised from layout 2 to {LAYOUT_VERSION}",
    ]
    spines = instance.fetch_materializations(dg.AssetKey("spines_3d"), 1).records[0].asset_materialization
    assert spines.tags["dagster/input_event_pointer/depth_settings"].isdigit()
    assert staleness(instance, lake).stale == []

    (lake.landing / "m1" / "synapflow.yaml").write_text("depth:\n  fill_gaps: 0\n")
    report = process_landed(instance, lake, detection=IMPORTED)
    assert report.failed == {} and report.materialized[0] == f"{PARTITION} (spines_3d, spine_features)"
