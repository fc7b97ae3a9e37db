"""Run the assets in-process on what has landed, skipping partitions that are up to date."""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import dagster as dg
from filelock import FileLock, Timeout

from .defs.animal_sensor import update_animals_job
from .defs.detection_assets import detections_2d
from .defs.detector_assets import spine_detector
from .defs.feature_assets import spine_dynamics, spine_features
from .defs.landing_sensor import process_sessions_job
from .defs.metadata import settings_fingerprint
from .defs.partition_upgrade import upgrade_partitions
from .defs.partitions import ANIMALS_NAME, SESSIONS_NAME, register_sessions, session_partition_key, split_session_key
from .defs.resources import AlignmentSettings, DataLake, DetectionSettings, ImagingSettings
from .defs.run_recovery import command_line_tags, recover_dead_runs
from .defs.spine_assets import spines_3d
from .defs.track_assets import animal_sessions, spine_tracks
from .defs.volume_assets import raw_volume
from .detection.imported import detections_file
from .errors import SynapFlowError
from .imaging.errors import InputError
from .imaging.landing import LandedSession, is_complete, scan_landing, settle_seconds_default
from .imaging.ome_zarr import volume_problem
from .imaging.readers import content_hash
from .settings import LabSettings, load_settings
from .store.atomic_files import remove_orphans
from .store.feature_store import stored_partitions
from .store.locations import check_reachable

SESSION_ASSETS = [raw_volume, detections_2d, spines_3d, spine_features]
ANIMAL_ASSETS = [spine_tracks, spine_dynamics]
EXTERNAL = {raw_volume.key, detections_2d.key}


INGEST_LOCK_WAIT_SECONDS = 3600


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


def step_failure_line(failure: dg.DagsterEvent, run_id: str) -> str:
    """One line for a failed step: a ``Failure``'s description, or the first line of an unexpected
    error with its type and where the full traceback is."""
    if failure.step_failure_data.user_failure_data is not None:
        description = failure.step_failure_data.user_failure_data.description or "failed"
        return description.strip().splitlines()[0]
    error = failure.step_failure_data.error
    if error is None:
        return f"failed (see run {run_id} in the Dagster UI)"
    cause = error.cause if error.cls_name == "DagsterExecutionStepExecutionError" and error.cause else error
    lines = [line.strip() for line in cause.message.strip().splitlines() if line.strip()]
    text = lines[0] if lines else cause.cls_name or "error"
    return f"{text} (unexpected {cause.cls_name}: full traceback in run {run_id} in the Dagster UI)"


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """One line: the error of the first failed step of a run, and where its full log is."""
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    if failure is None:
        return f"run failed (see run {result.run_id} in the Dagster UI)"
    return step_failure_line(failure, result.run_id)


def failed_checks(result: dg.ExecuteInProcessResult, partition: str) -> list[str]:
    """One line per asset check of a run that did not pass: ``partition: asset check: why``."""
    lines = []
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.event_specific_data
        if isinstance(evaluation, dg.AssetCheckEvaluation) and not evaluation.passed:
            why = evaluation.description or ", ".join(f"{k}={v.value}" for k, v in evaluation.metadata.items())
            lines.append(f"{partition}: {evaluation.asset_key.to_user_string()} check {evaluation.check_name}: {why}")
    return lines


def materialization(record: dg.EventLogRecord) -> dg.AssetMaterialization:
    """The materialization of a record fetched with `fetch_materializations` (which holds one)."""
    event = record.asset_materialization
    if event is None:
        raise TypeError(f"event {record.storage_id} is not a materialization")
    return event


