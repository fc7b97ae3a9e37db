"""Rigid maps between two sessions' layers: rotation about the image centre, then a shift; their fit."""

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.transform import EuclideanTransform


def rigid_transform(rotation_deg: float, shift_yx: Sequence[float], shape_yx: Sequence[int]) -> EuclideanTransform:
    """The rigid map as a ``skimage.transform.EuclideanTransform`` on (y, x) points.

    Parameters
    ----------
    rotation_deg : float
        Rotation about the image centre, counter-clockwise in x/y.
    shift_yx : (float, float)
        Shift applied after the rotation.
    shape_yx : (int, int)
        Layer shape; its centre is ``(shape - 1) / 2``.

    Returns
    -------
    EuclideanTransform
        Moving to reference: ``yx -> R (yx - centre) + centre + shift``; its ``inverse`` unshifts, then rotates
        back. The points are (y, x) throughout, so the first coordinate plays the role of skimage's x.
    """
    centre = (np.asarray(shape_yx, dtype=np.float64) - 1) / 2
    shift = np.asarray(shift_yx, dtype=np.float64)
    return (
        EuclideanTransform(translation=-centre)
        + EuclideanTransform(rotation=np.deg2rad(rotation_deg))
        + EuclideanTransform(translation=centre + shift)
    )


def _apply(transform: EuclideanTransform, yx: np.ndarray) -> np.ndarray:
    """``transform`` on points of any leading shape (..., 2)."""
    return yx @ transform.params[:2, :2].T + transform.params[:2, 2]


def _resample(image: np.ndarray, transform: EuclideanTransform) -> np.ndarray:
    """``image`` sampled at ``transform`` of each output pixel (``scipy.ndimage.affine_transform``'s pull
    convention), linearly, with the image's median outside."""
    return ndimage.affine_transform(
        image,
        transform.params[:2, :2],
        transform.params[:2, 2],
        order=1,
        mode="constant",
        cval=float(np.median(image)),
    )


def rigid_map(yx: np.ndarray, rotation_deg: float, shift_yx: Sequence[float], shape_yx: Sequence[int]) -> np.ndarray:
    """Rotate points about the image centre by ``rotation_deg`` (counter-clockwise in x/y), then shift."""
    return _apply(rigid_transform(rotation_deg, shift_yx, shape_yx), yx)


def rigid_unmap(yx: np.ndarray, rotation_deg: float, shift_yx: Sequence[float], shape_yx: Sequence[int]) -> np.ndarray:
    """The inverse of ``rigid_map``: unshift, then rotate back about the image centre."""
    return _apply(rigid_transform(rotation_deg, shift_yx, shape_yx).inverse, yx)


def warp_to_moving(image: np.ndarray, rotation_deg: float, shift_yx: Sequence[float]) -> np.ndarray:
    """Resample a reference 2D image onto the moving grid through the inverse rigid map."""
    return _resample(image, rigid_transform(rotation_deg, shift_yx, image.shape).inverse)


def warp_to_reference(image: np.ndarray, rotation_deg: float, shift_yx: Sequence[float]) -> np.ndarray:
    """Resample a moving 2D image onto the reference grid through the rigid map."""
    return _resample(image, rigid_transform(rotation_deg, shift_yx, image.shape))


def fit_rigid(
    points: np.ndarray, targets: np.ndarray, iterations: int = 3, max_error_px: float = 1.5
) -> tuple[float, np.ndarray, np.ndarray]:
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
