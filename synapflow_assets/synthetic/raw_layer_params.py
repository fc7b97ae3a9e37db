"""The ranges a raw-like training layer is drawn from (domain randomisation)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class RawLayerParams:
    """Ranges of the domain randomisation (lengths in um, uniform unless noted).

    Attributes
    ----------
    pixel_size_um : (float, float)
        Camera pixel size, log-uniform.
    field_um : float
        Side of the rendered field.
    n_dendrites : (int, int)
        In-focus dendrites (inclusive range).
    dendrite_radius_um : (float, float)
    spine_density_per_um : (float, float)
        Spines per um of dendrite (both sides together).
    type_weights : tuple of 5 floats
        Relative frequency of mushroom, stubby, branched, thin, filopodium;
        rare types are over-represented so that the detector learns them.
    n_axons, n_debris, n_blurred : (int, int)
        Axons with boutons, loose blobs and out-of-focus dendrites (hard negatives).
    psf_sigma_um : (float, float)
        Lateral PSF sigma; x and y are drawn separately (anisotropic PSF).
    peak_photons : (float, float)
        Photons at the centre of a 1 um thick dendrite, log-uniform (very low light to bright).
    background_fraction : (float, float)
        Autofluorescence relative to the dendrite peak, log-uniform.
    saturation : (float, float)
        Dendrite peak as a fraction of the full scale, log-uniform (> 1 saturates).
    bit_depths : tuple of int
    read_noise_fraction : (float, float)
        Read noise sigma as a fraction of one photon's signal.
    visible_snr : float
        Spines whose brightest expected photons stand less than this many
        shot-noise sigmas above the rest (or lie in saturated tissue) are not labelled.
    """

    pixel_size_um: tuple[float, float] = (0.05, 0.3)
    field_um: float = 46.0
    n_dendrites: tuple[int, int] = (1, 3)
    dendrite_radius_um: tuple[float, float] = (0.35, 0.75)
    spine_density_per_um: tuple[float, float] = (0.2, 0.7)
    type_weights: tuple[float, float, float, float, float] = (0.3, 0.2, 0.15, 0.2, 0.15)
    n_axons: tuple[int, int] = (0, 4)
    n_debris: tuple[int, int] = (0, 15)
    n_blurred: tuple[int, int] = (0, 3)
    psf_sigma_um: tuple[float, float] = (0.12, 0.3)
    peak_photons: tuple[float, float] = (6.0, 400.0)
    background_fraction: tuple[float, float] = (0.02, 0.4)
    saturation: tuple[float, float] = (0.3, 3.0)
    bit_depths: tuple[int, ...] = (8, 12, 16)
    read_noise_fraction: tuple[float, float] = (0.0, 1.0)
    visible_snr: float = 8.0
