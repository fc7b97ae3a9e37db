"""A simulated stand-in for a lab's single-plane maximum-intensity-projection (MIP) time-lapse.

Reproduces the facts of a real time-lapse that cannot be shared
(``docs/real-timelapse-notes.md``): one 1024 x 1024 uint8 plane per session,
the MIP of a short z-stack, with no pixel size anywhere in the file (the TIFF
resolution tag says 72 dpi, as a screen-grab tool writes); fine pixels
(0.02-0.05 um/px, one size per series); sparse fields of 1-3 long, thin
dendrites running along y (within about 15 degrees) with 14-40 spines in view;
between consecutive sessions the field moves by 25-110 px in a random
direction, turns by under 1.5 degrees and deforms slightly; the MIP covers a
slightly different depth range each session (spines between planes dim, heads
at the edge of the range leave it), the brightness changes by up to 30% and
out-of-focus dendrites come and go as blurred haze; realistic photon noise and
saturated brightest pixels.

The world (dendrites, spines, turnover) and the ground truth are those of
:mod:`.chronic` (:class:`~.params.SimulationParams`, :func:`~.chronic.project_session`,
:mod:`.truth` tables, :mod:`.render` point clouds), written with the same side
files as :func:`~.files.write_session` so :func:`~.files.read_truth` and
``bench/dynamics.py`` read them. What :mod:`.chronic` cannot express lives
here: dendrites along y, a bounded random walk of the field (25-110 px steps),
the haze of out-of-focus dendrites, the MIP of noisy layers at 1024 px and the
conversion to uint8.

Rendering 1024 px at 0.02 um/px with the 3D renderer would be slow, so a
session is rendered at twice the pixel size on 512 px (expected photons per
layer), brought to 1024 px by linear interpolation, and only then given photon
noise per layer and projected; the truth is computed in the 1024 px frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import tifffile
from scipy import ndimage

from .chronic import SimulatedSession, grow_separated, project_session, turnover
from .detector_noise import perturb_boxes
from .files import atomic_write
from .morphology import Dendrite, Spines, initial_spine_count
from .params import SimulationParams
from .render import background, dendrite_points, spine_points, splat
from .transform import SessionTransform, draw_transform
from .truth import BOX_MARGIN_PX, boxes_table, in_view, spines_table

FIRST_DAY = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
#: Sessions simulated (truth only) when a series is checked against its profile, so that session ``k`` of a
#: series does not depend on how many sessions are written (up to this many).
CHECK_HORIZON = 12
#: A spine box is its extent plus this many PSF sigmas on each side (as :mod:`.raw_layer` labels spines).
BOX_MARGIN_PSF = 1.5


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
class MipSession:
    """One simulated MIP session with its ground truth.

    Attributes
    ----------
    index : int
    name : str
        Session key, ``s00``, ``s01``, ...
    acquired_at : datetime
    session : SimulatedSession
        The projected session (:func:`~.chronic.project_session`): ``volume`` (1, H, W) uint8 (None when
        not rendered), one truth box per spine on layer 0, the spine statuses, and the transform (world
        um -> image pixels, z in layers of the stack the MIP was made from).
    pixel_size_um, z_step_um : float
    shift_px : (float, float)
        Move (dy, dx) of the field since the previous session (0 in the first).
    visibility : polars.DataFrame
        ``spine_id, visibility`` of the spines in view: 0-1, the expected contrast of the head in the MIP
        (head size against the PSF, distance to the nearest plane, brightness, light level).
    haze : list of float
        Amplitude (relative to a shaft) of each out-of-focus dendrite in this session (0: gone).
    """

    index: int
    name: str
    acquired_at: datetime
    session: SimulatedSession
    pixel_size_um: float
    z_step_um: float
    shift_px: tuple[float, float]
    visibility: pl.DataFrame
    haze: list[float]


@dataclass(frozen=True)
class _Series:
    """What is drawn once per series: the microscope, the tissue and the light."""

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


def _rng(seed: int, *key: int) -> np.random.Generator:
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


def _draw_series(prof: MipProfile, seed: int, attempt: int, start: datetime) -> _Series:
    rng = _rng(seed, attempt, 0)
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
    return _Series(
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


def _reflect(value: float, step: float, bound: float) -> float:
    """``value + step``, or ``value - step`` where that would leave ``[-bound, bound]``."""
    return value + step if abs(value + step) <= bound else value - step


def _walk(prof: MipProfile, rng: np.random.Generator, previous: np.ndarray) -> np.ndarray:
    """The next (dy, dx) position of the field: a step of ``shift_px`` length in a random direction that
    keeps it within ``max_offset_px`` of the start (straight back towards the start if none is drawn)."""
    length = rng.uniform(*prof.shift_px)
    for _ in range(64):
        angle = rng.uniform(0, 2 * np.pi)
        step = length * np.array([np.sin(angle), np.cos(angle)])
        if np.hypot(*(previous + step)) <= prof.max_offset_px:
            return previous + step
    return previous - length * previous / max(float(np.hypot(*previous)), 1e-9)


def _times(series: _Series, seed: int, n: int) -> list[datetime]:
    """Acquisition times of the first ``n`` sessions (session ``k`` does not depend on ``n``)."""
    prof, rng, m = series.profile, _rng(seed, 9), max(n, CHECK_HORIZON)
    if prof.minutes_between is None:
        days = np.concatenate([[0], np.cumsum(rng.integers(prof.days_between[0], prof.days_between[1] + 1, m - 1))])
        minutes = rng.uniform(-45, 45, m)
        return [series.start + timedelta(days=int(days[i]), minutes=float(minutes[i])) for i in range(n)]
    scale = min(1.0, 15 * 60 / (prof.minutes_between[1] * (m - 1)))  # all on the day of the first session
    minutes = scale * np.concatenate([[0.0], np.cumsum(rng.uniform(*prof.minutes_between, m - 1))])
    return [series.start + timedelta(minutes=float(minutes[i])) for i in range(n)]


@dataclass
class _State:
    alive: Spines
    next_id: int
    offset: np.ndarray  # (dy, dx) image px
    rotation: float
    z_offset_um: float


def _session_truth(series: _Series, seed: int, attempt: int, i: int, state: _State):
    """Turnover, motion and truth tables of session ``i`` (advances ``state``)."""
    prof, out = series.profile, series.out
    motion = _rng(seed, attempt, 1, i)
    eliminated, new_ids = state.alive.take(np.zeros(0, int)), np.zeros(0, np.int64)
    if i == 0:
        tr = SessionTransform()
    else:
        state.alive, eliminated, new_ids = turnover(
            series.coarse, state.alive, series.dendrites, state.next_id, _rng(seed, attempt, 3, i)
        )
        state.next_id += len(new_ids)
        state.offset = _walk(prof, motion, state.offset)
        state.rotation = _reflect(state.rotation, motion.uniform(-1, 1) * prof.rotation_step_deg, prof.max_rotation_deg)
        state.z_offset_um = _reflect(
            state.z_offset_um, motion.uniform(-1, 1) * prof.z_step_walk_um, prof.max_z_offset_um
        )
        brightness = 1 + motion.uniform(-1, 1) * prof.brightness_change
        tr = replace(
            draw_transform(out, motion, i),
            drift_px=(state.z_offset_um / prof.z_step_um, float(state.offset[0]), float(state.offset[1])),
            rotation_deg=float(state.rotation),
            brightness=float(brightness),
        )
    alive = state.alive
    head_px = tr.to_pixels(alive.head_centre_um, out)
    visible = in_view(head_px, out.shape)
    status = np.where(visible, np.where(np.isin(alive.spine_id, new_ids), "new", "present"), "out_of_view")
    both = alive.concat(eliminated)
    spines = spines_table(
        out,
        both.spine_id,
        np.concatenate([status, np.full(len(eliminated), "eliminated")]),
        both.type_code,
        tr.to_pixels(both.head_centre_um, out),
        both.head_volume_um3,
        both.head_radius_um,
        both.neck_length_um,
        both.dendrite_id,
    )
    return tr, visible, head_px, spines


def _in_view_counts_ok(prof: MipProfile, statuses: list[pl.DataFrame]) -> bool:
    counts = [int(s["status"].is_in(["present", "new"]).sum()) for s in statuses]
    if not all(prof.spines_in_view[0] <= c <= prof.spines_in_view[1] for c in counts):
        return False
    if prof.min_survival is None:
        return True
    first = set(statuses[0].filter(pl.col("status").is_in(["present", "new"]))["spine_id"].to_list())
    for s in statuses[1:]:
        mine = s.filter(pl.col("spine_id").is_in(list(first)))
        reference = len(first) - int((mine["status"] == "out_of_view").sum())
        if reference and int((mine["status"] == "present").sum()) < prof.min_survival * reference:
            return False
    return True


def _accepted_series(prof: MipProfile, seed: int, start: datetime, horizon: int) -> tuple[_Series, int]:
    """The first draw (attempt) of the series whose sessions (truth only) satisfy the profile."""
    for attempt in range(64):
        series = _draw_series(prof, seed, attempt, start)
        state = _initial_state(series, seed, attempt)
        statuses = [_session_truth(series, seed, attempt, i, state)[3] for i in range(horizon)]
        if _in_view_counts_ok(prof, statuses):
            return series, attempt
    raise RuntimeError(f"no series of seed {seed} satisfies the profile in 64 draws; widen its ranges")


def _initial_state(series: _Series, seed: int, attempt: int) -> _State:
    world = _rng(seed, attempt, 4)
    n = initial_spine_count(series.dendrites, series.coarse, world)
    alive = grow_separated(series.coarse, series.dendrites, n, 1, world)
    return _State(alive, 1 + len(alive), np.zeros(2), 0.0, 0.0)


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


def _haze_photons(series: _Series, tr: SessionTransform) -> tuple[np.ndarray, list[float]]:
    """Haze (photons, render grid) of the out-of-focus dendrites in this session, and their amplitudes."""
    coarse, prof = series.coarse, series.profile
    ny, nx = coarse.shape[1:]
    total = np.zeros((ny, nx), np.float32)
    amplitudes = []
    for line, a0 in zip(series.haze_lines, series.haze_amplitude):
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


def _render(series: _Series, alive: Spines, tr: SessionTransform, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """The uint8 MIP (image_px, image_px) of one session, and the haze amplitudes."""
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


def _visibility(series: _Series, alive: Spines, visible: np.ndarray, head_px: np.ndarray, brightness: float):
    """Expected contrast (0-1) of each visible spine head in the MIP."""
    prof, coarse = series.profile, series.coarse
    sigma_xy = coarse.psf_sigma_px * coarse.voxel_size_um[1]
    v_psf = (2 * np.pi) ** 1.5 * sigma_xy**2 * prof.psf_sigma_z_um
    size = 1 - np.exp(-alive.head_volume_um3[visible] / v_psf)
    off_plane_um = np.abs(head_px[visible, 0] - np.round(head_px[visible, 0])) * prof.z_step_um
    depth = np.exp(-(off_plane_um**2) / (2 * prof.psf_sigma_z_um**2))
    light = min(1.0, float(np.sqrt(series.shaft_photons / 30.0)))
    value = np.clip(size * depth * brightness * light, 0, 1)
    return pl.DataFrame({"spine_id": alive.spine_id[visible], "visibility": value})


def simulate_mip_series(
    *,
    profile: str | MipProfile = "mip-timelapse",
    sessions: int = 8,
    seed: int = 0,
    render: bool = True,
    skip_render: tuple[int, ...] = (),
    start: datetime = FIRST_DAY,
) -> list[MipSession]:
    """Simulate the sessions of one series (one field of one animal) of a MIP time-lapse.

    Parameters
    ----------
    profile : str or MipProfile
        ``"mip-timelapse"``, ``"mip-days"`` (see :data:`PROFILES`) or a profile.
    sessions : int
    seed : int
        Everything is a deterministic function of ``seed`` (and the profile); session ``k`` does not depend
        on how many sessions follow it (up to :data:`CHECK_HORIZON` sessions).
    render : bool
        False: truth only (``session.volume`` is None), much faster.
    skip_render : tuple of int
        Sessions whose image is not rendered; their truth and later sessions are unchanged.
    start : datetime
        Acquisition time of the first session.

    Returns
    -------
    list of MipSession

    Notes
    -----
    A series is drawn, its first ``max(sessions, CHECK_HORIZON)`` sessions simulated without images, and
    drawn again (a new attempt of the same seed) until every session has ``profile.spines_in_view``
    spines in view and, where ``profile.min_survival`` is set, keeps that share of the first session's
    spines that are still in view.
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    series, attempt = _accepted_series(prof, seed, start, max(sessions, CHECK_HORIZON))
    times = _times(series, seed, sessions)
    state = _initial_state(series, seed, attempt)
    out, previous = [], np.zeros(2)
    for i in range(sessions):
        tr, visible, head_px, spines = _session_truth(series, seed, attempt, i, state)
        alive = state.alive
        d = alive.direction[visible, 0]
        r, a = alive.head_radius_um[visible], (alive.head_radius_um * alive.head_elongation)[visible]
        s_px = tr.to_pixels(spine_points(alive, series.coarse.voxel_size_um)[0], series.out)
        boxes = boxes_table(
            series.out,
            alive.spine_id[visible],
            alive.type_code[visible],
            s_px[visible],
            head_px[visible],
            np.sqrt((a * d) ** 2 + r**2 * (1 - d**2)),
        )
        image, haze = None, [0.0] * len(series.haze_lines)
        if render and i not in skip_render:
            image, haze = _render(series, alive, tr, _rng(seed, attempt, 2, i))
        sim = project_session(
            SimulatedSession(
                i,
                None if image is None else image[None],
                boxes,
                spines,
                np.zeros((prof.n_layers, 2)),
                tr.drift_px,
                tr.rotation_deg,
                tr.brightness,
                series.out.voxel_size_um,
                tr,
            )
        )
        margin = max(BOX_MARGIN_PSF * series.out.psf_sigma_px - BOX_MARGIN_PX, 0.0)
        limit = prof.image_px - 1
        sim = replace(
            sim,
            boxes=sim.boxes.with_columns(
                (pl.col(c) + sign * margin).clip(0, limit)
                for c, sign in (("xmin", -1), ("ymin", -1), ("xmax", 1), ("ymax", 1))
            ),
        )
        offset = np.array(tr.drift_px[1:])
        out.append(
            MipSession(
                i,
                f"s{i:02d}",
                times[i],
                sim,
                series.pixel_um,
                prof.z_step_um,
                (float(offset[0] - previous[0]), float(offset[1] - previous[1])),
                _visibility(series, alive, visible, head_px, tr.brightness),
                haze,
            )
        )
        previous = offset
    return out


