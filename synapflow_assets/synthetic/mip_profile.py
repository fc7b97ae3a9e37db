"""What one kind of MIP time-lapse looks like, and what is drawn once per series of it.

:class:`MipProfile` holds the ranges of a kind of single-plane MIP time-lapse (see
:mod:`.mip_timelapse`), :data:`PROFILES` the named ones. :func:`draw_series` draws
one series from a profile (:class:`MipSeries`): the pixel size and PSF, the
dendrites crossing the field along y with their spine density, the out-of-focus
dendrites above or below the stack (the haze) and the light.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from .morphology import Dendrite
from .params import SimulationParams


@dataclass(frozen=True)
class MipProfile:
    """Ranges of one kind of MIP time-lapse (lengths in um, pixels of the 1024 px image unless noted).

    Attributes
    ----------
    image_px : int
        Side of the written image.
    render_factor : int
        The image is rendered at this many times its pixel size (``image_px / render_factor`` px), then
        interpolated to ``image_px``.
    pixel_size_um : (float, float)
        True pixel size, drawn per series (log-uniform).
    n_layers, z_step_um : int, float
        Layers of the stack the MIP is made from, and their spacing.
    psf_sigma_um, psf_sigma_z_um : (float, float), float
        Lateral PSF sigma (drawn per series) and axial sigma.
    n_dendrites : (int, int)
        In-focus dendrites (inclusive range; the count that gives a plausible density is preferred).
    dendrite_tilt_deg : float
        Largest angle of a dendrite to the y axis (a common tilt per field, plus a few degrees each).
    dendrite_radius_um : (float, float)
    dendrite_wiggle_um, dendrite_depth_wiggle_um : float
        Lateral and depth bending of a dendrite.
    world_margin_um : float
        Tissue drawn around the field, so spines move in and out of view.
    target_spines : (float, float)
        Expected spines in view in the first session (drawn per series); it sets the density.
    density_per_um : (float, float)
        Plausible spine densities; the dendrite count is chosen to stay within them.
    spines_in_view : (int, int)
        Every session of an accepted series has this many spines in view (a series is redrawn otherwise).
    shift_px : (float, float)
        Length of the field's move between consecutive sessions (random direction).
    max_offset_px : float
        The field stays within this distance of its first position (the lab re-centres it).
    rotation_step_deg, max_rotation_deg : float
        Largest rotation between consecutive sessions, and from the first session.
    z_step_walk_um, max_z_offset_um : float
        Largest depth change of the stack between consecutive sessions, and from the first session.
    deformation_px : float
        Amplitude of the smooth local deformation.
    brightness_change : float
        Session brightness is uniform in ``1 +- brightness_change`` (1 in the first session).
    shaft_photons : (float, float)
        Expected photons at the centre of a dendrite shaft in one layer (per series, log-uniform).
    background_fraction : (float, float)
        Autofluorescence relative to the shaft (per series).
    read_noise_photons : float
        Gaussian detector noise, in photons.
    shaft_level : (float, float)
        Grey value (0-255) of the expected shaft centre; noise and bright heads saturate above 255.
    black_level : (float, float)
        Grey value of no light.
    n_haze : (int, int)
        Out-of-focus dendrites above or below the stack (per series).
    haze_distance_um : (float, float)
        Their distance from the stack's depth range in the first session.
    haze_amplitude : (float, float)
        Their brightness, relative to the shaft, when at the edge of the range.
    elimination_prob, formation_rate : (float, float)
        Turnover per session (drawn per series, see :class:`~.params.SimulationParams`).
    size_walk_sigma : float
    min_survival : float or None
        When set, every session of an accepted series keeps at least this share of the spines of the first
        session that are still in view (a series is redrawn otherwise).
    minutes_between : (float, float) or None
        Time between sessions, in minutes, all on one day; else ``days_between``.
    days_between : (int, int)
        Whole days between sessions (inclusive range), when ``minutes_between`` is None.
    """

    image_px: int = 1024
    render_factor: int = 2
    pixel_size_um: tuple[float, float] = (0.02, 0.05)
    n_layers: int = 7
    z_step_um: float = 1.0
    psf_sigma_um: tuple[float, float] = (0.15, 0.2)
    psf_sigma_z_um: float = 0.7
    n_dendrites: tuple[int, int] = (1, 3)
    dendrite_tilt_deg: float = 15.0
    dendrite_radius_um: tuple[float, float] = (0.4, 0.6)
    dendrite_wiggle_um: float = 1.5
    dendrite_depth_wiggle_um: float = 0.6
    world_margin_um: float = 12.0
    target_spines: tuple[float, float] = (20.0, 32.0)
    density_per_um: tuple[float, float] = (0.3, 1.6)
    spines_in_view: tuple[int, int] = (14, 40)
    shift_px: tuple[float, float] = (25.0, 110.0)
    max_offset_px: float = 180.0
    rotation_step_deg: float = 1.2
    max_rotation_deg: float = 3.0
    z_step_walk_um: float = 0.8
    max_z_offset_um: float = 1.5
    deformation_px: float = 3.0
    brightness_change: float = 0.3
    shaft_photons: tuple[float, float] = (12.0, 45.0)
    background_fraction: tuple[float, float] = (0.05, 0.12)
    read_noise_photons: float = 0.4
    shaft_level: tuple[float, float] = (140.0, 190.0)
    black_level: tuple[float, float] = (2.0, 10.0)
    n_haze: tuple[int, int] = (1, 3)
    haze_distance_um: tuple[float, float] = (0.3, 3.0)
    haze_amplitude: tuple[float, float] = (0.25, 0.6)
    elimination_prob: tuple[float, float] = (0.002, 0.004)
    formation_rate: tuple[float, float] = (0.002, 0.004)
    size_walk_sigma: float = 0.03
    min_survival: float | None = 0.95
    minutes_between: tuple[float, float] | None = (20.0, 100.0)
    days_between: tuple[int, int] = (2, 4)


#: ``mip-timelapse``: sessions minutes to hours apart on one day, true survival 0.95-1.0 (about 0.98).
#: ``mip-days``: sessions 2-4 days apart with known turnover (elimination and formation 8-12% per session).
PROFILES: dict[str, MipProfile] = {
    "mip-timelapse": MipProfile(),
    "mip-days": MipProfile(
        elimination_prob=(0.08, 0.12),
        formation_rate=(0.08, 0.12),
        size_walk_sigma=0.1,
        min_survival=None,
        minutes_between=None,
    ),
}


@dataclass(frozen=True)
class MipSeries:
    """What is drawn once per series: the microscope, the tissue and the light.

    Attributes
    ----------
    profile : MipProfile
    pixel_um : float
        True pixel size of the written image.
    out : SimulationParams
        Truth frame: ``image_px`` pixels of ``pixel_um``.
    coarse : SimulationParams
        Render frame: ``image_px / render_factor`` pixels of ``render_factor * pixel_um``.
    dendrites : list of Dendrite
        The in-focus dendrites.
    haze_lines : list of ndarray
        Centre line (m, 3) of each out-of-focus dendrite, world um, z = its depth.
    haze_amplitude : ndarray
        Brightness of each out-of-focus dendrite, relative to the shaft, at the edge of the stack's range.
    photons_per_unit : float
        Expected photons per unit of PSF-blurred occupancy.
    shaft_photons : float
        Expected photons at the centre of a dendrite shaft in one layer.
    gain, black : float
        Grey values per photon, and of no light.
    start : datetime
        Acquisition time of the first session.
    """

    profile: MipProfile
    pixel_um: float
    out: SimulationParams  # truth frame: image_px, pixel_um
    coarse: SimulationParams  # render frame: image_px / render_factor, render_factor * pixel_um
    dendrites: list[Dendrite]
    haze_lines: list[np.ndarray]  # (m, 3) world um each, z = its depth
    haze_amplitude: np.ndarray
    photons_per_unit: float
    shaft_photons: float
    gain: float
    black: float
    start: datetime


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """The random generator of one stream of a series: ``seed`` spawned by ``key``.

    Parameters
    ----------
    seed : int
    *key : int
        Stream (attempt, purpose, session, ...); streams of different keys are independent.

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _loguniform(rng: np.random.Generator, low_high: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(low_high[0]), np.log(low_high[1]))))


