"""What must run for a landed session and for an animal: the one decision of the landing sensor and `ingest`.

A session's assets are judged by Dagster's own provenance: the landed inputs
are observed (`landed_inputs.observe`), then Dagster's stale-status resolver,
the one behind the "stale" badge in the UI, compares each partition's recorded
code version and input data versions with the current ones. What Dagster
cannot see is checked beside it: an output missing or altered on disk, and
features missing from the feature store.

Animal assets read every session of their animal, a many-to-one relation
Dagster's partition mappings cannot express (see `partitions`), so their
staleness compares the session versions recorded on `spine_tracks`.
"""

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import dagster as dg
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

from ..imaging.errors import InputError
from ..imaging.landing import LandedSession
from ..imaging.ome_zarr import volume_problem
from ..imaging.readers import content_hash
from .detection_assets import detections_2d
from .feature_assets import spine_dynamics, spine_features
from .graph import ASSETS, SESSION_ASSETS
from .landed_inputs import observations, observe
from .metadata import settings_fingerprint
from .partitions import session_partition_key
from .resources import AlignmentSettings, DataLake, DetectionSettings, ImagingSettings
from .spine_assets import spines_3d
from .track_assets import animal_sessions, spine_tracks
from .volume_assets import raw_volume


@dataclass
class SessionStaleness:
    """What must run for one session partition and why (one line per asset), and damaged outputs found."""

    stale: list[dg.AssetKey] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    damage: list[str] = field(default_factory=list)


@cache
def asset_graph() -> AssetGraph:
    """The asset graph of the definitions (`graph.ASSETS`, the landed inputs as external assets), as the web
    server resolves it for the stale badge."""
    return AssetGraph.from_assets(
        [a if isinstance(a, dg.AssetsDefinition) else dg.AssetsDefinition(specs=[a]) for a in ASSETS]
    )


def _resolver(instance: dg.DagsterInstance) -> CachingStaleStatusResolver:
    graph = asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    return CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)


def latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None
) -> tuple[int, dg.AssetMaterialization] | None:
    """Storage id and event of the latest materialization of one partition (None: never)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return records[0].storage_id, records[0].asset_materialization


def meta_value(event: dg.AssetMaterialization, name: str):
    value = event.metadata.get(name)
    return None if value is None else value.value


def output_problem(asset_key: dg.AssetKey, event: dg.AssetMaterialization, lake: DataLake, animal: str, session: str):
    """What is wrong with the stored output of a materialized session asset, or None when it is intact:
    missing files, missing volume chunks, or a file whose content no longer matches what was recorded."""
    checksum = meta_value(event, "checksum")

    def file(path: Path, expected: str | None = None) -> str | None:
        if not path.is_file():
            return f"{path} is missing"
        if expected is not None and content_hash(path) != expected:
            return f"{path} was altered (checksum differs)"
        return None

    if asset_key == raw_volume.key:
        problem = volume_problem(lake.volume_path(animal, session), checksum)
        return f"{lake.volume_path(animal, session)}: {problem}" if problem else None
    if asset_key == detections_2d.key:
        return file(lake.detections_path(animal, session), checksum) or file(lake.candidates_path(animal, session))
    if asset_key == spines_3d.key:
        spines, boxes = lake.spines_path(animal, session), lake.spine_boxes_path(animal, session)
        missing = file(spines) or file(boxes)
        if missing:
            return missing
        if (event.tags or {}).get("dagster/data_version") != f"{content_hash(spines)[:16]}{content_hash(boxes)[:16]}":
            return f"{spines} was altered (checksum differs)"
    return None


def _cause_line(resolver: CachingStaleStatusResolver, key: dg.AssetKey, partition: str) -> str:
    causes = resolver.get_stale_root_causes(key, partition)
    return "; ".join(f"{c.key.asset_key.to_user_string()} {c.reason}" for c in causes) or "stale"


def stale_session_assets(
    instance: dg.DagsterInstance,
    item: LandedSession,
    *,
    imaging: ImagingSettings | None = None,
    detection: DetectionSettings | None = None,
    lake: DataLake | None = None,
    in_store: set | None = None,
) -> SessionStaleness:
    """The assets of one session partition that must run, in order, and why.

    The session's landed inputs are observed first. An asset must run when
    Dagster finds it missing or stale (a new code version, or an input whose
    data version changed since it was computed), when an upstream session
    asset runs, when `spine_features` has no rows in the feature store
    ``in_store`` (pairs ``(animal, session)``), or, with `lake`, when its
    stored output is missing, truncated or altered (one line in ``damage``).
    Raises `InputError` when the session's settings are invalid.
    """
    imaging, detection = imaging or ImagingSettings(), detection or DetectionSettings()
    partition = session_partition_key(item.animal, item.session)
    found = observations(item, imaging, detection, lake)
    observe(instance, found)
    result = SessionStaleness()
    resolver = _resolver(instance)
    for asset in SESSION_ASSETS:
        key, name = asset.key, asset.key.to_user_string()
        status = resolver.get_status(key, partition)
        upstream = [k for k in asset.dependency_keys if k in result.stale]
        reason = None
        if status == StaleStatus.MISSING:
            reason = "never materialized"
        elif status == StaleStatus.STALE:
            reason = _cause_line(resolver, key, partition)
        elif upstream:
            reason = f"{', '.join(k.to_user_string() for k in upstream)} runs"
        elif key == spine_features.key and in_store is not None and (item.animal, item.session) not in in_store:
            reason = "missing from the feature store"
        elif lake is not None:
            latest = latest_materialization(instance, key, partition)
            problem = output_problem(key, latest[1], lake, item.animal, item.session) if latest else None
            if problem:
                reason = f"output damaged ({problem})"
                result.damage.append(f"{partition}: {name} output damaged ({problem}); recomputed")
        if reason:
            result.stale.append(key)
            result.reasons[name] = reason
    return result


def tracks_stale(instance: dg.DagsterInstance, lake: DataLake, animal: str, alignment: AlignmentSettings) -> bool:
    """Whether ``spine_tracks`` of an animal misses a session, was computed from other session versions
    or with other alignment settings."""
    latest = latest_materialization(instance, spine_tracks.key, animal)
    if latest is None:
        return True
    event = latest[1]
    if (event.tags or {}).get("dagster/code_version") != spine_tracks.code_versions_by_key[spine_tracks.key]:
        return True
    if not lake.tracks_path(animal).is_file():
        return True
    try:
        if (
            settings_fingerprint(meta_value(event, "settings"))
            != alignment.settings(lake, animal).tracking_fingerprint()
        ):
            return True
    except InputError:
        return True
    try:
        return (meta_value(event, "upstream_versions") or {}) != {
            s.key: s.version for s in animal_sessions(lake, animal)
        }
    except ValueError:
        return True


def stale_animal_assets(
    instance: dg.DagsterInstance,
    lake: DataLake,
    animal: str,
    *,
    sessions_changed: bool,
    alignment: AlignmentSettings | None = None,
) -> list[dg.AssetKey]:
    """The animal assets that must run: ``spine_tracks`` when :func:`tracks_stale`, ``spine_dynamics``
    when the tracks run, a session of the animal changed, or it was never computed with this code."""
    stale = [spine_tracks.key] if tracks_stale(instance, lake, animal, alignment or AlignmentSettings()) else []
    latest = latest_materialization(instance, spine_dynamics.key, animal)
    code = (latest[1].tags or {}).get("dagster/code_version") if latest else None
    if stale or sessions_changed or code != spine_dynamics.code_versions_by_key[spine_dynamics.key]:
        stale.append(spine_dynamics.key)
    return stale
