"""k-medoids: the ``pam`` swap update, the k-medoids seedings, :class:`kmeansfw.KMedoids`,
and user distances that return round-off negatives.

References are brute force on an explicit distance matrix built here (scikit-learn-extra
does not import with numpy 2): exhaustive optima, PAM's swap-phase local optimality, PAM
BUILD and the ``heuristic`` seeding computed the textbook way.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

import kmeansfw
from kmeansfw import KMeans, KMedoids, PairingWarning, StrategyError
from kmeansfw.core import contract
from kmeansfw.core.config import Config
from kmeansfw.core.data import FitData
from kmeansfw.engine import loop, plugins, steps
from kmeansfw.strategies.medoids import Pam, medoid_rows


def euclidean_matrix(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(axis=2))


def objective(D: np.ndarray, medoids, w=None) -> float:
    w = np.ones(D.shape[0]) if w is None else w
    return float(w @ D[:, list(medoids)].min(axis=1))


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(60, 2, centers=3, cluster_std=1.5, random_state=3)
    return X


def hooks_for(X, w, distance, k):
    cfg = Config(n_clusters=k, distance=distance, update="pam")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PairingWarning)
        hooks = plugins.build(cfg.build_strategies())
    data = FitData.build(X, w, n_clusters=k)
    data.fitted = loop.learn(hooks, data)
    loop.prepare(hooks, data)
    return hooks, data


# ---------------------------------------------------------------------- the swap gains
@pytest.mark.parametrize("k", [1, 4])
def test_swap_gains_equal_brute_force(k):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    w = rng.uniform(0.5, 2.0, size=120)
    hooks, data = hooks_for(X, w, {"name": "minkowski", "p": 2}, k)
    medoids = [0, 5, 9, 20][:k]
    candidates = [1, 2, 3, 50, 100]
    # small blocks: the gains are summed over several blocks and tasks
    data = data.replan(1, memory_budget=1)
    delta, nearest = Pam()._gains(hooks, data, X[medoids], X[candidates])
    D = euclidean_matrix(X, X)
    base = objective(D, medoids, w)
    for a, c in enumerate(candidates):
        for i in range(k):
            swapped = [c if j == i else m for j, m in enumerate(medoids)]
            assert delta[a, i] == pytest.approx(objective(D, swapped, w) - base, abs=1e-9)
    np.testing.assert_array_equal(nearest, D[:, medoids].argmin(axis=1))


# ---------------------------------------------------------------------- KMedoids(pam)
def test_pam_finds_the_exhaustive_optimum(blobs):
    X = blobs
    D = euclidean_matrix(X, X)
    best = min(objective(D, m) for m in itertools.combinations(range(len(X)), 3))
    for seed in range(3):
        km = KMedoids(3, method="pam", init="random", random_state=seed).fit(X)
        assert km.inertia_ == pytest.approx(best, rel=1e-12)


def test_pam_ends_at_a_swap_local_optimum():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 4))  # no cluster structure: many local optima
    D = euclidean_matrix(X, X)
    km = KMedoids(5, method="pam", init="random", random_state=0).fit(X)
    medoids = list(km.medoid_indices_)
    base = objective(D, medoids)
    assert km.inertia_ == pytest.approx(base, rel=1e-12)
    for i in range(5):
        for c in set(range(len(X))) - set(medoids):
            swapped = medoids[:i] + [c] + medoids[i + 1 :]
            assert objective(D, swapped) >= base - 1e-9
    alternate = KMedoids(5, method="alternate", init="random", random_state=0).fit(X)
    assert km.inertia_ <= alternate.inertia_ + 1e-9


def test_pam_sampled_candidates_never_increase_the_objective():
    X, _ = make_blobs(3000, 5, centers=8, cluster_std=2.0, random_state=0)
    km = KMedoids(8, method="pam", init="random", random_state=0, history=True).fit(X)
    objectives = [record["objective"] for record in km.history_]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(objectives, objectives[1:], strict=False))
    D_to = euclidean_matrix(X, km.cluster_centers_)
    assert km.inertia_ == pytest.approx(D_to.min(axis=1).sum(), rel=1e-10)
    alternate = KMedoids(8, method="alternate", init="random", random_state=0).fit(X)
    assert km.inertia_ <= alternate.inertia_


def test_pam_is_deterministic_and_thread_independent():
    X, _ = make_blobs(2000, 4, centers=5, random_state=1)
    a = KMedoids(5, method="pam", init="k-medoids++", random_state=4, n_threads=1).fit(X)
    b = KMedoids(5, method="pam", init="k-medoids++", random_state=4, n_threads=2).fit(X)
    np.testing.assert_array_equal(a.medoid_indices_, b.medoid_indices_)
    np.testing.assert_array_equal(a.labels_, b.labels_)


def test_pam_small_memory_budget_same_answer():
    X, _ = make_blobs(1500, 3, centers=4, random_state=2)
    a = KMedoids(4, method="pam", init="build", random_state=0).fit(X)
    b = KMedoids(4, method="pam", init="build", random_state=0, memory_budget_mb=0.05).fit(X)
    np.testing.assert_array_equal(np.sort(a.medoid_indices_), np.sort(b.medoid_indices_))
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-12)


# ---------------------------------------------------------------------- seedings
def build_reference(D: np.ndarray, k: int) -> list[int]:
    chosen = [int(np.argmin(D.sum(axis=0)))]
    closest = D[:, chosen[0]].copy()
    for _ in range(1, k):
        gain = np.maximum(closest[:, None] - D, 0).sum(axis=0)
        gain[chosen] = -np.inf
        chosen.append(int(np.argmax(gain)))
        closest = np.minimum(closest, D[:, chosen[-1]])
    return chosen


def seeds(X, init, distance, k, seed=0):
    """The initial centroids an init strategy gives, through the fit's hooks."""
    cfg = Config(n_clusters=k, init=init, distance=distance, update="medoid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PairingWarning)
        hooks = plugins.build(cfg.build_strategies())
    data = FitData.build(X, None, n_clusters=k)
    data.fitted = loop.learn(hooks, data)
    loop.prepare(hooks, data)
    return steps.initialize(hooks, data, k, np.random.default_rng(seed))


@pytest.mark.parametrize(
    "distance, matrix",
    [
        ({"name": "minkowski", "p": 2}, euclidean_matrix),
        ("manhattan", lambda A, B: np.abs(A[:, None] - B[None]).sum(2)),
    ],
)
def test_build_is_pam_build(distance, matrix):
    X = np.random.default_rng(5).normal(size=(150, 3))
    centers = seeds(X, "build", distance, 4)
    np.testing.assert_array_equal(centers, X[build_reference(matrix(X, X), 4)])


def test_build_on_more_data_than_its_sample_builds_on_a_sample():
    X, _ = make_blobs(700, 2, centers=4, random_state=0)
    centers = seeds(X, {"name": "build", "sample_size": 200}, {"name": "minkowski", "p": 2}, 4)
    pool = np.sort(np.random.default_rng(0).choice(700, size=200, replace=False))
    D = euclidean_matrix(X[pool], X[pool])
    np.testing.assert_array_equal(centers, X[pool][build_reference(D, 4)])


def test_heuristic_is_lowest_total_distance():
    X = np.random.default_rng(6).normal(size=(90, 2))
    D = euclidean_matrix(X, X)
    expected = np.sort(np.argsort(D.sum(axis=1), kind="stable")[:3])
    centers = seeds(X, "heuristic", {"name": "minkowski", "p": 2}, 3)
    np.testing.assert_array_equal(centers, X[expected])


def test_kmedoids_plusplus_picks_samples_by_distance():
    X, _ = make_blobs(400, 3, centers=4, random_state=0)
    a = KMeans(
        4,
        init="k-medoids++",
        distance={"name": "minkowski", "p": 2},
        update="mean",
        max_iter=1,
        random_state=3,
    )
    b = KMeans(
        4,
        init="k-means++",
        distance={"name": "minkowski", "p": 2},
        update="mean",
        max_iter=1,
        random_state=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ca, cb = a.fit(X).cluster_centers_, b.fit(X).cluster_centers_
    np.testing.assert_array_equal(ca, cb)  # the distance is the cost: D, not D^2, sampling


# ---------------------------------------------------------------------- the estimator
@pytest.mark.parametrize("method", ["alternate", "pam"])
@pytest.mark.parametrize(
    "metric, matrix",
    [
        ("euclidean", euclidean_matrix),
        ("manhattan", lambda A, B: np.abs(A[:, None] - B[None]).sum(2)),
        ("chebyshev", lambda A, B: np.abs(A[:, None] - B[None]).max(2)),
        ("sqeuclidean", lambda A, B: euclidean_matrix(A, B) ** 2),
    ],
)
def test_attributes_match_explicit_distances(blobs, method, metric, matrix):
    X = blobs
    w = np.linspace(0.5, 2.0, len(X))
    km = KMedoids(3, metric=metric, method=method, init="k-medoids++", random_state=0)
    km.fit(X, sample_weight=w)
    np.testing.assert_array_equal(km.cluster_centers_, X[km.medoid_indices_])
    D = matrix(X, km.cluster_centers_)
    np.testing.assert_array_equal(km.labels_, D.argmin(axis=1))
    assert km.inertia_ == pytest.approx(float(w @ D.min(axis=1)), rel=1e-10)
    np.testing.assert_array_equal(km.predict(X[:7]), D[:7].argmin(axis=1))
    np.testing.assert_allclose(km.transform(X[:7]), D[:7], rtol=1e-10, atol=1e-10)
    assert km.score(X) == pytest.approx(-D.min(axis=1).sum(), rel=1e-10)
    assert km.score(X, sample_weight=w) == pytest.approx(-km.inertia_, rel=1e-12)
    with pytest.raises(ValueError, match="sample_weight has 7 entries"):
        km.score(X, sample_weight=w[:7])


def test_euclidean_metric_minimizes_distances_not_squares():
    X, _ = make_blobs(200, 2, centers=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PairingWarning)  # KMedoids never warns about pairing
        km = KMedoids(3, method="pam", random_state=0).fit(X)
    assert km.get_config().distance.name == "minkowski"
    D = euclidean_matrix(X, km.cluster_centers_)
    assert km.inertia_ == pytest.approx(D.min(axis=1).sum(), rel=1e-10)


def test_callable_metric_and_observers_and_criteria(blobs):
    calls = []

    def manhattan(A, B):
        calls.append(1)
        return np.abs(A[:, None] - B[None]).sum(2)

    record = kmeansfw.History()
    km = KMedoids(
        3, metric=manhattan, method="pam", init="random", random_state=1, observers=[record]
    ).fit(blobs)
    ref = KMedoids(3, metric="manhattan", method="pam", init="random", random_state=1).fit(blobs)
    np.testing.assert_array_equal(km.medoid_indices_, ref.medoid_indices_)
    assert calls and len(record.records) == km.n_iter_
    stopped = KMedoids(
        3,
        method="pam",
        init="random",
        random_state=1,
        max_iter=50,
        convergence={"name": "callback", "func": lambda s: s.iteration >= 1},
    )
    assert stopped.fit(blobs).n_iter_ == 1


def test_bad_parameters_are_named(blobs):
    with pytest.raises(ValueError, match="precomputed"):
        KMedoids(2, metric="precomputed").fit(blobs)
    with pytest.raises(kmeansfw.InvalidParameterError, match="parameter 'metric' .*'euclidian'"):
        KMedoids(2, metric="euclidian").fit(blobs)  # named as the metric, not a config key
    with pytest.raises(ValueError, match="method"):
        KMedoids(2, method="fasterpam").fit(blobs)
    with pytest.raises(ValueError, match="must be a sample of X"):
        KMedoids(2, init=np.array([[100.0, 100.0], blobs[0]])).fit(blobs)
    with pytest.raises(kmeansfw.ConfigError, match="init"):
        KMedoids(2, init="nope").fit(blobs)
    # a catalog seeding that is not one of KMedoids' documented choices is named
    with pytest.raises(kmeansfw.InvalidParameterError, match=r"'init' must be one of.*build"):
        KMedoids(2, init="k-means||").fit(blobs)


def test_array_init_of_samples(blobs):
    km = KMedoids(3, init=blobs[[0, 1, 2]], method="pam").fit(blobs)
    assert set(km.medoid_indices_) <= set(range(len(blobs)))


def test_medoid_rows_finds_duplicates_outside_the_cluster():
    X = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    found = medoid_rows(X, X[[1, 3]], np.array([0, 0, 0, 0]))
    np.testing.assert_array_equal(found, [1, 3])


def test_medoid_rows_of_equal_centers_are_distinct_rows_while_there_are_enough():
    X = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [5.0, 5.0], [1.0, 1.0]])
    labels = np.array([0, 1, 1, 2, 1])  # clusters 3 and 4 empty, centred on [1, 1] too
    found = medoid_rows(X, X[[0, 2, 3, 1, 1]], labels)
    np.testing.assert_array_equal(found, [0, 1, 3, 2, 4])
    # four centers on [1, 1], three rows of it: the fourth repeats the first row found
    found = medoid_rows(X, X[[0, 1, 3, 1, 1, 1]], labels)
    np.testing.assert_array_equal(found, [0, 1, 3, 2, 4, 1])


