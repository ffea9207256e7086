"""The strategy catalog of issue 3: distances, updates, pairing, seeding, stopping, empties."""

from __future__ import annotations

import csv
import pathlib
import types
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from scipy.stats import trim_mean
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

import kmeansfw
from kmeansfw import Config, ConfigError, KMeans, PairingWarning, StrategyError
from kmeansfw.core.data import FitData
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins, steps
from kmeansfw.strategies.assignment import Nearest
from kmeansfw.strategies.distances import _unit_rows
from kmeansfw.strategies.euclidean import Euclidean
from tests.conftest import cluster_at_the_origin, exact_nearest, with_far_outlier

DATA = pathlib.Path(__file__).parent / "data"


def _pairwise(distance, X, C, name="kmeansfw_distance"):
    cfg = Config(n_clusters=C.shape[0], distance=distance)
    hooks = plugins.build(cfg.build_strategies())
    data = engine.setup(hooks, FitData.build(X, n_clusters=C.shape[0]))
    return steps.pairwise(hooks, data, C.astype(data.dtype), name=name)


CDIST = [
    ("euclidean", "euclidean", {}),
    ("sqeuclidean", "sqeuclidean", {}),
    ("manhattan", "cityblock", {}),
    ("chebyshev", "chebyshev", {}),
    ({"name": "minkowski", "p": 1}, "minkowski", {"p": 1}),
    ({"name": "minkowski", "p": 1.5}, "minkowski", {"p": 1.5}),
    ({"name": "minkowski", "p": 3}, "minkowski", {"p": 3}),
    ("cosine", "cosine", {}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("ours", "metric", "kwargs"), CDIST)
def test_distances_equal_cdist(ours, metric, kwargs, dtype, rng):
    X = (rng.normal(size=(700, 6)) * 2 + 0.5).astype(dtype)
    C = (rng.normal(size=(9, 6)) + 0.5).astype(dtype)
    got = _pairwise(ours, X, C)
    assert got.dtype == dtype
    expected = cdist(X.astype(np.float64), C.astype(np.float64), metric, **kwargs)
    rtol, atol = (1e-4, 1e-4) if dtype == np.float32 else (1e-10, 1e-10)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("offset", [0.0, 1e6])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mahalanobis_equals_cdist(rng, dtype, offset):
    # far from the origin too: rows and centroids are centered before the products
    # (float32 at 1e6 lost the differences in products of the raw rows)
    A = rng.normal(size=(5, 5))
    X = (rng.normal(size=(600, 5)) @ A + offset).astype(dtype)
    C = X[:7]
    VI = np.linalg.inv(np.cov(X.astype(np.float64).T))
    expected = cdist(X.astype(np.float64), C.astype(np.float64), "mahalanobis", VI=VI)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    for spec in ("mahalanobis", {"name": "mahalanobis", "VI": VI.tolist()}):
        np.testing.assert_allclose(_pairwise(spec, X, C), expected, rtol=rtol, atol=rtol)


def test_every_distance_declares_its_geometry():
    for entry in kmeansfw.CATALOG.entries("distance"):
        if entry.source != "built-in":
            continue
        strategy = entry.factory()
        assert isinstance(strategy.objective, str) and strategy.objective
        assert strategy.natural_update in kmeansfw.CATALOG.names("update")
        assert isinstance(strategy.is_metric, bool)


@pytest.mark.parametrize(
    ("distance", "update"),
    [
        ("euclidean", "mean"),
        ("sqeuclidean", "mean"),
        ("manhattan", "median"),
        ("chebyshev", "mean"),
        ({"name": "minkowski", "p": 1}, "median"),
        ({"name": "minkowski", "p": 1.5}, "median"),
        ({"name": "minkowski", "p": 3}, "mean"),
        ("cosine", "spherical"),
        ("mahalanobis", "mean"),
    ],
)
def test_natural_update_is_the_default(distance, update):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PairingWarning)
        strategies = Config(distance=distance).build_strategies()
    chosen = dict((slot, s) for slot, _, s in strategies)["update"]
    assert chosen.name == update


def test_mismatched_pair_warns_with_the_update_to_use():
    with pytest.warns(PairingWarning, match="update 'mean' does not minimize.*use update='median'"):
        Config(distance="manhattan", update="mean").build_strategies()


def test_cosine_spherical_matches_sklearn_on_normalized_data():
    directions = np.eye(5)[:4] * 10  # blobs in distinct directions (text-like topics)
    X, _ = make_blobs(1500, n_features=5, centers=directions, cluster_std=1.5, random_state=3)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    init = unit[np.random.default_rng(0).choice(len(X), 4, replace=False)]
    ours = KMeans(4, distance="cosine", init=init).fit(X)
    sk = SkKMeans(4, init=init, n_init=1, algorithm="lloyd").fit(unit)
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    np.testing.assert_allclose(np.linalg.norm(ours.cluster_centers_, axis=1), 1.0)


def test_float32_cosine_inertia_matches_its_float64_recomputation():
    # blobs far from the origin: costs near 1e-3, where an error in a float32 centroid's
    # unit norm (shared by all its members) shows; the centroids are scaled in float64
    X, _ = make_blobs(3000, n_features=8, centers=12, cluster_std=2.5, random_state=0)
    X = (X + 50.0).astype(np.float32)
    km = KMeans(12, distance="cosine", init=X[::250][:12].copy()).fit(X)
    costs = cdist(X.astype(np.float64), km.cluster_centers_.astype(np.float64), "cosine")
    exact = costs[np.arange(len(X)), km.labels_].sum()
    assert exact < 1e-2 * len(X)  # the small costs this test is about
    assert km.inertia_ == pytest.approx(exact, rel=1e-5)  # 2e-5 off with float32 scaling
    # what the fix is, independent of the BLAS: unit vectors rounded once from float64
    # are within 2^-24 of norm one (scaled in float32: 7e-8 to 1.1e-7 off here)
    rows = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32) + 50
    for vectors in (km.cluster_centers_, rows):
        unit = _unit_rows(vectors, "rows", in_float64=True)
        assert unit.dtype == np.float32
        norms = np.linalg.norm(unit.astype(np.float64), axis=1)
        assert np.abs(norms - 1).max() <= 2**-24


def test_spherical_runs_its_own_map_step_without_partials():
    # random-partition seeding and an emptied cluster (relocate-farthest) ask the update
    # for centroids without a map step: the update's own accumulate runs on all rows
    directions = np.eye(5)[:4] * 10
    X, _ = make_blobs(1500, n_features=5, centers=directions, cluster_std=1.5, random_state=3)
    seeded = KMeans(4, distance="cosine", init="random-partition", random_state=0).fit(X)
    np.testing.assert_allclose(np.linalg.norm(seeded.cluster_centers_, axis=1), 1.0)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    init = np.repeat(unit[:2], 2, axis=0)  # duplicated centroids: two clusters start empty
    emptied = KMeans(4, distance="cosine", init=init, n_init=1).fit(X)
    assert len(np.unique(emptied.labels_)) == 4
    np.testing.assert_allclose(np.linalg.norm(emptied.cluster_centers_, axis=1), 1.0)


