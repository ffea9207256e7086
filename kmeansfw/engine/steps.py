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

import threading
from typing import Any

import attrs
import numpy as np
import pluggy

from kmeansfw.core import contract
from kmeansfw.core.data import FitData, read_only
from kmeansfw.core.errors import StrategyError
from kmeansfw.core.sums import SumsRequest
from kmeansfw.engine.executors import fill_rows, inline_task, is_small, map_tasks, task_rows

_FLOAT64 = np.dtype(np.float64)

#: In a data set's cache, set by an in-process Lloyd run (no executor, or one whose
#: ``in_process`` is true) before its first iteration: the same rows
#: will be assigned again at every iteration, so per-row state an assignment keeps from
#: one pass to the next (the bounds of ``auto``'s hamerly) pays from the first pass.
REPEATED = "engine.repeated"


@attrs.define(eq=False)
class Assignment:
    """Labels and costs of every sample, plus the update's per-task partial results.

    An assignment strategy may leave a block's costs to the engine (``kmeansfw_assign``
    answering ``(labels, None)``): they are then the distance's
    ``kmeansfw_paired_cost`` of the labels, computed on the first read of
    :attr:`costs` and never when nothing reads them (a Lloyd iteration of the mean
    update and the tolerance criterion does not).
    """

    #: Read-only (a view): observers and criteria see the assignment through the state.
    labels: np.ndarray = attrs.field(converter=read_only)
    _costs: np.ndarray
    partials: list | None
    #: How to compute the blocks whose costs were left to the engine (None: none were).
    _pending: PendingCosts | None = None

    @property
    def costs(self) -> np.ndarray:
        """The cost of each sample to its centroid (computed now if it was left), as a
        read-only view."""
        pending = self._pending
        if pending is not None:
            with pending.lock:  # two readers of this assignment: one computes, one waits
                if self._pending is pending:
                    pending.fill(self.labels, self._costs)
                    self._pending = None
        return read_only(self._costs)

    @property
    def costs_ready(self) -> bool:
        """Whether :attr:`costs` holds every value already (reading it costs nothing)."""
        return self._pending is None


@attrs.frozen(eq=False, getstate_setstate=False)
class PendingCosts:
    """The blocks (row slices) of an assignment whose costs were left to the engine, and
    what computing them needs: the distance's ``kmeansfw_paired_cost`` at the centroids
    the samples were assigned to.  It pickles (a Dask chunk keeping its assignment may be
    spilled or moved to another worker): without its lock, which a copy makes anew."""

    hook: Any
    data: FitData
    centroids: np.ndarray
    cache: dict
    blocks: frozenset
    #: Held while the costs are computed (:attr:`Assignment.costs`).
    lock: Any = attrs.field(factory=threading.Lock, init=False)

    def __getstate__(self) -> dict:
        return {f.name: getattr(self, f.name) for f in attrs.fields(type(self)) if f.name != "lock"}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "lock", threading.Lock())

    def fill(self, labels: np.ndarray, costs: np.ndarray) -> None:
        """Write the left blocks' costs into ``costs`` (tasks mapped as an assignment's)."""
        task = _PairedCostTask(
            self.hook, self.data, self.centroids, self.cache, self.blocks, labels, costs
        )
        fill_rows(self.data, task, costs)


def _key(rows: slice) -> tuple[int, int]:
    return rows.start, rows.stop


@attrs.frozen(eq=False)
class _PairedCostTask:
    """The chunk task of :meth:`PendingCosts.fill`: the costs of a task's rows, the left
    blocks' computed, the others as already known (no lock: it may be pickled)."""

    hook: Any
    data: FitData
    centroids: np.ndarray
    cache: dict
    blocks: frozenset
    labels: np.ndarray
    costs: np.ndarray

    def __call__(self, task: list[slice]) -> np.ndarray:
        out = self.costs[task_rows(task)].copy()
        start = task[0].start
        for rows in task:
            if _key(rows) in self.blocks:
                out[rows.start - start : rows.stop - start] = paired_cost(
                    self.hook, self.data.X[rows], self.centroids, self.labels[rows], rows,
                    self.data, self.cache,
                )
        return out


