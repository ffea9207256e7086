"""The mean's sums added by the assignment's search in its own pass (``core.sums``)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw import KMeans
from kmeansfw.core.distance import describe
from kmeansfw.engine.executors import PickleShuffleExecutor
from kmeansfw.engine.steps import SearchSums
from kmeansfw.strategies.assignment import Nearest
from kmeansfw.strategies.update import Mean


@pytest.fixture(scope="module")
def X():
    X, _ = make_blobs(6000, n_features=6, centers=12, cluster_std=3.0, random_state=4)
    return X


class Offers:
    """``nearest`` that records every ``sums`` it is offered and whether it was added."""

    name = "offers"

    def __init__(self, mark=True):
        self.mark, self.seen = mark, []

    @kmeansfw.hookimpl
    def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, with_costs, sums):
        if not self.mark:  # the labels, the sums left to the map
            found = Nearest().kmeansfw_assign(X, centroids, rows, data, cache, hook, with_costs)
        else:
            found = Nearest().kmeansfw_assign(
                X, centroids, rows, data, cache, hook, with_costs, sums
            )
        self.seen.append(None if sums is None else sums.added)
        return found


class MapOnly:
    """``nearest`` that does not take ``sums``: the mean's map sums every block."""

    name = "map-only"

    @kmeansfw.hookimpl
    def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, with_costs):
        return Nearest().kmeansfw_assign(X, centroids, rows, data, cache, hook, with_costs)


class Wraps:
    """An observer wrapping the assignment (its hook then goes through pluggy)."""

    def __init__(self):
        self.calls = 0

    @kmeansfw.hookimpl(wrapper=True)
    def kmeansfw_assign(self):
        self.calls += 1
        return (yield)


class Partials:
    """The kinds of the partials each iteration's update reduced."""

    def __init__(self):
        self.kinds = []

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.kinds.append({type(p).__name__ for p in state.assignment.partials or [None]})


PARAMS = dict(init="random", n_init=1, random_state=3, tol=0, max_iter=25)


@pytest.mark.parametrize("budget", [64.0, 0.01])  # one block; many blocks and tasks
def test_the_search_adds_the_sums_and_the_fit_is_the_maps_bit_for_bit(X, budget):
    offers = Offers()
    seen = Partials()
    params = dict(PARAMS, memory_budget_mb=budget)
    fused = KMeans(12, assignment=offers, observers=[seen], **params).fit(X)
    mapped = KMeans(12, assignment=MapOnly(), **params).fit(X)
    assert offers.seen and all(offers.seen)  # offered at every block, and added
    np.testing.assert_array_equal(fused.labels_, mapped.labels_)
    np.testing.assert_array_equal(fused.cluster_centers_, mapped.cluster_centers_)
    assert fused.n_iter_ == mapped.n_iter_
    # the search summed every task: it sums again next time, nothing kept for the map
    assert all(kinds == {"NoneType"} for kinds in seen.kinds)
    default = KMeans(12, **params).fit(X)  # the built-in nearest / auto: the same sums
    np.testing.assert_array_equal(default.cluster_centers_, fused.cluster_centers_)


def test_sums_left_by_the_search_are_the_maps(X):
    leaves = Offers(mark=False)
    left = KMeans(12, assignment=leaves, **PARAMS).fit(X)
    mapped = KMeans(12, assignment=MapOnly(), **PARAMS).fit(X)
    assert leaves.seen and not any(leaves.seen)  # offered, never added
    # the map summed every block (from its previous partial where it could: the same bits)
    np.testing.assert_array_equal(left.cluster_centers_, mapped.cluster_centers_)


