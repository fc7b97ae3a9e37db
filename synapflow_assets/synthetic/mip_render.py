"""Rendering one session of a simulated MIP series: the uint8 MIP and the visibility of each spine.

Rendering 1024 px at 0.02 um/px with the 3D renderer would be slow, so a
session is rendered at twice the pixel size on 512 px (expected photons per
layer: dendrites and spines blurred by the PSF, autofluorescence and the haze of
out-of-focus dendrites), brought to 1024 px by linear interpolation, and only
then given photon noise per layer, projected (maximum over the layers) and
converted to uint8.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import ndimage

from .mip_profile import MipSeries
from .morphology import Spines
from .render import background, dendrite_points, spine_points, splat
from .transform import SessionTransform


def _coarse_px(points_px: np.ndarray, factor: int) -> np.ndarray:
    """Image pixel coordinates (..., 3) -> render grid coordinates (pixel centres aligned)."""
    p = np.array(points_px, float, copy=True)
    p[..., 1:] = (p[..., 1:] - (factor - 1) / 2) / factor
    return p


def _upsample(stack: np.ndarray, factor: int) -> np.ndarray:
    """Linear interpolation of the layers of ``stack`` (z, y, x) to ``factor`` times as many pixels per side,
    pixel centres aligned (``scipy.ndimage.zoom(..., order=1, grid_mode=True, mode="nearest")``, faster)."""
    for axis in (1, 2):
        n = stack.shape[axis]
        c = (np.arange(n * factor) - (factor - 1) / 2) / factor
        i0 = np.floor(c).astype(np.int64)
        w = (c - i0).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(stack.ndim)])
        stack = stack.take(np.clip(i0, 0, n - 1), axis) * (1 - w) + stack.take(np.clip(i0 + 1, 0, n - 1), axis) * w
    return stack


def _haze_photons(series: MipSeries, tr: SessionTransform) -> tuple[np.ndarray, list[float]]:
    """Haze (photons, render grid) of the out-of-focus dendrites in this session, and their amplitudes."""
    coarse, prof = series.coarse, series.profile
    ny, nx = coarse.shape[1:]
    total = np.zeros((ny, nx), np.float32)
    amplitudes = []
    for line, a0 in zip(series.haze_lines, series.haze_amplitude, strict=False):
        z_px = line[0, 0] / prof.z_step_um + tr.drift_px[0]
        distance_um = max(0.0, -z_px, z_px - (prof.n_layers - 1)) * prof.z_step_um
        amplitude = float(a0 * np.exp(-distance_um / 1.2))
        amplitudes.append(round(amplitude, 4) if amplitude >= 0.02 else 0.0)
        if amplitude < 0.02:
            continue
        sigma_px = max((0.35 + 0.7 * distance_um) / coarse.voxel_size_um[1], 1.0)
        px = _coarse_px(tr.to_pixels(line, series.out), prof.render_factor)
        step_px = float(np.linalg.norm(np.diff(px[:, 1:], axis=0), axis=1).mean())
        px[:, 0] = 0.0
        lines = splat(px, np.full(len(px), step_px), (1, ny, nx))[0]
        blurred = ndimage.gaussian_filter(lines, sigma_px, mode="constant")
        total += blurred * np.float32(np.sqrt(2 * np.pi) * sigma_px * amplitude * series.shaft_photons)
    return total, amplitudes


def render_mip(
    series: MipSeries, alive: Spines, tr: SessionTransform, rng: np.random.Generator
) -> tuple[np.ndarray, list]:
    """The uint8 MIP of one session, and the haze amplitudes.

    Parameters
    ----------
    series : MipSeries
    alive : Spines
        The spines that exist in this session.
    tr : SessionTransform
        World um -> image pixels of this session.
    rng : numpy.random.Generator
        Photon and detector noise.

    Returns
    -------
    image : ndarray uint8 (image_px, image_px)
    amplitudes : list of float
        Amplitude (relative to a shaft) of each out-of-focus dendrite (0: gone).
    """
    prof, coarse, out, f = series.profile, series.coarse, series.out, series.profile.render_factor
    d_points, d_weights = dendrite_points(series.dendrites, coarse.voxel_size_um)
    s_points, s_weights = spine_points(alive, coarse.voxel_size_um)
    points = _coarse_px(tr.to_pixels(np.concatenate([d_points, s_points.reshape(-1, 3)]), out), f)
    density = splat(points, np.concatenate([d_weights, s_weights.ravel()]), coarse.shape)
    density = ndimage.gaussian_filter(
        density, (coarse.psf_sigma_layers, coarse.psf_sigma_px, coarse.psf_sigma_px), mode="constant"
    )
    haze, amplitudes = _haze_photons(series, tr)
    lam = density * np.float32(series.photons_per_unit * tr.brightness) + background(coarse, rng) + haze[None]
    mip = rng.poisson(np.clip(_upsample(lam, f), 0, None)).max(axis=0).astype(np.float32)
    mip += np.float32(prof.read_noise_photons) * rng.standard_normal(mip.shape, dtype=np.float32)
    image = np.clip(np.rint(series.black + series.gain * mip), 0, 255).astype(np.uint8)
    return image, amplitudes


def spine_visibility(series: MipSeries, alive: Spines, visible: np.ndarray, head_px: np.ndarray, brightness: float):
    """Expected contrast (0-1) of each visible spine head in the MIP.

    Parameters
    ----------
    series : MipSeries
    alive : Spines
    visible : ndarray bool
        Which of ``alive`` are in view.
    head_px : ndarray (n, 3)
        Head centres of ``alive`` in image pixels (z in layers).
    brightness : float
        Brightness of the session.

    Returns
    -------
    polars.DataFrame
        ``spine_id, visibility``: head size against the PSF, distance to the nearest plane, brightness and
        light level.
    """
    prof, coarse = series.profile, series.coarse
    sigma_xy = coarse.psf_sigma_px * coarse.voxel_size_um[1]
    v_psf = (2 * np.pi) ** 1.5 * sigma_xy**2 * prof.psf_sigma_z_um
    size = 1 - np.exp(-alive.head_volume_um3[visible] / v_psf)
    off_plane_um = np.abs(head_px[visible, 0] - np.round(head_px[visible, 0])) * prof.z_step_um
    depth = np.exp(-(off_plane_um**2) / (2 * prof.psf_sigma_z_um**2))
    light = min(1.0, float(np.sqrt(series.shaft_photons / 30.0)))
    value = np.clip(size * depth * brightness * light, 0, 1)
    return pl.DataFrame({"spine_id": alive.spine_id[visible], "visibility": value})
