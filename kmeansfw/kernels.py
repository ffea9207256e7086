"""Compiled inner loops of the Euclidean/mean defaults, with NumPy fallbacks.

The default Lloyd step needs, per row block, a matrix product followed by a fused
"add the centroid norms, take the minimum and its index" pass, then per-cluster weighted
sums.  NumPy alone needs several passes over each (b, k) block for that; numba compiles
the fused pass (the matrix product stays in BLAS), which is what lets the defaults
outrun scikit-learn's Cython.  numba is a dependency, but every kernel has a NumPy twin
used when numba cannot be imported or ``KMEANSFW_NUMBA=0`` is set; both give the same
labels (ties go to the lowest index in both).

Kernels run with the GIL released and are called from kmeansfw's worker threads, with
BLAS held to one thread, so each block is computed the same way whatever the number of
threads.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

#: Rows per matrix product inside the compiled nearest-centroid kernel (fits in L2).
SUB_BLOCK_ROWS = 256

try:  # pragma: no cover - exercised by whichever branch the environment allows
    if os.environ.get("KMEANSFW_NUMBA", "1") == "0":
        raise ImportError("disabled by KMEANSFW_NUMBA=0")
    import numba
except ImportError:  # pragma: no cover
    numba = None

HAVE_NUMBA = numba is not None


def _nearest_numpy(X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second):
    centered = X - mean
    reduced = np.dot(centered, minus_2c.T)
    reduced += c_sq_norms
    np.argmin(reduced, axis=1, out=labels)
    diff = centered - centered_c[labels]
    np.einsum("ij,ij->i", diff, diff, out=mins)
    if second.shape[0]:
        runner_up = np.partition(reduced, 1, axis=1)[:, 1] if reduced.shape[1] > 1 else np.inf
        second[:] = np.maximum(runner_up + np.einsum("ij,ij->i", centered, centered), 0)


def _paired_sq_numpy(X, mean, centered_c, labels, out):
    diff = (X - mean) - centered_c[labels]
    np.einsum("ij,ij->i", diff, diff, out=out)


def _accumulate_numpy(X, labels, sample_weight, sums, weights):
    b, k = labels.shape[0], weights.shape[0]
    one_hot = sp.csc_matrix((sample_weight, labels, np.arange(b + 1)), shape=(k, b))
    product = one_hot @ X
    sums += product.toarray() if sp.issparse(product) else product
    weights += np.bincount(labels, weights=sample_weight, minlength=k)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True, inline="always")
    def _centered_product(X, mean, minus_2c, start, rows, buf):  # pragma: no cover
        # Center rows start.. of X into ``rows`` and return ``minus_2c @ rows.T`` (k, m),
        # written into ``buf``: the shared first half of the nearest-centroid kernels.
        m, d = rows.shape
        for i in range(m):
            for f in range(d):
                rows[i, f] = X[start + i, f] - mean[f]
        block = buf[: minus_2c.shape[0] * m].reshape((minus_2c.shape[0], m))
        np.dot(minus_2c, rows.T, block)
        return block

    # reassoc/contract only let the exact-distance sum below vectorize (a fixed order, so
    # results stay deterministic); every other expression here is a single operation.
    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _nearest_numba(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second
    ):
        # Rows are centered sub-block by sub-block (as scikit-learn centers the data, for
        # accuracy) and the product is taken transposed, (k, rows), so that the running
        # minimum over centroids walks contiguous rows and vectorizes across samples.
        # With a non-empty ``second``, the runner-up's squared distance is kept too.
        want_second = second.shape[0] > 0
        n, d, k = X.shape[0], X.shape[1], minus_2c.shape[0]
        sub = min(SUB_BLOCK_ROWS, n)
        centered = np.empty((sub, d), dtype=X.dtype)
        buf = np.empty(k * sub, dtype=X.dtype)
        best = np.empty(sub, dtype=X.dtype)
        runner_up = np.empty(sub, dtype=X.dtype)
        arg = np.empty(sub, dtype=np.int32)
        zero = X.dtype.type(0)
        inf = X.dtype.type(np.inf)
        for start in range(0, n, sub):
            m = min(start + sub, n) - start
            rows = centered[:m]
            block = _centered_product(X, mean, minus_2c, start, rows, buf)
            c = c_sq_norms[0]
            for i in range(m):
                best[i] = block[0, i] + c
                runner_up[i] = inf
                arg[i] = 0
            for j in range(1, k):
                c = c_sq_norms[j]
                if want_second:
                    for i in range(m):
                        value = block[j, i] + c
                        lower = value < best[i]
                        runner_up[i] = best[i] if lower else min(runner_up[i], value)
                        best[i] = value if lower else best[i]
                        arg[i] = np.int32(j) if lower else arg[i]
                else:
                    for i in range(m):
                        value = block[j, i] + c
                        lower = value < best[i]
                        best[i] = value if lower else best[i]
                        arg[i] = np.int32(j) if lower else arg[i]
            for i in range(m):
                j = arg[i]
                labels[start + i] = j
                total = zero  # the exact squared distance to the chosen centroid
                for f in range(d):
                    diff = rows[i, f] - centered_c[j, f]
                    total += diff * diff
                mins[start + i] = total
                if want_second:
                    norm = zero
                    for f in range(d):
                        norm += rows[i, f] * rows[i, f]
                    second[start + i] = max(runner_up[i] + norm, zero)

    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _paired_sq_numba(X, mean, centered_c, labels, out):  # pragma: no cover
        zero = X.dtype.type(0)
        for i in range(X.shape[0]):
            j = labels[i]
            total = zero
            for f in range(X.shape[1]):
                diff = (X[i, f] - mean[f]) - centered_c[j, f]
                total += diff * diff
            out[i] = total

    @numba.njit(nogil=True, cache=True)
    def _accumulate_numba(X, labels, sample_weight, sums, weights):  # pragma: no cover
        for i in range(X.shape[0]):
            j = labels[i]
            w = np.float64(sample_weight[i])
            weights[j] += w
            for f in range(X.shape[1]):
                sums[j, f] += w * X[i, f]


def _nearest_groups_numpy(X, mean, minus_2c, c_sq_norms, centered_c, groups, labels, mins, lows):
    centered = X - mean
    reduced = np.dot(centered, minus_2c.T)
    reduced += c_sq_norms
    np.argmin(reduced, axis=1, out=labels)
    diff = centered - centered_c[labels]
    np.einsum("ij,ij->i", diff, diff, out=mins)
    reduced[np.arange(X.shape[0]), labels] = np.inf  # the assigned centroid is not a rival
    norms = np.einsum("ij,ij->i", centered, centered)
    for g in range(lows.shape[1]):  # groups of centroids, never samples
        members = np.flatnonzero(groups == g)
        rival = reduced[:, members].min(axis=1) if members.size else np.inf
        lows[:, g] = np.maximum(rival + norms, 0)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _nearest_groups_numba(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, groups, labels, mins, lows
    ):
        # _nearest_numba's pass (same product, same comparisons, hence the same labels),
        # keeping for every group of centroids its two smallest values, so that each
        # group's nearest centroid other than the assigned one is known at the end.
        n, d, k = X.shape[0], X.shape[1], minus_2c.shape[0]
        t = lows.shape[1]
        sub = min(SUB_BLOCK_ROWS, n)
        centered = np.empty((sub, d), dtype=X.dtype)
        buf = np.empty(k * sub, dtype=X.dtype)
        best = np.empty(sub, dtype=X.dtype)
        arg = np.empty(sub, dtype=np.int32)
        first = np.empty((t, sub), dtype=X.dtype)
        second = np.empty((t, sub), dtype=X.dtype)
        zero = X.dtype.type(0)
        inf = X.dtype.type(np.inf)
        for start in range(0, n, sub):
            m = min(start + sub, n) - start
            rows = centered[:m]
            block = _centered_product(X, mean, minus_2c, start, rows, buf)
            first[:, :m] = inf
            second[:, :m] = inf
            c = c_sq_norms[0]
            for i in range(m):
                best[i] = block[0, i] + c
                arg[i] = 0
            for j in range(k):
                c = c_sq_norms[j]
                g = groups[j]
                for i in range(m):
                    value = block[j, i] + c
                    lower = value < best[i]
                    best[i] = value if lower else best[i]
                    arg[i] = np.int32(j) if lower else arg[i]
                    low = first[g, i]
                    below = value < low
                    second[g, i] = low if below else min(second[g, i], value)
                    first[g, i] = value if below else low
            for i in range(m):
                j = arg[i]
                labels[start + i] = j
                total = zero
                norm = zero
                for f in range(d):
                    diff = rows[i, f] - centered_c[j, f]
                    total += diff * diff
                    norm += rows[i, f] * rows[i, f]
                mins[start + i] = total
                own = groups[j]
                for g in range(t):
                    rival = second[g, i] if g == own else first[g, i]
                    lows[start + i, g] = max(rival + norm, zero)


def _sq_cost_numpy(X, minus_2c, shift, norms, out):
    np.dot(X, minus_2c.T, out=out)
    out += shift
    out += norms[:, None]
    np.maximum(out, 0, out=out)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _sq_cost_numba(X, minus_2c, shift, norms, out):  # pragma: no cover
        np.dot(X, minus_2c.T, out)
        zero = out.dtype.type(0)
        for i in range(out.shape[0]):
            norm = norms[i]
            for j in range(out.shape[1]):
                value = (out[i, j] + shift[j]) + norm  # NumPy's order: bit-identical twin
                out[i, j] = zero if value < zero else value


def sq_euclidean_costs(
    X: np.ndarray, minus_2c: np.ndarray, shift: np.ndarray, norms: np.ndarray
) -> np.ndarray:
    """The (b, k) squared distances ``max(x.(-2c) + shift + norms, 0)`` of a dense block.

    ``shift`` (k,) holds ``||c - m||^2 + 2 m.(c - m)`` and ``norms`` (b,) ``||x - m||^2``
    for the data mean m, so no centered copy of X is needed (one product, one fused pass).
    """
    out = np.empty((X.shape[0], minus_2c.shape[0]), dtype=X.dtype)
    kernel = _sq_cost_numba if HAVE_NUMBA else _sq_cost_numpy
    kernel(X, minus_2c, shift, norms, out)
    return out


def nearest_groups_sq_euclidean(
    X: np.ndarray,
    mean: np.ndarray,
    minus_2c: np.ndarray,
    c_sq_norms: np.ndarray,
    centered_c: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest centroid, and per group of centroids the nearest *other* one, for a block.

    Arguments as for :func:`nearest_sq_euclidean`, plus ``groups`` (k,) the group index
    (in ``[0, n_groups)``) of every centroid.

    Returns
    -------
    labels, min_sq_distances : as :func:`nearest_sq_euclidean` (the same labels).
    group_sq_distances : (b, n_groups), the squared distance from each row to the
        nearest centroid of each group other than its assigned one (from the product, so
        to rounding; ``inf`` for a group with no other centroid).
    """
    b = X.shape[0]
    labels = np.empty(b, dtype=np.intp)
    mins = np.empty(b, dtype=X.dtype)
    lows = np.empty((b, n_groups), dtype=X.dtype)
    groups = np.ascontiguousarray(groups, dtype=np.intp)
    kernel = _nearest_groups_numba if HAVE_NUMBA else _nearest_groups_numpy
    kernel(X, mean, minus_2c, c_sq_norms, centered_c, groups, labels, mins, lows)
    return labels, mins, lows


