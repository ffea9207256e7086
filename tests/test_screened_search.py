"""The search that screens float64 rows with float32 products (kernels.screen_pays).

Its labels must be the exact comparison's wherever the comparison is not a tie within
float64 rounding: rows the float32 products cannot decide are searched again in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kmeansfw import kernels
from kmeansfw.kernels import euclidean, lloyd
from tests.conftest import serial_search

nearest_by_product = serial_search(False)

pytestmark = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")


def _search(X, mean, C, *, second=False):
    cc, m2c, cn, _ = kernels.prepare_euclidean_centroids(C, mean, np.dtype(np.float64))
    n = X.shape[0]
    out = np.empty(n, np.intp), np.empty(n), np.empty(n if second else 0)
    # read-only, as the public kernel functions hand them to the kernels
    X, mean = kernels.read_only(X), kernels.read_only(mean)
    nearest_by_product(X, mean, m2c, cn, cc, *out)
    return out, (cc, m2c, cn)


def _exact_values(X, mean, m2c, cn):
    """``||c||^2 - 2 x.c`` of the float64 centered rows and centroids, in long double."""
    rows = (X - mean).astype(np.longdouble)
    return rows @ m2c.astype(np.longdouble).T + cn.astype(np.longdouble)


def _check_exact(X, mean, C, *, most_clear=True):
    """The screened labels are the exact argmin wherever its lead exceeds float64's
    rounding; the costs are the paired kernel's, bit for bit."""
    n, d = X.shape
    assert kernels.screen_pays(d, C.shape[0], 8)
    (labels, mins, _), (cc, m2c, cn) = _search(X, mean, C)
    values = _exact_values(X, mean, m2c, cn)
    # float64 rounding of each value: of its product's terms and of its norm
    scale = np.abs(X - mean) @ np.abs(m2c).T + np.abs(cn)
    tolerance = (64 * d * np.finfo(np.float64).eps * scale).astype(np.longdouble)
    rows = np.arange(n)
    best = values.argmin(axis=1)
    reach = tolerance + tolerance[rows, best][:, None]  # either value's rounding
    chosen = values[rows, labels] - values[rows, best]
    assert np.all(chosen <= reach[rows, labels])  # never a centroid measurably farther
    lead = values - values[rows, best][:, None] - reach
    lead[rows, best] = np.inf
    clear = lead.min(axis=1) > 0  # rows whose nearest centroid no rounding can change
    assert clear.mean() > 0.5 or not most_clear  # the check has rows to check
    np.testing.assert_array_equal(labels[clear], best[clear])
    np.testing.assert_array_equal(kernels.paired_sq_euclidean(X, mean, cc, labels), mins)
    return labels


def test_the_screen_is_chosen_by_shape_and_dtype_only():
    pays = kernels.screen_pays
    assert pays(8, 16, 8) and pays(64, 256, 8) and pays(8, 256, 8) and pays(512, 16, 8)
    assert pays(128, 8, 8) and not pays(127, 8, 8) and not pays(256, 7, 8)
    assert not pays(7, 256, 8) and not pays(64, 15, 8) and not pays(513, 16, 8)
    assert not pays(64, 256, 4)  # float32 data: its own product


@pytest.mark.parametrize(
    ("n", "d", "k", "kind"),
    [
        (3000, 64, 256, "normal"), (1000, 8, 200, "normal"), (700, 300, 16, "normal"),
        (2500, 24, 32, "far"), (2500, 40, 17, "mixed scales"), (3000, 16, 64, "grid"),
        (1, 32, 20, "normal"), (600, 130, 8, "normal"), (513, 9, 17, "normal"),
    ],
)
def test_screened_labels_are_the_exact_comparisons(n, d, k, kind):
    rng = np.random.default_rng(n + d + k)
    if kind == "grid":  # small integers: many exact ties, to the lowest index
        X = rng.integers(0, 3, size=(n, d)).astype(np.float64)
    elif kind == "far":  # far from the origin, centered on the mean
        X = rng.normal(size=(n, d)) + 1e6
    elif kind == "mixed scales":
        X = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-8, 8, size=d)
    else:
        X = rng.normal(size=(n, d))
    C = X[rng.integers(0, n, size=k)] + (kind != "grid") * rng.normal(size=(k, d)) * X.std(0)
    mean = X.mean(axis=0)
    _check_exact(X, mean, C, most_clear=n > 1)  # one row: the centroids are that row
    # on the origin (the rows read as they are) too: far from it, float64's rounding
    # of ||c||^2 - 2 x.c exceeds most rows' leads, and those are not checked
    _check_exact(X, np.zeros(d), C, most_clear=n > 1 and kind != "far")


