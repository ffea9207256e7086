"""The iteration engine: initialize, then repeat assign, update, fix empty clusters, stop?

This module only sequences hook calls and keeps the state; every computation on the data
lives in a strategy (see :mod:`kmeansfw.core.hookspecs`).  One call of :func:`run` is one
restart of a fit, whatever the mode: a :class:`Walk` says which rows an iteration sees
(:class:`FullBatch`: all of them, Lloyd's algorithm; :class:`MiniBatch`: a random batch,
Sculley's rule) and every mode calls every slot's hooks, observers and criteria through
the same :func:`iterate`.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import numpy as np

from kmeansfw.core import contract
from kmeansfw.core.data import FitData, Fitted, read_only
from kmeansfw.core.errors import StrategyError
from kmeansfw.engine import steps
from kmeansfw.kernels import count_changed, sq_shift


@attrs.define(eq=False)
class FitState:
    """What observers and convergence criteria see after each iteration.

    ``labels`` and ``costs`` come from assigning the iteration's rows (``data``: all the
    training data ``train``, or a mini-batch) to ``previous_centroids``; ``centroids``
    were computed from them.  Derived quantities are computed on demand.
    """

    def __attrs_post_init__(self) -> None:
        if self.train is None:
            self.train = self.data

    data: FitData
    n_clusters: int
    tol: float
    rng: np.random.Generator
    run: int = 0
    #: The training data (``data`` is the iteration's rows: all of them, or a batch).
    train: FitData | None = None
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


@attrs.define(eq=False)
class FullBatch:
    """Lloyd's algorithm: every iteration assigns all the rows and updates from them."""

    #: The update's online state (None: a batch update from the iteration's partition).
    online: Any = None

    def seed_data(self, data: FitData, n_clusters: int, rng: np.random.Generator) -> FitData:
        """The rows the initialization sees: all of them."""
        return data

    def steps(self, data: FitData, max_iter: int) -> int:
        """The most iterations of one run."""
        return max_iter

    def rows(self, data: FitData, rng: np.random.Generator) -> FitData:
        """The rows of the next iteration."""
        return data

    def start(self, centroids: np.ndarray) -> None:
        """Called with the initial centroids of a run."""

    def after(self, state: FitState, batch_objective: float) -> bool:
        """The mode's own stop rule, after the criteria said go on (False: stop)."""
        return True


@attrs.define(eq=False)
class OnlineState:
    """What a mini-batch run remembers between steps, handed to the update as ``online``.

    ``seen`` (k,) float64 is the total weight each centroid has absorbed (its inverse
    learning rate); an update that accepts ``online`` moves each centroid by Sculley's
    rule ``c <- (seen c + sum w x) / (seen + sum w)``, adds the batch weights to ``seen``
    and reassigns starved centroids (``reassignment_ratio``, scikit-learn's rule).
    """

    seen: np.ndarray
    reassignment_ratio: float = 0.01
    steps: int = 0
    since_reassign: int = 0
    reassigned: int = 0


#: Steps without improvement of the smoothed batch objective before stopping.
MAX_NO_IMPROVEMENT = 10


