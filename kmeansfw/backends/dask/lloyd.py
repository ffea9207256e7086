"""One restart of a Dask fit on the driver: seeding, then Lloyd iterations from the
chunks' reduced partials (:class:`ReducedState`), empty clusters handled from reduced
quantities, and the final labels gathered from the workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from kmeansfw.backends.dask.checkpoints import _Resume
from kmeansfw.backends.dask.chunks import (
    _assign_chunk,
    _labels_and_costs,
    _objective,
    _reaccumulate,
    _restore,
    _top_costs,
)
from kmeansfw.backends.dask.cluster import _Cluster
from kmeansfw.backends.dask.seeding import _initialize
from kmeansfw.core import contract
from kmeansfw.core.config import Config
from kmeansfw.core.data import FitData, read_only
from kmeansfw.engine import loop as engine
from kmeansfw.engine import steps
from kmeansfw.strategies.empty import RelocateFarthest, SplitLargest


@attrs.define(eq=False)
class ReducedState(engine.FitState):
    """The state observers and criteria see in a Dask fit: the objective and the count
    of changed labels are reduced from the chunks (the labels stay on the workers, so
    ``labels``, ``previous_labels`` and ``costs`` are None).  The objective comes with
    the iteration's summaries when a strategy of the fit declares ``reads_costs``;
    otherwise a round over the chunks computes it when something reads it."""

    reduced_objective: float | None = 0.0
    reduced_changed: int = 0
    labels_known: bool = False
    #: Computes the objective when the summaries did not carry it (None: they did).
    objective_of: Callable[[], float] | None = attrs.field(default=None, repr=False)

    @property
    def labels_unchanged(self) -> bool:
        """Whether no label changed (False when a chunk's previous labels were lost)."""
        return self.labels_known and self.reduced_changed == 0

    @property
    def n_changed(self) -> int:
        """Labels changed in this iteration (a chunk without previous labels counts all)."""
        return self.reduced_changed

    @property
    def objective(self) -> float:
        """The weighted objective, summed over the chunks (a round over them on first
        read when the iteration did not bring it)."""
        if self.reduced_objective is None:
            assert self.objective_of is not None
            self.reduced_objective = self.objective_of()
        return self.reduced_objective


def _reduced(partials: list | None) -> steps.Assignment:
    """What the driver's update sees: the chunks' partials, no per-sample labels or costs
    (they stay on the workers)."""
    none: Any = None
    return steps.Assignment(none, none, partials)


def _relocate(
    cluster: _Cluster,
    hooks: Any,
    driver: FitData,
    centroids: np.ndarray,
    new: np.ndarray,
    weights: np.ndarray,
    step: tuple,
    rng: np.random.Generator,
) -> np.ndarray:
    """``relocate-farthest`` with per-chunk top costs: the farthest samples move to the
    empty clusters (farthest first) and the update is asked again for that partition."""
    empty = np.flatnonzero(weights == 0)
    if empty.size == 0:
        return new
    out = new.copy()
    out[empty] = centroids[empty]
    n_far = min(empty.size, driver.n_samples)
    parts = cluster.map(_top_costs, centroids, step, n_far)
    costs = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    labels = np.concatenate([p[2] for p in parts])
    order = np.argsort(-costs, kind="stable")[:n_far]
    order = order[costs[order] > 0]
    if order.size == 0:
        return out
    to = empty[: order.size]
    partials = cluster.map(_reaccumulate, centroids, step, rows[order], to)
    relocated, _ = steps.update(
        hooks,
        driver,
        _reduced(partials),
        out,
        rng,  # type: ignore[arg-type]
    )
    changed = np.unique(np.concatenate([labels[order], to]))
    out[changed] = relocated[changed]
    return out


def _empty_step(
    cluster: _Cluster,
    hooks: Any,
    driver: FitData,
    empty_strategy: Any,
    centroids: np.ndarray,
    new: np.ndarray,
    weights: np.ndarray,
    spread: np.ndarray | None,
    step: tuple,
    rng: np.random.Generator,
) -> np.ndarray:
    """The centroids after the fit's empty-cluster strategy, from reduced quantities."""
    if isinstance(empty_strategy, RelocateFarthest):
        out = _relocate(cluster, hooks, driver, centroids, new, weights, step, rng)
        return contract.check_float_array(
            hooks, "kmeansfw_empty_clusters", out, new.shape, driver.dtype, what="centroids"
        )
    k = centroids.shape[0]
    # split-largest reads only the per-cluster cost sums: labels 0..k-1 with those sums
    assignment = steps.Assignment(np.arange(k), spread, None)  # type: ignore[arg-type]
    return steps.fix_empty_clusters(hooks, driver, assignment, centroids, new, weights, rng)


def _objective_round(
    cluster: _Cluster, centroids: np.ndarray, step: tuple
) -> Callable[[], float]:
    """What computes an iteration's objective from the chunks' stored assignments (one
    round over the chunks, when called)."""
    return lambda: float(np.sum(cluster.map(_objective, centroids, step)))


def _run(
    cluster: _Cluster,
    hooks: Any,
    driver: FitData,
    strategies: list,
    cfg: Config,
    rng: np.random.Generator,
    run_index: int,
    start: _Resume | None = None,
) -> engine.FitResult:
    """One restart on the cluster: seeding, then Lloyd iterations until a criterion
    stops; or, with ``start``, the iterations after a checkpoint's."""
    k = cfg.n_clusters
    state = ReducedState(data=driver, n_clusters=k, tol=cfg.tol, rng=rng, run=run_index)
    if start is None:
        centroids = _initialize(cluster, hooks, driver, strategies, k, rng, run_index)
    else:
        centroids, state.iteration = start.centroids, start.iteration
        state.scratch = dict(start.scratch)
        state.previous_centroids = read_only(start.previous_centroids)
        # the chunks' labels of the checkpoint's iteration, rebuilt from the centroids
        # they were assigned to: the next iteration counts changed labels exactly
        cluster.map(_restore, start.previous_centroids, (run_index, start.iteration))
    state.centroids = read_only(centroids)
    hooks.kmeansfw_fit_start(state=state.seal())
    empty_strategy = next(s for slot, _, s in strategies if slot == "empty")
    spread = isinstance(empty_strategy, SplitLargest)
    accumulate = hooks.implemented("kmeansfw_accumulate")
    # split-largest's sums make the costs anyway, and the objective then costs no more
    with_costs = spread or engine.costs_read(hooks)
    converged = False
    step = (run_index, 0)
    for iteration in range(state.iteration + 1, cfg.max_iter + 1):
        centroids = state.centroids
        step = (run_index, iteration)
        used = np.asarray(centroids)
        summaries = cluster.map(_assign_chunk, used, step, accumulate, spread, with_costs)
        partials = [s.partial for s in summaries] if accumulate else None
        new, weights = steps.update(
            hooks,
            driver,
            _reduced(partials),
            centroids,
            rng,  # type: ignore[arg-type]
        )
        per_cluster = np.sum([s.spread for s in summaries], axis=0) if spread else None
        updated = new
        new = _empty_step(
            cluster,
            hooks,
            driver,
            empty_strategy,
            np.asarray(centroids),
            new,
            weights,
            per_cluster,
            step,
            rng,
        )
        state.previous_centroids, state.centroids = centroids, read_only(new)
        state.cluster_weights = weights
        state.iteration = iteration
        state.strict = False
        if with_costs:
            state.reduced_objective = float(np.sum([s.objective for s in summaries]))
            state.objective_of = None
        else:  # a round over the chunks, only if something reads it
            state.reduced_objective = None
            state.objective_of = _objective_round(cluster, used, step)
        state.reduced_changed = int(sum(s.changed for s in summaries))
        state.labels_known = all(s.known for s in summaries)
        hooks.kmeansfw_iteration_end(state=state.seal())
        if steps.stop_after(hooks, state, steps.moved_by_empty(updated, new)):
            converged = True
            break
    final_centroids = np.array(state.centroids)
    if state.strict:  # the labels of the last assignment match the final centroids
        used = np.asarray(state.previous_centroids)
    else:  # one final assignment so that the labels match the final centroids
        step = (run_index, state.iteration + 1)
        used = final_centroids
    parts = cluster.map(_labels_and_costs, used, step)
    labels = np.concatenate([p[0] for p in parts])
    costs = np.concatenate([p[1] for p in parts])
    result = engine.FitResult(
        centroids=final_centroids,
        labels=labels,
        costs=costs,
        objective=float(np.sum([p[2] for p in parts])),
        n_iter=state.iteration,
        converged=converged,
        run=run_index,
        stop_reason="converged" if converged else "max_iter",
    )
    hooks.kmeansfw_fit_end(result=engine.viewed_result(result))  # read-only arrays
    return result
