"""Compiled kernels agree with their NumPy twins and with brute force."""

from __future__ import annotations

import functools
import importlib.util
import os
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from kmeansfw import kernels
from kmeansfw.kernels import bounds, checks, convergence, euclidean, lloyd, lp, seeding, update
from tests.conftest import serial_search

nearest_direct, nearest_by_product = serial_search(True), serial_search(False)

# (n, d, k): one row, one centroid, several sub-blocks (SUB_BLOCK_ROWS) with a ragged end,
# products of 128 and 64 rows (euclidean.product_rows), and of 32 rows in float32; and
# products by rows (euclidean.by_rows_product) of 256 (float32) or 128 rows, of 128 or
# 64, of 64, each with a last product that is not a whole number of transposed tiles; and
# the row search (euclidean.row_search_pays) at each of its centroid tiles (one to four,
# four and one, four and three, four and four), in float32 or float64 or both
_SHAPES = [
    (1, 1, 1), (1, 4, 5), (40, 3, 1), (300, 3, 7), (1000, 17, 64), (513, 64, 256),
    (300, 32, 8), (700, 64, 12), (300, 400, 32), (520, 32, 64), (333, 40, 16),
    (600, 96, 24), (600, 17, 1), (777, 24, 5), (513, 31, 8), (300, 200, 3), (270, 160, 2),
    (300, 192, 7), (259, 256, 8), (1, 20, 4),
]


def _inputs(rng, n, d, k, dtype):
    # X and its mean read-only, as the kernel functions hand them to the kernels
    # (kernels.read_only), so that the kernels the tests call directly compile the
    # library's signatures, not more
    X = (rng.normal(size=(n, d)) * 3 + 1).astype(dtype)
    C = X[rng.choice(n, size=k, replace=k > n)] + rng.normal(size=(k, d)).astype(dtype)
    mean = X.mean(axis=0)
    centered = (C - mean).astype(dtype)
    return (
        _freeze(X),
        _freeze(mean),
        np.ascontiguousarray(centered * -2),
        np.einsum("ij,ij->i", centered, centered),
        centered,
        C,
    )


def _freeze(array):
    """``array``, its writeable flag turned off (the test's own arrays: no view)."""
    array.flags.writeable = False
    return array


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("n", "d", "k"), _SHAPES)
def test_numba_and_numpy_nearest_agree(dtype, n, d, k):
    rng = np.random.default_rng(n + d + k)
    X, mean, m2c, cn, cc, C = _inputs(rng, n, d, k, dtype)
    fast_labels = np.empty(n, np.intp)
    fast_mins = np.empty(n, dtype)
    fast_second = np.empty(n, dtype)
    nearest_by_product(X, mean, m2c, cn, cc, fast_labels, fast_mins, fast_second)
    slow_labels = np.empty(n, np.intp)
    slow_mins = np.empty(n, dtype)
    slow_second = np.empty(n, dtype)
    euclidean._nearest_numpy(X, mean, m2c, cn, cc, slow_labels, slow_mins, slow_second)
    np.testing.assert_array_equal(fast_labels, slow_labels)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fast_mins, slow_mins, rtol=rtol)
    D = cdist(X.astype(np.float64), C.astype(np.float64), "sqeuclidean")
    np.testing.assert_allclose(fast_mins, D[np.arange(n), fast_labels], rtol=rtol, atol=1e-6)
    if k > 1:  # the runner-up, from the product: to rounding of the expanded formula
        runner_up = np.sort(D, axis=1)[:, 1]
        scale = rtol * 10 * (1 + np.abs(X).max() ** 2)
        np.testing.assert_allclose(fast_second, runner_up, atol=scale)
        np.testing.assert_allclose(slow_second, runner_up, atol=scale)
    # the search's exact costs are paired_sq_euclidean's (the costs computed on demand),
    # bit for bit
    paired = kernels.paired_sq_euclidean(X, mean, cc, fast_labels)
    np.testing.assert_array_equal(paired, fast_mins)
    # without the runner-up the compiled kernel takes its other loop: the same answer
    labels, mins = np.empty(n, np.intp), np.empty(n, dtype)
    nearest_by_product(X, mean, m2c, cn, cc, labels, mins, np.empty(0, dtype))
    np.testing.assert_array_equal(labels, fast_labels)
    np.testing.assert_array_equal(mins, fast_mins)
    twin_labels, twin_mins = np.empty(n, np.intp), np.empty(n, dtype)
    euclidean._nearest_numpy(X, mean, m2c, cn, cc, twin_labels, twin_mins, np.empty(0, dtype))
    np.testing.assert_array_equal(twin_labels, slow_labels)
    np.testing.assert_allclose(twin_mins, slow_mins, rtol=rtol)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("n", "d", "k"),
    [
        (700, 1, 5), (700, 2, 5), (257, 3, 7), (700, 12, 16), (1000, 17, 6), (2100, 64, 10),
        (1100, 40, 6), (1100, 40, 16), (2100, 64, 32),  # the last two: products by rows
    ],
)
@pytest.mark.parametrize("chunks", [2, 3, 5])
def test_parallel_nearest_is_bit_identical_to_the_serial_kernel(dtype, n, d, k, chunks):
    kernels._compile.parallel_ready()  # kmeansfw starts numba's layer (else it distrusts it)
    rng = np.random.default_rng(n + d + k)
    X, mean, m2c, cn, cc, _ = _inputs(rng, n, d, k, dtype)
    # each serial kernel and its parallel variant (the direct search's up to sixteen
    # features: past them no fit takes it, and it has no threaded kernel)
    for direct in (True, False) if d <= euclidean.DIRECT_WIDE_MAX_FEATURES else (False,):
        serial = nearest_direct if direct else nearest_by_product
        parallel = functools.partial(lloyd.threaded_search, direct)
        # the parallel variants prefetching (the serial ones do not)
        hint = (True,)
        _check_parallel_nearest(X, mean, m2c, cn, cc, serial, parallel, chunks, hint)


# the direct search at two features and at more, the row search, the product search
_SEARCH_SHAPES = [(5000, 2, 8), (5000, 8, 8), (5000, 20, 3), (4100, 64, 10)]


