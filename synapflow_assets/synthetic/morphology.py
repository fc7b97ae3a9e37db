"""Dendrites and spine populations of one animal, in world coordinates (um, z/y/x).

The world frame is the registered frame of session 0: world point ``p`` (um)
lies at pixel ``p / voxel_size_um`` of an unmoved session.
"""

from dataclasses import dataclass, fields

import numpy as np

from .params import SimulationParams

#: Per type (mushroom, stubby, thin, filopodium): neck length range, neck
#: radius, head radius range, head elongation along the spine axis range (um).
NECK_LENGTH_UM = np.array([[0.5, 1.5], [0.0, 0.0], [1.0, 2.0], [1.5, 2.0]])
NECK_RADIUS_UM = np.array([0.10, 0.10, 0.08, 0.12])
HEAD_RADIUS_UM = np.array([[0.45, 0.75], [0.35, 0.6], [0.25, 0.4], [0.15, 0.2]])
HEAD_ELONGATION = np.array([[1.0, 1.3], [0.7, 0.9], [1.0, 1.3], [1.0, 1.0]])
HEAD_RADIUS_LIMITS_UM = (0.12, 1.0)


@dataclass(frozen=True)
class Dendrite:
    """A tube along a smooth centre line.

    Attributes
    ----------
    centre_um : ndarray, shape (m, 3)
        Centre-line samples (z, y, x) in um, about 0.12 um apart.
    tangent : ndarray, shape (m, 3)
        Unit tangents at the samples.
    radius_um : float
        Tube radius.
    density_per_um : float
        Spine density along this dendrite.
    """

    centre_um: np.ndarray
    tangent: np.ndarray
    radius_um: float
    density_per_um: float


@dataclass(frozen=True)
class Spines:
    """A population of spines as parallel arrays (one entry per spine).

    Attributes
    ----------
    spine_id, dendrite_id, type_code : ndarray of int64
    base_um : ndarray (n, 3)
        Attachment point on the dendrite surface.
    direction : ndarray (n, 3)
        Unit vector of the spine axis, pointing away from the dendrite.
    neck_length_um, neck_radius_um, head_radius_um, head_elongation : ndarray
        Shape; the head is an ellipsoid with semi-axes ``head_radius_um`` across
        and ``head_radius_um * head_elongation`` along the axis.
    """

    spine_id: np.ndarray
    dendrite_id: np.ndarray
    type_code: np.ndarray
    base_um: np.ndarray
    direction: np.ndarray
    neck_length_um: np.ndarray
    neck_radius_um: np.ndarray
    head_radius_um: np.ndarray
    head_elongation: np.ndarray

    def __len__(self) -> int:
        return len(self.spine_id)

    @property
    def head_centre_um(self) -> np.ndarray:
        """Head centres (n, 3) in um."""
        along = self.neck_length_um + self.head_radius_um * self.head_elongation
        return self.base_um + self.direction * along[:, None]

    @property
    def head_volume_um3(self) -> np.ndarray:
        """Head volumes in um^3 (the ground-truth size)."""
        return 4.0 / 3.0 * np.pi * self.head_radius_um**2 * self.head_radius_um * self.head_elongation

    def take(self, index) -> "Spines":
        """Subset by boolean mask or integer index."""
        return Spines(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def concat(self, other: "Spines") -> "Spines":
        """This population followed by ``other``."""
        return Spines(**{f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)})


