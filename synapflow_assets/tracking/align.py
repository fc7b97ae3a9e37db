"""Align one session's volume to another's: global rotation and 3D shift, then a smooth local field."""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..imaging.registration import phase_correlation


@dataclass(frozen=True)
class AlignParams:
    """Parameters of session alignment.

    Attributes
    ----------
    max_rotation_deg : float
        Rotations searched in ``[-max, max]``.
    rotation_step_deg : float
        Step of the rotation search (refined by a parabola through the best three).
    max_z_shift : int
        z-shifts searched in ``[-max, max]`` layers.
    block_px : int
        Side of the blocks matched for the local field (half-overlapping).
    max_local_px : float
        Larger local displacements (after global alignment) are outliers.
    min_peak : float
        Correlation peak (in standard deviations) below which a match is not trusted.
    """

    max_rotation_deg: float = 4.0
    rotation_step_deg: float = 0.5
    max_z_shift: int = 8
    block_px: int = 96
    max_local_px: float = 6.0
    min_peak: float = 10.0


@dataclass(frozen=True)
class Alignment:
    """How session ``t`` (moving) sits relative to session ``t - 1`` (reference).

    A point ``(y, x)`` of the reference maps to ``map_points``; layer ``z``
    maps to ``z + z_shift``.
    """

    rotation_deg: float
    shift_yx: tuple[float, float]
    z_shift: int
    field_yx: np.ndarray
    grid_step: int
    grid_origin: float
    shape_yx: tuple[int, int]
    peak: float
    z_score: float
    residual_px: float
    trusted_blocks: float

    @property
    def ok(self) -> bool:
        """Whether the global match is trustworthy (the sessions overlap)."""
        return self.peak >= AlignParams().min_peak and self.trusted_blocks >= 0.25

    def map_points(self, yx: np.ndarray) -> np.ndarray:
        """Reference (y, x) points (n, 2) to moving-session coordinates."""
        yx = np.asarray(yx, dtype=np.float64).reshape(-1, 2)
        local = np.stack([
            ndimage.map_coordinates(self.field_yx[k], ((yx - self.grid_origin) / self.grid_step).T, order=1, mode="nearest")
            for k in range(2)
        ], axis=1)
        return rigid_map(yx + local, self.rotation_deg, self.shift_yx, self.shape_yx)


def rigid_map(yx: np.ndarray, rotation_deg: float, shift_yx, shape_yx) -> np.ndarray:
    """Rotate points about the image centre by ``rotation_deg`` (counter-clockwise in x/y), then shift."""
    centre = (np.asarray(shape_yx, dtype=np.float64) - 1) / 2
    a = np.deg2rad(rotation_deg)
    dy, dx = yx[:, 0] - centre[0], yx[:, 1] - centre[1]
    y = centre[0] + np.cos(a) * dy - np.sin(a) * dx + shift_yx[0]
    x = centre[1] + np.sin(a) * dy + np.cos(a) * dx + shift_yx[1]
    return np.stack([y, x], axis=1)


