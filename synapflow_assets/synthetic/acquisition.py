"""Imaging a rendered signal like a two-photon microscope, and what of it a person could see.

Used by :mod:`.raw_layer` (rendered layers) and by the detector's training data
(masked real images given a raw background).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from .raw_layer_params import RawLayerParams


def loguniform(rng: np.random.Generator, low_high) -> float:
    low, high = low_high
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def upsample(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A smooth low-resolution field brought to ``shape`` (linear interpolation)."""
    if image.shape == tuple(shape):
        return image.astype(np.float32)
    zoomed = ndimage.zoom(image, (shape[0] / image.shape[0], shape[1] / image.shape[1]), order=1)
    return zoomed[: shape[0], : shape[1]].astype(np.float32)


def spine_snr(
    boxes_px: np.ndarray, spine_photons: np.ndarray, other_photons: np.ndarray, saturated: np.ndarray
) -> np.ndarray:
    """Visibility of each spine: its expected photons above everything else, summed over the part of the
    spine above half its peak, over the shot noise of that region (what an eye or a detector integrates);
    0 where the image is saturated without it at its peak (the spine cannot show).

    A spine that nobody could see (too dim for the noise, or lost in a saturated
    dendrite) is not a detection target, so rendered layers label only visible spines.
    """
    snr = np.zeros(len(boxes_px))
    for i, (x0, y0, x1, y1) in enumerate(np.round(boxes_px).astype(int)):  # one slice per spine
        spine = spine_photons[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
        if spine.size == 0:
            continue
        at = np.unravel_index(int(np.argmax(spine)), spine.shape)
        if saturated[y0:, x0:][at]:
            continue
        region = spine >= 0.5 * spine[at]
        other = other_photons[y0 : y0 + spine.shape[0], x0 : x0 + spine.shape[1]][region]
        total = float(spine[region].sum())
        snr[i] = total / np.sqrt(max(total + float(other.sum()), 1.0))
    return snr


def acquire(
    signal: np.ndarray, rng: np.random.Generator, params: RawLayerParams, pixel_size_um: float = 0.12
) -> np.ndarray:
    """Image a signal (um of labelled thickness x brightness, ~1 on a dendrite) as raw counts.

    Adds autofluorescence (a smooth field), Poisson shot noise, gain, offset
    and Gaussian read noise, then saturates and quantises to 8, 12 or 16 bits.

    Returns
    -------
    ndarray (H, W), uint8 or uint16
    """
    return acquire_counts(signal, rng, params, pixel_size_um)[0]


def acquire_counts(signal: np.ndarray, rng: np.random.Generator, params: RawLayerParams, pixel_size_um: float):
    """The image, photons per signal unit, the background signal and the photons that saturate."""
    shape = signal.shape
    sigma = max(2.0, 8.0 / pixel_size_um)
    coarse = max(1, int(sigma / 4))
    small = (-(-shape[0] // coarse), -(-shape[1] // coarse))
    smooth = upsample(ndimage.gaussian_filter(rng.normal(0, 1, small), sigma / coarse), shape)
    smooth = 1 + 0.5 * smooth / max(smooth.std(), 1e-9)
    background = loguniform(rng, params.background_fraction) * np.clip(smooth, 0.2, None)
    photons_per_unit = loguniform(rng, params.peak_photons)
    photons = rng.poisson(np.clip(signal + background, 0, None) * photons_per_unit).astype(np.float64)
    bits = int(rng.choice(params.bit_depths))
    full = 2.0**bits - 1
    offset = rng.uniform(0, 0.05) * full
    gain = loguniform(rng, params.saturation) * (full - offset) / photons_per_unit
    counts = offset + gain * photons + rng.normal(0, 1, shape) * gain * rng.uniform(*params.read_noise_fraction)
    image = np.clip(np.round(counts), 0, full).astype(np.uint8 if bits == 8 else np.uint16)
    return image, photons_per_unit, background, (full - offset) / gain
