"""The built-in Lloyd iteration in one call on small data (``engine.lloyd_step``).

Every fit here runs with the step allowed (its iterations in compiled calls,
``kernels.lloyd``, or one call each) and refused (the hooks' iteration), and the fits
must agree bit for bit, or fail with the same error.
"""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits, make_blobs

import kmeansfw
from kmeansfw import KMeans, MiniBatchKMeans, kernels
from kmeansfw.core.errors import StrategyError
from kmeansfw.engine import loop
from kmeansfw.engine.executors import PickleShuffleExecutor
from kmeansfw.strategies.assignment import Auto
from kmeansfw.strategies.empty import RelocateFarthest
from kmeansfw.strategies.euclidean import Euclidean
from kmeansfw.strategies.init import KMeansPlusPlus
from kmeansfw.strategies.update import Mean


def _fit(allowed, X, *, sample_weight=None, estimator=KMeans, compiled=True, **params):
    """The fitted estimator (or the exception it raised) with the step allowed (its
    iterations compiled, or not) or refused, and for each run whether it took the step
    (compiled where allowed: asserted)."""
    taken = []
    original = loop.lloyd_step

    def decide(*args):
        step = original(*args) if allowed else None
        if step is not None:
            assert step.compiled == kernels.HAVE_NUMBA  # compiled wherever it can be
            if not compiled:
                step = attrs.evolve(step, compiled=False)
        taken.append(step is not None)
        return step

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "lloyd_step", decide)
        try:
            return estimator(**params).fit(X, sample_weight=sample_weight), taken
        except Exception as exc:  # compared with the other path's, below
            return exc, taken


def _both(X, sample_weight=None, compiled=(True, False), **params):
    """The step's fits (compiled iterations, and one call each, by ``compiled``), each
    checked equal to the hooks' fit: the first of them, and whether each of its runs
    took the step."""
    hooked, refused = _fit(False, X, sample_weight=sample_weight, **params)
    assert not any(refused)
    found = []
    for mode in compiled:
        fused, taken = _fit(True, X, sample_weight=sample_weight, compiled=mode, **params)
        found.append((fused, taken))
        if isinstance(hooked, Exception):
            assert type(fused) is type(hooked) and str(fused) == str(hooked)
            continue
        assert not isinstance(fused, Exception), fused
        assert np.array_equal(fused.labels_, hooked.labels_)
        assert np.array_equal(fused.cluster_centers_, hooked.cluster_centers_)  # bit for bit
        assert fused.cluster_centers_.dtype == hooked.cluster_centers_.dtype
        assert fused.inertia_ == hooked.inertia_
        assert fused.n_iter_ == hooked.n_iter_
    return found[0]


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
    assert not isinstance(fused, Exception), fused  # a fit, not two equal failures
    assert taken and all(taken)


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
    fused, taken = _both(X, n_clusters=5, random_state=0, init="random", n_init=2)
    assert not isinstance(fused, Exception), fused  # a fit, not two equal failures
    assert taken and all(taken)
    assert len(np.unique(fused.labels_)) == 3  # three distinct points, three clusters used


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
    # one call per iteration: the compiled iterations call no strategy's method
    fused, taken = _both(X, n_clusters=3, random_state=0, compiled=(False,))
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
    fused, taken = _fit(True, X, n_clusters=3, random_state=0, init="random", compiled=False)
    calls.clear()
    hooked, _ = _fit(False, X, n_clusters=3, random_state=0, init="random")
    assert all(taken)
    assert isinstance(fused, StrategyError) and str(fused) == str(hooked)
    assert "failed in kmeansfw_nearest" in str(fused) and "lost" in str(fused)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow itself
def test_centroids_that_overflow_fail_in_the_steps_own_check():
    # weights of 1e300 (their total finite: 2e302) on values of about 1e8: the mean's
    # sums overflow to infinity; the step's check of the update's centroids names the
    # update, as the hooks' check does (weights whose total overflows are refused first)
    X = _normal(200, 2, seed=3) * 1e8
    fused, taken = _both(X, sample_weight=np.full(200, 1e300), n_clusters=2, random_state=0)
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
    # every such fit succeeds: two paths failing alike would hide a broken fit
    assert not isinstance(fitted, Exception), fitted
    assert taken and all(taken)


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


