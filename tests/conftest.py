"""Shared fixtures: small data sets and the scikit-learn reference fit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import kmeansfw


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """600 samples, 4 features, 5 well separated blobs."""
    return make_blobs(n_samples=600, n_features=4, centers=5, random_state=7)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def with_far_outlier(
    dtype, offset: float, n: int = 50, d: int = 2, seed: int = 0, centre: float = 0.0
) -> np.ndarray:
    """``n`` normal rows around ``centre`` and one at ``offset`` in every feature: the
    mean lies about ``offset / n`` from the rows, the bulk's median among them."""
    rng = np.random.default_rng(seed)
    return np.r_[centre + rng.normal(size=(n, d)), np.full((1, d), offset)].astype(dtype)


def serial_search(direct: bool):
    """The serial search kernel of a shape, without the mean's sums, called as the
    kernel functions call it (read-only data, no weights): the direct search with
    ``direct``, else the product search (at its shapes, the row search).  Signature
    ``(X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second)``."""
    from kmeansfw.kernels import euclidean, read_only

    def search(X, mean, minus_2c, c_sq_norms, centered_c, labels, mins, second):
        kernel = euclidean._search_for(direct, X.shape[1], minus_2c.shape[0], X.itemsize)
        kernel(
            read_only(X), read_only(mean), minus_2c, c_sq_norms, centered_c, labels, mins,
            second, *euclidean._no_sums(X.dtype), False,
        )

    return search


def initial_centroids(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k distinct rows of X, the same for every library."""
    idx = np.random.default_rng(seed).choice(X.shape[0], size=k, replace=False)
    return X[idx].copy()


def exact_nearest(X: np.ndarray, centres: np.ndarray, margin: float):
    """Each row's nearest centroid by the exact (float64) squared distances, and which
    rows are clear-cut: their two nearest more than ``margin`` times the nearest apart."""
    exact = ((X.astype(np.float64)[:, None, :] - np.asarray(centres, np.float64)[None]) ** 2).sum(
        axis=2
    )
    ordered = np.sort(exact, axis=1)
    return exact.argmin(axis=1), ordered[:, 1] - ordered[:, 0] > margin * ordered[:, 0]


def cluster_at_the_origin(rng: np.random.Generator, n: int = 40_000, d: int = 16):
    """float32 rows whose labels depend on where they are compared: ``n`` standard normal
    rows shifted so that the mean sits near the origin rule's limit, then 8000 rows of a
    tight cluster (radius 1e-4) at the origin; and eight centroids, the last four in that
    cluster.  Compared on the mean, about 600 of these rows take another centroid than
    the exact distances say; compared on the origin, none."""
    wide = rng.standard_normal((n, d)) + np.sqrt(1 / 80)
    tight = rng.standard_normal((8_000, d)) * 1e-4
    X = np.vstack([wide, tight]).astype(np.float32)
    return X, np.vstack([wide[:4], tight[:4]]).astype(np.float32)


class Answers:
    """A convergence criterion answering ``value`` after every iteration (True, False,
    None, or something else that the engine must refuse)."""

    name = "answers-test"

    def __init__(self, value):
        self.value = value

    @kmeansfw.hookimpl
    def kmeansfw_converged(self, state):
        return self.value


def two_far_groups(dtype=np.float32, n=4000, offset=1e5):
    """Five 4-feature blobs of unit spread (n rows), three quarters of the rows moved by
    ``offset``: in float32, clusters a few units apart on either side of a mean
    ``offset / 4`` and ``3 offset / 4`` away, whose search compares squared distances
    rounded by about ``offset^2 * 1e-7`` (the labels of most rows then follow the
    rounding; float64 keeps them)."""
    X = make_blobs(n, centers=5, n_features=4, random_state=0)[0]
    X[n // 4 :] += offset
    return X.astype(dtype)

