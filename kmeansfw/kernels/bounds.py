"""Kernel of the bound-based assignments: which rows their distance bounds cannot vouch for.

Bound-based assignments keep, per sample, the bounds of its last full search and that
search's step; the bounds now are those moved by the cumulative centroid shifts since
(``cum[now] - cum[step]``), the same total as moving them at every step, without rewriting
n x groups bounds at every step.  The filter (:func:`stale_rows`) only reads.
"""

from __future__ import annotations

import numpy as np

from kmeansfw.kernels._compile import HAVE_NUMBA, numba


def _stale_rows_numpy(
    labels, upper, lower, stamps, cum_shift, cum_drift, now, half_gap, margin, redo
):
    hi, lo = 1 + margin, 1 - margin
    slack = 4 * np.finfo(np.float64).eps
    u = upper + (cum_shift[now, labels] - cum_shift[stamps, labels])
    u = u * hi + slack * cum_shift[now, labels]
    lows = lower - (cum_drift[now][None, :] - cum_drift[stamps])
    lows = (lows - slack * cum_drift[now][None, :]) * lo
    glb = lows.min(axis=1) if lows.shape[1] else np.full(labels.shape[0], np.inf)
    stale = (u > half_gap[labels] * lo) & (u > glb)
    found = np.flatnonzero(stale)
    redo[: found.size] = found
    return found.size


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _stale_rows_numba(  # pragma: no cover
        labels, upper, lower, stamps, cum_shift, cum_drift, now, half_gap, margin, redo
    ):
        hi, lo = 1 + margin, 1 - margin
        slack = 4 * np.finfo(np.float64).eps
        count = 0
        if lower.shape[1] == 1:
            # one group (hamerly): the same tests and values, without a branch per row,
            # whose outcome the processor mispredicts where stale rows fall at random
            # (on fits' own states: 2.2 ns a row against 6.7-9.6 at 100000 x 16, k=64,
            # 5-23 % stale; 2.3 against 2.6-3.5 at 20000 x 64, k=32)
            drift_now = cum_drift[now, 0]
            for i in range(labels.shape[0]):
                a = np.uintp(labels[i])
                s = stamps[i]
                u = upper[i] + (cum_shift[now, a] - cum_shift[s, a])
                u = u * hi + slack * cum_shift[now, a]
                low = np.float64(lower[i, 0]) - (drift_now - cum_drift[s, 0])
                stale = (u > half_gap[a] * lo) & (u > (low - slack * drift_now) * lo)
                redo[count] = i  # kept only when stale (count <= i: within redo)
                count += 1 if stale else 0
            return count
        for i in range(labels.shape[0]):
            a = np.uintp(labels[i])  # in [0, k) (see stale_rows): no wraparound
            s = stamps[i]
            u = upper[i] + (cum_shift[now, a] - cum_shift[s, a])
            u = u * hi + slack * cum_shift[now, a]
            if u <= half_gap[a] * lo:
                continue
            for g in range(lower.shape[1]):
                low = np.float64(lower[i, g]) - (cum_drift[now, g] - cum_drift[s, g])
                if u > (low - slack * cum_drift[now, g]) * lo:
                    redo[count] = i
                    count += 1
                    break
        return count


def stale_rows(
    labels: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    stamps: np.ndarray,
    cum_shift: np.ndarray,
    cum_drift: np.ndarray,
    now: int,
    half_gap: np.ndarray,
    margin: float,
) -> np.ndarray:
    """The rows of a block whose nearest centroid the distance bounds cannot vouch for.

    Parameters
    ----------
    labels : (b,) intp, each row's centroid, in [0, k) (the compiled kernel indexes with
        them unsigned and unchecked: the bounded assignments pass their checked
        searches' labels).
    upper : (b,) float64, the distance to it at the row's last full search.
    lower : (b, t) float, per group of centroids the distance to the nearest other one at
        that search (never above the true value).
    stamps : (b,) the step of that search.
    cum_shift : (steps, k) float64, ``cum_shift[s, j]`` is how far centroid j moved in
        total up to step s (a sum of shifts).
    cum_drift : (steps, t) float64, the same for each group's largest shift.
    now : int, the current step.
    half_gap : (k,) half the distance from each centroid to its nearest other centroid.
    margin : float, relative rounding margin.

    A row needs a new search unless its moved upper bound is below half its centroid's
    gap or below every group's moved lower bound, by more than ``margin`` (plus an
    absolute slack for the rounding of the cumulative sums).  One read-only pass.

    Returns
    -------
    (r,) intp, positions in the block, ascending.
    """
    redo = np.empty(labels.shape[0], dtype=np.intp)
    kernel = _stale_rows_numba if HAVE_NUMBA else _stale_rows_numpy
    args = (labels, upper, lower, stamps, cum_shift, cum_drift, int(now), half_gap, float(margin))
    count = kernel(*args, redo)
    return redo[:count]
