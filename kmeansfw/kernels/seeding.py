"""Kernels of greedy k-means++ seeding (also k-means||'s reclustering of its candidates).

:func:`draw_candidates` locates a step's candidate samples in the running weighted costs,
:func:`fold_candidates` does one greedy step's arithmetic (pick the candidate of lowest
potential, update every sample's cost to its nearest centroid), and
:func:`plusplus_from_costs` runs all the steps on a precomputed sample-to-sample cost
matrix in one compiled call; :func:`plusplus_sq_euclidean` runs the steps after the first
on one dense block by squared Euclidean cost in one compiled call, each step's costs
computed as the Euclidean cost kernel computes them (numba only: the step-by-step path
chooses the same samples without it).
"""

from __future__ import annotations

import numpy as np

from kmeansfw.kernels import read_only
from kmeansfw.kernels._compile import HAVE_NUMBA, launch, numba
from kmeansfw.kernels.checks import compiled_finite_min
from kmeansfw.kernels.euclidean import kernel_chunks


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

    @numba.njit(nogil=True, cache=True, inline="always")
    def _locate_candidates(cumulative, potential, draws_row, candidates):  # pragma: no cover
        # draw_candidates' samples into ``candidates``; returns how many: one per draw
        # (np.searchsorted, side="left", capped at n - 1), or one uniform index when
        # every sample sits on a centroid
        n = cumulative.shape[0]
        if potential <= 0:
            candidates[0] = min(int(draws_row[0] * n), n - 1)
            return 1
        for j in range(draws_row.shape[0]):
            target = draws_row[j] * potential
            low, high = 0, n
            while low < high:
                mid = (low + high) >> 1
                if cumulative[mid] < target:
                    low = mid + 1
                else:
                    high = mid
            candidates[j] = min(low, n - 1)
        return draws_row.shape[0]

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
            m = _locate_candidates(cumulative, potential, draws[c - 1], candidates)
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


# ------------------------------------------- greedy k-means++ steps on Euclidean data

#: :func:`plusplus_sq_euclidean` runs all the steps in one compiled call up to this much
#: work per step (rows x candidates x max(features, 4)); above it the calls between the
#: steps are a small share of a step, and the one call gained nothing.  Measured here
#: (k-means++ and one Lloyd iteration, float64): 0.71-0.89x the step-by-step time from
#: digits to 2560 x 8, k=256, 0.78x at 50000 x 16, k=32 (4M a step), 1.0x at 20000 x 64,
#: k=10 and 64 and 30000 x 64, k=8 (5-8M).  Its centered copy of the rows takes at most
#: 32 MB in float64 under it (16 MB from two candidates a step), its (rows, candidates)
#: buffer 8 MB.
FUSED_MAX_WORK = 1 << 22
#: ... and splits a step's costs between numba's threads from this much work per step
#: (below it waking them costs more than they save: measured 1.0x at 0.46M, 1.15x at
#: 0.14M multiply-adds a step; 0.7-0.75x from 0.77M up).
FUSED_PARALLEL_MIN_WORK = 1 << 19

if HAVE_NUMBA:
    from kmeansfw.kernels.euclidean import (
        SUB_BLOCK_ROWS,
        _chunk,
        _prepare_centroids_numba,
        _sq_cost_rows,
    )

    # the step path's check of each cost block (kmeansfw.core.contract.check_float_array:
    # no NaN or infinity), the same compiled kernel, on the flat (rows, candidates) block
    _finite_min = compiled_finite_min()

    @numba.njit(nogil=True, cache=True, inline="always")
    def _fused_setup(X, mean, sw, closest, t):  # pragma: no cover
        # the rows centered as _sq_cost_numba centers them (once for every step), the
        # running weighted costs and the step's buffers
        n, d = X.shape
        centered_x = np.empty((n, d), dtype=X.dtype)
        for i in range(n):
            for f in range(d):
                centered_x[i, f] = X[i, f] - mean[f]
        cumulative = np.empty(n)
        total = 0.0
        for i in range(n):
            total += np.float64(sw[i] * closest[i])
            cumulative[i] = total
        points = np.empty((t, d), dtype=X.dtype)
        centers = np.empty((2, t, d), dtype=X.dtype)  # centered, -2 centered
        c_norms = np.empty((2, t), dtype=X.dtype)  # squared norms, shift
        return centered_x, cumulative, np.empty(t, dtype=np.intp), points, centers, c_norms

    @numba.njit(nogil=True, cache=True, inline="always")
    def _fused_candidates(  # pragma: no cover
        X, mean, cumulative, potential, draws_row, candidates, points, centers, c_norms
    ):
        # the step's candidates (as draw_candidates), prepared as
        # prepare_euclidean_centroids prepares them; returns how many
        m = _locate_candidates(cumulative, potential, draws_row, candidates)
        # element by element, not ``points[j] = X[candidates[j]]``: see _copy in lloyd
        for j in range(m):
            row = candidates[j]
            for f in range(X.shape[1]):
                points[j, f] = X[row, f]
        _prepare_centroids_numba(
            points[:m], mean, centers[0, :m], centers[1, :m], c_norms[0, :m], c_norms[1, :m]
        )
        return m

    @numba.njit(nogil=True, cache=True)
    def _plusplus_sq_euclidean_numba(  # pragma: no cover
        X, mean, norms, sw, closest, potential, draws, chosen
    ):
        # the step-by-step path's arithmetic, step for step: the candidates located and
        # prepared as there, their costs by the cost kernel's _sq_cost_rows per sub-block
        # of the centered rows, the fold by _fold_candidates_numba (``closest`` in place)
        n, t = X.shape[0], draws.shape[1]
        centered_x, cumulative, candidates, points, centers, c_norms = _fused_setup(
            X, mean, sw, closest, t
        )
        buf = np.empty(n * t, dtype=X.dtype)
        for c in range(1, chosen.shape[0]):
            m = _fused_candidates(
                X, mean, cumulative, potential, draws[c - 1], candidates, points, centers, c_norms
            )
            cost = buf[: n * m].reshape((n, m))
            for start in range(0, n, SUB_BLOCK_ROWS):
                stop = min(start + SUB_BLOCK_ROWS, n)
                _sq_cost_rows(
                    centered_x[start:stop], centers[1, :m], c_norms[0, :m], norms[start:stop],
                    cost[start:stop],
                )
            if not _finite_min(buf[: n * m])[0]:
                return False
            best, potential = _fold_candidates_numba(cost, closest, sw, closest, cumulative)
            chosen[c] = candidates[best]
        return True

    @numba.njit(nogil=True, cache=True, parallel=True)
    def _plusplus_sq_euclidean_parallel(  # pragma: no cover
        X, mean, norms, sw, closest, potential, draws, chosen, n_chunks
    ):
        # as the serial kernel, each step's costs split between numba's threads in runs
        # of whole sub-blocks (every sub-block computed as there: the same bits)
        n, t = X.shape[0], draws.shape[1]
        centered_x, cumulative, candidates, points, centers, c_norms = _fused_setup(
            X, mean, sw, closest, t
        )
        buf = np.empty(n * t, dtype=X.dtype)
        for c in range(1, chosen.shape[0]):
            m = _fused_candidates(
                X, mean, cumulative, potential, draws[c - 1], candidates, points, centers, c_norms
            )
            cost = buf[: n * m].reshape((n, m))
            for run in numba.prange(n_chunks):
                a, b = _chunk(n, n_chunks, run, SUB_BLOCK_ROWS)
                for start in range(a, b, SUB_BLOCK_ROWS):
                    stop = min(start + SUB_BLOCK_ROWS, b)
                    _sq_cost_rows(
                        centered_x[start:stop], centers[1, :m], c_norms[0, :m],
                        norms[start:stop], cost[start:stop],
                    )
            if not _finite_min(buf[: n * m])[0]:
                return False
            best, potential = _fold_candidates_numba(cost, closest, sw, closest, cumulative)
            chosen[c] = candidates[best]
        return True


