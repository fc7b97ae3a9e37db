"""Feature-store scale: a simulated lab in DuckDB and the time of five typical queries.

Default: 50 animals x 20 sessions x 1,000 spines = 1M spine observations (features and
tracks), written through FeatureStore.replace_partition per animal. Each query runs 5
times as the ``sql`` command runs it (open the store read-only, query, close) on 2
DuckDB threads; the median and the slowest run (the first, cold) are reported.

Run: .venv/bin/python bench/feature_store.py [--animals 50 --sessions 20 --spines 1000]
Prints a table and one JSON line.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from synapflow_assets.store.feature_store import FeatureStore, connect_read_only, lineage_columns

QUERIES = {
    "survival curve per animal": "SELECT animal, session_index, survival_fraction FROM survival_curve",
    "size trajectories": (
        "SELECT animal, track_id, list(size ORDER BY session_index) AS sizes FROM size_trajectories GROUP BY ALL"
    ),
    "per-session counts": (
        "SELECT animal, session, count(*) AS n, median(size) AS size FROM spine_features GROUP BY ALL"
    ),
    "features joined with tracks": """SELECT t.status, avg(f.size) AS size, count(*) AS n FROM tracks t
        JOIN spine_features f USING (spine_key) GROUP BY t.status""",
    "filter on type": (
        "SELECT animal, session, spine_id, size FROM spine_features WHERE type = 'mushroom' AND size > 40"
    ),
}
TYPES = np.array(["mushroom", "stubby", "thin", "filopodium"])


def animal_tables(rng, n_sessions: int, n_spines: int) -> dict[str, pl.DataFrame]:
    """One animal: spines that persist (spine_id = track_id), with sizes following a random walk."""
    n = n_sessions * n_spines
    session_index = np.repeat(np.arange(n_sessions), n_spines)
    spine_id = np.tile(np.arange(n_spines), n_sessions)
    sessions = np.array([f"day{4 * k:03d}" for k in range(n_sessions)])[session_index]
    base = rng.lognormal(2.5, 0.5, n_spines)
    size = np.tile(base, n_sessions) * np.exp(rng.normal(0, 0.1, n))
    status = np.where(
        session_index == 0,
        "present",
        rng.choice(["present", "new", "eliminated", "out_of_view"], n, p=[0.85, 0.06, 0.06, 0.03]),
    )
    features = pl.DataFrame(
        {
            "session": sessions,
            "spine_id": spine_id,
            "x_um": rng.uniform(0, 60, n),
            "y_um": rng.uniform(0, 60, n),
            "z_um": rng.uniform(0, 30, n),
            "size": size,
            "head_to_dendrite_um": rng.uniform(0.3, 2.5, n),
            "distance_reason": "ok",
            "type": TYPES[rng.integers(0, 4, n)],
            "type_source": "detector",
        }
    )
    tracks = pl.DataFrame(
        {
            "session": sessions,
            "session_index": session_index,
            "track_id": spine_id,
            "spine_id": spine_id,
            "status": status,
            "detected": status != "eliminated",
        }
    )
    dynamics = pl.DataFrame(
        {
            "session": sessions[::n_spines],
            "session_index": np.arange(n_sessions),
            "survival_fraction": np.cumprod(np.r_[1.0, rng.uniform(0.9, 0.98, n_sessions - 1)]),
        }
    )
    return {"spine_features": features, "tracks": tracks, "dynamics": dynamics}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--animals", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--spines", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "features.duckdb"
        start = time.perf_counter()
        with FeatureStore(path) as store:
            for k in range(args.animals):
                tables = animal_tables(rng, args.sessions, args.spines)
                store.replace_partition(tables, f"mouse{k:03d}", None, lineage_columns("bench", "1", "model", "1", {}))
            fill_seconds = time.perf_counter() - start
            store.connection.execute("CHECKPOINT").fetchall()
            rows = store.connection.execute("SELECT count(*) FROM spine_features").fetchall()[0][0]
        timings = {}
        for name, sql in QUERIES.items():
            runs = []
            for _ in range(5):
                begin = time.perf_counter()
                connection = connect_read_only(path)
                connection.execute("SET threads = 2")
                result = connection.sql(sql).pl()
                connection.close()
                runs.append(time.perf_counter() - begin)
            timings[name] = {"ms": 1000 * statistics.median(runs), "max_ms": 1000 * max(runs), "rows": len(result)}
        size_mb = path.stat().st_size / 1e6
    table = pl.DataFrame([{"query": k, **v} for k, v in timings.items()])
    with pl.Config(tbl_width_chars=120, float_precision=1, tbl_hide_dataframe_shape=True, fmt_str_lengths=40):
        print(table)
    print(f"{rows:,} spine observations, store {size_mb:.1f} MB, filled in {fill_seconds:.1f} s")
    print(
        json.dumps(
            {
                "observations": rows,
                "store_mb": round(size_mb, 1),
                "fill_seconds": round(fill_seconds, 1),
                "queries_ms": {k: round(v["ms"], 1) for k, v in timings.items()},
                "queries_max_ms": {k: round(v["max_ms"], 1) for k, v in timings.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
