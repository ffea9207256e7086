"""Update strategies: ``mean`` (weighted mean of each cluster's members)."""

from __future__ import annotations

import attrs
import numpy as np

from kmeansfw.kernels import add_weighted_cluster_sums
from kmeansfw.markers import hookimpl


@attrs.frozen
class Mean:
    """Each centroid becomes the ``sample_weight``-weighted mean of its members.

    Map: per task, the per-cluster weighted sums and weights (one O(b d) pass, see
    :func:`kmeansfw.kernels.add_weighted_cluster_sums`).  Reduce: partials summed in row
    order, so results do not depend on the number of threads.
    Minimizes the sum of squared Euclidean distances.
    """

    name = "mean"

    @hookimpl
    def kmeansfw_accumulate(
        self,
        X: np.ndarray,
        labels: np.ndarray,
        sample_weight: np.ndarray,
        n_clusters: int,
        partial: tuple[np.ndarray, np.ndarray] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if partial is None:
            partial = (np.zeros((n_clusters, X.shape[1])), np.zeros(n_clusters))
        add_weighted_cluster_sums(X, labels, sample_weight, *partial)
        return partial

    @hookimpl
    def kmeansfw_update(
        self,
        data,
        labels: np.ndarray,
        partials: list | None,
        centroids: np.ndarray,
        n_clusters: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        if partials is None:  # called without the map step: run it on all rows at once
            partials = [
                self.kmeansfw_accumulate(
                    X=data.X,
                    labels=labels,
                    sample_weight=data.sample_weight,
                    n_clusters=n_clusters,
                    partial=None,
                )
            ]
        sums = partials[0][0].copy()
        weights = partials[0][1].copy()
        for part_sums, part_weights in partials[1:]:
            sums += part_sums
            weights += part_weights
        filled = weights > 0
        new = centroids.astype(data.dtype, copy=True)
        new[filled] = sums[filled] / weights[filled, None]
        return new, weights