def _along_y(
    rng: np.random.Generator, prof: MipProfile, field_um: float, depth_um: float, step_um: float, density: float, n: int
) -> list[Dendrite]:
    """``n`` dendrites crossing the field along y, one per vertical strip, in the middle of the stack's depth."""
    m = prof.world_margin_um
    common = rng.uniform(-1, 1) * max(prof.dendrite_tilt_deg - 4.0, 0.0)
    out = []
    for k in range(n):
        tilt = np.deg2rad(np.clip(common + rng.uniform(-4.0, 4.0), -prof.dendrite_tilt_deg, prof.dendrite_tilt_deg))
        u, v = np.array([np.cos(tilt), np.sin(tilt)]), np.array([-np.sin(tilt), np.cos(tilt)])
        p0 = np.array([field_um / 2, field_um * (k + rng.uniform(0.3, 0.7)) / n])
        half = (field_um / 2 + m) / np.cos(tilt) + prof.dendrite_wiggle_um
        s = np.arange(-half, half, step_um)
        amp = rng.dirichlet(np.ones(3)) * prof.dendrite_wiggle_um
        lam, phase = rng.uniform(20, 60, 3), rng.uniform(0, 2 * np.pi, 3)
        lateral = (amp * np.sin(2 * np.pi * s[:, None] / lam + phase)).sum(1)
        z = depth_um * rng.uniform(0.4, 0.6) + prof.dendrite_depth_wiggle_um * np.sin(
            2 * np.pi * s / rng.uniform(40, 100) + rng.uniform(0, 2 * np.pi)
        )
        yx = p0 + s[:, None] * u + lateral[:, None] * v
        centre = np.column_stack([z, yx])
        keep = np.all((yx > -m) & (yx < field_um + m), axis=1)
        tangent = np.gradient(centre, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        radius = rng.uniform(*prof.dendrite_radius_um)
        out.append(Dendrite(centre[keep], tangent[keep], radius, density * rng.uniform(0.85, 1.15)))
    return out


def _haze_lines(rng: np.random.Generator, prof: MipProfile, field_um: float, depth_um: float) -> list[np.ndarray]:
    """Centre lines (world um) of out-of-focus dendrites above (z < 0) or below the stack."""
    lines = []
    for _ in range(rng.integers(prof.n_haze[0], prof.n_haze[1] + 1)):
        angle = np.deg2rad(rng.uniform(-50, 50))
        u = np.array([np.cos(angle), np.sin(angle)])
        p0 = field_um * rng.uniform(0.05, 0.95, 2)
        s = np.arange(-1.5 * field_um, 1.5 * field_um, 0.25)
        bend = rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * s / rng.uniform(20, 50))
        yx = p0 + s[:, None] * u + bend[:, None] * np.array([-u[1], u[0]])
        distance = rng.uniform(*prof.haze_distance_um)
        z = -distance if rng.random() < 0.5 else depth_um + distance
        lines.append(np.column_stack([np.full(len(s), z), yx]))
    return lines


