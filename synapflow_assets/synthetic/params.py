"""Parameters of the chronic two-photon simulator, all with physical meaning."""

from dataclasses import dataclass

#: Spine types, in the order of their integer codes.
SPINE_TYPES = ("mushroom", "stubby", "thin", "filopodium")


@dataclass(frozen=True)
class SimulationParams:
    """Everything the simulator needs, with defaults for a typical experiment.

    Lengths are in micrometres (um) unless the name says ``_px`` (x/y pixels)
    or ``_layers`` (z layers).

    Attributes
    ----------
    shape : tuple of int
        Volume shape (z, y, x) of one session.
    voxel_size_um : tuple of float
        Voxel size (z, y, x) in um.
    n_dendrites : tuple of int
        Inclusive range of the number of dendrites crossing the field.
    dendrite_radius_um : tuple of float
        Range of dendrite radii (diameter 0.8-1.2 um by default).
    dendrite_wiggle_um : float
        Amplitude of the lateral bending of a dendrite.
    dendrite_depth_wiggle_um : float
        Amplitude of the slow depth (z) variation along a dendrite.
    world_margin_um : float
        Margin of the animal's world around the field of view, so spines can
        drift in and out of view.
    spine_density_per_um : tuple of float
        Range of spine densities along a dendrite (one value per dendrite).
    type_probabilities : tuple of float
        Probabilities of mushroom, stubby, thin, filopodium.
    min_head_gap_um : float
        Spines are placed so that their heads keep at least this gap (surface
        to surface, in 3D); real spine heads do not overlap.
    spine_tilt_z_deg : float
        Standard deviation of the spine axis tilt out of the xy plane.
    spine_angle_xy_deg : float
        Standard deviation of the deviation from perpendicular in xy.
    psf_sigma_px : float
        Gaussian point-spread sigma in x/y, in pixels.
    psf_sigma_layers : float
        Gaussian point-spread sigma in z, in layers.
    photons_per_voxel : float
        Expected photon count of a voxel fully filled with labelled cytosol.
    background_photons : float
        Mean autofluorescence (photons per voxel), modulated by a smooth field.
    background_variation : float
        Relative amplitude of the smooth background field.
    offset_counts : float
        Detector offset added after shot noise.
    read_noise_counts : float
        Standard deviation of the Gaussian read noise.
    layer_jitter_px : float
        Standard deviation of the per-layer x/y random-walk step (rigid
        sub-pixel motion during acquisition); the middle layer is unshifted.
    max_drift_px : float
        Maximal |dy| and |dx| of the global drift of a session.
    max_drift_layers : float
        Maximal |dz| of the global drift of a session.
    max_rotation_deg : float
        Maximal rotation of a session about z.
    min_motion_fraction : float
        Drift components and rotation are drawn with a magnitude of at least
        this fraction of their maximum (random sign): 0 draws them uniformly,
        0.9 makes every session move almost as far as allowed (a stress test).
    deformation_px : float
        Amplitude of the smooth local x/y deformation.
    max_brightness_change : float
        Maximal relative brightness change of a session (0.2 = +-20 %).
    first_session_static : bool
        Session 0 has no drift, rotation, deformation or brightness change:
        it defines the registered frame the world is drawn in.
    elimination_prob : float
        Probability that an existing spine disappears before a session.
    formation_rate : float
        Expected number of new spines per session, as a fraction of the spines
        alive before it.
    size_walk_sigma : float
        Sigma of the log-normal multiplicative random walk of head size.
    """

    shape: tuple[int, int, int] = (32, 512, 512)
    voxel_size_um: tuple[float, float, float] = (1.0, 0.12, 0.12)
    n_dendrites: tuple[int, int] = (2, 3)
    dendrite_radius_um: tuple[float, float] = (0.4, 0.6)
    dendrite_wiggle_um: float = 3.0
    dendrite_depth_wiggle_um: float = 3.0
    world_margin_um: float = 6.0
    spine_density_per_um: tuple[float, float] = (0.3, 0.6)
    type_probabilities: tuple[float, float, float, float] = (0.35, 0.2, 0.35, 0.1)
    spine_tilt_z_deg: float = 10.0
    spine_angle_xy_deg: float = 15.0
    min_head_gap_um: float = 0.5
    psf_sigma_px: float = 1.2
    psf_sigma_layers: float = 1.0
    photons_per_voxel: float = 1500.0
    background_photons: float = 40.0
    background_variation: float = 0.5
    offset_counts: float = 100.0
    read_noise_counts: float = 5.0
    layer_jitter_px: float = 0.5
    max_drift_px: float = 20.0
    max_drift_layers: float = 2.0
    max_rotation_deg: float = 2.0
    min_motion_fraction: float = 0.0
    deformation_px: float = 1.5
    max_brightness_change: float = 0.2
    first_session_static: bool = True
    elimination_prob: float = 0.1
    formation_rate: float = 0.1
    size_walk_sigma: float = 0.1
