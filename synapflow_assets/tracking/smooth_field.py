"""A smooth local displacement field through block matches, weighted by what each block pins down."""

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg


def _second_differences(ny: int, nx: int) -> sparse.csr_matrix:
    """Sparse rows of the discrete second derivatives (yy, xx and sqrt(2) xy) of a (ny, nx) grid, flattened
    row-major."""
    index = np.arange(ny * nx).reshape(ny, nx)
    stencils = [
        ((index[:-2], index[1:-1], index[2:]), (1.0, -2.0, 1.0)),
        ((index[:, :-2], index[:, 1:-1], index[:, 2:]), (1.0, -2.0, 1.0)),
        (
            (index[:-1, :-1], index[1:, 1:], index[:-1, 1:], index[1:, :-1]),
            (np.sqrt(2), np.sqrt(2), -np.sqrt(2), -np.sqrt(2)),
        ),
    ]
    rows, cols, values, start = [], [], [], 0
    for nodes, weights in stencils:
        count = nodes[0].size
        for node, weight in zip(nodes, weights, strict=False):
            rows.append(start + np.arange(count))
            cols.append(node.ravel())
            values.append(np.full(count, weight))
        start += count
    return sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(start, ny * nx)
    )


def fit_field(
    displacement: np.ndarray,
    trusted: np.ndarray,
    tensors: np.ndarray,
    smoothness: float,
    iterations: int = 3,
    robust_px: float = 1.0,
) -> tuple[np.ndarray, float]:
    """A smooth (2, gy, gx) field through the trusted block displacements, and its residual (px).

    Minimises ``sum_b (d_b - f_b)' W_b (d_b - f_b) + smoothness * |second differences of f|^2``
    where ``W_b`` is the block's structure tensor (normalised so that the
    median strongest direction weighs 1): each block constrains the field
    only in the directions its content pins down, and the thin-plate
    regulariser leaves affine fields (a rotation or shift the rigid stage
    missed) free. Blocks far from the field are down-weighted (Cauchy,
    scale ``robust_px``) and the fit repeated. The residual is the median
    over trusted blocks of the misfit along each block's best-pinned
    direction.
    """
    ny, nx = trusted.shape
    n = ny * nx
    if not trusted.any():
        return np.zeros((2, ny, nx)), float("nan")
    strongest = np.linalg.eigvalsh(tensors)[..., 1]
    info = tensors / max(float(np.median(strongest[trusted])), 1e-12)
    info = np.where(trusted[..., None, None], info, 0.0).reshape(n, 2, 2)
    d = np.where(trusted[..., None], displacement, 0.0).reshape(n, 2)
    diff = _second_differences(ny, nx)
    regulariser = smoothness * sparse.kron(diff.T @ diff, sparse.identity(2)) + 1e-6 * sparse.identity(2 * n)
    rows = (np.arange(n)[:, None, None] * 2 + np.arange(2)[None, :, None]).repeat(2, axis=2)
    cols = rows.transpose(0, 2, 1)
    weights = np.ones(n)
    for _ in range(iterations):
        weighted = info * weights[:, None, None]
        data = sparse.csr_matrix((weighted.ravel(), (rows.ravel(), cols.ravel())), shape=(2 * n, 2 * n))
        f = sparse_linalg.spsolve((regulariser + data).tocsc(), np.einsum("nkm,nm->nk", weighted, d).ravel()).reshape(
            n, 2
        )
        misfit = d - f
        normalised = info / np.maximum(np.linalg.eigvalsh(info)[:, 1], 1e-12)[:, None, None]
        along = np.sqrt(np.einsum("nk,nkm,nm->n", misfit, normalised, misfit))
        weights = 1 / (1 + (along / robust_px) ** 2)
    residual = float(np.median(along[trusted.ravel()]))
    return np.moveaxis(f.reshape(ny, nx, 2), -1, 0), residual
