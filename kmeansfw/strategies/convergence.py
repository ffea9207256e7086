"""Convergence strategies: ``tol`` (scikit-learn's) and ``unchanged`` (the article's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import numpy as np

from kmeansfw.core.contract import stop_answer
from kmeansfw.core.data import FitData
from kmeansfw.core.distance import describe
from kmeansfw.core.markers import hookimpl
from kmeansfw.core.paging import column_sums
from kmeansfw.engine.executors import map_tasks
from kmeansfw.kernels import add_centered_column_squares
from kmeansfw.strategies.validators import finite_non_negative

if TYPE_CHECKING:  # annotations only: the loop imports this module
    from kmeansfw.engine.loop import FitState

_MEAN_VARIANCE = "tol.mean_variance"


def mean_feature_variance(data: FitData) -> float:
    """Mean over features of the (unweighted) variance of ``data.X``, in bounded memory."""
    X = data.X
    if data.sparse:
        from sklearn.utils.sparsefuncs import mean_variance_axis  # deferred: slow import

        return float(np.mean(mean_variance_axis(X, axis=0)[1]))
    mean = column_sums(X, np.float64) / data.n_samples

    def run_task(task: list[slice]) -> np.ndarray:
        total = np.zeros(X.shape[1])
        for rows in task:  # block by block, no temporary
            add_centered_column_squares(X[rows], mean, total)
        return total

    parts = map_tasks(data, run_task)
    squares = parts[0]
    for part in parts[1:]:  # in row order, whatever the number of threads
        squares = squares + part
    return float(np.mean(squares / data.n_samples))


def labels_still_match(state: FitState) -> bool:
    """Whether the iteration's labels are those of its new centroids, so the run may end
    without a final assignment (``state.strict``): when the update left the centroids
    as they were.  Unchanged labels alone do not say so: a medoid swap (``pam``, a
    sampled ``medoid``) moves a centroid without changing a label, and the labels, the
    inertia and ``predict`` then disagreed with the centroids returned.  A mean of
    unchanged labels is the same mean, bit for bit, so Lloyd's fits keep the shortcut.

    Parameters
    ----------
    state : FitState

    Returns
    -------
    bool
    """
    return np.array_equal(state.centroids, state.previous_centroids)


@attrs.frozen
class Tol:
    """Stop when labels no longer change, or when the squared centroid shift is small.

    Exactly scikit-learn's rule: strict convergence when an iteration leaves every label
    unchanged; otherwise stop once ``sum ||c_new - c_old||^2 <= tol * mean(var(X))``,
    after which one final assignment makes the labels match the final centroids.

    Parameters
    ----------
    tol : float or None
        Relative tolerance; None takes the estimator's ``tol``.
    """

    name = "tol"
    accepts_sparse = True
    #: Answers the engine's one-call Lloyd iteration (kmeansfw.engine.lloyd_step).
    _lloyd_step = True
    tol: float | None = attrs.field(default=None)

    @tol.validator
    def _check_tol(self, attribute: attrs.Attribute, value: float | None) -> None:
        if value is not None:
            finite_non_negative(self, attribute, value)

    @hookimpl
    def kmeansfw_converged(self, state: FitState) -> bool:
        if state.labels_unchanged:
            state.strict = labels_still_match(state)
            return True
        return state.center_shift <= self.shift_limit(state)

    def shift_limit(self, state: FitState) -> float:
        """The largest squared centroid shift that stops the fit: ``tol`` times the
        training data's mean feature variance (0 for ``tol=0``: the centroids must not
        move at all).

        Parameters
        ----------
        state : FitState
            The run's state (its ``tol`` when this criterion has none; its training
            data, whose mean variance is computed once, on first use).

        Returns
        -------
        float
        """
        tol = state.tol if self.tol is None else self.tol
        if tol == 0:
            return 0.0
        cache = state.train.cache  # the training data's, also in mini-batch mode
        if _MEAN_VARIANCE not in cache:  # once per data set, on first use (not on predict)
            cache[_MEAN_VARIANCE] = mean_feature_variance(state.train)
        return tol * cache[_MEAN_VARIANCE]


@attrs.frozen
class Unchanged:
    """Stop when the centroids or the labels no longer change (the article's rule)."""

    name = "unchanged"
    accepts_sparse = True

    @hookimpl
    def kmeansfw_converged(self, state: FitState) -> bool:
        still = labels_still_match(state)  # the centroids unchanged
        if state.labels_unchanged or still:
            state.strict = still
            return True
        return False


@attrs.frozen
class ObjectiveChange:
    """Stop when the objective's relative decrease falls to ``rtol`` or below.

    Parameters
    ----------
    rtol : float, default=1e-4
        ``|previous - current| <= rtol * |previous|`` stops the fit.
    """

    name = "objective"
    accepts_sparse = True
    reads_costs = True  # every iteration's objective
    rtol: float = attrs.field(default=1e-4, validator=finite_non_negative)

    @hookimpl
    def kmeansfw_converged(self, state: FitState) -> bool:
        current = state.objective
        previous = state.scratch.get("objective.previous")
        state.scratch["objective.previous"] = current
        if previous is None:
            return False
        return abs(previous - current) <= self.rtol * abs(previous)


@attrs.frozen
class TimeBudget:
    """Stop once a run has used ``seconds`` of wall-clock time.

    Parameters
    ----------
    seconds : float
    """

    name = "time-budget"
    accepts_sparse = True
    seconds: float = attrs.field(default=60.0, validator=finite_non_negative)

    @hookimpl
    def kmeansfw_converged(self, state: FitState) -> bool:
        return state.seconds >= self.seconds


def _label(obj: object) -> str:
    """How an error names a criterion or a function: its name, else its type's."""
    name = getattr(obj, "name", None) or getattr(obj, "__qualname__", None)
    return repr(name if isinstance(name, str) else type(obj).__name__)


def _criteria(value: object) -> tuple:
    from kmeansfw.core.catalog import CATALOG

    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"criteria must be a non-empty list of criteria, got {value!r}")
    return tuple(CATALOG.create("convergence", item)[1] for item in value)


@attrs.frozen
class AnyOf:
    """Stop when any of ``criteria`` says stop (each is asked every iteration).

    Parameters
    ----------
    criteria : list of names, tables or strategy objects
    """

    name = "any"
    accepts_sparse = True
    combine = staticmethod(any)
    criteria: tuple = attrs.field(converter=_criteria)

    @property
    def reads_costs(self) -> bool:
        """Whether one of the criteria reads every iteration's costs."""
        return any(describe(c).reads_costs for c in self.criteria)

    @hookimpl
    def kmeansfw_converged(self, state: FitState) -> bool:
        answers = [
            stop_answer(c.kmeansfw_converged(state=state), f"{_label(c)} in {self.name!r}")
            for c in self.criteria
        ]
        return self.combine(answers)


@attrs.frozen
class AllOf(AnyOf):
    """Stop only when all of ``criteria`` say stop in the same iteration.

    Parameters
    ----------
    criteria : list of names, tables or strategy objects
    """

    name = "all"
    combine = staticmethod(all)


@attrs.frozen(eq=False)
class Callback:
    """Stop when ``func(state)`` returns True: early stopping from user code.

    Parameters
    ----------
    func : callable
        Called after every iteration with the :class:`~kmeansfw.engine.loop.FitState`.
    """

    name = "callback"
    accepts_sparse = True
    func: object = attrs.field(validator=attrs.validators.is_callable())

    @hookimpl
    def kmeansfw_converged(self, state: FitState) -> bool:
        return stop_answer(self.func(state), f"the callback {_label(self.func)}")
