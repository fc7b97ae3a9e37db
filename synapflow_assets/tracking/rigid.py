"""Rigid maps between two sessions' layers: rotation about the image centre, then a shift; their fit."""

import numpy as np
from scipy import ndimage
from skimage.transform import EuclideanTransform


def _rigid_affine(rotation_deg: float, shift_yx, shape_yx, *, inverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The rigid map as ``(matrix, offset)`` on (y, x) points: ``yx -> matrix @ yx + offset``.

    Parameters
    ----------
    rotation_deg : float
        Rotation about the image centre, counter-clockwise in x/y.
    shift_yx : (float, float)
        Shift applied after the rotation.
    shape_yx : (int, int)
        Layer shape; its centre is ``(shape - 1) / 2``.
    inverse : bool
        The inverse map (unshift, then rotate back) instead.

    Returns
    -------
    matrix : numpy.ndarray, shape (2, 2)
    offset : numpy.ndarray, shape (2,)
        In the convention of ``scipy.ndimage.affine_transform``.
    """
    centre = (np.asarray(shape_yx, dtype=np.float64) - 1) / 2
    shift = np.asarray(shift_yx, dtype=np.float64)
    a = np.deg2rad(rotation_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    if inverse:
        return rotation.T, centre - rotation.T @ (centre + shift)
    return rotation, centre - rotation @ centre + shift


def rigid_map(yx: np.ndarray, rotation_deg: float, shift_yx, shape_yx) -> np.ndarray:
    """Rotate points about the image centre by ``rotation_deg`` (counter-clockwise in x/y), then shift."""
    matrix, offset = _rigid_affine(rotation_deg, shift_yx, shape_yx)
    return yx @ matrix.T + offset


def rigid_unmap(yx: np.ndarray, rotation_deg: float, shift_yx, shape_yx) -> np.ndarray:
    """The inverse of ``rigid_map``: unshift, then rotate back about the image centre."""
    matrix, offset = _rigid_affine(rotation_deg, shift_yx, shape_yx, inverse=True)
    return yx @ matrix.T + offset


def warp_to_moving(image: np.ndarray, rotation_deg: float, shift_yx) -> np.ndarray:
    """Resample a reference 2D image onto the moving grid through the inverse rigid map."""
    matrix, offset = _rigid_affine(rotation_deg, shift_yx, image.shape, inverse=True)
    return ndimage.affine_transform(image, matrix, offset, order=1, mode="constant", cval=float(np.median(image)))


def warp_to_reference(image: np.ndarray, rotation_deg: float, shift_yx) -> np.ndarray:
    """Resample a moving 2D image onto the reference grid through the rigid map."""
    matrix, offset = _rigid_affine(rotation_deg, shift_yx, image.shape)
    return ndimage.affine_transform(image, matrix, offset, order=1, mode="constant", cval=float(np.median(image)))


def fit_rigid(points: np.ndarray, targets: np.ndarray, iterations: int = 3, max_error_px: float = 1.5):
    """Least-squares rotation + translation of points onto targets, refit without outliers.

    Each fit is ``skimage.transform.EuclideanTransform.from_estimate`` (Umeyama's
    least squares). Returns the rotation (degrees, about the origin), translation
    (2,) and inlier mask.
    """
    inliers = np.ones(len(points), dtype=bool)
    angle, translation = 0.0, np.zeros(2)
    for _ in range(iterations):
        if inliers.sum() < 3:
            break
        fit = EuclideanTransform.from_estimate(points[inliers], targets[inliers])
        if not fit:
            break
        angle, translation = fit.rotation, fit.translation
        error = np.linalg.norm(fit(points) - targets, axis=1)
        inliers = error <= max(max_error_px, 2.5 * np.median(error[inliers]))
    return float(np.rad2deg(angle)), translation, inliers
