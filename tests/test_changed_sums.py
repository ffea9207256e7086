"""The mean update's map from the previous iteration's sums (``ChangedSums``): the same
totals bit for bit as summing every row, while reading only the clusters that changed."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw import KMeans, kernels
from kmeansfw.core.data import FitData
from kmeansfw.core.errors import StrategyError
from kmeansfw.engine.executors import PickleShuffleExecutor
from kmeansfw.strategies.assignment import Nearest
from kmeansfw.strategies.update import ChangedSums, Mean


class FreshMean(Mean):
    """The mean whose map sums every row every iteration (no previous partial)."""

    name = "fresh-mean"

    @kmeansfw.hookimpl
    def kmeansfw_accumulate(self, X, labels, sample_weight, n_clusters, partial, data):
        partial = partial or self.new_partial(X, n_clusters)
        kernels.add_weighted_cluster_sums(X, labels, sample_weight, *partial)
        return partial


class MapNearest(Nearest):
    """``nearest`` without taking the mean's sums into its search (``sums``): the mean's
    map sums every block, from its previous partial when it can."""

    name = "map-nearest"

    @kmeansfw.hookimpl
    def kmeansfw_assign(self, X, centroids, rows, data, cache, hook, with_costs):
        return super().kmeansfw_assign(X, centroids, rows, data, cache, hook, with_costs, None)


class Centroids:
    """Every iteration's centroids, and the kind of each partial the update reduced."""

    def __init__(self):
        self.centroids, self.kinds = [], []

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.centroids.append(np.array(state.centroids))
        partials = state.assignment.partials
        self.kinds.append({type(p).__name__ for p in partials or [None]})


@pytest.fixture(scope="module")
def X():
    # at memory_budget_mb=0.01: blocks of 256 rows, more than 64 of them, so tasks of
    # several blocks (clusters marked at a task's later blocks are summed again over its
    # earlier ones)
    X, _ = make_blobs(40_000, n_features=3, centers=30, cluster_std=2.5, random_state=7)
    return X


@pytest.fixture
def resums(monkeypatch):
    """How many times a cluster marked at a task's later block was summed again over the
    task's earlier blocks."""
    calls = []
    real = ChangedSums.resum

    def spy(self, data, clusters):
        if self.seen:
            calls.append(int(clusters.sum()))
        return real(self, data, clusters)

    monkeypatch.setattr(ChangedSums, "resum", spy)
    return calls


@pytest.fixture
def adds(monkeypatch):
    """How many blocks were summed from the previous iteration's partial."""
    calls = []
    real = ChangedSums.add.__func__

    def spy(cls, *args, **kwargs):
        calls.append(1)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(ChangedSums, "add", classmethod(spy))
    return calls


CASES = [
    {"memory_budget_mb": 0.01},  # many blocks and tasks on two threads
    {"memory_budget_mb": 0.01, "n_threads": 1},
    {"memory_budget_mb": 0.01, "executor": "pickle"},
    {},  # one block
    {"memory_budget_mb": 0.01, "assignment": "hamerly"},
    {"memory_budget_mb": 0.01, "dtype": np.float32},
    {"memory_budget_mb": 0.01, "weights": True},
]


