import subprocess
import sys
from contextlib import contextmanager

import duckdb
import polars as pl
import pytest

from synapflow_assets.__main__ import main
from synapflow_assets.store.feature_store import FeatureStore, StoreError, connect_read_only, lineage_columns, query


def dynamics_rows(n):
    return pl.DataFrame(
        {
            "session": [f"d{k}" for k in range(n)],
            "session_index": list(range(n)),
            "survival_fraction": [1.0 - 0.1 * k for k in range(n)],
        }
    )


def test_partition_writes_are_idempotent_and_carry_lineage(tmp_path):
    path = tmp_path / "f.duckdb"
    with FeatureStore(path) as store:
        lineage = lineage_columns("run-1", "1", "model-a", "v3", {"spine_tracks": "abc"})
        assert store.replace_partition({"dynamics": dynamics_rows(3)}, "m1", None, lineage) == {"dynamics": 3}
        store.replace_partition({"dynamics": dynamics_rows(3)}, "m1", None, lineage)
        store.replace_partition({"dynamics": dynamics_rows(2)}, "m2", None, lineage)
        assert store.is_current("dynamics", "m1", None, {"spine_tracks": "abc"}, "1")
        assert not store.is_current("dynamics", "m1", None, {"spine_tracks": "xyz"}, "1")
        assert not store.is_current("dynamics", "m1", None, {"spine_tracks": "abc"}, "2")
        with pytest.raises(duckdb.Error):
            store.replace_partition(
                {"dynamics": dynamics_rows(2).with_columns(no_such_column=pl.lit(1))}, "m1", None, lineage
            )
    counts = query(
        path,
        "SELECT animal, count(*) n, any_value(run_id) run, any_value(model_version) v FROM dynamics GROUP BY "
        "animal ORDER BY animal",
    )
    assert counts.rows() == [("m1", 3, "run-1", "v3"), ("m2", 2, "run-1", "v3")]


def test_missing_and_corrupt_stores_say_how_to_rebuild(tmp_path):
    with pytest.raises(StoreError, match="materialize spine_features"):
        connect_read_only(tmp_path / "none.duckdb")
    corrupt = tmp_path / "bad.duckdb"
    corrupt.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="rebuild"):
        connect_read_only(corrupt)


@contextmanager
def _holding(path, marker, read_only):
    """Another process that holds the store until its stdin is closed, then writes `marker` and lets go."""
    code = (
        f"import duckdb, sys; c = duckdb.connect({str(path)!r}, read_only={read_only}); print('held', flush=True); "
        f"sys.stdin.read(); open({str(marker)!r}, 'w').close(); c.close()"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.stdin.close()
        try:
            holder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            holder.kill()
            raise


def _release_on_first_refusal(monkeypatch, holder) -> list[str]:
    """Spy on duckdb.connect: the first refused attempt releases `holder`; returns the outcome of every attempt."""
    real, outcomes = duckdb.connect, []

    def connect(*args, **kwargs):
        try:
            connection = real(*args, **kwargs)
        except duckdb.Error:
            outcomes.append("refused")
            if outcomes.count("refused") == 1:
                holder.stdin.close()
            raise
        outcomes.append("open")
        return connection

    monkeypatch.setattr(duckdb, "connect", connect)
    return outcomes


def test_reader_waits_for_a_writer_in_another_process(tmp_path, monkeypatch):
    path, marker = tmp_path / "f.duckdb", tmp_path / "released"
    FeatureStore(path).connection.close()
    with _holding(path, marker, read_only=False) as holder:
        with pytest.raises(StoreError, match=r"in use by a writer .* the store is intact"):
            connect_read_only(path, wait_seconds=0)
        outcomes = _release_on_first_refusal(monkeypatch, holder)
        connection = connect_read_only(path, wait_seconds=60)
        assert outcomes[0] == "refused" and outcomes[-1] == "open"  # it kept trying while the writer held the store
        assert marker.exists()  # and got in only once the writer let go
        connection.close()


def test_writer_waits_for_a_reader_in_another_process(tmp_path, monkeypatch):
    path, marker = tmp_path / "f.duckdb", tmp_path / "released"
    FeatureStore(path).connection.close()
    with _holding(path, marker, read_only=True) as holder:
        with pytest.raises(StoreError, match=r"still in use by another process .* the store is intact"):
            FeatureStore(path, wait_seconds=0)
        outcomes = _release_on_first_refusal(monkeypatch, holder)
        with FeatureStore(path, wait_seconds=60) as store:
            assert outcomes[0] == "refused" and outcomes[-1] == "open"
            assert marker.exists() and store.connection.execute("SELECT count(*) FROM dynamics").fetchone() == (0,)


def test_sql_command_formats_and_errors(tmp_path, capsys):
    path = tmp_path / "f.duckdb"
    with FeatureStore(path) as store:
        store.replace_partition({"dynamics": dynamics_rows(3)}, "m1", None, lineage_columns("r", "1", None, None, {}))
    store = ["--store", str(path)]
    assert main(["sql", "SELECT session, survival_fraction FROM survival_curve", "--format", "csv", *store]) == 0
    assert capsys.readouterr().out.splitlines() == ["session,survival_fraction", "d0,1.0", "d1,0.9", "d2,0.8"]
    assert (
        main(
            [
                "sql",
                "SELECT count(*) AS n FROM dynamics",
                "--format",
                "parquet",
                "--out",
                str(tmp_path / "o.parquet"),
                *store,
            ]
        )
        == 0
    )
    assert pl.read_parquet(tmp_path / "o.parquet")["n"].to_list() == [3]
    sql_file = tmp_path / "q.sql"
    sql_file.write_text("SELECT max(session_index) AS last FROM dynamics")
    assert main(["sql", "--file", str(sql_file), "--format", "json", *store]) == 0
    assert capsys.readouterr().out.strip() == '{"last":2}'
    assert main(["sql", "DELETE FROM dynamics", *store]) == 2
    assert "read-only" in capsys.readouterr().err
    assert main(["sql", "SELEC 1", *store]) == 1
    assert "syntax error" in capsys.readouterr().err
    assert main(["sql", "SELECT * FROM nothing_here", *store]) == 1
    assert "nothing_here" in capsys.readouterr().err
    assert main(["sql", "SELECT 1", "--store", str(tmp_path / "missing.duckdb")]) == 2
    assert main(["sql", "--file", str(tmp_path / "no.sql"), *store]) == 2
    assert "no.sql" in capsys.readouterr().err


def test_ingest_on_a_corrupt_store_says_how_to_rebuild(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "landing").mkdir()
    (tmp_path / "features.duckdb").write_bytes(b"not a database" * 100)
    assert main(["ingest", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "features.duckdb" in err and "rebuild" in err


def test_writers_creating_a_new_store_together_all_succeed(tmp_path):
    path = tmp_path / "new.duckdb"
    code = (
        "import sys, polars as pl; from synapflow_assets.store.feature_store import FeatureStore, lineage_columns; "
        "i = sys.argv[2]; s = FeatureStore(sys.argv[1]); "
        "s.replace_partition({'sessions': pl.DataFrame({'session': ['s' + i]})}, 'a' + i, 's' + i, "
        "lineage_columns('r', '1', None, None, {})); s.connection.close()"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(i)], stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    errors = [w.communicate(timeout=120)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0, 0], errors
    rows = duckdb.connect(str(path), read_only=True).execute("SELECT animal FROM sessions ORDER BY animal").fetchall()
    assert rows == [("a0",), ("a1",), ("a2",), ("a3",)]
