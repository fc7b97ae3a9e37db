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
#: (:mod:`synapflow_assets.synthetic.raw_layer`): the half-maximum width of a 0.5 um radius tube
#: seen through a 0.1-0.3 um PSF.
DENDRITE_WIDTH_UM = 1.0

#: Gaussian smoothings (px) tried, smallest first.
SMOOTHING_PX = (1.0, 2.0)
#: A heavier smoothing is used only when its width is at least this multiple of it, and the lighter
#: one measured under ``FRAGMENTED_SHARE`` of that width (noise broke the tube into specks).
MIN_WIDTH_PER_SMOOTHING = 6.0
FRAGMENTED_SHARE = 0.75

#: The bright level must stand this many sigmas of the smoothed pixel noise (from neighbour differences)
#: above the median.
MIN_CONTRAST_SIGMA = 8.0

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


def _width_at(layer: np.ndarray, smoothing_px: float) -> tuple[float, int]:
    """Half-maximum width (px) of the largest bright components after Gaussian smoothing, and its ridge pixels."""
    image = ndimage.gaussian_filter(np.asarray(layer, np.float32), smoothing_px)
    background = float(np.median(image))
    bright = float(np.percentile(image, 99.5))
    raw = np.asarray(layer, np.float32)
    pixel_noise = 1.4826 * float(np.median(np.abs(np.diff(raw, axis=1)))) / np.sqrt(2.0)
    noise = pixel_noise / (2.0 * np.sqrt(np.pi) * smoothing_px)  # white noise after the Gaussian
    if bright - background <= MIN_CONTRAST_SIGMA * noise or bright <= background:
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
    # a tube w pixels wide has a distance of (w + 1) / 2 at its centre pixel
    return float(2.0 * np.median(distance[ridge]) - 1.0), int(ridge.sum())


def dendrite_width_px(layer: np.ndarray) -> tuple[float, int]:
    """Half-maximum width (px) of the brightest tubes of a 2D layer, and the ridge pixels measured.

    The layer is smoothed against shot noise by the smallest of ``SMOOTHING_PX``,
    and by a larger one only where noise broke the tubes up at the smaller one
    (see ``FRAGMENTED_SHARE``); a larger smoothing also widens the tubes.

    Parameters
    ----------
    layer : ndarray (H, W)

    Returns
    -------
    width : float
        NaN when no bright structure of at least 2 px width exists.
    ridge_pixels : int
    """
    chosen = _width_at(layer, SMOOTHING_PX[0])
    for smoothing in SMOOTHING_PX[1:]:
        width, ridge = _width_at(layer, smoothing)
        if not (np.isfinite(width) and width >= MIN_WIDTH_PER_SMOOTHING * smoothing):
            break
        if np.isfinite(chosen[0]) and chosen[0] >= FRAGMENTED_SHARE * width:
            break  # the lighter smoothing was not broken up by noise: keep it
        chosen = (width, ridge)
    return chosen


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
    if not np.isfinite(width) or width < 2.5:
        return ScaleEstimate(None, width, ridge)
    return ScaleEstimate(dendrite_width_um / width, width, ridge)
