"""Latency from a completed landing to updated dynamics, through the real daemon (`dagster dev`).

An animal with two sessions (demo size by default: 32 layers of 512 x 512) is
processed by `ingest`; then `dagster dev` (webserver and daemon, the sensors
of the definitions) is started on the same instance and a third session lands
with its `.done` marker. The benchmark waits for the new materialization of
the animal's `spine_dynamics` and reads the times of each stage from the
instance: the landing sensor's run, its detection step, the features, the
animal sensor's run. The target of issue 12 is <= 60 s excluding detection.

Run: .venv/bin/python bench/latency.py [--layers 32 --size 512 --timeout 900]
Prints one line per stage and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synapflow_assets.defs.resources import DataLake
from synapflow_assets.pipeline import process_landed
from synapflow_assets.synthetic import SimulationParams, simulate_animal, write_session


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _materialized_after(instance: dg.DagsterInstance, asset: str, partition: str, after: float):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records and records[0].timestamp > after else None


def _step_seconds(instance: dg.DagsterInstance, run_id: str, step: str) -> float | None:
    times = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.step_key == step and event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
            times[event.event_type_value] = record.timestamp
    return times["STEP_SUCCESS"] - times["STEP_START"] if len(times) == 2 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="synapflow_latency_"))
    data = home / "data"
    (home / "dagster.yaml").touch()
    sims = simulate_animal(SimulationParams(shape=(args.layers, args.size, args.size)), n_sessions=3, seed=5)
    for sim in sims[:2]:
        write_session(sim, data / "landing", "mouse01", f"day{4 * sim.index:02d}")
    start = time.perf_counter()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        report = process_landed(instance, DataLake(root=str(data)))
    assert not report.failed, report.failed
    print(f"first two sessions by ingest: {time.perf_counter() - start:.0f} s", flush=True)

    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNAPFLOW_DATA": str(data)}
    port = _free_port()
    log = open(home / "dagster_dev.log", "w")  # noqa: SIM115 (the server writes to it after this returns)
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        time.sleep(20)  # the daemon's first sensor ticks see the two sessions up to date
        landed = time.time()
        write_session(sims[2], data / "landing", "mouse01", "day08")
        print("day08 landed with its .done marker; waiting for spine_dynamics", flush=True)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            while (done := _materialized_after(instance, "spine_dynamics", "mouse01", landed)) is None:
                if time.time() - landed > args.timeout or server.poll() is not None:
                    raise SystemExit(
                        f"no new spine_dynamics within {args.timeout:.0f} s; see {home / 'dagster_dev.log'}"
                    )
                time.sleep(1)
            features = _materialized_after(instance, "spine_features", "mouse01/day08", landed)
            session_run = instance.get_run_record_by_id(features.run_id)
            animal_run = instance.get_run_record_by_id(done.run_id)
            detection = _step_seconds(instance, features.run_id, "detections_2d") or 0.0
            stages = {
                "landing -> session run created": session_run.create_timestamp.timestamp() - landed,
                "session run (read, detect, link, features)": features.timestamp
                - session_run.create_timestamp.timestamp(),
                "  of which detection": detection,
                "features -> animal run created": animal_run.create_timestamp.timestamp() - features.timestamp,
                "animal run (tracks, dynamics)": done.timestamp - animal_run.create_timestamp.timestamp(),
            }
            total = done.timestamp - landed
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    for name, seconds in stages.items():
        print(f"{name:<45} {seconds:7.1f} s")
    print(
        f"{'landing -> updated dynamics':<45} {total:7.1f} s ({total - detection:.1f} s excluding detection; "
        "target <= 60)"
    )
    print(
        json.dumps(
            {
                "layers": args.layers,
                "size": args.size,
                "total_s": round(total, 1),
                "excluding_detection_s": round(total - detection, 1),
                "stages_s": {k.strip(): round(v, 1) for k, v in stages.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
