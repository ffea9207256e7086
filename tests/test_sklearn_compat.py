"""kmeansfw as a drop-in for scikit-learn's KMeans and MiniBatchKMeans.

Every test runs the same public-API code against scikit-learn's estimator and
kmeansfw's, side by side: parameters, attributes, warnings, errors, pipelines, model
selection, cloning, pickling and pandas output.  A change that breaks code written for
scikit-learn fails here.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn import cluster
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import kmeansfw
from kmeansfw.core.adapters import CallableInit, sparse_init

PAIRS = [(cluster.KMeans, kmeansfw.KMeans), (cluster.MiniBatchKMeans, kmeansfw.MiniBatchKMeans)]
IDS = ["KMeans", "MiniBatchKMeans"]
#: The one default that differs: kmeansfw's "auto" is greedy k-means++ (scikit-learn's
#: "k-means++") up to samples x clusters = 2^21, then k-means||.
DIFFERENT_DEFAULTS = {"init"}


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return make_blobs(600, n_features=4, centers=5, cluster_std=1.2, random_state=3)[0]


def _init(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    return X[np.random.default_rng(seed).choice(X.shape[0], size=k, replace=False)].copy()


# ---------------------------------------------------------------------- parameters
@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_every_parameter_is_accepted_with_its_default(theirs, ours):
    expected = theirs().get_params()
    got = ours().get_params()
    assert set(expected) <= set(got)
    for name, value in expected.items():
        if name not in DIFFERENT_DEFAULTS:
            assert got[name] == value, name
    # every scikit-learn parameter can be passed by keyword, with a non-default value
    ours(**{k: v for k, v in expected.items() if k != "init"}, init="k-means++")


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_positional_n_clusters_and_keyword_only_rest(theirs, ours):
    assert ours(3).n_clusters == theirs(3).n_clusters == 3
    with pytest.raises(TypeError):
        theirs(3, "k-means++")
    with pytest.raises(TypeError):
        ours(3, "k-means++")


# ---------------------------------------------------------------------- same answers
@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kmeans_same_init_same_answer(X, algorithm, dtype):
    Xd = X.astype(dtype)
    init = _init(Xd, 5)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0])
    kw = dict(n_clusters=5, init=init, n_init=1, algorithm=algorithm)
    theirs = cluster.KMeans(**kw).fit(Xd, sample_weight=weights)
    ours = kmeansfw.KMeans(**kw).fit(Xd, sample_weight=weights)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.n_iter_ == theirs.n_iter_
    rtol = 1e-7 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(ours.inertia_, theirs.inertia_, rtol=rtol)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=rtol * 10)
    assert ours.cluster_centers_.dtype == theirs.cluster_centers_.dtype == dtype
    np.testing.assert_array_equal(ours.predict(Xd), theirs.predict(Xd))
    np.testing.assert_allclose(ours.transform(Xd), theirs.transform(Xd), rtol=rtol * 10)
    np.testing.assert_allclose(ours.score(Xd), theirs.score(Xd), rtol=rtol)


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
def test_kmeans_same_init_same_answer_on_sparse_data(X, algorithm):
    dense = np.where(np.abs(X) < 3, 0.0, np.abs(X))
    Xs = sp.csr_matrix(dense)
    kw = dict(n_clusters=5, init=_init(dense, 5), n_init=1, algorithm=algorithm)
    theirs = cluster.KMeans(**kw).fit(Xs)
    ours = kmeansfw.KMeans(**kw).fit(Xs)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-7)
    for est in (cluster.MiniBatchKMeans, kmeansfw.MiniBatchKMeans):
        mbk = est(5, batch_size=100, random_state=0).fit(Xs)
        assert mbk.partial_fit(Xs[:4]).labels_.shape == (4,)


def test_elkan_with_a_distance_that_is_not_a_metric_points_to_lloyd(X):
    with pytest.raises(ValueError, match="distance 'cosine' is not one.*algorithm='lloyd'"):
        kmeansfw.KMeans(3, algorithm="elkan", distance="cosine").fit(X)


def test_elkan_runs_the_bounded_assignment(X):
    km = kmeansfw.KMeans(5, algorithm="elkan", random_state=0).fit(X)
    assert [label for slot, label, _ in km._strategies if slot == "assignment"] == ["'hamerly'"]
    with pytest.raises(ValueError, match="algorithm='elkan'.*assignment='yinyang'"):
        kmeansfw.KMeans(5, algorithm="elkan", assignment="yinyang").fit(X)


def test_minibatch_quality_and_counters_match_sklearn():
    X, _ = make_blobs(6000, n_features=6, centers=8, cluster_std=1.5, random_state=0)
    ours = [kmeansfw.MiniBatchKMeans(8, batch_size=256, random_state=s).fit(X) for s in range(3)]
    theirs = [cluster.MiniBatchKMeans(8, batch_size=256, random_state=s).fit(X) for s in range(3)]
    assert np.median([m.inertia_ for m in ours]) <= 1.02 * np.median([m.inertia_ for m in theirs])
    for m in ours + theirs:  # n_iter_ counts passes over the data, n_steps_ the steps
        assert m.n_iter_ == int(np.ceil(m.n_steps_ * 256 / X.shape[0]))
        assert 1 <= m.n_steps_ <= 100 * X.shape[0] // 256
        np.testing.assert_array_equal(m.labels_, m.predict(X))
        np.testing.assert_allclose(m.inertia_, -m.score(X), rtol=1e-6)


def test_minibatch_without_labels():
    X, _ = make_blobs(3000, n_features=4, centers=4, random_state=1)
    for est in (cluster.MiniBatchKMeans, kmeansfw.MiniBatchKMeans):
        m = est(4, batch_size=200, compute_labels=False, random_state=0).fit(X)
        assert not hasattr(m, "labels_")
        assert 0.5 * -m.score(X) < m.inertia_ < 2.0 * -m.score(X)  # an estimate


# ---------------------------------------------------------------------- n_init
@pytest.mark.parametrize(
    ("theirs", "ours", "auto"),
    [(cluster.KMeans, kmeansfw.KMeans, 10), (cluster.MiniBatchKMeans, kmeansfw.MiniBatchKMeans, 3)],
    ids=IDS,
)
def test_n_init_auto_rule(X, theirs, ours, auto):
    for est in (theirs, ours):
        calls = []

        def first_rows(data, n_clusters, random_state, calls=calls):
            calls.append(1)
            return np.asarray(data[:n_clusters])

        est(5, init=first_rows, n_init="auto", max_iter=3, random_state=0).fit(X)
        assert len(calls) == auto, est
    for n_init, runs in (("auto", 1), (2, 2)):
        cfg = ours(5, init="k-means++", n_init=n_init).get_config()
        assert cfg.resolved_n_init() == runs
    assert ours(5, init="random").get_config().resolved_n_init(auto) == auto


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "answer",
    [lambda c: c.round().astype(int).tolist(), lambda c: c.astype(np.float32),
     lambda c: c.astype(np.float64), lambda c: tuple(map(tuple, c))],
    ids=["int-lists", "float32", "float64", "tuples"],
)
def test_an_init_function_answers_any_real_numbers(X, theirs, ours, dtype, answer):
    # scikit-learn converts an init function's centroids to the data's dtype; so do we.
    # (Its function sees the data centered on their mean and answers centered
    # centroids, so only ours is compared with the same centroids given as an array.)
    data = X.astype(dtype)
    centroids = answer(np.asarray(X[:5]).round())

    def init(data, n_clusters, random_state):
        return centroids

    assert theirs(5, init=init, n_init=1, max_iter=3).fit(data).cluster_centers_.dtype == dtype
    km = ours(5, init=init, n_init=1, max_iter=3, random_state=0).fit(data)
    given = np.asarray(centroids, dtype=dtype)
    same = ours(5, init=given, n_init=1, max_iter=3, random_state=0).fit(data)
    assert km.cluster_centers_.dtype == dtype
    np.testing.assert_array_equal(km.cluster_centers_, same.cluster_centers_)
    assert km.inertia_ == same.inertia_
    assert km.n_iter_ == same.n_iter_


def test_an_init_function_written_for_scikit_learn_runs_unchanged(X):
    # scikit-learn hands its init functions a RandomState as random_state=; one named so
    # gets a RandomState drawing from the fit's generator (the same seed, the same rows)
    def legacy(data, n_clusters, random_state):
        return data[random_state.permutation(data.shape[0])[:n_clusters]]

    def rows_of(seed):
        rs = np.random.RandomState(np.random.default_rng(seed).bit_generator)
        return np.asarray(X)[rs.permutation(X.shape[0])[:5]]

    for theirs in (cluster.KMeans, kmeansfw.KMeans):  # runs in both
        theirs(5, init=legacy, n_init=1, max_iter=1).fit(X)
    first = kmeansfw.KMeans(5, init=legacy, n_init=1, random_state=3).fit(X)
    again = kmeansfw.KMeans(5, init=legacy, n_init=1, random_state=3).fit(X)
    given = kmeansfw.KMeans(5, init=rows_of(3), n_init=1, random_state=3).fit(X)
    np.testing.assert_array_equal(first.cluster_centers_, again.cluster_centers_)
    np.testing.assert_array_equal(first.cluster_centers_, given.cluster_centers_)

    def generator_methods(data, n_clusters, random_state):  # written for kmeansfw's rng
        return data[random_state.integers(0, data.shape[0], n_clusters)]

    kmeansfw.KMeans(5, init=generator_methods, n_init=1).fit(X)
    from kmeansfw.core.adapters import SharedRandomState

    shared = SharedRandomState(np.random.default_rng(4))
    for copied in (copy.copy(shared), copy.deepcopy(shared), pickle.loads(pickle.dumps(shared))):
        assert isinstance(copied, SharedRandomState)
        assert copied.integers(0, 10, 3).shape == (3,) and copied.randint(0, 10) < 10

    def generator_user(data, n_clusters, rng):  # another name: the Generator itself
        assert isinstance(rng, np.random.Generator)
        return data[rng.permutation(data.shape[0])[:n_clusters]]

    kmeansfw.KMeans(5, init=generator_user, n_init=1).fit(X)

    def mixed_up(data, n_clusters, rng):  # RandomState's methods on the Generator
        return data[rng.randint(0, data.shape[0], n_clusters)]

    with pytest.raises(kmeansfw.StrategyError, match="no attribute 'randint' .*rng.integers"):
        kmeansfw.KMeans(5, init=mixed_up, n_init=1).fit(X)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [(np.ones((5, 4)) * 1j, "dtype complex128"), ([["a"] * 4] * 5, "dtype <U1"),
     (np.ones((5, 4), dtype=bool), "dtype bool"),
     ([[0.0] * 4] * 4, r"shape \(4, 4\)"), ([[0.0] * 4] * 4 + [[0.0]], "list, not an array")],
    ids=["complex", "strings", "mask", "shape", "ragged"],
)
def test_an_init_function_answering_no_numbers_is_named(X, answer, problem):
    def seeds(data, n_clusters, rng):
        return answer

    with pytest.raises(kmeansfw.StrategyError, match=f"'seeds'.*{problem}"):
        kmeansfw.KMeans(5, init=seeds, n_init=1).fit(X)


# ---------------------------------------------------------------------- attributes
@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_fitted_attributes_and_feature_names(X, theirs, ours):
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    kw = dict(n_clusters=3, random_state=0, n_init=1)
    them, us = theirs(**kw).fit(frame), ours(**kw).fit(frame)
    for name in ("cluster_centers_", "labels_", "inertia_", "n_iter_", "n_features_in_"):
        assert hasattr(us, name), name
        assert np.shape(getattr(us, name)) == np.shape(getattr(them, name)), name
    np.testing.assert_array_equal(us.feature_names_in_, them.feature_names_in_)
    np.testing.assert_array_equal(us.get_feature_names_out(), them.get_feature_names_out())
    assert us.labels_.dtype == them.labels_.dtype == np.int32
    assert us.predict(frame).dtype == them.predict(frame).dtype
    renamed = frame.rename(columns={"a": "z"})
    for est in (them, us):
        with pytest.raises(ValueError, match="feature names"):
            est.predict(renamed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        us.fit(X)  # an array after a DataFrame: the names are forgotten
    assert not hasattr(us, "feature_names_in_")


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_set_output_pandas(X, theirs, ours):
    kw = dict(n_clusters=3, random_state=0, n_init=1)
    them = theirs(**kw).set_output(transform="pandas")
    us = ours(**kw).set_output(transform="pandas")
    expected, got = them.fit_transform(X), us.fit_transform(X)
    assert isinstance(got, pd.DataFrame)
    assert list(got.columns) == list(expected.columns)
    frame = us.transform(pd.DataFrame(X, index=np.arange(X.shape[0]) + 100))
    assert list(frame.index[:2]) == [100, 101]
    pipe = make_pipeline(StandardScaler(), ours(**kw)).set_output(transform="pandas")
    assert isinstance(pipe.fit_transform(X), pd.DataFrame)


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_pipeline_grid_search_clone_pickle(X, theirs, ours):
    pipe = make_pipeline(StandardScaler(), ours(random_state=0, n_init=1))
    search = GridSearchCV(pipe, {f"{ours.__name__.lower()}__n_clusters": [2, 5]}, cv=3)
    search.fit(X)
    assert search.best_params_[f"{ours.__name__.lower()}__n_clusters"] == 5
    est = ours(4, random_state=0, n_init=1)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and copy is not est
    est.fit(X)
    assert not hasattr(clone(est), "cluster_centers_")
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    np.testing.assert_array_equal(back.transform(X), est.transform(X))
    them = theirs(4, random_state=0, n_init=1).fit(X)
    assert est.fit_predict(X).shape == them.fit_predict(X).shape


def test_copy_x_is_accepted_and_input_never_modified(X):
    for copy_x in (True, False):
        data = X.copy()
        kmeansfw.KMeans(4, copy_x=copy_x, random_state=0).fit(data)
        np.testing.assert_array_equal(data, X)


def test_verbose_prints_like_sklearn(X, capsys):
    cluster.KMeans(3, verbose=1, n_init=1, random_state=0).fit(X)
    assert "inertia" in capsys.readouterr().out.lower()
    kmeansfw.KMeans(3, verbose=1, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert "iteration 1: objective" in out and "converged: True" in out
    kmeansfw.MiniBatchKMeans(3, verbose=True, batch_size=100, random_state=0).fit(X)
    assert "stop:" in capsys.readouterr().out
    kmeansfw.KMeans(3, random_state=0).fit(X)
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------- warnings
@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_warnings_match(X, theirs, ours):
    init = _init(X, 3)
    for est in (theirs, ours):
        with pytest.warns(RuntimeWarning, match="(?i)explicit initial"):
            est(3, init=init, n_init=5).fit(X)
    twins = np.repeat(X[:2], 20, axis=0)  # two distinct points, three clusters
    with pytest.warns(ConvergenceWarning, match="Number of distinct clusters"):
        cluster.KMeans(3, n_init=1, random_state=0).fit(twins)
    with pytest.warns(ConvergenceWarning, match="Number of distinct clusters"):
        kmeansfw.KMeans(3, random_state=0).fit(twins)


def test_minibatch_init_size_warning(X):
    for est in (cluster.MiniBatchKMeans, kmeansfw.MiniBatchKMeans):
        with pytest.warns(RuntimeWarning, match="init_size=2 should be larger than n_clusters=5"):
            est(5, init_size=2, batch_size=100, random_state=0).fit(X)


# ---------------------------------------------------------------------- errors
BAD_PARAMS = [
    {"n_clusters": 0},
    {"n_clusters": "3"},
    {"n_clusters": 2.5},
    {"n_init": 0},
    {"n_init": "always"},
    {"max_iter": 0},
    {"max_iter": "10"},
    {"tol": -1.0},
    {"tol": "small"},
    {"random_state": "seed"},
    {"random_state": -1},
    {"init": "kmeans-plus-plus"},
    {"init": 3},
    {"verbose": -1},
    {"verbose": "loud"},
]
KMEANS_BAD = [{"algorithm": "full"}, {"algorithm": "auto"}, {"algorithm": 1}, {"copy_x": "yes"}]
MINIBATCH_BAD = [
    {"batch_size": 0},
    {"batch_size": None},
    {"max_no_improvement": -1},
    {"init_size": 0},
    {"reassignment_ratio": -0.5},
    {"compute_labels": "yes"},
]


def _raised(est, X, method="fit"):
    try:
        getattr(est, method)(X)
    except Exception as exc:  # noqa: BLE001 - the exception is what is compared
        return exc
    raise AssertionError(f"{est!r}.{method} raised nothing")


def _catchable_alike(theirs: BaseException, ours: BaseException) -> None:
    """Code catching scikit-learn's exception by ValueError or TypeError catches ours."""
    for base in (ValueError, TypeError, AttributeError):
        if isinstance(theirs, base):
            assert isinstance(ours, base), (base, theirs, ours)


