"""Head diameter, head volume and a shaft-normalised head size from profiles sampled through each head.

Every box (one spine on one layer) is measured in the frame of its spine:
the head centre ``c`` and the axis ``a`` from the junction with the dendrite
to the head (both from :mod:`.distance`, per spine the median over the layers
where they were found, so that every layer of a spine is measured at the same
place), and ``p`` perpendicular to ``a``. All samples of all boxes are taken
at once by linear interpolation (:func:`scipy.ndimage.map_coordinates`); no
loop over boxes.

- **Across** the head: the profile along ``p`` through ``c``; its full width
  at half maximum (:func:`.psf.half_max_width`) is turned into the head's
  radius across the spine axis through the PSF model (:mod:`.psf`).
- **Along** the axis, beyond the head centre (away from the neck): the half
  width at half maximum of the far side, doubled, gives the radius along the
  axis the same way (the near side is neck and dendrite); a diagnostic of
  :func:`head_profiles` (it was a worse head radius for the neck length and
  the volume than the radius across).
- **Head fluorescence**: the background-subtracted intensity summed over the
  half disc beyond the head centre (radius: head radius + 3 PSF sigmas),
  doubled (the near half holds the neck).
- **Local shaft**: the background-subtracted intensity integrated along lines
  parallel to the axis that cross the dendrite next to the spine (offsets
  :data:`SHAFT_OFFSETS_PX` along ``p`` from the junction); the median over
  the lines is the shaft's fluorescence per pixel of length, their median
  PSF-corrected width (a cylinder, :func:`.psf.fwhm_table`) its diameter. The
  ratio head / shaft, each summed over the spine's peak layer and its
  neighbours (:data:`PHOTOMETRY_REACH_LAYERS`), is the head's fluorescence in
  micrometres of its own dendrite (``size_shaft_um``), and times the shaft's
  cross-section ``pi R^2`` the head's volume: the same recipe in every
  session, so a brightness change cancels and a focus change (layers sampling
  head and shaft at other depths) nearly does.

The background of each box is the one of :mod:`.size` (darkest 20 % of the
grown box).

Accuracy on the simulator (``bench/features.py``, 3 animals x 4 sessions, 847
spines, truth: head radius across the axis, neck length, head volume):
``head_diameter_um`` median absolute error 0.051 um, Spearman 0.903
(``head_diameter_fwhm_um`` 0.042 um, 0.890; the half-maximum area's
``head_width_um`` 0.111 um, 0.255); ``neck_length_um`` 0.110 um on necks of
at least 0.5 um, Spearman 0.891 (head-to-dendrite less half the head width:
0.137 um, 0.714); ``head_volume_um3`` 0.052 um^3, Spearman 0.902. Filopodia
(heads of 0.3-0.4 um, below the resolution) are the worst: diameter off by
0.16 um, neck by 0.33 um (their head is found too close to the dendrite).
A persistent spine without size change, in sessions whose brightness changes
by up to +-30 % and whose focus moves: coefficient of variation of
``head_volume_um3`` 7.6 % (median over 208 spines; ``size_shaft_um`` 6.6 %,
the SynapFlow ``size`` 5.7 %: the simulator changes brightness globally,
which the recipe's brightest-1 % normaliser also cancels).
"""

import warnings
from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import ArrayLike
from scipy import ndimage

from .psf import half_max_width, radius_from_fwhm

HALF_LENGTH_PX = 16.0
STEP_PX = 0.25
PEAK_WINDOW_PX = 2.0
SHAFT_OFFSETS_PX = (-16.0, -12.0, -8.0, 8.0, 12.0, 16.0)
SHAFT_RANGE_PX = (-4.0, 24.0)
DISC_STEP_PX = 0.5
#: Layers on either side of a spine's peak layer over which head and shaft fluorescence are summed (one PSF
#: sigma in z: farther layers add the noise of other structures and of the background, not signal).
PHOTOMETRY_REACH_LAYERS = 1
#: Gaussian PSF sigma (z, x/y) in um by default: the simulator's (1 layer of 1 um, 1.2 px of 0.12 um); a
#: two-photon microscope's lateral FWHM of about 0.35 um and axial FWHM of about 2 um are close.
PSF_SIGMA_UM = (1.0, 0.144)


