"""Kernel of the mean update step: weighted per-cluster sums of a row block.

:func:`add_weighted_cluster_sums` adds each row's weighted values and weight to its
cluster's float64 totals in groups of rows (:func:`sum_group_rows`): each group summed row
by row in order from zero, the groups' totals then added to the running totals in order.
The Euclidean search adds the same groups in its own pass
(:func:`kmeansfw.kernels.nearest_sq_euclidean` with ``sums``), so the mean's totals are the
same bits whichever computes them.  CSR blocks always go through the NumPy twin (a sparse
one-hot product per group).  On small data it may split the *features* between numba's
threads: each thread sums its columns over every row, in the same groups and order, so
every total is the same sum as on one thread.

:func:`mark_changed_clusters` and :func:`add_cluster_members` serve the mean's map from
the previous iteration's sums: the clusters a row entered or left, and the sums of chosen
clusters only, with the same additions in the same order as the full sum.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kmeansfw.kernels import read_only
from kmeansfw.kernels._compile import HAVE_NUMBA, launch, numba, parallel_ready

#: The mean's sums take a block's rows in at most this many groups ...
SUM_GROUPS = 64
#: ... of whole units of this many rows (the Euclidean search's sub-blocks, which add
#: the same groups in their pass) ...
SUM_GROUP_UNIT = 256
#: ... and at least this many rows per centroid, so that a search's groups' totals
#: (groups x k x d float64) stay small beside the block.
SUM_GROUP_ROWS_PER_CLUSTER = 4


def sum_group_rows(n_rows: int, n_clusters: int = 1) -> int:
    """Rows per group of the mean's sums over a block of ``n_rows`` rows.

    The fewest whole units of :data:`SUM_GROUP_UNIT` rows that make at most
    :data:`SUM_GROUPS` groups and hold :data:`SUM_GROUP_ROWS_PER_CLUSTER` rows per
    centroid: decided by the block's rows and k only, so the totals depend on neither the
    number of threads nor which kernel sums them.

    Parameters
    ----------
    n_rows : int
        The block's rows.
    n_clusters : int
        k.

    Returns
    -------
    int
    """
    units = max(1, -(-n_rows // SUM_GROUP_UNIT))
    per_group = max(
        -(-units // SUM_GROUPS),
        -(-(SUM_GROUP_ROWS_PER_CLUSTER * n_clusters) // SUM_GROUP_UNIT),
    )
    return per_group * SUM_GROUP_UNIT


#: Columns per thread at least, and rows x features at least, for the features to be
#: split between numba's threads (measured: 1.5x faster on two threads at 64 columns,
#: 2000 rows; no faster at 8 or 17 columns, where the walk over the labels dominates).
PARALLEL_MIN_COLUMNS = 16
PARALLEL_MIN_ELEMENTS = 1 << 16


def _accumulate_numpy(X, labels, sample_weight, sums, weights, group_rows):
    # in float64, as the compiled kernel: float32 sums lose the centroids far from zero;
    # group by group, each group's totals then added in order, as the compiled kernel
    b, k = labels.shape[0], weights.shape[0]
    w = np.asarray(sample_weight, dtype=np.float64)
    for a in range(0, b, group_rows):
        z = min(a + group_rows, b)
        one_hot = sp.csc_matrix((w[a:z], labels[a:z], np.arange(z - a + 1)), shape=(k, z - a))
        product = one_hot @ X[a:z].astype(np.float64, copy=False)
        sums += product.toarray() if sp.issparse(product) else product
        weights += np.bincount(labels[a:z], weights=w[a:z], minlength=k)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _accumulate_numba(  # pragma: no cover
        X, labels, sample_weight, sums, weights, group_rows
    ):
        n, d, k = X.shape[0], X.shape[1], weights.shape[0]
        local = np.empty((k, d))
        local_weights = np.empty(k)
        for a in range(0, n, group_rows):
            local[:] = 0.0
            local_weights[:] = 0.0
            for i in range(a, min(a + group_rows, n)):
                j = labels[i]
                w = np.float64(sample_weight[i])
                local_weights[j] += w
                for f in range(d):
                    local[j, f] += w * X[i, f]
            for j in range(k):
                weights[j] += local_weights[j]
                for f in range(d):
                    sums[j, f] += local[j, f]


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _accumulate_columns(  # pragma: no cover
        X, labels, sample_weight, sums, f0, f1, group_rows
    ):
        # columns [f0, f1) of every row, in the groups and order of _accumulate_numba,
        # into a contiguous copy of those columns of ``sums`` (no two threads write one
        # cache line), then back
        totals = np.ascontiguousarray(sums[:, f0:f1])
        width, k = f1 - f0, sums.shape[0]
        local = np.empty((k, width))
        for a in range(0, X.shape[0], group_rows):
            local[:] = 0.0
            for i in range(a, min(a + group_rows, X.shape[0])):
                j = labels[i]
                w = np.float64(sample_weight[i])
                row = X[i, f0:f1]
                for f in range(width):
                    local[j, f] += w * row[f]
            for j in range(k):
                for f in range(width):
                    totals[j, f] += local[j, f]
        # element by element, not ``sums[:, f0:f1] = totals``: see _copy in
        # kmeansfw.kernels.lloyd
        for j in range(k):
            for f in range(width):
                sums[j, f0 + f] = totals[j, f]

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _accumulate_weights(labels, sample_weight, weights, group_rows):  # pragma: no cover
        # the weights of _accumulate_numba alone, in its groups and order
        local = np.empty(weights.shape[0])
        for a in range(0, labels.shape[0], group_rows):
            local[:] = 0.0
            for i in range(a, min(a + group_rows, labels.shape[0])):
                local[labels[i]] += np.float64(sample_weight[i])
            for j in range(weights.shape[0]):
                weights[j] += local[j]

    @numba.njit(nogil=True, cache=True, parallel=True)
    def _accumulate_parallel(  # pragma: no cover
        X, labels, sample_weight, sums, weights, group_rows, n_chunks
    ):
        # run c sums columns [f0, f1), the last run the weights too: every total gets
        # the additions of _accumulate_numba, in its order
        d = X.shape[1]
        per = -(-d // n_chunks)
        for c in numba.prange(n_chunks):
            f0, f1 = min(c * per, d), min((c + 1) * per, d)
            if f0 < f1:
                _accumulate_columns(X, labels, sample_weight, sums, f0, f1, group_rows)
            if c == n_chunks - 1:
                _accumulate_weights(labels, sample_weight, weights, group_rows)


def accumulate_chunks(n_rows: int, n_features: int, n_threads: int) -> int:
    """How many runs of columns :func:`add_weighted_cluster_sums` splits a block into.

    Parameters
    ----------
    n_rows, n_features : int
        The block's shape.
    n_threads : int
        Threads the kernel may use (:func:`kmeansfw.engine.executors.kernel_threads`).

    Returns
    -------
    int
        1 (one thread) below :data:`PARALLEL_MIN_ELEMENTS` elements, for fewer than
        :data:`PARALLEL_MIN_COLUMNS` columns per run, or when numba's threads may not
        run (:func:`kmeansfw.kernels._compile.parallel_ready`).  The sums are the same
        for any answer.
    """
    chunks = min(n_threads, n_features // PARALLEL_MIN_COLUMNS)
    if chunks <= 1 or n_rows * n_features < PARALLEL_MIN_ELEMENTS:
        return 1
    return chunks if parallel_ready() else 1


def add_weighted_cluster_sums(
    X: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray,
    sums: np.ndarray,
    weights: np.ndarray,
    n_threads: int = 1,
) -> None:
    """Add each row's weighted values to ``sums[label]`` (k, d) and weight to ``weights``.

    ``sums`` and ``weights`` are float64 and updated in place, in groups of
    :func:`sum_group_rows` rows (each group from zero, then added in order).  ``X`` may be
    a CSR block.
    ``n_threads``: numba's threads the kernel may use on a dense block (split by
    columns, see :func:`accumulate_chunks`); the sums do not depend on it.
    """
    group_rows = sum_group_rows(X.shape[0], weights.shape[0])
    if not HAVE_NUMBA or (not isinstance(X, np.ndarray) and sp.issparse(X)):
        _accumulate_numpy(X, labels, sample_weight, sums, weights, group_rows)
        return
    X, sample_weight = read_only(X), read_only(sample_weight)
    chunks = accumulate_chunks(X.shape[0], X.shape[1], n_threads)
    if chunks > 1:
        launch(_accumulate_parallel, X, labels, sample_weight, sums, weights, group_rows, chunks)
    else:
        _accumulate_numba(X, labels, sample_weight, sums, weights, group_rows)


def _mark_changed_numpy(labels, previous, dirty):
    moved = labels != previous
    hit = np.zeros(dirty.shape[0], dtype=np.bool_)
    hit[labels[moved]] = True
    hit[previous[moved]] = True
    new = hit & ~dirty
    dirty |= hit
    n_moved, n_new = int(np.count_nonzero(moved)), int(np.count_nonzero(new))
    return new, n_moved, n_new, int(np.count_nonzero(dirty))


def _add_members_numpy(X, labels, sample_weight, sums, weights, clusters, group_rows):
    # np.add.at adds in index order: each group's totals get the compiled kernel's
    # additions, then go to the running totals in order
    for a in range(0, labels.shape[0], group_rows):
        part = labels[a : a + group_rows]
        members = np.flatnonzero(clusters[part])
        which = part[members]
        w = np.asarray(sample_weight[a : a + group_rows], dtype=np.float64)[members]
        local, local_weights = np.zeros(sums.shape), np.zeros(weights.shape)
        np.add.at(local_weights, which, w)
        rows = X[a : a + group_rows][members].astype(np.float64, copy=False)
        np.add.at(local, which, w[:, None] * rows)
        sums[clusters] += local[clusters]
        weights[clusters] += local_weights[clusters]


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _mark_changed_numba(labels, previous, dirty):  # pragma: no cover
        new = np.zeros(dirty.shape[0], dtype=np.bool_)
        moved = 0
        n_new = 0
        for i in range(labels.shape[0]):
            a, p = labels[i], previous[i]
            if a != p:
                moved += 1
                if not dirty[a]:
                    dirty[a] = True
                    new[a] = True
                    n_new += 1
                if not dirty[p]:
                    dirty[p] = True
                    new[p] = True
                    n_new += 1
        n_dirty = 0
        for j in range(dirty.shape[0]):
            n_dirty += 1 if dirty[j] else 0
        return new, moved, n_new, n_dirty

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _add_members_numba(  # pragma: no cover
        X, labels, sample_weight, sums, weights, clusters, group_rows
    ):
        n, d, k = X.shape[0], X.shape[1], weights.shape[0]
        local = np.empty((k, d))
        local_weights = np.empty(k)
        for a in range(0, n, group_rows):
            for j in range(k):
                if clusters[j]:
                    local_weights[j] = 0.0
                    local[j, :] = 0.0
            for i in range(a, min(a + group_rows, n)):
                j = labels[i]
                if clusters[j]:
                    w = np.float64(sample_weight[i])
                    local_weights[j] += w
                    for f in range(d):
                        local[j, f] += w * X[i, f]
            for j in range(k):
                if clusters[j]:
                    weights[j] += local_weights[j]
                    for f in range(d):
                        sums[j, f] += local[j, f]


def mark_changed_clusters(
    labels: np.ndarray, previous: np.ndarray, dirty: np.ndarray
) -> np.ndarray:
    """Mark in ``dirty`` (k,) bool every cluster a row entered or left; return the
    clusters marked now that were not before, (k,) bool.

    Parameters
    ----------
    labels, previous : ndarray of intp, shape (b,)
        The rows' labels now and in the previous iteration.
    dirty : ndarray of bool, shape (k,)
        Updated in place.

    Returns
    -------
    ndarray of bool, shape (k,)
    """
    return mark_moved_clusters(labels, previous, dirty)[0]


def mark_moved_clusters(
    labels: np.ndarray, previous: np.ndarray, dirty: np.ndarray
) -> tuple[np.ndarray, int, int, int]:
    """:func:`mark_changed_clusters` with what the caller would count next, in the same
    pass: the newly marked clusters, how many rows changed cluster, how many clusters
    were marked now and how many are marked in all.

    Parameters
    ----------
    labels, previous, dirty : ndarray
        As for :func:`mark_changed_clusters` (``dirty`` updated in place).

    Returns
    -------
    new : ndarray of bool, shape (k,)
    n_moved, n_new, n_dirty : int
    """
    kernel = _mark_changed_numba if HAVE_NUMBA else _mark_changed_numpy
    new, n_moved, n_new, n_dirty = kernel(labels, previous, dirty)
    return new, int(n_moved), int(n_new), int(n_dirty)


def add_cluster_members(
    X: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray,
    sums: np.ndarray,
    weights: np.ndarray,
    clusters: np.ndarray,
) -> None:
    """Add the rows whose cluster ``clusters`` (a (k,) bool mask) selects, as
    :func:`add_weighted_cluster_sums` does: in its groups, row by row in order, so each
    selected total gets exactly the additions that function gives it (and costs only its
    members' rows).

    Parameters
    ----------
    X : ndarray, shape (b, d)
        A dense block.
    labels : ndarray of intp, shape (b,)
    sample_weight : ndarray, shape (b,)
    sums, weights : ndarray of float64, shapes (k, d) and (k,)
        Updated in place.
    clusters : ndarray of bool, shape (k,)
    """
    group_rows = sum_group_rows(X.shape[0], weights.shape[0])
    if HAVE_NUMBA:
        rows, weight = read_only(X), read_only(sample_weight)
        _add_members_numba(rows, labels, weight, sums, weights, clusters, group_rows)
    else:
        _add_members_numpy(X, labels, sample_weight, sums, weights, clusters, group_rows)
