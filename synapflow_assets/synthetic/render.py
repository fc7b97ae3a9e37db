"""Geometry -> volume: point clouds, splatting, point-spread blur and noise.

Objects are sampled as weighted point clouds (each point carries its share of
the object's volume, in units of one voxel's volume), splatted into the grid
with trilinear weights, blurred by an anisotropic Gaussian PSF, and turned
into photon counts with background, shot noise and read noise.
"""

import numpy as np
from scipy import ndimage

from .morphology import Dendrite, Spines
from .params import SimulationParams


def _grid_in_unit_ball(spacing: float, dims: int) -> np.ndarray:
    axis = np.arange(-1 + spacing / 2, 1, spacing)
    g = np.stack(np.meshgrid(*[axis] * dims, indexing="ij"), -1).reshape(-1, dims)
    return g[np.linalg.norm(g, axis=1) <= 1]


BALL = _grid_in_unit_ball(0.2, 3)  # head template (unit ball)
DISC = _grid_in_unit_ball(0.2, 2)  # dendrite cross-section template (unit disc)
NECK_DISC = _grid_in_unit_ball(0.5, 2)  # neck cross-section template
NECK_AXIS = (np.arange(16) + 0.5) / 16  # neck positions along its length (0..1)


def _frame(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to each row of ``direction`` (..., 3)."""
    helper = np.where(np.abs(direction[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    e1 = np.cross(direction, helper)
    e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
    return e1, np.cross(direction, e1)


def dendrite_points(dendrites: list[Dendrite], voxel_size_um) -> tuple[np.ndarray, np.ndarray]:
    """World points (m, 3) um and weights (m,) filling the dendrite tubes."""
    pts, wts = [], []
    vox = float(np.prod(voxel_size_um))
    for d in dendrites:
        step = np.linalg.norm(np.diff(d.centre_um, axis=0), axis=1).mean() if len(d.centre_um) > 1 else 0.0
        e1, e2 = _frame(d.tangent)
        off = d.radius_um * (DISC[:, 0, None, None] * e1 + DISC[:, 1, None, None] * e2)
        pts.append((d.centre_um + off).reshape(-1, 3))
        wts.append(np.full(len(pts[-1]), np.pi * d.radius_um**2 * step / len(DISC) / vox))
    return np.concatenate(pts), np.concatenate(wts)


def spine_points(spines: Spines, voxel_size_um) -> tuple[np.ndarray, np.ndarray]:
    """World points (n, k, 3) um and weights (n, k) of each spine's neck and head."""
    vox = float(np.prod(voxel_size_um))
    d = spines.direction[:, None, :]
    e1, e2 = _frame(spines.direction)
    e1, e2 = e1[:, None, :], e2[:, None, :]
    r, a = spines.head_radius_um[:, None, None], (spines.head_radius_um * spines.head_elongation)[:, None, None]
    head = (
        spines.head_centre_um[:, None, :]
        + a * BALL[:, 0, None] * d
        + r * (BALL[:, 1, None] * e1 + BALL[:, 2, None] * e2)
    )
    length, nr = spines.neck_length_um[:, None, None], spines.neck_radius_um[:, None, None]
    along = np.repeat(NECK_AXIS, len(NECK_DISC))[:, None]
    cross = np.tile(NECK_DISC, (len(NECK_AXIS), 1))
    neck = spines.base_um[:, None, :] + length * along * d + nr * (cross[:, 0, None] * e1 + cross[:, 1, None] * e2)
    w_head = np.broadcast_to((spines.head_volume_um3 / len(BALL) / vox)[:, None], head.shape[:2])
    w_neck = np.broadcast_to(
        (np.pi * spines.neck_radius_um**2 * spines.neck_length_um / neck.shape[1] / vox)[:, None], neck.shape[:2]
    )
    return np.concatenate([neck, head], axis=1), np.concatenate([w_neck, w_head], axis=1)


def splat(points_px: np.ndarray, weights: np.ndarray, shape) -> np.ndarray:
    """Trilinear splatting of weighted points (m, 3) into a float32 grid."""
    shape = np.asarray(shape)
    inside = np.all((points_px > -1) & (points_px < shape), axis=1)
    p, w = points_px[inside], weights[inside]
    base = np.floor(p).astype(np.int64)
    frac = p - base
    total = np.zeros(int(np.prod(shape)), np.float64)
    for corner in np.ndindex(2, 2, 2):
        c = base + corner
        cw = w * np.prod(np.where(corner, frac, 1 - frac), axis=1)
        ok = np.all((c >= 0) & (c < shape), axis=1)
        total += np.bincount(np.ravel_multi_index(c[ok].T, shape), cw[ok], minlength=total.size)
    return total.reshape(tuple(shape)).astype(np.float32)


def layer_jitter(n_layers: int, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Random-walk (dy, dx) shifts (n_layers, 2), zero at the middle layer ``n_layers // 2``."""
    walk = np.cumsum(rng.normal(0.0, sigma_px, (n_layers, 2)), axis=0)
    return walk - walk[n_layers // 2]


def background(params: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Smooth autofluorescence (photons) as a float32 (z, y, x) array, dimmer with depth."""
    nz, ny, nx = params.shape
    y, x = np.arange(ny, dtype=np.float32)[:, None], np.arange(nx, dtype=np.float32)[None, :]
    field = np.zeros((ny, nx), np.float32)
    for _ in range(4):
        ang, lam, ph = rng.uniform(0, 2 * np.pi), rng.uniform(100, 500), rng.uniform(0, 2 * np.pi)
        field += np.cos(2 * np.pi * (np.sin(ang) * y + np.cos(ang) * x) / lam + ph).astype(np.float32)
    photons = params.background_photons * (1 + params.background_variation * field / 4)
    depth = np.linspace(1.0, 0.7, nz, dtype=np.float32)[:, None, None]
    return photons[None] * depth


def render(
    params: SimulationParams,
    points_px: np.ndarray,
    weights: np.ndarray,
    brightness: float,
    shifts: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render weighted points (session pixels) into a noisy uint16 (z, y, x) volume.

    ``shifts`` (z, 2) are the (dy, dx) sub-pixel shifts moving the content of
    each layer after the blur (motion during acquisition).
    """
    density = splat(points_px, weights, params.shape)
    density = ndimage.gaussian_filter(
        density, (params.psf_sigma_layers, params.psf_sigma_px, params.psf_sigma_px), mode="constant"
    )
    if np.any(shifts):
        for k in range(params.shape[0]):
            density[k] = ndimage.shift(density[k], shifts[k], order=1, mode="nearest")
    lam = density * np.float32(brightness * params.photons_per_voxel) + background(params, rng)
    counts = rng.poisson(lam).astype(np.float32)
    counts += params.offset_counts + params.read_noise_counts * rng.standard_normal(lam.shape, dtype=np.float32)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
