"""Asset `spines_3d`: 2D detections linked through depth into 3D spines."""

import dagster as dg
import numpy as np
import polars as pl

from ..imaging.ome_zarr import read_mip, read_volume_info
from ..imaging.overlay import overlay_png
from ..imaging.readers import content_hash
from ..settings import load_settings
from ..store.locations import read_parquet, write_parquet
from ..tracking.box_tables import link_table
from ..tracking.duplicates import duplicate_keeper, merge_duplicate_boxes
from ..tracking.spines import summarize_spines
from .detection_assets import detections_2d, session_keys
from .landed_inputs import depth_settings
from .metadata import column_schema, labels, materialized, picture_metadata, settings_metadata, table_metadata
from .partitions import SESSIONS
from .resources import DataLake


@dg.asset(
    partitions_def=SESSIONS,
    deps=[detections_2d, depth_settings],
    code_version="2",
    kinds={"parquet"},
    group_name="tracking",
    **labels("depth-linking"),
)
def spines_3d(
    context: dg.AssetExecutionContext,
    lake: DataLake,
) -> dg.MaterializeResult:
    """3D spines of one session: per spine its layers, median box and centroid in pixels and micrometres,
    linked with the `depth` section of the animal's settings. Stacked duplicate boxes of one spine (see
    `tracking.duplicates`) are merged into one spine."""
    animal, session = session_keys(context)
    detections = read_parquet(lake.detections_path(animal, session))
    shape, voxel_size, _ = read_volume_info(lake.volume_path(animal, session))
    depth = load_settings(lake.landing, animal).depth
    linked = link_table(detections.with_columns(stack=pl.lit(session)), depth.params())
    keepers = duplicate_keeper(summarize_spines(linked, voxel_size))
    linked = merge_duplicate_boxes(linked, keepers)
    spines = summarize_spines(linked, voxel_size).with_columns(
        animal=pl.lit(animal),
        session=pl.lit(session),
        model=pl.lit(detections["model"][0] if len(detections) else None),
        model_version=pl.lit(detections["model_version"][0] if len(detections) else None),
    )
    write_parquet(linked.drop("stack"), lake.spine_boxes_path(animal, session))
    path = write_parquet(spines, lake.spines_path(animal, session))
    histogram = np.bincount(spines["n_layers"].to_numpy(), minlength=2)[1:].tolist() if len(spines) else []
    picture = overlay_png(
        read_mip(lake.volume_path(animal, session)),
        spines.select("xmin", "ymin", "xmax", "ymax").to_numpy(),
        [str(i) for i in spines["spine_id"]],
    )
    return materialized(
        context,
        data_version=dg.DataVersion(
            f"{content_hash(path)[:16]}{content_hash(lake.spine_boxes_path(animal, session))[:16]}"
        ),
        metadata={
            **picture_metadata("spines_on_projection", picture, "3D spines (median boxes) on the MIP", path),
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": len(spines),
            "dagster/column_schema": column_schema(spines),
            "spines": len(spines),
            "duplicates_merged": int((keepers["spine_id"] != keepers["keeper_id"]).sum()),
            "boxes_linked": int((linked["id"] >= 0).sum()),
            "boxes_interpolated": int(linked["interpolated"].sum()),
            "layers_per_spine": table_metadata(
                pl.DataFrame(
                    {"layers": range(1, len(histogram) + 1), "spines": histogram},
                    schema={"layers": pl.Int64, "spines": pl.Int64},
                )
            ),
            "layers": shape[0],
            "settings": settings_metadata(depth.fingerprint()),
        },
    )
