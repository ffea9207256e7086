"""Bad input raises a ValueError/TypeError naming the problem; inputs are never modified."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import kmeansfw
from kmeansfw import KMeans, StrategyError
from tests.conftest import Answers


@pytest.fixture
def X(blobs):
    return blobs[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.array([[1.0, np.nan], [2.0, 3.0]]), "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0]]), "infinity"),
        (np.asfortranarray([[1.0, 2.0], [np.nan, 3.0], [4.0, 5.0]]), "NaN"),
        (np.array([[1.0, 0.0, 2.0], [np.inf, 0.0, 3.0]])[:, ::2], "infinity"),
        (np.empty((0, 3)), "0 sample"),
        (np.empty((3, 0)), "0 feature"),
        (np.arange(6.0), "Expected 2D array"),
        (np.ones((2, 2, 2)), "dim"),
        (np.array([["a", "b"], ["c", "d"]]), "string"),
        (np.array([[1 + 2j, 1], [3, 4]]), "Complex data not supported"),
    ],
)
def test_bad_X(data, message):
    with pytest.raises(ValueError, match=message):
        KMeans(1).fit(data)


@pytest.mark.parametrize("k", [0, -1, 1.5, "3", True])
def test_bad_n_clusters(X, k):
    with pytest.raises((ValueError, TypeError), match="n_clusters"):
        KMeans(k).fit(X)


def test_n_clusters_above_n_samples(X):
    with pytest.raises(ValueError, match=r"n_samples=5 should be >= n_clusters=6"):
        KMeans(6).fit(X[:5])


def test_init_array_wrong_shape(X):
    with pytest.raises(ValueError, match=r"init array has shape \(3, 2\), expected .*\(3, 4\)"):
        KMeans(3, init=np.zeros((3, 2))).fit(X)
    with pytest.raises(ValueError, match=r"init array has shape \(2, 4\)"):
        KMeans(3, init=X[:2]).fit(X)


@pytest.mark.parametrize(
    ("change", "dtype"),
    [
        (lambda a: a + 5j, "complex128"),
        (lambda a: a.astype(str), "<U"),
        (lambda a: a * 0j, "complex"),
    ],
)
def test_init_array_of_other_than_real_numbers(X, change, dtype):
    # a cast to the data's dtype would drop the imaginary part, or parse the text, silently
    message = f"init array must hold real numbers, got an array of dtype {dtype}"
    with pytest.raises(ValueError, match=message):
        KMeans(3, init=change(X[:3]), n_init=1).fit(X)


def test_an_init_given_as_a_dataframe_is_explicit_centroids(X):
    import pandas as pd

    frame = pd.DataFrame(X[:3])
    with pytest.warns(RuntimeWarning, match="Explicit initial centroids"):
        km = KMeans(3, init=frame, n_init=10).fit(X)
    reference = KMeans(3, init=X[:3], n_init=1).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, reference.cluster_centers_)
    assert km.init is frame  # the parameter as given (get_params, clone)
    with pytest.raises(ValueError, match="every row of an init array must be a sample of X"):
        kmeansfw.KMedoids(3, init=pd.DataFrame(X[:3] + 0.123)).fit(X)


def test_init_array_with_nan(X):
    init = X[:3].copy()
    init[0, 0] = np.nan
    with pytest.raises(StrategyError, match="init strategy 'array'.*NaN"):
        KMeans(3, init=init).fit(X)


def test_init_array_beyond_the_float32_data_s_range(X):
    # finite in float64, inf once cast to the float32 data's dtype: said as such, not
    # as centroids "containing NaN or infinity" the user never gave
    init = X[:3].astype(np.float64)
    init[1, 2] = -1e200
    with pytest.raises(StrategyError, match=r"init array holds values up to 1e\+200, beyond"):
        KMeans(3, init=init).fit(X.astype(np.float32))
    init[1, 2] = 3e38  # within float32's range: fits
    assert KMeans(3, init=init, max_iter=1).fit(X.astype(np.float32)).n_iter_ == 1


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(5), "sample_weight has 5 entries but X has 600 samples"),
        (-np.ones(600), "negative"),
        (np.full(600, np.nan), "NaN"),
        (np.zeros(600), "zero for every sample"),
        (np.ones((600, 2)), "1-D"),
        (np.array(["x"] * 600), "real numbers, got an array of dtype <U1"),
        (np.array(["1"] * 600), "real numbers, got an array of dtype <U1"),  # not parsed
        ("1", "real numbers"),
        (np.full(600, 1 + 3j), "real numbers, got an array of dtype complex128"),
        (2 + 0j, "real numbers"),
        (np.array([object()] * 600), "real numbers, got an array of dtype object"),
    ],
)
def test_bad_sample_weight(X, weights, message):
    with pytest.raises(ValueError, match=message):
        KMeans(3).fit(X, sample_weight=weights)


def test_sample_weight_too_large_for_float32_is_named_so(X):
    # finite, but past float32: it said "contains NaN or infinity"
    weights = np.ones(600)
    weights[7] = 1e200
    with pytest.raises(ValueError, match=r"too large for float32 \(the largest 1e\+200"):
        KMeans(3).fit(X.astype(np.float32), sample_weight=weights)
    KMeans(3, n_init=1).fit(X, sample_weight=weights)  # float64 holds it


def test_unknown_strategy_names_lists_known(X):
    with pytest.raises(ValueError, match=r"unknown distance strategy 'nope'.*euclidean"):
        KMeans(3, distance="nope").fit(X)
    with pytest.raises(ValueError, match=r"unknown init strategy 'kmeans\+\+'.*k-means\+\+"):
        KMeans(3, init="kmeans++").fit(X)
    with pytest.raises(ValueError, match=r"unknown convergence strategy 'x'.*tol.*unchanged"):
        KMeans(3, convergence=["tol", "x"]).fit(X)


def test_wrong_number_of_features_at_predict(X):
    km = KMeans(3, random_state=0).fit(X)
    for method in (km.predict, km.transform, km.score):
        with pytest.raises(ValueError, match="X has 2 features, but KMeans is expecting 4"):
            method(X[:, :2])


def test_predict_before_fit(X):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        KMeans(3).predict(X)


def _broken(returns):
    def distance(X, centroids):
        return returns(X, centroids)

    return distance


@pytest.mark.parametrize(
    ("returns", "message"),
    [
        (lambda X, C: np.zeros((X.shape[0], C.shape[0] + 1)), r"shape \(\d+, 4\), expected"),
        (lambda X, C: np.full((X.shape[0], C.shape[0]), np.nan), "NaN"),
        (lambda X, C: -np.ones((X.shape[0], C.shape[0])), "negative"),
        (lambda X, C: None, "returned None"),
        (lambda X, C: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_broken_distance_is_named(X, returns, message):
    distance = _broken(returns)
    distance.__name__ = "broken_metric"
    with pytest.raises(StrategyError, match=rf"distance strategy 'broken_metric'.*{message}"):
        KMeans(3, distance=distance, init=X[:3], random_state=0).fit(X)


def test_broken_update_is_named(X):
    import attrs

    @attrs.frozen
    class BadUpdate:
        name = "bad-update"

        @kmeansfw.hookimpl
        def kmeansfw_update(self, centroids):
            return centroids[:1], np.ones(centroids.shape[0])

    with pytest.raises(StrategyError, match=r"update strategy 'bad-update'.*shape \(1, 4\)"):
        KMeans(3, update=BadUpdate(), random_state=0).fit(X)


def test_broken_assignment_is_named(X):
    import attrs

    @attrs.frozen
    class OutOfRange:
        name = "out-of-range"

        @kmeansfw.hookimpl
        def kmeansfw_assign(self, X, centroids):
            return np.full(X.shape[0], centroids.shape[0]), np.zeros(X.shape[0])

    with pytest.raises(StrategyError, match=re.escape("'out-of-range'") + ".*outside"):
        KMeans(3, assignment=OutOfRange(), random_state=0).fit(X)


@pytest.mark.parametrize(
    "hook_name, assignment",
    [("kmeansfw_nearest", "hamerly"), ("kmeansfw_nearest", "yinyang")],
)
@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda a: a[:3], "did not return"),
        (lambda a: (a[0] + 100, *a[1:]), "labels outside"),
        (lambda a: (a[0], a[1], np.full_like(a[2], np.nan), a[3]), "distances containing NaN"),
        (lambda a: (a[0], -a[1] - 1, *a[2:]), "costs with negative values"),
        (lambda a: (*a[:3], -np.abs(a[3]) - 1), "rival distances that are negative or NaN"),
        (
            lambda a: (*a[:3], np.full_like(a[3], np.nan)),
            "rival distances that are negative or NaN",
        ),
        (lambda a: (*a[:3], a[3][:1]), "rival distances of shape"),
    ],
)
def test_broken_bound_search_is_named(X, hook_name, assignment, corrupt, message):
    """The answers hamerly and yinyang build their bounds on are checked like any other:
    a distance returning garbage there is named, not trusted."""
    import attrs

    from kmeansfw.strategies.euclidean import Euclidean

    @attrs.frozen
    class CorruptSearch(Euclidean):
        name = "corrupt-search"

        @kmeansfw.hookimpl
        def kmeansfw_nearest(self, X, centroids, groups, n_groups, rows, data, cache, hook):
            answer = Euclidean.kmeansfw_nearest(
                self,
                X=X,
                centroids=centroids,
                groups=groups,
                n_groups=n_groups,
                rows=rows,
                data=data,
                cache=cache,
                hook=hook,
                with_costs=True,
            )
            return corrupt(answer) if n_groups else answer

    pattern = rf"'corrupt-search'.*{message}.*\(hook {hook_name}\)"
    with pytest.raises(StrategyError, match=pattern):
        KMeans(3, distance=CorruptSearch(), assignment=assignment, random_state=0).fit(X)


def test_arrays_are_never_modified(X, rng):
    X = X.copy()
    X.flags.writeable = False  # any write would raise
    w = rng.uniform(0.5, 2, X.shape[0])
    w.flags.writeable = False
    init = X[:4].copy()
    init.flags.writeable = False
    X32 = X.astype(np.float32)
    X32.flags.writeable = False
    before = (X.copy(), w.copy(), init.copy())
    km = KMeans(4, init=init).fit(X, sample_weight=w)
    km.predict(X)
    km.transform(X)
    km.score(X, sample_weight=w)
    KMeans(4, init="random", n_init=2, random_state=0).fit(X32)
    np.testing.assert_array_equal(X, before[0])
    np.testing.assert_array_equal(w, before[1])
    np.testing.assert_array_equal(init, before[2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fortran_ordered_and_strided_arrays_fit_as_their_c_ordered_copy(X, dtype):
    """Arrays that need only a C-ordered copy (Fortran order, a column slice) take the
    same path as a C-contiguous array: the same fit bit for bit, and never modified."""
    C = np.ascontiguousarray(X, dtype=dtype)
    fortran = np.asfortranarray(C)
    strided = np.repeat(C, 2, axis=1)[:, ::2]  # every other column: C's values, strided
    assert not fortran.flags.c_contiguous and not strided.flags.c_contiguous
    reference = KMeans(4, random_state=0).fit(C)
    for other in (fortran, strided):
        other.flags.writeable = False  # any write would raise
        before = other.copy()
        km = KMeans(4, random_state=0).fit(other)
        np.testing.assert_array_equal(km.labels_, reference.labels_)
        np.testing.assert_array_equal(km.cluster_centers_, reference.cluster_centers_)
        assert km.inertia_ == reference.inertia_ and km.n_iter_ == reference.n_iter_
        np.testing.assert_array_equal(km.predict(other), reference.predict(C))
        np.testing.assert_array_equal(km.transform(other), reference.transform(C))
        np.testing.assert_array_equal(other, before)
        assert km.n_features_in_ == C.shape[1] and not hasattr(km, "feature_names_in_")


def test_arrays_needing_only_c_order_skip_check_array(X, monkeypatch):
    """The copy to C order is made by kmeansfw itself: scikit-learn's check_array (its
    dataframe and dtype machinery) is never asked to convert such an array."""
    import sklearn.utils

    import kmeansfw.estimator

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return validate_data(*args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError("check_array was asked to convert the array")

    validate_data = kmeansfw.estimator.validate_data
    monkeypatch.setattr(kmeansfw.estimator, "validate_data", spy)
    monkeypatch.setattr(sklearn.utils, "check_array", refuse)  # validate_X's fallback
    fortran = np.asfortranarray(X)
    km = KMeans(4, random_state=0).fit(fortran)
    km.predict(fortran)
    strided = np.repeat(X, 2, axis=1)[:, ::2]  # every other column: a strided view
    assert not strided.flags.c_contiguous
    km.transform(strided)
    assert calls and all(call.get("skip_check_array") for call in calls)
    fit = kmeansfw.fit(fortran, {"n_clusters": 4, "random_state": 0})  # validate_X's path
    np.testing.assert_array_equal(fit.labels, km.labels_)


def test_fewer_distinct_points_than_k_warns():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"Number of distinct clusters \(3\)"):
        km = KMeans(5, random_state=0).fit(X)
    assert np.isfinite(km.cluster_centers_).all()
    assert set(np.unique(km.labels_)) <= set(range(5))


def test_at_least_k_distinct_points_gives_k_nonempty_clusters(rng):
    # many duplicates, exactly k distinct points, adversarial explicit init
    points = rng.normal(size=(6, 3))
    X = np.repeat(points, 20, axis=0)
    init = np.repeat(points[:1], 6, axis=0) + 1e-3 * np.arange(6)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        km = KMeans(6, init=init).fit(X)
    assert np.unique(km.labels_).size == 6
    assert np.isfinite(km.cluster_centers_).all()


def test_float32_squared_distances_past_its_range_say_so():
    # finite float32 data whose squared distances pass 3.4e38: the costs overflow; the
    # error says so and how to fit it instead
    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    X[3, 1] = 1e30
    with pytest.raises(StrategyError, match="float32's largest value .* fit it as float64"):
        KMeans(2, random_state=0).fit(X)
    KMeans(2, random_state=0).fit(X.astype(np.float64))  # fine in float64


class _Passing:
    """An observer wrapping the criteria (the fit then calls them through pluggy)."""

    @kmeansfw.hookimpl(wrapper=True)
    def kmeansfw_converged(self, state):
        return (yield)


@pytest.mark.parametrize(
    "value", ["no", 1, 0.0, np.zeros(3), np.array([True]), [False]], ids=repr
)
@pytest.mark.parametrize("how", ["alone", "wrapped", "in-any", "callback"])
def test_a_criterion_answering_other_than_a_bool_is_named(X, value, how):
    # a truth value taken from a string or a number would stop the fit, or not, by
    # accident; an array's would raise NumPy's error without the criterion's name
    params = {"n_init": 1, "random_state": 0}
    if how == "callback":
        params["convergence"] = {"name": "callback", "func": lambda state: value}
        culprit = "callback '.*<lambda>'"
    elif how == "in-any":
        params["convergence"] = {"name": "any", "criteria": ["tol", Answers(value)]}
        culprit = "answers-test"
    else:
        params["convergence"] = ["tol", Answers(value)]
        params["observers"] = [_Passing()] if how == "wrapped" else []
        culprit = "answers-test"
    with pytest.raises(StrategyError, match=f"{culprit}.*returned .*from kmeansfw_converged"):
        KMeans(3, **params).fit(X)


@pytest.mark.parametrize("value", [True, False, np.True_, np.False_, None])
def test_a_criterion_answering_a_bool_or_none_is_heard(X, value):
    params = {"n_init": 1, "random_state": 0, "tol": 0}
    km = KMeans(3, convergence=["tol", Answers(value)], **params).fit(X)
    quiet = KMeans(3, **params).fit(X)
    assert quiet.n_iter_ > 1
    assert km.n_iter_ == (1 if value else quiet.n_iter_)