def _prepared_variants(m2c, cn, cc):
    # the prepared centroids as a caller might hold them: read-only, Fortran-ordered,
    # reversed, strided, of a wider dtype (the same values)
    wide = np.zeros((cc.shape[0], 2 * cc.shape[1]), cc.dtype)
    wide[:, ::2] = cc
    wider = np.float64 if cc.dtype == np.float32 else np.longdouble
    return [
        (_freeze(m2c.copy()), _freeze(cn.copy()), _freeze(cc.copy())),
        (np.asfortranarray(m2c), cn[::-1].copy()[::-1], wide[:, ::2]),
        tuple(a.astype(wider) for a in (m2c, cn, cc)),
    ]


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("n", "d", "k"), _SEARCH_SHAPES)
def test_search_takes_prepared_centroids_of_any_layout(dtype, n, d, k):
    # the searches take their prepared centroids as C-contiguous arrays of X's dtype
    # (given a strided centered_c or a Fortran-ordered minus_2c, numba compiled them for
    # that layout, and their costs and runner-ups differed in the last bits):
    # nearest_sq_euclidean, sq_euclidean_costs and nearest_groups_sq_euclidean hand them
    # over so, the same bits on one thread or two, the caller's arrays untouched
    kernels._compile.parallel_ready()
    rng = np.random.default_rng(n + d + k)
    X, mean, m2c, cn, cc, _ = _inputs(rng, n, d, k, dtype)
    assert kernels.direct_pays(d, k) == (d <= 8)  # one shape for each search
    expected = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc, n_threads=1, with_second=True)
    norms = kernels.centered_row_norms(X, mean)
    expected_costs = kernels.sq_euclidean_costs(X, mean, m2c, cn, norms)
    groups = np.arange(k) % 3
    expected_groups = kernels.nearest_groups_sq_euclidean(X, mean, m2c, cn, cc, groups, 3)
    for prepared in _prepared_variants(m2c, cn, cc):
        flags = [(a.flags.writeable, a.flags.c_contiguous, a.dtype) for a in prepared]
        before = [a.copy() for a in prepared]
        for threads in (1, 2):
            found = kernels.nearest_sq_euclidean(
                X, mean, *prepared, n_threads=threads, with_second=True
            )
            for got, want in zip(found, expected, strict=True):
                np.testing.assert_array_equal(got, want)
        # the cost blocks and the per-group search take them the same way
        costs = kernels.sq_euclidean_costs(X, mean, *prepared[:2], norms, n_threads=2)
        np.testing.assert_array_equal(costs, expected_costs)
        by_groups = kernels.nearest_groups_sq_euclidean(X, mean, *prepared, groups, 3)
        for got, want in zip(by_groups, expected_groups, strict=True):
            np.testing.assert_array_equal(got, want)
        assert [(a.flags.writeable, a.flags.c_contiguous, a.dtype) for a in prepared] == flags
        for a, b in zip(prepared, before, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_threaded_kernel_serves_the_iterations_and_the_searches(monkeypatch, dtype):
    # the threaded Lloyd iterations and the threaded single searches (with and without
    # costs, runner-ups and the mean's sums, whatever the prepared centroids' layout) run
    # one compiled kernel per search and dtype: every call's argument types the same
    from numba import typeof

    if not kernels._compile.parallel_ready():
        pytest.skip("numba has no thread-safe threading layer here")
    seen: dict[str, set] = {}

    uses = set()

    def recording(kernel, name):
        def record(*args):
            seen.setdefault(name, set()).add(tuple(typeof(a) for a in args))
            uses.add((name, "search" if args[7] == 0 else "iterations"))  # args[7]: steps
            return kernel(*args)

        return record

    names = ("_pair_threaded", "_direct_threaded", "_rows_threaded", "_product_threaded")
    if dtype == np.float64:  # eight centroids of 200 features: screened, else the rows
        names += ("_screened_rows_threaded",)
    for name in names:
        monkeypatch.setattr(lloyd, name, recording(getattr(lloyd, name), name))
    rng = np.random.default_rng(3)
    for n, d, k in _SEARCH_SHAPES + [(2000, 200, 8)] * (dtype == np.float64):
        X, mean, m2c, cn, cc, C = _inputs(rng, n, d, k, dtype)
        weights = np.ones(n, dtype)
        for prepared in [(m2c, cn, cc), *_prepared_variants(m2c, cn, cc)]:
            kernels.nearest_sq_euclidean(X, mean, *prepared, n_threads=2)
            kernels.nearest_sq_euclidean(X, mean, *prepared, n_threads=2, with_costs=False)
            kernels.nearest_sq_euclidean(X, mean, *prepared, n_threads=2, with_second=True)
            sums = (weights, np.zeros((k, d)), np.zeros(k))
            kernels.nearest_sq_euclidean(X, mean, *prepared, n_threads=2, sums=sums)
        made = lloyd.lloyd_iterations(X, mean, weights, C, None, 0.0, 3, 2, False)
        again = lloyd.lloyd_iterations(X, mean, weights, C, made.labels, 0.0, 3, 2, False)
        assert made.done >= 1 and again.done >= 1
    assert uses == {(name, use) for name in names for use in ("search", "iterations")}
    for name, kinds in seen.items():
        assert len(kinds) == 1, (name, kinds)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        lloyd.lloyd_iterations(X, mean, weights, C, None, 0.0, 0, 2, False)


def _check_parallel_nearest(X, mean, m2c, cn, cc, serial, parallel, chunks, hint=()):
    n, dtype = X.shape[0], X.dtype
    for want_second in (False, True):
        out = [np.empty(n, np.intp), np.empty(n, dtype), np.empty(n if want_second else 0, dtype)]
        serial(X, mean, m2c, cn, cc, *out)
        par = [np.full(n, -1, np.intp), np.full(n, np.nan, dtype)]
        par.append(np.full(len(out[2]), np.nan, dtype))
        parallel(X, mean, m2c, cn, cc, *par, *euclidean._no_sums(dtype), *hint, chunks)
        for serial_part, parallel_part in zip(out, par, strict=True):
            np.testing.assert_array_equal(parallel_part, serial_part)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("n", "d", "k"),
    [
        (1, 3, 1), (700, 2, 5), (900, 1, 4), (5000, 8, 8), (4100, 64, 10), (1100, 40, 6),
        (9000, 12, 3), (3000, 2, 150),  # the product kernel at two features (k > 128)
        (1100, 40, 16), (4100, 64, 32),  # products by rows
        (1100, 24, 5), (600, 200, 3), (1300, 256, 8),  # the row search (256, 8: float64)
        # the direct searches' sums in vector registers (lanes.add_rows_in_lanes), both
        # kinds of layout: weights in the clusters' lanes, or in registers of their own
        (700, 2, 3), (600, 2, 2), (1500, 3, 2), (1400, 3, 3), (1300, 4, 3), (1100, 5, 3),
        (900, 6, 2), (800, 7, 2), (3000, 8, 3), (1200, 8, 2),
    ],
)
def test_sums_in_the_search_are_the_groups_sums_whatever_the_runs(dtype, n, d, k):
    """The mean's sums added by the search kernels: each group of sum_group_rows rows
    summed row by row in order, the groups' totals added in order; the same bits from the
    serial kernel, from the parallel variant at any number of runs, through
    nearest_sq_euclidean at any number of threads and from the mean's own
    add_weighted_cluster_sums, with the labels and costs of the search without sums."""
    kernels._compile.parallel_ready()
    rng = np.random.default_rng(n + d + k)
    X, *_, C = _inputs(rng, n, d, k, dtype)
    X = np.ascontiguousarray(X * 3 + 1000).astype(dtype)  # far from the origin,
    C = (C * 3 + 1000).astype(dtype)  # the centroids among the rows
    mean = X.mean(axis=0)
    cc = (C - mean).astype(dtype)
    m2c, cn = np.ascontiguousarray(cc * -2), np.einsum("ij,ij->i", cc, cc)
    w = rng.random(n).astype(dtype)
    start = rng.normal(size=(k, d)), rng.random(k)  # a task's running totals
    labels, mins = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc)
    assert np.unique(labels).size >= min(k, 3, n)  # rows of several clusters interleaved
    group_rows = update.sum_group_rows(n, k)
    assert group_rows % euclidean.SUB_BLOCK_ROWS == 0
    assert -(-n // group_rows) <= update.SUM_GROUPS
    expected = start[0].copy(), start[1].copy()
    for a in range(0, n, group_rows):
        part = np.zeros((k, d)), np.zeros(k)
        rows = slice(a, a + group_rows)
        kernels.add_weighted_cluster_sums(X[rows], labels[rows], w[rows], *part)
        expected[0][...] += part[0]
        expected[1][...] += part[1]
    for threads, prefetch in ((1, False), (2, False), (3, False), (1, True), (2, True)):
        totals = start[0].copy(), start[1].copy()
        found, found_mins = kernels.nearest_sq_euclidean(
            X, mean, m2c, cn, cc, n_threads=threads, sums=(w, *totals), prefetch=prefetch
        )
        np.testing.assert_array_equal(found, labels)
        np.testing.assert_array_equal(found_mins, mins)
        np.testing.assert_array_equal(totals[0], expected[0])
        np.testing.assert_array_equal(totals[1], expected[1])
    n_groups = -(-n // group_rows)
    direct = kernels.direct_pays(d, k)
    parallel = functools.partial(lloyd.threaded_search, direct)
    hint = (True,)  # the searches prefetching where they do
    for chunks in (2, 3, 7):
        groups = np.zeros((n_groups, k, d)), np.zeros((n_groups, k))
        out = [np.full(n, -1, np.intp), np.empty(n, dtype), np.empty(0, dtype)]
        parallel(X, mean, m2c, cn, cc, *out, w, group_rows, *groups, *hint, chunks)
        np.testing.assert_array_equal(out[0], labels)
        totals = start[0].copy(), start[1].copy()
        euclidean._add_groups(*groups, *totals)
        np.testing.assert_array_equal(totals[0], expected[0])
        np.testing.assert_array_equal(totals[1], expected[1])
    # and those are the mean's own sums of the block, bit for bit, on one thread or more
    for threads in (1, 2):
        plain = start[0].copy(), start[1].copy()
        kernels.add_weighted_cluster_sums(X, labels, w, *plain, n_threads=threads)
        np.testing.assert_array_equal(plain[0], expected[0])
        np.testing.assert_array_equal(plain[1], expected[1])


_FIRST_COMPILE = """
import numpy as np
from kmeansfw import kernels
from kmeansfw.kernels import euclidean as E

rng = np.random.default_rng(1)
# the direct kernel compiles the sums first; many rows at one and two features, where a
# fused multiply-add would differ somewhere
for n, d, k in ((3000, 8, 8), (1100, 40, 6), (50000, 2, 5), (50000, 1, 4)):
    X = rng.normal(size=(n, d)) * 3 + 1000
    w = rng.random(n)
    C = X[:k]
    mean = X.mean(0)
    cc = C - mean
    m2c, cn = np.ascontiguousarray(-2 * cc), (cc**2).sum(1)
    labels, _ = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc)
    sums, weights = np.zeros((k, d)), np.zeros(k)
    kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc, sums=(w, sums, weights))
    expected = np.zeros((k, d))
    rows = kernels.update.sum_group_rows(n, k)
    for a in range(0, n, rows):
        part = np.zeros((k, d))
        for i in range(a, min(a + rows, n)):
            part[labels[i]] += w[i] * X[i]
        expected += part
    assert (sums == expected).all(), (n, d, k)
print("ok")
"""


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
def test_sums_in_the_search_do_not_depend_on_which_search_compiled_them_first(tmp_path):
    """numba compiles a callee with its first caller's fastmath flags unless the callee
    sets its own: the direct search (``contract``) must not turn the sums' multiply-adds
    into fused ones for every later caller.  A fresh process and compile cache."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_COMPILE], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize(
    ("d", "itemsize", "rows", "pays"),
    [(31, 8, 256, False), (32, 8, 256, True), (128, 8, 64, True), (129, 8, 256, False),
     (63, 4, 256, False), (64, 4, 128, True), (256, 4, 256, True), (257, 4, 256, False),
     (128, 4, 32, False), (2, 8, 256, False)],
)
def test_the_search_prefetches_rows_of_a_quarter_to_one_kilobyte(d, itemsize, rows, pays):
    assert euclidean.prefetch_pays(d, itemsize, rows) is pays
    assert euclidean.PREFETCH_MIN_ROW_BYTES == 256
    assert euclidean.PREFETCH_MAX_ROW_BYTES == 1024
    assert euclidean.PREFETCH_MIN_PRODUCT_ROWS == 64


@pytest.mark.parametrize(
    ("d", "itemsize", "pays"),
    [(8, 8, True), (16, 8, True), (7, 8, False), (2, 8, False), (16, 4, True), (15, 4, False),
     (8, 4, False)],
)
def test_the_direct_search_prefetches_rows_of_64_bytes_or_more(d, itemsize, pays):
    assert euclidean.direct_prefetch_pays(d, itemsize) is pays
    assert euclidean.DIRECT_PREFETCH_MIN_ROW_BYTES == 64


def test_the_search_prefetches_for_data_of_16_mib_or_more():
    assert not kernels.prefetch_data((16 << 20) - 1)
    assert kernels.prefetch_data(16 << 20)
    assert not kernels.prefetch_data(0)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
def test_the_row_prefetch_compiles_to_llvm_prefetches_within_the_array():
    """The hint is emitted (a fresh compile: numba does not show cached code); under
    numba's bounds checking a line past the array fails, and the row prefetch asks for
    none past X's last row."""
    import numba

    from kmeansfw.kernels.prefetch import prefetch_line

    @numba.njit(boundscheck=True)
    def ask(X, row):
        euclidean._prefetch_row(X, row)

    @numba.njit(boundscheck=True)
    def line(X, i, j):
        prefetch_line(X, i, j)

    X = np.zeros((3, 40))
    for row in (0, 2, 3, 10):  # the last two: past X, nothing asked
        ask(X, row)
    assert "llvm.prefetch" in "".join(ask.inspect_llvm().values())
    line(X, 2, 39)
    with pytest.raises(IndexError):
        line(X, 3, 0)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize(
    ("n", "d", "k", "dtype"),
    [(1500, 64, 3, np.float64), (1500, 128, 12, np.float64), (1500, 128, 3, np.float32),
     (1300, 256, 12, np.float32), (1500, 128, 32, np.float32), (1500, 64, 48, np.float64),
     (1300, 256, 3, np.float32), (1500, 192, 2, np.float32),  # these two: row search
     (1500, 64, 8, np.float32), (1500, 32, 5, np.float64)],  # quarter-kilobyte rows
)
def test_the_search_gives_the_same_results_prefetching_or_not(n, d, k, dtype):
    """Labels, costs, runner-ups and the mean's sums: the same bits with the hint, on
    one thread or two, with the rows far from the origin or on it (shapes that take
    the prefetching path, several products each, two of them the row search's)."""
    itemsize = np.dtype(dtype).itemsize
    rows, _ = euclidean.search_rows(d, k, itemsize)
    assert euclidean.prefetch_pays(d, itemsize, rows) and n > 2 * rows
    _check_the_same_prefetching_or_not(n, d, k, dtype, iterations=False)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize(
    ("n", "d", "k", "dtype"),
    [(1503, 8, 3, np.float64), (1027, 12, 5, np.float64), (1503, 16, 16, np.float64),
     (1503, 16, 8, np.float32), (1027, 8, 64, np.float64), (1503, 4, 3, np.float64)],
)
def test_the_direct_search_gives_the_same_results_prefetching_or_not(n, d, k, dtype):
    """The direct search's prefetching (the last shape's rows too short for it): labels,
    costs, runner-ups and the mean's sums the same bits with the hint or without, on one
    thread or two, on the origin or off it, the last sub-block short and not of whole
    fours of rows; and the compiled Lloyd iterations' likewise."""
    itemsize = np.dtype(dtype).itemsize
    assert euclidean.direct_pays(d, k)
    assert euclidean.direct_prefetch_pays(d, itemsize) is (d * itemsize >= 64)
    _check_the_same_prefetching_or_not(n, d, k, dtype, iterations=True)


def _check_the_same_prefetching_or_not(n, d, k, dtype, iterations):
    # the searches (and, with ``iterations``, three compiled Lloyd iterations) with the
    # prefetch hint and without, on one thread and two: every output the same bits
    from kmeansfw.kernels import lloyd

    kernels._compile.parallel_ready()
    rng = np.random.default_rng(n + d + k)
    for shift in (0.0, 50.0):
        X, mean, m2c, cn, cc, _ = _inputs(rng, n, d, k, dtype)
        X = (X + shift).astype(dtype)
        mean = np.zeros(d, dtype) if shift == 0 else X.mean(axis=0)
        w = rng.random(n).astype(dtype)
        found = []
        for prefetch in (False, True):
            for threads in (1, 2):
                totals = np.zeros((k, d)), np.zeros(k)
                costs = kernels.nearest_sq_euclidean(
                    X, mean, m2c, cn, cc, with_second=True, n_threads=threads,
                    prefetch=prefetch,
                )
                summed = kernels.nearest_sq_euclidean(
                    X, mean, m2c, cn, cc, with_costs=False, n_threads=threads,
                    sums=(w, *totals), prefetch=prefetch,
                )
                outputs = (*costs, summed[0], *totals)
                if iterations:
                    made = lloyd.lloyd_iterations(
                        X, mean, w, X[:k].copy(), None, 0.0, 3, threads, prefetch
                    )
                    outputs = (*outputs, made.labels, made.centroids, made.sums)
                found.append(outputs)
        for other in found[1:]:
            for a, b in zip(found[0], other, strict=True):
                np.testing.assert_array_equal(b, a)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [40, 64, 128])
def test_prefetching_loops_compute_what_the_plain_loops_do(dtype, d):
    """The product search's loops that prefetch the next product's rows (the mean's sums,
    the exact costs with the runner-up) give the plain loops' values bit for bit, at
    every start, with the prefetched rows running past X's end or not."""
    rng = np.random.default_rng(d)
    n, k = 700, 9
    X, mean, _, _, cc, _ = _inputs(rng, n, d, k, dtype)
    w = rng.random(n).astype(dtype)
    for start, m in ((0, 256), (256, 256), (512, 188), (600, 100)):
        arg = rng.integers(0, k, m).astype(np.int32)
        runner_up = rng.random(m).astype(dtype)
        plain = np.full((k, d), 0.5), np.full(k, 0.5)  # a group's totals so far
        ahead = np.full((k, d), 0.5), np.full(k, 0.5)
        euclidean._add_rows_of(X, w, start, m, arg, *plain, d)
        euclidean._add_rows_ahead(X, w, start, m, arg, *ahead, start + m)
        np.testing.assert_array_equal(ahead[0], plain[0])
        np.testing.assert_array_equal(ahead[1], plain[1])
        outs = []
        for row in (n, start + m):  # no prefetch, then the next rows'
            out = np.full(n, -1, np.intp), np.full(n, np.nan, dtype), np.full(n, np.nan, dtype)
            euclidean._exact_rows(X, mean, cc, start, m, arg, runner_up, *out, row)
            outs.append(out)
        for without, with_prefetch in zip(*outs, strict=True):
            np.testing.assert_array_equal(with_prefetch, without)
        assert (outs[1][0][start : start + m] == arg).all()
        assert np.isfinite(outs[1][1][start : start + m]).all()


def test_sums_in_the_search_without_numba_are_the_same_groups(monkeypatch):
    """The NumPy twin adds the same groups (each by the mean's NumPy twin) in order."""
    rng = np.random.default_rng(3)
    X, mean, m2c, cn, cc, _ = _inputs(rng, 3000, 5, 4, np.float64)
    w = rng.random(3000)
    labels, _ = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc)
    monkeypatch.setattr(euclidean, "HAVE_NUMBA", False)
    monkeypatch.setattr(update, "HAVE_NUMBA", False)
    totals = np.zeros((4, 5)), np.zeros(4)
    found, _ = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc, sums=(w, *totals))
    np.testing.assert_array_equal(found, labels)
    group_rows = update.sum_group_rows(3000, 4)
    expected = np.zeros((4, 5)), np.zeros(4)
    for a in range(0, 3000, group_rows):
        part = np.zeros((4, 5)), np.zeros(4)
        rows = slice(a, a + group_rows)
        update._accumulate_numpy(X[rows], labels[rows], w[rows], *part, group_rows)
        expected[0][...] += part[0]
        expected[1][...] += part[1]
    np.testing.assert_array_equal(totals[0], expected[0])
    np.testing.assert_array_equal(totals[1], expected[1])


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("n", "d", "k", "chunks"),
    [(1, 16, 1, 2), (700, 33, 5, 3), (2000, 64, 10, 2), (2, 2, 2, 5), (777, 321, 5, 20)],
)  # one row, ragged runs, more runs than columns (empty runs)
def test_parallel_sums_are_bit_identical_to_the_serial_kernel(dtype, n, d, k, chunks, monkeypatch):
    kernels._compile.parallel_ready()  # kmeansfw starts numba's layer
    rng = np.random.default_rng(n + d)
    X = _freeze((rng.normal(size=(n, d)) * 5 + 100).astype(dtype))
    labels = rng.integers(0, k, n).astype(np.intp)
    w = _freeze(rng.random(n).astype(dtype))
    sums, weights = rng.normal(size=(k, d)), rng.random(k)  # a task's running partial
    serial = sums.copy(), weights.copy()
    rows = update.sum_group_rows(n, k)
    update._accumulate_numba(X, labels, w, *serial, rows)
    update._accumulate_parallel(X, labels, w, sums, weights, rows, chunks)
    np.testing.assert_array_equal(sums, serial[0])
    np.testing.assert_array_equal(weights, serial[1])
    from kmeansfw.kernels import _compile

    monkeypatch.setattr(_compile, "_probed", (_compile.os.getpid(), True))
    assert update.accumulate_chunks(2000, 64, 2) == 2
    assert update.accumulate_chunks(2000, 64, 9) == 4  # 16 columns per run at least
    assert update.accumulate_chunks(2000, 17, 2) == 1  # too few columns per thread
    assert update.accumulate_chunks(100, 64, 2) == 1  # too little work
    monkeypatch.setattr(_compile, "_probed", (_compile.os.getpid(), False))
    assert update.accumulate_chunks(2000, 64, 2) == 1


