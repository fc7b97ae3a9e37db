"""Dendrite mask of a session's MIP, its length, the spine density per um and positions along its skeleton.

The skeleton (:func:`skeletonize_2d`, Zhang-Suen thinning written here with scipy.ndimage) gives each spine its
position along the dendrite (:func:`along_dendrite`). ``skimage.morphology.skeletonize`` is not used: its skeleton
differs from this one by about a tenth of the pixels, mostly a pixel more or less at the ends, which shifts every
position along a component by about a pixel (0.16 um median on simulated sessions when compared for issue 29, up to
1 um on branched skeletons) and so would change the positions the feature store already holds.

The density keeps a documented length estimate: the dendrite mask (Otsu threshold of the smoothed MIP, opened with
``skimage.morphology.disk(open_radius_px)`` to drop spine heads and necks, components smaller than ``min_area_px``
removed with ``skimage.morphology.remove_small_objects``) is a band of roughly constant width, so its length is
``area / width``, with the width from :func:`band_width_px`. Only the dendrites that carry the session's spines count
(:func:`spine_bearing`): an out-of-focus dendrite above or below the imaged depth comes and goes as a bright blur
with no spine resolved on it, and counting it halved the density of a single-plane time-lapse between sessions an
hour apart (MIP stand-in, 51 um -> 98 um of dendrite for the same field).
"""

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy.sparse import csgraph
from skimage.morphology import disk, remove_small_objects

from .pixel_graph import pixel_graph
from .thresholds import otsu_threshold


def dendrite_mask_2d(
    mip: np.ndarray, *, smooth_px: float = 1.5, open_radius_px: int = 3, min_area_px: int = 400
) -> np.ndarray:
    """Boolean mask of the dendrites in a 2D image (typically the MIP).

    The Otsu foreground of the smoothed image, opened with a disk of radius ``open_radius_px`` (a whole number of
    pixels), keeping the 4-connected components of at least ``min_area_px`` pixels.
    """
    if float(open_radius_px) != int(open_radius_px):
        raise ValueError(f"open_radius_px must be a whole number of pixels, not {open_radius_px}")
    s = ndimage.gaussian_filter(np.asarray(mip, np.float64), smooth_px)
    mask = ndimage.binary_opening(s > otsu_threshold(s), disk(int(open_radius_px), dtype=bool))
    return remove_small_objects(mask, max_size=max(int(min_area_px) - 1, 0), connectivity=1)