# ----------------------------------------------------------- the compiled iterations


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="compiled iterations need numba")
@pytest.mark.parametrize(
    ("tol", "far", "resumed"),
    [(1e-4, False, False), (0.0, False, False), (1e-4, True, False), (1e-4, False, True)],
    ids=["tol", "tol0", "empty-first", "resumed"],
)
@pytest.mark.parametrize("last", [1, 2, 5, 300])
def test_a_compiled_run_leaves_the_state_the_hooks_leave(tol, far, resumed, last):
    X = make_blobs(1200, n_features=3, centers=5, cluster_std=2.5, random_state=3)[0]
    fused_fit, hooked_fit = _prepared(X, 5, tol=tol), _prepared(X, 5, tol=tol)
    for fit in (fused_fit, hooked_fit):
        if far:  # a centroid no row is nearest to: left to the hooks at the first iteration
            start = np.array(fit[4].centroids)
            start[0] = 1e3
            fit[4].centroids = start
        if resumed:  # labels known before the first iteration (a checkpoint's)
            fit[4].labels = np.zeros(len(X), dtype=np.int32)
    hooks, data, _, plan, fused = fused_fit
    step = loop.lloyd_step(hooks, data, 5, plan)
    assert step is not None and step.compiled
    said = step.run(hooks, fused, data, last)
    h_hooks, h_data, h_walk, h_plan, hooked = hooked_fit
    expected = False
    for iteration in range(hooked.iteration + 1, last + 1):
        if loop.iterate(h_hooks, hooked, h_data, h_walk, iteration, h_plan):
            expected = True
            break
    assert said == expected
    assert fused.iteration == hooked.iteration and fused.strict == hooked.strict
    for name in ("labels", "previous_labels", "centroids", "previous_centroids"):
        a, b = getattr(fused, name), getattr(hooked, name)
        assert (a is None) == (b is None) and (a is None or np.array_equal(a, b)), name
    assert fused.labels.dtype == np.intp
    assert not fused.centroids.flags.writeable and fused.centroids.dtype == X.dtype
    assert np.array_equal(fused.cluster_weights, hooked.cluster_weights)
    assert fused.n_changed == hooked.n_changed
    assert fused.center_shift == hooked.center_shift
    assert fused.assignment.partials is None
    assert fused.assignment.costs_ready == hooked.assignment.costs_ready
    assert np.array_equal(fused.costs, hooked.costs)  # computed when read, from the
    assert fused.objective == hooked.objective  # centroids the last iteration assigned to


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="compiled iterations need numba")
def test_compiled_calls_are_bounded_by_their_work(monkeypatch):
    # one iteration per call: the same fit, in as many calls as iterations
    from kmeansfw.kernels import lloyd

    calls = []
    original = lloyd.lloyd_iterations

    def counted(*args):
        calls.append(args[6])  # the iterations asked for
        return original(*args)

    X = make_blobs(2000, n_features=4, centers=6, cluster_std=3.0, random_state=0)[0]
    whole, _ = _fit(True, X, n_clusters=6, random_state=0, n_init=1)
    monkeypatch.setattr(lloyd, "lloyd_iterations", counted)
    monkeypatch.setattr(lloyd, "CALL_WORK", 1)
    assert lloyd.iterations_per_call(2000, 4, 6) == 1
    fitted, taken = _both(X, n_clusters=6, random_state=0, n_init=1, compiled=(True,))
    assert all(taken) and fitted.n_iter_ == whole.n_iter_ > 3
    assert calls == [1] * fitted.n_iter_
    assert np.array_equal(fitted.cluster_centers_, whole.cluster_centers_)


@attrs.frozen
class _CountingInit(KMeansPlusPlus):
    """k-means++, also noting each iteration (a strategy's own observer hook)."""

    name = "counting-plusplus"
    seen: list = attrs.field(factory=list)

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.seen.append(state.iteration)


