"""Single raw two-photon layers with domain randomisation, for training and validating the detector.

A layer is drawn in micrometres and imaged like a two-photon microscope:
labelled tissue (dendrites with spines of five types, axons with boutons,
debris, out-of-focus dendrites) becomes the thickness of cytosol inside the
focal slice on a fine grid, is blurred by an anisotropic Gaussian PSF, binned
into camera pixels of 0.05-0.3 um, and turned into Poisson photon counts over
autofluorescence and haze, with gain, offset, read noise, saturation and an
8, 12 or 16-bit range. Every draw comes from :class:`RawLayerParams`, so the
same physics serves pre-training, validation and the scale-estimate tests.

Tubes and balls are rendered from distance transforms of their rasterised
centres (one transform per kind of object), never by looping over pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .acquisition import acquire_counts, loguniform, spine_snr, upsample
from .raw_layer_params import RawLayerParams

#: Type names in label order (see ``detection.model.SPINE_TYPES``).
RAW_SPINE_TYPES = ("mushroom", "stubby", "branched", "thin", "filopodium")
#: A spine box is its extent plus this many PSF sigmas on each side: measured on the real annotated
#: spines, boxes drawn at 0.5 sigma were 1.27x smaller than the detector learned from them.
BOX_MARGIN_PSF = 1.5


@dataclass
class RawLayer:
    """A rendered layer with its truth.

    Attributes
    ----------
    image : ndarray (H, W), uint8 or uint16
    boxes : ndarray float32 (N, 4)
        Spine boxes, xyxy camera pixels.
    labels : ndarray int64 (N,)
        Index into :data:`RAW_SPINE_TYPES`.
    pixel_size_um : float
    dendrite_radius_um : ndarray (D,)
        Radius of each in-focus dendrite.
    spine_size_um : ndarray (N,)
        sqrt(width x height) of each box in um.
    spine_id : ndarray int (N,)
        Index of each labelled spine among all drawn ones (stable across re-imaging of the same tissue).
    snr : ndarray (N,)
        Visibility of each labelled spine (see :func:`spine_snr`).
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    pixel_size_um: float
    dendrite_radius_um: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spine_size_um: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spine_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    snr: np.ndarray = field(default_factory=lambda: np.zeros(0))