def band_width_px(mask: np.ndarray) -> float:
    """Full width (pixels) of a band-like mask: twice the median Euclidean distance transform on its medial ridge.

    The ridge is the mask's pixels that are local maxima of the distance transform in a 3x3 neighbourhood. On
    straight synthetic bands 5-30 px wide at 0-77 degrees, ``2 * median`` overestimates the width (area per unit
    length) by 0.30 px on average (at most 1.1 px); ``2 * median - 1`` underestimates it by 0.70 px (at most 1.2 px).
    NaN for an empty mask.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return float("nan")
    edt = ndimage.distance_transform_edt(mask)
    ridge = mask & (edt >= ndimage.maximum_filter(edt, size=3))
    return 2 * float(np.median(edt[ridge]))


#: Farthest a spine's centre lies from the dendrite that carries it (a long neck and its head).
SPINE_REACH_UM = 3.0


def spine_bearing(mask: np.ndarray, points_yx: ArrayLike, reach_px: float) -> np.ndarray:
    """The components (4-connected) of ``mask`` that hold a point within ``reach_px`` of them.

    The whole mask when there is no point, or when no component holds one (the spines are then not where any
    dendrite is, and no choice is better than another).
    """
    mask = np.asarray(mask, bool)
    points = np.asarray(points_yx, np.float64).reshape(-1, 2)
    if not len(points) or not mask.any():
        return mask
    labels, _ = ndimage.label(mask)
    distance, (iy, ix) = ndimage.distance_transform_edt(~mask, return_indices=True)
    y = np.clip(np.round(points[:, 0]).astype(np.int64), 0, mask.shape[0] - 1)
    x = np.clip(np.round(points[:, 1]).astype(np.int64), 0, mask.shape[1] - 1)
    near = distance[y, x] <= reach_px
    held = np.unique(labels[iy[y[near], x[near]], ix[y[near], x[near]]])
    return mask & np.isin(labels, held) if len(held) else mask


def dendrite_length_um(mask: np.ndarray, pixel_size_um: float) -> tuple[float, float]:
    """Length and mean width (both um) of a band-like mask: ``area / width`` (:func:`band_width_px`)."""
    if not mask.any():
        return 0.0, float("nan")
    width_px = band_width_px(mask)
    return float(mask.sum() / width_px * pixel_size_um), width_px * pixel_size_um


def session_density(volume: np.ndarray, spines: pl.DataFrame | int, voxel_size_um: Sequence[float]) -> dict:
    """Dendrite length and spine density of one session.

    Parameters
    ----------
    volume : ndarray (z, y, x)
    spines : polars.DataFrame or int
        The session's 3D spines (one row each; with ``y_px, x_px`` only the dendrites carrying them count, see
        :func:`spine_bearing`) or their number.
    voxel_size_um : (z, y, x)

    Returns
    -------
    dict
        ``dendrite_length_um``, ``dendrite_width_um``, ``n_spines``,
        ``spines_per_um`` (NaN without dendrite).
    """
    mip = np.asarray(volume).max(0)
    pixel_size_um = float(np.mean(voxel_size_um[1:]))
    mask = dendrite_mask_2d(mip)
    if not isinstance(spines, int) and {"y_px", "x_px"} <= set(spines.columns):
        mask = spine_bearing(mask, spines.select("y_px", "x_px").to_numpy(), SPINE_REACH_UM / pixel_size_um)
    length, width = dendrite_length_um(mask, pixel_size_um)
    n = spines if isinstance(spines, int) else spines.height
    return {
        "dendrite_length_um": length,
        "dendrite_width_um": width,
        "n_spines": int(n),
        "spines_per_um": n / length if length > 0 else float("nan"),
    }


# ---------------------------------------------------------------- skeleton and position along the dendrite

#: Step lengths of an 8-connected chain that estimate the length of the underlying curve without
#: bias over orientations (Kulpa 1977); plain 1 and sqrt(2) overestimate oblique curves by up to 8 %.
KULPA_AXIAL, KULPA_DIAGONAL = 0.948, 1.343
_BITS = np.array([[1, 2, 4], [128, 0, 8], [64, 32, 16]])  # P9 P2 P3 / P8 . P4 / P7 P6 P5 (clockwise from north-west)


def _zhang_suen_tables() -> tuple[np.ndarray, np.ndarray]:
    """Deletion look-up tables (256 neighbourhood codes) of the two Zhang-Suen sub-iterations."""
    code = np.arange(256)
    # neighbours P2..P9 clockwise from north: bits 2, 4(P3), 8(P4), 16(P5), 32(P6), 64(P7), 128(P8), 1(P9)
    order = np.array([2, 4, 8, 16, 32, 64, 128, 1])
    p = (code[:, None] & order[None, :]) > 0  # (256, 8): P2..P9
    b = p.sum(1)
    a = (~p & np.roll(p, -1, axis=1)).sum(1)  # 0 -> 1 transitions in P2..P9, P2
    p2, p4, p6, p8 = p[:, 0], p[:, 2], p[:, 4], p[:, 6]
    base = (b >= 2) & (b <= 6) & (a == 1)
    first = base & ~(p2 & p4 & p6) & ~(p4 & p6 & p8)
    second = base & ~(p2 & p4 & p8) & ~(p2 & p6 & p8)
    return first, second


_ZS_FIRST, _ZS_SECOND = _zhang_suen_tables()


def skeletonize_2d(mask: np.ndarray, max_iter: int = 500) -> np.ndarray:
    """One-pixel-wide 8-connected skeleton of a 2D mask (Zhang-Suen thinning).

    Every sub-iteration is one vectorised pass over the whole image (the
    neighbourhood of each pixel is coded in 8 bits by a correlation and looked
    up in a 256-entry table); the number of passes is about the mask's half-width.
    """
    img = np.asarray(mask, bool).copy()
    for _ in range(max_iter):
        changed = False
        for table in (_ZS_FIRST, _ZS_SECOND):
            code = ndimage.correlate(img.astype(np.int64), _BITS, mode="constant", cval=0)
            delete = img & table[code]
            if delete.any():
                img &= ~delete
                changed = True
        if not changed:
            break
    return img


def skeleton_positions(skeleton: np.ndarray, pixel_size_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Arc length along each skeleton component, from one of its ends.

    Each 8-connected component is a graph (steps of :data:`KULPA_AXIAL` or
    :data:`KULPA_DIAGONAL` pixels, so lengths are within about 5 % of the curve's); its
    origin is one end of its longest geodesic path (the farthest pixel from an
    arbitrary pixel, found with Dijkstra), and every pixel gets its geodesic
    distance from that origin. Origins are the ends nearer the image's top-left,
    so the direction does not depend on the labelling.

    A component with branches (crossing dendrites) keeps one origin: along
    its longest path the position is the arc length, on the other branches it
    is the arc length via the branch point (not monotone along a crossing
    dendrite); ``component`` tells which positions are comparable.

    Returns
    -------
    position_um : ndarray float (h, w)
        Arc length (um) on skeleton pixels, NaN elsewhere.
    component : ndarray int (h, w)
        Component label (1, 2, ...) on skeleton pixels, 0 elsewhere.
    """
    skeleton = np.asarray(skeleton, bool)
    h, w = skeleton.shape
    position = np.full((h, w), np.nan)
    labels, n = ndimage.label(skeleton, np.ones((3, 3), bool))
    if n == 0:
        return position, labels
    graph, flat = pixel_graph(skeleton, lambda a, b, dy, dx: KULPA_DIAGONAL if dx and dy else KULPA_AXIAL)
    ry, rx = np.divmod(flat, w)
    lab = labels.ravel()[flat]
    seeds = np.unique(lab, return_index=True)[1]  # first pixel (raster order) of each component
    d0 = csgraph.dijkstra(graph, directed=False, indices=seeds)  # (n, m): from each component's first pixel
    own = lab[None, :] == np.arange(1, n + 1)[:, None]
    far = np.argmax(np.where(own & np.isfinite(d0), d0, -1.0), axis=1)  # one end of each longest path
    d1 = csgraph.dijkstra(graph, directed=False, indices=far)
    other = np.argmax(np.where(own & np.isfinite(d1), d1, -1.0), axis=1)  # the other end
    # start from the end nearer the top-left corner
    start = np.where(ry[far] + rx[far] <= ry[other] + rx[other], far, other)
    d = csgraph.dijkstra(graph, directed=False, indices=start)
    position.ravel()[flat] = d[lab - 1, np.arange(flat.size)] * pixel_size_um
    return position, labels