def test_a_strategy_seeing_each_iteration_runs_the_step_per_iteration():
    X = _normal(800, 3, seed=2)
    counting = _CountingInit()
    steps_taken = []
    original = loop.lloyd_step

    def spy(*args):
        step = original(*args)
        steps_taken.append(step)
        return step

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "lloyd_step", spy)
        fitted = KMeans(3, init=counting, random_state=0, n_init=1).fit(X)
    assert len(steps_taken) == 1 and steps_taken[0] is not None
    assert not steps_taken[0].compiled  # its hook is called every iteration
    assert counting.seen == list(range(1, fitted.n_iter_ + 1)) and fitted.n_iter_ > 1


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="compiled iterations need numba")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("n", "d", "k"), [(3000, 2, 3), (2000, 64, 8), (1500, 20, 40)])
@pytest.mark.parametrize("chunks", [2, 3])
def test_the_threads_kernel_makes_the_serial_kernels_iterations(n, d, k, dtype, chunks):
    from kmeansfw.kernels import lloyd
    from kmeansfw.kernels._compile import launch, parallel_ready
    from kmeansfw.kernels.euclidean import search_plan

    if not parallel_ready():  # kmeansfw starts numba's layer (else it distrusts it)
        pytest.skip("numba has no thread-safe threading layer here")
    X = _normal(n, d, dtype, seed=k)
    mean = X.mean(axis=0).astype(dtype)
    weights = np.random.default_rng(k).uniform(0.5, 2.0, n).astype(dtype)
    serial = lloyd.lloyd_iterations(X, mean, weights, X[:k].copy(), None, 0.0, 7, 1, False)
    assert serial.done == 7 and serial.stop == lloyd.RAN
    direct, _, group_rows, n_groups = search_plan(n, d, k, 1, True)
    inputs = [X, mean, weights, X[:k].copy()]
    for a in inputs:  # read-only, as lloyd_iterations hands them to the kernels
        a.flags.writeable = False
    no_labels = kernels.read_only(np.empty(0, np.intp))
    args = (*inputs, no_labels, False, 0.0, 7, group_rows, n_groups, False)
    ring, made, kept = lloyd._buffers(n, k, d, X.dtype)  # what the kernel writes
    nothing = lloyd._nothing(X.dtype)  # no search of given centroids: the iterations
    kernel = lloyd._kernel(direct, d, k, X.itemsize, True)
    done, stop, current, previous, new, before = launch(
        kernel, *args, ring, made, kept, nothing, chunks
    )
    assert (done, stop) == (7, lloyd.RAN)
    assert np.array_equal(ring[current], serial.labels)
    assert np.array_equal(ring[previous], serial.previous_labels)
    for a, b in [(made[new], serial.centroids), (made[before], serial.previous_centroids),
                 (kept[0], serial.sums), (kept[1], serial.weights)]:
        assert np.array_equal(a, b)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="compiled iterations need numba")
def test_the_compiled_iterations_leave_what_the_hooks_must_decide():
    from kmeansfw.kernels import lloyd

    X = _normal(500, 2, seed=8)
    mean, weights = X.mean(axis=0), np.ones(500)
    far = np.vstack([X[:2], [[1e3, 1e3]]])  # the third centroid: empty at once
    made = lloyd.lloyd_iterations(X, mean, weights, far, None, 0.0, 10, 1, False)
    assert (made.done, made.stop) == (0, lloyd.LEFT)
    heavy = np.full(500, 1e308)  # the sums overflow: not finite, left
    made = lloyd.lloyd_iterations(X, mean, heavy, X[:2].copy(), None, 0.0, 10, 1, False)
    assert (made.done, made.stop) == (0, lloyd.LEFT)
    # labels known and unchanged by the first iteration: strict convergence at once
    first = lloyd.lloyd_iterations(X, mean, weights, X[:2].copy(), None, 0.0, 1, 1, False)
    again = lloyd.lloyd_iterations(
        X, mean, weights, first.previous_centroids, first.labels, 0.0, 10, 1, False
    )
    assert (again.done, again.stop) == (1, lloyd.UNCHANGED)
    assert again.previous_labels is first.labels
    assert np.array_equal(again.labels, first.labels)
    # a limit every shift passes: one iteration, stopped by the shift
    loose = lloyd.lloyd_iterations(X, mean, weights, X[:2].copy(), None, np.inf, 10, 1, False)
    assert (loose.done, loose.stop) == (1, lloyd.SHIFTED_LITTLE)


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="compiled iterations need numba")
def test_cached_serial_iterations_run_before_numba_starts_its_threads():
    # a kernel holding numba's threaded loops, loaded from numba's cache into a process
    # whose threading layer never started, crashes: the serial iterations hold none
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, kmeansfw; from kmeansfw.engine import loop;"
        "rule = loop.lloyd_step; taken = [];"
        "loop.lloyd_step = lambda *a: taken.append(rule(*a)) or taken[-1];"
        "X = np.random.default_rng(0).standard_normal((1000, 3));"
        "fit = kmeansfw.KMeans(4, random_state=0, n_init=1).fit(X);"
        "import numba.np.ufunc.parallel as p;"
        "print(fit.n_iter_, taken[0].compiled, p._is_initialized)"
    )
    env = {**os.environ, "KMEANSFW_PARALLEL_KERNELS": "0"}
    for _ in range(2):  # the second run loads what the first compiled (or loaded)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
        n_iter, compiled, started = out.stdout.split()
        assert int(n_iter) >= 1 and compiled == "True" and started == "False"


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="compiled iterations need numba")
def test_the_compiled_iterations_refuse_arrays_of_two_dtypes():
    from kmeansfw.kernels import lloyd

    X = _normal(100, 2, np.float32)
    with pytest.raises(ValueError, match="share a dtype"):
        lloyd.lloyd_iterations(
            X, X.mean(axis=0, dtype=np.float64), np.ones(100, np.float32), X[:2].copy(), None,
            0.0, 3, 1, False,
        )


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="compiled iterations need numba")
def test_an_iteration_left_after_kept_ones_leaves_their_totals():
    # a call that keeps some iterations, then meets an empty cluster, returns what the
    # last kept iteration made: the same as a call asked for just those iterations
    from kmeansfw.kernels import lloyd

    for seed in range(2000):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((30, 2))
        mean, weights, start = X.mean(axis=0), np.ones(30), X[:5].copy()
        made = lloyd.lloyd_iterations(X, mean, weights, start, None, 0.0, 50, 1, False)
        if made.stop == lloyd.LEFT and made.done >= 1:
            break
    else:
        pytest.fail("no seed left an iteration after kept ones")
    kept = lloyd.lloyd_iterations(X, mean, weights, start, None, 0.0, made.done, 1, False)
    assert (kept.done, kept.stop) == (made.done, lloyd.RAN)
    for a, b in zip(made[2:], kept[2:], strict=True):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert np.count_nonzero(made.weights) == 5  # the kept iteration had no empty cluster


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="compiled iterations need numba")
def test_the_compiled_iterations_refuse_arrays_that_do_not_fit():
    from kmeansfw.kernels import lloyd

    X = _normal(100, 3)
    mean, weights, start = X.mean(axis=0), np.ones(100), X[:4].copy()
    for args in [
        (X, mean[:2], weights, start, None),
        (X, mean, weights[:50], start, None),
        (X, mean, weights, start[:, :2], None),
        (X, mean, weights, start, np.zeros(99, dtype=np.intp)),
    ]:
        with pytest.raises(ValueError, match="do not fit"):
            lloyd.lloyd_iterations(*args, 0.0, 3, 1, False)