def test_a_mean_subclass_whose_map_step_takes_no_data_still_updates():
    # kmeansfw_accumulate gained ``data``; an override written before it still works,
    # through the hooks and when the update runs its own map step (an emptied cluster)
    from kmeansfw.strategies.update import Mean

    class OlderMean(Mean):
        name = "older-mean"

        @kmeansfw.hookimpl
        def kmeansfw_accumulate(self, X, labels, sample_weight, n_clusters, partial):
            partial = partial or self.new_partial(X, n_clusters)
            kmeansfw.kernels.add_weighted_cluster_sums(X, labels, sample_weight, *partial)
            return partial

    X, _ = make_blobs(600, centers=3, random_state=0)
    init = np.repeat(X[:2], [1, 2], axis=0)  # a duplicated centroid: one cluster empty
    ours = KMeans(3, init=init, n_init=1, update=OlderMean()).fit(X)
    mean = KMeans(3, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(ours.labels_, mean.labels_)
    # its own map, not offered to the search, sums the same groups: the same bits
    assert not kmeansfw.core.distance.describe(OlderMean()).sums_map
    np.testing.assert_array_equal(ours.cluster_centers_, mean.cluster_centers_)


def _brute_force(X, init, distance, update, iterations=100):
    C = init.copy()
    for _ in range(iterations):
        labels = cdist(X, C, distance).argmin(axis=1)
        new = np.array([update(X[labels == j], C[j]) for j in range(len(C))])
        if np.array_equal(new, C):
            break
        C = new
    return labels, C


def _medoid(members, _):
    return members[cdist(members, members, "cityblock").sum(axis=1).argmin()]


def test_manhattan_median_matches_brute_force_k_medians(rng):
    X = rng.normal(size=(120, 3)) + np.repeat(rng.normal(size=(4, 3)) * 5, 30, axis=0)
    init = X[[0, 30, 60, 90]]
    labels, C = _brute_force(X, init, "cityblock", lambda m, c: np.median(m, axis=0))
    km = KMeans(4, distance="manhattan", init=init, convergence="unchanged").fit(X)
    np.testing.assert_array_equal(km.labels_, labels)
    np.testing.assert_allclose(km.cluster_centers_, C)


def test_medoid_matches_brute_force_k_medoids(rng):
    X = rng.normal(size=(90, 2)) + np.repeat(rng.normal(size=(3, 2)) * 4, 30, axis=0)
    init = X[[1, 31, 61]]
    labels, C = _brute_force(X, init, "cityblock", _medoid)
    with pytest.warns(PairingWarning):
        km = KMeans(
            3, distance="manhattan", update="medoid", init=init, convergence="unchanged"
        ).fit(X)
    np.testing.assert_array_equal(km.labels_, labels)
    np.testing.assert_allclose(km.cluster_centers_, C)
    assert all((X == c).all(axis=1).any() for c in km.cluster_centers_)


def test_medoid_with_sampled_candidates_is_bounded_and_monotone(rng):
    X = rng.normal(size=(3000, 2))
    km = KMeans(
        2,
        distance="euclidean",
        update={"name": "medoid", "max_candidates": 50, "block_rows": 256},
        random_state=0,
        history=True,
        max_iter=10,
    )
    with pytest.warns(PairingWarning):
        km.fit(X)
    objectives = [r["objective"] for r in km.history_]
    assert np.all(np.diff(objectives) <= 1e-9 * np.abs(objectives[:-1]))


@pytest.mark.filterwarnings("ignore::kmeansfw.PairingWarning")
def test_sampled_medoids_never_raise_a_cosine_objective():
    # the current medoid stays a candidate: found as a zero cost, it was lost under cosine,
    # where a row's cost to itself rounds to 1e-16, and a worse sample replaced it
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4)) + rng.integers(0, 3, size=(600, 1)) * 2 + 5
    update = {"name": "medoid", "max_candidates": 4}
    for seed in range(12):
        km = KMeans(
            3, distance="cosine", update=update, convergence="centroids-unchanged",
            random_state=seed, history=True, max_iter=30,
        ).fit(X)
        objectives = np.array([r["objective"] for r in km.history_])
        assert np.all(np.diff(objectives) <= 1e-12 * objectives[:-1]), (seed, objectives)


@pytest.mark.filterwarnings("ignore::kmeansfw.PairingWarning")
@pytest.mark.parametrize("convergence", ["tol", "unchanged"])
@pytest.mark.parametrize(
    "update", ["pam", {"name": "medoid", "max_candidates": 8}], ids=["pam", "sampled-medoid"]
)
def test_labels_match_centroids_moved_without_a_label_changing(update, convergence):
    # a medoid swap moves a centroid while no label changes: the run stops (labels
    # unchanged), and the final assignment must still follow, or labels_ and inertia_
    # describe the centroids before the swap
    X = np.random.default_rng(0).normal(size=(300, 2))
    X[:100] += 4
    for seed in range(4):
        km = KMeans(4, update=update, convergence=convergence, random_state=seed).fit(X)
        np.testing.assert_array_equal(km.labels_, km.predict(X))
        nearest = ((X[:, None] - km.cluster_centers_[None]) ** 2).sum(axis=2).min(axis=1)
        assert km.inertia_ == pytest.approx(nearest.sum(), rel=1e-12)