def along_dendrite(
    mip: np.ndarray,
    y_px: ArrayLike,
    x_px: ArrayLike,
    pixel_size_um: float,
    *,
    max_offset_px: float = 40.0,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Position of points (spine junctions or centres) along the dendrite skeleton of a MIP.

    The dendrite mask (:func:`dendrite_mask_2d`) is thinned to a skeleton
    (:func:`skeletonize_2d`), its components are parameterised by arc length
    (:func:`skeleton_positions`), and each point takes the arc length of its
    nearest skeleton pixel (one Euclidean distance transform for all points).

    Parameters
    ----------
    mip : ndarray (h, w)
        Maximum-intensity projection of the session.
    y_px, x_px : array-like (n,)
        Points in pixels (NaN allowed).
    pixel_size_um : float
    max_offset_px : float
        Points farther than this from the skeleton get NaN.
    mask : ndarray bool (h, w), optional
        A precomputed dendrite mask.

    Returns
    -------
    position_um : ndarray float (n,)
        Arc length (um) along the skeleton component, NaN without a skeleton
        (or for points that are NaN, outside the image or too far from it).
    component : ndarray int (n,)
        Skeleton component (1, 2, ...; positions are comparable only within
        one component), 0 where the position is NaN.
    """
    y = np.asarray(y_px, float)
    x = np.asarray(x_px, float)
    pos = np.full(y.shape, np.nan)
    comp = np.zeros(y.shape, np.int64)
    mask = dendrite_mask_2d(mip) if mask is None else mask
    skel = skeletonize_2d(mask)
    if not skel.any() or y.size == 0:
        return pos, comp
    position, labels = skeleton_positions(skel, pixel_size_um)
    dist, (iy, ix) = ndimage.distance_transform_edt(~skel, return_indices=True)
    h, w = skel.shape
    ok = np.isfinite(y) & np.isfinite(x)
    yi = np.clip(np.rint(np.where(ok, y, 0)), 0, h - 1).astype(np.int64)
    xi = np.clip(np.rint(np.where(ok, x, 0)), 0, w - 1).astype(np.int64)
    ok &= dist[yi, xi] <= max_offset_px
    sy, sx = iy[yi, xi], ix[yi, xi]
    pos[ok] = position[sy[ok], sx[ok]]
    comp[ok] = labels[sy[ok], sx[ok]]
    return pos, comp
