"""Align one session's volume to another's: global rotation and 3D shift, then a smooth local field."""

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from ..imaging.registration import phase_correlation
from .rigid import fit_rigid, rigid_map, rigid_unmap, warp_to_moving, warp_to_reference
from .smooth_field import fit_field


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
        Correlation peak of a block (in standard deviations) below which its match is not trusted.
    min_global_peak : float
        Correlation peak of the whole projections below which the sessions do not overlap.
    min_margin : float
        The correspondence test: the correlation peak of the pair must exceed,
        by this factor, the best peak the moving projection reaches against
        the reference when flipped (and, for square layers, transposed). A
        flipped field has the same texture (dendrites along the same axis,
        the same brightness and noise) but no correspondence, so its peak is
        what chance gives between two unrelated fields of this kind.
    min_trusted_blocks : float
        Fraction of the blocks that hold structure (see ``min_structure``) whose
        match must be trusted for the sessions to count as overlapping (0: not
        required; the share is reported either way). Sparse fields of fine
        pixels whose dendrites run along one axis match in few blocks even
        when the pair is the same field, so the correspondence test decides.
    min_structure : float
        Fraction of a block's pixels that must be foreground (brighter than the
        background by 4 noise standard deviations, after smoothing) for the
        block to hold structure.
    field_smoothness : float
        Weight of the thin-plate smoothness of the local field against the block matches.
    working_pixel_um : float
        Layers with pixels finer than this are binned by an integer factor to
        about this pixel size before aligning (the block size, smoothing and
        limits above are in working pixels); the result is given at full
        resolution. At 0.02-0.05 um/px a dendrite is 20-50 px wide and the
        blocks would hold pieces of one shaft; binned, the alignment error on
        the MIP time-lapse stand-in is about half (``bench/real_timelapse.py``).
        Finer working pixels (0.07 um) or a full-resolution refinement of the
        field made it worse there, coarser ones (0.13-0.16 um) no better.

    Blocks of 32 working pixels (3.2 um at 0.1 um/px) with light smoothing
    follow local deformations of a few micrometres' wavelength, better than
    64 px blocks and a smoothness of 0.1 on both the MIP stand-in and the
    simulated z-stacks. Lighter smoothing (0.01) gains a little more there but
    makes the field of a pure translation noisier (its forward-backward
    residual is checked in ``test_alignment_gate.py``).
    """

    max_rotation_deg: float = 4.0
    rotation_step_deg: float = 0.5
    max_z_shift: int = 8
    block_px: int = 32
    max_local_px: float = 6.0
    min_peak: float = 6.0
    min_global_peak: float = 8.0
    min_margin: float = 1.5
    min_trusted_blocks: float = 0.0
    min_structure: float = 0.02
    field_smoothness: float = 0.03
    working_pixel_um: float = 0.1


@dataclass(frozen=True)
class Alignment:
    """How session ``t`` (moving) sits relative to session ``t - 1`` (reference).

    A point ``(y, x)`` of the reference maps to ``map_points``; layer ``z``
    maps to ``z + z_shift``. The local field is estimated in both directions:
    ``field_yx`` on the reference grid (reference -> moving) and
    ``field_back_yx`` on the moving grid (moving -> reference, used by
    ``map_points_back``); ``consistency_px`` is the mean distance between a
    reference point and where it lands after going forward and back (the
    forward-backward consistency residual, in the overlap of the sessions).
    ``trusted_blocks`` is the share of the blocks holding structure whose
    match is trusted (``structure_blocks`` of them). ``decoy_peak`` is the best
    peak of the flipped (and transposed) moving projection: what a pair with no
    correspondence reaches (see ``AlignParams.min_margin``). ``ok`` uses the
    ``min_global_peak``, ``min_margin`` and ``min_trusted_blocks`` the
    alignment was computed with. ``z_shift`` is 0 and ``z_score`` NaN when a session has fewer than
    3 layers (single planes or projections: there is no z to search).
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
    field_back_yx: np.ndarray | None = None
    trusted_blocks_back: float = float("nan")
    residual_back_px: float = float("nan")
    consistency_px: float = float("nan")
    structure_blocks: int = 0
    decoy_peak: float = float("nan")
    min_global_peak: float = AlignParams.min_global_peak
    min_margin: float = AlignParams.min_margin
    min_trusted_blocks: float = AlignParams.min_trusted_blocks

    @property
    def margin(self) -> float:
        """The pair's correlation peak over the best decoy's."""
        return float(self.peak / self.decoy_peak) if self.decoy_peak > 0 else float("inf")

    @property
    def ok(self) -> bool:
        """Whether the global match is trustworthy (the sessions overlap)."""
        return bool(
            self.peak >= self.min_global_peak
            and self.structure_blocks >= 3
            and not self.margin < self.min_margin
            and self.trusted_blocks >= self.min_trusted_blocks
        )

    def problem(self) -> str | None:
        """Why the alignment is not trusted, in one sentence; None when it is."""
        if self.ok:
            return None
        if self.peak < self.min_global_peak:
            return (
                f"the projections do not match (correlation peak {self.peak:.1f} sigma < "
                f"min_global_peak {self.min_global_peak:g}): the sessions do not overlap"
            )
        if self.structure_blocks < 3:
            return f"only {self.structure_blocks} blocks of the reference hold structure: nothing to align"
        if self.margin < self.min_margin:
            return (
                f"no correspondence: the match (peak {self.peak:.1f} sigma) is no better than the same field "
                f"flipped (peak {self.decoy_peak:.1f}; ratio {self.margin:.2f} < min_margin {self.min_margin:g})"
            )
        return (
            f"only {self.trusted_blocks:.0%} of the {self.structure_blocks} blocks holding structure match "
            f"(min_trusted_blocks {self.min_trusted_blocks:.0%})"
        )

    def _local(self, field: np.ndarray, yx: np.ndarray) -> np.ndarray:
        coordinates = ((yx - self.grid_origin) / self.grid_step).T
        return np.stack(
            [ndimage.map_coordinates(field[k], coordinates, order=1, mode="nearest") for k in range(2)], axis=1
        )

    def map_points(self, yx: np.ndarray) -> np.ndarray:
        """Reference (y, x) points (n, 2) to moving-session coordinates."""
        yx = np.asarray(yx, dtype=np.float64).reshape(-1, 2)
        return rigid_map(yx + self._local(self.field_yx, yx), self.rotation_deg, self.shift_yx, self.shape_yx)

    def reference_in_moving_frame(self, image: np.ndarray) -> np.ndarray:
        """A 2D image of the reference session resampled into the moving session's frame (bilinear; zero
        outside), e.g. to overlay two sessions' projections."""
        ny, nx = image.shape
        grid = np.stack(list(np.mgrid[0:ny, 0:nx]), axis=-1).reshape(-1, 2).astype(np.float64)
        source = self.map_points_back(grid)
        return ndimage.map_coordinates(np.asarray(image, np.float32), source.T, order=1, cval=0.0).reshape(ny, nx)

    def map_points_back(self, yx: np.ndarray) -> np.ndarray:
        """Moving-session (y, x) points (n, 2) to reference coordinates (the inverse of ``map_points``)."""
        yx = np.asarray(yx, dtype=np.float64).reshape(-1, 2)
        field = self.field_back_yx if self.field_back_yx is not None else np.zeros_like(self.field_yx)
        return rigid_unmap(yx + self._local(field, yx), self.rotation_deg, self.shift_yx, self.shape_yx)


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


