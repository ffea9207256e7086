"""The Dask backend (kmeansfw.backends.dask) against the threads backend, on a LocalCluster
of two worker processes; and out-of-core fits of memory-mapped arrays with threads."""

from __future__ import annotations

import inspect
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import kmeansfw
from kmeansfw import KMeans
from kmeansfw.core.errors import StrategyError
from tests.conftest import Answers, exact_nearest, two_far_groups, with_far_outlier

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
dask = pytest.importorskip("dask", reason="the dask extra is not installed")

from kmeansfw.backends import dask as backend  # noqa: E402  (after the skip)


@pytest.fixture(scope="module")
def client():
    # Work stealing off: chunk tasks ask to run where their chunk lives (a loose request,
    # see _Cluster._homes), but a stolen task runs on a copy of the chunk on the other
    # worker, and the next task back home finds its labels a step old and counts all its
    # rows as changed (safe, documented, but it makes the exact counts these tests compare
    # depend on timing). The chunks here are tiny, so stealing them is cheap; with real
    # chunks the transfer cost keeps the scheduler from it.
    with warnings.catch_warnings(), dask.config.set({"distributed.scheduler.work-stealing": False}):
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
        )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=8.0, size=(6, 4))
    X = centres[rng.integers(0, 6, size=6000)] + rng.normal(size=(6000, 4))
    return X


def _same(dask_fit, threads_fit):
    np.testing.assert_array_equal(dask_fit.labels, threads_fit.labels)
    assert dask_fit.objective == pytest.approx(threads_fit.objective, rel=1e-9)
    assert dask_fit.n_iter == threads_fit.n_iter
    np.testing.assert_allclose(dask_fit.centroids, threads_fit.centroids, rtol=1e-9, atol=1e-9)


def test_without_a_client_the_array_is_fitted_in_memory(blobs):
    assert backend.active_client() is None  # runs before the module's cluster starts
    dX = da.from_array(blobs, chunks=(1500, 4))
    fit = kmeansfw.fit(dX, n_clusters=6, init=blobs[:6].copy())
    np.testing.assert_array_equal(
        fit.labels, kmeansfw.fit(blobs, n_clusters=6, init=blobs[:6].copy()).labels
    )
    with pytest.raises(RuntimeError, match="needs an active distributed.Client"):
        backend.fit(dX, n_clusters=6)


class _StateKind:
    """An observer noting the kind of state each iteration hands it."""

    name = "state-kind"

    def __init__(self):
        self.kinds = set()

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.kinds.add(type(state).__name__)


def test_kmeansfw_fit_of_a_dask_array_runs_on_the_cluster(client, blobs):
    seen = _StateKind()
    params = {"n_clusters": 6, "init": "k-means||", "random_state": 0}
    dX = da.from_array(blobs, chunks=(1500, 4))
    on_cluster = kmeansfw.fit(dX, observers=[seen], **params)
    assert seen.kinds == {"ReducedState"}  # the backend's driver loop, labels on the workers
    _same(on_cluster, backend.fit(dX, **params))
    init = blobs[:6].copy()
    _same(kmeansfw.fit(dX, n_clusters=6, init=init), kmeansfw.fit(blobs, n_clusters=6, init=init))


def test_centered_data_is_compared_on_the_origin_on_the_cluster_too(client):
    # the driver's learner reads its sample of rows from the cluster: the same choice,
    # hence the same fit, as in memory
    X = np.random.default_rng(5).normal(size=(6000, 40))
    dX = da.from_array(X, chunks=(1500, 40))
    init = X[:5].copy()
    on_cluster = kmeansfw.fit(dX, n_clusters=5, init=init, max_iter=8)
    in_memory = kmeansfw.fit(X, n_clusters=5, init=init, max_iter=8)
    assert on_cluster.fitted["euclidean.at_origin"] is True
    assert in_memory.fitted["euclidean.at_origin"] is True
    _same(on_cluster, in_memory)