def fused_plusplus_pays(n_rows: int, n_features: int, n_trials: int) -> bool:
    """Whether :func:`plusplus_sq_euclidean` should run greedy k-means++ on a block of this
    shape (numba is installed and a step is at most :data:`FUSED_MAX_WORK`)."""
    return HAVE_NUMBA and n_rows * n_trials * max(n_features, 4) <= FUSED_MAX_WORK


def plusplus_sq_euclidean(
    X: np.ndarray,
    mean: np.ndarray,
    norms: np.ndarray,
    sample_weight: np.ndarray,
    closest: np.ndarray,
    first: int,
    potential: float,
    draws: np.ndarray,
    n_threads: int = 1,
) -> np.ndarray | None:
    """Greedy k-means++ by squared Euclidean cost on one dense block, in one compiled call.

    Every step as the step-by-step path takes it (its candidates located in the running
    weighted costs, their costs ``max((x - m).(-2c') + ||c'||^2 + ||x - m||^2, 0)`` by
    :func:`kmeansfw.kernels.sq_euclidean_costs`' kernel, the fold by
    :func:`fold_candidates`' kernel), so the samples chosen are the same; only the calls
    between the steps are gone.  Needs numba (:func:`fused_plusplus_pays`).

    Parameters
    ----------
    X : (n, d) C-contiguous block.
    mean : (d,) the data mean m, in X's dtype.
    norms : (n,) the rows' ``||x - m||^2``.
    sample_weight : (n,) array.
    closest : (n,) every sample's cost to the first centroid (not modified).
    first : int, the first centroid's sample.
    potential : float, the weighted sum of ``closest``.
    draws : (k - 1, trials) float64 uniforms in [0, 1), one row per step.
    n_threads : int
        Threads each step's costs may use (numba's, in runs of whole sub-blocks, see
        :func:`kmeansfw.kernels.euclidean.kernel_chunks`); the samples chosen do not
        depend on it.

    Returns
    -------
    (k,) intp array: the chosen samples, ``first`` first; None when a step's costs hold
    NaN or infinity (the step-by-step path's check of each cost block refuses them: let
    it run and raise).
    """
    if not HAVE_NUMBA:
        raise RuntimeError("plusplus_sq_euclidean needs numba")
    chosen = np.empty(draws.shape[0] + 1, dtype=np.intp)
    chosen[0] = first
    args = (
        read_only(X),
        read_only(mean.astype(X.dtype, copy=False)),
        read_only(norms),
        read_only(sample_weight),
        np.array(closest, dtype=X.dtype),
        float(potential),
        np.ascontiguousarray(draws, dtype=np.float64),
        chosen,
    )
    work = X.shape[0] * draws.shape[1] * max(X.shape[1], 4)
    chunks = kernel_chunks(X.shape[0], X.shape[1], draws.shape[1], n_threads)
    if chunks > 1 and work >= FUSED_PARALLEL_MIN_WORK:
        finite = launch(_plusplus_sq_euclidean_parallel, *args, chunks)
    else:
        finite = _plusplus_sq_euclidean_numba(*args)
    return chosen if finite else None


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
