"""The torch backend: tensors fitted on their device, matching the NumPy backend."""

from __future__ import annotations

import attrs
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from scipy.spatial.distance import cdist
from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw import KMeans
from kmeansfw.core.errors import ConfigError, StrategyError
from tests.conftest import (
    Answers,
    cluster_at_the_origin,
    exact_nearest,
    two_far_groups,
    with_far_outlier,
)

torch = pytest.importorskip("torch")

from kmeansfw.backends import torch as torch_backend  # noqa: E402
from kmeansfw.backends.torch import TorchExecutor, plan_chunk_rows  # noqa: E402
from kmeansfw.backends.torch import data as torch_data  # noqa: E402
from kmeansfw.backends.torch import geometry as torch_geometry  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
K = 12


def _blobs(dtype=np.float64, n=3000, d=8, offset=0.0, std=2.5, box=10.0):
    X, _ = make_blobs(
        n, n_features=d, centers=K, cluster_std=std, center_box=(-box, box), random_state=0
    )
    return (X + offset).astype(dtype)


def _on(X, device):
    """X as a tensor on ``device`` (a copy there; shares X's memory on the CPU)."""
    return torch.from_numpy(X).to(device)


def _same(a, b, rtol):
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert b.inertia_ == pytest.approx(a.inertia_, rel=rtol)
    scale = np.abs(a.cluster_centers_).max()
    np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, atol=rtol * scale)


def _objective64(X, model, metric):
    """The fit's objective recomputed in float64 from its labels and centroids."""
    costs = cdist(X.astype(np.float64), model.cluster_centers_.astype(np.float64), metric)
    return costs[np.arange(X.shape[0]), model.labels_].sum()


@pytest.mark.parametrize("device", DEVICES)
def test_cosine_centroids_are_scaled_in_float64(device):
    # as the NumPy backend: float32 unit vectors rounded once from float64 are within
    # 2^-24 of norm one (scaled in float32 they were 7e-8 to 1.1e-7 off on such data)
    rows = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32) + 50
    unit = torch_geometry._unit(torch.from_numpy(rows).to(device), "centroids", in_float64=True)
    assert unit.dtype == torch.float32
    norms = np.linalg.norm(unit.cpu().numpy().astype(np.float64), axis=1)
    assert np.abs(norms - 1).max() <= 2**-24


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("dtype", "rtol"), [(np.float32, 1e-5), (np.float64, 1e-12)], ids=["float32", "float64"]
)
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"distance": "cosine"},
        {"distance": "sqeuclidean", "convergence": "unchanged"},
        {"convergence": ["tol", "objective"], "tol": 1e-6},
        {"distance": "cosine", "update": "spherical"},
    ],
    ids=["euclidean", "cosine", "sqeuclidean-unchanged", "tol-objective", "spherical"],
)
@pytest.mark.parametrize("kernels", ["compiled", "torch"])
def test_same_fit_as_numpy_from_the_same_centroids(device, dtype, rtol, params, kernels):
    X = _blobs(dtype, offset=50.0)  # far from the origin: centering matters in float32
    init = X[::250][:K].copy()
    reference = KMeans(K, init=init, max_iter=100, **params).fit(X)
    Xt = torch.from_numpy(X).to(device)
    options = TorchExecutor(cpu_kernels=kernels)
    km = KMeans(K, init=init, max_iter=100, executor=options, **params).fit(Xt)
    _same(reference, km, rtol)
    # and each against its objective recomputed in float64 from its labels and centroids
    # (float32 cosine: 2e-5 off before both backends scaled the centroids in float64)
    metric = "cosine" if params.get("distance") == "cosine" else "sqeuclidean"
    for model in (reference, km):
        exact = _objective64(X, model, metric)
        assert model.inertia_ == pytest.approx(exact, rel=max(rtol, 1e-11))
    assert isinstance(km.cluster_centers_, np.ndarray) and km.labels_.dtype == np.int32
    assert km.cluster_centers_.dtype == dtype
    assert km.cluster_centers_tensor_.device.type == device
    assert km.cluster_centers_tensor_.dtype == Xt.dtype
    assert torch.equal(km.labels_tensor_.cpu(), torch.from_numpy(km.labels_).long())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernels", ["compiled", "torch"])
def test_predict_transform_score_stay_on_the_device(device, kernels):
    X = _blobs(np.float32)
    km = KMeans(K, init=X[:K].copy(), max_iter=20, executor=TorchExecutor(cpu_kernels=kernels))
    km.fit(X)
    Xt = torch.from_numpy(X).to(device)
    labels = km.predict(Xt)
    assert labels.device.type == device and labels.dtype == torch.int64
    np.testing.assert_array_equal(labels.cpu().numpy(), km.predict(X))
    distances = km.transform(Xt)
    assert distances.device.type == device and distances.dtype == torch.float32
    np.testing.assert_allclose(distances.cpu().numpy(), km.transform(X), rtol=1e-4, atol=1e-3)
    assert km.score(Xt) == pytest.approx(km.score(X), rel=1e-5)
    # a model fitted on tensors predicts NumPy arrays with the NumPy backend
    kt = KMeans(K, init=X[:K].copy(), max_iter=20).fit(Xt)
    np.testing.assert_array_equal(kt.predict(X), kt.labels_)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("init", ["k-means++", "k-means||", "random", "auto"])
