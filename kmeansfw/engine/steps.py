"""Whole-data steps built from the per-block hooks: the map half of map-then-reduce.

Each function maps a chunk task over the fixed task plan of a
:class:`~kmeansfw.core.data.FitData` through its executor
(:func:`kmeansfw.engine.executors.map_tasks`); the task calls the per-block hooks, checks
every answer (:mod:`kmeansfw.core.contract`) and returns it, and the driver puts the
answers in place.  Apart from
the weighted sum of the costs (:func:`objective`), no function here does arithmetic on
the data: that is the strategies' job.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from kmeansfw.core import contract
from kmeansfw.core.data import FitData, read_only
from kmeansfw.engine.executors import fill_rows, is_small, map_tasks, task_rows

_FLOAT64 = np.dtype(np.float64)


@attrs.define(eq=False)
class Assignment:
    """Labels and costs of every sample, plus the update's per-task partial results."""

    labels: np.ndarray
    costs: np.ndarray
    partials: list | None


def objective(data: FitData, costs: np.ndarray) -> float:
    """The weighted sum of per-sample costs, accumulated in float64."""
    return float(np.dot(costs.astype(np.float64, copy=False), data.sample_weight))


def initialize(
    hook: Any, data: FitData, n_clusters: int, rng: np.random.Generator
) -> np.ndarray:
    """The checked initial centroids, (k, d)."""
    centroids = contract.call(
        hook,
        "kmeansfw_init_centroids",
        X=data.X,
        sample_weight=data.sample_weight,
        n_clusters=n_clusters,
        rng=rng,
        data=data,
        hook=hook,
    )
    return contract.check_float_array(
        hook,
        "kmeansfw_init_centroids",
        centroids,
        (n_clusters, data.n_features),
        data.dtype,
        what="centroids",
    )


def update(
    hook: Any,
    data: FitData,
    assignment: Assignment,
    centroids: np.ndarray,
    rng: np.random.Generator,
    *,
    online: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The checked ``(new_centroids, cluster_weights)`` of the update's reduce step
    (``online``: the mini-batch state, None for a batch update)."""
    name = "kmeansfw_update"
    answer = contract.call(
        hook,
        name,
        data=data,
        labels=assignment.labels,
        costs=assignment.costs,
        partials=assignment.partials,
        centroids=read_only(centroids),
        n_clusters=centroids.shape[0],
        rng=rng,
        hook=hook,
        online=online,
    )
    new, weights = contract.check_pair(hook, name, answer, "(centroids, cluster weights)")
    new = contract.check_float_array(hook, name, new, centroids.shape, data.dtype, what="centroids")
    weights = contract.check_float_array(
        hook,
        name,
        weights,
        (centroids.shape[0],),
        _FLOAT64,
        nonnegative=True,
        what="cluster weights",
    )
    return new, weights


def fix_empty_clusters(
    hook: Any,
    data: FitData,
    assignment: Assignment,
    old_centroids: np.ndarray,
    new_centroids: np.ndarray,
    cluster_weights: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The checked centroids after the empty-cluster strategy, (k, d)."""
    name = "kmeansfw_empty_clusters"
    answer = contract.call(
        hook,
        name,
        data=data,
        labels=assignment.labels,
        costs=assignment.costs,
        old_centroids=old_centroids,
        new_centroids=new_centroids,
        cluster_weights=cluster_weights,
        rng=rng,
        hook=hook,
    )
    return contract.check_float_array(
        hook, name, answer, new_centroids.shape, data.dtype, what="centroids"
    )


def prepare_centroids(hook: Any, data: FitData, centroids: np.ndarray) -> dict:
    """Run ``kmeansfw_prepare_centroids`` and return the per-centroid cache it filled."""
    cache: dict = {}
    centroids = read_only(centroids)
    contract.call(hook, "kmeansfw_prepare_centroids", centroids=centroids, data=data, cache=cache)
    return cache


def assign(
    hook: Any,
    data: FitData,
    centroids: np.ndarray,
    *,
    accumulate: bool = True,
) -> Assignment:
    """Assign every sample to a centroid; with ``accumulate``, also run the update's map.

    Each chunk task returns its rows' labels and costs and the update's partial; the
    driver writes them into place, so tasks can run under any executor.  Under worker
    threads (no executor) each task writes its own rows into the result arrays instead,
    in parallel: the rows of two tasks never overlap.
    """
    n = data.n_samples
    cache = prepare_centroids(hook, data, centroids)
    accumulate = accumulate and hook.implemented("kmeansfw_accumulate")
    block = data.single_block
    if block is not None and is_small(data):  # what map_tasks would do, without its map
        labels, costs, partial = _assign_rows(hook, data, centroids, cache, block, accumulate, None)
        return Assignment(labels, costs, [partial] if accumulate else None)
    labels = np.empty(n, dtype=np.intp)
    costs = np.empty(n, dtype=data.dtype)
    out = (labels, costs) if data.executor is None else None
    task = AssignTask(hook, data, centroids, cache, accumulate, out)
    partials = []
    for rows, (part_labels, part_costs, partial) in zip(
        data.tasks, map_tasks(data, task), strict=True
    ):
        if out is None:
            where = task_rows(rows)
            labels[where], costs[where] = part_labels, part_costs
        partials.append(partial)
    return Assignment(labels, costs, partials if accumulate else None)


@attrs.frozen(eq=False)
class AssignTask:
    """The chunk task of an assignment: ``(labels, costs, partial)`` of its rows; with
    ``out`` (the result arrays, in-process threads only), ``(None, None, partial)``
    after writing its rows' labels and costs into them."""

    hook: Any
    data: FitData
    centroids: np.ndarray
    cache: dict
    accumulate: bool
    out: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, task: list[slice]) -> tuple[Any, Any, Any]:
        partial = None
        labels, costs = [], []
        for rows in task:
            block_labels, block_costs, partial = _assign_rows(
                self.hook, self.data, self.centroids, self.cache, rows, self.accumulate, partial
            )
            if self.out is not None:
                self.out[0][rows], self.out[1][rows] = block_labels, block_costs
                continue
            labels.append(block_labels)
            costs.append(block_costs)
        if self.out is not None:
            return None, None, partial
        if len(task) == 1:
            return labels[0], costs[0], partial
        return np.concatenate(labels), np.concatenate(costs), partial


