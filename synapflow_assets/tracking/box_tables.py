"""Box tables: the reference CSV layout, and linking whole tables of boxes."""

import re
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl

from ..geometry import BOX_COLUMNS
from .depth import BoxError, DepthLinkParams, check_boxes, link_layers

REFERENCE_COLUMNS = ["filename", "width", "height", "class", "score", "xmin", "ymin", "xmax", "ymax"]
_LAYER_NAME = re.compile(r"^(?P<stack>.+?)(?:_layer|-)(?P<layer>\d+)\.[A-Za-z]+$")


def parse_layer_name(filename: str) -> tuple[str, int]:
    """Stack name and layer number of ``<stack>_layerNN.png`` or ``<stack>-NN.png``."""
    match = _LAYER_NAME.match(Path(filename.replace("\\", "/")).name)
    if not match:
        raise BoxError(f"file name {filename!r} does not end in _layerNN or -NN followed by an extension")
    return match["stack"], int(match["layer"])


def layer_file_name(template: str, layer: int) -> str:
    """``template`` (a layer file name) with its layer number replaced, keeping the zero padding."""
    match = re.search(r"(_layer|-)(\d+)(\.[A-Za-z]+)$", template)
    if not match:
        return template
    return f"{template[: match.start(2)]}{layer:0{len(match[2])}d}{match[3]}"


_INFER_ROWS = 100


def _read_csv(path: Path) -> pl.DataFrame:
    """``pl.read_csv(path, infer_schema_length=None)``, without scanning the whole file for the column types
    when the first rows settle them.

    Column types are guessed from the first rows (about ten times faster on large files); they are the types
    a scan of the whole file finds unless a later value does not fit (polars raises, and the file is read
    again with the whole file scanned) or a column has no value in the first rows (read again too).
    """
    try:
        table = pl.read_csv(path, infer_schema_length=_INFER_ROWS)
    except pl.exceptions.ComputeError:
        return pl.read_csv(path, infer_schema_length=None)
    head = table.head(_INFER_ROWS)
    if len(table) > _INFER_ROWS and any(head[c].null_count() == len(head) for c in table.columns):
        return pl.read_csv(path, infer_schema_length=None)
    return table


def read_reference_boxes(path: Path) -> pl.DataFrame:
    """Read boxes in the reference layout and add ``stack`` and ``layer`` from the file name.

    An ``id`` column, if present, is dropped. Errors name the file.
    """
    path = Path(path)
    try:
        table = _read_csv(path)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as error:
        raise BoxError(f"{path}: cannot read CSV ({error})") from error
    missing = [c for c in REFERENCE_COLUMNS if c not in table.columns]
    if missing:
        raise BoxError(f"{path}: missing columns {', '.join(missing)} (expected {','.join(REFERENCE_COLUMNS)})")
    table = table.drop("id", strict=False).with_row_index("row")
    try:
        # one parse per distinct file name (a stack's layers), not per box
        names = table["filename"].cast(pl.String)
        distinct = names.unique(maintain_order=True)
        parsed_names = [parse_layer_name(name) for name in distinct]
        index = names.to_frame("name").join(
            pl.DataFrame({"name": distinct, "k": range(len(distinct))}, schema={"name": pl.String, "k": pl.Int64}),
            on="name",
            how="left",
            maintain_order="left",
        )["k"]
        table = table.with_columns(
            [
                pl.col(c).cast(pl.Float64, strict=True)
                for c in ("width", "height", "score", "xmin", "ymin", "xmax", "ymax")
            ]
        )
    except (BoxError, pl.exceptions.InvalidOperationError) as error:
        raise BoxError(f"{path}: {error}") from error
    return table.with_columns(
        stack=pl.Series([p[0] for p in parsed_names], dtype=pl.String).gather(index),
        layer=pl.Series([p[1] for p in parsed_names], dtype=pl.Int64).gather(index),
    )


