"""Kernels of greedy k-means++ seeding (also k-means||'s reclustering of its candidates).

:func:`draw_candidates` locates a step's candidate samples in the running weighted costs,
:func:`fold_candidates` does one greedy step's arithmetic (pick the candidate of lowest
potential, update every sample's cost to its nearest centroid), and
:func:`plusplus_from_costs` runs all the steps on a precomputed sample-to-sample cost
matrix in one compiled call.
"""

from __future__ import annotations

import numpy as np

from kmeansfw.kernels._compile import HAVE_NUMBA, numba


def _fold_candidates_numpy(cost, closest, sw, new_closest, cumulative):
    np.minimum(cost, closest[:, None], out=cost)
    w = sw.astype(np.float64)
    pots = (w[:, None] * cost.astype(np.float64)).sum(axis=0)  # row by row, in order
    best = int(np.argmin(pots))
    new_closest[:] = cost[:, best]
    np.cumsum(w * new_closest.astype(np.float64), out=cumulative)
    return best, pots[best]


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _fold_candidates_numba(cost, closest, sw, new_closest, cumulative):  # pragma: no cover
        n, t = cost.shape
        pots = np.zeros(t)
        for i in range(n):
            low = closest[i]
            w = np.float64(sw[i])
            for j in range(t):
                value = cost[i, j]
                if low < value:
                    value = low
                cost[i, j] = value
                pots[j] += w * np.float64(value)
        best = 0
        for j in range(1, t):
            if pots[j] < pots[best]:
                best = j
        total = 0.0
        for i in range(n):
            value = cost[i, best]
            new_closest[i] = value
            total += np.float64(sw[i]) * np.float64(value)
            cumulative[i] = total
        return best, pots[best]


def fold_candidates(
    cost: np.ndarray, closest: np.ndarray, sample_weight: np.ndarray
) -> tuple[int, float, np.ndarray, np.ndarray]:
    """One greedy k-means++ step's arithmetic, in one pass over the (n, trials) costs.

    Each candidate's potential is the weighted sum of ``min(cost, closest)`` (float64,
    row by row); the best candidate is the first of lowest potential.  ``cost`` is
    lowered in place.

    Returns
    -------
    best : int, the chosen candidate's column.
    potential : float, its potential.
    closest : (n,) every sample's cost to the nearest centroid once it is added.
    cumulative : (n,) float64, the running weighted sum of those costs (for the next draw).
    """
    new_closest = np.empty(cost.shape[0], dtype=cost.dtype)
    cumulative = np.empty(cost.shape[0])
    kernel = _fold_candidates_numba if HAVE_NUMBA else _fold_candidates_numpy
    best, potential = kernel(cost, closest, sample_weight, new_closest, cumulative)
    return int(best), float(potential), new_closest, cumulative


def draw_candidates(cumulative, potential, draws, n):
    """Sample indices for one k-means++ step: ``draws`` (uniforms) scaled by the
    potential, located in the running weighted costs; a uniform index when every sample
    already sits on a centroid (``potential <= 0``)."""
    if potential <= 0:
        return np.array([min(int(draws[0] * n), n - 1)])
    return np.minimum(np.searchsorted(cumulative, draws * potential), n - 1)


