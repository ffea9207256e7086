"""Kernels of the squared Euclidean distance (the default Lloyd step's assignment).

The default Lloyd step needs, per row block, the products of the rows with the centroids
followed by a fused "add the centroid norms, take the minimum and its index" pass.  NumPy
alone needs several passes over each (b, k) block for that; numba compiles the fused pass
(the matrix product stays in BLAS, but for the shapes where it runs far below its peak:
the direct and the row searches compute their products themselves).  Rows and centroids
are compared centered on the data's mean, as scikit-learn does, for accuracy.  Here:

* the nearest-centroid search (:func:`kmeansfw.kernels.nearest_sq_euclidean`, optionally with the
  runner-up; at few features and centroids, :func:`direct_pays`, a direct kernel
  without a matrix product, and at few centroids and some other shapes,
  :func:`row_search_pays`, a row search without one either; for the labels of float64
  data, :func:`screen_pays`, float32 products with every row they cannot decide
  searched again in float64) and its per-group variant for bound-based assignments
  (:func:`nearest_groups_sq_euclidean`);
* exact squared distances to given centroids (:func:`paired_sq_euclidean`) and whole
  (b, k) cost blocks (:func:`sq_euclidean_costs`);
* what those need of the centroids (:func:`prepare_euclidean_centroids`) and of the data
  (:func:`centered_row_norms`, once per data set).

Ties go to the lowest index in the compiled kernels and their NumPy twins alike.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from kmeansfw.kernels import read_only
from kmeansfw.kernels._compile import HAVE_NUMBA, launch, numba, parallel_ready
from kmeansfw.kernels.update import SUM_GROUP_UNIT, sum_group_rows

if HAVE_NUMBA:
    from kmeansfw.kernels.lanes import LANE_MAX_FEATURES, add_rows_in_lanes
    from kmeansfw.kernels.prefetch import CACHE_LINE_BYTES, prefetch_line
    from kmeansfw.kernels.tiles import TILE_ROWS, center_eight

#: Rows per sub-block of the compiled nearest-centroid kernels (fits in L2), the unit
#: their parallel variants split a block by; a product kernel's products take this many
#: rows, a half, a quarter or (float32) an eighth of it (:func:`product_rows`,
#: :func:`by_rows_product`).  The
#: mean's sums group whole
#: units of it, so a search adding them in its pass adds whole groups of sub-blocks.
SUB_BLOCK_ROWS = SUM_GROUP_UNIT
#: Row offsets as unsigned integers.  The search's loops over a sub-block's rows index
#: rows and centroids with ``np.uintp`` values (``start + i``, a label the search found,
#: never negative), which numba need not wrap around as it must a signed index that could
#: be negative (a test and a select per access; per search with the mean's sums 0.63-0.87x
#: the time at 2 and 8 features, docs/benchmarks.md).  Offsets from such a row are added
#: as these constants: numba types ``row + 1`` (a uint64 plus an int64 literal) as int64,
#: which would bring the wraparound back.
_ONE, _TWO, _THREE = np.uintp(1), np.uintp(2), np.uintp(3)
#: The nearest-centroid search takes the direct kernel (no matrix product) up to this
#: many features and :data:`DIRECT_MAX_CLUSTERS` centroids ...
DIRECT_MAX_FEATURES = 8
DIRECT_MAX_CLUSTERS = 128
#: ... or up to this many features and :data:`DIRECT_WIDE_MAX_CLUSTERS` centroids; the
#: matrix product otherwise (see :func:`direct_pays`).
DIRECT_WIDE_MAX_FEATURES = 16
DIRECT_WIDE_MAX_CLUSTERS = 16
#: The product kernel takes fewer rows per product (:func:`product_rows`) when the
#: product then has at most this many outputs (rows x k) ...
PRODUCT_SMALL_OUTPUTS = 1200
#: ... and at least this many features for 128 rows (5 to 9 centroids), this many for 64
#: rows (10 to 18 centroids), and in float32 this many for 32 rows (19 to 37 centroids) ...
PRODUCT_HALF_MIN_FEATURES = 32
PRODUCT_QUARTER_MIN_FEATURES = 64
PRODUCT_EIGHTH_MIN_FEATURES = 96
#: ... and at most this many multiply-adds (rows x k x d).
PRODUCT_SMALL_MAX_WORK = 1_000_000
#: The product search takes its products by rows (``rows @ (-2C)^T``, then transposed,
#: :func:`by_rows_product`) from this many centroids to :data:`BY_ROWS_MAX_CLUSTERS`, ...
BY_ROWS_MIN_CLUSTERS = 16
BY_ROWS_MAX_CLUSTERS = 64
#: ... from this many features, with at most this many features per centroid, for
#: centroids of at most this many values (k x d) ...
BY_ROWS_MIN_FEATURES = 32
BY_ROWS_MAX_FEATURES_PER_CLUSTER = 8
BY_ROWS_MAX_VALUES = 12288
#: ... in products of the most rows (a whole sub-block, a half or a quarter of one) whose
#: values (rows x d, read by the product) take at most this many bytes, an L1 data
#: cache's worth (a quarter sub-block where none does).
BY_ROWS_MAX_BYTES = 32 << 10
#: Rows per tile of the transposition that follows a product by rows.
TRANSPOSE_TILE_ROWS = 16
#: The product search prefetches its next product's rows for rows of this many bytes
#: at least and at most (:func:`prefetch_pays`).
PREFETCH_MIN_ROW_BYTES = 256
PREFETCH_MAX_ROW_BYTES = 1024
#: ... in products of at least this many rows, of data of this many bytes at least
#: (:func:`prefetch_data`).
PREFETCH_MIN_PRODUCT_ROWS = 64
PREFETCH_MIN_DATA_BYTES = 16 << 20
#: The direct search prefetches its next sub-block's rows, on such data, for rows of
#: this many bytes at least (:func:`direct_prefetch_pays`).
DIRECT_PREFETCH_MIN_ROW_BYTES = 64
#: A block splits its rows between numba's threads only for at least this much work
#: (rows x k x max(d, 4), an estimate: at one or two features the direct kernel's
#: products are halved, its other per-row work is not).  A launch of numba's team
#: (OpenMP layer, inside a fit's BLAS hold) takes 2-3 us; a search call on 2000 rows
#: gained 1-5 us from two threads between 2^15 and 2^16, but per Lloyd iteration half
#: this threshold was no faster (2000 x 2, k=3 and 8; 2000 x 8, k=3; 3000-4000 rows:
#: 43-60 us either way), so it stays.
PARALLEL_MIN_WORK = 1 << 16
#: The product search takes no matrix product but a row search (:func:`row_search_pays`)
#: from more features than the direct search takes (:data:`DIRECT_WIDE_MAX_FEATURES`) to
#: fewer than OpenBLAS's small-matrix kernel needs (:data:`PRODUCT_HALF_MIN_FEATURES`), up
#: to this many centroids in float32 ...
ROW_SEARCH_NARROW_MAX_CLUSTERS_F32 = 5
#: ... and this many in float64 (the most the row search takes);
ROW_SEARCH_MAX_CLUSTERS = 8
#: from this many features up to :data:`ROW_SEARCH_WIDE_MAX_CLUSTERS` centroids, in
#: float32 and in float64 ...
ROW_SEARCH_WIDE_MIN_FEATURES_F32 = 192
ROW_SEARCH_WIDE_MIN_FEATURES_F64 = 160
ROW_SEARCH_WIDE_MAX_CLUSTERS = 3
#: ... up to this many features (the most measured) ...
ROW_SEARCH_MAX_FEATURES = 512
#: ... and in float64 from this many to this many features up to
#: :data:`ROW_SEARCH_MAX_CLUSTERS`.
ROW_SEARCH_F64_MIN_FEATURES = 192
ROW_SEARCH_F64_MAX_FEATURES = 256
#: The searches of float64 data for the labels only (a Lloyd step's) take their matrix
#: products in float32 from this many features (:func:`screen_pays`) ...
SCREEN_MIN_FEATURES = 8
#: ... up to this many (the most measured: the bound's ``(d + 3) u`` grows with the
#: features, and with it the rows searched again), at this many centroids or more ...
SCREEN_MAX_FEATURES = 512
SCREEN_MIN_CLUSTERS = 16
#: ... or from this many centroids holding this many values or more.
SCREEN_FEW_MIN_CLUSTERS = 8
SCREEN_FEW_MIN_VALUES = 1024
#: ... where the rows' and the centroids' centered norms are at most this (larger ones
#: are searched in float64: their float32 copies could overflow).
SCREEN_MAX_NORM = 2.0**60
#: The margins grow with the largest centroid norm: centroids whose largest norm is
#: more than this many times their median norm (outliers drawn as centroids, heavy
#: tails) are searched in float64.  With 0.1 % of the rows 1000 times farther out and
#: three of them among 256 initial centroids, 33-41 % of the rows were within their
#: margins after a few iterations (the largest norm against the root mean square
#: norm, 2.2x, did not tell; against the median, 1000-3300x), and an iteration took
#: 1.25-1.35x its float64 time.  Fits of standard normal, blob and
#: ``make_classification`` data stayed within 1-4.6x (20000 x 256, k=256: 4.3-4.5x, a
#: cluster of a few rows has a larger mean).
SCREEN_MAX_SPREAD = 16.0
#: A screened sub-block with more than 1 in this many rows to search again takes the
#: float64 product instead (a row searched on its own costs a few times its share of
#: the product).
SCREEN_FALLBACK = 4
#: Unit roundoffs of float32 and float64, and a bound of the absolute error of a float32
#: value or product below float32's normal range (2^-126), whether the processor keeps
#: subnormal values or flushes them to zero: the terms of the bound a screened row's
#: margin is made of (:func:`screen_margins`).
_U32 = 2.0**-24
_U64 = 2.0**-53
_ETA32 = 2.0**-125


def direct_pays(n_features: int, n_clusters: int) -> bool:
    """Whether the nearest-centroid search takes the direct kernel for this shape.

    Decided by the shape of the centroids only (never by the number of rows or threads),
    so that a fit's labels do not depend on how its data is split.  Measured here (per
    call on 25k rows, float64, against the product kernel, before the distances and the
    minimum shared one loop, which made the direct kernel faster still): 0.67-0.9x the
    time at 2-4 features (k 3 to 128), 0.8-0.96x at 8 features.  From 9 to 16 features,
    with the distances and the minimum in one loop (search and the mean's sums, one
    thread, 20000 and 200000 rows): 0.78-1.01x at k=8, 0.81-1.00x at k=12 and 16, but
    0.86-1.10x at k=24 and 32 and up to 1.14x at k=48, so 16 clusters at most.
    """
    if n_features <= DIRECT_MAX_FEATURES:
        return n_clusters <= DIRECT_MAX_CLUSTERS
    return n_features <= DIRECT_WIDE_MAX_FEATURES and n_clusters <= DIRECT_WIDE_MAX_CLUSTERS


def row_search_pays(n_features: int, n_clusters: int, itemsize: int = 8) -> bool:
    """Whether the product search takes its row search instead of matrix products.

    The row search reads each row once and sums its products with up to four centroids
    at a time across the features, in vectors, where the product (``(k, d) @ (d, rows)``
    through BLAS) runs far below its peak: few centroids, and features too few for
    OpenBLAS's small-matrix kernel (17 to 31) or so many that a product's rows come from
    memory at a fraction of its speed.  Measured per Lloyd iteration (the compiled
    iterations, two threads, standard normal rows, both searches in one process, time
    of the row search / the product search) at 2000, 20000 and 200000 rows: at 17 to 31
    features 0.37-0.82x at k <= 3, 0.46-1.04x at k=5, float64 0.52-1.04x at k=8 (float32
    0.83-1.23x there, so float32 stops at five centroids); from 160 features (float64) or
    192 (float32) at k <= 3, 0.44-1.09x up to 512 features, the most measured (0.62-0.75x
    at 20000 rows of 256 features, the cells over 1x mostly at 2000 rows, where an
    iteration takes tens of microseconds); and float64 at 192 to 256 features up to k=8,
    0.62-0.92x from 20000 rows but 1.18-1.20x at 2000 (0.1 ms an iteration).  Between 32
    and 128 features it was mostly slower (0.78-1.63x, its gains mostly on data that does
    not fit in cache, and a shape's rule cannot know the rows), and at 512 features,
    float64, k=8 it took 1.5-1.8x (eight centroids' rows no longer fit in the first-level
    cache beside the row).  k = 4, 6 and 7 take the rule of their neighbours (measured:
    2, 3, 5 and 8).  Decided by the shape and the dtype only, so the labels do not depend
    on the rows or the threads.

    Parameters
    ----------
    n_features, n_clusters : int
        The data's features and the number of centroids.
    itemsize : int
        Bytes per value (4: float32, else float64).

    Returns
    -------
    bool
    """
    if not 1 <= n_clusters <= ROW_SEARCH_MAX_CLUSTERS:
        return False
    if not DIRECT_WIDE_MAX_FEATURES < n_features <= ROW_SEARCH_MAX_FEATURES:
        return False
    single = itemsize == 4
    if n_features < PRODUCT_HALF_MIN_FEATURES:
        return not single or n_clusters <= ROW_SEARCH_NARROW_MAX_CLUSTERS_F32
    if single:
        return (
            n_features >= ROW_SEARCH_WIDE_MIN_FEATURES_F32
            and n_clusters <= ROW_SEARCH_WIDE_MAX_CLUSTERS
        )
    if n_features < ROW_SEARCH_WIDE_MIN_FEATURES_F64:
        return False
    return n_clusters <= ROW_SEARCH_WIDE_MAX_CLUSTERS or (
        ROW_SEARCH_F64_MIN_FEATURES <= n_features <= ROW_SEARCH_F64_MAX_FEATURES
    )


def screen_pays(n_features: int, n_clusters: int, itemsize: int = 8) -> bool:
    """Whether a search without the runner-up screens its rows with float32 products.

    A search of float64 data without the runner-up (every Lloyd iteration's, and
    ``predict``'s) needs, per row, the index of the smallest ``||c||^2 - 2 x.c`` (and
    then the exact cost to it); where the matrix product is much of its work it takes the
    products ``x.c`` in float32 (OpenBLAS's float32 product does twice the multiply-adds
    a second of its float64 one) and keeps every row whose smallest value leads the
    runner-up by more than the products' rounding can move them
    (:func:`screen_margins`, a bound that holds for any order of the additions): that
    row's nearest centroid is the exact comparison's, the one the float64 product gives.
    The few rows left (within the bound of a tie; 0.001-0.2 % of standard normal rows)
    are searched again in float64, each on its own, or, where more than a quarter of a
    sub-block's rows are left (:data:`SCREEN_FALLBACK`), with the sub-block's float64
    product.  So the labels are the exact comparison's wherever it is not a tie within
    rounding (on exact ties, the lowest index; where float64 rounding decides a tie,
    it may decide it otherwise than the float64 product did), they do not depend on
    how the rows are split (blocks, threads), and the costs, the runner-up (a
    bound-based search's, which is not screened) and the mean's sums are float64 as
    before.  Centroids whose largest norm is past :data:`SCREEN_MAX_SPREAD` times their
    median, or past :data:`SCREEN_MAX_NORM`, are searched in float64 (the margins grow
    with the largest norm).

    Only in the product search: from :data:`SCREEN_MIN_FEATURES` to
    :data:`SCREEN_MAX_FEATURES` features, at :data:`SCREEN_MIN_CLUSTERS` centroids or
    more, or from :data:`SCREEN_FEW_MIN_CLUSTERS` where the centroids hold
    :data:`SCREEN_FEW_MIN_VALUES` values or more (the direct search, :func:`direct_pays`,
    takes up to 128 centroids at 8 features or fewer and 16 at 9-16, with no product to
    screen).  Per Lloyd iteration (``bench_grid.py``'s function, two threads, against
    the search before in turns): 0.53-0.78x the time at 256 centroids and 64-256
    features (20000 x 256: 31.4 ms before, 24.4 after), 0.71-0.94x at 32 centroids and
    64-256 features, 0.67-1.03x at 16-32 centroids and 16-32 features, 0.85-0.95x at 8
    centroids and 128-256 features, 0.7-0.9x at 8 features and 256 centroids from 20000
    rows (2000 x 8, k=256 moved within the machine's spread); but 1.05-1.3x at 3-8
    centroids and 64 features and at 4 centroids and 128-256 features (the search there
    reads each row once without a product, and the float32 copy of the rows is one more
    pass), hence the rule.  Without numba the NumPy search takes its float64 product.

    Parameters
    ----------
    n_features, n_clusters : int
        The data's features and the number of centroids.
    itemsize : int
        The data's item size in bytes: float64 (8) only.

    Returns
    -------
    bool
    """
    if itemsize != 8 or not SCREEN_MIN_FEATURES <= n_features <= SCREEN_MAX_FEATURES:
        return False
    if n_clusters >= SCREEN_MIN_CLUSTERS:
        return True
    few = n_clusters >= SCREEN_FEW_MIN_CLUSTERS
    return few and n_clusters * n_features >= SCREEN_FEW_MIN_VALUES


def screen_margins(n_features: int, centroid_norm: float) -> tuple[float, float]:
    """The coefficients of a screened row's margin: ``a * ||x|| + b``.

    With ``x`` a centered row, ``c`` the centered centroids (norms at most
    ``centroid_norm``) and ``p_j = x.(-2 c_j)``, the float32 product of the rows rounded
    to float32 and ``-2 c_j`` rounded to float32 differs from ``p_j`` by at most
    ``g S_j + 2 eta (||x||_1 + ||2 c_j||_1) + 3 d eta``, with ``S_j = sum |x_f| |2 c_jf|
    <= 2 ||x|| ||c_j||``, ``g = (d + 3) u / (1 - (d + 3) u)`` (``u = 2^-24``: rounding
    both operands, then the products and sums of any order, fused or not) and ``eta =
    2^-125`` (at least the absolute error of a value or a product below float32's normal
    range, 2^-126 where the processor flushes them to zero); and ``||v||_1 <= sqrt(d)
    ||v||``.  A row's smallest value ``b`` (centroid ``j``) leads
    every other ``w >= r`` (the runner-up) by more than both values' errors in both
    precisions when ``r - b > 2.01 (a ||x|| + b_) + 4.01 u64 (|b| + |r|)``: twice the
    float32 bound (the float64 product's own bound is 2^-29 of it; 2.01 covers it and
    the rounding of the margin itself), and the rounding of adding the float64 norms in
    both searches.  Then the exact values order ``j`` first, and so does the float64
    product.

    Parameters
    ----------
    n_features : int
        The data's features.
    centroid_norm : float
        The largest centered centroid norm (an upper bound of it).

    Returns
    -------
    a, b : float
        The margin's coefficient of the row's norm and its constant part, both already
        multiplied by 2.01.
    """
    return _screen_margins(n_features, centroid_norm)


def _screen_margins(d, cmax):
    # screen_margins' arithmetic, positional (the compiled kernels take a copy of it)
    g = (d + 3) * _U32 / (1.0 - (d + 3) * _U32)
    root = np.sqrt(np.float64(d))
    a = 2.01 * (g * 2.0 * cmax + 2.0 * _ETA32 * root)
    b = 2.01 * (2.0 * _ETA32 * root * 2.0 * cmax + 3.0 * d * _ETA32)
    return a, b


def prefetch_data(n_bytes: int) -> bool:
    """Whether a data set of ``n_bytes`` is large enough for the searches' prefetching
    (:data:`PREFETCH_MIN_DATA_BYTES`; the product search's :func:`prefetch_pays`, the
    direct search's :func:`direct_prefetch_pays`).

    Smaller data stays in the processor's caches from one pass to the next, and the
    hints only cost.  On an Intel Xeon VM (2 MB of second-level cache per core), per
    Lloyd iteration (float64, 64 features, k=8, two threads): 1.08x the time at 2000
    rows, 1.07x at 20000 (10 MB), 1.00x at 40000 (20 MB), 0.91x at 80000 (41 MB) and
    0.70-0.76x at 200000 (102 MB), so the threshold was 32 MiB.  On the 2-vCPU AMD EPYC
    (Zen 4) VM of docs/benchmarks.md (1 MB of second-level cache per core, a 32 MB last
    level shared with other guests), against 32 MiB, in turns in one process: data of
    17 to 31 MiB took 0.54-0.96x the time with the hints (20000 x 256, float32, k 3 to
    32; 30000 x 128, 200000 x 16 and 140000 x 16, float64), two shapes level (270000 and
    300000 x 8, float64: 1.05x and 1.01x); with a 4 MiB limit, data of 4 to 13 MiB took
    0.96-1.24x (slower at 200000 x 8 and 100000 x 16, float64, and 20000 x 64,
    float32: 1.11-1.24x).  So 16 MiB (no shape between 13 and 16 MiB was measured); on
    another machine it is where the last-level cache stops holding the data from one
    pass to the next.

    Parameters
    ----------
    n_bytes : int
        The size of the data's values.

    Returns
    -------
    bool
    """
    return n_bytes >= PREFETCH_MIN_DATA_BYTES


def prefetch_pays(n_features: int, itemsize: int, rows: int = SUB_BLOCK_ROWS) -> bool:
    """Whether the product search prefetches the rows of its next product while it
    finishes the current one's (labels, costs, the mean's sums): rows of
    :data:`PREFETCH_MIN_ROW_BYTES` to :data:`PREFETCH_MAX_ROW_BYTES` bytes, in products
    of :data:`PREFETCH_MIN_PRODUCT_ROWS` rows or more (:func:`search_rows`).

    A hint only: no value depends on it.  Measured on an Intel Xeon VM per search
    (200000 rows, one thread, k 3, 8 and 32, with the mean's sums or the costs, best of
    ten against the search without it): float64 0.67-0.92x the time at 32 features,
    0.71-0.82x at 64, 0.73-0.97x at 128, 0.95-1.03x at 256; float32 1.0-1.21x at 32
    features, 0.79-0.98x at 64, 0.80-0.86x at 128 and k <= 8, 0.94-1.03x at 256.  Per
    Lloyd iteration (two threads, each rule in its own process, in turns, twice) on the
    2-vCPU AMD EPYC (Zen 4) VM of docs/benchmarks.md, rows of 256 bytes gained as those
    of 512 do (float32 at 64 features, 200000 and 1000000 rows, k=3 and 8: 1.71-3.57 ms
    and 12.4-17.4 ms against 3.15-4.71 and 14.0-19.3; float32 at 96 features, k 3 to
    32, 0.66-0.77x the time; float64 at 32 features 0.77-0.93x), where the Xeon VM had
    measured float32 rows of 256 bytes at 1.06-1.08x; rows of 128 and 192 bytes were
    mixed (0.8-1.4x: float64 at 24 features 1.1-1.4x at k=8) and rows of 2 KB slower
    (float64 at 192 and 256 features, 1.1-1.4x at k=3 and 8): past a kilobyte the
    processor's own prefetching keeps up, and for short rows or short products (32-row
    products, float32, 128 features, k=32: 1.09x) the hints cost more than they save.
    Since the products by rows (:func:`by_rows_product`) float32 at 128-256 features and
    19-37 centroids takes 64-row products with the hint, where it took 32-row ones
    without: measured together (per search 0.74-0.84x the time at k=32, float32, 128 and
    256 features), not apart.

    Parameters
    ----------
    n_features : int
        The data's features.
    itemsize : int
        Bytes per value (8 for float64, 4 for float32).
    rows : int
        Rows per product.

    Returns
    -------
    bool
    """
    row_bytes = n_features * itemsize
    return (
        PREFETCH_MIN_ROW_BYTES <= row_bytes <= PREFETCH_MAX_ROW_BYTES
        and rows >= PREFETCH_MIN_PRODUCT_ROWS
    )


def direct_prefetch_pays(n_features: int, itemsize: int) -> bool:
    """Whether the direct search, on data too large to stay in cache between passes
    (:func:`prefetch_data`), prefetches the rows of its next sub-block while it centers
    and transposes the current one's: rows of :data:`DIRECT_PREFETCH_MIN_ROW_BYTES`
    bytes or more (the direct search takes at most sixteen features: float64 from eight
    features, float32 at sixteen).

    The direct search reads a sub-block's rows in one short loop, then searches them
    from cache with no read of memory pending, and the processor's own prefetching does
    not keep up with data that comes from memory.  Measured per Lloyd iteration (1000000
    rows, two worker threads, the hint on and off in turns in one process, time with /
    without): float64 at 16 features 0.75x at k=3 (0.78x at 500000 rows), 0.78-0.94x
    at k=8, 0.81x at k=16; at 10 and 12 features, k=4 and 5, 0.77x and 0.80x; at 8
    features 0.83-1.00x at k=3, 0.76x at k=8, 0.90x at k=16, 1.00x at k=32, 0.91x at
    k=64; float32 at 16 features level (0.97-1.02x at k=3 and 8).  Per search on one
    thread, shorter rows gained less or lost (with the mean's sums 0.92-0.97x at 4 and 8
    features, 1.10x at 3 features, k=8; the labels alone up to 1.4x), so they are left
    to the processor.  A hint only: no value depends on it.

    Parameters
    ----------
    n_features : int
        The data's features.
    itemsize : int
        Bytes per value (8 for float64, 4 for float32).

    Returns
    -------
    bool
    """
    return n_features * itemsize >= DIRECT_PREFETCH_MIN_ROW_BYTES


def product_rows(
    n_features: int, n_clusters: int, shortest: int = SUB_BLOCK_ROWS // 8, itemsize: int = 8
) -> int:
    """Rows per matrix product in the product kernels (:data:`SUB_BLOCK_ROWS`, or a half,
    a quarter or, for float32 data (``itemsize`` 4), an eighth of it, so that a run of
    whole sub-blocks is a run of whole products; never fewer than ``shortest``).

    The kernels ask BLAS for ``(k, d) @ (d, rows)``.  OpenBLAS's AVX-512 builds (the
    kernels NumPy's and SciPy's wheels select on most current x86-64 servers) compute
    such a product with their small-matrix kernel only while it has at most
    :data:`PRODUCT_SMALL_OUTPUTS` outputs (rows x k), an inner dimension of 32 or more
    and at most :data:`PRODUCT_SMALL_MAX_WORK` multiply-adds; past that, their general
    path, which packs both operands first, took 1.4-2x the time per row here.  So at 5
    to 9 centroids (32 features or more) a product takes 128 rows, at 10 to 18 centroids
    (64 features or more) 64 rows: measured per call on 25k rows against 256 rows, 0.6-0.8x
    the time at 5-9 centroids and 32-256 features, 0.5-0.9x at 10-18 centroids and 64-256
    features, in float64 and float32; fewer features, fewer or more centroids, and a
    BLAS without that kernel gain nothing from shorter products.  In float32, 19 to 37
    centroids from 96 features take 32-row products: per 256 rows, 0.47-0.94x the time of
    one 256-row product at 96-512 features (0.95-1.08x at 64); in float64 0.63-1.23x,
    so float64 keeps 256 rows there.  The nearest-centroid search takes these products
    only where it does not take them by rows (:func:`by_rows_product`, from 16
    centroids; :func:`search_rows`).  Decided by the shape of the centroids and the
    dtype only, and blocks start at multiples of :data:`SUB_BLOCK_ROWS` rows
    (``kmeansfw.core.data.MIN_BLOCK_ROWS``), so every product but the data's last has the
    same rows whatever the plan and the number of threads, and labels do not depend on
    them.

    The cost kernels (:func:`sq_euclidean_costs`, and greedy k-means++'s steps through
    them) ask for ``rows @ (-2C)^T``, (rows, k), with ``shortest`` a half sub-block: the
    same small-matrix kernel takes such a product at 5 to 9 centroids from 32 features,
    measured per 256 rows against one product of 256 rows, float64 and float32: 0.5-0.8x
    the time at 32-64 features (1.0x at 8 and 9 centroids and 32 features), 0.35-0.7x at
    256; 64-row products at 10 to 18 centroids took 0.5-1.4x (1.1-1.4x at 16 centroids
    and 64 features), so those keep whole sub-blocks.
    """
    for rows, min_features in (
        (SUB_BLOCK_ROWS, 0),
        (SUB_BLOCK_ROWS // 2, PRODUCT_HALF_MIN_FEATURES),
        (SUB_BLOCK_ROWS // 4, PRODUCT_QUARTER_MIN_FEATURES),
        (SUB_BLOCK_ROWS // 8, PRODUCT_EIGHTH_MIN_FEATURES),
    ):
        if rows < shortest or (rows < SUB_BLOCK_ROWS // 4 and itemsize != 4):
            break
        if rows * n_clusters <= PRODUCT_SMALL_OUTPUTS:
            small = n_features >= min_features
            small = small and rows * n_clusters * n_features <= PRODUCT_SMALL_MAX_WORK
            return rows if small else SUB_BLOCK_ROWS
    return SUB_BLOCK_ROWS


def by_rows_product(n_features: int, n_clusters: int, *, itemsize: int = 8) -> int:
    """Rows per product when the product search takes its products by rows, else 0.

    The search needs, per product, the (k, rows) block ``(-2C) @ rows^T``: its running
    minimum then walks contiguous rows.  BLAS takes that product from the rows as they
    lie in memory, (rows, d), as a transposed operand, and OpenBLAS's AVX-512 builds pack
    such an operand slowly: per 256 rows at 64 features and 32 centroids (one thread),
    15.5 us in float32 against 6.8 us for ``rows @ (-2C)^T`` with a contiguous
    ``(-2C)^T`` (the orientation scikit-learn asks for; 23.4 against 13.5 us in
    float64).  So from :data:`BY_ROWS_MIN_CLUSTERS` to :data:`BY_ROWS_MAX_CLUSTERS`
    centroids, from :data:`BY_ROWS_MIN_FEATURES` features, with at most
    :data:`BY_ROWS_MAX_FEATURES_PER_CLUSTER` features per centroid and for centroids of
    at most :data:`BY_ROWS_MAX_VALUES` values, the search takes the product by rows,
    (rows, k), and transposes it into the (k, rows) block in tiles of
    :data:`TRANSPOSE_TILE_ROWS` rows (0.15-0.3 ns a value; an argmin over the (rows, k)
    block, row by row, took 0.4-0.6 ns a value against 0.07-0.14 for the column-wise
    one).  Each product takes the most rows, down to a quarter sub-block, whose values
    (rows x d) fit in :data:`BY_ROWS_MAX_BYTES`.  Per search with the mean's sums
    (200000 standard normal rows, one thread, the prefetch hint as a fit gives it: at
    float32 with 128-256 features the 64-row products by rows take it, where the 32-row
    products they replace did not) that took 0.73-0.84x the time at 32 features and
    16-32 centroids, 0.74-1.01x at 64 and 128 features and 16-64 centroids, 0.84-0.96x
    at 256 features and 32-48 centroids, and 0.96-1.0x at 32 features and 48-64
    centroids.  Where it was slower or not measured (below 16 centroids, at 16 features
    or fewer, at 96 centroids or more, more than 8 features per centroid: 1.01-1.07x at
    256 features and 16 centroids) the search keeps ``(-2C) @ rows^T`` in products of
    :func:`product_rows` rows.  Decided by the shape of the centroids and the dtype
    only, so the labels do not depend on the blocking or the number of threads.

    Parameters
    ----------
    n_features, n_clusters : int
        The data's features and the number of centroids.
    itemsize : int
        The data's item size in bytes (8: float64, 4: float32).

    Returns
    -------
    int
        Rows per product by rows (a whole sub-block, :data:`SUB_BLOCK_ROWS`, or a
        fraction of one), or 0 for the transposed product.
    """
    return _by_rows_rule(n_features, n_clusters, itemsize)


def _by_rows_rule(n_features: int, n_clusters: int, itemsize: int) -> int:
    # by_rows_product's rule, positional (the compiled kernels take a copy of it)
    if (
        BY_ROWS_MIN_CLUSTERS <= n_clusters <= BY_ROWS_MAX_CLUSTERS
        and BY_ROWS_MIN_FEATURES <= n_features <= BY_ROWS_MAX_FEATURES_PER_CLUSTER * n_clusters
        and n_clusters * n_features <= BY_ROWS_MAX_VALUES
    ):
        rows = SUB_BLOCK_ROWS
        while rows > SUB_BLOCK_ROWS // 4 and rows * n_features * itemsize > BY_ROWS_MAX_BYTES:
            rows //= 2
        return rows
    return 0


def search_rows(n_features: int, n_clusters: int, itemsize: int = 8) -> tuple[int, bool]:
    """Rows per product of the nearest-centroid product search, and whether it takes its
    products by rows (:func:`by_rows_product`; else :func:`product_rows`, from an eighth
    of a sub-block).

    Parameters
    ----------
    n_features, n_clusters : int
        The data's features and the number of centroids.
    itemsize : int
        The data's item size in bytes.

    Returns
    -------
    rows : int
        Rows per product.
    by_rows : bool
        Whether the products are taken by rows.
    """
    rows = by_rows_product(n_features, n_clusters, itemsize=itemsize)
    if rows:
        return rows, True
    return product_rows(n_features, n_clusters, SUB_BLOCK_ROWS // 8, itemsize), False


def _nearest_numpy(X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second):
    centered = X - mean
    reduced = np.dot(centered, minus_2c.T)
    reduced += c_sq_norms
    np.argmin(reduced, axis=1, out=labels)
    if mins.shape[0]:
        diff = centered - centered_c[labels]
        np.einsum("ij,ij->i", diff, diff, out=mins)
    if second.shape[0]:
        runner_up = np.partition(reduced, 1, axis=1)[:, 1] if reduced.shape[1] > 1 else np.inf
        second[:] = np.maximum(runner_up + np.einsum("ij,ij->i", centered, centered), 0)


def _paired_sq_numpy(X, mean, centered_c, labels, out):
    diff = (X - mean) - centered_c[labels]
    np.einsum("ij,ij->i", diff, diff, out=out)


if HAVE_NUMBA:

    _product_rows = numba.njit(nogil=True, cache=True, inline="always")(product_rows)
    _prefetch_pays = numba.njit(nogil=True, cache=True, inline="always")(prefetch_pays)
    _direct_prefetch_pays = numba.njit(nogil=True, cache=True, inline="always")(
        direct_prefetch_pays
    )

    _by_rows_product = numba.njit(nogil=True, cache=True, inline="always")(_by_rows_rule)
    _row_search_pays = numba.njit(nogil=True, cache=True, inline="always")(row_search_pays)
    _screen_pays = numba.njit(nogil=True, cache=True, inline="always")(screen_pays)
    _screen_margins_of = numba.njit(nogil=True, cache=True, inline="always")(_screen_margins)

    @numba.njit(nogil=True, cache=True, inline="always")
    def _search_rows(n_features, n_clusters, itemsize):  # pragma: no cover
        # search_rows' twin (the same rules, through their compiled copies)
        rows = _by_rows_product(n_features, n_clusters, itemsize)
        if rows:
            return rows, True
        return _product_rows(n_features, n_clusters, SUB_BLOCK_ROWS // 8, itemsize), False

    @numba.njit(nogil=True, cache=True, inline="always")
    def _product_buffers(minus_2c, taken_by_rows, sub):  # pragma: no cover
        # the (k, sub) block's buffer and, products taken by rows, the (sub, k) buffer of
        # the product and the contiguous (d, k) copy of minus_2c.T it multiplies by (empty
        # arrays otherwise: see _centered_product)
        k = minus_2c.shape[0]
        buf = np.empty(k * sub, dtype=minus_2c.dtype)
        if taken_by_rows:
            return buf, np.empty(k * sub, dtype=minus_2c.dtype), np.ascontiguousarray(minus_2c.T)
        return buf, np.empty(0, dtype=minus_2c.dtype), np.empty((0, k), dtype=minus_2c.dtype)

    @numba.njit(nogil=True, cache=True, inline="always")
    def _centered_product(
        X, mean, origin, minus_2c, minus_2c_t, start, rows, buf, by_rows
    ):  # pragma: no cover
        # Center rows start.. of X into ``rows`` and return ``minus_2c @ rows.T`` (k, m),
        # written into ``buf``: the shared first half of the nearest-centroid kernels
        # (the product search's and the per-group search's).
        # Centered on the origin (``origin``: _at_origin(mean), asked once per kernel
        # call) the rows are X's own (x - 0.0 is x, bit for bit): the product reads them
        # without the copy, the same bits as from the copy with a BLAS whose results do
        # not depend on where its operands lie (OpenBLAS: tested with X one item off its
        # alignment; MKL needs its reproducible mode).  With a non-empty ``by_rows``
        # ((m, k) at least, see by_rows_product and _product_buffers) the product is
        # ``rows @ minus_2c_t`` (minus_2c_t: a contiguous (d, k) copy of minus_2c.T) into
        # ``by_rows``, then transposed into the block.
        m, d = rows.shape
        k = minus_2c.shape[0]
        block = buf[: k * m].reshape((k, m))
        if by_rows.shape[0]:
            product = by_rows[: m * k].reshape((m, k))
            if origin:
                np.dot(X[start : start + m], minus_2c_t, product)
            else:
                _center_rows(X, mean, start, rows)
                np.dot(rows, minus_2c_t, product)
            _transpose_tiles(product, block)
            return block
        if origin:
            np.dot(minus_2c, X[start : start + m].T, block)
            return block
        _center_rows(X, mean, start, rows)
        np.dot(minus_2c, rows.T, block)
        return block

    @numba.njit(nogil=True, cache=True, inline="always")
    def _center_rows(X, mean, start, rows):  # pragma: no cover
        m, d = rows.shape
        for i in range(m):
            row = np.uintp(start + i)
            for f in range(d):
                rows[i, f] = X[row, f] - mean[f]

    @numba.njit(nogil=True, cache=True, inline="always")
    def _transpose_tiles(product, block):  # pragma: no cover
        # block[j, i] = product[i, j], tiles of TRANSPOSE_TILE_ROWS rows: each tile's
        # rows stay in L1 while its columns are written out contiguously
        m, k = product.shape
        tiled = m - m % TRANSPOSE_TILE_ROWS
        for i0 in range(0, tiled, TRANSPOSE_TILE_ROWS):
            for j in range(k):
                for t in range(TRANSPOSE_TILE_ROWS):
                    block[j, i0 + t] = product[i0 + t, j]
        for j in range(k):
            for i in range(tiled, m):
                block[j, i] = product[i, j]

    @numba.njit(nogil=True, cache=True, inline="always")
    def _at_origin(mean):  # pragma: no cover
        # every entry +0.0 (centering on -0.0 would turn a row's -0.0 into +0.0)
        for f in range(mean.shape[0]):
            if mean[f] != 0 or np.signbit(mean[f]):
                return False
        return True

    def _search_for(direct, n_features, n_clusters, itemsize):
        # the search kernel of a shape (search_kind's)
        kind = search_kind(direct, n_features, n_clusters, itemsize)
        if kind == "pair":
            return _direct_search_pair
        if kind == "fours":
            return _direct_search
        if kind == "wide":
            return _direct_search_wide
        if kind == "rows":
            return _row_search
        if kind == "screened rows":
            return _row_search_screened
        if kind == "product":
            return _product_search
        raise ValueError(f"no search kernel of kind {kind!r}")

    # ``fastmath=False`` stated: a callee that states no flags takes its first caller's,
    # and the compiled Lloyd iterations (kernels.lloyd) call it too
    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _product_search(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch,
    ):
        # Rows are centered sub-block by sub-block (as scikit-learn centers the data, for
        # accuracy) and the product is taken transposed, (k, rows), so that the running
        # minimum over centroids walks contiguous rows and vectorizes across samples (at
        # the shapes of by_rows_product, taken by rows and transposed in cache).
        # With a non-empty ``second``, the runner-up's squared distance is kept too;
        # the exact distances follow as in the direct kernel (:func:`_exact_rows`).
        # ``prefetch``: the data is too large to stay in cache from one pass to the next,
        # so the rows of the next product are prefetched (where _prefetch_pays).  At the
        # shapes of row_search_pays, no product: the row search, a kernel of its own
        # (_row_search or _row_search_screened; see search_kind), which this one
        # refuses, whatever the data.
        want_second = second.shape[0] > 0
        n, d, k = X.shape[0], X.shape[1], minus_2c.shape[0]
        if _row_search_pays(d, k, X.itemsize):  # those take the row search's bits
            raise ValueError("the row search's shapes take the row search's kernel")
        if not want_second and _screen_pays(d, k, X.itemsize) and _screened(
            X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
            sample_weight, group_rows, group_sums, group_weights, prefetch,
        ):
            return
        step, by_rows_step = _search_rows(d, k, X.itemsize)
        sub = max(1, min(step, n))  # one row at least: range() needs a step
        origin = _at_origin(mean)
        prefetching = prefetch and _prefetch_pays(d, X.itemsize, step)
        centered = np.empty((sub, d), dtype=X.dtype)
        buf, by_rows, minus_2c_t = _product_buffers(minus_2c, by_rows_step, sub)
        best = np.empty(sub, dtype=X.dtype)
        runner_up = np.empty(sub, dtype=X.dtype)
        arg = np.empty(sub, dtype=np.int32)
        for start in range(0, n, sub):
            m = min(start + sub, n) - start
            rows = centered[:m]
            block = _centered_product(
                X, mean, origin, minus_2c, minus_2c_t, start, rows, buf, by_rows
            )
            _block_nearest(block, c_sq_norms, m, best, runner_up, arg, want_second)
            _finish_rows(
                X, mean, centered_c, start, m, arg, runner_up, labels, mins, second,
                sample_weight, group_rows, group_sums, group_weights, prefetching,
            )

    @numba.njit(nogil=True, cache=True, inline="always")
    def _block_nearest(block, c_sq_norms, m, best, runner_up, arg, want_second):  # pragma: no cover
        # The product searches' running minimum over a (k, m) block of -2 x.c: per
        # column i, the least block[j, i] + c_sq_norms[j] into best[i] (in the wider of
        # the two dtypes: float64 for the screened search's float32 block), its index into
        # arg[i] (the lowest on ties) and, with ``want_second``, the runner-up's value
        # into runner_up[i] (else inf).  The loop over j is outside the loop over rows,
        # which therefore walks contiguous memory and vectorizes across samples.
        c = c_sq_norms[0]
        for i in range(m):
            best[i] = block[0, i] + c
            runner_up[i] = np.inf
            arg[i] = 0
        for j in range(1, block.shape[0]):
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

    def _screened(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch,
    ):
        # _screened_search for float64 data, chosen when a kernel compiles (below):
        # kernels of float32 data do not compile the screened search they never take
        raise NotImplementedError("compiled kernels only")

    @numba.extending.overload(_screened, jit_options={"cache": True})
    def _screened_for(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch,
    ):
        if X.dtype != numba.types.float64 or c_sq_norms.dtype != numba.types.float64:

            def no(
                X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
                sample_weight, group_rows, group_sums, group_weights, prefetch,
            ):
                return False

            return no

        def yes(
            X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
            sample_weight, group_rows, group_sums, group_weights, prefetch,
        ):
            return _screened_search(
                X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
                sample_weight, group_rows, group_sums, group_weights, prefetch,
            ) >= 0

        return yes

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _screened_search(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch,
    ):
        # The product search of screen_pays (float64 data, the labels only): per product,
        # the centered rows rounded to float32 and their float64 norms (_float32_rows),
        # their float32 product with -2C rounded to float32 (the float32 data's product
        # rules), the running minimum and runner-up of ||c||^2 - 2 x.c in float64, and
        # every row whose lead is within its margin (screen_margins) searched again in
        # float64 on its own (_nearest_row); then the costs and the mean's sums as after
        # any product (_finish_rows).  A sub-block with more than 1/SCREEN_FALLBACK of
        # its rows within their margins (data whose centroid norms differ widely, heavy
        # tails) takes the float64 product instead, so that such data costs at most
        # about both products.  Returns the number of rows searched again in float64
        # (those of such sub-blocks included), or -1, with nothing done, where a
        # centroid's centered norm is past SCREEN_MAX_NORM or SCREEN_MAX_SPREAD times
        # the centroids' median norm.
        n, d, k = X.shape[0], X.shape[1], minus_2c.shape[0]
        top = 0.0
        for j in range(k):
            top = max(top, c_sq_norms[j])
        largest = np.sqrt(top) * (1.0 + 1e-6)  # an upper bound of the centroids' norms
        typical = np.median(c_sq_norms)
        if not largest <= SCREEN_MAX_NORM or top > SCREEN_MAX_SPREAD**2 * typical:
            return -1
        a, b = _screen_margins_of(d, largest)
        step, by_rows_step = _search_rows(d, k, 4)
        sub = max(1, min(step, n))  # one row at least: range() needs a step
        prefetching = prefetch and _prefetch_pays(d, X.itemsize, step)
        c32 = np.empty((k, d), dtype=np.float32)
        for j in range(k):
            for f in range(d):
                c32[j, f] = np.float32(minus_2c[j, f])
        buf, by_rows, c32_t = _product_buffers(c32, by_rows_step, sub)
        rows = np.empty((sub, d), dtype=np.float32)
        origin = np.zeros(d, dtype=np.float32)  # the float32 rows are centered already
        norms = np.empty(sub)
        row64 = np.empty(d)
        best = np.empty(sub)
        runner_up = np.empty(sub)
        arg = np.empty(sub, dtype=np.int32)
        kept = np.empty(sub, dtype=np.bool_)
        # the float64 product of a sub-block with many rows within their margins: its
        # buffers made when a first sub-block needs them (most searches never do)
        at_origin = _at_origin(mean)
        centered = np.empty((0, d), dtype=X.dtype)
        buf64 = np.empty(0, dtype=minus_2c.dtype)
        by_rows64, minus_2c_t = buf64, np.empty((0, k), dtype=minus_2c.dtype)
        again = 0
        for start in range(0, n, sub):
            m = min(start + sub, n) - start
            _float32_rows(X, mean, start, m, rows, norms)
            block = _centered_product(
                rows, origin, True, c32, c32_t, 0, rows[:m], buf, by_rows
            )
            _block_nearest(block, c_sq_norms, m, best, runner_up, arg, True)
            within = 0
            for i in range(m):  # (a lead of inf - inf, or NaN, is no lead: searched again)
                norm = norms[i]
                margin = a * norm + b + 4.01 * _U64 * (abs(best[i]) + abs(runner_up[i]))
                kept[i] = norm <= SCREEN_MAX_NORM and runner_up[i] - best[i] > margin
                within += not kept[i]
            again += within
            if within * SCREEN_FALLBACK > m:  # the sub-block's float64 product
                if centered.shape[0] == 0:
                    centered = np.empty((sub, d), dtype=X.dtype)
                    buf64, by_rows64, minus_2c_t = _product_buffers(
                        minus_2c, _by_rows_product(d, k, 8) > 0, sub
                    )
                block = _centered_product(
                    X, mean, at_origin, minus_2c, minus_2c_t, start, centered[:m], buf64,
                    by_rows64,
                )
                # (runner_up back to inf: a screened search never returns runner-ups)
                _block_nearest(block, c_sq_norms, m, best, runner_up, arg, False)
            elif within:
                for i in range(m):
                    if not kept[i]:
                        arg[i] = _nearest_row(X, mean, start + i, minus_2c, c_sq_norms, row64)
            _finish_rows(
                X, mean, centered_c, start, m, arg, runner_up, labels, mins, second,
                sample_weight, group_rows, group_sums, group_weights, prefetching,
            )
        return again

    # The screened search's rows: centered in float64 (the values the float64 product
    # would take), rounded to float32, and their norms (reassociated: a norm only sizes
    # a margin, whose factor 2.01 covers its rounding).
    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _float32_rows(X, mean, start, m, rows, norms):  # pragma: no cover
        for i in range(m):
            row = np.uintp(start + i)
            total = 0.0
            for f in range(X.shape[1]):
                value = np.float64(X[row, f] - mean[f])
                rows[i, f] = np.float32(value)
                total += value * value
            norms[i] = np.sqrt(total)

    # A screened row within its margin, searched in float64 on its own: the argmin of
    # ||c||^2 - 2 x.c (lowest index on ties), each product a reassociated sum.
    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _nearest_row(X, mean, row, minus_2c, c_sq_norms, centered):  # pragma: no cover
        for f in range(X.shape[1]):
            centered[f] = X[row, f] - mean[f]
        arg, best = 0, np.inf
        for j in range(minus_2c.shape[0]):
            total = 0.0
            for f in range(X.shape[1]):
                total += minus_2c[j, f] * centered[f]
            value = total + c_sq_norms[j]
            if value < best:
                arg, best = j, value
        return np.int32(arg)

    @numba.njit(nogil=True, cache=True, inline="always")
    def _finish_rows(  # pragma: no cover
        X, mean, centered_c, start, m, arg, runner_up, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetching,
    ):
        # Every nearest search's end of a sub-block: the labels, the exact costs (and
        # runner-ups) and the mean's sums; with ``prefetching`` (the product and row
        # searches), the next sub-block's rows prefetched while this one's are
        # finished: in the sums' loop when there are sums, else in the costs' loop
        # (row n: none)
        n = X.shape[0]
        ahead = start + m if prefetching else n
        summed = group_sums.shape[0] > 0
        _exact_rows(
            X, mean, centered_c, start, m, arg, runner_up, labels, mins, second,
            n if summed else ahead,
        )
        _add_rows(X, sample_weight, start, m, arg, group_rows, group_sums, group_weights, ahead)

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _row_search(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch,
    ):
        # the product search's shapes of row_search_pays (but those of screen_pays too,
        # _row_search_screened's): a kernel apart from the product search's, as a kernel
        # holding both compiled both (and so did the Lloyd iterations' kernels holding
        # it), for shapes that take one only
        d, k = X.shape[1], minus_2c.shape[0]
        if not _row_search_pays(d, k, X.itemsize) or _screen_pays(d, k, X.itemsize):
            raise ValueError("the row search takes the shapes of row_search_pays only")
        _row_pass(
            X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
            sample_weight, group_rows, group_sums, group_weights, prefetch,
        )

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _row_search_screened(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch,
    ):
        # the shapes of both row_search_pays and screen_pays (float64, eight centroids,
        # 192 to 256 features): a search without the runner-up screened first, as in
        # the product search, the row search where it is not (the runner-up wanted, or
        # centroids the screen declines); a kernel apart from _row_search's, so that the
        # other row searches' fits do not compile the screened search
        d, k = X.shape[1], minus_2c.shape[0]
        if not (_row_search_pays(d, k, X.itemsize) and _screen_pays(d, k, X.itemsize)):
            raise ValueError("the screened row search takes the shapes of row_search_pays "
                             "and screen_pays only")
        if second.shape[0] == 0 and _screened(
            X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
            sample_weight, group_rows, group_sums, group_weights, prefetch,
        ):
            return
        _row_pass(
            X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
            sample_weight, group_rows, group_sums, group_weights, prefetch,
        )

    @numba.njit(nogil=True, fastmath=False, inline="always")
    def _row_pass(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch,
    ):
        # the row search: per sub-block, the rows (centered unless at the origin)
        # searched by _nearest_rows, then the exact distances and the mean's sums as
        # after a product (_finish_rows, with the product search's prefetching rule)
        n, d = X.shape
        sub = max(1, min(SUB_BLOCK_ROWS, n))  # one row at least: range() needs a step
        prefetching = prefetch and _prefetch_pays(d, X.itemsize, sub)
        origin = _at_origin(mean)
        centered = np.empty((0 if origin else sub, d), dtype=X.dtype)
        best = np.empty(sub, dtype=X.dtype)
        runner_up = np.empty(sub, dtype=X.dtype)
        arg = np.empty(sub, dtype=np.int32)
        for start in range(0, n, sub):
            m = min(start + sub, n) - start
            if origin:  # X's own rows (x - 0.0 is x, bit for bit)
                _nearest_rows(X[start : start + m], minus_2c, c_sq_norms, best, runner_up, arg)
            else:
                _center_rows(X, mean, start, centered[:m])
                _nearest_rows(centered[:m], minus_2c, c_sq_norms, best, runner_up, arg)
            _finish_rows(
                X, mean, centered_c, start, m, arg, runner_up, labels, mins, second,
                sample_weight, group_rows, group_sums, group_weights, prefetching,
            )

    # One row against four, three, two or one centroids: each ``-2c.x`` a sum over the
    # features that reassoc lets vectorize across them (inlined into _nearest_rows, whose
    # flags they take).
    @numba.njit(nogil=True, cache=True, inline="always")
    def _dots4(rows, i, coef, j):  # pragma: no cover
        zero = rows.dtype.type(0)
        s0 = s1 = s2 = s3 = zero
        for f in range(rows.shape[1]):
            x = rows[i, f]
            s0 += coef[j, f] * x
            s1 += coef[j + 1, f] * x
            s2 += coef[j + 2, f] * x
            s3 += coef[j + 3, f] * x
        return s0, s1, s2, s3

    @numba.njit(nogil=True, cache=True, inline="always")
    def _dots3(rows, i, coef, j):  # pragma: no cover
        zero = rows.dtype.type(0)
        s0 = s1 = s2 = zero
        for f in range(rows.shape[1]):
            x = rows[i, f]
            s0 += coef[j, f] * x
            s1 += coef[j + 1, f] * x
            s2 += coef[j + 2, f] * x
        return s0, s1, s2

    @numba.njit(nogil=True, cache=True, inline="always")
    def _dots2(rows, i, coef, j):  # pragma: no cover
        zero = rows.dtype.type(0)
        s0 = s1 = zero
        for f in range(rows.shape[1]):
            x = rows[i, f]
            s0 += coef[j, f] * x
            s1 += coef[j + 1, f] * x
        return s0, s1

    @numba.njit(nogil=True, cache=True, inline="always")
    def _dots1(rows, i, coef, j):  # pragma: no cover
        total = rows.dtype.type(0)
        for f in range(rows.shape[1]):
            total += coef[j, f] * rows[i, f]
        return total

    @numba.njit(nogil=True, cache=True, inline="always")
    def _ranked(value, j, best, runner_up, arg):  # pragma: no cover
        # one centroid's ``||c||^2 - 2 x.c`` into a row's running minimum and runner-up,
        # without a branch: the first of equal values stays, as in the product search's
        # loops (with branches, mispredicted on every other row, the search took 2-3x
        # the time on data that does not fit in cache).  The runner-up is at least the
        # best, so min(r, max(b, v)) is the new one; kept whether asked for or not (a
        # branch on it doubled the compiled code for 2-5 % of the search's time).  The
        # same values as the product search's loops for any value but NaN (finite data
        # gives none; an overflow to inf ranks as inf).
        lower = np.int32(value < best)
        runner_up = min(runner_up, max(best, value))
        return min(best, value), runner_up, arg + lower * (np.int32(j) - arg)

    # Four, three, two or one centroids from ``j`` into a row's ranking: one function
    # per tile, so that each inlined copy holds its own tile's code only.  One function
    # taking the tile's size as a constant held all four tiles in every inlined copy,
    # pruned only after typing: _nearest_rows took 6.0 s to compile per array type,
    # against 2.3-2.5 s this way (the same bits, the same time per search).
    @numba.njit(nogil=True, cache=True, inline="always")
    def _tile4(rows, i, coef, c_sq_norms, j, b, r, a):  # pragma: no cover
        s0, s1, s2, s3 = _dots4(rows, i, coef, j)
        b, r, a = _ranked(s0 + c_sq_norms[j], j, b, r, a)
        b, r, a = _ranked(s1 + c_sq_norms[j + 1], j + 1, b, r, a)
        b, r, a = _ranked(s2 + c_sq_norms[j + 2], j + 2, b, r, a)
        return _ranked(s3 + c_sq_norms[j + 3], j + 3, b, r, a)

    @numba.njit(nogil=True, cache=True, inline="always")
    def _tile3(rows, i, coef, c_sq_norms, j, b, r, a):  # pragma: no cover
        s0, s1, s2 = _dots3(rows, i, coef, j)
        b, r, a = _ranked(s0 + c_sq_norms[j], j, b, r, a)
        b, r, a = _ranked(s1 + c_sq_norms[j + 1], j + 1, b, r, a)
        return _ranked(s2 + c_sq_norms[j + 2], j + 2, b, r, a)

    @numba.njit(nogil=True, cache=True, inline="always")
    def _tile2(rows, i, coef, c_sq_norms, j, b, r, a):  # pragma: no cover
        s0, s1 = _dots2(rows, i, coef, j)
        b, r, a = _ranked(s0 + c_sq_norms[j], j, b, r, a)
        return _ranked(s1 + c_sq_norms[j + 1], j + 1, b, r, a)

    @numba.njit(nogil=True, cache=True, inline="always")
    def _tile1(rows, i, coef, c_sq_norms, j, b, r, a):  # pragma: no cover
        return _ranked(_dots1(rows, i, coef, j) + c_sq_norms[j], j, b, r, a)

    def _rows_ranked_by(tile):
        # every row against the ``tile``'s centroids (k of them: 1 to 4); only ever
        # inlined, so not cached (nothing to cache)
        @numba.njit(nogil=True, inline="always")
        def rows_ranked(rows, coef, c_sq_norms, best, runner_up, arg):  # pragma: no cover
            inf = rows.dtype.type(np.inf)
            for i in range(rows.shape[0]):
                b, r, a = tile(rows, i, coef, c_sq_norms, 0, inf, inf, np.int32(0))
                best[i], runner_up[i], arg[i] = b, r, a

        return rows_ranked

    _rows_ranked_1 = _rows_ranked_by(_tile1)
    _rows_ranked_2 = _rows_ranked_by(_tile2)
    _rows_ranked_3 = _rows_ranked_by(_tile3)
    _rows_ranked_4 = _rows_ranked_by(_tile4)

    @numba.njit(nogil=True, cache=True, inline="always")
    def _rows_ranked_by_fours(rows, coef, c_sq_norms, best, runner_up, arg):  # pragma: no cover
        # every row against k centroids, four at a time, then the rest
        inf = rows.dtype.type(np.inf)
        k = coef.shape[0]
        for i in range(rows.shape[0]):
            b, r, a = inf, inf, np.int32(0)
            j = 0
            while j + 4 <= k:
                b, r, a = _tile4(rows, i, coef, c_sq_norms, j, b, r, a)
                j += 4
            rest = k - j
            if rest == 3:
                b, r, a = _tile3(rows, i, coef, c_sq_norms, j, b, r, a)
            elif rest == 2:
                b, r, a = _tile2(rows, i, coef, c_sq_norms, j, b, r, a)
            elif rest == 1:
                b, r, a = _tile1(rows, i, coef, c_sq_norms, j, b, r, a)
            best[i], runner_up[i], arg[i] = b, r, a

    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _nearest_rows(rows, coef, c_sq_norms, best, runner_up, arg):  # pragma: no cover
        # The row search's minimum and runner-up over 1 to ROW_SEARCH_MAX_CLUSTERS
        # centroids: one row is read from memory once, and each centroid's products are
        # summed across the features in vectors (reassoc: in an order that depends on
        # the number of features and on k only, the same for every row, whatever the
        # blocking).  Up to four centroids a loop of its own per k (its tile's); five to
        # eight share one loop, four at a time then the rest: per search 1.05-1.09x the
        # time of a loop per k, for a third of the compile time (a loop per k, eight of
        # them, took 19-25 s to compile per array type).
        k = coef.shape[0]
        if k == 1:
            _rows_ranked_1(rows, coef, c_sq_norms, best, runner_up, arg)
        elif k == 2:
            _rows_ranked_2(rows, coef, c_sq_norms, best, runner_up, arg)
        elif k == 3:
            _rows_ranked_3(rows, coef, c_sq_norms, best, runner_up, arg)
        elif k == 4:
            _rows_ranked_4(rows, coef, c_sq_norms, best, runner_up, arg)
        elif k <= ROW_SEARCH_MAX_CLUSTERS:
            _rows_ranked_by_fours(rows, coef, c_sq_norms, best, runner_up, arg)
        else:  # row_search_pays never gives it more: never drop a centroid
            raise ValueError("the row search takes 1 to 8 centroids")

    # The direct kernel: no matrix product.  Per sub-block the centered rows are stored
    # transposed, (features, rows), features padded with zeros to a multiple of 4, and
    # each centroid's ``||c||^2 - 2 x.c`` is computed four features at a time (one pair
    # at one or two features: the padding's products are zeros) in loops over rows that
    # vectorize: every row is read once from memory and all centroids stay in cache.  At
    # few features this beats the product (a GEMM with an inner dimension of 2 to 16 runs
    # far below its peak).  Up to sixteen features (all the shapes :func:`direct_pays`
    # gives it) a centroid's distances and the running minimum take one loop over the
    # rows (:func:`_pair_search`, :func:`_quad_search`); above, a loop per four features
    # into an accumulator, then one for the minimum (:func:`_wide_search`).  Both give
    # the same values, bit for bit, and the one loop took 0.67-0.84x the time per search
    # at two features (200000 rows, one thread, k 3 to 32: its rows transposed without a
    # loop over features, :func:`_pair_rows`), 0.84-0.92x at eight (float64, k 8 to 32;
    # level at k=3) and 0.91x at sixteen (k=8).  The centroids are compared by the
    # product's form, as scikit-learn compares them, so that exact ties (duplicated
    # samples, data on a grid) go the same way; the exact distance to the chosen
    # centroid follows (:func:`_exact_rows`; skipped when ``mins`` is empty).  The order
    # of operations depends on the shape only, so the labels do not depend on the
    # blocking or the number of threads (no reassociation: a row's sums are the same in
    # the vectorized loop and its remainder).
    # The direct search, one kernel per kind of sub-block pass: a kernel holding them
    # all compiled them all, and so did every kernel that holds it (the Lloyd
    # iterations', the threaded one with its own copy of the search): a first fit at two
    # features compiled the passes of three to sixteen features, and of more, too
    # (_direct_pass's ``block``).  Each kernel refuses the rows another takes, so that a
    # shape always gets the same bits (given the direct search: the product search
    # takes these shapes too, the tests' reference for them).  Past sixteen features
    # (the accumulator's passes, _direct_search_wide) fits never take the direct search
    # (direct_pays): that kernel is the tests' reference for the one-pass loops, with
    # no Lloyd iterations.
    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _direct_search_pair(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch,
    ):
        # one or two features
        if X.shape[1] > 2:  # never drop a feature
            raise ValueError("the pair search takes one or two features")
        _direct_pass(
            X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
            sample_weight, group_rows, group_sums, group_weights, prefetch, _pair_block,
            1, 2, 4,
        )

    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _direct_search(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch,
    ):
        # three to sixteen features
        if X.shape[1] <= 2 or X.shape[1] > DIRECT_WIDE_MAX_FEATURES:
            raise ValueError("the direct search of fours takes three to sixteen features")
        _direct_pass(
            X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
            sample_weight, group_rows, group_sums, group_weights, prefetch, _fours_block,
            3, LANE_MAX_FEATURES, 3,
        )

    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _direct_search_wide(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch,
    ):
        # seventeen features or more
        if X.shape[1] <= DIRECT_WIDE_MAX_FEATURES:
            raise ValueError("the direct search's accumulator takes seventeen features or more")
        _direct_pass(
            X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
            sample_weight, group_rows, group_sums, group_weights, prefetch, _wide_block,
            0, 0, 0,
        )

    # The direct search's loop over sub-blocks, inlined into its three kernels with the
    # pass of a sub-block they take (``block``: _pair_block, _fours_block or
    # _wide_block, inlined too, so that each kernel's code is that of the one search it
    # makes), and the shapes whose mean's sums it adds in vector registers (``low`` to
    # ``high`` features, at most ``most`` centroids: literals, so that each kernel holds
    # the code of its own shapes' layouts only; lanes.add_rows_in_lanes).
    @numba.njit(nogil=True, fastmath={"contract"}, inline="always")
    def _direct_pass(  # pragma: no cover
        X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second,
        sample_weight, group_rows, group_sums, group_weights, prefetch, block, low, high, most,
    ):
        # ``prefetch``: the data is too large to stay in cache from one pass to the next,
        # so each sub-block's transposition prefetches the next sub-block's rows (where
        # _direct_prefetch_pays), four rows at a time, one line in each 64 bytes
        want_second = second.shape[0] > 0
        n, d, k = X.shape[0], X.shape[1], minus_2c.shape[0]
        sub = max(1, min(SUB_BLOCK_ROWS, n))  # one row at least: range() needs a step
        prefetching = prefetch and _direct_prefetch_pays(d, X.itemsize)
        padded = (d + 3) // 4 * 4
        rows_t = np.zeros((padded, sub), dtype=X.dtype)
        coef = np.zeros((k, padded), dtype=X.dtype)
        # element by element, not ``coef[:, :d] = minus_2c``: see _copy in lloyd
        for j in range(k):
            for f in range(d):
                coef[j, f] = minus_2c[j, f]
        acc = np.empty(sub if padded > 16 else 0, dtype=X.dtype)
        best = np.empty(sub, dtype=X.dtype)
        runner_up = np.empty(sub, dtype=X.dtype)
        arg = np.empty(sub, dtype=np.int32)
        for start in range(0, n, sub):
            m = min(start + sub, n) - start
            block(
                X, mean, start, m, sub, prefetching, rows_t, coef, c_sq_norms, acc, best,
                runner_up, arg, want_second,
            )
            # _finish_rows without its prefetch (the rows were prefetched in the
            # transposition): the labels and costs, then the mean's sums in vector
            # registers where the kernel has a layout for the shape, else row by row
            _exact_rows(X, mean, centered_c, start, m, arg, runner_up, labels, mins, second, n)
            if group_sums.shape[0] > 0:
                g = start // group_rows
                if not add_rows_in_lanes(
                    X, sample_weight, start, m, arg, group_sums[g], group_weights[g],
                    low, high, most,
                ):
                    _add_rows(
                        X, sample_weight, start, m, arg, group_rows, group_sums,
                        group_weights, n,
                    )

    # One sub-block's pass at one or two features (the padding's products are zeros).
    @numba.njit(nogil=True, fastmath={"contract"}, inline="always")
    def _pair_block(  # pragma: no cover
        X, mean, start, m, sub, prefetching, rows_t, coef, c_sq_norms, acc, best,
        runner_up, arg, want_second,
    ):
        _pair_rows(X, mean, start, m, rows_t[0], rows_t[1])
        _pair_search(rows_t[0], rows_t[1], coef, c_sq_norms, m, best, runner_up, arg, want_second)

    # One sub-block's pass at three to sixteen features: its rows centered and transposed
    # (_transpose_rows), then one pass per centroid.
    @numba.njit(nogil=True, fastmath={"contract"}, inline="always")
    def _fours_block(  # pragma: no cover
        X, mean, start, m, sub, prefetching, rows_t, coef, c_sq_norms, acc, best,
        runner_up, arg, want_second,
    ):
        _transpose_tiles_of_eight(X, mean, start, m, sub, prefetching, rows_t)
        _quad_search(rows_t, coef, c_sq_norms, m, best, runner_up, arg, want_second)

    # One sub-block's pass from seventeen features: its rows centered and transposed,
    # then the accumulator's passes.
    @numba.njit(nogil=True, fastmath={"contract"}, inline="always")
    def _wide_block(  # pragma: no cover
        X, mean, start, m, sub, prefetching, rows_t, coef, c_sq_norms, acc, best,
        runner_up, arg, want_second,
    ):
        _transpose_rows(X, mean, start, m, sub, prefetching, rows_t)
        _wide_search(rows_t, coef, c_sq_norms, m, acc, best, runner_up, arg, want_second)

    # A sub-block's rows centered and transposed into ``rows_t`` (three to sixteen
    # features): eight rows at a time in vector registers (tiles.center_eight), the
    # rest (the last rows short of eight, or all of them where center_eight declines the
    # arrays: never for a fit's data, C-contiguous and centered on a mean of its dtype)
    # one by one, without the prefetch.  A call once per sub-block, not inlined in
    # numba's IR: inlined into the direct searches, it added 4-5 s to a first compile of
    # _direct_search (numba copies an inlined function's IR at every site).
    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _transpose_tiles_of_eight(X, mean, start, m, sub, prefetching, rows_t):  # pragma: no cover
        i = 0
        while i + TILE_ROWS <= m and center_eight(X, start + i, mean, rows_t, i):
            if prefetching:  # the next sub-block's eight rows (none past X)
                ahead = start + sub + i
                for t in range(TILE_ROWS):
                    _prefetch_row(X, ahead + t)
            i += TILE_ROWS
        for t in range(i, m):
            row = np.uintp(start + t)
            for f in range(X.shape[1]):
                rows_t[f, t] = X[row, f] - mean[f]

    # A sub-block's rows centered and transposed into ``rows_t`` four rows at a time
    # (four independent rows per feature keep the scalar loop busy), the next
    # sub-block's rows prefetched with them when ``prefetching``: the wide search's.
    @numba.njit(nogil=True, fastmath={"contract"}, inline="always")
    def _transpose_rows(X, mean, start, m, sub, prefetching, rows_t):  # pragma: no cover
        d = X.shape[1]
        i = 0
        while i + 4 <= m:
            row = np.uintp(start + i)
            for f in range(d):
                mf = mean[f]
                rows_t[f, i] = X[row, f] - mf
                rows_t[f, i + 1] = X[row + _ONE, f] - mf
                rows_t[f, i + 2] = X[row + _TWO, f] - mf
                rows_t[f, i + 3] = X[row + _THREE, f] - mf
            if prefetching:  # the next sub-block's four rows (none past X)
                ahead = start + sub + i
                _prefetch_row(X, ahead)
                _prefetch_row(X, ahead + 1)
                _prefetch_row(X, ahead + 2)
                _prefetch_row(X, ahead + 3)
            i += 4
        while i < m:
            row = np.uintp(start + i)
            for f in range(d):
                rows_t[f, i] = X[row, f] - mean[f]
            i += 1

    # The direct search's passes from seventeen features (shapes no fit gives the direct
    # search: _direct_search_wide, the tests' reference for the one-pass loops): per
    # centroid, its distances accumulated four features at a time in
    # ``acc``, then the running minimum (and runner-up) taken from them.
    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _wide_search(  # pragma: no cover
        rows_t, coef, c_sq_norms, m, acc, best, runner_up, arg, want_second
    ):
        inf = best.dtype.type(np.inf)
        for j in range(coef.shape[0]):
            c = c_sq_norms[j]
            for i in range(m):
                acc[i] = c
            for f in range(0, rows_t.shape[0], 4):
                c0, c1, c2, c3 = coef[j, f], coef[j, f + 1], coef[j, f + 2], coef[j, f + 3]
                r0, r1, r2, r3 = rows_t[f], rows_t[f + 1], rows_t[f + 2], rows_t[f + 3]
                for i in range(m):
                    acc[i] += (c0 * r0[i] + c1 * r1[i]) + (c2 * r2[i] + c3 * r3[i])
            if j == 0:
                for i in range(m):
                    best[i] = acc[i]
                    runner_up[i] = inf
                    arg[i] = 0
            elif want_second:
                for i in range(m):
                    value = acc[i]
                    lower = value < best[i]
                    runner_up[i] = best[i] if lower else min(runner_up[i], value)
                    best[i] = value if lower else best[i]
                    arg[i] = np.int32(j) if lower else arg[i]
            else:
                for i in range(m):
                    value = acc[i]
                    lower = value < best[i]
                    best[i] = value if lower else best[i]
                    arg[i] = np.int32(j) if lower else arg[i]

    # The rows of a sub-block at one or two features, centered and transposed into the
    # first rows of ``rows_t`` (one loop over the rows, each feature's mean held: the
    # values of the general transposition, without its loop over features).
    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _pair_rows(X, mean, start, m, r0, r1):  # pragma: no cover
        m0 = mean[0]
        if X.shape[1] == 2:
            m1 = mean[1]
            for i in range(m):
                row = np.uintp(start + i)
                r0[i] = X[row, 0] - m0
                r1[i] = X[row, 1] - m1
        else:
            for i in range(m):
                r0[i] = X[np.uintp(start + i), 0] - m0

    # The direct search's pass at one or two features: for each centroid, one loop over
    # the sub-block's rows computes ``||c||^2 + (-2 c0 x0 + -2 c1 x1)`` (a start at
    # ``||c||^2`` and the pair's products added, as the wider shapes' accumulator starts
    # and adds each four) and keeps the running minimum (and runner-up) in the same
    # loop.  Compiled with the direct search's flags (``contract``) and called once per
    # sub-block (inlined into the search it ran 1.1-1.2x slower).  Its own loops rather
    # than _quad_search's with a pair's width: those loops, when they read the rows
    # through a tuple of the block's rows, took 1.07-1.1x the time at one and two
    # features (200000 rows, k 3 and 8), the same bits.
    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _pair_search(  # pragma: no cover
        r0, r1, coef, c_sq_norms, m, best, runner_up, arg, want_second
    ):
        inf = best.dtype.type(np.inf)
        c, c0, c1 = c_sq_norms[0], coef[0, 0], coef[0, 1]
        for i in range(m):
            value = c
            value += c0 * r0[i] + c1 * r1[i]
            best[i] = value
            runner_up[i] = inf
            arg[i] = 0
        for j in range(1, coef.shape[0]):
            c, c0, c1 = c_sq_norms[j], coef[j, 0], coef[j, 1]
            if want_second:
                for i in range(m):
                    value = c
                    value += c0 * r0[i] + c1 * r1[i]
                    lower = value < best[i]
                    runner_up[i] = best[i] if lower else min(runner_up[i], value)
                    best[i] = value if lower else best[i]
                    arg[i] = np.int32(j) if lower else arg[i]
            else:
                for i in range(m):
                    value = c
                    value += c0 * r0[i] + c1 * r1[i]
                    lower = value < best[i]
                    best[i] = value if lower else best[i]
                    arg[i] = np.int32(j) if lower else arg[i]

    # The direct search's pass at three to sixteen features (4, 8, 12 or 16 padded): as
    # :func:`_pair_search`, each centroid's distances (``||c||^2`` plus each four's
    # products: the accumulator's values, held in a register) and the running minimum in
    # one loop over the rows.
    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _quad_search(  # pragma: no cover
        rows_t, coef, c_sq_norms, m, best, runner_up, arg, want_second
    ):
        width = rows_t.shape[0]
        if width == 4:
            _quad_pass_4(rows_t, coef, c_sq_norms, m, best, runner_up, arg, want_second)
        elif width == 8:
            _quad_pass_8(rows_t, coef, c_sq_norms, m, best, runner_up, arg, want_second)
        elif width == 12:
            _quad_pass_12(rows_t, coef, c_sq_norms, m, best, runner_up, arg, want_second)
        elif width == 16:
            _quad_pass_16(rows_t, coef, c_sq_norms, m, best, runner_up, arg, want_second)
        else:  # wider rows take the accumulator (_wide_search): never drop features
            raise ValueError("the one-pass search takes 4, 8, 12 or 16 padded features")

    # ``||c||^2 - 2 x.c`` of row ``i`` from its fours, up to 4, 8, 12 or 16 features:
    # ``c`` plus each four's products, ``(c0 x0 + c1 x1) + (c2 x2 + c3 x3)``, in order
    # (the accumulator's operations).  ``cj``: the centroid's sixteen coefficients
    # (:func:`_four_rows`); ``rows``: the transposed block.  One function per width (each
    # the one before it plus a four), so that each holds its own width's code only: one
    # function taking the width as a constant, and the rows as a tuple of sixteen views,
    # held every width in each of its twelve copies inlined in numba's IR, pruned only
    # after typing (_quad_search took 4.2-4.7 s to compile per array type, 3.1 s with a
    # function per width; the same bits, the same time per search).  Written out: one
    # function made per four, the four's place a constant of its closure, took 4.5 s
    # (numba indexes the coefficients' tuple by a value it does not fold).  Called, not
    # inlined in numba's IR (as _quad_search's loops): LLVM inlines them.
    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _fours_4(c, cj, rows, i):  # pragma: no cover
        value = c
        value += (cj[0] * rows[0, i] + cj[1] * rows[1, i]) + (
            cj[2] * rows[2, i] + cj[3] * rows[3, i]
        )
        return value

    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _fours_8(c, cj, rows, i):  # pragma: no cover
        value = _fours_4(c, cj, rows, i)
        value += (cj[4] * rows[4, i] + cj[5] * rows[5, i]) + (
            cj[6] * rows[6, i] + cj[7] * rows[7, i]
        )
        return value

    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _fours_12(c, cj, rows, i):  # pragma: no cover
        value = _fours_8(c, cj, rows, i)
        value += (cj[8] * rows[8, i] + cj[9] * rows[9, i]) + (
            cj[10] * rows[10, i] + cj[11] * rows[11, i]
        )
        return value

    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def _fours_16(c, cj, rows, i):  # pragma: no cover
        value = _fours_12(c, cj, rows, i)
        value += (cj[12] * rows[12, i] + cj[13] * rows[13, i]) + (
            cj[14] * rows[14, i] + cj[15] * rows[15, i]
        )
        return value

    # _quad_search's loops for ``width`` padded features, whose fours ``fours`` sums
    # (both constants in the function made for them).  Three copies of the loop (the
    # first centroid, with the runner-up, the minimum alone): a branch between them
    # inside the loop kept it from vectorizing.  The minimum's update is written out in
    # each loop, as in the product search: an inlined helper for it made these loops
    # with the runner-up 2.5-4x slower (the row search's ranking, one row at a time, is
    # its own helper, _ranked).  Called from _quad_search rather than inlined in numba's
    # IR: numba then types each once instead of in four inlined copies (_quad_search's
    # own compile 5.7 s inlined, 2.5 s with its loops called), and LLVM inlines them (the
    # same code, the same time per search).  Not cached: compiled only into
    # _quad_search, whose cached code holds them (a cached closure over a compiled
    # function would be keyed on a pickle that differs in every process).
    def _quad_pass_for(width, fours):
        @numba.njit(nogil=True, fastmath={"contract"})
        def quad_pass(  # pragma: no cover
            rows_t, coef, c_sq_norms, m, best, runner_up, arg, want_second
        ):
            inf = best.dtype.type(np.inf)
            for j in range(coef.shape[0]):
                c, cj = c_sq_norms[j], _four_rows(coef[j], width)
                if j == 0:
                    for i in range(m):
                        best[i] = fours(c, cj, rows_t, i)
                        runner_up[i] = inf
                        arg[i] = 0
                elif want_second:
                    for i in range(m):
                        value = fours(c, cj, rows_t, i)
                        lower = value < best[i]
                        runner_up[i] = best[i] if lower else min(runner_up[i], value)
                        best[i] = value if lower else best[i]
                        arg[i] = np.int32(j) if lower else arg[i]
                else:
                    for i in range(m):
                        value = fours(c, cj, rows_t, i)
                        lower = value < best[i]
                        best[i] = value if lower else best[i]
                        arg[i] = np.int32(j) if lower else arg[i]

        return quad_pass

    _quad_pass_4 = _quad_pass_for(4, _fours_4)
    _quad_pass_8 = _quad_pass_for(8, _fours_8)
    _quad_pass_12 = _quad_pass_for(12, _fours_12)
    _quad_pass_16 = _quad_pass_for(16, _fours_16)

    # A centroid's sixteen coefficients that the fours of ``width`` features read, as a
    # tuple: those past ``width`` name the last four, never read.
    @numba.njit(nogil=True, cache=True, inline="always")
    def _four_rows(a, width):  # pragma: no cover
        second, third, last = min(4, width - 4), min(8, width - 4), width - 4
        return (
            a[0], a[1], a[2], a[3],
            a[second], a[second + 1], a[second + 2], a[second + 3],
            a[third], a[third + 1], a[third + 2], a[third + 3],
            a[last], a[last + 1], a[last + 2], a[last + 3],
        )

    # The exact squared distance of each row to its chosen centroid, from the row as
    # stored (contiguous, still in cache; no gather from the transposed copy): a sum over
    # features that reassoc lets vectorize, in an order that depends on the number of
    # features only, the same for every row, and the same sum as :func:`_paired_sq_numba`
    # (the costs computed on demand).  Every nearest kernel ends with it.  With an empty
    # ``mins``: the labels only.
    @numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
    def _exact_rows(  # pragma: no cover
        X, mean, centered_c, start, m, arg, runner_up, labels, mins, second, ahead
    ):
        if mins.shape[0] == 0:  # the labels only, and no prefetch: a burst of them in
            for i in range(m):  # this short loop slowed the search
                labels[np.uintp(start + i)] = arg[i]
            return
        want_second = second.shape[0] > 0
        zero = X.dtype.type(0)
        for i in range(m):
            j, row = np.uintp(arg[i]), np.uintp(start + i)
            labels[row] = arg[i]
            total = zero
            for f in range(X.shape[1]):
                diff = (X[row, f] - mean[f]) - centered_c[j, f]
                total += diff * diff
            mins[row] = total
            if want_second:
                norm = zero
                for f in range(X.shape[1]):
                    value = X[row, f] - mean[f]
                    norm += value * value
                second[row] = max(runner_up[i] + norm, zero)
            _prefetch_row(X, ahead + i)

    # Row ``row`` of X prefetched, line by line (nothing past X's last row): the
    # product kernel asks for the rows of its next product while it finishes the
    # current one's, so that BLAS then reads them from cache.
    @numba.njit(nogil=True, cache=True, inline="always")
    def _prefetch_row(X, row):  # pragma: no cover
        if row < X.shape[0]:
            for f in range(0, X.shape[1], max(1, CACHE_LINE_BYTES // X.itemsize)):
                prefetch_line(X, row, f)

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


    # The mean's sums in the search's pass (:func:`kmeansfw.kernels.nearest_sq_euclidean`
    # with ``sums``): right after a sub-block's labels are known, while its rows are in
    # cache, each row's weight and weighted values go to its cluster's float64 totals of
    # the row's group (runs of ``group_rows`` rows from the block's start,
    # :func:`kmeansfw.kernels.update.sum_group_rows`), row by row in order: the groups of
    # :func:`kmeansfw.kernels.add_weighted_cluster_sums`, which the caller then adds in
    # order (:func:`_add_groups`), so the totals are that function's bit for bit.
    # No sums when ``group_sums`` is empty.  ``fastmath=False`` stated, not left out: numba
    # compiles a callee that states no flags with its first caller's, so the direct
    # search (``contract``) would fuse its multiply-adds for every later caller in the
    # process, and the totals would depend on which search ran first.
    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _add_rows(  # pragma: no cover
        X, sample_weight, start, m, arg, group_rows, group_sums, group_weights, ahead
    ):
        if group_sums.shape[0] == 0:
            return
        g = start // group_rows
        sums, weights = group_sums[g], group_weights[g]
        if X.shape[1] == 2:  # a constant width: no loop (and no checks of it) per row
            _add_rows_of(X, sample_weight, start, m, arg, sums, weights, 2)
        elif X.shape[1] == 1:
            _add_rows_of(X, sample_weight, start, m, arg, sums, weights, 1)
        elif ahead < X.shape[0]:
            _add_rows_ahead(X, sample_weight, start, m, arg, sums, weights, ahead)
        else:
            _add_rows_of(X, sample_weight, start, m, arg, sums, weights, X.shape[1])

    @numba.njit(nogil=True, cache=True, fastmath=False, inline="always")
    def _add_rows_ahead(  # pragma: no cover
        X, sample_weight, start, m, arg, sums, weights, ahead
    ):
        # _add_rows_of's additions, each row's followed by a prefetch of row ``ahead + i``
        # (written out, as there: through a shared inlined helper the compiled _add_rows
        # came out different, and _add_rows_of's loop is the one measured at 1-2 features)
        for i in range(m):
            j, row = np.uintp(arg[i]), np.uintp(start + i)
            w = np.float64(sample_weight[row])
            weights[j] += w
            for f in range(X.shape[1]):
                sums[j, f] += w * X[row, f]
            _prefetch_row(X, ahead + i)

    # _add_rows' loop, the same additions in the same order whatever ``width``.  Inlined,
    # a literal width is a constant: at one or two features the per-row loop over
    # features, and the vectorizer's checks before it, give way to one or two additions
    # (measured per search with the sums at 200000 and 1000000 rows: 0.75-0.85x the time
    # at two features, 0.77-0.91x at one; no gain at 3 to 8 features, whose loops are
    # not the cost).  Inlined code takes the flags of the function it is inlined into:
    # the sums stay unfused because _add_rows states ``fastmath=False`` (this one states
    # it too, for any caller that would not inline it).
    @numba.njit(nogil=True, cache=True, fastmath=False, inline="always")
    def _add_rows_of(  # pragma: no cover
        X, sample_weight, start, m, arg, sums, weights, width
    ):
        for i in range(m):
            j, row = np.uintp(arg[i]), np.uintp(start + i)
            w = np.float64(sample_weight[row])
            weights[j] += w
            for f in range(width):
                sums[j, f] += w * X[row, f]

    @numba.njit(nogil=True, cache=True, fastmath=False)
    def _add_groups(group_sums, group_weights, sums, weights):  # pragma: no cover
        # the groups' totals into the block's, in group order
        for g in range(group_sums.shape[0]):
            for j in range(sums.shape[0]):
                weights[j] += group_weights[g, j]
                for f in range(sums.shape[1]):
                    sums[j, f] += group_sums[g, j, f]

if HAVE_NUMBA:

    # The searches on numba's threads (:func:`kmeansfw.kernels.lloyd.threaded_search`,
    # in the kernels of the threaded Lloyd iterations): rows cut into ``n_chunks`` runs
    # of whole sub-blocks (the serial kernels' own sub-block boundaries), each run handed
    # to the serial kernel on one of numba's threads, so every row is computed exactly as
    # in the serial kernel.  With the mean's sums, runs of whole groups of rows, each run
    # filling its own groups' totals: the totals are those of the serial kernel too.
    @numba.njit(nogil=True, cache=True, inline="always")
    def _chunk(n, n_chunks, c, unit):  # pragma: no cover
        # rows [a, b) of run c of n_chunks runs of whole units of rows (empty when a >= b)
        n_units = -(-n // unit)
        per = -(-n_units // n_chunks) * unit
        return min(c * per, n), min((c + 1) * per, n)

    @numba.njit(nogil=True, cache=True, inline="always")
    def _search_run(n, n_chunks, c, group_rows, group_sums):  # pragma: no cover
        # rows [a, b) of a search's run c and its groups [g0, g1) of the mean's sums:
        # whole groups with sums, whole sub-blocks without
        if group_sums.shape[0] == 0:
            a, b = _chunk(n, n_chunks, c, SUB_BLOCK_ROWS)
            return a, b, 0, 0
        a, b = _chunk(n, n_chunks, c, group_rows)
        return a, b, a // group_rows, -(-b // group_rows)


SearchKind = Literal["pair", "fours", "wide", "rows", "screened rows", "product"]


def search_kind(direct: bool, n_features: int, n_clusters: int, itemsize: int) -> SearchKind:
    """Which compiled search kernel a shape takes (where numba is installed).

    Each kind of search is a kernel of its own, and so are the Lloyd iterations' kernels
    holding it (:mod:`kmeansfw.kernels.lloyd`), so that a first fit compiles only the
    search its shape takes: numba compiles every branch of a kernel, and a kernel that
    held every search compiled them all.  Each kernel refuses the shapes of the others,
    so a shape always gets the same bits (given ``direct``: the product search's kernels
    also take the direct search's shapes, as the tests' reference).

    Parameters
    ----------
    direct : bool
        The direct search (:func:`direct_pays`), else the product search (or its row
        search).
    n_features, n_clusters : int
        The data's features and the number of centroids.
    itemsize : int
        Bytes per value (4: float32, else float64).

    Returns
    -------
    SearchKind
        ``"pair"`` (the direct search at one or two features), ``"fours"`` (at three to
        sixteen), ``"wide"`` (past sixteen, which no fit takes: the tests' reference
        for the one-pass loops), ``"rows"`` (the product search's shapes of
        :func:`row_search_pays`), ``"screened rows"`` (those of :func:`screen_pays` too:
        float64, eight centroids, 192 to 256 features; a search without the runner-up is
        screened first) or ``"product"``.
    """
    if direct:
        if n_features <= 2:
            return "pair"
        return "fours" if n_features <= DIRECT_WIDE_MAX_FEATURES else "wide"
    if not row_search_pays(n_features, n_clusters, itemsize):
        return "product"
    return "screened rows" if screen_pays(n_features, n_clusters, itemsize) else "rows"


def kernel_chunks(n_rows: int, n_features: int, n_clusters: int, n_threads: int) -> int:
    """How many runs of rows a kernel with a parallel variant splits a block into.

    Parameters
    ----------
    n_rows, n_features, n_clusters : int
        The block's shape and the number of centroids (or candidates) it is compared to.
    n_threads : int
        Threads the kernel may use (:func:`kmeansfw.engine.executors.kernel_threads`).

    Returns
    -------
    int
        At most ``n_threads`` and one per sub-block; 1 (the serial kernel) for less work
        than :data:`PARALLEL_MIN_WORK` or when :func:`parallel_ready` says no.  The results
        are the same for any answer.
    """
    chunks = min(n_threads, -(-n_rows // SUB_BLOCK_ROWS))
    if chunks <= 1 or n_rows * n_clusters * max(n_features, 4) < PARALLEL_MIN_WORK:
        return 1
    return chunks if parallel_ready() else 1


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
        # the product search's pass (same product, same comparisons, hence the same labels),
        # keeping for every group of centroids its two smallest values, so that each
        # group's nearest centroid other than the assigned one is known at the end.
        n, d, k = X.shape[0], X.shape[1], minus_2c.shape[0]
        t = lows.shape[1]
        step, by_rows_step = _search_rows(d, k, X.itemsize)
        sub = max(1, min(step, n))  # one row at least: range() needs a step
        origin = _at_origin(mean)
        centered = np.empty((sub, d), dtype=X.dtype)
        buf, by_rows, minus_2c_t = _product_buffers(minus_2c, by_rows_step, sub)
        best = np.empty(sub, dtype=X.dtype)
        arg = np.empty(sub, dtype=np.int32)
        first = np.empty((t, sub), dtype=X.dtype)
        second = np.empty((t, sub), dtype=X.dtype)
        zero = X.dtype.type(0)
        inf = X.dtype.type(np.inf)
        for start in range(0, n, sub):
            m = min(start + sub, n) - start
            rows = centered[:m]
            block = _centered_product(
                X, mean, origin, minus_2c, minus_2c_t, start, rows, buf, by_rows
            )
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
                j, row = np.uintp(arg[i]), np.uintp(start + i)
                labels[row] = arg[i]
                total = zero
                norm = zero
                for f in range(d):  # the centered row (not kept from the product)
                    value = X[row, f] - mean[f]
                    diff = value - centered_c[j, f]
                    total += diff * diff
                    norm += value * value
                mins[row] = total
                own = groups[j]
                for g in range(t):
                    rival = second[g, i] if g == own else first[g, i]
                    lows[row, g] = max(rival + norm, zero)


#: The shortest product the cost kernels take (:func:`product_rows`).
COST_SHORTEST_PRODUCT = SUB_BLOCK_ROWS // 2


def _sq_cost_numpy(X, mean, minus_2c, c_sq_norms, norms, out):
    # product by product, as the compiled kernel, so that both take the same products
    step = product_rows(X.shape[1], minus_2c.shape[0], COST_SHORTEST_PRODUCT)
    for start in range(0, X.shape[0], step):  # blocks of rows, never samples
        part = out[start : start + step]
        np.dot(X[start : start + step] - mean, minus_2c.T, out=part)
        part += c_sq_norms
        part += norms[start : start + step, None]
    np.maximum(out, 0, out=out)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True)
    def _sq_cost_numba(X, mean, minus_2c, c_sq_norms, norms, out):  # pragma: no cover
        # Rows are centered sub-block by sub-block (accurate far from the origin, as the
        # nearest-centroid kernel), one product per sub-block, then one fused pass.
        n, d = X.shape
        sub = max(1, min(SUB_BLOCK_ROWS, n))  # one row at least: range() needs a step
        centered = np.empty((sub, d), dtype=X.dtype)
        origin = _at_origin(mean)  # the rows as they are (see _centered_product)
        for start in range(0, n, sub):
            m = min(start + sub, n) - start
            stop = start + m
            if origin:
                part = out[start:stop]
                _sq_cost_rows(X[start:stop], minus_2c, c_sq_norms, norms[start:stop], part)
                continue
            rows = centered[:m]
            _center_rows(X, mean, start, rows)  # the search's centering (_centered_product)
            _sq_cost_rows(rows, minus_2c, c_sq_norms, norms[start:stop], out[start:stop])

    @numba.njit(nogil=True, cache=True)
    def _sq_cost_rows(rows, minus_2c, c_sq_norms, norms, part):  # pragma: no cover
        # one sub-block's costs from its centered rows (C-contiguous): the products (of
        # product_rows rows each, from a half sub-block), then the fused pass, in NumPy's
        # order of additions (bit-identical to the twin)
        step = _product_rows(rows.shape[1], minus_2c.shape[0], COST_SHORTEST_PRODUCT)
        c_t = minus_2c.T
        for a in range(0, rows.shape[0], step):
            b = min(a + step, rows.shape[0])
            np.dot(rows[a:b], c_t, part[a:b])
        zero = part.dtype.type(0)
        for i in range(rows.shape[0]):
            norm = norms[i]
            for j in range(part.shape[1]):
                value = (part[i, j] + c_sq_norms[j]) + norm
                part[i, j] = zero if value < zero else value


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True, parallel=True)
    def _sq_cost_parallel(X, mean, minus_2c, c_sq_norms, norms, out, n_chunks):  # pragma: no cover
        # as the nearest search's variants: runs of whole sub-blocks, each as serially
        for c in numba.prange(n_chunks):
            a, b = _chunk(X.shape[0], n_chunks, c, SUB_BLOCK_ROWS)
            if a < b:
                _sq_cost_numba(X[a:b], mean, minus_2c, c_sq_norms, norms[a:b], out[a:b])


def sq_euclidean_costs(
    X: np.ndarray,
    mean: np.ndarray,
    minus_2c: np.ndarray,
    c_sq_norms: np.ndarray,
    norms: np.ndarray,
    n_threads: int = 1,
) -> np.ndarray:
    """The (b, k) squared distances ``max((x - m).(-2c') + ||c'||^2 + ||x - m||^2, 0)``.

    ``X`` is a dense C-contiguous block, ``mean`` (d,) the data mean m, ``minus_2c`` and
    ``c_sq_norms`` those of the centered centroids ``c' = c - m`` and ``norms`` (b,) the
    rows' ``||x - m||^2``.  Rows are centered on the fly, sub-block by sub-block, so the
    costs stay accurate in float32 far from the origin (no centered copy of X).
    ``n_threads``: as for :func:`kmeansfw.kernels.nearest_sq_euclidean` (the results do
    not depend on it).
    """
    out = np.empty((X.shape[0], minus_2c.shape[0]), dtype=X.dtype)
    origin = read_only(mean.astype(X.dtype, copy=False))
    prepared = [_as_kernels_take(a, X.dtype) for a in (minus_2c, c_sq_norms)]
    args = (read_only(X), origin, *prepared, read_only(norms), out)
    if not HAVE_NUMBA:
        _sq_cost_numpy(*args)
        return out
    chunks = kernel_chunks(X.shape[0], X.shape[1], minus_2c.shape[0], n_threads)
    if chunks > 1:
        launch(_sq_cost_parallel, *args, chunks)
    else:
        _sq_cost_numba(*args)
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

    Arguments as for :func:`kmeansfw.kernels.nearest_sq_euclidean`, plus ``groups`` (k,)
    the group index (in ``[0, n_groups)``) of every centroid.

    Returns
    -------
    labels, min_sq_distances : as :func:`kmeansfw.kernels.nearest_sq_euclidean` (the same labels).
    group_sq_distances : (b, n_groups), the squared distance from each row to the
        nearest centroid of each group other than its assigned one (from the products, so
        to rounding; ``inf`` for a group with no other centroid).
    """
    b = X.shape[0]
    labels = np.empty(b, dtype=np.intp)
    mins = np.empty(b, dtype=X.dtype)
    lows = np.empty((b, n_groups), dtype=X.dtype)
    groups = np.ascontiguousarray(groups, dtype=np.intp)
    kernel = _nearest_groups_numba if HAVE_NUMBA else _nearest_groups_numpy
    rows, origin = read_only(X), read_only(mean)
    prepared = [_as_kernels_take(a, X.dtype) for a in (minus_2c, c_sq_norms, centered_c)]
    kernel(rows, origin, *prepared, groups, labels, mins, lows)
    return labels, mins, lows


def _as_kernels_take(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    # a prepared centroid array as the kernels take it (nearest_sq_euclidean,
    # sq_euclidean_costs, nearest_groups_sq_euclidean, paired_sq_euclidean):
    # C-contiguous, writable (one compiled signature whatever the caller's flags), of the
    # data's dtype (itself when it is; else a copy, k x d at most).  Handed a strided
    # ``centered_c`` or a Fortran-ordered ``minus_2c``, numba compiled the searches again
    # for that layout and summed in another order: the same labels, but costs or
    # runner-ups that differed in their last bits with the caller's layout.
    flags = a.flags
    if flags.c_contiguous and flags.writeable and a.dtype == dtype:
        return a
    return np.array(a, dtype=dtype, order="C")


def _no_sums(dtype: np.dtype) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    # the sums arguments of a search that adds none (the weights read-only, as the data's
    # weights are: one compiled signature with and without the sums)
    return read_only(np.empty(0, dtype=dtype)), 1, np.empty((0, 1, 1)), np.empty((0, 1))


def search_plan(
    n_rows: int, n_features: int, n_clusters: int, n_threads: int, with_sums: bool
) -> tuple[bool, int, int, int]:
    """How :func:`kmeansfw.kernels.nearest_sq_euclidean` searches a block (with numba),
    decided by its shape alone.

    Parameters
    ----------
    n_rows, n_features, n_clusters : int
        The block's shape and k.
    n_threads : int
        Threads the search may use (see :func:`kernel_chunks`).
    with_sums : bool
        Whether the mean's sums are added in the search's pass.

    Returns
    -------
    direct : bool
        The direct search (:func:`direct_pays`), else the product search (its kernel
        for the shape: :func:`search_kind`).
    chunks : int
        Runs of rows split between numba's threads (1: the serial kernel); with the sums,
        at most one per group.
    group_rows, n_groups : int
        The sums' groups of rows (:func:`kmeansfw.kernels.update.sum_group_rows`) and
        their number; 1 and 0 without the sums.
    """
    direct = direct_pays(n_features, n_clusters)
    chunks = kernel_chunks(n_rows, n_features, n_clusters, n_threads)
    if not with_sums:
        return direct, chunks, 1, 0
    group_rows = sum_group_rows(n_rows, n_clusters)
    n_groups = -(-n_rows // group_rows) if n_rows else 0
    return direct, min(chunks, n_groups), group_rows, n_groups


def paired_sq_euclidean(
    X: np.ndarray, mean: np.ndarray, centered_c: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Exact squared distance of each row of X to ``centered_c[labels] + mean``, (b,)."""
    out = np.empty(X.shape[0], dtype=X.dtype)
    kernel = _paired_sq_numba if HAVE_NUMBA else _paired_sq_numpy
    centered = _as_kernels_take(centered_c, X.dtype)
    kernel(read_only(X), read_only(mean), centered, labels, out)
    return out


# ----------------------------------------------------------------- centroid preparation


def _prepare_centroids_numpy(centroids, mean, centered, minus_2c, norms, shift):
    np.subtract(centroids, mean, out=centered)
    np.multiply(centered, -2, out=minus_2c)
    np.einsum("ij,ij->i", centered, centered, out=norms)
    np.add(norms, 2 * (centered @ mean), out=shift)


if HAVE_NUMBA:

    @numba.njit(nogil=True, cache=True, fastmath=False)  # stated: see _product_search
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
        read_only(np.ascontiguousarray(centroids, dtype=dtype)),
        read_only(np.ascontiguousarray(mean, dtype=dtype)),
        centered,
        minus_2c,
        norms,
        shift,
    )
    return centered, minus_2c, norms, shift


# ---------------------------------------------------------------- centered row norms
# Once per data set: squared norms of the centered rows (the Euclidean costs' norms),
# without a centered copy.


def _centered_row_norms_numpy(X, mean, out):
    centered = X - mean
    np.einsum("ij,ij->i", centered, centered, out=out)


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


def centered_row_norms(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``||x - mean||^2`` of every row of a dense block, in X's dtype, in one pass."""
    out = np.empty(X.shape[0], dtype=X.dtype)
    kernel = _centered_row_norms_numba if HAVE_NUMBA else _centered_row_norms_numpy
    kernel(read_only(X), read_only(mean.astype(X.dtype, copy=False)), out)
    return out
