"""Sessions of one animal over time: turnover, size changes, placement, rendering.

Statuses of a session, for every spine id the animal ever had up to then:
``present`` (existed before and is in view; all in-view spines of session 0
are ``present``, and so is a spine formed where the previous session's image did
not hold its place: it entered the view), ``new`` (formed for this session, in
view, its place in view in the previous session), ``eliminated``
(disappeared for this session and its place in view; listed only there) and
``out_of_view`` (its head centre is outside the image in x/y or z: a living spine,
or one lost where no image saw it, until the first session whose image holds its
place, where it is ``eliminated``; no image can tell such a loss earlier).
"""

from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

import numpy as np
import polars as pl

from .morphology import HEAD_RADIUS_LIMITS_UM, Spines, grow_spines, initial_spine_count, make_dendrites, separated
from .params import SimulationParams
from .render import dendrite_points, layer_jitter, render, spine_points
from .transform import SessionTransform, draw_transform
from .truth import boxes_table, dendrite_length_in_view, geometry_table, in_view, spines_table


@dataclass(frozen=True)
class SimulatedSession:
    """One rendered session with its ground truth.

    Attributes
    ----------
    index : int
        Session number (0-based).
    volume : ndarray uint16 (z, y, x) or None
        The image (None when rendering was skipped).
    boxes, spines : polars.DataFrame
        Ground truth, see ``truth.BOX_SCHEMA`` and ``truth.SPINE_SCHEMA``.
    layer_shifts : ndarray (z, 2)
        Per-layer (dy, dx) jitter applied to the rendered layers (pixels).
    drift_px : tuple of float
        Global drift (dz, dy, dx) of this session, layers / pixels.
    rotation_deg, brightness : float
    voxel_size_um : tuple of float
    transform : SessionTransform
        The full world -> pixel map (including the deformation).
    geometry : polars.DataFrame or None
        Ground-truth geometry of the living spines (in view or not), see
        ``truth.GEOMETRY_SCHEMA``: head centre and junction with the dendrite
        in session pixels and the head-to-dendrite distance.
    dendrite_length_um : float or None
        Length of the dendrite centre lines inside the image (x/y plane).
    """

    index: int
    volume: np.ndarray | None
    boxes: pl.DataFrame
    spines: pl.DataFrame
    layer_shifts: np.ndarray
    drift_px: tuple[float, float, float]
    rotation_deg: float
    brightness: float
    voxel_size_um: tuple[float, float, float]
    transform: SessionTransform
    geometry: pl.DataFrame | None = None
    dendrite_length_um: float | None = None


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def grow_separated(
    params: SimulationParams, dendrites, n: int, first_id: int, rng, existing: Spines | None = None
) -> Spines:
    """``n`` new spines (fewer only where the dendrites are full) whose heads keep ``params.min_head_gap_um``."""
    candidates = grow_spines(params, dendrites, 3 * n + 4, first_id, rng)
    chosen = candidates.take(np.flatnonzero(separated(candidates, existing, params.min_head_gap_um))[:n])
    return Spines(**{**chosen.__dict__, "spine_id": np.arange(first_id, first_id + len(chosen), dtype=np.int64)})


def turnover(params: SimulationParams, alive: Spines, dendrites, next_id: int, rng):
    """Eliminate, grow and resize spines before a session; returns (alive, eliminated, new_ids)."""
    gone = rng.random(len(alive)) < params.elimination_prob
    eliminated, kept = alive.take(gone), alive.take(~gone)
    radius = kept.head_radius_um * np.exp(params.size_walk_sigma * rng.standard_normal(len(kept)))
    kept = Spines(**{**kept.__dict__, "head_radius_um": np.clip(radius, *HEAD_RADIUS_LIMITS_UM)})
    new = grow_separated(params, dendrites, int(rng.poisson(params.formation_rate * len(alive))), next_id, rng, kept)
    return kept.concat(new), eliminated, new.spine_id


def observed_statuses(
    params: SimulationParams,
    tr: SessionTransform,
    previous: SessionTransform | None,
    alive: Spines,
    visible: np.ndarray,
    new_ids: np.ndarray,
    unseen: Spines,
    eliminated: Spines,
) -> tuple[Spines, np.ndarray, Spines]:
    """The spines a session lists, their statuses (see the module's description), and the lost ones it cannot
    call lost yet.

    Parameters
    ----------
    params : SimulationParams
    tr, previous : SessionTransform
        World um -> pixels of this session and of the previous one (None for the first).
    alive : Spines
        The living spines; ``visible`` says which are in view.
    new_ids : ndarray
        Ids of the spines formed for this session.
    unseen : Spines
        Spines lost before, each where no image has seen its place since.
    eliminated : Spines
        Spines lost for this session.

    Returns
    -------
    listed : Spines
        ``alive``, then the lost spines (``unseen`` then ``eliminated``).
    status : ndarray of str
        ``new`` only where the previous image held the place (else ``present``: it entered the view);
        a lost spine is ``eliminated`` where its place is in view, else ``out_of_view``.
    unseen : Spines
        The lost spines still out of view.
    """
    seen_before = previous is None or in_view(previous.to_pixels(alive.head_centre_um, params), params.shape)
    formed = np.isin(alive.spine_id, new_ids) & seen_before
    gone = unseen.concat(eliminated)
    seen = in_view(tr.to_pixels(gone.head_centre_um, params), params.shape)
    status = np.concatenate(
        [
            np.where(visible, np.where(formed, "new", "present"), "out_of_view"),
            np.where(seen, "eliminated", "out_of_view"),
        ]
    )
    return alive.concat(gone), status, gone.take(~seen)


