"""Upgrade an instance made with `animal x session` multi-partitions to `animal/session` partitions.

Up to November 2026 the session assets were partitioned by two dynamic
dimensions, `animals` and `sessions`, whose cross product holds sessions
that never existed. The upgrade keeps every past event (runs, materializations
and their metadata stay on the run pages and in the asset history) and
records, for each session partition that was materialized, its latest
materialization again under the new key with the same data version, code
version, input versions and metadata, so nothing is recomputed. The
`sessions` dimension is removed; the `animals` partitions stay. Run once by
`python -m synapflow_assets upgrade` (`layout.upgrade_data_root`); ingest and
the sensors only refuse such an instance (`layout.check_layout`).
"""

import dagster as dg

from .partitions import register_sessions, session_partition_key

OLD_SESSIONS = "sessions"
SESSION_ASSETS = ("raw_volume", "detections_2d", "spines_3d", "spine_features")
UPGRADED_FROM = "synapflow/upgraded_from"
POINTER = "dagster/input_event_pointer/"
"""Tags that name the upstream event an input was read from: moved to the upstream's moved event."""


def old_layout(instance: dg.DagsterInstance) -> bool:
    """Whether `instance` still has the session dimension of the multi-partitions."""
    return bool(instance.get_dynamic_partitions(OLD_SESSIONS))


def _old_keys(instance: dg.DagsterInstance, asset: dg.AssetKey) -> list[str]:
    return sorted(k for k in instance.get_materialized_partitions(asset) if k.count("|") == 1)


def upgrade_partitions(instance: dg.DagsterInstance) -> list[str]:
    """Move session partitions from `animal|session` to `animal/session`; the keys moved.

    Idempotent: a key whose new partition already has a later
    materialization is left as it is; an instance without the old layout is
    not touched.
    """
    if not old_layout(instance):
        return []
    moved: set[str] = set()
    new_ids: dict[str, str] = {}
    register_sessions(
        instance, [tuple(old.split("|")) for name in SESSION_ASSETS for old in _old_keys(instance, dg.AssetKey(name))]
    )
    for name in SESSION_ASSETS:
        asset = dg.AssetKey(name)
        for old in _old_keys(instance, asset):
            animal, session = old.split("|")
            new = session_partition_key(animal, session)
            before = _latest(instance, asset, old)
            after = _latest(instance, asset, new)
            if before is None or (after is not None and after.storage_id > before.storage_id):
                continue
            event = before.asset_materialization
            tags = {
                k: new_ids.get(v, v) if k.startswith(POINTER) else v
                for k, v in (event.tags or {}).items()
                if not k.startswith("dagster/partition")
            }
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset,
                    partition=new,
                    metadata=dict(event.metadata),
                    tags={**tags, UPGRADED_FROM: old.replace("|", ".")},
                    description=f"{event.description or ''} (moved from partition {old})".strip(),
                )
            )
            new_ids[str(before.storage_id)] = str(_latest(instance, asset, new).storage_id)
            moved.add(new)
    for key in instance.get_dynamic_partitions(OLD_SESSIONS):
        instance.delete_dynamic_partition(OLD_SESSIONS, key)
    return sorted(moved)


def _latest(instance: dg.DagsterInstance, asset: dg.AssetKey, partition: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None
