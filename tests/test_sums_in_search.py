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


@pytest.mark.parametrize("budget", [64.0, 0.05])  # one block; many blocks and tasks
def test_the_search_adds_the_sums_and_the_fit_is_the_maps_to_rounding(X, budget):
    offers = Offers()
    seen = Partials()
    params = dict(PARAMS, memory_budget_mb=budget)
    fused = KMeans(12, assignment=offers, observers=[seen], **params).fit(X)
    mapped = KMeans(12, assignment=MapOnly(), **params).fit(X)
    assert offers.seen and all(offers.seen)  # offered at every block, and added
    np.testing.assert_array_equal(fused.labels_, mapped.labels_)
    np.testing.assert_allclose(fused.cluster_centers_, mapped.cluster_centers_, rtol=1e-12)
    assert fused.n_iter_ == mapped.n_iter_
    # the search's sums are never the next iteration's previous partial
    assert all(kinds == {"NoneType"} for kinds in seen.kinds)
    default = KMeans(12, **params).fit(X)  # the built-in nearest / auto: the same sums
    np.testing.assert_array_equal(default.cluster_centers_, fused.cluster_centers_)


def test_sums_left_by_the_search_are_the_maps(X):
    leaves = Offers(mark=False)
    left = KMeans(12, assignment=leaves, **PARAMS).fit(X)
    mapped = KMeans(12, assignment=MapOnly(), **PARAMS).fit(X)
    assert leaves.seen and not any(leaves.seen)  # offered, never added
    # the map summed every block, from nothing before (no previous partial)
    np.testing.assert_array_equal(left.cluster_centers_, mapped.cluster_centers_)


@pytest.mark.parametrize(
    "other",
    [
        dict(n_threads=1),
        dict(executor=PickleShuffleExecutor(seed=1), memory_budget_mb=0.05),
        dict(observers=[Wraps()]),
    ],
    ids=["one-thread", "pickled-tasks", "wrapped"],
)
def test_sums_in_the_search_do_not_depend_on_threads_executor_or_wrappers(X, other):
    budget = other.pop("memory_budget_mb", 64.0)
    params = dict(PARAMS, memory_budget_mb=budget)
    reference = KMeans(12, n_threads=2, **params).fit(X)
    wraps = other.get("observers", [None])[0]
    found = KMeans(12, **params, **other).fit(X)
    if wraps is not None:
        assert wraps.calls > 0
    np.testing.assert_array_equal(found.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(found.labels_, reference.labels_)


def test_an_optional_sums_argument_is_passed_through_pluggy_and_directly(X):
    seen = []

    class Optional(Nearest):
        name = "optional"

        @kmeansfw.hookimpl
        def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, with_costs, sums=None):
            seen.append(sums is not None)
            return super().kmeansfw_assign(X, centroids, rows, data, cache, hook, with_costs, sums)

    for observers in ([], [Wraps()]):
        seen.clear()
        KMeans(12, assignment=Optional(), observers=observers, **PARAMS).fit(X)
        assert seen and seen.count(True) >= len(seen) - 1  # all but a final labelling


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
