"""Run the assets in-process on what has landed, skipping partitions that are up to date."""
from dataclasses import dataclass, field
import dagster as dg

from .defs.partitions import ANIMALS, SESSIONS, session_partition_key
from .defs.resources import DataLake, ImagingSettings
from .defs.volume_assets import raw_volume
from .imaging.landing import scan_landing
from .imaging.readers import content_hash


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class PipelineReport:
    """What one pass over the landing folder did."""

    materialized: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def latest_versions(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str) -> tuple[str | None, str | None]:
    """(data version, code version) of the last materialization of one partition."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None, None
    tags = records[0].asset_materialization.tags or {}
    return tags.get("dagster/data_version"), tags.get("dagster/code_version")


def ingest_landed(instance: dg.DagsterInstance, lake: DataLake, imaging: ImagingSettings | None = None) -> PipelineReport:
    """Register every landed session as partitions and materialize ``raw_volume`` where stale.

    A partition is stale when it was never materialized, its input's content
    hash differs from the recorded data version, or the asset's code version
    changed. A failing partition is reported and does not stop the others.
    """
    imaging = imaging or ImagingSettings()
    sessions, problems = scan_landing(lake.landing)
    report = PipelineReport(skipped=problems)
    instance.add_dynamic_partitions(ANIMALS.name, sorted({s.animal for s in sessions}))
    instance.add_dynamic_partitions(SESSIONS.name, sorted({s.session for s in sessions}))
    code_version = raw_volume.code_versions_by_key[raw_volume.key]
    for item in sessions:
        partition = session_partition_key(item.animal, item.session)
        data_version, recorded_code = latest_versions(instance, raw_volume.key, str(partition))
        if data_version == content_hash(item.path) and recorded_code == code_version:
            report.up_to_date.append(str(partition))
            continue
        result = dg.materialize(
            [raw_volume],
            instance=instance,
            partition_key=partition,
            resources={"lake": lake, "imaging": imaging},
            raise_on_error=False,
            run_config=QUIET,
        )
        if result.success:
            report.materialized.append(str(partition))
        else:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            report.failed[str(partition)] = failure.step_failure_data.error.message.strip() if failure else "run failed"
    return report


def volume_summary(instance: dg.DagsterInstance) -> list[dict]:
    """One row per materialized ``raw_volume`` partition, from its latest metadata."""
    rows = []
    for partition in sorted(instance.get_materialized_partitions(raw_volume.key)):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=raw_volume.key, asset_partitions=[partition]), limit=1
        ).records
        meta = records[0].asset_materialization.metadata
        rows.append({
            "partition": partition,
            "shape_zyx": meta["shape_zyx"].value,
            "voxel_um_zyx": meta["voxel_size_um_zyx"].value,
            "max_layer_shift_px": round(meta["layer_shift_max_px"].value, 2),
            "residual_px": round(meta["registration_residual_px"].value, 3),
            "path": meta["path"].value,
        })
    return rows
