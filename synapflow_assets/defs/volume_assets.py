"""Asset ``raw_volume``: a landed session, validated, registered and stored as OME-Zarr."""
import dagster as dg
import numpy as np

from ..imaging.errors import InputError
from ..imaging.ingest import ingest_session, png_markdown, preview_png
from ..imaging.landing import find_session_input
from ..imaging.ome_zarr import read_mip
from .partitions import SESSION_PARTITIONS
from .resources import DataLake, ImagingSettings

MAX_RESIDUAL_PX = 0.5
CHECKS = [
    dg.AssetCheckSpec("shape_and_dtype", asset="raw_volume", description="3D, integer or float, plausible size"),
    dg.AssetCheckSpec("registration_residual", asset="raw_volume", description=f"layers aligned within {MAX_RESIDUAL_PX} px"),
]


@dg.asset(
    partitions_def=SESSION_PARTITIONS,
    code_version="1",
    check_specs=CHECKS,
    kinds={"zarr"},
    group_name="imaging",
)
def raw_volume(context: dg.AssetExecutionContext, lake: DataLake, imaging: ImagingSettings) -> dg.MaterializeResult:
    """One session's z-stack: read, validated, layers registered, written as OME-Zarr with its MIP."""
    keys = context.partition_key.keys_by_dimension
    animal, session = keys["animal"], keys["session"]
    try:
        source = find_session_input(lake.landing, animal, session)
        report = ingest_session(
            source,
            lake.volume_path(animal, session),
            max_layer_shift_px=imaging.max_layer_shift_px,
            **imaging.reader_options(),
        )
    except InputError as error:
        raise dg.Failure(description=str(error), metadata={"file": str(error.path), "problem": error.problem}) from error
    z, y, x = report.shape
    shift_size = np.hypot(*report.layer_shifts.T)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(report.input_hash),
        metadata={
            "path": dg.MetadataValue.path(str(report.target)),
            "source": dg.MetadataValue.path(str(report.source)),
            "shape_zyx": [z, y, x],
            "dtype": report.dtype,
            "voxel_size_um_zyx": list(report.voxel_size_um),
            "voxel_size_source": report.voxel_size_source,
            "acquired_at": report.acquired_at or "unknown",
            "layer_shift_max_px": float(shift_size.max()),
            "layer_shifts_px": dg.MetadataValue.json(np.round(report.layer_shifts, 2).tolist()),
            "registration_residual_px": report.residual_px,
            "input_mb": report.input_bytes / 1e6,
            "mip": dg.MetadataValue.md(png_markdown(preview_png(read_mip(report.target)), "MIP")),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="shape_and_dtype",
                passed=bool(z >= 1 and min(y, x) >= 16 and report.dtype in {"uint8", "uint16", "int16", "float32"}),
                metadata={"shape_zyx": [z, y, x], "dtype": report.dtype},
            ),
            dg.AssetCheckResult(
                check_name="registration_residual",
                passed=bool(report.residual_px <= MAX_RESIDUAL_PX),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"residual_px": report.residual_px, "max_px": MAX_RESIDUAL_PX},
            ),
        ],
    )
