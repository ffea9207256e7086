"""float32 far from the origin: the same clusters as float64 on the same values.

Tight blobs moved to 1e4 and 1e6: float32 keeps about 7 digits, so a kernel that forms
``||x||^2 - 2 x.c + ||c||^2`` on uncentered rows, or sums in float32, loses the clusters.
Each case runs with the compiled kernels and with their NumPy twins (what
``KMEANSFW_NUMBA=0`` selects), switched in-process.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

import kmeansfw
from kmeansfw import kernels
from kmeansfw.kernels import bounds, checks, convergence, euclidean, lp, seeding, update
from tests.conftest import exact_nearest, two_far_groups

_MODULES = (bounds, checks, convergence, euclidean, lp, seeding, update)


@pytest.fixture(params=["compiled", "numpy"])
def kernel_kind(request, monkeypatch):
    """Run the test with the compiled kernels, then with their NumPy twins."""
    if request.param == "compiled" and not kernels.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    if request.param == "numpy":
        for module in _MODULES:
            monkeypatch.setattr(module, "HAVE_NUMBA", False)
    return request.param


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(
        5000, centers=4, n_features=4, cluster_std=0.05, center_box=(-1, 1), random_state=1
    )


@pytest.mark.parametrize("offset", [1e4, 1e6])
@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_float32_far_from_the_origin_finds_the_float64_clusters(blobs, offset, init, kernel_kind):
    B, truth = blobs
    X32 = (offset + B).astype(np.float32)
    X64 = X32.astype(np.float64)  # the same values
    for seed in (0, 1):
        single = kmeansfw.KMeans(4, init=init, random_state=seed).fit(X32)
        double = kmeansfw.KMeans(4, init=init, random_state=seed).fit(X64)
        # one seed per true cluster: the blobs are found exactly, as in float64
        assert adjusted_rand_score(truth, single.labels_) == 1.0
        if init == "k-means++":  # the same draws pick the same seeds
            np.testing.assert_array_equal(single.labels_, double.labels_)
        # (k-means|| keeps each sample with a probability from its cost, so float32
        # rounding may keep other candidates: the same clusters, maybe in another order)
        # float32 centroids are rounded to float32's spacing at the offset (0.0625 at
        # 1e6), which adds about n d spacing^2 / 12 to the inertia, nothing more
        spacing = float(np.spacing(np.float32(offset)))
        slack = X32.shape[0] * X32.shape[1] * spacing**2 / 12
        assert double.inertia_ <= single.inertia_ <= 1.05 * (double.inertia_ + slack)


@pytest.mark.parametrize("offset", [1e4, 1e6])
def test_float32_seeding_costs_are_accurate_far_from_the_origin(blobs, offset, kernel_kind):
    """The cost blocks seeding reads equal float64 brute force to float32 rounding."""
    B = blobs[0]
    X = np.ascontiguousarray((offset + B).astype(np.float32))
    C = X[[0, 1, 2, 3]]
    mean = X.astype(np.float64).mean(axis=0).astype(np.float32)
    centered, minus_2c, c_norms, _ = kernels.prepare_euclidean_centroids(C, mean, X.dtype)
    norms = kernels.centered_row_norms(X, mean)
    costs = kernels.sq_euclidean_costs(X, mean, minus_2c, c_norms, norms)
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    exact = ((X64[:, None, :] - C64[None, :, :]) ** 2).sum(axis=2)
    scale = float(((X64 - mean) ** 2).sum(axis=1).max())  # the costs' magnitude
    np.testing.assert_allclose(costs, exact, atol=1e-5 * scale)


def test_numpy_twin_sums_in_float64(blobs):
    """The mean update's NumPy twin accumulates float32 rows in float64, as the kernel."""
    X = np.ascontiguousarray((1e6 + blobs[0]).astype(np.float32))
    labels = blobs[1].astype(np.intp)
    w = np.ones(X.shape[0], np.float32)
    sums, weights = np.zeros((4, 4)), np.zeros(4)
    update._accumulate_numpy(X, labels, w, sums, weights, update.sum_group_rows(len(X), 4))
    X64 = X.astype(np.float64)
    expected = np.stack([X64[labels == j].sum(axis=0) for j in range(4)])
    np.testing.assert_allclose(sums, expected, rtol=1e-15)
    np.testing.assert_array_equal(weights, np.bincount(labels, minlength=4))


