"""The 8-connected graph of a set of pixels, for geodesic distances with :mod:`scipy.sparse.csgraph`."""

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse

#: The four forward steps (dy, dx): with them every 8-neighbour pair is one edge.
FORWARD_STEPS = ((0, 1), (1, -1), (1, 0), (1, 1))


def pixel_graph(
    region: np.ndarray, step_cost: Callable[[np.ndarray, np.ndarray, int, int], ArrayLike]
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Graph whose nodes are the pixels of ``region`` and whose edges join 8-neighbours.

    Parameters
    ----------
    region : ndarray bool (h, w)
    step_cost : callable
        ``step_cost(p, q, dy, dx)`` gives the weights of the edges from pixels
        ``p`` to pixels ``q`` (arrays of raveled indices), neighbours by the
        step ``(dy, dx)``.

    Returns
    -------
    graph : scipy.sparse.csr_matrix (n, n)
        Each edge stored once: use ``directed=False`` in csgraph.
    flat : ndarray int (n,)
        Raveled pixel index of each node (raster order).
    """
    h, w = region.shape
    flat = np.flatnonzero(region)
    idx = np.full(h * w, -1, np.int64)
    idx[flat] = np.arange(flat.size)
    ry, rx = np.divmod(flat, w)
    src, dst, wt = [], [], []
    for dy, dx in FORWARD_STEPS:
        ny_, nx_ = ry + dy, rx + dx
        ok = (ny_ < h) & (nx_ >= 0) & (nx_ < w)
        nb = np.full(flat.size, -1, np.int64)
        nb[ok] = idx[ny_[ok] * w + nx_[ok]]
        a = np.flatnonzero(nb >= 0)
        src.append(a)
        dst.append(nb[a])
        wt.append(np.broadcast_to(step_cost(flat[a], flat[nb[a]], dy, dx), a.shape))
    graph = sparse.coo_matrix(
        (np.concatenate(wt), (np.concatenate(src), np.concatenate(dst))), shape=(flat.size, flat.size)
    ).tocsr()
    return graph, flat