@pytest.mark.parametrize(
    ("theirs", "ours", "params"),
    [(cluster.KMeans, kmeansfw.KMeans, p) for p in BAD_PARAMS + KMEANS_BAD]
    + [(cluster.MiniBatchKMeans, kmeansfw.MiniBatchKMeans, p) for p in BAD_PARAMS + MINIBATCH_BAD],
    ids=lambda v: getattr(v, "__name__", None) or repr(v),
)
def test_bad_parameters_raise_like_sklearn(X, theirs, ours, params):
    them = _raised(theirs(**params), X)
    us = _raised(ours(**params), X)
    _catchable_alike(them, us)
    name = next(iter(params))
    assert name in str(us)  # kmeansfw's message names the parameter


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_bad_data_raises_like_sklearn(X, theirs, ours):
    nan = X.copy()
    nan[3, 1] = np.nan
    cases = [
        (dict(n_clusters=700), X, "fit"),
        (dict(n_clusters=3), nan, "fit"),
        (dict(n_clusters=3), X[:, 0], "fit"),
        (dict(n_clusters=3, init=np.zeros((2, 4))), X, "fit"),
        (dict(n_clusters=3, init=np.zeros((3, 2))), X, "fit"),
        (dict(n_clusters=3), X, "predict"),
        (dict(n_clusters=3), X, "transform"),
    ]
    for params, data, method in cases:
        _catchable_alike(
            _raised(theirs(**params), data, method), _raised(ours(**params), data, method)
        )
        if method != "fit":
            with pytest.raises(NotFittedError):
                getattr(ours(**params), method)(data)
    fitted = (theirs(3, n_init=1, random_state=0).fit(X), ours(3, random_state=0).fit(X))
    _catchable_alike(*(_raised(est, X[:, :3], "predict") for est in fitted))
    for est in fitted:
        with pytest.raises(ValueError, match="sample_weight"):
            clone(est).fit(X, sample_weight=np.ones(5))


