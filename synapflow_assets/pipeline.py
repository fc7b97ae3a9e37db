"""Run the assets in-process on what has landed, skipping partitions that are up to date."""

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import dagster as dg
from filelock import FileLock, Timeout

from .defs.catalog import build_definitions
from .defs.detector_assets import spine_detector
from .defs.feature_assets import spine_dynamics
from .defs.graph import SESSION_ASSETS, process_sessions_job, update_animals_job
from .defs.layout import check_layout
from .defs.partitions import ANIMALS_NAME, SESSIONS_NAME, register_sessions, session_partition_key, split_session_key
from .defs.resources import AlignmentSettings, DataLake, DetectionSettings, ImagingSettings
from .defs.run_messages import failed_checks, failure_message
from .defs.run_recovery import command_line_tags, recover_dead_runs
from .defs.staleness import (
    latest_materialization,
    stale_animal_assets,
    stale_session_assets,
)
from .defs.volume_assets import raw_volume
from .errors import SynapFlowError
from .imaging.errors import InputError
from .imaging.landing import is_complete, scan_landing, settle_seconds_default
from .stopping import check_stop, stop_requested
from .store.atomic_files import remove_orphans
from .store.feature_store import FeatureStore, stored_partitions
from .store.locations import check_reachable, picture_path

INGEST_LOCK_WAIT_SECONDS = 3600
SETTLE_WAIT_SECONDS = 600
"""How long the `ingest` command waits for files still being written before it lists them as WAITING."""


class IngestBusy(SynapFlowError, RuntimeError):
    """Another ingest of the same data root did not finish in time."""


QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

"""Nothing on the console from a run: failures and warnings are summarised one line each by the caller,
full tracebacks stay in the Dagster event log (the web UI's run page)."""


@dataclass
class PipelineReport:
    """What one pass over the landing folder did."""

    materialized: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def process_landed(
    instance: dg.DagsterInstance,
    lake: DataLake,
    imaging: ImagingSettings | None = None,
    detection: DetectionSettings | None = None,
    alignment: AlignmentSettings | None = None,
    progress=None,
    settle_wait: float = 0.0,
    drop_removed: bool = False,
) -> PipelineReport:
    """Register every landed session as partitions and materialize its stale assets, then each animal's tracks.

    Each session partition runs only the assets that
    :func:`~.defs.staleness.stale_session_assets` finds stale (and what depends on them); ``spine_tracks`` of an animal
    runs when one of its sessions changed. A failing partition is reported
    and does not stop the others, but an animal with a failed session is not
    tracked (its dynamics would silently skip that session); failed asset checks (warnings) are
    collected one line each. ``progress``, when given, is called as
    ``progress(done, total, line)`` before each partition, with the number of
    partitions done, their total and what is about to run (or ``up to date``).

    One ingest at a time per data root (a file lock, `.ingest.lock`): a
    second one waits, then finds what the first did up to date; a command
    killed mid-run leaves its runs to :func:`recover_dead_runs` of the next.

    Sessions still being written are waited for up to ``settle_wait`` seconds (the command line: 10 min), then
    listed in ``waiting``. A data root of an older layout raises `OutdatedDataRoot` (one line: run ``upgrade``,
    :func:`~.defs.layout.check_layout`); nothing is migrated here.
    """
    check_reachable(lake.root)
    if lake.landing_root:
        check_reachable(lake.landing_root)
    root = lake.local_root
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / ".ingest.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        (progress or (lambda done, total, line: None))(0, 0, "waiting for another ingest of this data root to finish")
        try:
            lock.acquire(timeout=INGEST_LOCK_WAIT_SECONDS)
        except Timeout as error:
            raise IngestBusy(
                f"{root}: another ingest has held {lock.lock_file} for over "
                f"{INGEST_LOCK_WAIT_SECONDS / 60:.0f} min; run again when it has finished"
            ) from error
    try:
        return _process_landed(
            instance,
            lake,
            imaging or ImagingSettings(),
            detection or DetectionSettings(),
            alignment or AlignmentSettings(),
            progress or (lambda done, total, line: None),
            settle_wait,
            drop_removed,
        )
    finally:
        lock.release()