def _plusplus_numpy(costs, sw, closest, potential, draws, chosen):
    n = costs.shape[0]
    cumulative = np.cumsum(sw * closest, dtype=np.float64)
    for c in range(1, chosen.shape[0]):
        candidates = draw_candidates(cumulative, potential, draws[c - 1], n)
        new_closest, cumulative = np.empty(n, dtype=costs.dtype), np.empty(n)
        block = costs[:, candidates]
        best, potential = _fold_candidates_numpy(block, closest, sw, new_closest, cumulative)
        closest = new_closest
        chosen[c] = candidates[best]


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _plusplus_numba(costs, sw, closest, potential, draws, chosen):  # pragma: no cover
        n, t = costs.shape[0], draws.shape[1]
        cumulative = np.empty(n)
        total = 0.0
        for i in range(n):
            total += np.float64(sw[i] * closest[i])
            cumulative[i] = total
        closest = closest.copy()
        candidates = np.empty(t, dtype=np.intp)
        block = np.empty((n, t), dtype=costs.dtype)
        for c in range(1, chosen.shape[0]):
            m = t
            if potential <= 0:
                m = 1
                candidates[0] = min(int(draws[c - 1, 0] * n), n - 1)
            else:
                for j in range(t):  # np.searchsorted (side="left"), capped at n - 1
                    target = draws[c - 1, j] * potential
                    low, high = 0, n
                    while low < high:
                        mid = (low + high) >> 1
                        if cumulative[mid] < target:
                            low = mid + 1
                        else:
                            high = mid
                    candidates[j] = min(low, n - 1)
            for i in range(n):
                for j in range(m):
                    block[i, j] = costs[i, candidates[j]]
            # in place: the fold reads all of ``closest`` before writing the new one, and
            # this step's search is done with ``cumulative``
            best, potential = _fold_candidates_numba(block[:, :m], closest, sw, closest, cumulative)
            chosen[c] = candidates[best]


def plusplus_from_costs(
    costs: np.ndarray,
    sample_weight: np.ndarray,
    first: int,
    potential: float,
    draws: np.ndarray,
) -> np.ndarray:
    """Greedy k-means++ on a precomputed (n, n) sample-to-sample cost matrix.

    The same steps as drawing candidates and calling :func:`fold_candidates` per step
    (:func:`draw_candidates` with one row of ``draws`` per step), in one compiled call.

    Parameters
    ----------
    costs : (n, n) array, ``costs[i, j]`` the cost of sample i to sample j as a centroid.
    sample_weight : (n,) array.
    first : int, the first centroid's sample.
    potential : float, the weighted sum of ``costs[:, first]``.
    draws : (k - 1, trials) float64 uniforms in [0, 1), one row per step.

    Returns
    -------
    (k,) intp array: the chosen samples, ``first`` first.
    """
    chosen = np.empty(draws.shape[0] + 1, dtype=np.intp)
    chosen[0] = first
    closest = np.ascontiguousarray(costs[:, first])
    kernel = _plusplus_numba if HAVE_NUMBA else _plusplus_numpy
    kernel(costs, sample_weight, closest, potential, draws, chosen)
    return chosen


# ---------------------------------------------------------------- k-means|| rounds


def _lower_costs_numpy(labels, costs, offset, closest, nearest, sw, low, pick):
    better = costs < closest  # ties keep the earlier candidate
    np.copyto(low, np.where(better, costs, closest))
    np.copyto(pick, np.where(better, labels + offset, nearest))
    # a running (sequential) sum, in the compiled kernel's order
    return float(np.cumsum(sw.astype(np.float64) * low.astype(np.float64))[-1])


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _lower_costs_numba(
        labels, costs, offset, closest, nearest, sw, low, pick
    ):  # pragma: no cover
        total = 0.0
        for i in range(costs.shape[0]):
            value = costs[i]
            if value < closest[i]:
                low[i] = value
                pick[i] = labels[i] + offset
            else:
                low[i] = closest[i]
                pick[i] = nearest[i]
            total += np.float64(sw[i]) * np.float64(low[i])
        return total