def test_a_far_outlier_gets_the_same_origin_on_the_cluster(client):
    # the bulk's median as the origin (a far row drags the mean): chosen by the driver
    # on the same drawn rows, so the same fit as in memory
    X = with_far_outlier(np.float64, 1e18, n=5999, d=3, centre=5.0)
    dX = da.from_array(X, chunks=(1500, 3))
    on_cluster = kmeansfw.fit(dX, n_clusters=4, random_state=2, max_iter=8)
    in_memory = kmeansfw.fit(X, n_clusters=4, random_state=2, max_iter=8)
    assert "euclidean.origin" in on_cluster.fitted
    origin = in_memory.fitted["euclidean.origin"]
    np.testing.assert_array_equal(on_cluster.fitted["euclidean.origin"], origin)
    _same(on_cluster, in_memory)
    assert in_memory.objective > 0


def test_float32_labels_left_to_the_rounding_are_warned_of_on_the_cluster(client):
    # as in memory (tests/test_float32_offset.py): the drawn rows fetched and checked
    X = two_far_groups(np.float32)
    with pytest.warns(kmeansfw.PrecisionWarning, match="rows checked"):
        km = KMeans(10, random_state=0).fit(da.from_array(X, chunks=(1000, 4)))
    assert np.count_nonzero(km.labels_ != exact_nearest(X, km.cluster_centers_, 0.0)[0]) > 400


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"assignment": "hamerly"},
        {"assignment": "yinyang"},
        {"distance": "cosine"},
        {"distance": "mahalanobis"},
        {"distance": "minkowski", "update": "mean"},
        {"convergence": ["unchanged"], "empty": "split-largest"},
    ],
    ids=[
        "euclidean",
        "hamerly",
        "yinyang",
        "cosine-spherical",
        "mahalanobis",
        "lp-mean",
        "unchanged",
    ],
)
def test_dask_fit_equals_threads_from_the_same_centroids(client, blobs, params):
    init = blobs[:6].copy()
    dX = da.from_array(blobs, chunks=(1500, 4))
    params = {"n_clusters": 6, "init": init, "random_state": 0, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kmeansfw.PairingWarning)
        _same(backend.fit(dX, **params), kmeansfw.fit(blobs, **params))


@pytest.mark.parametrize(("budget", "planned"), [(1e-300, 1), (float("inf"), 1 << 62)])
def test_the_smallest_and_an_unbounded_budget_fit_as_threads(
    client, blobs, budget, planned, monkeypatch
):
    # a budget under a byte is the smallest one on the cluster too (it once read as no
    # budget there: 64 MB), and infinity is an unbounded one in both
    from kmeansfw.backends.dask import fitting

    seen = []
    plan_block_rows = fitting.plan_block_rows
    signature = inspect.signature(plan_block_rows)

    def plan(*args, **kwargs):
        seen.append(signature.bind(*args, **kwargs).arguments["memory_budget"])
        return plan_block_rows(*args, **kwargs)

    monkeypatch.setattr(fitting, "plan_block_rows", plan)
    params = {"n_clusters": 6, "init": blobs[:6].copy(), "memory_budget_mb": budget}
    dX = da.from_array(blobs, chunks=(1500, 4))
    _same(backend.fit(dX, **params), kmeansfw.fit(blobs, **params))
    assert seen == [planned]


class _Objectives:
    """An observer noting every iteration's objective (``reads_costs`` as given)."""

    name = "objectives"

    def __init__(self, declared):
        self.reads_costs, self.seen = declared, []

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.seen.append(state.objective)


def test_iterations_bring_the_objective_only_when_declared(client, blobs, monkeypatch):
    # a fit that declares reading every objective gets it in the summaries; one whose
    # observer reads it undeclared gets it from a round over the chunks' stored
    # assignments: the same values, the same fit; nobody reading it: no round at all
    from kmeansfw.backends.dask import lloyd

    rounds = {"made": 0, "run": 0}
    make = lloyd._objective_round

    def counted(*args):
        rounds["made"] += 1
        compute = make(*args)

        def run():
            rounds["run"] += 1
            return compute()

        return run

    monkeypatch.setattr(lloyd, "_objective_round", counted)
    dX = da.from_array(blobs, chunks=(1500, 4))
    params = {"n_clusters": 6, "init": blobs[:6].copy(), "tol": 0, "max_iter": 6}
    fits, counts = {}, {}
    for declared in (True, False):
        seen = _Objectives(declared)
        fits[declared] = backend.fit(dX, observers=[seen], **params), seen.seen
        counts[declared] = dict(rounds)
        rounds.update(made=0, run=0)
    (asked, asked_seen), (left, left_seen) = fits[True], fits[False]
    assert len(asked_seen) == asked.n_iter == 6 and asked_seen == left_seen
    assert counts[True] == {"made": 0, "run": 0}  # in the summaries
    assert counts[False] == {"made": 6, "run": 6}  # one round per read
    _same(left, asked)
    _same(backend.fit(dX, **params), asked)
    assert rounds == {"made": 6, "run": 0}
    # split-largest computes the chunks' costs anyway: the objective comes with them
    rounds.update(made=0, run=0)
    seen = _Objectives(False)
    backend.fit(dX, observers=[seen], empty="split-largest", **params)
    assert rounds == {"made": 0, "run": 0} and len(seen.seen) == 6


