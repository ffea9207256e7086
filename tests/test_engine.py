"""The engine: determinism, threads, dtype, observers, wrappers, criteria, blocks."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw import KMeans
from kmeansfw.core.data import (
    BLOCK_TEMPORARIES,
    INLINE_ROW_BYTES,
    MIN_BLOCK_ROWS,
    FitData,
    plan_block_rows,
)
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins
from tests.conftest import Answers


@pytest.fixture(scope="module")
def big():
    X, _ = make_blobs(40_000, n_features=8, centers=12, random_state=3)
    return X


def test_same_seed_same_result(blobs):
    X, _ = blobs
    a = KMeans(5, init="random", n_init=3, random_state=11).fit(X)
    b = KMeans(5, init="random", n_init=3, random_state=11).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    c = KMeans(5, init="random", n_init=3, random_state=np.random.default_rng(11)).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, c.cluster_centers_)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [12, 128])  # inline (numba's threads) and worker threads
def test_bit_identical_whatever_the_thread_count(big, dtype, k):
    from kmeansfw.core.data import INLINE_MAX_CLUSTERS

    X = big.astype(dtype)
    fits = [KMeans(k, random_state=5, n_threads=t, memory_budget_mb=0.05).fit(X) for t in (1, 2, 3)]
    data = FitData.build(X, n_clusters=k, memory_budget=int(0.05 * 2**20), splits_work=True)
    # the threads share the work
    assert len(data.tasks) > 3 and data.inline == (k < INLINE_MAX_CLUSTERS)
    for other in fits[1:]:
        np.testing.assert_array_equal(other.cluster_centers_, fits[0].cluster_centers_)
        np.testing.assert_array_equal(other.labels_, fits[0].labels_)
        assert other.inertia_ == fits[0].inertia_


@pytest.mark.parametrize(
    ("dtype", "d", "k"), [(np.float32, 24, 5), (np.float64, 256, 8), (np.float32, 200, 3)]
)
def test_row_search_fits_bit_identical_whatever_the_thread_count_and_blocks(dtype, d, k):
    # the row search (no matrix product: euclidean.row_search_pays) on one to three
    # threads, in one block and in many (inline at 24 features, worker threads at 200
    # and 256): the same centroids, labels and inertia for any number of threads (a
    # budget that changes the blocks changes how the mean's sums are grouped: the same
    # labels), and the same as scikit-learn's from the same centroids.  Inline data is
    # one block while its rows' label vectors fit the budget (24 bytes a row): 0.02 MB
    # cuts it too
    from kmeansfw.kernels import euclidean

    assert euclidean.row_search_pays(d, k, np.dtype(dtype).itemsize)
    X, _ = make_blobs(6000, n_features=d, centers=k, cluster_std=6.0, random_state=7)
    X = X.astype(dtype)
    params = dict(random_state=0, max_iter=15, tol=0)
    for budget in (64.0, 0.02):
        data = FitData.build(
            X, n_clusters=k, memory_budget=int(budget * 2**20), splits_work=True
        )
        assert sum(map(len, data.tasks)) >= (1 if budget == 64.0 else 5)
        assert data.inline == (d < 32)
        fits = [KMeans(k, n_threads=t, memory_budget_mb=budget, **params).fit(X) for t in (1, 2, 3)]
        for other in fits[1:]:
            np.testing.assert_array_equal(other.cluster_centers_, fits[0].cluster_centers_)
            np.testing.assert_array_equal(other.labels_, fits[0].labels_)
            assert other.inertia_ == fits[0].inertia_ and other.n_iter_ == fits[0].n_iter_
        if budget == 64.0:
            whole = fits[0]
    np.testing.assert_array_equal(fits[0].labels_, whole.labels_)
    np.testing.assert_allclose(fits[0].cluster_centers_, whole.cluster_centers_, rtol=1e-6)
    init = X[np.random.default_rng(1).choice(len(X), k, replace=False)].astype(np.float64)
    ours = KMeans(k, init=init, n_init=1, max_iter=15, tol=0).fit(X.astype(np.float64))
    theirs = SkKMeans(k, init=init, n_init=1, max_iter=15, tol=0).fit(X.astype(np.float64))
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-7)


@pytest.mark.parametrize(
    ("n", "d", "rows", "by_rows", "inline"),
    [
        (6000, 128, 64, True, True),
        (6000, 160, 64, True, False),
        (3000, 520, 32, False, True),
        (6000, 520, 32, False, False),
    ],
)
def test_float32_short_products_bit_identical_whatever_the_threads_and_blocks(
    n, d, rows, by_rows, inline
):
    # float32 at 24 clusters: products by rows of 64 rows, and, for centroids of more than
    # BY_ROWS_MAX_VALUES values, transposed products of 32 rows, inline (numba's threads)
    # and in worker threads; the same fit on one to three threads and in more, smaller
    # blocks
    from kmeansfw.kernels import euclidean

    X, _ = make_blobs(n, n_features=d, centers=24, cluster_std=8.0, random_state=2)
    X = X.astype(np.float32)
    if by_rows:
        assert euclidean.by_rows_product(d, 24, itemsize=4) == rows
    else:
        assert euclidean.by_rows_product(d, 24, itemsize=4) == 0
        assert euclidean.product_rows(d, 24, itemsize=4) == rows
    assert FitData.build(X, n_clusters=24, splits_work=True).inline == inline
    params = dict(random_state=0, max_iter=12, tol=0)
    fits = [KMeans(24, n_threads=t, **params).fit(X) for t in (1, 2, 3)]
    fits.append(KMeans(24, n_threads=2, memory_budget_mb=0.5, **params).fit(X))
    for other in fits[1:]:
        np.testing.assert_array_equal(other.cluster_centers_, fits[0].cluster_centers_)
        np.testing.assert_array_equal(other.labels_, fits[0].labels_)
        assert other.inertia_ == fits[0].inertia_


@pytest.mark.parametrize("k", [8, 200])
def test_few_rows_of_many_features_run_inline_and_bit_identical(launches, k):
    # one block for worker threads (at most BALANCE_MIN_ROWS rows): inline instead, its
    # kernels splitting the rows between numba's threads, whatever the features and k
    from kmeansfw.core.data import INLINE_MAX_FEATURES, runs_inline

    X = np.random.default_rng(4).normal(size=(3000, 300))
    assert X.shape[1] > INLINE_MAX_FEATURES and not runs_inline(3000, 300, k)  # beyond it
    assert FitData.build(X, n_clusters=k, splits_work=True).inline
    fits = [KMeans(k, random_state=1, max_iter=10, tol=0, n_threads=t).fit(X) for t in (1, 2)]
    # the search (or the compiled Lloyd iterations holding it) on numba's two threads
    searches = {"_product_threaded/search", "_product_threaded"}
    assert any(name in searches and team == 2 for name, _, team in launches)
    # the same single block as worker threads would take: the same fit
    import kmeansfw.core.data as core_data

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core_data, "one_worker_block", lambda *args: False)
        assert not FitData.build(X, n_clusters=k, splits_work=True).inline
        workers = KMeans(k, random_state=1, max_iter=10, tol=0, n_threads=2).fit(X)
    np.testing.assert_array_equal(workers.cluster_centers_, fits[0].cluster_centers_)
    np.testing.assert_array_equal(workers.labels_, fits[0].labels_)
    assert workers.inertia_ == fits[0].inertia_ and workers.n_iter_ == fits[0].n_iter_
    np.testing.assert_array_equal(fits[0].cluster_centers_, fits[1].cluster_centers_)
    np.testing.assert_array_equal(fits[0].labels_, fits[1].labels_)
    assert fits[0].inertia_ == fits[1].inertia_


@pytest.mark.parametrize(
    ("n", "d", "k", "dtype"), [(300_000, 2, 8, np.float32), (270_000, 7, 3, np.float64)]
)
def test_many_rows_of_few_features_in_one_inline_block_run_inline_and_bit_identical(
    launches, n, d, k, dtype
):
    # past INLINE_MAX_ROWS, within the other limits, one block inline: the compiled
    # Lloyd iterations on numba's threads; the same fit on one thread, bit for bit, and
    # the fit worker threads make to rounding (their blocks group the mean's sums
    # otherwise: the same labels, centroids within a few ulps)
    import kmeansfw.core.data as core_data
    from kmeansfw.core.data import INLINE_MAX_ROWS, runs_inline

    X = np.random.default_rng(n + d).normal(size=(n, d)).astype(dtype)
    assert n >= INLINE_MAX_ROWS and not runs_inline(n, d, k)
    built = FitData.build(X, n_clusters=k, splits_work=True)
    assert built.inline and built.single_block == slice(0, n)
    _inline_fits_against_workers(
        X,
        k,
        lambda patch: patch.setattr(core_data, "one_inline_block", lambda *args: False),
        launches,
    )


def _inline_fits_against_workers(X, k, to_workers, launches=None):
    # X fitted inline on one thread and two (bit for bit the same fit; with the
    # ``launches`` fixture's record, the two-thread fit ran the compiled iterations on
    # numba's team of two), then on worker threads once ``to_workers(patch)`` has
    # changed the rule that takes X inline (to rounding: their blocks group the mean's
    # sums otherwise; the same labels here)
    fits = [KMeans(k, random_state=1, max_iter=4, tol=0, n_threads=t).fit(X) for t in (1, 2)]
    if launches is not None:
        assert any(name.endswith("_threaded") and team == 2 for name, _, team in launches)
    with pytest.MonkeyPatch.context() as patch:
        to_workers(patch)
        assert not FitData.build(X, n_clusters=k, splits_work=True).inline
        workers = KMeans(k, random_state=1, max_iter=4, tol=0, n_threads=2).fit(X)
    np.testing.assert_array_equal(fits[1].cluster_centers_, fits[0].cluster_centers_)
    np.testing.assert_array_equal(fits[1].labels_, fits[0].labels_)
    assert fits[1].inertia_ == fits[0].inertia_ and fits[1].n_iter_ == fits[0].n_iter_
    np.testing.assert_allclose(workers.cluster_centers_, fits[0].cluster_centers_, rtol=1e-5)
    np.testing.assert_array_equal(workers.labels_, fits[0].labels_)
    assert workers.n_iter_ == fits[0].n_iter_
    assert workers.inertia_ == pytest.approx(fits[0].inertia_, rel=1e-6)


@pytest.mark.parametrize(
    ("n", "d", "k", "dtype"), [(40_000, 64, 8, np.float32), (36_000, 64, 5, np.float64)]
)
def test_mid_size_data_of_2_21_to_2_22_values_runs_inline(n, d, k, dtype):
    # between 2^21 and INLINE_MAX_ELEMENTS (2^22) values, fewer than 2^18 rows: inline on
    # numba's threads (worker threads before the limit was raised), the same fit on one
    # thread and two, bit for bit; the fit worker threads make to rounding (their blocks
    # group the mean's sums otherwise: the same labels here, centroids within a few ulps)
    import kmeansfw.core.data as core_data
    from kmeansfw.core.data import INLINE_MAX_ELEMENTS

    X = np.random.default_rng(n + d).normal(size=(n, d)).astype(dtype)
    assert INLINE_MAX_ELEMENTS == 1 << 22 and (1 << 21) < n * d < INLINE_MAX_ELEMENTS
    assert FitData.build(X, n_clusters=k, splits_work=True).inline

    def to_workers(patch):
        patch.setattr(core_data, "INLINE_MAX_ELEMENTS", 1 << 21)
        patch.setattr(core_data, "INLINE_FEW_MAX_ELEMENTS", 1 << 21)

    _inline_fits_against_workers(X, k, to_workers)


@pytest.mark.parametrize(("n", "d", "k", "dtype"), [(70_000, 64, 8, np.float32)])
def test_data_of_2_22_to_2_24_values_runs_inline_with_few_centroids(n, d, k, dtype):
    # 2^22 to INLINE_FEW_MAX_ELEMENTS (2^24) values, at most 32 centroids: inline as one
    # block (its rows' label vectors fit the budget), the same fit on one thread and two
    # bit for bit; worker threads (the limit at 2^22 again) to rounding
    import kmeansfw.core.data as core_data
    from kmeansfw.core.data import INLINE_FEW_MAX_ELEMENTS, INLINE_MAX_ELEMENTS, runs_inline

    X = np.random.default_rng(n + d).normal(size=(n, d)).astype(dtype)
    assert INLINE_MAX_ELEMENTS < n * d < INLINE_FEW_MAX_ELEMENTS
    assert FitData.build(X, n_clusters=k, splits_work=True).single_block == slice(0, n)
    assert not runs_inline(n, d, 33)  # more centroids: the 2^22 limit

    def to_workers(patch):
        patch.setattr(core_data, "INLINE_FEW_MAX_ELEMENTS", INLINE_MAX_ELEMENTS)

    _inline_fits_against_workers(X, k, to_workers)


def _built(n, d, k, **kw):
    # the plan of a splitting fit (the built-in strategies) on (n, d) float64 zeros
    X = np.zeros((n, d))
    return FitData.build(X, n_clusters=k, validate=False, splits_work=True, **kw)


def test_without_numba_the_inline_rules_count_buffers_as_before(monkeypatch):
    # the NumPy twins hold block-shaped buffers: their plans count four (rows,
    # max(k, d)) buffers against the budget, keep the 2^22 limit for any k and no
    # limit of 32 centroids past 2^18 rows (with numba: one block by label vectors)
    import kmeansfw.core.data as core_data
    from kmeansfw.core.data import one_inline_block, runs_inline

    budget = 64 << 20
    built = _built
    assert runs_inline(200_000, 64, 8) and built(1_000_000, 2, 3).inline
    assert not one_inline_block(300_000, 2, 64, 4, 1 << 40)
    assert built(60_000, 64, 3).single_block == slice(0, 60_000)
    monkeypatch.setattr(core_data, "kernels_compiled", lambda: False)
    assert not runs_inline(200_000, 64, 8) and not one_inline_block(1_000_000, 2, 3, 8, budget)
    assert one_inline_block(300_000, 2, 64, 4, 1 << 40)  # as many as the buffers allow
    assert not built(1_000_000, 2, 3).inline  # float64: two blocks inline, so workers
    twins = built(60_000, 64, 3)  # (rows, 64) float64 buffers: 32768 rows a block
    assert twins.inline and twins.block_rows * 64 * 8 * BLOCK_TEMPORARIES <= budget
    assert len(twins.tasks) == 2


def test_transform_plans_its_answers_within_the_budget(monkeypatch):
    # the fit's plan is one block (its rows' label vectors fit 1 MB); transform's (rows,
    # k) answers are planned for that width within the budget, and are the distances
    from scipy.spatial.distance import cdist

    from kmeansfw.engine import steps

    X = np.random.default_rng(5).normal(size=(20_000, 8))
    k, budget = 40, 1 << 20
    assert FitData.build(X, n_clusters=k, memory_budget=budget, splits_work=True).single_block
    km = KMeans(k, random_state=0, max_iter=3, memory_budget_mb=1).fit(X)
    rows: list = []
    real = steps.block_matrix

    def spy(hook, name, data, block, *args):
        rows.append(block.stop - block.start)
        return real(hook, name, data, block, *args)

    monkeypatch.setattr(steps, "block_matrix", spy)
    distances = km.transform(X)
    assert len(rows) > 1 and sum(rows) == 20_000
    assert max(rows) * k * 8 * BLOCK_TEMPORARIES <= budget
    np.testing.assert_allclose(distances, cdist(X, km.cluster_centers_), rtol=1e-9, atol=1e-9)


def _transform_peak(km, X):
    """A fitted model's ``transform`` of X and the peak of memory traced while it ran
    (after one small transform, so that nothing is compiled or planned for the first time
    inside the measurement)."""
    import tracemalloc

    km.transform(X[:100])
    tracemalloc.start()
    try:
        distances = km.transform(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return distances, peak


@pytest.mark.parametrize("n_threads", [1, 2])
def test_transform_holds_its_answer_once(n_threads):
    # each task's (rows, k) block was held until every task had run, then copied into the
    # answer: twice the answer's memory (274 MB for a 122 MB transform); now each task
    # writes its rows as it finishes, so a block per thread is all that comes on top
    X = np.random.default_rng(6).normal(size=(100_000, 8))
    k, budget_mb = 32, 2
    km = KMeans(k, random_state=0, max_iter=2, memory_budget_mb=budget_mb, n_threads=n_threads)
    distances, peak = _transform_peak(km.fit(X[:5000]), X)
    answer = distances.nbytes  # 25.6 MB
    assert peak <= answer + n_threads * budget_mb * 2**20 + 2**20, (peak, answer)
    np.testing.assert_allclose(
        distances[:50], np.linalg.norm(X[:50, None] - km.cluster_centers_[None], axis=2), rtol=1e-9
    )


def test_transform_under_an_executor_holds_one_run_of_answers():
    # an executor's map returns its answers as a list: every block's (rows, k) answer was
    # held until the last had run, then copied (the answer twice over); the tasks now
    # go to it in runs whose answers fit the budget per thread, written before the next
    from kmeansfw.engine.executors import PickleShuffleExecutor, ThreadExecutor, answer_runs

    class Counting(ThreadExecutor):
        def __init__(self):
            super().__init__(4)
            self.runs = []

        def map(self, fn, chunks):
            self.runs.append(len(chunks))
            return super().map(fn, chunks)

    X = np.random.default_rng(7).normal(size=(100_000, 8))
    k, budget_mb = 32, 1
    executor = Counting()
    # one thread for the fit, four for the executor: its runs take a task for each of
    # its threads, not for the fit's
    km = KMeans(k, random_state=0, max_iter=2, memory_budget_mb=budget_mb, n_threads=1,
                executor=executor)
    km.fit(X[:5000])
    executor.runs.clear()
    distances, peak = _transform_peak(km, X)
    answer = distances.nbytes  # 25.6 MB
    # after the warm-up's one run, several, each with a task for each of the executor's
    # threads but the last
    runs = executor.runs[1:]
    assert executor.runs[0] == 1 and len(runs) > 1 and min(runs[:-1]) >= 4, executor.runs
    # the answer, a run of answers (the budget per executor thread) and each thread's
    # block buffers (the budget each), and some slack: all the answers held at once took
    # the answer twice over (53.3e6 bytes)
    assert peak <= answer + 8 * budget_mb * 2**20 + 2 * 2**20, (peak, answer)
    plain = KMeans(k, random_state=0, max_iter=2, memory_budget_mb=budget_mb).fit(X[:5000])
    np.testing.assert_array_equal(distances, plain.transform(X))
    # an executor that runs its tasks elsewhere gets one map (each map ships the data)
    class Elsewhere(PickleShuffleExecutor):
        def __init__(self):
            super().__init__(seed=3)
            self.maps = 0

        def map(self, fn, chunks):
            self.maps += 1
            return super().map(fn, chunks)

    elsewhere = Elsewhere()
    km.set_params(executor=elsewhere)
    np.testing.assert_array_equal(km.transform(X[:20_000]), plain.transform(X[:20_000]))
    assert elsewhere.maps == 1 and elsewhere.chunks_run > 1
    # the runs: consecutive, within the limit once they hold ``least`` tasks
    tasks = [[slice(0, 10)], [slice(10, 30)], [slice(30, 35), slice(35, 40)], [slice(40, 100)]]
    assert answer_runs(tasks, 8, 240) == [tasks[:2], [tasks[2]], [tasks[3]]]
    assert answer_runs(tasks, 8, 240, 2) == [tasks[:2], tasks[2:]]
    assert answer_runs(tasks, 8, 1 << 30) == [tasks]
    assert answer_runs([], 8, 240) == []


def test_bit_identical_whatever_the_thread_count_with_bounds_inline(launches, monkeypatch):
    # mid-size data with 32 to 127 clusters runs inline, auto keeping hamerly's bounds:
    # its searches split their rows between numba's threads
    from kmeansfw.strategies.assignment import Auto
    from tests.test_bounded_assignment import _spy_on_auto

    X, _ = make_blobs(20_000, n_features=16, centers=40, cluster_std=5.0, random_state=3)
    data = FitData.build(X, n_clusters=40, splits_work=True)
    assert data.inline and Auto(metric=True).bounded_by(20_000, 16, 40) == "hamerly"
    bounded = _spy_on_auto(monkeypatch, "_HAMERLY")
    params = dict(random_state=2, max_iter=15, tol=0)
    fits = [KMeans(40, n_threads=t, **params).fit(X) for t in (1, 2, 3)]
    assert len(bounded) >= 3 * 4  # auto kept the bounds on passes of each fit (6 here)
    assert any(name == "_product_threaded/search" and team > 1 for name, _, team in launches)
    plain = KMeans(40, assignment="nearest", **params).fit(X)
    for other in [*fits[1:], plain]:
        np.testing.assert_array_equal(other.cluster_centers_, fits[0].cluster_centers_)
        np.testing.assert_array_equal(other.labels_, fits[0].labels_)
        assert other.inertia_ == fits[0].inertia_


@pytest.fixture
def launches(monkeypatch):
    """The launches of numba's threads, as (kernel name, chunks, team size); skips where
    numba has no thread-safe layer (the parallel variants never run there).  The threaded
    Lloyd iterations' kernels (``lloyd._pair_threaded``, ``_direct_threaded`` and the
    others of ``lloyd._kernel``) are named with ``/search`` when they made one search
    (``lloyd.threaded_search``: no steps)."""
    import numba

    from kmeansfw.kernels import euclidean, lloyd, seeding, update

    if not euclidean.parallel_ready():
        pytest.skip("numba has no thread-safe threading layer here")
    seen = []
    original = euclidean.launch
    assert update.launch is original and seeding.launch is original
    assert lloyd.launch is original

    def counting(kernel, *args):
        def kernel_seeing_its_team(*inner):
            name = kernel.__name__
            if name.endswith("_threaded") and inner[7] == 0:  # the iterations' kernels
                name += "/search"
            seen.append((name, inner[-1], numba.get_num_threads()))
            return kernel(*inner)

        kernel_seeing_its_team.__name__ = kernel.__name__
        return original(kernel_seeing_its_team, *args)

    monkeypatch.setattr(euclidean, "launch", counting)
    monkeypatch.setattr(update, "launch", counting)
    monkeypatch.setattr(seeding, "launch", counting)
    monkeypatch.setattr(lloyd, "launch", counting)
    return seen


@pytest.mark.parametrize(
    ("n", "d", "k"), [(3000, 2, 8), (3000, 64, 10), (3000, 8, 40), (30000, 64, 12)]
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_small_fits_are_bit_identical_whatever_numba_threads(n, d, k, dtype, launches):
    # small data (and mid-size data with few clusters: 30000 x 64, 64-row products) runs
    # inline, its nearest search and cost blocks split between numba's threads; a fit,
    # predict, transform and score give the bits of one thread
    import numba

    X = make_blobs(n, n_features=d, centers=k, random_state=1)[0].astype(dtype)
    serial = KMeans(k, random_state=2, n_threads=1).fit(X)
    assert not launches
    for threads in (2, 3):
        launches.clear()
        other = KMeans(k, random_state=2, n_threads=threads).fit(X)
        kernels = {name for name, _, _ in launches}
        assert kernels & {
            *(f"{name}{use}" for name in ("_pair", "_direct", "_rows", "_screened_rows",
                                          "_product")
              for use in ("_threaded", "_threaded/search")),
        }
        if d >= 64:  # k-means++'s candidates: enough work for the threads, in its steps
            # in one call (3000 rows) or step by step (30000 rows: above the one call's work)
            fused = "_plusplus_sq_euclidean_parallel" if n < 10000 else "_sq_cost_parallel"
            assert fused in kernels
        # the mean's sums ride in the search's pass (split with its rows): no pass of
        # their own, split by columns
        assert "_accumulate_parallel" not in kernels
        team = min(threads, numba.config.NUMBA_NUM_THREADS)  # bounded by n_threads
        assert {(chunks, size) for _, chunks, size in launches} == {(threads, team)}
        np.testing.assert_array_equal(other.cluster_centers_, serial.cluster_centers_)
        np.testing.assert_array_equal(other.labels_, serial.labels_)
        assert other.inertia_ == serial.inertia_ and other.n_iter_ == serial.n_iter_
        launches.clear()
        np.testing.assert_array_equal(other.predict(X), serial.predict(X))
        np.testing.assert_array_equal(other.transform(X), serial.transform(X))
        assert other.score(X) == serial.score(X)
        assert launches  # predict, transform and score split their rows too


def test_concurrent_small_fits_launch_numba_threads_safely(launches):
    # fits in several user threads at once each launch numba's threads: a thread-safe
    # layer runs them side by side (numba's workqueue layer would abort the process)
    from concurrent.futures import ThreadPoolExecutor

    X, _ = make_blobs(3000, n_features=64, centers=10, random_state=1)
    expected = KMeans(10, random_state=2, n_threads=1).fit(X)

    def fit(seed):
        return KMeans(10, random_state=2, n_threads=2).fit(X)

    with ThreadPoolExecutor(4) as pool:
        fits = list(pool.map(fit, range(8)))
    assert len(launches) >= 8
    for other in fits:
        np.testing.assert_array_equal(other.labels_, expected.labels_)
        assert other.inertia_ == expected.inertia_


def _fit_in_child(X, path):
    np.save(path, KMeans(10, random_state=2, n_threads=2).fit(X).labels_)


def _fit_in_forked_child(X, path):
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=_fit_in_child, args=(X, path))
    child.start()
    child.join(timeout=120)
    if child.is_alive():  # hung: say so rather than leave it running
        child.kill()
        child.join()
        raise AssertionError("the forked child's fit did not finish in 120 s")
    assert child.exitcode == 0  # GNU OpenMP would have killed it (-15)
    return np.load(path)


def test_a_forked_child_fits_large_data_after_its_parent_did(tmp_path):
    # the parent's worker threads, their lock and its BLAS hold do not survive a fork:
    # the child starts its own (it hung waiting on the parent's pool before)
    X, _ = make_blobs(4500, n_features=130, centers=10, random_state=1)
    data = FitData.build(X, n_clusters=10, splits_work=True)  # as the fit plans it
    assert not data.inline and len(data.tasks) > 1  # blocks handed to worker threads
    parent = KMeans(10, random_state=2, n_threads=2).fit(X)
    labels = _fit_in_forked_child(X, tmp_path / "labels.npy")
    np.testing.assert_array_equal(labels, parent.labels_)


def test_a_forked_child_fits_after_its_parent_ran_numba_threads(launches, tmp_path):
    # GNU OpenMP kills a forked child that launches after its parent did: the child
    # takes the serial kernels instead, with the same result
    X, _ = make_blobs(3000, n_features=64, centers=10, random_state=1)
    parent = KMeans(10, random_state=2, n_threads=2).fit(X)  # the parent launches first
    assert launches
    labels = _fit_in_forked_child(X, tmp_path / "labels.npy")
    np.testing.assert_array_equal(labels, parent.labels_)


def test_a_forked_child_fits_when_other_code_started_numba_threads(monkeypatch, tmp_path):
    # numba's layer started by other code (the user's own prange, another library)
    # before kmeansfw's first probe: kmeansfw cannot tell whether a fork came between,
    # so it leaves that layer alone unless it is tbb (which survives a fork)
    from kmeansfw.kernels import _compile

    if not _compile.parallel_ready():
        pytest.skip("numba has no thread-safe threading layer here")
    _compile._probe_kernel(np.empty(4, dtype=np.int64))  # "other code" starts the layer
    monkeypatch.setattr(_compile, "_probed", None)  # kmeansfw has not probed yet
    X, _ = make_blobs(3000, n_features=64, centers=10, random_state=1)
    labels = _fit_in_forked_child(X, tmp_path / "labels.npy")
    expected = KMeans(10, random_state=2, n_threads=1).fit(X).labels_
    np.testing.assert_array_equal(labels, expected)
    monkeypatch.setattr(_compile, "_probed", None)
    import numba

    assert _compile.parallel_ready() == (numba.threading_layer() == "tbb")


@pytest.mark.parametrize("assignment", ["hamerly", "yinyang"])
def test_bound_based_fits_are_bit_identical_whatever_the_thread_count(big, assignment):
    X = big.astype(np.float32)
    fits = [
        KMeans(40, assignment=assignment, random_state=5, n_threads=t, memory_budget_mb=0.05).fit(X)
        for t in (1, 2, 3)
    ]
    for other in fits[1:]:
        np.testing.assert_array_equal(other.cluster_centers_, fits[0].cluster_centers_)
        np.testing.assert_array_equal(other.labels_, fits[0].labels_)
        assert other.inertia_ == fits[0].inertia_ and other.n_iter_ == fits[0].n_iter_


def test_float32_stays_float32(blobs):
    X = blobs[0].astype(np.float32)
    km = KMeans(4, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == np.float32
    assert km.transform(X).dtype == np.float32
    assert km.labels_.dtype == np.int32


def test_blocks_bound_memory():
    # the (rows, k) block never exceeds the budget, whatever n is
    for n in (10, 10**5, 10**9):
        rows = plan_block_rows(n, 1024, 8, memory_budget=2**20)
        assert rows == MIN_BLOCK_ROWS or rows * 1024 * 8 * 4 <= 2**20
        assert rows <= max(MIN_BLOCK_ROWS, n)


def test_small_data_is_one_block_when_it_fits_and_large_data_is_split():
    from kmeansfw.core.data import MIN_BLOCKS, SINGLE_BLOCK_ELEMENTS

    budget = 64 << 20
    assert plan_block_rows(20_000, 8, 8, budget, n_features=8) == 20_000
    n = SINGLE_BLOCK_ELEMENTS // 8  # at the threshold: split for balance again
    assert plan_block_rows(n, 8, 8, budget, n_features=8) < n
    assert plan_block_rows(n, 8, 8, budget, n_features=8, inline=True) == n  # mid-size
    rows = plan_block_rows(10**6, 8, 8, budget, n_features=8)
    assert -(-(10**6) // rows) >= MIN_BLOCKS  # at least MIN_BLOCKS blocks, whole sub-blocks
    # one block only when its (rows, k) buffers fit: wide k still splits small data
    assert plan_block_rows(20_000, 4096, 8, budget, n_features=8) < 20_000


@pytest.mark.parametrize("n", [4_097, 5_000, 8_192, 12_000, 20_000, 28_700, 30_000, 10**5])
def test_data_for_worker_threads_is_cut_into_even_shares(n):
    from kmeansfw.core.data import BALANCE_MIN_ROWS, MIN_BLOCK_ROWS, MIN_BLOCKS

    rows = plan_block_rows(n, 64, 8, 64 << 20, n_features=64, inline=False)
    sizes = [min(rows, n - start) for start in range(0, n, rows)]
    # 1, 2, 4 or 8 blocks (two, four or eight threads get the same number) of whole
    # sub-blocks, the last shorter by less than a sub-block per block: the largest power
    # of two up to MIN_BLOCKS and ceil(n / BALANCE_MIN_ROWS)
    assert rows % MIN_BLOCK_ROWS == 0 and max(sizes) - min(sizes) < len(sizes) * MIN_BLOCK_ROWS
    aim = min(MIN_BLOCKS, -(-n // BALANCE_MIN_ROWS))
    assert len(sizes) in (1, 2, 4, 8) and len(sizes) <= aim < 2 * len(sizes)


def _simulated_share(n: int, rows: int, threads: int) -> float:
    """The largest share of ``threads`` threads each taking the next block of ``rows``
    rows when free (the last block shorter), against n / threads: the simulation
    ``largest_share``'s closed form must agree with."""
    loads = [0] * threads
    for start in range(0, n, rows):
        loads[loads.index(min(loads))] += min(rows, n - start)
    return max(loads) * threads / n