# ---------------------------------------------------------------------- partial_fit
def test_partial_fit_continues_from_fit():
    X, _ = make_blobs(5000, n_features=4, centers=8, random_state=5)
    for est in (cluster.MiniBatchKMeans, kmeansfw.MiniBatchKMeans, kmeansfw.KMeans):
        km = est(8, random_state=0).fit(X)
        before, steps = km.cluster_centers_.copy(), getattr(km, "n_steps_", 0)
        km.partial_fit(X[:3])  # fewer rows than clusters: continues, as scikit-learn does
        moved = np.linalg.norm(km.cluster_centers_ - before, axis=1)
        assert moved.max() < 0.5, est  # a small step from the fitted centroids, no re-seed
        assert km.n_steps_ == steps + 1
        assert km.labels_.shape == (3,)
        np.testing.assert_array_equal(km.labels_, km.predict(X[:3]))
    for est in (cluster.MiniBatchKMeans, kmeansfw.MiniBatchKMeans, kmeansfw.KMeans):
        with pytest.raises(ValueError, match="n_samples=3 should be >= n_clusters=8"):
            est(8).partial_fit(X[:3])


def test_partial_fit_keeps_fitted_state():
    X, _ = make_blobs(2000, n_features=3, centers=4, random_state=2)
    km = kmeansfw.KMeans(4, distance="cosine", random_state=0).fit(X)
    state = dict(km.fitted_state_)
    km.partial_fit(X[:50] + 100.0)
    assert km.fitted_state_.keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(km.fitted_state_[key], value)


