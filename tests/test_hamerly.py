"""The hamerly assignment gives nearest's labels at every iteration, with less work."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw import ConfigError, KMeans


class LabelsPerIteration:
    def __init__(self):
        self.labels = []

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.labels.append(state.labels.copy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("distance", "k"),
    [("euclidean", 8), ("manhattan", 5), ({"name": "minkowski", "p": 3}, 4), ("chebyshev", 3)],
)
def test_same_labels_as_nearest_every_iteration(distance, k, dtype):
    X, _ = make_blobs(4000, n_features=5, centers=k, cluster_std=3.0, random_state=2)
    X = X.astype(dtype)
    runs = {}
    for assignment in ("nearest", "hamerly"):
        seen = LabelsPerIteration()
        km = KMeans(
            k,
            distance=distance,
            assignment=assignment,
            init="random",
            n_init=2,
            random_state=4,
            tol=0,
            observers=[seen],
            memory_budget_mb=0.05,
        )
        with np.errstate(all="ignore"):
            km.fit(X)
        runs[assignment] = (km, seen.labels)
    (near, near_labels), (ham, ham_labels) = runs["nearest"], runs["hamerly"]
    assert len(near_labels) == len(ham_labels)
    for a, b in zip(near_labels, ham_labels, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(near.labels_, ham.labels_)
    np.testing.assert_allclose(near.cluster_centers_, ham.cluster_centers_)
    np.testing.assert_allclose(near.inertia_, ham.inertia_, rtol=1e-6)
    np.testing.assert_array_equal(near.predict(X[:100]), ham.predict(X[:100]))


def test_hamerly_recomputes_fewer_rows_over_time():
    X, _ = make_blobs(5000, n_features=4, centers=6, random_state=1)
    recomputed = []

    class Count:
        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_distance(self, X):  # the centroid-to-centroid geometry, 6 rows
            recomputed.append(X.shape[0])
            return (yield)

        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_nearest_two(self, X):  # the rows the bounds could not settle
            recomputed.append(X.shape[0])
            return (yield)

    KMeans(
        6, assignment="hamerly", init="random", n_init=1, random_state=0, tol=0, observers=[Count()]
    ).fit(X)
    # per iteration: the centroid-centroid distances (6 rows) then the recomputed rows
    iterations, current = [], None
    for n in recomputed:
        if n == 6:
            current = [] if current is None or current else current
            if not iterations or iterations[-1] is not current:
                iterations.append(current)
        else:
            current.append(n)
    totals = [sum(rows) for rows in iterations]
    assert totals[0] == 5000  # the first pass computes everything
    assert totals[-1] < 0.05 * 5000  # at the end almost every row is skipped


def test_hamerly_needs_a_metric():
    with pytest.raises(ConfigError, match="needs a distance that is a true metric.*'cosine'"):
        kmeansfw.Config(distance="cosine", assignment="hamerly").build_strategies()


def test_auto_picks_by_metric_and_size():
    X, _ = make_blobs(6000, n_features=4, centers=40, random_state=0)
    strategies = dict(
        (s, o) for s, _, o in kmeansfw.Config(n_clusters=40, assignment="auto").build_strategies()
    )
    assert strategies["assignment"].metric is True
    cosine = dict(
        (s, o)
        for s, _, o in kmeansfw.Config(
            n_clusters=40, distance="cosine", assignment="auto"
        ).build_strategies()
    )
    assert cosine["assignment"].metric is False
    auto = KMeans(40, assignment="auto", random_state=0).fit(X)  # 6000 x 40 >= 2^17
    plain = KMeans(40, random_state=0).fit(X)
    np.testing.assert_array_equal(auto.labels_, plain.labels_)
    assert auto.n_iter_ == plain.n_iter_