def test_a_chunk_leaves_costs_the_iteration_does_not_read(blobs):
    # the worker's side, in process: without with_costs the chunk keeps an assignment
    # whose costs wait for a reader, and the summary carries no objective
    from kmeansfw.backends.dask import chunks
    from kmeansfw.core.config import Config

    strategies = Config(n_clusters=6, assignment="nearest").build_strategies()
    X, w = blobs[:1500], np.ones(1500)
    C = blobs[:6].copy()
    found = []
    for with_costs in (True, False):
        chunk = chunks._build_chunk(X, w, 0, 0, strategies, {}, 256, 6, memory_budget=1 << 20)
        assert chunk.data.memory_budget == 1 << 20
        summary = chunks._assign_chunk(chunk, C, (0, 1), True, False, with_costs)
        assert chunk.found.costs_ready is with_costs
        assert (summary.objective is None) is not with_costs
        # a chunk spilled or moved to another worker mid-fit: pickled with pending costs
        copy = pickle.loads(pickle.dumps(chunk))
        assert copy.found.costs_ready is with_costs
        objective = chunks._objective(chunk, C, (0, 1))  # computed now if it was left
        assert chunks._objective(copy, C, (0, 1)) == objective
        np.testing.assert_array_equal(copy.found.costs, chunk.found.costs)
        assert chunk.found.costs_ready and chunk.found.partials is None
        found.append((summary, objective, chunks._stored(chunk, C, (0, 1))[1]))
    (asked, asked_objective, asked_costs), (left, left_objective, left_costs) = found
    np.testing.assert_array_equal(asked_costs, left_costs)
    assert asked.objective == asked_objective == left_objective
    np.testing.assert_array_equal(asked.partial[0], left.partial[0])


def test_yinyang_with_several_groups_equals_threads(client, blobs):
    # k=24: two centroid groups, so the per-group bounds kept on the workers matter
    params = {"n_clusters": 24, "init": blobs[:24].copy(), "assignment": "yinyang"}
    dask_fit = backend.fit(da.from_array(blobs, chunks=(1500, 4)), **params)
    _same(dask_fit, kmeansfw.fit(blobs, **params))


def test_fortran_ordered_chunks_are_copied_to_c_order_by_kmeansfw(blobs, monkeypatch):
    # a chunk's validation on a worker (validate_X's c_ordered), without check_array
    import sklearn.utils

    from kmeansfw.backends.dask import arrays

    def refuse(*args, **kwargs):
        raise AssertionError("check_array was asked to convert the chunk")

    monkeypatch.setattr(sklearn.utils, "check_array", refuse)
    for dtype in (np.float64, np.float32):
        chunk = np.asfortranarray(blobs[:1500], dtype=dtype)
        ready = arrays._ready_block(chunk, np.dtype(dtype))
        assert ready.flags.c_contiguous and ready.dtype == dtype
        np.testing.assert_array_equal(ready, chunk)


def test_fortran_ordered_chunks_fit_as_c_ordered_ones(client, blobs):
    dX = da.from_array(blobs, chunks=(1500, 4)).map_blocks(np.asfortranarray)
    params = {"n_clusters": 6, "init": blobs[:6].copy(), "random_state": 0}
    _same(backend.fit(dX, **params), kmeansfw.fit(blobs, **params))


def test_float32_and_dask_sample_weight_kept(client, blobs):
    X = blobs.astype(np.float32)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=X.shape[0]).astype(np.float32)
    params = {"n_clusters": 6, "init": X[:6].copy(), "random_state": 0}
    dfit = backend.fit(
        da.from_array(X, chunks=(2000, 4)), sample_weight=da.from_array(w, chunks=1000), **params
    )
    tfit = kmeansfw.fit(X, sample_weight=w, **params)
    assert dfit.centroids.dtype == np.float32
    np.testing.assert_array_equal(dfit.labels, tfit.labels)
    assert dfit.objective == pytest.approx(tfit.objective, rel=1e-6)
    assert dfit.n_iter == tfit.n_iter


