"""Imported detections of a MIP session, simulated with a real detector's defects.

Dim spines are missed, found ones get scores that follow their visibility, some
get a second, stacked box (a duplicate slightly shifted and scored lower) and a
few false boxes appear; the table has the reference CSV layout.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .detector_noise import perturb_boxes


def mip_detections(
    boxes: pl.DataFrame,
    visibility: pl.DataFrame,
    stack: str,
    image_size: tuple[int, int],
    *,
    seed: int = 0,
    duplicate_fraction: float = 0.2,
    duplicate_shift: tuple[float, float] = (0.1, 0.3),
    half_visibility: float = 0.2,
    spurious_fraction: float = 0.05,
    jitter_fraction: float = 0.04,
) -> pl.DataFrame:
    """Detections of a real detector on a MIP session, simulated from its truth boxes (reference CSV layout).

    Parameters
    ----------
    boxes : polars.DataFrame
        Truth boxes of the session (``spine_id, layer, xmin, ymin, xmax, ymax, type``).
    visibility : polars.DataFrame
        ``spine_id, visibility`` (see :class:`~.mip_timelapse.MipSession`).
    stack : str
        Session name; the file names are ``<stack>_layerNN.png``.
    image_size : (int, int)
        Height and width.
    seed : int
    duplicate_fraction : float
        Share of the found spines that get a second, stacked box: shifted by ``duplicate_shift`` (a share of
        the box size) in a random direction and scored 0.03-0.15 lower.
    half_visibility : float
        Visibility at which a spine is found with probability 1/2 (dim spines are missed).
    spurious_fraction : float
        False boxes, as a share of the truth boxes, scored 0.2-0.5.
    jitter_fraction : float
        Standard deviation of each edge's error, as a share of the median box side.

    Returns
    -------
    polars.DataFrame
        ``filename, width, height, class, score, xmin, ymin, xmax, ymax``.
    """
    rng = np.random.default_rng(seed)
    table = boxes.join(visibility, on="spine_id", how="left").with_columns(
        pl.col("visibility").fill_null(0.0), stack=pl.lit(stack)
    )
    side = (
        float(np.median(np.sqrt((table["xmax"] - table["xmin"]) * (table["ymax"] - table["ymin"]))))
        if len(table)
        else 1.0
    )
    noisy = perturb_boxes(
        table.rename({"spine_id": "id"}),
        jitter_px=jitter_fraction * side,
        drop_fraction=0.0,
        spurious_fraction=spurious_fraction,
        seed=seed,
    )
    v = noisy["visibility"].fill_null(0.0).to_numpy()
    spurious = noisy["spurious"].to_numpy()
    found = rng.random(len(noisy)) < 1 / (1 + np.exp(-(v - half_visibility) / 0.05))
    score = np.clip(0.3 + 0.65 * v + rng.normal(0, 0.05, len(noisy)), 0.21, 0.99)
    score = np.where(spurious, rng.uniform(0.2, 0.5, len(noisy)), score)
    kept = noisy.with_columns(score=pl.Series(score)).filter(pl.Series(found | spurious))
    twin = rng.random(len(kept)) < duplicate_fraction
    twin &= ~kept["spurious"].to_numpy()
    dup = kept.filter(pl.Series(twin))
    angle = rng.uniform(0, 2 * np.pi, len(dup))
    share = rng.uniform(*duplicate_shift, len(dup))
    dx = share * (dup["xmax"] - dup["xmin"]).to_numpy() * np.cos(angle)
    dy = share * (dup["ymax"] - dup["ymin"]).to_numpy() * np.sin(angle)
    dup = dup.with_columns(
        xmin=pl.col("xmin") + dx,
        xmax=pl.col("xmax") + dx,
        ymin=pl.col("ymin") + dy,
        ymax=pl.col("ymax") + dy,
        score=pl.Series(np.clip(dup["score"].to_numpy() - rng.uniform(0.03, 0.15, len(dup)), 0.2, 0.99)),
    )
    height, width = image_size
    both = pl.concat([kept, dup], how="vertical_relaxed").sort("layer", "xmin")
    return both.select(
        filename=pl.format("{}_layer{}.png", pl.lit(stack), pl.col("layer").cast(pl.String).str.zfill(2)),
        width=pl.lit(float(width)),
        height=pl.lit(float(height)),
        **{"class": pl.col("type").fill_null("spine")},
        score=pl.col("score"),
        xmin=pl.col("xmin").clip(0, width),
        ymin=pl.col("ymin").clip(0, height),
        xmax=pl.col("xmax").clip(0, width),
        ymax=pl.col("ymax").clip(0, height),
    ).filter((pl.col("xmax") - pl.col("xmin") >= 1) & (pl.col("ymax") - pl.col("ymin") >= 1))
