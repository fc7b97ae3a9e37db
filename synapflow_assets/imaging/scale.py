"""The pixel size of a layer whose file does not say: estimated from the width of its dendrites.

A dendrite shaft is the brightest tube in a two-photon layer and its width
varies far less between cells and labs (about 0.7-1.5 um) than fields of view
do (0.02-0.3 um per pixel), so its width in pixels gives the scale. The width
is a local half-maximum width (FWHM-like) measured across the tube at many
points of its centre line:

1. Ridge points: the centre lines of tube-like structures at the scale that
   fits them best, from the Hessian of the image smoothed at Gaussian scales
   1-45 px (``sigma^2 * (-lambda_1 - |lambda_2|)``: zero for round blobs such as
   spine heads and somata), computed on an image pyramid (cheap for wide tubes
   on large images) and thinned to the maxima across the tube.
2. At each ridge point, the profile across the tube (averaged over a short
   stretch along it) gives a local peak, a local background on each side (a low
   percentile of the profile a few widths out), and the width where the profile
   falls to half of peak minus background on each side. For a saturated
   (clipped) peak that width is too wide and a Gaussian through two flank levels
   too narrow (a dendrite's profile is flat-topped): their geometric mean is used.
3. Points where the profile is no tube are dropped (no fall to half within the
   window, brighter along than across as at the rim of a blob, or a contrast
   within the noise left in the profile); the width is the median, weighted by
   contrast times the length of centre line each point stands for, over the
   points of the main structures (at least half the contrast of the brightest
   tubes, together at least a few widths long).

Checked on the raw-layer simulator (:func:`synapflow_assets.synthetic.raw_layer.render_raw_layer`,
dendrite radius 0.55 um, PSF sigma 0.12-0.3 um, pixels 0.03-0.3 um, 9 layers per size): the median
estimate / true pixel size is 0.98 (0.995 on unsaturated layers), 93% of layers within 20%; one field
re-imaged 6 times (light, gain, saturation, noise) spreads by about 10% (max / min - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Apparent half-maximum width of a dendrite shaft (um); calibrated on raw-like rendered layers
#: (:mod:`synapflow_assets.synthetic.raw_layer`): the half-maximum width of a 0.55 um radius tube
#: seen through a 0.12-0.3 um PSF, as this module measures it (median estimate / truth 0.995 on
#: unsaturated layers, pixels 0.03-0.3 um).
DENDRITE_WIDTH_UM = 1.0

#: Gaussian scales (sigma, px of a pyramid level) computed on every level of the pyramid (level ``l`` has
#: pixels ``2**l`` px wide), and the finer ones computed on the full image only.
LEVEL_SCALES = (2.0, 2.0 * np.sqrt(2.0))
FINE_SCALES = (1.0, np.sqrt(2.0))
#: The largest scale (px, full image): tubes up to about 1.7x this wide are measured; at most an eighth
#: of the image side.
MAX_SCALE_PX = 48.0
#: The profile across a ridge point spans +-this many of its scales, sampled at ``PROFILE_SAMPLES`` points.
PROFILE_HALF_LENGTH = 5.0
PROFILE_SAMPLES = 81
#: Offsets (in scales) along the tube at which the profile is taken and averaged.
ALONG_OFFSETS = (-1.0, -0.5, 0.0, 0.5, 1.0)
#: The local peak is sought within +-this many scales of the ridge point.
PEAK_WINDOW = 0.75
#: Local background: this percentile of the profile beyond ``BACKGROUND_FROM`` scales, on each side.
BACKGROUND_FROM = 2.5
BACKGROUND_PERCENTILE = 20.0
#: Ridge points measured at most (an even subsample of the strongest when there are more).
MAX_RIDGE_POINTS = 4000
#: The contrast (peak - background) must be at least this many sigmas of the noise left in the profile
#: (the pixel noise after the averaging along and across the tube).
MIN_CONTRAST_SIGMA = 8.0
#: The peaks one scale along the tube on either side may differ by at most this share of the contrast
#: (the rim of a round blob looks like a tube across, but is brighter on its inner side).
MAX_ALONG_CHANGE = 0.5
#: Main structures: points with at least this share of the contrast of the brightest tubes (90th percentile).
MAIN_CONTRAST_SHARE = 0.5
#: The main structures' centre lines must be at least this many of their widths long together.
MIN_LENGTH_WIDTHS = 5.0
#: Flank levels (shares of the clipped contrast) a saturated profile is extrapolated from.
SATURATED_FLANK = (0.3, 0.7)
#: A saturated peak is extrapolated to at most this multiple of its clipped contrast.
MAX_EXTRAPOLATION = 10.0

#: A profile whose peak lies within this share of its contrast of the saturation value is saturated.
SATURATED_SLACK = 0.05


@dataclass(frozen=True)
class ScaleEstimate:
    """Result of :func:`estimate_pixel_size`.

    Attributes
    ----------
    pixel_size_um : float or None
        None when the layer holds no tube-like bright structure.
    dendrite_width_px : float
    ridge_pixels : int
        Ridge points the width is the median of (0 when nothing was found).
    """

    pixel_size_um: float | None
    dendrite_width_px: float
    ridge_pixels: int


@dataclass
class _Ridges:
    """Ridge points in full-image pixels: position (N, 2) (y, x), unit normal (N, 2), scale (N,) px,
    weight (N,) (pixels of centre line each stands for) and ridge strength (N,)."""

    position: np.ndarray
    normal: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    strength: np.ndarray


def pixel_noise(layer: np.ndarray) -> float:
    """Robust sigma of the pixel noise, from differences of neighbouring pixels along x."""
    return 1.4826 * float(np.median(np.abs(np.diff(layer, axis=1)))) / np.sqrt(2.0)


def _pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """``image`` and its 2x2 block means, ``levels`` in all."""
    out = [image]
    for _ in range(levels - 1):
        top = out[-1]
        h, w = (top.shape[0] // 2) * 2, (top.shape[1] // 2) * 2
        out.append(top[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)))
    return out


def _hessian(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Second derivatives (yy, xx, xy) of ``image`` smoothed by a Gaussian of ``sigma`` px (central differences
    of the smoothed image, edges repeated)."""
    smooth = np.pad(ndimage.gaussian_filter(image, sigma), 1, mode="edge")
    centre = smooth[1:-1, 1:-1]
    hyy = smooth[2:, 1:-1] + smooth[:-2, 1:-1] - 2.0 * centre
    hxx = smooth[1:-1, 2:] + smooth[1:-1, :-2] - 2.0 * centre
    hxy = 0.25 * (smooth[2:, 2:] + smooth[:-2, :-2] - smooth[2:, :-2] - smooth[:-2, 2:])
    return hyy, hxx, hxy


