"""Asset `raw_volume`: a landed session, validated, registered and stored as OME-Zarr."""

import dagster as dg
import numpy as np
import polars as pl

from ..imaging.animal_scale import ESTIMATE_DISAGREEMENT, AnimalScale
from ..imaging.errors import InputError
from ..imaging.ingest import IngestReport, ingest_session, preview_png
from ..imaging.landing import find_session_input, staged_input
from ..imaging.ome_zarr import read_mip, volume_manifest
from .landed_inputs import animal_scale, landed_volume
from .metadata import labels, materialized, picture_metadata, rounded, settings_metadata, table_metadata
from .partitions import SESSIONS, split_session_key
from .resources import DataLake, ImagingSettings

MAX_RESIDUAL_PX = 0.5
CHECKS = [
    dg.AssetCheckSpec("shape_and_dtype", asset="raw_volume", description="3D, integer or float, plausible size"),
    dg.AssetCheckSpec(
        "pixel_size_known",
        asset="raw_volume",
        description="the x/y pixel size comes from the file's metadata or the lab's settings, not the default",
    ),
    dg.AssetCheckSpec(
        "registration_residual", asset="raw_volume", description=f"layers aligned within {MAX_RESIDUAL_PX} px"
    ),
]


@dg.asset(
    partitions_def=SESSIONS,
    deps=[landed_volume],
    code_version="1",
    check_specs=CHECKS,
    kinds={"zarr"},
    group_name="imaging",
    **labels("ingest"),
)
def raw_volume(context: dg.AssetExecutionContext, lake: DataLake, imaging: ImagingSettings) -> dg.MaterializeResult:
    """One session's z-stack: read, validated, layers registered, written as OME-Zarr with its MIP."""
    animal, session = split_session_key(context.partition_key)
    try:
        settings = imaging.settings(lake, animal)
        options = settings.imaging
        source = find_session_input(lake.landing, animal, session)
        scale = animal_scale(lake, animal, settings)
        with staged_input(source, session) as local:
            report = ingest_session(
                local,
                lake.volume_path(animal, session),
                default_voxel_size_um=tuple(imaging.default_voxel_size_um),
                origin=str(source),
                animal_pixel_size_um=scale.pixel_size_um if scale else None,
                **options.model_dump(),
            )
    except InputError as error:
        raise dg.Failure(
            description=str(error), metadata={"file": str(error.path), "problem": error.problem}
        ) from error
    z, y, x = report.shape
    shift_size = np.hypot(*report.layer_shifts.T) if z > 1 else np.zeros(1)
    pixel_known = report.voxel_size_source not in ("default", "estimated")
    pixel_note = None if pixel_known else unknown_pixel_size_note(report, scale)
    if pixel_note:
        context.log.warning(pixel_note)
    meta = report.metadata
    mip = read_mip(report.target)
    return materialized(
        context,
        data_version=dg.DataVersion(report.input_hash),
        metadata={
            "path": dg.MetadataValue.path(str(report.target)),
            "checksum": volume_manifest(report.target),
            "source": dg.MetadataValue.path(str(source)),
            "shape_zyx": [z, y, x],
            "dtype": report.dtype,
            "voxel_size_um_zyx": [rounded(v, 4) for v in report.voxel_size_um],
            "voxel_size_source": report.voxel_size_source,
            "voxel_size_sources": dg.MetadataValue.json(meta.get("voxel_size_sources", {})),
            "pixel_size_estimate": dg.MetadataValue.json(meta.get("pixel_size_estimate") or {}),
            "animal_pixel_size": scale.describe() if scale else "not pooled (stated or not estimated)",
            "format": meta.get("format", "unknown"),
            "channel": f"{meta.get('channel', 0)} of {meta.get('n_channels', 1)} "
            f"({meta.get('channel_choice', 'only channel')})",
            "colour": meta.get("colour_note") or "grey",
            "settings": settings_metadata(options.fingerprint()),
            "acquired_at": report.acquired_at or "unknown",
            "layer_shift_max_px": rounded(shift_size.max(), 2),
            "layer_shifts_px": table_metadata(
                pl.DataFrame(
                    {
                        "layer": list(range(len(report.layer_shifts))),
                        "dy_px": np.round(np.asarray(report.layer_shifts, float).reshape(-1, 2)[:, 0], 2),
                        "dx_px": np.round(np.asarray(report.layer_shifts, float).reshape(-1, 2)[:, 1], 2),
                    }
                )
            ),
            "registration_residual_px": rounded(report.residual_px),
            "input_mb": rounded(report.input_bytes / 1e6, 2),
            **picture_metadata("mip", preview_png(mip, max(mip.shape)), "MIP", report.target, preview_width=None),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="shape_and_dtype",
                passed=bool(z >= 1 and min(y, x) >= 16 and report.dtype in {"uint8", "uint16", "int16", "float32"}),
                metadata={"shape_zyx": [z, y, x], "dtype": report.dtype},
            ),
            dg.AssetCheckResult(
                check_name="pixel_size_known",
                passed=pixel_known,
                severity=dg.AssetCheckSeverity.WARN,
                description=pixel_note,
                metadata={"voxel_size_source": report.voxel_size_source},
            ),
            dg.AssetCheckResult(
                check_name="registration_residual",
                passed=bool(report.residual_px <= MAX_RESIDUAL_PX),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"residual_px": report.residual_px, "max_px": MAX_RESIDUAL_PX},
            ),
        ],
    )


def unknown_pixel_size_note(report: IngestReport, scale: AnimalScale | None) -> str:
    """One line on a pixel size that no file or setting states: estimated for the animal, this session's own
    estimate when it disagrees with the animal's, or assumed."""
    size = report.voxel_size_um[2]
    if report.voxel_size_source != "estimated":
        how = "assumed (no dendrite to estimate it from)"
    elif scale is None:
        how = "estimated from the dendrite width"
    else:
        how = f"estimated for the animal: {scale.describe()}"
        own = (report.metadata.get("pixel_size_estimate") or {}).get("pixel_size_um")
        if own is not None and abs(own / scale.pixel_size_um - 1.0) > ESTIMATE_DISAGREEMENT:
            how += f"; this session alone gives {own:.4g} um/px"
    return (
        f"no x/y pixel size in {report.source.name}; {size:.4g} um/px {how} "
        "(set imaging.pixel_size_um in synapflow.yaml)"
    )
