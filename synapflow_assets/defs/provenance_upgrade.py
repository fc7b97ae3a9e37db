"""Give materializations made before the landed inputs were observed the provenance they lack (run by `upgrade`).

Materializations made before November 29, 2026 (`spines_3d`: before December 7, 2026, when the `depth` settings
section replaced run config) point to no observation of their landed input: Dagster records the pointer
``NULL`` and would never see the input change. When the input recorded on such a materialization (content
hash, settings) is the one observed now, the materialization is recorded again with the same data version,
metadata and tags plus the input's version and pointer, so nothing is recomputed. Otherwise it is recorded
again without any input of that kind, which Dagster's resolver calls stale ("has a new dependency on ..."),
so the next `ingest` or sensor tick recomputes it.
"""

import dagster as dg

from ..setting_sections import DepthOptions
from .detection_assets import detections_2d
from .landed_inputs import depth_settings, detection_inputs, landed_volume
from .metadata import settings_fingerprint
from .spine_assets import spines_3d
from .staleness import latest_materialization, meta_value
from .volume_assets import raw_volume

READS = {raw_volume.key: landed_volume, detections_2d.key: detection_inputs, spines_3d.key: depth_settings}
"""The landed input each asset reads."""
POINTER = "dagster/input_event_pointer/"
INPUT_VERSION = "dagster/input_data_version/"


def lacks_provenance(instance: dg.DagsterInstance, partition: str) -> bool:
    """Whether the latest materialization of an asset of the partition, made by a run of its code, points to no
    observation of its input."""
    for key, spec in READS.items():
        latest = latest_materialization(instance, key, partition)
        tags = (latest[1].tags or {}) if latest else {}
        made_by_code = "dagster/code_version" in tags
        if made_by_code and tags.get(f"{POINTER}{spec.key.to_user_string()}", "NULL") == "NULL":
            return True
    return False


def _recorded_inputs_match(key: dg.AssetKey, event: dg.AssetMaterialization, observed: dict) -> bool:
    """Whether a materialization made before its landed input was observed read the input as it is now
    (its data version and `settings` metadata)."""
    data = (event.tags or {}).get("dagster/data_version")
    settings = settings_fingerprint(meta_value(event, "settings"))
    if key == raw_volume.key:
        return data == observed["content"] and settings == observed["settings"]
    if key == spines_3d.key:  # linked with the defaults before the `depth` section existed
        return (settings or DepthOptions().fingerprint()) == observed["settings"]
    return settings == observed["settings"] and (observed.get("csv") is None or data == observed["csv"])


def adopt_landed_inputs(
    instance: dg.DagsterInstance, partition: str, found: list[dg.AssetObservation]
) -> list[dg.AssetKey]:
    """Record again each materialization of the partition that points to no observation of its landed input
    (``found``: the observations recorded now), with that observation when it read the input as it is now; the
    assets whose input changed since or was not observed (recorded without the input, so that they run again)."""
    by_key = {o.asset_key: o for o in found}
    stale = []
    for key, spec in READS.items():
        latest = latest_materialization(instance, key, partition)
        if latest is None:
            continue
        _, event = latest
        name = spec.key.to_user_string()
        if (event.tags or {}).get(f"{POINTER}{name}", "NULL") != "NULL":
            continue
        observation = by_key.get(spec.key)
        observed = {field: value.value for field, value in observation.metadata.items()} if observation else {}
        tags = {k: v for k, v in (event.tags or {}).items() if not k.startswith("dagster/partition")}
        if observation is not None and _recorded_inputs_match(key, event, observed):
            record = instance.get_latest_data_version_record(spec.key, True, partition)
            tags[f"{INPUT_VERSION}{name}"] = (observation.tags or {})["dagster/data_version"]
            tags[f"{POINTER}{name}"] = str(record.storage_id if record else "NULL")
            note = f"provenance of {name} added"
        else:
            tags = {k: v for k, v in tags.items() if k not in (f"{INPUT_VERSION}{name}", f"{POINTER}{name}")}
            note = f"{name} changed since it was computed: runs again"
            stale.append(key)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                key,
                partition=partition,
                metadata=dict(event.metadata),
                tags=tags,
                description=f"{event.description or ''} ({note})".strip(),
            )
        )
    return stale
