"""Whole-data steps built from the per-block hooks: the map half of map-then-reduce.

Each function walks the fixed task plan of a :class:`~kmeansfw.data.FitData` in worker
threads (:func:`kmeansfw.blocks.map_tasks`), calls the per-block hooks, checks every
answer (:mod:`kmeansfw.contract`) and writes it into preallocated arrays.  No function
here does arithmetic on the data itself: that is the strategies' job.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pluggy

from kmeansfw import contract
from kmeansfw.blocks import map_tasks
from kmeansfw.data import FitData


@attrs.define(eq=False)
class Assignment:
    """Labels and costs of every sample, plus the update's per-task partial results."""

    labels: np.ndarray
    costs: np.ndarray
    partials: list | None


def prepare_centroids(hook: pluggy.HookRelay, data: FitData, centroids: np.ndarray) -> dict:
    """Run ``kmeansfw_prepare_centroids`` and return the per-centroid cache it filled."""
    cache: dict = {}
    contract.call(hook, "kmeansfw_prepare_centroids", centroids=centroids, data=data, cache=cache)
    return cache


def assign(
    hook: pluggy.HookRelay,
    data: FitData,
    centroids: np.ndarray,
    *,
    accumulate: bool = True,
) -> Assignment:
    """Assign every sample to a centroid; with ``accumulate``, also run the update's map."""
    n, k = data.n_samples, centroids.shape[0]
    X, sw = data.X, data.sample_weight
    labels = np.empty(n, dtype=np.intp)
    costs = np.empty(n, dtype=data.dtype)
    cache = prepare_centroids(hook, data, centroids)
    accumulate = accumulate and bool(hook.kmeansfw_accumulate.get_hookimpls())

    def run_task(task: list[slice]) -> Any:
        partial = None
        for rows in task:
            X_rows = X[rows]
            answer = contract.call(
                hook,
                "kmeansfw_assign",
                X=X_rows,
                centroids=centroids,
                rows=rows,
                data=data,
                cache=cache,
                hook=hook,
            )
            if not isinstance(answer, tuple) or len(answer) != 2:
                raise contract.fail(hook, "kmeansfw_assign", "did not return (labels, costs)")
            b = rows.stop - rows.start
            block_labels = contract.check_labels(hook, "kmeansfw_assign", answer[0], b, k)
            labels[rows] = block_labels
            costs[rows] = contract.check_float_array(
                hook,
                "kmeansfw_assign",
                answer[1],
                (b,),
                data.dtype,
                nonnegative=True,
                what="costs",
            )
            if accumulate:  # while the block is still in cache
                partial = contract.call(
                    hook,
                    "kmeansfw_accumulate",
                    X=X_rows,
                    labels=block_labels,
                    sample_weight=sw[rows],
                    n_clusters=k,
                    partial=partial,
                )
        return partial

    partials = map_tasks(data, run_task)
    return Assignment(labels, costs, partials if accumulate else None)


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