def link_table(table: pl.DataFrame, params: DepthLinkParams = DepthLinkParams(), by: str = "stack") -> pl.DataFrame:
    """Link every stack of a box table into 3D spines.

    Parameters
    ----------
    table : polars.DataFrame
        Columns ``layer, xmin, ymin, xmax, ymax`` and the grouping column
        ``by`` (one stack per value). The declared image size is not used: in
        reference files it is often wrong (the expert annotations declare
        512x512 with boxes up to x = 1372) and GIoU does not depend on it.
    params : DepthLinkParams

    Returns
    -------
    polars.DataFrame
        The input rows with an ``id`` column, unique over all stacks (-1:
        dropped as too short), and an ``interpolated`` column; bridged layers
        are added as extra rows (``interpolated = True``, ``score`` null).
        With ``params.smooth_layers`` the box columns are smoothed along each
        spine; the detector's boxes are kept as ``raw_xmin`` ... ``raw_ymax``.
    """
    layers = table["layer"].to_numpy()
    boxes = check_boxes(layers, table.select(BOX_COLUMNS).to_numpy())
    stacks = table[by].to_numpy()
    ids = np.full(len(table), -1, dtype=np.int64)
    gap_parts, next_id = [], 0
    for stack in table[by].unique(maintain_order=True):
        rows = np.flatnonzero(stacks == stack)
        stack_ids, gaps = link_layers(layers[rows], boxes[rows], params)
        ids[rows] = np.where(stack_ids >= 0, stack_ids + next_id, -1)
        gaps[:, 0] += next_id
        next_id += int(stack_ids.max()) + 1 if len(rows) else 0
        gap_parts.append((stack, gaps))
    linked = table.with_columns(id=pl.Series(ids), interpolated=pl.lit(False))
    filled = _gap_rows(linked, gap_parts, by)
    if filled is not None:
        linked = pl.concat([linked, filled], how="diagonal_relaxed")
    linked = linked.sort(by, "layer", "id")
    return smooth_track_boxes(linked, params.smooth_layers, by) if params.smooth_layers else linked


def _gap_rows(linked: pl.DataFrame, gap_parts: list, by: str) -> pl.DataFrame | None:
    gaps = [(stack, g) for stack, g in gap_parts if len(g)]
    if not gaps:
        return None
    values = np.concatenate([g for _, g in gaps])
    template = (
        linked.group_by(by, maintain_order=True)
        .first()
        .drop(*BOX_COLUMNS, "layer", "score", "id", "interpolated", strict=False)
    )
    filled = (
        pl.DataFrame(
            {
                by: np.concatenate([[stack] * len(g) for stack, g in gaps]),
                "id": values[:, 0].astype(np.int64),
                "layer": values[:, 1].astype(np.int64),
                **{c: values[:, 2 + k] for k, c in enumerate(BOX_COLUMNS)},
            }
        )
        .join(template, on=by, how="left")
        .with_columns(interpolated=pl.lit(True))
    )
    if "filename" in filled.columns:
        filled = filled.with_columns(
            filename=pl.Series(
                [layer_file_name(f, k) for f, k in zip(filled["filename"], filled["layer"], strict=False)]
            )
        )
    return filled


def smooth_track_boxes(linked: pl.DataFrame, half_window: int = 2, by: str = "stack") -> pl.DataFrame:
    """Average each spine's boxes over neighbouring layers with triangular weights.

    A detector's per-layer box edges are noisy while a spine's outline changes
    slowly through depth; weights ``1, 2, .., h + 1, .., 2, 1`` over the
    spine's own boxes (fewer at its ends) reduce the edge noise. The input
    boxes are kept as ``raw_xmin`` ... ``raw_ymax``; rows with id -1 are left
    as they are.
    """
    linked = linked.sort(by, "id", "layer")
    if linked.is_empty():
        return linked.with_columns(**{f"raw_{c}": pl.col(c) for c in BOX_COLUMNS})
    group = (
        linked[by].rank("dense").to_numpy().astype(np.int64) * (int(cast(int, linked["id"].max())) + 2)
        + linked["id"].to_numpy()
    )
    boxes = linked.select(BOX_COLUMNS).to_numpy()
    total = np.zeros_like(boxes)
    norm = np.zeros(len(boxes))
    for offset in range(-half_window, half_window + 1):
        weight = half_window + 1 - abs(offset)
        source = np.arange(len(boxes)) + offset
        valid = (source >= 0) & (source < len(boxes))
        valid[valid] = group[source[valid]] == group[valid]
        total[valid] += weight * boxes[source[valid]]
        norm[valid] += weight
    smoothed = np.where((linked["id"].to_numpy() >= 0)[:, None], total / norm[:, None], boxes)
    return (
        linked.with_columns(
            **{f"raw_{c}": pl.col(c) for c in BOX_COLUMNS},
        )
        .with_columns(**{c: pl.Series(smoothed[:, k]) for k, c in enumerate(BOX_COLUMNS)})
        .sort(by, "layer", "id")
    )
