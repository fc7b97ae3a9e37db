"""The distributed configuration on real engines, compared row for row with the embedded run (`make scale-test`).

A simulated lab (`--animals` x `--sessions`) is processed twice:

- embedded: `process_landed` on a SQLite instance, in this process (as `ingest`);
- distributed: PostgreSQL (`deploy/services/postgres.sh`, Debian's server on
  127.0.0.1, a throwaway data directory) holds the Dagster instance
  (`deploy/postgres/dagster.yaml`) and the MLflow server's database; an S3
  server (moto, `deploy/services/s3.sh`) holds the data root
  `s3://lab/distributed` (the landing folder too) and the MLflow artifacts; a
  Dask scheduler and `--workers` worker processes (`deploy/services/dask.sh`)
  execute every step; session runs go two at a time, then one run per animal.
  One worker is killed (SIGKILL) in the middle of a detection step: Dask
  reschedules the step on another worker.

The distributed feature store is a DuckLake (`store.ducklake`): catalog in
the PostgreSQL database `features`, data files under `s3://lab/distributed/features`,
one writer per worker (pool `duckdb` = `--workers`). Then every feature-store
table is compared row for row with the embedded DuckDB file (lineage columns
aside: run ids and times differ by nature), 8 processes write their partitions
to a second DuckLake at once (0 lost, 0 duplicated; 2 more killed before their
commit, the store read, then rerun), and a wrong database password must fail
with a message that does not print it. Every service started is stopped.

Run: .venv/bin/python bench/scale.py [--animals 2 --sessions 3 --layers 8 --size 256 --workers 2]
Prints the timings and one JSON line; exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # as in Dask's worker processes: the same float sums in the detector

import dagster as dg
from scale_checks import (
    compare,
    concurrent_writes,
    mlflow_through_server,
    objects_by_kind,
    repeated_steps,
    step_seconds,
    wrong_password,
)

from synapflow_assets.defs.instance import open_instance
from synapflow_assets.defs.partitions import register_sessions, session_partition_key
from synapflow_assets.defs.resources import DataLake, DetectionSettings, lake_from_environment
from synapflow_assets.pipeline import process_landed
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session

SERVICES = ROOT / "deploy" / "services"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def land(root: Path, animals: int, sessions: int, shape: tuple[int, int, int]) -> list[tuple[str, str]]:
    pairs = []
    for a in range(animals):
        for sim in simulate_animal(SimulationParams(shape=shape), n_sessions=sessions, seed=7 + a):
            name = f"day{4 * sim.index:02d}"
            write_session(sim, root / "landing", f"mouse{a + 1:02d}", name)
            pairs.append((f"mouse{a + 1:02d}", name))
    return pairs


OUTPUTS = ("volumes", "detections", "candidates", "spines", "tracks")


def service(script: str, *args: str, env: dict) -> str:
    done = subprocess.run(["bash", str(SERVICES / script), *args], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{script} {args[0]} failed: {done.stderr.strip()[-800:]}")
    return done.stdout.strip()


def distributed_run(pairs: list[tuple[str, str]], workers: int) -> dict:
    """Every session, then every animal, through the Dask executor on the PostgreSQL instance."""
    from synapflow_assets.defs import distributed
    from synapflow_assets.defs.detector_assets import spine_detector

    with distributed.open_distributed_instance() as instance:
        register_sessions(instance, pairs)
        instance.event_log_storage.set_concurrency_slots("detection", workers)
        instance.event_log_storage.set_concurrency_slots("duckdb", workers)  # DuckLake: a writer per worker
        if os.environ.get("SYNAPFLOW_DETECTION_SOURCE", "model") == "model":
            champion = dg.materialize([spine_detector], instance=instance, resources={"lake": lake_from_environment()})
            assert champion.success

    start = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")  # one orchestrating process per run: Dagster's is not thread-safe
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        sessions = list(
            pool.map(run_partition, ["process_sessions"] * len(pairs), [session_partition_key(*p) for p in pairs])
        )
        animal_keys = sorted({a for a, _ in pairs})
        animals = list(pool.map(run_partition, ["update_animals"] * len(animal_keys), animal_keys))
    seconds = time.perf_counter() - start
    by_process: dict[int, int] = {}
    for _, pids in sessions + animals:
        for pid in pids:
            by_process[pid] = by_process.get(pid, 0) + 1
    return {
        "seconds": seconds,
        "sessions_ok": all(ok for ok, _ in sessions),
        "animals_ok": all(ok for ok, _ in animals),
        "steps_by_worker": sorted(by_process.values(), reverse=True),
    }


def run_partition(job_name: str, partition: str) -> tuple[bool, list[int]]:
    """Run one partition of a distributed job (in its own process); success and the pids of its step processes."""
    from synapflow_assets.defs import distributed

    job = {"process_sessions": distributed.process_sessions, "update_animals": distributed.update_animals}[job_name]
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(job),
            instance=instance,
            raise_on_error=False,
            tags={"dagster/partition": partition, "synapflow/origin": "scale test"},
        )
        pids = [
            r.dagster_event.pid
            for r in instance.all_logs(result.run_id)
            if r.dagster_event is not None and r.dagster_event.event_type_value == "STEP_SUCCESS"
        ]
        return result.success, pids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animals", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--source", choices=["model", "imported"], default="model")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="synapflow_scale_"))
    work.chmod(0o755)  # PostgreSQL runs as its own user and must reach its data directory
    embedded, spread = work / "embedded", work / "distributed"
    pairs = land(embedded, args.animals, args.sessions, (args.layers, args.size, args.size))
    shutil.copytree(embedded / "landing", spread / "landing")
    print(
        f"lab: {args.animals} animals x {args.sessions} sessions of {args.layers}x{args.size}x{args.size} in {work}",
        flush=True,
    )

    start = time.perf_counter()
    with open_instance(embedded) as instance:
        report = process_landed(instance, DataLake(root=str(embedded)), detection=DetectionSettings(source=args.source))
    embedded_seconds = time.perf_counter() - start
    assert not report.failed, report.failed
    print(f"embedded: {embedded_seconds:.1f} s", flush=True)
    with open_instance(embedded) as instance:
        embedded_steps = step_seconds(instance)

    password = secrets.token_urlsafe(12)
    pg_port, dask_port, s3_port, mlflow_port = free_port(), free_port(), free_port(), free_port()
    home = spread / "dagster"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    s3_env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    data_root = "s3://lab/distributed"
    env = {
        **os.environ,
        **s3_env,
        "DAGSTER_HOME": str(home),
        "SYNAPFLOW_DATA": data_root,
        "SYNAPFLOW_STORE": f"ducklake:postgres:dbname=features host=127.0.0.1 port={pg_port} user=synapflow",
        "SYNAPFLOW_STORE_DATA": f"{data_root}/features",
        "PGPASSWORD": password,  # for the DuckLake catalog (libpq); never in SYNAPFLOW_STORE
        "SYNAPFLOW_CACHE": str(spread / "cache"),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
        "SYNAPFLOW_PG_HOST": "127.0.0.1",
        "SYNAPFLOW_PG_PORT": str(pg_port),
        "SYNAPFLOW_PG_USER": "synapflow",
        "SYNAPFLOW_PG_PASSWORD": password,
        "SYNAPFLOW_PG_DB": "dagster",
        "SYNAPFLOW_DASK_ADDRESS": f"tcp://127.0.0.1:{dask_port}",
        "SYNAPFLOW_DETECTION_SOURCE": args.source,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    killed_marker = work / "worker-killed"
    worker_env = {**env, "SYNAPFLOW_FAILPOINT": "detection", "SYNAPFLOW_FAILPOINT_ONCE": str(killed_marker)}
    states = {"postgres": work / "postgres", "dask": work / "dask", "s3": work / "s3", "mlflow": work / "mlflow"}
    result: dict = {}
    try:
        print(service("postgres.sh", "start", str(states["postgres"]), str(pg_port), password, env=env), flush=True)
        print(service("s3.sh", "start", str(states["s3"]), str(s3_port), env=env), flush=True)
        os.environ.update(env)
        from synapflow_assets.store.locations import location

        bucket = location(data_root)
        bucket.fs.mkdir("lab")
        bucket.fs.mkdir("mlflow")
        bucket.fs.put(str(spread / "landing"), "lab/distributed/landing", recursive=True)
        shutil.rmtree(spread / "landing")
        backend = f"postgresql+psycopg2://synapflow:{password}@127.0.0.1:{pg_port}/mlflow"
        print(
            service(
                "mlflow.sh", "start", str(states["mlflow"]), str(mlflow_port), backend, "s3://mlflow/artifacts", env=env
            ),
            flush=True,
        )
        print(
            service("dask.sh", "start", str(states["dask"]), str(dask_port), str(args.workers), env=worker_env),
            flush=True,
        )
        time.sleep(3)
        run = distributed_run(pairs, args.workers)
        print(
            f"distributed: {run['seconds']:.1f} s, steps per worker {run['steps_by_worker']}, "
            f"a worker killed mid-step: {killed_marker.exists()}",
            flush=True,
        )
        with dg.DagsterInstance.get() as instance:
            distributed_steps = step_seconds(instance)
            repeated = repeated_steps(instance)
        print(f"steps started twice: {repeated} (only the killed worker's detection step may be)", flush=True)
        tables = compare(embedded / "features.duckdb", lake_from_environment().store_path)
        stored = objects_by_kind(bucket)
        writes = concurrent_writes(
            f"ducklake:postgres:dbname=writes host=127.0.0.1 port={pg_port} user=synapflow",
            {**env, "SYNAPFLOW_STORE_DATA": "s3://lab/writes"},
        )
        credentials = wrong_password(env)
        stack = work / "stack.tif"
        bucket.fs.get(next(p for p in bucket.fs.find("lab/distributed/landing") if p.endswith(".tif")), str(stack))
        tracking = mlflow_through_server(work, env, stack)
        result = {
            "embedded_s": round(embedded_seconds, 1),
            "distributed_s": round(run["seconds"], 1),
            "overhead": round(run["seconds"] / embedded_seconds - 1, 2),
            "workers": args.workers,
            "session_overhead": round(
                distributed_steps["process_sessions run (median)"] / embedded_steps["process_sessions run (median)"]
                - 1,
                2,
            ),
            "seconds_per_step": {
                k: {"embedded": v, "distributed": distributed_steps.get(k)} for k, v in embedded_steps.items()
            },
            "steps_by_worker": run["steps_by_worker"],
            "worker_killed": killed_marker.exists(),
            "runs_ok": run["sessions_ok"] and run["animals_ok"],
            "tables": tables,
            "steps_started_twice": repeated,
            "objects": stored,
            "local_outputs": sorted(p.name for p in spread.iterdir() if p.name in OUTPUTS),
            "concurrent_writes": writes,
            "wrong_password": credentials,
            "mlflow_server": tracking,
        }
    finally:
        service("dask.sh", "stop", str(states["dask"]), env=env)
        service("mlflow.sh", "stop", str(states["mlflow"]), env=env)
        service("s3.sh", "stop", str(states["s3"]), env=env)
        service("postgres.sh", "stop", str(states["postgres"]), env=env)
    print(
        f"per-session overhead (median session run, distributed vs embedded): {result['session_overhead']:+.0%} "
        f"(target <= +20%); whole lab: {result['overhead']:+.0%}, which includes warm-up and the killed worker"
    )
    print("mean seconds per step        embedded  distributed")
    for step, pair in result["seconds_per_step"].items():
        print(f"  {step:<26} {pair['embedded']:>8.2f} {pair['distributed'] or float('nan'):>11.2f}")
    for table, outcome in result["tables"].items():
        print(f"  {table:<15} {outcome}")
    print(f"8 concurrent partition writes: {writes}")
    print(f"wrong password: {credentials}")
    print(f"MLflow server (PostgreSQL, S3 artifacts): {tracking}")
    print(f"objects in s3://lab/distributed: {stored}; outputs on the local disk: {result['local_outputs'] or 'none'}")
    print(json.dumps(result))
    ok = (
        result["runs_ok"]
        and all(v.startswith("identical") for v in tables.values())
        and not writes["failed"]
        and writes["duplicates"] == writes["lost"] == 0
        and writes["killed_exit_codes"] == [-9, -9]
        and writes["readable_after_kill"]
        and writes["rerun_ok"]
        and tracking["same_boxes"]
        and tracking["objects_in_bucket"] > 0
        and all(stored.get(kind, 0) > 0 for kind in OUTPUTS)
        and not result["local_outputs"]
        and len(repeated) <= 1
        and all(step.endswith("/detections_2d") for step in repeated)
    )
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
