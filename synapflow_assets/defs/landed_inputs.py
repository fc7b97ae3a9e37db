"""External assets for what a session reads from the landing folder, observed with data versions.

`landed_volume` is the microscope file (or folder) of a session with the
imaging settings it is read with; `detection_inputs` is what decides its boxes
besides the volume: the detection settings and, for imported detections, the
exported CSV; `depth_settings` is how its boxes are linked through depth. Each
observation's data version is a hash of those, so Dagster records on
`raw_volume`, `detections_2d` and `spines_3d` which version they were computed
from (`dagster/input_data_version/...` tags), and its stale status (the badge
in the UI, `staleness.stale_session_assets`) follows a changed file or setting.
"""

import hashlib
import json
from typing import Any

import dagster as dg

from ..detection.imported import detections_file
from ..imaging.animal_scale import AnimalScale, landed_scale
from ..imaging.landing import LandedSession
from ..imaging.readers import content_hash
from ..settings import SETTINGS_FILE, LabSettings, load_settings
from .partitions import SESSIONS, session_partition_key
from .resources import DataLake, DetectionSettings, ImagingSettings

landed_volume = dg.AssetSpec(
    "landed_volume",
    partitions_def=SESSIONS,
    group_name="imaging",
    kinds={"tiff"},
    description="A session's file or folder in the landing folder and the imaging settings it is read with "
    "(observed by the landing sensor and `ingest`; data version: a hash of its content and the settings).",
)
detection_inputs = dg.AssetSpec(
    "detection_inputs",
    partitions_def=SESSIONS,
    group_name="detection",
    kinds={"csv"},
    description="What decides a session's boxes besides its volume: the detection settings and, with source "
    "'imported', the exported `<session>.detections.csv` (observed with a data version like `landed_volume`).",
)
depth_settings = dg.AssetSpec(
    "depth_settings",
    partitions_def=SESSIONS,
    group_name="tracking",
    kinds={"yaml"},
    description="The `depth` section of the settings a session's boxes are linked through depth with "
    "(observed with a data version like `landed_volume`).",
)
LANDED = (landed_volume, detection_inputs, depth_settings)


def session_settings(
    item: LandedSession, imaging: ImagingSettings | None = None, detection: DetectionSettings | None = None
) -> LabSettings:
    """The settings a session is processed with: its landing folder's ``synapflow.yaml`` files and the
    explicit values."""
    overrides = {**(imaging or ImagingSettings()).overrides(), **(detection or DetectionSettings()).overrides()}
    return load_settings(item.path.parents[1], item.animal, overrides)


def animal_scale(lake: DataLake, animal: str, settings: LabSettings) -> AnimalScale | None:
    """The animal's pooled pixel size when its settings state none (pooled over its landed sessions and
    recorded the first time it is asked for)."""
    return landed_scale(lake.landing, animal, lake.pixel_size_record(animal), **settings.imaging.model_dump())


def _version(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def observations(
    item: LandedSession,
    imaging: ImagingSettings,
    detection: DetectionSettings,
    lake: DataLake | None = None,
) -> list[dg.AssetObservation]:
    """The current observation of each landed input of one session.

    With `lake`, the animal's pooled pixel size (recorded on first sight, see `imaging.animal_scale`) is part of
    the volume's version: a session is read at it when its file states no size.

    Raises `InputError` (from the settings) when a ``synapflow.yaml`` is invalid.
    """
    settings = session_settings(item, imaging, detection)
    partition = session_partition_key(item.animal, item.session)
    volume: dict[str, Any] = {"content": content_hash(item.path), "settings": settings.imaging.fingerprint()}
    if lake is not None:
        scale = animal_scale(lake, item.animal, settings)
        if scale is not None:
            volume["animal_pixel_size_um"] = scale.pixel_size_um
    csv = detections_file(item.path)
    boxes = {
        "settings": detection.fingerprint(settings.detection),
        "csv": content_hash(csv) if detection.source == "imported" and csv.exists() else None,
    }
    depth = {"settings": settings.depth.fingerprint()}
    settings_file = item.path.parent / SETTINGS_FILE
    return [
        dg.AssetObservation(
            spec.key,
            partition=partition,
            tags={"dagster/data_version": _version(parts)},
            metadata={"path": dg.MetadataValue.path(str(path)), **{k: v for k, v in parts.items() if v}},
        )
        for spec, parts, path in (
            (landed_volume, volume, item.path),
            (detection_inputs, boxes, csv),
            (depth_settings, depth, settings_file),
        )
    ]


def latest_observed_version(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> str | None:
    """Data version of the latest observation of one partition of a landed input."""
    record = instance.get_latest_data_version_record(key, True, partition)
    if record is None or record.asset_observation is None:
        return None
    return (record.asset_observation.tags or {}).get("dagster/data_version")


def observe(instance: dg.DagsterInstance, found: list[dg.AssetObservation]) -> list[dg.AssetKey]:
    """Record the observations whose data version differs from the latest recorded one (an unchanged
    input adds no event); the keys of the inputs that changed."""
    changed = []
    for observation in found:
        version = (observation.tags or {})["dagster/data_version"]
        if latest_observed_version(instance, observation.asset_key, str(observation.partition)) != version:
            instance.report_runless_asset_event(observation)
            changed.append(observation.asset_key)
    return changed