def paired_cost(
    hook: Any,
    X: Any,
    centroids: np.ndarray,
    labels: np.ndarray,
    rows: slice | None,
    data: FitData,
    cache: dict,
) -> np.ndarray:
    """Checked cost of each row of ``X`` to the centroid its label names (the distance's
    ``kmeansfw_paired_cost``, or its default)."""
    name = "kmeansfw_paired_cost"
    answer = contract.call(
        hook, name, X=X, centroids=centroids, labels=labels, rows=rows, data=data, cache=cache,
        hook=hook,
    )
    return contract.check_float_array(
        hook, name, answer, (X.shape[0],), data.dtype, nonnegative=True, what="costs"
    )


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
        costs=_costs_if_taken(hook, name, assignment),
        assignment=assignment,
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
    """The checked centroids after the empty-cluster strategy, (k, d), read-only.

    ``new_centroids`` (the update's, checked) are handed over read-only, so the strategy's
    answer needs no second check when it is ``new_centroids`` itself (nothing to change).
    """
    name = "kmeansfw_empty_clusters"
    new_centroids = read_only(new_centroids)
    answer = contract.call(
        hook,
        name,
        data=data,
        labels=assignment.labels,
        costs=_costs_if_taken(hook, name, assignment),
        assignment=assignment,
        old_centroids=old_centroids,
        new_centroids=new_centroids,
        cluster_weights=cluster_weights,
        rng=rng,
        hook=hook,
    )
    return checked_empty_answer(hook, answer, new_centroids)


def moved_by_empty(updated: Any, fixed: Any) -> bool:
    """Whether the empty-cluster strategy moved a centroid: its answer ``fixed`` differs
    from the update's ``updated`` (arrays, or tensors on one device).  The usual answer,
    the update's own centroids handed back (as the read-only view
    :func:`fix_empty_clusters` made of them), is told in constant time; only another
    array is compared value by value."""
    if fixed is updated:
        return False
    if isinstance(updated, np.ndarray) and isinstance(fixed, np.ndarray):
        if _same_elements(updated, fixed):
            return False
        return not np.array_equal(updated, fixed)
    return not bool((updated == fixed).all())  # tensors


