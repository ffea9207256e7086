"""k-means|| seeding: one fused pass per round (issue 16, "Seeding at scale").

Each round asks the distance's fused nearest search for the round's new candidates only
and lowers every sample's running cost, nearest candidate and the potential in the same
pass; these tests hold that pass to brute force, the seeding to what it must find, and
the result to being the same whatever the threads or the executor.
"""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from kmeansfw import Config, KMeans
from kmeansfw.core.data import FitData
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins
from kmeansfw.engine.executors import PickleShuffleExecutor
from kmeansfw.kernels import seeding
from kmeansfw.strategies import init


@pytest.mark.parametrize("compiled", [True, False])
def test_lower_costs_matches_brute_force(monkeypatch, compiled):
    if not compiled:
        monkeypatch.setattr(seeding, "HAVE_NUMBA", False)
    elif not seeding.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(0)
    b = 1000
    costs = rng.integers(0, 5, b).astype(np.float32)  # many ties with ``closest``
    closest = rng.integers(0, 5, b).astype(np.float32)
    labels = rng.integers(0, 7, b)
    nearest = rng.integers(0, 30, b)
    sw = rng.uniform(0, 2, b).astype(np.float32)
    low, pick, potential = seeding.lower_costs(labels, costs, 30, closest, nearest, sw)
    better = costs < closest  # strictly: a tie keeps the earlier candidate
    np.testing.assert_array_equal(low, np.where(better, costs, closest))
    np.testing.assert_array_equal(pick, np.where(better, labels + 30, nearest))
    assert low.dtype == np.float32 and pick.dtype == np.intp
    exact = float(np.dot(sw.astype(np.float64), low.astype(np.float64)))
    assert potential == pytest.approx(exact, rel=1e-12)
    # the inputs are left alone, and an empty block is fine
    assert closest.dtype == np.float32 and not np.shares_memory(low, closest)
    assert seeding.lower_costs(labels[:0], costs[:0], 0, closest[:0], nearest[:0], sw[:0])[2] == 0


def test_compiled_and_numpy_lower_costs_agree_bit_for_bit(monkeypatch):
    if not seeding.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(1)
    args = (
        rng.integers(0, 9, 5000),
        rng.uniform(0, 3, 5000),
        4,
        rng.uniform(0, 3, 5000),
        rng.integers(0, 4, 5000),
        rng.uniform(0, 1, 5000),
    )
    compiled = seeding.lower_costs(*args)
    monkeypatch.setattr(seeding, "HAVE_NUMBA", False)
    twin = seeding.lower_costs(*args)
    np.testing.assert_array_equal(compiled[0], twin[0])
    np.testing.assert_array_equal(compiled[1], twin[1])
    assert compiled[2] == twin[2]  # both sum in row order


def _setup(X, k, sample_weight=None, memory_budget=1 << 26, executor=None, distance="euclidean"):
    cfg = Config(n_clusters=k, init="k-means||", distance=distance)
    hooks = plugins.build(cfg.build_strategies())
    data = FitData.build(
        X, sample_weight, n_clusters=k, memory_budget=memory_budget, executor=executor
    )
    return hooks, engine.setup(hooks, data)