@pytest.mark.parametrize("init", ["k-medoids++", "heuristic", "build", "random"])
def test_fewer_distinct_samples_than_clusters_give_distinct_medoids(init):
    # three distinct points, ten copies each, five clusters: medoids share values, but
    # each names its own sample (one sample named twice made two clusters one)
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match="distinct clusters"):
        km = KMedoids(5, init=init, random_state=0).fit(X)
    assert len(set(km.medoid_indices_)) == 5
    np.testing.assert_array_equal(X[km.medoid_indices_], km.cluster_centers_)
    assert km.inertia_ == 0.0


def test_pairing_natural_updates_follow_the_table():
    about = {
        name: kmeansfw.core.distance.describe(kmeansfw.CATALOG.create("distance", name)[1])
        for name in ["euclidean", "manhattan", "chebyshev", "cosine"]
    }
    assert about["chebyshev"].natural_update == "mean"
    assert about["manhattan"].natural_update == "median"
    with warnings.catch_warnings():
        warnings.simplefilter("error", PairingWarning)
        KMeans(2, distance="chebyshev", update="mean").get_config().build_strategies()
    with pytest.warns(PairingWarning, match="use update='mean'"):
        KMeans(2, distance="chebyshev", update="medoid").get_config().build_strategies()


# ---------------------------------------------------------------------- round-off
def textbook_cosine(X, C):
    xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    cn = C / np.linalg.norm(C, axis=1, keepdims=True)
    return 1 - xn @ cn.T