class _Empties:
    """An observer noting, per iteration, which clusters the assignment left empty."""

    name = "empties"

    def __init__(self):
        self.seen = []

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.seen.append(np.flatnonzero(state.cluster_weights == 0).tolist())


@pytest.mark.parametrize("empty", ["relocate-farthest", "split-largest"])
def test_an_empty_cluster_is_filled_as_threads_do(client, blobs, empty):
    init = np.vstack([blobs[:5], np.full((1, 4), 1e3)])  # the last centroid gets no member
    params = {"n_clusters": 6, "init": init, "empty": empty, "random_state": 0, "history": True}
    dseen, tseen = _Empties(), _Empties()
    dfit = backend.fit(da.from_array(blobs, chunks=(1000, 4)), observers=[dseen], **params)
    tfit = kmeansfw.fit(blobs, observers=[tseen], **params)
    assert tseen.seen[0] == [5]  # the case is real: cluster 5 is empty after iteration 1
    assert dseen.seen == tseen.seen
    assert np.unique(dfit.labels).size == 6  # and filled
    _same(dfit, tfit)
    assert [r["n_changed"] for r in dfit.history.records] == [
        r["n_changed"] for r in tfit.history.records
    ]


@pytest.mark.parametrize("init", ["k-means||", "k-means++", "random"])
def test_distributed_seedings_find_every_cluster_and_repeat(client, blobs, init):
    dX = da.from_array(blobs, chunks=(1500, 4))
    first = backend.fit(dX, n_clusters=6, init=init, random_state=3)
    again = backend.fit(dX, n_clusters=6, init=init, random_state=3)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert np.unique(first.labels).size == 6
    best_in_memory = kmeansfw.fit(blobs, n_clusters=6, init=init, random_state=3, n_init=3)
    assert first.objective <= best_in_memory.objective * 1.01


