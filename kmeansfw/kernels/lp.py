"""Block kernels of the L1, L-inf and L_p distances (no matrix-product form).

:func:`lp_block` computes a whole (b, k) block of ``sum |x - c|`` (:data:`L1`),
``max |x - c|`` (:data:`LINF`) or ``sum |x - c|^p`` (:data:`LP`).  The NumPy twin walks
the features (never the samples), one whole (b, k) block per step.
"""

from __future__ import annotations

import numpy as np

from kmeansfw.kernels import read_only
from kmeansfw.kernels._compile import HAVE_NUMBA, numba

L1, LINF, LP = 0, 1, 2


def _lp_numpy(X, C, kind, p, out):
    out[...] = 0
    diff = np.empty_like(out)
    for f in range(X.shape[1]):
        np.subtract(X[:, f, None], C[None, :, f], out=diff)
        np.abs(diff, out=diff)
        if kind == L1:
            out += diff
        elif kind == LINF:
            np.maximum(out, diff, out=out)
        else:
            out += diff**p


if HAVE_NUMBA:
    # Centroids come transposed, (d, k), so the innermost loop runs over centroids into a
    # local accumulator (no horizontal reduction, no aliasing with the output): it
    # vectorizes.

    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _l1_numba(X, CT, out):  # pragma: no cover
        d, k = CT.shape
        acc = np.empty(k, dtype=out.dtype)
        for i in range(X.shape[0]):
            acc[:] = 0
            for f in range(d):
                x = X[i, f]
                for j in range(k):
                    diff = x - CT[f, j]
                    acc[j] += max(diff, -diff)
            for j in range(k):  # not ``out[i, :] = acc``: see _copy in kernels.lloyd
                out[i, j] = acc[j]

    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _linf_numba(X, CT, out):  # pragma: no cover
        d, k = CT.shape
        acc = np.empty(k, dtype=out.dtype)
        for i in range(X.shape[0]):
            acc[:] = 0
            for f in range(d):
                x = X[i, f]
                for j in range(k):
                    diff = x - CT[f, j]
                    acc[j] = max(acc[j], max(diff, -diff))
            for j in range(k):  # not ``out[i, :] = acc``: see _copy in kernels.lloyd
                out[i, j] = acc[j]

    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _lp_numba(X, CT, p, int_p, out):  # pragma: no cover
        d, k = CT.shape
        acc = np.empty(k, dtype=out.dtype)
        for i in range(X.shape[0]):
            acc[:] = 0
            for f in range(d):
                x = X[i, f]
                if int_p == 2:
                    for j in range(k):
                        diff = x - CT[f, j]
                        acc[j] += diff * diff
                elif int_p == 3:
                    for j in range(k):
                        diff = x - CT[f, j]
                        ad = max(diff, -diff)
                        acc[j] += ad * ad * ad
                elif int_p == 4:
                    for j in range(k):
                        diff = x - CT[f, j]
                        sq = diff * diff
                        acc[j] += sq * sq
                elif int_p == -1:  # p = 1.5
                    for j in range(k):
                        diff = x - CT[f, j]
                        ad = max(diff, -diff)
                        acc[j] += ad * np.sqrt(ad)
                elif int_p == -2:  # p = 2.5
                    for j in range(k):
                        diff = x - CT[f, j]
                        ad = max(diff, -diff)
                        acc[j] += ad * ad * np.sqrt(ad)
                else:
                    for j in range(k):
                        diff = x - CT[f, j]
                        acc[j] += max(diff, -diff) ** p
            for j in range(k):  # not ``out[i, :] = acc``: see _copy in kernels.lloyd
                out[i, j] = acc[j]


def lp_block(X: np.ndarray, centroids: np.ndarray, kind: int, p: float = 1.0) -> np.ndarray:
    """(b, k) block of ``sum |x - c|`` (L1), ``max |x - c|`` (LINF) or ``sum |x - c|^p`` (LP).

    For LP the p-th root is left to the caller.  Computed in X's dtype.
    """
    out = np.empty((X.shape[0], centroids.shape[0]), dtype=X.dtype)
    if not HAVE_NUMBA:
        _lp_numpy(X, centroids.astype(X.dtype, copy=False), kind, p, out)
        return out
    CT = np.ascontiguousarray(centroids.T, dtype=X.dtype)
    X = read_only(X)
    if kind == L1 or (kind == LP and p == 1):
        _l1_numba(X, CT, out)
    elif kind == LINF:
        _linf_numba(X, CT, out)
    else:  # p = 1.5, 2, 2.5, 3, 4 take products and roots (vectorized), other p a power
        int_p = {2: 2, 3: 3, 4: 4, 1.5: -1, 2.5: -2}.get(p, 0)
        _lp_numba(X, CT, X.dtype.type(p), int_p, out)
    return out