@pytest.mark.parametrize("case", CASES, ids=[str(sorted(c)) for c in CASES])
def test_sums_from_the_previous_iteration_equal_full_sums_bit_for_bit(X, case, resums, adds):
    case = dict(case)
    data = X.astype(case.pop("dtype", np.float64))
    sample_weight = None
    if case.pop("weights", False):
        sample_weight = np.random.default_rng(0).uniform(0, 3, size=X.shape[0])
        sample_weight[::7] = 0.0
    if case.pop("executor", None):
        case["executor"] = PickleShuffleExecutor(seed=3)
    case.setdefault("assignment", MapNearest())
    params = dict(init="random", n_init=2, random_state=5, tol=0, max_iter=40, **case)
    runs = {}
    for name, update in (("changed", "mean"), ("fresh", FreshMean())):
        seen = Centroids()
        km = KMeans(30, update=update, observers=[seen], **params)
        km.fit(data, sample_weight=sample_weight)
        runs[name] = (km, seen)
    (changed, changed_seen), (fresh, fresh_seen) = runs["changed"], runs["fresh"]
    assert len(changed_seen.centroids) == len(fresh_seen.centroids) > 20
    for a, b in zip(changed_seen.centroids, fresh_seen.centroids, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(changed.labels_, fresh.labels_)
    assert changed.inertia_ == fresh.inertia_ and changed.n_iter_ == fresh.n_iter_
    # kept for the next map: plain tuples (read-only copies); never for a map that does
    # not declare previous_partial
    kinds = changed_seen.kinds
    if isinstance(case.get("assignment"), str):  # hamerly: its whole-block passes take the
        # sums in the search (nothing kept after one that summed every task)
        assert all(k in ({"tuple"}, {"NoneType"}) for k in kinds) and kinds[-1] == {"tuple"}
    else:
        assert all(k == {"tuple"} for k in kinds)
    assert len(adds) > 5
    assert all(kinds == {"NoneType"} for kinds in fresh_seen.kinds)
    assert len(adds) > 10  # the changed run summed from its previous partials
    if "memory_budget_mb" in case:  # tasks of several blocks
        assert len(resums) > 10


def test_late_iterations_read_only_the_changed_clusters(X, monkeypatch):
    summed = []
    full = kernels.add_weighted_cluster_sums
    members = kernels.add_cluster_members

    def count_full(X, labels, *args, **kwargs):
        summed.append(X.shape[0])
        return full(X, labels, *args, **kwargs)

    def count_members(X, labels, sample_weight, sums, weights, clusters):
        summed.append(int(np.count_nonzero(clusters[labels])))
        return members(X, labels, sample_weight, sums, weights, clusters)

    per_iteration = []

    class Count:
        @kmeansfw.hookimpl
        def kmeansfw_iteration_end(self, state):
            per_iteration.append((sum(summed), state.n_changed))
            summed.clear()

    monkeypatch.setattr(kernels, "add_weighted_cluster_sums", count_full)
    monkeypatch.setattr(kernels, "add_cluster_members", count_members)
    KMeans(
        30,
        init="random",
        n_init=1,
        random_state=5,
        tol=0,
        max_iter=80,
        memory_budget_mb=0.01,
        observers=[Count()],
        assignment=MapNearest(),
    ).fit(X)
    assert per_iteration[0][0] == X.shape[0]  # the first iteration sums every row
    late = [rows for rows, changed in per_iteration[1:] if changed <= 100]
    assert late and max(late) < X.shape[0] / 4  # few labels change: few rows read


def test_a_first_block_with_many_changes_sums_the_task_in_full():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    labels = rng.integers(0, 5, size=400)
    previous = rng.integers(0, 5, size=400)  # most rows changed
    sw = rng.uniform(0.5, 2, size=400)
    sums, weights = np.zeros((5, 3)), np.zeros(5)
    kernels.add_weighted_cluster_sums(X, labels, sw, sums, weights)
    old = (np.full((5, 3), 7.0), np.full(5, 7.0))  # whatever it was: not used
    data = FitData.build(X, sw, n_clusters=5)
    partial = ChangedSums.add(None, data, X, labels, sw, slice(0, 400), previous, old)
    assert partial.dirty.all()
    np.testing.assert_array_equal(partial[0], sums)
    np.testing.assert_array_equal(partial[1], weights)
    assert old[0][0, 0] == 7.0 and old[1][0] == 7.0  # the previous partial is not written


def test_changed_sums_kernels_match_their_numpy_twins_and_the_full_sums():
    from kmeansfw.kernels import update

    rng = np.random.default_rng(2)
    for dtype in (np.float64, np.float32):
        X = (rng.normal(size=(700, 5)) * 1e3 + 5e4).astype(dtype)
        labels = rng.integers(0, 9, size=700).astype(np.intp)
        previous = labels.copy()
        previous[rng.choice(700, size=20, replace=False)] = rng.integers(0, 9, size=20)
        sw = rng.uniform(0, 2, size=700).astype(dtype)
        dirty_a, dirty_b = np.zeros(9, bool), np.zeros(9, bool)
        dirty_a[0] = dirty_b[0] = True
        new_a, *counts_a = kernels.mark_moved_clusters(labels, previous, dirty_a)
        new_b, *counts_b = update._mark_changed_numpy(labels, previous, dirty_b)
        np.testing.assert_array_equal(new_a, new_b)
        np.testing.assert_array_equal(dirty_a, dirty_b)
        moved = labels != previous
        expected_counts = [np.count_nonzero(moved), np.count_nonzero(new_a), dirty_a.sum()]
        assert counts_a == counts_b == expected_counts  # rows moved, newly and all marked
        again = dirty_a.copy()  # marking again marks nothing new; the plain form agrees
        assert not kernels.mark_changed_clusters(labels, previous, again).any()
        np.testing.assert_array_equal(again, dirty_a)
        expected = np.zeros(9, bool)
        expected[labels[moved]] = expected[previous[moved]] = True
        np.testing.assert_array_equal(dirty_a, expected | (np.arange(9) == 0))
        assert not new_a[0]  # marked before
        full_sums, full_weights = np.zeros((9, 5)), np.zeros(9)
        kernels.add_weighted_cluster_sums(X, labels, sw, full_sums, full_weights)
        twin = update._add_members_numpy
        for add in (kernels.add_cluster_members, twin):
            sums, weights = np.zeros((9, 5)), np.zeros(9)
            extra = (update.sum_group_rows(700, 9),) if add is twin else ()
            add(X, labels, sw, sums, weights, dirty_a, *extra)
            np.testing.assert_array_equal(sums[dirty_a], full_sums[dirty_a])
            np.testing.assert_array_equal(weights[dirty_a], full_weights[dirty_a])
            assert not sums[~dirty_a].any() and not weights[~dirty_a].any()


def test_partials_larger_than_a_quarter_of_the_data_are_not_kept():
    from kmeansfw.engine.loop import keeps_partials

    X, _ = make_blobs(300, n_features=4, centers=60, random_state=0)
    seen = Centroids()
    params = dict(
        init="random", n_init=1, random_state=0, tol=0, max_iter=10, assignment=MapNearest()
    )
    km = KMeans(60, observers=[seen], memory_budget_mb=0.005, **params).fit(X)
    data = FitData.build(X, n_clusters=60, memory_budget=int(0.005 * 2**20), splits_work=True)
    assert len(data.tasks) == 2 and not keeps_partials(data, 60)
    assert seen.kinds and all(kinds == {"NoneType"} for kinds in seen.kinds)
    fresh = KMeans(60, update=FreshMean(), memory_budget_mb=0.005, **params).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, fresh.cluster_centers_)
    small = FitData.build(X, n_clusters=4, memory_budget=int(0.005 * 2**20), splits_work=True)
    assert keeps_partials(small, 4)