def decoy_peak(reference: np.ndarray, moving: np.ndarray, params: AlignParams = AlignParams()) -> float:
    """The best phase-correlation peak of ``moving`` flipped in y, in x and in both (and, for square images,
    transposed with each flip) against ``reference``, each at five rotations across the searched range: the
    null model of the correspondence test. The pair's own peak is the best of a rotation search, so the
    decoys get a search of the same size."""
    ref, mov = _prepare(reference), _prepare(moving)
    decoys = [mov[::-1], mov[:, ::-1], mov[::-1, ::-1]]
    if mov.shape[0] == mov.shape[1]:
        decoys += [mov.T, mov.T[::-1], mov.T[:, ::-1], mov.T[::-1, ::-1]]
    best = 0.0
    for angle in np.linspace(-params.max_rotation_deg, params.max_rotation_deg, 5):
        stacked = np.stack([warp_to_reference(np.ascontiguousarray(d), float(angle), (0.0, 0.0)) for d in decoys])
        _, peaks = phase_correlation(np.broadcast_to(ref, stacked.shape), stacked)
        best = max(best, float(peaks.max()))
    return best


def z_shift(reference: np.ndarray, moving_aligned: np.ndarray, max_shift: int) -> tuple[int, float]:
    """Integer z-shift maximising the mean correlation of overlapping layers (one matrix product).

    ``moving_aligned`` is the moving volume already resampled onto the
    reference's x/y grid. Returns the shift and its mean correlation; (0, NaN)
    when either volume has fewer than 3 layers (nothing to search).
    """
    if min(reference.shape[0], moving_aligned.shape[0]) < 3:
        return 0, float("nan")

    def normalised(volume: np.ndarray) -> np.ndarray:
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


