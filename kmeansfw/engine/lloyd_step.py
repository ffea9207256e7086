"""The built-in Lloyd iterations on data that runs inline, without a round of hooks each.

On data that fits in cache a Lloyd iteration's own work is a few microseconds to a
hundred (2000 x 2, k=3: 16 us for the centroid preparation, the search with the mean's
sums in its pass, the mean, the checks and the shift), and the round of hook calls around
it (each hook's dispatch and answer checks, the update's map offered per block, the
partials looked at for the next iteration) costs 33-47 us more: twice that work at
2000 x 2, 1.3 times it at 2000 x 8, k=8, two thirds of it at 2000 x 64, k=8.  When a fit's
strategies are the built-in ones that answer those hooks and nothing else takes part in
them, the engine makes the calls those hooks would make, in the same order with the same
arguments (:class:`LloydStep`): the distance's centroid preparation, its nearest search
with the mean's sums offered (the call ``nearest`` makes, and ``auto`` on data it keeps
no bounds for), the mean's update.  The same kernels run on the same arrays, so every
label, centroid, weight and criterion is the same, bit for bit, as through the hooks.

What a step of one call keeps (:meth:`LloydStep.iterate`): the checks of what reaches
the fit's state (labels in range, finite centroids and weights: a float32 overflow still
fails loudly), the assignment's record of costs left for later (a final or strict read
computes them as before), the ``iteration_end`` and criterion hooks, and the
empty-cluster hook for any iteration that leaves a cluster empty (the strategy, which may
draw from the fit's random stream, runs as always); an exception in a strategy fails as
through the hooks (a :class:`StrategyError` naming it).  What it skips: the dispatch of
the set-up, assignment, search and update hooks, and the engine's bookkeeping for a map
the fit does not run.

With numba, and when no strategy implements ``kmeansfw_iteration_end`` (observers never
take the step), the step goes further (:meth:`LloydStep.run`): many iterations in one
compiled call (:func:`kmeansfw.kernels.lloyd.lloyd_iterations`), the same kernels in the
same order, ``tol``'s test included (its hook is not called: its limit,
:meth:`kmeansfw.strategies.convergence.Tol.shift_limit`, is the same), the checks of the
mean's answer made in the kernel, and Python only between calls (each call bounded by
its work, :data:`kmeansfw.kernels.lloyd.CALL_WORK`).  The state after a call is the one
the iterations would leave; an iteration the call cannot finish as the mean would (a
cluster left empty, a weight or centroid not finite) goes through the step's own
iteration, whose hooks decide it or fail loudly, and the calls go on after it.  At 2000
rows that leaves the kernels' own time: 5 us per iteration at 2000 x 2, k=3 (35 us with
one call per iteration, scikit-learn 46 us in the same run), 12 us at 2000 x 8, k=8
(46 us, 41 us).

:func:`lloyd_step` decides once per run whether a run takes it (see there); every other
fit (another strategy or a subclass in any of the slots, an observer, a wrapper, a
mini-batch walk, costs read every iteration, sparse data, data in more than one block,
handed to worker threads, or mid-size data mapped from a large file) runs the hooks,
unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from kmeansfw.core import contract
from kmeansfw.core.data import FitData, kernels_compiled, read_only, runs_inline
from kmeansfw.core.paging import mapped_rows
from kmeansfw.core.sums import SumsRequest
from kmeansfw.engine import steps
from kmeansfw.engine.executors import is_small, kernel_threads
from kmeansfw.engine.plugins import Hooks

if TYPE_CHECKING:  # the loop imports this module
    from kmeansfw.engine.loop import FitState, Plan

#: The hooks of a Lloyd iteration, by the slot whose strategy must answer each alone for
#: a run to take a :class:`LloydStep`: it makes the calls the first four would reach
#: (the distance's search as ``nearest`` calls it), and calls the empty-cluster hook when
#: a cluster is empty and the criterion hook every iteration.
STEP_HOOKS = {
    "kmeansfw_prepare_centroids": "distance",
    "kmeansfw_assign": "assignment",
    "kmeansfw_nearest": "distance",
    "kmeansfw_update": "update",
    "kmeansfw_empty_clusters": "empty",
    "kmeansfw_converged": "convergence",
}


@attrs.frozen(eq=False)
class LloydStep:
    """One run's Lloyd iterations through the built-in strategies' methods.

    Attributes
    ----------
    distance, update : object
        The fit's ``euclidean`` distance and ``mean`` update, whose methods it calls (the
        empty-cluster strategy answers through its hook, and so does the criterion in
        an iteration of one call).
    rows : slice
        The data's one block.
    """

    distance: Any
    update: Any
    rows: slice
    #: The fit's ``tol`` (its limit on the centroid shift, for :meth:`run`).
    criterion: Any = None
    #: Whether :meth:`run` makes its iterations in compiled calls
    #: (:func:`kmeansfw.kernels.lloyd.lloyd_iterations`), else one :meth:`iterate` each.
    compiled: bool = False

    def run(self, hooks: Hooks, state: FitState, data: FitData, last: int) -> bool:
        """The run's iterations after ``state.iteration``, up to iteration ``last``.

        Compiled (:attr:`compiled`): as many iterations as the compiled call makes, each
        the one :meth:`iterate` would make, then the state :meth:`iterate` would leave
        after the last of them; an iteration the call leaves (a cluster left empty, a
        value not finite) goes through :meth:`iterate`, whose hooks decide it (or raise),
        and the call goes on after it (after two calls in a row that kept no iteration,
        the rest of the run makes one :meth:`iterate` per iteration: a cluster left empty
        every iteration would otherwise cost each iteration's search twice).  Otherwise
        one :meth:`iterate` per iteration.

        Parameters
        ----------
        hooks : Hooks
            The run's hooks.
        state : FitState
            The run's state.
        data : FitData
            The run's training data.
        last : int
            The last iteration to make (``max_iter``).

        Returns
        -------
        bool
            Whether the criterion said stop (False: ``last`` was reached).
        """
        compiled, idle = self.compiled, 0
        while state.iteration < last:
            if compiled and state.centroids.dtype == data.dtype:
                reached = state.iteration
                said = self._compiled(hooks, state, data, last - state.iteration)
                if said is not None:
                    if said:
                        return True
                    continue  # another call, up to ``last``
                # two calls in a row that kept nothing (a cluster empty every iteration,
                # say): one call per iteration from now on, not a search thrown away each
                idle = idle + 1 if state.iteration == reached else 0
                compiled = idle < 2
            if self.iterate(hooks, state, data, state.iteration + 1):
                return True
        return False

    def _compiled(self, hooks: Hooks, state: FitState, data: FitData, most: int) -> bool | None:
        # iterations in one compiled call: whether the criterion said stop, or None when
        # the call left the next iteration to iterate()
        from kmeansfw.kernels.euclidean import prefetch_data
        from kmeansfw.kernels.lloyd import LEFT, RAN, iterations_per_call, lloyd_iterations

        n, rows = data.n_samples, self.rows
        most = min(most, iterations_per_call(n, data.n_features, state.centroids.shape[0]))
        labels = state.labels
        known = labels is not None and labels.shape == (n,)  # as state.labels_unchanged
        if known:  # one compiled signature: C-contiguous intp (read-only: lloyd_iterations)
            labels = np.ascontiguousarray(labels, dtype=np.intp)
        made = lloyd_iterations(
            data.X[rows],
            self.distance.origin(data),
            data.sample_weight[rows],
            state.centroids,
            labels if known else None,
            self.criterion.shift_limit(state),
            most,
            kernel_threads(data),
            prefetch_data(getattr(data.X, "nbytes", 0)),
        )
        if made is None:  # no compiled kernels: iterate() makes each iteration
            return None
        if made.done:
            self._keep(hooks, state, data, made)
        if made.stop == LEFT:
            return None
        return made.stop != RAN

    def _keep(self, hooks: Hooks, state: FitState, data: FitData, made: Any) -> None:
        # the state iterate() leaves after the compiled call's last iteration: its
        # assignment (costs left for later, computed on demand from the centroids it
        # assigned to, prepared here as the distance prepares them) and its criterion's
        # verdict (strict when the labels did not change)
        from kmeansfw.kernels.lloyd import UNCHANGED

        if state.assignment is not None:
            state.assignment.partials = None
        assigned = read_only(made.previous_centroids)
        cache: dict = {}
        contract.call_as(
            hooks,
            "kmeansfw_prepare_centroids",
            self.distance.kmeansfw_prepare_centroids,
            centroids=assigned,
            data=data,
            cache=cache,
        )
        costs = np.empty(data.n_samples, dtype=data.dtype)  # filled when first read
        assignment = steps.assembled_assignment(
            hooks, data, assigned, cache, made.labels, costs, [], False, [self.rows]
        )
        state.previous_labels = made.previous_labels if made.done > 1 else state.labels
        state.data = data
        state.labels = made.labels
        state.previous_centroids, state.centroids = assigned, read_only(made.centroids)
        state.costs = None
        state.assignment, state.cluster_weights = assignment, made.weights
        state.iteration += made.done
        state.strict = made.stop == UNCHANGED
        state.seal()  # as criteria and observers see it

    def iterate(self, hooks: Hooks, state: FitState, data: FitData, iteration: int) -> bool:
        """One iteration on the run's data, as :func:`kmeansfw.engine.loop.iterate` with
        the run's plan (the mean's sums in the search, costs left).

        Parameters
        ----------
        hooks : Hooks
            The run's hooks (for the checks' messages and the hooks it still calls).
        state : FitState
            The run's state, updated as the hooks' iteration updates it.
        data : FitData
            The run's training data.
        iteration : int
            The iteration's number (from 1).

        Returns
        -------
        bool
            Whether the criterion said stop.
        """
        centroids, rng = state.centroids, state.rng
        previous = state.assignment
        k = centroids.shape[0]
        assignment = self._assign(hooks, data, centroids)
        if previous is not None:
            previous.partials = None  # as the hooks' iteration frees them
        new, weights = self._update(hooks, data, assignment, centroids, rng)
        relocated = False
        if np.count_nonzero(weights) == k:  # no empty cluster: the strategy changes nothing
            new = read_only(new)
        else:
            updated = new
            new = steps.fix_empty_clusters(hooks, data, assignment, centroids, new, weights, rng)
            relocated = steps.moved_by_empty(updated, new)
        state.previous_labels = state.labels  # the same rows as the previous iteration
        state.data = data
        state.labels = assignment.labels
        state.previous_centroids, state.centroids = centroids, new
        state.costs = None
        assignment.partials = None  # the search summed the task: nothing kept
        state.assignment, state.cluster_weights = assignment, weights
        state.iteration = iteration
        state.strict = False
        steps.end_iteration(hooks, state)
        return steps.stop_after(hooks, state, relocated)

    def _assign(self, hooks: Hooks, data: FitData, centroids: np.ndarray) -> steps.Assignment:
        # steps.assign's inline path with the mean's sums offered: the distance's search
        # called as ``nearest`` calls it (kmeansfw.strategies.assignment.Nearest), its
        # answer checked as the engine checks the assignment's
        cache: dict = {}
        view = read_only(centroids)
        contract.call_as(
            hooks,
            "kmeansfw_prepare_centroids",
            self.distance.kmeansfw_prepare_centroids,
            centroids=view,
            data=data,
            cache=cache,
        )
        rows, (k, d) = self.rows, centroids.shape
        partial = steps.SearchSums((np.zeros((k, d)), np.zeros(k)))
        request = SumsRequest(read_only(data.sample_weight[rows]), partial[0], partial[1])
        labels = contract.call_as(
            hooks,
            "kmeansfw_nearest",
            self.distance.kmeansfw_nearest,
            X=data.X[rows],
            centroids=centroids,
            groups=None,
            n_groups=0,
            rows=rows,
            data=data,
            cache=cache,
            hook=hooks,
            with_costs=False,  # the labels only: the costs are left, computed if read
            sums=request,
        )[0]
        if not request.added:  # never for dense rows; said, not assumed
            raise contract.fail(hooks, "kmeansfw_nearest", "left the mean's sums of dense rows")
        n = data.n_samples  # the one block's rows: all of them
        labels = contract.check_labels(hooks, "kmeansfw_assign", labels, n, k)
        labels = labels.astype(np.intp, copy=False)
        costs = np.empty(n, dtype=data.dtype)  # filled when first read
        return steps.assembled_assignment(
            hooks, data, centroids, cache, labels, costs, [partial], True, [rows]
        )

    def _update(
        self,
        hooks: Hooks,
        data: FitData,
        assignment: steps.Assignment,
        centroids: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        # steps.update's call and checks
        name = "kmeansfw_update"
        answer = contract.call_as(
            hooks,
            name,
            self.update.kmeansfw_update,
            data=data,
            labels=assignment.labels,
            partials=assignment.partials,
            centroids=read_only(centroids),
            n_clusters=centroids.shape[0],
            rng=rng,
            online=None,
        )
        new, weights = contract.check_pair(hooks, name, answer, "(centroids, cluster weights)")
        new = contract.check_float_array(
            hooks, name, new, centroids.shape, data.dtype, what="centroids"
        )
        weights = contract.check_float_array(
            hooks, name, weights, (centroids.shape[0],), np.dtype(np.float64), nonnegative=True,
            what="cluster weights",
        )
        return new, weights


def declares_step(strategy: Any) -> bool:
    """Whether ``strategy``'s own class (not a base class) declares ``_lloyd_step``.

    The built-in ``euclidean``, ``nearest``, ``auto``, ``mean``, ``relocate-farthest`` and
    ``tol`` do, so a subclass of one of them, which may answer its hooks otherwise, runs
    the hooks.  A private declaration: the step calls these strategies' methods with the
    arguments it knows they take, and relies on what they answer.

    Parameters
    ----------
    strategy : object
        A strategy of the fit.

    Returns
    -------
    bool
    """
    return vars(type(strategy)).get("_lloyd_step") is True


def lloyd_step(hooks: Any, data: FitData, n_clusters: int, plan: Plan) -> LloydStep | None:
    """The :class:`LloydStep` a Lloyd run of ``hooks`` on ``data`` takes, or None (the
    hooks).  Asked only for a plain Lloyd run (the caller's walk over the data repeats
    every row, with no online update).

    Taken when: the run's plan offers the mean's sums to the search and leaves the costs
    (:class:`~kmeansfw.engine.loop.Plan`); the fit's distance, assignment, update and
    empty-cluster strategies and its one convergence criterion are the built-in
    ``euclidean``, ``nearest`` or ``auto`` (``auto`` when it keeps no bounds on data of
    this shape), ``mean``, ``relocate-farthest`` and ``tol``, of those very classes
    (:func:`declares_step`), none with a hook replaced on the object; each hook of
    :data:`STEP_HOOKS` is answered by its slot's strategy alone; no observer or wrapper
    takes part; and the data is dense, in one block that runs inline
    (:func:`kmeansfw.engine.executors.is_small`), and either small by its size alone
    (fewer than ``core.data.SINGLE_BLOCK_ELEMENTS`` values, 2^18: 2000 x 131, 20000 x 13)
    or not mapped from a file large enough that the hooks hand its pages back after each
    pass (:func:`kmeansfw.core.paging.mapped_rows`).  Its iterations are compiled
    (:attr:`LloydStep.compiled`) with numba, on C-contiguous data, when no strategy
    implements ``kmeansfw_iteration_end``.

    Parameters
    ----------
    hooks : Hooks
        The fit's hooks (a plain pluggy relay never takes the step).
    data : FitData
        The run's (prepared) training data.
    n_clusters : int
        k.
    plan : Plan
        The run's plan.

    Returns
    -------
    LloydStep or None
    """
    if type(hooks) is not Hooks or hooks.observed_or_wrapped or not plan.sums or plan.with_costs:
        return None
    rows = data.single_block
    if rows is None or data.sparse or not is_small(data):
        return None
    if not runs_inline(data.n_samples, data.n_features) and mapped_rows(data.X) is not None:
        return None  # mid-size data mapped from a file: the hooks hand its pages back
    owners = {slot: hooks.strategy(slot) for slot in set(STEP_HOOKS.values())}
    if not all(declares_step(owner) for owner in owners.values()):
        return None
    bounded_by = getattr(owners["assignment"], "bounded_by", None)  # auto's choice
    if bounded_by is not None and bounded_by(data.n_samples, data.n_features, n_clusters):
        return None
    if not all(hooks.answered_alone(hook, owners[slot]) for hook, slot in STEP_HOOKS.items()):
        return None
    compiled = (
        not hooks.implemented("kmeansfw_iteration_end")
        and isinstance(data.X, np.ndarray)
        and data.X.flags.c_contiguous
        and data.sample_weight.dtype == data.dtype
        and kernels_compiled()
    )
    return LloydStep(
        owners["distance"], owners["update"], rows, owners["convergence"], compiled
    )

