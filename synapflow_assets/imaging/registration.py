"""Rigid registration of the layers of a z-stack by sub-pixel phase correlation."""

import numpy as np
from scipy import fft, ndimage


def _window(shape: tuple[int, int]) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1])).astype(np.float32)


def phase_correlation(
    reference: np.ndarray, moving: np.ndarray, smoothing_px: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Translation that aligns ``moving`` onto ``reference``, batched over leading axes.

    Parameters
    ----------
    reference, moving : ndarray, shape (..., y, x)
        Images of equal shape; leading axes are broadcast as a batch.
    smoothing_px : float
        Width of the Gaussian that shapes the correlation peak; it makes the
        peak smooth enough for a sub-pixel Gaussian fit.

    Returns
    -------
    shift : ndarray, shape (..., 2)
        (dy, dx) in pixels; ``ndimage.shift(moving, shift)`` matches ``reference``.
    peak : ndarray, shape (...)
        Height of the correlation peak over the standard deviation of the
        correlation surface; values below about 15 mean no reliable match.
    """
    ref = np.asarray(reference, dtype=np.float32)
    mov = np.asarray(moving, dtype=np.float32)
    ny, nx = ref.shape[-2:]
    win = _window((ny, nx))
    ref = (ref - ref.mean(axis=(-2, -1), keepdims=True)) * win
    mov = (mov - mov.mean(axis=(-2, -1), keepdims=True)) * win
    cross = fft.rfft2(ref, workers=-1) * np.conj(fft.rfft2(mov, workers=-1))
    cross /= np.abs(cross) + 1e-12
    ky = fft.fftfreq(ny)[:, None]
    kx = fft.rfftfreq(nx)[None, :]
    cross *= np.exp(-2 * (np.pi * smoothing_px) ** 2 * (ky**2 + kx**2)).astype(np.float32)
    surface = fft.irfft2(cross, s=(ny, nx), workers=-1)

    flat = surface.reshape(*surface.shape[:-2], -1)
    best = flat.argmax(axis=-1)
    py, px = np.divmod(best, nx)
    spread = flat.std(axis=-1) + 1e-12
    peak = np.take_along_axis(flat, best[..., None], axis=-1)[..., 0] / spread

    def sample(dy: int, dx: int) -> np.ndarray:
        idx = ((py + dy) % ny) * nx + (px + dx) % nx
        value = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
        return np.log(np.maximum(value, 1e-12))

    centre = sample(0, 0)
    offsets = []
    for minus, plus in ((sample(-1, 0), sample(1, 0)), (sample(0, -1), sample(0, 1))):
        curvature = minus - 2 * centre + plus
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = np.where(curvature < 0, 0.5 * (minus - plus) / curvature, 0.0)
        offsets.append(np.clip(delta, -0.5, 0.5))
    shift_y = (py + offsets[0] + ny // 2) % ny - ny // 2
    shift_x = (px + offsets[1] + nx // 2) % nx - nx // 2
    return np.stack([shift_y, shift_x], axis=-1), peak


def layer_shifts(
    stack: np.ndarray, max_shift_px: float = 20.0, min_peak: float = 15.0
) -> tuple[np.ndarray, np.ndarray]:
    """Shift of every layer relative to the middle layer of the stack.

    Consecutive layers are matched to each other; a pair whose correlation
    peak is weaker than ``min_peak`` or whose shift exceeds ``max_shift_px``
    (empty or noisy layers) is taken as no motion.

    Parameters
    ----------
    stack : ndarray, shape (z, y, x)
    max_shift_px : float
        Largest plausible motion between two consecutive layers.
    min_peak : float
        Smallest correlation peak (in standard deviations) trusted as a match.

    Returns
    -------
    shifts : ndarray, shape (z, 2)
        (dy, dx) to apply to each layer; zero for the middle layer.
    reliable : ndarray of bool, shape (z - 1,)
        Whether the match between layer k and k + 1 was trusted.
    """
    if stack.shape[0] < 2:
        return np.zeros((stack.shape[0], 2)), np.zeros(0, dtype=bool)
    step, peak = phase_correlation(stack[:-1], stack[1:])
    reliable = (peak >= min_peak) & (np.hypot(*step.T) <= max_shift_px)
    step = np.where(reliable[:, None], step, 0.0)
    shifts = np.concatenate([np.zeros((1, 2)), np.cumsum(step, axis=0)])
    return shifts - shifts[stack.shape[0] // 2], reliable


def apply_layer_shifts(stack: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shift every layer by its (dy, dx) with linear interpolation, keeping the dtype."""
    out = np.empty_like(stack)
    for k, (layer, shift) in enumerate(zip(stack, shifts, strict=False)):
        moved = ndimage.shift(layer.astype(np.float32), shift, order=1, mode="nearest")
        if np.issubdtype(stack.dtype, np.integer):
            info = np.iinfo(stack.dtype)
            moved = np.clip(np.rint(moved), info.min, info.max)
        out[k] = moved
    return out


def register_layers(stack: np.ndarray, max_shift_px: float = 20.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Align the layers of a stack rigidly to its middle layer.

    Returns
    -------
    aligned : ndarray, shape (z, y, x)
    shifts : ndarray, shape (z, 2)
        The (dy, dx) applied to each layer.
    residual_px : float
        Mean remaining shift between consecutive aligned layers (trusted pairs
        only); near zero when registration worked.
    """
    shifts, _ = layer_shifts(stack, max_shift_px)
    aligned = apply_layer_shifts(stack, shifts) if np.any(shifts) else stack.copy()
    return aligned, shifts, registration_residual(aligned, max_shift_px)


def registration_residual(aligned: np.ndarray, max_shift_px: float = 20.0) -> float:
    """Mean shift magnitude still found between consecutive layers of an aligned stack."""
    if aligned.shape[0] < 2:
        return 0.0
    step, peak = phase_correlation(aligned[:-1], aligned[1:])
    size = np.hypot(*step.T)
    trusted = (peak >= 15.0) & (size <= max_shift_px)
    return float(size[trusted].mean()) if trusted.any() else 0.0