def test_weighted_median_and_trimmed_mean(rng):
    values = rng.normal(size=(41, 3))
    counts = rng.integers(1, 4, size=41)
    repeated = np.repeat(values, counts, axis=0)
    zeros = np.zeros(41, dtype=np.intp)
    data = FitData.build(values, counts.astype(float), n_clusters=1)
    from kmeansfw.strategies.update import Median, TrimmedMean

    median, _ = Median().kmeansfw_update(
        data=data, labels=zeros, centroids=values[:1], n_clusters=1
    )
    lower = np.sort(repeated, axis=0)[(len(repeated) - 1) // 2]
    np.testing.assert_allclose(median[0], lower)
    unit = FitData.build(values[:40], n_clusters=1)
    trimmed, _ = TrimmedMean(trim=0.1).kmeansfw_update(
        data=unit, labels=zeros[:40], centroids=values[:1], n_clusters=1
    )
    np.testing.assert_allclose(trimmed[0], trim_mean(values[:40], 0.1, axis=0))


@pytest.mark.parametrize("update", ["trimmed-mean", "weighted median"])
def test_per_feature_updates_keep_their_temporaries_within_the_budget(update):
    # the feature chunks counted four temporaries of their shape; a weighted quantile
    # makes about ten, so trimmed-mean (and the weighted median) took 2-2.5x the budget
    # (263 MB at 1M x 16 with the 64 MB default on two threads; 128 MB now)
    import tracemalloc

    from kmeansfw.strategies.update import Median, TrimmedMean

    rng = np.random.default_rng(7)
    X = rng.normal(size=(20_000, 64))
    weights = rng.random(20_000) + 0.5 if update == "weighted median" else None
    data = FitData.build(X, weights, n_clusters=1, n_threads=1)
    strategy = TrimmedMean(memory_budget_mb=8) if update == "trimmed-mean" else Median(8)
    labels = np.zeros(20_000, dtype=np.intp)
    tracemalloc.start()
    try:
        new, _ = strategy.kmeansfw_update(
            data=data, labels=labels, centroids=X[:1], n_clusters=1
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= (8 + 1) * 2**20, peak / 2**20
    if update == "trimmed-mean":
        np.testing.assert_allclose(new[0], trim_mean(X, 0.1, axis=0), rtol=1e-9, atol=1e-12)


# pairs whose natural update is the exact minimizer of the objective (chebyshev's and
# minkowski p >= 2's mean is the measured best, not an exact minimizer)
NATURAL = [
    "euclidean",
    "sqeuclidean",
    "manhattan",
    {"name": "minkowski", "p": 1},
    "cosine",
    "mahalanobis",
]


@settings(max_examples=30, deadline=None)
@given(
    distance=st.sampled_from(NATURAL),
    n=st.integers(12, 200),
    d=st.integers(2, 4),
    k=st.integers(1, 6),
    seed=st.integers(0, 10**6),
)
def test_objective_never_increases_for_natural_pairs(distance, n, d, k, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + rng.normal(size=(1, d)) * 3 + 5
    km = KMeans(min(k, n), distance=distance, random_state=seed, history=True, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct clusters on tiny data
        km.fit(X)
    objectives = np.array([r["objective"] for r in km.history_])
    assert np.all(np.diff(objectives) <= 1e-9 * np.abs(objectives[:-1]) + 1e-12)


@pytest.mark.parametrize(
    "init", ["random-partition", "farthest-first", "random", "k-means++", "k-means||"]
)
def test_seeding_strategies(init, blobs):
    X, y = blobs
    a = KMeans(5, init=init, n_init=1, random_state=3).fit(X)
    b = KMeans(5, init=init, n_init=1, random_state=3).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert np.isfinite(a.cluster_centers_).all()
    assert adjusted_rand_score(y, a.labels_) > 0.5


def test_kmeans_parallel_as_good_as_sklearn_kmeans_plus_plus():
    X, _ = make_blobs(20000, n_features=6, centers=25, cluster_std=2.0, random_state=3)
    ours = [KMeans(25, init="k-means||", random_state=s).fit(X).inertia_ for s in range(5)]
    theirs = [SkKMeans(25, random_state=s).fit(X).inertia_ for s in range(5)]
    assert np.median(ours) <= np.median(theirs) * (1 + 1e-9)


def test_farthest_first_picks_the_farthest_points():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [5.0, 0.0], [0.0, 7.0]])
    seen = []

    class Capture:
        @kmeansfw.hookimpl
        def kmeansfw_fit_start(self, state):
            seen.append(state.centroids.copy())

    for seed in range(5):
        KMeans(3, init="farthest-first", random_state=seed, observers=[Capture()], max_iter=1).fit(
            X
        )
    assert {tuple(C[0]) for C in seen} != {tuple(seen[0][0])}  # the first is random
    for C in seen:  # then each is the point farthest from those chosen (Gonzalez)
        chosen = [C[0]]
        for _ in range(2):
            chosen.append(X[cdist(X, np.array(chosen)).min(axis=1).argmax()])
        np.testing.assert_array_equal(C, np.array(chosen))


def test_callable_init(blobs):
    X, _ = blobs

    def first_rows(X, k, rng):
        return X[:k] + rng.normal(scale=1e-9, size=(k, X.shape[1]))

    km = KMeans(5, init=first_rows, random_state=0).fit(X)
    assert km.cluster_centers_.shape == (5, 4)


def test_objective_and_time_budget_criteria(blobs):
    X, _ = blobs
    strict = KMeans(5, init="random", n_init=1, random_state=1, tol=0).fit(X)
    loose = KMeans(
        5, init="random", n_init=1, random_state=1, convergence={"name": "objective", "rtol": 0.05}
    ).fit(X)
    assert loose.n_iter_ < strict.n_iter_
    quick = KMeans(
        5,
        init="random",
        n_init=1,
        random_state=1,
        convergence={"name": "time-budget", "seconds": 0},
    ).fit(X)
    assert quick.n_iter_ == 1


def test_any_all_combinations_from_toml(blobs):
    X, _ = blobs
    text = """
n_clusters = 5
init = "random"
n_init = 1
random_state = 1
tol = 0.0

[convergence]
name = "all"
criteria = ["tol", {name = "time-budget", seconds = 3600}]
"""
    never = KMeans.from_config(text).fit(X)  # the time budget is never reached
    assert never.n_iter_ == 300  # max_iter: "all" waits for the budget too
    anyof = KMeans.from_config(text.replace('"all"', '"any"')).fit(X)
    strict = KMeans(5, init="random", n_init=1, random_state=1, tol=0).fit(X)
    assert anyof.n_iter_ == strict.n_iter_ < 300
    with pytest.raises(ConfigError, match="criteria"):
        Config(convergence={"name": "any", "criteria": []})


def _degenerate(rng):
    points = rng.normal(size=(5, 2)) * 10
    X = np.repeat(points, 15, axis=0) + rng.normal(scale=0.01, size=(75, 2))
    init = np.repeat(points[:1], 5, axis=0) + 1e-6 * np.arange(5)[:, None]
    return X, init


@pytest.mark.parametrize("empty", ["relocate-farthest", "split-largest"])
def test_empty_strategies_end_with_k_nonempty_clusters(empty, rng):
    X, init = _degenerate(rng)
    km = KMeans(5, init=init, empty=empty).fit(X)
    assert np.unique(km.labels_).size == 5
    assert np.isfinite(km.cluster_centers_).all()


def test_split_largest_separates_members_lying_across_faiss_s_direction():
    # points along the diagonal: faiss's alternating signs (+, -) push the two halves
    # across the members, which were then tied and went to the lower index, leaving the
    # new cluster empty for the rest of the fit; a drawn direction separates them
    t = np.arange(100.0)
    X = np.c_[t, t]
    init = np.array([[0.0, 0.0], [1e4, -1e4], [2e4, -1e4]])
    for seed in range(5):
        km = KMeans(3, init=init, empty="split-largest", n_init=1, random_state=seed).fit(X)
        assert np.bincount(km.labels_, minlength=3).min() > 0, seed
        _labels_describe_the_centroids(km, X)
    a = KMeans(3, init=init, empty="split-largest", n_init=1, random_state=7).fit(X)
    b = KMeans(3, init=init, empty="split-largest", n_init=1, random_state=7).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


def _labels_describe_the_centroids(km, X):
    """labels_ and inertia_ are those of the final centroids (what predict and score
    compute from cluster_centers_)."""
    np.testing.assert_array_equal(km.labels_, km.predict(X))
    assert km.inertia_ == pytest.approx(-km.score(X), rel=1e-12, abs=1e-12)


def test_a_relocation_in_the_last_iteration_is_followed_by_an_assignment():
    # labels unchanged in the iteration whose empty cluster was moved onto a sample: a
    # strict stop would keep the labels (and objective) of the centroids before the move
    X = np.array([[0.0, 2], [1, 0], [0, 2], [1, 2], [0, 2], [1, 0]])
    init = np.array([[1.16, 0.97], [2.18, -0.47], [-0.73, 1.37], [0.35, 2.48]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct points than clusters
        for params in ({}, {"assignment": "nearest", "convergence": "unchanged"}):
            km = KMeans(4, init=init, n_init=1, **params).fit(X)
            _labels_describe_the_centroids(km, X)
            assert km.inertia_ == 0.0
        a, b, c = [0.0, 1], [1.0, -1], [0.0, -2]
        Y = np.array([a, a, b, b, c, a, b, a, b, c, b, a, a, c, a, c, a])
        medoids = kmeansfw.KMedoids(3, random_state=0).fit(Y)
        np.testing.assert_array_equal(medoids.labels_, medoids.predict(Y))
        assert medoids.inertia_ == -medoids.score(Y) == 0.0


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, 2**16),
    st.integers(2, 5),
    st.sampled_from(["relocate-farthest", "split-largest"]),
    st.sampled_from(["euclidean", "manhattan"]),
)
def test_labels_match_the_final_centroids_with_duplicates(seed, k, empty, distance):
    g = np.random.default_rng(seed)
    X = g.integers(0, 3, size=(int(g.integers(k, 14)), 2)).astype(float)  # duplicates
    init = g.uniform(-1, 3, size=(k, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(k, init=init, n_init=1, empty=empty, distance=distance).fit(X)
    _labels_describe_the_centroids(km, X)


def test_keep_and_raise(rng):
    from sklearn.exceptions import ConvergenceWarning

    X, init = _degenerate(rng)
    far = init.copy()
    far[4] = 1e4  # never the closest centroid of any sample
    with pytest.warns(ConvergenceWarning, match="distinct clusters"):
        km = KMeans(5, init=far, empty="keep").fit(X)
    np.testing.assert_array_equal(km.cluster_centers_[4], far[4])
    with pytest.raises(StrategyError, match="empty strategy 'raise'.*became empty"):
        KMeans(5, init=init, empty="raise").fit(X)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"distance": {"name": "minkowski", "p": 0}}, "p must be > 0"),
        ({"distance": {"name": "minkowski", "p": -2}}, "p must be > 0"),
        ({"distance": {"name": "mahalanobis", "VI": [[1, 0], [0, 0]]}}, "singular"),
        ({"distance": {"name": "mahalanobis", "VI": [[1, 2], [0, 1]]}}, "not symmetric"),
        ({"update": {"name": "trimmed-mean", "trim": 0.5}}, r"trim must be .*\[0, 0.5\)"),
        ({"update": {"name": "medoid", "max_candidates": 0}}, "max_candidates"),
        ({"empty": {"name": "split-largest", "eps": 2}}, "eps"),
        ({"convergence": {"name": "objective", "rtol": -1}}, "rtol"),
        ({"init": {"name": "k-means||", "oversampling": 0}}, "oversampling must be > 0"),
        ({"init": {"name": "k-means||", "rounds": -1}}, "rounds must be an integer"),
    ],
)
def test_bad_parameters_fail_at_config_time(values, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_dict(values)


@pytest.mark.filterwarnings("ignore::kmeansfw.PairingWarning")  # trimmed-mean's pairing
def test_numpy_numbers_are_parameters_as_python_ones(rng):
    from kmeansfw.strategies.empty import SplitLargest
    from kmeansfw.strategies.update import TrimmedMean


    # a NumPy scalar from a computed grid of settings: accepted as the number it is
    X = rng.normal(size=(60, 2))
    init = X[:4].copy()
    init[3] = 1e6  # far from every row: its cluster empties at the first step
    split = {"name": "split-largest", "eps": 0.25}
    plain = KMeans(4, init=init, empty=split, random_state=0).fit(X)
    for eps in (np.float32(0.25), np.float64(0.25)):
        km = KMeans(4, init=init, empty={**split, "eps": eps}, random_state=0).fit(X)
        np.testing.assert_array_equal(km.labels_, plain.labels_)
        km = KMeans(4, init=init, empty=SplitLargest(eps=eps), random_state=0).fit(X)
        np.testing.assert_array_equal(km.labels_, plain.labels_)
    with pytest.raises(ConfigError, match="eps"):
        Config.from_dict({"empty": {"name": "split-largest", "eps": np.bool_(True)}})
    plain = KMeans(3, update={"name": "trimmed-mean", "trim": 0.25}, random_state=0).fit(X)
    km = KMeans(3, update=TrimmedMean(trim=np.float32(0.25)), random_state=0).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, plain.cluster_centers_)


def test_data_dependent_errors_name_the_strategy(rng):
    X = rng.normal(size=(50, 3))
    X[7] = 0
    with pytest.raises(StrategyError, match="distance strategy 'cosine'.*zero norm.*index 7"):
        KMeans(2, distance="cosine").fit(X)
    collinear = np.column_stack([X[:, 0], 2 * X[:, 0], X[:, 1]])
    with pytest.raises(StrategyError, match="'mahalanobis'.*singular"):
        KMeans(2, distance="mahalanobis").fit(collinear)


