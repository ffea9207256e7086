"""The iteration engine: initialize, then repeat assign, update, fix empty clusters, stop?

This module only sequences hook calls and keeps the state; every computation on the data
lives in a strategy (see :mod:`kmeansfw.core.hookspecs`).  One call of :func:`run` is one
restart of a fit, whatever the mode: a :class:`Walk` says which rows an iteration sees
(:class:`FullBatch`: all of them, Lloyd's algorithm; :class:`MiniBatch`: a random batch,
Sculley's rule) and every mode calls every slot's hooks, observers and criteria through
the same :func:`iterate`.  One exception, with the same results: a Lloyd run made only of
the built-in strategies on small dense data makes the calls of its iterations itself
(:mod:`kmeansfw.engine.lloyd_step`).
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
from kmeansfw.engine.lloyd_step import lloyd_step
from kmeansfw.kernels import count_changed, labels_equal, sq_shift


@attrs.define(eq=False)
class FitState:
    """What observers and convergence criteria see after each iteration.

    ``labels`` and ``costs`` come from assigning the iteration's rows (``data``: all the
    training data ``train``, or a mini-batch) to ``previous_centroids``; ``centroids``
    were computed from them.  ``previous_labels`` are the labels the same rows had before
    (full batch: the previous iteration's; mini-batch: when each row was last drawn, -1
    for rows not drawn before; None when unknown).  Derived quantities, and ``costs``
    when the assignment strategy left them to the engine, are computed on demand.
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
    #: The arrays below are read-only views when observers and criteria see them
    #: (:meth:`seal`): one that wrote into them would change the fit's answer silently.
    labels: np.ndarray | None = None
    previous_labels: np.ndarray | None = None
    #: Costs set directly (None: those of :attr:`assignment`, see :attr:`costs`).
    _costs: np.ndarray | None = None
    cluster_weights: np.ndarray | None = None
    strict: bool = False
    #: The iteration's :class:`~kmeansfw.engine.steps.Assignment` (None before the first).
    assignment: steps.Assignment | None = None
    started: float = attrs.field(factory=time.perf_counter)
    #: Per-run memory for strategies (e.g. the previous objective), keyed by their name.
    scratch: dict = attrs.field(factory=dict)
    _memo: dict = attrs.field(factory=dict, repr=False)

    def seal(self) -> FitState:
        """Make the state's arrays read-only views (the engine keeps its own references),
        before observers and criteria see the state; returns the state."""
        for name in ("labels", "previous_labels", "_costs", "cluster_weights"):
            setattr(self, name, read_only(getattr(self, name)))  # None, tensors: as they are
        return self

    def _cached(self, key: str, compute: Any) -> Any:
        memo = self._memo
        if memo.get("@") != self.iteration:  # a new iteration: forget the previous one's
            memo.clear()
            memo["@"] = self.iteration
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    @property
    def costs(self) -> np.ndarray | None:
        """Each sample's cost to its centroid in this iteration's assignment, computed on
        first read when the assignment strategy left them to the engine."""
        if self._costs is None and self.assignment is not None:
            return self.assignment.costs
        return self._costs

    @costs.setter
    def costs(self, value: np.ndarray | None) -> None:
        self._costs, self.assignment = value, None

    def _memo_of(self, key: str) -> Any:
        """What :meth:`_cached` holds under ``key`` for this iteration (None: nothing)."""
        memo = self._memo
        return memo.get(key) if memo.get("@") == self.iteration else None

    def _previous_of_same_rows(self) -> bool:
        """Whether the previous labels are known, and of the same rows."""
        return self.previous_labels is not None and self.labels.shape == self.previous_labels.shape

    @property
    def labels_unchanged(self) -> bool:
        """Whether this iteration's labels equal the previous iteration's.

        Compared only as far as the first changed run of labels
        (:func:`kmeansfw.kernels.labels_equal`), unless :attr:`n_changed` was counted
        already this iteration.
        """
        if not self._previous_of_same_rows():
            return False
        changed = self._memo_of("changed")
        if changed is not None:
            return changed == 0
        return self._cached("unchanged", self._labels_equal)

    def _labels_equal(self) -> bool:
        return labels_equal(self.labels, self.previous_labels)

    @property
    def n_changed(self) -> int:
        """How many samples changed cluster in this iteration (all of them at first, and
        when the previous labels are of other rows, as :attr:`labels_unchanged` says)."""
        if not self._previous_of_same_rows():
            return self.data.n_samples
        if self._memo_of("unchanged"):
            return 0
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


