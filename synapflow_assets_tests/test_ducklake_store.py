"""The DuckLake feature store (catalog in SQLite, data files in a folder): the same tables as the embedded DuckDB
file, and read-only queries in the sandbox (many writer processes at once: test_ducklake_writers.py)."""

import contextlib
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from synapflow_assets.store.ducklake import DuckLake, extension_file, store_location
from synapflow_assets.store.feature_store import FeatureStore, StoreError, query, stored_partitions
from synapflow_assets.store.sql_sandbox import QueryRejected

LINEAGE = {
    "run_id": "r1",
    "code_version": "1",
    "model": None,
    "model_version": None,
    "input_versions": "{}",
    "computed_at": datetime(2026, 1, 2, tzinfo=UTC),
}


def lake(tmp_path) -> DuckLake:
    return DuckLake(f"sqlite:{tmp_path / 'catalog.sqlite'}", str(tmp_path / "lake_data"))


def session_tables(animal: str, session: str, n: int, shift: float = 0.0) -> dict[str, pl.DataFrame]:
    spines = pl.DataFrame({"spine_id": list(range(n)), "x_um": [i + shift for i in range(n)], "size": [1.5] * n})
    return {"sessions": pl.DataFrame({"n_spines": [n]}), "spine_features": spines}


def write_lab(store: FeatureStore) -> None:
    for animal in ("m1", "m2"):
        for index, session in enumerate(("day00", "day04")):
            store.replace_partition(session_tables(animal, session, 3 + index), animal, session, LINEAGE)
        dynamics = pl.DataFrame({"session": ["day00", "day04"], "session_index": [0, 1], "gained": [0, 2]})
        store.replace_partition({"dynamics": dynamics}, animal, None, LINEAGE)
    store.replace_partition(session_tables("m1", "day04", 2, shift=0.5), "m1", "day04", LINEAGE)


def table(store, name: str) -> pl.DataFrame:
    frame = query(store, f"SELECT * FROM {name}")
    return frame.sort(frame.columns)


def test_setting_is_validated_in_one_line():
    assert store_location("data/features.duckdb") == Path("data/features.duckdb")
    assert store_location("ducklake:sqlite:/x.sqlite", "/d") == DuckLake("sqlite:/x.sqlite", "/d")
    with pytest.raises(
        StoreError,
        match=r"^SYNAPFLOW_STORE=ducklake:postgres:host=db password=\*\*\*: .*"
        r"needs SYNAPFLOW_STORE_DATA",
    ):
        store_location("ducklake:postgres:host=db password=secret")
    with pytest.raises(StoreError, match="name the catalog"):
        store_location("ducklake:", "/d")
    assert "secret" not in str(DuckLake("postgres:host=db password=secret", "s3://b/p"))


def test_extensions_load_from_their_packages():
    assert extension_file("ducklake").name == "ducklake.duckdb_extension"
    assert extension_file("sqlite_scanner").is_file()


def test_lake_tables_equal_the_embedded_store(tmp_path):
    embedded, lakestore = tmp_path / "features.duckdb", lake(tmp_path)
    for store in (embedded, lakestore):
        with FeatureStore(store) as writer:
            write_lab(writer)
            assert writer.stored_versions("spine_features", "m1", "day04") == {("{}", "1")}
    for name in ("sessions", "spine_features", "dynamics", "spines_per_session", "survival_curve"):
        expected, found = table(embedded, name), table(lakestore, name)
        assert found.equals(expected), name
    assert table(lakestore, "spine_features").filter(pl.col("session") == "day04", animal="m1")["x_um"].to_list() == [
        0.5,
        1.5,
    ]
    assert stored_partitions(lakestore, "dynamics") == {("m1",), ("m2",)}
    assert stored_partitions(lake(tmp_path / "none"), "dynamics") == set()


def test_sandbox_on_the_lake_is_read_only(tmp_path):
    store = lake(tmp_path)
    FeatureStore(store).connection.close()
    for sql in ("DELETE FROM sessions", "ATTACH 'x.db'", "SELECT * FROM read_csv('/etc/passwd')"):
        with pytest.raises(QueryRejected):
            query(store, sql)
    for sql in ("SELECT * FROM '/etc/passwd'", "SELECT * FROM glob('/*')"):
        with pytest.raises((QueryRejected, duckdb.Error)):
            query(store, sql)
    settings = "SELECT current_setting('enable_external_access') AS e, current_setting('lock_configuration') AS l"
    assert query(store, settings).row(0) == (False, True)
    assert query(store, "SELECT count(*) AS n FROM spine_features")["n"].to_list() == [0]


def test_snapshots_of_both_backends_hold_the_same_tables(tmp_path):
    from synapflow_assets.tools.snapshot import make_snapshot

    manifests = []
    for name, store in (("embedded", tmp_path / "embedded" / "features.duckdb"), ("lake", lake(tmp_path))):
        with FeatureStore(store) as writer:
            write_lab(writer)
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        manifests.append(make_snapshot(root, "paper", store=store).manifest["tables"])
    assert manifests[0] == manifests[1]
    assert manifests[0]["spine_features"]["rows"] == 12


def test_an_embedded_store_moves_into_a_lake_as_documented(tmp_path):
    """The `INSERT ... SELECT` path of docs/scaling.md."""
    old, target = tmp_path / "features.duckdb", lake(tmp_path)
    with FeatureStore(old) as writer:
        write_lab(writer)
    with FeatureStore(target) as moved:
        moved.connection.execute(f"ATTACH '{old}' AS old (READ_ONLY)")
        moved.connection.execute("BEGIN TRANSACTION")
        for name in ("sessions", "detections", "spines", "spine_features", "tracks", "dynamics", "corrections"):
            moved.connection.execute(f"DELETE FROM {name}")
            moved.connection.execute(f"INSERT INTO {name} BY NAME SELECT * FROM old.{name}")
        moved.connection.execute("COMMIT")
    for name in ("sessions", "spine_features", "dynamics", "size_changes"):
        assert table(target, name).equals(table(old, name)), name


KILLED_MID_COMMIT = """
import os, sqlite3, sys
catalog = sqlite3.connect(sys.argv[1], isolation_level=None)
catalog.execute('PRAGMA cache_size=1')
catalog.execute('BEGIN IMMEDIATE')
catalog.execute('CREATE TABLE half_written(x)')
catalog.executemany('INSERT INTO half_written VALUES (?)', [(b'x' * 1000,) for _ in range(3000)])
os._exit(9)
"""


def test_a_writer_killed_mid_commit_leaves_the_lake_readable(tmp_path):
    store = lake(tmp_path)
    with FeatureStore(store) as writer:
        writer.replace_partition(session_tables("m1", "day00", 3), "m1", "day00", LINEAGE)
    subprocess.run([sys.executable, "-c", KILLED_MID_COMMIT, str(store.catalog_file)], check=False)
    assert Path(f"{store.catalog_file}-journal").exists()  # what SQLite leaves for the next writer to roll back

    assert query(store, "SELECT count(*) AS n FROM spine_features")["n"].to_list() == [3]
    assert not Path(f"{store.catalog_file}-journal").exists()
    with contextlib.closing(sqlite3.connect(store.catalog_file)) as catalog:
        assert not catalog.execute("SELECT name FROM sqlite_master WHERE name = 'half_written'").fetchall()