def nearest_sq_euclidean(
    X: np.ndarray,
    mean: np.ndarray,
    minus_2c: np.ndarray,
    c_sq_norms: np.ndarray,
    centered_c: np.ndarray,
    with_second: bool = False,
) -> tuple[np.ndarray, ...]:
    """Nearest centroid by squared Euclidean distance, for one block.

    Parameters
    ----------
    X : (b, d) C-contiguous block.
    mean : (d,) the data's mean; rows and centroids are compared centered on it.
    minus_2c : (k, d) C-contiguous, ``-2 * centered_c``.
    c_sq_norms : (k,) squared norms of ``centered_c``.
    centered_c : (k, d) the centroids minus ``mean``.

    Returns
    -------
    labels : (b,) intp, the argmin of ``||c||^2 - 2 x.c`` (lowest index on ties).
    min_sq_distances : (b,) the exact squared distances ``sum((x - c)^2)`` to those
        centroids, in X's dtype.
    second_sq_distances : (b,), with ``with_second``: the squared distance to the
        runner-up centroid (from the product, so to rounding), for bound-based searches.
    """
    labels = np.empty(X.shape[0], dtype=np.intp)
    mins = np.empty(X.shape[0], dtype=X.dtype)
    second = np.empty(X.shape[0] if with_second else 0, dtype=X.dtype)
    kernel = _nearest_numba if HAVE_NUMBA else _nearest_numpy
    kernel(X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second)
    return (labels, mins, second) if with_second else (labels, mins)


