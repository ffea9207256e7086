"""Costs an assignment strategy leaves to the engine (``kmeansfw_assign`` answering
``(labels, None)``) are computed only when something reads them, and equal the costs the
strategy would have returned."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw import KMeans
from kmeansfw.engine.executors import PickleShuffleExecutor
from kmeansfw.strategies.assignment import Nearest
from tests.test_bounded_assignment import _spy_on_auto
from tests.test_hooks import CachedManhattan


@pytest.fixture(scope="module")
def X():
    X, _ = make_blobs(6000, n_features=5, centers=20, cluster_std=3.0, random_state=2)
    return X


class LeavesCosts:
    """``nearest``'s labels, every block's costs left to the engine."""

    @kmeansfw.hookimpl
    def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, sums):
        labels, _ = Nearest().kmeansfw_assign(
            X=X, centroids=centroids, rows=rows, data=data, cache=cache, hook=hook, with_costs=True,
            sums=sums,  # the mean's sums in the search, as plain nearest has them
        )
        return labels, None


class ReadsCosts:
    """An observer that reads the costs and the objective of every iteration."""

    def __init__(self, X, cost=lambda diff: (diff**2).sum(axis=1)):
        self.X, self.cost, self.worst, self.reads = X, cost, 0.0, 0

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        expected = self.cost(self.X - state.previous_centroids[state.labels])
        costs = state.costs
        assert costs.shape == expected.shape and costs.dtype == self.X.dtype
        scale = float(expected.max())
        self.worst = max(self.worst, float(np.abs(costs - expected).max()) / scale)
        assert state.objective == pytest.approx(float(expected.sum()), rel=1e-9)
        self.reads += 1


@pytest.mark.parametrize("budget", [64.0, 0.01])  # one block; many blocks on two threads
@pytest.mark.parametrize("executor", [None, "pickle"])
def test_left_costs_are_the_costs_of_the_labels(X, budget, executor):
    params = dict(init="random", n_init=2, random_state=3, tol=0, max_iter=15)
    params.update(memory_budget_mb=budget)
    if executor:
        params["executor"] = PickleShuffleExecutor(seed=2)
    reads = ReadsCosts(X)
    left = KMeans(20, assignment=LeavesCosts(), observers=[reads], **params).fit(X)
    plain = KMeans(20, assignment="nearest", **params).fit(X)
    assert reads.reads == 30 and reads.worst < 1e-12
    np.testing.assert_array_equal(left.labels_, plain.labels_)
    np.testing.assert_array_equal(left.cluster_centers_, plain.cluster_centers_)
    assert left.inertia_ == pytest.approx(plain.inertia_, rel=1e-12)
    assert left.score(X) == pytest.approx(plain.score(X), rel=1e-12)


def test_bounded_assignment_skips_the_cost_pass_nobody_reads(X):
    runs, blocks = {}, []

    class Blocks:
        @kmeansfw.hookimpl
        def kmeansfw_fit_start(self, state):
            blocks.append(sum(len(task) for task in state.data.tasks))

    manhattan = ReadsCosts(X, lambda diff: np.abs(diff).sum(axis=1))
    for label, observers in (("quiet", [Blocks()]), ("read", [manhattan])):
        distance = CachedManhattan()
        km = KMeans(
            20,
            distance=distance,
            assignment="hamerly",
            init="random",
            n_init=1,
            random_state=0,
            tol=0,
            max_iter=30,
            observers=observers,
            memory_budget_mb=0.01,
        ).fit(X)
        runs[label] = (km, distance.calls.get("paired", 0), observers)
    (quiet, quiet_calls, _), (read, read_calls, _) = runs["quiet"], runs["read"]
    assert quiet.n_iter_ == read.n_iter_ == 30 and manhattan.reads == 30
    assert manhattan.worst < 1e-12 and blocks[0] > 10
    # quiet: only the final assignment's objective reads costs the bounds left (one pass
    # at most); read: every iteration's blocks whose rows the bounds settled
    assert 0 < quiet_calls <= blocks[0] and 5 * quiet_calls < read_calls
    np.testing.assert_array_equal(quiet.labels_, read.labels_)
    assert quiet.inertia_ == read.inertia_
    expected = np.abs(X - quiet.cluster_centers_[quiet.labels_]).sum()
    assert quiet.inertia_ == pytest.approx(expected, rel=1e-9)


def test_a_strategy_that_declares_costs_gets_them(X):
    seen = []

    class Watch:  # a wrapper around the update that declares costs
        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_update(self, labels, costs, centroids, data):
            expected = ((data.X - centroids[labels]) ** 2).sum(axis=1)
            seen.append(float(np.abs(costs - expected).max() / expected.max()))
            return (yield)

    km = KMeans(
        20, assignment="hamerly", init="random", n_init=1, random_state=1, tol=0, max_iter=12,
        observers=[Watch()], memory_budget_mb=0.01,
    ).fit(X)
    plain = KMeans(
        20, assignment="hamerly", init="random", n_init=1, random_state=1, tol=0, max_iter=12,
        memory_budget_mb=0.01,
    ).fit(X)
    assert len(seen) == 12 and max(seen) < 1e-12
    np.testing.assert_array_equal(km.cluster_centers_, plain.cluster_centers_)


@pytest.mark.parametrize("empty", ["relocate-farthest", "split-largest"])
def test_empty_cluster_strategies_read_left_costs_when_a_cluster_empties(X, empty):
    init = np.vstack([X[:19], [[1e3] * X.shape[1]]])  # the last centroid wins no sample
    runs = {
        name: KMeans(
            20, init=init, assignment=assignment, empty=empty, tol=0, max_iter=5, random_state=0
        ).fit(X)
        for name, assignment in (("left", LeavesCosts()), ("nearest", "nearest"))
    }
    left, plain = runs["left"], runs["nearest"]
    assert np.bincount(plain.labels_, minlength=20).min() > 0  # the empty one was dealt with
    np.testing.assert_array_equal(left.labels_, plain.labels_)
    np.testing.assert_array_equal(left.cluster_centers_, plain.cluster_centers_)


def test_costs_left_by_a_strategy_are_checked_by_name(X):
    class BadDistance(CachedManhattan):
        @kmeansfw.hookimpl
        def kmeansfw_paired_cost(self, X, labels, cache):
            return -np.ones(X.shape[0])

    km = KMeans(5, distance=BadDistance(), assignment=LeavesCosts(), random_state=0)
    with pytest.raises(kmeansfw.StrategyError, match="kmeansfw_paired_cost"):
        km.fit(X)


class SpyNearest:
    """``nearest``, recording the ``with_costs`` of every block and whether it answered
    costs."""

    def __init__(self):
        self.asked = []

    @kmeansfw.hookimpl
    def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, with_costs):
        labels, costs = Nearest().kmeansfw_assign(
            X=X, centroids=centroids, rows=rows, data=data, cache=cache, hook=hook,
            with_costs=with_costs,
        )
        self.asked.append((with_costs, costs is not None))
        return labels, costs


@pytest.mark.parametrize("budget", [64.0, 0.01])  # one block; many blocks on two threads
def test_lloyd_iterations_and_predict_leave_nearest_costs_unless_read(X, budget):
    params = dict(init="random", n_init=1, random_state=4, tol=0, max_iter=12)
    params.update(memory_budget_mb=budget)
    spy = SpyNearest()
    quiet = KMeans(20, assignment=spy, **params).fit(X)
    # every iteration asks for no costs and euclidean's search answers none; the final
    # assignment, whose objective is read, asks for them (the same blocks each pass)
    assert quiet.n_iter_ == 12 and len(spy.asked) % 13 == 0
    blocks = len(spy.asked) // 13
    assert blocks > (5 if budget < 1 else 0)
    assert spy.asked == [(False, False)] * 12 * blocks + [(True, True)] * blocks
    spy.asked.clear()
    labels = quiet.predict(X)
    assert spy.asked and all(asked == (False, False) for asked in spy.asked)
    np.testing.assert_array_equal(labels, quiet.labels_)
    # an observer reading every iteration's costs without declaring it gets them computed
    # on demand; one declaring reads_costs makes the iterations ask for them: the same
    # costs bit for bit, and the same fit
    runs = {}
    for declared in (False, True):
        spy, seen = SpyNearest(), RecordsCosts(declared)
        km = KMeans(20, assignment=spy, observers=[seen], **params).fit(X)
        asked = {a for a in spy.asked[: 12 * blocks]}
        assert asked == ({(True, True)} if declared else {(False, False)})
        assert len(seen.costs) == 12
        runs[declared] = km, seen.costs
    for left, asked in zip(runs[False][1], runs[True][1], strict=True):
        np.testing.assert_array_equal(left, asked)
    for km, _ in runs.values():
        np.testing.assert_array_equal(km.cluster_centers_, quiet.cluster_centers_)
        assert km.inertia_ == quiet.inertia_
    expected = ((X - quiet.cluster_centers_[quiet.labels_]) ** 2).sum()
    assert quiet.inertia_ == pytest.approx(expected, rel=1e-9)


class RecordsCosts:
    """An observer keeping a copy of every iteration's costs (``reads_costs`` as given)."""

    def __init__(self, declared):
        self.reads_costs, self.costs = declared, []

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.costs.append(np.array(state.costs))