#: Why a run stops (:attr:`FitResult.stop_reason`).
STOP_REASONS = ("converged", "no-improvement", "max_iter")


@attrs.frozen(eq=False)
class FitResult:
    """The outcome of one run.

    Attributes
    ----------
    centroids : ndarray, shape (k, d)
        The run's final centroids, in the data's dtype.
    labels : ndarray of int, shape (n,)
        Each training row's closest final centroid (empty when a mini-batch fit was
        asked not to compute the labels).
    costs : ndarray, shape (n,)
        Each row's cost to its centroid (squared distance with the Euclidean defaults;
        empty with the labels).
    objective : float
        The run's objective: the weighted sum of the costs (inertia).
    n_iter : int
        Iterations the run made.
    converged : bool
        Whether a stop criterion ended it before ``max_iter``.
    run : int
        The run's index among the fit's ``n_init`` runs.
    stop_reason : str
        Why the run stopped: ``"converged"`` (a criterion, or the walk's own tolerance),
        ``"no-improvement"`` (mini-batch: the smoothed batch objective stopped
        improving; not convergence) or ``"max_iter"``.
    """

    centroids: np.ndarray
    labels: np.ndarray
    costs: np.ndarray
    objective: float
    n_iter: int
    converged: bool
    run: int = 0
    stop_reason: str = "max_iter"