def simulate_animal(
    params: SimulationParams = SimulationParams(), n_sessions: int = 3, seed: int = 0, skip_render: Collection[int] = ()
) -> list[SimulatedSession]:
    """Simulate ``n_sessions`` chronic sessions of one animal.

    Parameters
    ----------
    params : SimulationParams
    n_sessions : int
    seed : int
        Everything is a deterministic function of ``seed`` (and session k does
        not depend on how many sessions follow it).
    skip_render : collection of int
        Session indices whose volume is not rendered (``volume`` is None); the
        ground truth and later sessions are unchanged.

    Returns
    -------
    list of SimulatedSession
    """
    world = _rng(seed, 0)
    dendrites = make_dendrites(params, world)
    alive = grow_separated(params, dendrites, initial_spine_count(dendrites, params, world), 1, world)
    next_id = 1 + len(alive)
    d_points, d_weights = dendrite_points(dendrites, params.voxel_size_um)
    sessions = []
    unseen, previous = alive.take(np.zeros(0, int)), None
    for i in range(n_sessions):
        rng, noise = _rng(seed, 1, i), _rng(seed, 2, i)
        eliminated, new_ids = alive.take(np.zeros(0, int)), np.zeros(0, np.int64)
        if i > 0:
            alive, eliminated, new_ids = turnover(params, alive, dendrites, next_id, rng)
            next_id += len(new_ids)
        tr = draw_transform(params, rng, i)
        s_points, s_weights = spine_points(alive, params.voxel_size_um)
        s_px = tr.to_pixels(s_points, params)
        head_px = tr.to_pixels(alive.head_centre_um, params)
        visible = in_view(head_px, params.shape)
        both, status, unseen = observed_statuses(params, tr, previous, alive, visible, new_ids, unseen, eliminated)
        previous = tr
        spines = spines_table(
            params,
            both.spine_id,
            status,
            both.type_code,
            tr.to_pixels(both.head_centre_um, params),
            both.head_volume_um3,
            both.head_radius_um,
            both.neck_length_um,
            both.dendrite_id,
        )
        d = alive.direction[visible, 0]
        r, a = alive.head_radius_um[visible], (alive.head_radius_um * alive.head_elongation)[visible]
        boxes = boxes_table(
            params,
            alive.spine_id[visible],
            alive.type_code[visible],
            s_px[visible],
            head_px[visible],
            np.sqrt((a * d) ** 2 + r**2 * (1 - d**2)),
        )
        shifts = layer_jitter(params.shape[0], params.layer_jitter_px, noise)
        volume = None
        if i not in skip_render:
            points = np.concatenate([tr.to_pixels(d_points, params), s_px.reshape(-1, 3)])
            volume = render(
                params, points, np.concatenate([d_weights, s_weights.ravel()]), tr.brightness, shifts, noise
            )
        geometry = geometry_table(params, alive.spine_id, head_px, tr.to_pixels(alive.base_um, params))
        length = dendrite_length_in_view(params, [tr.to_pixels(d.centre_um, params) for d in dendrites])
        sessions.append(
            SimulatedSession(
                i,
                volume,
                boxes,
                spines,
                shifts,
                tr.drift_px,
                tr.rotation_deg,
                tr.brightness,
                cast(tuple[float, float, float], tuple(params.voxel_size_um)),
                tr,
                geometry,
                length,
            )
        )
    return sessions


def project_session(sim: SimulatedSession) -> SimulatedSession:
    """The session as a single-plane acquisition: the maximum-intensity projection of its (jitter-free)
    stack, one layer, with one truth box per spine (the union of its layer boxes, on layer 0).

    Simulate with ``layer_jitter_px=0`` for a projection a lab would make from a registered stack.
    """
    boxes = (
        sim.boxes.group_by("spine_id", maintain_order=True)
        .agg(
            pl.col("xmin").min(),
            pl.col("ymin").min(),
            pl.col("xmax").max(),
            pl.col("ymax").max(),
            pl.col("type").first(),
        )
        .select(pl.col("spine_id"), pl.lit(0, pl.Int32).alias("layer"), "xmin", "ymin", "xmax", "ymax", "type")
    )
    volume = None if sim.volume is None else sim.volume.max(axis=0, keepdims=True)
    return SimulatedSession(
        sim.index,
        volume,
        boxes.cast(sim.boxes.schema),
        sim.spines,
        np.zeros((1, 2)),
        sim.drift_px,
        sim.rotation_deg,
        sim.brightness,
        sim.voxel_size_um,
        sim.transform,
        sim.geometry,
        sim.dendrite_length_um,
    )