def warp_to_reference(image: np.ndarray, rotation_deg: float, shift_yx) -> np.ndarray:
    """Resample a moving 2D image onto the reference grid through the rigid map."""
    ny, nx = image.shape
    grid = np.stack(np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij"), axis=-1).reshape(-1, 2)
    source = rigid_map(grid.astype(np.float64), rotation_deg, shift_yx, image.shape)
    return ndimage.map_coordinates(image, source.T, order=1, mode="constant", cval=float(np.median(image))).reshape(ny, nx)


def _prepare(mip: np.ndarray) -> np.ndarray:
    """Log-compressed, background-flattened projection: robust to brightness changes."""
    image = np.log1p(np.asarray(mip, dtype=np.float32))
    return image - ndimage.uniform_filter(image, 31)


def global_rotation_shift(reference: np.ndarray, moving: np.ndarray, params: AlignParams) -> tuple[float, tuple, float]:
    """Rotation and (dy, dx) of ``moving`` relative to ``reference`` from their projections."""
    ref, mov = _prepare(reference), _prepare(moving)
    angles = np.arange(-params.max_rotation_deg, params.max_rotation_deg + 1e-9, params.rotation_step_deg)
    rotated = np.stack([warp_to_reference(mov, a, (0.0, 0.0)) for a in angles])
    _, peaks = phase_correlation(np.broadcast_to(ref, rotated.shape), rotated)
    best = int(np.argmax(peaks))
    angle = angles[best]
    if 0 < best < len(angles) - 1:
        left, mid, right = peaks[best - 1 : best + 2]
        curvature = left - 2 * mid + right
        if curvature < 0:
            angle += 0.5 * (left - right) / curvature * params.rotation_step_deg
    aligned = warp_to_reference(mov, angle, (0.0, 0.0))
    shift, peak = phase_correlation(ref, aligned)
    a = np.deg2rad(angle)
    dy, dx = -float(shift[0]), -float(shift[1])
    return float(angle), (np.cos(a) * dy - np.sin(a) * dx, np.sin(a) * dy + np.cos(a) * dx), float(peak)


def z_shift(reference: np.ndarray, moving_aligned: np.ndarray, max_shift: int) -> tuple[int, float]:
    """Integer z-shift maximising the mean correlation of overlapping layers (one matrix product).

    ``moving_aligned`` is the moving volume already resampled onto the
    reference's x/y grid. Returns the shift and its mean correlation.
    """
    def normalised(volume):
        flat = np.asarray(volume, dtype=np.float32).reshape(volume.shape[0], -1)
        flat = flat - flat.mean(axis=1, keepdims=True)
        return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-6)

    correlation = normalised(reference) @ normalised(moving_aligned).T
    nz_ref, nz_mov = correlation.shape
    shifts = np.arange(-max_shift, max_shift + 1)
    scores = np.array([np.diagonal(correlation, offset=s).mean() if -nz_ref < s < nz_mov else -1.0 for s in shifts])
    overlap = np.array([min(nz_ref, nz_mov - s) - max(0, -s) for s in shifts])
    scores[overlap < max(3, min(nz_ref, nz_mov) // 3)] = -1.0
    best = int(np.argmax(scores))
    return int(shifts[best]), float(scores[best])


def block_displacements(reference: np.ndarray, moving_aligned: np.ndarray, params: AlignParams):
    """Displacement of each half-overlapping block of two globally aligned projections.

    Returns block centres (gy, gx, 2), displacements (gy, gx, 2), trusted mask
    (gy, gx) and the grid step.
    """
    ref, mov = _prepare(reference), _prepare(moving_aligned)
    ny, nx = ref.shape
    block = min(params.block_px, ny, nx)
    step = block // 2
    starts_y = np.arange(0, ny - block + 1, step)
    starts_x = np.arange(0, nx - block + 1, step)
    iy = starts_y[:, None, None, None] + np.arange(block)[None, None, :, None]
    ix = starts_x[None, :, None, None] + np.arange(block)[None, None, None, :]
    shift, peak = phase_correlation(ref[iy, ix], mov[iy, ix])
    displacement = -shift
    trusted = (peak >= params.min_peak) & (np.linalg.norm(displacement, axis=-1) <= params.max_local_px)
    centres = np.stack(np.meshgrid(starts_y + (block - 1) / 2, starts_x + (block - 1) / 2, indexing="ij"), axis=-1)
    return centres, displacement, trusted, step


def fit_rigid(points: np.ndarray, targets: np.ndarray, iterations: int = 3, max_error_px: float = 1.5):
    """Least-squares rotation + translation (2D Kabsch) of points onto targets, refit without outliers.

    Returns the rotation (degrees, about the origin), translation (2,) and inlier mask.
    """
    inliers = np.ones(len(points), dtype=bool)
    angle, translation = 0.0, np.zeros(2)
    for _ in range(iterations):
        if inliers.sum() < 3:
            break
        p, q = points[inliers], targets[inliers]
        pc, qc = p - p.mean(0), q - q.mean(0)
        h = pc.T @ qc
        angle = np.arctan2(h[0, 1] - h[1, 0], h[0, 0] + h[1, 1])
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        translation = q.mean(0) - p.mean(0) @ rot.T
        error = np.linalg.norm(points @ rot.T + translation - targets, axis=1)
        inliers = error <= max(max_error_px, 2.5 * np.median(error[inliers]))
    return float(np.rad2deg(angle)), translation, inliers


def align_sessions(reference: np.ndarray, moving: np.ndarray, params: AlignParams = AlignParams()) -> Alignment:
    """Align session ``moving`` (z, y, x) to ``reference`` (z, y, x) of the same field of view.

    1. a coarse rotation about z and x/y shift from the maximum projections
       (rotation search by batched phase correlation);
    2. block matching of the coarsely aligned projections, and a robust rigid
       fit to the block displacements that refines rotation and shift;
    3. the integer z-shift maximising the mean correlation of overlapping
       layers, from one matrix product of all layer pairs (2x down-sampled);
    4. the remaining smooth local x/y field from the blocks, after the fit.

    Layers of different size are an error; a failed match (no overlap) is
    reported through ``Alignment.ok``, never hidden.
    """
    if reference.shape[1:] != moving.shape[1:]:
        raise ValueError(f"sessions have different layer sizes: {reference.shape[1:]} and {moving.shape[1:]}")
    ref_mip, mov_mip = reference.max(axis=0).astype(np.float32), moving.max(axis=0).astype(np.float32)
    angle, shift, peak = global_rotation_shift(ref_mip, mov_mip, params)
    centres, displacement, trusted, step = block_displacements(ref_mip, warp_to_reference(mov_mip, angle, shift), params)
    if trusted.sum() >= 3:
        points = centres[trusted]
        targets = rigid_map(points + displacement[trusted], angle, shift, ref_mip.shape)
        centre = (np.asarray(ref_mip.shape, dtype=np.float64) - 1) / 2
        angle, translation, _ = fit_rigid(points - centre, targets - centre)
        shift = tuple(translation)
        centres, displacement, trusted, step = block_displacements(ref_mip, warp_to_reference(mov_mip, angle, shift), params)
    field = _smooth_field(displacement, trusted)
    fitted = np.moveaxis(field, 0, -1)
    residual = float(np.median(np.linalg.norm(displacement[trusted] - fitted[trusted], axis=-1))) if trusted.any() else np.nan

    small = lambda v: ndimage.zoom(np.asarray(v, dtype=np.float32), (1, 0.5, 0.5), order=1)
    half_shift = (shift[0] / 2, shift[1] / 2)
    warped = np.stack([warp_to_reference(layer, angle, half_shift) for layer in small(moving)])
    dz, z_score = z_shift(small(reference), warped, params.max_z_shift)
    return Alignment(angle, tuple(float(v) for v in shift), dz, field, step, float(centres[0, 0, 0]),
                     reference.shape[1:], peak, z_score, residual, float(trusted.mean()))


def _smooth_field(displacement: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """(2, gy, gx) field: untrusted blocks take the median of their neighbours, then a light smoothing."""
    field = np.zeros((2, *trusted.shape))
    if not trusted.any():
        return field
    for k in range(2):
        values = np.where(trusted, displacement[..., k], np.median(displacement[..., k][trusted]))
        neighbours = ndimage.median_filter(values, size=3, mode="nearest")
        field[k] = ndimage.gaussian_filter(np.where(trusted, values, neighbours), 0.7, mode="nearest")
    return field