@attrs.define(eq=False)
class FullBatch:
    """Lloyd's algorithm: every iteration assigns all the rows and updates from them."""

    #: The update's online state (None: a batch update from the iteration's partition).
    online: Any = None

    #: Whether the run ends with an assignment of all the training rows (labels, costs).
    compute_labels: bool = True

    #: Whether every iteration assigns the same rows (all the data).
    repeats_rows = True

    #: Whether the walk reads each iteration's costs itself; when neither it nor a plugin
    #: declaring ``reads_costs`` does, the assignment may leave them (computed on demand
    #: if something else reads them).
    reads_costs = False

    def seed_data(self, data: FitData, n_clusters: int, rng: np.random.Generator) -> FitData:
        """The rows the initialization sees: all of them."""
        return data

    def initialize(
        self, hooks: Any, data: FitData, n_clusters: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The initial centroids of a run: the ``init`` strategy on :meth:`seed_data`."""
        seeding = self.seed_data(data, n_clusters, rng)
        if seeding is not data:
            prepare(hooks, seeding)
        return steps.initialize(hooks, seeding, n_clusters, rng)

    def previous_labels(self, state: FitState, batch: FitData) -> np.ndarray | None:
        """The labels the rows of ``batch`` had before this iteration (None: unknown)."""
        return state.labels if batch is state.data else None

    def remember(self, labels: np.ndarray) -> None:
        """Called with each iteration's labels (of the rows :meth:`rows` returned)."""

    def steps(self, data: FitData, max_iter: int) -> int:
        """The most iterations of one run."""
        return max_iter

    def rows(self, data: FitData, rng: np.random.Generator) -> FitData:
        """The rows of the next iteration."""
        return data

    def start(self, centroids: np.ndarray) -> None:
        """Called with the initial centroids of a run."""

    def after(self, state: FitState) -> bool:
        """The mode's own stop rule, after the criteria said go on (False: stop, and
        :attr:`stop_reason` says why); ``state.objective`` is the batch objective."""
        return True

    @property
    def stop_reason(self) -> str:
        """Why :meth:`after` said stop (``"converged"`` or ``"no-improvement"``)."""
        return "converged"


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

    Seeds on a random sample of ``init_size`` rows (None: ``3 * batch_size``, at least
    ``3 k``); with ``n_init > 1`` it seeds that many times, each on its own sample, and
    keeps the seeding of lowest objective on one more random sample of ``init_size``
    rows (scikit-learn's rule).  Then every iteration draws ``batch_size`` rows with
    replacement and asks the update for an *online* step: centroids move towards their
    batch members with a per-centroid learning rate ``batch weight / total weight
    absorbed`` and starved centroids are reassigned (``reassignment_ratio``; see
    :class:`OnlineState`).  Runs ``max_iter`` passes over the data at most; stops
    (converged) once the squared centroid shift of a step is at most ``tol`` times the
    mean feature variance (``tol > 0`` only), or (not converged: ``"no-improvement"``)
    when the smoothed batch objective has not improved for ``max_no_improvement`` steps
    (None: never), or when a criterion says so.  It remembers the label each training
    row had when last drawn, so label-based criteria see a batch's ``previous_labels``
    (-1 for rows not drawn before, which count as changed).  The update must accept the
    ``online`` argument (``mean`` and ``spherical`` do).  With ``compute_labels=False``
    the run ends without labelling the training data: the result's ``labels`` and
    ``costs`` are empty and its objective is the smoothed batch objective times n.
    """

    repeats_rows = False  # a new random batch every step
    reads_costs = True  # the batch objective, every step
    batch_size: int = 1024
    reassignment_ratio: float = 0.01
    max_no_improvement: int | None = MAX_NO_IMPROVEMENT
    init_size: int | None = None
    n_init: int = 1
    tol: float = 0.0
    compute_labels: bool = True
    online: Any = None
    smoothed: float | None = None
    best: float | None = None
    stale: int = 0
    _rows: np.ndarray | None = attrs.field(default=None, init=False, repr=False)
    _known: np.ndarray | None = attrs.field(default=None, init=False, repr=False)
    _reason: str = attrs.field(default="converged", init=False)

    def seed_size(self, n_samples: int, n_clusters: int) -> int:
        """Rows the seeding sees (scikit-learn's ``init_size`` rule)."""
        init_size = self.init_size
        if init_size is None:
            init_size = 3 * min(self.batch_size, n_samples)
        if init_size < n_clusters:
            init_size = 3 * n_clusters
        return min(n_samples, init_size)

    def seed_data(self, data: FitData, n_clusters: int, rng: np.random.Generator) -> FitData:
        init_size = self.seed_size(data.n_samples, n_clusters)
        return data.with_rows(np.sort(rng.choice(data.n_samples, size=init_size, replace=False)))

    def initialize(
        self, hooks: Any, data: FitData, n_clusters: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The best of ``n_init`` seedings on samples, judged on another sample."""
        if self.n_init <= 1:
            return super().initialize(hooks, data, n_clusters, rng)
        check = prepare(hooks, self.seed_data(data, n_clusters, rng))
        best, best_objective = None, np.inf
        for _ in range(self.n_init):  # over restarts, never samples
            centroids = super().initialize(hooks, data, n_clusters, rng)
            found = steps.assign(hooks, check, read_only(centroids), accumulate=False)
            objective = steps.objective(check, found.costs)
            if best is None or objective < best_objective:
                best, best_objective = centroids, objective
        assert best is not None
        return best

    def steps(self, data: FitData, max_iter: int) -> int:
        return max(1, max_iter * data.n_samples // min(self.batch_size, data.n_samples))

    def rows(self, data: FitData, rng: np.random.Generator) -> FitData:
        n = data.n_samples
        self._rows = rng.integers(0, n, size=min(self.batch_size, n))
        if self._known is None or self._known.shape[0] != n:
            self._known = np.full(n, -1, dtype=np.int32)
        return data.with_rows(self._rows)

    def previous_labels(self, state: FitState, batch: FitData) -> np.ndarray | None:
        """The labels the batch's rows had when last drawn (-1: never drawn)."""
        if self._rows is None or self._known is None or batch is state.train:
            return None
        return self._known[self._rows]

    def remember(self, labels: np.ndarray) -> None:
        if self._rows is not None and self._known is not None:
            self._known[self._rows] = labels

    def start(self, centroids: np.ndarray) -> None:
        self.online = OnlineState(
            seen=np.zeros(centroids.shape[0]), reassignment_ratio=self.reassignment_ratio
        )
        self.smoothed, self.best, self.stale = None, None, 0
        self._rows, self._known, self._reason = None, None, "converged"

    def after(self, state: FitState) -> bool:
        """scikit-learn's early stops: the centroid shift within ``tol`` (converged), or
        the smoothed per-sample batch objective not improving for ``max_no_improvement``
        steps."""
        if state.iteration <= 1:  # the first batch only seeds the statistics' history
            return True
        size, n = state.data.n_samples, state.train.n_samples
        alpha = min(1.0, size * 2.0 / (n + 1))
        value = state.objective / size  # the batch's objective
        self.smoothed = (
            value if self.smoothed is None else self.smoothed * (1 - alpha) + value * alpha
        )
        if self.tol > 0 and state.center_shift <= self.tol * _mean_variance(state.train):
            self._reason = "converged"
            return False
        if self.best is None or self.smoothed < self.best:
            self.best, self.stale = self.smoothed, 0
        else:
            self.stale += 1
        if self.max_no_improvement is not None and self.stale >= self.max_no_improvement:
            self._reason = "no-improvement"
            return False
        return True

    @property
    def stop_reason(self) -> str:
        return self._reason


def _mean_variance(train: FitData) -> float:
    """The mean feature variance of the training data (kept in its cache), the scale of
    scikit-learn's ``tol``."""
    from kmeansfw.strategies.convergence import _MEAN_VARIANCE, mean_feature_variance

    if _MEAN_VARIANCE not in train.cache:
        train.cache[_MEAN_VARIANCE] = mean_feature_variance(train)
    return float(train.cache[_MEAN_VARIANCE])


def check_walk(hooks: Any, walk: FullBatch) -> None:
    """Refuse an update strategy the walk cannot honour, by name."""
    if not isinstance(walk, MiniBatch):
        return
    if "online" not in (hooks.argnames("kmeansfw_update") or ()):
        label = hooks.labels.get("update", "?")
        raise StrategyError(
            f"update strategy {label} cannot run mini-batch k-means: its kmeansfw_update "
            "takes no 'online' argument (the mean and spherical updates do; an update the "
            "config does not name is the distance's natural update: name update='mean' "
            "or 'spherical' to pair the distance with one of those)"
        )


#: The update's partials (about tasks x k x d float64) are kept for the next iteration's
#: map only while they take at most this fraction of the data's size.
PARTIALS_FRACTION = 1 / 4


def keeps_partials(data: FitData, n_clusters: int) -> bool:
    """Whether a Lloyd iteration keeps the update's partials for the next one's map
    (``previous_partial``): dense data, whose partials (about tasks x k x d float64) take
    at most :data:`PARTIALS_FRACTION` of its size.  Kept, they live one iteration longer,
    beside the next iteration's own.

    Parameters
    ----------
    data : FitData
        The iteration's rows.
    n_clusters : int
        k.

    Returns
    -------
    bool
    """
    if not isinstance(data.X, np.ndarray):
        return False
    size = n_clusters * data.n_features * len(data.tasks) * 8
    return size <= PARTIALS_FRACTION * data.X.nbytes


def kept_partials(
    hooks: Any, data: FitData, partials: list | None, walk: FullBatch
) -> list | None:
    """A copy of the map's partials for the next iteration's map (``previous_partial``),
    taken before the update sees them, or None when they are not kept: only in a Lloyd
    run, for a map that declares ``previous_partial``, partials that are tuples of arrays,
    not when the assignment's search summed every task (:class:`steps.SearchSums`), and
    within :func:`keeps_partials`.  Kept as plain tuples of read-only copies, so
    nothing the update or an observer does to the partials reaches the next iteration's
    sums (and nothing else a map attached to them stays in memory)."""
    if not partials or not walk.repeats_rows:
        return None
    if all(isinstance(p, steps.SearchSums) for p in partials):
        return None  # the search summed every task: it sums again next time (a copy costs
        # 7-8 us of a 50-110 us iteration on 2000 rows; a bounded pass that then leaves
        # blocks to the map sums them in full once)
    if not hooks.takes("kmeansfw_accumulate", "previous_partial"):
        return None
    if not all(
        isinstance(p, tuple) and p and all(isinstance(a, np.ndarray) and a.ndim for a in p)
        for p in partials
    ):
        return None
    if not keeps_partials(data, int(partials[0][0].shape[0])):
        return None
    if sum(a.nbytes for p in partials for a in p) > PARTIALS_FRACTION * data.X.nbytes:
        return None  # larger than the estimate (a map other than the mean's)
    return [tuple(read_only(a.copy()) for a in p) for p in partials]


def costs_read(hooks: Any) -> bool:
    """Whether a plugin of the fit reads every iteration's costs (``reads_costs``), so
    that an iteration asks the assignment for them; a plain pluggy relay, with no
    declarations to go by: always, as before declarations existed.

    Parameters
    ----------
    hooks : Hooks
        The fit's hooks.

    Returns
    -------
    bool
    """
    declared = getattr(hooks, "costs_read_every_iteration", None)
    return declared is None or declared()


def sums_in_search(hooks: Any, walk: FullBatch) -> bool:
    """Whether a Lloyd iteration offers the update's map to the assignment's search
    (:mod:`kmeansfw.core.sums`): in a full-batch run whose hooks say the fit may
    (``Hooks.sums_in_search``; a plain pluggy relay: never).

    Parameters
    ----------
    hooks : Hooks
        The fit's hooks.
    walk : FullBatch
        How the run walks the data.

    Returns
    -------
    bool
    """
    may = getattr(hooks, "sums_in_search", None)
    return may is not None and walk.online is None and walk.repeats_rows and may()


@attrs.frozen
class Plan:
    """What every iteration of a run asks the same way, decided once per run."""

    #: Whether the iterations ask the assignment for the costs (see :func:`costs_read`).
    with_costs: bool
    #: Whether they offer the update's map to the search (see :func:`sums_in_search`).
    sums: bool

    @classmethod
    def of(cls, hooks: Any, walk: FullBatch) -> Plan:
        """The plan of a run of ``hooks`` walking the data with ``walk``."""
        return cls(walk.reads_costs or costs_read(hooks), sums_in_search(hooks, walk))


def iterate(
    hooks: Any,
    state: FitState,
    batch: FitData,
    walk: FullBatch,
    iteration: int,
    plan: Plan | None = None,
) -> bool:
    """One iteration on ``batch``: assign, update, empty clusters, observers, criteria.

    Updates ``state`` (whose ``objective`` is then the batch objective); returns whether
    a criterion said stop.  ``plan``: the run's :class:`Plan` (None: decided now).
    """
    centroids, rng = state.centroids, state.rng
    # the same rows as the previous iteration: the update's map may start from its sums
    previous = state.assignment if batch is state.data and walk.repeats_rows else None
    if plan is None:
        plan = Plan.of(hooks, walk)
    assignment = steps.assign(
        hooks,
        batch,
        centroids,
        previous=previous,
        with_costs=plan.with_costs,
        sums_in_search=plan.sums,
    )
    if previous is not None:
        previous.partials = None  # used: freed before this iteration's are copied
    kept = kept_partials(hooks, batch, assignment.partials, walk)
    new_centroids, weights = steps.update(
        hooks, batch, assignment, centroids, rng, online=walk.online
    )
    absorbed = weights if walk.online is None else walk.online.seen
    updated = new_centroids
    new_centroids = steps.fix_empty_clusters(
        hooks, batch, assignment, centroids, new_centroids, absorbed, rng
    )
    state.previous_labels = walk.previous_labels(state, batch)
    walk.remember(assignment.labels)
    state.data = batch
    state.labels = assignment.labels
    state.previous_centroids, state.centroids = centroids, read_only(new_centroids)
    state.costs = None  # the assignment's, computed if something reads them
    assignment.partials = kept
    state.assignment, state.cluster_weights = assignment, weights
    state.iteration = iteration
    state.strict = False  # a criterion sets it when the labels match the new centroids
    steps.end_iteration(hooks, state)
    return steps.stop_after(hooks, state, steps.moved_by_empty(updated, new_centroids))


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
    """Run one restart of the fit: the seed's loop, every step a hook call (or, for a run
    :func:`kmeansfw.engine.lloyd_step.lloyd_step` allows, the built-in iteration in one
    call, with the same results).

    ``data`` must be prepared (:func:`prepare`).  ``walk`` chooses the rows of each
    iteration (default :class:`FullBatch`).  ``start`` (a
    :class:`kmeansfw.workflow.checkpoint.Resume` with an iteration) continues a run from
    a checkpoint instead of initializing it.
    """
    walk = walk if walk is not None else FullBatch()
    check_walk(hooks, walk)
    state = FitState(data=data, n_clusters=n_clusters, tol=tol, rng=rng, run=run_index)
    if start is None:
        centroids = walk.initialize(hooks, data, n_clusters, rng)
    else:
        centroids = start.centroids
        state.labels, state.iteration = start.labels, start.iteration
        state.scratch = dict(start.scratch)
    state.centroids = read_only(centroids)
    in_process = data.executor is None or getattr(data.executor, "in_process", False)
    if walk.repeats_rows and in_process:  # a task copy keeps no state
        data.cache[steps.REPEATED] = True
    walk.start(state.centroids)
    hooks.kmeansfw_fit_start(state=state.seal())

    reason = "max_iter"
    plan = Plan.of(hooks, walk)
    plain = type(walk) is FullBatch and walk.online is None  # Lloyd, nothing else
    fused = lloyd_step(hooks, data, n_clusters, plan) if plain else None
    if fused is not None:  # the built-in iterations on small data (FullBatch: no after())
        if fused.run(hooks, state, data, walk.steps(data, max_iter)):
            reason = "converged"
    else:
        for iteration in range(state.iteration + 1, walk.steps(data, max_iter) + 1):
            batch = walk.rows(data, rng)
            if batch is not data:
                prepare(hooks, batch)
            if iterate(hooks, state, batch, walk, iteration, plan):
                reason = "converged"
                break
            if not walk.after(state):
                reason = walk.stop_reason
                break

    centroids = state.centroids
    if not walk.compute_labels and state.data is not data:
        labels, costs = np.empty(0, dtype=np.intp), np.empty(0, dtype=data.dtype)
        smoothed = getattr(walk, "smoothed", None)
        objective = (
            steps.objective(state.data, state.costs) / state.data.n_samples
            if smoothed is None
            else smoothed
        ) * data.n_samples
    else:
        if not state.strict or state.data is not data:
            # one final assignment so that the labels match the final centroids
            final = steps.assign(hooks, data, centroids, accumulate=False)
            labels, costs = final.labels, final.costs
        else:  # the last iteration's (costs computed now if they were left)
            labels, costs = state.labels, state.costs
        objective = steps.objective(data, costs)
    result = FitResult(  # the caller's own arrays (the state's are read-only views)
        centroids=np.array(centroids),
        labels=np.array(labels),
        costs=np.array(costs),
        objective=objective,
        n_iter=state.iteration,
        converged=reason == "converged",
        run=run_index,
        stop_reason=reason,
    )
    # observers see the result's arrays read-only: the model is made from them
    hooks.kmeansfw_fit_end(result=viewed_result(result))
    return result


def viewed_result(result: FitResult) -> FitResult:
    """``result`` with read-only views of its arrays, for the observers' ``fit_end``."""
    return attrs.evolve(
        result,
        centroids=read_only(result.centroids),
        labels=read_only(result.labels),
        costs=read_only(result.costs),
    )


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
