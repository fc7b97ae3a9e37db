"""Compaction of a DuckLake store: the same rows in fewer files, the replaced files deleted once older than the
retention, and a DuckDB file or a missing catalog answered in one line."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from synapflow_assets.store.feature_store import FeatureStore
from synapflow_assets.store.lake_compaction import compact

from .test_ducklake_store import LINEAGE, lake, session_tables, table

ROOT = Path(__file__).resolve().parents[1]


def rewritten_lab(tmp_path):
    store = lake(tmp_path)
    with FeatureStore(store) as writer:
        for round_ in range(3):  # every session replaced three times: many small files, most of them replaced
            for session in ("day00", "day04", "day08"):
                writer.replace_partition(session_tables("m1", session, 4, shift=round_), "m1", session, LINEAGE)
    return store


def parquet_files(store) -> int:
    return sum(1 for _ in Path(store.data_path).rglob("*.parquet"))


def test_compaction_keeps_the_rows_in_fewer_files(tmp_path):
    store = rewritten_lab(tmp_path)
    rows, files = table(store, "spine_features"), parquet_files(store)
    kept = compact(store, keep_days=7)
    assert kept.live_files_after < kept.live_files_before and kept.files_deleted == 0  # nothing a week old yet
    assert table(store, "spine_features").equals(rows) and parquet_files(store) > kept.live_files_after
    done = compact(store, keep_days=0)
    assert done.snapshots_expired > 0 and done.files_deleted > 0
    assert table(store, "spine_features").equals(rows) and rows["x_um"].min() == 2.0  # the last round's rows
    assert parquet_files(store) < files
    with pytest.raises(ValueError, match="keep_days"):
        compact(store, keep_days=-1)


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "synapflow_assets", "compact", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_the_command_compacts_the_lake_of_the_environment(tmp_path):
    store = rewritten_lab(tmp_path)
    env = {"SYNAPFLOW_STORE": f"ducklake:{store.catalog}", "SYNAPFLOW_STORE_DATA": store.data_path}
    done = run("--keep-days", "0", env=env)
    assert done.returncode == 0, done.stderr
    assert "live data files" in done.stdout and "files deleted" in done.stdout
    assert table(store, "spine_features").height == 12
    plain = run("--store", str(tmp_path / "features.duckdb"))
    assert plain.returncode == 0 and "nothing to compact" in plain.stdout
    missing = run(env={**env, "SYNAPFLOW_STORE": f"ducklake:sqlite:{tmp_path / 'none.sqlite'}"})
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error:")
    assert "no DuckLake catalog there yet" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1


def test_the_weekly_job_compacts_the_lake_and_leaves_a_duckdb_file_alone(tmp_path):
    import dagster as dg

    from synapflow_assets.defs.catalog import build_definitions
    from synapflow_assets.defs.resources import DataLake
    from synapflow_assets.defs.store_maintenance import compact_store, weekly_compaction

    store = rewritten_lab(tmp_path)
    rows, files = table(store, "spine_features"), parquet_files(store)
    lake_root = DataLake(root=str(tmp_path / "data"), store=f"ducklake:{store.catalog}", store_data=store.data_path)

    def run_job(lake_root: DataLake) -> list[str]:
        with dg.instance_for_test() as instance:
            result = compact_store.execute_in_process(resources={"lake": lake_root}, instance=instance)
            assert result.success
            return [record.user_message for record in instance.all_logs(result.run_id) if record.user_message]

    logged = [line for line in run_job(lake_root) if "live data files" in line]
    assert len(logged) == 1
    before, after = map(int, re.search(r"(\d+) -> (\d+) live data files", logged[0]).groups())
    assert after < before and parquet_files(store) > files  # merged; the replaced files kept a week
    assert table(store, "spine_features").equals(rows)

    embedded = DataLake(root=str(tmp_path / "embedded"))
    assert any("nothing to compact" in line for line in run_job(embedded))
    assert not (tmp_path / "embedded" / "features.duckdb").exists()

    defs = build_definitions()
    assert defs.resolve_schedule_def("weekly_compaction").job_name == "compact_store"
    assert weekly_compaction.default_status.name == "RUNNING"
