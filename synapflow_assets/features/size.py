"""Spine size as integrated fluorescence (the SynapFlow recipe), per layer and per 3D spine.

Per layer, for a box (xmin, ymin, xmax, ymax) on layer k:

1. grow the box by ``grow_px`` (25) pixels, clipped to the image;
2. background ``b`` = mean of the darkest ``dark_fraction`` (20 %) of the grown box's pixels;
3. in the box, pixels below ``b`` are set to 0 (they are not foreground);
4. pixels are weighted by a 2D Gaussian centred in the box with
   ``sigma_x = 0.3 * width`` and ``sigma_y = 0.3 * height`` - or, documented
   departure (``centre=``, used by :func:`~.per_spine.spine_features` by
   default), centred on the spine's head where the head was found on that
   layer (:mod:`.distance`): a detector box spans the spine from its base on
   the dendrite to its head, so its centre lies on the neck of a long spine,
   where the Gaussian gives the neck (and the dendrite's edge) more weight than
   the head; centred on the head, the weight follows the head whatever the
   neck length (simulator, 3 animals x 4 sessions: Spearman with the true
   head volume 0.886 -> 0.893);
5. raw size = weighted sum - ``b`` x number of foreground pixels, where the
   foreground pixels are counted with their Gaussian weight
   (``weighted_background=True``, default: the subtracted background is the one
   that was summed, so a flat background contributes exactly 0) or plainly
   (``False``: the literal reading of the recipe);
6. divided by the dendrite brightness: the mean of the brightest
   ``bright_fraction`` (1 %) of the grown box's pixels, which makes sizes
   comparable across sessions whose overall brightness differs.

The 3D size of a spine is one of :data:`~.operators.OPERATORS` over its layers.
All boxes are processed together in chunks (padded crop stacks), no loop over boxes.
"""

from typing import Any

import numpy as np
import polars as pl

from .crops import grown_crops
from .operators import combine_layers

GROW_PX = 25
DARK_FRACTION = 0.2
BRIGHT_FRACTION = 0.01
SIGMA_FACTOR = 0.3


def _sorted_means(crops: np.ndarray, fraction: float, darkest: bool) -> np.ndarray:
    """Mean of the darkest / brightest ``fraction`` of each crop's valid pixels."""
    flat = crops.reshape(len(crops), -1)
    count = np.isfinite(flat).sum(1)
    srt = np.sort(np.where(np.isfinite(flat), flat, np.inf), axis=1)  # padding last
    cum = np.cumsum(np.where(np.isfinite(srt), srt, 0.0), axis=1)
    k = np.maximum(np.rint(fraction * count).astype(np.int64), 1)
    rows = np.arange(len(flat))
    if darkest:
        return cum[rows, k - 1] / k
    top = cum[rows, count - 1] - np.where(count - k - 1 >= 0, cum[rows, np.maximum(count - k - 1, 0)], 0.0)
    return top / k