@pytest.mark.parametrize("offset", [1e4, 1e6])
def test_float32_k_means_parallel_round_costs_are_accurate_far_from_the_origin(
    blobs, offset, kernel_kind
):
    """k-means||'s rounds (the fused nearest search, then the lowering of the running
    costs) give each sample its float64 brute-force cost to float32 rounding."""
    from kmeansfw import Config
    from kmeansfw.core.data import FitData
    from kmeansfw.engine import loop as engine
    from kmeansfw.engine import plugins
    from kmeansfw.strategies import init

    X = np.ascontiguousarray((offset + blobs[0]).astype(np.float32))
    hooks = plugins.build(Config(n_clusters=4, init="k-means||").build_strategies())
    data = engine.setup(hooks, FitData.build(X, n_clusters=4, memory_budget=1 << 15))
    closest = np.full(X.shape[0], np.inf, dtype=np.float32)
    nearest = np.zeros(X.shape[0], dtype=np.intp)
    rounds = [X[[0]], X[[1, 2, 3, 4, 5]]]
    init._lower_with(hooks, data, rounds[0], closest, nearest, 0)  # in place
    init._lower_with(hooks, data, rounds[1], closest, nearest, 1)
    X64, C64 = X.astype(np.float64), np.vstack(rounds).astype(np.float64)
    exact = ((X64[:, None, :] - C64[None, :, :]) ** 2).sum(axis=2)
    scale = float(((X64 - X64.mean(axis=0)) ** 2).sum(axis=1).max())
    np.testing.assert_allclose(closest, exact.min(axis=1), atol=1e-5 * scale)
    np.testing.assert_allclose(exact[np.arange(X.shape[0]), nearest], exact.min(axis=1),
                               atol=1e-5 * scale)


@pytest.mark.parametrize(
    ("dtype", "refused", "kept"), [(np.float32, 1e-17, 1e-14), (np.float64, 1e-148, 1e-144)]
)
@pytest.mark.parametrize("distance", ["euclidean", "sqeuclidean"])
def test_data_spread_too_little_for_its_squares_is_refused(blobs, dtype, refused, kept, distance):
    # the other end of the scale: squared distances that come near the smallest normal
    # number lose their digits and then round to zero (1e-25 in float32: one cluster,
    # inertia 0, no error before); refused with the reason, the data left as it was
    X = blobs[0].astype(dtype)
    reference = kmeansfw.KMeans(4, distance=distance, random_state=0).fit(X).labels_
    tiny = (X * dtype(refused)).astype(dtype)
    before = tiny.copy()
    for model in (kmeansfw.KMeans(4, distance=distance), kmeansfw.MiniBatchKMeans(4)):
        with pytest.raises(kmeansfw.StrategyError, match="spreads only about .* rescale it"):
            model.fit(tiny)
    np.testing.assert_array_equal(tiny, before)
    small = (X * dtype(kept)).astype(dtype)  # just above the limit: the same clusters
    labels = kmeansfw.KMeans(4, distance=distance, random_state=0).fit(small).labels_
    assert adjusted_rand_score(reference, labels) == 1.0
    constant = np.full((50, 3), 1e-30, dtype=dtype)  # no spread at all: one cluster
    assert kmeansfw.KMeans(1).fit(constant).inertia_ == 0.0


def test_float32_labels_left_to_the_rounding_are_warned_of():
    # two groups of clusters far apart: no origin keeps both near it, and float32's
    # rounding of the squared distances picks most labels (scikit-learn's float32 fit
    # too); a warning says so, and it is true: the labels are not the nearest centroids
    X = two_far_groups(np.float32)
    with pytest.warns(kmeansfw.PrecisionWarning, match=r"rounding gave \d+ of the 256 rows"):
        km = kmeansfw.KMeans(10, random_state=0).fit(X)
    wrong = np.count_nonzero(km.labels_ != exact_nearest(X, km.cluster_centers_, 0.0)[0])
    assert wrong > X.shape[0] // 10
    with pytest.warns(kmeansfw.PrecisionWarning, match="fit the data as float64"):
        km.predict(X)
    with pytest.warns(kmeansfw.PrecisionWarning):
        kmeansfw.MiniBatchKMeans(10, random_state=0).fit(X)
    with warnings.catch_warnings():  # the same values in float64, or near each other
        warnings.simplefilter("error", kmeansfw.PrecisionWarning)
        km64 = kmeansfw.KMeans(10, random_state=0).fit(X.astype(np.float64))
        assert (km64.labels_ == exact_nearest(X, km64.cluster_centers_, 0.0)[0]).all()
        near = two_far_groups(np.float32, offset=10.0)
        kmeansfw.KMeans(10, random_state=0).fit(near).predict(near)
        kmeansfw.MiniBatchKMeans(10, random_state=0).fit(near)
        # rows far from every centroid: nearest by far, whatever the rounding
        kmeansfw.KMeans(10, random_state=0).fit(near).predict(near + np.float32(1e6))


