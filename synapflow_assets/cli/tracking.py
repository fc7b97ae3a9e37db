"""The tracking command: ``track-depth`` links 2D boxes (reference CSV layout) into 3D spines."""

from __future__ import annotations

from pathlib import Path

import click

from ..tracking.depth import DepthLinkParams
from .app import CommandError, app
from .params import model_options, model_values

#: The :class:`DepthLinkParams` fields ``track-depth`` exposes.
DEPTH_FIELDS = ("inactive_wait", "min_layers", "max_centre_distance_px", "fill_gaps")


@app.command("track-depth", help="Link 2D boxes (reference CSV layout) into 3D spines.")
@click.option("--boxes", required=True, help="CSV: filename,width,height,class,score,xmin,ymin,xmax,ymax")
@click.option("--out", required=True)
@model_options(
    DepthLinkParams,
    DEPTH_FIELDS,
    flags={"max_centre_distance_px": "max-centre-distance"},
    defaults={"fill_gaps": 0},
    helps={
        "fill_gaps": "also write interpolated rows on bridged gaps of at most this many layers (0: the input rows only)"
    },
)
def track_depth(*, boxes: str, out: str, **options) -> int:
    """Link the boxes of ``boxes`` through depth and write them with their 3D spine id to ``out``."""
    import polars as pl

    from ..geometry import BOX_COLUMNS
    from ..tracking.box_tables import REFERENCE_COLUMNS, link_table, read_reference_boxes
    from ..tracking.depth import BoxError

    try:
        linked = link_table(
            read_reference_boxes(Path(boxes)), DepthLinkParams(**model_values(DepthLinkParams, options))
        )
    except BoxError as error:
        raise CommandError(str(error) if str(boxes) in str(error) else f"{boxes}: {error}") from error
    linked = linked.sort(pl.col("row").is_null(), "row", "stack", "layer")
    if "raw_xmin" in linked.columns:
        linked = linked.with_columns(**{c: pl.col(f"raw_{c}") for c in BOX_COLUMNS}).drop(
            *(f"raw_{c}" for c in BOX_COLUMNS)
        )
    extra = [c for c in linked.columns if c not in [*REFERENCE_COLUMNS, "id", "row", "stack", "layer", "interpolated"]]
    linked.select(["id", *REFERENCE_COLUMNS, "interpolated", *extra]).write_csv(out)
    kept = linked.filter(linked["id"] >= 0)
    print(
        f"{out}: {linked['stack'].n_unique()} stacks, {kept['id'].n_unique()} 3D spines from "
        f"{len(linked)} rows ({int(linked['interpolated'].sum())} interpolated, "
        f"{int((linked['id'] < 0).sum())} dropped as too short)"
    )
    return 0