def latest_versions(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str | None) -> dict | None:
    """Data and code version of the last materialization of one partition, and the upstream
    data versions it was computed from (its ``upstream_versions`` metadata); None if never."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    if not records:
        return None
    event = materialization(records[0])
    upstream = event.metadata.get("upstream_versions")
    settings = event.metadata.get("settings")
    checksum = event.metadata.get("checksum")
    return {
        "checksum": checksum.value if checksum is not None else None,
        "settings": settings_fingerprint(settings.value) if settings is not None else None,
        "data": (event.tags or {}).get("dagster/data_version"),
        "code": (event.tags or {}).get("dagster/code_version"),
        "upstream": upstream.value if upstream is not None else {},
    }


def output_problem(asset_key: dg.AssetKey, record: dict, lake: DataLake, animal: str, session: str) -> str | None:
    """What is wrong with the stored output of a materialized session asset, or None when it is intact:
    missing files, missing volume chunks, or a file whose content no longer matches what was recorded."""

    def file(path: Path, expected: str | None = None) -> str | None:
        if not path.is_file():
            return f"{path} is missing"
        if expected is not None and content_hash(path) != expected:
            return f"{path} was altered (checksum differs)"
        return None

    if asset_key == raw_volume.key:
        problem = volume_problem(lake.volume_path(animal, session), record.get("checksum"))
        return f"{lake.volume_path(animal, session)}: {problem}" if problem else None
    if asset_key == detections_2d.key:
        return file(lake.detections_path(animal, session), record.get("checksum")) or file(
            lake.candidates_path(animal, session)
        )
    if asset_key == spines_3d.key:
        spines, boxes = lake.spines_path(animal, session), lake.spine_boxes_path(animal, session)
        missing = file(spines) or file(boxes)
        if missing:
            return missing
        if record["data"] != f"{content_hash(spines)[:16]}{content_hash(boxes)[:16]}":
            return f"{spines} was altered (checksum differs)"
    return None


def external_input_hash(asset_key: dg.AssetKey, item: LandedSession, detection: DetectionSettings) -> str | None:
    """Content hash of the file an asset reads from the landing folder, if it reads one."""
    if asset_key == raw_volume.key:
        return content_hash(item.path)
    if asset_key == detections_2d.key and detection.source == "imported":
        csv = detections_file(item.path)
        return content_hash(csv) if csv.exists() else None
    return None


def session_settings(
    item: LandedSession, imaging: ImagingSettings | None = None, detection: DetectionSettings | None = None
) -> LabSettings:
    """The settings a session is processed with: its landing folder's ``synapflow.yaml`` files and the
    explicit values."""
    overrides = {**(imaging or ImagingSettings()).overrides(), **(detection or DetectionSettings()).overrides()}
    return load_settings(item.path.parents[1], item.animal, overrides)


def stale_assets(
    instance: dg.DagsterInstance,
    item: LandedSession,
    in_store: set | None = None,
    detection: DetectionSettings | None = None,
    imaging: ImagingSettings | None = None,
    lake: DataLake | None = None,
    damage: list[str] | None = None,
) -> list[dg.AssetKey]:
    """Assets of one session partition whose last materialization no longer matches its inputs.

    Stale means: never materialized, a different code version, a landing file
    whose content hash differs from the recorded data version, or an upstream
    asset that is stale or whose data version differs from the one recorded
    in this asset's ``upstream_versions`` metadata; for ``spine_features``,
    also a partition missing from the feature store ``in_store``; for
    ``raw_volume`` and ``detections_2d``, also settings (``synapflow.yaml``
    sections ``imaging`` and ``detection``, and explicit values) that differ
    from those recorded. With `lake`, also an output that is missing,
    truncated or altered (:func:`output_problem`); each such finding is
    appended to `damage` as one line.
    """
    detection = detection or DetectionSettings()
    settings = session_settings(item, imaging, detection)
    fingerprints = {
        raw_volume.key: settings.imaging.fingerprint(),
        detections_2d.key: detection.fingerprint(settings.detection),
    }
    partition = session_partition_key(item.animal, item.session)
    stale = []
    latest: dict[dg.AssetKey, dict | None] = {
        spine_detector.key: latest_versions(instance, spine_detector.key, None) or {"data": None}
    }
    for asset in SESSION_ASSETS:
        latest[asset.key] = record = latest_versions(instance, asset.key, partition)
        upstream = [key for key in asset.dependency_keys if key in latest]
        external = external_input_hash(asset.key, item, detection) if asset.key in EXTERNAL else None
        outdated = (
            record is None
            or record["code"] != asset.code_versions_by_key[asset.key]
            or (external is not None and external != record["data"])
            or (asset.key in fingerprints and record["settings"] != fingerprints[asset.key])
            or any(key in stale for key in upstream)
            or any(record["upstream"].get(key.to_user_string()) != (latest[key] or {}).get("data") for key in upstream)
            or (
                asset.key == spine_features.key and in_store is not None and (item.animal, item.session) not in in_store
            )
        )
        if record is not None and not outdated and lake is not None:
            problem = output_problem(asset.key, record, lake, item.animal, item.session)
            if problem:
                outdated = True
                if damage is not None:
                    damage.append(f"{partition}: {asset.key.to_user_string()} output damaged ({problem}); recomputed")
        if outdated:
            stale.append(asset.key)
    return stale


def process_landed(
    instance: dg.DagsterInstance,
    lake: DataLake,
    imaging: ImagingSettings | None = None,
    detection: DetectionSettings | None = None,
    alignment: AlignmentSettings | None = None,
    progress=None,
) -> PipelineReport:
    """Register every landed session as partitions and materialize its stale assets, then each animal's tracks.

    Each session partition runs only the assets that :func:`stale_assets`
    finds stale (and what depends on them); ``spine_tracks`` of an animal
    runs when one of its sessions changed. A failing partition is reported
    and does not stop the others, but an animal with a failed session is not
    tracked (its dynamics would silently skip that session); failed asset checks (warnings) are
    collected one line each. ``progress``, when given, is called as
    ``progress(done, total, line)`` before each partition, with the number of
    partitions done, their total and what is about to run (or ``up to date``).

    One ingest at a time per data root (a file lock, `.ingest.lock`): a
    second one waits, then finds what the first did up to date; a command
    killed mid-run leaves its runs to :func:`recover_dead_runs` of the next.
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
        return _process_landed(instance, lake, imaging, detection, alignment, progress)
    finally:
        lock.release()