def test_a_float32_stream_drifting_far_from_its_first_centre_is_warned_of():
    # the origin is learned on the first batch; a stream that drifts 1e5 away, into
    # clusters a few units apart, is compared on it: the batches' labels are warned of
    X = two_far_groups(np.float32, offset=0.0)
    model = kmeansfw.MiniBatchKMeans(5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", kmeansfw.PrecisionWarning)
        model.partial_fit(X[:1000])
    far = X[1000:] + np.float32(1e5)
    with pytest.warns(kmeansfw.PrecisionWarning):
        for _ in range(20):
            model.partial_fit(far)


class _SecondEverySeventh:
    """An approximate assignment: each row's nearest centroid, but every seventh row's
    second nearest (as an approximate search may answer)."""

    name = "second-every-seventh"
    accepts_sparse = False

    @kmeansfw.hookimpl
    def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, with_costs):
        diff = np.asarray(X, np.float64)[:, None, :] - centroids.astype(np.float64)[None]
        order = np.argsort(np.einsum("ijk,ijk->ij", diff, diff), axis=1, kind="stable")
        labels = order[:, 0].copy()
        labels[::7] = order[::7, 1]
        return labels.astype(np.intp), None


def test_labels_an_assignment_chose_farther_are_not_taken_for_rounding():
    # a label farther than float32's rounding could explain came from the assignment
    # itself (a plugin's approximate search): no PrecisionWarning, whose remedy would not
    # help
    X = two_far_groups(np.float32, offset=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", kmeansfw.PrecisionWarning)
        km = kmeansfw.KMeans(5, assignment=_SecondEverySeventh(), random_state=0, max_iter=3)
        km.fit(X)
    assert np.count_nonzero(km.labels_ != exact_nearest(X, km.cluster_centers_, 0.0)[0]) > 500


def test_centroids_no_rounding_can_mislabel_by_are_judged_soundly():
    # predict skips its check where rounding_can_mislabel says no row, wherever it lies,
    # can be mislabelled by float32's rounding: then no drawn row ever is, near the
    # centroids, on their bisectors or far out (a check of the bound on many layouts)
    from kmeansfw.strategies.euclidean import precision_problem, rounding_can_mislabel

    rng = np.random.default_rng(0)
    judged = {True: 0, False: 0}
    for _ in range(200):
        k, d = int(rng.integers(2, 12)), int(rng.integers(1, 20))
        offset = 10.0 ** rng.uniform(-2, 6)
        centroids = (rng.normal(size=(k, d)) * 10.0 ** rng.uniform(-3, 1) + offset).astype(
            np.float32
        )
        fitted = {"euclidean.mean": np.zeros(d, np.float32), "euclidean.at_origin": True}
        risky = rounding_can_mislabel(centroids, fitted)
        judged[risky] += 1
        if risky:
            continue
        a, b = rng.integers(0, k, size=(2, 300))
        t = rng.uniform(0, 1, size=(300, 1))
        rows = np.concatenate(
            [
                centroids[a] * t + centroids[b] * (1 - t),  # between pairs, bisectors too
                centroids[a] + rng.normal(size=(300, d)) * 10.0 ** rng.uniform(-4, 7),
            ]
        ).astype(np.float32)
        # labels as float32's own expansion picks them (the searches' rounding)
        x, c = rows.astype(np.float32), centroids
        scores = (c * c).sum(axis=1)[None, :] - np.float32(2) * (x @ c.T)
        labels = scores.argmin(axis=1)
        assert precision_problem(rows, labels, centroids, fitted) is None
    assert judged[True] > 10 and judged[False] > 10  # both kinds of layout were drawn


def test_predict_judges_the_centroids_it_is_given():
    # predict judges a model's centroids once: again when they changed (in place too),
    # and without a table for a model that cannot be hashed (a subclass with __eq__)
    near = two_far_groups(np.float32, offset=0.0)
    far = near + np.float32(1e5)
    model = kmeansfw.KMeans(5, n_init=1, random_state=0).fit(near)
    with warnings.catch_warnings():
        warnings.simplefilter("error", kmeansfw.PrecisionWarning)
        model.predict(near)  # judged: no rounding can mislabel by these
    model.cluster_centers_ += np.float32(1e5)  # the clusters moved far from the origin
    with pytest.warns(kmeansfw.PrecisionWarning, match=r"of the 64 rows checked"):
        labels = model.predict(far)
    assert np.count_nonzero(labels != exact_nearest(far, model.cluster_centers_, 0.0)[0]) > 400

    class Equal(kmeansfw.KMeans):
        def __eq__(self, other):
            return type(other) is type(self) and self.get_params() == other.get_params()

    equal = Equal(5, n_init=1, random_state=0).fit(near)
    np.testing.assert_array_equal(equal.predict(near), equal.labels_)
    equal.cluster_centers_ += np.float32(1e5)
    with pytest.warns(kmeansfw.PrecisionWarning):
        equal.predict(far)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 9 of 10
def test_kmedoids_float32_labels_left_to_the_rounding_are_warned_of():
    # with the Euclidean distances' search (sqeuclidean; its euclidean metric compares
    # exact differences, and labels these rows right)
    X = two_far_groups(np.float32, n=1200)
    with pytest.warns(kmeansfw.PrecisionWarning, match="rows checked"):
        medoids = kmeansfw.KMedoids(10, metric="sqeuclidean", random_state=0).fit(X)
    with pytest.warns(kmeansfw.PrecisionWarning, match="rows checked"):
        medoids.predict(X)