def _cities():
    with open(DATA / "cities.csv") as fh:
        rows = list(csv.DictReader(fh))
    X = np.array([[float(r["latitude"]), float(r["longitude"])] for r in rows])
    return X, [r["region"] for r in rows]


def test_geo_plugin_clusters_cities_by_great_circle_distance():
    from sklearn.metrics.pairwise import haversine_distances

    X, regions = _cities()
    entry = kmeansfw.CATALOG.lookup("distance", "haversine")
    assert entry.source.startswith("kmeansfw-geo ")
    km = KMeans(4, distance="haversine", random_state=0, n_init=5).fit(X)
    assert adjusted_rand_score(regions, km.labels_) == 1.0
    km_to_centroids = haversine_distances(np.radians(X), np.radians(km.cluster_centers_))
    np.testing.assert_allclose(km.transform(X), km_to_centroids * 6371.0088, rtol=1e-9)
    # the Pacific cluster straddles the date line; plain Euclidean on degrees splits it
    euclid = KMeans(4, random_state=0, n_init=5).fit(X)
    assert adjusted_rand_score(regions, euclid.labels_) < 1.0


def test_geo_plugin_rejects_bad_latitudes():
    X, _ = _cities()
    X[3, 0] = 95.0
    with pytest.raises(StrategyError, match="haversine.*latitudes must lie in"):
        KMeans(4, distance="haversine").fit(X)
    with pytest.raises(ConfigError, match="radius"):
        Config(distance={"name": "haversine", "radius": -1})
    # the update's parameters: max_steps 0 or -1 skipped its steps, tol -1 was taken
    for params in ({"max_steps": 0}, {"max_steps": -1}, {"max_steps": 2.5}, {"tol": -1.0},
                   {"max_steps": True}, {"tol": float("nan")}):
        with pytest.raises(ConfigError, match=f"geodesic-mean: {next(iter(params))} must"):
            Config(update={"name": "geodesic-mean", **params})
    assert Config(update={"name": "geodesic-mean", "max_steps": np.int64(5), "tol": 0})


def test_every_strategy_is_documented():
    docs = (pathlib.Path(__file__).parents[1] / "docs" / "strategies.md").read_text()
    for entry in kmeansfw.CATALOG.entries():
        if entry.source == "built-in":
            assert f"`{entry.name}`" in docs, (entry.slot, entry.name)
            for parameter in entry.parameters():
                assert f"`{parameter}`" in docs, (entry.name, parameter)


def test_auto_init_is_kmeans_plus_plus_on_small_data_and_parallel_on_large():
    from kmeansfw.strategies.init import AutoInit, KMeansParallel, KMeansPlusPlus

    X, _ = make_blobs(3000, n_features=4, centers=6, random_state=0)
    auto = AutoInit()
    assert isinstance(auto.choice(150, 8), KMeansPlusPlus)
    assert isinstance(auto.choice(1_000_000, 256), KMeansParallel)
    assert isinstance(AutoInit(min_work=100).choice(20, 5), KMeansParallel)
    assert KMeans(6).get_params()["init"] == "auto"
    # same seed, same draws: the default equals the seeding it picked
    for min_work, named in ((10**9, "k-means++"), (1, "k-means||")):
        picked = KMeans(6, init={"name": "auto", "min_work": min_work}, random_state=3).fit(X)
        plain = KMeans(6, init=named, random_state=3).fit(X)
        np.testing.assert_array_equal(picked.cluster_centers_, plain.cluster_centers_)
    with pytest.raises(ConfigError, match="min_work must be a positive integer"):
        Config(init={"name": "auto", "min_work": 0})


def _plusplus_centroids(X, k, seed, sample_weight=None):
    cfg = Config(n_clusters=k, init="k-means++")
    hooks = plugins.build(cfg.build_strategies())
    data = engine.setup(hooks, FitData.build(X, sample_weight, n_clusters=k))
    return steps.initialize(hooks, data, k, np.random.default_rng(seed)), data


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kmeans_plus_plus_from_the_sample_cost_matrix_equals_the_steps(monkeypatch, dtype):
    """Small data seeds from one (n, n) cost block; the centroids are those of the
    step-by-step path (the same draws, the same costs)."""
    from kmeansfw.strategies import init

    X = make_blobs(200, n_features=3, centers=5, random_state=2)[0].astype(dtype)
    weights = np.random.default_rng(0).uniform(0, 3, 200)
    for seed, sw in ((0, None), (1, weights), (2, None)):
        C, data = _plusplus_centroids(X, 7, seed, sw)
        assert init._pairwise_pays(data, 7)
        with monkeypatch.context() as patch:
            patch.setattr(init, "PAIRWISE_MAX_ENTRIES", 0)
            assert not init._pairwise_pays(data, 7)
            stepwise, _ = _plusplus_centroids(X, 7, seed, sw)
        np.testing.assert_allclose(C, stepwise, rtol=0, atol=0)
        assert C.dtype == dtype


class _CostSpy:
    """Counts the fit's calls of the distance's cost hook (a wrapper: pluggy then
    relays it, and the fast path steps aside)."""

    def __init__(self):
        self.calls = 0

    @kmeansfw.hookimpl(wrapper=True)
    def kmeansfw_cost(self):
        self.calls += 1
        return (yield)


class _OwnCost(Euclidean):
    """Euclidean with its own cost hook: the inherited fast path no longer stands in."""

    @kmeansfw.hookimpl
    def kmeansfw_cost(self, X, rows, data, cache):
        return super().kmeansfw_cost(X=X, rows=rows, data=data, cache=cache)


_NEEDS_NUMBA = pytest.mark.skipif(
    not kmeansfw.kernels.HAVE_NUMBA, reason="the one call is numba's (the steps stand in)"
)


@_NEEDS_NUMBA
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "shape", [(1797, 64, 10), (3000, 8, 40), (2500, 2, 9)], ids=["digits", "k40", "d2"]
)
def test_kmeans_plus_plus_in_one_call_equals_the_steps(monkeypatch, dtype, shape):
    """Euclidean data of one block seeds in one compiled call after the first step; the
    centroids are those of the step-by-step path, on one thread or two, with weights,
    and when the potential reaches zero (fewer distinct samples than centroids)."""
    from kmeansfw import kernels
    from kmeansfw.kernels import seeding

    n, d, k = shape
    rng = np.random.default_rng(5)
    X = make_blobs(n, n_features=d, centers=6, random_state=1)[0].astype(dtype)
    weights = rng.uniform(0, 3, n)
    weights[::5] = 0
    few = X[rng.integers(0, 4, size=n)]  # 4 distinct samples for k centroids
    calls = []
    fused = kernels.plusplus_sq_euclidean

    def counted(*args, **kwargs):
        calls.append(kwargs.get("n_threads"))
        return fused(*args, **kwargs)

    monkeypatch.setattr(kernels, "plusplus_sq_euclidean", counted)
    for seed, data, sw in ((0, X, None), (1, X, weights), (2, few, None)):
        one_call, prepared = _plusplus_centroids(data, k, seed, sw)
        assert prepared.single_block is not None and len(calls) == 1
        with monkeypatch.context() as patch:
            patch.setattr(seeding, "FUSED_PARALLEL_MIN_WORK", 0)  # numba's threads too
            threads, _ = _plusplus_centroids(data, k, seed, sw)
            patch.setattr(seeding, "FUSED_MAX_WORK", 0)  # the step-by-step path
            stepwise, _ = _plusplus_centroids(data, k, seed, sw)
        assert len(calls) == 2
        calls.clear()
        np.testing.assert_array_equal(one_call, stepwise)
        np.testing.assert_array_equal(threads, stepwise)
        assert one_call.dtype == dtype
    assert len({tuple(c) for c in one_call}) == 4  # the potential reached zero


def test_the_euclidean_search_is_told_to_prefetch_on_large_data_only(monkeypatch):
    """The strategy passes the product search its hint from the size of the data
    (kmeansfw.kernels.prefetch_data): a fit of data at the threshold prefetches, one
    below it does not, nor a predict on new data below it."""
    from kmeansfw import kernels
    from kmeansfw.kernels import euclidean as euclidean_kernels

    seen = []
    search = kernels.nearest_sq_euclidean

    def spy(*args, **kwargs):
        seen.append(kwargs.get("prefetch"))
        return search(*args, **kwargs)

    monkeypatch.setattr(kernels, "nearest_sq_euclidean", spy)
    X = np.random.default_rng(0).normal(size=(3000, 64))
    KMeans(8, random_state=0, max_iter=3, assignment="nearest").fit(X)
    assert seen and not any(seen)  # 1.5 MB
    seen.clear()
    monkeypatch.setattr(euclidean_kernels, "PREFETCH_MIN_DATA_BYTES", X.nbytes)
    model = KMeans(8, random_state=0, max_iter=3, assignment="nearest").fit(X)
    assert seen and all(seen)
    seen.clear()
    model.predict(X[:100])  # new data of its own size
    assert seen and not any(seen)


