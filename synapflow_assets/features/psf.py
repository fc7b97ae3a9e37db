"""Widths of blurred profiles: the half-maximum crossing of sampled profiles and its inverse through a PSF model.

A spine head is modelled as a ball of radius ``r`` (uniform labelled cytosol)
imaged with an anisotropic Gaussian point-spread function (sigma ``s_xy``
in x/y, ``s_z`` in z), and seen on the layer through its centre. The profile
across it is

``p(x) = integral h(x') G(x - x'; s_xy) dx'``, ``h(x') = P(Y^2 + Z^2 <= r^2 - x'^2)``

with ``Y ~ N(0, s_xy)`` and ``Z ~ N(0, s_z)`` (the blur in y and z weighs the
ball's chord through ``x'``). :func:`fwhm_table` tabulates the full width at
half maximum of that profile, measured by the same estimator as the images
(:func:`half_max_width`), over a grid of radii; :func:`radius_from_fwhm`
inverts it. For ``r`` much larger than the PSF the width tends to ``2 r``; for
a point it is the PSF's own ``2.355 s_xy``: widths below that give the
smallest tabulated radius.
"""

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

RADIUS_GRID_UM = np.geomspace(0.02, 3.0, 96)
STEP_UM = 0.005


def half_max_width(profiles: np.ndarray, step: float, *, centre_window: int) -> tuple[np.ndarray, np.ndarray]:
    """Full width at half maximum of each profile (rows), from the peak near the centre outwards.

    The peak is the maximum within ``centre_window`` samples of the centre
    sample; the base on each side is that side's minimum, and the half level
    lies halfway between the peak and the mean of the two bases (a pedestal,
    e.g. the blurred dendrite beside a stubby head, is not counted as head).
    Each crossing is linearly interpolated between samples.

    Parameters
    ----------
    profiles : ndarray (n, k)
        Samples ``step`` apart, the head centre at sample ``k // 2``. NaN
        samples (outside the image) count as below any level.
    step : float
        Sample spacing (any length unit; the width is in that unit).
    centre_window : int
        Half-width (samples) of the window in which the peak is searched.

    Returns
    -------
    width : ndarray (n,)
        FWHM; NaN where a side never falls below the half level.
    peak_offset : ndarray (n,)
        Position of the peak relative to the centre (same unit).
    """
    p = np.asarray(profiles, float)
    n, k = p.shape
    c = k // 2
    lo, hi = max(c - centre_window, 0), min(c + centre_window + 1, k)
    filled = np.where(np.isfinite(p), p, -np.inf)
    at = lo + np.argmax(filled[:, lo:hi], axis=1)
    rows = np.arange(n)
    peak = filled[rows, at]
    idx = np.arange(k)
    left_side, right_side = idx[None, :] <= at[:, None], idx[None, :] >= at[:, None]
    base = 0.5 * (
        np.where(left_side, np.where(np.isfinite(p), p, np.inf), np.inf).min(1)
        + np.where(right_side, np.where(np.isfinite(p), p, np.inf), np.inf).min(1)
    )
    with np.errstate(invalid="ignore"):  # all-NaN profiles (outside the image) give NaN
        half = base + 0.5 * (peak - base)
    below = ~(filled >= half[:, None])  # NaN counts as below
    right = _crossing(p, below, at, half, +1)
    left = _crossing(p, below, at, half, -1)
    width = (right - left) * step
    return np.where(np.isfinite(width) & (peak > base), width, np.nan), (at - c) * step


def _crossing(p: np.ndarray, below: np.ndarray, at: np.ndarray, half: np.ndarray, sign: int) -> np.ndarray:
    """Fractional sample index where each profile first falls below ``half``, going from ``at`` in direction
    ``sign``; NaN when it never does."""
    n, k = p.shape
    idx = np.arange(k)
    ahead = (idx[None, :] - at[:, None]) * sign > 0
    hit = below & ahead
    found = hit.any(1)
    first = np.where(sign > 0, np.argmax(hit, axis=1), k - 1 - np.argmax(hit[:, ::-1], axis=1))
    prev = np.clip(first - sign, 0, k - 1)
    rows = np.arange(n)
    a, b = p[rows, prev], p[rows, first]
    b = np.where(np.isfinite(b), b, np.minimum(half, a) - 1e-9)
    frac = np.clip((a - half) / np.maximum(a - b, 1e-12), 0.0, 1.0)
    return np.where(found, prev + sign * frac, np.nan)


