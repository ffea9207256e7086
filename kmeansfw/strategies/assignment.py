"""Assignment strategies: ``nearest`` (exact nearest centroid under the distance's cost)."""

from __future__ import annotations

import attrs
import numpy as np
import pluggy

from kmeansfw import contract, steps
from kmeansfw.data import FitData
from kmeansfw.markers import hookimpl


@attrs.frozen
class Nearest:
    """Each sample goes to the centroid of lowest cost (ties: the lowest index).

    Uses the distance's fast ``kmeansfw_nearest`` search when it has one, else the
    argmin of its ``kmeansfw_cost`` block.
    """

    name = "nearest"
    accepts_sparse = True

    @hookimpl
    def kmeansfw_assign(
        self,
        X: np.ndarray,
        centroids: np.ndarray,
        rows: slice,
        data: FitData,
        cache: dict,
        hook: pluggy.HookRelay,
    ) -> tuple[np.ndarray, np.ndarray]:
        fast = contract.call(
            hook, "kmeansfw_nearest", X=X, centroids=centroids, rows=rows, data=data, cache=cache
        )
        if fast is not None:
            return fast
        cost = steps.block_matrix(hook, "kmeansfw_cost", data, rows, centroids, cache)
        labels = cost.argmin(axis=1)
        return labels, cost[np.arange(cost.shape[0]), labels]