def make_dendrites(params: SimulationParams, rng: np.random.Generator) -> list[Dendrite]:
    """Draw 2-3 smooth dendrites crossing the field of view.

    Each is a straight line through the central part of the field, bent by a
    sum of three sines, with a slowly varying depth, clipped to the world box.
    """
    size_um = np.array(params.shape) * np.array(params.voxel_size_um)
    m = params.world_margin_um
    half = np.hypot(size_um[1], size_um[2]) / 2 + m
    s = np.arange(-half, half, params.voxel_size_um[2])
    out = []
    for _ in range(rng.integers(params.n_dendrites[0], params.n_dendrites[1] + 1)):
        theta = rng.uniform(0, np.pi)
        u, v = np.array([np.sin(theta), np.cos(theta)]), np.array([np.cos(theta), -np.sin(theta)])
        p0 = size_um[1:] * rng.uniform(0.3, 0.7, 2)
        amp = rng.dirichlet(np.ones(3)) * params.dendrite_wiggle_um
        lam, phase = rng.uniform(20, 60, 3), rng.uniform(0, 2 * np.pi, 3)
        lateral = (amp * np.sin(2 * np.pi * s[:, None] / lam + phase)).sum(1)
        z = size_um[0] * rng.uniform(0.3, 0.7) + params.dendrite_depth_wiggle_um * np.sin(
            2 * np.pi * s / rng.uniform(40, 100) + rng.uniform(0, 2 * np.pi)
        )
        yx = p0 + s[:, None] * u + lateral[:, None] * v
        centre = np.column_stack([z, yx])
        keep = np.all((yx > -m) & (yx < size_um[1:] + m), axis=1)
        tangent = np.gradient(centre, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        out.append(
            Dendrite(
                centre[keep],
                tangent[keep],
                rng.uniform(*params.dendrite_radius_um),
                rng.uniform(*params.spine_density_per_um),
            )
        )
    return out


def grow_spines(
    params: SimulationParams, dendrites: list[Dendrite], n: int, first_id: int, rng: np.random.Generator
) -> Spines:
    """Draw ``n`` new spines at random positions along the dendrites.

    Positions are uniform along the dendrites, weighted by each dendrite's
    density; side, type and shape are random. Ids are ``first_id, first_id+1, ...``.
    """
    centres = np.concatenate([d.centre_um for d in dendrites])
    tangents = np.concatenate([d.tangent for d in dendrites])
    owner = np.concatenate([np.full(len(d.centre_um), k) for k, d in enumerate(dendrites)])
    weight = np.array([d.density_per_um for d in dendrites])[owner]
    sample = rng.choice(len(centres), size=n, p=weight / weight.sum())
    dend, centre, tangent = owner[sample], centres[sample], tangents[sample]
    radius = np.array([d.radius_um for d in dendrites])[dend]
    # perpendicular in xy, random side, rotated a little in xy, tilted a little in z
    angle = np.arctan2(tangent[:, 2], -tangent[:, 1]) + rng.choice([0, np.pi], n)
    angle += np.deg2rad(params.spine_angle_xy_deg) * rng.standard_normal(n)
    tilt = np.deg2rad(params.spine_tilt_z_deg) * rng.standard_normal(n)
    direction = np.column_stack([np.sin(tilt), np.cos(tilt) * np.sin(angle), np.cos(tilt) * np.cos(angle)])
    t = rng.choice(
        len(NECK_RADIUS_UM), size=n, p=np.asarray(params.type_probabilities) / sum(params.type_probabilities)
    )
    u = rng.random((n, 3))
    span = lambda table, k: table[t, 0] + u[:, k] * (table[t, 1] - table[t, 0])
    return Spines(
        spine_id=np.arange(first_id, first_id + n, dtype=np.int64),
        dendrite_id=dend.astype(np.int64),
        type_code=t.astype(np.int64),
        base_um=centre + direction * radius[:, None],
        direction=direction,
        neck_length_um=span(NECK_LENGTH_UM, 0),
        neck_radius_um=NECK_RADIUS_UM[t],
        head_radius_um=span(HEAD_RADIUS_UM, 1),
        head_elongation=span(HEAD_ELONGATION, 2),
    )


def separated(spines: Spines, existing: Spines | None = None, gap_um: float = 0.5) -> np.ndarray:
    """Mask of ``spines`` whose heads keep at least ``gap_um`` of surface gap to every earlier head.

    Earlier means ``existing`` and the spines before it in ``spines``; heads are
    treated as spheres of their radius times elongation (an upper bound).
    """
    from scipy.spatial import cKDTree

    n_old = 0 if existing is None else len(existing)
    both = spines if existing is None else existing.concat(spines)
    centres, radii = both.head_centre_um, both.head_radius_um * np.maximum(both.head_elongation, 1.0)
    pairs = cKDTree(centres).query_pairs(2 * radii.max() + gap_um, output_type="ndarray")
    close = np.linalg.norm(centres[pairs[:, 0]] - centres[pairs[:, 1]], axis=1) < radii[pairs].sum(1) + gap_um
    later = pairs[close].max(axis=1)
    keep = np.ones(len(both), bool)
    keep[later] = False
    return keep[n_old:]


def initial_spine_count(dendrites: list[Dendrite], params: SimulationParams, rng: np.random.Generator) -> int:
    """Poisson number of spines for the dendrites' lengths and densities."""
    step = params.voxel_size_um[2]
    return int(rng.poisson(sum(len(d.centre_um) * step * d.density_per_um for d in dendrites)))
