"""Per-session placement of the world in the image: drift, rotation, deformation.

The transform acts on geometry points, not on images, so the ground truth of
every session is exact.
"""

from dataclasses import dataclass, field

import numpy as np

from .params import SimulationParams


@dataclass(frozen=True)
class SessionTransform:
    """Maps world points (um) to session pixel coordinates (z, y, x).

    ``pixel = R(rotation) (p / voxel - c) + c + deformation + drift`` where the
    rotation about z turns about the image centre ``c`` and the deformation is
    a smooth x/y displacement field (a sum of a few long-wavelength sines).

    Attributes
    ----------
    drift_px : tuple of float
        Global drift (dz, dy, dx) in layers / pixels.
    rotation_deg : float
        Rotation about z, counter-clockwise in the (x, y) plane.
    brightness : float
        Multiplicative brightness of the session (1.0 = unchanged).
    wave_vectors : ndarray (k, 2)
        Deformation wave vectors (cycles per pixel, y/x).
    phases : ndarray (k,)
    amplitudes : ndarray (k, 2)
        Deformation amplitudes (dy, dx) in pixels per sine.
    """

    drift_px: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation_deg: float = 0.0
    brightness: float = 1.0
    wave_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    phases: np.ndarray = field(default_factory=lambda: np.zeros(0))
    amplitudes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    def to_pixels(self, points_um: np.ndarray, params: SimulationParams) -> np.ndarray:
        """Session pixel coordinates (..., 3) of world points (..., 3) in um."""
        p = np.asarray(points_um, float) / np.asarray(params.voxel_size_um)
        centre = (np.asarray(params.shape[1:], float) - 1) / 2
        a = np.deg2rad(self.rotation_deg)
        dy, dx = p[..., 1] - centre[0], p[..., 2] - centre[1]
        y = centre[0] + np.cos(a) * dy - np.sin(a) * dx
        x = centre[1] + np.sin(a) * dy + np.cos(a) * dx
        if len(self.phases):
            arg = 2 * np.pi * (y[..., None] * self.wave_vectors[:, 0] + x[..., None] * self.wave_vectors[:, 1])
            s = np.sin(arg + self.phases)
            y, x = y + s @ self.amplitudes[:, 0], x + s @ self.amplitudes[:, 1]
        dz, ddy, ddx = self.drift_px
        return np.stack([p[..., 0] + dz, y + ddy, x + ddx], axis=-1)


def draw_transform(
    params: SimulationParams, rng: np.random.Generator, index: int, n_modes: int = 3
) -> SessionTransform:
    """Random transform of session ``index`` within the configured maxima.

    Drift components are uniform in ``[-max, max]``; the deformation's summed
    sine amplitudes are at most ``params.deformation_px`` per axis.
    """
    if index == 0 and params.first_session_static:
        return SessionTransform()
    low = params.min_motion_fraction
    motion = lambda: rng.choice([-1.0, 1.0]) * rng.uniform(low, 1) if low > 0 else rng.uniform(-1, 1)
    drift = (motion() * params.max_drift_layers, motion() * params.max_drift_px, motion() * params.max_drift_px)
    wavelength = rng.uniform(150, 400, n_modes)
    angle = rng.uniform(0, 2 * np.pi, n_modes)
    waves = np.column_stack([np.sin(angle), np.cos(angle)]) / wavelength[:, None]
    amps = rng.standard_normal((n_modes, 2))
    amps *= params.deformation_px / np.maximum(np.abs(amps).sum(0), 1e-9)
    return SessionTransform(
        drift_px=(float(drift[0]), float(drift[1]), float(drift[2])),
        rotation_deg=float(motion() * params.max_rotation_deg),
        brightness=float(1 + rng.uniform(-1, 1) * params.max_brightness_change),
        wave_vectors=waves,
        phases=rng.uniform(0, 2 * np.pi, n_modes),
        amplitudes=amps,
    )
