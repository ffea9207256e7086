"""scipy.sparse CSR input: euclidean and cosine with mean/spherical match dense results."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs

from kmeansfw import KMeans


@pytest.fixture(params=[np.float64, np.float32])
def sparse_blobs(request):
    X, _ = make_blobs(3000, n_features=30, centers=6, random_state=4)
    X[np.abs(X) < 4] = 0  # about two thirds zeros
    X = X.astype(request.param)
    return X, sp.csr_matrix(X)


@pytest.mark.parametrize(
    ("distance", "update"), [("euclidean", None), ("cosine", None), ("sqeuclidean", "mean")]
)
def test_sparse_matches_dense(sparse_blobs, distance, update, rng):
    X, S = sparse_blobs
    init = X[[0, 500, 1000, 1500, 2000, 2500]]
    w = rng.uniform(0.5, 2.0, size=X.shape[0])
    dense = KMeans(6, init=init, distance=distance, update=update).fit(X, sample_weight=w)
    sparse = KMeans(6, init=init, distance=distance, update=update).fit(S, sample_weight=w)
    if X.dtype == np.float64:
        np.testing.assert_array_equal(sparse.labels_, dense.labels_)
        assert sparse.n_iter_ == dense.n_iter_
    else:  # float32 sums in another order can flip a near tie: at most 1 sample in 1000
        assert np.mean(sparse.labels_ != dense.labels_) <= 1e-3
    rtol = 1e-4 if X.dtype == np.float32 else 1e-9
    np.testing.assert_allclose(sparse.inertia_, dense.inertia_, rtol=rtol)
    np.testing.assert_allclose(
        sparse.cluster_centers_, dense.cluster_centers_, rtol=rtol, atol=rtol
    )
    assert np.mean(sparse.predict(S) != dense.predict(X)) <= (0 if rtol < 1e-6 else 1e-3)
    np.testing.assert_allclose(
        sparse.transform(S[:50]), dense.transform(X[:50]), rtol=1e-4, atol=1e-4
    )


def test_sparse_matches_sklearn(sparse_blobs):
    X, S = sparse_blobs
    init = X[[3, 600, 1200, 1800, 2400, 2999]]
    ours = KMeans(6, init=init).fit(S)
    sk = SkKMeans(6, init=init, n_init=1, algorithm="lloyd").fit(S)
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=1e-5)


@pytest.mark.parametrize(
    "init", ["k-means++", "k-means||", "random", "farthest-first", "random-partition"]
)
def test_sparse_seeding(sparse_blobs, init):
    _, S = sparse_blobs
    a = KMeans(6, init=init, random_state=2, n_init=1).fit(S)
    b = KMeans(6, init=init, random_state=2, n_init=1).fit(S)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert np.isfinite(a.cluster_centers_).all()


@pytest.mark.parametrize(
    ("params", "culprit"),
    [
        ({"distance": "manhattan"}, "distance strategy 'manhattan'"),
        ({"update": "median"}, "update strategy 'median'"),
        ({"distance": lambda X, C: np.zeros((X.shape[0], C.shape[0]))}, "distance strategy"),
    ],
)
@pytest.mark.filterwarnings("ignore::kmeansfw.PairingWarning")
def test_other_strategies_refuse_sparse_input(sparse_blobs, params, culprit):
    _, S = sparse_blobs
    with pytest.raises(ValueError, match=f"sparse input is not supported by the {culprit}"):
        KMeans(6, random_state=0, **params).fit(S)


def test_sparse_input_is_not_modified(sparse_blobs):
    _, S = sparse_blobs
    before = S.copy()
    KMeans(6, random_state=0, distance="cosine").fit(S)
    assert (S != before).nnz == 0


@pytest.mark.parametrize("distance", ["euclidean", "sqeuclidean"])
@pytest.mark.parametrize(
    ("dtype", "offset"), [(np.float64, 5), (np.float32, 5), (np.float32, 1000)]
)
def test_sparse_rows_for_a_model_fitted_on_dense_data(distance, dtype, offset):
    # the model's mean is the dense training mean (not zero): sparse rows, used
    # uncentered, must still give the dense rows' costs (they ignored the mean before:
    # transform and score silently wrong, labels right), in the data's dtype, and in
    # float32 far from the origin to float32's precision (the terms cancel)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    X[X < 0.2] = 0
    X = (X + np.where(X != 0, offset, 0)).astype(dtype)
    km = KMeans(4, distance=distance, random_state=0).fit(X)
    S = sp.csr_matrix(X)
    C = km.cluster_centers_.astype(np.float64)
    brute = ((X.astype(np.float64)[:, None, :] - C[None]) ** 2).sum(axis=2)
    expected = brute if distance == "sqeuclidean" else np.sqrt(brute)
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_array_equal(km.predict(S), brute.argmin(axis=1))
    distances = km.transform(S)
    assert distances.dtype == dtype
    np.testing.assert_allclose(distances, expected, rtol=rtol, atol=rtol * offset)
    assert km.score(S) == pytest.approx(-brute.min(axis=1).sum(), rel=rtol)
    if dtype == np.float64:  # the dense rows agree as well
        np.testing.assert_allclose(km.transform(S), km.transform(X), rtol=1e-9, atol=1e-9)
    # and a sparse fit (mean zero) against brute force
    sparse_fit = KMeans(4, distance=distance, random_state=0).fit(S)
    C = sparse_fit.cluster_centers_.astype(np.float64)
    brute = ((X.astype(np.float64)[:, None, :] - C[None]) ** 2).sum(axis=2)
    expected = brute if distance == "sqeuclidean" else np.sqrt(brute)
    np.testing.assert_allclose(sparse_fit.transform(S), expected, rtol=rtol, atol=rtol * offset)
    assert sparse_fit.score(S) == pytest.approx(-brute.min(axis=1).sum(), rel=rtol)
