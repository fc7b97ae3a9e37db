"""The pixel size of a layer whose file does not say: estimated from the width of its dendrites.

A dendrite shaft is the brightest tube in a two-photon layer and its width
varies far less between cells and labs (about 0.7-1.5 um) than fields of view
do (0.05-0.3 um per pixel), so its width in pixels gives the scale to within
about 20-30%. The width is measured at half of the bright level (FWHM-like):
twice the median of the distance transform along the ridges of the largest
bright components.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Apparent half-maximum width of a dendrite shaft (um); calibrated on raw-like rendered layers
#: (:mod:`synapflow_assets.synthetic.raw_layer`), whose dendrite radii span 0.35-0.75 um.
DENDRITE_WIDTH_UM = 1.1

#: Share of the bright area the kept components cover (the largest first); loose blobs are left out.
MAIN_COMPONENTS_SHARE = 0.8


@dataclass(frozen=True)
class ScaleEstimate:
    """Result of :func:`estimate_pixel_size`.

    Attributes
    ----------
    pixel_size_um : float or None
        None when the layer holds no tube-like bright structure.
    dendrite_width_px : float
    ridge_pixels : int
        Ridge pixels the width is the median of (0 when nothing was found).
    """

    pixel_size_um: float | None
    dendrite_width_px: float
    ridge_pixels: int


def dendrite_width_px(layer: np.ndarray) -> tuple[float, int]:
    """Half-maximum width (px) of the brightest tubes of a 2D layer, and the ridge pixels measured.

    Parameters
    ----------
    layer : ndarray (H, W)

    Returns
    -------
    width : float
        NaN when no bright structure of at least 2 px width exists.
    ridge_pixels : int
    """
    image = ndimage.gaussian_filter(np.asarray(layer, np.float32), 1.0)
    background = float(np.median(image))
    bright = float(np.percentile(image, 99.5))
    if bright <= background:
        return float("nan"), 0
    mask = image > background + 0.5 * (bright - background)
    labels, n = ndimage.label(mask)
    if n == 0:
        return float("nan"), 0
    areas = np.bincount(labels.ravel())[1:]
    order = np.argsort(areas)[::-1]
    covered = np.cumsum(areas[order]) / areas.sum()
    keep_labels = order[: int(np.searchsorted(covered, MAIN_COMPONENTS_SHARE)) + 1] + 1
    keep = np.isin(labels, keep_labels)
    distance = ndimage.distance_transform_edt(keep)
    ridge = keep & (distance >= 1.0) & (distance >= ndimage.maximum_filter(distance, size=3))
    if ridge.sum() < 5:
        return float("nan"), int(ridge.sum())
    return float(2.0 * np.median(distance[ridge])), int(ridge.sum())


def estimate_pixel_size(layer: np.ndarray, *, dendrite_width_um: float = DENDRITE_WIDTH_UM) -> ScaleEstimate:
    """Estimate a layer's pixel size (um/px) from the half-maximum width of its dendrites.

    Parameters
    ----------
    layer : ndarray (H, W) or (Z, H, W)
        A stack is measured on its maximum-intensity projection.
    dendrite_width_um : float
        The assumed half-maximum width of a dendrite shaft.

    Returns
    -------
    ScaleEstimate
    """
    layer = np.asarray(layer)
    if layer.ndim == 3:
        layer = layer.max(axis=0)
    width, ridge = dendrite_width_px(layer)
    if not np.isfinite(width) or width < 2.0:
        return ScaleEstimate(None, width, ridge)
    return ScaleEstimate(dendrite_width_um / width, width, ridge)
