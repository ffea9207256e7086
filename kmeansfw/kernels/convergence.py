"""Kernels of the convergence criteria and the per-iteration summaries.

:func:`count_changed` (labels that moved, for ``unchanged``) and :func:`sq_shift` (how far
the centroids moved, for ``tol``) run once per iteration;
:func:`add_centered_column_squares` (the per-feature sums of squared deviations behind
``tol``'s mean variance) once per data set, without a centered copy.

The engine's loop imports this module, and the command line imports the loop without
fitting anything: so the kernels are compiled on first use (:func:`_load`; numba's
``cache=True`` keeps the machine code between runs) and importing this module does not
import numba.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Whether the compiled kernels are used: None until the first call (see :func:`_load`).
HAVE_NUMBA: bool | None = None


def _count_changed_numpy(labels, previous):
    return int(np.count_nonzero(labels != previous))


def _sq_shift_numpy(new, old):
    diff = new.astype(np.float64) - old.astype(np.float64)
    return float(np.einsum("ij,ij->", diff, diff))


def _count_changed_kernel(labels, previous):  # pragma: no cover - compiled by _load
    changed = 0
    for i in range(labels.shape[0]):
        if labels[i] != previous[i]:
            changed += 1
    return changed


def _sq_shift_kernel(new, old):  # pragma: no cover - compiled by _load
    total = 0.0
    for j in range(new.shape[0]):
        for f in range(new.shape[1]):
            diff = np.float64(new[j, f]) - np.float64(old[j, f])
            total += diff * diff
    return total


def _centered_column_squares_numpy(X, mean, out):
    centered = X - mean
    out += np.einsum("ij,ij->j", centered, centered)


def _centered_column_squares_kernel(X, mean, out):  # pragma: no cover - compiled by _load
    for i in range(X.shape[0]):
        for f in range(X.shape[1]):
            diff = np.float64(X[i, f]) - mean[f]
            out[f] += diff * diff


_count_changed_numba: Any = None
_sq_shift_numba: Any = None
_centered_column_squares_numba: Any = None


def _load() -> None:
    """Decide between the compiled kernels and their twins, compiling the former."""
    global HAVE_NUMBA, _count_changed_numba, _sq_shift_numba, _centered_column_squares_numba
    from kmeansfw.kernels._compile import HAVE_NUMBA as have
    from kmeansfw.kernels._compile import numba

    if have:
        jit = numba.njit(nogil=True, cache=True)
        _count_changed_numba = jit(_count_changed_kernel)
        _sq_shift_numba = jit(_sq_shift_kernel)
        _centered_column_squares_numba = jit(_centered_column_squares_kernel)
    HAVE_NUMBA = have


def count_changed(labels: np.ndarray, previous: np.ndarray) -> int:
    """How many entries of two equal-length label arrays differ."""
    if HAVE_NUMBA is None:
        _load()
    return int((_count_changed_numba if HAVE_NUMBA else _count_changed_numpy)(labels, previous))


def sq_shift(new: np.ndarray, old: np.ndarray) -> float:
    """Sum over rows of the squared distance from ``old`` to ``new`` (both (k, d)), in
    float64."""
    if HAVE_NUMBA is None:
        _load()
    return float((_sq_shift_numba if HAVE_NUMBA else _sq_shift_numpy)(new, old))


def add_centered_column_squares(X: np.ndarray, mean: np.ndarray, out: np.ndarray) -> None:
    """Add ``sum over rows of (x - mean)^2`` per feature of a dense block to ``out``.

    ``mean`` and ``out`` are float64; rows are summed in order.
    """
    if HAVE_NUMBA is None:
        _load()
    kernel = _centered_column_squares_numba if HAVE_NUMBA else _centered_column_squares_numpy
    kernel(X, mean, out)
