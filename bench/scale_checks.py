"""The checks of `bench/scale.py` after a lab ran embedded and distributed: the feature-store tables compared,
the objects in the bucket, seconds per step, steps started twice, concurrent store writes, the MLflow server
path and a wrong database password."""

from __future__ import annotations

import json
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl

from synapflow_assets.store.ducklake import DuckLake, store_location
from synapflow_assets.store.feature_store import query

ROOT = Path(__file__).resolve().parents[1]

TABLES = ("sessions", "detections", "spines", "spine_features", "tracks", "dynamics", "corrections")
LINEAGE = {"run_id", "computed_at"}


def store_table(store: Path | DuckLake, table: str) -> pl.DataFrame:
    frame = query(store, f"SELECT * FROM {table}")
    frame = frame.drop([c for c in frame.columns if c in LINEAGE])
    return frame.sort(frame.columns) if len(frame) else frame


def compare(embedded: Path | DuckLake, distributed: Path | DuckLake) -> dict[str, str]:
    """Per table of two feature stores: `identical (N rows)` or what differs."""
    out = {}
    for table in TABLES:
        a, b = store_table(embedded, table), store_table(distributed, table)
        if a.shape != b.shape:
            out[table] = f"DIFFERENT: {a.shape} vs {b.shape}"
        elif not a.equals(b):
            columns = [c for c in a.columns if not a[c].equals(b[c])]
            floats = [c for c in columns if a[c].dtype.is_float()]
            worst = max((float((a[c] - b[c]).abs().max() or 0) for c in floats), default=0.0)
            out[table] = f"DIFFERENT in {', '.join(columns)} (largest float difference {worst:.2e})"
        else:
            out[table] = f"identical ({len(a)} rows)"
    return out


def objects_by_kind(bucket) -> dict[str, int]:
    """Objects under the distributed data root, by top folder (volumes, detections, ...)."""
    counts: dict[str, int] = {}
    for key in bucket.fs.find(bucket.path):
        kind = key.removeprefix(bucket.path + "/").split("/")[0]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def step_seconds(instance: dg.DagsterInstance) -> dict[str, float]:
    """Mean seconds per step (start to success) over the instance's runs, and where the rest of a run's wall time
    goes (orchestration): from the run's start to its first step, between steps, from the last step to its end."""
    from dagster._core.events import DagsterEventType

    kinds = {
        DagsterEventType.RUN_START,
        DagsterEventType.RUN_SUCCESS,
        DagsterEventType.STEP_START,
        DagsterEventType.STEP_SUCCESS,
    }
    steps: dict[str, list[float]] = {}
    gaps: dict[str, list[float]] = {"run start -> first step": [], "between steps": [], "last step -> run end": []}
    walls: dict[str, list[float]] = {"process_sessions": [], "update_animals": []}
    for run in instance.get_runs():
        if run.job_name.startswith("__") or run.tags.get("synapflow/origin") not in ("scale test", "command line"):
            continue
        records = sorted(instance.all_logs(run.run_id, of_type=kinds), key=lambda r: r.timestamp)
        started, previous_end, first = {}, None, None
        for record in records:
            kind, step = record.dagster_event.event_type, record.step_key
            if kind == DagsterEventType.RUN_START:
                first = record.timestamp
            elif kind == DagsterEventType.STEP_START:
                started[step] = record.timestamp
                if previous_end is None and first is not None:
                    gaps["run start -> first step"].append(record.timestamp - first)
                elif previous_end is not None:
                    gaps["between steps"].append(max(0.0, record.timestamp - previous_end))
            elif kind == DagsterEventType.STEP_SUCCESS and step in started:
                steps.setdefault(step, []).append(record.timestamp - started[step])
                previous_end = record.timestamp
            elif kind == DagsterEventType.RUN_SUCCESS and previous_end is not None:
                gaps["last step -> run end"].append(record.timestamp - previous_end)
                if first is not None and run.job_name in walls:
                    walls[run.job_name].append(record.timestamp - first)
    means = {step: round(sum(v) / len(v), 2) for step, v in sorted(steps.items())}
    medians = {f"{job} run (median)": round(statistics.median(v), 2) for job, v in walls.items() if v}
    return {**means, **{name: round(sum(v) / max(len(v), 1), 2) for name, v in gaps.items()}, **medians}


def repeated_steps(instance: dg.DagsterInstance) -> list[str]:
    """`run/step` of every step started more than once (the killed worker's step must be the only one)."""
    from dagster._core.events import DagsterEventType

    repeated = []
    for run in instance.get_runs():
        starts: dict[str, int] = {}
        for record in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START):
            starts[record.step_key] = starts.get(record.step_key, 0) + 1
        repeated += [f"{run.tags.get('dagster/partition')}/{step}" for step, n in starts.items() if n > 1]
    return repeated


