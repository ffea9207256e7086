"""Kernels of the answer checks: finiteness and range of a strategy's answer.

One pass over a strategy's answer (:func:`finite_min` for floats, :func:`int_range` for
labels) instead of NumPy's two or three (isfinite, all, min): on small data the checks run
a few dozen times per fit and their call overhead shows.

The answer checks run wherever answers are checked (:mod:`kmeansfw.core.contract`), which
the command line imports without fitting anything: so this module compiles its kernels on
first use (numba's ``cache=True`` keeps the machine code between runs) and importing it
does not import numba.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _finite_min_numpy(flat):
    if flat.shape[0] == 0:
        return True, 0.0
    return bool(np.isfinite(flat).all()), float(flat.min())


def _int_range_numpy(flat):
    if flat.shape[0] == 0:
        return 0, 0
    return int(flat.min()), int(flat.max())


#: Whether the compiled kernels are used: None until the first check (see :func:`_load`).
HAVE_NUMBA: bool | None = None


def _finite_min_kernel(flat):  # pragma: no cover - compiled by _load
    # v - v is 0 for a finite v and NaN for NaN or +-inf; four independent running
    # sums and minima (in a fixed order) let the loop run at twice the speed of one
    n = flat.shape[0]
    zero, inf = flat.dtype.type(0), flat.dtype.type(np.inf)
    b0 = b1 = b2 = b3 = zero
    l0 = l1 = l2 = l3 = inf
    i = 0
    while i + 4 <= n:
        v0, v1, v2, v3 = flat[i], flat[i + 1], flat[i + 2], flat[i + 3]
        b0 += v0 - v0
        b1 += v1 - v1
        b2 += v2 - v2
        b3 += v3 - v3
        l0 = v0 if v0 < l0 else l0
        l1 = v1 if v1 < l1 else l1
        l2 = v2 if v2 < l2 else l2
        l3 = v3 if v3 < l3 else l3
        i += 4
    while i < n:
        v0 = flat[i]
        b0 += v0 - v0
        l0 = v0 if v0 < l0 else l0
        i += 1
    finite = ((b0 + b1) + (b2 + b3)) == zero
    low = min(min(l0, l1), min(l2, l3))
    return finite, (np.float64(low) if n else 0.0)


def _int_range_kernel(flat):  # pragma: no cover - compiled by _load
    if flat.shape[0] == 0:
        return 0, 0
    low = flat[0]
    high = flat[0]
    for i in range(1, flat.shape[0]):
        v = flat[i]
        if v < low:
            low = v
        if v > high:
            high = v
    return low, high


def _load() -> None:
    """Decide between the compiled kernels and their twins, compiling the former."""
    global HAVE_NUMBA, _finite_min_numba, _int_range_numba
    from kmeansfw.kernels._compile import HAVE_NUMBA as have
    from kmeansfw.kernels._compile import numba

    if have:
        _finite_min_numba = numba.njit(nogil=True, cache=True)(_finite_min_kernel)
        _int_range_numba = numba.njit(nogil=True, cache=True)(_int_range_kernel)
    HAVE_NUMBA = have


_finite_min_numba: Any = None
_int_range_numba: Any = None


def compiled_finite_min() -> Any:
    """The compiled kernel of :func:`finite_min` (a numba dispatcher taking a 1-d float
    array), for other compiled kernels to call; None without numba."""
    if HAVE_NUMBA is None:
        _load()
    return _finite_min_numba


def finite_min(values: np.ndarray) -> tuple[bool, float]:
    """Whether every entry of a float array is finite, and (if so) the smallest entry.

    One pass; ``(True, 0.0)`` for an empty array.  The second value is meaningless when
    the first is False.
    """
    flat = values.reshape(-1)
    if HAVE_NUMBA is None:
        _load()
    return (_finite_min_numba if HAVE_NUMBA else _finite_min_numpy)(flat)


def int_range(values: np.ndarray) -> tuple[int, int]:
    """Smallest and largest entry of an integer array, in one pass (``(0, 0)`` if empty)."""
    flat = values.reshape(-1)
    if HAVE_NUMBA is None:
        _load()
    return (_int_range_numba if HAVE_NUMBA else _int_range_numpy)(flat)
