"""kmeansfw-minkowski: the Minkowski (L_p) distance as a third-party kmeansfw plugin.

Installing this distribution registers the distance ``minkowski`` (parameter ``p``)
through the ``kmeansfw`` entry-point group; select it with
``KMeans(distance={"name": "minkowski", "p": 3})`` or ``[distance] name = "minkowski"``.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

import kmeansfw


def _check_p(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"minkowski: p must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"minkowski: p must be a finite number > 0, got {value!r}")


@attrs.frozen
class Minkowski:
    """Minkowski distance ``(sum |x - c|^p)^(1/p)``; the objective is its square.

    A true metric for ``p >= 1``.  Computed feature by feature on whole (b, k) blocks,
    so memory stays at one block whatever the number of features.
    """

    name = "minkowski"
    objective = "sum of squared Minkowski distances"
    natural_update = "mean"
    p: float = attrs.field(default=2.0, validator=_check_p)

    @property
    def is_metric(self) -> bool:
        """Whether the triangle inequality holds (p >= 1)."""
        return self.p >= 1

    @kmeansfw.hookimpl
    def kmeansfw_distance(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        total = np.zeros((X.shape[0], centroids.shape[0]), dtype=X.dtype)
        diff = np.empty_like(total)
        for f in range(X.shape[1]):  # over features; each step is a whole (b, k) block
            np.subtract(X[:, f, None], centroids[None, :, f], out=diff)
            np.abs(diff, out=diff)
            total += diff**self.p
        return total ** (1.0 / self.p)

    @kmeansfw.hookimpl
    def kmeansfw_cost(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        d = self.kmeansfw_distance(X=X, centroids=centroids)
        return d * d


@kmeansfw.hookimpl
def kmeansfw_register_strategies(register) -> None:
    """Register ``minkowski`` in the kmeansfw catalog."""
    register("distance", "minkowski", Minkowski)
