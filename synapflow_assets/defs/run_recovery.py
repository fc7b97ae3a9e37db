"""Runs left behind by a process that died (kill -9, a power cut): marked failed, their pool slots freed.

A run started from the command line carries the host and process id that ran
it; when that process no longer exists, the run can never finish, and it
would otherwise keep its concurrency slot (pool `duckdb` or `mlflow`) so
that every later run of that pool waits forever. Runs launched by the daemon
are watched by Dagster's run monitoring (`run_monitoring` in `dagster.yaml`).
"""

import os
import socket

import dagster as dg

from ..store.atomic_files import pid_alive

ORIGIN_TAG, HOST_TAG, PID_TAG = "synapflow/origin", "synapflow/host", "synapflow/pid"
UNFINISHED = [
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.CANCELING,
]


def command_line_tags() -> dict[str, str]:
    """Tags of a run started by this process from the command line."""
    return {ORIGIN_TAG: "command line", HOST_TAG: socket.gethostname()[:63], PID_TAG: str(os.getpid())}


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the unfinished command-line runs of this host whose process is gone, and free the
    concurrency slots of every run that is no longer running; the ids of the runs marked failed."""
    host = socket.gethostname()[:63]
    dead = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED, tags={ORIGIN_TAG: "command line"})):
        pid = run.tags.get(PID_TAG, "")
        if run.tags.get(HOST_TAG) != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        instance.report_run_failed(
            run,
            f"the process that ran it (pid {pid} on {host}) is gone; "
            "marked failed by the next command so that its pool slots are freed",
        )
        dead.append(run.run_id)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids():
            owner = instance.get_run_by_id(run_id)
            if owner is None or owner.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
    return dead