def mip_detections(
    boxes: pl.DataFrame,
    visibility: pl.DataFrame,
    stack: str,
    image_size: tuple[int, int],
    *,
    seed: int = 0,
    duplicate_fraction: float = 0.2,
    duplicate_shift: tuple[float, float] = (0.1, 0.3),
    half_visibility: float = 0.2,
    spurious_fraction: float = 0.05,
    jitter_fraction: float = 0.04,
) -> pl.DataFrame:
    """Detections of a real detector on a MIP session, simulated from its truth boxes (reference CSV layout).

    Parameters
    ----------
    boxes : polars.DataFrame
        Truth boxes of the session (``spine_id, layer, xmin, ymin, xmax, ymax, type``).
    visibility : polars.DataFrame
        ``spine_id, visibility`` (see :class:`MipSession`).
    stack : str
        Session name; the file names are ``<stack>_layerNN.png``.
    image_size : (int, int)
        Height and width.
    seed : int
    duplicate_fraction : float
        Share of the found spines that get a second, stacked box: shifted by ``duplicate_shift`` (a share of
        the box size) in a random direction and scored 0.03-0.15 lower.
    half_visibility : float
        Visibility at which a spine is found with probability 1/2 (dim spines are missed).
    spurious_fraction : float
        False boxes, as a share of the truth boxes, scored 0.2-0.5.
    jitter_fraction : float
        Standard deviation of each edge's error, as a share of the median box side.

    Returns
    -------
    polars.DataFrame
        ``filename, width, height, class, score, xmin, ymin, xmax, ymax``.
    """
    rng = np.random.default_rng(seed)
    table = boxes.join(visibility, on="spine_id", how="left").with_columns(
        pl.col("visibility").fill_null(0.0), stack=pl.lit(stack)
    )
    side = (
        float(np.median(np.sqrt((table["xmax"] - table["xmin"]) * (table["ymax"] - table["ymin"]))))
        if len(table)
        else 1.0
    )
    noisy = perturb_boxes(
        table.rename({"spine_id": "id"}),
        jitter_px=jitter_fraction * side,
        drop_fraction=0.0,
        spurious_fraction=spurious_fraction,
        seed=seed,
    )
    v = noisy["visibility"].fill_null(0.0).to_numpy()
    spurious = noisy["spurious"].to_numpy()
    found = rng.random(len(noisy)) < 1 / (1 + np.exp(-(v - half_visibility) / 0.05))
    score = np.clip(0.3 + 0.65 * v + rng.normal(0, 0.05, len(noisy)), 0.21, 0.99)
    score = np.where(spurious, rng.uniform(0.2, 0.5, len(noisy)), score)
    kept = noisy.with_columns(score=pl.Series(score)).filter(pl.Series(found | spurious))
    twin = rng.random(len(kept)) < duplicate_fraction
    twin &= ~kept["spurious"].to_numpy()
    dup = kept.filter(pl.Series(twin))
    angle = rng.uniform(0, 2 * np.pi, len(dup))
    share = rng.uniform(*duplicate_shift, len(dup))
    dx = share * (dup["xmax"] - dup["xmin"]).to_numpy() * np.cos(angle)
    dy = share * (dup["ymax"] - dup["ymin"]).to_numpy() * np.sin(angle)
    dup = dup.with_columns(
        xmin=pl.col("xmin") + dx,
        xmax=pl.col("xmax") + dx,
        ymin=pl.col("ymin") + dy,
        ymax=pl.col("ymax") + dy,
        score=pl.Series(np.clip(dup["score"].to_numpy() - rng.uniform(0.03, 0.15, len(dup)), 0.2, 0.99)),
    )
    height, width = image_size
    both = pl.concat([kept, dup], how="vertical_relaxed").sort("layer", "xmin")
    return both.select(
        filename=pl.format("{}_layer{}.png", pl.lit(stack), pl.col("layer").cast(pl.String).str.zfill(2)),
        width=pl.lit(float(width)),
        height=pl.lit(float(height)),
        **{"class": pl.col("type").fill_null("spine")},
        score=pl.col("score"),
        xmin=pl.col("xmin").clip(0, width),
        ymin=pl.col("ymin").clip(0, height),
        xmax=pl.col("xmax").clip(0, width),
        ymax=pl.col("ymax").clip(0, height),
    ).filter((pl.col("xmax") - pl.col("xmin") >= 1) & (pl.col("ymax") - pl.col("ymin") >= 1))


