"""Kernel of the mean update step: weighted per-cluster sums of a row block.

:func:`add_weighted_cluster_sums` adds each row's weighted values and weight to its
cluster's float64 totals, row by row in order; CSR blocks always go through the NumPy twin
(a sparse one-hot product).  On small data it may split the *features* between numba's
threads: each thread sums its columns over every row, in row order, so every total is
the same sum in the same order as on one thread.

:func:`mark_changed_clusters` and :func:`add_cluster_members` serve the mean's map from
the previous iteration's sums: the clusters a row entered or left, and the sums of chosen
clusters only, with the same additions in the same order as the full sum.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kmeansfw.kernels._compile import HAVE_NUMBA, launch, numba, parallel_ready

#: Columns per thread at least, and rows x features at least, for the features to be
#: split between numba's threads (measured: 1.5x faster on two threads at 64 columns,
#: 2000 rows; no faster at 8 or 17 columns, where the walk over the labels dominates).
PARALLEL_MIN_COLUMNS = 16
PARALLEL_MIN_ELEMENTS = 1 << 16


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


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _accumulate_columns(X, labels, sample_weight, sums, f0, f1):  # pragma: no cover
        # columns [f0, f1) of every row, in row order, into a contiguous copy of those
        # columns of ``sums`` (no two threads write one cache line; when the columns are
        # contiguous already, k = 1, the view itself: disjoint from other runs), then back
        local = np.ascontiguousarray(sums[:, f0:f1])
        width = f1 - f0
        for i in range(X.shape[0]):
            j = labels[i]
            w = np.float64(sample_weight[i])
            row = X[i, f0:f1]
            for f in range(width):
                local[j, f] += w * row[f]
        sums[:, f0:f1] = local

    @numba.njit(nogil=True, cache=True, parallel=True)
    def _accumulate_parallel(X, labels, sample_weight, sums, weights, n_chunks):  # pragma: no cover
        # run c sums columns [f0, f1), the last run the weights too: every total gets
        # the additions of _accumulate_numba, in its order
        d = X.shape[1]
        per = -(-d // n_chunks)
        for c in numba.prange(n_chunks):
            f0, f1 = min(c * per, d), min((c + 1) * per, d)
            if f0 < f1:
                _accumulate_columns(X, labels, sample_weight, sums, f0, f1)
            if c == n_chunks - 1:
                for i in range(X.shape[0]):
                    weights[labels[i]] += np.float64(sample_weight[i])


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

    ``sums`` and ``weights`` are float64 and updated in place.  ``X`` may be a CSR block.
    ``n_threads``: numba's threads the kernel may use on a dense block (split by
    columns, see :func:`accumulate_chunks`); the sums do not depend on it.
    """
    if not isinstance(X, np.ndarray) and sp.issparse(X):
        _accumulate_numpy(X, labels, sample_weight, sums, weights)
        return
    if not HAVE_NUMBA:
        _accumulate_numpy(X, labels, sample_weight, sums, weights)
        return
    chunks = accumulate_chunks(X.shape[0], X.shape[1], n_threads)
    if chunks > 1:
        launch(_accumulate_parallel, X, labels, sample_weight, sums, weights, chunks)
    else:
        _accumulate_numba(X, labels, sample_weight, sums, weights)


def _mark_changed_numpy(labels, previous, dirty):
    moved = labels != previous
    hit = np.zeros(dirty.shape[0], dtype=np.bool_)
    hit[labels[moved]] = True
    hit[previous[moved]] = True
    new = hit & ~dirty
    dirty |= hit
    n_moved, n_new = int(np.count_nonzero(moved)), int(np.count_nonzero(new))
    return new, n_moved, n_new, int(np.count_nonzero(dirty))


def _add_members_numpy(X, labels, sample_weight, sums, weights, clusters):
    members = np.flatnonzero(clusters[labels])
    which = labels[members]
    w = np.asarray(sample_weight, dtype=np.float64)[members]
    # np.add.at adds in index order: each total gets the compiled kernel's additions
    np.add.at(weights, which, w)
    np.add.at(sums, which, w[:, None] * X[members].astype(np.float64, copy=False))


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

    @numba.njit(nogil=True, cache=True)
    def _add_members_numba(X, labels, sample_weight, sums, weights, clusters):  # pragma: no cover
        for i in range(X.shape[0]):
            j = labels[i]
            if clusters[j]:
                w = np.float64(sample_weight[i])
                weights[j] += w
                for f in range(X.shape[1]):
                    sums[j, f] += w * X[i, f]


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
    :func:`add_weighted_cluster_sums` does: row by row in order, so each selected total
    gets exactly the additions that function gives it (and costs only its members' rows).

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
    if HAVE_NUMBA:
        _add_members_numba(X, labels, sample_weight, sums, weights, clusters)
    else:
        _add_members_numpy(X, labels, sample_weight, sums, weights, clusters)
