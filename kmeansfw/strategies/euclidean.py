"""The Euclidean geometry: squared-distance objective, mean update, norm caching.

As scikit-learn does, distances are computed on data centered on its mean, which keeps
``||x||^2 - 2 x.c + ||c||^2`` accurate (no copy of the data: each block is centered on
the fly).  Squared distances take one matrix product per block; the row norms and the
mean are computed once per data set, the centroid norms once per centroid set.  The
nearest-centroid search (:func:`kmeansfw.kernels.nearest_sq_euclidean`) compares
``||c||^2 - 2 x.c`` in one fused pass after the product and then computes the exact
squared distance to the chosen centroid only.
"""

from __future__ import annotations

import attrs
import numpy as np

from kmeansfw.blocks import map_tasks
from kmeansfw.data import FitData
from kmeansfw.kernels import nearest_sq_euclidean
from kmeansfw.markers import hookimpl

_MEAN = "euclidean.mean"
_NORMS = "euclidean.x_sq_norms"
_CENTERED_C = "euclidean.centered_c"
_MINUS_2C = "euclidean.minus_2c"
_C_NORMS = "euclidean.c_sq_norms"


def centered_row_sq_norms(data: FitData, mean: np.ndarray) -> np.ndarray:
    """Squared L2 norm of every row of ``data.X - mean``, in bounded memory."""
    X = data.X
    out = np.empty(data.n_samples, dtype=data.dtype)

    def run_task(task: list[slice]) -> None:
        span = FitData.task_rows(task)
        centered = X[span] - mean
        np.einsum("ij,ij->i", centered, centered, out=out[span])

    map_tasks(data, run_task)
    return out


@attrs.frozen
class Euclidean:
    """Euclidean distance; the objective is the sum of squared distances (inertia).

    Natural update: ``mean``.  A true metric.
    """

    name = "euclidean"
    objective = "sum of squared Euclidean distances"
    natural_update = "mean"
    is_metric = True

    @hookimpl
    def kmeansfw_prepare(self, data: FitData) -> None:
        if _NORMS not in data.cache:
            mean = data.X.mean(axis=0)
            data.cache[_MEAN] = mean
            data.cache[_NORMS] = centered_row_sq_norms(data, mean)

    @hookimpl
    def kmeansfw_prepare_centroids(self, centroids: np.ndarray, data: FitData, cache: dict) -> None:
        centered = centroids - data.cache[_MEAN]
        cache[_CENTERED_C] = centered
        cache[_MINUS_2C] = np.ascontiguousarray(centered * -2)
        cache[_C_NORMS] = np.einsum("ij,ij->i", centered, centered)

    @hookimpl
    def kmeansfw_cost(self, X: np.ndarray, rows: slice, data: FitData, cache: dict) -> np.ndarray:
        out = np.dot(X - data.cache[_MEAN], cache[_MINUS_2C].T)
        out += cache[_C_NORMS]
        out += data.cache[_NORMS][rows, None]
        return np.maximum(out, 0, out=out)

    @hookimpl
    def kmeansfw_distance(
        self, X: np.ndarray, rows: slice, data: FitData, cache: dict
    ) -> np.ndarray:
        return np.sqrt(self.kmeansfw_cost(X=X, rows=rows, data=data, cache=cache))

    @hookimpl
    def kmeansfw_nearest(
        self, X: np.ndarray, data: FitData, cache: dict
    ) -> tuple[np.ndarray, np.ndarray]:
        return nearest_sq_euclidean(
            X, data.cache[_MEAN], cache[_MINUS_2C], cache[_C_NORMS], cache[_CENTERED_C]
        )
