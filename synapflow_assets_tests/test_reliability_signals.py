"""Reliability, stop on request: SIGTERM or SIGINT stops `ingest` and `demo` within 10 s with one line, the
interrupted run is recorded as canceled, and the next `ingest` finishes with the clean row counts."""

import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from synapflow_assets.defs.instance import open_instance

from .test_reliability import ROOT, clean, counts, ingest, land, temporaries  # noqa: F401 - `clean` is a fixture

TERM_POINTS = ("detection", "store_transaction", "tracking")


def _one_line_stop(run: subprocess.CompletedProcess, name: str) -> None:
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: stopped by {name}"), run.stderr[-2000:]


@pytest.mark.parametrize("point", TERM_POINTS)
def test_reliability_sigterm_then_rerun(tmp_path, clean, point):  # noqa: F811
    root = tmp_path / "data"
    land(root)
    start = time.monotonic()
    stopped = ingest(root, env={"SYNAPFLOW_FAILPOINT": point, "SYNAPFLOW_FAILPOINT_SIGNAL": "TERM"})
    assert stopped.returncode == 128 + signal.SIGTERM, (point, stopped.stdout[-500:], stopped.stderr[-1500:])
    _one_line_stop(stopped, "SIGTERM")
    with open_instance(root) as instance:
        statuses = [run.status for run in instance.get_runs()]
    assert statuses[0] == dg.DagsterRunStatus.CANCELED, statuses
    rerun = ingest(root, timeout=120)
    print(f"\nSIGTERM at {point} | exit 143, rerun exit {rerun.returncode} ({time.monotonic() - start:.0f} s in all)")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert counts(root) == clean
    assert temporaries(root) == []
    with open_instance(root) as instance:
        assert instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])) == []
        assert instance.event_log_storage.get_concurrency_run_ids() == set()


def _signal_when_running(command: list[str], root, signum: int, ready) -> tuple[subprocess.CompletedProcess, float]:
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()
    sent = time.monotonic()
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, out, err), time.monotonic() - sent


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_reliability_a_signal_stops_ingest_within_10_s(tmp_path, signum):
    root = tmp_path / "data"
    land(root, sessions=2)
    land(root, "m2", sessions=2, seed=5)
    command = [sys.executable, "-m", "synapflow_assets", "ingest", "--data", str(root), "--source", "imported"]
    run, seconds = _signal_when_running(command, root, signum, lambda: (root / "volumes" / "m1").exists())
    print(f"\n{signum.name} during ingest | exit {run.returncode} after {seconds:.1f} s")
    assert run.returncode == 128 + signum and seconds < 10
    _one_line_stop(run, signum.name)
    assert "ran m2" not in run.stdout


def test_reliability_sigterm_stops_demo_within_10_s(tmp_path):
    root = tmp_path / "data"
    command = [sys.executable, "-m", "synapflow_assets", "demo", "--data", str(root), "--animals", "2"]
    command += ["--sessions", "2", "--layers", "6", "--size", "192"]
    run, seconds = _signal_when_running(
        command, root, signal.SIGTERM, lambda: (root / "landing" / "m01").exists() or (root / "dagster").exists()
    )
    print(f"\nSIGTERM during demo | exit {run.returncode} after {seconds:.1f} s")
    assert run.returncode == 128 + signal.SIGTERM and seconds < 10
    _one_line_stop(run, "SIGTERM")