def test_products_by_rows_follow_the_centroids_shape():
    # 16 to 64 centroids from 32 features, at most 8 features per centroid, centroids of
    # at most BY_ROWS_MAX_VALUES values; the most rows (down to a quarter sub-block) whose
    # values fit in BY_ROWS_MAX_BYTES
    def by_rows(d, k, itemsize=8):
        return euclidean.by_rows_product(d, k, itemsize=itemsize)

    assert [by_rows(64, k, 4) for k in (3, 8, 15, 16, 32, 64, 65, 256)] == [
        0, 0, 0, 128, 128, 128, 0, 0
    ]
    assert by_rows(31, 32) == by_rows(16, 64, 4) == 0  # too few features
    assert by_rows(256, 48) == 64 and by_rows(256, 49) == 0  # 12288 values at most
    assert by_rows(128, 16) == 64 and by_rows(256, 31) == 0 and by_rows(256, 32) == 64
    assert [by_rows(32, 16, 4), by_rows(32, 16), by_rows(64, 16), by_rows(96, 16)] == [
        256, 128, 64, 64
    ]
    for d in (32, 40, 64, 96, 128, 256, 320, 768):
        for k in range(1, 80):
            r = by_rows(d, k, 4)
            assert r == 0 or (euclidean.SUB_BLOCK_ROWS % r == 0 and r >= 64)
            assert r == 0 or r == 64 or r * d * 4 <= euclidean.BY_ROWS_MAX_BYTES
            assert r == 0 or (16 <= k <= 64 and 32 <= d <= 8 * k and k * d <= 12288)
            # the search's rows: by rows where this says so, else product_rows'
            assert euclidean.search_rows(d, k, 4) == (
                (r, True) if r else (euclidean.product_rows(d, k, 32, 4), False)
            )
    if kernels.HAVE_NUMBA:  # the compiled kernels' copies of the rules
        shapes = [(d, k) for d in (16, 32, 64, 256) for k in (12, 16, 48, 64)]
        for itemsize in (4, 8):
            assert all(
                euclidean._search_rows(d, k, itemsize) == euclidean.search_rows(d, k, itemsize)
                for d, k in shapes
            )


def test_product_rows_follow_the_centroids_shape():
    # 128 rows at 5-9 centroids from 32 features, 64 rows at 10-18 from 64 features:
    # products of at most PRODUCT_SMALL_OUTPUTS outputs; SUB_BLOCK_ROWS otherwise
    rows = euclidean.product_rows
    assert [rows(64, k) for k in (1, 3, 4, 5, 9, 10, 18, 19, 64)] == [
        256, 256, 256, 128, 128, 64, 64, 256, 256
    ]
    assert rows(31, 8) == rows(63, 12) == rows(1000, 8) == 256  # too narrow, too much work
    assert rows(32, 8) == rows(868, 9) == 128 and rows(64, 12) == 64
    for d in (1, 16, 32, 48, 64, 128, 256, 1000):
        for k in range(1, 40):
            r = rows(d, k)
            assert euclidean.SUB_BLOCK_ROWS % r == 0  # parallel runs are whole products
            assert r == euclidean.SUB_BLOCK_ROWS or r * k <= euclidean.PRODUCT_SMALL_OUTPUTS
    # float32 from 96 features: 32 rows at 19 to 37 centroids; float64 keeps 256 there
    assert [rows(96, k, itemsize=4) for k in (18, 19, 37, 38)] == [64, 32, 32, 256]
    assert rows(95, 24, itemsize=4) == rows(96, 24) == rows(96, 24, 64, 4) == 256
    assert rows(128, 9, itemsize=4) == 128 and rows(1000, 36, itemsize=4) == 256  # work
    for k in range(1, 40):
        r = rows(256, k, itemsize=4)
        assert r == euclidean.SUB_BLOCK_ROWS or r * k <= euclidean.PRODUCT_SMALL_OUTPUTS
    # the cost kernels' products, (rows, k), stop at a half sub-block (at 10-18 centroids
    # 64-row products of that orientation were as often slower as faster)
    shortest = euclidean.COST_SHORTEST_PRODUCT
    assert [rows(64, k, shortest) for k in (4, 5, 9, 10, 18)] == [256, 128, 128, 256, 256]
    assert rows(31, 6, shortest) == 256 and rows(32, 6, shortest) == 128
    if kernels.HAVE_NUMBA:  # the compiled kernels' copy of the rule
        shapes = [(d, k) for d in (8, 40, 64, 128) for k in (3, 6, 12, 24)]
        assert all(euclidean._product_rows(d, k) == rows(d, k) for d, k in shapes)
        assert all(
            euclidean._product_rows(d, k, 32, 4) == rows(d, k, 32, 4) for d, k in shapes
        )
        assert all(
            euclidean._product_rows(d, k, shortest) == rows(d, k, shortest) for d, k in shapes
        )


def test_kernel_chunks_follow_the_work_and_the_guard(monkeypatch):
    from kmeansfw.kernels import _compile

    monkeypatch.setattr(_compile, "_probed", (_compile.os.getpid(), True))
    assert euclidean.kernel_chunks(2000, 64, 10, 2) == 2
    assert euclidean.kernel_chunks(2000, 64, 10, 1) == 1
    assert euclidean.kernel_chunks(2000, 64, 10, 99) == 8  # one run per sub-block at most
    assert euclidean.kernel_chunks(300, 2, 3, 2) == 1  # too little work to wake threads
    assert euclidean.kernel_chunks(2000, 64, 32, 2) == 2  # any product: BLAS is held
    assert euclidean.kernel_chunks(20000, 2, 128, 2) == 2
    # a process forked from one that ran them, or the switch: serial
    monkeypatch.setattr(_compile, "_probed", (_compile.os.getpid() + 1, True))
    assert not _compile.parallel_ready()
    assert euclidean.kernel_chunks(2000, 64, 10, 2) == 1
    monkeypatch.setattr(_compile, "_probed", None)
    monkeypatch.setenv("KMEANSFW_PARALLEL_KERNELS", "0")
    assert not _compile.parallel_ready()
    assert _compile._probed == (_compile.os.getpid(), False)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
def test_launch_holds_blas_and_bounds_numbas_team():
    import numba
    from threadpoolctl import threadpool_info, threadpool_limits

    from kmeansfw.kernels import _compile

    kernels._compile.parallel_ready()
    seen = []

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    def kernel(out, n_chunks):
        seen.append((numba.get_num_threads(), blas()))

    def failing(out, n_chunks):
        raise RuntimeError("boom")

    with threadpool_limits(2, user_api="blas"):
        before = numba.get_num_threads()
        _compile.launch(kernel, None, 1)  # a team of one: below the caller's setting
        _compile.launch(kernel, None, before + 5)  # never above the caller's setting
        assert [team for team, _ in seen] == [1, before]
        assert all(threads == [1] * len(threads) for _, threads in seen)  # BLAS held
        assert numba.get_num_threads() == before and all(t == 2 for t in blas())  # restored
        with pytest.raises(RuntimeError, match="boom"):
            _compile.launch(failing, None, 1)
        assert numba.get_num_threads() == before and all(t == 2 for t in blas())


def test_a_forked_child_gets_a_fresh_guard(monkeypatch):
    # os.register_at_fork runs this in every forked child: a new probe lock, and numba's
    # threads only if the parent started a fork-safe layer (tbb)
    from kmeansfw.kernels import _compile

    if not kernels.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    lock = _compile._probe_lock
    for layer, ready in (("omp", False), ("tbb", True)):
        monkeypatch.setattr(_compile, "_probed", (12345, True))
        monkeypatch.setattr(_compile.numba, "threading_layer", lambda layer=layer: layer)
        _compile._after_fork_in_child()
        assert _compile._probed == (_compile.os.getpid(), ready)
        assert _compile._probe_lock is not lock
    monkeypatch.setattr(_compile, "_probed", None)  # the parent never probed: the child will
    _compile._after_fork_in_child()
    assert _compile._probed is None
    monkeypatch.setattr(_compile, "_probe_lock", lock)


def test_parallel_ready_refuses_an_unsafe_threading_layer(monkeypatch):
    from kmeansfw.kernels import _compile

    if not kernels.HAVE_NUMBA:
        assert not _compile.parallel_ready()
        return
    monkeypatch.setattr(_compile, "_probed", None)
    monkeypatch.setattr(_compile, "_layer_started", lambda: False)
    monkeypatch.setattr(_compile.numba, "threading_layer", lambda: "workqueue")
    assert not _compile.parallel_ready()
    # a layer other code started: only tbb (which survives a fork) is trusted
    for layer, ready in (("omp", False), ("tbb", True), ("workqueue", False)):
        monkeypatch.setattr(_compile, "_probed", None)
        monkeypatch.setattr(_compile, "_layer_started", lambda: True)
        monkeypatch.setattr(_compile.numba, "threading_layer", lambda layer=layer: layer)
        assert _compile.parallel_ready() is ready
    monkeypatch.setattr(_compile, "_layer_started", lambda: False)

    def no_layer(out):
        raise ValueError("No threading layer could be loaded.")

    monkeypatch.setattr(_compile, "_probed", None)
    monkeypatch.setattr(_compile, "_probe_kernel", no_layer)
    assert not _compile.parallel_ready()


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1), (8, 4), (300, 65)])
def test_numba_and_numpy_centroid_preparation_agree(dtype, shape):
    rng = np.random.default_rng(shape[0])
    C = rng.normal(size=shape).astype(dtype) * 5
    mean = rng.normal(size=shape[1]).astype(dtype)
    fast = [np.empty(shape, dtype), np.empty(shape, dtype)]
    fast += [np.empty(shape[0], dtype), np.empty(shape[0], dtype)]
    slow = [np.empty(shape, dtype), np.empty(shape, dtype)]
    slow += [np.empty(shape[0], dtype), np.empty(shape[0], dtype)]
    euclidean._prepare_centroids_numba(C, mean, *fast)
    euclidean._prepare_centroids_numpy(C, mean, *slow)
    np.testing.assert_array_equal(fast[0], C - mean)
    np.testing.assert_array_equal(fast[1], -2 * (C - mean))
    np.testing.assert_array_equal(slow[0], fast[0])
    np.testing.assert_array_equal(slow[1], fast[1])
    rtol = 1e-5 if dtype == np.float32 else 1e-12  # the sums' order may differ
    np.testing.assert_allclose(fast[2], slow[2], rtol=rtol)
    shift = np.einsum("ij,ij->i", C - mean, C - mean) + 2 * (C - mean) @ mean
    np.testing.assert_allclose(fast[3], shift, rtol=rtol, atol=rtol * np.abs(shift).max())
    np.testing.assert_allclose(slow[3], shift, rtol=rtol, atol=rtol * np.abs(shift).max())
    result = kernels.prepare_euclidean_centroids(C, mean, np.dtype(dtype))
    assert all(a.flags.c_contiguous and a.dtype == dtype for a in result)


@pytest.mark.parametrize(
    "values",
    [
        np.array([3.0, -1.5, 2.0]),
        np.array([[1.0, np.nan], [0.0, 2.0]]),
        np.array([np.inf, 0.5], dtype=np.float32),
        np.array([-np.inf]),
        np.empty(0),
        np.zeros((0, 3), dtype=np.float32),
    ],
)
def test_finite_min_agrees_with_numpy(values):
    finite, low = kernels.finite_min(values)
    assert finite == bool(np.isfinite(values).all())
    if finite and values.size:
        assert low == values.min()
    twin = checks._finite_min_numpy(values.reshape(-1))
    assert twin[0] == finite
    if finite:
        assert twin[1] == low


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 150])
def test_finite_min_finds_a_bad_value_at_every_position(dtype, size):
    """The compiled check keeps four running sums and minima: every lane and the tail."""
    values = np.random.default_rng(size).normal(size=size).astype(dtype)
    assert kernels.finite_min(values) == (True, values.min())
    for pos in range(size):
        for bad in (np.nan, np.inf, -np.inf):
            broken = values.copy()
            broken[pos] = bad
            assert kernels.finite_min(broken)[0] is False, (pos, bad)
        lowest = values.copy()
        lowest[pos] = -100
        assert kernels.finite_min(lowest) == (True, -100.0)


@pytest.mark.parametrize("dtype", [np.intp, np.int32, np.uint8])
def test_int_range_agrees_with_numpy(dtype):
    values = np.array([5, 0, 9, 3], dtype=dtype)
    assert kernels.int_range(values) == (0, 9)
    assert checks._int_range_numpy(values) == (0, 9)
    assert kernels.int_range(np.empty(0, dtype=dtype)) == (0, 0)
    assert checks._int_range_numpy(np.empty(0, dtype=dtype)) == (0, 0)
    rng = np.random.default_rng(7)
    for size in (1, 2, 5, 300):
        values = rng.integers(0, 200, size=size).astype(dtype)
        expected = (int(values.min()), int(values.max()))
        assert kernels.int_range(values) == expected
        assert checks._int_range_numpy(values) == expected


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_and_numpy_sums_agree(dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 9)).astype(dtype)
    labels = rng.integers(0, 13, size=2000)
    w = rng.uniform(0, 2, size=2000).astype(dtype)
    fast = (np.zeros((13, 9)), np.zeros(13))
    slow = (np.zeros((13, 9)), np.zeros(13))
    rows = update.sum_group_rows(2000, 13)
    update._accumulate_numba(X, labels, w, *fast, rows)
    update._accumulate_numpy(X, labels, w, *slow, rows)
    rtol = 1e-5 if dtype == np.float32 else 1e-10  # NumPy's float32 product rounds per row
    np.testing.assert_allclose(fast[0], slow[0], rtol=rtol, atol=rtol * np.abs(slow[0]).max())
    np.testing.assert_allclose(fast[1], slow[1], rtol=rtol)


