"""The built-in Lloyd iteration in one call on small data (``engine.lloyd_step``).

Every fit here runs twice, the step allowed and refused (the hooks' iteration), and the
two must agree bit for bit, or fail with the same error.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits, make_blobs

import kmeansfw
from kmeansfw import KMeans, MiniBatchKMeans
from kmeansfw.core.errors import StrategyError
from kmeansfw.engine import loop
from kmeansfw.engine.executors import PickleShuffleExecutor
from kmeansfw.strategies.assignment import Auto
from kmeansfw.strategies.empty import RelocateFarthest
from kmeansfw.strategies.euclidean import Euclidean
from kmeansfw.strategies.update import Mean


def _fit(allowed, X, *, sample_weight=None, estimator=KMeans, **params):
    """The fitted estimator (or the exception it raised) with the step allowed or
    refused, and for each run whether it took the step."""
    taken = []
    original = loop.lloyd_step

    def decide(*args):
        step = original(*args) if allowed else None
        taken.append(step is not None)
        return step

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "lloyd_step", decide)
        try:
            return estimator(**params).fit(X, sample_weight=sample_weight), taken
        except Exception as exc:  # compared with the other path's, below
            return exc, taken


def _both(X, sample_weight=None, **params):
    """Both fits, checked equal: the step's fit, and whether each of its runs took it."""
    fused, taken = _fit(True, X, sample_weight=sample_weight, **params)
    hooked, refused = _fit(False, X, sample_weight=sample_weight, **params)
    assert not any(refused)
    if isinstance(hooked, Exception):
        assert type(fused) is type(hooked) and str(fused) == str(hooked)
        return fused, taken
    assert not isinstance(fused, Exception), fused
    assert np.array_equal(fused.labels_, hooked.labels_)
    assert np.array_equal(fused.cluster_centers_, hooked.cluster_centers_)  # bit for bit
    assert fused.cluster_centers_.dtype == hooked.cluster_centers_.dtype
    assert fused.inertia_ == hooked.inertia_
    assert fused.n_iter_ == hooked.n_iter_
    return fused, taken


def _normal(n, d, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


@pytest.mark.parametrize(
    ("X", "k"),
    [
        (_normal(2000, 2), 3),
        (_normal(2000, 8, np.float32), 8),
        (_normal(500, 64), 32),
        (make_blobs(3000, n_features=5, centers=6, random_state=1)[0], 6),
        (np.ascontiguousarray(load_digits().data), 10),
        (_normal(1, 3), 1),
    ],
    ids=["2000x2", "2000x8-f32", "500x64-k32", "blobs", "digits", "one-row"],
)
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"n_init": 3, "init": "random"},
        {"tol": 0.0, "max_iter": 40},
        {"max_iter": 1},
        {"assignment": "nearest"},
    ],
)
def test_the_step_gives_the_hooks_results_bit_for_bit(X, k, params):
    fused, taken = _both(X, n_clusters=k, random_state=7, **params)
    assert taken and all(taken)  # every run took it
    assert fused.n_iter_ >= 1


def test_weights_and_float32_far_from_the_origin():
    X = _normal(1500, 4, np.float32, seed=3) + np.float32(3e4)
    weights = np.random.default_rng(4).uniform(0.0, 3.0, X.shape[0])
    weights[::7] = 0.0  # rows that weigh nothing
    fused, taken = _both(X, sample_weight=weights, n_clusters=5, random_state=2)
    assert all(taken)


def test_an_empty_cluster_goes_through_the_hooks():
    # a centroid far from every row: empty after the first search, so the
    # empty-cluster strategy (relocate-farthest) moves a sample there, as through the
    # hooks, inside a run that takes the step
    X = _normal(400, 3, seed=5)
    init = np.vstack([X[:3], [[50.0, 50.0, 50.0]]])
    calls = []
    original = kmeansfw.engine.steps.fix_empty_clusters

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kmeansfw.engine.steps, "fix_empty_clusters", counted)
        fused, taken = _fit(True, X, n_clusters=4, init=init, n_init=1)
    assert all(taken) and calls  # taken, and the hooks asked for the empty cluster
    hooked, _ = _both(X, n_clusters=4, init=init, n_init=1)
    assert np.array_equal(fused.cluster_centers_, hooked.cluster_centers_)
    assert np.bincount(fused.labels_, minlength=4).min() > 0


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")
def test_fewer_distinct_points_than_clusters():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 30, axis=0)
    _both(X, n_clusters=5, random_state=0, init="random", n_init=2)


class _Noted:
    """An observer noting each iteration."""

    def __init__(self):
        self.seen = 0

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.seen += 1