def _same_elements(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` view the same memory the same way (one start, shape,
    strides and dtype), so hold the same values."""
    return (
        a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def end_iteration(hooks: Any, state: Any) -> None:
    """Tell the observers an iteration ended (``kmeansfw_iteration_end``, the state
    sealed).  An observer may set ``state.centroids`` to a new array, which the next
    iteration starts from: it is checked as the update's answer is (an ndarray of the
    centroids' shape and dtype, finite), else StrategyError naming the hook's observers.
    """
    centroids = state.centroids
    hooks.kmeansfw_iteration_end(state=state.seal())
    new = state.centroids
    if new is centroids:
        return
    array = type(new) is np.ndarray
    if array and new.shape == centroids.shape and new.dtype == centroids.dtype:
        if np.isfinite(new).all():
            state.centroids = read_only(new)
            return
        what = "an array holding NaN or infinity"
    elif isinstance(new, np.ndarray):
        what = f"an array of shape {new.shape} and dtype {new.dtype}"
    else:
        what = f"a {type(new).__name__}"
    caller = getattr(getattr(hooks, "kmeansfw_iteration_end", None), "caller", None)
    impls = caller.get_hookimpls() if isinstance(caller, pluggy.HookCaller) else []
    names = ", ".join(impl.plugin_name for impl in impls) or "an observer"
    raise StrategyError(
        f"{names} set state.centroids in kmeansfw_iteration_end to {what}: the centroids "
        f"must stay a finite {centroids.dtype} array of shape {centroids.shape}"
    )


def stop_after(hooks: Any, state: Any, relocated: bool) -> bool:
    """Whether the criteria stop the fit after this iteration (``kmeansfw_converged``,
    each answer checked); when the empty-cluster strategy moved a centroid, the stop is
    not strict whatever a criterion says: the iteration's labels are those of the
    centroids before the move, so the fit ends with one more assignment."""
    stop = contract.stopped(hooks, state=state.seal())
    if relocated:
        state.strict = False
    return stop


def checked_empty_answer(hook: Any, answer: Any, new_centroids: np.ndarray) -> np.ndarray:
    """The empty-cluster strategy's ``answer``, read-only: checked (shape, dtype and
    finiteness of ``new_centroids``) unless it is ``new_centroids`` itself, the update's
    checked answer handed over read-only (nothing to change)."""
    if answer is new_centroids:
        return answer
    return read_only(
        contract.check_float_array(
            hook,
            "kmeansfw_empty_clusters",
            answer,
            new_centroids.shape,
            new_centroids.dtype,
            what="centroids",
        )
    )


def _costs_if_taken(hook: Any, name: str, assignment: Assignment) -> np.ndarray | None:
    """The assignment's costs when a strategy of hook ``name`` declares ``costs`` (None
    otherwise: costs left to the engine stay uncomputed)."""
    takes = getattr(hook, "takes", None)  # a plain pluggy relay: always computed
    if assignment.costs_ready or takes is None or takes(name, "costs"):
        return assignment.costs
    return None


def prepare_centroids(hook: Any, data: FitData, centroids: np.ndarray) -> dict:
    """Run ``kmeansfw_prepare_centroids`` and return the per-centroid cache it filled.

    Raises
    ------
    ValueError
        Centroids that are not (k, n_features) with k >= 1: every assignment and
        distance goes through here, and the compiled kernels read each centroid for as
        many features as the data's rows have.
    """
    shape = np.shape(centroids)
    if len(shape) != 2 or shape[0] < 1 or shape[1] != data.n_features:
        raise ValueError(
            f"centroids of shape {shape} for data of {data.n_features} features: they "
            f"must be (n_clusters, {data.n_features}), with at least one"
        )
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
    previous: Assignment | None = None,
    with_costs: bool = True,
    sums_in_search: bool = False,
) -> Assignment:
    """Assign every sample to a centroid; with ``accumulate``, also run the update's map.

    ``previous``: the assignment of the same rows in the previous iteration of a run (its
    labels and the update's partials), which the map may start from
    (``kmeansfw_accumulate``'s ``previous_labels`` and ``previous_partial``).
    ``with_costs`` False: the caller does not expect to read the costs
    (``kmeansfw_assign``'s ``with_costs``), which are then computed only if read.
    ``sums_in_search`` (with ``accumulate``, for a fit whose hooks'
    ``sums_in_search()`` is true): offer the update's map to the assignment's search, a
    :class:`~kmeansfw.core.sums.SumsRequest` per block (``kmeansfw_assign``'s ``sums``).
    A task whose first block the search sums gets a :class:`SearchSums` partial, offered
    to the search at every block (the map sums a block the search leaves, from nothing
    before); a task whose first block it leaves is the map's, as without the offer.

    Each chunk task returns its rows' labels and costs and the update's partial; the
    driver writes them into place, so tasks can run under any executor.  Under worker
    threads (no executor) each task writes its own rows into the result arrays instead,
    in parallel: the rows of two tasks never overlap.  Blocks whose costs the strategy
    left to the engine are computed when :attr:`Assignment.costs` is first read.
    """
    n = data.n_samples
    cache = prepare_centroids(hook, data, centroids)
    accumulate = accumulate and hook.implemented("kmeansfw_accumulate")
    sums = accumulate and sums_in_search and not data.sparse  # sparse: the map sums
    before = _Previous.of(previous, data) if accumulate else None
    block = data.single_block
    if block is not None and is_small(data):  # what map_tasks would do, without its map
        labels, costs, partial = inline_task(
            data,
            lambda task: _assign_rows(
                hook, data, centroids, cache, task[0], accumulate, None, before, 0, with_costs,
                sums,
            ),
        )([block])
        left = [block] if costs is None else []
        if costs is None:
            costs = np.empty(n, dtype=data.dtype)
        return assembled_assignment(
            hook, data, centroids, cache, labels, costs, [partial], accumulate, left
        )
    labels = np.empty(n, dtype=np.intp)
    costs = np.empty(n, dtype=data.dtype)
    out = (labels, costs) if data.executor is None else None
    task = AssignTask(hook, data, centroids, cache, accumulate, out, before, with_costs, sums)
    partials, left = [], []
    for rows, (part_labels, part_costs, partial, part_left) in zip(
        data.tasks, map_tasks(data, task), strict=True
    ):
        if out is None:
            where = task_rows(rows)
            labels[where], costs[where] = part_labels, part_costs
        partials.append(partial)
        left.extend(part_left)
    return assembled_assignment(
        hook, data, centroids, cache, labels, costs, partials, accumulate, left
    )


def assembled_assignment(
    hook: Any,
    data: FitData,
    centroids: np.ndarray,
    cache: dict,
    labels: np.ndarray,
    costs: np.ndarray,
    partials: list,
    accumulate: bool,
    left: list[slice],
) -> Assignment:
    """The :class:`Assignment` of labels and costs already found: :func:`assign`'s answer,
    and the one the engine's built-in Lloyd step leaves, one call or many compiled
    iterations at a time (:class:`kmeansfw.engine.lloyd_step.LloydStep`).

    The arrays are kept as given (no copy); the costs of the rows of ``left`` are written
    into ``costs`` in place when :attr:`Assignment.costs` is first read.

    Parameters
    ----------
    hook : kmeansfw.engine.plugins.Hooks
        The fit's hooks (for the costs left to compute).
    data : FitData
        The data assigned.
    centroids : ndarray, shape (k, d)
        The centroids assigned to.
    cache : dict
        Their prepared form (``kmeansfw_prepare_centroids``'s cache).
    labels : ndarray of intp, shape (n,)
        Every row's label.
    costs : ndarray, shape (n,)
        Every row's cost, except the rows of ``left``.
    partials : list
        The update's partials (kept only with ``accumulate``).
    accumulate : bool
        Whether the update accumulated partials during the assignment.
    left : list of slice
        The blocks whose costs are left unset.

    Returns
    -------
    Assignment
    """
    pending = None
    if left:
        pending = PendingCosts(hook, data, centroids, cache, frozenset(map(_key, left)))
    return Assignment(labels, costs, partials if accumulate else None, pending)


@attrs.frozen(eq=False)
class AssignTask:
    """The chunk task of an assignment: ``(labels, costs, partial, left)`` of its rows
    (``left``: the blocks whose costs the strategy left to the engine, their costs
    unset); with ``out`` (the result arrays, in-process threads only),
    ``(None, None, partial, left)`` after writing its rows' labels and costs into
    them."""

    hook: Any
    data: FitData
    centroids: np.ndarray
    cache: dict
    accumulate: bool
    out: tuple[np.ndarray, np.ndarray] | None = None
    previous: _Previous | None = None
    with_costs: bool = True
    sums: bool = False

    def __call__(self, task: list[slice]) -> tuple[Any, Any, Any, list[slice]]:
        partial = None
        labels, costs, left = [], [], []
        for rows in task:
            block_labels, block_costs, partial = _assign_rows(
                self.hook,
                self.data,
                self.centroids,
                self.cache,
                rows,
                self.accumulate,
                partial,
                self.previous,
                task[0].start,
                self.with_costs,
                self.sums,
            )
            if block_costs is None:
                left.append(rows)
            if self.out is not None:
                self.out[0][rows] = block_labels
                if block_costs is not None:
                    self.out[1][rows] = block_costs
                continue
            labels.append(block_labels)
            if block_costs is None:
                block_costs = np.empty(rows.stop - rows.start, dtype=self.data.dtype)
            costs.append(block_costs)
        if self.out is not None:
            return None, None, partial, left
        if len(task) == 1:
            return labels[0], costs[0], partial, left
        return np.concatenate(labels), np.concatenate(costs), partial, left


def _assign_rows(
    hook: Any,
    data: FitData,
    centroids: np.ndarray,
    cache: dict,
    rows: slice,
    accumulate: bool,
    partial: Any,
    previous: _Previous | None = None,
    task_start: int = 0,
    with_costs: bool = True,
    sums: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """The checked labels and costs (None: left to the engine) of one block and, with
    ``accumulate``, the update's ``partial`` with the block folded in (``previous``:
    the previous iteration's labels and partials, by the first row of each task;
    ``sums``: the map offered to the search first, see :func:`assign`)."""
    X_rows = data.X[rows]
    name = "kmeansfw_assign"
    request = None
    if sums and (partial is None or isinstance(partial, SearchSums)):
        k, d = centroids.shape  # the (sums, weights) of the map, which a search may add to
        offered = partial or SearchSums((np.zeros((k, d)), np.zeros(k)))
        request = SumsRequest(read_only(data.sample_weight[rows]), offered[0], offered[1])
    answer = contract.call(
        hook,
        name,
        X=X_rows,
        centroids=centroids,
        rows=rows,
        data=data,
        cache=cache,
        hook=hook,
        with_costs=with_costs,
        sums=request,
    )
    block_labels, block_costs = contract.check_pair(hook, name, answer, "(labels, costs)")
    b = rows.stop - rows.start
    block_labels = contract.check_labels(hook, name, block_labels, b, centroids.shape[0])
    block_labels = block_labels.astype(np.intp, copy=False)
    if block_costs is not None:
        block_costs = contract.check_float_array(
            hook, name, block_costs, (b,), data.dtype, nonnegative=True, what="costs"
        )
    if not accumulate:
        return block_labels, block_costs, None
    if request is not None and request.added:  # the search added the rows
        return block_labels, block_costs, offered
    # while the block is still in cache
    before = None if previous is None else previous.partials.get(task_start)
    searched = isinstance(partial, SearchSums)
    if searched:
        before = None  # the task's sums so far are the search's: the map adds to them
    partial = contract.call(
        hook,
        "kmeansfw_accumulate",
        X=X_rows,
        labels=block_labels,
        sample_weight=data.sample_weight[rows],
        n_clusters=centroids.shape[0],
        partial=partial,
        data=data,
        rows=rows,
        previous_labels=None if before is None else previous.labels[rows],  # type: ignore[union-attr]
        previous_partial=before,
    )
    if searched:  # still the search's sums, whatever the map answered
        partial = SearchSums(partial)
    return block_labels, block_costs, partial


class SearchSums(tuple):
    """A task's ``(sums, weights)`` for the update's map, added by the assignment's
    search (:class:`~kmeansfw.core.sums.SumsRequest`): the map's own totals bit for bit,
    but a map that starts from the previous iteration's partial must not start a later
    block of this task from it (it would drop the search's blocks), so the task's later
    blocks are summed onto these."""

    __slots__ = ()


@attrs.frozen(eq=False)
class _Previous:
    """The previous iteration's labels and the update's partials by each task's first
    row: what ``kmeansfw_accumulate`` may start a task from."""

    labels: np.ndarray
    partials: dict[int, Any]

    @classmethod
    def of(cls, previous: Assignment | None, data: FitData) -> _Previous | None:
        """From the previous assignment of the same rows (None when it has no partials
        of this task plan)."""
        if previous is None or previous.partials is None:
            return None
        if len(previous.partials) != len(data.tasks) or previous.labels.shape[0] != data.n_samples:
            return None
        starts = [task[0].start for task in data.tasks]
        return cls(previous.labels, dict(zip(starts, previous.partials, strict=True)))


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

    Only for results the caller asked to hold in memory; fitting never builds it.  Its
    blocks are planned for (rows, k) answers within the data's memory budget
    (:meth:`FitData.replan`): a fit's own plan may be one block of the whole data, whose
    compiled kernels keep only vectors of its rows.
    """
    data = data.replan(centroids.shape[0])
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