def test_ties_go_to_the_lowest_index():
    X = np.array([[0.0, 0.0], [2.0, 0.0]])
    C = np.array([[1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])  # all equidistant from both rows
    mean = X.mean(axis=0)
    cc = C - mean
    labels, mins = kernels.nearest_sq_euclidean(
        X, mean, np.ascontiguousarray(-2 * cc), np.einsum("ij,ij->i", cc, cc), cc
    )
    np.testing.assert_array_equal(labels, [0, 0])
    np.testing.assert_allclose(mins, [2.0, 2.0])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 600), d=st.integers(1, 8), k=st.integers(1, 20), seed=st.integers(0, 10**6))
def test_nearest_is_brute_force_argmin(n, d, k, seed):
    rng = np.random.default_rng(seed)
    k = min(k, n)
    X, mean, m2c, cn, cc, C = _inputs(rng, n, d, k, np.float64)
    labels, mins = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc)
    D = cdist(X, C, "sqeuclidean")
    np.testing.assert_allclose(D[np.arange(n), labels], D.min(axis=1), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mins, D.min(axis=1), rtol=1e-9, atol=1e-9)


def test_fallback_gives_the_same_fit(tmp_path):
    """A whole fit with KMEANSFW_NUMBA=0 (NumPy kernels) equals the compiled one."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, kmeansfw; from sklearn.datasets import make_blobs;"
        "X = make_blobs(5000, n_features=6, centers=7, random_state=0)[0];"
        "km = kmeansfw.KMeans(7, random_state=0).fit(X);"
        "print(kmeansfw.kernels.HAVE_NUMBA);"
        f"np.save({str(tmp_path)!r} + '/' + str(kmeansfw.kernels.HAVE_NUMBA), km.labels_)"
    )
    env = {**os.environ, "KMEANSFW_NUMBA": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    saved = sorted(tmp_path.glob("*.npy"))
    assert len(saved) == 2 - (not kernels.HAVE_NUMBA)
    labels = [np.load(p) for p in saved]
    np.testing.assert_array_equal(labels[0], labels[-1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 300, 700])  # one row, one sub-block, ragged sub-blocks
@pytest.mark.parametrize(("d", "k"), [(7, 5), (40, 6)])  # products of 256 and 128 rows
def test_squared_cost_kernel_is_bit_identical_to_its_numpy_twin(dtype, n, d, k):
    rng = np.random.default_rng(1)
    rows = euclidean.product_rows(d, k, euclidean.COST_SHORTEST_PRODUCT)
    assert rows == (euclidean.SUB_BLOCK_ROWS if d < 32 else euclidean.SUB_BLOCK_ROWS // 2)
    X = (rng.normal(size=(n, d)) + 50).astype(dtype)
    mean = np.full(d, 50, dtype=dtype)
    minus_2c = rng.normal(size=(k, d)).astype(dtype)
    c_norms = (rng.random(k) * 3).astype(dtype)
    norms = (rng.random(n) * 10).astype(dtype)
    fast = kernels.sq_euclidean_costs(X, mean, minus_2c, c_norms, norms)
    slow = np.empty_like(fast)
    euclidean._sq_cost_numpy(X, mean, minus_2c, c_norms, norms, slow)
    np.testing.assert_array_equal(fast, slow)
    assert fast.min() >= 0
    if kernels.HAVE_NUMBA:  # numba's threads, in runs of whole sub-blocks: the same bits
        kernels._compile.parallel_ready()  # kmeansfw starts numba's layer
        for chunks in (2, 3):
            parallel = np.full_like(fast, np.nan)
            euclidean._sq_cost_parallel(X, mean, minus_2c, c_norms, norms, parallel, chunks)
            np.testing.assert_array_equal(parallel, fast)


def test_squared_costs_equal_scipy():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 6)) * 3 + 5
    C = rng.normal(size=(9, 6)) * 3 + 5
    mean = X.mean(axis=0)
    centered = C - mean
    c_norms = np.einsum("ij,ij->i", centered, centered)
    norms = np.einsum("ij,ij->i", X - mean, X - mean)
    costs = kernels.sq_euclidean_costs(X, mean, -2 * centered, c_norms, norms)
    np.testing.assert_allclose(costs, cdist(X, C, "sqeuclidean"), rtol=1e-10)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kmeans_plus_plus_fold_is_bit_identical_to_its_numpy_twin(dtype):
    rng = np.random.default_rng(5)
    cost = (rng.random((500, 4)) * 10).astype(dtype)
    closest = (rng.random(500) * 8).astype(dtype)
    sw = rng.uniform(0.5, 2, 500).astype(dtype)
    outs = []
    for kernel in (seeding._fold_candidates_numba, seeding._fold_candidates_numpy):
        lowered, new, cumulative = cost.copy(), np.empty(500, dtype), np.empty(500)
        best, potential = kernel(lowered, closest, sw, new, cumulative)
        outs.append((int(best), float(potential), lowered, new, cumulative))
    (b1, p1, l1, n1, c1), (b2, p2, l2, n2, c2) = outs
    assert b1 == b2 and p1 == p2
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_array_equal(c1, c2)
    lowered = np.minimum(cost, closest[:, None])
    potentials = sw.astype(np.float64) @ lowered.astype(np.float64)
    assert b1 == int(np.argmin(potentials))
    np.testing.assert_allclose(p1, potentials.min(), rtol=1e-12)
    np.testing.assert_array_equal(n1, lowered[:, b1])
    np.testing.assert_allclose(c1, np.cumsum(sw.astype(np.float64) * n1), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_data_statistics_kernels_agree_with_numpy(dtype):
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(700, 9)) * 4 + 10).astype(dtype)
    mean = X.mean(axis=0, dtype=np.float64)
    norms = kernels.centered_row_norms(X, mean)
    assert norms.dtype == dtype
    centered = X.astype(np.float64) - mean
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(norms, np.einsum("ij,ij->i", centered, centered), rtol=rtol)
    twin_norms = np.empty_like(norms)
    euclidean._centered_row_norms_numpy(X, mean.astype(dtype), twin_norms)
    np.testing.assert_allclose(twin_norms, norms, rtol=rtol)
    squares = np.zeros(9)
    kernels.add_centered_column_squares(X, mean, squares)
    kernels.add_centered_column_squares(X, mean, squares)  # adds
    np.testing.assert_allclose(squares, 2 * (centered**2).sum(axis=0), rtol=1e-12)
    twin = np.zeros(9)
    convergence._centered_column_squares_numpy(X, mean, twin)
    np.testing.assert_allclose(twin, (centered**2).sum(axis=0), rtol=1e-12)


def _plusplus_steps(costs, sw, first, potential, draws):
    """Greedy k-means++ step by step (draw_candidates + fold_candidates), the reference."""
    chosen = [first]
    closest = costs[:, first].copy()
    cumulative = np.cumsum(sw * closest, dtype=np.float64)
    for row in draws:
        candidates = kernels.draw_candidates(cumulative, potential, row, costs.shape[0])
        best, potential, closest, cumulative = kernels.fold_candidates(
            costs[:, candidates], closest, sw
        )
        chosen.append(int(candidates[best]))
    return chosen


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("duplicates", [False, True])
def test_plusplus_from_costs_equals_the_steps_and_its_numpy_twin(dtype, duplicates):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 3))
    if duplicates:  # 4 distinct points for 9 centroids: the potential reaches zero
        X = X[rng.integers(0, 4, size=60)]
    costs = cdist(X, X, "sqeuclidean").astype(dtype)
    sw = rng.uniform(0, 2, 60).astype(dtype)
    sw[::7] = 0
    first = 5
    potential = float(np.dot(sw, costs[:, first]))
    draws = rng.uniform(size=(8, 4))
    expected = _plusplus_steps(costs, sw, first, potential, draws)
    chosen = kernels.plusplus_from_costs(costs, sw, first, potential, draws)
    assert chosen.tolist() == expected
    twin = np.empty(9, dtype=np.intp)
    twin[0] = first
    seeding._plusplus_numpy(costs, sw, costs[:, first].copy(), potential, draws, twin)
    assert twin.tolist() == expected
    positive = sw > 0
    if not duplicates:  # draws land on samples of positive weight only
        assert positive[chosen[1:]].all()
    else:
        assert len({tuple(X[i]) for i in chosen}) == 4


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 3 * convergence.EQUAL_RUN_ROWS + 5),
    where=st.lists(st.floats(0, 1, exclude_max=True), max_size=3),
    dtype=st.sampled_from([np.intp, np.int32]),
)
def test_labels_equal_finds_any_change(n, where, dtype):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, 4, size=n).astype(dtype)
    previous = labels.copy()
    at = sorted({int(w * n) for w in where}) if n else []
    previous[at] = (previous[at] + 1) % 4
    expected = not at
    assert kernels.labels_equal(labels, previous) is expected
    twin = convergence._count_changed_numpy(labels, previous, convergence.EQUAL_RUN_ROWS)
    assert (twin == 0) is expected
    assert (kernels.count_changed(labels, previous) == 0) is expected


@pytest.mark.parametrize(
    ("n", "at"),
    [
        (convergence.EQUAL_RUN_ROWS + 1, convergence.EQUAL_RUN_ROWS),  # the second run
        (2 * convergence.EQUAL_RUN_ROWS + 1, 2 * convergence.EQUAL_RUN_ROWS),  # the last row
        (3 * convergence.EQUAL_RUN_ROWS, 2 * convergence.EQUAL_RUN_ROWS - 1),
        (5, None),
    ],
)
def test_labels_equal_reads_every_run_mixed_dtypes_and_strides(n, at):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, 6, size=n)  # intp against int32 (a mini-batch run's)
    previous = labels.astype(np.int32)
    if at is not None:
        previous[at] = -1  # a row not drawn before
    expected = at is None
    for a, b in ((labels, previous), (labels[::-1].copy()[::-1], previous)):
        assert kernels.labels_equal(a, b) is expected
        assert (convergence._count_changed_numpy(a, b, convergence.EQUAL_RUN_ROWS) == 0) is expected
    wide = np.repeat(labels, 2)[::2]  # a strided view of the same labels
    assert not wide.flags.c_contiguous or n == 1
    assert kernels.labels_equal(wide, previous) is expected
    assert kernels.count_changed(wide, previous) == (0 if expected else 1)


def test_labels_compared_must_have_the_same_length():
    for compare in (kernels.labels_equal, kernels.count_changed):
        with pytest.raises(ValueError, match="same length"):
            compare(np.zeros(3, np.intp), np.zeros(5, np.intp))
        with pytest.raises(ValueError, match="same length"):
            compare(np.zeros((2, 2), np.intp), np.zeros((2, 2), np.intp))


def test_iteration_summaries_agree_with_numpy():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 5, size=300)
    previous = labels.copy()
    previous[[3, 50, 299]] = (previous[[3, 50, 299]] + 1) % 5
    assert kernels.count_changed(labels, previous) == 3
    assert kernels.count_changed(labels, labels) == 0
    assert convergence._count_changed_numpy(labels, previous, 300) == 3
    for dtype in (np.float64, np.float32):
        new = rng.normal(size=(7, 4)).astype(dtype)
        old = rng.normal(size=(7, 4)).astype(dtype)
        expected = float(((new.astype(np.float64) - old) ** 2).sum())
        assert kernels.sq_shift(new, old) == pytest.approx(expected, rel=1e-12)
        assert convergence._sq_shift_numpy(new, old) == pytest.approx(expected, rel=1e-12)
        assert kernels.sq_shift(new, new) == 0.0


def test_label_changes_counted_up_to_the_first_run_that_holds_one():
    # labels_equal reads runs only up to the first change; count_changed reads them all
    run = convergence.EQUAL_RUN_ROWS
    labels = np.zeros(3 * run, np.intp)
    previous = labels.copy()
    previous[[run + 1, run + 7, 2 * run + 2]] = 1  # two in the second run, one in the third
    for count in (convergence._count_changed, convergence._count_changed_numpy):
        assert count(labels, previous, run) == 2
        assert count(labels, previous, 3 * run) == 3
        assert count(labels, labels, run) == 0
    assert kernels.count_changed(labels, previous) == 3
    assert not kernels.labels_equal(labels, previous)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("n", "d", "k"), _SHAPES)
@pytest.mark.parametrize("n_groups", [1, 3, 9])
def test_numba_and_numpy_nearest_groups_agree(dtype, n, d, k, n_groups):
    rng = np.random.default_rng(n + d + k + n_groups)
    X, mean, m2c, cn, cc, C = _inputs(rng, n, d, k, dtype)
    groups = rng.integers(0, n_groups, size=k).astype(np.intp)  # some groups empty (k < 9)
    outs = []
    for kernel in (euclidean._nearest_groups_numba, euclidean._nearest_groups_numpy):
        labels, mins = np.empty(n, np.intp), np.empty(n, dtype)
        lows = np.empty((n, n_groups), dtype)
        kernel(X, mean, m2c, cn, cc, groups, labels, mins, lows)
        outs.append((labels, mins, lows))
    (fast_labels, fast_mins, fast_lows), (slow_labels, slow_mins, slow_lows) = outs
    np.testing.assert_array_equal(fast_labels, slow_labels)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fast_mins, slow_mins, rtol=rtol)
    # the same labels and distances as the plain nearest-centroid search
    labels, mins = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc)
    np.testing.assert_array_equal(fast_labels, labels)
    np.testing.assert_allclose(fast_mins, mins, rtol=rtol)
    # per group, the nearest centroid other than the assigned one (inf for none), from the
    # product: to rounding of the expanded formula
    D = cdist(X.astype(np.float64), C.astype(np.float64), "sqeuclidean")
    D[np.arange(n), fast_labels] = np.inf
    expected = np.full((n, n_groups), np.inf)
    for g in range(n_groups):
        if (groups == g).any():
            expected[:, g] = D[:, groups == g].min(axis=1)
    scale = rtol * 10 * (1 + np.abs(X).max() ** 2)
    np.testing.assert_allclose(fast_lows, slow_lows, rtol=rtol, atol=scale)
    np.testing.assert_allclose(fast_lows, expected, atol=scale)
    np.testing.assert_array_equal(np.isinf(fast_lows), np.isinf(expected))
    result = kernels.nearest_groups_sq_euclidean(X, mean, m2c, cn, cc, groups, n_groups)
    np.testing.assert_array_equal(result[0], fast_labels)
    np.testing.assert_array_equal(result[2], fast_lows)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("n", "d", "k"), _SHAPES)
def test_numba_and_numpy_paired_distances_agree(dtype, n, d, k):
    rng = np.random.default_rng(n * d + k)
    X, mean, _, _, cc, C = _inputs(rng, n, d, k, dtype)
    labels = rng.integers(0, k, size=n).astype(np.intp)  # any centroid, not the nearest
    fast, slow = np.empty(n, dtype), np.empty(n, dtype)
    euclidean._paired_sq_numba(X, mean, cc, labels, fast)
    euclidean._paired_sq_numpy(X, mean, cc, labels, slow)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fast, slow, rtol=rtol)
    D = cdist(X.astype(np.float64), C.astype(np.float64), "sqeuclidean")
    np.testing.assert_allclose(fast, D[np.arange(n), labels], rtol=rtol * 10, atol=1e-6)
    np.testing.assert_array_equal(kernels.paired_sq_euclidean(X, mean, cc, labels), fast)


_LP_CASES = [(lp.L1, 1.0), (lp.LINF, 1.0)] + [(lp.LP, p) for p in (1, 1.5, 2, 2.5, 3, 4, 0.5, 3.7)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("n", "d", "k"), [(1, 1, 1), (1, 5, 3), (40, 2, 1), (300, 17, 9)])
@pytest.mark.parametrize(("kind", "p"), _LP_CASES)
def test_lp_kernels_agree_with_their_numpy_twin(dtype, n, d, k, kind, p):
    """lp_block (the compiled L1 / L-inf / L_p kernels, each special-cased p) = _lp_numpy."""
    rng = np.random.default_rng(n + d + k)
    X = (rng.normal(size=(n, d)) * 3 + 1).astype(dtype)
    C = rng.normal(size=(k, d)) * 3 + 1  # float64 centroids: lp_block casts them to X's dtype
    fast = kernels.lp_block(X, C, kind, p)
    assert fast.dtype == dtype and fast.shape == (n, k)
    slow = np.empty((n, k), dtype)
    lp._lp_numpy(X, C.astype(dtype), kind, p, slow)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    if kind == lp.LINF:  # a maximum of the same differences: exact
        np.testing.assert_array_equal(fast, slow)
    else:
        np.testing.assert_allclose(fast, slow, rtol=rtol)
    X64, C64 = X.astype(np.float64), C.astype(dtype).astype(np.float64)
    if kind == lp.L1:
        expected = cdist(X64, C64, "cityblock")
    elif kind == lp.LINF:
        expected = cdist(X64, C64, "chebyshev")
    else:
        expected = cdist(X64, C64, "minkowski", p=p) ** p
    np.testing.assert_allclose(fast, expected, rtol=rtol * 10)


# (rows, centroids, groups of centroids): one row, one centroid, no group at all
_BOUNDS_SHAPES = [(1, 1, 1), (1, 4, 2), (50, 1, 1), (700, 20, 5), (80, 6, 0), (900, 30, 1)]


def _bounds_inputs(rng, b, k, t, steps, dtype):
    labels = rng.integers(0, k, size=b).astype(np.intp)
    upper = rng.uniform(0, 2, size=b)
    lower = (upper[:, None] + rng.normal(0, 0.5, size=(b, t))).astype(dtype)
    stamps = rng.integers(0, steps, size=b).astype(np.intp)
    shifts = rng.exponential(0.02, size=(steps, k))
    shifts[0] = 0
    cum_shift = np.cumsum(shifts, axis=0)
    drifts = rng.exponential(0.03, size=(steps, t))
    drifts[0] = 0
    cum_drift = np.cumsum(drifts, axis=0)
    half_gap = rng.uniform(0, 1.5, size=k)
    return labels, upper, lower, stamps, cum_shift, cum_drift, steps - 1, half_gap


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("b", "k", "t"), _BOUNDS_SHAPES)
@pytest.mark.parametrize("margin", [0.0, 1e-6])
def test_numba_and_numpy_stale_rows_agree(dtype, b, k, t, margin):
    rng = np.random.default_rng(b + k + t)
    args = _bounds_inputs(rng, b, k, t, 6, dtype)
    fast, slow = np.empty(b, np.intp), np.empty(b, np.intp)
    count = bounds._stale_rows_numba(*args, margin, fast)
    assert bounds._stale_rows_numpy(*args, margin, slow) == count
    np.testing.assert_array_equal(fast[:count], slow[:count])
    # brute force: the moved bounds, row by row
    labels, upper, lower, stamps, cum_shift, cum_drift, now, half_gap = args
    hi, lo, slack = 1 + margin, 1 - margin, 4 * np.finfo(np.float64).eps
    expected = []
    for i, (a, s) in enumerate(zip(labels, stamps, strict=True)):
        u = (upper[i] + (cum_shift[now, a] - cum_shift[s, a])) * hi + slack * cum_shift[now, a]
        lows = (lower[i] - (cum_drift[now] - cum_drift[s]) - slack * cum_drift[now]) * lo
        if u > half_gap[a] * lo and (u > lows).any():
            expected.append(i)
    np.testing.assert_array_equal(fast[:count], expected)
    if b >= 700:  # the data leaves some rows vouched for and some not
        assert 0 < count < b
    public = kernels.stale_rows(*args, margin)
    np.testing.assert_array_equal(public, expected)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("n", "d", "k"),
    [
        (1, 1, 1), (600, 1, 4), (300, 2, 3), (777, 5, 9), (513, 8, 64), (259, 13, 8),
        (401, 11, 16), (300, 2, 128),
    ],
)
def test_direct_nearest_kernel_agrees_with_the_product_and_brute_force(dtype, n, d, k):
    """The direct kernel (few features, no matrix product) gives the product's labels,
    exact minimum distances, and the same answer for a row wherever its sub-block starts."""
    rng = np.random.default_rng(n + d + k)
    X, mean, m2c, cn, cc, C = _inputs(rng, n, d, k, dtype)
    assert kernels.direct_pays(d, k)
    outs = []
    for kernel in (nearest_direct, nearest_by_product):
        labels, mins, second = np.empty(n, np.intp), np.empty(n, dtype), np.empty(n, dtype)
        kernel(X, mean, m2c, cn, cc, labels, mins, second)
        outs.append((labels, mins, second))
    (labels, mins, second), (ref_labels, ref_mins, ref_second) = outs
    np.testing.assert_array_equal(labels, ref_labels)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    # both kernels end with the same exact costs, paired_sq_euclidean's: bit for bit
    np.testing.assert_array_equal(mins, ref_mins)
    np.testing.assert_array_equal(kernels.paired_sq_euclidean(X, mean, cc, labels), mins)
    D = cdist(X.astype(np.float64), C.astype(np.float64), "sqeuclidean")
    np.testing.assert_allclose(mins, D.min(axis=1), rtol=rtol, atol=1e-5)
    if k > 1:
        scale = rtol * 10 * (1 + np.abs(X).max() ** 2)
        np.testing.assert_allclose(second, np.sort(D, axis=1)[:, 1], atol=scale)
    if n > 1:  # rows shifted by one: every sub-block boundary moves, the answers do not
        shifted_labels, shifted_mins = np.empty(n - 1, np.intp), np.empty(n - 1, dtype)
        nearest_direct(
            X[1:], mean, m2c, cn, cc, shifted_labels, shifted_mins, np.empty(0, dtype)
        )
        np.testing.assert_array_equal(shifted_labels, labels[1:])
        np.testing.assert_array_equal(shifted_mins, mins[1:])


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("d", "k"), [(1, 1), (1, 5), (2, 3), (2, 32), (2, 128)])
@pytest.mark.parametrize("ties", [False, True])
def test_direct_kernel_with_two_features_equals_the_padded_path(dtype, d, k, ties):
    """At one or two features the direct kernel multiplies one pair of features; with
    zero columns appended (three features: the padded path of four) every label,
    distance and runner-up distance is the same bit for bit, and so are the labels of a
    labels-only search."""
    for pair, padded in _direct_and_widened(10 * d + k, 1100, d, k, dtype, ties, 3):
        for ours, theirs in zip(pair, padded, strict=True):
            np.testing.assert_array_equal(ours, theirs)


def _direct_and_widened(seed, n, d, k, dtype, ties, width):
    """The direct kernel's ``(labels, mins, second)`` on ``n`` x ``d`` data and on the
    same data with zero columns appended up to ``width`` features, with the runner-up
    and distances, then labels only (empty mins and second); with ``ties``, rows on a
    grid and centroids among them (exact ties between centroids)."""
    rng = np.random.default_rng(seed)
    X, mean, m2c, cn, cc, _ = _inputs(rng, n, d, k, dtype)
    if ties:
        X = np.round(X).astype(dtype)
        mean = X.mean(axis=0)
        cc = (X[rng.choice(len(X), size=k)] - mean).astype(dtype)
        m2c, cn = np.ascontiguousarray(cc * -2), np.einsum("ij,ij->i", cc, cc)

    def widen(a):  # (..., d) -> (..., width), the new columns zero
        zeros = np.zeros((*a.shape[:-1], width - d), a.dtype)
        return np.ascontiguousarray(np.concatenate([a, zeros], axis=-1))

    for full in (True, False):
        outs = []
        for args in ((X, mean, m2c, cn, cc), (widen(X), widen(mean), widen(m2c), cn, widen(cc))):
            size = len(X) if full else 0
            out = [np.empty(len(X), np.intp), np.empty(size, dtype), np.empty(size, dtype)]
            nearest_direct(*args, *out)
            outs.append(out)
        yield outs


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("d", "k"),
    [(3, 3), (4, 9), (5, 33), (8, 1), (8, 8), (8, 128), (9, 8), (12, 5), (13, 16), (16, 8)],
)
@pytest.mark.parametrize("ties", [False, True])
def test_direct_kernel_one_pass_equals_the_accumulator_path(dtype, d, k, ties):
    """Up to sixteen features the direct kernel takes each centroid's distances and the
    running minimum in one loop over the rows; with zero columns appended (seventeen
    features: twenty padded, the accumulator's path, a pass per four features and one
    for the minimum) every label is the same, exact ties too, with the runner-up and
    without.  (The exact distances sum over the features in an order set by their
    number, so with more columns they may differ in the last bits; the passes' own
    values are compared bit for bit in the test after this one.)"""
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    runs = _direct_and_widened(100 * d + k, 1300, d, k, dtype, ties, 17)
    for (labels, mins, second), wide in runs:
        assert np.unique(labels).size >= min(k, 3)  # rows of several clusters
        np.testing.assert_array_equal(labels, wide[0])
        np.testing.assert_allclose(mins, wide[1], rtol=rtol, atol=rtol)
        if k > 1:
            np.testing.assert_allclose(second, wide[2], rtol=rtol, atol=rtol * 100)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width", [4, 8, 12, 16])
@pytest.mark.parametrize("k", [1, 2, 7, 40])
@pytest.mark.parametrize("want_second", [False, True])
def test_one_pass_loops_equal_the_accumulator_bit_for_bit(dtype, width, k, want_second):
    """The direct search's one-pass loops (``_pair_search`` at a pair of features,
    ``_quad_search`` at 4 to 16 padded) leave the same minimum, runner-up and argmin, bit
    for bit, as the accumulator's loops (``_wide_search``) on the same transposed rows
    and coefficients (zero padding included), for a full sub-block and a short one, on
    continuous values and on a grid with exact ties."""
    rng = np.random.default_rng(width * 100 + k)
    sub = euclidean.SUB_BLOCK_ROWS
    for grid in (False, True):
        rows_t = rng.normal(size=(width, sub)) * 3
        coef = rng.normal(size=(k, width)) * 3
        if grid:
            rows_t, coef = np.round(rows_t), np.round(coef) * 2
        features = width - 1 if width > 4 else 2  # the padding: zero rows and columns
        rows_t[features:], coef[:, features:] = 0, 0
        rows_t, coef = rows_t.astype(dtype), coef.astype(dtype)
        norms = (rng.random(k) * 10).astype(dtype)
        loops = ("wide", "quad", "pair") if width == 4 else ("wide", "quad")
        for m in (sub, 37):
            found = []
            for loop in loops:
                best, runner_up = np.full(sub, np.nan, dtype), np.full(sub, np.nan, dtype)
                arg = np.full(sub, -1, np.int32)
                if loop == "wide":
                    acc = np.empty(sub, dtype)
                    euclidean._wide_search(
                        rows_t, coef, norms, m, acc, best, runner_up, arg, want_second
                    )
                elif loop == "pair":
                    euclidean._pair_search(
                        rows_t[0], rows_t[1], coef, norms, m, best, runner_up, arg, want_second
                    )
                else:
                    euclidean._quad_search(
                        rows_t, coef, norms, m, best, runner_up, arg, want_second
                    )
                found.append([best[:m].view(np.uint8), arg[:m]])
                if want_second:
                    found[-1].append(runner_up[:m].view(np.uint8))
            assert k == 1 or np.unique(found[0][1]).size > 1  # rows of several clusters
            for one_pass in found[1:]:
                for ours, accumulated in zip(one_pass, found[0], strict=True):
                    np.testing.assert_array_equal(ours, accumulated)


@functools.cache
def _lanes_caller(low, high, most):
    import numba

    from kmeansfw.kernels.lanes import add_rows_in_lanes

    # every fastmath flag on the caller: numba hands them to each floating-point operation
    # without flags, and the sums' must stay unfused and in order
    @numba.njit(fastmath=True)
    def call(X, sample_weight, start, m, arg, sums, weights):
        return add_rows_in_lanes(X, sample_weight, start, m, arg, sums, weights, low, high, most)

    return call


def test_lane_plan_takes_the_layout_of_fewer_registers():
    """Each cluster takes a power of two of lanes, its weight in lane ``d`` where one
    is left, else the weights in registers of their own; no plan past eight features,
    below two or past four clusters, or over four registers."""
    from kmeansfw.kernels.lanes import lane_plan

    assert lane_plan(1, 4) == (2, 1, 0)  # x, w: four clusters in one register
    assert lane_plan(2, 3) == (4, 2, 0)  # x0, x1, w, 0: a tie with (2, 1, 1)
    assert lane_plan(3, 4) == (4, 2, 0)
    assert lane_plan(4, 4) == (4, 2, 1)  # (8, 4, 0) takes four
    assert lane_plan(7, 3) == (8, 3, 0)
    assert lane_plan(8, 3) == (8, 3, 1)
    for d, k in ((8, 4), (9, 2), (2, 5), (3, 1), (0, 3)):
        assert lane_plan(d, k) is None


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_add_rows_in_lanes_makes_the_row_by_row_totals_bit_for_bit(dtype):
    """The totals held in vector registers (``lanes.add_rows_in_lanes``) are those of
    the row-by-row loop, bit for bit, at one to eight features and two to four
    clusters, compiled into a caller with every fastmath flag: from running totals that
    are not zero (a cluster without rows keeping a total of -0.0: masked, not added
    zero), rows from an offset, weights every other value of an array, weighted rows of
    magnitudes from 1e-3 to 1e6; and the shapes the kernel has no layout for (or was
    not compiled for) are declined with nothing written.  Without AVX-512 every shape
    is declined."""
    from kmeansfw.kernels.lanes import lane_plan, registers_of_eight

    # the searches' own row-by-row loop (euclidean._add_rows_of) as the reference
    call, in_order = _lanes_caller(1, 8, 4), euclidean._add_rows_of
    rng = np.random.default_rng(48)
    for d in range(1, 10):
        for k in range(1, 6):
            X = (rng.normal(size=(700, d)) * 10.0 ** rng.integers(-3, 7, size=(700, d)))
            X = _freeze(X.astype(dtype))
            w = _freeze(rng.random(1400).astype(dtype))[::2]
            arg = _freeze(rng.integers(0, max(1, k - 1), 600).astype(np.int32))
            start = rng.normal(size=(k, d)), rng.random(k)
            start[0][-1, 0] = -0.0  # the last cluster has no rows when k > 1
            expected = start[0].copy(), start[1].copy()
            in_order(X, w, 37, 600, arg, *expected, d)
            found = start[0].copy(), start[1].copy()
            planned = lane_plan(d, k) is not None and registers_of_eight()
            assert call(X, w, 37, 600, arg, *found) == planned
            if planned:
                np.testing.assert_array_equal(_bits(found[0]), _bits(expected[0]))
                np.testing.assert_array_equal(_bits(found[1]), _bits(expected[1]))
                assert not (found[0] == start[0]).all()
                assert k == 1 or np.signbit(found[0][-1, 0])
            else:
                np.testing.assert_array_equal(found[0], start[0])
                np.testing.assert_array_equal(found[1], start[1])
    # compiled for one or two features and two clusters only: the others declined
    narrow = _lanes_caller(1, 2, 2)
    X = rng.normal(size=(50, 3)).astype(dtype)
    for d, k in ((1, 2), (2, 2), (2, 3), (3, 2)):
        sums, weights = np.zeros((k, d)), np.zeros(k)
        Xd = np.ascontiguousarray(X[:, :d])
        labels = (np.arange(50) % k).astype(np.int32)
        taken = d <= 2 and k == 2 and registers_of_eight()
        assert narrow(Xd, np.ones(50, dtype), 0, 50, labels, sums, weights) == taken
        assert (weights == 0).all() != taken


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
def test_add_rows_in_lanes_declines_arrays_it_cannot_hold_and_checks_its_rows():
    """Totals of another width than X, too few weights, X not C-contiguous, or totals
    not float64: declined, nothing written.  Rows past X's or the weights' end, or more
    rows than labels: an IndexError before anything is added.  Labels other than int32
    (a search's) do not compile."""
    import numba

    from kmeansfw.kernels.lanes import registers_of_eight

    if not registers_of_eight():
        pytest.skip("add_rows_in_lanes declines every shape without AVX-512")
    call = _lanes_caller(1, 8, 4)
    rng = np.random.default_rng(49)
    X = rng.normal(size=(40, 3))
    w, arg = np.ones(40), (np.arange(40) % 3).astype(np.int32)
    cases = [
        (X, np.zeros((3, 2)), np.zeros(3)),
        (X, np.zeros((3, 3)), np.zeros(2)),
        (np.asfortranarray(X), np.zeros((3, 3)), np.zeros(3)),
        (X, np.zeros((3, 3), np.float32), np.zeros(3)),
    ]
    for data, sums, weights in cases:
        assert not call(data, w, 0, 40, arg, sums, weights)
        assert not sums.any() and not weights.any()
    sums, weights = np.zeros((3, 3)), np.zeros(3)
    for start, m, labels, weight in ((1, 40, arg, w), (0, 40, arg, w[:39]), (0, 40, arg[:39], w)):
        with pytest.raises(IndexError):
            call(X, weight, start, m, labels, sums, weights)
        assert not sums.any() and not weights.any()
    assert call(X, w, 39, 1, arg, sums, weights)  # the last row: in range
    np.testing.assert_array_equal(sums[0], X[39])
    with pytest.raises(numba.core.errors.TypingError):
        call(X, w, 0, 40, arg.astype(np.int64), np.zeros((3, 3)), np.zeros(3))


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
def test_the_pair_search_adds_its_sums_in_vector_registers():
    """The direct search of one or two features holds the masked additions of
    ``lanes.add_rows_in_lanes`` (with AVX-512; the search before it had none), so its
    sums take the registers, not only the row-by-row loop that gives the same bits.
    A fresh compile of the search (numba shows no code of a cached kernel)."""
    import re

    import numba

    from kmeansfw.kernels.lanes import registers_of_eight

    search = numba.njit(nogil=True, fastmath={"contract"})(euclidean._direct_search_pair.py_func)
    X = np.random.default_rng(50).normal(size=(600, 2))
    mean, C = X.mean(axis=0), X[:3].copy()
    cc, m2c, cn, _ = kernels.prepare_euclidean_centroids(C, mean, np.float64)
    group_rows = update.sum_group_rows(600, 3)
    n_groups = -(-600 // group_rows)
    sums = np.zeros((n_groups, 3, 2)), np.zeros((n_groups, 3))
    labels, mins = np.empty(600, np.intp), np.empty(600)
    w = np.ones(600)
    search(X, mean, m2c, cn, cc, labels, mins, np.empty(0), w, group_rows, *sums, False)
    expected = np.zeros((3, 2)), np.zeros(3)
    kernels.add_weighted_cluster_sums(X, labels, w, *expected)
    totals = np.zeros((3, 2)), np.zeros(3)
    euclidean._add_groups(*sums, *totals)
    np.testing.assert_array_equal(totals[0], expected[0])
    np.testing.assert_array_equal(totals[1], expected[1])
    code = "\n".join(search.inspect_asm().values())
    masked = re.findall(r"vaddpd\s+%zmm\d+, %zmm\d+, %zmm\d+ \{%k\d\}", code)
    assert (len(masked) >= 3) == registers_of_eight()  # one a register of each layout


@functools.cache
def _center_eight_caller():
    import numba

    from kmeansfw.kernels.tiles import center_eight

    @numba.njit
    def call(X, row, mean, rows_t, col):
        return center_eight(X, row, mean, rows_t, col)

    return call


def _bits(array):
    return array.view(np.uint32 if array.dtype == np.float32 else np.uint64)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_center_eight_writes_the_scalar_subtractions_bit_for_bit(dtype):
    """``tiles.center_eight`` (the direct search's transposition, eight rows in vector
    registers) writes ``X[row + t, f] - mean[f]`` at ``rows_t[f, col + t]`` for eight
    rows, every one the IEEE subtraction NumPy makes (signed zeros, subnormal values,
    magnitudes from 1e-30 to 1e30), at one to sixteen features, and nothing else: not
    the other columns of ``rows_t``, nor its rows past the features."""
    from kmeansfw.kernels.tiles import TILE_MAX_FEATURES, TILE_ROWS

    call = _center_eight_caller()
    rng = np.random.default_rng(8)
    tiny = np.finfo(dtype).smallest_subnormal
    for d in range(1, TILE_MAX_FEATURES + 1):
        X = rng.normal(size=(21, d)) * 10.0 ** rng.integers(-30, 31, size=(21, d))
        X[3, 0], X[4, -1], X[5, 0] = -0.0, 0.0, 7 * tiny
        X = _freeze(X.astype(dtype))
        mean = rng.normal(size=d).astype(dtype)
        mean[0] = -0.0 if d > 1 else mean[0]
        for row, col in ((0, 0), (13, 16), (5, 3), (2, 9)):
            rows_t = np.full((d + 2, 24), 7.0, dtype)
            expected = rows_t.copy()
            expected[:d, col : col + TILE_ROWS] = (X[row : row + TILE_ROWS] - mean).T
            assert call(X, row, mean, rows_t, col)
            np.testing.assert_array_equal(_bits(rows_t), _bits(expected))
            # a C-contiguous view of other rows: the same values
            view = X[row:]
            rows_t = np.full((d + 2, 24), 7.0, dtype)
            assert call(view, 0, mean, rows_t, col)
            np.testing.assert_array_equal(_bits(rows_t), _bits(expected))


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_center_eight_declines_what_it_cannot_read_as_one_run(dtype):
    """More features than ``TILE_MAX_FEATURES``, or rows that are not one contiguous run
    (Fortran order, every other column): ``center_eight`` answers False and writes
    nothing, so that the caller's scalar loop does the work (a fit's data is always
    C-contiguous: ``core.data``)."""
    from kmeansfw.kernels.tiles import TILE_MAX_FEATURES

    call = _center_eight_caller()
    rng = np.random.default_rng(9)
    wide = rng.normal(size=(16, TILE_MAX_FEATURES + 1)).astype(dtype)
    other = np.float32 if dtype == np.float64 else np.float64
    narrow = np.ascontiguousarray(wide[:, :5])
    cases = [
        (wide, np.zeros(wide.shape[1], dtype)),
        (np.asfortranarray(narrow), np.zeros(5, dtype)),
        (wide[:, ::2], np.zeros(wide[:, ::2].shape[1], dtype)),
        (narrow, np.full(5, 0.1, other)),  # the scalar loop subtracts in the wider type
    ]
    for X, mean in cases:
        rows_t = np.full((X.shape[1], 16), 7.0, dtype)
        assert not call(X, 0, mean, rows_t, 0)
        assert (rows_t == 7.0).all()


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
def test_center_eight_checks_every_index_it_reads_or_writes():
    """Rows past X's end or below zero, columns past ``rows_t``'s end or below zero,
    too few rows in ``rows_t`` or entries in ``mean``: an IndexError before anything is
    written, whatever numba's bounds checking; a read-only ``rows_t`` does not compile."""
    import numba

    call = _center_eight_caller()
    X = _freeze(np.arange(60.0).reshape(12, 5))
    mean = np.zeros(5)
    for row, col, rows, means in (
        (5, 0, 5, 5), (-1, 0, 5, 5), (0, 9, 5, 5), (0, -1, 5, 5), (0, 0, 4, 5), (0, 0, 5, 4),
    ):
        rows_t = np.full((rows, 16), 7.0)
        with pytest.raises(IndexError):
            call(X, row, mean[:means], rows_t, col)
        assert (rows_t == 7.0).all()
    rows_t = np.zeros((5, 16))
    assert call(X, 4, mean, rows_t, 8)  # the last rows and columns: in range
    np.testing.assert_array_equal(rows_t[:, 8:], X[4:].T)
    with pytest.raises(numba.core.errors.TypingError):
        call(X, 0, mean, _freeze(np.zeros((5, 16))), 0)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_tiled_transposition_equals_the_scalar_one_bit_for_bit(dtype):
    """The direct search's transposition (``_transpose_tiles_of_eight``: tiles of eight
    rows, then the rest one by one) writes what the scalar loop (``_transpose_rows``,
    the wide search's) writes, for sub-blocks of 0 to ``SUB_BLOCK_ROWS`` rows, at the
    start, the middle and the end of X, prefetching or not."""
    sub = euclidean.SUB_BLOCK_ROWS
    rng = np.random.default_rng(16)
    for d in (3, 5, 8, 13, 16):
        X = _freeze((rng.normal(size=(2 * sub + 5, d)) * 1e3).astype(dtype))
        mean = X.mean(axis=0).astype(dtype)
        for start, m in ((0, sub), (0, 0), (sub, 7), (sub + 5, sub), (2 * sub + 4, 1), (9, 203)):
            for prefetching in (False, True):
                outs = []
                for transpose in (euclidean._transpose_tiles_of_eight, euclidean._transpose_rows):
                    rows_t = np.full((d + 3, sub), 7.0, dtype)
                    transpose(X, mean, start, m, sub, prefetching, rows_t)
                    outs.append(_bits(rows_t))
                np.testing.assert_array_equal(*outs)


def test_the_row_search_is_chosen_by_shape_and_dtype_only():
    pays = kernels.row_search_pays
    # 17 to 31 features: up to 5 centroids in float32, 8 in float64
    assert pays(17, 5, 4) and not pays(17, 6, 4) and pays(31, 8, 8) and not pays(31, 9, 8)
    # never where the direct search or the small-matrix products take the shape
    assert not pays(16, 3, 8) and not pays(32, 3, 8) and not pays(128, 3, 4)
    assert not pays(159, 3, 8) and not pays(191, 3, 4)
    # wide rows: k <= 3 from 160 (float64) or 192 (float32) features, and float64 up to
    # k=8 from 192 to 256 features
    assert pays(160, 3, 8) and not pays(160, 4, 8) and pays(192, 3, 4) and not pays(192, 4, 4)
    assert pays(192, 8, 8) and pays(256, 8, 8) and not pays(257, 4, 8) and pays(512, 3, 8)
    assert not pays(256, 9, 8) and not pays(513, 1, 4) and not pays(24, 0, 8)
    for d in range(17, 600, 7):  # never where the direct search runs, never past k=8
        for k in range(1, 12):
            for itemsize in (4, 8):
                if pays(d, k, itemsize):
                    assert not kernels.direct_pays(d, k) and k <= 8


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize(
    ("dtype", "n", "d", "k"),
    [
        (np.float32, 700, 24, 5), (np.float64, 600, 17, 8), (np.float64, 513, 300, 3),
        (np.float32, 300, 256, 2), (np.float64, 520, 200, 6), (np.float64, 1, 17, 1),
    ],
)
def test_row_search_agrees_with_brute_force_wherever_a_row_lies(dtype, n, d, k):
    """The row search (no matrix product) labels each row with its nearest centroid, its
    exact distance the paired kernel's bit for bit, and gives each row the same answer
    wherever its sub-block starts, in a read-only array, centered or on the origin."""
    assert kernels.row_search_pays(d, k, np.dtype(dtype).itemsize)
    rng = np.random.default_rng(n + d + k)
    X, mean, m2c, cn, cc, C = _inputs(rng, n, d, k, dtype)
    labels, mins, second = np.empty(n, np.intp), np.empty(n, dtype), np.empty(n, dtype)
    nearest_by_product(X, mean, m2c, cn, cc, labels, mins, second)
    D = cdist(X.astype(np.float64), C.astype(np.float64), "sqeuclidean")
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    if dtype == np.float64:  # float32 may break a near tie
        np.testing.assert_array_equal(labels, D.argmin(axis=1))
    np.testing.assert_allclose(mins, D.min(axis=1), rtol=rtol, atol=1e-5)
    np.testing.assert_array_equal(kernels.paired_sq_euclidean(X, mean, cc, labels), mins)
    if k > 1:
        scale = rtol * 10 * (1 + np.abs(X).max() ** 2)
        np.testing.assert_allclose(second, np.sort(D, axis=1)[:, 1], atol=scale)
    if n > 1:  # every sub-block boundary moves, in a read-only array: the same bits
        rows = X[1:].copy()
        rows.flags.writeable = False
        shifted = np.empty(n - 1, np.intp), np.empty(n - 1, dtype), np.empty(n - 1, dtype)
        nearest_by_product(rows, mean, m2c, cn, cc, *shifted)
        for moved, kept in zip(shifted, (labels, mins, second), strict=True):
            np.testing.assert_array_equal(moved, kept[1:])
    # on the origin (the rows read as they are, X or a copy of it elsewhere in memory)
    # and centered on -0.0 (a centered copy, x - (-0.0) is x): the same bits
    origin, negative = _freeze(np.zeros(d, dtype)), _freeze(np.full(d, -0.0, dtype))
    frozen = _freeze(X.copy())
    answers = []
    for centre, rows in ((origin, X), (origin, frozen), (negative, X)):
        cc0, m2c0, cn0, _ = kernels.prepare_euclidean_centroids(C, centre, dtype)
        found = np.empty(n, np.intp), np.empty(n, dtype), np.empty(n, dtype)
        nearest_by_product(rows, centre, m2c0, cn0, cc0, *found)
        answers.append(found)
    for fast, *others in zip(*answers, strict=True):
        for other in others:
            np.testing.assert_array_equal(other, fast)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_row_search_breaks_ties_to_the_lowest_index(dtype, k):
    # rows on a grid halfway between centroids, and duplicated centroids: equal values
    # of ||c||^2 - 2 x.c (exact in binary), the first centroid wins, the runner-up is
    # the tie's value
    d = 20
    assert kernels.row_search_pays(d, k, np.dtype(dtype).itemsize)
    C = np.zeros((k, d), dtype)
    C[0, 0], C[1, 0] = 1.0, -1.0
    C[2:, 0] = 1.0  # duplicates of the first centroid
    X = np.zeros((300, d), dtype)
    X[::2, 1] = 2.0  # every other row off the axis, the same distance to +-e0
    mean = np.zeros(d, dtype)
    cc, m2c, cn, _ = kernels.prepare_euclidean_centroids(C, mean, dtype)
    labels, mins, second = np.empty(300, np.intp), np.empty(300, dtype), np.empty(300, dtype)
    nearest_by_product(X, mean, m2c, cn, cc, labels, mins, second)
    np.testing.assert_array_equal(labels, 0)
    np.testing.assert_array_equal(mins, np.where(X[:, 1] == 2, 5.0, 1.0).astype(dtype))
    np.testing.assert_array_equal(second, mins)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("with_second", [False, True])
def test_row_search_breaks_a_tie_inside_its_second_tile(with_second):
    # k=8 (two tiles of four, float64): centroids 5 and 6 (+-e0) tie nearest, the others
    # far; the first of the two wins
    d, k, dtype = 24, 8, np.float64
    assert kernels.row_search_pays(d, k, 8)
    C = np.zeros((k, d), dtype)
    C[:, 2] = 10.0 + np.arange(k)  # far along e2
    C[5], C[6] = 0, 0
    C[5, 0], C[6, 0] = 1.0, -1.0
    X = np.zeros((40, d), dtype)
    X[:, 1] = np.arange(40) % 4  # on the plane x0 = 0: the same distance to both
    mean = np.zeros(d, dtype)
    cc, m2c, cn, _ = kernels.prepare_euclidean_centroids(C, mean, dtype)
    labels, mins = np.empty(40, np.intp), np.empty(40, dtype)
    second = np.empty(40 if with_second else 0, dtype)
    nearest_by_product(X, mean, m2c, cn, cc, labels, mins, second)
    np.testing.assert_array_equal(labels, 5)
    np.testing.assert_array_equal(mins, 1 + X[:, 1] ** 2)
    if with_second:
        np.testing.assert_array_equal(second, mins)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_row_search_and_the_products_are_kernels_of_their_own(dtype):
    # the product search's shapes of row_search_pays take the row search's kernel (and
    # its Lloyd iterations' kernels), screened first where screen_pays too, the others
    # the products': each refuses the others' shapes, so that a first fit compiles the
    # one it takes and a shape keeps its bits
    from kmeansfw.kernels import lloyd

    rng = np.random.default_rng(6)
    itemsize = np.dtype(dtype).itemsize
    searches = {
        "rows": (euclidean._row_search, lloyd._rows_iterations, lloyd._rows_threaded),
        "screened rows": (
            euclidean._row_search_screened,
            lloyd._screened_rows_iterations,
            lloyd._screened_rows_threaded,
        ),
        "product": (
            euclidean._product_search, lloyd._product_iterations, lloyd._product_threaded
        ),
    }
    seen = set()
    for d, k in ((20, 3), (24, 5), (40, 3), (64, 10), (20, 12), (200, 3), (200, 8)):
        kind = euclidean.search_kind(False, d, k, itemsize)
        seen.add(kind)
        rows = euclidean.row_search_pays(d, k, itemsize)
        screened = euclidean.screen_pays(d, k, itemsize)
        assert kind == ("product" if not rows else "screened rows" if screened else "rows")
        X, mean, m2c, cn, cc, C = _inputs(rng, 400, d, k, dtype)
        kernel, serial, threaded = searches[kind]
        assert euclidean._search_for(False, d, k, itemsize) is kernel
        assert lloyd._kernel(False, d, k, itemsize, False) is serial
        assert lloyd._kernel(False, d, k, itemsize, True) is threaded
        no_sums = (*euclidean._no_sums(X.dtype), False)
        labels, mins, second = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc, with_second=True)
        only = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc)  # screened where it pays
        for want in ((labels, mins, second), only):  # with the runner-up, and without
            outputs = (np.empty(400, np.intp), np.empty(400, dtype), np.empty(400, dtype))
            outputs = outputs[: len(want)] + (np.empty(0, dtype),) * (3 - len(want))
            for other, *_ in (searches[o] for o in searches if o != kind):
                with pytest.raises(ValueError, match="row search"):  # whatever the data
                    other(X, mean, m2c, cn, cc, *outputs, *no_sums)
            kernel(X, mean, m2c, cn, cc, *outputs, *no_sums)
            for got, expected in zip(outputs[: len(want)], want, strict=True):
                np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(only[0], labels)
        D = cdist(X.astype(np.float64), C.astype(np.float64), "sqeuclidean")
        rtol = 1e-4 if dtype == np.float32 else 1e-9
        np.testing.assert_allclose(mins, D[np.arange(400), labels], rtol=rtol, atol=rtol)
        np.testing.assert_allclose(mins, D.min(axis=1), rtol=rtol, atol=rtol)
    assert seen == ({"rows", "screened rows", "product"} if itemsize == 8 else {"rows", "product"})