def foreground(prepared: np.ndarray, sigma_px: float = 2.0, n_sigma: float = 4.0) -> np.ndarray:
    """Pixels of a prepared projection brighter than the background by ``n_sigma`` noise standard
    deviations after Gaussian smoothing (noise from the median absolute deviation)."""
    smooth = ndimage.gaussian_filter(prepared, sigma_px)
    centre = np.median(smooth)
    sigma = 1.4826 * np.median(np.abs(smooth - centre))
    return smooth > centre + n_sigma * max(float(sigma), 1e-6)


def _blocks_of(image: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    ny, nx = image.shape
    step = block // 2
    starts_y = np.arange(0, ny - block + 1, step)
    starts_x = np.arange(0, nx - block + 1, step)
    iy = starts_y[:, None, None, None] + np.arange(block)[None, None, :, None]
    ix = starts_x[None, :, None, None] + np.arange(block)[None, None, None, :]
    return iy, ix, starts_y, starts_x, step


def structure_blocks(reference: np.ndarray, params: AlignParams) -> np.ndarray:
    """Which half-overlapping blocks of a projection hold structure (gy, gx), as ``block_displacements`` lays
    them out."""
    prepared = _prepare(reference)
    iy, ix, *_ = _blocks_of(prepared, min(params.block_px, *prepared.shape))
    return foreground(prepared)[iy, ix].mean(axis=(-2, -1)) >= params.min_structure


def block_displacements(
    reference: np.ndarray, moving_aligned: np.ndarray, params: AlignParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Displacement of each half-overlapping block of two globally aligned projections.

    Returns block centres (gy, gx, 2), displacements (gy, gx, 2), trusted mask
    (gy, gx), the grid step, and each block's gradient structure tensor
    (gy, gx, 2, 2): a block holding one straight dendrite pins the shift
    across the dendrite, not along it (the aperture problem), and the tensor
    says which directions a block's displacement can be trusted in.
    """
    ref, mov = _prepare(reference), _prepare(moving_aligned)
    block = min(params.block_px, *ref.shape)
    iy, ix, starts_y, starts_x, step = _blocks_of(ref, block)
    blocks = ref[iy, ix]
    shift, peak = phase_correlation(blocks, mov[iy, ix])
    displacement = -shift
    trusted = (peak >= params.min_peak) & (np.linalg.norm(displacement, axis=-1) <= params.max_local_px)
    centres = np.stack(np.meshgrid(starts_y + (block - 1) / 2, starts_x + (block - 1) / 2, indexing="ij"), axis=-1)
    return centres, displacement, trusted, step, _structure_tensors(blocks)


def _structure_tensors(blocks: np.ndarray) -> np.ndarray:
    """Hann-windowed sums of the gradient outer products of each block (..., 2, 2)."""
    smooth = ndimage.gaussian_filter(blocks, (0,) * (blocks.ndim - 2) + (1.0, 1.0))
    gy, gx = np.gradient(smooth, axis=(-2, -1))
    window = np.outer(np.hanning(blocks.shape[-2]), np.hanning(blocks.shape[-1]))
    yy, yx, xx = ((window * a * b).sum(axis=(-2, -1)) for a, b in ((gy, gy), (gy, gx), (gx, gx)))
    return np.stack([np.stack([yy, yx], axis=-1), np.stack([yx, xx], axis=-1)], axis=-2).astype(np.float64)


def binning_factor(pixel_size_um: float | None, working_pixel_um: float) -> int:
    """The integer factor that bins layers of ``pixel_size_um`` to about ``working_pixel_um`` (1: none)."""
    if pixel_size_um is None or not pixel_size_um > 0:
        return 1
    return max(1, int(working_pixel_um / pixel_size_um + 1e-9))


def _binned(volume: np.ndarray, factor: int) -> np.ndarray:
    z, y, x = volume.shape
    cropped = np.asarray(volume, dtype=np.float32)[:, : y // factor * factor, : x // factor * factor]
    return cropped.reshape(z, y // factor, factor, x // factor, factor).mean(axis=(2, 4))


def _at_full_resolution(coarse: Alignment, factor: int, shape_yx: tuple[int, int]) -> Alignment:
    """An alignment of binned layers expressed on the full-resolution pixel grid."""
    a = np.deg2rad(coarse.rotation_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    binned_centre = factor * ((np.asarray(coarse.shape_yx, np.float64) - 1) / 2 + 0.5) - 0.5
    centre = (np.asarray(shape_yx, np.float64) - 1) / 2
    shift = factor * np.asarray(coarse.shift_yx) + (np.eye(2) - rotation) @ (binned_centre - centre)
    back = None if coarse.field_back_yx is None else coarse.field_back_yx * factor
    full = replace(
        coarse,
        shift_yx=(float(shift[0]), float(shift[1])),
        field_yx=coarse.field_yx * factor,
        field_back_yx=back,
        grid_step=coarse.grid_step * factor,
        grid_origin=factor * (coarse.grid_origin + 0.5) - 0.5,
        shape_yx=(int(shape_yx[0]), int(shape_yx[1])),
        residual_px=coarse.residual_px * factor,
        residual_back_px=coarse.residual_back_px * factor,
    )
    return replace(full, consistency_px=forward_backward_consistency(full, margin_px=full.grid_step))


def align_sessions(
    reference: np.ndarray,
    moving: np.ndarray,
    params: AlignParams = AlignParams(),
    *,
    pixel_size_um: float | None = None,
) -> Alignment:
    """Align session ``moving`` (z, y, x) to ``reference`` (z, y, x) of the same field of view.

    With ``pixel_size_um`` finer than ``params.working_pixel_um``, the layers
    are binned first (:func:`binning_factor`) and the result is scaled back to
    full resolution.

    1. a coarse rotation about z and x/y shift from the maximum projections
       (rotation search by batched phase correlation);
    2. block matching of the coarsely aligned projections, and a robust rigid
       fit to the block displacements that refines rotation and shift;
    3. the integer z-shift maximising the mean correlation of overlapping
       layers, from one matrix product of all layer pairs (2x down-sampled;
       none for single planes);
    4. the remaining smooth local x/y field from the blocks, after the fit,
       in both directions (reference blocks against the moving projection
       brought onto the reference grid, and moving blocks against the
       reference brought onto the moving grid), and their forward-backward
       consistency.

    Layers of different size are an error; a failed match (no overlap) is
    reported through ``Alignment.ok``, never hidden.
    """
    if reference.shape[1:] != moving.shape[1:]:
        raise ValueError(f"sessions have different layer sizes: {reference.shape[1:]} and {moving.shape[1:]}")
    factor = binning_factor(pixel_size_um, params.working_pixel_um)
    if factor > 1 and min(reference.shape[1:]) // factor >= 2 * params.block_px:
        coarse = align_sessions(_binned(reference, factor), _binned(moving, factor), params)
        return _at_full_resolution(coarse, factor, (reference.shape[1], reference.shape[2]))
    ref_mip, mov_mip = reference.max(axis=0).astype(np.float32), moving.max(axis=0).astype(np.float32)
    angle, shift, peak = global_rotation_shift(ref_mip, mov_mip, params)
    centres, displacement, trusted, step, tensors = block_displacements(
        ref_mip, warp_to_reference(mov_mip, angle, shift), params
    )
    if trusted.sum() >= 3:
        points = centres[trusted]
        targets = rigid_map(points + displacement[trusted], angle, shift, ref_mip.shape)
        centre = (np.asarray(ref_mip.shape, dtype=np.float64) - 1) / 2
        angle, translation, _ = fit_rigid(points - centre, targets - centre)
        shift = tuple(translation)
        centres, displacement, trusted, step, tensors = block_displacements(
            ref_mip, warp_to_reference(mov_mip, angle, shift), params
        )
    field, residual = fit_field(displacement, trusted, tensors, params.field_smoothness)
    _, displacement_back, trusted_back, _, tensors_back = block_displacements(
        mov_mip, warp_to_moving(ref_mip, angle, shift), params
    )
    field_back, residual_back = fit_field(displacement_back, trusted_back, tensors_back, params.field_smoothness)

    small = lambda v: ndimage.zoom(np.asarray(v, dtype=np.float32), (1, 0.5, 0.5), order=1)
    half_shift = (shift[0] / 2, shift[1] / 2)
    warped = np.stack([warp_to_reference(layer, angle, half_shift) for layer in small(moving)])
    dz, z_score = z_shift(small(reference), warped, params.max_z_shift)
    content, content_back = structure_blocks(ref_mip, params), structure_blocks(mov_mip, params)
    share = lambda ok, mask: float((ok & mask).sum() / mask.sum()) if mask.any() else 0.0
    result = Alignment(
        angle,
        (float(shift[0]), float(shift[1])),
        dz,
        field,
        step,
        float(centres[0, 0, 0]),
        tuple(reference.shape[1:]),
        peak,
        z_score,
        residual,
        share(trusted, content),
        field_back,
        share(trusted_back, content_back),
        residual_back,
        structure_blocks=int(content.sum()),
        decoy_peak=decoy_peak(ref_mip, mov_mip, params),
        min_global_peak=params.min_global_peak,
        min_margin=params.min_margin,
        min_trusted_blocks=params.min_trusted_blocks,
    )
    return replace(result, consistency_px=forward_backward_consistency(result, margin_px=step))


def forward_backward_consistency(alignment: Alignment, margin_px: float = 0.0, step_px: int = 8) -> float:
    """Mean distance (px) between reference grid points and their images forward then back,
    over the points whose forward image lies inside the moving session (``margin_px`` from its edge)."""
    ny, nx = alignment.shape_yx
    grid = np.stack(np.meshgrid(np.arange(0, ny, step_px), np.arange(0, nx, step_px), indexing="ij"), axis=-1).reshape(
        -1, 2
    )
    grid = grid.astype(np.float64)
    forward = alignment.map_points(grid)
    inside = (
        (forward[:, 0] >= margin_px)
        & (forward[:, 0] <= ny - 1 - margin_px)
        & (forward[:, 1] >= margin_px)
        & (forward[:, 1] <= nx - 1 - margin_px)
    )
    if not inside.any():
        return float("nan")
    back = alignment.map_points_back(forward[inside])
    return float(np.linalg.norm(back - grid[inside], axis=1).mean())
