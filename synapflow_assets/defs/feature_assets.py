"""Assets `spine_features` (per session) and `spine_dynamics` (per animal) in the DuckDB feature store."""

import hashlib
import json
from typing import Any

import dagster as dg
import polars as pl

from .. import features as science
from ..features.dynamics_plots import dynamics_png, dynamics_table, persistent_size_rows, size_trajectories_png
from ..features.plausibility import split_identity_share
from ..imaging.ome_zarr import read_volume_info, read_volume_zarr
from ..settings import load_settings
from ..store.feature_store import FeatureStore, lineage_columns
from ..store.locations import read_parquet
from ..tracking.corrections import apply_corrections
from ..tracking.event_confidence import OTHER_COLUMNS
from .detection_assets import session_keys
from .lineage import latest_data_versions
from .metadata import column_schema, labels, materialized, picture_metadata, rounded, table_metadata
from .partitions import ANIMALS, SESSIONS, SESSIONS_OF_ANIMAL
from .plausibility_checks import PLAUSIBILITY_CHECKS, check_results, findings
from .resources import DataLake
from .spine_assets import spines_3d
from .track_assets import require_all_sessions, spine_tracks
from .volume_assets import raw_volume


def _version(inputs: dict, code: str) -> dg.DataVersion:
    return dg.DataVersion(hashlib.sha256(json.dumps([inputs, code], sort_keys=True).encode()).hexdigest()[:32])


def _unchanged(context: dg.AssetExecutionContext, inputs: dict, code: str) -> dg.MaterializeResult:
    return materialized(
        context,
        data_version=_version(inputs, code),
        metadata={"rows_written": 0, "unchanged": True, "upstream_versions": dg.MetadataValue.json(inputs)},
    )


@dg.asset(
    partitions_def=SESSIONS,
    deps=[spines_3d, raw_volume],
    code_version="4",
    pool="duckdb",
    kinds={"duckdb"},
    group_name="features",
    **labels("features"),
    automation_condition=dg.AutomationCondition.eager(),
)
def spine_features(context: dg.AssetExecutionContext, lake: DataLake) -> dg.MaterializeResult:
    """Per-spine size, head-to-dendrite distance, head diameter, neck length, head volume, type, position and
    brightness of one session, with the session's dendrite density, its linked detections and 3D spines, written
    to the feature store."""
    animal, session = session_keys(context)
    code = context.assets_def.code_versions_by_key[context.asset_key]
    inputs = latest_data_versions(context, spines_3d.key, raw_volume.key)
    with FeatureStore(lake.store_path) as store:
        if store.is_current("spine_features", animal, session, inputs, code):
            return _unchanged(context, inputs, code)
        volume, voxel, _ = read_volume_zarr(lake.volume_path(animal, session))
        boxes = read_parquet(lake.spine_boxes_path(animal, session))
        spines = read_parquet(lake.spines_path(animal, session))
        features = science.spine_features(volume, boxes, spines, voxel, along_dendrite=True)
        density = science.session_density(volume, spines, voxel)
        shape, _, attrs = read_volume_info(lake.volume_path(animal, session))
        model = spines["model"][0] if len(spines) else None
        version = spines["model_version"][0] if len(spines) else None
        written = store.replace_partition(
            {
                "sessions": pl.DataFrame(
                    [
                        {
                            "acquired_at": attrs.get("acquired_at"),
                            "layers": shape[0],
                            "height": shape[1],
                            "width": shape[2],
                            "voxel_z_um": voxel[0],
                            "voxel_y_um": voxel[1],
                            "voxel_x_um": voxel[2],
                            "n_spines": len(spines),
                            "dendrite_length_um": density["dendrite_length_um"],
                            "spines_per_um": density["spines_per_um"],
                        }
                    ]
                ),
                "detections": boxes.select(
                    spine_id="id",
                    layer="layer",
                    xmin="xmin",
                    ymin="ymin",
                    xmax="xmax",
                    ymax="ymax",
                    score="score",
                    type="type",
                    interpolated="interpolated",
                ),
                "spines": spines.drop("animal", "session", "model", "model_version", strict=False),
                "spine_features": features,
            },
            animal,
            session,
            lineage_columns(context.run.run_id, code, model, version, inputs),
        )
    return materialized(
        context,
        data_version=_version(inputs, code),
        metadata={
            "dagster/row_count": len(features),
            "dagster/column_schema": _feature_schema(features),
            "rows_written": dg.MetadataValue.json(written),
            "spines": len(features),
            "spines_per_um": rounded(density["spines_per_um"]),
            "dendrite_length_um": rounded(density["dendrite_length_um"]),
            "median_size": rounded(features["size"].median()) if len(features) else None,
            "distance_found": rounded(features["head_to_dendrite_um"].is_not_nan().mean()) if len(features) else None,
            "median_head_diameter_um": rounded(features["head_diameter_um"].median()) if len(features) else None,
            "median_head_volume_um3": rounded(features["head_volume_um3"].median()) if len(features) else None,
            "upstream_versions": dg.MetadataValue.json(inputs),
            "store": dg.MetadataValue.path(str(lake.store_path)),
        },
    )


def _feature_schema(features: pl.DataFrame) -> dg.TableSchema:
    """The per-spine features' column schema, each column described with its unit (`features.FEATURE_UNITS`)."""
    columns = []
    for column in column_schema(features).columns:
        unit, what = science.FEATURE_UNITS.get(column.name, ("", ""))
        description = f"{what} [{unit}]" if unit else what
        columns.append(dg.TableColumn(column.name, column.type, description=description or None))
    return dg.TableSchema(columns=columns)


