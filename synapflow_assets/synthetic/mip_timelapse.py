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
beside this module: the profiles and what is drawn per series, dendrites along
y and the haze of out-of-focus dendrites included (:mod:`.mip_profile`), a
bounded random walk of the field (25-110 px steps) and the truth of each
session (:mod:`.mip_truth`), the MIP of noisy layers at 1024 px and the
conversion to uint8 (:mod:`.mip_render`), and imported detections with a real
detector's defects (:mod:`.mip_detections`). This module puts them together
and writes the files.

Rendering 1024 px at 0.02 um/px with the 3D renderer would be slow, so a
session is rendered at twice the pixel size on 512 px (expected photons per
layer), brought to 1024 px by linear interpolation, and only then given photon
noise per layer and projected; the truth is computed in the 1024 px frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import tifffile

from .chronic import SimulatedSession, project_session
from .files import atomic_write
from .mip_detections import mip_detections
from .mip_profile import PROFILES, MipProfile, seeded_rng
from .mip_render import render_mip, spine_visibility
from .mip_truth import CHECK_HORIZON, accepted_series, initial_state, session_times, session_truth
from .render import spine_points
from .truth import BOX_MARGIN_PX, boxes_table

FIRST_DAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
#: A spine box is its extent plus this many PSF sigmas on each side (as :mod:`.raw_layer` labels spines).
BOX_MARGIN_PSF = 1.5


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
        ``"mip-timelapse"``, ``"mip-days"`` (see :data:`~.mip_profile.PROFILES`) or a profile.
    sessions : int
    seed : int
        Everything is a deterministic function of ``seed`` (and the profile); session ``k`` does not depend
        on how many sessions follow it (up to :data:`~.mip_truth.CHECK_HORIZON` sessions).
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
    series, attempt = accepted_series(prof, seed, start, max(sessions, CHECK_HORIZON))
    times = session_times(series, seed, sessions)
    state = initial_state(series, seed, attempt)
    out, previous = [], np.zeros(2)
    for i in range(sessions):
        tr, visible, head_px, spines = session_truth(series, seed, attempt, i, state)
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
            image, haze = render_mip(series, alive, tr, seeded_rng(seed, attempt, 2, i))
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
                spine_visibility(series, alive, visible, head_px, tr.brightness),
                haze,
            )
        )
        previous = offset
    return out


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
        Also write ``<name>.detections.csv`` (:func:`~.mip_detections.mip_detections`).
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
        Also write imported detections with a real detector's defects (:func:`~.mip_detections.mip_detections`).
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
