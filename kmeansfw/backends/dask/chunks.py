"""The worker side of a Dask fit: what a worker keeps beside each persisted row chunk
(:class:`_Chunk`) and the tasks run on it, for the iterations (assignment, relocation,
final labels) and for the seedings (k-means||, k-means++ and random draws)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from kmeansfw.core import contract
from kmeansfw.core.data import FitData
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins, steps
from kmeansfw.kernels import count_changed


@attrs.define(eq=False)
class _Chunk:
    """What a worker keeps beside one row chunk for the whole fit (never sent back).

    ``step`` tags the stored labels and assignment with the (run, iteration) that made
    them; a chunk rebuilt after a worker was lost has none, and every task checks the tag
    instead of trusting the state.
    """

    data: FitData
    hooks: Any
    index: int
    offset: int
    n_clusters: int
    labels: np.ndarray | None = None
    #: The assignment of ``step``: its costs are computed on first read when the
    #: iteration did not ask for them (see :func:`_assign_chunk`).
    found: steps.Assignment | None = None
    step: tuple | None = None
    #: Seeding: the run it belongs to, each row's lowest cost to the candidates so far,
    #: the index of that candidate, and how many candidates were folded in.
    seed_run: int | None = None
    closest: np.ndarray | None = None
    nearest: np.ndarray | None = None
    absorbed: int = 0


def _build_chunk(
    X: np.ndarray,
    sample_weight: np.ndarray,
    index: int,
    offset: int,
    strategies: list,
    fitted: Mapping[str, Any],
    block_rows: int,
    n_clusters: int,
    *,
    memory_budget: int,
) -> _Chunk:
    """Worker: the :class:`_Chunk` of one persisted row chunk, prepared by the hooks
    (``memory_budget``: the fit's, for any plan made on the chunk)."""
    data = FitData(
        X=X,
        sample_weight=sample_weight,
        block_rows=block_rows,
        n_threads=1,
        fitted=fitted,
        memory_budget=memory_budget,
    )
    # one task for the whole chunk: one partial per chunk goes back to the driver
    data.tasks = [[rows for task in data.tasks for rows in task]]
    hooks = plugins.build(strategies)
    engine.prepare(hooks, data)
    return _Chunk(data, hooks, index, offset, n_clusters)


def _chunk_weight(chunk: _Chunk) -> float:
    """Worker: the chunk's total sample weight (float64)."""
    return float(chunk.data.sample_weight.sum(dtype=np.float64))


@attrs.frozen
class _Summary:
    """What one chunk returns after an iteration: small, whatever the chunk's size."""

    partial: Any
    objective: float | None
    changed: int
    known: bool
    spread: np.ndarray | None


def _assign_chunk(
    chunk: _Chunk,
    centroids: np.ndarray,
    step: tuple,
    accumulate: bool,
    spread: bool,
    with_costs: bool = True,
) -> _Summary:
    """Worker: one iteration's assignment (and the update's map step) on a chunk.

    ``with_costs`` False (nothing of the fit reads every iteration's objective, and the
    empty-cluster strategy is not ``split-largest``): the search may leave the costs,
    computed only if a later task reads them (:func:`_stored`), and the summary carries
    no objective (:func:`_objective` computes it on demand).
    """
    data = chunk.data
    with_costs = with_costs or spread  # split-largest's sums need the costs: the objective too
    result = steps.assign(
        chunk.hooks, data, centroids, accumulate=accumulate, with_costs=with_costs
    )
    run, iteration = step
    known = chunk.step == (run, iteration - 1)
    if known and chunk.labels is not None:
        changed = count_changed(result.labels, chunk.labels)
    else:  # first iteration, or state lost with a worker: count every row as changed
        changed = data.n_samples
    partial = result.partials[0] if result.partials else None
    result.partials = None  # sent back in the summary: the chunk keeps no copy
    chunk.labels, chunk.found, chunk.step = result.labels, result, step
    per_cluster = None
    if spread:  # split-largest's per-cluster cost sums
        per_cluster = np.bincount(result.labels, weights=result.costs, minlength=chunk.n_clusters)
    objective = steps.objective(data, result.costs) if with_costs else None
    return _Summary(partial, objective, changed, known, per_cluster)


def _stored(chunk: _Chunk, centroids: np.ndarray, step: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's labels and costs of ``step`` (the costs computed now if its
    assignment left them), recomputed from ``centroids`` (the ones that step assigned
    to) when the chunk lost them."""
    if chunk.step != step or chunk.labels is None or chunk.found is None:
        result = steps.assign(chunk.hooks, chunk.data, centroids, accumulate=False)
        chunk.labels, chunk.found, chunk.step = result.labels, result, step
    assert chunk.labels is not None and chunk.found is not None
    return chunk.labels, chunk.found.costs


def _objective(chunk: _Chunk, centroids: np.ndarray, step: tuple) -> float:
    """Worker: the chunk's weighted objective of ``step`` (its costs computed now if the
    iteration left them)."""
    _, costs = _stored(chunk, centroids, step)
    return steps.objective(chunk.data, costs)


def _restore(chunk: _Chunk, centroids: np.ndarray, step: tuple) -> None:
    """Worker: the chunk's labels and costs of ``step`` (a resumed checkpoint's last
    iteration), assigned to ``centroids``, the centroids that iteration assigned to."""
    _stored(chunk, centroids, step)


def _top_costs(
    chunk: _Chunk, centroids: np.ndarray, step: tuple, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worker: the chunk's ``m`` highest costs, their global rows and their labels."""
    labels, costs = _stored(chunk, centroids, step)
    m = min(m, costs.shape[0])
    top = np.argpartition(costs, -m)[-m:]
    return costs[top].astype(np.float64), top + chunk.offset, labels[top]