class _MyMean(Mean):
    """A subclass of the mean (its own update, even if it changes nothing)."""

    name = "my-mean"


class _MyEuclidean(Euclidean):
    """A subclass of the Euclidean distance."""

    name = "my-euclidean"


class _MyRelocate(RelocateFarthest):
    """A subclass of the default empty-cluster strategy."""

    name = "my-relocate"


@pytest.mark.parametrize(
    "params",
    [
        {"verbose": 1},
        {"assignment": "hamerly"},
        {"convergence": "unchanged"},
        {"convergence": ["tol", {"name": "tol", "tol": 0.5}]},
        {"convergence": ["tol", "objective"]},  # reads every iteration's costs
        {"empty": "keep"},
        {"update": _MyMean()},
        {"distance": _MyEuclidean()},
        {"empty": _MyRelocate()},
        {"memory_budget_mb": 0.01},  # many blocks
        {"history": True},
        {"executor": PickleShuffleExecutor()},
    ],
    ids=[
        "verbose", "hamerly", "unchanged", "two-tols", "objective", "keep", "subclass",
        "subclass-distance", "subclass-empty", "blocks", "history", "executor",
    ],
)
def test_other_fits_run_the_hooks(params, capsys):
    X = _normal(3000, 4, seed=1)
    fitted, taken = _both(X, n_clusters=4, random_state=1, **params)
    assert not isinstance(fitted, Exception), fitted
    assert taken and not any(taken)


def test_an_observer_runs_the_hooks():
    X = _normal(800, 3, seed=2)
    noted = _Noted()
    fitted, taken = _fit(True, X, n_clusters=3, random_state=0, observers=[noted])
    assert not any(taken) and noted.seen == fitted.n_iter_


def test_sparse_and_mini_batch_run_the_hooks():
    X = _normal(600, 5, seed=4)
    fitted, taken = _both(sp.csr_matrix(np.where(X > 0.5, X, 0.0)), n_clusters=3, random_state=0)
    assert not isinstance(fitted, Exception) and taken and not any(taken)
    fitted, taken = _fit(True, X, estimator=MiniBatchKMeans, n_clusters=3, random_state=0)
    assert not isinstance(fitted, Exception) and not any(taken)


def test_auto_with_bounds_runs_the_hooks():
    # a shape on which auto keeps bounds: the hooks; nearest on the same data: the step
    n, d, k = 4096, 16, 32
    assert Auto(metric=True).bounded_by(n, d, k) is not None
    X = _normal(n, d, seed=6)
    fitted, taken = _fit(True, X, n_clusters=k, random_state=0, max_iter=3)
    assert not isinstance(fitted, Exception) and taken and not any(taken)
    fitted, taken = _both(X, n_clusters=k, random_state=0, max_iter=3, assignment="nearest")
    assert not isinstance(fitted, Exception) and taken and all(taken)


def test_a_failing_strategy_is_named_as_through_the_hooks(monkeypatch):
    def boom(*args, **kwargs):
        raise ValueError("boom")

    X = _normal(300, 2, seed=1)
    monkeypatch.setattr(Mean, "_batch_update", boom)
    fused, taken = _both(X, n_clusters=3, random_state=0)
    assert all(taken)
    assert isinstance(fused, StrategyError)
    assert "failed in kmeansfw_update" in str(fused) and "boom" in str(fused)


def test_a_search_failure_is_named_as_through_the_hooks(monkeypatch):
    calls = []
    original = kmeansfw.strategies.euclidean.kernels.nearest_sq_euclidean

    def fails_later(*args, **kwargs):  # seeding's searches pass, the first iteration's fails
        calls.append(1)
        if len(calls) > 1:
            raise FloatingPointError("lost")
        return original(*args, **kwargs)

    monkeypatch.setattr(kmeansfw.strategies.euclidean.kernels, "nearest_sq_euclidean", fails_later)
    X = _normal(300, 2, seed=1)
    fused, taken = _fit(True, X, n_clusters=3, random_state=0, init="random")
    calls.clear()
    hooked, _ = _fit(False, X, n_clusters=3, random_state=0, init="random")
    assert all(taken)
    assert isinstance(fused, StrategyError) and str(fused) == str(hooked)
    assert "failed in kmeansfw_nearest" in str(fused) and "lost" in str(fused)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow itself
def test_centroids_that_overflow_fail_in_the_steps_own_check():
    # weights of 1e308: the mean's sums overflow to infinity; the step's check of the
    # update's centroids names the update, as the hooks' check does
    X = _normal(200, 2, seed=3)
    fused, taken = _both(X, sample_weight=np.full(200, 1e308), n_clusters=2, random_state=0)
    assert all(taken)
    assert isinstance(fused, StrategyError)
    assert "centroids containing NaN or infinity (hook kmeansfw_update)" in str(fused)