def test_textbook_cosine_tolerated_and_matches_builtin():
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(300, 5))) + 0.1
    # the raw function really is negative by round-off on some samples equal to a centroid
    assert (textbook_cosine(X, X) < 0).any()
    ours = KMedoids(3, metric=textbook_cosine, method="pam", init="random", random_state=0)
    builtin = KMedoids(3, metric="cosine", method="pam", init="random", random_state=0)
    ours.fit(X)
    builtin.fit(X)
    np.testing.assert_array_equal(ours.medoid_indices_, builtin.medoid_indices_)
    assert (ours.transform(X) >= 0).all()
    distance = kmeansfw.core.adapters.FunctionDistance(
        textbook_cosine, objective="distance", natural_update="spherical"
    )
    for seed in range(3):
        KMeans(3, distance=distance, random_state=seed).fit(X)
    # the squared objective of a plain function (the default) tolerates round-off too
    squared = kmeansfw.core.adapters.FunctionDistance(textbook_cosine, natural_update="mean")
    for seed in range(3):
        km = KMeans(3, distance=squared, update="mean", random_state=seed).fit(X)
        assert np.isfinite(km.inertia_) and km.inertia_ >= 0


def test_real_negatives_still_raise():
    def broken(X, C):
        return textbook_cosine(X, C) - 0.01

    X = np.abs(np.random.default_rng(0).normal(size=(50, 3))) + 0.1
    with pytest.raises(StrategyError, match="negative"):
        KMedoids(2, metric=broken, init="random").fit(X)