def _process_landed(
    instance: dg.DagsterInstance,
    lake: DataLake,
    imaging: ImagingSettings,
    detection: DetectionSettings,
    alignment: AlignmentSettings,
    progress,
    settle_wait: float,
    drop_removed: bool = False,
) -> PipelineReport:
    check_layout(instance, lake)
    sessions, problems = _settled_scan(lake, progress, settle_wait)
    report = PipelineReport(skipped=problems)
    report.waiting = [
        f"{s.animal}/{s.session}: still being written (last change {time.time() - s.modified:.0f} s ago); "
        f"taken once unchanged for {settle_seconds_default():.0f} s or with {s.done_marker.name}"
        for s in sessions
        if not is_complete(s)
    ]
    landed = sessions
    sessions = [s for s in sessions if is_complete(s)]
    if orphans := remove_orphans(lake.local_root):
        report.warnings.append(
            f"removed {len(orphans)} temporary files of interrupted writes "
            f"({', '.join(p.name for p in orphans[:3])}{' ...' if len(orphans) > 3 else ''})"
        )
    for run_id in recover_dead_runs(instance):
        report.warnings.append(
            f"run {run_id} of a process that no longer exists was marked failed (its pool slots are free)"
        )
    if detection.source == "model":
        _ensure_detector(instance, lake, report)
    report.removed = _removed_sessions(instance, landed, report.skipped)
    if drop_removed and report.removed:
        report.removed = [drop_session(instance, lake, line.split(":", 1)[0]) for line in report.removed]
    register_sessions(instance, [(s.animal, s.session) for s in sessions])
    in_store = stored_partitions(lake.store_path, "spine_features")
    failed_animals = set()
    animals = sorted({s.animal for s in sessions})
    total = len(sessions) + len(animals)
    for done, item in enumerate(sessions):
        check_stop(f"{done} of {total} partitions checked")
        partition = session_partition_key(item.animal, item.session)
        try:
            found = stale_session_assets(
                instance, item, imaging=imaging, detection=detection, lake=lake, in_store=in_store
            )
        except InputError as error:
            report.failed[str(partition)] = str(error)
            failed_animals.add(item.animal)
            continue
        report.warnings.extend(found.damage)
        stale = found.stale
        if not stale:
            report.up_to_date.append(str(partition))
            progress(done, total, f"{partition}: up to date")
            continue
        first_reason = next(iter(found.reasons.values()))
        progress(done, total, f"{partition}: {', '.join(k.to_user_string() for k in stale)} ({first_reason})")
        result = run_job(
            process_sessions_job, instance, partition, stale, {"lake": lake, "imaging": imaging, "detection": detection}
        )
        _stop_if_requested(instance, result, f"{done} of {total} partitions checked, {partition} interrupted")
        report.warnings.extend(failed_checks(result, str(partition)))
        if result.success:
            report.materialized.append(f"{partition} ({', '.join(k.to_user_string() for k in stale)})")
        else:
            report.failed[str(partition)] = failure_message(result)
            failed_animals.add(item.animal)
    changed = {split_session_key(key.split(" ")[0])[0] for key in report.materialized if "/" in key.split(" ")[0]}
    with_dynamics = {row[0] for row in stored_partitions(lake.store_path, "dynamics")}
    for done, animal in enumerate(animals, start=len(sessions)):
        check_stop(f"{done} of {total} partitions checked")
        step = lambda line, done=done: progress(done, total, line)
        if animal in failed_animals:
            bad = sorted(k.split("/")[1] for k in report.failed if k.startswith(f"{animal}/"))
            report.failed[animal] = (
                f"not tracked: session {', '.join(bad)} failed; tracks and dynamics wait for every "
                "session of the animal (fix or remove the failed input, then rerun)"
            )
            continue
        _run_animal_assets(
            instance, lake, animal, animal in changed or animal not in with_dynamics, report, alignment, step
        )
    return report


