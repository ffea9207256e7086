"""Mini-batch k-means (batch_size) and partial_fit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import MiniBatchKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from kmeansfw import KMeans


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
    with pytest.raises(ValueError, match="needs the mean or spherical update"):
        KMeans(3, distance="manhattan").partial_fit(X[:1000])
    with pytest.raises(ValueError, match="needs the mean or spherical update"):
        KMeans(3, distance="manhattan", batch_size=100).fit(X[:1000])
