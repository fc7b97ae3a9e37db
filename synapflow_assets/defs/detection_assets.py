"""Asset `detections_2d`: spine boxes on every layer of a session's volume."""

import hashlib
import json

import dagster as dg
import numpy as np
import polars as pl

from ..detection import baseline
from ..detection.imported import DETECTION_COLUMNS, detections_file, detections_per_layer, load_detections
from ..detection.lifecycle import RegistryError, ensure_champion, load_champion
from ..detection.model import SPINE_TYPES
from ..failpoints import failpoint
from ..imaging.errors import InputError
from ..imaging.landing import find_session_input, staged_input
from ..imaging.ome_zarr import read_mip, read_volume_info, read_volume_zarr
from ..imaging.overlay import overlay_png
from ..imaging.readers import content_hash
from ..setting_sections import DEFAULT_SCORE_THRESHOLD, DetectionOptions
from ..store.locations import parquet_rows, write_parquet
from .detector_assets import spine_detector
from .landed_inputs import detection_inputs
from .lineage import latest_data_versions
from .metadata import column_schema, labels, materialized, picture_metadata, rounded, settings_metadata, table_metadata
from .partitions import SESSIONS, split_session_key
from .resources import DataLake, DetectionSettings
from .volume_assets import raw_volume


def session_keys(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """`(animal, session)` of the run's session partition."""
    return split_session_key(context.partition_key)


def imported_detections(lake: DataLake, animal: str, session: str, shape) -> tuple[pl.DataFrame, str, str]:
    """Boxes of another detector's export `<session>.detections.csv`, its name and content hash."""
    csv = detections_file(find_session_input(lake.landing, animal, session))
    if not csv.exists():
        raise InputError(
            csv,
            "no detections for this session (export your detector's boxes here in the reference "
            "CSV layout, or set the detection resource's source to 'model')",
        )
    with staged_input(csv, session) as local:
        table = load_detections(local, shape)
        check_imported(csv, table)
        return table, f"imported:{csv.name}", content_hash(local)


KNOWN_CLASSES = frozenset({*SPINE_TYPES, "spine"})
"""The class names an imported detection may carry: the detector's spine types, or a generic ``spine``."""


def check_imported(path, table: pl.DataFrame) -> None:
    """Refuse imported detections whose score is not a number in [0, 1] or whose class is unknown: one clause
    per bad box (its layer and corners; the first 5, then how many in all), in one line naming the file. Box
    corners are checked by `load_detections`."""
    score, kind = pl.col("score"), pl.col("type")
    bad = table.with_columns(
        bad_score=score.is_null() | score.is_nan() | (score < 0) | (score > 1),
        bad_class=kind.is_null() | ~kind.is_in(sorted(KNOWN_CLASSES)),
    ).filter(pl.col("bad_score") | pl.col("bad_class"))
    if not len(bad):
        return
    clauses = []
    for row in bad.head(5).iter_rows(named=True):
        where = f"layer {row['layer']} box ({row['xmin']:g}, {row['ymin']:g}, {row['xmax']:g}, {row['ymax']:g})"
        what = [f"score {row['score']} not in [0, 1]"] if row["bad_score"] else []
        what += [f"unknown class {str(row['type'])[:40]!r}"] if row["bad_class"] else []
        clauses.append(f"{where}: {', '.join(what)}")
    more = f"; {len(bad) - 5} more" if len(bad) > 5 else ""
    raise InputError(
        path,
        f"{len(bad)} bad detections, nothing imported (scores must lie in [0, 1], classes be one of "
        f"{', '.join(sorted(KNOWN_CLASSES))}): " + "; ".join(clauses) + more,
    )


def model_detections(
    lake: DataLake, animal: str, session: str, options: DetectionOptions, batch_size: int, log=None
) -> tuple[pl.DataFrame, pl.DataFrame, str, str]:
    """Boxes of the registry's champion detector on every layer of the registered volume (the shipped
    detector is registered first when the registry has no champion), and the candidates: the same pass
    down to `candidate_threshold` (thresholding comes before non-maximum suppression, so the boxes at
    or above `score_threshold` are exactly those of a pass at that threshold)."""
    ensure_champion(lake.registry_root)
    detector, champion = load_champion(lake.registry_root)
    detector.set_options(options.upscale, options.box_scale, options.tile)
    volume, voxel_size_um, _ = read_volume_zarr(lake.volume_path(animal, session))
    low = min(options.candidate_threshold, options.score_threshold)
    step = max(1, len(volume) // 4)

    def progress(done: int, total: int, boxes: int) -> None:
        if log is not None and (done % step < batch_size or done == total):
            log(f"{animal}/{session}: detector on {done}/{total} layers, {boxes} boxes down to score {low:g}")

    boxes = detector.detect_stack(
        volume, score_threshold=low, batch_size=batch_size, pixel_size_um=voxel_size_um[2], progress=progress
    ).select(DETECTION_COLUMNS)
    return (boxes.filter(pl.col("score") >= options.score_threshold), boxes, champion.name, champion.version)


def baseline_detections(lake: DataLake, animal: str, session: str) -> tuple[pl.DataFrame, str, str]:
    """Boxes of the classical LoG baseline at its own threshold; model `log-baseline`, version = its code version."""
    volume, _, _ = read_volume_zarr(lake.volume_path(animal, session))
    boxes = baseline.LogBlobDetector().detect_stack(volume, score_threshold=baseline.OWN_THRESHOLD_SCORE)
    return boxes.select(DETECTION_COLUMNS), baseline.MODEL_NAME, baseline.CODE_VERSION


MIN_SHARE_OF_OTHERS = 0.5


def other_session_counts(lake: DataLake, animal: str, session: str) -> list[int]:
    """Box counts of the animal's other sessions that have detections."""
    folder = lake.detections_path(animal, session).parent
    return [parquet_rows(p) for p in sorted(folder.glob("*.parquet")) if p.name != f"{session}.parquet"]


def detection_count_problem(count: int, others: list[int]) -> str | None:
    """Why a session's box count looks wrong (none, or under half the median of the animal's other
    sessions); None when it looks plausible."""
    if count == 0:
        return "no spine detected in this session"
    if others:
        typical = float(np.median(others))
        if count < MIN_SHARE_OF_OTHERS * typical:
            share = f"{MIN_SHARE_OF_OTHERS:.0%}"
            return f"{count} boxes, under {share} of the median of the animal's other sessions ({typical:.0f})"
    return None


@dg.asset(
    partitions_def=SESSIONS,
    deps=[raw_volume, spine_detector, detection_inputs],
    code_version="3",
    kinds={"parquet"},
    pool="detection",
    group_name="detection",
    **labels("detection"),
    check_specs=[
        dg.AssetCheckSpec(
            "detections_found",
            asset="detections_2d",
            description="the session has detections, and at least half as many as the median "
            "of the animal's other sessions",
        )
    ],
)
def detections_2d(
    context: dg.AssetExecutionContext, lake: DataLake, detection: DetectionSettings
) -> dg.MaterializeResult:
    """2D spine boxes per layer: one row per box with layer, box, score, type and the model (name and version)
    that made it, and beside them the detector's weaker boxes (candidates, evidence for spine tracking); by
    default the champion of the model registry, else imported from another detector's CSV or the LoG baseline
    (`source` of the `detection` resource)."""
    animal, session = session_keys(context)
    upstream = latest_data_versions(context, raw_volume.key)
    try:
        options = detection.settings(lake, animal).detection
        shape, voxel_size_um, volume_attrs = read_volume_info(lake.volume_path(animal, session))
        candidates = None
        if detection.source == "imported":
            table, model, version = imported_detections(lake, animal, session, shape)
            data_version = version
        else:
            if detection.source == "baseline":
                table, model, version = baseline_detections(lake, animal, session)
                context.log.warning("detections come from the LoG baseline (source 'baseline'), not the model")
            else:
                table, candidates, model, version = model_detections(
                    lake, animal, session, options, detection.batch_size, log=context.log.info
                )
            decisive = [options.upscale, options.box_scale, options.tile]
            decisive = decisive if detection.source == "model" and decisive != [None] * 3 else []
            if detection.source == "model" and options.score_threshold != DEFAULT_SCORE_THRESHOLD:
                decisive.append(options.score_threshold)
            if detection.source == "model" and options.candidate_threshold != DetectionOptions().candidate_threshold:
                decisive.append(options.candidate_threshold)
            if detection.source == "model":
                decisive.append(round(float(voxel_size_um[2]), 6))  # the detector resamples by the pixel size
            data_version = hashlib.sha256(
                json.dumps([model, version, upstream["raw_volume"], *decisive]).encode()
            ).hexdigest()[:32]
    except InputError as error:
        raise dg.Failure(
            description=str(error), metadata={"file": str(error.path), "problem": error.problem}
        ) from error
    except RegistryError as error:
        raise dg.Failure(description=str(error)) from error
    table = table.with_columns(model=pl.lit(model), model_version=pl.lit(version))
    candidates = (candidates if candidates is not None else table.head(0).select(DETECTION_COLUMNS)).with_columns(
        model=pl.lit(model), model_version=pl.lit(version)
    )
    failpoint("detection")
    write_parquet(candidates, lake.candidates_path(animal, session))
    path = write_parquet(table, lake.detections_path(animal, session))
    picture = overlay_png(
        read_mip(lake.volume_path(animal, session)), table.select("xmin", "ymin", "xmax", "ymax").to_numpy()
    )
    problem = detection_count_problem(len(table), other_session_counts(lake, animal, session))
    if problem:
        context.log.warning(f"{animal}/{session}: {problem}")
    return materialized(
        context,
        data_version=dg.DataVersion(data_version),
        metadata={
            **picture_metadata("detections_on_projection", picture, "detections on the MIP", path, preview_width=None),
            "path": dg.MetadataValue.path(str(path)),
            "checksum": content_hash(path),
            "dagster/row_count": len(table),
            "dagster/column_schema": column_schema(table),
            "detections": len(table),
            "candidates": len(candidates),
            "source": detection.source,
            "pixel_size_um": rounded(voxel_size_um[2], 4),
            "pixel_size_source": str(volume_attrs.get("voxel_size_source", "unknown")),
            "settings": settings_metadata(detection.fingerprint(options)),
            "model": model,
            "model_version": version,
            "per_layer": table_metadata(
                pl.DataFrame({"layer": list(range(shape[0])), "boxes": detections_per_layer(table, shape[0])})
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="detections_found",
                passed=problem is None,
                severity=dg.AssetCheckSeverity.WARN,
                description=problem,
                metadata={"detections": len(table)},
            )
        ],
    )