def test_clip_round_off():
    eps = np.finfo(np.float64).eps
    values = np.array([[2.0, -2 * eps], [1.0, 0.5]])
    clipped = contract.clip_round_off(values)
    assert clipped is not values and clipped[0, 1] == 0 and values[0, 1] < 0
    assert contract.clip_round_off(np.array([2.0, -1e-6])) is None
    assert contract.clip_round_off(np.array([0.0, -1e-300])) is None  # relative to scale
    kept = np.array([1.0, 0.0], dtype=np.float32)
    assert contract.clip_round_off(kept) is kept
    f32 = np.array([1.0, -np.finfo(np.float32).eps], dtype=np.float32)
    assert contract.clip_round_off(f32).dtype == np.float32


def test_pam_with_zero_weights_ends_at_a_local_optimum_of_its_swaps():
    # samples of weight zero were never candidates, though one may be the best medoid:
    # on small data a single swap still lowered the objective in 14 of 30 seeds
    X, _ = make_blobs(150, n_features=2, centers=4, random_state=0, cluster_std=2.5)
    D = np.sqrt(((X[:, None, :] - X[None]) ** 2).sum(axis=2))
    for seed in range(6):
        w = np.random.default_rng(seed).integers(0, 3, 150).astype(float)
        km = KMedoids(4, method="pam", random_state=0).fit(X, sample_weight=w)
        medoids = km.medoid_indices_

        def objective(m, w=w):
            return float((w * D[:, m].min(axis=1)).sum())

        assert km.inertia_ == pytest.approx(objective(medoids), rel=1e-9)
        swaps = np.repeat(medoids[None], 4 * 150, axis=0)
        swaps[np.arange(4 * 150), np.repeat(np.arange(4), 150)] = np.tile(np.arange(150), 4)
        best = min(objective(m) for m in swaps)
        assert best >= objective(medoids) - 1e-9 * objective(medoids), seed


def test_kmedoids_names_its_transform_columns_and_sets_pandas_output():
    # transform gives one column per medoid: named as scikit-learn's estimators name
    # them, so set_output(transform="pandas") works in a pipeline
    pd = pytest.importorskip("pandas")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = make_blobs(90, centers=3, n_features=3, random_state=0)[0]
    model = KMedoids(3, random_state=0).fit(X)
    assert list(model.get_feature_names_out()) == ["kmedoids0", "kmedoids1", "kmedoids2"]
    pipe = make_pipeline(StandardScaler(), KMedoids(3, random_state=0))
    frame = pipe.set_output(transform="pandas").fit_transform(pd.DataFrame(X))
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(
        model.get_feature_names_out()
    )
    np.testing.assert_allclose(frame.to_numpy(), pipe.transform(pd.DataFrame(X)).to_numpy())
