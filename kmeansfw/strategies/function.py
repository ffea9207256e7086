"""Adapters that turn plain vectorized functions into strategies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from kmeansfw.markers import hookimpl

OBJECTIVES = ("squared", "distance")


@attrs.frozen(eq=False)
class FunctionDistance:
    """A distance strategy from a function ``func(X_block, centroids, **params) -> (b, k)``.

    Parameters
    ----------
    func : callable
        Vectorized: takes a (b, d) block and the (k, d) centroids, returns (b, k) distances.
    name : str
        The catalog name, used in error messages.
    objective : {"squared", "distance"}
        What the fit minimizes: the sum of squared distances (k-means) or of distances.
    natural_update : str
        The update strategy that minimizes the objective (informational for now).
    is_metric : bool
        Whether the distance satisfies the triangle inequality.
    params : dict
        Extra keyword arguments passed to ``func`` on every call.
    """

    func: Callable[..., np.ndarray]
    name: str = "function"
    objective: str = attrs.field(default="squared", validator=attrs.validators.in_(OBJECTIVES))
    natural_update: str = "mean"
    is_metric: bool = False
    params: dict[str, Any] = attrs.field(factory=dict)

    def _call(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        d = self.func(X, centroids, **self.params)
        if d is None:
            raise ValueError("returned None instead of a (b, k) array of distances")
        return d

    @hookimpl
    def kmeansfw_distance(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        return self._call(X, centroids)

    @hookimpl
    def kmeansfw_cost(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        d = np.asarray(self._call(X, centroids))
        if self.objective != "squared":
            return d
        if d.dtype.kind in "fiu" and d.size and d.min() < 0:
            raise ValueError("returned negative distances")
        return d * d


@attrs.frozen(eq=False)
class CallableInit:
    """Initialization from a function ``func(X, n_clusters, rng) -> (k, d) centroids``."""

    func: Callable[..., np.ndarray]
    name: str = "callable"

    @hookimpl
    def kmeansfw_init_centroids(
        self, X: np.ndarray, n_clusters: int, rng: np.random.Generator
    ) -> np.ndarray:
        return self.func(X, n_clusters, rng)