def _eigen(hyy: np.ndarray, hxx: np.ndarray, hxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues l1 <= l2 of the Hessian [[hyy, hxy], [hxy, hxx]]."""
    half_trace = 0.5 * (hxx + hyy)
    root = np.sqrt((0.5 * (hxx - hyy)) ** 2 + hxy**2)
    return half_trace - root, half_trace + root


def _ridge_strength(hessian: tuple[np.ndarray, np.ndarray, np.ndarray], sigma: float) -> np.ndarray:
    """Scale-normalised ridge strength ``sigma^2 (-l1 - |l2|)``, zero where negative: large across a bright
    tube of width ~ sigma, zero at the centre of a round blob."""
    l1, l2 = _eigen(*hessian)
    return np.maximum(np.float32(sigma**2) * (-l1 - np.abs(l2)), 0.0)


def _normal(hyy: np.ndarray, hxx: np.ndarray, hxy: np.ndarray) -> np.ndarray:
    """Unit eigenvector (N, 2) (y, x) of l1, the direction across a ridge (zero where undefined)."""
    l1, _ = _eigen(hyy, hxx, hxy)
    # (hxy, l1 - hyy) or (l1 - hxx, hxy), whichever is better conditioned
    a = np.stack([hxy, l1 - hyy], axis=1)
    b = np.stack([l1 - hxx, hxy], axis=1)
    vector = np.where((np.sum(a * a, axis=1) >= np.sum(b * b, axis=1))[:, None], a, b)
    norm = np.sqrt(np.sum(vector * vector, axis=1, keepdims=True))
    return np.where(norm > 0, vector / np.where(norm > 0, norm, 1.0), 0.0)


def _ridges(layer: np.ndarray, noise: float) -> _Ridges:
    """Centre-line points of tube-like structures, each at the scale whose ridge strength is largest there."""
    side = min(layer.shape)
    max_scale = min(MAX_SCALE_PX, side / 8.0)
    levels = 1
    while LEVEL_SCALES[-1] * 2**levels <= max_scale * np.sqrt(2.0) and side // 2**levels >= 16:
        levels += 1
    pyramid = _pyramid(layer, levels)
    maps = []  # (level, sigma in level px, strength, ny, nx)
    for level, image in enumerate(pyramid):
        for sigma in (FINE_SCALES + LEVEL_SCALES) if level == 0 else LEVEL_SCALES:
            if sigma * 2**level <= max_scale * np.sqrt(2.0) or (level == 0 and sigma <= LEVEL_SCALES[0]):
                hessian = _hessian(image, sigma)
                maps.append((level, sigma, _ridge_strength(hessian, sigma), hessian))
    top = max(float(m[2].max()) for m in maps)
    if top <= 0:
        return _Ridges(*(np.zeros((0, 2)),) * 2, *(np.zeros(0),) * 3)
    found = []
    for index, (level, sigma, strength, hessian) in enumerate(maps):
        factor = 2**level
        # white noise of sigma n, block-averaged over factor^2 px: ridge strength noise ~ 0.244 n / (factor sigma)
        floor = max(3.0 * 0.244 * noise / (factor * sigma), 1e-3 * top)
        y, x = np.nonzero(strength > floor)
        if len(y) == 0:
            continue
        value = strength[y, x]
        dy, dx = _normal(*(h[y, x] for h in hessian)).T
        ahead = ndimage.map_coordinates(strength, [y + dy, x + dx], order=1, mode="nearest")
        behind = ndimage.map_coordinates(strength, [y - dy, x - dx], order=1, mode="nearest")
        keep = (value >= ahead) & (value > behind)
        found.append(
            (
                np.stack([(y[keep] + 0.5) * factor - 0.5, (x[keep] + 0.5) * factor - 0.5], axis=1),
                np.stack([dy[keep], dx[keep]], axis=1),
                np.full(int(keep.sum()), index),
                value[keep],
            )
        )
    if not found:
        return _Ridges(*(np.zeros((0, 2)),) * 2, *(np.zeros(0),) * 3)
    position, normal, owner, strength = (np.concatenate(part) for part in zip(*found, strict=False))
    # a point stays where its own scale is the strongest there (scale selection)
    best = np.zeros(len(position))
    for level, _, other, _ in maps:
        coords = (position.T + 0.5) / 2**level - 0.5
        best = np.maximum(best, ndimage.map_coordinates(other, coords, order=1, mode="nearest"))
    keep = strength >= best * (1.0 - 1e-3)
    position, normal, owner, strength = position[keep], normal[keep], owner[keep], strength[keep]
    if len(position) > MAX_RIDGE_POINTS:
        chosen = np.sort(np.argsort(strength)[::-1][: 4 * MAX_RIDGE_POINTS])
        chosen = chosen[np.linspace(0, len(chosen) - 1, MAX_RIDGE_POINTS).astype(int)]
        position, normal, owner, strength = position[chosen], normal[chosen], owner[chosen], strength[chosen]
    level = np.array([m[0] for m in maps])[owner]
    scale = np.array([m[1] * 2 ** m[0] for m in maps])[owner]
    return _Ridges(position, normal, scale, (2.0**level).astype(np.float64), strength)


def _average(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Samples (N, along, across) averaged along (NaN where none is inside the image) and smoothed across
    by [1, 2, 1] / 4."""
    counted = np.sum(inside, axis=1)
    total = np.sum(np.where(inside, values, 0.0), axis=1)
    profile = np.where(counted > 0, total / np.maximum(counted, 1), np.nan)
    padded = np.pad(profile, ((0, 0), (1, 1)), mode="edge")
    return 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]


