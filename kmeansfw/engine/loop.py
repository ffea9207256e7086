"""The iteration engine: initialize, then repeat assign, update, fix empty clusters, stop?

This module only sequences hook calls and keeps the state; every computation on the data
lives in a strategy (see :mod:`kmeansfw.core.hookspecs`).  One call of :func:`run` is one
restart of a fit; :func:`build_manager` builds the plugin manager a fit uses.
"""

from __future__ import annotations

import operator
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import numpy as np
import pluggy

from kmeansfw.core import contract, hookspecs
from kmeansfw.core.catalog import is_value_strategy
from kmeansfw.core.data import FitData
from kmeansfw.core.markers import PROJECT
from kmeansfw.engine import steps
from kmeansfw.kernels import count_changed, sq_shift

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


def _argument_getter(argnames: tuple[str, ...]) -> Any:
    """A function of the call's keyword dict returning an implementation's arguments as a
    tuple (:func:`operator.itemgetter`, which runs in C, for two or more)."""
    if len(argnames) >= 2:
        return operator.itemgetter(*argnames)
    if len(argnames) == 1:
        (name,) = argnames
        return lambda kwargs: (kwargs[name],)
    return lambda kwargs: ()


class _FastCaller:
    """A hook caller that calls plain (non-wrapper) implementations directly.

    Does what pluggy's ``_multicall`` does for implementations without wrappers (same
    order, same results, ``firstresult`` honoured) without its per-call bookkeeping, which
    costs more than the work on small data.  Hooks with wrappers, and every other
    attribute (``get_hookimpls``, ``spec``, ...), go to pluggy's own caller.
    """

    __slots__ = ("_caller", "_plain", "_firstresult", "implemented")

    def __init__(self, caller: pluggy.HookCaller) -> None:
        self._caller = caller
        impls = caller.get_hookimpls()
        #: Whether any plugin implements the hook (without copying the list every time).
        self.implemented = bool(impls)
        wrapped = any(impl.hookwrapper or impl.wrapper for impl in impls)
        self._plain = (
            None
            if wrapped
            else tuple((i.function, _argument_getter(tuple(i.argnames))) for i in reversed(impls))
        )
        self._firstresult = bool(caller.spec is not None and caller.spec.opts.get("firstresult"))

    def __call__(self, **kwargs: Any) -> Any:
        if self._plain is None:
            return self._caller(**kwargs)
        results = []
        for function, arguments in self._plain:
            try:
                args = arguments(kwargs)
            except KeyError:  # pluggy raises the error naming the missing argument
                return self._caller(**kwargs)
            result = function(*args)
            if result is not None:
                if self._firstresult:
                    return result
                results.append(result)
        return None if self._firstresult else results

    def __getattr__(self, name: str) -> Any:
        return getattr(self._caller, name)


class FastRelay:
    """``pm.hook`` with every ``kmeansfw_*`` caller wrapped in a :class:`_FastCaller`.

    Built once a manager is complete (managers are not changed afterwards); strategies
    receive it as ``hook`` and use it exactly like ``pm.hook``.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._relay = pm.hook
        for name, caller in vars(pm.hook).items():
            if isinstance(caller, pluggy.HookCaller):
                setattr(self, name, _FastCaller(caller))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._relay, name)


def relay(pm: pluggy.PluginManager) -> FastRelay:
    """The manager's :class:`FastRelay` (what the engine passes to strategies as ``hook``)."""
    fast = getattr(pm, "kmeansfw_relay", None)
    if fast is None:
        fast = pm.kmeansfw_relay = FastRelay(pm)
    return fast


#: Managers for observer-free strategy sets, by the strategies' value (most recent last).
_MANAGERS: OrderedDict[tuple, pluggy.PluginManager] = OrderedDict()
_MANAGERS_MAX = 64
_managers_lock = threading.Lock()


def build_manager(
    strategies: Sequence[tuple[str, str, object]], observers: Iterable[object] = ()
) -> pluggy.PluginManager:
    """A plugin manager holding exactly the given strategies, then the observers.

    Parameters
    ----------
    strategies : sequence of (slot, label, strategy)
        In slot order; ``label`` names the strategy in errors (e.g. its catalog name and
        source).
    observers : iterable of objects
        Registered last, so their wrappers wrap the strategies.

    Notes
    -----
    Parsing hook implementations costs more than a small fit, so a manager without
    observers whose strategies are all immutable values (frozen attrs classes compared by
    value, with hashable parameters: see :func:`kmeansfw.core.catalog.is_value_strategy`) is
    kept and reused for later fits with equal strategies.  Reuse is safe because a
    manager is never changed after it is built and such strategies keep no per-fit state
    (per-fit memory lives in the data's cache, the centroid cache and
    :attr:`FitState.scratch`).  Any other strategy, and any observer, gets a fresh
    manager, so no user object is kept alive by the reuse.
    """
    observers = list(observers)
    key = None
    if not observers and all(is_value_strategy(s) for _, _, s in strategies):
        key = tuple(strategies)
        try:
            hash(key)
        except TypeError:  # a parameter that is a list, a dict, ...
            key = None
    if key is not None:
        with _managers_lock:
            pm = _MANAGERS.get(key)
            if pm is not None:
                _MANAGERS.move_to_end(key)
                return pm
    pm = _Manager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for slot, label, strategy in strategies:
        pm.register(strategy, name=f"{slot} strategy {label}")
    for i, observer in enumerate(observers):
        name = getattr(observer, "name", type(observer).__name__)
        pm.register(observer, name=f"observer {name!r} #{i}")
    pm.check_pending()
    if key is not None:
        with _managers_lock:
            _MANAGERS[key] = pm
            while len(_MANAGERS) > _MANAGERS_MAX:
                _MANAGERS.popitem(last=False)
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
        memo = self._memo
        if memo.get("@") != self.iteration:  # a new iteration: forget the previous one's
            memo.clear()
            memo["@"] = self.iteration
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    @property
    def labels_unchanged(self) -> bool:
        """Whether this iteration's labels equal the previous iteration's."""
        if self.previous_labels is None or self.labels.shape != self.previous_labels.shape:
            return False
        return self.n_changed == 0

    @property
    def n_changed(self) -> int:
        """How many samples changed cluster in this iteration (all of them at first)."""
        if self.previous_labels is None:
            return self.data.n_samples
        return self._cached("changed", self._count_changed)

    def _count_changed(self) -> int:
        return count_changed(self.labels, self.previous_labels)

    @property
    def center_shift(self) -> float:
        """Sum over centroids of the squared distance each moved in this iteration."""
        return self._cached("shift", self._center_shift)

    def _center_shift(self) -> float:
        return sq_shift(self.centroids, self.previous_centroids)

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
    ``start`` (a :class:`kmeansfw.workflow.checkpoint.Resume` with an iteration) continues a run
    from a checkpoint instead of initializing it.
    """
    hook = relay(pm)
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
    contract.call(relay(pm), "kmeansfw_prepare", data=data)
    return data
