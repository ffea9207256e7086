"""Update strategies: ``mean`` (weighted mean of each cluster's members)."""

from __future__ import annotations

from inspect import signature
from typing import Any

import attrs
import numpy as np

from kmeansfw import kernels  # looked up at call time: numba loads on first use
from kmeansfw.core import contract
from kmeansfw.core.config import budget_bytes
from kmeansfw.core.data import FitData, rows_dense
from kmeansfw.core.markers import hookimpl
from kmeansfw.engine import steps
from kmeansfw.engine.executors import kernel_threads, map_items
from kmeansfw.engine.loop import OnlineState
from kmeansfw.strategies.euclidean import row_sq_norms
from kmeansfw.strategies.validators import positive_int, positive_number, real


@attrs.frozen
class Mean:
    """Each centroid becomes the ``sample_weight``-weighted mean of its members.

    Map: per task, the per-cluster weighted sums and weights (one O(b d) pass, see
    :func:`kmeansfw.kernels.add_weighted_cluster_sums`).  Reduce: partials summed in row
    order, so results do not depend on the number of threads.
    Minimizes the sum of squared Euclidean distances.

    In a Lloyd run the map starts from the task's sums of the previous iteration
    (``previous_partial``) and sums again only the clusters a row of the task entered or
    left (:class:`ChangedSums`), each over all its members in row order: the same totals
    bit for bit as summing every row, at the cost of reading only those clusters'
    members, which is a small part of the data once few labels change.
    """

    name = "mean"
    accepts_sparse = True
    #: Answers the engine's one-call Lloyd iteration (kmeansfw.engine.lloyd_step).
    _lloyd_step = True
    splits_work = True  # the sums split their columns between numba's threads
    sums_map = True  # a search may add the rows to the sums in its pass (core.sums)

    @hookimpl
    def kmeansfw_accumulate(
        self,
        X: np.ndarray,
        labels: np.ndarray,
        sample_weight: np.ndarray,
        n_clusters: int,
        partial: tuple[np.ndarray, np.ndarray] | None,
        data: FitData,
        rows: slice | None,
        previous_labels: np.ndarray | None,
        previous_partial: tuple[np.ndarray, np.ndarray] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if ChangedSums.applies(X, n_clusters, rows, previous_labels, previous_partial):
            assert rows is not None and previous_labels is not None  # for type checkers
            return ChangedSums.add(
                partial, data, X, labels, sample_weight, rows, previous_labels, previous_partial
            )
        partial = partial or self.new_partial(X, n_clusters)
        threads = kernel_threads(data)
        kernels.add_weighted_cluster_sums(X, labels, sample_weight, *partial, n_threads=threads)
        return partial

    @staticmethod
    def new_partial(X: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
        """Zeroed float64 (sums (k, d), weights (k,)) for a task's map step."""
        return np.zeros((n_clusters, X.shape[1])), np.zeros(n_clusters)

    @staticmethod
    def reduce(partials: list) -> tuple[np.ndarray, np.ndarray]:
        """The per-task partials summed in row order (the order of ``partials``), so that
        the totals do not depend on the number of threads; the partials are not changed.

        Parameters
        ----------
        partials : list of (sums, weights)
            float64 pairs of shape (k, d) and (k,), one per task, in row order.

        Returns
        -------
        sums, weights : ndarray
            The float64 totals.
        """
        sums, weights = partials[0][0].copy(), partials[0][1].copy()
        for part_sums, part_weights in partials[1:]:
            sums += part_sums
            weights += part_weights
        return sums, weights

    @hookimpl
    def kmeansfw_update(
        self,
        data,
        labels: np.ndarray,
        partials: list | None,
        centroids: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        online: OnlineState | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if online is not None:
            return self._online_step(data, partials, centroids, rng, online)
        return self._batch_update(data, labels, partials, centroids, n_clusters)

    def _batch_update(self, data, labels, partials, centroids, n_clusters):
        if partials is None:  # called without the map step: run it on all rows at once
            accumulate = self.kmeansfw_accumulate  # a subclass's own map step, if it has one
            optional = {
                "data": data, "rows": None, "previous_labels": None, "previous_partial": None
            }
            takes = signature(accumulate).parameters
            extra = {name: value for name, value in optional.items() if name in takes}
            partials = [
                accumulate(
                    X=data.X,
                    labels=labels,
                    sample_weight=data.sample_weight,
                    n_clusters=n_clusters,
                    partial=None,
                    **extra,
                )
            ]
        sums, weights = self.reduce(partials)
        if np.count_nonzero(weights) == weights.size:  # no empty cluster
            return (sums / weights[:, None]).astype(data.dtype, copy=False), weights
        filled = weights > 0
        new = centroids.astype(data.dtype, copy=True)
        new[filled] = sums[filled] / weights[filled, None]
        return new, weights

    #: Whether the online step projects the centroids on the unit sphere.
    _unit_norm = False

    def _online_step(self, data, partials, centroids, rng, online):
        """Sculley's step on one batch, then scikit-learn's reassignment of starved
        centroids; updates ``online`` in place."""
        sums, weights = self.reduce(partials)
        filled = weights > 0
        total = online.seen + weights
        new = centroids.astype(np.float64, copy=True)
        new[filled] = (online.seen[filled, None] * new[filled] + sums[filled]) / total[
            filled, None
        ]
        if self._unit_norm:
            norms = np.linalg.norm(new, axis=1)
            new[norms > 0] /= norms[norms > 0, None]
        online.seen = total
        online.steps += 1
        new = new.astype(data.dtype)
        reassign_starved(data, new, online, rng)
        return new, weights


def reassign_starved(batch, centroids: np.ndarray, online, rng: np.random.Generator) -> int:
    """Move starved centroids to random samples of the batch (scikit-learn's rule).

    Every time 10 k samples have been processed (at once when a centroid has absorbed
    nothing yet), centroids whose absorbed weight is below ``reassignment_ratio`` times
    the largest one (at most half a batch of them, the most starved first) jump to
    distinct batch samples drawn uniformly, and their absorbed weight is set to the
    smallest weight among the others, so they are not reassigned at once again.  Without
    this, a centroid seeded in a sparse region keeps a tiny share of every batch and
    never moves to where it would lower the objective.  Changes ``centroids`` in place;
    returns how many were moved.
    """
    if online.reassignment_ratio <= 0:
        return 0
    seen = online.seen
    k = centroids.shape[0]
    online.since_reassign += batch.n_samples
    if not ((seen == 0).any() or online.since_reassign >= 10 * k):
        return 0
    online.since_reassign = 0
    starved = seen < online.reassignment_ratio * seen.max()
    half = int(0.5 * batch.n_samples)
    if starved.sum() > half:  # keep the better-fed ones beyond half a batch
        starved[np.argsort(seen, kind="stable")[half:]] = False
    count = int(starved.sum())
    if count == 0 or count == k:
        return 0
    picked = rng.choice(batch.n_samples, size=count, replace=False)
    centroids[starved] = rows_dense(batch.X, np.sort(picked))
    seen[starved] = seen[~starved].min()
    online.reassigned += count
    return count


def cluster_members(labels: np.ndarray, n_clusters: int) -> list[np.ndarray]:
    """Row indices of each cluster's members, ascending (one stable sort, no loop over rows)."""
    small = np.int16 if n_clusters < 2**15 else np.int64  # int16 sorts by radix, O(n)
    order = np.argsort(labels.astype(small), kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    return [order[bounds[j] : bounds[j + 1]] for j in range(n_clusters)]


def _feature_chunks(
    n_rows: int, n_features: int, itemsize: int, budget: int, temporaries: int = 4
) -> list[slice]:
    """Feature ranges such that ``temporaries`` (n_rows, chunk) arrays of 8-byte values
    (and the chunk of ``itemsize`` values) stay within ``budget`` bytes (at least one
    feature a chunk: a cluster's column is the least a per-column rule can sort)."""
    width = max(1, budget // max(1, n_rows * (itemsize + 8 * temporaries)))
    return [slice(f, min(f + width, n_features)) for f in range(0, n_features, width)]


def _weighted_quantile_weights(
    values: np.ndarray, weights: np.ndarray, low: float, high: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sort each column of ``values`` and give each entry the part of its weight that
    falls between the ``low`` and ``high`` fractions of the column's total weight."""
    order = np.argsort(values, axis=0, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=0)
    w = weights[order]
    upper = np.cumsum(w, axis=0)
    total = upper[-1]
    lower = upper - w
    kept = np.clip(np.minimum(upper, high * total) - np.maximum(lower, low * total), 0, None)
    return sorted_values, kept


def _per_cluster(
    data,
    labels: np.ndarray,
    centroids: np.ndarray,
    n_clusters: int,
    budget: int,
    reduce,
    temporaries: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``reduce(values (m, f), weights (m,)) -> (f,)`` to every cluster, feature chunk
    by feature chunk so that its temporaries (``temporaries`` arrays of the chunk's shape)
    stay within ``budget`` per thread; empty clusters keep their row."""
    X, sw = data.X, data.sample_weight
    new = centroids.astype(data.dtype, copy=True)
    weights = np.zeros(n_clusters)

    def one_cluster(item: tuple[int, np.ndarray]) -> None:  # clusters run in worker threads
        j, members = item
        w = sw[members]
        weights[j] = w.sum(dtype=np.float64)
        if weights[j] <= 0:
            return
        chunks = _feature_chunks(members.size, data.n_features, X.itemsize, budget, temporaries)
        for cols in chunks:
            new[j, cols] = reduce(X[members, cols], w)

    map_items(data.n_threads, one_cluster, list(enumerate(cluster_members(labels, n_clusters))))
    return new, weights


def _median_rows(rows: np.ndarray) -> np.ndarray:
    """Median of each row: one selection per row (6x faster than np.median here)."""
    m = rows.shape[1]
    half = m // 2
    part = np.partition(rows, half, axis=1)
    if m % 2:
        return part[:, half]
    return (part[:, :half].max(axis=1) + part[:, half]) / 2


def _check_fraction(instance: object, attribute: attrs.Attribute, value: float) -> None:
    ok = real(value)
    if not ok or not 0 <= value < 0.5:
        raise ValueError(f"{attribute.name} must be a number in [0, 0.5), got {value!r}")


@attrs.frozen
class Median:
    """Coordinate-wise (weighted) median of each cluster: k-medians.

    Minimizes the sum of Manhattan distances.  With unit weights the usual median (mean
    of the two middle values for an even count); with ``sample_weight`` the weighted
    median (the value where the cumulative weight first reaches half).

    Parameters
    ----------
    memory_budget_mb : float, default=64
        Largest temporary, in MB: large clusters are processed a few features at a time.
    """

    name = "median"
    memory_budget_mb: float = attrs.field(default=64.0, validator=positive_number)

    @hookimpl
    def kmeansfw_update(
        self, data, labels: np.ndarray, centroids: np.ndarray, n_clusters: int
    ) -> tuple[np.ndarray, np.ndarray]:
        unit = bool(np.all(data.sample_weight == data.sample_weight[0]))

        def median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
            if unit:
                return _median_rows(np.ascontiguousarray(values.T))
            sorted_values, kept = _weighted_quantile_weights(values, weights, 0.0, 0.5)
            # the lower weighted median: the last entry with weight below the half mark
            last = values.shape[0] - 1 - np.argmax((kept > 0)[::-1], axis=0)
            return sorted_values[last, np.arange(values.shape[1])]

        # unit weights: the chunk, its transposed copy and the selection's (4 with
        # slack); other weights: the weighted quantile's order, sorted values, weights,
        # running totals and kept weights (about ten)
        budget = budget_bytes(self.memory_budget_mb)
        return _per_cluster(data, labels, centroids, n_clusters, budget, median, 4 if unit else 10)


@attrs.frozen
class TrimmedMean:
    """Coordinate-wise trimmed mean: drop the ``trim`` fraction of weight at each end.

    Robust to outliers; ``trim = 0`` is the mean, ``trim -> 0.5`` approaches the median.
    Fractional weights at the cut are kept in proportion.

    Parameters
    ----------
    trim : float in [0, 0.5), default=0.1
        The fraction of each cluster's weight dropped at each end of every feature.
    memory_budget_mb : float, default=64
        Largest working memory per thread, in MB: large clusters are processed a few
        features at a time (at least one: a cluster's column is sorted whole).
    """

    name = "trimmed-mean"
    trim: float = attrs.field(default=0.1, validator=_check_fraction)
    memory_budget_mb: float = attrs.field(default=64.0, validator=positive_number)

    @hookimpl
    def kmeansfw_update(
        self, data, labels: np.ndarray, centroids: np.ndarray, n_clusters: int
    ) -> tuple[np.ndarray, np.ndarray]:
        def trimmed(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
            sorted_values, kept = _weighted_quantile_weights(
                values, weights.astype(np.float64), self.trim, 1 - self.trim
            )
            return (sorted_values * kept).sum(axis=0) / kept.sum(axis=0)

        # the sort's order, the sorted values, the weights, their running totals, the
        # kept weights and products: about ten arrays of the chunk's shape
        budget = budget_bytes(self.memory_budget_mb)
        return _per_cluster(data, labels, centroids, n_clusters, budget, trimmed, 10)


class ChangedSums(tuple):
    """A task's ``(sums, weights)`` map of the ``mean`` update computed from the previous
    iteration's: the totals of the clusters no row of the task entered or left are the
    previous ones (the same members, summed in the same order); the others (``dirty``)
    are summed again over all their members of the task, in row order.

    At each block, the clusters its rows entered or left are marked; a cluster marked now
    is zeroed and summed over its members in the task's earlier blocks (``seen``: their
    row slices and labels), then every marked cluster gets its members of this block.  So
    each total is the sum :func:`kmeansfw.kernels.add_weighted_cluster_sums` gives over
    the task's rows, bit for bit.  When the first block already moves more than
    :data:`MOVED_FRACTION` of its rows, every cluster is marked: the task is summed in
    full.
    """

    #: Above this fraction of a task's first block changing cluster, sum in full.
    MOVED_FRACTION = 1 / 16
    #: (k,) bool: the clusters summed again in this task.
    dirty: np.ndarray
    #: The task's blocks so far: (row slice, labels).
    seen: list

    @staticmethod
    def applies(
        X: Any,
        n_clusters: int,
        rows: slice | None,
        previous_labels: np.ndarray | None,
        previous_partial: Any,
    ) -> bool:
        """Whether a block can be summed from the previous iteration's partial: dense,
        compiled kernels, the previous labels and a (sums, weights) of this shape."""
        if previous_partial is None or previous_labels is None or rows is None:
            return False
        if not (kernels.HAVE_NUMBA and isinstance(X, np.ndarray)):
            return False  # the NumPy twin and CSR blocks sum in another order
        try:
            sums, weights = previous_partial[0], previous_partial[1]
        except (TypeError, IndexError, KeyError):
            return False
        return (
            isinstance(sums, np.ndarray)
            and isinstance(weights, np.ndarray)
            and sums.shape == (n_clusters, X.shape[1])
            and weights.shape == (n_clusters,)
            and sums.dtype == weights.dtype == np.float64
        )

    @classmethod
    def add(
        cls,
        partial: Any,
        data: FitData,
        X: np.ndarray,
        labels: np.ndarray,
        sample_weight: np.ndarray,
        rows: slice,
        previous_labels: np.ndarray,
        previous_partial: Any,
    ) -> ChangedSums:
        """Fold one block into the task's partial (None on the task's first block)."""
        first = not isinstance(partial, ChangedSums)
        if first:
            partial = cls((previous_partial[0].copy(), previous_partial[1].copy()))
            partial.dirty = np.zeros(partial[1].shape[0], dtype=np.bool_)
            partial.seen = []
        sums, weights, dirty = partial[0], partial[1], partial.dirty
        new, moved, n_new, n_dirty = kernels.mark_moved_clusters(labels, previous_labels, dirty)
        if first and moved > cls.MOVED_FRACTION * labels.size:
            dirty[:] = True  # most clusters would be summed again: all of them
            sums[:], weights[:] = 0.0, 0.0
            n_dirty = dirty.shape[0]  # the task's first block: nothing to sum again
        elif n_new:
            partial.resum(data, new)
        if n_dirty == dirty.shape[0]:
            threads = kernel_threads(data)
            kernels.add_weighted_cluster_sums(
                X, labels, sample_weight, sums, weights, n_threads=threads
            )
        elif n_dirty:
            kernels.add_cluster_members(X, labels, sample_weight, sums, weights, dirty)
        partial.seen.append((rows, labels))
        return partial

    def resum(self, data: FitData, clusters: np.ndarray) -> None:
        """Zero the totals of ``clusters`` (a (k,) bool mask) and sum them again over
        their members in the task's blocks so far, in row order."""
        sums, weights = self[0], self[1]
        sums[clusters], weights[clusters] = 0.0, 0.0
        for rows, labels in self.seen:
            kernels.add_cluster_members(
                data.X[rows], labels, data.sample_weight[rows], sums, weights, clusters
            )

    def __reduce__(self) -> tuple:  # pickled as the plain (sums, weights) it stands for
        return tuple, ((self[0], self[1]),)


@attrs.frozen
class Spherical(Mean):
    """Unit-norm weighted mean of the members' directions (spherical k-means).

    The members are normalized to unit length before summing, which is what makes the
    result minimize the sum of cosine distances.  A cluster whose members cancel out (a
    zero sum) keeps its previous centroid; zero rows contribute nothing.
    """

    name = "spherical"

    @hookimpl
    def kmeansfw_accumulate(
        self,
        X: np.ndarray,
        labels: np.ndarray,
        sample_weight: np.ndarray,
        n_clusters: int,
        partial: tuple[np.ndarray, np.ndarray] | None,
        data: FitData,
    ) -> tuple[np.ndarray, np.ndarray]:
        partial = partial or self.new_partial(X, n_clusters)
        # summing w * x / |x| is summing the rows with weights w / |x|
        norms = np.sqrt(row_sq_norms(X))
        scaled = sample_weight / np.where(norms > 0, norms, np.inf)
        kernels.add_weighted_cluster_sums(
            X,
            labels,
            scaled.astype(X.dtype),
            partial[0],
            np.zeros_like(partial[1]),
            n_threads=kernel_threads(data),
        )
        partial[1][:] += np.bincount(labels, weights=sample_weight, minlength=n_clusters)
        return partial

    _unit_norm = True

    @hookimpl
    def kmeansfw_update(
        self,
        data,
        labels: np.ndarray,
        partials: list | None,
        centroids: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        online: OnlineState | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if online is not None:
            return self._online_step(data, partials, centroids, rng, online)
        new, weights = self._batch_update(data, labels, partials, centroids, n_clusters)
        norms = np.sqrt(np.einsum("ij,ij->i", new, new))
        usable = (weights > 0) & (norms > 0)
        new[usable] /= norms[usable, None]
        new[~usable] = centroids[~usable]
        return new, weights


@attrs.frozen
class Medoid:
    """k-medoids: each centroid becomes the member of lowest total cost to its cluster.

    Exact when a cluster has at most ``max_candidates`` members; above that the
    candidates are a random sample of members (from the fit's generator) plus the
    member at the current centroid, so the objective never increases.  The total cost of
    each candidate is summed over all members block by block, so memory stays at
    ``block_rows x max_candidates`` whatever the cluster size.  Works with any distance
    (it asks the distance's ``kmeansfw_cost``).

    Parameters
    ----------
    max_candidates : int, default=512
    block_rows : int, default=4096
    """

    name = "medoid"
    max_candidates: int = attrs.field(default=512, validator=positive_int)
    block_rows: int = attrs.field(default=4096, validator=positive_int)

    @hookimpl
    def kmeansfw_update(
        self,
        data,
        labels: np.ndarray,
        costs: np.ndarray,
        centroids: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        hook,
    ) -> tuple[np.ndarray, np.ndarray]:
        X, sw = data.X, data.sample_weight
        new = centroids.astype(data.dtype, copy=True)
        weights = np.zeros(n_clusters)
        for j, members in enumerate(cluster_members(labels, n_clusters)):
            weights[j] = sw[members].sum(dtype=np.float64)
            if members.size == 0:
                continue
            candidates = members
            if members.size > self.max_candidates:
                # the member nearest the current centroid: the medoid itself (its cost
                # to itself is 0, or a rounding's 1e-16 under cosine, which a test for
                # 0 lost, and with it the guarantee the objective never increases)
                at_centroid = members[[int(np.argmin(costs[members]))]]
                sample = rng.choice(members, size=self.max_candidates, replace=False)
                candidates = np.unique(np.concatenate([at_centroid, sample]))
            points = X[candidates]
            cache = steps.prepare_centroids(hook, data, points)
            totals = np.zeros(candidates.size)
            for start in range(0, members.size, self.block_rows):
                rows = members[start : start + self.block_rows]
                cost = contract.call(
                    hook,
                    "kmeansfw_cost",
                    X=X[rows],
                    centroids=points,
                    rows=None,
                    data=data,
                    cache=cache,
                )
                totals += sw[rows] @ cost
            new[j] = points[int(np.argmin(totals))]
        return new, weights