def smooth_curve(
    rng: np.random.Generator, field_um: float, *, step_um: float = 0.05, curvature: float = 0.08
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random curve crossing a square field: points (m, 2) (y, x) um and unit tangents (m, 2).

    Starts outside one side, heads across with a slowly wandering direction
    (a smoothed random walk of the heading, ``curvature`` rad/um).
    """
    length = field_um * 1.8
    n = int(length / step_um)
    angle0 = rng.uniform(0, 2 * np.pi)
    start = np.array([field_um / 2, field_um / 2]) - 0.9 * field_um * np.array([np.sin(angle0), np.cos(angle0)])
    start += rng.uniform(-0.35, 0.35, 2) * field_um
    turns = ndimage.gaussian_filter1d(rng.normal(0, 1, n), sigma=max(1.0, 2.0 / step_um), mode="wrap")
    turns *= curvature * step_um / max(turns.std(), 1e-9)
    heading = angle0 + np.cumsum(turns)
    tangent = np.stack([np.sin(heading), np.cos(heading)], 1)
    points = start + np.cumsum(tangent * step_um, axis=0)
    return points, tangent


def _ball_thickness(canvas: tuple[int, int], centres_px: np.ndarray, radii_px: np.ndarray) -> np.ndarray:
    """Projected thickness (px) of a union of balls: 2 sqrt(r^2 - d^2) of each pixel's nearest centre."""
    thickness = np.zeros(canvas, np.float32)
    if len(centres_px) == 0:
        return thickness
    idx = np.round(centres_px).astype(np.int64)
    inside = (idx[:, 0] >= 0) & (idx[:, 0] < canvas[0]) & (idx[:, 1] >= 0) & (idx[:, 1] < canvas[1])
    if not inside.any():
        return thickness
    idx, radii = idx[inside], radii_px[inside]
    radius_map = np.zeros(canvas, np.float32)
    order = np.argsort(radii)  # the largest ball wins a shared pixel
    radius_map[idx[order, 0], idx[order, 1]] = radii[order]
    distance, (iy, ix) = ndimage.distance_transform_edt(radius_map == 0, return_indices=True)
    r = radius_map[iy, ix]
    return (2.0 * np.sqrt(np.clip(r**2 - distance**2, 0.0, None))).astype(np.float32)


@dataclass
class _Tissue:
    """Ball centres (um) and radii (um) of one kind of object, with a brightness per ball."""

    centres: list = field(default_factory=list)
    radii: list = field(default_factory=list)
    gains: list = field(default_factory=list)

    def add(self, centres: np.ndarray, radii, gain: float) -> None:
        centres = np.asarray(centres, np.float64).reshape(-1, 2)
        self.centres.append(centres)
        self.radii.append(np.broadcast_to(np.asarray(radii, np.float64), len(centres)))
        self.gains.append(np.full(len(centres), gain))

    def render(self, canvas: tuple[int, int], pixel_um: float) -> np.ndarray:
        """Thickness in um times brightness; objects of different brightness are rendered in groups."""
        if not self.centres:
            return np.zeros(canvas, np.float32)
        centres, radii, gains = (np.concatenate(x) for x in (self.centres, self.radii, self.gains))
        gains = np.exp(np.round(np.log(gains) / 0.15) * 0.15)  # brightness in steps of 15%
        out = np.zeros(canvas, np.float32)
        for level in np.unique(gains):  # a few brightness groups, never pixels
            pick = gains == level
            out = np.maximum(
                out, level * pixel_um * _ball_thickness(canvas, centres[pick] / pixel_um, radii[pick] / pixel_um)
            )
        return out


def _tube(points: np.ndarray, radius: float | np.ndarray, pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Ball centres every third of a pixel along a polyline, with their radii."""
    points = np.asarray(points, np.float64)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(arc[-1] / (pixel_um / 3)) + 1)
    s = np.linspace(0, arc[-1], n)
    centres = np.stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])], 1)
    radii = np.interp(s, arc, np.broadcast_to(radius, len(points))) if np.ndim(radius) else np.full(n, radius)
    return centres, radii


def _spine(rng: np.random.Generator, kind: int, base: np.ndarray, direction: np.ndarray, pixel_um: float):
    """Neck and head ball centres and radii (um) of one spine growing from ``base`` along ``direction``.

    Necks and heads are rendered separately so that a neck never cuts into its head.
    """
    normal = np.array([-direction[1], direction[0]])
    bend = rng.normal(0, 0.25)
    name = RAW_SPINE_TYPES[kind]
    if name == "stubby":
        r = rng.uniform(0.3, 0.55)
        length = rng.uniform(0.2, 0.5)
        neck = _tube(np.stack([base, base + direction * length * 0.5]), r * 0.8, pixel_um)
        return neck, ((base + direction * length)[None], np.array([r]))
    neck_r = {"mushroom": 0.1, "thin": 0.08, "branched": 0.09, "filopodium": 0.09}[name]
    lengths = {"mushroom": (0.3, 1.0), "thin": (0.6, 1.5), "branched": (0.3, 0.8), "filopodium": (1.2, 2.6)}[name]
    neck_len = rng.uniform(*lengths)
    t = np.linspace(0, 1, 8)[:, None]
    path = base + direction * neck_len * t + normal * bend * neck_len * t**2
    necks, heads = [_tube(path, neck_r, pixel_um)], []
    tip, tip_dir = path[-1], (path[-1] - path[-2]) / max(np.linalg.norm(path[-1] - path[-2]), 1e-9)
    if name == "branched":
        for side in (-1.0, 1.0):
            branch_dir = tip_dir * np.cos(0.7) + side * np.array([-tip_dir[1], tip_dir[0]]) * np.sin(0.7)
            b_len = rng.uniform(0.4, 0.9)
            end = tip + branch_dir * b_len
            necks.append(_tube(np.stack([tip, end]), neck_r, pixel_um))
            hr = rng.uniform(0.25, 0.45)
            heads.append((end + branch_dir * hr * 0.8, np.array([hr])))
    elif name == "filopodium":
        heads.append((tip[None], np.array([rng.uniform(0.1, 0.15)])))
    else:
        hr = rng.uniform(0.35, 0.65) if name == "mushroom" else rng.uniform(0.2, 0.35)
        elong = rng.uniform(1.0, 1.4)
        along = np.linspace(-(elong - 1), elong - 1, 3)[:, None] * hr * 0.8
        heads.append((tip + tip_dir * hr * 0.9 + along * tip_dir, np.full(3, hr)))

    def join(parts):
        return (
            np.concatenate([p[0].reshape(-1, 2) for p in parts]),
            np.concatenate([np.asarray(p[1], np.float64).reshape(-1) for p in parts]),
        )

    return join(necks), join(heads)


def _dendrite(
    rng,
    params: RawLayerParams,
    field_um: float,
    pixel_um: float,
    gain: float,
    tissue: _Tissue,
    necks: _Tissue,
    heads: _Tissue,
    boxes: list,
    labels: list,
) -> float:
    points, tangent = smooth_curve(rng, field_um, curvature=0.04)
    radius = rng.uniform(*params.dendrite_radius_um)
    wobble = 1 + 0.12 * ndimage.gaussian_filter1d(rng.normal(0, 1, len(points)), 20, mode="nearest") * 4
    tissue.add(*_tube(points, radius * np.clip(wobble, 0.7, 1.3), pixel_um), gain=gain)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    n_spines = rng.poisson(rng.uniform(*params.spine_density_per_um) * arc[-1])
    weights = np.asarray(params.type_weights, np.float64)
    for s in np.sort(rng.uniform(0, arc[-1], n_spines)):
        i = min(int(np.searchsorted(arc, s)), len(points) - 1)
        side = rng.choice([-1.0, 1.0])
        normal = side * np.array([-tangent[i, 1], tangent[i, 0]])
        angle = rng.normal(0, 0.3)
        direction = normal * np.cos(angle) + tangent[i] * np.sin(angle)
        kind = int(rng.choice(5, p=weights / weights.sum()))
        base = points[i] + normal * radius * 0.8
        (neck_c, neck_r), (head_c, head_r) = _spine(rng, kind, base, direction, pixel_um)
        spine_gain = gain * rng.uniform(0.8, 1.25)
        necks.add(neck_c, neck_r, gain=spine_gain)
        heads.add(head_c, head_r, gain=spine_gain)
        centres, radii = np.concatenate([neck_c, head_c]), np.concatenate([neck_r, head_r])
        lo, hi = (centres - radii[:, None]).min(0), (centres + radii[:, None]).max(0)
        boxes.append([lo[1], lo[0], hi[1], hi[0]])
        labels.append(kind)
    return radius


def _axon(rng, field_um: float, pixel_um: float, gain: float, tissue: _Tissue) -> None:
    points, _ = smooth_curve(rng, field_um, curvature=0.15)
    tissue.add(*_tube(points, rng.uniform(0.08, 0.2), pixel_um), gain=gain)
    arc_step = rng.uniform(2.0, 6.0)
    every = max(1, int(arc_step / 0.05))
    for p in points[rng.integers(0, every) :: every]:
        tissue.add(p[None], rng.uniform(0.25, 0.6), gain=gain * rng.uniform(0.8, 1.6))


def render_raw_layer(
    rng: np.random.Generator,
    params: RawLayerParams = RawLayerParams(),
    *,
    pixel_size_um: float | None = None,
    field_um: float | None = None,
    acquisition_rng: np.random.Generator | None = None,
) -> RawLayer:
    """Draw and image one raw layer.

    Parameters
    ----------
    rng : numpy.random.Generator
    params : RawLayerParams
    pixel_size_um : float, optional
        Fixes the camera pixel size (else drawn from ``params``).
    field_um : float, optional
        Side of the field (else ``params.field_um``).
    acquisition_rng : numpy.random.Generator, optional
        Draws the PSF and the acquisition (noise, light, gain, bit depth) instead of ``rng``:
        the same tissue imaged again, as in a later session of a time-lapse.

    Returns
    -------
    RawLayer
    """
    pixel = float(pixel_size_um) if pixel_size_um is not None else loguniform(rng, params.pixel_size_um)
    field_um = float(field_um or params.field_um)
    sub = int(np.ceil(pixel / 0.06 - 1e-9))  # fine grid of at most 0.06 um
    fine = pixel / sub
    n_px = int(round(field_um / pixel))
    canvas = (n_px * sub, n_px * sub)
    tissue, necks, heads = _Tissue(), _Tissue(), _Tissue()
    boxes: list = []
    labels: list = []
    radii = []
    for _ in range(rng.integers(params.n_dendrites[0], params.n_dendrites[1] + 1)):
        radii.append(
            _dendrite(rng, params, field_um, fine, loguniform(rng, (0.35, 1.0)), tissue, necks, heads, boxes, labels)
        )
    loose_signal, haze = distractors(rng, canvas, fine, params, field_um=field_um)
    without = np.maximum(tissue.render(canvas, fine), loose_signal)
    signal = np.maximum(np.maximum(without, necks.render(canvas, fine)), heads.render(canvas, fine))
    arng = acquisition_rng if acquisition_rng is not None else rng
    sy, sx = (loguniform(arng, params.psf_sigma_um) / fine for _ in range(2))

    def optics(image):
        image = ndimage.gaussian_filter(image, (sy, sx))
        return image.reshape(n_px, sub, n_px, sub).mean((1, 3)) if sub > 1 else image

    signal, without = optics(signal), optics(without)
    haze = haze.reshape(n_px, sub, n_px, sub).mean((1, 3)) if sub > 1 else haze
    image, photons_per_unit, background, saturation_photons = acquire_counts(signal + haze, arng, params, pixel)
    other = (without + haze + background) * photons_per_unit
    box_px = np.asarray(boxes, np.float64).reshape(-1, 4) / pixel
    margin = BOX_MARGIN_PSF * np.sqrt(sy * sx) * fine / pixel  # the spine as imaged, as annotators draw it
    box_px = np.clip(box_px + np.array([-margin, -margin, margin, margin]), 0, n_px)
    keep = ((box_px[:, 2] - box_px[:, 0]) > 1) & ((box_px[:, 3] - box_px[:, 1]) > 1)
    snr = spine_snr(box_px, (signal - without) * photons_per_unit, other, other >= saturation_photons)
    keep &= snr >= params.visible_snr
    box_px = box_px[keep].astype(np.float32)
    size_um = np.sqrt(np.prod(box_px[:, 2:] - box_px[:, :2], axis=1)) * pixel
    return RawLayer(
        image,
        box_px,
        np.asarray(labels, np.int64)[keep],
        pixel,
        np.asarray(radii),
        size_um,
        np.flatnonzero(keep),
        snr[keep],
    )


def distractors(
    rng: np.random.Generator,
    canvas: tuple[int, int],
    pixel_um: float,
    params: RawLayerParams = RawLayerParams(),
    *,
    field_um: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hard negatives of a field: axons with boutons and loose debris (in focus), and the haze of
    out-of-focus dendrites (already blurred), as signals on a ``canvas`` of ``pixel_um`` pixels.

    Returns
    -------
    in_focus, haze : ndarray float32 (canvas)
    """
    field_um = field_um or canvas[0] * pixel_um
    loose, blurred = _Tissue(), _Tissue()
    for _ in range(rng.integers(params.n_axons[0], params.n_axons[1] + 1)):
        _axon(rng, field_um, pixel_um, loguniform(rng, (0.3, 1.5)), loose)
    n_debris = rng.integers(params.n_debris[0], params.n_debris[1] + 1)
    if n_debris:
        loose.add(
            rng.uniform(0, field_um, (n_debris, 2)), rng.uniform(0.2, 0.7, n_debris), gain=loguniform(rng, (0.3, 1.5))
        )
    for _ in range(rng.integers(params.n_blurred[0], params.n_blurred[1] + 1)):
        points, _ = smooth_curve(rng, field_um)
        blurred.add(*_tube(points, rng.uniform(0.5, 1.2), pixel_um), gain=loguniform(rng, (0.1, 0.5)))
    sigma = rng.uniform(1.0, 3.0) / pixel_um
    coarse = max(1, int(sigma / 4))
    small = (-(-canvas[0] // coarse), -(-canvas[1] // coarse))
    haze = upsample(ndimage.gaussian_filter(blurred.render(small, pixel_um * coarse), sigma / coarse), canvas)
    return loose.render(canvas, pixel_um), haze