def lower_costs(
    labels: np.ndarray,
    costs: np.ndarray,
    offset: int,
    closest: np.ndarray,
    nearest: np.ndarray,
    sample_weight: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One k-means|| round's update of a block, in one pass: each sample's cost to its
    nearest candidate so far, lowered by the round's new candidates.

    Parameters
    ----------
    labels, costs : (b,) the nearest new candidate of each row (index among the round's
        candidates) and its cost.
    offset : int, the index of the round's first candidate among all candidates.
    closest, nearest : (b,) the rows' cost to their nearest earlier candidate and its
        index (not modified).
    sample_weight : (b,) the rows' weights.

    Returns
    -------
    closest : (b,) the lowered costs (a new candidate wins only when strictly closer).
    nearest : (b,) intp, the index of each row's nearest candidate.
    potential : float, ``sum(sample_weight * closest)`` in float64, summed in row order.
    """
    b = costs.shape[0]
    low = np.empty(b, dtype=closest.dtype)
    pick = np.empty(b, dtype=np.intp)
    if b == 0:
        return low, pick, 0.0
    kernel = _lower_costs_numba if HAVE_NUMBA else _lower_costs_numpy
    total = kernel(
        np.ascontiguousarray(labels, dtype=np.intp),
        np.ascontiguousarray(costs, dtype=closest.dtype),
        int(offset),
        closest,
        nearest,
        sample_weight,
        low,
        pick,
    )
    return low, pick, float(total)


# ------------------------------------------------- k-means|| rounds pruned by groups


def _weighted_total_numpy(values, sw):
    return float(np.cumsum(sw.astype(np.float64) * values.astype(np.float64))[-1])


def _group_rows_numpy(nearest, closest, power, order, starts, counts, reach):
    counts[:] = np.bincount(nearest, minlength=counts.shape[0])
    starts[:] = np.concatenate([[0], np.cumsum(counts)[:-1]])
    order[:] = np.argsort(nearest, kind="stable")
    values = closest.astype(np.float64)
    values = np.sqrt(values) if power == 2 else values
    reach[:] = 0.0
    np.maximum.at(reach, nearest, values)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _weighted_total_numba(values, sw):  # pragma: no cover
        total = 0.0
        for i in range(values.shape[0]):
            total += np.float64(sw[i]) * np.float64(values[i])
        return total

    @numba.njit(nogil=True, cache=True)
    def _group_rows_numba(
        nearest, closest, power, order, starts, counts, reach
    ):  # pragma: no cover
        # a counting sort (stable: rows of a group in increasing order) and each group's
        # largest distance, in two passes over the rows
        counts[:] = 0
        reach[:] = 0.0
        for i in range(nearest.shape[0]):
            g = nearest[i]
            counts[g] += 1
            value = np.float64(closest[i])
            if power == 2:
                value = np.sqrt(value)
            if value > reach[g]:
                reach[g] = value
        total = 0
        for g in range(counts.shape[0]):
            starts[g] = total
            total += counts[g]
        fill = starts.copy()
        for i in range(nearest.shape[0]):
            g = nearest[i]
            order[fill[g]] = i
            fill[g] += 1


def weighted_total(values: np.ndarray, sample_weight: np.ndarray) -> float:
    """``sum(sample_weight * values)`` in float64, added row by row in order (the order of
    :func:`lower_costs`' potential)."""
    if values.shape[0] == 0:
        return 0.0
    kernel = _weighted_total_numba if HAVE_NUMBA else _weighted_total_numpy
    return float(kernel(values, sample_weight))


def group_rows(
    nearest: np.ndarray, closest: np.ndarray, n_groups: int, power: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows grouped by their nearest candidate, in one compiled pass (a counting sort).

    Parameters
    ----------
    nearest : (n,) intp, each row's nearest candidate, in ``0 .. n_groups - 1``.
    closest : (n,) each row's cost to it.
    n_groups : int, the number of candidates.
    power : int, 1 or 2: the cost is the distance to that power.

    Returns
    -------
    order : (n,) intp, the rows grouped by candidate (in increasing order within a group).
    starts, counts : (n_groups,) intp, where each group's rows begin in ``order`` and how
        many there are.
    reach : (n_groups,) float64, the largest distance (``cost ** (1 / power)``) of a row
        to its candidate in each group (0 for an empty group).
    """
    n = nearest.shape[0]
    order = np.empty(n, dtype=np.intp)
    starts = np.empty(n_groups, dtype=np.intp)
    counts = np.empty(n_groups, dtype=np.intp)
    reach = np.empty(n_groups, dtype=np.float64)
    kernel = _group_rows_numba if HAVE_NUMBA else _group_rows_numpy
    kernel(nearest, closest, int(power), order, starts, counts, reach)
    return order, starts, counts, reach