def paired_sq_euclidean(
    X: np.ndarray, mean: np.ndarray, centered_c: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Exact squared distance of each row of X to ``centered_c[labels] + mean``, (b,)."""
    out = np.empty(X.shape[0], dtype=X.dtype)
    kernel = _paired_sq_numba if HAVE_NUMBA else _paired_sq_numpy
    kernel(X, mean, np.ascontiguousarray(centered_c, dtype=X.dtype), labels, out)
    return out


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


# --------------------------------------------------------------------------- L_p distances
# Block kernels for the distances that have no matrix-product form.  The NumPy twins walk
# the features (never the samples), one whole (b, k) block per step.

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
            out[i, :] = acc

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
            out[i, :] = acc

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
            out[i, :] = acc


def lp_block(X: np.ndarray, centroids: np.ndarray, kind: int, p: float = 1.0) -> np.ndarray:
    """(b, k) block of ``sum |x - c|`` (L1), ``max |x - c|`` (LINF) or ``sum |x - c|^p`` (LP).

    For LP the p-th root is left to the caller.  Computed in X's dtype.
    """
    out = np.empty((X.shape[0], centroids.shape[0]), dtype=X.dtype)
    if not HAVE_NUMBA:
        _lp_numpy(X, centroids.astype(X.dtype, copy=False), kind, p, out)
        return out
    CT = np.ascontiguousarray(centroids.T, dtype=X.dtype)
    if kind == L1 or (kind == LP and p == 1):
        _l1_numba(X, CT, out)
    elif kind == LINF:
        _linf_numba(X, CT, out)
    else:  # p = 1.5, 2, 2.5, 3, 4 take products and roots (vectorized), other p a power
        int_p = {2: 2, 3: 3, 4: 4, 1.5: -1, 2.5: -2}.get(p, 0)
        _lp_numba(X, CT, X.dtype.type(p), int_p, out)
    return out


# ------------------------------------------------------------------- k-means++ step


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


# ------------------------------------------------------------------------ answer checks
# One pass over a strategy's answer instead of NumPy's two or three (isfinite, all, min):
# on small data the checks run a few dozen times per fit and their call overhead shows.


def _finite_min_numpy(flat):
    if flat.shape[0] == 0:
        return True, 0.0
    return bool(np.isfinite(flat).all()), float(flat.min())


def _int_range_numpy(flat):
    if flat.shape[0] == 0:
        return 0, 0
    return int(flat.min()), int(flat.max())


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _finite_min_numba(flat):  # pragma: no cover
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

    @numba.njit(nogil=True, cache=True)
    def _int_range_numba(flat):  # pragma: no cover
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


def finite_min(values: np.ndarray) -> tuple[bool, float]:
    """Whether every entry of a float array is finite, and (if so) the smallest entry.

    One pass; ``(True, 0.0)`` for an empty array.  The second value is meaningless when
    the first is False.
    """
    flat = values.reshape(-1)
    return (_finite_min_numba if HAVE_NUMBA else _finite_min_numpy)(flat)


def int_range(values: np.ndarray) -> tuple[int, int]:
    """Smallest and largest entry of an integer array, in one pass (``(0, 0)`` if empty)."""
    flat = values.reshape(-1)
    return (_int_range_numba if HAVE_NUMBA else _int_range_numpy)(flat)


# ------------------------------------------------------------------ iteration summaries


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


# ----------------------------------------------------------------- centroid preparation


def _prepare_centroids_numpy(centroids, mean, centered, minus_2c, norms, shift):
    np.subtract(centroids, mean, out=centered)
    np.multiply(centered, -2, out=minus_2c)
    np.einsum("ij,ij->i", centered, centered, out=norms)
    np.add(norms, 2 * (centered @ mean), out=shift)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _prepare_centroids_numba(  # pragma: no cover
        centroids, mean, centered, minus_2c, norms, shift
    ):
        zero = centered.dtype.type(0)
        for j in range(centroids.shape[0]):
            total = zero
            cross = zero
            for f in range(centroids.shape[1]):
                c = centered.dtype.type(centroids[j, f] - mean[f])
                centered[j, f] = c
                minus_2c[j, f] = c * -2
                total += c * c
                cross += c * mean[f]
            norms[j] = total
            shift[j] = total + 2 * cross


def prepare_euclidean_centroids(
    centroids: np.ndarray, mean: np.ndarray, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What the Euclidean kernels need of a centroid set, in one pass over it.

    Returns ``centered = centroids - mean``, ``-2 centered``, the squared norms of
    ``centered`` and ``shift = norms + 2 centered.mean`` (so that
    ``||x - c||^2 = ||x - m||^2 - 2 x.(c - m) + shift``), all C-contiguous in ``dtype``.
    """
    k, d = centroids.shape
    centered = np.empty((k, d), dtype=dtype)
    minus_2c = np.empty((k, d), dtype=dtype)
    norms = np.empty(k, dtype=dtype)
    shift = np.empty(k, dtype=dtype)
    kernel = _prepare_centroids_numba if HAVE_NUMBA else _prepare_centroids_numpy
    kernel(
        centroids.astype(dtype, copy=False),
        mean.astype(dtype, copy=False),
        centered,
        minus_2c,
        norms,
        shift,
    )
    return centered, minus_2c, norms, shift


# ------------------------------------------------------------------- distance bounds
# Bound-based assignments keep, per sample, the bounds of its last full search and that
# search's step; the bounds now are those moved by the cumulative centroid shifts since
# (``cum[now] - cum[step]``), the same total as moving them at every step, without
# rewriting n x groups bounds at every step.  The filter only reads.


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
        for i in range(labels.shape[0]):
            a = labels[i]
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
    labels : (b,) intp, each row's centroid.
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


# ------------------------------------------------------------------- data statistics
# Once per data set: squared norms of the centered rows (Euclidean costs) and per-feature
# sums of squared deviations (the tol criterion's variance), without a centered copy.


def _centered_row_norms_numpy(X, mean, out):
    centered = X - mean
    np.einsum("ij,ij->i", centered, centered, out=out)


def _centered_column_squares_numpy(X, mean, out):
    centered = X - mean
    out += np.einsum("ij,ij->j", centered, centered)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _centered_row_norms_numba(X, mean, out):  # pragma: no cover
        zero = out.dtype.type(0)
        for i in range(X.shape[0]):
            total = zero
            for f in range(X.shape[1]):
                diff = X[i, f] - mean[f]
                total += diff * diff
            out[i] = total

    @numba.njit(nogil=True, cache=True)
    def _centered_column_squares_numba(X, mean, out):  # pragma: no cover
        for i in range(X.shape[0]):
            for f in range(X.shape[1]):
                diff = np.float64(X[i, f]) - mean[f]
                out[f] += diff * diff


def centered_row_norms(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``||x - mean||^2`` of every row of a dense block, in X's dtype, in one pass."""
    out = np.empty(X.shape[0], dtype=X.dtype)
    kernel = _centered_row_norms_numba if HAVE_NUMBA else _centered_row_norms_numpy
    kernel(X, mean.astype(X.dtype, copy=False), out)
    return out


def add_centered_column_squares(X: np.ndarray, mean: np.ndarray, out: np.ndarray) -> None:
    """Add ``sum over rows of (x - mean)^2`` per feature of a dense block to ``out``.

    ``mean`` and ``out`` are float64; rows are summed in order.
    """
    kernel = _centered_column_squares_numba if HAVE_NUMBA else _centered_column_squares_numpy
    kernel(X, mean, out)