def test_the_direct_kernel_is_chosen_by_shape_only():
    assert kernels.direct_pays(2, 3) and kernels.direct_pays(8, 128)
    assert kernels.direct_pays(16, 16) and kernels.direct_pays(9, 1)
    assert not kernels.direct_pays(17, 3) and not kernels.direct_pays(9, 17)
    assert not kernels.direct_pays(2, 129) and not kernels.direct_pays(16, 17)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
def test_the_direct_search_has_a_kernel_per_kind_of_pass():
    # a first fit at one or two features compiles the pair's pass only, one at three to
    # sixteen the fours' only: each kernel refuses the others' rows (they would give
    # other bits, or drop features), and the serial, iterating and threaded kernels are
    # chosen by the number of features
    from kmeansfw.kernels import lloyd

    rng = np.random.default_rng(5)
    searches = (
        euclidean._direct_search_pair, euclidean._direct_search, euclidean._direct_search_wide
    )
    for d, kind in ((1, 0), (2, 0), (3, 1), (16, 1), (17, 2), (40, 2)):
        X, mean, m2c, cn, cc, C = _inputs(rng, 300, d, 4, np.float64)
        assert euclidean._search_for(True, d, 4, 8) is searches[kind]
        if kind < 2:
            pair = kind == 0
            assert lloyd._kernel(True, d, 4, 8, False) is (
                lloyd._pair_iterations if pair else lloyd._direct_iterations
            )
            assert lloyd._kernel(True, d, 4, 8, True) is (
                lloyd._pair_threaded if pair else lloyd._direct_threaded
            )
        else:  # fits never take the direct search past sixteen features
            for threaded in (False, True):
                with pytest.raises(ValueError, match="up to 16 features, not"):
                    lloyd._kernel(True, d, 4, 8, threaded)
        outputs = (np.empty(300, np.intp), np.empty(300), np.empty(0))
        for wrong in searches[:kind] + searches[kind + 1 :]:
            with pytest.raises(ValueError, match="features"):
                wrong(X, mean, m2c, cn, cc, *outputs, *euclidean._no_sums(X.dtype), False)
        euclidean._search_for(True, d, 4, 8)(
            X, mean, m2c, cn, cc, *outputs, *euclidean._no_sums(X.dtype), False
        )
        labels, mins = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc)
        np.testing.assert_array_equal(outputs[0], labels)
        np.testing.assert_array_equal(outputs[1], mins)
        brute = ((X[:, None, :] - C[None]) ** 2).sum(-1)
        np.testing.assert_array_equal(labels, brute.argmin(1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("n", "d", "k"),
    # direct kernel: 2, 8 and 13 features; product kernel: 17 and 64 features, or k > 128
    [(2100, 2, 5), (1000, 8, 9), (600, 13, 4), (500, 17, 6), (900, 64, 10), (700, 8, 200)],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_nearest_without_costs_gives_the_same_labels_and_no_costs(dtype, n, d, k, threads):
    # the labels-only search (direct and product kernels, serial and parallel, the NumPy
    # twin) skips the exact distances and labels every row as the full search does; the
    # costs left out are those the paired kernel computes, bit for bit
    kernels._compile.parallel_ready()
    rng = np.random.default_rng(n + d + k)
    X, mean, m2c, cn, cc, _ = _inputs(rng, n, d, k, dtype)
    labels, mins = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc, n_threads=threads)
    only, none = kernels.nearest_sq_euclidean(
        X, mean, m2c, cn, cc, n_threads=threads, with_costs=False
    )
    assert none is None
    direct = euclidean.direct_pays(d, k)
    assert direct == (d <= 16 and k <= 128 and (d <= 8 or k <= 16))  # both kernels covered
    np.testing.assert_array_equal(only, labels)
    np.testing.assert_array_equal(kernels.paired_sq_euclidean(X, mean, cc, only), mins)
    twin = np.empty(n, np.intp)
    euclidean._nearest_numpy(X, mean, m2c, cn, cc, twin, np.empty(0, dtype), np.empty(0, dtype))
    full = np.empty(n, np.intp)
    euclidean._nearest_numpy(X, mean, m2c, cn, cc, full, np.empty(n, dtype), np.empty(0, dtype))
    np.testing.assert_array_equal(twin, full)
    with pytest.raises(ValueError, match="with_second needs with_costs"):
        kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc, with_second=True, with_costs=False)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
