"""Empty-cluster strategies: ``relocate-farthest`` (scikit-learn's rule)."""

from __future__ import annotations

import attrs
import numpy as np

from kmeansfw.data import FitData
from kmeansfw.markers import hookimpl


@attrs.frozen
class RelocateFarthest:
    """Move each empty cluster's centroid onto one of the samples farthest from theirs.

    The samples with the highest cost to their assigned centroid are taken, farthest
    first, one per empty cluster, and (as scikit-learn does for the mean) each is taken
    out of its old cluster's weighted mean.  When every sample sits on its centroid
    (fewer distinct points than clusters) an empty centroid keeps its previous position.
    """

    name = "relocate-farthest"

    @hookimpl
    def kmeansfw_empty_clusters(
        self,
        data: FitData,
        labels: np.ndarray,
        costs: np.ndarray,
        old_centroids: np.ndarray,
        new_centroids: np.ndarray,
        cluster_weights: np.ndarray,
    ) -> np.ndarray:
        empty = np.flatnonzero(cluster_weights == 0)
        if empty.size == 0:
            return new_centroids
        out = new_centroids.copy()
        out[empty] = old_centroids[empty]
        if costs.max() <= 0:
            return out
        n_far = min(empty.size, costs.shape[0])
        far = np.argpartition(costs, -n_far)[: -n_far - 1 : -1]
        far = far[costs[far] > 0]
        empty = empty[: far.size]
        X, sw = data.X, data.sample_weight
        donors = labels[far]
        w = sw[far].astype(np.float64)
        # take the moved samples out of their donors' weighted means
        sums = out.astype(np.float64) * cluster_weights[:, None]
        weights = cluster_weights.astype(np.float64, copy=True)
        np.subtract.at(sums, donors, X[far] * w[:, None])
        np.subtract.at(weights, donors, w)
        keep = weights[donors] > 0
        out[donors[keep]] = sums[donors[keep]] / weights[donors[keep], None]
        out[empty] = X[far]
        return out