def _assign_rows(
    hook: Any,
    data: FitData,
    centroids: np.ndarray,
    cache: dict,
    rows: slice,
    accumulate: bool,
    partial: Any,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """The checked labels and costs of one block and, with ``accumulate``, the update's
    ``partial`` with the block folded in."""
    X_rows = data.X[rows]
    name = "kmeansfw_assign"
    answer = contract.call(
        hook, name, X=X_rows, centroids=centroids, rows=rows, data=data, cache=cache, hook=hook
    )
    block_labels, block_costs = contract.check_pair(hook, name, answer, "(labels, costs)")
    b = rows.stop - rows.start
    block_labels = contract.check_labels(hook, name, block_labels, b, centroids.shape[0])
    block_labels = block_labels.astype(np.intp, copy=False)
    block_costs = contract.check_float_array(
        hook, name, block_costs, (b,), data.dtype, nonnegative=True, what="costs"
    )
    if not accumulate:
        return block_labels, block_costs, None
    # while the block is still in cache
    partial = contract.call(
        hook,
        "kmeansfw_accumulate",
        X=X_rows,
        labels=block_labels,
        sample_weight=data.sample_weight[rows],
        n_clusters=centroids.shape[0],
        partial=partial,
        data=data,
    )
    return block_labels, block_costs, partial


def block_matrix(
    hook: Any,
    name: str,
    data: FitData,
    rows: slice,
    centroids: np.ndarray,
    cache: dict,
) -> np.ndarray:
    """One checked (b, k) answer of a geometry hook (``kmeansfw_distance`` or ``_cost``)."""
    value = contract.call(
        hook, name, X=data.X[rows], centroids=centroids, rows=rows, data=data, cache=cache
    )
    shape = (rows.stop - rows.start, centroids.shape[0])
    return contract.check_float_array(
        hook, name, value, shape, data.dtype, nonnegative=True, what="block"
    )


def pairwise(
    hook: Any, data: FitData, centroids: np.ndarray, name: str = "kmeansfw_distance"
) -> np.ndarray:
    """The full (n, k) matrix of a geometry hook, e.g. for ``transform``.

    Only for results the caller asked to hold in memory; fitting never builds it.
    """
    out = np.empty((data.n_samples, centroids.shape[0]), dtype=data.dtype)
    cache = prepare_centroids(hook, data, centroids)
    return fill_rows(data, _MatrixTask(hook, name, data, centroids, cache), out)


@attrs.frozen(eq=False)
class _MatrixTask:
    """The chunk task of :func:`pairwise`: the (rows, k) answer for its rows."""

    hook: Any
    name: str
    data: FitData
    centroids: np.ndarray
    cache: dict

    def __call__(self, task: list[slice]) -> np.ndarray:
        parts = [
            block_matrix(self.hook, self.name, self.data, rows, self.centroids, self.cache)
            for rows in task
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
