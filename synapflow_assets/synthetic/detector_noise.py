"""Perturb ground-truth boxes the way a detector errs: jitter, misses and false positives."""

import numpy as np
import polars as pl


def perturb_boxes(
    boxes: pl.DataFrame,
    *,
    jitter_px: float = 2.0,
    drop_fraction: float = 0.10,
    spurious_fraction: float = 0.05,
    seed: int = 0,
    by: str = "stack",
) -> pl.DataFrame:
    """A detector-like copy of a per-layer box table.

    Parameters
    ----------
    boxes : polars.DataFrame
        Columns ``layer, xmin, ymin, xmax, ymax`` and the stack column ``by``;
        other columns (e.g. a truth ``id``) are carried along.
    jitter_px : float
        Standard deviation of the Gaussian noise added to each box edge.
    drop_fraction : float
        Share of boxes removed (missed detections).
    spurious_fraction : float
        Spurious boxes added, as a share of the boxes; each has the median box
        size of its stack, a random layer of the stack and a random place
        inside the extent of the stack's boxes. Their ``id`` is null.
    seed : int

    Returns
    -------
    polars.DataFrame
        Kept boxes (jittered, degenerate ones repaired to at least 1 px) and
        the spurious ones, with a boolean column ``spurious``.
    """
    rng = np.random.default_rng(seed)
    coords = boxes.select("xmin", "ymin", "xmax", "ymax").to_numpy() + rng.normal(0, jitter_px, (len(boxes), 4))
    coords[:, 2:] = np.maximum(coords[:, 2:], coords[:, :2] + 1.0)
    keep = rng.random(len(boxes)) >= drop_fraction
    kept = boxes.with_columns(
        **{c: pl.Series(coords[:, k]) for k, c in enumerate(("xmin", "ymin", "xmax", "ymax"))}, spurious=pl.lit(False)
    ).filter(pl.Series(keep))

    extent = boxes.group_by(by, maintain_order=True).agg(
        n=pl.len(),
        w=(pl.col("xmax") - pl.col("xmin")).median(),
        h=(pl.col("ymax") - pl.col("ymin")).median(),
        x0=pl.col("xmin").min(),
        y0=pl.col("ymin").min(),
        x1=pl.col("xmax").max(),
        y1=pl.col("ymax").max(),
        l0=pl.col("layer").min(),
        l1=pl.col("layer").max(),
    )
    counts = np.round(extent["n"].to_numpy() * spurious_fraction).astype(int)
    stack_of = np.repeat(np.arange(len(extent)), counts)
    e = {c: extent[c].to_numpy()[stack_of] for c in ("w", "h", "x0", "y0", "x1", "y1", "l0", "l1")}
    x = e["x0"] + rng.random(len(stack_of)) * np.maximum(e["x1"] - e["x0"] - e["w"], 1)
    y = e["y0"] + rng.random(len(stack_of)) * np.maximum(e["y1"] - e["y0"] - e["h"], 1)
    template = boxes.group_by(by, maintain_order=True).first().drop("layer", "xmin", "ymin", "xmax", "ymax")
    spurious = pl.DataFrame(
        {
            by: pl.Series(extent[by].to_numpy()[stack_of], dtype=extent.schema[by]),
            "layer": rng.integers(e["l0"], e["l1"] + 1).astype(np.int64),
            "xmin": x,
            "ymin": y,
            "xmax": x + e["w"],
            "ymax": y + e["h"],
        }
    ).join(template, on=by, how="left")
    if "id" in spurious.columns:
        spurious = spurious.with_columns(id=pl.lit(None, boxes.schema["id"]))
    return pl.concat([kept, spurious.with_columns(spurious=pl.lit(True))], how="diagonal_relaxed")


def simulated_detections(
    truth_boxes: pl.DataFrame,
    stack: str,
    image_size: tuple[int, int],
    seed: int = 0,
    jitter_px: float = 1.0,
    drop_fraction: float = 0.05,
    spurious_fraction: float = 0.03,
) -> pl.DataFrame:
    """A detector's CSV export, simulated from a session's ground-truth boxes.

    Returns the reference column layout (``filename, width, height, class,
    score, xmin, ymin, xmax, ymax``, file names ``<stack>_layerNN.png``), with
    jittered, missed and spurious boxes; true boxes score in [0.6, 1.0),
    spurious ones in [0.3, 0.8). A stand-in for detector output, not truth.
    """
    rng = np.random.default_rng(seed)
    noisy = perturb_boxes(
        truth_boxes.with_columns(stack=pl.lit(stack)),
        jitter_px=jitter_px,
        drop_fraction=drop_fraction,
        spurious_fraction=spurious_fraction,
        seed=seed,
    )
    height, width = image_size
    score = np.where(noisy["spurious"].to_numpy(), rng.uniform(0.3, 0.8, len(noisy)), rng.uniform(0.6, 1.0, len(noisy)))
    return (
        noisy.with_columns(score=pl.Series(score))
        .sort("layer")
        .select(
            filename=pl.format("{}_layer{}.png", pl.lit(stack), pl.col("layer").cast(pl.String).str.zfill(2)),
            width=pl.lit(float(width)),
            height=pl.lit(float(height)),
            **{"class": pl.col("type").fill_null("spine")},
            score=pl.col("score"),
            xmin=pl.col("xmin").clip(0, width),
            ymin=pl.col("ymin").clip(0, height),
            xmax=pl.col("xmax").clip(0, width),
            ymax=pl.col("ymax").clip(0, height),
        )
    )