# direct, products, row search
@pytest.mark.parametrize(("d", "k"), [(2, 3), (64, 3), (64, 12), (24, 5), (256, 3)])
def test_euclidean_kernels_take_an_empty_block(dtype, d, k, monkeypatch):
    # zero rows: empty answers and untouched sums, compiled or not (the compiled kernels
    # stepped through their sub-blocks by zero rows before)
    rng = np.random.default_rng(d + k)
    _, mean, m2c, cn, cc, _ = _inputs(rng, 20, d, k, dtype)
    X = np.empty((0, d), dtype)
    weights = np.empty(0, dtype)
    for compiled in (True, False) if kernels.HAVE_NUMBA else (False,):
        monkeypatch.setattr(euclidean, "HAVE_NUMBA", compiled)
        for threads in (1, 2):
            sums, counts = np.ones((k, d)), np.ones(k)
            labels, mins = kernels.nearest_sq_euclidean(
                X, mean, m2c, cn, cc, n_threads=threads, sums=(weights, sums, counts)
            )
            assert labels.shape == (0,) and labels.dtype == np.intp
            assert mins.shape == (0,) and mins.dtype == dtype
            assert (sums == 1).all() and (counts == 1).all()
            labels, none = kernels.nearest_sq_euclidean(
                X, mean, m2c, cn, cc, n_threads=threads, with_costs=False
            )
            assert labels.shape == (0,) and none is None
            out = kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc, with_second=True)
            assert [a.shape for a in out] == [(0,), (0,), (0,)]
            costs = euclidean.sq_euclidean_costs(X, mean, m2c, cn, np.empty(0, dtype), threads)
            assert costs.shape == (0, k) and costs.dtype == dtype
        groups = np.arange(k, dtype=np.intp) % 2
        out = euclidean.nearest_groups_sq_euclidean(X, mean, m2c, cn, cc, groups, 2)
        assert [a.shape for a in out] == [(0,), (0,), (0, 2)]
        paired = euclidean.paired_sq_euclidean(X, mean, cc, np.empty(0, np.intp))
        assert paired.shape == (0,)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("n", "d", "k"), [(700, 64, 3), (600, 96, 24), (600, 400, 32), (513, 20, 200)]
)
def test_product_kernels_on_the_origin_read_the_rows_as_they_are(dtype, n, d, k):
    """Centered on +0.0 the product kernels skip the centered copy of the rows: the same
    bits as copying them (a mean of -0.0 takes the copy, and x - (-0.0) is x here)."""
    rng = np.random.default_rng(d + k)
    X = rng.normal(size=(n, d)).astype(dtype)
    C = X[rng.choice(n, size=k, replace=False)] + rng.normal(size=(k, d)).astype(dtype)
    origin, negative = np.zeros(d, dtype), np.full(d, -0.0, dtype)
    assert not kernels.direct_pays(d, k) and not (X == 0).any()
    shifted = np.empty(n * d + 1, dtype)[1:].reshape(n, d)  # one item off BLAS's alignment
    shifted[...] = X
    answers = []
    for mean, rows in ((origin, X), (negative, X), (origin, shifted)):
        cc, m2c, cn, _ = kernels.prepare_euclidean_centroids(C, mean, dtype)
        labels, mins, second = np.empty(n, np.intp), np.empty(n, dtype), np.empty(n, dtype)
        nearest_by_product(rows, mean, m2c, cn, cc, labels, mins, second)
        groups = np.arange(k) % 3
        found = kernels.nearest_groups_sq_euclidean(rows, mean, m2c, cn, cc, groups, 3)
        norms = kernels.centered_row_norms(rows, mean)
        costs = kernels.sq_euclidean_costs(rows, mean, m2c, cn, norms, n_threads=2)
        answers.append((labels, mins, second, *found, costs))
    for fast, copied, unaligned in zip(*answers, strict=True):
        np.testing.assert_array_equal(fast, copied)
        np.testing.assert_array_equal(fast, unaligned)
    if dtype == np.float64:  # and the right labels (float32 may break a near tie)
        np.testing.assert_array_equal(answers[0][0], cdist(X, C, "sqeuclidean").argmin(axis=1))