def _plusplus_by_steps(X, mean, norms, sw, closest, first, potential, draws):
    """The step-by-step arithmetic, from the public kernels: candidates, costs, fold."""
    from kmeansfw import kernels

    chosen = [first]
    cumulative = np.cumsum(sw * closest, dtype=np.float64)
    for row in draws:
        candidates = kernels.draw_candidates(cumulative, potential, row, X.shape[0])
        _, minus_2c, c_norms, _ = kernels.prepare_euclidean_centroids(
            X[candidates], mean, X.dtype
        )
        cost = kernels.sq_euclidean_costs(X, mean, minus_2c, c_norms, norms)
        best, potential, closest, cumulative = kernels.fold_candidates(cost, closest, sw)
        chosen.append(int(candidates[best]))
    return chosen


@_NEEDS_NUMBA
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_plusplus_kernel_equals_the_step_kernels_on_one_thread_and_two(monkeypatch, dtype):
    """Over many seeds and shapes, the one call chooses the samples the step kernels
    choose, serially and split between numba's threads (which it then used)."""
    from kmeansfw import kernels
    from kmeansfw.kernels import seeding

    launched = []
    original = seeding.launch

    def counting(kernel, *args):
        launched.append(kernel.__name__)
        return original(kernel, *args)

    monkeypatch.setattr(seeding, "launch", counting)
    monkeypatch.setattr(seeding, "FUSED_PARALLEL_MIN_WORK", 0)
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n, d = int(rng.integers(600, 20000)), int(rng.choice([1, 3, 8, 17, 64]))
        k, trials = int(rng.integers(2, 40)), int(rng.integers(1, 60))  # many draws a step
        X = (rng.normal(size=(n, d)) * rng.uniform(0.1, 100) + rng.uniform(-1e3, 1e3))
        X = np.ascontiguousarray(X, dtype=dtype)
        sw = rng.uniform(0, 2, n).astype(dtype)
        sw[:: int(rng.integers(2, 9))] = 0
        mean = X.mean(axis=0)
        norms = kernels.centered_row_norms(X, mean)
        first = int(rng.integers(n))
        _, minus_2c, c_norms, _ = kernels.prepare_euclidean_centroids(X[[first]], mean, dtype)
        closest = kernels.sq_euclidean_costs(X, mean, minus_2c, c_norms, norms)[:, 0].copy()
        potential = float(np.dot(sw, closest))
        draws = rng.uniform(size=(k - 1, trials))
        expected = _plusplus_by_steps(X, mean, norms, sw, closest.copy(), first, potential, draws)
        for threads in (1, 2):
            chosen = kernels.plusplus_sq_euclidean(
                X, mean, norms, sw, closest, first, potential, draws, n_threads=threads
            )
            assert chosen.tolist() == expected, (seed, threads)
    if kernels._compile.parallel_ready():
        assert "_plusplus_sq_euclidean_parallel" in launched


@_NEEDS_NUMBA
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the potential
def test_kmeans_plus_plus_in_one_call_refuses_costs_the_steps_refuse(monkeypatch):
    """Costs that overflow between two far candidates (float32 rows at +-6e18: finite
    costs to the first centroid, infinite between them) fail as in the step path: the one
    call, serial or split between threads, hands back, and the steps raise naming the
    distance."""
    from kmeansfw import kernels
    from kmeansfw.kernels import seeding

    X = make_blobs(3000, n_features=8, centers=5, random_state=0)[0].astype(np.float32)
    X[[10, 20]] = [[6e18] * 8, [-6e18] * 8]
    answers, launched = [], []
    original = seeding.launch
    monkeypatch.setattr(
        seeding, "launch", lambda kernel, *a: launched.append(kernel) or original(kernel, *a)
    )
    fused = kernels.plusplus_sq_euclidean

    def answered(*args, **kwargs):
        answers.append(fused(*args, **kwargs))
        return answers[-1]

    monkeypatch.setattr(kernels, "plusplus_sq_euclidean", answered)
    for parallel_from in (seeding.FUSED_PARALLEL_MIN_WORK, 0):
        monkeypatch.setattr(seeding, "FUSED_PARALLEL_MIN_WORK", parallel_from)
        answers.clear()
        with pytest.raises(StrategyError, match="NaN or infinity.*kmeansfw_cost"):
            # two threads asked for, whatever the CPUs: numba's variant is reached
            KMeans(6, init="k-means++", max_iter=1, random_state=0, n_threads=2).fit(X)
        assert answers == [None]  # the one call ran, and handed back
    if kernels._compile.parallel_ready():
        assert launched  # the threads' variant handed back too
    monkeypatch.setattr(seeding, "FUSED_MAX_WORK", 0)  # the steps alone: the same error
    with pytest.raises(StrategyError, match="NaN or infinity.*kmeansfw_cost"):
        KMeans(6, init="k-means++", max_iter=1, random_state=0).fit(X)


class _PreparesToo:
    """An assignment with its own centroid set-up: it must see every candidate set."""

    name = "prepares-too"

    def __init__(self):
        self.prepared = 0

    @kmeansfw.hookimpl
    def kmeansfw_prepare_centroids(self, centroids, cache):
        self.prepared += 1

    @kmeansfw.hookimpl
    def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, with_costs):
        return Nearest().kmeansfw_assign(X, centroids, rows, data, cache, hook, with_costs)


def test_kmeans_plus_plus_in_one_call_only_where_it_stands_for_the_hooks():
    """The fast path is the distance's only while its own hooks answer, unwrapped; a
    subclass replacing the cost, an observer wrapping it, sparse data and data of
    several blocks seed step by step, with the same centroids."""
    import scipy.sparse as sp

    X = make_blobs(2000, n_features=5, centers=6, random_state=3)[0]
    own = plugins.build(Config(n_clusters=8, distance=_OwnCost()).build_strategies())
    replaced = Euclidean()  # its own cost, replaced on the object (bound to it)
    own_cost = types.MethodType(_OwnCost.kmeansfw_cost, replaced)
    object.__setattr__(replaced, "kmeansfw_cost", own_cost)
    patched = plugins.build(Config(n_clusters=8, distance=replaced).build_strategies())
    assert patched.distance_fast_path("plusplus_steps") is None
    prepares = _PreparesToo()
    both = plugins.build(Config(n_clusters=8, assignment=prepares).build_strategies())
    assert both.distance_fast_path("plusplus_steps") is None
    spy = _CostSpy()
    spied = plugins.build(Config(n_clusters=8).build_strategies(), observers=[spy])
    default = plugins.build(Config(n_clusters=8).build_strategies())
    found = default.distance_fast_path("plusplus_steps")
    assert found is not None and isinstance(found.__self__, Euclidean)
    assert own.distance_fast_path("plusplus_steps") is None
    assert spied.distance_fast_path("plusplus_steps") is None
    base = KMeans(8, init="k-means++", max_iter=1, random_state=4).fit(X)
    for other in (
        KMeans(8, init="k-means++", max_iter=1, random_state=4, distance=_OwnCost()),
        KMeans(8, init="k-means++", max_iter=1, random_state=4, observers=[spy]),
        KMeans(8, init="k-means++", max_iter=1, random_state=4, assignment=prepares),
    ):
        np.testing.assert_array_equal(other.fit(X).cluster_centers_, base.cluster_centers_)
    assert spy.calls >= 8  # the wrapped cost saw every step
    assert prepares.prepared >= 8  # and the other set-up every candidate set
    first, draws = np.zeros(2000), np.zeros((7, 4))
    sparse = engine.setup(default, FitData.build(sp.csr_matrix(X), n_clusters=8))
    dense = engine.setup(default, FitData.build(X, n_clusters=8))
    blocks = dense.replan(4, memory_budget=20_000)
    assert dense.single_block is not None and blocks.single_block is None
    for data in (sparse, blocks):
        steps_ = found.__self__.plusplus_steps(data, data.sample_weight, first, 0, 1.0, draws)
        assert steps_ is None