@pytest.mark.parametrize(("theirs", "ours"), PAIRS[1:], ids=IDS[1:])
def test_partial_fit_streams_like_sklearn(theirs, ours):
    X, _ = make_blobs(4000, n_features=4, centers=6, random_state=4)
    them, us = theirs(6, random_state=0), ours(6, random_state=0)
    for chunk in np.array_split(X, 20):
        them.partial_fit(chunk)
        us.partial_fit(chunk)
    assert us.n_steps_ == them.n_steps_ == 20
    assert not hasattr(us, "n_iter_") and not hasattr(them, "n_iter_")
    assert -us.score(X) <= 1.05 * -them.score(X)


# ---------------------------------------------------------------------- sparse, pandas
def test_callable_init_opts_into_sparse(X):
    Xs = sp.csr_matrix(X)

    def dense_rows(data, n_clusters, random_state):
        return np.asarray(data[:n_clusters].toarray())

    with pytest.raises(ValueError, match="sparse input is not supported by the init"):
        kmeansfw.KMeans(3, init=dense_rows, n_init=1).fit(Xs)
    ours = kmeansfw.KMeans(3, init=sparse_init(dense_rows), n_init=1).fit(Xs)
    theirs = cluster.KMeans(3, init=dense_rows, n_init=1).fit(Xs)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    wrapped = CallableInit(lambda d, k, r: d[:k].toarray(), accepts_sparse=True)
    assert kmeansfw.KMeans(3, init=wrapped).fit(Xs).n_iter_ >= 1
    assert not CallableInit(lambda d, k, r: d[:k], accepts_sparse=False).accepts_sparse


