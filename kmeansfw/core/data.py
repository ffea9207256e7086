"""Validated input data and the fixed plan of row blocks a fit walks.

:class:`FitData` is what every data-touching hook receives.  It never copies or writes
into the caller's array when that array is already a C-contiguous float32/float64 one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from kmeansfw.core.paging import all_finite
from kmeansfw.kernels import finite_min
from kmeansfw.kernels import read_only as _read_only_array

#: Rows per block never go below this (keeps per-block call overhead invisible), and a
#: block that is not the whole data is a multiple of it: the compiled kernels' sub-blocks
#: (``kmeansfw.kernels.SUB_BLOCK_ROWS``) then start at the same rows whatever the plan, so
#: a row's distances do not depend on the plan (a short product may take another BLAS
#: kernel, with other roundings; rows cut elsewhere, e.g. ``predict`` on a slice of the
#: data, may break exact ties otherwise).
MIN_BLOCK_ROWS = 256
#: Upper bound on a block's (b, k) cost buffer (the generic, non-compiled path uses it),
#: except in the plans of fits whose work splits between numba's threads (dense data):
#: their compiled kernels walk a block in cache-sized sub-blocks of their own, so inline
#: data is bounded by the memory budget only, and data for worker threads may take blocks
#: from half to twice as long for even shares (see :func:`plan_block_rows`).
CACHE_BLOCK_BYTES = 8 << 20
#: Temporaries of block shape a strategy may hold at once (for the memory budget).
BLOCK_TEMPORARIES = 4
#: Aim for this many tasks (groups of blocks) so worker threads stay balanced.
TARGET_TASKS = 64
#: Data for worker threads that the cache or the memory budget cuts into fewer than
#: TARGET_TASKS blocks gets the blocks these numbers of threads share most evenly (see
#: :func:`plan_block_rows`; measured on two threads only) ...
EVEN_SHARE_THREADS = (2, 4)
#: ... give or take this much of an even share, the longest such blocks (fewer of them).
EVEN_SHARE_SLACK = 0.03
#: Large data is cut into at least this many blocks, so threads share work evenly...
MIN_BLOCKS = 8
#: ...or, short of that, into as many as n / this many rows make (rounded up, then down
#: to 1, 2 or 4 blocks)...
BALANCE_MIN_ROWS = 4096
#: ...and data of fewer elements (samples x features) than this, which runs inline on
#: one thread anyway, is one block when its buffers fit: per-block hook calls and answer
#: checks are then made once per pass (measured at 20000 x 8, k=3: 0.41 -> 0.32 ms per
#: iteration).  A rule on the shape only, so results stay the same for any thread count.
SINGLE_BLOCK_ELEMENTS = 1 << 18
#: Mid-size data runs inline as well (:func:`runs_inline`) up to this many elements (or
#: :data:`INLINE_FEW_MAX_ELEMENTS` with few centroids), when it
#: has fewer than :data:`INLINE_MAX_ROWS` rows (or more, when inline it is one block,
#: :func:`one_inline_block`) and at most :data:`INLINE_MAX_FEATURES` features and its fit
#: fewer than :data:`INLINE_MAX_CLUSTERS` centroids (and so does data worker threads would
#: get as one block, :func:`one_worker_block`, whatever its fit's number of centroids).
INLINE_MAX_ELEMENTS = 1 << 22
#: Data of a fit of at most :data:`INLINE_FEW_CLUSTERS` centroids runs inline up to this
#: many elements (:func:`runs_inline`, :func:`one_inline_block`).
INLINE_FEW_MAX_ELEMENTS = 1 << 24
INLINE_FEW_CLUSTERS = 32
INLINE_MAX_ROWS = 1 << 18
#: Bytes per row the built-in Lloyd iterations keep when they run inline in compiled
#: calls (three label arrays of ``np.intp``: :mod:`kmeansfw.kernels.lloyd`), counted
#: against the memory budget for inline data of a fit that splits its work between
#: numba's threads: its one block's rows must fit it (:func:`plan_block_rows` with
#: ``compiled``, :func:`one_inline_block`).
INLINE_ROW_BYTES = 3 * np.dtype(np.intp).itemsize
INLINE_MAX_FEATURES = 128
INLINE_MAX_CLUSTERS = 128
#: Default working memory per worker thread for block buffers, in bytes.
DEFAULT_MEMORY_BUDGET = 64 << 20


def validate_X(X: Any, *, name: str = "X", dtype: Any = None) -> np.ndarray:
    """Return ``X`` as a finite, non-empty, 2-D, C-contiguous float array or CSR matrix.

    float32 stays float32; any other numeric type becomes float64; other sparse formats
    become CSR.  No copy is made when ``X`` already qualifies, so the result must be
    treated as read-only; a float array that only needs C order is copied here
    (:func:`c_ordered`), without scikit-learn's generic conversion.

    Raises
    ------
    ValueError
        NaN or infinity, an empty array, a wrong number of dimensions, non-numeric data.
    """
    dtype = _float_dtypes(dtype)
    X = c_ordered(X, dtype)
    if is_ready_array(X, dtype):
        return np.asarray(X)  # a np.memmap as a plain view of its pages
    from sklearn.utils import check_array  # deferred: importing scikit-learn takes ~1 s

    return check_array(
        X,
        accept_sparse="csr",
        dtype=dtype,
        order="C",
        ensure_all_finite=True,
        ensure_min_samples=1,
        ensure_min_features=1,
        input_name=name,
    )


def _float_dtypes(dtype: Any) -> list:
    """The accepted dtypes: float64 and float32 by default, else ``dtype`` as a list."""
    if dtype is None:
        return [np.float64, np.float32]
    return list(dtype) if isinstance(dtype, list | tuple) else [dtype]


def c_ordered(X: Any, dtype: Any = None) -> Any:
    """A C-ordered copy of a 2-D ndarray of one of the dtypes ``dtype`` names (default
    float64 or float32) that is not C-contiguous, such as a Fortran-ordered array or a column
    slice: the copy ``check_array(order="C")`` would make, without its generic
    conversion; anything else is returned unchanged (a memmap too: its copy is left to
    ``check_array``).
    """
    dtypes = _float_dtypes(dtype)
    if (
        type(X) is np.ndarray
        and X.ndim == 2
        and not X.flags.c_contiguous
        and any(X.dtype == t for t in dtypes)
    ):
        return np.ascontiguousarray(X)
    return X


def is_ready_array(X: Any, dtype: Any = None) -> bool:
    """Whether ``X`` is already what :func:`validate_X` returns: a finite, non-empty, 2-D,
    C-contiguous float32/float64 ndarray (of ``dtype`` when given).

    Checked in one pass, so validating an array that needs no conversion costs little;
    anything else goes through scikit-learn's ``check_array`` and its error messages.  An
    ``np.memmap`` qualifies too (no copy is made of a file mapped into memory), and one
    larger than memory is checked block by block (see :mod:`kmeansfw.core.paging`).
    """
    dtypes = _float_dtypes(dtype)
    return (
        type(X) in (np.ndarray, np.memmap)
        and X.ndim == 2
        and X.shape[0] >= 1
        and X.shape[1] >= 1
        and X.flags.c_contiguous
        and any(X.dtype == t for t in dtypes)
        and all_finite(X, _finite)
    )


def _finite(block: np.ndarray) -> bool:
    return bool(finite_min(block)[0])


def read_only(array: Any) -> Any:
    """A read-only view of an ndarray (of a sparse matrix's arrays); the caller's array
    keeps its own flags."""
    if isinstance(array, np.ndarray):
        return _read_only_array(array)
    if is_sparse(array) and array.format == "csr" and array.data.flags.writeable:
        parts = (read_only(array.data), read_only(array.indices), read_only(array.indptr))
        import scipy.sparse  # loaded: array is sparse

        return scipy.sparse.csr_matrix(parts, shape=array.shape, copy=False)
    return array


class Fitted(Mapping):
    """What a fit's strategies learned from the training data: a read-only mapping of
    plain values (arrays are read-only), picklable, compared by content."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] = ()) -> None:
        self._values = {
            str(k): read_only(np.array(v)) if isinstance(v, np.ndarray) else v
            for k, v in dict(values).items()
        }

    @classmethod
    def of(cls, values: Mapping[str, Any] | None) -> Fitted:
        """``values`` as a :class:`Fitted` (itself when it is one already)."""
        return values if isinstance(values, Fitted) else cls(values or {})

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Fitted({sorted(self._values)})"

    def __reduce__(self):
        return (Fitted, (self._values,))


def real_numbers(array: np.ndarray, what: str) -> None:
    """Raise a ValueError naming ``what`` unless ``array`` holds real numbers (floats,
    integers, booleans, or objects that convert to floats): a complex value would lose
    its imaginary part and a string would be parsed, silently, in a cast to float."""
    kind = array.dtype.kind
    if kind in "fiub":
        return
    if kind == "O":
        try:
            array.astype(np.float64)
            return
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{what} must hold real numbers, got an array of dtype {array.dtype}")


def validate_sample_weight(sample_weight: Any, n_samples: int, dtype: np.dtype) -> np.ndarray:
    """Return sample weights as a (n,) array of ``dtype``: finite, non-negative, not all 0.

    ``None`` gives unit weights.
    """
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    try:
        raw = np.asarray(sample_weight)  # a ragged list fails here
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample_weight must be numeric: {exc}") from None
    real_numbers(raw, "sample_weight")
    with np.errstate(over="ignore"):  # judged below
        sw = raw.astype(dtype, copy=False)
    if sw.ndim == 0:
        sw = np.full(n_samples, sw, dtype=dtype)
    if sw.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D, got an array of shape {sw.shape}")
    if sw.shape[0] != n_samples:
        raise ValueError(f"sample_weight has {sw.shape[0]} entries but X has {n_samples} samples")
    if not np.isfinite(sw).all():
        finite = np.isfinite(np.asarray(raw, dtype=np.float64)).all() if raw.size else True
        if finite:  # finite numbers past the data's dtype
            largest = float(np.abs(np.asarray(raw, dtype=np.float64)).max())
            raise ValueError(
                f"sample_weight holds values too large for {np.dtype(dtype)} (the largest "
                f"{largest:.3g}; it holds up to {float(np.finfo(dtype).max):.3g}): rescale "
                "the weights (only their ratios matter), or fit float64 data"
            )
        raise ValueError("sample_weight contains NaN or infinity")
    if (sw < 0).any():
        raise ValueError("sample_weight contains negative values")
    with np.errstate(over="ignore"):  # judged below
        total = float(np.sum(sw, dtype=np.float64))
    if not np.isfinite(total):  # the clusters' float64 weights (and sums) would overflow
        raise ValueError(
            "sample_weight sums to more than float64 holds (each weight is finite, their "
            "total is not): rescale the weights (only their ratios matter)"
        )
    if not (sw > 0).any():
        raise ValueError("sample_weight is zero for every sample")
    return sw


def fitted_centers(estimator: Any) -> np.ndarray:
    """A fitted estimator's ``cluster_centers_`` as ``predict``, ``transform`` and
    ``score`` use them, checked: a 2-D array of finite real numbers with at least one
    row and ``n_features_in_`` columns.

    scikit-learn code sets ``cluster_centers_`` by hand (to fix centroids found
    elsewhere, say); centroids of another width would be compared with rows of the
    wrong length.

    Parameters
    ----------
    estimator : fitted KMeans, MiniBatchKMeans or KMedoids

    Returns
    -------
    ndarray of shape (n_centers, n_features)
        ``n_features`` is the model's ``n_features_in_``.

    Raises
    ------
    ValueError
        Naming ``cluster_centers_``'s shape or values and what the model expects.
    """
    centers = np.asarray(estimator.cluster_centers_)
    name = type(estimator).__name__
    n_features = estimator.n_features_in_
    real_numbers(centers, f"{name}.cluster_centers_")
    if centers.dtype.kind == "O":  # objects that convert to floats (real_numbers says)
        centers = centers.astype(np.float64)
    if centers.ndim != 2 or centers.shape[0] < 1 or centers.shape[1] != n_features:
        raise ValueError(
            f"{name}.cluster_centers_ has shape {centers.shape}, but the model was fitted "
            f"on {n_features} features: it must have shape (n_clusters, {n_features}) "
            "with at least one row"
        )
    if not np.isfinite(centers).all():
        raise ValueError(f"{name}.cluster_centers_ contains NaN or infinity")
    return centers


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a SciPy sparse matrix or array.

    An ndarray is answered without SciPy's check (which shows in small fits' per-block
    calls), and without importing SciPy: no sparse matrix exists unless ``scipy.sparse``
    was imported, so this module leaves that import (~0.1 s) to the code that needs it
    (the command line's ``--help`` does not).
    """
    if isinstance(X, np.ndarray) or "scipy.sparse" not in sys.modules:
        return False
    import scipy.sparse  # loaded: a lookup (that waits for another thread still importing it)

    return scipy.sparse.issparse(X)


def rows_dense(X: Any, index: Any) -> np.ndarray:
    """``X[index]`` as a dense 2-D array, whether ``X`` is dense or sparse."""
    rows = X[index]
    return rows.toarray() if is_sparse(rows) else np.asarray(rows)


def default_n_threads() -> int:
    """Number of CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def runs_inline(n_samples: int, n_features: int, n_clusters: int | None = None) -> bool:
    """Whether data of this shape runs its tasks on the calling thread, one block when its
    buffers fit, its kernels splitting their work between numba's threads
    (:func:`kmeansfw.engine.executors.is_small`) instead of handing blocks to worker threads.

    Data of fewer than :data:`SINGLE_BLOCK_ELEMENTS` elements (``n_samples x n_features``)
    does, and so does mid-size data (:data:`INLINE_MAX_ELEMENTS` and the limits beside it)
    whose fit has few centroids: there one block's hook calls and answer checks per pass,
    instead of one set per block, outweigh what worker threads gain over numba's.
    Measured per Lloyd iteration (two threads, against worker threads): 20000 x 64, k=8,
    0.80-0.86x the time; 20000 x 32, k=8, 0.62-0.65x; 100000 x 16, k=3 and 8, 0.72-0.82x;
    12000 x 128, k=8, 0.85x; 200000 x 2, k=3, 0.84x; from 32 to 96 centroids
    0.82-0.94x with ``nearest`` (8000-60000 rows, 16-128 features) and 0.53-0.95x where
    ``auto`` keeps ``hamerly``'s bounds (Gaussian blobs; its searches split their rows
    too), 1.05x at 120000 x 16, k=64; but 1.1x at 500000 x 2 (the mean's sums of few
    columns stay on one thread, before the built-in Lloyd iterations ran in compiled
    calls: :func:`one_inline_block` now takes such data inline when it is one block),
    1.1x at 8000 x 256, k=8, and 1.1-1.6x at 128 centroids, where ``auto`` keeps
    ``yinyang``'s bounds, whose group search runs on one thread.  The element limit,
    2^21 when measured on an Intel Xeon VM, is 2^22 since measured on the AMD EPYC VM
    of docs/benchmarks.md (in turns in one process, against 2^21): from 2^21 to 2^22
    elements 0.56-0.76x the time on data under 16 MiB (float32: 40000 x 64, k=8;
    60000 x 64, k=3; 120000 x 32, k=16; 250000 x 16, k=3) and 0.52-0.80x above it,
    where inline data takes the searches' prefetching as well
    (:func:`kmeansfw.kernels.prefetch_data`, whose 16 MiB limit was measured with it;
    float64: 40000 x 64, k=3; 30000 x 128, k=8; 20000 x 128, k=32; 100000 x 32, k=8;
    250000 x 16, k=3); beyond, 0.75-0.97x from 4.8 to 7.7 million elements but
    1.11-1.16x at 100000 x 64, k=64, float64.  Data that moved inline with the new
    limit groups the mean's sums as one block (centroids may differ from the worker
    threads' in the last bits; the same on any number of threads).  Fits of at most
    :data:`INLINE_FEW_CLUSTERS` (32) centroids run inline up to
    :data:`INLINE_FEW_MAX_ELEMENTS` (2^24) elements, as one block (the rows' label
    vectors against the budget, :func:`plan_block_rows`): measured the same way in two
    sessions, 36 timings at 8 to 16 million elements (200000 x 64; 1000000 x 8, 12 and
    16; 500000 and 700000 x 16; k 3 to 32, both dtypes) took 0.65-1.23x the time, 0.91x as a
    geometric mean (median 0.89x; the same shape moved by up to 0.5 between runs on
    this VM); 32 and 64 million elements were mixed (0.70-1.13x), and 1000000 x 2,
    k=64, one block, took 1.41-2.28x in that session; re-measured in the next
    (unstructured data unless said) one block took 0.76-1.03x at one to four
    features and k 48-127 (1000000 x 2, k=64: 0.80-1.03x in three runs), 0.76-1.19x
    at 8 to 64 features and k 40-100, 1.07-1.21x on Gaussian blobs from 8 features
    (k 48-100) and 1.48x at 2000000 x 4, k=48, float32, blobs (1.09x at k=32 there,
    0.73x at k=8): so the limits stay 2^24 elements and 32 centroids; with numba's
    kernels only (their NumPy twins keep the limits measured before).
    :meth:`FitData.build` also runs inline the data that worker threads would get as one
    block (:func:`one_worker_block`: at most :data:`BALANCE_MIN_ROWS` rows whose buffers
    fit), whatever its features and its number of centroids: one worker thread would do
    all its work.  Measured per Lloyd iteration 0.59-0.82x the time at 2000-4000 x 256,
    k=3 to 32, float64 and float32, and 0.55-0.71x at 2000-4000 x 128-256, k=128-256
    (``auto`` keeps no bounds below ``AUTO_MIN_SAMPLES`` rows; ``hamerly`` and
    ``yinyang`` chosen by name do not declare ``splits_work`` and keep worker threads).
    Depends on the shape only (never on the thread count), so results stay the same for
    any number of threads.

    Parameters
    ----------
    n_samples, n_features : int
        The data's shape.
    n_clusters : int or None
        The fit's number of centroids; None (not known, or a fit whose work does not
        split between numba's threads): the element rule alone.

    Returns
    -------
    bool
    """
    if n_samples * n_features < SINGLE_BLOCK_ELEMENTS:
        return True
    return (
        n_clusters is not None
        and _mid_size(n_samples, n_features, n_clusters)
        and n_samples < INLINE_MAX_ROWS
    )


def _mid_size(n_samples: int, n_features: int, n_clusters: int) -> bool:
    # runs_inline's limits on mid-size data but its rows'
    # (with numba's kernels only, fits of few centroids up to INLINE_FEW_MAX_ELEMENTS: the
    # NumPy twins' plans stay those measured before)
    if n_clusters >= INLINE_MAX_CLUSTERS or n_features > INLINE_MAX_FEATURES:
        return False
    if n_clusters <= INLINE_FEW_CLUSTERS and kernels_compiled():
        return n_samples * n_features < INLINE_FEW_MAX_ELEMENTS
    return n_samples * n_features < INLINE_MAX_ELEMENTS


def one_inline_block(
    n_samples: int, n_features: int, n_clusters: int, itemsize: int, memory_budget: int
) -> bool:
    """Whether mid-size data of :data:`INLINE_MAX_ROWS` rows or more runs inline all the
    same: within :func:`runs_inline`'s other limits (elements, features), a fit of at
    most :data:`INLINE_FEW_CLUSTERS` centroids, and one block when it runs inline
    (:func:`plan_block_rows` with ``inline=True``, as :meth:`FitData.build` plans it:
    with numba's kernels its rows' label vectors fit the memory budget, with their
    NumPy twins its buffers), so that the built-in Lloyd iterations run in compiled
    calls on numba's threads (:class:`kmeansfw.engine.lloyd_step.LloydStep`) instead
    of a round of hooks per iteration on worker threads.

    Measured per Lloyd iteration (two threads, against worker threads, in turns in one
    process): 0.46-0.85x the time at 270000 to 1000000 rows of 1 to 7 features, k=3 to
    7 in float64 and 3 to 8 in float32 (1000000 x 2, k=3, float32 0.59-0.83x; 300000 x
    6, k=3, float64 0.78x).  Data that would run inline in more than one block keeps
    worker threads: there each block's round of hooks took 0.84-1.43x the time
    (1000000 x 2, float64: 1.01-1.43x at k=3, 1.35x at k=8, 0.97x at k=5; 700000 x 3,
    k=3, float64 1.22x).  Fits that keep the hooks on one inline block (an observer at
    every iteration's end) took 0.62-0.95x the time of worker threads' (one run of
    three 1.22x at 300000 x 6, float64).  The compiled iterations keep three label
    arrays of the data's rows (:data:`INLINE_ROW_BYTES` a row), so the rows must fit
    the budget that way; when the budget counted (rows, max(k, d)) buffers as well,
    this took as many as four buffers allowed (at 2^18 rows k <= 16 in float32 and 8 in
    float64; at 1000000 x 2, 4 and 2), as it still does with the NumPy twins (no
    limit of 32 centroids there).  Counting the label vectors
    alone, 1000000 x 2, float64 took 0.65-0.90x the time at k=3 and 32 (0.75-1.21x at
    k=8) and 1000000 x 8, k=3 to 32, 0.65-1.20x (0.89x as a geometric mean); at
    k=64, 1000000 x 2 took 1.41-2.28x, hence at most :data:`INLINE_FEW_CLUSTERS`
    centroids.  Depends on the shape, the dtype and the budget only
    (never on the thread count), so results stay the same for any number of threads
    (against worker threads' blocks the mean's sums are grouped otherwise: centroids
    within rounding, so a row almost exactly between two centroids may take the other
    one).

    Parameters
    ----------
    n_samples, n_features : int
        The data's shape.
    n_clusters : int
        The fit's number of centroids.
    itemsize : int
        Bytes per value.
    memory_budget : int
        Bytes of working memory per thread (:data:`DEFAULT_MEMORY_BUDGET`).

    Returns
    -------
    bool
    """
    if not _mid_size(n_samples, n_features, n_clusters):
        return False
    if n_clusters > INLINE_FEW_CLUSTERS and kernels_compiled():
        return False  # (the NumPy twins: as many as their buffers allow, as before)
    if n_samples * INLINE_ROW_BYTES > memory_budget:  # the compiled iterations' labels
        return False
    rows = plan_block_rows(
        n_samples,
        max(n_clusters, n_features),
        itemsize,
        memory_budget,
        n_features=n_features,
        inline=True,
        cache_bound=False,
        compiled=True,
    )
    return rows >= n_samples


def one_worker_block(
    n_samples: int, n_columns: int, itemsize: int, memory_budget: int, n_features: int
) -> bool:
    """Whether worker threads would get the data as one block (:func:`plan_block_rows`
    with ``inline=False``): at most :data:`BALANCE_MIN_ROWS` rows whose buffers fit the
    cache and memory budget.  Then one thread does all the work; inline, numba's threads
    split it (:meth:`FitData.build`), with the same single block, so the same results.

    Parameters
    ----------
    n_samples, n_columns, itemsize, memory_budget, n_features : int
        As for :func:`plan_block_rows`.

    Returns
    -------
    bool
    """
    rows = plan_block_rows(
        n_samples, n_columns, itemsize, memory_budget, n_features=n_features, inline=False
    )
    return rows >= n_samples


def plan_block_rows(
    n_samples: int,
    n_columns: int,
    itemsize: int,
    memory_budget: int,
    n_features: int = 0,
    inline: bool | None = None,
    cache_bound: bool = True,
    compiled: bool = False,
) -> int:
    """Rows per block for a (rows, n_columns) cost buffer.

    Cache-sized (:data:`CACHE_BLOCK_BYTES`; not with ``cache_bound=False``), within the
    memory budget, and small enough that large data makes at
    least :data:`MIN_BLOCKS` blocks; data that runs inline (``inline``, by default
    :func:`runs_inline` of ``n_samples x n_features``) is one block when that fits.
    Smaller data handed to worker threads is cut into 1, 2, 4 or 8 blocks: the largest
    power of two at most ``min(MIN_BLOCKS, ceil(n / BALANCE_MIN_ROWS))``, of whole
    sub-blocks, the last shorter by less than one sub-block per block, so that two, four
    or eight threads get even shares (20000 rows made 4 blocks of 4096 and one of 3616
    before: 3 blocks' time on two threads instead of 2.5), unless the cache or memory
    budget cuts more; then, with ``compiled`` and below :data:`TARGET_TASKS` blocks, they
    take the length, from half the cut up to twice it (within the budget and the balance
    rule's length), that two and four threads share most evenly
    (:func:`_even_share_rows`: 20000 rows of (rows, 256) float64 buffers make 4 blocks
    of 5120 rows, not 4 of 4096 and one of 3616).  ``compiled``: the fit's per-block
    work runs in compiled kernels that walk a block in sub-blocks of their own
    (:meth:`FitData.build`: a fit that splits its work between numba's threads, on dense
    data), so the cache's bound does not hold it; other plans keep the cut.  Inline,
    such a fit holds no buffers of the block's shape (with numba's kernels; their NumPy
    twins do): the budget then counts the vectors it keeps per row
    (:data:`INLINE_ROW_BYTES`), so its data is one block up to the budget over 24 bytes
    of rows (2.8 million rows at the default 64 MB; measured per Lloyd iteration
    against the blocks of (rows, max(k, d)) buffers, float64, in turns in one process:
    0.78-0.92x the time at 40000 to 250000 rows of 16 to 128 features, k=3 and 8,
    level at k=32: 1.02-1.04x; k=64 0.93-1.00x; in the full grid 20000 x 2 and x 8,
    k=256, two or three blocks before, read 0.84-0.90x their previous ratio).
    Transforms plan their (rows, k) answers within the budget again
    (:meth:`FitData.replan`).
    Depends only on the shape, the dtype, the budget and ``compiled`` (never on the
    thread count), so the partition of the data, and therefore every result, is the same
    whatever the number of threads.  A block short of the whole data is a multiple of
    :data:`MIN_BLOCK_ROWS` rows, so the labels of a row do not depend on the plan either
    (a fit and a predict on the same rows, planned differently, label them alike).
    """
    row_bytes = max(1, n_columns) * itemsize
    cache_rows = CACHE_BLOCK_BYTES // row_bytes if cache_bound else n_samples
    if inline is None:
        inline = runs_inline(n_samples, n_features)
    if inline and compiled and kernels_compiled():
        budget_rows = memory_budget // INLINE_ROW_BYTES  # vectors of the rows, no buffers
    else:
        budget_rows = memory_budget // (row_bytes * BLOCK_TEMPORARIES)
    if inline:
        balance_rows = n_samples
    else:
        n_blocks = min(MIN_BLOCKS, -(-n_samples // BALANCE_MIN_ROWS))
        n_blocks = 1 << (n_blocks.bit_length() - 1)  # 1, 2, 4 or 8: even shares of threads
        balance_rows = -(-n_samples // n_blocks)
        balance_rows = -(-balance_rows // MIN_BLOCK_ROWS) * MIN_BLOCK_ROWS  # still n_blocks
    rows = int(max(MIN_BLOCK_ROWS, min(cache_rows, budget_rows, balance_rows)))
    if rows < n_samples:  # whole sub-blocks: every block starts at a multiple of them
        rows -= rows % MIN_BLOCK_ROWS
        if compiled and not inline and rows < balance_rows:  # cut by the cache or budget
            # up to twice as long (the compiled kernels walk sub-blocks of their own),
            # within the budget, never fewer blocks than the balance rule gives
            longest = min(2 * rows, budget_rows, balance_rows)
            rows = _even_share_rows(n_samples, rows, max(rows, longest))
    return rows


def kernels_compiled() -> bool:
    """Whether the built-in kernels are numba's: they walk a block in sub-blocks of their
    own (their NumPy twins hold buffers of the block's shape), and the engine's Lloyd
    step makes its iterations in compiled calls.  Imports numba.

    Returns
    -------
    bool
    """
    from kmeansfw import kernels

    return bool(kernels.HAVE_NUMBA)


def largest_share(n_samples: int, rows: int, n_threads: int) -> float:
    """How unevenly threads share blocks of ``rows`` rows.

    Each of ``n_threads`` threads takes the next block as soon as it is free (all rows
    alike, the last block shorter); the answer is the largest share against an even one.

    Parameters
    ----------
    n_samples : int
        Rows of the data (at least 1).
    rows : int
        Rows per block (at least 1).
    n_threads : int
        Threads sharing the blocks.

    Returns
    -------
    float
        The largest share times ``n_threads / n_samples``: 1.0 when even.
    """
    return float(_largest_shares(n_samples, np.array([rows], dtype=np.int64), n_threads)[0])


def _largest_shares(n_samples: int, blocks: np.ndarray, n_threads: int) -> np.ndarray:
    """:func:`largest_share` for every block length in ``blocks`` at once, in closed
    form: the full blocks go round the threads, the last (shorter) one to a thread with
    the fewest."""
    full = -(-n_samples // blocks) - 1
    last = n_samples - full * blocks
    most = np.maximum(-(-full // n_threads) * blocks, full // n_threads * blocks + last)
    return most * n_threads / n_samples


def _even_share_rows(n_samples: int, rows: int, longest: int) -> int:
    """Rows per block for data that blocks of ``rows`` rows (whole sub-blocks) cut into
    fewer than :data:`TARGET_TASKS` blocks: among the lengths of whole sub-blocks from
    half of ``rows`` to ``longest`` that make at least two and fewer than
    :data:`TARGET_TASKS` blocks, those that two and four threads
    (:data:`EVEN_SHARE_THREADS`) share most evenly (the least of their
    :func:`largest_share`, give or take :data:`EVEN_SHARE_SLACK`), the longest of them:
    each block costs a round of hook calls and checks per pass.  (The two-thread share
    may come out less even than the cut's where the four-thread one gains more.)  At
    20000 rows, 4 blocks of 4096 and one of 3616 (the cache's bound for (rows, 256)
    float64 buffers) gave one of two threads 11808 rows; 4 blocks of 5120 give each
    10240."""
    if -(-n_samples // rows) >= TARGET_TASKS:  # tasks of several blocks share out evenly
        return rows
    longest -= longest % MIN_BLOCK_ROWS
    shortest = max(MIN_BLOCK_ROWS, rows // 2)
    blocks = np.arange(shortest, longest + 1, MIN_BLOCK_ROWS, dtype=np.int64)
    counts = -(-n_samples // blocks)
    keep = (counts >= 2) & (counts < TARGET_TASKS)
    if not keep.any():
        return rows
    blocks = blocks[keep]
    shares = np.max([_largest_shares(n_samples, blocks, t) for t in EVEN_SHARE_THREADS], axis=0)
    best = shares.min()
    return int(blocks[shares <= best + EVEN_SHARE_SLACK].max())


@attrs.define(eq=False)
class FitData:
    """The data one fit (or one predict/transform call) works on.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated data, read-only by contract (it may be the caller's array).
    sample_weight : ndarray of shape (n_samples,)
        Validated weights, same dtype as ``X``.
    block_rows : int
        Rows per block handed to the per-block hooks.
    n_threads : int
        Worker threads for the per-task map.
    cache : dict
        Per-data numeric caches filled by ``kmeansfw_prepare`` (key by strategy name).
    fitted : mapping
        What the fit's strategies learned from the training data (``kmeansfw_learn``),
        read-only; the same for every data set of a fitted model.
    executor : Executor or None
        How the map over chunks runs (None: worker threads, see
        :mod:`kmeansfw.engine.executors`).
    inline : bool
        Whether its tasks run on the calling thread (:func:`runs_inline`, and in
        :meth:`build` :func:`one_worker_block` and :func:`one_inline_block`; given, or
        by default the rule on the data's shape alone).
    memory_budget : int
        Working memory per thread for block buffers, in bytes (the fit's
        ``memory_budget_mb``): the budget its plan was made for, and the one
        :meth:`replan` and :meth:`with_rows` keep.

    ``X`` and ``sample_weight`` are read-only views: a strategy that writes into them
    fails at once instead of changing the caller's arrays.
    """

    X: Any = attrs.field(converter=read_only)
    sample_weight: np.ndarray = attrs.field(converter=read_only)
    block_rows: int
    n_threads: int = 1
    cache: dict = attrs.field(factory=dict)
    fitted: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda m: Fitted.of(m))
    executor: Any = None
    inline: bool = attrs.field(default=None, kw_only=True)
    memory_budget: int = attrs.field(default=DEFAULT_MEMORY_BUDGET, kw_only=True)
    tasks: list[list[slice]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.inline is None:
            self.inline = runs_inline(self.X.shape[0], self.X.shape[1])
        n = self.X.shape[0]
        b = self.block_rows
        blocks = [slice(start, min(start + b, n)) for start in range(0, n, b)]
        per_task = max(1, -(-len(blocks) // TARGET_TASKS))
        self.tasks = [blocks[i : i + per_task] for i in range(0, len(blocks), per_task)]

    @property
    def single_block(self) -> slice | None:
        """The one block's rows when the plan is a single block (small data), else None."""
        tasks = self.tasks
        return tasks[0][0] if len(tasks) == 1 and len(tasks[0]) == 1 else None

    @classmethod
    def build(
        cls,
        X: Any,
        sample_weight: Any = None,
        *,
        n_clusters: int,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        n_threads: int | None = None,
        validate: bool = True,
        fitted: Mapping[str, Any] | None = None,
        executor: Any = None,
        splits_work: bool = False,
    ) -> FitData:
        """Validate ``X`` and ``sample_weight`` and plan the blocks for ``n_clusters``.

        ``splits_work``: the fit's per-block work splits between numba's threads when it
        runs inline (its distance, assignment and update declare ``splits_work``), so
        dense mid-size data may run inline (:func:`runs_inline`, and past its rows
        :func:`one_inline_block`), and so may data that worker threads would get as one
        block (:func:`one_worker_block`; both read the dtype and the memory budget as
        well: never the thread count); otherwise only the
        rule on the data's size applies.  Dense data of such a fit that runs inline is
        one block when the label vectors of its rows fit the memory budget (with numba's
        kernels; with their NumPy twins, its buffers: :func:`plan_block_rows`), however
        many cache-sized blocks it would make (``cache_bound=False``): its
        kernels walk the block in cache-sized sub-blocks themselves, and each further
        block costs a round of hook calls, answer checks and thread wake-ups per pass
        (measured per Lloyd iteration: 20000 x 64, k=3 and 8, 0.92-0.95x the time;
        100000 x 16, k=8, 0.88x; 200000 x 2 and 8, k=8, 0.90-0.94x).  The plan does not
        read ``executor`` (results do not depend on it), so under an executor such data
        is one task as well.
        """
        if validate:
            X = validate_X(X)
        sw = validate_sample_weight(sample_weight, X.shape[0], X.dtype)
        few = n_clusters if splits_work and not is_sparse(X) else None
        n, d = X.shape
        columns = max(n_clusters, d)
        inline = runs_inline(n, d, few)
        if not inline and few is not None:
            # one block for worker threads: one of them would do all the work, whatever k;
            # or mid-size data of many rows that inline is one block
            inline = one_worker_block(
                n, columns, X.dtype.itemsize, memory_budget, d
            ) or one_inline_block(n, d, few, X.dtype.itemsize, memory_budget)
        return cls(
            X=X,
            sample_weight=sw,
            block_rows=plan_block_rows(
                n,
                columns,
                X.dtype.itemsize,
                memory_budget,
                n_features=d,
                inline=inline,
                cache_bound=not (inline and few is not None),
                compiled=few is not None,
            ),
            n_threads=n_threads or default_n_threads(),
            fitted=fitted or {},
            executor=executor,
            inline=inline,
            memory_budget=memory_budget,
        )

    def with_rows(self, index: Any) -> FitData:
        """A data set of the rows ``index`` of this one (a batch), sharing ``fitted`` and
        the executor, with its own cache."""
        return FitData(
            X=self.X[index],
            sample_weight=self.sample_weight[index],
            block_rows=self.block_rows,
            n_threads=self.n_threads,
            fitted=self.fitted,
            executor=self.executor,
            inline=self.inline or None,  # fewer rows than an inline whole: inline too
            memory_budget=self.memory_budget,
        )

    def replan(self, n_columns: int, memory_budget: int | None = None) -> FitData:
        """The same data (and cache) with blocks sized for (rows, ``n_columns``) buffers
        (and never wider than the data's own rows), within ``memory_budget`` bytes per
        thread (None: the data's own :attr:`memory_budget`, the fit's), which the new
        plan keeps."""
        if memory_budget is None:
            memory_budget = self.memory_budget
        return FitData(
            X=self.X,
            sample_weight=self.sample_weight,
            block_rows=plan_block_rows(
                self.n_samples,
                max(n_columns, self.n_features),
                self.X.dtype.itemsize,
                memory_budget,
                n_features=self.n_features,
                inline=self.inline,
            ),
            n_threads=self.n_threads,
            cache=self.cache,
            fitted=self.fitted,
            executor=self.executor,
            inline=self.inline,
            memory_budget=memory_budget,
        )

    @property
    def n_samples(self) -> int:
        """Number of rows of ``X``."""
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        """Number of columns of ``X``."""
        return self.X.shape[1]

    @property
    def sparse(self) -> bool:
        """Whether ``X`` is a scipy.sparse CSR matrix."""
        return is_sparse(self.X)

    @property
    def dtype(self) -> np.dtype:
        """The float dtype everything of this fit is computed in."""
        return self.X.dtype
