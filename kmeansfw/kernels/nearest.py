"""The nearest-centroid search of a block by squared Euclidean distance.

:func:`nearest_sq_euclidean` takes the search of :mod:`kmeansfw.kernels.euclidean` that
the block's shape calls for (:func:`kmeansfw.kernels.euclidean.search_plan`: the direct
or the product search, each of its kernels by
:func:`kmeansfw.kernels.euclidean.search_kind`) on the calling thread, or splits its
rows between numba's threads in the kernel of the threaded Lloyd iterations
(:func:`kmeansfw.kernels.lloyd.threaded_search`), so that a first fit compiles the
search's threaded code once for both.  A module of its own because the Lloyd iterations
are built on the searches: here both are at hand, and no module imports one that
imports it.
"""

from __future__ import annotations

import numpy as np

from kmeansfw.kernels import euclidean, lloyd, read_only
from kmeansfw.kernels._compile import HAVE_NUMBA
from kmeansfw.kernels.update import add_weighted_cluster_sums


def nearest_sq_euclidean(
    X: np.ndarray,
    mean: np.ndarray,
    minus_2c: np.ndarray,
    c_sq_norms: np.ndarray,
    centered_c: np.ndarray,
    with_second: bool = False,
    n_threads: int = 1,
    with_costs: bool = True,
    sums: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    prefetch: bool = False,
) -> tuple[np.ndarray | None, ...]:
    """Nearest centroid by squared Euclidean distance, for one block.

    Parameters
    ----------
    X : (b, d) C-contiguous block.
    mean : (d,) the data's mean; rows and centroids are compared centered on it.
    minus_2c : (k, d) ``-2 * centered_c``.
    c_sq_norms : (k,) squared norms of ``centered_c``.
    centered_c : (k, d) the centroids minus ``mean``.

        The three are handed to the kernels as C-contiguous, writable arrays of X's
        dtype: as :func:`kmeansfw.kernels.prepare_euclidean_centroids` makes them, else
        copied so (the kernels read them as such, and one compiled signature serves every
        caller, on one thread or more).
    with_second : bool
        Also return the runner-up's squared distance.
    n_threads : int
        Threads the kernel may use itself (numba's, see
        :func:`kmeansfw.kernels.euclidean.kernel_chunks`): for a block that runs alone,
        never for one of many handed to worker threads.  The results do not depend on
        it.
    with_costs : bool
        False: the labels only (``min_sq_distances`` is None; the search skips its last
        pass over the block).  Not with ``with_second``.
    sums : (sample_weight, sums, weights), optional
        The mean update's map in the same pass: (b,) the rows' weights, and float64
        totals (k, d) and (k,), updated in place.  Each row's weight times its values is
        added to ``sums[label]`` and its weight to ``weights[label]`` right after its
        sub-block is searched, while the rows are in cache: in the groups of
        :func:`kmeansfw.kernels.add_weighted_cluster_sums` (row by row in order within
        groups of :func:`kmeansfw.kernels.update.sum_group_rows` rows, the groups' totals
        then added in order), so the totals are that function's bit for bit, whatever
        ``n_threads``.
    prefetch : bool
        The block belongs to data too large to stay in cache between passes
        (:func:`kmeansfw.kernels.prefetch_data`): the product search then prefetches
        each product's rows while it adds the previous product's to the sums, or
        computes their costs (not in a search for the labels only), where
        :func:`kmeansfw.kernels.euclidean.prefetch_pays` (the row search too, for its next
        sub-block's rows), and the direct search prefetches its next sub-block's rows
        where :func:`kmeansfw.kernels.euclidean.direct_prefetch_pays`.  A hint: the results do not
        depend on it.

    Returns
    -------
    labels : (b,) intp, the argmin of ``||c||^2 - 2 x.c`` (lowest index on ties).
    min_sq_distances : (b,) the exact squared distances ``sum((x - c)^2)`` to those
        centroids, in X's dtype (those :func:`kmeansfw.kernels.paired_sq_euclidean`
        gives, bit for bit), or None without ``with_costs``.
    second_sq_distances : (b,), with ``with_second``: the squared distance to the
        runner-up centroid (from ``||c||^2 - 2 x.c``, so to rounding), for bound-based
        searches.
    """
    if with_second and not with_costs:
        raise ValueError("with_second needs with_costs")
    n = X.shape[0]
    labels = np.empty(n, dtype=np.intp)
    mins = np.empty(n if with_costs else 0, dtype=X.dtype)
    second = np.empty(n if with_second else 0, dtype=X.dtype)
    prepared = [euclidean._as_kernels_take(a, X.dtype) for a in (minus_2c, c_sq_norms, centered_c)]
    args = (read_only(X), read_only(mean), *prepared, labels, mins, second)
    if not HAVE_NUMBA:
        euclidean._nearest_numpy(*args)
        if sums is not None:  # the mean's NumPy twin, in the same groups
            add_weighted_cluster_sums(X, labels, *sums)
    else:
        direct, chunks, group_rows, n_groups = euclidean.search_plan(
            n, X.shape[1], minus_2c.shape[0], n_threads, sums is not None
        )
        if sums is None:
            grouped = (*euclidean._no_sums(X.dtype), prefetch)
        else:
            weight, totals, counts = read_only(sums[0]), sums[1], sums[2]
            group_sums = np.zeros((n_groups, *totals.shape))
            group_weights = np.zeros((n_groups, counts.shape[0]))
            grouped = (weight, group_rows, group_sums, group_weights, prefetch)
        if chunks > 1:  # in the threaded Lloyd iterations' kernel
            lloyd.threaded_search(direct, *args, *grouped, chunks)
        else:
            search = euclidean._search_for(direct, X.shape[1], minus_2c.shape[0], X.itemsize)
            search(*args, *grouped)
        if n_groups:
            euclidean._add_groups(group_sums, group_weights, *sums[1:])
    if not with_costs:
        return labels, None
    return (labels, mins, second) if with_second else (labels, mins)

