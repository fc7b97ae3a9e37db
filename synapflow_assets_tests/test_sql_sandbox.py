"""The SQL sandbox of the feature store: user SQL reads the store and nothing else, and changes nothing."""

from pathlib import Path

import duckdb
import polars as pl
import pytest

from synapflow_assets.__main__ import main
from synapflow_assets.store.feature_store import FeatureStore, StoreError, lineage_columns, query
from synapflow_assets.store.sql_sandbox import (
    SANDBOX_CONFIG,
    QueryRejected,
    check_read_only,
    connect_sandboxed,
    run_read_query,
)

LINEAGE = lineage_columns("run-1", "1", "model-a", "v1", {"spine_tracks": "abc"})


@pytest.fixture
def store(tmp_path):
    """A small real feature store: one animal, two sessions, their spines, tracks and dynamics."""
    path = tmp_path / "store" / "features.duckdb"
    with FeatureStore(path) as writer:
        for index, (session, sizes) in enumerate([("d0", [1.0, 2.0, 4.0]), ("d1", [3.0, 5.0])]):
            writer.replace_partition(
                {
                    "sessions": pl.DataFrame(
                        {
                            "acquired_at": [f"2024-01-0{index + 1}"],
                            "layers": [6],
                            "n_spines": [len(sizes)],
                            "spines_per_um": [0.1 * len(sizes)],
                        }
                    ),
                    "spine_features": pl.DataFrame({"spine_id": list(range(len(sizes))), "size": sizes}),
                },
                "m1",
                session,
                LINEAGE,
            )
        writer.replace_partition(
            {
                "tracks": pl.DataFrame(
                    {
                        "session": ["d0", "d0", "d1"],
                        "session_index": [0, 0, 1],
                        "track_id": [1, 2, 1],
                        "spine_id": [0, 1, 0],
                        "status": ["present", "present", "eliminated"],
                        "confidence": [0.9, None, 0.4],
                        "reason": ["ok", None, "faint"],
                    }
                ),
                "dynamics": pl.DataFrame(
                    {
                        "session": ["d0", "d1"],
                        "session_index": [0, 1],
                        "survival_fraction": [1.0, 0.5],
                        "formation_rate": [0.0, 0.25],
                        "elimination_rate": [0.0, 0.5],
                    }
                ),
            },
            "m1",
            None,
            LINEAGE,
        )
    return path


@pytest.fixture
def other_db(tmp_path):
    """Another real DuckDB file beside the store, with one table of three rows."""
    path = tmp_path / "other.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute("CREATE TABLE t AS SELECT * FROM range(3) r(x)")
    connection.close()
    return path


def counts(path: Path) -> dict:
    """Rows per table of a store, read with a plain read-only connection."""
    connection = duckdb.connect(str(path), read_only=True)
    try:
        tables = [row[0] for row in connection.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        connection.close()


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def rejected(store: Path, sql: str, match: str) -> None:
    with pytest.raises(QueryRejected, match=match) as caught:
        query(store, sql)
    assert "\n" not in str(caught.value)


# --- the attacks, each refused by the statement check, and (where it is a second layer) by the connection itself


def test_copy_to_a_file_is_refused(store, tmp_path):
    before, target = files_under(tmp_path), tmp_path / "x.csv"
    rejected(
        store,
        f"COPY (SELECT 1) TO '{target}'",
        r"^sql: only read queries are allowed on the read-only store \(got COPY\)$",
    )
    rejected(store, f"SELECT 1; COPY (SELECT * FROM dynamics) TO '{target}'", r"got COPY")
    rejected(store, f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{target}'", r"got EXPLAIN COPY")
    with connect_sandboxed(store) as connection, pytest.raises(duckdb.PermissionException):
        connection.execute(f"COPY (SELECT 1) TO '{target}'")
    assert files_under(tmp_path) == before


def test_export_database_is_refused(store, tmp_path):
    before, target = files_under(tmp_path), tmp_path / "dump"
    rejected(store, f"EXPORT DATABASE '{target}'", r"got EXPORT\)")
    with connect_sandboxed(store) as connection, pytest.raises(duckdb.PermissionException):
        connection.execute(f"EXPORT DATABASE '{target}'")
    assert not target.exists() and files_under(tmp_path) == before


def test_another_database_cannot_be_attached_or_changed(store, other_db):
    stamp = (other_db.stat().st_mtime_ns, other_db.read_bytes())
    rejected(store, f"ATTACH '{other_db}' AS o (READ_WRITE)", r"got ATTACH\)")
    rejected(store, f"ATTACH '{other_db}' AS o (READ_WRITE); DELETE FROM o.t", r"got ATTACH\)")
    rejected(store, "DELETE FROM o.t", r"got DELETE\)")
    with connect_sandboxed(store) as connection, pytest.raises(duckdb.PermissionException):
        connection.execute(f"ATTACH '{other_db}' AS o (READ_WRITE)")
    assert (other_db.stat().st_mtime_ns, other_db.read_bytes()) == stamp
    connection = duckdb.connect(str(other_db), read_only=True)
    assert connection.execute("SELECT count(*) FROM t").fetchone()[0] == 3
    connection.close()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd.csv'",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM read_json('/etc/hostname')",
        "SELECT * FROM sniff_csv('/etc/passwd')",
    ],
)
def test_machine_files_cannot_be_read(store, sql):
    rejected(store, sql, r"^sql: queries may not (use|read) files")
    with connect_sandboxed(store) as connection, pytest.raises(duckdb.PermissionException, match="/etc/"):
        connection.execute(sql)  # the second layer: the connection itself


