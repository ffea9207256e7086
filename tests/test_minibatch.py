"""Mini-batch k-means (batch_size) and partial_fit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import MiniBatchKMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

import kmeansfw
from kmeansfw import KMeans, StrategyError


@pytest.fixture(scope="module")
def data():
    return make_blobs(30000, n_features=8, centers=12, cluster_std=1.5, random_state=2)


def test_minibatch_quality_matches_sklearn(data):
    X, y = data
    ours = [KMeans(12, batch_size=1024, random_state=s).fit(X).inertia_ for s in range(5)]
    theirs = [
        MiniBatchKMeans(12, batch_size=1024, random_state=s, n_init=1).fit(X).inertia_
        for s in range(5)
    ]
    assert np.median(ours) <= 1.02 * np.median(theirs)


def test_minibatch_is_deterministic_and_labels_match_centroids(data):
    X, _ = data
    a = KMeans(12, batch_size=512, random_state=3).fit(X)
    b = KMeans(12, batch_size=512, random_state=3).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, a.predict(X))
    assert a.n_iter_ >= 1


def test_partial_fit_streams_to_a_good_clustering(data):
    X, y = data
    km = KMeans(12, random_state=0)
    for chunk in np.array_split(X, 30):
        km.partial_fit(chunk)
    assert km.cluster_centers_.shape == (12, 8) and km.n_steps_ == 30
    full = KMeans(12, random_state=0).fit(X)
    assert adjusted_rand_score(full.labels_, km.predict(X)) > 0.9
    assert km.labels_.shape == (X.shape[0] // 30,)
    again = KMeans(12, random_state=0)
    for chunk in np.array_split(X, 30):
        again.partial_fit(chunk)
    np.testing.assert_array_equal(again.cluster_centers_, km.cluster_centers_)


def test_partial_fit_checks_features_and_update(data):
    X, _ = data
    km = KMeans(12, random_state=0).partial_fit(X[:1000])
    with pytest.raises(ValueError, match="X has 3 features"):
        km.partial_fit(X[:100, :3])
    with pytest.raises(StrategyError, match="'median' cannot run mini-batch k-means"):
        KMeans(3, distance="manhattan").partial_fit(X[:1000])
    with pytest.raises(StrategyError, match="'median' cannot run mini-batch k-means"):
        KMeans(3, distance="manhattan", batch_size=100).fit(X[:1000])


@pytest.mark.parametrize("cls", [KMeans, kmeansfw.MiniBatchKMeans])
@pytest.mark.parametrize("fit_first", [False, True])
def test_partial_fit_refuses_a_changed_n_clusters(data, cls, fit_first):
    X, _ = data
    model = cls(4, random_state=0)
    model.fit(X[:500]) if fit_first else model.partial_fit(X[:500])
    before = model.cluster_centers_.copy()
    model.set_params(n_clusters=6)
    with pytest.raises(ValueError, match="n_clusters is 6, but the fitted model has 4"):
        model.partial_fit(X[500:1000])
    np.testing.assert_array_equal(model.cluster_centers_, before)  # nothing changed
    assert clone(model).partial_fit(X[:500]).cluster_centers_.shape == (6, 8)
    assert model.fit(X[:500]).partial_fit(X[500:1000]).cluster_centers_.shape == (6, 8)


@pytest.mark.parametrize("model_dtype", [np.float64, np.float32])
def test_partial_fit_continues_in_the_models_dtype(data, model_dtype):
    # a batch of the other dtype is converted: one float32 batch no longer rounds a
    # float64 model to float32 for good (nor widens a float32 one)
    X = data[0]
    other = np.float32 if model_dtype == np.float64 else np.float64
    mixed = kmeansfw.MiniBatchKMeans(5, random_state=0).partial_fit(X[:500].astype(model_dtype))
    same = kmeansfw.MiniBatchKMeans(5, random_state=0).partial_fit(X[:500].astype(model_dtype))
    batch = X[500:1000].astype(other)
    before = batch.copy()
    mixed.partial_fit(batch)
    same.partial_fit(batch.astype(model_dtype))
    assert mixed.cluster_centers_.dtype == model_dtype
    np.testing.assert_array_equal(mixed.cluster_centers_, same.cluster_centers_)
    np.testing.assert_array_equal(batch, before)  # the caller's batch untouched
    if model_dtype == np.float32:  # values float32 cannot hold: refused, model kept
        centers = mixed.cluster_centers_.copy()
        with pytest.raises(ValueError, match="fitted in float32 .* up to 1e\\+300"):
            mixed.partial_fit(np.full((10, X.shape[1]), 1e300))
        np.testing.assert_array_equal(mixed.cluster_centers_, centers)


def test_starved_centroids_move_to_batch_samples():
    from kmeansfw.core.data import FitData
    from kmeansfw.engine.loop import OnlineState
    from kmeansfw.strategies.update import reassign_starved

    batch = FitData.build(np.arange(40.0).reshape(20, 2), n_clusters=4)
    centroids = np.zeros((4, 2))
    online = OnlineState(np.array([100.0, 80.0, 0.5, 90.0]))
    online.since_reassign = 30  # 10 k samples are due after this batch of 20
    rng = np.random.default_rng(0)
    assert reassign_starved(batch, centroids, online, rng) == 1
    moved = centroids[2]
    assert any(np.array_equal(moved, row) for row in batch.X)  # a batch sample
    np.testing.assert_array_equal(centroids[[0, 1, 3]], 0)
    assert online.seen[2] == 80.0  # the smallest weight among the others
    assert online.since_reassign == 0
    assert reassign_starved(batch, centroids, online, rng) == 0  # not due again yet
    zero = OnlineState(np.array([100.0, 0.0, 0.0, 1.0]), reassignment_ratio=0.0)
    assert reassign_starved(batch, centroids, zero, rng) == 0


def test_reassignment_rescues_a_centroid_seeded_far_from_the_data():
    X, _ = make_blobs(20000, n_features=2, centers=4, cluster_std=0.5, random_state=0)
    init = np.vstack([X[[0, 1, 2]], [[1000.0, 1000.0]]])  # a centroid nothing reaches
    with pytest.warns(ConvergenceWarning, match="distinct clusters"):  # only ratio 0
        fits = {
            ratio: KMeans(
                4,
                init=init,
                batch_size=256,
                reassignment_ratio=ratio,
                empty="keep",
                random_state=1,
            ).fit(X)
            for ratio in (0.0, 0.01)
        }
    # without reassignment the far centroid never gets a sample and stays where it is
    np.testing.assert_array_equal(fits[0.0].cluster_centers_[3], [1000.0, 1000.0])
    assert np.unique(fits[0.0].labels_).size == 3
    assert np.unique(fits[0.01].labels_).size == 4
    assert fits[0.01].inertia_ < 0.8 * fits[0.0].inertia_
    again = KMeans(4, init=init, batch_size=256, empty="keep", random_state=1).fit(X)
    np.testing.assert_array_equal(again.cluster_centers_, fits[0.01].cluster_centers_)
    # the empty-cluster slot is honoured in mini-batch mode too: a centroid that has
    # absorbed no weight is empty, and relocate-farthest moves it even without reassignment
    rescued = KMeans(4, init=init, batch_size=256, reassignment_ratio=0.0, random_state=1)
    assert np.unique(rescued.fit(X).labels_).size == 4


def test_partial_fit_reassigns_too():
    X, _ = make_blobs(20000, n_features=2, centers=4, cluster_std=0.5, random_state=0)
    init = np.vstack([X[[1, 2, 3]], [[1000.0, 1000.0]]])
    streamed = {}
    for ratio in (0.0, 0.01):
        km = KMeans(4, init=init, reassignment_ratio=ratio, empty="keep", random_state=0)
        for chunk in np.array_split(X, 40):
            km.partial_fit(chunk)
        streamed[ratio] = km
    assert streamed[0.0]._online[0].reassigned == 0
    assert streamed[0.01]._online[0].reassigned >= 1
    # scores are minus the inertia: half the inertia or less
    assert -streamed[0.01].score(X) < 0.5 * -streamed[0.0].score(X)


@pytest.mark.parametrize("cls", [KMeans, kmeansfw.MiniBatchKMeans])
def test_partial_fit_reads_a_changed_reassignment_ratio(cls):
    # set_params between batches applies from the next call, as in scikit-learn (it was
    # kept from the first call: reassignment could not be turned on mid-stream)
    X, _ = make_blobs(3000, centers=3, random_state=0)
    init = np.vstack([X[:3], [[1e3, 1e3]]])
    km = cls(4, init=init, reassignment_ratio=0.0, empty="keep", random_state=0)
    theirs = MiniBatchKMeans(4, init=init, n_init=1, reassignment_ratio=0.0, random_state=0)
    for rows in np.array_split(np.arange(1000), 4):
        km.partial_fit(X[rows])
        theirs.partial_fit(X[rows])
    np.testing.assert_array_equal(km.cluster_centers_[3], [1e3, 1e3])  # starved, kept
    km.set_params(reassignment_ratio=0.5)
    theirs.set_params(reassignment_ratio=0.5)
    for rows in np.array_split(np.arange(1000, 3000), 8):
        km.partial_fit(X[rows])
        theirs.partial_fit(X[rows])
    assert km._online[0].reassigned >= 1
    assert np.abs(km.cluster_centers_).max() < 100  # the starved centroid moved into X
    assert np.abs(theirs.cluster_centers_).max() < 100
    for bad in (-1.0, float("nan"), True, "abc"):  # checked on every call too
        km.set_params(reassignment_ratio=bad)
        with pytest.raises(kmeansfw.InvalidParameterError, match="'reassignment_ratio'"):
            km.partial_fit(X[:100])


def test_label_criteria_see_the_rows_previous_labels():
    """Mini-batch steps compare a batch's labels with those its rows had when last drawn,
    so label-based criteria (``unchanged``, ``tol``'s strict rule) can fire."""
    from kmeansfw.strategies.convergence import Callback

    X, _ = make_blobs(2000, n_features=2, centers=3, cluster_std=0.3, random_state=0)
    seen = []

    def record(state):
        seen.append((state.previous_labels.copy(), state.labels.copy(), state.n_changed))
        return False

    KMeans(3, batch_size=500, max_iter=2, convergence=Callback(record), random_state=0).fit(X)
    first, labels, changed = seen[0]
    assert (first == -1).all() and changed == 500  # nothing drawn before: all changed
    later = seen[-1][0]
    assert (later >= 0).mean() > 0.5  # most rows of a later batch were drawn before
    assert all(n == np.count_nonzero(p != lab) for p, lab, n in seen)
    km = KMeans(3, batch_size=500, convergence="unchanged", random_state=0, history=True).fit(X)
    assert km.n_iter_ < 2000 * 300 // 500  # stopped on unchanged labels, not max_iter
    assert km.history_[-1]["n_changed"] == 0


def test_no_improvement_stop_is_not_convergence():
    from kmeansfw import MiniBatchKMeans, fit

    X, _ = make_blobs(5000, n_features=4, centers=5, random_state=1)
    km = MiniBatchKMeans(5, batch_size=100, random_state=0).fit(X)
    assert km.stop_reason_ == "no-improvement" and not km.converged_
    tol = MiniBatchKMeans(5, batch_size=100, tol=1e-2, max_no_improvement=None).fit(X)
    assert tol.stop_reason_ == "converged" and tol.converged_
    capped = MiniBatchKMeans(5, batch_size=500, max_iter=1, max_no_improvement=None).fit(X)
    assert capped.stop_reason_ == "max_iter" and capped.n_steps_ == 10 and capped.n_iter_ == 1
    result = fit(X, n_clusters=5, batch_size=100, random_state=0, convergence="time-budget")
    assert result.result.stop_reason in ("no-improvement", "converged")
    assert result.result.converged == (result.result.stop_reason == "converged")


def test_minibatch_seeds_on_init_size_rows_n_init_times():
    from kmeansfw import MiniBatchKMeans

    X, _ = make_blobs(3000, n_features=2, centers=4, random_state=2)
    sizes = []

    def first_rows(data, n_clusters, rng):
        sizes.append(data.shape[0])
        return data[rng.choice(data.shape[0], n_clusters, replace=False)]

    MiniBatchKMeans(4, init=first_rows, init_size=120, n_init=4, batch_size=50).fit(X)
    assert sizes == [120] * 4
    sizes.clear()
    MiniBatchKMeans(4, init=first_rows, batch_size=50, random_state=0).fit(X)
    assert sizes == [150] * 3  # 3 * batch_size rows; "auto": 3 seedings for a function
    a = MiniBatchKMeans(4, init="random", n_init=5, batch_size=64, random_state=7).fit(X)
    b = MiniBatchKMeans(4, init="random", n_init=5, batch_size=64, random_state=7).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


def test_minibatch_checks_the_update_and_takes_extra_criteria():
    from kmeansfw import MiniBatchKMeans

    X, _ = make_blobs(2000, n_features=3, centers=3, random_state=3)
    with pytest.raises(StrategyError, match="'median' cannot run mini-batch k-means"):
        MiniBatchKMeans(3, distance="manhattan", batch_size=100).fit(X)
    km = MiniBatchKMeans(3, distance="cosine", batch_size=200, random_state=0).fit(X)
    assert [s for s, _, _ in km._strategies].count("convergence") == 0
    extra = MiniBatchKMeans(3, convergence="unchanged", batch_size=200, random_state=0).fit(X)
    assert [s for s, _, _ in extra._strategies].count("convergence") == 1