def _process_landed(
    instance: dg.DagsterInstance,
    lake: DataLake,
    imaging: ImagingSettings | None = None,
    detection: DetectionSettings | None = None,
    alignment: AlignmentSettings | None = None,
    progress=None,
) -> PipelineReport:
    imaging, detection = imaging or ImagingSettings(), detection or DetectionSettings()
    alignment = alignment or AlignmentSettings()
    progress = progress or (lambda done, total, line: None)
    sessions, problems = scan_landing(lake.landing)
    report = PipelineReport(skipped=problems)
    report.waiting = [
        f"{s.animal}/{s.session}: still being written (last change {time.time() - s.modified:.0f} s ago); "
        f"taken once unchanged for {settle_seconds_default():.0f} s or with {s.done_marker.name}"
        for s in sessions
        if not is_complete(s)
    ]
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
    upgrade_partitions(instance)
    register_sessions(instance, [(s.animal, s.session) for s in sessions])
    in_store = stored_partitions(lake.store_path, "spine_features")
    failed_animals = set()
    animals = sorted({s.animal for s in sessions})
    total = len(sessions) + len(animals)
    for done, item in enumerate(sessions):
        partition = session_partition_key(item.animal, item.session)
        try:
            stale = stale_assets(instance, item, in_store, detection, imaging, lake, report.warnings)
        except InputError as error:
            report.failed[str(partition)] = str(error)
            failed_animals.add(item.animal)
            continue
        if not stale:
            report.up_to_date.append(str(partition))
            progress(done, total, f"{partition}: up to date")
            continue
        progress(done, total, f"{partition}: {', '.join(k.to_user_string() for k in stale)}")
        result = run_job(
            process_sessions_job, instance, partition, stale, {"lake": lake, "imaging": imaging, "detection": detection}
        )
        report.warnings.extend(failed_checks(result, str(partition)))
        if result.success:
            report.materialized.append(f"{partition} ({', '.join(k.to_user_string() for k in stale)})")
        else:
            report.failed[str(partition)] = failure_message(result)
            failed_animals.add(item.animal)
    changed = {split_session_key(key.split(" ")[0])[0] for key in report.materialized if "/" in key.split(" ")[0]}
    with_dynamics = {row[0] for row in stored_partitions(lake.store_path, "dynamics")}
    for done, animal in enumerate(animals, start=len(sessions)):
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


