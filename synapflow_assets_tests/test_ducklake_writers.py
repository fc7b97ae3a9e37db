"""Many writer processes on one DuckLake feature store (catalog in SQLite, data files in a folder): 0 rows lost,
0 duplicated; a writer killed (SIGKILL) before or during its commit leaves the store readable with every partition
whole or absent, and the rerun completes."""

import os
import subprocess
import sys
import time
from pathlib import Path

from synapflow_assets.store.ducklake import DuckLake
from synapflow_assets.store.feature_store import FeatureStore, query
from synapflow_assets.store.layout_version import SCHEMA_VERSION

from .test_ducklake_store import lake

ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import os, sys, polars as pl
from datetime import UTC, datetime
from synapflow_assets.store.ducklake import store_location
from synapflow_assets.store.feature_store import FeatureStore
i = int(sys.argv[2])
spines = pl.DataFrame({'spine_id': list(range(50)), 'x_um': [float(i)] * 50})
lineage = {'run_id': 'r', 'code_version': '1', 'model': None, 'model_version': None, 'input_versions': '{}',
           'computed_at': datetime.now(UTC)}
with FeatureStore(store_location(sys.argv[1], os.environ['SYNAPFLOW_STORE_DATA'])) as store:
    store.replace_partition({'sessions': pl.DataFrame({'n_spines': [50]}), 'spine_features': spines},
                            'writer%d' % i, 'day00', lineage)
"""


def writers(store: DuckLake, numbers: range, **env: str) -> list[subprocess.CompletedProcess | subprocess.Popen]:
    environment = {**os.environ, "SYNAPFLOW_STORE_DATA": store.data_path, **env}
    spec = f"ducklake:{store.catalog}"
    started = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, spec, str(i)], cwd=ROOT, env=environment, stderr=subprocess.PIPE
        )
        for i in numbers
    ]
    for process in started:
        process.communicate(timeout=300)
    return started


def test_eight_writer_processes_lose_and_duplicate_nothing(tmp_path):
    store = lake(tmp_path)  # created by the writers themselves, all starting at once
    done = writers(store, range(8))
    assert [p.returncode for p in done] == [0] * 8
    counts = query(store, "SELECT animal, count(*) AS n FROM spine_features GROUP BY animal")
    assert sorted(counts["animal"]) == [f"writer{i}" for i in range(8)]
    assert set(counts["n"]) == {50}
    assert len(query(store, "SELECT * FROM sessions")) == 8
    assert query(store, "SELECT version FROM schema_version")["version"].to_list() == [SCHEMA_VERSION]

    killed = writers(store, range(8, 10), SYNAPFLOW_FAILPOINT="store_transaction")
    assert [p.returncode for p in killed] == [-9, -9]
    assert set(query(store, "SELECT DISTINCT animal FROM spine_features")["animal"]) == {f"writer{i}" for i in range(8)}
    assert [p.returncode for p in writers(store, range(6, 10))] == [0] * 4
    counts = query(store, "SELECT animal, count(*) AS n FROM spine_features GROUP BY animal")
    assert len(counts) == 10
    assert set(counts["n"]) == {50}


def test_writers_killed_at_any_moment_leave_whole_partitions(tmp_path):
    store = lake(tmp_path)
    FeatureStore(store).connection.close()
    start = time.perf_counter()
    assert [p.returncode for p in writers(store, range(1))] == [0]
    whole = time.perf_counter() - start
    environment = {**os.environ, "SYNAPFLOW_STORE_DATA": store.data_path}
    for i, share in enumerate((0.6, 0.75, 0.85, 0.9, 0.95, 1.0), start=1):
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, f"ducklake:{store.catalog}", str(i)], cwd=ROOT, env=environment
        )
        time.sleep(whole * share)
        process.kill()
        process.wait()
        assert set(query(store, "SELECT count(*) AS n FROM spine_features GROUP BY animal")["n"]) == {50}
    assert [p.returncode for p in writers(store, range(7))] == [0] * 7
    counts = query(store, "SELECT animal, count(*) AS n FROM spine_features GROUP BY animal")
    assert len(counts) == 7 and set(counts["n"]) == {50}
