"""3D spine summaries from linked 2D boxes."""

import polars as pl

SPINE_COLUMNS = [
    "spine_id",
    "first_layer",
    "last_layer",
    "n_layers",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "x_px",
    "y_px",
    "z_px",
    "x_um",
    "y_um",
    "z_um",
    "peak_layer",
    "mean_score",
    "type",
]


def summarize_spines(boxes: pl.DataFrame, voxel_size_um: tuple[float, float, float]) -> pl.DataFrame:
    """One row per 3D spine.

    Parameters
    ----------
    boxes : polars.DataFrame
        Linked boxes: ``id`` (rows with id -1 are ignored), ``layer``, ``xmin,
        ymin, xmax, ymax`` in pixels, optional ``score`` (null on interpolated
        layers) and ``type``.
    voxel_size_um : (z, y, x)

    Returns
    -------
    polars.DataFrame
        ``spine_id``, first/last layer, number of layers, the median box, the
        centroid in pixels (centre of the median box; z = score-weighted mean
        layer) and in micrometres, the peak layer (highest score), the mean
        score and the most frequent type (null when there is none).
    """
    vz, vy, vx = voxel_size_um
    if "score" not in boxes.columns:
        boxes = boxes.with_columns(score=pl.lit(1.0))
    if "type" not in boxes.columns:
        boxes = boxes.with_columns(type=pl.lit(None, pl.String))
    weight = pl.col("score").fill_null(0.0) + 1e-6
    spines = (
        boxes.filter(pl.col("id") >= 0)
        .group_by("id")
        .agg(
            first_layer=pl.col("layer").min(),
            last_layer=pl.col("layer").max(),
            n_layers=pl.len(),
            xmin=pl.col("xmin").median(),
            ymin=pl.col("ymin").median(),
            xmax=pl.col("xmax").median(),
            ymax=pl.col("ymax").median(),
            z_px=(pl.col("layer") * weight).sum() / weight.sum(),
            peak_layer=pl.col("layer").sort_by(pl.col("score").fill_null(-1.0), descending=True).first(),
            mean_score=pl.col("score").mean(),
            type=pl.col("type").drop_nulls().mode().sort().first(),
        )
        .rename({"id": "spine_id"})
        .with_columns(x_px=(pl.col("xmin") + pl.col("xmax")) / 2, y_px=(pl.col("ymin") + pl.col("ymax")) / 2)
        .with_columns(x_um=pl.col("x_px") * vx, y_um=pl.col("y_px") * vy, z_um=pl.col("z_px") * vz)
    )
    return spines.select(SPINE_COLUMNS).sort("spine_id")