def _reaccumulate(
    chunk: _Chunk, centroids: np.ndarray, step: tuple, rows: np.ndarray, to: np.ndarray
) -> Any:
    """Worker: the update's partial of the chunk with global ``rows`` moved to clusters
    ``to`` (the relocation of ``relocate-farthest``)."""
    labels, _ = _stored(chunk, centroids, step)
    local = rows - chunk.offset
    mine = (local >= 0) & (local < labels.shape[0])
    moved = labels.copy()
    moved[local[mine]] = to[mine]
    data, partial = chunk.data, None
    for task in data.tasks:
        for block in task:
            partial = contract.call(
                chunk.hooks,
                "kmeansfw_accumulate",
                X=data.X[block],
                labels=moved[block],
                sample_weight=data.sample_weight[block],
                n_clusters=chunk.n_clusters,
                partial=partial,
                data=data,
                rows=block,
                previous_labels=None,
                previous_partial=None,
            )
    return partial


def _labels_and_costs(
    chunk: _Chunk, centroids: np.ndarray, step: tuple
) -> tuple[np.ndarray, np.ndarray, float]:
    """Worker: the chunk's final labels, costs and weighted objective."""
    labels, costs = _stored(chunk, centroids, step)
    return labels, costs, steps.objective(chunk.data, costs)


def _costs_to(
    chunk: _Chunk, saved: np.ndarray, centroids: np.ndarray
) -> tuple[np.ndarray, float]:
    """Worker: each row's cost to its nearest of ``centroids``, and the weighted sum of
    ``saved`` (the chunk's rows' costs as a finished checkpoint saved them), for the
    driver to check that checkpoint's best run
    (:func:`kmeansfw.workflow.checkpoint.check_best`).  The chunk's labels are left as
    they are (an assignment keeping bounds may update its own state in the chunk's
    cache: no run follows this pass)."""
    found = steps.assign(chunk.hooks, chunk.data, centroids, accumulate=False)
    return found.costs, steps.objective(chunk.data, saved)


def _lower(chunk: _Chunk, run: int, candidates: np.ndarray) -> None:
    """Fold the candidates the chunk has not seen into each row's lowest cost and the
    index of the candidate reaching it (earliest on ties).  A chunk rebuilt after a
    worker loss starts again from the first candidate, with the same result."""
    data = chunk.data
    if chunk.seed_run != run or chunk.closest is None or chunk.nearest is None:
        chunk.seed_run, chunk.absorbed = run, 0
        chunk.closest = np.full(data.n_samples, np.inf, dtype=data.dtype)
        chunk.nearest = np.zeros(data.n_samples, dtype=np.intp)
    new = candidates[chunk.absorbed :]
    if new.shape[0] == 0:
        return
    cache = steps.prepare_centroids(chunk.hooks, data, new)
    for task in data.tasks:
        for rows in task:
            cost = steps.block_matrix(chunk.hooks, "kmeansfw_cost", data, rows, new, cache)
            best = cost.argmin(axis=1)
            value = cost[np.arange(cost.shape[0]), best]
            better = value < chunk.closest[rows]
            chunk.closest[rows] = np.where(better, value, chunk.closest[rows])
            chunk.nearest[rows] = np.where(better, best + chunk.absorbed, chunk.nearest[rows])
    chunk.absorbed = candidates.shape[0]


