"""Shared fixtures: small data sets and the scikit-learn reference fit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """600 samples, 4 features, 5 well separated blobs."""
    return make_blobs(n_samples=600, n_features=4, centers=5, random_state=7)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def initial_centroids(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k distinct rows of X, the same for every library."""
    idx = np.random.default_rng(seed).choice(X.shape[0], size=k, replace=False)
    return X[idx].copy()