def _settled_scan(lake: DataLake, progress, settle_wait: float) -> tuple[list, list[str]]:
    """The landing folder's scan once no session is still being written (up to `settle_wait` seconds): files
    copied just before the command are waited for, with a line naming them, rather than skipped."""
    sessions, problems = scan_landing(lake.landing)
    deadline, said = time.monotonic() + settle_wait, None
    while (unsettled := [s for s in sessions if not is_complete(s)]) and time.monotonic() < deadline:
        check_stop("waiting for files still being written")
        names = ", ".join(f"{s.animal}/{s.session}" for s in unsettled[:3]) + (" ..." if len(unsettled) > 3 else "")
        if names != said:
            progress(
                0,
                0,
                f"waiting for {len(unsettled)} session(s) still being written ({names}): taken once unchanged for "
                f"{settle_seconds_default():.0f} s or with a <session>.done marker",
            )
            said = names
        time.sleep(0.5)
        sessions, problems = scan_landing(lake.landing)
    return sessions, problems


def _removed_sessions(instance: dg.DagsterInstance, landed: list, skipped: list[str]) -> list[str]:
    """One line per registered session partition whose input is gone from the landing folder (and not merely
    skipped this time). Its outputs and store rows are kept as they were (the documented default), so the
    animal's dynamics still count it until the partition is deleted."""
    present = {session_partition_key(s.animal, s.session) for s in landed}
    lines = []
    for key in sorted(set(instance.get_dynamic_partitions(SESSIONS_NAME)) - present):
        try:
            animal, session = split_session_key(key)
        except ValueError:
            continue
        if any(f"/{animal}/{session}" in line for line in skipped):
            continue
        lines.append(
            f"{key}: no longer in the landing folder; its outputs and feature-store rows are kept and still "
            f"count in {animal}'s dynamics (land it again, or delete the partition {key} to drop it)"
        )
    return lines


#: The feature-store tables that hold rows per session.
SESSION_TABLES = ("sessions", "detections", "spines", "spine_features")


def drop_session(instance: dg.DagsterInstance, lake: DataLake, key: str) -> str:
    """Drop a session that left the landing folder: its rows in the feature store, its outputs and then its
    partition (in that order, so that an interrupted drop is finished by the next one); its animal's tracks and
    dynamics are then recomputed without it. One line saying what was dropped."""
    animal, session = split_session_key(key)
    with FeatureStore(lake.store_path) as store:
        rows = sum(store.drop_partition(SESSION_TABLES, animal, session).values())
    for path in (
        lake.spines_path(animal, session),
        lake.spine_boxes_path(animal, session),
        lake.detections_path(animal, session),
        lake.candidates_path(animal, session),
        picture_path(lake.spines_path(animal, session), "spines_on_projection"),
        picture_path(lake.detections_path(animal, session), "detections_on_projection"),
        picture_path(lake.volume_path(animal, session), "mip"),
    ):
        Path(path).unlink(missing_ok=True)
    shutil.rmtree(lake.volume_path(animal, session), ignore_errors=True)
    instance.delete_dynamic_partition(SESSIONS_NAME, key)
    return (
        f"{key}: no longer in the landing folder; dropped ({rows} store rows, its outputs and its partition), "
        f"{animal}'s tracks and dynamics are recomputed without it"
    )


def run_job(
    job, instance: dg.DagsterInstance, partition: str, selection: list[dg.AssetKey], resources: dict
) -> dg.ExecuteInProcessResult:
    """Run the `selection` of one of the definitions' jobs in this process, tagged as started from the command line,
    so the UI lists it under that job's name."""
    return (
        build_definitions(resources)
        .resolve_job_def(job.name)
        .execute_in_process(
            instance=instance,
            partition_key=partition,
            asset_selection=selection,
            raise_on_error=False,
            run_config=QUIET,
            tags=command_line_tags(),
        )
    )


