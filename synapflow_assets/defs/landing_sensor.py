"""Sensor that turns complete files in the landing folder into partitions and runs."""

import json

import dagster as dg

from ..imaging.landing import scan_landing, settled_sessions
from ..store.layout_version import OutdatedDataRoot
from .graph import PROCESS_SESSIONS
from .layout import check_layout
from .partitions import add_requests, session_partition_key
from .resources import DataLake, DetectionSettings, ImagingSettings
from .run_messages import step_failure_line
from .staleness import stale_session_assets


@dg.sensor(
    job_name=PROCESS_SESSIONS,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(
    context: dg.SensorEvaluationContext, lake: DataLake, detection: DetectionSettings, imaging: ImagingSettings
) -> dg.SensorResult | dg.SkipReason:
    """Watch `data/landing/<animal>/<session>.tif`: add partitions and request processing.

    A file is taken once it is complete (a `<session>.done` marker, or size
    and modification time unchanged over two ticks); a file whose content
    changes later (or whose `<session>.detections.csv` changes) is requested
    again. The session's landed inputs are observed, and only the assets that
    are stale for that session (`staleness.stale_session_assets`, the same
    decision as `ingest`) are requested, and nothing when it is up to date (e.g. ingested by `python -m synapflow_assets
    ingest`). The cursor makes restarts safe. A data root of an older layout is skipped with one line saying
    to run `upgrade` (`layout.check_layout`).
    """
    try:
        check_layout(context.instance, lake, store=False)
    except OutdatedDataRoot as error:
        context.log.error(str(error))
        return dg.SkipReason(str(error))
    sessions, problems = scan_landing(lake.landing)
    for problem in problems:
        context.log.warning(f"skipped: {problem}")
    state = json.loads(context.cursor) if context.cursor else {}
    ready, state = settled_sessions(sessions, state)
    requests = []
    for s in ready:
        try:
            found = stale_session_assets(context.instance, s, imaging=imaging, detection=detection, lake=lake)
        except ValueError as error:
            context.log.error(f"FAILED {s.animal}/{s.session}: {error}")
            continue
        for line in found.damage:
            context.log.warning(line)
        if not found.stale:
            context.log.info(f"{s.animal}/{s.session} is up to date: nothing to run")
            continue
        context.log.info(
            f"{s.animal}/{s.session}: " + "; ".join(f"{name} ({why})" for name, why in found.reasons.items())
        )
        requests.append(
            dg.RunRequest(
                run_key=f"{s.animal}/{s.session}/{s.fingerprint}",
                partition_key=session_partition_key(s.animal, s.session),
                asset_selection=found.stale,
                tags={"synapflow/source": str(s.path)},
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=add_requests(context.instance, [(s.animal, s.session) for s in ready]),
        cursor=json.dumps(state),
    )


def failure_summary_line(context: dg.RunFailureSensorContext) -> str:
    """`FAILED <partition>: <first error> (run <id>)` for a failed run."""
    run = context.dagster_run
    failures = context.get_step_failure_events()
    message = (
        step_failure_line(failures[0], run.run_id) if failures else (context.failure_event.message or "run failed")
    )
    return f"FAILED {run.tags.get('dagster/partition', run.job_name)}: {message} (run {run.run_id})"


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def failure_summary_sensor(context: dg.RunFailureSensorContext) -> None:
    """One line per failed run in the daemon's log: the partition and the first error (the full traceback
    stays on the run's page)."""
    context.log.error(failure_summary_line(context))