def layer_sizes(
    volume: np.ndarray,
    boxes: pl.DataFrame,
    *,
    grow_px: int = GROW_PX,
    dark_fraction: float = DARK_FRACTION,
    bright_fraction: float = BRIGHT_FRACTION,
    sigma_factor: float = SIGMA_FACTOR,
    weighted_background: bool = True,
    centre: tuple[str, str] | None = None,
    chunk: int = 256,
) -> pl.DataFrame:
    """Integrated fluorescence of every box on its layer.

    Parameters
    ----------
    volume : ndarray (z, y, x)
        Registered volume, in the boxes' frame.
    boxes : polars.DataFrame
        ``layer, xmin, ymin, xmax, ymax`` (pixels); other columns are kept.
    grow_px, dark_fraction, bright_fraction, sigma_factor : see the module docstring
    weighted_background : bool
        Count foreground pixels with their Gaussian weight (default) or plainly.
    centre : (str, str), optional
        Columns of ``boxes`` with the image (y, x) on which to centre the
        Gaussian (e.g. ``("head_y", "head_x")``); where null/NaN, the box centre
        is used. Default: the box centre (the literal recipe).
    chunk : int
        Boxes per padded crop stack (bounds the memory).

    Returns
    -------
    polars.DataFrame
        ``boxes`` with ``size`` (dimensionless: fluorescence in units of the
        dendrite brightness), ``background``, ``dendrite_brightness``,
        ``peak_intensity`` (brightest pixel of the box) and ``n_foreground``.
    """
    cols = {k: boxes[k].to_numpy().astype(float) for k in ("layer", "xmin", "ymin", "xmax", "ymax")}
    n = boxes.height
    box_cy, box_cx = (cols["ymin"] + cols["ymax"]) / 2, (cols["xmin"] + cols["xmax"]) / 2
    if centre is not None:
        hy, hx = (boxes[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in centre)
        ok = np.isfinite(hy) & np.isfinite(hx)
        box_cy, box_cx = np.where(ok, hy, box_cy), np.where(ok, hx, box_cx)
    out = {
        k: np.full(n, np.nan) for k in ("size", "background", "dendrite_brightness", "peak_intensity", "n_foreground")
    }
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        crops, origin, inner = grown_crops(
            volume,
            cols["layer"][sl].astype(np.int64),
            cols["xmin"][sl],
            cols["ymin"][sl],
            cols["xmax"][sl],
            cols["ymax"][sl],
            grow_px,
        )
        bg = _sorted_means(crops, dark_fraction, darkest=True)
        bright = _sorted_means(crops, bright_fraction, darkest=False)
        h, w = crops.shape[1:]
        yy = origin[:, 0, None] + np.arange(h)  # image rows (m, h)
        xx = origin[:, 1, None] + np.arange(w)
        cy, cx = box_cy[sl], box_cx[sl]
        sy = np.maximum(sigma_factor * (cols["ymax"][sl] - cols["ymin"][sl]), 0.5)
        sx = np.maximum(sigma_factor * (cols["xmax"][sl] - cols["xmin"][sl]), 0.5)
        gy = np.exp(-0.5 * ((yy - cy[:, None]) / sy[:, None]) ** 2)
        gx = np.exp(-0.5 * ((xx - cx[:, None]) / sx[:, None]) ** 2)
        weight = gy[:, :, None] * gx[:, None, :]
        v = np.where(inner, np.nan_to_num(crops), 0.0)
        fg = inner & (v >= bg[:, None, None])
        v = np.where(fg, v, 0.0)
        count = (weight * fg).sum((1, 2)) if weighted_background else fg.sum((1, 2))
        raw = (weight * v).sum((1, 2)) - bg * count
        out["size"][sl] = raw / np.maximum(bright, 1e-12)
        out["background"][sl] = bg
        out["dendrite_brightness"][sl] = bright
        out["peak_intensity"][sl] = np.where(inner, np.nan_to_num(crops), -np.inf).reshape(len(v), -1).max(1)
        out["n_foreground"][sl] = fg.sum((1, 2))
    return boxes.with_columns(**{k: pl.Series(k, v, pl.Float64) for k, v in out.items()})


def spine_sizes(volume: np.ndarray, boxes: pl.DataFrame, operator: str = "median", **kwargs: Any) -> pl.DataFrame:
    """3D size per spine: ``operator`` over the layer sizes of each ``id``.

    Parameters
    ----------
    volume : ndarray (z, y, x)
    boxes : polars.DataFrame
        Linked boxes with ``id`` (rows with ``id < 0`` are ignored), ``layer``
        and the box corners.
    operator : {"median", "mean", "max", "inlier_median"}
    **kwargs
        Passed to :func:`layer_sizes`.

    Returns
    -------
    polars.DataFrame
        ``spine_id``, ``size``, ``size_n_layers`` (layers with a finite size).
    """
    per_layer = layer_sizes(volume, boxes.filter(pl.col("id") >= 0), **kwargs)
    sizes = combine_layers(per_layer, "size", operator)
    counts = per_layer.group_by("id").agg(size_n_layers=pl.col("size").is_finite().sum().cast(pl.Int64))
    return sizes.join(counts, on="id", how="left").rename({"id": "spine_id"}).sort("spine_id")