def _shaft_peak(radius_um: float, sigma_xy_um: float, sigma_z_um: float) -> float:
    """Peak of a tube's occupancy (filled share of a voxel) after the PSF: the disc integral of the Gaussian."""
    step = min(radius_um, sigma_xy_um, sigma_z_um) / 40
    z = np.arange(-radius_um, radius_um + step, step)
    zz, xx = np.meshgrid(z, z, indexing="ij")
    g = np.exp(-(zz**2) / (2 * sigma_z_um**2) - xx**2 / (2 * sigma_xy_um**2))
    return float((g * (zz**2 + xx**2 <= radius_um**2)).sum() * step**2 / (2 * np.pi * sigma_xy_um * sigma_z_um))


def draw_series(prof: MipProfile, seed: int, attempt: int, start: datetime) -> MipSeries:
    """Draw one series (one field of one animal) from a profile.

    Parameters
    ----------
    prof : MipProfile
    seed : int
    attempt : int
        Draw number of the same seed (a series that does not satisfy the profile is drawn again).
    start : datetime
        Acquisition time of the first session.

    Returns
    -------
    MipSeries
    """
    rng = seeded_rng(seed, attempt, 0)
    pixel = _loguniform(rng, prof.pixel_size_um)
    field_um = prof.image_px * pixel
    depth_um = (prof.n_layers - 1) * prof.z_step_um
    sigma_um = rng.uniform(*prof.psf_sigma_um)
    coarse_px = prof.image_px // prof.render_factor
    coarse_um = pixel * prof.render_factor
    target = rng.uniform(*prof.target_spines)
    counts = np.arange(prof.n_dendrites[0], prof.n_dendrites[1] + 1)
    plausible = counts[
        (target / (counts * field_um) >= prof.density_per_um[0])
        & (target / (counts * field_um) <= prof.density_per_um[1])
    ]
    n = (
        int(rng.choice(plausible))
        if len(plausible)
        else int(counts[np.argmin(np.abs(target / (counts * field_um) - 1.0))])
    )
    shaft_photons = _loguniform(rng, prof.shaft_photons)
    coarse = SimulationParams(
        shape=(prof.n_layers, coarse_px, coarse_px),
        voxel_size_um=(prof.z_step_um, coarse_um, coarse_um),
        world_margin_um=prof.world_margin_um,
        psf_sigma_px=sigma_um / coarse_um,
        psf_sigma_layers=prof.psf_sigma_z_um / prof.z_step_um,
        background_photons=shaft_photons * rng.uniform(*prof.background_fraction),
        layer_jitter_px=0.0,
        elimination_prob=rng.uniform(*prof.elimination_prob),
        formation_rate=rng.uniform(*prof.formation_rate),
        size_walk_sigma=prof.size_walk_sigma,
    )
    out = replace(
        coarse,
        shape=(prof.n_layers, prof.image_px, prof.image_px),
        voxel_size_um=(prof.z_step_um, pixel, pixel),
        psf_sigma_px=sigma_um / pixel,
        max_drift_px=0.0,
        max_drift_layers=0.0,
        max_rotation_deg=0.0,
        deformation_px=prof.deformation_px,
        max_brightness_change=0.0,
    )
    dendrites = _along_y(rng, prof, field_um, depth_um, coarse_um, target / (n * field_um), n)
    haze = _haze_lines(rng, prof, field_um, depth_um)
    radius = float(np.mean([d.radius_um for d in dendrites]))
    peak = _shaft_peak(radius, sigma_um, prof.psf_sigma_z_um)
    return MipSeries(
        prof,
        pixel,
        out,
        coarse,
        dendrites,
        haze,
        rng.uniform(*prof.haze_amplitude, len(haze)),
        shaft_photons / peak,
        shaft_photons,
        rng.uniform(*prof.shaft_level) / shaft_photons,
        rng.uniform(*prof.black_level),
        start,
    )