class _Terminal(io.StringIO):
    """A stream that says it is a terminal (where the progress bar shows)."""

    def isatty(self):
        return True


def test_builtin_readers_of_every_iteration_declare_it(X, caplog):
    from kmeansfw.strategies.convergence import AllOf, AnyOf
    from kmeansfw.strategies.observers import LogProgress, ProgressBar, VerboseLog

    params = dict(init="random", n_init=1, random_state=4, tol=0, max_iter=4)
    caplog.set_level(logging.INFO, logger="kmeansfw")  # the iterations' DEBUG lines: off
    caplog.set_level(logging.DEBUG, logger="kmeansfw.loud")
    for observers, convergence, asks in (
        (["history"], "tol", True),
        ([], "objective", True),
        ([], AnyOf(["tol", "objective"]), True),
        ([], AnyOf(["tol", "unchanged"]), False),
        ([], AllOf(["tol", AnyOf(["unchanged", "objective"])]), True),
        ([VerboseLog()], "tol", True),
        # the log and the bar read the objective only when their messages go somewhere
        (["log"], "tol", False),
        ([LogProgress(logger="kmeansfw.loud")], "tol", True),
        ([ProgressBar(file=io.StringIO())], "tol", False),
        ([ProgressBar(file=_Terminal(), delay=0)], "tol", True),
    ):
        spy = SpyNearest()
        km = KMeans(20, assignment=spy, observers=observers, convergence=convergence, **params)
        km.fit(X)
        iterations = spy.asked[: km.n_iter_]  # one block per pass
        assert iterations and {a for a, _ in iterations} == {asks}, (observers, convergence)