def test_glob_cannot_list_folders(store):
    rejected(store, "SELECT * FROM glob('/root/*')", r"may not read files \(glob\)")
    with connect_sandboxed(store) as connection, pytest.raises(duckdb.PermissionException, match="/root/"):
        connection.execute("SELECT * FROM glob('/root/*')")


@pytest.mark.parametrize("function", ["read_blob", "read_text", "read_csv", "parquet_metadata"])
def test_the_store_file_itself_cannot_be_read_raw(store, function):
    """DuckDB lets file functions read the database file even with external access off; its raw pages hold
    deleted rows."""
    rejected(store, f"SELECT * FROM {function}('{store}')", rf"may not read files \({function}\)")


def test_parquet_outside_the_store_cannot_be_read(store, tmp_path):
    outside = tmp_path / "outside" / "secret.parquet"
    outside.parent.mkdir()
    pl.DataFrame({"secret": [42]}).write_parquet(outside)
    rejected(store, f"SELECT * FROM read_parquet('{outside}')", r"may not read files \(read_parquet\)")
    rejected(store, f"SELECT * FROM '{outside}'", r"may not use files.*secret\.parquet")
    rejected(store, f"SELECT * FROM parquet_metadata('{outside}')", r"may not read files")


def httpfs_files() -> set[Path]:
    return set((Path.home() / ".duckdb").rglob("httpfs*"))


def test_install_httpfs_is_refused(store):
    before = httpfs_files()
    rejected(store, "INSTALL httpfs", r"got INSTALL\)")
    rejected(store, "FORCE INSTALL httpfs FROM core", r"got FORCE\)")
    with connect_sandboxed(store) as connection, pytest.raises(duckdb.PermissionException):
        connection.execute("INSTALL httpfs")
    assert httpfs_files() == before


def test_load_httpfs_is_refused(store):
    rejected(store, "LOAD httpfs", r"got LOAD\)")
    with connect_sandboxed(store) as connection:
        with pytest.raises(duckdb.PermissionException, match="extensions is disabled"):
            connection.execute("LOAD httpfs")
        httpfs_settings = connection.execute("SELECT count(*) FROM duckdb_settings() WHERE name = 's3_region'")
        assert httpfs_settings.fetchone()[0] == 0


@pytest.mark.parametrize(
    "sql",
    [
        "SET enable_external_access = true",
        "SET threads = 1",
        "RESET threads",
        "PRAGMA threads = 1",
        "SET VARIABLE x = 1",
        "SET lock_configuration = false",
    ],
)
def test_settings_cannot_be_changed(store, sql):
    rejected(store, sql, r"got (SET|RESET|PRAGMA)\)")
    with connect_sandboxed(store) as connection:
        if not sql.startswith("SET VARIABLE"):
            with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
                connection.execute(sql)
        names = ", ".join(f"'{name}'" for name in SANDBOX_CONFIG)
        settings = dict(
            connection.execute(f"SELECT name, value FROM duckdb_settings() WHERE name IN ({names})").fetchall()
        )
    assert settings == {name: str(value).lower() for name, value in SANDBOX_CONFIG.items()}


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE u AS SELECT 1 AS a",
        "CREATE TEMP TABLE u (a INTEGER)",
        "CREATE VIEW v AS SELECT 1",
        "CREATE OR REPLACE MACRO m() AS 1",
    ],
)
def test_create_is_refused(store, sql):
    before = counts(store)
    rejected(store, sql, r"got CREATE\)")
    assert counts(store) == before


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO dynamics (animal) VALUES ('x')",
        "UPDATE dynamics SET turnover = 1",
        "DELETE FROM tracks",
        "TRUNCATE spine_features",
        "DROP TABLE sessions",
    ],
)
def test_insert_and_other_changes_are_refused(store, sql):
    before = counts(store)
    rejected(store, sql, r"got (INSERT|UPDATE|DELETE|TRUNCATE|DROP)\)")
    assert counts(store) == before


