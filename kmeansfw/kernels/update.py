"""Kernel of the mean update step: weighted per-cluster sums of a row block.

:func:`add_weighted_cluster_sums` adds each row's weighted values and weight to its
cluster's float64 totals, row by row in order; CSR blocks always go through the NumPy twin
(a sparse one-hot product).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kmeansfw.kernels._compile import HAVE_NUMBA, numba


def _accumulate_numpy(X, labels, sample_weight, sums, weights):
    # in float64, as the compiled kernel: float32 sums lose the centroids far from zero
    b, k = labels.shape[0], weights.shape[0]
    w = np.asarray(sample_weight, dtype=np.float64)
    one_hot = sp.csc_matrix((w, labels, np.arange(b + 1)), shape=(k, b))
    product = one_hot @ X.astype(np.float64, copy=False)
    sums += product.toarray() if sp.issparse(product) else product
    weights += np.bincount(labels, weights=w, minlength=k)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _accumulate_numba(X, labels, sample_weight, sums, weights):  # pragma: no cover
        for i in range(X.shape[0]):
            j = labels[i]
            w = np.float64(sample_weight[i])
            weights[j] += w
            for f in range(X.shape[1]):
                sums[j, f] += w * X[i, f]


def add_weighted_cluster_sums(
    X: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray,
    sums: np.ndarray,
    weights: np.ndarray,
) -> None:
    """Add each row's weighted values to ``sums[label]`` (k, d) and weight to ``weights``.

    ``sums`` and ``weights`` are float64 and updated in place.  ``X`` may be a CSR block.
    """
    if not isinstance(X, np.ndarray) and sp.issparse(X):
        _accumulate_numpy(X, labels, sample_weight, sums, weights)
        return
    kernel = _accumulate_numba if HAVE_NUMBA else _accumulate_numpy
    kernel(X, labels, sample_weight, sums, weights)