@pytest.mark.parametrize(
    "other",
    [dict(n_threads=1), dict(executor=PickleShuffleExecutor(seed=1), memory_budget_mb=0.01)],
    ids=["one-thread", "pickled-tasks"],
)
def test_sums_in_the_search_do_not_depend_on_threads_or_executor(X, other):
    budget = other.pop("memory_budget_mb", 64.0)
    params = dict(PARAMS, memory_budget_mb=budget)
    reference = KMeans(12, n_threads=2, **params).fit(X)
    found = KMeans(12, **params, **other).fit(X)
    np.testing.assert_array_equal(found.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(found.labels_, reference.labels_)


class WrapsMap:
    """An observer wrapping the mean's map."""

    def __init__(self):
        self.calls = 0

    @kmeansfw.hookimpl(wrapper=True)
    def kmeansfw_accumulate(self):
        self.calls += 1
        return (yield)


class AllToZero:
    """An observer whose wrapper sends every row to cluster 0."""

    @kmeansfw.hookimpl(wrapper=True)
    def kmeansfw_assign(self):
        labels, costs = yield
        return np.zeros_like(labels), None


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # AllToZero: one cluster
@pytest.mark.parametrize("wrapper", [Wraps, WrapsMap, AllToZero])
def test_a_wrapped_assignment_search_or_map_gets_no_sums_in_the_search(X, wrapper):
    """A wrapper sees every call it wraps and may change the labels the sums follow: such
    a fit is offered no sums, and its map sums what the wrapped assignment answered."""
    observer = wrapper()
    offers = Offers()
    params = dict(PARAMS, max_iter=5)
    found = KMeans(12, assignment=offers, observers=[observer], **params).fit(X)
    assert offers.seen and all(seen is None for seen in offers.seen)
    assert getattr(observer, "calls", 1) > 0
    mapped = KMeans(12, assignment=MapOnly(), observers=[wrapper()], **params).fit(X)
    np.testing.assert_array_equal(found.cluster_centers_, mapped.cluster_centers_)
    if wrapper is AllToZero:  # the sums followed the wrapper's labels, not the search's
        plain = KMeans(12, assignment=MapOnly(), **params).fit(X)
        assert not np.allclose(found.cluster_centers_, plain.cluster_centers_)


class EveryOtherBlock:
    """``nearest`` that adds the sums in its search on every other block only."""

    name = "every-other-block"

    @kmeansfw.hookimpl
    def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, with_costs, sums):
        offer = sums if (rows.start // X.shape[0]) % 2 == 0 else None
        return Nearest().kmeansfw_assign(X, centroids, rows, data, cache, hook, with_costs, offer)


def test_a_task_whose_later_blocks_the_search_leaves_gets_them_from_the_map():
    """A task whose first block the search summed keeps offering; a block it leaves is
    added by the map onto the search's sums (not from the previous iteration's partial,
    which would drop the search's blocks), and a task whose first block it leaves is the
    map's, from its previous partial."""
    from kmeansfw.core.data import FitData

    X, _ = make_blobs(40_000, n_features=3, centers=30, cluster_std=2.5, random_state=7)
    params = dict(PARAMS, memory_budget_mb=0.01)  # 256-row blocks, several per task
    plan = FitData.build(X, n_clusters=12, memory_budget=int(0.01 * 2**20))
    assert max(len(task) for task in plan.tasks) > 1
    mixed = KMeans(12, assignment=EveryOtherBlock(), **params).fit(X)
    mapped = KMeans(12, assignment=MapOnly(), **params).fit(X)
    np.testing.assert_array_equal(mixed.labels_, mapped.labels_)
    np.testing.assert_array_equal(mixed.cluster_centers_, mapped.cluster_centers_)
    assert mixed.n_iter_ == mapped.n_iter_


def test_the_searchs_sums_are_kept_for_the_map_unless_it_summed_every_task(X):
    from kmeansfw.core.data import FitData
    from kmeansfw.engine.loop import FullBatch, kept_partials
    from kmeansfw.engine.plugins import build

    data = FitData.build(X, n_clusters=12)
    hooks = build([("update", "mean", Mean())])
    searched = SearchSums((np.ones((12, 6)), np.ones(12)))
    assert kept_partials(hooks, data, [searched, searched], FullBatch()) is None
    mapped = (np.zeros((12, 6)), np.zeros(12))
    kept = kept_partials(hooks, data, [searched, mapped], FullBatch())
    assert kept is not None and [type(p) for p in kept] == [tuple, tuple]
    np.testing.assert_array_equal(kept[0][0], searched[0])


def test_an_optional_sums_argument_is_passed_through_pluggy_and_directly(X):
    seen = []

    class Optional(Nearest):
        name = "optional"

        @kmeansfw.hookimpl
        def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, with_costs, sums=None):
            seen.append(sums is not None)
            return super().kmeansfw_assign(X, centroids, rows, data, cache, hook, with_costs, sums)

    KMeans(12, assignment=Optional(), **PARAMS).fit(X)  # the engine's own call
    assert seen and seen.count(True) >= len(seen) - 1  # all but a final labelling
    seen.clear()  # through pluggy (a wrapper): called with its default, offered nothing
    KMeans(12, assignment=Optional(), observers=[Wraps()], **PARAMS).fit(X)
    assert seen and not any(seen)
    # and a built-in called directly, as code written before the argument calls it
    import inspect

    for method in (
        Nearest.kmeansfw_assign,
        kmeansfw.strategies.euclidean.Euclidean.kmeansfw_nearest,
    ):
        assert inspect.signature(method).parameters["sums"].default is None


