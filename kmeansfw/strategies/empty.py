"""Empty-cluster strategies: ``relocate-farthest`` (default), ``split-largest``, ``keep``,
``raise``."""

from __future__ import annotations

import attrs
import numpy as np

from kmeansfw.core.data import FitData
from kmeansfw.core.markers import hookimpl
from kmeansfw.engine import steps
from kmeansfw.strategies.validators import real


def _empty_clusters(
    old_centroids: np.ndarray, new_centroids: np.ndarray, cluster_weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """None when no cluster is empty; else the empty clusters' indices and a copy of the
    new centroids in which they keep their old position."""
    if np.count_nonzero(cluster_weights) == cluster_weights.size:
        return None
    empty = np.flatnonzero(cluster_weights == 0)
    out = new_centroids.copy()
    out[empty] = old_centroids[empty]
    return empty, out


@attrs.frozen
class RelocateFarthest:
    """Give each empty cluster one of the samples farthest from their centroids.

    The samples of highest cost to their assigned centroid are moved, farthest first,
    one per empty cluster (scikit-learn's rule), and the update is asked again for the
    changed partition, so the donor clusters lose those samples under whatever update
    is in use (for the mean this is exactly scikit-learn's correction).  When every
    sample sits on its centroid (fewer distinct points than clusters) an empty centroid
    keeps its previous position.
    """

    name = "relocate-farthest"
    accepts_sparse = True
    #: Answers the engine's one-call Lloyd iteration (kmeansfw.engine.lloyd_step).
    _lloyd_step = True

    @hookimpl
    def kmeansfw_empty_clusters(
        self,
        data: FitData,
        assignment: steps.Assignment,
        old_centroids: np.ndarray,
        new_centroids: np.ndarray,
        cluster_weights: np.ndarray,
        rng: np.random.Generator,
        hook,
    ) -> np.ndarray:
        found = _empty_clusters(old_centroids, new_centroids, cluster_weights)
        if found is None:
            return new_centroids
        empty, out = found
        labels, costs = assignment.labels, assignment.costs  # costs: read only now
        n_far = min(empty.size, costs.shape[0])
        far = np.argpartition(costs, -n_far)[: -n_far - 1 : -1]
        far = far[costs[far] > 0]
        if far.size == 0:
            return out
        moved = labels.copy()
        moved[far] = empty[: far.size]
        relocated, _ = steps.update(hook, data, steps.Assignment(moved, costs, None), out, rng)
        changed = np.unique(np.concatenate([labels[far], empty[: far.size]]))
        out[changed] = relocated[changed]
        return out


@attrs.frozen
class SplitLargest:
    """Split the largest cluster in two for each empty one (faiss's rule, in a drawn
    direction).

    The empty centroid becomes a copy of the largest cluster's centroid, and both are
    pushed apart by a relative ``eps`` per feature (an absolute ``eps`` on zero
    coordinates) along a direction drawn from the fit's generator (standard normal
    weights per feature).  faiss pushes them along alternating signs (+, -, +, ...):
    members lying across that direction (points along the diagonal of two features)
    were then exactly as far from both, the lower index took them all, and the new
    cluster stayed empty; a drawn direction lies across the members with probability
    zero.  Only clusters whose members are not all on their centroid are split, so with
    at least k distinct points the split separates something.

    Parameters
    ----------
    eps : float, default=1/1024
    """

    name = "split-largest"
    accepts_sparse = True
    eps: float = attrs.field(default=1 / 1024)

    @eps.validator
    def _check_eps(self, attribute: attrs.Attribute, value: float) -> None:
        if not real(value) or not 0 < value < 1:
            raise ValueError(f"split-largest: eps must be in (0, 1), got {value!r}")

    @hookimpl
    def kmeansfw_empty_clusters(
        self,
        assignment: steps.Assignment,
        old_centroids: np.ndarray,
        new_centroids: np.ndarray,
        cluster_weights: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        found = _empty_clusters(old_centroids, new_centroids, cluster_weights)
        if found is None:
            return new_centroids
        empty, out = found
        labels, costs = assignment.labels, assignment.costs  # costs: read only now
        weights = cluster_weights.astype(np.float64, copy=True)
        # clusters with some member off their centroid can be split
        spread = np.bincount(labels, weights=costs, minlength=out.shape[0]) > 0
        for j in empty:  # a loop over empty clusters, never over samples
            candidates = np.flatnonzero(spread & (weights > 0))
            if candidates.size == 0:
                break
            big = candidates[np.argmax(weights[candidates])]
            centre = out[big].astype(np.float64)
            direction = rng.standard_normal(out.shape[1])
            step = self.eps * np.where(centre != 0, np.abs(centre), 1.0) * direction
            out[j] = centre + step
            out[big] = centre - step
            weights[j] = weights[big] = weights[big] / 2
            spread[j] = False
        return out


@attrs.frozen
class Keep:
    """An empty cluster keeps its previous centroid (it may stay empty)."""

    name = "keep"
    accepts_sparse = True

    @hookimpl
    def kmeansfw_empty_clusters(
        self, old_centroids: np.ndarray, new_centroids: np.ndarray, cluster_weights: np.ndarray
    ) -> np.ndarray:
        empty = cluster_weights == 0
        if not empty.any():
            return new_centroids
        out = new_centroids.copy()
        out[empty] = old_centroids[empty]
        return out


class EmptyClusterError(ValueError):
    """Raised by the ``raise`` strategy when a cluster loses all its members."""


@attrs.frozen
class Raise:
    """Raise :class:`EmptyClusterError` as soon as a cluster is empty."""

    name = "raise"
    accepts_sparse = True

    @hookimpl
    def kmeansfw_empty_clusters(
        self, new_centroids: np.ndarray, cluster_weights: np.ndarray
    ) -> np.ndarray:
        empty = np.flatnonzero(cluster_weights == 0)
        if empty.size:
            raise EmptyClusterError(f"{empty.size} cluster(s) became empty: {empty.tolist()[:10]}")
        return new_centroids