def _seed_potential(chunk: _Chunk, run: int, candidates: np.ndarray) -> float:
    """Worker: fold in new candidates; the chunk's weighted potential (float64)."""
    _lower(chunk, run, candidates)
    assert chunk.closest is not None
    return float(np.dot(chunk.data.sample_weight, chunk.closest.astype(np.float64)))


def _oversample(
    chunk: _Chunk, run: int, candidates: np.ndarray, scale: float, entropy: int, round_: int
) -> np.ndarray:
    """Worker: k-means|| sampling on the chunk: keep each row with probability
    ``min(1, scale w cost)``, from the chunk's own stream of the fit's seed."""
    _lower(chunk, run, candidates)
    assert chunk.closest is not None
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(round_, chunk.index)))
    data = chunk.data
    p = np.minimum(1.0, scale * data.sample_weight * chunk.closest.astype(np.float64))
    picked = np.flatnonzero(rng.random(data.n_samples) < p)
    return np.array(data.X[picked])


def _candidate_weights(chunk: _Chunk, run: int, candidates: np.ndarray) -> np.ndarray:
    """Worker: the weight of the chunk's rows nearest to each candidate."""
    _lower(chunk, run, candidates)
    assert chunk.nearest is not None
    return np.bincount(
        chunk.nearest, weights=chunk.data.sample_weight, minlength=candidates.shape[0]
    )


def _rows_at(
    chunk: _Chunk, targets: np.ndarray, run: int, by_cost: bool, centers: np.ndarray
) -> np.ndarray:
    """Worker: the rows at positions ``targets`` of the chunk's cumulative mass: the
    weights (``by_cost`` False), or weight x lowest cost to ``centers`` (k-means++)."""
    data = chunk.data
    weights = data.sample_weight.astype(np.float64)
    if by_cost:
        _lower(chunk, run, centers)
        assert chunk.closest is not None
        weights = weights * chunk.closest
    if targets.size == 0:
        return np.empty((0, data.n_features), dtype=data.dtype)
    cumulative = np.cumsum(weights)
    idx = np.minimum(np.searchsorted(cumulative, targets, side="right"), data.n_samples - 1)
    positive = np.flatnonzero(weights > 0)
    if positive.size:  # never a row of zero mass (rounding at the chunk's end)
        idx = positive[np.minimum(np.searchsorted(positive, idx), positive.size - 1)]
    return np.array(data.X[idx])


def _trial_potentials(
    chunk: _Chunk, run: int, centers: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """Worker: k-means++'s trials on the chunk: per trial, the chunk's potential were
    that trial added to ``centers``."""
    _lower(chunk, run, centers)
    data = chunk.data
    assert chunk.closest is not None
    cache = steps.prepare_centroids(chunk.hooks, data, points)
    sw = data.sample_weight.astype(np.float64)
    total = np.zeros(points.shape[0])
    for task in data.tasks:
        for rows in task:
            cost = steps.block_matrix(chunk.hooks, "kmeansfw_cost", data, rows, points, cache)
            total += sw[rows] @ np.minimum(cost, chunk.closest[rows, None]).astype(np.float64)
    return total


def _random_keys(chunk: _Chunk, entropy: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Worker: weighted sampling without replacement (Efraimidis-Spirakis keys
    ``log(u) / w``): the chunk's ``k`` largest keys and their rows."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(chunk.index,)))
    data = chunk.data
    weights = data.sample_weight.astype(np.float64)
    u = rng.random(data.n_samples)
    with np.errstate(divide="ignore"):
        keys = np.where(weights > 0, np.log(u) / np.where(weights > 0, weights, 1.0), -np.inf)
    m = min(k, keys.shape[0])
    top = np.argpartition(keys, -m)[-m:]
    return keys[top], np.array(data.X[top])