class InPlaceMean(Mean):
    """A mean whose reduce adds the partials into the first one, in place."""

    name = "in-place-mean"

    @kmeansfw.hookimpl
    def kmeansfw_update(self, data, labels, partials, centroids, n_clusters, rng, online):
        if partials is not None and online is None:
            sums, weights = partials[0]
            for more_sums, more_weights in partials[1:]:
                sums += more_sums
                weights += more_weights
            partials = [(sums, weights)]
        return super().kmeansfw_update(
            data=data,
            labels=labels,
            partials=partials,
            centroids=centroids,
            n_clusters=n_clusters,
            rng=rng,
            online=online,
        )


class ScalesWeights:
    """An observer that normalizes the iteration's cluster weights: in place (refused:
    the state's arrays are read-only), or into a new array it sets on the state."""

    def __init__(self, in_place=False):
        self.in_place = in_place

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        if self.in_place:
            state.cluster_weights /= state.cluster_weights.sum()
        else:
            state.cluster_weights = state.cluster_weights / state.cluster_weights.sum()


@pytest.mark.parametrize("budget", [0.01, 64.0])
def test_what_the_update_or_observers_do_to_partials_does_not_reach_the_next_sums(X, budget, adds):
    params = dict(
        init="random", n_init=1, random_state=5, tol=0, max_iter=30, assignment=MapNearest()
    )
    params.update(memory_budget_mb=budget)
    plain = KMeans(30, **params).fit(X)
    in_place = KMeans(30, update=InPlaceMean(), **params).fit(X)
    scaled = KMeans(30, observers=[ScalesWeights()], **params).fit(X)
    for other in (in_place, scaled):
        np.testing.assert_array_equal(other.cluster_centers_, plain.cluster_centers_)
        assert other.n_iter_ == plain.n_iter_
    assert len(adds) > 10
    with pytest.raises(StrategyError, match="ScalesWeights.* failed .*read-only"):
        KMeans(30, observers=[ScalesWeights(in_place=True)], **params).fit(X)


def test_many_features_on_small_data_sum_by_columns_and_match(adds):
    # one block of 32+ features on two threads: the full sums split the columns between
    # numba's threads; the changed clusters' sums must still match them bit for bit
    from kmeansfw.kernels.update import accumulate_chunks

    if accumulate_chunks(4000, 40, 2) < 2:
        pytest.skip("numba's threads may not run here: no column split to compare")
    X, _ = make_blobs(4000, n_features=40, centers=20, cluster_std=4.0, random_state=3)
    params = dict(
        init="random",
        n_init=1,
        random_state=2,
        tol=0,
        max_iter=25,
        n_threads=2,
        assignment=MapNearest(),
    )
    changed_seen, fresh_seen = Centroids(), Centroids()
    KMeans(20, observers=[changed_seen], **params).fit(X)
    KMeans(20, update=FreshMean(), observers=[fresh_seen], **params).fit(X)
    assert len(changed_seen.centroids) == len(fresh_seen.centroids) > 5
    for a, b in zip(changed_seen.centroids, fresh_seen.centroids, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(kinds == {"tuple"} for kinds in changed_seen.kinds)


def test_auto_with_bounds_keeps_the_sums_from_the_previous_iteration(adds):
    """``auto`` at a shape that keeps bounds (from a Lloyd run's first iteration): its
    first pass searches whole blocks and takes the sums in the search (nothing kept
    then); its bounded passes leave them to the map, which sums from the previous
    iteration's partial after one full pass, bit for bit the full sums."""
    X, _ = make_blobs(8000, n_features=16, centers=40, cluster_std=3.0, random_state=1)
    params = dict(init="random", n_init=1, random_state=0, tol=0, max_iter=15)
    seen = Centroids()
    auto = KMeans(40, observers=[seen], **params).fit(X)
    assert seen.kinds[0] == {"NoneType"} and seen.kinds[-1] == {"tuple"}
    assert adds  # the map started from its previous sums
    fresh = KMeans(40, update=FreshMean(), **params).fit(X)
    np.testing.assert_array_equal(auto.labels_, fresh.labels_)
    np.testing.assert_array_equal(auto.cluster_centers_, fresh.cluster_centers_)