def run_job(
    job, instance: dg.DagsterInstance, partition: str, selection: list[dg.AssetKey], resources: dict
) -> dg.ExecuteInProcessResult:
    """Run the `selection` of one of the definitions' jobs in this process, tagged as started from the command line,
    so the UI lists it under that job's name."""
    resources = {
        "imaging": ImagingSettings(),
        "detection": DetectionSettings(),
        "alignment": AlignmentSettings(),
        **resources,
    }
    defs = dg.Definitions(assets=[spine_detector, *SESSION_ASSETS, *ANIMAL_ASSETS], jobs=[job], resources=resources)
    return defs.resolve_job_def(job.name).execute_in_process(
        instance=instance,
        partition_key=partition,
        asset_selection=selection,
        raise_on_error=False,
        run_config=QUIET,
        tags=command_line_tags(),
    )


def _ensure_detector(instance: dg.DagsterInstance, lake: DataLake, report: PipelineReport) -> None:
    """Materialize ``spine_detector`` (register the shipped weights as champion) when it never was."""
    record = latest_versions(instance, spine_detector.key, None)
    if record is not None and record["code"] == spine_detector.code_versions_by_key[spine_detector.key]:
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


def animal_assets_stale(
    instance: dg.DagsterInstance, lake: DataLake, animal: str, alignment: AlignmentSettings | None = None
) -> bool:
    """Whether ``spine_tracks`` of an animal misses a session, was computed from other session versions
    or with other alignment settings."""
    record = latest_versions(instance, spine_tracks.key, animal)
    if record is None or record["code"] != spine_tracks.code_versions_by_key[spine_tracks.key]:
        return True
    if not lake.tracks_path(animal).is_file():
        return True
    try:
        if record["settings"] != (alignment or AlignmentSettings()).settings(lake, animal).tracking_fingerprint():
            return True
    except InputError:
        return True
    try:
        return record["upstream"] != {s.key: s.version for s in animal_sessions(lake, animal)}
    except ValueError:
        return True


def _run_animal_assets(
    instance: dg.DagsterInstance,
    lake: DataLake,
    animal: str,
    sessions_changed: bool,
    report: PipelineReport,
    alignment: AlignmentSettings,
    progress,
) -> None:
    stale = [spine_tracks.key] if animal_assets_stale(instance, lake, animal, alignment) else []
    dynamics = latest_versions(instance, spine_dynamics.key, animal)
    if (
        stale
        or sessions_changed
        or dynamics is None
        or dynamics["code"] != spine_dynamics.code_versions_by_key[spine_dynamics.key]
    ):
        stale.append(spine_dynamics.key)
    if not stale:
        report.up_to_date.append(animal)
        progress(f"{animal}: up to date")
        return
    progress(f"{animal}: {', '.join(k.to_user_string() for k in stale)}")
    result = run_job(update_animals_job, instance, animal, stale, {"lake": lake, "alignment": alignment})
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
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset.key, asset_partitions=[partition]), limit=1
            ).records
            meta[asset.key] = materialization(records[0]).metadata if records else {}
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