@attrs.define(eq=False)
class MiniBatch(FullBatch):
    """Mini-batch k-means (Sculley 2010), scikit-learn's MiniBatchKMeans rule.

    Seeds on a random sample of ``3 * batch_size`` rows (at least ``3 k``), then every
    iteration draws ``batch_size`` rows with replacement and asks the update for an
    *online* step: centroids move towards their batch members with a per-centroid learning
    rate ``batch weight / total weight absorbed`` and starved centroids are reassigned
    (``reassignment_ratio``; see :class:`OnlineState`).  Runs
    ``max_iter`` passes over the data at most, and stops when the smoothed batch objective
    has not improved for ``max_no_improvement`` steps or a criterion says so.  The update
    must accept the ``online`` argument (``mean`` and ``spherical`` do).
    """

    batch_size: int = 1024
    reassignment_ratio: float = 0.01
    max_no_improvement: int = MAX_NO_IMPROVEMENT
    online: Any = None
    smoothed: float | None = None
    best: float | None = None
    stale: int = 0

    def seed_data(self, data: FitData, n_clusters: int, rng: np.random.Generator) -> FitData:
        n = data.n_samples
        batch = min(self.batch_size, n)
        init_size = min(n, max(3 * batch, 3 * n_clusters))
        return data.with_rows(np.sort(rng.choice(n, size=init_size, replace=False)))

    def steps(self, data: FitData, max_iter: int) -> int:
        return max(1, max_iter * data.n_samples // min(self.batch_size, data.n_samples))

    def rows(self, data: FitData, rng: np.random.Generator) -> FitData:
        n = data.n_samples
        return data.with_rows(rng.integers(0, n, size=min(self.batch_size, n)))

    def start(self, centroids: np.ndarray) -> None:
        self.online = OnlineState(
            seen=np.zeros(centroids.shape[0]), reassignment_ratio=self.reassignment_ratio
        )
        self.smoothed, self.best, self.stale = None, None, 0

    def after(self, state: FitState, batch_objective: float) -> bool:
        """scikit-learn's early stop: smooth the per-sample batch objective; False once it
        has not improved for ``max_no_improvement`` steps."""
        if state.iteration <= 1:  # the first batch only seeds the statistics' history
            return True
        size, n = state.data.n_samples, state.train.n_samples
        alpha = min(1.0, size * 2.0 / (n + 1))
        value = batch_objective / size
        self.smoothed = (
            value if self.smoothed is None else self.smoothed * (1 - alpha) + value * alpha
        )
        if self.best is None or self.smoothed < self.best:
            self.best, self.stale = self.smoothed, 0
        else:
            self.stale += 1
        return self.stale < self.max_no_improvement


def check_walk(hooks: Any, walk: FullBatch) -> None:
    """Refuse an update strategy the walk cannot honour, by name."""
    if not isinstance(walk, MiniBatch):
        return
    if "online" not in (hooks.argnames("kmeansfw_update") or ()):
        label = hooks.labels.get("update", "?")
        raise StrategyError(
            f"update strategy {label} cannot run mini-batch k-means: its kmeansfw_update "
            "takes no 'online' argument (the mean and spherical updates do)"
        )


def iterate(
    hooks: Any, state: FitState, batch: FitData, walk: FullBatch, iteration: int
) -> tuple[bool, float]:
    """One iteration on ``batch``: assign, update, empty clusters, observers, criteria.

    Updates ``state``; returns whether a criterion said stop, and the batch objective.
    """
    centroids, rng = state.centroids, state.rng
    assignment = steps.assign(hooks, batch, centroids)
    new_centroids, weights = steps.update(
        hooks, batch, assignment, centroids, rng, online=walk.online
    )
    absorbed = weights if walk.online is None else walk.online.seen
    new_centroids = steps.fix_empty_clusters(
        hooks, batch, assignment, centroids, new_centroids, absorbed, rng
    )
    same_rows = batch is state.data
    state.data = batch
    state.previous_labels = state.labels if same_rows else None
    state.labels = assignment.labels
    state.previous_centroids, state.centroids = centroids, read_only(new_centroids)
    state.costs, state.cluster_weights = assignment.costs, weights
    state.iteration = iteration
    state.strict = False  # a criterion sets it when the labels match the new centroids
    hooks.kmeansfw_iteration_end(state=state)
    stop = any(contract.call(hooks, "kmeansfw_converged", state=state))
    return stop, steps.objective(batch, assignment.costs)


def run(
    hooks: Any,
    data: FitData,
    n_clusters: int,
    *,
    rng: np.random.Generator,
    max_iter: int = 300,
    tol: float = 1e-4,
    run_index: int = 0,
    start: Any = None,
    walk: FullBatch | None = None,
) -> FitResult:
    """Run one restart of the fit: the seed's loop, every step a hook call.

    ``data`` must be prepared (:func:`prepare`).  ``walk`` chooses the rows of each
    iteration (default :class:`FullBatch`).  ``start`` (a
    :class:`kmeansfw.workflow.checkpoint.Resume` with an iteration) continues a run from
    a checkpoint instead of initializing it.
    """
    walk = walk if walk is not None else FullBatch()
    check_walk(hooks, walk)
    state = FitState(data=data, n_clusters=n_clusters, tol=tol, rng=rng, run=run_index)
    if start is None:
        seeding = walk.seed_data(data, n_clusters, rng)
        if seeding is not data:
            prepare(hooks, seeding)
        centroids = steps.initialize(hooks, seeding, n_clusters, rng)
    else:
        centroids = start.centroids
        state.labels, state.iteration = start.labels, start.iteration
        state.scratch = dict(start.scratch)
    state.centroids = read_only(centroids)
    walk.start(state.centroids)
    hooks.kmeansfw_fit_start(state=state)

    converged = False
    for iteration in range(state.iteration + 1, walk.steps(data, max_iter) + 1):
        batch = walk.rows(data, rng)
        if batch is not data:
            prepare(hooks, batch)
        stop, batch_objective = iterate(hooks, state, batch, walk, iteration)
        if stop or not walk.after(state, batch_objective):
            converged = True
            break

    centroids = state.centroids
    labels, costs = state.labels, state.costs
    if not state.strict or state.data is not data:
        # one final assignment so that the labels match the final centroids
        final = steps.assign(hooks, data, centroids, accumulate=False)
        labels, costs = final.labels, final.costs
    result = FitResult(
        centroids=np.array(centroids),
        labels=labels,
        costs=costs,
        objective=steps.objective(data, costs),
        n_iter=state.iteration,
        converged=converged,
        run=run_index,
    )
    hooks.kmeansfw_fit_end(result=result)
    return result


def learn(hooks: Any, data: FitData) -> Fitted:
    """Run ``kmeansfw_learn`` of every strategy on the training data; the union of the
    answers, each a mapping under keys no other strategy uses."""
    learned: dict[str, Any] = {}
    for answer in contract.call(hooks, "kmeansfw_learn", data=data):
        if not isinstance(answer, dict):
            raise StrategyError(
                f"{hooks.kmeansfw_learn.plugin_name} returned a {type(answer).__name__} from "
                "kmeansfw_learn, not a dict"
            )
        clash = sorted(set(answer) & set(learned))
        if clash:
            raise StrategyError(
                f"two strategies learned the same key(s) {clash} in kmeansfw_learn: prefix "
                "keys with the strategy's name"
            )
        learned.update(answer)
    return Fitted(learned)


def setup(hooks: Any, data: FitData) -> FitData:
    """Make ``data`` ready for the hooks: learn on it when nothing was learned yet (the
    training data), then :func:`prepare` it."""
    if not data.fitted:
        data.fitted = learn(hooks, data)
    return prepare(hooks, data)


def prepare(hooks: Any, data: FitData) -> FitData:
    """Run ``kmeansfw_prepare`` of every strategy on ``data`` (once per data set)."""
    contract.call(hooks, "kmeansfw_prepare", data=data)
    return data