def test_the_kernels_cache_stamp_covers_every_kernel_module(tmp_path):
    """numba checks a cached kernel against a stamp of all the kernel modules, so that a
    change to one (a callee another kernel's compiled code holds) compiles them again."""
    from kmeansfw.kernels import _compile

    sources = sorted(p for p in os.listdir(_compile.KERNELS_DIR) if p.endswith(".py"))
    assert {"euclidean.py", "lloyd.py", "update.py", "_compile.py"} <= set(sources)
    copies = []
    for name in ("same", "again", "changed"):
        folder = tmp_path / name
        folder.mkdir()
        for source in sources:
            text = (pathlib.Path(_compile.KERNELS_DIR) / source).read_bytes()
            if name == "changed" and source == "euclidean.py":
                text += b"\n# one comment more\n"
            (folder / source).write_bytes(text)
        (folder / "notes.txt").write_text(name)  # not a module: not in the stamp
        copies.append(_compile.kernel_sources_stamp(str(folder)))
    same, again, changed = copies
    assert same == again == _compile.kernel_sources_stamp() and changed != same
    if not kernels.HAVE_NUMBA:
        return
    # every cached kernel of every kernel module is checked against that stamp
    checked = 0
    for source in sources:
        module = importlib.import_module(f"kmeansfw.kernels.{source[:-3]}")
        for value in vars(module).values():
            cache = getattr(value, "_cache", None)
            impl = getattr(cache, "_impl", None)
            if impl is None or getattr(value, "py_func", None) is None:
                continue
            if value.py_func.__module__ != module.__name__:
                continue  # imported from another kernel module: counted there
            assert isinstance(impl.locator, _compile.KERNEL_CACHE_LOCATORS)
            assert impl.locator.get_source_stamp() == _compile.kernel_sources_stamp()
            checked += 1
    assert checked > 40
    # a cached function elsewhere keeps numba's own locator and stamp of its file
    (tmp_path / "elsewhere.py").write_text(
        "import numba\n\n@numba.njit(cache=True)\ndef twice(x):\n    return 2 * x\n"
    )
    spec = importlib.util.spec_from_file_location("elsewhere", tmp_path / "elsewhere.py")
    elsewhere = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(elsewhere)
    locator = elsewhere.twice._cache._impl.locator
    assert not isinstance(locator, _compile.KERNEL_CACHE_LOCATORS)
    assert locator.get_source_stamp() != _compile.kernel_sources_stamp()