_NOISE_FIELD = np.random.default_rng(0).standard_normal((128, 128)).astype(np.float32)


def _profiles(layer: np.ndarray, ridges: _Ridges) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profiles across the ridges (N, PROFILE_SAMPLES), averaged along them (NaN outside the image) and
    lightly smoothed; the peaks (N, len(ALONG_OFFSETS)) of the profile at each offset along; and the sigma
    (N,) of a profile sampled so from white noise of sigma 1 (the same for every point of one scale)."""
    across = np.linspace(-PROFILE_HALF_LENGTH, PROFILE_HALF_LENGTH, PROFILE_SAMPLES)
    along = np.asarray(ALONG_OFFSETS)
    normal = ridges.normal
    tangent = np.stack([normal[:, 1], -normal[:, 0]], axis=1)
    s = ridges.scale[:, None, None]
    coords = (
        ridges.position[:, None, None, :]
        + across[None, None, :, None] * s[..., None] * normal[:, None, None, :]
        + along[None, :, None, None] * s[..., None] * tangent[:, None, None, :]
    )  # (N, along, across, 2)
    h, w = layer.shape
    inside = (coords[..., 0] >= 0) & (coords[..., 0] <= h - 1) & (coords[..., 1] >= 0) & (coords[..., 1] <= w - 1)
    flat = coords.reshape(-1, 2).T
    values = ndimage.map_coordinates(layer, flat, order=1, mode="nearest").reshape(inside.shape)
    values = np.where(inside, values, np.nan)
    profile = _average(values, inside)
    centre = np.abs(across) <= PEAK_WINDOW
    peaks = np.max(np.where(centre[None, None, :], np.nan_to_num(values, nan=-np.inf), -np.inf), axis=2)
    # the same sampling of white noise: how much of the pixel noise is left in a profile of each scale
    everywhere = np.ones_like(inside)
    noise = _average(
        ndimage.map_coordinates(_NOISE_FIELD, flat, order=1, mode="grid-wrap").reshape(inside.shape), everywhere
    )
    _scales, group = np.unique(ridges.scale, return_inverse=True)
    spread = np.bincount(group, weights=np.sum(noise**2, axis=1)) / (np.bincount(group) * noise.shape[1])
    return profile, peaks, np.sqrt(spread)[group]


def _crossing(profile: np.ndarray, start: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Sample position (fractional index) where each row first falls below ``level`` going up from ``start``;
    NaN when it does not (or meets the edge of the image first)."""
    n, k = profile.shape
    index = np.arange(k)[None, :]
    after = index > start[:, None]
    below = after & (profile < level[:, None])
    missing = after & np.isnan(profile)
    first = np.where(below.any(axis=1), below.argmax(axis=1), k)
    blocked = np.where(missing.any(axis=1), missing.argmax(axis=1), k)
    ok = (first < k) & (first < blocked)
    j = np.clip(first, 1, k - 1)
    rows = np.arange(n)
    upper, lower = profile[rows, j - 1], profile[rows, j]
    fraction = np.clip((upper - level) / np.where(upper > lower, upper - lower, 1.0), 0.0, 1.0)
    return np.where(ok, j - 1 + fraction, np.nan)


