"""Otsu and multi-Otsu thresholds in numpy (no scikit-image needed)."""
import numpy as np


def _histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, float).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.zeros(0), np.zeros(0)
    lo, hi = values.min(), values.max()
    if hi <= lo:
        return np.array([float(values.size)]), np.array([lo])
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return counts.astype(float), (edges[:-1] + edges[1:]) / 2


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
    counts, centres = _histogram(values, bins)
    if counts.size == 0:
        return float("nan")
    if counts.size == 1:
        return float(centres[0])
    w0 = np.cumsum(counts)[:-1]
    w1 = counts.sum() - w0
    m = np.cumsum(counts * centres)
    mu0 = m[:-1] / np.maximum(w0, 1e-12)
    mu1 = (m[-1] - m[:-1]) / np.maximum(w1, 1e-12)
    between = w0 * w1 * (mu0 - mu1) ** 2
    k = int(np.argmax(between))
    return float((centres[k] + centres[k + 1]) / 2)


def multi_otsu_thresholds(values: np.ndarray, classes: int = 3, bins: int = 64) -> np.ndarray:
    """Multi-Otsu thresholds for 2 or 3 classes (exhaustive search over a histogram).

    Parameters
    ----------
    values : array_like
    classes : {2, 3}
    bins : int
        Histogram bins; the 3-class search evaluates all ``bins^2 / 2`` pairs at once.

    Returns
    -------
    ndarray (classes - 1,)
        Increasing thresholds (NaN for empty input).
    """
    if classes == 2:
        return np.array([otsu_threshold(values, bins)])
    if classes != 3:
        raise ValueError("multi_otsu_thresholds supports 2 or 3 classes")
    counts, centres = _histogram(values, bins)
    if counts.size < 3:
        return np.full(2, float("nan") if counts.size == 0 else centres[0])
    cw = np.concatenate([[0.0], np.cumsum(counts)])
    cm = np.concatenate([[0.0], np.cumsum(counts * centres)])
    i, j = np.triu_indices(counts.size + 1, k=1)            # classes [0,i), [i,j), [j,n)
    ok = (i >= 1) & (j <= counts.size - 1)
    i, j = i[ok], j[ok]
    n = counts.size
    w = np.stack([cw[i], cw[j] - cw[i], cw[n] - cw[j]])
    s = np.stack([cm[i], cm[j] - cm[i], cm[n] - cm[j]])
    score = np.where(w > 0, s**2 / np.maximum(w, 1e-12), 0.0).sum(0)   # sum w_k mu_k^2
    k = int(np.argmax(score))
    return np.array([(centres[i[k] - 1] + centres[i[k]]) / 2, (centres[j[k] - 1] + centres[j[k]]) / 2])