@pytest.mark.parametrize(
    "sql, kind",
    [
        ("IMPORT DATABASE '/tmp'", "IMPORT"),
        ("CALL checkpoint()", "CALL"),
        ("CHECKPOINT", "CHECKPOINT"),
        ("CALL read_csv('/etc/passwd')", "CALL"),
        ("DETACH o", "DETACH"),
        ("USE memory", "USE"),
        ("BEGIN", "BEGIN"),
        ("VACUUM", "VACUUM"),
        ("PREPARE p AS SELECT 1", "PREPARE"),
        ("PRAGMA enable_profiling", "PRAGMA enable_profiling"),
        ("CREATE SECRET (TYPE s3, KEY_ID 'a', SECRET 'b')", "CREATE"),
        ("-- a comment\n  /* and another */ copy (select 1) to 'x.csv'", "COPY"),
    ],
)
def test_every_other_statement_kind_is_refused(sql, kind):
    with pytest.raises(
        QueryRejected, match=rf"^sql: only read queries are allowed on the read-only store \(got {kind}\)$"
    ):
        check_read_only(sql)


# --- what stays allowed


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "FROM dynamics",
        "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
        "VALUES (1), (2)",
        "SHOW TABLES",
        "DESCRIBE tracks",
        "SUMMARIZE dynamics",
        "EXPLAIN SELECT * FROM tracks",
        "EXPLAIN ANALYZE SELECT count(*) FROM tracks",
        "PRAGMA show_tables",
        "PRAGMA table_info('dynamics')",
        "PRAGMA version",
        "PRAGMA database_size",
        "PIVOT tracks ON status USING count(*) GROUP BY animal",
        "-- comment first\nSELECT 2;",
        "SELECT 1; SELECT 2",
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM range(3)",
    ],
)
def test_read_queries_run(store, sql):
    assert isinstance(query(store, sql), pl.DataFrame)


def test_ordinary_selects_return_the_right_numbers(store):
    assert query(store, "SELECT count(*) AS n FROM spine_features").item() == 5
    assert query(store, "SELECT animal, session FROM sessions ORDER BY session").rows() == [("m1", "d0"), ("m1", "d1")]
    assert query(store, "SELECT 1 AS a; SELECT 2 AS b").rows() == [(2,)]
    assert run_read_query(store, "SELECT sum(size) FROM spine_features WHERE session = 'd0'").item() == 7.0
    assert query(store, "-- nothing but a comment").is_empty()


def test_views_keep_working(store):
    survival = query(store, "SELECT session, survival_fraction, formation_rate, elimination_rate FROM survival_curve")
    assert survival.rows() == [("d0", 1.0, 0.0, 0.0), ("d1", 0.5, 0.25, 0.5)]
    per_session = query(store, "SELECT session, n_spines, spines_per_um, median_size FROM spines_per_session")
    assert per_session.rows() == [("d0", 3, pytest.approx(0.3), 2.0), ("d1", 2, pytest.approx(0.2), 4.0)]
    uncertain = query(store, "SELECT session, track_id, confidence, reason FROM uncertain_events")
    assert uncertain.rows() == [("d1", 1, 0.4, "faint"), ("d0", 1, 0.9, "ok")]
    assert query(store, "SELECT count(*) FROM size_trajectories").item() == 0


def test_a_process_connection_with_other_settings_is_named(store):
    plain = duckdb.connect(str(store), read_only=True)
    try:
        with pytest.raises(StoreError, match="close the other connection"):
            query(store, "SELECT 1")
    finally:
        plain.close()
    assert query(store, "SELECT 1 AS one").item() == 1


# --- the command line


@pytest.mark.parametrize(
    "sql, message",
    [
        (
            "COPY (SELECT 1) TO '{tmp}/x.csv'",
            "error: sql: only read queries are allowed on the read-only store (got COPY)",
        ),
        ("INSTALL httpfs", "error: sql: only read queries are allowed on the read-only store (got INSTALL)"),
        ("SELECT * FROM read_csv('/etc/passwd')", "error: sql: queries may not read files (read_csv)"),
        (
            "SELECT * FROM '/etc/passwd.csv'",
            "error: sql: queries may not use files, network or extensions (Permission Error:",
        ),
    ],
)
def test_sql_command_refuses_with_one_line_and_status_2(store, tmp_path, capsys, sql, message):
    assert main(["sql", sql.format(tmp=tmp_path), "--store", str(store)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message) and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert not (tmp_path / "x.csv").exists()
    assert main(["sql", "SELECT count(*) AS n FROM survival_curve", "--format", "csv", "--store", str(store)]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "2"]
