"""Same data and initial centroids: same labels, inertia and n_iter as scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets
from sklearn.cluster import KMeans as SkKMeans

import kmeansfw
from tests.conftest import initial_centroids


def _bundled(name: str) -> np.ndarray:
    loader = getattr(datasets, f"load_{name}")
    return loader().data


DATASETS = {
    "blobs-2d": lambda: datasets.make_blobs(3000, centers=6, random_state=0)[0],
    "blobs-10d": lambda: datasets.make_blobs(2000, n_features=10, centers=8, random_state=1)[0],
    "blobs-overlap": lambda: datasets.make_blobs(
        1500, n_features=3, centers=4, cluster_std=4.0, random_state=2
    )[0],
    "iris": lambda: _bundled("iris"),
    "wine": lambda: _bundled("wine"),
    "breast_cancer": lambda: _bundled("breast_cancer"),
    "digits": lambda: _bundled("digits"),
    "diabetes": lambda: _bundled("diabetes"),
}


def _compare(X, init, **kwargs):
    sk = SkKMeans(init.shape[0], init=init, n_init=1, algorithm="lloyd", **kwargs).fit(X)
    ours = kmeansfw.KMeans(init.shape[0], init=init, **kwargs).fit(X)
    return sk, ours


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("k", [3, 8])
def test_same_as_sklearn_float64(name, k):
    X = DATASETS[name]().astype(np.float64)
    init = initial_centroids(X, k, seed=k)
    sk, ours = _compare(X, init)
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=1e-7)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", ["blobs-10d", "breast_cancer", "diabetes", "wine", "normal-40d"])
def test_same_as_sklearn_float64_at_32_centroids(name):
    # the search that screens its rows with float32 products (from 8 features and 16
    # centroids: kernels.screen_pays), on data without duplicate rows
    if name == "normal-40d":
        X = np.random.default_rng(5).normal(size=(4000, 40)) * 3 + 100
    else:
        X = DATASETS[name]().astype(np.float64)
    init = initial_centroids(X, 32, seed=32)
    sk, ours = _compare(X, init)
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=1e-7)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, rtol=1e-7, atol=1e-9)


def _exact_ties(X, centroids):
    """How many rows are exactly as far from two nearest centroids (float64 of the
    values: exact for whole numbers)."""
    D = ((X.astype(np.float64)[:, None, :] - centroids.astype(np.float64)[None]) ** 2).sum(2)
    return int(((D == D.min(axis=1, keepdims=True)).sum(axis=1) > 1).sum())


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_same_as_sklearn_float32(name):
    X = DATASETS[name]().astype(np.float32)
    # centroids with no row exactly between two (digits' seed 3 has one: see below)
    seed = 4 if name == "digits" else 3
    init = initial_centroids(X, 5, seed=seed)
    assert _exact_ties(X, init) == 0
    sk, ours = _compare(X, init)
    assert ours.cluster_centers_.dtype == np.float32
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    assert ours.n_iter_ == sk.n_iter_
    # scikit-learn sums float32 inertia in float32 (relative error ~1e-6); ours is exact
    # to 1e-7, checked against a float64 computation:
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=1e-6)
    X64, C64 = X.astype(np.float64), ours.cluster_centers_.astype(np.float64)
    exact = ((X64 - C64[ours.labels_]) ** 2).sum()
    np.testing.assert_allclose(ours.inertia_, exact, rtol=1e-7)


def test_same_as_sklearn_with_sample_weight(rng):
    X = DATASETS["blobs-10d"]()
    w = rng.uniform(0.1, 3.0, size=X.shape[0])
    init = initial_centroids(X, 6)
    sk = SkKMeans(6, init=init, n_init=1, algorithm="lloyd").fit(X, sample_weight=w)
    ours = kmeansfw.KMeans(6, init=init).fit(X, sample_weight=w)
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=1e-7)


@pytest.mark.parametrize("tol", [0.0, 1e-2])
@pytest.mark.parametrize("max_iter", [1, 3, 300])
def test_same_iteration_count_for_tol_and_max_iter(tol, max_iter):
    X = DATASETS["blobs-overlap"]()
    init = initial_centroids(X, 7)
    sk, ours = _compare(X, init, tol=tol, max_iter=max_iter)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=1e-7)


def test_empty_cluster_relocated_like_sklearn():
    X = DATASETS["blobs-2d"]()
    init = initial_centroids(X, 6)
    init[2] = [1e3, 1e3]  # far from every sample: empty after the first assignment
    init[4] = [-1e3, 1e3]
    sk, ours = _compare(X, init)
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=1e-7)
    assert np.unique(ours.labels_).size == 6


def test_predict_transform_score_match_sklearn():
    X = DATASETS["wine"]()
    init = initial_centroids(X, 4)
    sk, ours = _compare(X, init)
    np.testing.assert_array_equal(ours.predict(X[:50]), sk.predict(X[:50]))
    np.testing.assert_allclose(ours.transform(X[:50]), sk.transform(X[:50]), rtol=1e-7)
    np.testing.assert_allclose(ours.score(X), sk.score(X), rtol=1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_exact_tie_goes_to_the_lowest_index_on_whole_numbers(dtype):
    # digits (pixels 0-16) from five of its rows: one row is exactly as far from two of
    # them. Compared on the data's mean (what scikit-learn's fit does), the tie was
    # broken by the rounding of the centered values; compared on a point of whole
    # numbers, the differences stay exact and the row goes to the lower index, as
    # scikit-learn's predict (no centering) and every search of ours agree
    X = DATASETS["digits"]().astype(dtype)
    init = initial_centroids(X, 5, seed=3)
    assert _exact_ties(X, init) == 1
    D = ((X.astype(np.float64)[:, None, :] - init.astype(np.float64)[None]) ** 2).sum(2)
    lowest = D.argmin(axis=1)  # ties to the first, the lowest index
    exact = np.array([X.astype(np.float64)[lowest == j].mean(axis=0) for j in range(5)])
    for assignment in ("nearest", "hamerly", "yinyang"):
        one = kmeansfw.KMeans(5, init=init, max_iter=1, tol=0, assignment=assignment).fit(X)
        np.testing.assert_allclose(one.cluster_centers_, exact, rtol=1e-6, atol=1e-6)
        one.cluster_centers_ = init.copy()
        np.testing.assert_array_equal(one.predict(X), lowest)
    sk = SkKMeans(5, init=init, n_init=1, max_iter=1, tol=0, algorithm="lloyd").fit(X)
    sk.cluster_centers_ = init.copy()
    np.testing.assert_array_equal(sk.predict(X), lowest)
