"""The iteration engine: initialize, then repeat assign, update, fix empty clusters, stop?

This module only sequences hook calls and keeps the state; every computation on the data
lives in a strategy (see :mod:`kmeansfw.hookspecs`).  One call of :func:`run` is one
restart of a fit; :func:`build_manager` builds the plugin manager a fit uses.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import numpy as np
import pluggy

from kmeansfw import contract, hookspecs, steps
from kmeansfw.data import FitData
from kmeansfw.markers import PROJECT

SLOTS = ("init", "distance", "assignment", "update", "empty", "convergence")


class _Manager(pluggy.PluginManager):
    """A PluginManager that only looks at ``kmeansfw_*`` attributes of a plugin.

    pluggy inspects every attribute of every registered object; strategies are attrs
    classes with dozens of dunder attributes, and a manager is built per fit, so skipping
    them keeps small fits cheap.  Nothing else changes: hook implementations are named
    ``kmeansfw_*`` by the contract.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str):  # noqa: D102 - pluggy API
        if not name.startswith(f"{PROJECT}_"):
            return None
        return super().parse_hookimpl_opts(plugin, name)


def build_manager(
    strategies: Sequence[tuple[str, str, object]], observers: Iterable[object] = ()
) -> pluggy.PluginManager:
    """A fresh plugin manager holding exactly the given strategies, then the observers.

    Parameters
    ----------
    strategies : sequence of (slot, label, strategy)
        In slot order; ``label`` names the strategy in errors (e.g. its catalog name and
        source).
    observers : iterable of objects
        Registered last, so their wrappers wrap the strategies.
    """
    pm = _Manager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for slot, label, strategy in strategies:
        pm.register(strategy, name=f"{slot} strategy {label}")
    for i, observer in enumerate(observers):
        name = getattr(observer, "name", type(observer).__name__)
        pm.register(observer, name=f"observer {name!r} #{i}")
    pm.check_pending()
    return pm


@attrs.define(eq=False)
class FitState:
    """What observers and convergence criteria see after each iteration.

    ``labels`` and ``costs`` come from assigning the samples to ``previous_centroids``;
    ``centroids`` were computed from them.  Derived quantities are computed on demand.
    """

    data: FitData
    n_clusters: int
    tol: float
    rng: np.random.Generator
    run: int = 0
    iteration: int = 0
    centroids: np.ndarray | None = None
    previous_centroids: np.ndarray | None = None
    labels: np.ndarray | None = None
    previous_labels: np.ndarray | None = None
    costs: np.ndarray | None = None
    cluster_weights: np.ndarray | None = None
    strict: bool = False
    started: float = attrs.field(factory=time.perf_counter)
    #: Per-run memory for strategies (e.g. the previous objective), keyed by their name.
    scratch: dict = attrs.field(factory=dict)
    _memo: dict = attrs.field(factory=dict, repr=False)

    def _cached(self, key: str, compute: Any) -> Any:
        key = f"{key}@{self.iteration}"
        if key not in self._memo:
            self._memo.clear()
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def labels_unchanged(self) -> bool:
        """Whether this iteration's labels equal the previous iteration's."""
        return self._cached(
            "unchanged",
            lambda: (
                self.previous_labels is not None
                and np.array_equal(self.labels, self.previous_labels)
            ),
        )

    @property
    def n_changed(self) -> int:
        """How many samples changed cluster in this iteration (all of them at first)."""
        if self.previous_labels is None:
            return self.data.n_samples
        return self._cached(
            "changed", lambda: int(np.count_nonzero(self.labels != self.previous_labels))
        )

    @property
    def center_shift(self) -> float:
        """Sum over centroids of the squared distance each moved in this iteration."""
        return self._cached(
            "shift",
            lambda: float(np.sum((self.centroids - self.previous_centroids) ** 2)),
        )

    @property
    def objective(self) -> float:
        """Weighted sum of the costs of this iteration's assignment."""
        return self._cached(
            "objective",
            lambda: steps.objective(self.data, self.costs),
        )

    @property
    def seconds(self) -> float:
        """Seconds since this run started."""
        return time.perf_counter() - self.started


@attrs.frozen(eq=False)
class FitResult:
    """The outcome of one run."""

    centroids: np.ndarray
    labels: np.ndarray
    costs: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    run: int = 0


def run(
    pm: pluggy.PluginManager,
    data: FitData,
    n_clusters: int,
    *,
    rng: np.random.Generator,
    max_iter: int = 300,
    tol: float = 1e-4,
    run_index: int = 0,
    start: Any = None,
) -> FitResult:
    """Run one restart of the fit: the seed's loop, every step a hook call.

    ``kmeansfw_prepare`` must already have run on ``data`` (see :func:`prepare`).
    ``start`` (a :class:`kmeansfw.checkpoint.Resume` with an iteration) continues a run
    from a checkpoint instead of initializing it.
    """
    hook = pm.hook
    state = FitState(data=data, n_clusters=n_clusters, tol=tol, rng=rng, run=run_index)
    if start is None:
        centroids = steps.initialize(hook, data, n_clusters, rng)
    else:
        centroids = start.centroids
        state.labels, state.iteration = start.labels, start.iteration
        state.scratch = dict(start.scratch)
    state.centroids = centroids
    hook.kmeansfw_fit_start(state=state)

    converged = False
    for iteration in range(state.iteration + 1, max_iter + 1):
        assignment = steps.assign(hook, data, centroids)
        new_centroids, weights = steps.update(hook, data, assignment, centroids, rng)
        new_centroids = steps.fix_empty_clusters(
            hook, data, assignment, centroids, new_centroids, weights, rng
        )
        state.previous_labels, state.labels = state.labels, assignment.labels
        state.previous_centroids, state.centroids = centroids, new_centroids
        state.costs, state.cluster_weights = assignment.costs, weights
        state.iteration = iteration
        state.strict = False  # a criterion sets it when the labels match the new centroids
        hook.kmeansfw_iteration_end(state=state)
        centroids = new_centroids
        if any(contract.call(hook, "kmeansfw_converged", state=state)):
            converged = True
            break

    labels, costs = state.labels, state.costs
    if not state.strict:
        # one final assignment so that the labels match the final centroids
        final = steps.assign(hook, data, centroids, accumulate=False)
        labels, costs = final.labels, final.costs
    result = FitResult(
        centroids=centroids,
        labels=labels,
        costs=costs,
        objective=steps.objective(data, costs),
        n_iter=state.iteration,
        converged=converged,
        run=run_index,
    )
    hook.kmeansfw_fit_end(result=result)
    return result


def prepare(pm: pluggy.PluginManager, data: FitData) -> FitData:
    """Run ``kmeansfw_prepare`` of every strategy on ``data`` (once per data set)."""
    contract.call(pm.hook, "kmeansfw_prepare", data=data)
    return data