def test_kmeans_plus_plus_steps_lower_costs_in_place_as_returned(monkeypatch):
    """Over several blocks each greedy k-means++ step lowers every sample's cost per
    candidate: tasks without an executor (inline, or on worker threads with several
    blocks each) write their rows straight into the step's buffer and return no costs;
    tasks under another executor return theirs. Both give the same potentials and
    lowered costs bit for bit and the same centroids; one block the same lowered costs
    (its potentials add other partial sums, so only to rounding)."""
    import attrs

    from kmeansfw.engine.executors import PickleShuffleExecutor, is_small
    from kmeansfw.strategies import init
    from kmeansfw.strategies.init import _candidate_potentials

    returned = []  # per call: whether the tasks handed back their lowered costs

    def spied_map(data, fn):
        parts = map_tasks(data, fn)
        returned.append([costs is not None for _, costs in parts])
        return parts

    map_tasks = init.map_tasks
    monkeypatch.setattr(init, "map_tasks", spied_map)
    X = make_blobs(30000, n_features=6, centers=5, random_state=7)[0]
    w = np.random.default_rng(1).random(len(X))
    hooks = plugins.build(Config(n_clusters=5).build_strategies())
    closest = np.random.default_rng(2).random(len(X)) * 50
    points = X[[3, 500, 17000, 29999]]

    def plan(executor, workers=False):
        data = engine.setup(hooks, FitData.build(X, w, n_clusters=5, executor=executor))
        blocks = data.replan(4, memory_budget=2_000)
        if workers:  # worker threads, several blocks a task
            blocks = attrs.evolve(blocks, inline=False)
            assert not is_small(blocks) and max(map(len, blocks.tasks)) > 1
        assert blocks.single_block is None and len(blocks.tasks) > 1
        return blocks

    found = {}
    for name, data in (
        ("inline", plan(None)),
        ("workers", plan(None, workers=True)),
        ("pickled", plan(PickleShuffleExecutor(seed=3))),
        ("one block", engine.setup(hooks, FitData.build(X, w, n_clusters=5))),
    ):
        found[name] = _candidate_potentials(hooks, data, points, closest)
        if name != "one block":
            assert set(returned[-1]) == {name == "pickled"}  # in place, or handed back
    total, lowered = found["pickled"]
    for name in ("inline", "workers"):
        np.testing.assert_array_equal(found[name][0].view(np.uint8), total.view(np.uint8))
        np.testing.assert_array_equal(found[name][1].view(np.uint8), lowered.view(np.uint8))
    np.testing.assert_array_equal(found["one block"][1].view(np.uint8), lowered.view(np.uint8))
    np.testing.assert_allclose(found["one block"][0], total, rtol=1e-12)
    costs = cdist(X, points, "sqeuclidean")
    np.testing.assert_allclose(lowered, np.minimum(costs, closest[:, None]), rtol=1e-9, atol=1e-9)
    # whole fits whose k-means++ steps run over several blocks (the step-by-step path)
    calls = []
    monkeypatch.setattr(init, "_candidate_potentials", _counting(calls, _candidate_potentials))
    params = dict(init="k-means++", max_iter=1, random_state=5, memory_budget_mb=0.02)
    base = KMeans(5, **params).fit(X[:3000])
    copied = KMeans(5, executor=PickleShuffleExecutor(), **params).fit(X[:3000])
    assert len(calls) == 8  # four steps each
    np.testing.assert_array_equal(copied.cluster_centers_, base.cluster_centers_)


