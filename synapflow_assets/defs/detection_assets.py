"""Asset ``detections_2d``: spine boxes on every layer of a session's volume."""
import dagster as dg
import polars as pl

from ..detection.imported import detections_file, detections_per_layer, load_detections
from ..imaging.errors import InputError
from ..imaging.landing import find_session_input
from ..imaging.ome_zarr import read_mip, read_volume_info
from ..imaging.overlay import overlay_png
from ..imaging.ingest import png_markdown
from ..imaging.readers import content_hash
from ..store.atomic_files import write_parquet_atomic
from .lineage import upstream_versions
from .partitions import SESSION_PARTITIONS
from .resources import DataLake
from .volume_assets import raw_volume


def session_keys(context: dg.AssetExecutionContext) -> tuple[str, str]:
    keys = context.partition_key.keys_by_dimension
    return keys["animal"], keys["session"]


@dg.asset(partitions_def=SESSION_PARTITIONS, deps=[raw_volume], code_version="1", kinds={"parquet"}, group_name="detection")
def detections_2d(context: dg.AssetExecutionContext, lake: DataLake) -> dg.MaterializeResult:
    """2D spine boxes per layer: one row per box with layer, box, score, type and the model that made it.

    Until the transformer detector lands, boxes are imported from another
    detector's CSV export beside the session: ``<session>.detections.csv``.
    """
    animal, session = session_keys(context)
    try:
        csv = detections_file(find_session_input(lake.landing, animal, session))
        if not csv.exists():
            raise InputError(csv, "no detections for this session (export your detector's boxes here in the reference CSV layout)")
        shape, _, _ = read_volume_info(lake.volume_path(animal, session))
        detections = load_detections(csv, shape)
    except InputError as error:
        raise dg.Failure(description=str(error), metadata={"file": str(error.path), "problem": error.problem}) from error
    version = content_hash(csv)
    table = detections.with_columns(model=pl.lit(f"imported:{csv.name}"), model_version=pl.lit(version))
    path = write_parquet_atomic(table, lake.detections_path(animal, session))
    picture = overlay_png(read_mip(lake.volume_path(animal, session)), table.select("xmin", "ymin", "xmax", "ymax").to_numpy())
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "detections": len(table),
            "model": f"imported:{csv.name}",
            "upstream_versions": upstream_versions(context, raw_volume.key),
            "per_layer": dg.MetadataValue.json(detections_per_layer(table, shape[0])),
            "overlay": dg.MetadataValue.md(png_markdown(picture, "detections on the MIP")),
        },
    )