def test_an_overflowing_float32_fit_fails_loudly_either_way():
    # explicit centroids (k-means++ would fail first, in its costs): the first
    # iteration's centroids are finite, the next distances overflow float32
    X = np.full((200, 2), 3e38, dtype=np.float32)
    X[::2] *= -1
    init = np.array([[-3e38, -3e38], [1e38, 1e38]], dtype=np.float32)
    fused, taken = _both(X, n_clusters=2, init=init, n_init=1)
    assert all(taken)
    assert isinstance(fused, Exception)


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 300),
    d=st.integers(1, 6),
    k=st.integers(1, 8),
    dtype=st.sampled_from([np.float64, np.float32]),
    grid=st.booleans(),
    weighted=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_any_small_fit_matches_the_hooks(n, d, k, dtype, grid, weighted, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if grid:  # ties, duplicated rows and empty clusters
        X = np.round(X)
    weights = rng.uniform(0.0, 2.0, n) if weighted else None
    fitted, taken = _both(
        X.astype(dtype), sample_weight=weights, n_clusters=min(k, n), random_state=seed
    )
    assert isinstance(fitted, Exception) or all(taken)


def _prepared(X, k, seed=0, **params):
    """A prepared fit's hooks, data, plan and first state (centroids drawn from X)."""
    from kmeansfw.core.config import make_rng
    from kmeansfw.core.data import FitData, read_only
    from kmeansfw.engine import fitting, plugins

    cfg = KMeans(k, **params)._built_config()[0]
    strategies = cfg.build_strategies()
    data = FitData.build(
        X, None, n_clusters=k, memory_budget=cfg.memory_budget, n_threads=cfg.n_threads,
        validate=True, executor=cfg.executor, splits_work=fitting.splits_work(strategies),
    )
    hooks = plugins.build(strategies, [])
    loop.setup(hooks, data)
    walk = loop.FullBatch()
    state = loop.FitState(data=data, n_clusters=k, tol=cfg.tol, rng=make_rng(seed))
    state.centroids = read_only(X[np.random.default_rng(seed).choice(len(X), k, replace=False)])
    return hooks, data, walk, loop.Plan.of(hooks, walk), state


@pytest.mark.parametrize(("tol", "far"), [(1e-4, False), (0.0, False), (1e-4, True)])
def test_each_iteration_leaves_the_state_the_hooks_leave(tol, far):
    X = make_blobs(1200, n_features=3, centers=5, cluster_std=2.5, random_state=3)[0]
    fused_fit, hooked_fit = _prepared(X, 5, tol=tol), _prepared(X, 5, tol=tol)
    if far:  # a centroid no row is nearest to: empty at the first iteration
        start = np.array(fused_fit[4].centroids)
        start[0] = 1e3
        for fit in (fused_fit, hooked_fit):
            fit[4].centroids = start.copy()
    hooks, data, _, plan, fused = fused_fit
    step = loop.lloyd_step(hooks, data, 5, plan)
    assert step is not None
    stops, empties = [], []
    for iteration in range(1, 30):
        said = step.iterate(hooks, fused, data, iteration)
        h_hooks, h_data, h_walk, h_plan, hooked = hooked_fit
        assert said == loop.iterate(h_hooks, hooked, h_data, h_walk, iteration, h_plan)
        for name in ("labels", "previous_labels", "centroids", "previous_centroids"):
            a, b = getattr(fused, name), getattr(hooked, name)
            assert (a is None) == (b is None) and (a is None or np.array_equal(a, b)), name
        assert not fused.centroids.flags.writeable
        assert np.array_equal(fused.cluster_weights, hooked.cluster_weights)
        assert (fused.iteration, fused.strict) == (hooked.iteration, hooked.strict)
        assert fused.n_changed == hooked.n_changed
        assert fused.center_shift == hooked.center_shift
        assert fused.data is fused_fit[1] and hooked.data is hooked_fit[1]
        assert fused.assignment.partials is None and hooked.assignment.partials is None
        # costs left for later (read by relocate-farthest when a cluster was empty)
        assert fused.assignment.costs_ready == hooked.assignment.costs_ready
        empties.append(fused.assignment.costs_ready)
        assert np.array_equal(fused.costs, hooked.costs)  # computed when read
        stops.append(said)
    assert any(stops) and fused.strict == hooked.strict
    assert empties[0] == far and not any(empties[1:])  # the empty cluster: the first only