WRITER = (
    "import os, sys, polars as pl; from synapflow_assets.store.ducklake import store_location; "
    "from synapflow_assets.store.feature_store import FeatureStore, lineage_columns; i = int(sys.argv[2]); "
    "spines = pl.DataFrame({'spine_id': list(range(100)), 'x_um': [float(i)] * 100}); "
    "store = FeatureStore(store_location(sys.argv[1], os.environ.get('SYNAPFLOW_STORE_DATA', ''))); "
    "store.replace_partition({'sessions': pl.DataFrame({'n_spines': [100]}), 'spine_features': spines}, "
    "'writer%d' % i, 'day00', lineage_columns('r', '1', None, None, {})); store.connection.close()"
)


def _write(store: str, env: dict, numbers: range, **extra: str) -> list[tuple[int, str]]:
    """Writers ``numbers`` started together, each replacing its own partition; (exit code, last error line)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store, str(i)],
            cwd=ROOT,
            env={**env, **extra},
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in numbers
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    return [(p.returncode, (e.strip().splitlines() or [""])[-1]) for p, e in zip(procs, errors, strict=True)]


def _counts(store: Path | DuckLake) -> pl.DataFrame:
    return query(store, "SELECT animal, count(*) AS n FROM spine_features GROUP BY animal")


def concurrent_writes(store: str, env: dict, n: int = 8) -> dict:
    """`n` processes each replace their own partition of one store at the same moment (0 lost, 0 duplicated);
    then 2 more are killed (SIGKILL) before their commit, the store is read, and they run again."""
    location = store_location(store, env.get("SYNAPFLOW_STORE_DATA", ""))
    start = time.perf_counter()
    done = _write(store, env, range(n))
    seconds = time.perf_counter() - start
    rows = _counts(location)
    killed = _write(store, env, range(n, n + 2), SYNAPFLOW_FAILPOINT="store_transaction")
    readable = sorted(_counts(location)["animal"]) == sorted(rows["animal"])
    rerun = _write(store, env, range(n - 2, n + 2))
    after = _counts(location)
    return {
        "writers": n,
        "failed": [error for code, error in done if code != 0],
        "rows": int(rows["n"].sum()),
        "distinct_partitions": len(rows),
        "lost": n - len(rows),
        "duplicates": int((rows["n"] != 100).sum()),
        "seconds": round(seconds, 1),
        "killed_exit_codes": [code for code, _ in killed],
        "readable_after_kill": readable,
        "rerun_ok": all(code == 0 for code, _ in rerun) and len(after) == n + 2 and set(after["n"]) == {100},
    }


def mlflow_through_server(work: Path, env: dict, stack: Path) -> dict:
    """The champion gate and `detect` through an MLflow tracking server (PostgreSQL backend, S3 artifacts):
    the same boxes as with the embedded registry, and the weights stored in the bucket."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"], region_name="us-east-1")
    objects = s3.list_objects_v2(Bucket="mlflow").get("KeyCount", 0)
    server = {**env, "SYNAPFLOW_FAILPOINT": ""}
    local = {k: v for k, v in server.items() if k != "MLFLOW_TRACKING_URI"}
    boxes = {}
    for name, environment in (("server", server), ("embedded", local)):
        out = work / f"boxes-{name}.csv"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "synapflow_assets",
                "detect",
                str(stack),
                "--out",
                str(out),
                "--data-root",
                str(work / f"registry-{name}"),
            ],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise SystemExit(f"detect through the {name} registry failed: {done.stderr.strip()[-800:]}")
        boxes[name] = pl.read_csv(out)
    gate = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import json, sys; from synapflow_assets.detection import lifecycle as L; "
                "root = sys.argv[1]; metrics, history, tags = L.folder_metrics(L.SHIPPED_FOLDER); "
                "run = L.log_training_run(L.SHIPPED_FOLDER, params={'source': 'scale test'}, metrics=metrics, "
                "history=history, "
                "data_root=root, run_name='candidate', tags=tags); "
                "print(json.dumps(L.promote_if_better(L.model_version_for_run(run, root), data_root=root).as_dict(), "
                "default=str))"
            ),
            str(work / "registry-server"),
        ],
        cwd=ROOT,
        env=server,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if gate.returncode != 0:
        raise SystemExit(f"the champion gate through the server failed: {gate.stderr.strip()[-800:]}")
    decision = json.loads(gate.stdout.strip().splitlines()[-1])
    stored = s3.list_objects_v2(Bucket="mlflow").get("KeyCount", 0) - objects
    return {
        "same_boxes": boxes["server"].equals(boxes["embedded"]),
        "boxes": len(boxes["server"]),
        "objects_in_bucket": stored,
        "gate": {k: decision.get(k) for k in ("promoted", "reason", "champion")},
    }


def wrong_password(env: dict) -> str:
    """The error of an instance opened with a wrong password (must not contain the password)."""
    wrong = {**env, "SYNAPFLOW_PG_PASSWORD": "not-the-" + secrets.token_hex(4)}
    code = "from synapflow_assets.defs.distributed import open_distributed_instance; open_distributed_instance()"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=wrong, capture_output=True, text=True, timeout=120
    )
    message = (done.stderr.strip().splitlines() or [""])[-1]
    assert done.returncode != 0, "a wrong password was accepted"
    assert wrong["SYNAPFLOW_PG_PASSWORD"] not in done.stderr, "the password was printed"
    return message