def test_estimator_with_a_dask_array(client, blobs):
    dX = da.from_array(blobs, chunks=(1500, 4))
    km = KMeans(n_clusters=6, init=blobs[:6].copy(), random_state=0).fit(dX)
    ref = KMeans(n_clusters=6, init=blobs[:6].copy(), random_state=0).fit(blobs)
    assert isinstance(km.labels_, np.ndarray) and km.labels_.dtype == np.int32
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    assert km.n_features_in_ == 4
    labels = km.predict(dX)
    assert isinstance(labels, da.Array)  # lazy
    np.testing.assert_array_equal(labels.compute(), ref.predict(blobs))
    distances = km.transform(dX)
    assert isinstance(distances, da.Array)
    np.testing.assert_allclose(distances.compute(), ref.transform(blobs), rtol=1e-9)
    assert km.score(dX) == pytest.approx(ref.score(blobs), rel=1e-9)
    loaded = pickle.loads(pickle.dumps(km))  # plain NumPy state: loads without a cluster
    np.testing.assert_array_equal(loaded.predict(blobs), ref.predict(blobs))
    with pytest.raises(ValueError, match="3 features"):
        km.predict(dX[:, :3])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"update": "median"}, "update strategy 'median' cannot run on a Dask cluster"),
        ({"update": "trimmed-mean"}, "'trimmed-mean' cannot run on a Dask cluster"),
        ({"update": "medoid"}, "'medoid' cannot run on a Dask cluster"),
        ({"init": "farthest-first"}, "init strategy 'farthest-first' cannot run"),
        ({"init": "random-partition"}, "init strategy 'random-partition' cannot run"),
        ({"batch_size": 100}, "batch_size"),
    ],
)
def test_what_cannot_run_distributed_is_refused_by_name(client, blobs, params, match):
    dX = da.from_array(blobs, chunks=(1500, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kmeansfw.PairingWarning)
        with pytest.raises((StrategyError, ValueError), match=match):
            backend.fit(dX, n_clusters=3, **params)


def test_kmedoids_refuses_dask_arrays_after_a_numpy_fit_too(blobs):
    # its fit refuses them; predict, transform and score gathered them to memory
    km = kmeansfw.KMedoids(3, random_state=0).fit(blobs[:300])
    dX = da.from_array(blobs, chunks=(1500, 4))
    for method in (km.fit, km.predict, km.transform, km.score):
        with pytest.raises(TypeError, match="KMedoids does not take Dask collections"):
            method(dX)


@pytest.mark.parametrize("distance", ["euclidean", "mahalanobis"])
def test_bad_input_is_refused_as_bad_data(client, blobs, distance):
    # validated eagerly, chunk by chunk, before any strategy (kmeansfw_learn) reads X
    bad = blobs.copy()
    bad[4000, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN") as in_memory:
        kmeansfw.fit(bad, n_clusters=3, distance=distance)
    with pytest.raises(ValueError, match="Input X contains NaN") as info:
        backend.fit(da.from_array(bad, chunks=(1500, 4)), n_clusters=3, distance=distance)
    assert not isinstance(info.value, StrategyError)
    assert type(info.value) is type(in_memory.value)
    assert str(info.value).startswith(str(in_memory.value))
    assert "row chunk 2 of the dask array, rows 3000 to 4499" in str(info.value)
    bad[4000, 1] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity") as info:
        backend.fit(da.from_array(bad, chunks=(1500, 4)), n_clusters=3, distance=distance)
    assert not isinstance(info.value, StrategyError)
    with pytest.raises(ValueError, match="sample_weight contains negative values") as info:
        backend.fit(
            da.from_array(blobs, chunks=(1500, 4)),
            n_clusters=3,
            distance=distance,
            sample_weight=-np.ones(6000),
        )
    assert not isinstance(info.value, StrategyError)
    for weights, message in [
        (np.ones(5999), "sample_weight has 5999 entries but X has 6000 samples"),
        (np.ones(6000) * 1j, "sample_weight must hold real numbers"),
        (da.from_array(np.ones(6000) * 1j, chunks=1500), "sample_weight must hold real numbers"),
    ]:
        with pytest.raises(ValueError, match=message) as info:
            backend.fit(
                da.from_array(blobs, chunks=(1500, 4)),
                n_clusters=3,
                distance=distance,
                sample_weight=weights,
            )
        assert not isinstance(info.value, StrategyError)


def test_a_chunk_whose_shape_is_not_the_metadata_is_refused(client):
    import dask

    def block(n):
        return np.ones((n, 3))

    parts = [
        da.from_delayed(dask.delayed(block)(10), shape=(10, 3), dtype=np.float64),
        da.from_delayed(dask.delayed(block)(7), shape=(8, 3), dtype=np.float64),  # wrong
    ]
    with pytest.raises(ValueError, match="row chunk 1 of the dask array holds 7 x 3"):
        backend.fit(da.concatenate(parts), n_clusters=2)


def test_empty_chunks_from_a_mask_are_dropped(client, blobs):
    dX = da.from_array(blobs, chunks=(1000, 4))
    mask = np.ones(blobs.shape[0], dtype=bool)
    mask[1000:2000] = False  # all of the second chunk
    mask[4500:4600] = False
    masked = dX[da.from_array(mask, chunks=1000)]
    assert any(np.isnan(c) for c in masked.chunks[0])  # sizes unknown until computed
    init = blobs[:6].copy()
    params = {"n_clusters": 6, "init": init, "random_state": 0}
    dfit = backend.fit(masked, **params)
    _same(dfit, kmeansfw.fit(blobs[mask], **params))
    km = KMeans(**params).fit(masked)
    np.testing.assert_array_equal(km.labels_, dfit.labels)
    np.testing.assert_array_equal(km.predict(masked).compute(), dfit.labels)
    # sample weights masked alike (their chunk sizes unknown too)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=blobs.shape[0])
    dw = da.from_array(w, chunks=1000)[da.from_array(mask, chunks=1000)]
    weighted = backend.fit(masked, sample_weight=dw, **params)
    _same(weighted, kmeansfw.fit(blobs[mask], sample_weight=w[mask], **params))


def test_scattered_centroids_give_bit_identical_results(client, blobs, monkeypatch):
    dX = da.from_array(blobs, chunks=(1500, 4))
    params = {"n_clusters": 6, "init": "k-means||", "assignment": "hamerly", "random_state": 2}
    inline = backend.fit(dX, **params)
    scattered = []
    real = client.scatter

    def scatter(data, **kwargs):
        scattered.append(kwargs.get("broadcast"))
        return real(data, **kwargs)

    # the threshold is read where the chunks are mapped (kmeansfw.backends.dask.cluster)
    monkeypatch.setattr(backend.cluster, "SCATTER_BYTES", 0)  # scatter every array argument
    monkeypatch.setattr(client, "scatter", scatter)
    broadcast = backend.fit(dX, **params)
    assert scattered and all(scattered)  # broadcast to every worker, once per call
    np.testing.assert_array_equal(broadcast.labels, inline.labels)
    np.testing.assert_array_equal(broadcast.centroids, inline.centroids)
    assert broadcast.objective == inline.objective
    assert broadcast.n_iter == inline.n_iter


class _KillWorker:
    """An observer that restarts one worker process (losing its chunks) at iteration 2."""

    name = "kill"

    def __init__(self, client):
        self.client = client
        self.killed = False

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        if state.iteration == 2 and not self.killed:
            worker = sorted(self.client.scheduler_info()["workers"])[0]
            self.client.restart_workers([worker])
            self.killed = True


def test_a_worker_lost_mid_fit_still_gives_the_same_result(client, blobs):
    dX = da.from_array(blobs, chunks=(1000, 4))
    params = {"n_clusters": 6, "init": blobs[:6].copy(), "convergence": ["unchanged"]}
    killer = _KillWorker(client)
    faulted = backend.fit(dX, observers=[killer], **params)
    assert killer.killed
    reference = kmeansfw.fit(blobs, **params)
    np.testing.assert_array_equal(faulted.labels, reference.labels)
    assert faulted.objective == pytest.approx(reference.objective, rel=1e-9)
    # a chunk that lost its labels counts all its rows as changed: at most one more pass
    assert reference.n_iter <= faulted.n_iter <= reference.n_iter + 1


class _Interrupt:
    """An observer that stops the fit (like Ctrl-C on the driver) after an iteration."""

    name = "interrupt"

    def __init__(self, run, iteration):
        self.run, self.iteration = run, iteration

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        if state.run == self.run and state.iteration == self.iteration:
            raise KeyboardInterrupt


class _Iterations:
    name = "iterations"

    def __init__(self):
        self.seen = []

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.seen.append((state.run, state.iteration, state.n_changed))


@pytest.mark.parametrize("assignment", ["nearest", "hamerly"])
def test_an_interrupted_fit_resumes_from_its_checkpoint(client, blobs, tmp_path, assignment):
    from kmeansfw.workflow.checkpoint import CheckpointWarning

    dX = da.from_array(blobs, chunks=(1500, 4))
    params = {
        "n_clusters": 6,
        "init": "random",
        "n_init": 2,
        "random_state": 5,
        "assignment": assignment,
        "convergence": ["unchanged"],
    }
    plain_iterations = _Iterations()
    plain = backend.fit(dX, observers=[plain_iterations], **params)
    last = max(it for run, it, _ in plain_iterations.seen if run == 1)
    assert last >= 3  # interrupted mid-run, not at the iteration that converged
    params["checkpoint"] = str(tmp_path / "ck")
    with pytest.raises(KeyboardInterrupt):
        backend.fit(dX, observers=[_Interrupt(1, last - 1)], **params)
    with np.load(tmp_path / "ck" / "state.npz") as npz:  # reduced: no per-sample labels
        assert {"centroids", "previous_centroids"} <= set(npz.files)
        assert "labels" not in npz.files
    resumed_iterations = _Iterations()
    resumed = backend.fit(dX, observers=[resumed_iterations], **params)
    _same(resumed, plain)
    # the run goes on after the checkpoint and counts changed labels exactly: the same
    # iterations as the uninterrupted fit, no extra pass
    rest = [s for s in plain_iterations.seen if s[:2] > (1, last - 1)]
    assert resumed_iterations.seen == rest
    # a finished checkpoint with the seed is the result, without iterating again
    again_iterations = _Iterations()
    _same(backend.fit(dX, observers=[again_iterations], **params), plain)
    assert again_iterations.seen == []
    # other content (one value in one chunk) does not resume it: a fresh fit, warned
    other = blobs.copy()
    other[4321, 2] += 1.0
    dother = da.from_array(other, chunks=(1500, 4))
    with pytest.warns(CheckpointWarning, match="different X"):
        fresh = backend.fit(dother, **params)
    _same(fresh, backend.fit(dother, **{**params, "checkpoint": None}))


@pytest.mark.parametrize("edit", ["centroids", "objective", "costs"])
def test_a_finished_checkpoint_changed_since_it_was_written_is_refused(
    client, blobs, tmp_path, edit
):
    # a finished checkpoint's best run is returned without fitting; rewritten
    # consistently (digests recomputed), it came back as the fit whatever it held
    from kmeansfw.core.errors import CheckpointError
    from tests.test_checkpoint import _arrays, _meta, _reseal

    dX = da.from_array(blobs, chunks=(1500, 4))
    folder = tmp_path / "ck"
    params = {"n_clusters": 6, "n_init": 2, "random_state": 5, "checkpoint": str(folder)}
    plain = backend.fit(dX, **params)
    _same(backend.fit(dX, **params), plain)  # untouched: returned as saved
    meta, arrays = _meta(folder), _arrays(folder)
    if edit == "centroids":
        arrays["best_centroids"] = arrays["best_centroids"] + 1.0
    elif edit == "objective":
        meta["best"]["objective"] *= 0.5
    else:
        arrays["best_costs"] = arrays["best_costs"] * 0.5
    _reseal(folder, meta, arrays)
    with pytest.raises(CheckpointError, match="its best run has"):
        backend.fit(dX, **params)


_OUT_OF_CORE = """
import os, sys, threading, time
import numpy as np
from kmeansfw import KMeans

path, = sys.argv[1:]
X = np.load(path, mmap_mode="r")
for assignment in ("nearest", "hamerly"):  # compile the kernels before measuring
    KMeans(n_clusters=16, init="k-means||", assignment=assignment, max_iter=2,
           random_state=0, n_threads=2).fit(np.array(X[:70_000]))

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
peak = [anon()]
start = peak[0]
done = threading.Event()
def watch():
    while not done.is_set():
        peak[0] = max(peak[0], anon())
        time.sleep(0.005)
threading.Thread(target=watch, daemon=True).start()
for assignment in ("nearest", "hamerly"):
    KMeans(n_clusters=16, init="k-means||", assignment=assignment, max_iter=5,
           random_state=0, n_threads=2).fit(X)
done.set()
print(peak[0] - start, X.nbytes)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memmap_fits_stream_with_bounded_anonymous_memory(tmp_path):
    """A .npy opened with mmap_mode="r" is fitted by the threads backend without being
    read into anonymous memory: growth stays far below the data's size."""
    X = np.random.default_rng(0).normal(size=(400_000, 64))
    np.save(tmp_path / "x.npy", X)
    del X
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_OUT_OF_CORE), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    growth, nbytes = map(int, out.stdout.split())
    assert growth < 0.35 * nbytes, (growth, nbytes)


def test_a_criterion_answering_other_than_a_bool_is_named(client, blobs):
    dX = da.from_array(blobs, chunks=(1500, 4))
    with pytest.raises(StrategyError, match="answers-test.*returned 'no'"):
        backend.fit(dX, n_clusters=6, convergence=["tol", Answers("no")], random_state=0)


def test_a_checkpoint_path_that_cannot_be_a_folder_fails_before_any_work(client, blobs, tmp_path):
    from kmeansfw.core.errors import CheckpointError

    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    dX = da.from_array(blobs, chunks=(1500, 4))
    with pytest.raises(CheckpointError, match="is a file, not a folder"):
        backend.fit(dX, n_clusters=6, random_state=0, checkpoint=str(taken))
    with pytest.raises(CheckpointError, match="cannot create the checkpoint folder"):
        backend.fit(dX, n_clusters=6, random_state=0, checkpoint=str(taken / "inside"))
    assert taken.read_text() == "not a folder"


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")
def test_a_relocation_in_the_last_iteration_is_followed_by_an_assignment(client):
    X = np.array([[0.0, 2], [1, 0], [0, 2], [1, 2], [0, 2], [1, 0]])
    init = np.array([[1.16, 0.97], [2.18, -0.47], [-0.73, 1.37], [0.35, 2.48]])
    fit = backend.fit(da.from_array(X, chunks=(3, 2)), n_clusters=4, init=init)
    np.testing.assert_array_equal(fit.labels, [2, 0, 2, 1, 2, 0])
    assert fit.objective == 0.0
