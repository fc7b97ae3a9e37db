"""Grown boxes of many spines cut out of a volume at once, as a padded stack."""

import numpy as np
from numpy.typing import ArrayLike


def box_pixels(
    xmin: ArrayLike, ymin: ArrayLike, xmax: ArrayLike, ymax: ArrayLike, shape_yx: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer pixel ranges (inclusive) whose centres lie inside each box, clipped to the image.

    Returns
    -------
    tuple of ndarray
        ``(x0, y0, x1, y1)``; a degenerate box keeps at least its nearest pixel.
    """
    ny, nx = shape_yx
    x0 = np.clip(np.ceil(np.asarray(xmin, float)), 0, nx - 1).astype(np.int64)
    y0 = np.clip(np.ceil(np.asarray(ymin, float)), 0, ny - 1).astype(np.int64)
    x1 = np.clip(np.floor(np.asarray(xmax, float)), 0, nx - 1).astype(np.int64)
    y1 = np.clip(np.floor(np.asarray(ymax, float)), 0, ny - 1).astype(np.int64)
    return x0, y0, np.maximum(x1, x0), np.maximum(y1, y0)


def grown_crops(
    volume: np.ndarray,
    layer: ArrayLike,
    xmin: ArrayLike,
    ymin: ArrayLike,
    xmax: ArrayLike,
    ymax: ArrayLike,
    grow_px: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut the boxes grown by ``grow_px`` out of their layers into one padded stack.

    Parameters
    ----------
    volume : ndarray (z, y, x)
    layer, xmin, ymin, xmax, ymax : ndarray (n,)
        Boxes in pixels.
    grow_px : int

    Returns
    -------
    crops : ndarray float64 (n, H, W)
        Crop ``i`` at the top-left of slice ``i``; padding is NaN.
    origin : ndarray int (n, 2)
        (y, x) image coordinates of each crop's pixel (0, 0).
    inner : ndarray bool (n, H, W)
        Pixels of the (ungrown) box.
    """
    nz, ny, nx = volume.shape
    x0, y0, x1, y1 = box_pixels(xmin, ymin, xmax, ymax, (ny, nx))
    gx0, gy0 = np.maximum(x0 - grow_px, 0), np.maximum(y0 - grow_px, 0)
    gx1, gy1 = np.minimum(x1 + grow_px, nx - 1), np.minimum(y1 + grow_px, ny - 1)
    h, w = gy1 - gy0 + 1, gx1 - gx0 + 1
    n = len(h)
    if n == 0:
        return np.zeros((0, 1, 1)), np.zeros((0, 2), np.int64), np.zeros((0, 1, 1), bool)
    hh, ww = np.arange(h.max()), np.arange(w.max())
    yy = gy0[:, None] + hh
    xx = gx0[:, None] + ww
    valid = (hh < h[:, None])[:, :, None] & (ww < w[:, None])[:, None, :]
    z = np.clip(np.asarray(layer, np.int64), 0, nz - 1)
    crops = volume[z[:, None, None], np.minimum(yy, ny - 1)[:, :, None], np.minimum(xx, nx - 1)[:, None, :]]
    crops = np.where(valid, crops.astype(np.float64), np.nan)
    inner = ((yy >= y0[:, None]) & (yy <= y1[:, None]))[:, :, None] & ((xx >= x0[:, None]) & (xx <= x1[:, None]))[
        :, None, :
    ]
    return crops, np.column_stack([gy0, gx0]), inner & valid