def test_history_and_experiment_as_frames(tmp_path):
    from kmeansfw.strategies.observers import HISTORY_COLUMNS, records_frame
    from kmeansfw.workflow.experiment import SUMMARY_COLUMNS, run_experiment

    X, _ = make_blobs(300, n_features=2, centers=3, random_state=0)
    km = kmeansfw.KMeans(3, history=True, random_state=0).fit(X)
    frame = records_frame(km.history_, HISTORY_COLUMNS)
    assert list(frame.columns) == list(HISTORY_COLUMNS) and len(frame) == km.n_iter_
    path = tmp_path / "data.npy"
    np.save(path, X)
    result = run_experiment({"lloyd": {"n_clusters": 3}}, [str(path)], seeds=[0, 1])
    summary = result.summary(as_frame=True)
    assert isinstance(summary, pd.DataFrame) and list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary.to_dict("records") == result.summary()
    assert len(result.to_pandas()) == 2


def test_missing_pandas_names_the_extra(monkeypatch):
    import sys

    from kmeansfw.strategies.observers import records_frame

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'kmeansfw\[pandas\]'"):
        records_frame([{"a": 1}])



def test_the_sparse_tag_follows_the_strategies():
    # the tag said sparse input was taken whatever the distance; manhattan refuses it,
    # so scikit-learn's own checks fed it sparse data and failed
    from sklearn.utils import get_tags

    assert get_tags(kmeansfw.KMeans(3)).input_tags.sparse
    assert get_tags(kmeansfw.KMeans(3, distance="cosine")).input_tags.sparse
    assert not get_tags(kmeansfw.KMeans(3, distance="manhattan")).input_tags.sparse
    assert get_tags(kmeansfw.KMeans(3, distance="no-such")).input_tags.sparse  # fit says why
    X = sp.random(40, 4, density=0.5, format="csr", random_state=0)
    with pytest.raises(ValueError, match="sparse input is not supported"):
        kmeansfw.KMeans(3, distance="manhattan").fit(X)
