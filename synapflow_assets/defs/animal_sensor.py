"""Sensor that updates an animal's tracks and dynamics once all its sessions have features."""

import dagster as dg

from .feature_assets import spine_dynamics, spine_features
from .partitions import SEPARATOR, sessions_of, split_session_key
from .resources import AlignmentSettings, DataLake
from .staleness import stale_animal_assets
from .track_assets import spine_tracks

update_animals_job = dg.define_asset_job(
    "update_animals",
    selection=[spine_tracks, spine_dynamics],
    description="Track one animal's spines across its sessions and write its dynamics (requested by animal_sensor).",
    executor_def=dg.in_process_executor,
)


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


@dg.sensor(job=update_animals_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING)
def animal_sensor(
    context: dg.SensorEvaluationContext, lake: DataLake, alignment: AlignmentSettings
) -> dg.SensorResult | dg.SkipReason:
    """When a session's `spine_features` are written, run its animal's stale assets (`spine_dynamics`, and
    `spine_tracks` unless its session inputs are unchanged: `staleness.stale_animal_assets`, as `ingest`).

    An animal runs once every one of its session partitions has features, so
    its dynamics never silently skip a session that is still processing or
    failed; the sessions it waits for are logged.
    """
    after = int(context.cursor) if context.cursor else 0
    ready, waiting, cursor = animals_to_update(context.instance, after)
    for animal, missing in waiting.items():
        context.log.info(f"{animal} waits for the features of {', '.join(missing)}")
    if cursor == after:
        return dg.SkipReason("no new session features")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{animal}:{cursor}",
                partition_key=animal,
                asset_selection=stale_animal_assets(
                    instance=context.instance, lake=lake, animal=animal, sessions_changed=True, alignment=alignment
                ),
            )
            for animal in ready
        ],
        cursor=str(cursor),
    )