def test_rows_the_float32_products_cannot_decide_are_searched_in_float64():
    # pairs of centroids 1e-6 apart (relative to the rows' scale): float32 products
    # (about 1e-5 of it off) cannot tell which is nearer, float64 ones can
    rng = np.random.default_rng(0)
    d, k, n = 32, 16, 4000
    base = rng.normal(size=(k // 2, d))
    step = rng.normal(size=(k // 2, d)) * 1e-6
    C = np.concatenate([base, base + step])
    X = base[rng.integers(0, k // 2, size=n)] + rng.normal(size=(n, d)) * 0.3
    mean = np.zeros(d)
    labels = _check_exact(X, mean, C)
    # the test has teeth: a search with float32 products alone gets many rows wrong
    _, m2c, cn = kernels.prepare_euclidean_centroids(C, mean, np.dtype(np.float64))[:3]
    rough = X.astype(np.float32) @ m2c.astype(np.float32).T + cn
    exact = _exact_values(X, mean, m2c, cn).argmin(axis=1)
    assert (rough.argmin(axis=1) != exact).sum() > n // 20
    np.testing.assert_array_equal(labels, exact)


def test_screened_ties_go_to_the_lowest_index():
    # every row halfway between centroids 0 and 1 (exact in binary), centroid 2 a copy
    # of centroid 0, the rest far: centroid 0 wins
    d, k = 16, 16
    C = np.zeros((k, d))
    C[0, 0], C[1, 0], C[2, 0] = 1.0, -1.0, 1.0
    C[3:, 2] = 10.0 + np.arange(k - 3)
    X = np.zeros((300, d))
    X[:, 1] = np.arange(300) % 5
    (labels, mins, _), _ = _search(X, np.zeros(d), C)
    np.testing.assert_array_equal(labels, 0)
    np.testing.assert_array_equal(mins, 1 + X[:, 1] ** 2)


def test_screened_labels_do_not_depend_on_the_split():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2100, 48))
    C = X[:40] + rng.normal(size=(40, 48)) * 0.1
    mean = X.mean(axis=0)
    (labels, mins, _), (cc, m2c, cn) = _search(X, mean, C)
    (shifted, shifted_mins, _), _ = _search(X[7:], mean, C)  # every sub-block moves
    np.testing.assert_array_equal(shifted, labels[7:])
    np.testing.assert_array_equal(shifted_mins, mins[7:])
    kernels._compile.parallel_ready()
    for chunks in (2, 3, 5):
        par = np.full(2100, -1, np.intp), np.full(2100, np.nan), np.empty(0)
        empty = kernels.read_only(np.empty(0)), 1, np.empty((0, 1, 1)), np.empty((0, 1))
        rows, origin = kernels.read_only(X), kernels.read_only(mean)
        lloyd.threaded_search(False, rows, origin, m2c, cn, cc, *par, *empty, True, chunks)
        np.testing.assert_array_equal(par[0], labels)
        np.testing.assert_array_equal(par[1], mins)


def test_the_runner_up_search_is_not_screened_and_agrees():
    # a bound-based search needs the runner-up's distance: the float64 product gives it,
    # and its labels agree with the screened ones
    rng = np.random.default_rng(4)
    X = rng.normal(size=(1500, 64))
    C = X[:32] * 0.5
    mean = X.mean(axis=0)
    (labels, mins, _), _ = _search(X, mean, C)
    (with_second, second_mins, second), _ = _search(X, mean, C, second=True)
    np.testing.assert_array_equal(with_second, labels)
    np.testing.assert_array_equal(second_mins, mins)
    assert np.all(second >= mins)


@pytest.mark.parametrize("scale", [1e-150, 1e-20, 1e20, 1e70])
@pytest.mark.parametrize("where", ["rows", "centroids", "both"])
def test_values_past_float32s_range_are_searched_in_float64(scale, where):
    # rows or centroids whose float32 copies would underflow or overflow: the margins
    # (or the norm limits) send them to the float64 search, the labels stay exact
    rng = np.random.default_rng(5)
    d, k = 24, 20
    X = rng.normal(size=(700, d))
    C = rng.normal(size=(k, d))
    if where in ("rows", "both"):
        X = X * scale
    if where in ("centroids", "both"):
        C = C * scale
    _check_exact(X, np.zeros(d), C)


@settings(max_examples=60, deadline=None)
@given(
    d=st.integers(1, 300),
    row_exponent=st.integers(-160, 17),
    centroid_exponent=st.integers(-160, 17),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_margin_bounds_the_float32_products_error(d, row_exponent, centroid_exponent, seed):
    # screen_margins: |float32 product - exact product| <= (a ||x|| + b) / 2.01 for
    # every row and centroid (BLAS's float32 product, NumPy's as the kernel's), values
    # spread over many binades, subnormal ones in float32 included, norms up to the
    # search's limit (past it nothing is screened)
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(40, d)) * 10.0 ** rng.uniform(-3, 3, size=(40, d))
    rows *= 10.0**row_exponent
    minus_2c = rng.normal(size=(9, d)) * 10.0 ** rng.uniform(-3, 3, size=(9, d))
    minus_2c *= 10.0**centroid_exponent
    limit = euclidean.SCREEN_MAX_NORM
    keep = np.sqrt((rows**2).sum(axis=1)) <= limit
    assume(keep.any() and np.sqrt((minus_2c**2).sum(axis=1)).max() / 2 <= limit)
    rows = rows[keep]
    largest = np.sqrt((minus_2c**2).sum(axis=1).max()) / 2 * (1 + 1e-6)
    a, b = euclidean.screen_margins(d, largest)
    rough = (rows.astype(np.float32) @ minus_2c.astype(np.float32).T).astype(np.longdouble)
    exact = rows.astype(np.longdouble) @ minus_2c.astype(np.longdouble).T
    norms = np.sqrt((rows.astype(np.longdouble) ** 2).sum(axis=1))
    bound = (a * norms + b) / 2.01
    assert np.all(np.abs(rough - exact) <= bound[:, None])


def _screen_directly(X, mean, C):
    cc, m2c, cn, _ = kernels.prepare_euclidean_centroids(C, mean, np.dtype(np.float64))
    n = X.shape[0]
    labels, mins = np.empty(n, np.intp), np.empty(n)
    read_only = kernels.read_only  # as the kernel functions hand them to the kernels
    empty = read_only(np.empty(0)), 1, np.empty((0, 1, 1)), np.empty((0, 1))
    again = euclidean._screened_search(
        read_only(X), read_only(mean), m2c, cn, cc, labels, mins, np.empty(0), *empty, False
    )
    return again, labels


def test_the_screened_search_says_how_many_rows_it_searched_again():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(5000, 64))
    C = X[:64] * 0.5
    again, labels = _screen_directly(X, X.mean(axis=0), C)
    assert 0 <= again < 50  # standard normal rows: a few at most
    (searched, _, _), _ = _search(X, X.mean(axis=0), C)
    np.testing.assert_array_equal(labels, searched)  # _product_search's answer
    # centroids past the norm limit: declined, nothing written
    far = C.copy()
    far[3] *= 2.0**62
    assert _screen_directly(X, np.zeros(64), far)[0] == -1


def test_sub_blocks_of_undecided_rows_take_the_float64_product():
    # pairs of centroids 1e-6 apart, which the float32 products cannot tell apart: every
    # row is within its margin, the sub-blocks take the float64 product, the labels
    # stay exact
    rng = np.random.default_rng(7)
    d, k, n = 16, 24, 3000
    base = rng.normal(size=(k // 2, d))
    C = np.concatenate([base, base + rng.normal(size=(k // 2, d)) * 1e-6])
    X = base[rng.integers(0, k // 2, size=n)] + rng.normal(size=(n, d)) * 0.3
    mean = np.zeros(d)
    again, _ = _screen_directly(X, mean, C)
    assert again > n // 2
    _check_exact(X, mean, C)
    # and ties there go to the lowest index too (every row tied)
    C2 = np.zeros((k, d))
    C2[0, 0], C2[1, 0], C2[2, 0] = 1.0, -1.0, 1.0
    C2[3:, 2] = 3.0
    T = np.zeros((300, d))
    T[:, 1] = np.arange(300) % 5
    again, labels = _screen_directly(T, np.zeros(d), C2)
    assert again == 300
    np.testing.assert_array_equal(labels, 0)


def test_centroids_of_very_different_norms_are_searched_in_float64():
    # one centroid far out (an outlier drawn as a centroid) would widen every margin:
    # the search declines (-1) and the float64 search answers
    rng = np.random.default_rng(8)
    X = rng.normal(size=(2000, 32))
    C = X[:40] * 0.5
    assert _screen_directly(X, np.zeros(32), C)[0] >= 0
    C[7] *= 100.0
    again, _ = _screen_directly(X, np.zeros(32), C)
    assert again == -1
    (labels, _, _), _ = _search(X, np.zeros(32), C)
    exact = _exact_values(X, np.zeros(32), -2 * C, (C**2).sum(axis=1)).argmin(axis=1)
    np.testing.assert_array_equal(labels, exact)


def test_the_screen_is_chosen_by_the_datas_type_when_a_kernel_compiles():
    # euclidean._screened (what the product search calls) runs the screened search for
    # float64 data (True: it answered) and, compiled for float32 data, nothing (False)
    import numba

    @numba.njit(cache=False)
    def screened(X, mean, m2c, cn, cc, labels, mins, second, weight, rows, sums, counts):
        return euclidean._screened(
            X, mean, m2c, cn, cc, labels, mins, second, weight, rows, sums, counts, False
        )

    answers = {}
    for dtype in (np.float64, np.float32):
        X = np.random.default_rng(9).normal(size=(300, 32)).astype(dtype)
        mean = X.mean(axis=0).astype(dtype)
        cc, m2c, cn, _ = kernels.prepare_euclidean_centroids(X[:20], mean, np.dtype(dtype))
        labels = np.full(300, -1, np.intp)
        out = labels, np.empty(300, dtype), np.empty(0, dtype)
        empty = np.empty(0, dtype), 1, np.empty((0, 1, 1)), np.empty((0, 1))
        answers[dtype] = screened(X, mean, m2c, cn, cc, *out, *empty), labels
    assert answers[np.float64][0] is True and answers[np.float32][0] is False
    assert np.all(answers[np.float64][1] >= 0) and np.all(answers[np.float32][1] == -1)