def write_mip_session(
    mip: MipSession, out_dir, animal: str, *, detections: bool = False, sidecar: bool = True
) -> dict[str, Path]:
    """Write one session as ``out_dir/<animal>/<name>.{tif,boxes.csv,spines.csv,transform.json,...}``.

    The TIFF holds one uint8 plane with no pixel size: the resolution tag says 72 dpi (inch), there is no
    ImageJ or OME metadata and the sidecar ``<name>.json`` (``sidecar=True``) states only the acquisition
    time. The truth files are those of :func:`~.files.write_session`; ``<name>.transform.json`` also
    holds the true pixel size, the move since the previous session, the haze and each spine's visibility.
    Every file is written under a temporary name and renamed, the ``.tif`` and then the ``.done`` marker
    last.

    Parameters
    ----------
    mip : MipSession
        A rendered session.
    out_dir : path
    animal : str
    detections : bool
        Also write ``<name>.detections.csv`` (:func:`mip_detections`).
    sidecar : bool

    Returns
    -------
    dict
        Written paths by kind (``tif``, ``boxes``, ``spines``, ``transform``, ``sidecar``, ``detections``,
        ``done``).
    """
    sim, name = mip.session, mip.name
    if sim.volume is None:
        raise ValueError(f"session {mip.index} was simulated without its image; nothing to write")
    image = sim.volume[0]
    folder = Path(out_dir) / animal
    folder.mkdir(parents=True, exist_ok=True)
    transform = {
        "drift_px": list(sim.drift_px),
        "rotation_deg": sim.rotation_deg,
        "brightness": sim.brightness,
        "layer_shifts": [[0.0, 0.0]],
        "shift_px": list(mip.shift_px),
        "pixel_size_um": mip.pixel_size_um,
        "z_step_um": mip.z_step_um,
        "haze": mip.haze,
        "acquired_at": mip.acquired_at.isoformat(),
        "visibility": {str(k): round(v, 4) for k, v in mip.visibility.iter_rows()},
    }
    paths = {
        "transform": atomic_write(folder / f"{name}.transform.json", lambda p: p.write_text(json.dumps(transform))),
        "boxes": atomic_write(folder / f"{name}.boxes.csv", lambda p: sim.boxes.write_csv(p)),
        "spines": atomic_write(folder / f"{name}.spines.csv", lambda p: sim.spines.write_csv(p)),
    }
    if sidecar:
        text = json.dumps({"acquired_at": mip.acquired_at.isoformat(), "simulated": True}, indent=1)
        paths["sidecar"] = atomic_write(folder / f"{name}.json", lambda p: p.write_text(text))
    if detections:
        table = mip_detections(sim.boxes, mip.visibility, name, image.shape, seed=mip.index)
        paths["detections"] = atomic_write(folder / f"{name}.detections.csv", lambda p: table.write_csv(p))
    paths["tif"] = atomic_write(
        folder / f"{name}.tif",
        lambda p: tifffile.imwrite(
            p, image, photometric="minisblack", resolution=(72.0, 72.0), resolutionunit="INCH", metadata=None
        ),
    )
    paths["done"] = atomic_write(folder / f"{name}.done", lambda p: p.write_text(""))
    return paths