def test_largest_share_is_the_simulated_share():
    from kmeansfw.core.data import largest_share

    for n in (1, 255, 256, 257, 2_309, 8_213, 20_000, 100_000, 1_052_936):
        for rows in (1, 7, 256, 768, 2_048, 4_096, 5_120, 131_840):
            for threads in (1, 2, 3, 4, 8, 16):
                if -(-n // rows) <= 5_000:  # the simulation walks every block
                    assert largest_share(n, rows, threads) == _simulated_share(n, rows, threads)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("budget_mb", [16, 64, 256])
@pytest.mark.parametrize(
    "n", [300, 2_500, 4_096, 5_000, 8_213, 9_000, 20_000, 50_000, 100_000, 1_052_936]
)
@pytest.mark.parametrize(
    ("columns", "itemsize"), [(8, 8), (256, 8), (512, 4), (1024, 8), (4096, 8)]
)
def test_blocks_the_cache_cuts_are_shared_evenly(n, columns, itemsize, budget_mb, compiled):
    from kmeansfw.core.data import (
        BALANCE_MIN_ROWS,
        BLOCK_TEMPORARIES,
        CACHE_BLOCK_BYTES,
        EVEN_SHARE_SLACK,
        EVEN_SHARE_THREADS,
        MIN_BLOCK_ROWS,
        MIN_BLOCKS,
        TARGET_TASKS,
    )

    budget = budget_mb << 20
    row_bytes = columns * itemsize
    budget_rows = budget // (row_bytes * BLOCK_TEMPORARIES)
    cut = min(CACHE_BLOCK_BYTES // row_bytes, budget_rows)  # the cache's or budget's rows
    cut -= cut % MIN_BLOCK_ROWS
    aim = min(MIN_BLOCKS, -(-n // BALANCE_MIN_ROWS))
    aim = 1 << (aim.bit_length() - 1)  # the balance rule's blocks for data it does not cut
    share = -(-n // aim)
    balance = -(-share // MIN_BLOCK_ROWS) * MIN_BLOCK_ROWS
    cut = max(MIN_BLOCK_ROWS, cut)
    rows = plan_block_rows(n, columns, itemsize, budget, inline=False, compiled=compiled)
    plain = plan_block_rows(n, columns, itemsize, budget, inline=False)  # the generic plan
    count = -(-n // rows)
    if not compiled or cut >= min(balance, n) or -(-n // cut) >= TARGET_TASKS:
        assert rows == plain  # not cut, many blocks, or not compiled: the plan as before
        return
    assert plain == cut  # the generic plan keeps the cut
    # whole sub-blocks, from half the cut, at most twice the cut, the budget and the
    # balance rule's length: never fewer blocks than the balance rule gives, never one
    # block, fewer than TARGET_TASKS
    assert rows % MIN_BLOCK_ROWS == 0 and cut // 2 <= rows < n
    assert rows <= min(2 * cut, max(budget_rows, MIN_BLOCK_ROWS), balance)
    assert aim <= count < TARGET_TASKS and count >= 2
    # no length in that range that two and four threads share more evenly, beyond the
    # slack; none longer within it
    lengths = [
        block
        for block in range(max(MIN_BLOCK_ROWS, cut // 2), rows + 4 * MIN_BLOCK_ROWS, 256)
        if block <= min(2 * cut, max(budget_rows, MIN_BLOCK_ROWS), balance)
        and 2 <= -(-n // block) < TARGET_TASKS
    ]
    uneven = {b: max(_simulated_share(n, b, t) for t in EVEN_SHARE_THREADS) for b in lengths}
    assert uneven[rows] <= min(uneven.values()) + EVEN_SHARE_SLACK
    assert all(share > min(uneven.values()) + EVEN_SHARE_SLACK
               for block, share in uneven.items() if block > rows)


def test_twenty_thousand_wide_rows_make_four_even_blocks():
    from kmeansfw.core.data import largest_share

    # 4 blocks of 4096 rows and one of 3616, the cache's bound for (rows, 256) float64
    # buffers, gave one of two threads 11808 rows of 20000; compiled kernels take 4 of
    # 5120 (the balance rule's length); the generic path keeps the cache's bound
    assert plan_block_rows(20_000, 256, 8, 64 << 20, inline=False, compiled=True) == 5120
    assert plan_block_rows(20_000, 256, 8, 64 << 20, inline=False) == 4096
    data = FitData.build(np.zeros((20_000, 256)), n_clusters=3, splits_work=True)
    assert not data.inline and [len(task) for task in data.tasks] == [1] * 4
    assert largest_share(20_000, 5120, 2) == pytest.approx(1.024)
    assert largest_share(20_000, 4096, 2) == pytest.approx(1.1808)
    assert largest_share(20_000, 4096, 4) == pytest.approx(1.5424)  # 4096 + 3616 for one


def test_even_blocks_take_the_longest_within_the_slack(monkeypatch):
    from kmeansfw.core import data

    # 100000 rows of (rows, 256) float64: 25 cache-sized blocks (one of two threads 13);
    # 28 blocks of 3584 rows are the most even (1.004), 16 of 6400 within the slack
    # (1.024), fewer rounds per pass
    assert plan_block_rows(100_000, 256, 8, 64 << 20, inline=False, compiled=True) == 6400
    # one block is never taken for data the cut splits (257 rows of 4096 columns: one
    # block of 512 would be within the slack of two of 256)
    assert plan_block_rows(257, 4096, 8, 64 << 20, inline=False, compiled=True) == 256
    # every length in range is weighed: 8213 rows, 4 blocks of 2048 and one of 21
    assert plan_block_rows(8_213, 256, 8, 64 << 20, inline=False, compiled=True) == 2048
    monkeypatch.setattr(data, "EVEN_SHARE_SLACK", 0.0)
    assert plan_block_rows(100_000, 256, 8, 64 << 20, inline=False, compiled=True) == 3584


def test_blocks_short_of_the_data_are_whole_sub_blocks():
    from kmeansfw.core.data import MIN_BLOCK_ROWS
    from kmeansfw.kernels import SUB_BLOCK_ROWS

    assert MIN_BLOCK_ROWS == SUB_BLOCK_ROWS
    budget = 64 << 20
    for n, k, d in [(60_000, 12, 32), (10**6, 8, 8), (10**5, 4096, 3), (9000, 8, 100)]:
        rows = plan_block_rows(n, max(k, d), 8, budget, n_features=d)
        assert rows < n and rows % SUB_BLOCK_ROWS == 0
    assert plan_block_rows(1000, 8, 8, budget, n_features=8) == 1000  # the whole data


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_and_predict_break_ties_alike_under_different_plans(dtype):
    # rows on the bisector of two centroids (tied in exact arithmetic) with zero weight,
    # so the centroids stay: the fit runs inline (one block), a FitData planned by size
    # alone cuts blocks; products cut at a block's end took another BLAS kernel before
    n0, nt, d, k = 40_000, 20_000, 32, 12
    X0 = make_blobs(n0, n_features=d, centers=k, center_box=(-50, 50), random_state=2)[0]
    w = np.concatenate([np.ones(n0), np.zeros(nt)]).astype(dtype)
    padded = np.vstack([X0, np.zeros((nt, d))]).astype(dtype)
    C = KMeans(k, random_state=0, n_init=1).fit(padded, sample_weight=w).cluster_centers_
    c0, c1 = C[0].astype(np.float64), C[1].astype(np.float64)
    u = c1 - c0
    Z = np.random.default_rng(0).normal(size=(nt, d)) * 0.5
    Z -= np.outer(Z @ u / (u @ u), u)
    X = np.vstack([X0.astype(dtype), ((c0 + c1) / 2 + Z).astype(dtype)])
    km = KMeans(k, init=C, n_init=1, n_threads=2).fit(X, sample_weight=w)
    np.testing.assert_array_equal(km.cluster_centers_, C)
    assert FitData.build(X, n_clusters=k, splits_work=True).inline  # as the fit planned
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    from kmeansfw.engine import loop, plugins, steps

    by_size = FitData.build(X, n_clusters=k, fitted=km.fitted_state_)  # blocks of 7424 rows
    assert not by_size.inline and len(by_size.tasks) > 1
    hooks = plugins.build(km._strategies)
    loop.prepare(hooks, by_size)
    blocked = steps.assign(hooks, by_size, C.astype(dtype), accumulate=False)
    np.testing.assert_array_equal(blocked.labels, km.labels_)


def test_mid_size_data_runs_inline_only_with_few_centroids():
    # (data that worker threads would get as one block runs inline with any k)
    from kmeansfw.core.data import (
        BALANCE_MIN_ROWS,
        INLINE_FEW_CLUSTERS,
        INLINE_FEW_MAX_ELEMENTS,
        INLINE_MAX_CLUSTERS,
        INLINE_MAX_ELEMENTS,
        INLINE_MAX_FEATURES,
        INLINE_MAX_ROWS,
        SINGLE_BLOCK_ELEMENTS,
        one_inline_block,
        one_worker_block,
        runs_inline,
    )
    from kmeansfw.engine.executors import is_small, kernel_threads

    assert runs_inline(1000, 8) and runs_inline(1000, 8, 500)  # small: any k
    assert runs_inline(20_000, 64, 8) and not runs_inline(20_000, 64)  # k unknown: no
    assert not runs_inline(20_000, 64, INLINE_MAX_CLUSTERS)
    assert INLINE_MAX_ELEMENTS == 1 << 22 and INLINE_FEW_MAX_ELEMENTS == 1 << 24
    assert not runs_inline(INLINE_MAX_ELEMENTS // 64, 64, INLINE_FEW_CLUSTERS + 1)
    assert runs_inline(INLINE_MAX_ELEMENTS // 64 - 1, 64, 33) and runs_inline(40_000, 64, 8)
    # beyond 2^22 values, a fit of at most INLINE_FEW_CLUSTERS (32) centroids, to 2^24
    assert INLINE_FEW_CLUSTERS == 32 and runs_inline(INLINE_MAX_ELEMENTS // 64, 64, 32)
    assert runs_inline(200_000, 64, 8) and runs_inline(131_071, 128, 3)
    assert not runs_inline(INLINE_FEW_MAX_ELEMENTS // 128, 128, 3)
    assert not runs_inline(INLINE_MAX_ROWS, 2, 3)  # 2^18 rows: the shape's rule says no
    # (FitData.build may still take it inline as one block: one_inline_block below)
    assert not runs_inline(SINGLE_BLOCK_ELEMENTS // 256, 256, 8)  # > INLINE_MAX_FEATURES
    # what worker threads would get as one block runs inline whatever d (FitData.build)
    budget = 64 << 20
    assert one_worker_block(BALANCE_MIN_ROWS, 256, 8, budget, 256)  # its 8 MB fit
    assert not one_worker_block(BALANCE_MIN_ROWS + 1, 200, 8, budget, 200)  # two blocks
    assert not one_worker_block(BALANCE_MIN_ROWS, 1024, 8, budget, 1024)  # cache-sized cut
    assert not one_worker_block(2000, 256, 8, 1 << 20, 256)  # a small budget cuts it too
    # past INLINE_MAX_ROWS, mid-size data of a fit of at most 32 centroids that inline is
    # one block (with numba's kernels: its rows' label vectors fit the budget)
    assert one_inline_block(1_000_000, 2, 3, 4, budget)
    assert one_inline_block(1_000_000, 2, 3, 8, budget)  # float64 too: 24 MB of labels
    assert one_inline_block(1_000_000, 8, 32, 8, budget)  # 8M values: under 2^24
    assert not one_inline_block(1_000_000, 8, 33, 8, 1 << 40)  # more than 32 centroids
    assert not one_inline_block(1_000_000, 2, 64, 4, 1 << 40)  # (under 2^22 values)
    assert not one_inline_block(INLINE_FEW_MAX_ELEMENTS // 16, 16, 3, 4, 1 << 40)
    assert one_inline_block(INLINE_FEW_MAX_ELEMENTS // 16 - 1, 16, 3, 4, 1 << 40)
    assert not one_inline_block(300_000, 2, INLINE_MAX_CLUSTERS, 4, 1 << 40)
    # the compiled iterations' three label arrays (24 bytes a row) count too: a 16 MB
    # budget takes 1000000 rows of (rows, 1) float32 buffers (16 MB) but not their labels
    assert INLINE_ROW_BYTES == 3 * np.dtype(np.intp).itemsize
    assert not one_inline_block(1_000_000, 1, 1, 4, 16 << 20)
    assert one_inline_block(600_000, 1, 1, 4, 16 << 20)
    built = _built

    assert built(2000, 256, 32).inline and built(2000, 256, 32).single_block
    # whatever k: one worker thread would do all the work, numba's threads split it
    assert built(2000, 256, INLINE_MAX_CLUSTERS).inline
    assert built(2000, 256, 512).inline and built(2000, 256, 512).single_block
    assert not built(2000, 256, 1024).inline  # (rows, 1024) buffers: cache-sized blocks
    assert not built(BALANCE_MIN_ROWS + 1, 200, 8).inline  # buffers fit, too many rows
    assert not built(2000, 256, 8, memory_budget=1 << 20).inline  # blocks for workers
    rows = np.zeros((1_000_000, 2), np.float32)
    tall = FitData.build(rows, n_clusters=3, validate=False, splits_work=True)
    assert tall.inline and tall.single_block == slice(0, 1_000_000)
    assert not FitData.build(rows, n_clusters=3, validate=False).inline  # serial work
    assert built(1_000_000, 2, 3).single_block == slice(0, 1_000_000)  # float64 too
    assert not built(1_000_000, 2, 33).inline  # more than 32 centroids: workers
    assert not FitData.build(np.zeros((2000, 256)), n_clusters=8, validate=False).inline
    assert runs_inline(SINGLE_BLOCK_ELEMENTS // INLINE_MAX_FEATURES, INLINE_MAX_FEATURES, 8)
    X = np.zeros((12_000, 64))  # one block: its rows fit CACHE_BLOCK_BYTES
    mid = FitData.build(X, n_clusters=8, n_threads=2, validate=False, splits_work=True)
    assert mid.inline and mid.single_block == slice(0, 12_000)
    assert is_small(mid) and kernel_threads(mid) == 2
    assert not FitData.build(X, n_clusters=8, validate=False).inline  # serial work
    many = FitData.build(
        X, n_clusters=INLINE_MAX_CLUSTERS, n_threads=2, validate=False, splits_work=True
    )
    assert not many.inline and len(many.tasks) > 1 and kernel_threads(many) == 1
    assert mid.replan(8).inline and not many.replan(40).inline  # kept on a new plan
    assert FitData(X=X, sample_weight=np.ones(12_000), block_rows=4096).inline is False


def test_inline_data_of_a_splitting_fit_is_one_block_past_the_cache_bound():
    # its kernels take cache-sized sub-blocks themselves: only the memory budget cuts it
    import kmeansfw.core.data as core_data
    from kmeansfw.core.data import CACHE_BLOCK_BYTES

    X = np.zeros((100_000, 16))  # 12.8 MB: more than CACHE_BLOCK_BYTES
    assert X.nbytes > CACHE_BLOCK_BYTES

    def build(**kw):
        return FitData.build(X, n_clusters=8, validate=False, **kw)

    assert build(splits_work=True).single_block == slice(0, 100_000)
    by_cache = build()  # a fit whose work does not split: cache-sized blocks for workers
    assert not by_cache.inline and by_cache.block_rows * 16 * 8 <= CACHE_BLOCK_BYTES
    # the memory budget still bounds the block: the label vectors of its rows, which the
    # compiled kernels keep (24 bytes a row, no buffers of the block's shape), fit it
    budget = 1 << 20
    small = build(splits_work=True, memory_budget=budget)
    assert small.inline and small.block_rows * INLINE_ROW_BYTES <= budget
    assert small.block_rows % MIN_BLOCK_ROWS == 0 and len(small.tasks) > 1
    assert build(splits_work=True, memory_budget=8 << 20).single_block == slice(0, 100_000)
    # without numba the NumPy twins hold buffers of the block's shape: at most
    # BLOCK_TEMPORARIES of them fit the budget
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core_data, "kernels_compiled", lambda: False)
        twins = build(splits_work=True, memory_budget=8 << 20)
    assert twins.inline and twins.block_rows * 16 * 8 * BLOCK_TEMPORARIES <= 8 << 20
    assert len(twins.tasks) > 1
    # one block and the budget's blocks label alike (plans never change labels; the
    # means' sums are grouped per block, so they agree to rounding)
    rng = np.random.default_rng(0)
    Y = rng.normal(size=X.shape)
    init = Y[:8].copy()
    fits = [
        KMeans(8, init=init, n_init=1, max_iter=5, memory_budget_mb=mb).fit(Y)
        for mb in (64, budget >> 20)
    ]
    np.testing.assert_array_equal(fits[0].labels_, fits[1].labels_)
    np.testing.assert_allclose(fits[0].cluster_centers_, fits[1].cluster_centers_, rtol=1e-12)


def test_only_fits_whose_work_splits_run_mid_size_data_inline(big):
    # the built-in Euclidean search, nearest/auto and the means declare splits_work; other
    # distances, bound-based assignments and an update that opts out keep worker threads
    import scipy.sparse as sp

    from kmeansfw.core.distance import describe
    from kmeansfw.strategies.update import Mean, Spherical

    seen = []

    @attrs.frozen
    class Probe:
        @kmeansfw.hookimpl
        def kmeansfw_iteration_end(self, state):
            seen.append(state.data.inline)

    def inline(X, **params):
        seen.clear()
        KMeans(8, random_state=0, max_iter=2, observers=[Probe()], **params).fit(X)
        return set(seen)

    assert big.shape[0] * big.shape[1] >= 1 << 18  # mid-size
    assert inline(big) == inline(big, distance="sqeuclidean") == {True}
    for params in ({"distance": "manhattan"}, {"assignment": "hamerly"}):
        assert inline(big, **params) == {False}
    assert inline(big, distance="cosine", update="spherical") == {False}
    assert inline(sp.csr_matrix(big)) == {False}  # sparse products stay on one thread
    assert describe(Spherical()).splits_work  # its sums split their columns too

    @attrs.frozen
    class OneThreadMean(Mean):  # its work replaced by code on one thread: opts out
        name = "one-thread-mean"
        splits_work = False

    assert inline(big, update=OneThreadMean()) == {False}
    from kmeansfw.core.data import INLINE_MAX_CLUSTERS
    from kmeansfw.strategies.assignment import AUTO_YINYANG_MIN_CLUSTERS

    # auto declares it: inline, its searches (nearest's, and hamerly's through the
    # Euclidean search) split their rows; yinyang's group search does not, and never
    # runs inline on mid-size data
    assert INLINE_MAX_CLUSTERS <= AUTO_YINYANG_MIN_CLUSTERS


def test_strategies_only_see_blocks(big):
    seen = []

    @attrs.frozen
    class Spy:
        name = "spy"

        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_assign(self, X):
            seen.append(X.shape[0])
            return (yield)

    KMeans(12, random_state=0, observers=[Spy()], memory_budget_mb=0.25).fit(big)
    budget = int(0.25 * 2**20)  # inline, the rows' label vectors (24 bytes a row) fit it
    plan = FitData.build(big, n_clusters=12, memory_budget=budget, splits_work=True)
    assert plan.inline and plan.block_rows * INLINE_ROW_BYTES <= budget
    assert max(seen) == plan.block_rows < big.shape[0]
    seen.clear()  # strategies whose work does not split: blocks of (rows, k) buffers
    from kmeansfw.core.config import PairingWarning

    with pytest.warns(PairingWarning, match="median"):
        KMeans(
            12, random_state=0, observers=[Spy()], memory_budget_mb=0.25, update="median"
        ).fit(big)
    assert max(seen) == plan_block_rows(big.shape[0], 12, 8, memory_budget=budget) < plan.block_rows


def test_history_observer_and_monotone_objective(blobs):
    X, _ = blobs
    km = KMeans(5, init="random", n_init=1, random_state=2, history=True, tol=0).fit(X)
    records = km.history_
    assert [r["iteration"] for r in records] == list(range(1, km.n_iter_ + 1))
    objectives = [r["objective"] for r in records]
    assert np.all(np.diff(objectives) <= 1e-12 * np.abs(objectives[:-1]))
    assert records[-1]["n_changed"] == 0  # strict convergence
    assert all(r["seconds"] >= 0 and r["center_shift"] >= 0 for r in records)


@pytest.mark.parametrize("both", [False, True])
def test_history_named_as_an_observer_is_the_fits_history(blobs, both):
    # observers=["history"] recorded into an object nobody could reach: no history_,
    # kmeansfw.fit(...).history None; it is the fit's history now (one, with history=True)
    X, _ = blobs
    params = dict(init="random", n_init=2, random_state=2, observers=["history"])
    km = KMeans(5, history=both, **params).fit(X)
    reference = KMeans(5, init="random", n_init=2, random_state=2, history=True).fit(X)
    drop = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert drop(km.history_) == drop(reference.history_)
    fitted = kmeansfw.fit(X, n_clusters=5, **params)
    assert fitted.history is not None and len(fitted.history.runs) == 2


def test_strict_convergence_check_compares_labels_without_counting(blobs, monkeypatch):
    # the check stops at the first changed run of labels; counting every change is for
    # readers of n_changed only, and both agree when read in either order
    X, _ = blobs
    counted, compared, answers = [], [], []
    count, equal = engine.count_changed, engine.labels_equal
    monkeypatch.setattr(engine, "count_changed", lambda *a: counted.append(1) or count(*a))
    monkeypatch.setattr(engine, "labels_equal", lambda *a: compared.append(1) or equal(*a))
    # the criterion reads the state (the step's compiled iterations compare in their kernel)
    monkeypatch.setattr(engine, "lloyd_step", lambda *a: None)
    km = KMeans(5, init="random", n_init=1, random_state=2, tol=0).fit(X)
    assert not counted and len(compared) == km.n_iter_ - 1  # none at the first iteration
    compared.clear()

    @attrs.define
    class Reader:
        name = "reader"
        first_count: bool = False

        @kmeansfw.hookimpl
        def kmeansfw_iteration_end(self, state):
            if self.first_count:
                answers.append((state.n_changed, state.labels_unchanged))
            else:
                answers.append((state.labels_unchanged, state.n_changed)[::-1])
            expected = state.previous_labels is not None and np.array_equal(
                state.labels, state.previous_labels
            )
            assert state.labels_unchanged is expected

    for first_count in (False, True):
        answers.clear()
        compared.clear()
        again = KMeans(
            5, init="random", n_init=1, random_state=2, tol=0,
            observers=[Reader(first_count=first_count)],
        ).fit(X)
        assert again.n_iter_ == km.n_iter_
        assert answers[-1] == (0, True) and all(u == (c == 0) for c, u in answers[1:])
        # asked first, the check compares; after a count, the count answers it
        assert len(compared) == (0 if first_count else km.n_iter_ - 1)


def test_previous_labels_of_other_rows_count_every_row_as_changed():
    # a hand-built resume or walk may hand labels of other rows: both summaries agree
    X = np.arange(12.0).reshape(6, 2)
    state = engine.FitState(
        data=FitData.build(X, n_clusters=2), n_clusters=2, tol=0.0,
        rng=np.random.default_rng(0),
    )
    state.labels, state.previous_labels = np.zeros(6, np.intp), np.zeros(4, np.intp)
    state.iteration = 2
    assert state.n_changed == 6 and not state.labels_unchanged
    state.previous_labels, state.iteration = np.zeros(6, np.intp), 3
    assert state.labels_unchanged and state.n_changed == 0  # answered from the check
    state.previous_labels, state.iteration = np.ones(6, np.intp), 4
    assert state.n_changed == 6 and not state.labels_unchanged


def test_observers_called_in_order(blobs):
    X, _ = blobs
    events = []

    @attrs.define
    class Recorder:
        name = "recorder"

        @kmeansfw.hookimpl
        def kmeansfw_fit_start(self, state):
            events.append(("start", state.run, state.iteration))

        @kmeansfw.hookimpl
        def kmeansfw_iteration_end(self, state):
            events.append(("iteration", state.run, state.iteration))

        @kmeansfw.hookimpl
        def kmeansfw_fit_end(self, result):
            events.append(("end", result.run, result.n_iter))

    km = KMeans(5, init="random", n_init=2, random_state=0, observers=[Recorder()]).fit(X)
    assert events[0] == ("start", 0, 0)
    assert [e for e in events if e[0] == "end"][-1][1] == 1
    assert sum(e[0] == "iteration" for e in events) >= km.n_iter_


def test_wrapper_extends_builtin_without_replacing(blobs):
    X, _ = blobs
    calls = []

    @attrs.frozen
    class CountUpdates:
        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_update(self):
            centroids, weights = yield
            calls.append(weights.sum())
            return centroids, weights

    km = KMeans(5, random_state=0, observers=[CountUpdates()]).fit(X)
    plain = KMeans(5, random_state=0).fit(X)
    assert len(calls) == km.n_iter_
    assert all(total == X.shape[0] for total in calls)
    np.testing.assert_array_equal(km.cluster_centers_, plain.cluster_centers_)


def test_fits_do_not_share_plugins(blobs):
    X, _ = blobs
    a = kmeansfw.fit(X, n_clusters=3, random_state=0)
    b = kmeansfw.fit(X, n_clusters=3, random_state=0, distance=lambda X, C: cdist(X, C))
    assert {s for s, _, _ in a.strategies} == {s for s, _, _ in b.strategies}
    assert a.strategies[1][2] is not b.strategies[1][2]
    first, again = plugins.build(a.strategies), plugins.build(a.strategies)
    assert first.pm is not again.pm  # a fresh manager for every fit, never a cached one
    assert len(first.pm.get_plugins()) == len(a.strategies)
    first.pm.register(Answers(True), name="registered later")  # changes only that manager
    assert plugins.build(a.strategies).pm.get_plugin("registered later") is None


def test_any_criterion_stops_the_fit(blobs):
    X, _ = blobs

    @attrs.frozen
    class StopAt:
        iteration: int

        @kmeansfw.hookimpl
        def kmeansfw_converged(self, state):
            return state.iteration >= self.iteration

    km = KMeans(
        5, init="random", n_init=1, random_state=0, tol=0, convergence=["tol", StopAt(2)]
    ).fit(X)
    assert km.n_iter_ == 2
    # the final labels match the final centroids (one last assignment)
    np.testing.assert_array_equal(km.labels_, km.predict(X))


def _article_kmeans(X, centroids, max_iterations=500):
    """The article's loop, vectorized: stop when the centroids no longer change."""
    for iteration in range(1, max_iterations + 1):
        labels = cdist(X, centroids, "sqeuclidean").argmin(axis=1)
        new = np.array([X[labels == j].mean(axis=0) for j in range(len(centroids))])
        if not (new - centroids).any():
            return labels, new, iteration
        centroids = new
    return labels, centroids, iteration


def test_unchanged_reproduces_the_article(blobs):
    X, _ = blobs
    init = X[[1, 50, 99, 150, 420]]
    labels, centroids, _ = _article_kmeans(X, init)
    km = KMeans(5, init=init, convergence="unchanged").fit(X)
    np.testing.assert_array_equal(km.labels_, labels)
    np.testing.assert_allclose(km.cluster_centers_, centroids, rtol=1e-12)


def test_random_init_picks_distinct_samples(blobs):
    X, _ = blobs
    from kmeansfw.strategies.init import RandomInit

    C = RandomInit().kmeansfw_init_centroids(
        X=X, sample_weight=np.ones(len(X)), n_clusters=50, rng=np.random.default_rng(0)
    )
    assert np.unique(C, axis=0).shape[0] == 50
    assert all((X == c).all(axis=1).any() for c in C)


def test_kmeans_plus_plus_as_good_as_sklearn(big):
    ours, theirs = [], []
    for seed in range(5):
        ours.append(KMeans(12, random_state=seed, max_iter=1).fit(big).inertia_)
        theirs.append(SkKMeans(12, random_state=seed, max_iter=1, n_init=1).fit(big).inertia_)
    assert np.median(ours) <= 1.05 * np.median(theirs)


def _initial_centroids(X, k, init, seed, sample_weight=None):
    cfg = kmeansfw.Config(n_clusters=k, init=init)
    hooks = plugins.build(cfg.build_strategies())
    data = engine.setup(hooks, FitData.build(X, sample_weight, n_clusters=k))
    return hooks.kmeansfw_init_centroids(
        X=data.X,
        sample_weight=data.sample_weight,
        n_clusters=k,
        rng=np.random.default_rng(seed),
        data=data,
        hook=hooks,
    )


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_seeding_respects_sample_weight(init):
    X = np.array([[0.0], [1.0], [2.0], [100.0], [101.0]])
    w = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    for seed in range(10):
        C = _initial_centroids(X, 2, init, seed, sample_weight=w)
        assert set(C[:, 0]) <= {0.0, 1.0, 2.0}
        assert C[0, 0] != C[1, 0]


def test_kmeans_plus_plus_spreads_centroids():
    X, y = make_blobs(3000, centers=10, cluster_std=0.1, center_box=(-100, 100), random_state=1)
    for seed in range(3):
        C = _initial_centroids(X, 10, "k-means++", seed)
        # one seed per well separated blob
        blobs_hit = {y[np.argmin(((X - c) ** 2).sum(axis=1))] for c in C}
        assert len(blobs_hit) == 10


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tiny n ~ k
@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(5, 300),
    d=st.integers(1, 6),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    float32=st.booleans(),
)
def test_labels_are_nearest_centroids_and_objective_is_exact(n, d, k, seed, float32):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10) + rng.uniform(-50, 50)
    if float32:
        X = X.astype(np.float32)
    k = min(k, n)
    km = KMeans(k, random_state=seed, init="random", n_init=1).fit(X)
    X64, C64 = X.astype(np.float64), km.cluster_centers_.astype(np.float64)
    D = cdist(X64, C64, "sqeuclidean")
    best = D.min(axis=1)
    chosen = D[np.arange(n), km.labels_]
    tol = 1e-4 if float32 else 1e-9
    np.testing.assert_allclose(chosen, best, rtol=tol, atol=tol * (1 + np.abs(X64).max() ** 2))
    np.testing.assert_allclose(km.inertia_, chosen.sum(), rtol=1e-5 if float32 else 1e-9)


def test_explicit_centroids_are_a_read_only_copy_compared_by_value(blobs):
    from kmeansfw.core.adapters import ArrayInit

    X, _ = blobs
    centroids = X[:3].copy()
    strategy = ArrayInit(centroids)
    centroids[0] = 1e6  # the caller's array changes: the strategy's does not
    assert strategy.centroids[0, 0] != 1e6
    assert not strategy.centroids.flags.writeable
    assert strategy == ArrayInit(X[:3]) and hash(strategy) == hash(ArrayInit(X[:3]))
    assert strategy != ArrayInit(X[:3].astype(np.float32))  # dtype counts
    assert strategy != ArrayInit(X[:3].T.copy().T[:, :2])  # shape counts


class _Wrap:
    @kmeansfw.hookimpl(wrapper=True)
    def kmeansfw_converged(self, state):
        results = yield
        return [*results, "wrapped"]


def test_resolved_hooks_answer_exactly_as_pluggy():
    criteria = [("convergence", c, Answers(v)) for c, v in (("a", None), ("b", True), ("c", 3))]
    hooks = plugins.build(criteria)
    slow = hooks.pm.hook
    assert hooks.kmeansfw_converged(state=None) == slow.kmeansfw_converged(state=None) == [3, True]
    assert hooks.kmeansfw_fit_end(result=None) == slow.kmeansfw_fit_end(result=None) == []
    assert hooks.kmeansfw_update(data=None) is None  # no implementation, firstresult
    wrapped = plugins.build(criteria[1:], [_Wrap()])
    assert wrapped.kmeansfw_converged(state=None) == [3, True, "wrapped"]
    # implementations taking no argument, one, or several are all handed theirs
    nothing = plugins.build([("convergence", "n", _NoArgument()), *criteria])
    assert nothing.kmeansfw_converged(state=None) == nothing.pm.hook.kmeansfw_converged(state=None)
    assert nothing.kmeansfw_converged(state=None) == [3, True, "no argument"]


class _NoArgument:
    @kmeansfw.hookimpl
    def kmeansfw_converged(self):
        return "no argument"


def _blas_threads() -> list:
    """The threads of every BLAS library loaded, as threadpoolctl reports them."""
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@attrs.frozen
class _BlasProbe:
    """An observer noting BLAS's threads at every iteration's end, into ``seen``."""

    seen: list

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.seen.append(_blas_threads())


def test_blas_is_held_at_one_thread_during_a_fit_and_restored_after(blobs):
    from threadpoolctl import threadpool_limits

    from kmeansfw.core.data import INLINE_MAX_ROWS
    from kmeansfw.engine.executors import single_threaded_blas

    blas_threads = _blas_threads
    seen: list = []

    big, _ = make_blobs(INLINE_MAX_ROWS + 1000, n_features=16, random_state=0)
    assert not FitData.build(big, n_clusters=40, splits_work=True).inline  # workers
    with threadpool_limits(2, user_api="blas"):  # so that a hold shows, whatever the env
        before = blas_threads()
        assert before and all(threads == 2 for threads in before)
        KMeans(40, random_state=0, observers=[_BlasProbe(seen)], max_iter=3).fit(big)
        assert seen and all(threads == [1] * len(before) for threads in seen)
        assert blas_threads() == before
        seen.clear()  # small data too: idle BLAS threads would spin against numba's
        KMeans(3, random_state=0, observers=[_BlasProbe(seen)], max_iter=3).fit(blobs[0])
        assert seen and all(threads == [1] * len(before) for threads in seen)
        assert blas_threads() == before
        with single_threaded_blas(), single_threaded_blas():  # nested holds are cheap
            assert blas_threads() == [1] * len(before)
        assert blas_threads() == before


def test_blas_holds_released_from_other_threads_restore_blas(blobs):
    """Fits in several threads hold BLAS together: BLAS is at one thread inside each, and
    whichever thread leaves last restores it (threadpoolctl lets one thread set
    OpenBLAS's shared pool and ignores the others: the hold clears that thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info, threadpool_limits

    blas_threads = _blas_threads
    seen: list = []
    X = blobs[0]
    before = blas_threads()
    if not before or before == [1] * len(before):
        pytest.skip("BLAS runs one thread here: no hold to see")
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if any(i.get("threading_layer") == "openmp" for i in blas):
        pytest.skip("BLAS on OpenMP: its thread limits are per calling thread")
    def fit(seed):
        return KMeans(3, random_state=seed, observers=[_BlasProbe(seen)]).fit(X)

    for _ in range(3):
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(fit, range(40)))
        assert seen and all(threads == [1] * len(before) for threads in seen)
        assert blas_threads() == before
    with threadpool_limits(1, user_api="blas"):  # a user's own limit still works after
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before


def test_estimators_reuse_built_strategies_for_equal_plain_parameters(blobs, monkeypatch):
    X, _ = blobs
    built = []
    original = kmeansfw.Config.build_strategies

    def counting(self, *args, **kwargs):
        built.append(self.n_clusters)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(kmeansfw.Config, "build_strategies", counting)
    kmeansfw.estimator._BUILT.clear()
    a = KMeans(4, random_state=0, tol=1e-3).fit(X)
    b = KMeans(4, random_state=0, tol=1e-3).fit(X)  # another estimator, equal parameters
    assert len(built) == 1
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    b.set_params(n_clusters=5).fit(X)  # changed: built again
    assert built == [4, 5]
    KMeans(4, random_state=0, tol=1e-3, distance={"name": "minkowski", "p": 3}).fit(X)
    assert len(built) == 3  # a dict parameter: never kept
    init = X[:4].copy()
    a4 = KMeans(4, init=init, n_init=1).fit(X)
    b4 = KMeans(4, init=X[:4].copy(), n_init=1).fit(X)
    assert len(built) == 4  # a small init array: kept by its values
    np.testing.assert_array_equal(a4.cluster_centers_, b4.cluster_centers_)
    init[0] = X[10]  # changed in place: built again, and the fit starts from the new values
    moved = KMeans(4, init=init, n_init=1).fit(X)
    assert len(built) == 5
    expected = KMeans(4, init=X[[10, 1, 2, 3]], n_init=1).fit(X)
    np.testing.assert_array_equal(moved.cluster_centers_, expected.cluster_centers_)
    KMeans(4, init=[list(row) for row in X[:4]], n_init=1).fit(X)
    assert len(built) == 6  # a list: never kept
    first, _ = a._built_config()
    a.fit(X)
    second, _ = a._built_config()
    # shared between fits (fitting only reads a Config) and left as it was built
    assert first is second and first == a.get_config()


def test_thread_map_runs_every_item_once_and_keeps_their_order():
    """map_items shares items out to helper threads and the calling thread: each item
    runs exactly once (on whichever thread), results come back in item order."""
    import threading

    from kmeansfw.engine.executors import map_items

    seen, lock, threads = [], threading.Lock(), set()
    meet = threading.Barrier(2, timeout=10)  # items 0 and 1 wait for each other

    def square(i):
        if i < 2:
            meet.wait()  # so two different threads must each have taken one
        with lock:
            seen.append(i)
            threads.add(threading.get_ident())
        return i * i

    assert map_items(2, square, list(range(200))) == [i * i for i in range(200)]
    assert sorted(seen) == list(range(200))
    assert threading.get_ident() in threads  # the caller works too


@pytest.mark.parametrize("failing", [0, 57, 199])
def test_thread_map_raises_the_error_of_a_task_after_the_helpers_stop(failing):
    """A task's error reaches the caller (whichever thread ran it), and no item is still
    running when it does."""
    import threading
    import time

    from kmeansfw.engine.executors import map_items

    running, lock = [0], threading.Lock()

    def task(i):
        with lock:
            running[0] += 1
        try:
            if i == failing:
                raise ValueError(f"task {i} failed")
            time.sleep(0.0005)
            return i
        finally:
            with lock:
                running[0] -= 1

    with pytest.raises(ValueError, match=f"task {failing} failed"):
        map_items(2, task, list(range(200)))
    assert running[0] == 0


@pytest.mark.parametrize("init", ["k-means++", "k-means||", "farthest-first"])
def test_seeding_plans_keep_the_fits_memory_budget(init, monkeypatch):
    # the seedings replan the data for their own buffers (rows x candidates): within the
    # fit's memory_budget_mb, not the default budget
    from kmeansfw.core.data import BLOCK_TEMPORARIES

    plans = []
    replan = FitData.replan

    def spy(self, n_columns, memory_budget=None):
        plan = replan(self, n_columns, memory_budget)
        plans.append((max(n_columns, self.n_features), plan))
        return plan

    monkeypatch.setattr(FitData, "replan", spy)
    X = np.random.default_rng(0).normal(size=(50_000, 8))
    budget_mb = 0.5
    km = KMeans(64, init=init, n_init=1, max_iter=2, memory_budget_mb=budget_mb, random_state=0)
    km.fit(X)
    assert plans
    budget = int(budget_mb * 2**20)
    for columns, plan in plans:
        assert plan.memory_budget == budget
        bound = max(MIN_BLOCK_ROWS, budget // (columns * 8 * BLOCK_TEMPORARIES))
        assert plan.block_rows <= bound, (columns, plan.block_rows)
    # and the same centroids as under the default budget (plans never change results)
    monkeypatch.setattr(FitData, "replan", replan)
    default = KMeans(64, init=init, n_init=1, max_iter=2, random_state=0).fit(X)
    np.testing.assert_array_equal(km.labels_, default.labels_)
    np.testing.assert_allclose(km.cluster_centers_, default.cluster_centers_, rtol=1e-12)
