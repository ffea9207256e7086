"""Lloyd iterations of the built-in strategies, many in one compiled call.

:func:`lloyd_iterations` runs what the engine's one-call step
(:class:`kmeansfw.engine.lloyd_step.LloydStep`) runs per iteration, for as many
iterations as it may, without returning to Python between them: the Euclidean
distance's centroid preparation (:func:`kmeansfw.kernels.prepare_euclidean_centroids`'s
kernel), its nearest-centroid search with the mean's sums in the same pass (the search
and the groups of :func:`kmeansfw.kernels.nearest_sq_euclidean`, on numba's threads where
that function would use them), the mean (``sums / weights`` in float64, then the data's
dtype), and ``tol``'s test (labels unchanged, else the squared centroid shift of
:func:`kmeansfw.kernels.sq_shift` against its limit).  The same compiled kernels on the
same arrays in the same order: every label, centroid and weight is the one-call step's,
bit for bit.

An iteration it cannot finish as the mean would (a cluster left empty, whose centroid
the empty-cluster strategy decides; a weight or a centroid that is not finite, which the
engine's checks report) is not kept: the call returns before it, and the engine runs it
through the hooks.  numba only: without it, there is no such call (None), and the engine
runs its step once per iteration.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from kmeansfw.kernels import convergence, read_only
from kmeansfw.kernels._compile import HAVE_NUMBA, launch, numba
from kmeansfw.kernels.euclidean import DIRECT_WIDE_MAX_FEATURES, search_kind, search_plan

#: Why :func:`lloyd_iterations` returned: it made every iteration asked for, ...
RAN = 0
#: ... the last one left every label unchanged (strict convergence), ...
UNCHANGED = 1
#: ... the last one moved the centroids by at most the limit, ...
SHIFTED_LITTLE = 2
#: ... or the next one is left to the hooks (an empty cluster, a value not finite).
LEFT = 3


#: The most multiply-adds (rows x features x centroids, per iteration) one call makes:
#: about a second on one core at most, so that the engine gets back, to let Ctrl-C and
#: other Python threads through, between calls.
CALL_WORK = 1 << 30


def iterations_per_call(n_samples: int, n_features: int, n_clusters: int) -> int:
    """How many iterations one :func:`lloyd_iterations` call on data of this shape may
    make (at least 1; :data:`CALL_WORK`).

    Parameters
    ----------
    n_samples, n_features, n_clusters : int
        The data's shape and k.

    Returns
    -------
    int
    """
    return max(1, CALL_WORK // max(1, n_samples * max(n_features, 1) * max(n_clusters, 4)))


class Iterations(NamedTuple):
    """What :func:`lloyd_iterations` made (when ``done`` is 0, only ``stop`` means
    anything).

    Attributes
    ----------
    done : int
        Iterations made (0 when the first is left).
    stop : int
        :data:`RAN`, :data:`UNCHANGED`, :data:`SHIFTED_LITTLE` or :data:`LEFT`.
    labels : ndarray of intp, shape (n,)
        The last iteration's labels.
    previous_labels : ndarray of intp, shape (n,) or None
        The labels before the last iteration: the previous iteration's, the ``labels``
        passed in when it was the first (None when none were).
    centroids, previous_centroids : ndarray, shape (k, d)
        The centroids the last iteration computed, and those it assigned to.
    sums : ndarray of float64, shape (k, d)
        The last iteration's weighted sums per cluster.
    weights : ndarray of float64, shape (k,)
        The last iteration's weights per cluster.
    """

    done: int
    stop: int
    labels: np.ndarray
    previous_labels: np.ndarray | None
    centroids: np.ndarray
    previous_centroids: np.ndarray
    sums: np.ndarray
    weights: np.ndarray


if HAVE_NUMBA:
    from kmeansfw.kernels.euclidean import (
        _add_groups,
        _direct_search,
        _direct_search_pair,
        _prepare_centroids_numba,
        _product_search,
        _row_search,
        _row_search_screened,
        _search_run,
    )

    if convergence.HAVE_NUMBA is None:  # compiled on first use (not on import)
        convergence._load()
    _sq_shift = convergence._sq_shift_numba

    # The mean's centroids from the sums, as the mean computes them (float64 division,
    # then the data's dtype); False, with ``new`` partly written, for an empty cluster or
    # a weight or centroid that is not finite.  ``fastmath`` off: a division, not a
    # multiplication by a reciprocal.
    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _mean_of(sums, weights, new):  # pragma: no cover
        for j in range(sums.shape[0]):
            weight = weights[j]
            if weight == 0 or not np.isfinite(weight):
                return False
            for f in range(sums.shape[1]):
                new[j, f] = sums[j, f] / weight
                if not np.isfinite(new[j, f]):
                    return False
        return True

    # Whether any label changed, stopping at the first that did.  Not labels_equal's
    # kernel (convergence._count_changed_numba, a vectorized count over runs of 4096
    # labels): at 2000 rows its run is the whole array on every iteration whose labels
    # still move, and an iteration at 2000 x 2, k=3 took 7.8-8.7 us with it against
    # 5.6-6.0 us with this loop (in turns, same process).  The answer is the same.
    @numba.njit(nogil=True, cache=True)
    def _equal(labels, previous):  # pragma: no cover
        for i in range(labels.shape[0]):
            if labels[i] != previous[i]:
                return False
        return True

    @numba.njit(nogil=True, cache=True)
    def _zero(a):  # pragma: no cover
        # a serial call: in the threads' kernel an array expression would be a parallel
        # loop of its own, launched on every iteration
        a[...] = 0.0

    @numba.njit(nogil=True, cache=True)
    def _copy(out, a):  # pragma: no cover
        # serial, as _zero; element by element: numba compiles an array assignment
        # (``out[...] = a``, ``out[:, :d] = a``, ``out[j] = a[i]``) with a check of
        # the shapes whose error message it formats in compiled code, 4-5 s of a first
        # fit's compiling, for a check that the kernels' shapes never fail (the
        # kernels copy arrays element by element: tests/test_kernels.py reads their
        # compiled code for it)
        for j in range(a.shape[0]):
            for f in range(a.shape[1]):
                out[j, f] = a[j, f]

    @numba.njit(nogil=True, cache=True)
    def _copy_1d(out, a):  # pragma: no cover
        # _copy of one dimension
        for j in range(a.shape[0]):
            out[j] = a[j]

    # The iterations, inlined into serial kernels and kernels that split each search
    # between numba's threads: ``numba.prange`` over the search's runs of rows (those of
    # :func:`kmeansfw.kernels.nearest_sq_euclidean`'s threads) is a plain loop in the
    # serial kernels, whose one run is the whole block.  The serial kernels are apart from
    # the threaded ones: a cached kernel that holds numba's threaded loops starts only
    # after numba's threading layer is (numba starts it for a ``parallel=True`` kernel,
    # and the engine launches one only where
    # :func:`kmeansfw.kernels._compile.parallel_ready` says it may).  ``search`` is the
    # search itself (_direct_search_pair, _direct_search, _row_search,
    # _row_search_screened or _product_search, a compiled function passed as a value;
    # euclidean.search_kind), one kernel per search: a kernel holding both the direct
    # and the product search compiled both on a first fit (the threaded kernel: 89.5 s
    # of a first fit's 108 s on 2 cores at 10,000 x 2, k=3, against 34.3 s for the
    # direct search's own).
    #
    # With ``steps`` 0, the threaded kernels make one search instead, that of
    # :func:`kmeansfw.kernels.nearest_sq_euclidean` on numba's threads: of the prepared
    # centroids, into the outputs and group totals that ``given`` holds, through the same
    # loop over the runs.  numba compiles each ``prange`` loop as a function of its own
    # that holds the search, and optimizes it again with the kernel: a threaded search
    # apart from the threaded iterations compiled the search's code once more (5-6 s of a
    # first fit on 2 cores; two ``prange`` loops in one kernel took as long as two
    # kernels), hence the one loop.
    #
    # The iterations write into arrays the caller made (``ring``: three label arrays,
    # ``centroids``: three (k, d) arrays, ``kept``: the last kept iteration's totals)
    # and return slots and counts only, so that the one search hands nothing back to
    # Python: each array a kernel returns is made a NumPy array on the way out (a kernel
    # returning seven new arrays took 3 us a call, one of twelve array arguments
    # returning a number 0.6 us).  ``given`` of the iterations: no rows of anything.
    @numba.njit(nogil=True, fastmath=False, inline="always")
    def _iterate(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        search, group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        n, d, k = X.shape[0], X.shape[1], start.shape[0]
        once = steps == 0  # the one search of ``given``
        centered = np.empty((k, d), dtype=X.dtype)
        minus_2c = np.empty((k, d), dtype=X.dtype)
        norms = np.empty(k, dtype=X.dtype)
        shift = np.empty(k, dtype=X.dtype)
        none = np.empty(0, dtype=X.dtype)  # no costs, no runner-up: the labels only
        group_sums = np.empty((n_groups, k, d))
        group_weights = np.empty((n_groups, k))
        sums, weights = np.empty((k, d)), np.empty(k)  # an iteration's totals
        kept_sums, kept_weights = kept
        current, previous = -1, -1  # the ring's labels of the last two iterations
        old, before = 0, 0  # the centroids' slots: those to assign to, and the last
        _copy(centroids[0], start)  # iteration's (the same before the first)
        done, stop = 0, RAN
        while done < steps or once:
            if once:
                m2c, c_norms, c_centered, found, mins, second, sums_g, weights_g = given
            else:
                target = 0
                while target == current or target == previous:
                    target += 1
                found = ring[target]
                _prepare_centroids_numba(
                    centroids[old], mean, centered, minus_2c, norms, shift
                )
                _zero(group_sums)
                _zero(group_weights)
                m2c, c_norms, c_centered, mins, second = minus_2c, norms, centered, none, none
                sums_g, weights_g = group_sums, group_weights
            want_second = second.shape[0] > 0
            for c in numba.prange(n_chunks):
                a, b, g0, g1 = _search_run(n, n_chunks, c, group_rows, sums_g)
                if a < b:
                    search(
                        X[a:b], mean, m2c, c_norms, c_centered, found[a:b], mins[a:b],
                        second[a:b] if want_second else second, sample_weight[a:b],
                        group_rows, sums_g[g0:g1], weights_g[g0:g1], prefetch,
                    )
            if once:
                break
            _zero(sums)
            _zero(weights)
            _add_groups(group_sums, group_weights, sums, weights)
            new = 0
            while new == old or new == before:
                new += 1
            if not _mean_of(sums, weights, centroids[new]):
                stop = LEFT  # the slots and totals of the last kept iteration stay
                break
            done += 1
            previous, current = current, target
            before, old = old, new
            _copy(kept_sums, sums)
            _copy_1d(kept_weights, weights)
            if previous >= 0:
                unchanged = _equal(found, ring[previous])
            else:
                unchanged = known and _equal(found, labels_in)
            if unchanged:
                stop = UNCHANGED
                break
            if _sq_shift(centroids[old], centroids[before]) <= limit:
                stop = SHIFTED_LITTLE
                break
        return done, stop, current, previous, old, before

    # The kernels, serial and threaded, one per search (_kernel picks them), written
    # out rather than made by a function taking the search: numba keys a cached closure
    # on a pickle of its variables, and a compiled function pickles with an id drawn
    # anew in each process, so such kernels would never be found in the cache.
    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _direct_iterations(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        return _iterate(
            X, mean, sample_weight, start, labels_in, known, limit, steps,
            _direct_search, group_rows, n_groups, prefetch, ring, centroids, kept, given,
            n_chunks,
        )

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _pair_iterations(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        return _iterate(
            X, mean, sample_weight, start, labels_in, known, limit, steps,
            _direct_search_pair, group_rows, n_groups, prefetch, ring, centroids, kept,
            given, n_chunks,
        )

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _rows_iterations(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        return _iterate(
            X, mean, sample_weight, start, labels_in, known, limit, steps,
            _row_search, group_rows, n_groups, prefetch, ring, centroids, kept, given,
            n_chunks,
        )

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _screened_rows_iterations(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        return _iterate(
            X, mean, sample_weight, start, labels_in, known, limit, steps,
            _row_search_screened, group_rows, n_groups, prefetch, ring, centroids, kept,
            given, n_chunks,
        )

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _product_iterations(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        return _iterate(
            X, mean, sample_weight, start, labels_in, known, limit, steps,
            _product_search, group_rows, n_groups, prefetch, ring, centroids, kept, given,
            n_chunks,
        )

    @numba.njit(nogil=True, cache=True, fastmath=False, parallel=True)
    def _direct_threaded(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        return _iterate(
            X, mean, sample_weight, start, labels_in, known, limit, steps,
            _direct_search, group_rows, n_groups, prefetch, ring, centroids, kept, given,
            n_chunks,
        )

    @numba.njit(nogil=True, cache=True, fastmath=False, parallel=True)
    def _pair_threaded(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        return _iterate(
            X, mean, sample_weight, start, labels_in, known, limit, steps,
            _direct_search_pair, group_rows, n_groups, prefetch, ring, centroids, kept,
            given, n_chunks,
        )

    @numba.njit(nogil=True, cache=True, fastmath=False, parallel=True)
    def _rows_threaded(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        return _iterate(
            X, mean, sample_weight, start, labels_in, known, limit, steps,
            _row_search, group_rows, n_groups, prefetch, ring, centroids, kept, given,
            n_chunks,
        )

    @numba.njit(nogil=True, cache=True, fastmath=False, parallel=True)
    def _screened_rows_threaded(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        return _iterate(
            X, mean, sample_weight, start, labels_in, known, limit, steps,
            _row_search_screened, group_rows, n_groups, prefetch, ring, centroids, kept,
            given, n_chunks,
        )

    @numba.njit(nogil=True, cache=True, fastmath=False, parallel=True)
    def _product_threaded(  # pragma: no cover
        X, mean, sample_weight, start, labels_in, known, limit, steps,
        group_rows, n_groups, prefetch, ring, centroids, kept, given, n_chunks,
    ):
        return _iterate(
            X, mean, sample_weight, start, labels_in, known, limit, steps,
            _product_search, group_rows, n_groups, prefetch, ring, centroids, kept, given,
            n_chunks,
        )


def _kernel(direct: bool, n_features: int, n_clusters: int, itemsize: int, threaded: bool) -> Any:
    # the Lloyd iterations' kernel of a shape's search (euclidean.search_kind), serial
    # or threaded
    kind = search_kind(direct, n_features, n_clusters, itemsize)
    if kind == "wide":  # never direct_pays: no iterations compiled
        raise ValueError(
            f"the direct search's iterations take up to {DIRECT_WIDE_MAX_FEATURES} "
            f"features, not {n_features}"
        )
    if kind == "pair":
        return _pair_threaded if threaded else _pair_iterations
    if kind == "fours":
        return _direct_threaded if threaded else _direct_iterations
    if kind == "rows":
        return _rows_threaded if threaded else _rows_iterations
    if kind == "screened rows":
        return _screened_rows_threaded if threaded else _screened_rows_iterations
    if kind == "product":
        return _product_threaded if threaded else _product_iterations
    raise ValueError(f"no Lloyd iterations for a search of kind {kind!r}")


def _buffers(
    n: int, k: int, d: int, dtype: np.dtype
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[np.ndarray, np.ndarray]]:
    # the arrays the iterations write: three label arrays, three (k, d) centroid arrays,
    # the kept totals (float64)
    ring = tuple(np.empty(n, np.intp) for _ in range(3))
    centroids = tuple(np.empty((k, d), dtype=dtype) for _ in range(3))
    return ring, centroids, (np.empty((k, d)), np.empty(k))


# The arguments of nothing that the iterations' kernels take, once per dtype: arrays of
# no elements, so nothing written to them is shared (a threaded search's call took
# 1.5-2 us less than with them made on each call).


@functools.cache
def _nothing(dtype: np.dtype) -> tuple[np.ndarray, ...]:
    # ``given`` of the iterations: no prepared centroids, outputs or group totals
    return (
        np.empty((0, 0), dtype=dtype), np.empty(0, dtype=dtype), np.empty((0, 0), dtype=dtype),
        np.empty(0, np.intp), np.empty(0, dtype=dtype), np.empty(0, dtype=dtype),
        np.empty((0, 0, 0)), np.empty((0, 0)),
    )


@functools.cache
def _no_iterations(dtype: np.dtype) -> tuple[Any, ...]:
    # a search's iterations: no centroids to iterate, no labels before, no steps, and
    # buffers of nothing
    start = read_only(np.empty((0, 0), dtype=dtype))
    no_labels = read_only(np.empty(0, np.intp))
    return (start, no_labels, False, 0.0, 0), _buffers(0, 0, 0, dtype)


def threaded_search(
    direct: bool,
    X: np.ndarray,
    mean: np.ndarray,
    minus_2c: np.ndarray,
    c_sq_norms: np.ndarray,
    centered_c: np.ndarray,
    labels: np.ndarray,
    mins: np.ndarray,
    second: np.ndarray,
    sample_weight: np.ndarray,
    group_rows: int,
    group_sums: np.ndarray,
    group_weights: np.ndarray,
    prefetch: bool,
    n_chunks: int,
) -> None:
    """One nearest-centroid search split between numba's threads (numba only).

    :func:`kmeansfw.kernels.nearest_sq_euclidean`'s search in ``n_chunks`` runs of rows:
    each run is the serial search of the shape's kind
    (:func:`kmeansfw.kernels.euclidean.search_kind`: ``_direct_search_pair`` at one or
    two features, ``_direct_search`` at three to sixteen, ``_row_search``,
    ``_row_search_screened`` or ``_product_search``) of those rows, so every output is
    the serial search's, bit for bit.  It runs in the threaded
    kernel of the Lloyd iterations, with no iteration to make: a first fit compiles the
    search's threaded code once for both.

    Parameters
    ----------
    direct : bool
        The direct search, else the product search (or its row search, by the shape).
    X, mean : ndarray
        The block (n, d) and its origin (d,), read-only.
    minus_2c, c_sq_norms, centered_c : ndarray
        The prepared centroids (:func:`kmeansfw.kernels.prepare_euclidean_centroids`),
        writable, C-contiguous, X's dtype (as
        :func:`kmeansfw.kernels.nearest_sq_euclidean` hands them: the types of the
        iterations' own, so that one compiled kernel serves both).
    labels, mins, second : ndarray
        The outputs, written in place: (n,) intp, and (n,) or (0,) of X's dtype (none:
        not computed).
    sample_weight, group_rows, group_sums, group_weights : ndarray, int
        The mean's sums in the pass (read-only weights, rows per group, the groups'
        float64 totals), or no rows of them.
    prefetch : bool
        The searches' prefetch hint.
    n_chunks : int
        Runs of rows, at least 2.

    Raises
    ------
    ValueError
        The direct search past sixteen features, which no fit takes
        (:func:`kmeansfw.kernels.euclidean.direct_pays`) and which has no threaded kernel.
    """
    kernel = _kernel(direct, X.shape[1], minus_2c.shape[0], X.itemsize, True)
    given = (minus_2c, c_sq_norms, centered_c, labels, mins, second, group_sums, group_weights)
    no_steps, buffers = _no_iterations(X.dtype)
    launch(
        kernel, read_only(X), read_only(mean), read_only(sample_weight), *no_steps,
        group_rows, 0, prefetch, *buffers, given, n_chunks,
    )


def lloyd_iterations(
    X: np.ndarray,
    mean: np.ndarray,
    sample_weight: np.ndarray,
    centroids: np.ndarray,
    labels: np.ndarray | None,
    limit: float,
    steps: int,
    n_threads: int,
    prefetch: bool,
) -> Iterations | None:
    """Up to ``steps`` Lloyd iterations of the built-in strategies in one compiled call.

    Parameters
    ----------
    X : ndarray, shape (n, d)
        The data's one block, C-contiguous.
    mean : ndarray, shape (d,)
        The origin the Euclidean distance compares rows on (X's dtype).
    sample_weight : ndarray, shape (n,)
        X's dtype.
    centroids : ndarray, shape (k, d)
        The centroids the first iteration assigns to (X's dtype).
    labels : ndarray of intp, shape (n,), or None
        The labels before the first iteration (None: unknown, so the first iteration
        cannot converge strictly).
    limit : float
        ``tol``'s limit on the squared centroid shift (0: the centroids must not move).
    steps : int
        The most iterations to make (at least 1).
    n_threads : int
        Threads the search may use (as :func:`kmeansfw.kernels.nearest_sq_euclidean`).
    prefetch : bool
        The searches' prefetch hint (as there: the product and the direct search's).
        A fit passes :func:`kmeansfw.kernels.prefetch_data` of its data: True from
        16 MiB, which one-block data of 2^22 values or more reaches (in float32; 2^21
        in float64: inline data of at most 32 centroids goes up to 2^24 values, 64 or
        128 MiB).

    Returns
    -------
    Iterations or None
        None without numba.

    Raises
    ------
    ValueError
        Arrays of more than one dtype, or of shapes that do not fit together, or
        ``steps`` under 1.
    """
    if steps < 1:  # no steps: the threaded kernels' single search (threaded_search)
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not HAVE_NUMBA:
        return None
    if not (mean.dtype == sample_weight.dtype == centroids.dtype == X.dtype):
        raise ValueError(
            f"the data ({X.dtype}), its origin ({mean.dtype}), weights "
            f"({sample_weight.dtype}) and centroids ({centroids.dtype}) must share a dtype"
        )
    n, d = X.shape
    k = centroids.shape[0]
    shapes = (mean.shape, sample_weight.shape, centroids.shape[1:])
    if shapes != ((d,), (n,), (d,)) or k < 1 or (labels is not None and labels.shape != (n,)):
        raise ValueError(
            f"data of shape {X.shape} with an origin of shape {mean.shape}, weights of "
            f"shape {sample_weight.shape}, centroids of shape {centroids.shape} and labels "
            f"of shape {None if labels is None else labels.shape}: they do not fit"
        )
    direct, chunks, group_rows, n_groups = search_plan(n, d, k, n_threads, True)
    known = labels is not None
    labels_in = labels if labels is not None else np.empty(0, dtype=np.intp)
    ring, made, kept = _buffers(n, k, d, X.dtype)  # what the kernel writes
    args = (
        read_only(X), read_only(mean), read_only(sample_weight),
        read_only(np.ascontiguousarray(centroids)), read_only(labels_in), known, float(limit),
        int(steps), group_rows, n_groups, prefetch, ring, made, kept, _nothing(X.dtype), chunks,
    )
    kernel = _kernel(direct, d, k, X.itemsize, chunks > 1)  # compiled only where taken
    found = launch(kernel, *args) if chunks > 1 else kernel(*args)
    done, stop, current, previous, new, before = found
    return Iterations(
        done=int(done),
        stop=int(stop),
        labels=ring[current],
        previous_labels=ring[previous] if previous >= 0 else labels,
        centroids=made[new],
        previous_centroids=made[before],
        sums=kept[0],
        weights=kept[1],
    )
