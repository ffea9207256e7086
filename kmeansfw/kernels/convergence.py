"""Kernels of the convergence criteria and the per-iteration summaries.

:func:`labels_equal` (whether any label moved, for the strict convergence of ``tol`` and
``unchanged``) and :func:`sq_shift` (how far the centroids moved, for ``tol``) run once per
iteration, :func:`count_changed` (how many labels moved) when an observer reads it;
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
#: :func:`labels_equal` compares runs of this many labels, each in one vectorized count,
#: and stops after the first run with a change.
EQUAL_RUN_ROWS = 4096


def _count_changed_numpy(labels, previous, run):
    # the differing labels, run by run of ``run`` rows (never single rows), up to the
    # first run that holds one: all of them when ``run`` covers the arrays
    changed = 0
    for a in range(0, labels.shape[0], run):
        changed += int(np.count_nonzero(labels[a : a + run] != previous[a : a + run]))
        if changed:
            break
    return changed


def _sq_shift_numpy(new, old):
    diff = new.astype(np.float64) - old.astype(np.float64)
    return float(np.einsum("ij,ij->", diff, diff))


def _count_changed_kernel(labels, previous, run):  # pragma: no cover - compiled by _load
    n = labels.shape[0]
    changed = 0
    for a in range(0, n, run):
        for i in range(a, min(a + run, n)):  # a count over the run vectorizes; an exit
            if labels[i] != previous[i]:  # per row would not
                changed += 1
        if changed:
            return changed
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
    global HAVE_NUMBA, _count_changed_numba, _sq_shift_numba
    global _centered_column_squares_numba
    from kmeansfw.kernels._compile import HAVE_NUMBA as have
    from kmeansfw.kernels._compile import numba

    if have:
        # fastmath off stated: a callee stating no flags would take its first caller's
        # (the compiled Lloyd iterations call the shift's kernel)
        jit = numba.njit(nogil=True, cache=True, fastmath=False)
        _count_changed_numba = jit(_count_changed_kernel)
        _sq_shift_numba = jit(_sq_shift_kernel)
        _centered_column_squares_numba = jit(_centered_column_squares_kernel)
    HAVE_NUMBA = have


def _same_length(labels: np.ndarray, previous: np.ndarray) -> None:
    # the compiled kernels read both arrays up to the first's length, unchecked
    if labels.shape != previous.shape or labels.ndim != 1:
        raise ValueError(
            f"labels of shapes {labels.shape} and {previous.shape}: two 1-D arrays of "
            "the same length are compared"
        )


def count_changed(labels: np.ndarray, previous: np.ndarray) -> int:
    """How many entries of two equal-length label arrays differ (ValueError for arrays
    of other shapes)."""
    _same_length(labels, previous)
    return _count_changed(labels, previous, max(labels.shape[0], 1))


def _count_changed(labels: np.ndarray, previous: np.ndarray, run: int) -> int:
    # how many labels differ, run by run of ``run`` labels up to the first run with one
    if HAVE_NUMBA is None:
        _load()
    kernel = _count_changed_numba if HAVE_NUMBA else _count_changed_numpy
    return int(kernel(labels, previous, run))


def labels_equal(labels: np.ndarray, previous: np.ndarray) -> bool:
    """Whether two label arrays are equal, read only up to the first changed run of rows.

    The arrays are compared in runs of :data:`EQUAL_RUN_ROWS` labels, and the comparison
    stops after the first run that holds a difference.  :func:`count_changed` reads both
    arrays in full; while a fit's labels still move, this stops early, so the strict
    convergence check (did any label change?) reads every label only on the iteration
    that ends a run.

    Parameters
    ----------
    labels, previous : ndarray, shape (n,)
        Integer labels; their integer dtypes may differ (a mini-batch run's previous
        labels are int32, with -1 for rows not drawn before).

    Returns
    -------
    bool
        True when every label equals the previous one.

    Raises
    ------
    ValueError
        Arrays that are not 1-D or not of the same length.
    """
    _same_length(labels, previous)
    return _count_changed(labels, previous, EQUAL_RUN_ROWS) == 0


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