@lru_cache(maxsize=16)
def fwhm_table(psf_sigma_xy_um: float, psf_sigma_z_um: float, shape: str = "ball") -> tuple[np.ndarray, np.ndarray]:
    """FWHM (um) of the model profile of a ball (or a cylinder in the x/y plane) of each radius of
    :data:`RADIUS_GRID_UM`.

    For a cylinder (a dendrite, profile across it) the blur along its axis
    does not matter: ``h(x') = P(Z^2 <= r^2 - x'^2)``.

    Returns
    -------
    radius_um, fwhm_um : ndarray
        Increasing radii and their (non-decreasing) widths.
    """
    sxy, sz = max(float(psf_sigma_xy_um), 1e-3), max(float(psf_sigma_z_um), 1e-3)
    # F(rho) = P(Y^2 + Z^2 <= rho^2) on a grid of rho
    gy = np.linspace(-4.5 * sxy, 4.5 * sxy, 181)
    gz = np.linspace(-4.5 * sz, 4.5 * sz, 181)
    w = np.exp(-0.5 * (gy[:, None] / sxy) ** 2 * (shape == "ball") - 0.5 * (gz[None, :] / sz) ** 2)
    if shape == "cylinder":  # no weight across y: the chord is in z only
        gy = np.zeros_like(gy)
    rho = np.hypot(gy[:, None], gz[None, :]).ravel()
    order = np.argsort(rho)
    cdf = np.cumsum(w.ravel()[order]) / w.sum()
    half_len = RADIUS_GRID_UM[-1] + 5 * sxy
    x = np.arange(-half_len, half_len + STEP_UM / 2, STEP_UM)
    r = RADIUS_GRID_UM[:, None]
    chord = np.sqrt(np.clip(r**2 - x[None, :] ** 2, 0.0, None))
    h = np.interp(chord, rho[order], cdf, left=0.0) * (np.abs(x[None, :]) < r)
    kx = np.arange(-5 * sxy, 5 * sxy + STEP_UM / 2, STEP_UM)
    kernel = np.exp(-0.5 * (kx / sxy) ** 2)
    spectrum = np.fft.rfft(h, n=h.shape[1] + kx.size - 1, axis=1) * np.fft.rfft(kernel, n=h.shape[1] + kx.size - 1)
    full = np.fft.irfft(spectrum, n=h.shape[1] + kx.size - 1, axis=1)
    prof = full[:, kx.size // 2 : kx.size // 2 + x.size]
    width, _ = half_max_width(prof, STEP_UM, centre_window=2)
    return RADIUS_GRID_UM.copy(), np.maximum.accumulate(np.nan_to_num(width, nan=0.0))


def radius_from_fwhm(
    fwhm_um: ArrayLike, *, psf_sigma_xy_um: float, psf_sigma_z_um: float, shape: str = "ball"
) -> np.ndarray:
    """Radius (um) of the ball whose blurred profile has the measured FWHM (NaN stays NaN).

    Parameters
    ----------
    fwhm_um : array_like
        Widths measured by :func:`half_max_width`, in um.
    psf_sigma_xy_um, psf_sigma_z_um : float
        Gaussian PSF sigmas (um).
    shape : {"ball", "cylinder"}
        The model object (:func:`fwhm_table`).

    Returns
    -------
    ndarray
        Radii, clipped to :data:`RADIUS_GRID_UM`'s range.
    """
    radius, width = fwhm_table(float(psf_sigma_xy_um), float(psf_sigma_z_um), shape)
    keep = np.concatenate([[True], np.diff(width) > 0])
    f = np.asarray(fwhm_um, float)
    return np.where(np.isfinite(f), np.interp(f, width[keep], radius[keep]), np.nan)