@pytest.mark.parametrize(("n", "d", "k"), [(2000, 200, 5), (20000, 48, 8)])
def test_mid_size_inline_data_takes_the_step(n, d, k):
    # more than 2^18 values, inline as one block: the step, compiled, the hooks' bits
    from kmeansfw.core.data import runs_inline

    X = make_blobs(n, n_features=d, centers=k, cluster_std=8.0, random_state=4)[0]
    assert not runs_inline(n, d) and FitData_inline(X, k)
    fitted, taken = _both(X, n_clusters=k, random_state=0, max_iter=6)
    assert not isinstance(fitted, Exception) and taken and all(taken)


def test_a_large_mapped_file_runs_the_hooks(monkeypatch):
    # mid-size data mapped from a file large enough to hand its pages back: the hooks
    import kmeansfw.engine.lloyd_step as lloyd_step_module

    X = make_blobs(2000, n_features=200, centers=5, random_state=4)[0]
    monkeypatch.setattr(lloyd_step_module, "mapped_rows", lambda X: object())
    fitted, taken = _fit(True, X, n_clusters=5, random_state=0, max_iter=3)
    assert not isinstance(fitted, Exception) and taken and not any(taken)
    # small data runs the step whatever its storage (its pages are not handed back)
    fitted, taken = _fit(True, X[:, :100], n_clusters=5, random_state=0, max_iter=3)
    assert not isinstance(fitted, Exception) and taken and all(taken)


def FitData_inline(X, k):  # noqa: N802 - reads as the question it asks
    from kmeansfw.core.data import FitData
    from kmeansfw.engine.fitting import splits_work

    cfg = KMeans(k)._built_config()[0]
    data = FitData.build(X, n_clusters=k, splits_work=splits_work(cfg.build_strategies()))
    return bool(data.inline) and data.single_block is not None


@pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="compiled iterations need numba")
def test_calls_that_keep_nothing_give_way_to_one_call_per_iteration(monkeypatch):
    # every call leaving its first iteration (as when a cluster is empty every
    # iteration): after two such calls in a row, one call per iteration, the same fit
    from kmeansfw.kernels import lloyd

    calls = []

    def leaves_all(*args):
        calls.append(1)
        none = np.empty(0)
        return lloyd.Iterations(0, lloyd.LEFT, none, None, none, none, none, none)

    monkeypatch.setattr(lloyd, "lloyd_iterations", leaves_all)
    X = make_blobs(600, n_features=3, centers=4, cluster_std=3.0, random_state=5)[0]
    fitted, taken = _both(X, n_clusters=4, random_state=0, n_init=1, compiled=(True,))
    assert all(taken) and fitted.n_iter_ > 2 and len(calls) == 2
