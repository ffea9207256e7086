"""Kernels of the convergence criteria and the per-iteration summaries.

:func:`count_changed` (labels that moved, for ``unchanged``) and :func:`sq_shift` (how far
the centroids moved, for ``tol``) run once per iteration;
:func:`add_centered_column_squares` (the per-feature sums of squared deviations behind
``tol``'s mean variance) once per data set, without a centered copy.
"""

from __future__ import annotations

import numpy as np

from kmeansfw.kernels._compile import HAVE_NUMBA, numba


def _count_changed_numpy(labels, previous):
    return int(np.count_nonzero(labels != previous))


def _sq_shift_numpy(new, old):
    diff = new.astype(np.float64) - old.astype(np.float64)
    return float(np.einsum("ij,ij->", diff, diff))


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _count_changed_numba(labels, previous):  # pragma: no cover
        changed = 0
        for i in range(labels.shape[0]):
            if labels[i] != previous[i]:
                changed += 1
        return changed

    @numba.njit(nogil=True, cache=True)
    def _sq_shift_numba(new, old):  # pragma: no cover
        total = 0.0
        for j in range(new.shape[0]):
            for f in range(new.shape[1]):
                diff = np.float64(new[j, f]) - np.float64(old[j, f])
                total += diff * diff
        return total


def count_changed(labels: np.ndarray, previous: np.ndarray) -> int:
    """How many entries of two equal-length label arrays differ."""
    return int((_count_changed_numba if HAVE_NUMBA else _count_changed_numpy)(labels, previous))


def sq_shift(new: np.ndarray, old: np.ndarray) -> float:
    """Sum over rows of the squared distance from ``old`` to ``new`` (both (k, d)), in
    float64."""
    return float((_sq_shift_numba if HAVE_NUMBA else _sq_shift_numpy)(new, old))


def _centered_column_squares_numpy(X, mean, out):
    centered = X - mean
    out += np.einsum("ij,ij->j", centered, centered)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _centered_column_squares_numba(X, mean, out):  # pragma: no cover
        for i in range(X.shape[0]):
            for f in range(X.shape[1]):
                diff = np.float64(X[i, f]) - mean[f]
                out[f] += diff * diff


def add_centered_column_squares(X: np.ndarray, mean: np.ndarray, out: np.ndarray) -> None:
    """Add ``sum over rows of (x - mean)^2`` per feature of a dense block to ``out``.

    ``mean`` and ``out`` are float64; rows are summed in order.
    """
    kernel = _centered_column_squares_numba if HAVE_NUMBA else _centered_column_squares_numpy
    kernel(X, mean, out)