@pytest.mark.parametrize("distance", ["euclidean", "manhattan"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_round_lowers_costs_as_brute_force(dtype, distance):
    """After the rounds, every sample's cost and nearest candidate are those of the
    brute-force minimum over all candidates (ties: the earliest candidate)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 5)).astype(dtype)
    sw = rng.uniform(0.5, 2, 3000).astype(dtype)
    hooks, data = _setup(X, 8, sw, memory_budget=1 << 14, distance=distance)
    assert len(data.tasks) > 1
    metric = "sqeuclidean" if distance == "euclidean" else "cityblock"
    closest = np.full(3000, np.inf, dtype=dtype)
    nearest = np.zeros(3000, dtype=np.intp)
    batches = [X[[7]], X[rng.choice(3000, 20, replace=False)], X[rng.choice(3000, 30)]]
    offset = 0
    for points in batches:
        potential = init._lower_with(hooks, data, points, closest, nearest, offset)  # in place
        offset += points.shape[0]
    candidates = np.vstack(batches).astype(np.float64)
    exact = cdist(X.astype(np.float64), candidates, metric)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(closest, exact.min(axis=1), rtol=tol, atol=tol)
    chosen = exact[np.arange(3000), nearest]
    np.testing.assert_allclose(chosen, exact.min(axis=1), rtol=tol, atol=tol)
    assert potential == pytest.approx(float(np.dot(sw, closest.astype(np.float64))), rel=1e-9)


def test_oversampling_block_by_block_draws_as_one_pass(monkeypatch):
    """k-means||'s sampling step, made block by block so that no n-sized temporary is
    held, keeps exactly the rows one vectorized draw over all rows keeps."""
    rng = np.random.default_rng(5)
    n = 10_000
    closest = rng.exponential(size=n)
    sw = rng.uniform(0.5, 2, n)
    potential = float(np.dot(sw, closest))
    monkeypatch.setattr(init, "SAMPLING_BLOCK_ROWS", 777)  # blocks and a remainder
    picked = init._oversample(np.random.default_rng(9), 16.0, sw, closest, potential)
    p = np.minimum(1.0, 16.0 * sw * closest / potential)
    expected = np.flatnonzero(np.random.default_rng(9).random(n) < p)
    np.testing.assert_array_equal(picked, expected)
    assert 0 < picked.size < n


def test_k_means_parallel_finds_every_well_separated_blob():
    X, truth = make_blobs(
        6000, n_features=6, centers=25, cluster_std=0.3, center_box=(-40, 40), random_state=4
    )
    means = np.stack([X[truth == j].mean(axis=0) for j in range(25)])
    for seed in range(4):
        hooks, data = _setup(X, 25)
        C = init.KMeansParallel().kmeansfw_init_centroids(
            X=X,
            sample_weight=data.sample_weight,
            n_clusters=25,
            rng=np.random.default_rng(seed),
            data=data,
            hook=hooks,
        )
        # one seed in every blob: each true centre's nearest seed is a different one
        owner = cdist(means, C).argmin(axis=1)
        assert len(set(owner.tolist())) == 25


def test_k_means_parallel_inertia_close_to_greedy_k_means_plus_plus():
    X = make_blobs(20_000, n_features=8, centers=40, cluster_std=2.0, random_state=5)[0]
    parallel = [KMeans(40, init="k-means||", random_state=s).fit(X).inertia_ for s in range(4)]
    greedy = [KMeans(40, init="k-means++", random_state=s).fit(X).inertia_ for s in range(4)]
    assert np.median(parallel) <= 1.02 * np.median(greedy)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_k_means_parallel_same_whatever_threads_and_executor(dtype):
    X = make_blobs(30_000, n_features=10, centers=20, random_state=6)[0].astype(dtype)
    params = dict(init="k-means||", random_state=3, max_iter=3, memory_budget_mb=0.05)
    fits = [KMeans(20, n_threads=t, **params).fit(X) for t in (1, 2, 3)]
    fits.append(KMeans(20, executor=PickleShuffleExecutor(seed=2), **params).fit(X))
    _, data = _setup(X, 20, memory_budget=int(0.05 * 2**20))
    assert len(data.replan(40, int(0.05 * 2**20)).tasks) > 3
    for other in fits[1:]:
        np.testing.assert_array_equal(other.cluster_centers_, fits[0].cluster_centers_)
        assert other.inertia_ == fits[0].inertia_


def test_a_nearest_search_answering_garbage_is_named():
    from kmeansfw import Distance, StrategyError, hookimpl

    class Broken(Distance):
        name = "broken-nearest"
        natural_update = "mean"

        @hookimpl
        def kmeansfw_cost(self, X, centroids, rows, data, cache):
            return cdist(X, centroids, "sqeuclidean").astype(X.dtype)

        @hookimpl
        def kmeansfw_nearest(self, X, centroids, groups, n_groups, rows, data, cache, hook):
            return np.zeros(X.shape[0], dtype=np.intp), np.zeros(X.shape[0])

    X = make_blobs(500, n_features=3, centers=4, random_state=0)[0]
    with pytest.raises(StrategyError, match="broken-nearest.*kmeansfw_nearest"):
        KMeans(4, init="k-means||", distance=Broken(), random_state=0).fit(X)


def test_recluster_restarts_keep_the_best_weighted_objective():
    """Several reclusterings keep the one of lowest weighted objective on the candidates
    (each restart drawing in turn from the generator), and a bad count is refused by
    name."""
    rng = np.random.default_rng(6)
    candidates = rng.normal(size=(400, 4)) + rng.integers(0, 12, size=(400, 1)) * 3.0
    weights = rng.uniform(0.5, 3.0, 400)
    hooks, data = _setup(candidates, 12)

    def weighted_objective(C):
        d = ((candidates[:, None, :] - C[None, :, :]) ** 2).sum(axis=2).min(axis=1)
        return float(np.dot(weights, d))

    best = init._recluster(hooks, data, candidates, weights, 12, np.random.default_rng(1), 30, 6)
    # the six restarts one at a time, drawing in turn from one generator as the six do
    stream = np.random.default_rng(1)
    each = [init._recluster(hooks, data, candidates, weights, 12, stream, 30, 1) for _ in range(6)]
    objectives = [weighted_objective(C) for C in each]
    np.testing.assert_array_equal(best, each[int(np.argmin(objectives))])
    # with this seed the first reclustering alone ends in a worse local minimum
    assert min(objectives) < objectives[0]
    with pytest.raises(ValueError, match="recluster_n_init must be an integer >= 1"):
        init.KMeansParallel(recluster_n_init=0)


def _spy_rounds(monkeypatch):
    """Records, per k-means|| round after the first, whether the pruned pass did it."""
    pruned = []
    real = init._lower_pruned

    def spy(*args, **kwargs):
        potential = real(*args, **kwargs)
        pruned.append(potential is not None)
        return potential

    monkeypatch.setattr(init, "_lower_pruned", spy)
    return pruned


@pytest.mark.parametrize(
    ("distance", "offset"),
    [
        ("euclidean", 0.0),
        ("euclidean", 3000.0),  # far from the mean: the candidates' gaps must stay exact
        ("manhattan", 0.0),
        ("chebyshev", 0.0),
        ({"name": "minkowski", "p": 1.5}, 0.0),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pruned_rounds_seed_exactly_as_full_rounds(monkeypatch, distance, offset, dtype):
    X, _ = make_blobs(20_000, n_features=8, centers=30, cluster_std=1.0, random_state=4)
    X = (X + offset).astype(dtype)
    sw = np.random.default_rng(0).uniform(0.5, 2.0, X.shape[0]).astype(dtype)
    params = dict(init="k-means||", distance=distance, random_state=2, max_iter=1)
    params["memory_budget_mb"] = 0.05  # many row blocks, groups cut into several
    pruned = _spy_rounds(monkeypatch)
    monkeypatch.setattr(init, "PRUNE_MIN_WORK", 0)
    monkeypatch.setattr(init, "PRUNE_MAX_FRACTION", 1.0)  # every round pruned
    fast = KMeans(30, **params).fit(X, sample_weight=sw)
    assert pruned and all(pruned)
    pruned.clear()
    monkeypatch.setattr(init, "PRUNE_MAX_FRACTION", -1.0)  # none
    full = KMeans(30, **params).fit(X, sample_weight=sw)
    assert pruned and not any(pruned)
    np.testing.assert_array_equal(fast.cluster_centers_, full.cluster_centers_)
    assert fast.inertia_ == full.inertia_


def test_rounds_are_pruned_only_for_metrics_and_only_when_it_pays(monkeypatch):
    X, _ = make_blobs(20_000, n_features=8, centers=30, cluster_std=1.0, random_state=4)
    pruned = _spy_rounds(monkeypatch)
    KMeans(30, init="k-means||", random_state=0, max_iter=1).fit(X)
    assert pruned and not any(pruned)  # about 60 candidates x 8 features a round: too
    # little work per row for the gathering to pay
    wide, _ = make_blobs(6000, n_features=64, centers=100, cluster_std=1.0, random_state=4)
    pruned.clear()
    KMeans(100, init="k-means||", random_state=0, max_iter=1).fit(wide)
    assert pruned[0] is False  # one earlier candidate: every pair counts, a full pass
    assert any(pruned)  # about 200 x 64 a round, on well-separated blobs: few pairs left
    monkeypatch.setattr(init, "PRUNE_MIN_WORK", 0)  # the small data's rounds, pruned
    pruned.clear()
    KMeans(30, init="k-means||", random_state=0, max_iter=1).fit(X)
    assert pruned[0] is False and any(pruned)
    for distance in ("cosine", "mahalanobis", "sqeuclidean"):  # not pruned: not a metric,
        # or a metric whose cost is not a known power of its distance
        pruned.clear()
        KMeans(30, init="k-means||", distance=distance, random_state=0, max_iter=1).fit(X + 100)
        assert pruned and not any(pruned)
    pruned.clear()
    monkeypatch.setattr(init, "DEFAULT_PRUNE_BUDGET", 1000)  # a table over the budget
    KMeans(30, init="k-means||", random_state=0, max_iter=1).fit(X)
    assert pruned and not any(pruned)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_candidates_in_reach_come_from_exact_distances_far_from_the_origin(monkeypatch, dtype):
    # two groups of candidates 6000 apart: an expanded |a|^2 - 2 a.p + |p|^2 form loses
    # most digits of the gaps between near candidates; the table must match exact gaps
    monkeypatch.setattr(init, "PRUNE_BLOCK_PAIRS", 7)  # several blocks of candidates
    rng = np.random.default_rng(5)
    old = np.vstack([rng.normal(-3000, 1, (40, 6)), rng.normal(3000, 1, (40, 6))])
    points = np.vstack([rng.normal(-3000, 1, (30, 6)), rng.normal(3000, 1, (30, 6))])
    old, points = old.astype(dtype), points.astype(dtype)
    reach = rng.uniform(0.2, 2.0, 80)
    table = init._in_reach(old, points, reach, "euclidean", {}, np.dtype(dtype))
    a, p = old.astype(np.float64), points.astype(np.float64)
    exact = np.sqrt(((a[:, None, :] - p[None, :, :]) ** 2).sum(axis=2))
    margin = np.sqrt(np.finfo(dtype).eps)
    np.testing.assert_array_equal(table, exact < (2 * reach * (1 + margin))[:, None])
    assert 0 < table.sum() < table.size  # some pairs in reach, most not


@pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED"), reason="no page release here")
def test_rounds_over_a_file_map_are_not_pruned(monkeypatch, tmp_path):
    # a pruned round gathers rows from all over the file: the full pass hands pages back
    X, _ = make_blobs(20_000, n_features=8, centers=30, cluster_std=1.0, random_state=4)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    from kmeansfw.core import paging

    monkeypatch.setattr(paging, "RELEASE_MIN_FRACTION", 0.0)  # released: as a large file
    monkeypatch.setattr(init, "PRUNE_MIN_WORK", 0)  # pruned in memory (below)
    pruned = _spy_rounds(monkeypatch)
    fit = KMeans(30, init="k-means||", random_state=0, max_iter=1).fit(mapped)
    assert pruned and not any(pruned)
    pruned.clear()
    in_memory = KMeans(30, init="k-means||", random_state=0, max_iter=1).fit(X)
    assert any(pruned)
    np.testing.assert_allclose(fit.cluster_centers_, in_memory.cluster_centers_, rtol=1e-12)


@pytest.mark.parametrize("compiled", [True, False])
def test_group_rows_is_a_stable_counting_sort(monkeypatch, compiled):
    if not compiled:
        monkeypatch.setattr(seeding, "HAVE_NUMBA", False)
    rng = np.random.default_rng(3)
    nearest = rng.integers(0, 50, 5000)
    nearest[nearest == 7] = 8  # an empty group
    closest = rng.uniform(0, 4, 5000)
    for power in (1, 2):
        order, starts, counts, reach = seeding.group_rows(nearest, closest, 50, power)
        np.testing.assert_array_equal(order, np.argsort(nearest, kind="stable"))
        np.testing.assert_array_equal(counts, np.bincount(nearest, minlength=50))
        np.testing.assert_array_equal(starts, np.cumsum(counts) - counts)
        distance = np.sqrt(closest) if power == 2 else closest
        expected = np.zeros(50)
        np.maximum.at(expected, nearest, distance)
        np.testing.assert_array_equal(reach, expected)
    assert reach[7] == 0 and counts[7] == 0
    assert seeding.weighted_total(closest, closest) == pytest.approx(float(closest @ closest))


def test_group_blocks_cover_every_grouped_row_once():
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 40, 60)
    counts[[5, 17]] = [300, 1000]  # groups larger than a block
    starts = np.cumsum(counts) - counts
    items = init._group_blocks(starts, counts, 128)
    covered = np.concatenate([np.arange(start, stop) for _, _, start, stop in items])
    np.testing.assert_array_equal(covered, np.arange(counts.sum()))
    for first, last, start, stop in items:
        assert starts[first] <= start and stop <= starts[last - 1] + counts[last - 1]
        assert stop - start <= 128  # never more rows than a block


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("n", [300, 20000])  # one cost block; then step by step
@pytest.mark.parametrize("init_name", ["k-means++", "k-means||", "random"])
def test_float32_seeding_totals_do_not_overflow(init_name, n):
    # float32 rows near 1e18: squared distances fit float32, their weighted total
    # (k-means++'s potential, k-means||'s sampling odds) does not; summed in float32 it
    # read inf, and the draws went astray (an overflow warning the only sign)
    X = make_blobs(n, centers=6, cluster_std=0.5, random_state=0)[0].astype(np.float32)
    scale = np.float32(3e17)
    for seed in range(4):
        small = KMeans(6, init=init_name, n_init=1, random_state=seed).fit(X)
        large = KMeans(6, init=init_name, n_init=1, random_state=seed).fit(X * scale)
        # the same partition (k-means||'s recluster may number it otherwise, and the
        # scaled rows' own rounding may move a tied row) and objective
        assert adjusted_rand_score(large.labels_, small.labels_) > 0.999
        assert large.inertia_ / float(scale) ** 2 == pytest.approx(small.inertia_, rel=1e-4)