def test_sums_map_is_declared_with_the_map_it_describes():
    class OwnMap(Mean):
        @kmeansfw.hookimpl
        def kmeansfw_accumulate(self, X, labels, sample_weight, n_clusters, partial):
            return Mean.kmeansfw_accumulate(
                self, X, labels, sample_weight, n_clusters, partial, None, None, None, None
            )

    class DeclaredAgain(OwnMap):
        sums_map = True

    class OnlyUpdate(Mean):  # the map inherited with its declaration
        pass

    assert describe(Mean()).sums_map and describe(OnlyUpdate()).sums_map
    assert not describe(OwnMap()).sums_map and describe(DeclaredAgain()).sums_map
    assert not describe(kmeansfw.CATALOG.create("update", "spherical")[1]).sums_map


def test_search_sums_pickle_as_themselves():
    import pickle

    sums = SearchSums((np.ones((2, 3)), np.ones(2)))
    again = pickle.loads(pickle.dumps(sums))
    assert type(again) is SearchSums
    np.testing.assert_array_equal(again[0], sums[0])


@pytest.mark.parametrize("assignment", ["hamerly", "yinyang"])
def test_bounded_assignments_take_the_sums_on_a_block_they_search_whole(assignment):
    """``hamerly`` passes the sums on when it searches a whole block (its first pass, or
    most rows stale), and Euclidean adds them with one group of rivals; ``yinyang``'s
    several groups leave them to the map. Either way the fit is the map's bit for bit."""
    from kmeansfw.strategies.assignment import Hamerly, Yinyang

    cls = Hamerly if assignment == "hamerly" else Yinyang
    seen = []

    class Spy(cls):
        name = f"spy-{assignment}"

        @kmeansfw.hookimpl
        def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, sums=None):
            found = super().kmeansfw_assign(X, centroids, rows, data, cache, hook, sums)
            seen.append(None if sums is None else sums.added)
            return found

    class MapOnlyBounded(cls):
        name = f"map-{assignment}"

        @kmeansfw.hookimpl
        def kmeansfw_assign(self, X, centroids, rows, data, cache, hook):
            return super().kmeansfw_assign(X, centroids, rows, data, cache, hook)

    X = np.random.default_rng(0).normal(size=(5000, 40))  # no structure: rows stay stale
    params = dict(init="random", n_init=1, random_state=1, tol=0, max_iter=8)
    found = KMeans(48, assignment=Spy(), **params).fit(X)
    mapped = KMeans(48, assignment=MapOnlyBounded(), **params).fit(X)
    offered = [s for s in seen if s is not None]
    assert offered and (all(offered) if assignment == "hamerly" else not any(offered))
    np.testing.assert_array_equal(found.labels_, mapped.labels_)
    np.testing.assert_array_equal(found.cluster_centers_, mapped.cluster_centers_)
