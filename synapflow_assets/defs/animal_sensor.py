"""Sensor that updates an animal's tracks and dynamics once all its sessions have features."""

import dagster as dg

from ..store.layout_version import OutdatedDataRoot
from .feature_assets import spine_dynamics, spine_features
from .graph import UPDATE_ANIMALS
from .layout import check_layout
from .partitions import SEPARATOR, sessions_of, split_session_key
from .resources import AlignmentSettings, DataLake
from .staleness import latest_materialization, stale_animal_assets


def animals_to_update(
    instance: dg.DagsterInstance, after_storage_id: int
) -> tuple[list[str], dict[str, list[str]], int]:
    """Animals with new session features since `after_storage_id` whose sessions all have features.

    Returns the animals to run, the animals that wait (with the sessions that
    have no features yet: still running, or failed) and the new cursor.
    """
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=spine_features.key, after_storage_id=after_storage_id),
        limit=10_000,
        ascending=True,
    ).records
    if not records:
        return [], {}, after_storage_id
    changed = {
        split_session_key(r.partition_key)[0] for r in records if r.partition_key and SEPARATOR in r.partition_key
    }
    featured = set(instance.get_materialized_partitions(spine_features.key))
    ready, waiting = [], {}
    for animal in sorted(changed):
        missing = [key for key in sessions_of(instance, animal) if key not in featured]
        if missing:
            waiting[animal] = missing
        else:
            ready.append(animal)
    return ready, waiting, records[-1].storage_id


def features_newer_than_dynamics(instance: dg.DagsterInstance, animal: str) -> bool:
    """Whether a session of the animal wrote features after its latest `spine_dynamics` (a run that
    found its features unchanged and wrote nothing does not count)."""
    latest = latest_materialization(instance, spine_dynamics.key, animal)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=spine_features.key,
            asset_partitions=sessions_of(instance, animal),
            after_storage_id=latest[0] if latest else None,
        ),
        limit=10_000,
    ).records
    return any(r.asset_materialization is None or "unchanged" not in r.asset_materialization.metadata for r in records)


@dg.sensor(job_name=UPDATE_ANIMALS, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING)
def animal_sensor(
    context: dg.SensorEvaluationContext, lake: DataLake, alignment: AlignmentSettings
) -> dg.SensorResult | dg.SkipReason:
    """When a session's `spine_features` are written, run its animal's stale assets (`spine_dynamics`, and
    `spine_tracks` unless its session inputs are unchanged: `staleness.stale_animal_assets`, as `ingest`).

    An animal runs once every one of its session partitions has features, so
    its dynamics never silently skip a session that is still processing or
    failed; the sessions it waits for are logged. An animal whose dynamics are
    newer than every feature of its sessions and whose assets are not stale is
    not requested, so the first tick of a new daemon (its cursor empty) does not
    rerun every animal.
    """
    try:
        check_layout(context.instance, lake, store=False)
    except OutdatedDataRoot as error:
        context.log.error(str(error))
        return dg.SkipReason(str(error))
    after = int(context.cursor) if context.cursor else 0
    ready, waiting, cursor = animals_to_update(context.instance, after)
    for animal, missing in waiting.items():
        context.log.info(f"{animal} waits for the features of {', '.join(missing)}")
    if cursor == after:
        return dg.SkipReason("no new session features")
    requests = []
    for animal in ready:
        selection = stale_animal_assets(
            instance=context.instance,
            lake=lake,
            animal=animal,
            sessions_changed=features_newer_than_dynamics(context.instance, animal),
            alignment=alignment,
        )
        if selection:
            requests.append(
                dg.RunRequest(run_key=f"{animal}:{cursor}", partition_key=animal, asset_selection=selection)
            )
        else:
            context.log.info(f"{animal} is up to date")
    return dg.SensorResult(run_requests=requests, cursor=str(cursor))