# the compiled kernels that the kernel functions below call (one thread), and which of
# their array arguments are inputs (X first, then the mean, weights, norms...)
_READ_ONLY_KERNELS = (
    ("euclidean", "_product_search", (0, 1, 8)),
    ("euclidean", "_direct_search", (0, 1, 8)),
    ("euclidean", "_direct_search_pair", (0, 1, 8)),
    ("euclidean", "_row_search", (0, 1, 8)),
    ("euclidean", "_sq_cost_numba", (0, 1, 4)),
    ("euclidean", "_nearest_groups_numba", (0, 1)),
    ("euclidean", "_paired_sq_numba", (0, 1)),
    ("euclidean", "_prepare_centroids_numba", (0, 1)),
    ("euclidean", "_centered_row_norms_numba", (0, 1)),
    ("lloyd", "_product_iterations", (0, 1, 2, 3)),
    ("lloyd", "_direct_iterations", (0, 1, 2, 3)),
    ("lloyd", "_pair_iterations", (0, 1, 2, 3)),
    ("lloyd", "_rows_iterations", (0, 1, 2, 3)),
    ("update", "_accumulate_numba", (0, 2)),
    ("update", "_add_members_numba", (0, 2)),
    ("seeding", "_plusplus_sq_euclidean_numba", (0, 1, 2, 3)),
    ("lp", "_l1_numba", (0,)),
)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernels_see_their_inputs_read_only_whatever_the_callers_flags(monkeypatch, dtype):
    # numba compiles a kernel per argument type and the writeable flag is part of it:
    # the kernel functions hand the kernels read-only views, so writable and read-only
    # inputs reach one compiled kernel, and the caller's arrays keep their flags
    from numba import typeof

    modules = {m: importlib.import_module(f"kmeansfw.kernels.{m}") for m, *_ in _READ_ONLY_KERNELS}
    seen: dict[str, set[tuple]] = {}

    def recording(kernel, name):
        def record(*args):
            types = tuple(typeof(a) for a in args if isinstance(a, np.ndarray))
            seen.setdefault(name, set()).add(types)
            return kernel(*args)

        return record

    for module_name, name, _ in _READ_ONLY_KERNELS:
        module = modules[module_name]
        monkeypatch.setattr(module, name, recording(getattr(module, name), name))
    lloyd = modules["lloyd"]
    rng = np.random.default_rng(7)
    n, d, k = 300, 16, 20
    for writable in (True, False):
        X, mean, m2c, cn, cc, C = _inputs(rng, n, d, k, dtype)
        X, mean = X.copy(), mean.copy()  # writable copies (_inputs freezes them)
        weights = np.ones(n, dtype)
        norms = kernels.centered_row_norms(X, mean)
        closest = kernels.sq_euclidean_costs(X, mean, m2c[:1], cn[:1], norms)[:, 0]
        labels = np.arange(n) % k
        for a in (X, mean, weights, C, norms):
            a.flags.writeable = writable
        sums = (weights, np.zeros((k, d)), np.zeros(k))
        kernels.nearest_sq_euclidean(X, mean, m2c, cn, cc, sums=sums)  # by products
        cc3, m2c3, cn3, _ = kernels.prepare_euclidean_centroids(C[:3], mean, dtype)
        kernels.nearest_sq_euclidean(X, mean, m2c3, cn3, cc3)  # the direct search
        kernels.sq_euclidean_costs(X, mean, m2c, cn, norms)
        euclidean.nearest_groups_sq_euclidean(X, mean, m2c, cn, cc, np.arange(k) % 4, 4)
        kernels.paired_sq_euclidean(X, mean, cc, labels)
        kernels.centered_row_norms(X, mean)
        lloyd.lloyd_iterations(X, mean, weights, C, None, 0.0, 2, 1, False)  # products
        lloyd.lloyd_iterations(X, mean, weights, C[:3], None, 0.0, 2, 1, False)  # direct
        pair = [a[..., :2].copy() for a in (X, mean, C)]  # two features: the pair search
        for a in pair:
            a.flags.writeable = writable
        lloyd.lloyd_iterations(pair[0], pair[1], weights, pair[2][:3], None, 0.0, 2, 1, False)
        cc2, m2c2, cn2, _ = kernels.prepare_euclidean_centroids(pair[2][:3], pair[1], dtype)
        kernels.nearest_sq_euclidean(pair[0], pair[1], m2c2, cn2, cc2)
        # twenty features, three centroids: the row search
        wide = [np.concatenate([a, a[..., :4]], axis=-1) for a in (X, mean, C)]
        for a in wide:
            a.flags.writeable = writable
        lloyd.lloyd_iterations(wide[0], wide[1], weights, wide[2][:3], None, 0.0, 2, 1, False)
        cc3w, m2c3w, cn3w, _ = kernels.prepare_euclidean_centroids(wide[2][:3], wide[1], dtype)
        kernels.nearest_sq_euclidean(wide[0], wide[1], m2c3w, cn3w, cc3w)
        kernels.add_weighted_cluster_sums(X, labels, weights, *sums[1:])
        kernels.add_cluster_members(X, labels, weights, *sums[1:], np.arange(k) % 2 == 0)
        draws = rng.random((3, 2))
        seeding.plusplus_sq_euclidean(X, mean, norms, weights, closest, 0, closest.sum(), draws)
        kernels.lp_block(X, C, kernels.L1)
        for a in (X, mean, weights, C, norms):  # the caller's arrays keep their flags
            assert a.flags.writeable == writable
    assert set(seen) == {name for _, name, _ in _READ_ONLY_KERNELS}
    for _, name, inputs in _READ_ONLY_KERNELS:
        assert len(seen[name]) == 1, (name, seen[name])  # one compiled kernel for both
        (kinds,) = seen[name]
        assert not any(kinds[i].mutable for i in inputs), (name, kinds)



def _compiled_code(dispatcher) -> list[tuple[str, str]]:
    # (signature, LLVM IR) of each of a compiled kernel's signatures in this process:
    # the code it was compiled to, or, loaded from numba's cache, the module numba keeps
    # for linking it into its callers
    found = []
    for signature, result in dispatcher.overloads.items():
        library = result.library
        texts = [str(m) for m in (library._final_module, library._shared_module) if m is not None]
        found.append((str(signature), max(texts, key=len)))
    return found


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
def test_compiled_kernels_hold_no_shape_check_error_formatting():
    # numba compiles an array assignment (``out[...] = a``, ``coef[:, :d] = c``,
    # ``points[j] = X[row]``, ``a[:] += b``) with a check of the shapes whose error
    # message it formats in compiled code (``raise_with_shape_context``): on a first fit
    # in an empty cache that took 4-5 s of compiling numba's string formatting, then
    # about a second more per further kind of assignment.  The kernels copy arrays
    # element by element instead (a number assigned to a slice, ``acc[:] = 0``, has no
    # such check).  Fits along the main paths, then every kmeansfw kernel compiled in
    # this process (by them or by earlier tests) is read.
    import kmeansfw
    from kmeansfw import KMeans, MiniBatchKMeans

    class Probe:
        @kmeansfw.hookimpl
        def kmeansfw_iteration_end(self, state):
            pass

    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        for d, k in ((2, 3), (8, 8), (20, 5), (32, 32)):
            X = rng.normal(size=(3000, d)).astype(dtype)
            for params in (
                {},
                {"observers": [Probe()]},
                {"assignment": "hamerly"},
                {"init": "k-means||"},
                {"distance": "manhattan"},
            ):
                model = KMeans(k, random_state=0, max_iter=3, **params).fit(X)
                model.predict(X[:100])
            MiniBatchKMeans(k, random_state=0, max_iter=2, batch_size=256).fit(X)
    modules = [
        __import__(f"kmeansfw.kernels.{path.stem}", fromlist=["_"])
        for path in sorted(pathlib.Path(kernels.__file__).parent.glob("*.py"))
    ]
    read, found = 0, []
    for module in modules:
        for name, value in vars(module).items():
            if getattr(getattr(value, "py_func", None), "__module__", None) != module.__name__:
                continue  # not a kernel, or imported from another kernel module
            for signature, code in _compiled_code(value):
                assert len(code) > 1000, (name, signature)  # the code, not an empty module
                read += 1
                if "raise_with_shape_context" in code:
                    found.append(f"{module.__name__}.{name}{signature}")
    assert read > 30
    assert found == []