def test_seeding_same_seed_same_result_and_the_numpy_draws(init, device):
    X = _blobs(np.float64, n=1500)
    Xt = _on(X, device)
    a = KMeans(K, init=init, random_state=3, n_init=2).fit(Xt)
    b = KMeans(K, init=init, random_state=3, n_init=2).fit(Xt)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    # the draws come from the estimator's Generator in the NumPy strategies' order
    reference = KMeans(K, init=init, random_state=3, n_init=2).fit(X)
    assert a.inertia_ == pytest.approx(reference.inertia_, rel=1e-9)
    assert a.n_iter_ == reference.n_iter_


@pytest.mark.parametrize("device", DEVICES)
def test_a_small_memory_budget_gives_the_same_result(device):
    X = _blobs(np.float32, n=2000)
    Xt = _on(X, device)
    init = X[:K].copy()
    large = KMeans(K, init=init, random_state=0).fit(Xt)
    small = KMeans(K, init=init, random_state=0, executor=TorchExecutor(memory_budget_mb=0.02)).fit(
        Xt
    )
    assert plan_chunk_rows(2000, K, 8, 4, int(0.02 * 2**20)) < 200  # many chunks
    # off the CPU a chunk's product and the float64 one-hot rows of its sums fit the budget
    for k in (3, 256, 1024):
        rows = plan_chunk_rows(10**7, k, 64, 4, 2**30)
        assert rows * (4 * k + 8 * min(k, 256)) <= 2**30
    _same(large, small, 1e-6)
    seeded = [
        KMeans(K, init="k-means||", random_state=1, executor=TorchExecutor(memory_budget_mb=m))
        .fit(Xt)
        .inertia_
        for m in (0.02, 64)
    ]
    assert seeded[0] == pytest.approx(seeded[1], rel=1e-6)


@attrs.frozen
class TorchSqEuclidean(kmeansfw.Distance):
    """A user distance written with torch operations (records the blocks it sees)."""

    name = "torch-sqeuclidean"
    natural_update = "mean"
    squared = True
    accepts_torch = True
    blocks: list = attrs.field(factory=list, eq=False)

    def pairwise(self, X, centroids, data, cache):
        self.blocks.append(tuple(X.shape) + (centroids.shape[0],))
        return torch.cdist(X, centroids)


@pytest.mark.parametrize("device", DEVICES)
def test_a_user_distance_with_torch_operations_and_bounded_chunks(device):
    X = _blobs(np.float64, n=2000)
    init = X[:K].copy()
    reference = KMeans(K, init=init).fit(X)
    distance = TorchSqEuclidean()
    budget_mb = 0.02
    km = KMeans(
        K, init=init, distance=distance, executor=TorchExecutor(memory_budget_mb=budget_mb)
    ).fit(_on(X, device))
    np.testing.assert_array_equal(km.labels_, reference.labels_)
    assert km.inertia_ == pytest.approx(reference.inertia_, rel=1e-9)
    # never an (n, k) matrix: every block is one chunk within the budget
    assert max(rows for rows, _, _ in distance.blocks) < X.shape[0]
    assert max(rows * cols * 8 for rows, _, cols in distance.blocks) <= budget_mb * 2**20


@pytest.mark.parametrize("device", DEVICES)
def test_a_plain_function_distance_declaring_torch(device):
    def manhattan(X, C):
        return torch.cdist(X, C, p=1)

    manhattan.accepts_torch = True
    X = _blobs(np.float64, n=600)
    km = KMeans(K, init=X[:K].copy(), distance=manhattan, update="mean").fit(_on(X, device))
    costs = np.abs(X[:, None, :] - km.cluster_centers_[None]).sum(axis=2)
    np.testing.assert_array_equal(km.labels_, costs.argmin(axis=1))


@pytest.mark.parametrize("device", DEVICES)
def test_an_init_function_declaring_torch_gets_the_tensor(device):
    def first_rows(X, n_clusters, rng):
        assert isinstance(X, torch.Tensor) and X.device.type == device
        return X[:n_clusters]

    first_rows.accepts_torch = True
    X = _blobs(np.float64, n=600)
    km = KMeans(K, init=first_rows, n_init=1).fit(_on(X, device))
    reference = KMeans(K, init=X[:K].copy()).fit(X)
    _same(reference, km, 1e-12)