def _sample(volume: np.ndarray, layer: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Linearly interpolated values at (layer, y, x) (any equal shapes, layer broadcast from (n,)); NaN outside."""
    z = np.broadcast_to(layer.reshape((-1,) + (1,) * (y.ndim - 1)).astype(float), y.shape)
    unknown = ~(np.isfinite(y) & np.isfinite(x))
    y, x = np.where(unknown, -1e6, y), np.where(unknown, -1e6, x)  # outside: NaN
    out = ndimage.map_coordinates(
        volume, np.stack([z.ravel(), y.ravel(), x.ravel()]), order=1, mode="constant", cval=np.nan, output=np.float64
    )
    return out.reshape(y.shape)


def head_profiles(
    volume: np.ndarray,
    layer: ArrayLike,
    head_yx: np.ndarray,
    junction_yx: np.ndarray,
    background: ArrayLike,
    *,
    pixel_size_um: float,
    psf_sigma_um: tuple[float, float] = PSF_SIGMA_UM,
    half_length_px: float = HALF_LENGTH_PX,
    step_px: float = STEP_PX,
    photometry: bool = True,
) -> dict[str, np.ndarray]:
    """Head radii, head fluorescence and local shaft fluorescence of boxes, one layer each.

    Parameters
    ----------
    volume : ndarray (z, y, x)
    layer : array_like int (n,)
    head_yx, junction_yx : ndarray (n, 2)
        Head centre and junction with the dendrite, image pixels (NaN: not measured).
    background : array_like (n,)
        Background intensity of each box.
    pixel_size_um : float
        x/y pixel size.
    psf_sigma_um : (float, float)
        Gaussian PSF sigma in z and in x/y (um).
    half_length_px, step_px : float
        Extent and spacing of the profiles.
    photometry : bool
        Also sum the head's fluorescence (``head_sum``; NaN when False).

    Returns
    -------
    dict of ndarray (n,)
        ``radius_across_um``, ``radius_along_um`` (NaN where no half-maximum
        crossing), ``head_contrast`` (profile peak over its base),
        ``head_sum`` (px^2 x intensity), ``shaft_line`` (px x intensity),
        ``shaft_radius_um`` (the local shaft's PSF-corrected radius).
    """
    layer = np.asarray(layer, np.int64)
    bg = np.asarray(background, float)
    head = np.asarray(head_yx, float).reshape(-1, 2)
    axis = head - np.asarray(junction_yx, float).reshape(-1, 2)
    axis /= np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-9)
    perp = np.column_stack([-axis[:, 1], axis[:, 0]])
    sz, sxy = (float(s) for s in psf_sigma_um)
    t = np.arange(-half_length_px, half_length_px + step_px / 2, step_px)
    window = int(round(PEAK_WINDOW_PX / step_px))

    def line(origin: np.ndarray, direction: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        return _sample(
            volume,
            layer,
            origin[:, 0, None] + direction[:, 0, None] * offsets,
            origin[:, 1, None] + direction[:, 1, None] * offsets,
        )

    across = line(head, perp, t)
    fwhm_px, _ = half_max_width(across, step_px, centre_window=window)
    r_across = radius_from_fwhm(fwhm_px * pixel_size_um, psf_sigma_xy_um=sxy, psf_sigma_z_um=sz)
    along = line(head, axis, t)
    r_along, contrast = _far_side_radius(along, step_px, window, pixel_size_um, sxy, sz)
    head_sum = (
        np.full(len(head), np.nan)
        if not photometry
        else _half_disc_sum(volume, layer, head, axis, perp, bg, r_across, pixel_size_um, sxy, half_length_px)
    )
    # the local shaft: lines parallel to the axis through the dendrite beside the spine
    s = np.arange(SHAFT_RANGE_PX[0], SHAFT_RANGE_PX[1] + step_px / 2, step_px)
    junction = np.asarray(junction_yx, float).reshape(-1, 2)
    lines, widths = [], []
    for off in SHAFT_OFFSETS_PX:  # a handful of lines, each over all boxes at once
        start = junction + off * perp
        vals = line(start, -axis, s) - bg[:, None]
        complete = np.isfinite(vals).all(1)
        lines.append(np.where(complete, np.clip(vals, 0, None).sum(1) * step_px, np.nan))
        widths.append(np.where(complete, half_max_width(vals, step_px, centre_window=s.size)[0], np.nan))
    if len(head):
        with warnings.catch_warnings():  # a box without any complete line (at the image edge) gives NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            shaft_line = np.nanmedian(np.column_stack(lines), axis=1)
            shaft_fwhm = np.nanmedian(np.column_stack(widths), axis=1)
    else:
        shaft_line = shaft_fwhm = np.zeros(0)
    shaft_radius = radius_from_fwhm(
        shaft_fwhm * pixel_size_um, psf_sigma_xy_um=sxy, psf_sigma_z_um=sz, shape="cylinder"
    )
    return {
        "radius_across_um": r_across,
        "radius_along_um": r_along,
        "head_contrast": contrast,
        "head_sum": head_sum,
        "shaft_line": shaft_line,
        "shaft_radius_um": shaft_radius,
    }


def _half_disc_sum(
    volume: np.ndarray,
    layer: np.ndarray,
    head: np.ndarray,
    axis: np.ndarray,
    perp: np.ndarray,
    bg: np.ndarray,
    r_across: np.ndarray,
    pixel_size_um: float,
    sxy: float,
    half_length_px: float,
) -> np.ndarray:
    """Background-subtracted fluorescence of the half disc beyond each head centre (radius: head radius + 3 PSF
    sigmas), doubled; NaN where the disc is cut by the image edge."""
    disc_r = np.clip(np.nan_to_num(r_across / pixel_size_um, nan=4.0) + 3 * sxy / pixel_size_um, 2.0, half_length_px)
    u = np.arange(-half_length_px, half_length_px + DISC_STEP_PX / 2, DISC_STEP_PX)
    v = np.arange(DISC_STEP_PX / 2, half_length_px, DISC_STEP_PX)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    inside = (uu**2 + vv**2)[None] <= disc_r[:, None, None] ** 2
    ys = head[:, 0, None, None] + perp[:, 0, None, None] * uu + axis[:, 0, None, None] * vv
    xs = head[:, 1, None, None] + perp[:, 1, None, None] * uu + axis[:, 1, None, None] * vv
    disc = _sample(volume, layer, ys, xs) - bg[:, None, None]
    head_sum = 2 * np.where(inside, np.nan_to_num(disc), 0.0).sum((1, 2)) * DISC_STEP_PX**2
    head_sum = np.where((inside & ~np.isfinite(disc)).any((1, 2)), np.nan, head_sum)  # cut by the image edge
    return head_sum


def _far_side_radius(
    along: np.ndarray, step_px: float, window: int, pixel_size_um: float, sxy: float, sz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Radius along the axis from the half width at half maximum of the far side (doubled), and the contrast
    of the peak over the far side's minimum."""
    n, k = along.shape
    c = k // 2
    filled = np.where(np.isfinite(along), along, -np.inf)
    at = c - window + np.argmax(filled[:, c - window : c + window + 1], axis=1)
    rows = np.arange(n)
    peak = filled[rows, at]
    far = np.arange(k)[None, :] >= at[:, None]
    base = np.where(far & np.isfinite(along), along, np.inf).min(1)
    with np.errstate(invalid="ignore"):  # all-NaN profiles (outside the image) give NaN
        half = base + 0.5 * (peak - base)
    hit = far & ~(filled >= half[:, None])
    first = np.argmax(hit, axis=1)
    prev = np.maximum(first - 1, 0)
    a, b = along[rows, prev], along[rows, first]
    b = np.where(np.isfinite(b), b, half - 1e-9)
    frac = np.clip((a - half) / np.maximum(a - b, 1e-12), 0.0, 1.0)
    hwhm = np.where(hit.any(1) & (peak > base), (prev + frac - at) * step_px, np.nan)
    radius = radius_from_fwhm(2 * hwhm * pixel_size_um, psf_sigma_xy_um=sxy, psf_sigma_z_um=sz)
    return radius, np.where(np.isfinite(peak), peak - base, np.nan)


def spine_morphology(
    volume: np.ndarray,
    per_layer: pl.DataFrame,
    voxel_size_um: Sequence[float],
    *,
    psf_sigma_um: tuple[float, float] = PSF_SIGMA_UM,
) -> pl.DataFrame:
    """Head diameter, neck length, head volume and shaft-normalised size of every spine.

    Parameters
    ----------
    volume : ndarray (z, y, x)
    per_layer : polars.DataFrame
        One row per box: ``id``, ``layer``, the :func:`.distance.layer_distances`
        columns (``head_y, head_x, junction_y, junction_x, distance_reason,
        path_length_px``) and ``background`` (:func:`.size.layer_sizes`).
    voxel_size_um : (z, y, x)
    psf_sigma_um : (float, float)
        Gaussian PSF sigma in z and x/y (um) of the microscope; the x/y
        sampling (``pixel^2 / 6``, pixel integration and linear
        interpolation) is added.

    Returns
    -------
    polars.DataFrame
        ``spine_id`` and (NaN where not measured) ``head_diameter_fwhm_um``
        (twice the median, over the layers where the head's contrast is at
        least half its best, of the PSF-corrected radius across the spine
        axis), ``head_diameter_um`` (the geometric mean of that and of the
        diameter of the sphere of ``head_volume_um3``: two measurements with
        independent errors, the width failing below the PSF's resolution and
        the fluorescence where a neighbour or the neck adds light; the FWHM
        alone where there is no volume),
        ``neck_length_um`` (median neck path length over the layers where the
        head and junction were found, less the head radius; 0 for a head on
        the dendrite), ``head_volume_um3`` (the head's fluorescence in units of
        its local shaft's fluorescence per um, times the shaft's cross-section
        ``pi R^2`` with ``R`` from the shaft's PSF-corrected width),
        ``size_shaft_um`` (that fluorescence ratio alone: the length of local
        dendrite as bright as the head) and ``shaft_diameter_um``.
    """
    px_um = float(np.mean(voxel_size_um[1:]))
    ok = pl.col("distance_reason") == "ok"
    centre = (
        per_layer.filter(ok)
        .group_by("id")
        .agg(
            pl.col("head_y", "head_x", "junction_y", "junction_x").median().name.suffix("_spine"),
            path_px=pl.col("path_length_px").fill_nan(None).median(),
        )
    )
    rows = per_layer.select("id", "layer", "background").join(centre, on="id", how="inner", maintain_order="left")
    sxy = float(np.hypot(psf_sigma_um[1], px_um / np.sqrt(6.0)))
    measured = head_profiles(
        volume,
        rows["layer"].to_numpy(),
        rows.select("head_y_spine", "head_x_spine").to_numpy(),
        rows.select("junction_y_spine", "junction_x_spine").to_numpy(),
        rows["background"].to_numpy(),
        pixel_size_um=px_um,
        psf_sigma_um=(float(psf_sigma_um[0]), sxy),
        photometry=False,
    )
    rows = rows.with_columns(**{k: pl.Series(k, v, pl.Float64).fill_nan(None) for k, v in measured.items()})
    strong = pl.col("head_contrast") >= 0.5 * pl.col("head_contrast").max()
    per = rows.group_by("id").agg(
        radius=pl.col("radius_across_um").filter(strong).median(),
        path_um=pl.col("path_px").first() * px_um,
        shaft_radius=pl.col("shaft_radius_um").median(),
        peak_layer=pl.col("layer").sort_by(pl.col("head_contrast").fill_null(-np.inf)).last(),
        background=pl.col("background").median(),
        **{c: pl.col(c).first() for c in ("head_y_spine", "head_x_spine", "junction_y_spine", "junction_x_spine")},
    )
    per = per.join(_photometry(volume, per, px_um, psf_sigma_um, sxy), on="id", how="left")
    volume_um3 = pl.col("ratio") * np.pi * pl.col("shaft_radius") ** 2
    sphere = 2 * (3 * volume_um3.clip(0.0, None) / (4 * np.pi)) ** (1 / 3)
    fwhm = 2 * pl.col("radius")
    diameter = pl.when(sphere.is_finite() & fwhm.is_finite()).then((sphere * fwhm).sqrt()).otherwise(fwhm)
    out = per.select(
        spine_id="id",
        head_diameter_um=diameter,
        head_diameter_fwhm_um=fwhm,
        neck_length_um=(pl.col("path_um") - diameter / 2).clip(0.0, None),
        head_volume_um3=volume_um3,
        size_shaft_um=pl.col("ratio"),
        shaft_diameter_um=2 * pl.col("shaft_radius"),
    )
    return out.with_columns(pl.exclude("spine_id").cast(pl.Float64).fill_null(np.nan)).sort("spine_id")


def _photometry(
    volume: np.ndarray, per: pl.DataFrame, px_um: float, psf_sigma_um: tuple[float, float], sxy: float
) -> pl.DataFrame:
    """``ratio`` per spine: head fluorescence over local shaft fluorescence per um, each summed over the
    spine's peak layer and :data:`PHOTOMETRY_REACH_LAYERS` on either side."""
    nz = volume.shape[0]
    reach = PHOTOMETRY_REACH_LAYERS
    window = per.select(
        "id",
        "background",
        "head_y_spine",
        "head_x_spine",
        "junction_y_spine",
        "junction_x_spine",
        layer=pl.col("peak_layer").cast(pl.Int64) + pl.int_ranges(-reach, reach + 1),
    ).explode("layer")
    window = window.filter((pl.col("layer") >= 0) & (pl.col("layer") < nz))
    measured = head_profiles(
        volume,
        window["layer"].to_numpy(),
        window.select("head_y_spine", "head_x_spine").to_numpy(),
        window.select("junction_y_spine", "junction_x_spine").to_numpy(),
        window["background"].to_numpy(),
        pixel_size_um=px_um,
        psf_sigma_um=(float(psf_sigma_um[0]), sxy),
    )
    window = window.with_columns(
        head_sum=pl.Series(measured["head_sum"]).fill_nan(None),
        shaft_line=pl.Series(measured["shaft_line"]).fill_nan(None),
    )
    both = pl.col("head_sum").is_not_null() & pl.col("shaft_line").is_not_null()
    return window.group_by("id").agg(
        ratio=pl.col("head_sum").filter(both).sum() / pl.col("shaft_line").filter(both).sum() * px_um
    )