def test_auto_passes_with_costs_to_nearest(X, monkeypatch):
    asked = _spy_on_auto(monkeypatch, "_NEAREST", "with_costs")  # the hooks' iteration
    km = KMeans(5, init="random", n_init=1, random_state=0, tol=0, max_iter=3).fit(X)
    assert km.n_iter_ == 3 and asked == [False, False, False, True]
    km.predict(X)
    assert asked[-1] is False


def test_hooks_called_the_older_way_get_with_costs(X):
    # a plugin calling kmeansfw_nearest / kmeansfw_assign without with_costs (as before it
    # existed) gets the costs, through the direct caller and through pluggy's (a wrapper)
    calls = []

    class OldStyle:
        @kmeansfw.hookimpl
        def kmeansfw_assign(self, X, centroids, rows, data, cache, hook):
            found = hook.kmeansfw_nearest(
                X=X, centroids=centroids, groups=None, n_groups=0, rows=rows, data=data,
                cache=cache, hook=hook,
            )
            calls.append(found[1] is not None)
            return found[0], found[1]

    class Wrapper:
        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_nearest(self, X):
            return (yield)

    plain = KMeans(5, random_state=0, max_iter=5).fit(X)
    for observers in ([], [Wrapper()]):
        calls.clear()
        km = KMeans(5, assignment=OldStyle(), observers=observers, random_state=0, max_iter=5)
        km.fit(X)
        assert calls and all(calls)
        np.testing.assert_array_equal(km.labels_, plain.labels_)


def test_minibatch_steps_ask_nearest_for_their_costs(X):
    spy = SpyNearest()
    kmeansfw.MiniBatchKMeans(20, assignment=spy, batch_size=256, max_iter=2, random_state=0).fit(X)
    assert len(spy.asked) > 5 and all(with_costs for with_costs, _ in spy.asked)


def test_a_key_error_inside_a_hook_is_not_taken_for_a_missing_argument(X):
    # the callers fill in only arguments the call left out: an implementation's own
    # KeyError reaches the user as that implementation's failure
    class Broken:
        @kmeansfw.hookimpl
        def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, with_costs):
            return {}["with_costs"]

    with pytest.raises(kmeansfw.StrategyError, match=r"Broken.*kmeansfw_assign.*KeyError"):
        KMeans(5, assignment=Broken(), random_state=0).fit(X)
