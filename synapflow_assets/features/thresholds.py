"""Otsu and multi-Otsu thresholds (scikit-image) placed on the edge between two histogram bins.

scikit-image returns the centre of the last bin of the lower class; the
thresholds here are half a bin higher, on the edge to the next class, so that
``values > threshold`` splits the histogram exactly where its classes split.
"""

import numpy as np
from numpy.typing import ArrayLike
from skimage.filters import threshold_multiotsu, threshold_otsu


def _finite(values: ArrayLike) -> np.ndarray:
    values = np.asarray(values, float).ravel()
    return values[np.isfinite(values)]


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: the cut maximising the between-class variance.

    Parameters
    ----------
    values : array_like
        Intensities (any shape; NaNs are ignored).
    bins : int
        Histogram bins between the minimum and the maximum.

    Returns
    -------
    float
        The threshold; pixels ``> threshold`` are foreground. NaN for empty
        input, the single value for constant input.
    """
    values = _finite(values)
    if values.size == 0:
        return float("nan")
    lo, hi = values.min(), values.max()
    if hi <= lo:
        return float(lo)
    return float(threshold_otsu(values, nbins=bins)) + (hi - lo) / (2 * bins)


def multi_otsu_thresholds(values: np.ndarray, classes: int = 3, bins: int = 64) -> np.ndarray:
    """Multi-Otsu thresholds (:func:`skimage.filters.threshold_multiotsu`).

    Parameters
    ----------
    values : array_like
        Intensities (any shape; NaNs are ignored).
    classes : int
        At least 2 (2: :func:`otsu_threshold` with ``bins`` bins).
    bins : int
        Histogram bins between the minimum and the maximum.

    Returns
    -------
    ndarray (classes - 1,)
        Increasing thresholds; NaN for empty input, the single value for
        constant input, the 2-class threshold for each when the histogram
        has fewer occupied bins than ``classes``.
    """
    if classes < 2:
        raise ValueError("multi_otsu_thresholds needs at least 2 classes")
    values = _finite(values)
    if classes > 2 and values.size and values.min() < values.max():
        try:
            cuts = threshold_multiotsu(values, classes, nbins=bins)
        except ValueError:  # fewer occupied bins than classes
            pass
        else:
            return cuts.astype(float) + (values.max() - values.min()) / (2 * bins)
    return np.full(classes - 1, otsu_threshold(values, bins))