@pytest.mark.parametrize(
    ("params", "error", "named"),
    [
        ({"distance": "manhattan"}, StrategyError, "manhattan"),
        ({"update": "median"}, StrategyError, "median"),
        ({"assignment": "hamerly"}, StrategyError, "hamerly"),
        ({"empty": "split-largest"}, StrategyError, "split-largest"),
        ({"init": "farthest-first"}, StrategyError, "farthest-first"),
        ({"batch_size": 100}, ConfigError, "batch_size"),
        ({"executor": kmeansfw.engine.executors.PickleShuffleExecutor()}, ConfigError, "executor"),
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_strategies_without_torch_implementations_are_refused_by_name(params, error, named, device):
    X = _on(_blobs(np.float64, n=200), device)
    with pytest.raises(error, match=named), pytest.warns() if "update" in params else _nothing():
        KMeans(K, **params).fit(X)


@pytest.mark.parametrize("device", DEVICES)
def test_predicting_a_tensor_with_a_numpy_only_distance_is_refused(device):
    X = _blobs(np.float64, n=200)
    km = KMeans(3, distance="manhattan", random_state=0).fit(X)
    with pytest.raises(StrategyError, match="manhattan"):
        km.predict(_on(X, device))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("device", DEVICES)
def test_bad_input_is_refused(device):
    km = KMeans(2)
    with pytest.raises(ValueError, match="2D"):
        km.fit(torch.zeros(5, device=device))
    bad = torch.ones((10, 2), device=device)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        km.fit(bad)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="infinit"):
        km.fit(bad)
    ones = torch.ones((10, 2), device=device)
    with pytest.raises(ValueError, match="negative"):
        km.fit(ones, sample_weight=-torch.ones(10, device=device))
    complex_weights = torch.ones(10, dtype=torch.complex128, device=device) * (1 + 5j)
    with pytest.raises(ValueError, match="sample_weight must hold real numbers"):
        km.fit(ones, sample_weight=complex_weights)
    with pytest.raises(ConfigError, match="precision"):
        TorchExecutor(precision="fp8")
    with pytest.raises(ConfigError, match="cpu_kernels"):
        TorchExecutor(cpu_kernels="cuda")


def _spy_on_host(monkeypatch):
    """Records, per assignment pass, whether it ran on the NumPy view (and that view)."""
    from kmeansfw.backends.torch import host, steps

    seen = []
    real = steps.host_assign

    def spy(data, C, accumulate):
        done = real(data, C, accumulate)
        attached = data.cache.get(host._HOST)
        seen.append((done is not None, None if attached is None else attached[0].X))
        return done

    monkeypatch.setattr(steps, "host_assign", spy)
    return seen


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernels", ["compiled", "torch"])
def test_weighted_euclidean_fits_as_the_numpy_backend(kernels, device):
    X = _blobs(np.float64, n=2500, offset=20.0)
    w = np.random.default_rng(0).uniform(0.2, 3.0, X.shape[0])
    init = X[:K].copy()
    reference = KMeans(K, init=init, max_iter=50).fit(X, sample_weight=w)
    options = TorchExecutor(cpu_kernels=kernels)
    strided = _on(np.repeat(w, 2), device)[::2]  # a strided weight tensor
    assert not strided.is_contiguous()
    km = KMeans(K, init=init, max_iter=50, executor=options)
    km.fit(_on(X, device), sample_weight=strided)
    _same(reference, km, 1e-12)
    assert km.score(_on(X, device), sample_weight=strided) == pytest.approx(
        reference.score(X, sample_weight=w), rel=1e-12
    )


def test_cpu_tensors_keep_auto_bounds_between_iterations(monkeypatch):
    # the NumPy view persists over the fit: auto keeps hamerly's bounds where they pay
    from tests.test_bounded_assignment import _spy_on_auto

    calls = _spy_on_auto(monkeypatch, "_HAMERLY")
    X, _ = make_blobs(6000, n_features=16, centers=40, cluster_std=4.0, random_state=0)
    init = X[:40].copy()
    km = KMeans(40, init=init, max_iter=30).fit(torch.from_numpy(X))
    assert calls  # auto took hamerly on the tensor's view
    reference = KMeans(40, init=init, max_iter=30, assignment="nearest").fit(X)
    _same(reference, km, 1e-12)


def test_cpu_tensors_assign_with_the_compiled_kernels_on_their_own_memory(monkeypatch):
    X = _blobs(np.float32, n=2000)
    init = X[:K].copy()
    Xt = torch.from_numpy(X.copy())
    seen = _spy_on_host(monkeypatch)
    km = KMeans(K, init=init, max_iter=30, convergence="unchanged").fit(Xt)
    assert seen and all(compiled for compiled, _ in seen)  # every Lloyd pass
    view = seen[0][1]
    assert np.shares_memory(view, Xt.numpy()) and not view.flags.writeable  # no copy
    assert torch.equal(Xt, torch.from_numpy(X))  # and nothing written
    km.predict(Xt)
    assert seen[-1][0]
    # cpu_kernels="torch": every pass is torch operations, with the same result here
    seen.clear()
    options = TorchExecutor(cpu_kernels="torch")
    kt = KMeans(K, init=init, max_iter=30, convergence="unchanged", executor=options).fit(Xt)
    assert seen and not any(compiled for compiled, _ in seen)
    _same(km, kt, 1e-5)
    assert km.labels_tensor_.dtype == torch.int64 and km.labels_tensor_.device.type == "cpu"


@pytest.mark.filterwarnings("ignore::kmeansfw.PairingWarning")  # spherical on euclidean
@pytest.mark.parametrize(
    ("what", "params", "executor"),
    [
        ("non-contiguous", {}, TorchExecutor()),
        ("cosine", {"distance": "cosine"}, TorchExecutor()),
        ("spherical", {"update": "spherical"}, TorchExecutor()),  # euclidean, spherical sums
        ("fp16", {}, TorchExecutor(precision="fp16")),
    ],
)
def test_what_the_compiled_kernels_do_not_cover_stays_in_torch(monkeypatch, what, params, executor):
    X = _blobs(np.float64, n=1500)
    Xt = torch.from_numpy(X)
    if what == "non-contiguous":
        Xt = torch.from_numpy(np.asfortranarray(X))
        assert not Xt.is_contiguous()
    seen = _spy_on_host(monkeypatch)
    km = KMeans(K, init=X[:K].copy(), max_iter=10, executor=executor, **params).fit(Xt)
    assert seen and not any(compiled for compiled, _ in seen)
    reference = KMeans(K, init=X[:K].copy(), max_iter=10, **params).fit(X)
    assert km.inertia_ == pytest.approx(reference.inertia_, rel=1e-3 if what == "fp16" else 1e-9)


@pytest.mark.parametrize("device", DEVICES)
def test_inputs_are_never_modified_and_weights_count(device):
    X = _blobs(np.float32, n=1000)
    Xt = _on(X.copy(), device)
    w = torch.linspace(0.5, 2.0, 1000, device=device)
    X_before, w_before = Xt.clone(), w.clone()
    km = KMeans(K, init=X[:K].copy(), distance="cosine").fit(Xt, sample_weight=w)
    km.predict(Xt)
    km.score(Xt, sample_weight=w)
    assert torch.equal(Xt, X_before) and torch.equal(w, w_before)
    reference = KMeans(K, init=X[:K].copy(), distance="cosine")
    reference.fit(X, sample_weight=w.cpu().numpy())
    _same(reference, km, 1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("empty", ["relocate-farthest", "keep"])
def test_empty_clusters_as_the_numpy_backend(empty, device):
    X = _blobs(np.float64, n=1500)
    init = X[:K].copy()
    init[0] = X.max(axis=0) + 1000.0  # far from everything: empty after the first step
    reference = KMeans(K, init=init, empty=empty).fit(X)
    km = KMeans(K, init=init, empty=empty).fit(_on(X, device))
    _same(reference, km, 1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_a_host_side_empty_cluster_strategy_is_checked_as_on_numpy(device):
    X = _blobs(np.float64, n=1500)
    init = X[:K].copy()
    init[0] = X.max(axis=0) + 1000.0  # far from everything: empty after the first step

    class WritesNew:
        name = "writes-new"

        @kmeansfw.hookimpl
        def kmeansfw_empty_clusters(self, new_centroids):
            new_centroids[0] = np.nan  # in place
            return new_centroids

    class Spoils:
        name = "spoils"

        @kmeansfw.hookimpl
        def kmeansfw_empty_clusters(self, new_centroids):
            out = new_centroids.copy()
            out[0] = np.nan
            return out

    for empty, problem in ((WritesNew(), "read-only"), (Spoils(), "NaN")):
        with pytest.raises(StrategyError, match=f"'{empty.name}'.*{problem}"):
            KMeans(K, init=init, empty=empty).fit(_on(X, device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["tf32", "fp16", "bf16"])
def test_reduced_precision_keeps_the_exact_objective(precision, device):
    X, _, centers = make_blobs(
        1500,
        n_features=8,
        centers=K,
        center_box=(-100, 100),
        random_state=0,
        return_centers=True,
    )
    X = X.astype(np.float32)
    Xt = _on(X, device)
    init = (centers + 0.5).astype(np.float32)  # one per blob: no near-ties to break
    full = KMeans(K, init=init).fit(Xt)
    low = KMeans(K, init=init, executor=TorchExecutor(precision=precision)).fit(Xt)
    np.testing.assert_array_equal(low.labels_, full.labels_)
    exact = ((X.astype(np.float64) - low.cluster_centers_[low.labels_]) ** 2).sum()
    assert low.inertia_ == pytest.approx(exact, rel=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_observers_history_and_criteria_see_the_iterations(device):
    X = _blobs(np.float64, n=1500)
    init = X[:K].copy()
    seen = []

    def stop_after_three(state):
        seen.append((type(state.labels).__module__, state.n_changed))
        return state.iteration >= 3

    reference = KMeans(K, init=init, history=True).fit(X)
    km = KMeans(K, init=init, history=True).fit(_on(X, device))
    assert [r["n_changed"] for r in km.history_] == [r["n_changed"] for r in reference.history_]
    for ours, theirs in zip(km.history_, reference.history_, strict=True):
        assert ours["objective"] == pytest.approx(theirs["objective"], rel=1e-12)
    stopped = KMeans(K, init=init, convergence={"name": "callback", "func": stop_after_three})
    assert stopped.fit(_on(X, device)).n_iter_ == 3
    assert seen[0][0].startswith("torch") and seen[0][1] == X.shape[0]


@pytest.mark.parametrize("device", DEVICES)
def test_functional_fit_and_tensors_are_detected_without_importing(device):
    X = _blobs(np.float64, n=500)
    result = torch_backend.fit(_on(X, device), n_clusters=K, init=X[:K].copy())
    reference = kmeansfw.fit(X, n_clusters=K, init=X[:K].copy())
    np.testing.assert_array_equal(result.labels, reference.labels)
    assert torch_backend.is_tensor(torch.zeros(1)) and not torch_backend.is_tensor(X)


def _far_blobs():
    """d=16, values around 300: |x'| |2c'| far beyond fp16's 65504 (the overflow case)."""
    X, _, centers = make_blobs(
        3000,
        n_features=16,
        centers=8,
        cluster_std=20,
        center_box=(-300, 300),
        random_state=0,
        return_centers=True,
    )
    return X.astype(np.float32), (centers + 0.5).astype(np.float32)


def _fp16_round_off(X, C):
    """Per sample, a bound on fp16's error in ``|c'|^2 - 2 x'.c'`` (centered on X's mean):
    about 3 units of its 11-bit significand (2^-11) of ``|x'| |2 c'|``, with room."""
    mean = X.astype(np.float64).mean(axis=0)
    x_norms = np.linalg.norm(X - mean, axis=1)
    return 2.0**-9 * x_norms * 2 * np.linalg.norm(C - mean, axis=1).max()


def _near_ties_only(X, km):
    """Each label costs at most fp16's round-off (for two centroids) more than the best."""
    X64 = X.astype(np.float64)
    C = km.cluster_centers_.astype(np.float64)
    costs = ((X64[:, None, :] - C[None]) ** 2).sum(axis=2)
    chosen = costs[np.arange(X.shape[0]), km.labels_]
    assert (chosen - costs.min(axis=1) <= 2 * _fp16_round_off(X64, C)).all()


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_beyond_its_range_matches_full_precision(device):
    X, init = _far_blobs()
    Xt = _on(X, device)
    full = KMeans(8, init=init).fit(Xt)
    low = KMeans(8, init=init, executor=TorchExecutor(precision="fp16")).fit(Xt)
    assert len(np.unique(low.labels_)) == 8
    assert low.inertia_ == pytest.approx(full.inertia_, rel=1e-3)
    assert np.mean(low.labels_ != full.labels_) < 0.01
    _near_ties_only(X, low)
    # the seeding's and transform's costs go through the same scaled product
    seeded = KMeans(8, init="k-means++", random_state=0, n_init=1)
    exact = seeded.fit(Xt).inertia_
    seeded.set_params(executor=TorchExecutor(precision="fp16"))
    assert seeded.fit(Xt).inertia_ == pytest.approx(exact, rel=1e-3)
    squared = seeded.transform(Xt).cpu().numpy().astype(np.float64) ** 2
    exact = seeded.transform(X).astype(np.float64) ** 2
    bound = _fp16_round_off(X.astype(np.float64), seeded.cluster_centers_)
    assert (np.abs(squared - exact) <= bound[:, None]).all()


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_chunks_that_overflow_are_redone_in_full_precision(monkeypatch, device):
    X, init = _far_blobs()
    Xt = _on(X, device)
    full = KMeans(8, init=init).fit(Xt)
    # without the power-of-two scaling the fp16 products overflow (the old behaviour) ...
    monkeypatch.setattr(
        torch_geometry, "_pow2_scales", lambda n: (torch.ones_like(n), torch.ones_like(n))
    )
    redone = []
    exact = torch_geometry._Euclidean._exact_reduced

    def counted(self, centered, pts):
        redone.append(centered.shape[0])
        return exact(self, centered, pts)

    monkeypatch.setattr(torch_geometry._Euclidean, "_exact_reduced", counted)
    km = KMeans(8, init=init, executor=TorchExecutor(precision="fp16")).fit(Xt)
    # ... and the non-finite chunks are recomputed in the data's dtype: never garbage
    assert redone
    assert len(np.unique(km.labels_)) == 8
    assert km.inertia_ == pytest.approx(full.inertia_, rel=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_round_off_is_relative_to_the_block_as_in_numpy(device):
    X = _blobs(np.float32, n=400) * np.float32(1e-3)  # distances around 1e-2
    init = X[:K].copy()

    def shifted(shift):
        def numpy_distance(A, C):
            d = np.sqrt(((A[:, None, :] - C[None]) ** 2).sum(axis=2))
            return d - shift

        def torch_distance(A, C):
            return torch.cdist(A, C) - shift

        torch_distance.accepts_torch = True
        return numpy_distance, torch_distance

    # -1e-6 at a scale of 1e-2: far beyond 64 ulps of the block (was accepted on tensors)
    numpy_distance, torch_distance = shifted(1e-6)
    with pytest.raises(StrategyError, match="negative"):
        KMeans(K, init=init, distance=numpy_distance).fit(X)
    with pytest.raises(StrategyError, match="negative"):
        KMeans(K, init=init, distance=torch_distance).fit(_on(X, device))
    # a few ulps of the block's scale: round-off, clipped to 0 by both
    numpy_distance, torch_distance = shifted(1e-10)
    reference = KMeans(K, init=init, distance=numpy_distance).fit(X)
    km = KMeans(K, init=init, distance=torch_distance).fit(_on(X, device))
    np.testing.assert_array_equal(km.labels_, reference.labels_)


@pytest.mark.parametrize("device", DEVICES)
def test_kmeansfw_fit_routes_a_tensor_to_its_device(device):
    X = _blobs(np.float32, n=500)
    init = X[:K].copy()
    result = kmeansfw.fit(_on(X, device), n_clusters=K, init=init)
    reference = kmeansfw.fit(X, n_clusters=K, init=init)
    np.testing.assert_array_equal(result.labels, reference.labels)
    assert isinstance(result.centroids, np.ndarray) and result.centroids.dtype == np.float32
    assert result.objective == pytest.approx(reference.objective, rel=1e-5)
    with pytest.raises(ConfigError, match="batch_size"):  # the torch backend's refusals
        kmeansfw.fit(_on(X, device), n_clusters=K, batch_size=100)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("estimator", ["MiniBatchKMeans", "KMedoids"])
def test_estimators_without_a_torch_backend_refuse_tensors_by_name(estimator, device):
    X = _on(_blobs(np.float32, n=200), device)
    km = getattr(kmeansfw, estimator)(3)
    with pytest.raises(TypeError, match=rf"{estimator} does not take torch tensors.*KMeans"):
        km.fit(X)
    if estimator == "MiniBatchKMeans":
        with pytest.raises(TypeError, match=rf"{estimator} does not take torch tensors"):
            km.partial_fit(X)
    else:  # fitted on NumPy data: its other methods refuse tensors too (as fit does)
        km.fit(_blobs(np.float32, n=200))
        for method in (km.predict, km.transform, km.score):
            with pytest.raises(TypeError, match=r"KMedoids does not take torch tensors"):
                method(X)


@pytest.mark.parametrize("device", DEVICES)
def test_a_numpy_fit_on_the_origin_is_followed_on_tensors(device):
    # float64 data centered already: a NumPy fit compares on the origin, and so does the
    # torch backend's own prepare with that fitted state (transform's path on a tensor)
    X = np.random.default_rng(8).normal(size=(2000, 12))
    km = KMeans(K, init=X[:K].copy(), max_iter=10).fit(X)
    assert km.fitted_state_["euclidean.at_origin"] is True
    from kmeansfw.core.data import FitData

    geometry = torch_geometry._Euclidean("float64")
    data = FitData(X=_on(X, device), sample_weight=np.ones(2000), block_rows=2000)
    data.fitted = km.fitted_state_
    geometry.prepare(data)
    assert not data.cache["euclidean.mean"].any()
    data.fitted = {"euclidean.mean": km.fitted_state_["euclidean.mean"]}  # saved before
    geometry.prepare(data)
    assert data.cache["euclidean.mean"].abs().sum() > 0
    np.testing.assert_allclose(
        km.transform(_on(X, device)).cpu().numpy(), km.transform(X), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernels", ["compiled", "torch"])
def test_a_far_outlier_gets_the_bulks_median_as_the_origin_on_tensors(device, kernels):
    # a far row drags the mean: compared on it, the bulk's costs were 0; the torch
    # backend chooses the bulk's median by the NumPy fit's rule, with the same fit
    X = with_far_outlier(np.float64, 1e18, n=999, d=3, centre=5.0)
    init = X[[0, 1, 2, 999]].copy()
    options = TorchExecutor(cpu_kernels=kernels)
    on_torch = KMeans(4, init=init, n_init=1, executor=options).fit(_on(X, device))
    on_numpy = KMeans(4, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(
        on_torch.fitted_state_["euclidean.origin"], on_numpy.fitted_state_["euclidean.origin"]
    )
    _same(on_numpy, on_torch, 1e-9)
    assert on_numpy.inertia_ > 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernels", ["compiled", "torch"])
def test_a_torch_fit_chooses_the_origin_as_a_numpy_fit(device, kernels):
    # the torch backend decides whether the data is centered already by the NumPy fit's
    # rule on the same drawn rows, so both compare on the same point.  Data whose labels
    # depend on it: float32, the mean near the rule's limit, a tight cluster at the
    # origin with half the centroids in it (tests.conftest.cluster_at_the_origin)
    rng = np.random.default_rng(21)
    X, centres = cluster_at_the_origin(rng)
    nearest, clear = exact_nearest(X, centres, 1e-2)
    options = TorchExecutor(cpu_kernels=kernels)
    on_torch = KMeans(8, init=centres, n_init=1, max_iter=1, executor=options)
    on_torch.fit(_on(X, device))
    on_numpy = KMeans(8, init=centres, n_init=1, max_iter=1).fit(X)
    assert on_torch.fitted_state_["euclidean.at_origin"] is True
    assert on_numpy.fitted_state_["euclidean.at_origin"] is True
    for model in (on_torch, on_numpy):
        model.cluster_centers_ = centres  # labels against these centroids
    labels = on_torch.predict(_on(X, device))
    labels = labels.cpu().numpy() if hasattr(labels, "cpu") else np.asarray(labels)
    np.testing.assert_array_equal(labels[clear], nearest[clear])
    np.testing.assert_array_equal(on_numpy.predict(X)[clear], nearest[clear])
    # off the origin, both keep the mean
    shifted = (rng.standard_normal((3_000, 20)) + 3.0).astype(np.float32)
    assert not KMeans(K, executor=options).fit(_on(shifted, device)).fitted_state_[
        "euclidean.at_origin"
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [3, 1000])
@pytest.mark.parametrize("skewed", [False, True], ids=["even", "skewed"])
def test_sums_and_draws_repeat_bit_for_bit(monkeypatch, device, k, skewed):
    # CUDA's index_add_ rounds in whatever order the threads get there; the backend's
    # sums take a fixed order (their CUDA paths run on any device, so they are checked
    # here on the CPU as well; the draws: test_draws_follow_the_cumulative_weights)
    from kmeansfw.backends.torch import steps

    rng = np.random.default_rng(k)
    n = 50_000
    labels = rng.integers(0, k, n)
    if skewed:  # most rows in one cluster, some clusters empty
        labels = np.where(rng.random(n) < 0.9, k // 2, labels % max(1, k // 3))
    values = rng.normal(size=(n, 5)) * 1e3
    expected = np.zeros((k, 5))
    np.add.at(expected, labels, values)
    index, rows = _on(labels, device), _on(values, device)
    monkeypatch.setattr(steps, "ONE_HOT_BYTES", 8 * k * 7000)  # one-hot pieces of 7000 rows
    assert steps.ONE_HOT_MAX_CLUSTERS == torch_data._ONE_HOT_COLUMNS  # the plan counts them
    for add in (steps._add_rows, steps._grouped_add, steps._one_hot_add):
        for added, wanted in ((rows, expected), (rows[:, 1], expected[:, 1])):  # 2-D, 1-D
            runs = []
            for _ in range(3):
                sums = torch.zeros(wanted.shape, dtype=torch.float64, device=device)
                add(sums, index, added)
                runs.append(sums)
            assert all(torch.equal(runs[0], other) for other in runs[1:])
            np.testing.assert_allclose(runs[0].cpu().numpy(), wanted, rtol=1e-9, atol=1e-6)
    # float32 values are added in the float64 target's precision
    sums = torch.zeros(k, dtype=torch.float64, device=device)
    steps._one_hot_add(sums, index, rows[:, 1].float() + 1e8)
    np.testing.assert_allclose(
        sums.cpu().numpy(), expected[:, 1] + 1e8 * np.bincount(labels, minlength=k), rtol=1e-6
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("block", [7, 64, 4096])
def test_draws_follow_the_cumulative_weights(monkeypatch, device, block):
    # searchsorted(cumsum(w), t): the first index whose cumulative weight reaches t, up
    # to rounding, and never a row of zero weight (a centre drawn already) for 0 < t <
    # the total (beyond it both paths cap at the last row, as the NumPy kernels do)
    from kmeansfw.backends.torch import seeding

    monkeypatch.setattr(seeding, "DRAW_BLOCK", block)
    rng = np.random.default_rng(0)
    n = 12_289  # 3 blocks of 4096 and one row
    host = rng.exponential(size=n) * (rng.random(n) < 0.8)
    host[-1] = 0.0  # a zero-weight last row, alone in its block at 4096
    host[100:300] = 0.0  # a run of zeros across small blocks' boundaries
    weights = _on(host, device)
    cumulative = np.cumsum(host)
    total = cumulative[-1]
    # the blocks' totals summed as the device sums them: here short of the running total,
    # and a target between the two once fell in the all-zero last block
    padded = np.zeros(-(-n // block) * block)
    padded[:n] = host
    block_sum = np.cumsum(torch.from_numpy(padded).view(-1, block).sum(dim=1).numpy())[-1]
    assert block_sum < total
    inside = rng.random(200) * total
    edges = np.array([cumulative[99], block_sum, np.nextafter(total, 0)])
    edges = np.concatenate([edges, np.nextafter(edges, np.inf)])
    wanted = np.concatenate([inside, edges[edges < total]])
    for draw in (seeding._draw, seeding._blocked_draw):
        picked = [draw(weights, _on(wanted, device)).cpu().numpy() for _ in range(3)]
        assert all(np.array_equal(picked[0], other) for other in picked[1:])
        chosen = picked[0]
        assert (host[chosen] > 0).all()
        before = np.where(chosen > 0, cumulative[chosen - 1], 0.0)
        slack = 1e-12 * total
        assert (cumulative[chosen] >= wanted - slack).all()
        assert (before < wanted + slack).all()


@pytest.mark.parametrize("device", DEVICES)
def test_matmul_precision_when_torch_refuses_to_read_it(monkeypatch, device):
    # torch refuses get_float32_matmul_precision() once a program set a backend's own
    # fp32_precision (torch 2.11 on CUDA, after the benchmark set allow_tf32 too); the
    # fit then sets and restores CUDA's and oneDNN's settings
    from kmeansfw.backends.torch import executor

    cuda, cpu = torch.backends.cuda.matmul, torch.backends.mkldnn.matmul
    before = (cuda.fp32_precision, cpu.fp32_precision)
    X = _blobs(np.float32, n=600)
    reference = KMeans(K, init=X[:K].copy()).fit(X)
    try:
        cuda.fp32_precision = "tf32"  # the real trigger, where this torch refuses
        refused = False
        try:
            torch.get_float32_matmul_precision()
        except RuntimeError:
            refused = True
        seen = []
        with monkeypatch.context() as patch:
            if not refused:  # a torch that still reads it: a stand-in that refuses
                patch.setattr(torch, "get_float32_matmul_precision", _refuses)
            cpu.fp32_precision = "bf16"  # a user's setting: the fit multiplies in full
            for precision in ("tf32", "highest"):
                with executor._matmul_precision(precision):
                    seen.append((cuda.fp32_precision, cpu.fp32_precision))
                assert (cuda.fp32_precision, cpu.fp32_precision) == ("tf32", "bf16")
            for precision in ("tf32", "highest"):
                km = KMeans(K, init=X[:K].copy(), executor=TorchExecutor(precision=precision))
                km.fit(_on(X, device))
                np.testing.assert_array_equal(km.labels_, reference.labels_)
        assert seen == [("tf32", "ieee"), ("ieee", "ieee")]
        assert cuda.fp32_precision == "tf32"  # restored
    finally:
        cuda.fp32_precision, cpu.fp32_precision = before


def _refuses():
    raise RuntimeError("mix of the legacy and new APIs")


_FUZZ_DTYPES = ["float16", "bfloat16", "float32", "float64", "int32", "int64", "bool", "complex64"]


def _fit_or_refuse(device, shape, dtype, special, weights, k, init, precision, seed):
    """Fit a fuzzed tensor: the error it raised (a ValueError or TypeError with a
    message), or None after checking the fit; either way the inputs are unchanged."""
    gen = torch.Generator().manual_seed(seed)
    X = (torch.randn(shape, generator=gen, dtype=torch.float64) * 5).to(getattr(torch, dtype))
    if special is not None and X.numel() and X.is_floating_point():
        value = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}.get(
            special, 6e4 if dtype == "float16" else 1e30
        )
        X.view(-1)[seed % X.numel()] = value
    X = X.to(device)
    n = X.shape[0] if X.ndim else 0
    sw = {
        None: None,
        "ok": torch.rand(n, generator=gen).to(device) + 0.1,
        "short": torch.ones(max(0, n - 1)).to(device),
        "negative": -torch.ones(n).to(device),
        "nan": torch.full((n,), float("nan")).to(device),
        "zero": torch.zeros(n).to(device),
        "2d": torch.ones((n, 1)).to(device),
        "numpy": np.ones(n),
    }[weights]
    X_before = X.clone()
    sw_before = sw.clone() if isinstance(sw, torch.Tensor) else None
    km = KMeans(k, init=init, random_state=seed, executor=TorchExecutor(precision=precision))
    error = None
    try:
        km.fit(X, sample_weight=sw)
    except (ValueError, TypeError) as exc:
        assert str(exc) and "failed in" not in str(exc)  # named, not an internal error
        error = exc
        event(f"refused: {type(exc).__name__}")
    else:
        event("fitted")
        assert km.labels_.shape == (n,) and km.labels_.min() >= 0
        assert km.labels_.max() < km.n_clusters
        assert np.isfinite(km.inertia_) and km.inertia_ >= 0
        assert np.isfinite(km.cluster_centers_).all()
        labels = km.predict(X)
        assert labels.device == X.device and labels.shape == (n,)
    torch.testing.assert_close(X, X_before, rtol=0, atol=0, equal_nan=True)
    if sw_before is not None:
        torch.testing.assert_close(sw, sw_before, rtol=0, atol=0, equal_nan=True)
    return error


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tiny n ~ k
@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.tuples(st.integers(8, 60), st.integers(1, 5)),
    dtype=st.sampled_from(_FUZZ_DTYPES[:6]),
    special=st.sampled_from([None, "huge"]),
    weights=st.sampled_from([None, "ok", "numpy"]),
    k=st.integers(1, 8),
    init=st.sampled_from(["k-means++", "random", "k-means||", "auto"]),
    precision=st.sampled_from(["highest", "tf32", "fp16", "bf16"]),
    seed=st.integers(0, 2**16),
)
def test_fuzzed_valid_tensors_fit(device, shape, dtype, special, weights, k, init, precision, seed):
    # valid input fits, except float32 data (bfloat16 fits as float32) with a value of
    # 1e30, whose squared distances overflow float32: refused, saying so
    error = _fit_or_refuse(device, shape, dtype, special, weights, k, init, precision, seed)
    if error is not None:
        assert special == "huge" and dtype in ("float32", "bfloat16"), error
        assert "fit it as float64" in str(error)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tiny n ~ k
@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.one_of(
        st.tuples(st.integers(0, 40), st.integers(0, 5)),
        st.tuples(st.integers(1, 6)),
        st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)),
    ),
    dtype=st.sampled_from(_FUZZ_DTYPES),
    special=st.sampled_from([None, "nan", "inf", "-inf", "huge"]),
    weights=st.sampled_from([None, "ok", "numpy", "short", "negative", "nan", "zero", "2d"]),
    k=st.one_of(st.integers(-1, 8), st.sampled_from([1.5, "3", True])),
    init=st.sampled_from(["k-means++", "random", "k-means||", "auto"]),
    precision=st.sampled_from(["highest", "tf32", "fp16", "bf16"]),
    seed=st.integers(0, 2**16),
)
def test_fuzzed_tensors_fit_or_raise_a_documented_error(
    device, shape, dtype, special, weights, k, init, precision, seed
):
    # any input (shapes, dtypes, NaN / infinite / huge values, bad weights, bad k) ends in
    # a fit or in a ValueError / TypeError naming the problem, never an internal error
    _fit_or_refuse(device, shape, dtype, special, weights, k, init, precision, seed)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["highest", "fp16"])
@pytest.mark.parametrize("kernels", ["compiled", "torch"])
def test_costs_that_overflow_float32_are_refused_with_the_reason(device, precision, kernels):
    # finite float32 data 1e30 apart: the costs overflow; every path refuses the fit and
    # says why (the torch operations returned an inertia of inf, found by the fuzz test)
    X = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
    X[0, 0] = 1e30
    options = TorchExecutor(precision=precision, cpu_kernels=kernels)
    with pytest.raises(StrategyError, match="float32's largest value .* fit it as float64"):
        KMeans(1, random_state=0, executor=options).fit(_on(X, device))
    km = KMeans(1, random_state=0, executor=options).fit(_on(X.astype(np.float64), device))
    assert np.isfinite(km.inertia_)
    # predict reads only the labels: as the NumPy backend's, it does not refuse them
    if kernels == "torch":
        model = KMeans(2, random_state=0, executor=options).fit(_on(X[1:], device))
        labels = model.predict(_on(X, device)).cpu().numpy()
        np.testing.assert_array_equal(labels, model.predict(X))


@pytest.mark.parametrize("device", DEVICES)
def test_a_criterion_answering_other_than_a_bool_is_named(device):
    X = _on(_blobs(), device)
    with pytest.raises(StrategyError, match="answers-test.*returned 'no'"):
        KMeans(K, convergence=["tol", Answers("no")], n_init=1, random_state=0).fit(X)


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")
@pytest.mark.parametrize("device", DEVICES)
def test_a_relocation_in_the_last_iteration_is_followed_by_an_assignment(device):
    # the iteration that moves an empty cluster's centroid leaves the labels unchanged:
    # the fit must still end with the labels of the moved centroids
    X = np.array([[0.0, 2], [1, 0], [0, 2], [1, 2], [0, 2], [1, 0]])
    init = np.array([[1.16, 0.97], [2.18, -0.47], [-0.73, 1.37], [0.35, 2.48]])
    km = KMeans(4, init=init, n_init=1).fit(_on(X, device))
    np.testing.assert_array_equal(km.labels_, KMeans(4, init=init, n_init=1).fit(X).labels_)
    np.testing.assert_array_equal(km.labels_, [2, 0, 2, 1, 2, 0])
    assert km.inertia_ == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_float32_labels_left_to_the_rounding_are_warned_of(device):
    # as in memory (tests/test_float32_offset.py): fit and predict check drawn rows
    X = two_far_groups(np.float32)
    with pytest.warns(kmeansfw.PrecisionWarning, match="rows checked"):
        km = KMeans(10, random_state=0).fit(_on(X, device))
    assert np.count_nonzero(km.labels_ != exact_nearest(X, km.cluster_centers_, 0.0)[0]) > 400
    with pytest.warns(kmeansfw.PrecisionWarning):
        km.predict(_on(X, device))
