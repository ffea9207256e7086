"""Whole-data steps built from the per-block hooks: the map half of map-then-reduce.

Each function walks the fixed task plan of a :class:`~kmeansfw.core.data.FitData` in worker
threads (:func:`kmeansfw.engine.executors.map_tasks`), calls the per-block hooks, checks every
answer (:mod:`kmeansfw.core.contract`) and writes it into preallocated arrays.  Apart from
the weighted sum of the costs (:func:`objective`), no function here does arithmetic on
the data: that is the strategies' job.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pluggy

from kmeansfw.core import contract
from kmeansfw.core.data import FitData
from kmeansfw.engine.executors import is_small, map_tasks

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
    hook: pluggy.HookRelay, data: FitData, n_clusters: int, rng: np.random.Generator
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
    hook: pluggy.HookRelay,
    data: FitData,
    assignment: Assignment,
    centroids: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The checked ``(new_centroids, cluster_weights)`` of the update's reduce step."""
    name = "kmeansfw_update"
    answer = contract.call(
        hook,
        name,
        data=data,
        labels=assignment.labels,
        costs=assignment.costs,
        partials=assignment.partials,
        centroids=centroids,
        n_clusters=centroids.shape[0],
        rng=rng,
        hook=hook,
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
    hook: pluggy.HookRelay,
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


def prepare_centroids(hook: pluggy.HookRelay, data: FitData, centroids: np.ndarray) -> dict:
    """Run ``kmeansfw_prepare_centroids`` and return the per-centroid cache it filled."""
    cache: dict = {}
    contract.call(hook, "kmeansfw_prepare_centroids", centroids=centroids, data=data, cache=cache)
    return cache


def _implemented(caller: Any) -> bool:
    """Whether a hook has implementations (cheap on the engine's relay)."""
    implemented = getattr(caller, "implemented", None)
    return bool(caller.get_hookimpls()) if implemented is None else implemented


def assign(
    hook: pluggy.HookRelay,
    data: FitData,
    centroids: np.ndarray,
    *,
    accumulate: bool = True,
) -> Assignment:
    """Assign every sample to a centroid; with ``accumulate``, also run the update's map."""
    n = data.n_samples
    labels = np.empty(n, dtype=np.intp)
    costs = np.empty(n, dtype=data.dtype)
    cache = prepare_centroids(hook, data, centroids)
    accumulate = accumulate and _implemented(hook.kmeansfw_accumulate)
    block = data.single_block
    if block is not None and is_small(data):  # what map_tasks would do, without its map
        partial = _assign_rows(hook, data, centroids, cache, block, labels, costs, accumulate, None)
        return Assignment(labels, costs, [partial] if accumulate else None)

    def run_task(task: list[slice]) -> Any:
        partial = None
        for rows in task:
            partial = _assign_rows(
                hook, data, centroids, cache, rows, labels, costs, accumulate, partial
            )
        return partial

    partials = map_tasks(data, run_task)
    return Assignment(labels, costs, partials if accumulate else None)


def _assign_rows(
    hook: pluggy.HookRelay,
    data: FitData,
    centroids: np.ndarray,
    cache: dict,
    rows: slice,
    labels: np.ndarray,
    costs: np.ndarray,
    accumulate: bool,
    partial: Any,
) -> Any:
    """Assign one block (into ``labels``/``costs``) and, with ``accumulate``, fold it into
    the update's ``partial``; returns the partial."""
    X_rows = data.X[rows]
    name = "kmeansfw_assign"
    answer = contract.call(
        hook, name, X=X_rows, centroids=centroids, rows=rows, data=data, cache=cache, hook=hook
    )
    block_labels, block_costs = contract.check_pair(hook, name, answer, "(labels, costs)")
    b = rows.stop - rows.start
    block_labels = contract.check_labels(hook, name, block_labels, b, centroids.shape[0])
    labels[rows] = block_labels
    costs[rows] = contract.check_float_array(
        hook, name, block_costs, (b,), data.dtype, nonnegative=True, what="costs"
    )
    if not accumulate:
        return None
    # while the block is still in cache
    return contract.call(
        hook,
        "kmeansfw_accumulate",
        X=X_rows,
        labels=block_labels,
        sample_weight=data.sample_weight[rows],
        n_clusters=centroids.shape[0],
        partial=partial,
    )


def block_matrix(
    hook: pluggy.HookRelay,
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
        hook, name, value, shape, data.dtype, nonnegative=True, what="a block"
    )


def pairwise(
    hook: pluggy.HookRelay, data: FitData, centroids: np.ndarray, name: str = "kmeansfw_distance"
) -> np.ndarray:
    """The full (n, k) matrix of a geometry hook, e.g. for ``transform``.

    Only for results the caller asked to hold in memory; fitting never builds it.
    """
    out = np.empty((data.n_samples, centroids.shape[0]), dtype=data.dtype)
    cache = prepare_centroids(hook, data, centroids)

    def run_task(task: list[slice]) -> None:
        for rows in task:
            out[rows] = block_matrix(hook, name, data, rows, centroids, cache)

    map_tasks(data, run_task)
    return out