def _stored_dynamics(store: FeatureStore, animal: str) -> pl.DataFrame:
    """The dynamics rows of an animal as stored, without their lineage columns (as `spine_dynamics` computes them)."""
    stored = store.connection.sql(
        "SELECT * FROM dynamics WHERE animal = $1 ORDER BY session_index", params=[animal]
    ).pl()
    return stored.drop(*lineage_columns("", "", None, None, {}), strict=False)


PLOT_WIDTH = 720
"""The widest preview of a plot: the plots are drawn narrower, so their previews keep every pixel."""

TRACK_COLUMNS = [
    "session",
    "session_index",
    "track_id",
    "spine_id",
    "status",
    "detected",
    "redetected",
    "x_um",
    "y_um",
    "z_um",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "first_layer",
    "last_layer",
    "evidence_score",
    "contrast_ratio",
    "confidence",
    "reason",
    "computed_status",
    "corrected_by",
    "corrected_at",
    *OTHER_COLUMNS,
]


@dg.asset(
    partitions_def=ANIMALS,
    code_version="2",
    pool="duckdb",
    kinds={"duckdb"},
    group_name="features",
    **labels("dynamics"),
    deps=[spine_tracks, dg.AssetDep(spine_features, partition_mapping=SESSIONS_OF_ANIMAL)],
    check_specs=PLAUSIBILITY_CHECKS,
)
def spine_dynamics(context: dg.AssetExecutionContext, lake: DataLake) -> dg.MaterializeResult:
    """Formation, elimination, turnover, survival and size change per session of one animal with 95% intervals,
    and its tracks with the confidence and reason of every event, written to the feature store. A person's
    corrections (`review --apply`) are applied to the tracks first."""
    animal = context.partition_key
    code = context.assets_def.code_versions_by_key[context.asset_key]
    tracks = read_parquet(lake.tracks_path(animal))
    with FeatureStore(lake.store_path) as store:
        sizes = store.connection.sql(
            "SELECT session, spine_id, size, input_versions, model, model_version FROM spine_features WHERE "
            "animal = $1",
            params=[animal],
        ).pl()
        require_all_sessions(
            context.instance,
            animal,
            set(sizes["session"].unique())
            | set(
                store.connection.sql("SELECT session FROM sessions WHERE animal = $1", params=[animal]).pl()["session"]
            ),
            "features",
        )
        corrections = store.corrections(animal)
        model, version = (",".join(sorted(sizes[c].drop_nulls().unique())) or None for c in ("model", "model_version"))
        inputs: dict[str, Any] = {
            **latest_data_versions(context, spine_tracks.key),
            "spine_features": dict(sorted(sizes.select("session", "input_versions").unique().iter_rows())),
            "corrections": hashlib.sha256(corrections.write_csv().encode()).hexdigest()[:16]
            if len(corrections)
            else None,
        }
        limits = load_settings(lake.landing, animal).plausibility.limits()
        tracks = apply_corrections(tracks, corrections)
        with_sizes = tracks.join(sizes.select("session", "spine_id", "size"), on=["session", "spine_id"], how="left")
        unchanged = store.is_current("dynamics", animal, None, inputs, code)
        if unchanged:  # nothing new: the stored rows stay, and so do the plot, table and schema
            dynamics = _stored_dynamics(store, animal)
            written: dict = {}
        else:
            dynamics = science.spine_dynamics(with_sizes)
            written = store.replace_partition(
                {
                    "tracks": tracks.select(TRACK_COLUMNS),
                    "dynamics": dynamics.drop("animal", strict=False),
                },
                animal,
                None,
                lineage_columns(context.run.run_id, code, model, version, inputs),
            )
        found = findings(store.connection, animal, tracks, dynamics, limits)
    for finding in found:
        if not finding.passed and not unchanged:
            context.log.warning(f"{animal}: implausible {finding.name}: {finding.line}")
    last = dynamics.sort("session_index").tail(1)
    pictures = {
        **picture_metadata(
            "dynamics_plot",
            dynamics_png(dynamics, title=animal),
            f"{animal}: survival, formation and elimination",
            lake.tracks_path(animal),
            preview_width=PLOT_WIDTH,
        ),
        **picture_metadata(
            "size_trajectories",
            size_trajectories_png(persistent_size_rows(with_sizes, len(dynamics)), title=animal),
            f"{animal}: size of persistent spines",
            lake.tracks_path(animal),
            preview_width=PLOT_WIDTH,
        ),
    }
    return materialized(
        context,
        check_results=check_results(found),
        data_version=_version(inputs, code),
        metadata={
            "dynamics_plot": pictures.pop("dynamics_plot"),
            "per_session": table_metadata(dynamics_table(dynamics)),
            "size_trajectories": pictures.pop("size_trajectories"),
            "dagster/row_count": len(dynamics),
            "dagster/column_schema": column_schema(dynamics),
            **(
                {"rows_written": 0, "unchanged": True}
                if unchanged
                else {"rows_written": dg.MetadataValue.json(written)}
            ),
            "sessions": len(dynamics),
            "survival_fraction_last": rounded(last["survival_fraction"][0]) if len(last) else None,
            "split_identity_share": rounded(split_identity_share(tracks), 3),
            "corrections_applied": int(tracks["corrected_by"].is_not_null().sum()),
            "upstream_versions": dg.MetadataValue.json(
                {**inputs, "spine_features": {s: json.loads(v) for s, v in inputs["spine_features"].items()}}
            ),
            "store": dg.MetadataValue.path(str(lake.store_path)),
            **pictures,  # the links to the full pictures, after what the UI shows first
        },
    )