def _row_percentile(values: np.ndarray, q: float) -> np.ndarray:
    """Percentile ``q`` of each row's finite values (linear interpolation), NaN for a row without any."""
    ordered = np.sort(values, axis=1)  # NaN last
    count = np.sum(np.isfinite(values), axis=1)
    position = q / 100.0 * np.maximum(count - 1, 0)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, np.maximum(count - 1, 0))
    rows = np.arange(len(values))
    low, high = ordered[rows, below], ordered[rows, above]
    return np.where(count > 0, low + (position - below) * (high - low), np.nan)


def _saturation(layer: np.ndarray) -> float:
    """The value the detector saturated at (the maximum, when pixels pile up there), else +inf."""
    top = float(layer.max())
    at_top = int(np.count_nonzero(layer >= top))
    span = top - float(layer.min())
    near = int(np.count_nonzero((layer >= top - 0.02 * span) & (layer < top)))
    return top if at_top >= max(5, 1e-4 * layer.size) and at_top > near else np.inf


def _widths(layer: np.ndarray, ridges: _Ridges, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Local half-maximum width (px) and contrast at each ridge point; NaN width where it is no tube."""
    profile, peaks_along, profile_noise = _profiles(layer, ridges)
    n, k = profile.shape
    across = np.linspace(-PROFILE_HALF_LENGTH, PROFILE_HALF_LENGTH, k)
    step = across[1] - across[0]
    centre = np.abs(across) <= PEAK_WINDOW
    windowed = np.where(centre[None, :], np.nan_to_num(profile, nan=-np.inf), -np.inf)
    peak_index = windowed.argmax(axis=1)
    peak = windowed[np.arange(n), peak_index]
    window = np.flatnonzero(centre)
    interior = (peak_index > window[0]) & (peak_index < window[-1])  # a maximum, not a slope
    sides = [
        _row_percentile(profile[:, outward], BACKGROUND_PERCENTILE)
        for outward in (across >= BACKGROUND_FROM, across <= -BACKGROUND_FROM)
    ]
    right_bg = np.where(np.isnan(sides[0]), sides[1], sides[0])
    left_bg = np.where(np.isnan(sides[1]), sides[0], sides[1])
    clipped = peak - 0.5 * (right_bg + left_bg)
    saturated = peak >= _saturation(layer) - SATURATED_SLACK * clipped
    flipped = profile[:, ::-1]
    start_left = k - 1 - peak_index

    def width_at(share: float) -> np.ndarray:
        right = _crossing(profile, peak_index, right_bg + share * (peak - right_bg))
        left = _crossing(flipped, start_left, left_bg + share * (peak - left_bg))
        return (right - (k - 1 - left)) * step * ridges.scale

    half = width_at(0.5)
    # A clipped (saturated) peak: the half-maximum width of the clipped profile is too wide, a Gaussian through
    # two flank levels a < b of the clipped contrast C (sigma^2 = (w_a^2 - w_b^2) / (8 ln(b / a)), w the full
    # widths) too narrow for a flat-topped dendrite profile; their geometric mean is taken. The Gaussian's
    # amplitude, b C exp(w_b^2 / (8 sigma^2)), ranks the point among the structures.
    low, high = SATURATED_FLANK
    w_low, w_high = width_at(low), width_at(high)
    sigma2 = (w_low**2 - w_high**2) / (8.0 * np.log(high / low))
    sigma2 = np.where(sigma2 > 0, sigma2, np.nan)
    width = np.where(saturated, np.sqrt(half * np.sqrt(8.0 * np.log(2.0) * sigma2)), half)
    amplitude = high * clipped * np.exp(np.minimum(w_high**2 / (8.0 * sigma2), np.log(MAX_EXTRAPOLATION / high)))
    contrast = np.where(saturated, amplitude, clipped)
    along = np.abs(peaks_along[:, -1] - peaks_along[:, 0])
    inside_window = (half <= 2.0 * BACKGROUND_FROM * ridges.scale) & (half > 0)
    tube = (
        (interior | saturated)
        & inside_window
        & (clipped >= np.maximum(MIN_CONTRAST_SIGMA * noise * profile_noise, 1e-12))
        & np.isfinite(along)
        & (along <= MAX_ALONG_CHANGE * clipped)
    )
    return np.where(tube, width, np.nan), contrast


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, q * cumulative[-1])])


def dendrite_width_px(layer: np.ndarray) -> tuple[float, int]:
    """Local half-maximum width (px) of the brightest tubes of a 2D layer, and the ridge points measured.

    Parameters
    ----------
    layer : ndarray (H, W)

    Returns
    -------
    width : float
        NaN when no tube-like bright structure is found.
    ridge_pixels : int
        Ridge points the width is the (length-weighted) median of.
    """
    image = np.asarray(layer, np.float32)
    if image.ndim != 2 or min(image.shape) < 8 or float(image.max()) <= float(image.min()):
        return float("nan"), 0
    noise = pixel_noise(image)
    ridges = _ridges(image, noise)
    if len(ridges.position) == 0:
        return float("nan"), 0
    width, contrast = _widths(image, ridges, noise)
    ok = np.isfinite(width)
    if ok.sum() < 5:
        return float("nan"), int(ok.sum())
    width, contrast, weight = width[ok], contrast[ok], ridges.weight[ok]
    main = contrast >= MAIN_CONTRAST_SHARE * _weighted_quantile(contrast, weight, 0.9)
    if main.sum() < 5:
        return float("nan"), int(main.sum())
    median = _weighted_quantile(width[main], (weight * contrast)[main], 0.5)
    if weight[main].sum() < MIN_LENGTH_WIDTHS * median:
        return float("nan"), int(main.sum())  # no tube: too little centre line for its width
    return median, int(main.sum())


def estimate_pixel_size(layer: np.ndarray, *, dendrite_width_um: float = DENDRITE_WIDTH_UM) -> ScaleEstimate:
    """Estimate a layer's pixel size (um/px) from the half-maximum width of its dendrites.

    Parameters
    ----------
    layer : ndarray (H, W) or (Z, H, W)
        A stack is measured on its maximum-intensity projection.
    dendrite_width_um : float
        The assumed half-maximum width of a dendrite shaft.

    Returns
    -------
    ScaleEstimate
    """
    layer = np.asarray(layer)
    if layer.ndim == 3:
        layer = layer.max(axis=0)
    width, ridge = dendrite_width_px(layer)
    if not np.isfinite(width) or width < 2.5:
        return ScaleEstimate(None, width, ridge)
    return ScaleEstimate(dendrite_width_um / width, width, ridge)