def _stop_if_requested(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, done: str) -> None:
    """After a run: when a stop was requested, record the run (failed by the interrupt) as canceled and stop."""
    if (signum := stop_requested()) is None:
        return
    run = instance.get_run_by_id(result.run_id)
    if run is not None and not result.success:
        instance.report_run_canceled(run, message=f"stopped by {signum.name}")
    check_stop(done)


def _ensure_detector(instance: dg.DagsterInstance, lake: DataLake, report: PipelineReport) -> None:
    """Materialize ``spine_detector`` (register the shipped weights as champion) when it never was."""
    latest = latest_materialization(instance, spine_detector.key, None)
    code = (latest[1].tags or {}).get("dagster/code_version") if latest else None
    if code == spine_detector.code_versions_by_key[spine_detector.key]:
        return
    result = dg.materialize(
        [spine_detector],
        instance=instance,
        resources={"lake": lake},
        raise_on_error=False,
        run_config=QUIET,
        tags=command_line_tags(),
    )
    if not result.success:
        report.failed["spine_detector"] = failure_message(result)


def _run_animal_assets(
    instance: dg.DagsterInstance,
    lake: DataLake,
    animal: str,
    sessions_changed: bool,
    report: PipelineReport,
    alignment: AlignmentSettings,
    progress,
) -> None:
    stale = stale_animal_assets(instance, lake, animal, sessions_changed=sessions_changed, alignment=alignment)
    if not stale:
        report.up_to_date.append(animal)
        progress(f"{animal}: up to date")
        return
    progress(f"{animal}: {', '.join(k.to_user_string() for k in stale)}")
    result = run_job(update_animals_job, instance, animal, stale, {"lake": lake, "alignment": alignment})
    _stop_if_requested(instance, result, f"{animal} interrupted")
    report.warnings.extend(failed_checks(result, animal))
    if result.success:
        report.materialized.append(f"{animal} ({', '.join(k.to_user_string() for k in stale)})")
    else:
        report.failed[animal] = failure_message(result)


def recompute_dynamics(instance: dg.DagsterInstance, lake: DataLake, animal: str) -> str | None:
    """Materialize ``spine_dynamics`` of one animal (after corrections); the failure message, or None."""
    if not instance.has_dynamic_partition(ANIMALS_NAME, animal):
        instance.add_dynamic_partitions(ANIMALS_NAME, [animal])
    result = run_job(
        update_animals_job, instance, animal, [spine_dynamics.key], {"lake": lake, "alignment": AlignmentSettings()}
    )
    return None if result.success else failure_message(result)


def session_summary(instance: dg.DagsterInstance) -> list[dict]:
    """One row per materialized session partition, from the latest metadata of each asset."""
    rows = []
    registered = set(instance.get_dynamic_partitions(SESSIONS_NAME))
    for partition in sorted(set(instance.get_materialized_partitions(raw_volume.key)) & registered):
        meta = {}
        for asset in SESSION_ASSETS:
            latest = latest_materialization(instance, asset.key, partition)
            meta[asset.key] = latest[1].metadata if latest else {}
        volume, detections, spines, _ = (meta[a.key] for a in SESSION_ASSETS)
        rows.append(
            {
                "partition": partition,
                "shape_zyx": volume["shape_zyx"].value,
                "voxel_um_zyx": volume["voxel_size_um_zyx"].value,
                "residual_px": round(cast(float, volume["registration_residual_px"].value), 3),
                "detections": detections["detections"].value if "detections" in detections else None,
                "spines_3d": spines["spines"].value if "spines" in spines else None,
                "volume": volume["path"].value,
            }
        )
    return rows
