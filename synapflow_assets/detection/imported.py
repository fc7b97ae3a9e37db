"""Detections imported from another detector's CSV export (the reference column layout)."""

from pathlib import Path

import numpy as np
import polars as pl

from ..imaging.errors import InputError
from ..imaging.readers import session_name
from ..tracking.box_tables import read_reference_boxes
from ..tracking.depth import BoxError, check_boxes

DETECTION_COLUMNS = ["layer", "xmin", "ymin", "xmax", "ymax", "score", "type"]


def detections_file(session_input: Path) -> Path:
    """Where a session's imported detections are expected: ``<session>.detections.csv`` beside it."""
    return session_input.parent / f"{session_name(session_input.name)}.detections.csv"


def load_detections(path: Path, volume_shape: tuple[int, int, int]) -> pl.DataFrame:
    """Read and validate one session's detections against its volume.

    Parameters
    ----------
    path : Path
        CSV in the reference layout (``filename,width,height,class,score,
        xmin,ymin,xmax,ymax``; the layer comes from ``_layerNN`` / ``-NN`` in
        the file name). An empty file (header only) means no detections.
    volume_shape : (z, y, x)

    Returns
    -------
    polars.DataFrame
        ``layer, xmin, ymin, xmax, ymax, score, type``, sorted by layer.

    Raises
    ------
    InputError
        Naming the file: unreadable CSV, several stacks, layers outside the
        volume, NaN / degenerate boxes or boxes entirely outside the layer.
    """
    path = Path(path)
    try:
        table = read_reference_boxes(path)
    except BoxError as error:
        raise InputError(path, str(error).removeprefix(f"{path}: ")) from error
    if table["stack"].n_unique() > 1:
        raise InputError(
            path, f"boxes of several stacks ({', '.join(table['stack'].unique().sort())}); one session per file"
        )
    nz, ny, nx = volume_shape
    outside = table.filter((pl.col("layer") < 0) | (pl.col("layer") >= nz))
    if len(outside):
        raise InputError(path, f"{len(outside)} boxes on layers outside 0..{nz - 1} (e.g. layer {outside['layer'][0]})")
    try:
        check_boxes(table["layer"].to_numpy(), table.select("xmin", "ymin", "xmax", "ymax").to_numpy(), (ny, nx))
    except BoxError as error:
        raise InputError(path, str(error)) from error
    return table.select(
        pl.col("layer").cast(pl.Int64),
        *(
            pl.col(c).clip(0, limit)
            for c, limit in zip(("xmin", "ymin", "xmax", "ymax"), (nx, ny, nx, ny), strict=False)
        ),
        pl.col("score").cast(pl.Float64),
        type=pl.col("class").cast(pl.String),
    ).sort("layer")


def detections_per_layer(detections: pl.DataFrame, n_layers: int) -> list[int]:
    """Number of detections on each layer 0..n_layers-1."""
    return np.bincount(detections["layer"].to_numpy(), minlength=n_layers).tolist()
