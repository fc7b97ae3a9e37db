"""The sessions of a simulated MIP series without images: motion, turnover, truth tables and acceptance.

Between consecutive sessions the field makes a bounded random walk (25-110 px
steps), turns and changes depth a little, and the spines turn over
(:func:`~.chronic.turnover`); :func:`session_truth` gives the transform and the
truth tables of each session. :func:`accepted_series` draws a series again until
its sessions satisfy the profile; :func:`session_times` gives the acquisition
times.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from .chronic import grow_separated, observed_statuses, turnover
from .mip_profile import MipProfile, MipSeries, draw_series, seeded_rng
from .morphology import Spines, initial_spine_count
from .transform import SessionTransform, draw_transform
from .truth import in_view, spines_table

#: Sessions simulated (truth only) when a series is checked against its profile, so that session ``k`` of a
#: series does not depend on how many sessions are written (up to this many).
CHECK_HORIZON = 12


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


def session_times(series: MipSeries, seed: int, n: int) -> list[datetime]:
    """Acquisition times of the first ``n`` sessions (session ``k`` does not depend on ``n``).

    Parameters
    ----------
    series : MipSeries
    seed : int
        Seed of the series (the times do not depend on the attempt).
    n : int

    Returns
    -------
    list of datetime
        All on the day of the first session (``minutes_between``) or whole days apart (``days_between``).
    """
    prof, rng, m = series.profile, seeded_rng(seed, 9), max(n, CHECK_HORIZON)
    if prof.minutes_between is None:
        days = np.concatenate([[0], np.cumsum(rng.integers(prof.days_between[0], prof.days_between[1] + 1, m - 1))])
        minutes = rng.uniform(-45, 45, m)
        return [series.start + timedelta(days=int(days[i]), minutes=float(minutes[i])) for i in range(n)]
    scale = min(1.0, 15 * 60 / (prof.minutes_between[1] * (m - 1)))  # all on the day of the first session
    minutes = scale * np.concatenate([[0.0], np.cumsum(rng.uniform(*prof.minutes_between, m - 1))])
    return [series.start + timedelta(minutes=float(minutes[i])) for i in range(n)]


@dataclass
class SeriesState:
    """The evolving state of a series between sessions (advanced by :func:`session_truth`).

    Attributes
    ----------
    alive : Spines
        The spines that exist now.
    next_id : int
        Id of the next spine to form.
    offset : ndarray
        Position (dy, dx) of the field, image pixels from its first position.
    rotation : float
        Rotation from the first session, degrees.
    z_offset_um : float
        Depth of the stack from the first session.
    unseen : Spines or None
        Spines lost where no session has seen their place since (``out_of_view`` until one does).
    previous : SessionTransform or None
        World um -> image pixels of the previous session.
    """

    alive: Spines
    next_id: int
    offset: np.ndarray  # (dy, dx) image px
    rotation: float
    z_offset_um: float
    unseen: Spines | None = None
    previous: SessionTransform | None = None


def session_truth(series: MipSeries, seed: int, attempt: int, i: int, state: SeriesState):
    """Turnover, motion and truth tables of session ``i`` (advances ``state``).

    Parameters
    ----------
    series : MipSeries
    seed, attempt : int
        As given to :func:`~.mip_profile.draw_series`.
    i : int
        Session number; sessions must be taken in order, from :func:`initial_state`.
    state : SeriesState
        Advanced to session ``i``.

    Returns
    -------
    tr : SessionTransform
        World um -> image pixels of this session.
    visible : ndarray bool
        Which spines of ``state.alive`` are in view.
    head_px : ndarray (n, 3)
        Head centres of ``state.alive`` in image pixels (z in layers).
    spines : polars.DataFrame
        The spine table of the session (statuses ``present``, ``new``, ``eliminated``, ``out_of_view``).
    """
    prof, out = series.profile, series.out
    motion = seeded_rng(seed, attempt, 1, i)
    eliminated, new_ids = state.alive.take(np.zeros(0, int)), np.zeros(0, np.int64)
    if i == 0:
        tr = SessionTransform()
    else:
        state.alive, eliminated, new_ids = turnover(
            series.coarse, state.alive, series.dendrites, state.next_id, seeded_rng(seed, attempt, 3, i)
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
    unseen = alive.take(np.zeros(0, int)) if state.unseen is None else state.unseen
    both, status, state.unseen = observed_statuses(out, tr, state.previous, alive, visible, new_ids, unseen, eliminated)
    state.previous = tr
    spines = spines_table(
        out,
        both.spine_id,
        status,
        both.type_code,
        tr.to_pixels(both.head_centre_um, out),
        both.head_volume_um3,
        both.head_radius_um,
        both.neck_length_um,
        both.dendrite_id,
    )
    return tr, visible, head_px, spines


def _in_view_counts_ok(prof: MipProfile, statuses: list[pl.DataFrame]) -> bool:
    """Whether the spine statuses of the sessions satisfy the profile's counts in view and survival."""
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


def accepted_series(prof: MipProfile, seed: int, start: datetime, horizon: int) -> tuple[MipSeries, int]:
    """The first draw (attempt) of the series whose sessions (truth only) satisfy the profile.

    Parameters
    ----------
    prof : MipProfile
    seed : int
    start : datetime
        Acquisition time of the first session.
    horizon : int
        Sessions checked against ``prof.spines_in_view`` and ``prof.min_survival``.

    Returns
    -------
    series : MipSeries
    attempt : int

    Raises
    ------
    RuntimeError
        When none of 64 draws satisfies the profile.
    """
    for attempt in range(64):
        series = draw_series(prof, seed, attempt, start)
        state = initial_state(series, seed, attempt)
        statuses = [session_truth(series, seed, attempt, i, state)[3] for i in range(horizon)]
        if _in_view_counts_ok(prof, statuses):
            return series, attempt
    raise RuntimeError(f"no series of seed {seed} satisfies the profile in 64 draws; widen its ranges")


def initial_state(series: MipSeries, seed: int, attempt: int) -> SeriesState:
    """The state of a series before its first session: the spines grown on its dendrites.

    Parameters
    ----------
    series : MipSeries
    seed, attempt : int
        As given to :func:`~.mip_profile.draw_series`.

    Returns
    -------
    SeriesState
    """
    world = seeded_rng(seed, attempt, 4)
    n = initial_spine_count(series.dendrites, series.coarse, world)
    alive = grow_separated(series.coarse, series.dendrites, n, 1, world)
    return SeriesState(alive, 1 + len(alive), np.zeros(2), 0.0, 0.0)
