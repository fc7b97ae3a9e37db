"""The dendrite in a crop around one spine box: sequential RANSAC lines through the foreground
outside the box, kept when they form a continuous tube, and the dendrite mask near them."""

import numpy as np
from scipy import ndimage

RANSAC_TOL_PX = 3.0
EDGE_ZONE_PX = 3
EIGHT = np.ones((3, 3), bool)


def _ransac_line(
    yx: np.ndarray, weight: np.ndarray, tol: float, rng: np.random.Generator, n_try: int = 200
) -> np.ndarray | None:
    """Best line through ``yx`` (m, 2): the random pixel pair whose ``tol`` band holds most weight.

    Returns the boolean inlier mask, or None when no pair is long enough.
    """
    i, j = rng.integers(0, len(yx), (2, n_try))
    d = yx[j] - yx[i]
    length = np.linalg.norm(d, axis=1)
    ok = length > 4
    if not ok.any():
        return None
    i, d, length = i[ok], d[ok], length[ok]
    normal = np.column_stack([-d[:, 1], d[:, 0]]) / length[:, None]
    dist = np.abs(
        (yx[:, 0][None, :] - yx[i, 0][:, None]) * normal[:, :1]
        + (yx[:, 1][None, :] - yx[i, 1][:, None]) * normal[:, 1:]
    )
    score = ((dist <= tol) * weight).sum(1)
    return dist[int(np.argmax(score))] <= tol


def _fit_line(
    yx: np.ndarray, weight: np.ndarray, keep: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted principal line of the ``keep`` pixels, refit twice on pixels within ``tol``; (mean, normal, keep)."""
    for _ in range(3):
        w = weight[keep]
        m = (yx[keep] * w[:, None]).sum(0) / w.sum()
        d = yx[keep] - m
        axis = np.linalg.eigh((d * w[:, None]).T @ d / w.sum())[1][:, 1]
        normal = np.array([-axis[1], axis[0]])
        new = np.abs((yx - m) @ normal) <= tol
        if new.sum() < 8:
            break
        keep = new
    return m, normal, keep


def _edge_offsets(signed: np.ndarray, fg: np.ndarray, far: np.ndarray, limit: float) -> tuple[float, float]:
    """Signed offsets (lo, hi) of a dendrite's two edges from its line, measured away from the spine.

    Per 1-px bin of signed offset, the foreground share of the pixels in ``far``;
    each edge is the last bin, going out from the line, where most pixels are
    foreground (at most ``limit``), plus half a pixel.
    """
    n = int(np.ceil(limit)) + 1
    b = np.rint(signed[far]).astype(np.int64)
    ok = np.abs(b) <= n
    cnt = np.bincount(b[ok] + n, minlength=2 * n + 1)
    frac = np.bincount(b[ok] + n, weights=fg[far][ok].astype(float), minlength=2 * n + 1) / np.maximum(cnt, 1)
    if not cnt.any():  # nothing beside the box to measure: keep the band
        return -limit, limit
    dense = (frac >= 0.5) & (cnt > 0)
    up, down = dense[n:], dense[: n + 1][::-1]
    hi = (np.argmin(up) - 1 if not up.all() else n) if up[0] else 0
    lo = (np.argmin(down) - 1 if not down.all() else n) if down[0] else 0
    return -min(lo + 0.5, limit), min(hi + 0.5, limit)


def dendrite_mask(
    s: np.ndarray,
    fg: np.ndarray,
    inner: np.ndarray,
    *,
    max_dendrites: int = 2,
    tol_px: float = RANSAC_TOL_PX,
    min_pixels: int = 30,
    min_coverage: float = 0.75,
    seed: int = 0,
) -> np.ndarray | None:
    """Mask of the dendrite(s) crossing a crop, found from the foreground outside the spine box.

    Sequential RANSAC on the foreground pixels outside the box (neighbouring
    spines are outliers): the line whose ``tol_px`` band holds most intensity,
    refined by a weighted principal-axis fit; its half-width is the 90th
    percentile of the distance of its inliers outside the box. A line is a
    dendrite only if its inliers span most of the crop and foreground covers at
    least ``min_coverage`` of its chord through the crop (a row of heads is
    not a dendrite). The band is
    removed and the search repeated once for a crossing dendrite. The mask is
    the foreground within half-width + 1 px of a line (so it follows the real,
    possibly curved, edge), restricted to the component(s) that reach outside
    the box. Within ``EDGE_ZONE_PX`` of the box it is further cut at each
    line's two edges as measured away from the box (:func:`_edge_offsets`), so
    a head sitting on the dendrite does not widen it.

    Returns
    -------
    ndarray bool (h, w) or None
        None when no tube-like structure crosses the crop.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.nonzero(fg & ~inner)
    yx = np.column_stack([yy, xx]).astype(float)
    weight = s[yy, xx] - s[fg].min() + 1e-6
    h, w = s.shape
    gy, gx = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), bool)
    left = np.ones(len(yx), bool)
    far = ~ndimage.binary_dilation(inner, EIGHT, iterations=EDGE_ZONE_PX)
    lines = []
    for _ in range(max_dendrites):
        if left.sum() < min_pixels:
            break
        sub = np.nonzero(left)[0]
        keep = _ransac_line(yx[sub], weight[sub], tol_px, rng)
        if keep is None or keep.sum() < min_pixels:
            break
        m, normal, keep = _fit_line(yx[sub], weight[sub], keep, 2 * tol_px)
        axis = np.array([normal[1], -normal[0]])
        along = (yx[sub][keep] - m) @ axis
        half = float(np.percentile(np.abs((yx[sub][keep] - m) @ normal), 90))
        if np.ptp(along) < max(4 * half, 0.6 * min(h, w)):  # a blob, not a tube crossing the crop
            break
        band = np.abs((gy - m[0]) * normal[0] + (gx - m[1]) * normal[1]) <= half + 1
        t_all = np.rint((gy - m[0]) * axis[0] + (gx - m[1]) * axis[1]).astype(np.int64)
        chord = np.unique(t_all[np.abs((gy - m[0]) * normal[0] + (gx - m[1]) * normal[1]) <= 0.71])
        covered = np.isin(chord, np.unique(t_all[band & fg])).mean() if chord.size else 0.0
        if covered < min_coverage:  # blobs on a line, not a continuous tube
            break
        mask |= band & fg
        signed = (gy - m[0]) * normal[0] + (gx - m[1]) * normal[1]
        lines.append((signed, *_edge_offsets(signed, fg, far, half + 1)))
        off = np.abs((yx - m) @ normal)
        left &= off > half + 2
    if not mask.any():
        return None
    # near the spine, the dendrite's edge is where it is beside the box (a head sitting on it is not dendrite)
    near = ~far
    trimmed = np.zeros_like(mask)
    for signed, lo, hi in lines:
        trimmed |= (signed >= lo) & (signed <= hi)
    mask = np.where(near, mask & trimmed, mask)
    labels, n = ndimage.label(mask, EIGHT)
    outside = np.bincount(labels[~inner], minlength=n + 1) >= min_pixels // 3
    outside[0] = False
    mask = outside[labels]
    return mask if mask.any() else None