def simulate_mip_timelapse(
    out_dir,
    *,
    series: int = 3,
    sessions: int = 8,
    seed: int = 0,
    profile: str = "mip-timelapse",
    detections: bool = False,
    sidecar: bool = True,
    skip_existing: bool = True,
) -> list[Path]:
    """Simulate a lab's MIP time-lapse into a landing folder: ``<out>/series01/s00.tif``, ...

    Parameters
    ----------
    out_dir : path
    series : int
        Fields (animal folders ``series01``, ``series02``, ...); series ``k`` uses its own seed derived from
        ``(seed, k)``, so adding series leaves the earlier ones unchanged.
    sessions : int
        Sessions per series, ``s00``, ``s01``, ...
    seed : int
    profile : str
        ``"mip-timelapse"`` (minutes to hours apart on one day, survival close to 1) or ``"mip-days"``
        (2-4 days apart, 8-12% turnover per session).
    detections : bool
        Also write imported detections with a real detector's defects (:func:`mip_detections`).
    sidecar : bool
        Write ``<session>.json`` with the acquisition time (and no pixel size).
    skip_existing : bool
        Sessions whose ``.tif`` exists are neither rendered nor rewritten.

    Returns
    -------
    list of Path
        The ``.tif`` of every session, written or already there.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
    written = []
    for k in range(series):
        animal = f"series{k + 1:02d}"
        names = [f"s{i:02d}" for i in range(sessions)]
        tifs = [Path(out_dir) / animal / f"{n}.tif" for n in names]
        existing = tuple(i for i, t in enumerate(tifs) if skip_existing and t.exists())
        if len(existing) < sessions:
            series_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
            start = FIRST_DAY + timedelta(days=k if PROFILES[profile].minutes_between else 10 * k, minutes=13 * k)
            for mip in simulate_mip_series(
                profile=profile, sessions=sessions, seed=series_seed, skip_render=existing, start=start
            ):
                if mip.index not in existing:
                    write_mip_session(mip, out_dir, animal, detections=detections, sidecar=sidecar)
        written.extend(tifs)
    return written