def _counting(calls, fn):
    def counted(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    return counted


def test_kmeans_plus_plus_uses_the_cost_matrix_only_where_it_pays():
    import scipy.sparse as sp

    from kmeansfw.strategies.init import _pairwise_pays

    def data(n, d, k, sparse=False):
        X = np.random.default_rng(0).normal(size=(n, d))
        return FitData.build(sp.csr_matrix(X) if sparse else X, n_clusters=k)

    assert _pairwise_pays(data(150, 4, 8), 8)  # iris-sized
    assert not _pairwise_pays(data(150, 4, 8, sparse=True), 8)
    assert not _pairwise_pays(data(362, 64, 2), 2)  # the steps are cheaper
    assert not _pairwise_pays(data(1797, 64, 10), 10)  # over PAIRWISE_MAX_ENTRIES


def test_euclidean_row_norms_are_computed_only_for_cost_blocks(monkeypatch):
    # the rows' centered norms serve cost blocks only: a fit from given centroids, its
    # predict and score never compute them; transform and k-means++ compute each row's
    # once per data set, and the distances stay exact
    import kmeansfw.kernels as kernels_module

    calls = []
    real = kernels_module.centered_row_norms

    def spy(X, mean):
        calls.append(X.shape[0])
        return real(X, mean)

    monkeypatch.setattr(kernels_module, "centered_row_norms", spy)
    X = np.random.default_rng(0).normal(size=(3000, 5)) + 100.0
    km = KMeans(4, init=X[:4].copy(), n_init=1, assignment="nearest").fit(X)
    km.predict(X)
    km.score(X)
    assert calls == []
    distances = km.transform(X)
    assert sum(calls) == 3000
    np.testing.assert_allclose(distances, cdist(X, km.cluster_centers_), rtol=1e-9)
    calls.clear()
    seeded = KMeans(4, init="k-means++", n_init=1, random_state=0).fit(X)
    assert sum(calls) == 3000  # one block, filled once for every step of the seeding
    # kept per block: a second request computes nothing; another plan's block over the
    # same rows gives the same values
    from kmeansfw.strategies.euclidean import centered_sq_norms

    data = FitData.build(X, n_clusters=4)
    engine.setup(plugins.build(seeded._strategies), data)
    calls.clear()
    whole = centered_sq_norms(data, slice(0, 3000)).copy()
    np.testing.assert_allclose(whole, ((X - X.mean(axis=0)) ** 2).sum(axis=1), rtol=1e-12)
    centered_sq_norms(data, slice(0, 3000))
    assert calls == [3000]
    np.testing.assert_array_equal(centered_sq_norms(data, slice(256, 512)), whole[256:512])
    assert calls == [3000, 256]


def test_euclidean_row_norms_follow_the_mean_they_were_prepared_with():
    # prepared again (another mean): no norm of the old mean is kept; rows are asked
    # for as consecutive slices
    from kmeansfw.strategies.euclidean import centered_sq_norms

    X = np.random.default_rng(1).normal(size=(700, 3))
    hooks = plugins.build(KMeans(3)._built_config()[1])
    data = FitData.build(X, n_clusters=3)
    engine.setup(hooks, data)
    first = centered_sq_norms(data, slice(0, 700)).copy()
    assert data.fitted["euclidean.at_origin"]  # standard normal: compared on the origin
    np.testing.assert_allclose(first, (X**2).sum(axis=1), rtol=1e-12)
    moved = {"euclidean.mean": X.mean(axis=0) + 10.0, "euclidean.at_origin": False}
    data.fitted = {**data.fitted, **moved}
    engine.prepare(hooks, data)
    again = centered_sq_norms(data, slice(0, 700))
    np.testing.assert_allclose(again, ((X - X.mean(axis=0) - 10.0) ** 2).sum(axis=1), rtol=1e-12)
    assert not np.allclose(again, first)
    with pytest.raises(ValueError, match="consecutive rows"):
        centered_sq_norms(data, slice(0, 700, 2))


def test_the_bulks_median_is_the_origin_where_far_rows_drag_the_mean():
    from kmeansfw.strategies.euclidean import ORIGIN_MAX_MEAN_GAP, bulk_origin

    rng = np.random.default_rng(4)
    for rows in (  # no far rows: the mean stays, skewed data included
        rng.normal(size=(256, 8)),
        rng.lognormal(sigma=1.5, size=(256, 8)),
        rng.exponential(size=(256, 3)) + 1e6,
        np.ones((256, 4)),  # one row repeated: no spread to judge by
    ):
        assert bulk_origin(rows, rows.mean(axis=0)) is None
    rows = with_far_outlier(np.float64, 1e20, n=255, d=3)
    np.testing.assert_array_equal(bulk_origin(rows, rows.mean(axis=0)), np.median(rows, axis=0))
    # most rows repeated: the typical distance is that of the others
    repeated = np.zeros((256, 2))
    repeated[:100] = rng.normal(size=(100, 2))
    repeated[-1] = 1e9
    np.testing.assert_array_equal(bulk_origin(repeated, repeated.mean(axis=0)), np.zeros(2))
    # the edge: the mean at the gap times the median's typical distance
    typical = np.sqrt(np.median(((rows[:-1] - np.median(rows[:-1], axis=0)) ** 2).sum(axis=1)))
    median = np.median(rows[:-1], axis=0)
    for factor, far in ((0.99, False), (1.01, True)):
        mean = median + factor * ORIGIN_MAX_MEAN_GAP * typical / np.sqrt(3)
        assert (bulk_origin(rows[:-1], mean) is not None) is far
    with np.errstate(over="ignore"):
        assert bulk_origin(rows, np.full(3, np.inf)) is None


@pytest.mark.parametrize("n", [3, 4, 5])
def test_a_far_outlier_among_a_handful_of_rows(n):
    # one far row among m drawn lies m / (m - 1) times as far from the median as from
    # the mean, and of two nonzero distances the median was half the far one's: on 3
    # or 4 rows the mean was kept and inertia_ came out 0.0
    X = with_far_outlier(np.float64, 1e20, n=n - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct clusters than k, at times
        km = KMeans(2, random_state=0, n_init=1).fit(X)
    D = ((X[:, None, :] - km.cluster_centers_[None]) ** 2).sum(axis=2)
    assert km.inertia_ == pytest.approx(D.min(axis=1).sum(), rel=1e-9)
    assert km.inertia_ > 0


def test_float32_takes_the_bulks_median_at_a_smaller_gap():
    # float32's comparisons lose about gap^2 eps: a mean 600 spreads from 200 rows (one
    # row at 1e5) was kept by the float64 limit, and rows went to a farther centroid
    from kmeansfw.strategies.euclidean import bulk_origin, mean_gap_limit

    assert mean_gap_limit(np.float64) == 1024.0
    assert 11 < mean_gap_limit(np.float32) < 12
    mislabelled = 0
    for seed in range(6):
        X = with_far_outlier(np.float32, 1e5, n=200, d=2, seed=seed)
        sample = X.astype(np.float64)
        assert bulk_origin(sample, sample.mean(axis=0), np.float64) is None  # 600 spreads
        assert bulk_origin(sample, sample.mean(axis=0), np.float32) is not None
        km = KMeans(4, random_state=seed, n_init=1).fit(X)
        C = km.cluster_centers_.astype(np.float64)
        D = ((sample[:, None, :] - C[None]) ** 2).sum(axis=2)
        mislabelled += int((km.labels_ != D.argmin(axis=1)).sum())
    assert mislabelled == 0


def test_a_large_far_group_keeps_the_mean():
    # 55 % of the rows at 0, 45 % as four tight blobs 3000 away: the median, inside the
    # larger group, put the far rows twice as far from their origin as the mean does,
    # and 436 of them went to a farther blob in float32 (inertia 6 % high)
    from kmeansfw.strategies.euclidean import bulk_origin

    rng = np.random.default_rng(0)
    near = rng.normal(size=(2200, 3))
    blobs = np.array([[3000.0, 0, 0], [3001, 0, 0], [3000, 1, 0], [3000, 0, 1]])
    far = blobs[rng.integers(4, size=1800)] + rng.normal(size=(1800, 3)) * 0.05
    X = np.vstack([near, far]).astype(np.float32)
    rng.shuffle(X)
    sample = X[:256].astype(np.float64)
    assert bulk_origin(sample, sample.mean(axis=0), np.float32) is None
    tenth = np.vstack([near[:230], far[:26]]).astype(np.float64)  # a far tenth: the median
    assert bulk_origin(tenth, tenth.mean(axis=0), np.float32) is not None
    init = np.vstack([[0.0, 0, 0], blobs]).astype(np.float32)
    km = KMeans(5, init=init, n_init=1).fit(X)
    C = km.cluster_centers_.astype(np.float64)
    D = ((X.astype(np.float64)[:, None, :] - C[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(km.labels_, D.argmin(axis=1))
    assert km.inertia_ == pytest.approx(D.min(axis=1).sum(), rel=1e-6)


def test_whole_number_data_is_compared_on_a_point_of_whole_numbers():
    from kmeansfw.strategies.euclidean import learned_origin, whole_numbers

    rng = np.random.default_rng(2)
    counts = rng.integers(3, 9, size=(256, 4)).astype(np.float64)
    learned = learned_origin(counts, counts.mean(axis=0))
    np.testing.assert_array_equal(learned["euclidean.origin"], np.round(counts.mean(axis=0)))
    assert learned["euclidean.at_origin"] is False
    binary = (rng.random((256, 4)) < 0.2).astype(np.float32)  # the mean rounds to zeros
    learned = learned_origin(binary, binary.mean(axis=0))
    assert learned["euclidean.at_origin"] is True and "euclidean.origin" not in learned
    fractional = counts + 0.5
    assert not whole_numbers(fractional)
    assert "euclidean.origin" not in learned_origin(fractional, fractional.mean(axis=0))
    assert whole_numbers(counts) and not whole_numbers(np.empty((0, 4)))


@pytest.mark.parametrize(
    ("dtype", "offset"),
    [(np.float64, 1e20), (np.float64, 1e17), (np.float64, 1e12), (np.float32, 1e10),
     (np.float32, 1e15), (np.float32, 1e5)],
)
def test_a_far_outlier_leaves_the_bulk_its_digits(dtype, offset):
    # one far row dragged the mean the rows were compared on so far from the others that
    # they lost their digits: every cost 0 (inertia_ 0 at 1e20), transform's distances 0,
    # and rows labelled away from their nearest centroid, without an error
    X = with_far_outlier(dtype, offset)
    km = KMeans(3, random_state=0).fit(X)
    assert "euclidean.origin" in km.fitted_state_ or km.fitted_state_["euclidean.at_origin"]
    Xd, C = X.astype(np.float64), km.cluster_centers_.astype(np.float64)
    D = ((Xd[:, None, :] - C[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(km.labels_, D.argmin(axis=1))
    exact = D[np.arange(X.shape[0]), km.labels_].sum()
    assert km.inertia_ == pytest.approx(exact, rel=1e-6)
    assert -km.score(X) == pytest.approx(exact, rel=1e-6)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    np.testing.assert_allclose(km.transform(X), np.sqrt(D), rtol=1e-5, atol=1e-5)
    assert np.bincount(km.labels_, minlength=3).min() > 0  # the bulk split in two


def test_euclidean_compares_centered_data_on_the_origin():
    # data centered already (standardized, standard normal) is compared on the origin:
    # its products read the rows as they are; anything else centered (on its mean, or
    # on the point learned_origin chooses)
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    from kmeansfw.strategies.euclidean import (
        ORIGIN_MAX_OFFSET,
        centered_already,
        origin_sample_rows,
    )

    digits = load_digits().data
    scaled = StandardScaler().fit_transform(digits)
    normal = np.random.default_rng(3).normal(size=(20_000, 16))
    assert centered_already(scaled, scaled.mean(axis=0))
    assert centered_already(normal, normal.mean(axis=0))
    assert not centered_already(digits, digits.mean(axis=0))  # pixels: all positive
    assert not centered_already(normal + 1.0, (normal + 1.0).mean(axis=0))
    # the median of ||x - mean||^2 over 16 standard normal features is about 15.3
    edge = np.sqrt(ORIGIN_MAX_OFFSET * 15.3 / 16)
    shifted = normal + edge * 1.15
    assert not centered_already(shifted, shifted.mean(axis=0))
    shifted = normal + edge * 0.85
    assert centered_already(shifted, shifted.mean(axis=0))
    single = normal.astype(np.float32)  # float32 takes the same rule
    assert centered_already(single, single.mean(axis=0))
    single = (normal + 1.0).astype(np.float32)
    assert not centered_already(single, single.mean(axis=0))
    assert not centered_already(normal.astype(np.int64), np.zeros(16))  # not a float dtype
    # a tight bulk far from the origin, passed off as centered by a few far rows on
    # average (float32 swapped about half its labels that way): the median sees the bulk
    rng = np.random.default_rng(9)
    bulk = 100 + rng.normal(scale=0.01, size=(25_600, 4)) + (rng.random((25_600, 1)) < 0.5) * 0.04
    far = rng.random(25_600) < 0.01
    bulk[far] = rng.normal(scale=20_000, size=(far.sum(), 4))
    assert ((bulk.mean(axis=0) ** 2).sum() / ((bulk - bulk.mean(axis=0)) ** 2).sum(1).mean()) < (
        ORIGIN_MAX_OFFSET
    )  # the mean test would pass it
    assert not centered_already(bulk, bulk.mean(axis=0))
    bulk = bulk.astype(np.float32)  # on the origin, float32 would swap about half its labels
    assert not centered_already(bulk, bulk.astype(np.float64).mean(axis=0))
    # a tight bulk far from the origin with a wide row every p-th: rows taken at an even
    # step (every 100th of 25600) saw the wide rows only and passed it as centered, and
    # rows at the golden ratio's multiples did so where n / p is near a Fibonacci number
    # (15970 = 10 x 1597; 2961 rows, every third from the third)
    for n, wide in ((25_600, slice(None, None, 100)), (15_970, slice(None, None, 10)),
                    (2_961, slice(2, None, 3))):
        periodic = 44 / 4 + rng.normal(scale=1e-3, size=(n, 16))
        periodic[wide] = rng.normal(scale=100.0, size=periodic[wide].shape)
        for dtype in (np.float64, np.float32):
            rows = periodic.astype(dtype)
            assert not centered_already(rows, rows.astype(np.float64).mean(axis=0)), n
    for n in (25_600, 15_970, 2_961, 2_865_700):
        picked = origin_sample_rows(n, 16)
        assert picked.size == 256 and np.unique(picked).size == 256
        assert (np.diff(picked) > 0).all() and 0 <= picked[0] and picked[-1] < n
        for period in (2, 3, 10, 89, 100, 144, 610):  # no row of a period holds a fifth
            assert np.bincount(picked % period).max() < 256 / 5 + 256 / period, (n, period)
    first = origin_sample_rows(25_600, 16)
    np.testing.assert_array_equal(origin_sample_rows(25_600, 16), first)  # the same rows
    assert first.dtype == np.int64
    np.testing.assert_array_equal(origin_sample_rows(100, 16), np.arange(100))
    assert origin_sample_rows(10_000, 1 << 16).size == 16  # at most 2^20 values
    assert not centered_already([[0.0, 1.0]], np.zeros(2))  # not an array: the mean
    huge = np.full((4, 2), 1e300)
    huge[::2] *= -1
    assert not centered_already(huge + 1e300, np.full(2, 1e300))  # no overflow warning

    init = scaled[:10].copy()
    fit = KMeans(10, init=init, n_init=1, tol=0).fit(scaled)
    assert fit.fitted_state_["euclidean.at_origin"] is True
    np.testing.assert_allclose(fit.fitted_state_["euclidean.mean"], scaled.mean(axis=0))
    reference = SkKMeans(10, init=init, n_init=1, tol=0).fit(scaled)
    np.testing.assert_array_equal(fit.labels_, reference.labels_)
    assert fit.inertia_ == pytest.approx(reference.inertia_, rel=1e-7)
    assert fit.n_iter_ == reference.n_iter_
    np.testing.assert_array_equal(fit.predict(scaled), fit.labels_)
    raw = KMeans(10, init=digits[:10].copy(), n_init=1).fit(digits)
    assert raw.fitted_state_["euclidean.at_origin"] is False


def test_float32_centered_data_compared_on_the_origin_as_scikit_learn_and_exact():
    # float32 data centered already is compared on the origin, as float64 is: the same
    # labels, inertia and iterations as scikit-learn (which centers a copy), and labels
    # of the exact float64 distances except where two centroids are within rounding
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    scaled = StandardScaler().fit_transform(load_digits().data).astype(np.float32)
    init = scaled[:10].copy()
    fit = KMeans(10, init=init, n_init=1, tol=0).fit(scaled)
    assert fit.fitted_state_["euclidean.at_origin"] is True
    from kmeansfw.core.paging import column_means

    # the mean is kept (the fitted state), the rows compared on the origin
    np.testing.assert_array_equal(fit.fitted_state_["euclidean.mean"], column_means(scaled))
    reference = SkKMeans(10, init=init, n_init=1, tol=0).fit(scaled)
    np.testing.assert_array_equal(fit.labels_, reference.labels_)
    assert fit.inertia_ == pytest.approx(reference.inertia_, rel=1e-5)
    assert fit.n_iter_ == reference.n_iter_
    np.testing.assert_array_equal(fit.predict(scaled), fit.labels_)

    rng = np.random.default_rng(4)
    X = rng.standard_normal((30_000, 48)).astype(np.float32)
    model = KMeans(8, init=X[:8].copy(), n_init=1, max_iter=3).fit(X)
    assert model.fitted_state_["euclidean.at_origin"] is True
    nearest, clear = exact_nearest(X, model.cluster_centers_, 1e-5)  # not within rounding
    assert clear.mean() > 0.99
    labels = model.predict(X)
    np.testing.assert_array_equal(labels[clear], nearest[clear])
    np.testing.assert_array_equal(model.labels_[clear], labels[clear])

    # a tight cluster at the origin (zero rows of densified counts, say), the mean near
    # the rule's limit: compared on the origin its rows keep the exact labels, which
    # centering on the mean loses to the rounding
    X, centres = cluster_at_the_origin(rng)
    model = KMeans(8, init=centres, n_init=1, max_iter=1).fit(X)
    assert model.fitted_state_["euclidean.at_origin"] is True
    model.cluster_centers_ = centres  # labels against these centroids, on the fitted origin
    nearest, clear = exact_nearest(X, centres, 1e-2)
    assert clear[-8_000:].mean() > 0.95  # the cluster's own rows: most clear-cut
    np.testing.assert_array_equal(model.predict(X)[clear], nearest[clear])


def test_a_fitted_state_without_the_origin_choice_keeps_the_mean():
    # a model saved before the choice (the mean alone) is compared on its mean
    X = np.random.default_rng(2).normal(size=(700, 3))
    hooks = plugins.build(KMeans(3)._built_config()[1])
    data = FitData.build(X, n_clusters=3, fitted={"euclidean.mean": X.mean(axis=0)})
    engine.setup(hooks, data)
    np.testing.assert_array_equal(data.cache["euclidean.mean"], X.mean(axis=0))
    fresh = FitData.build(X, n_clusters=3)
    engine.setup(hooks, fresh)
    assert fresh.fitted["euclidean.at_origin"] and not fresh.cache["euclidean.mean"].any()
    single = FitData.build(X.astype(np.float32), n_clusters=3)  # float32: the same rule
    engine.setup(hooks, single)
    assert single.fitted["euclidean.at_origin"] and not single.cache["euclidean.mean"].any()
    assert single.cache["euclidean.mean"].dtype == np.float32


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        ("kmeansfw.strategies.update:Median", "memory_budget_mb"),
        ("kmeansfw.strategies.update:TrimmedMean", "memory_budget_mb"),
        ("kmeansfw.strategies.medoids:Pam", "memory_budget_mb"),
        ("kmeansfw.strategies.assignment:Yinyang", "max_bounds_mb"),
    ],
)
def test_the_strategies_budgets_take_any_number_above_zero(cls, name):
    # one shared validator: infinity is no limit, anything not a number > 0 is refused
    # with an error naming the parameter
    import importlib

    module, attr = cls.split(":")
    strategy = getattr(importlib.import_module(module), attr)
    for good in (1e-3, 1, 64.0, float("inf"), 10**400, np.int64(8), np.float32(0.5)):
        assert getattr(strategy(**{name: good}), name) == good
    for bad in (0, -1.0, float("nan"), True, np.bool_(True), np.float64(0), "64", None):
        with pytest.raises(ValueError, match=f"{name} must be a number > 0, got"):
            strategy(**{name: bad})


def test_the_direct_search_prefetches_in_fits_on_large_data(monkeypatch):
    """Fits of the direct search's shapes (eight float64 features: 64-byte rows) hand it
    the hint once the data reaches the threshold: inline through the compiled Lloyd
    iterations and on worker threads through the search; the same fit either way."""
    from kmeansfw import kernels
    from kmeansfw.kernels import euclidean as euclidean_kernels
    from kmeansfw.kernels import lloyd

    assert kernels.direct_pays(8, 4) and euclidean_kernels.direct_prefetch_pays(8, 8)
    seen = []
    search, iterations = kernels.nearest_sq_euclidean, lloyd.lloyd_iterations

    def spy_search(*args, **kwargs):
        seen.append(kwargs.get("prefetch"))
        return search(*args, **kwargs)

    def spy_iterations(*args):
        seen.append(args[-1])  # the hint is the last argument
        return iterations(*args)

    monkeypatch.setattr(kernels, "nearest_sq_euclidean", spy_search)
    monkeypatch.setattr(lloyd, "lloyd_iterations", spy_iterations)
    rng = np.random.default_rng(0)
    budget = 4  # MB: 300000 rows' label vectors (7.2 MB) do not fit, 20000 rows' do
    for n in (20_000, 300_000):  # inline, then worker threads (2.4M values, 19 MB)
        X = rng.normal(size=(n, 8))
        built = FitData.build(X, n_clusters=4, splits_work=True, memory_budget=budget << 20)
        assert built.inline is (n == 20_000)
        with monkeypatch.context() as patch:  # just under the threshold: no hint
            patch.setattr(euclidean_kernels, "PREFETCH_MIN_DATA_BYTES", X.nbytes + 1)
            plain = KMeans(4, random_state=0, max_iter=4, tol=0, memory_budget_mb=budget).fit(X)
        assert seen and not any(seen)
        seen.clear()
        with monkeypatch.context() as patch:
            patch.setattr(euclidean_kernels, "PREFETCH_MIN_DATA_BYTES", X.nbytes)
            hinted = KMeans(4, random_state=0, max_iter=4, tol=0, memory_budget_mb=budget).fit(X)
        assert seen and all(seen)
        seen.clear()
        np.testing.assert_array_equal(hinted.cluster_centers_, plain.cluster_centers_)
        np.testing.assert_array_equal(hinted.labels_, plain.labels_)
        assert hinted.inertia_ == plain.inertia_ and hinted.n_iter_ == plain.n_iter_
