"""Contract 2.0: slots own their hooks, fitted state, one loop, nothing shared, executors."""

from __future__ import annotations

import ast
import pathlib
import pickle

import attrs
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import cdist
from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw import KMeans, PairingWarning, StrategyError
from kmeansfw.engine.executors import PickleShuffleExecutor

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def X():
    return make_blobs(600, n_features=3, centers=4, random_state=2)[0]


# ------------------------------------------------------------------ 1. fitted state


def test_mahalanobis_predict_in_any_chunking_gives_the_labels_of_one_call(X):
    km = KMeans(3, distance="mahalanobis", random_state=0).fit(X)
    whole = km.predict(X)
    chunked = np.concatenate([km.predict(X[i : i + 50]) for i in range(0, len(X), 50)])
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(whole, km.labels_)
    assert km.predict(X[:2]).shape == (2,)  # two rows have a singular covariance
    np.testing.assert_allclose(km.transform(X[:1]), km.transform(X)[:1])
    assert set(km.fitted_state_) == {"mahalanobis.cholesky", "mahalanobis.origin"}
    loaded = pickle.loads(pickle.dumps(km))
    np.testing.assert_array_equal(loaded.predict(X[:7]), whole[:7])


def test_euclidean_centers_every_data_set_on_the_training_mean(X):
    far = X + 1e6
    km = KMeans(4, random_state=0).fit(far)
    np.testing.assert_allclose(km.fitted_state_["euclidean.mean"], far.mean(axis=0))
    labels = np.concatenate([km.predict(far[i : i + 7]) for i in range(0, len(far), 7)])
    np.testing.assert_array_equal(labels, km.predict(far))


class Learns:
    """A distance that learns a scale from the training data and only from it."""

    name = "learns"
    natural_update = "mean"
    calls = 0

    @kmeansfw.hookimpl
    def kmeansfw_learn(self, data):
        type(self).calls += 1
        return {"learns.scale": np.abs(data.X).max(axis=0)}

    @kmeansfw.hookimpl
    def kmeansfw_distance(self, X, centroids, data):
        scale = data.fitted["learns.scale"]
        return cdist(X / scale, centroids / scale).astype(X.dtype)

    @kmeansfw.hookimpl
    def kmeansfw_cost(self, X, centroids, data):
        return self.kmeansfw_distance(X=X, centroids=centroids, data=data) ** 2


def test_learned_state_is_computed_once_and_reused_unchanged(X):
    Learns.calls = 0
    km = KMeans(4, distance=Learns(), random_state=0).fit(X)
    assert Learns.calls == 1
    km.predict(X[:3] * 100)  # other data: the training scale, nothing learned again
    km.score(X)
    assert Learns.calls == 1
    np.testing.assert_array_equal(km.fitted_state_["learns.scale"], np.abs(X).max(axis=0))


# ------------------------------------------------------------------ 2. slots own hooks


@attrs.frozen
class StopAfter2:
    name = "stop-after-2"

    @kmeansfw.hookimpl
    def kmeansfw_converged(self, state):
        return state.iteration >= 2


@attrs.frozen
class Hijacker(StopAfter2):
    name = "hijacker"

    @kmeansfw.hookimpl
    def kmeansfw_nearest(self, X):
        n = X.shape[0]
        return np.zeros(n, dtype=np.intp), np.zeros(n, dtype=X.dtype), None, None


def test_a_strategy_answering_another_slots_hook_is_refused_by_name(X):
    with pytest.raises(StrategyError, match=r"'hijacker'.*kmeansfw_nearest.*distance slot"):
        KMeans(3, convergence=[Hijacker()], random_state=0).fit(X)


def test_an_observer_may_wrap_but_not_answer(X):
    class Answers:
        @kmeansfw.hookimpl
        def kmeansfw_assign(self, X):
            return None

    with pytest.raises(StrategyError, match="observer 'Answers'.*kmeansfw_assign"):
        KMeans(3, observers=[Answers()], random_state=0).fit(X)

    class Unknown:
        @kmeansfw.hookimpl
        def kmeansfw_converged(self, state, tolerance):
            return True

    with pytest.raises(StrategyError, match="'tolerance'"):
        KMeans(3, convergence=[Unknown()], random_state=0).fit(X)


def test_a_bad_answer_through_a_wrapper_names_the_wrapper_too(X):
    # the error named only the wrapped strategy, which answered well: the wrapper changed
    # its answer on the way
    class ShiftsLabels:
        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_assign(self):
            labels, costs = yield
            return labels + 10, costs

    with pytest.raises(
        StrategyError,
        match=r"'auto' \(or observer 'ShiftsLabels' #0, wrapping it\) returned labels outside",
    ):
        KMeans(4, observers=[ShiftsLabels()], random_state=0).fit(X)

    class AnswersAString:
        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_converged(self):
            yield
            return "no"

    with pytest.raises(StrategyError, match="'AnswersAString' #0 returned a str from kmeansfw"):
        KMeans(4, observers=[AnswersAString()], random_state=0).fit(X)


# ------------------------------------------------------------------ 3. one loop


def test_mini_batch_calls_criteria_observers_and_history(X):
    seen = []

    class Spy:
        @kmeansfw.hookimpl
        def kmeansfw_iteration_end(self, state):
            seen.append((state.iteration, state.data.n_samples))

    km = KMeans(
        3, batch_size=64, convergence=[StopAfter2()], observers=[Spy()], history=True,
        random_state=0,
    ).fit(X)
    assert km.n_iter_ == 2
    assert seen == [(1, 64), (2, 64)]
    assert [r["iteration"] for r in km.history_] == [1, 2]


def test_partial_fit_goes_through_the_same_iteration(X):
    km = KMeans(3, random_state=0)
    for chunk in np.array_split(X, 4):
        km.partial_fit(chunk)
    assert km.n_steps_ == 4 and "euclidean.mean" in km.fitted_state_


# ------------------------------------------------------------------ 4. nothing shared


def test_config_is_immutable_and_managers_are_per_fit():
    cfg = kmeansfw.Config(n_clusters=3)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.n_clusters = 4  # type: ignore[misc]
    from kmeansfw.core.catalog import is_value_strategy

    assert is_value_strategy(StopAfter2())

    @attrs.define
    class Mutable:
        x: int = 0

    assert not is_value_strategy(Mutable())


# ------------------------------------------------------------------ 5. distances


def test_a_distance_written_as_pairwise_only_gets_every_default(X):
    @attrs.frozen
    class Plain(kmeansfw.Distance):
        name = "plain-euclidean"
        natural_update = "mean"
        is_metric = True
        squared = True

        def pairwise(self, X, centroids, data, cache):
            return cdist(X, centroids).astype(X.dtype)

    init = X[:4]
    ours = KMeans(4, init=init, distance=Plain(), assignment="hamerly").fit(X)
    ref = KMeans(4, init=init).fit(X)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-9)
    yin = KMeans(4, init=init, distance=Plain(), assignment="yinyang").fit(X)
    np.testing.assert_array_equal(yin.labels_, ref.labels_)


def test_a_distance_without_natural_update_warns(X):
    class Undeclared:
        name = "undeclared"

        @kmeansfw.hookimpl
        def kmeansfw_cost(self, X, centroids):
            return cdist(X, centroids, "sqeuclidean").astype(X.dtype)

        @kmeansfw.hookimpl
        def kmeansfw_distance(self, X, centroids):
            return cdist(X, centroids).astype(X.dtype)

    with pytest.warns(PairingWarning, match="'undeclared' declares no natural_update"):
        KMeans(3, distance=Undeclared(), random_state=0).fit(X)


def test_an_answer_of_the_wrong_dtype_is_refused(X):
    @attrs.frozen
    class Float64Answers(kmeansfw.Distance):
        name = "float64-answers"
        natural_update = "mean"

        def pairwise(self, X, centroids, data, cache):
            return cdist(X, centroids)  # always float64

    with pytest.raises(StrategyError, match="'float64-answers'.*dtype float64, expected float32"):
        KMeans(3, distance=Float64Answers(), random_state=0).fit(X.astype(np.float32))
    # a plain function is converted by its adapter
    km = KMeans(3, distance=lambda X, C: cdist(X, C), random_state=0).fit(X.astype("f4"))
    assert km.cluster_centers_.dtype == np.float32

    class ListInit:  # a list of floats reads as float64: said so on float32 data
        name = "list-init"

        @kmeansfw.hookimpl
        def kmeansfw_init_centroids(self, X, n_clusters):
            return X[:n_clusters].tolist()

    KMeans(3, init=ListInit(), n_init=1).fit(X)  # float64: the list is the array
    with pytest.raises(StrategyError, match=r"'list-init'.*float32 \(a list, read as an array"):
        KMeans(3, init=ListInit(), n_init=1).fit(X.astype(np.float32))


# ------------------------------------------------------------------ read-only inputs


def test_strategies_get_read_only_views_and_are_named(X):
    class Writes:
        name = "writes"
        natural_update = "mean"

        @kmeansfw.hookimpl
        def kmeansfw_cost(self, X, centroids):
            X[...] = 0
            return cdist(X, centroids, "sqeuclidean")

        @kmeansfw.hookimpl
        def kmeansfw_distance(self, X, centroids):
            return cdist(X, centroids)

    mine = X.copy()
    with pytest.raises(StrategyError, match="'writes'.*read-only"):
        KMeans(3, distance=Writes(), random_state=0).fit(mine)
    np.testing.assert_array_equal(mine, X)

    class WritesCentroids:
        name = "writes-centroids"

        @kmeansfw.hookimpl
        def kmeansfw_update(self, data, centroids):
            centroids[:] = 0
            return centroids, np.ones(centroids.shape[0])

    with pytest.raises(StrategyError, match="'writes-centroids'.*read-only"):
        KMeans(3, update=WritesCentroids(), random_state=0).fit(X)


def test_the_empty_cluster_strategy_gets_the_new_centroids_read_only(X):
    class WritesNew:
        name = "writes-new"

        @kmeansfw.hookimpl
        def kmeansfw_empty_clusters(self, new_centroids):
            new_centroids[0] = 0.0  # in place, even with no cluster empty
            return new_centroids

    with pytest.raises(StrategyError, match="'writes-new'.*read-only"):
        KMeans(3, empty=WritesNew(), random_state=0).fit(X)

    class Spoils:
        name = "spoils"

        @kmeansfw.hookimpl
        def kmeansfw_empty_clusters(self, new_centroids):
            out = new_centroids.copy()  # another array: checked again
            out[0, 0] = np.nan
            return out

    with pytest.raises(StrategyError, match="'spoils'.*NaN"):
        KMeans(3, empty=Spoils(), random_state=0).fit(X)

    seen = []

    class Same:
        name = "same"

        @kmeansfw.hookimpl
        def kmeansfw_empty_clusters(self, new_centroids):
            seen.append(new_centroids)
            return new_centroids  # itself: the update's answer, checked already

    km = KMeans(3, empty=Same(), random_state=0).fit(X)
    assert seen and not any(c.flags.writeable for c in seen)
    default = KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, default.cluster_centers_)


_STATE_ARRAYS = ("labels", "previous_labels", "costs", "cluster_weights", "centroids")


@pytest.mark.parametrize("name", _STATE_ARRAYS)
@pytest.mark.parametrize("hook", ["kmeansfw_iteration_end", "kmeansfw_converged"])
@pytest.mark.parametrize("params", [{}, {"assignment": "hamerly"}, {"batch_size": 200}])
def test_observers_and_criteria_see_the_state_read_only(X, name, hook, params):
    # an observer (or a criterion) writing into the state's arrays changed the fit's
    # answer without an error: zeroed costs gave an inertia of 0, zeroed labels labels
    # that did not match the centroids
    class Writes:
        def __init__(self):
            self.name = f"writes-{name}"

        def _write(self, state):
            value = getattr(state, name)
            if value is not None and value.size:
                value[...] = 0

    def iteration_end(self, state):
        self._write(state)

    def converged(self, state):
        self._write(state)
        return False

    body = iteration_end if hook == "kmeansfw_iteration_end" else converged
    setattr(Writes, hook, kmeansfw.hookimpl(body, specname=hook))
    where = {"observers": [Writes()]} if hook == "kmeansfw_iteration_end" else {}
    if hook == "kmeansfw_converged":
        where = {"convergence": [Writes(), "tol"]}
    with pytest.raises(StrategyError, match=rf"writes-{name}.*read-only"):
        KMeans(4, random_state=0, max_iter=5, **params, **where).fit(X)


@pytest.mark.parametrize("name", ["centroids", "labels", "costs"])
def test_observers_see_the_fit_result_read_only(X, name):
    class Writes:
        @kmeansfw.hookimpl
        def kmeansfw_fit_end(self, result):
            getattr(result, name)[...] = 0

    with pytest.raises(StrategyError, match="Writes.*read-only"):
        KMeans(4, random_state=0, observers=[Writes()]).fit(X)

    class Keeps:
        results: list = []

        @kmeansfw.hookimpl
        def kmeansfw_fit_end(self, result):
            self.results.append(result)

    km = KMeans(4, random_state=0, n_init=1, observers=[Keeps()]).fit(X)
    kept = Keeps.results[-1]
    np.testing.assert_array_equal(kept.centroids, km.cluster_centers_)
    assert km.cluster_centers_.flags.writeable  # the model's own arrays stay the user's


def test_strategies_declaring_no_argument_or_one_are_called_directly(X):
    calls = []

    class Never:
        name = "never"

        @kmeansfw.hookimpl
        def kmeansfw_converged(self):
            calls.append("never")
            return False

    class Counts:
        name = "counts"

        @kmeansfw.hookimpl
        def kmeansfw_converged(self, state):
            calls.append(state.iteration)
            return state.iteration >= 3

    km = KMeans(3, convergence=[Never(), Counts()], random_state=0, max_iter=50).fit(X)
    assert km.n_iter_ == 3
    assert sorted(c for c in calls if c != "never") == [1, 2, 3]
    assert calls.count("never") == 3


def test_an_observer_that_raises_is_named(X):
    class Broken:
        name = "broken-observer"

        @kmeansfw.hookimpl
        def kmeansfw_iteration_end(self, state):
            raise KeyError("oops")

    with pytest.raises(StrategyError, match="'broken-observer'.*KeyError"):
        KMeans(3, observers=[Broken()], random_state=0).fit(X)


# ------------------------------------------------------------------ executors


CASES = [
    {},
    {"init": "k-means||"},
    {"init": "random", "n_init": 2},
    {"assignment": "hamerly"},
    {"assignment": "yinyang", "n_clusters": 20},
    {"distance": "cosine"},
    {"distance": "mahalanobis"},
    {"distance": "manhattan"},
    {"update": "medoid", "distance": {"name": "minkowski", "p": 1.5}},
    {"empty": "split-largest"},
]


@pytest.fixture(scope="module")
def many():
    # large enough for several chunks (data past the inline threshold)
    return make_blobs(40_000, n_features=8, centers=12, random_state=7)[0]


@pytest.mark.parametrize("params", CASES, ids=lambda p: ",".join(map(str, p.values())) or "default")
@pytest.mark.filterwarnings("ignore::kmeansfw.PairingWarning")  # medoid on Minkowski: on purpose
def test_fits_under_the_pickle_shuffle_executor_are_bit_identical(many, params):
    params = {"n_clusters": 8, "random_state": 0, "max_iter": 12, **params}
    executor = PickleShuffleExecutor(seed=1)
    threads = KMeans(**params).fit(many)
    shuffled = KMeans(**params, executor=executor).fit(many)
    assert executor.chunks_run > 0  # the seam was used
    np.testing.assert_array_equal(shuffled.labels_, threads.labels_)
    np.testing.assert_array_equal(shuffled.cluster_centers_, threads.cluster_centers_)
    assert shuffled.inertia_ == threads.inertia_
    assert shuffled.n_iter_ == threads.n_iter_
    np.testing.assert_array_equal(shuffled.predict(many[:999]), threads.predict(many[:999]))


def test_sparse_and_mini_batch_under_the_pickle_shuffle_executor(many):
    csr = sp.csr_matrix(np.where(np.abs(many) > 4, many, 0))
    for X, params in ((csr, {}), (many, {"batch_size": 30_000})):
        params = {"n_clusters": 5, "random_state": 3, "max_iter": 5, **params}
        threads = KMeans(**params).fit(X)
        shuffled = KMeans(**params, executor=PickleShuffleExecutor()).fit(X)
        np.testing.assert_array_equal(shuffled.labels_, threads.labels_)
        np.testing.assert_array_equal(shuffled.cluster_centers_, threads.cluster_centers_)


# ------------------------------------------------------------------ 6. structure


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in _runtime_nodes(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(path: pathlib.Path) -> set[str]:
    """kmeansfw modules imported at run time, at module level or inside functions."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kmeansfw"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kmeansfw"))
    return found


def test_no_import_cycles_between_modules():
    package = ROOT / "kmeansfw"
    modules = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {
        name: {m for m in _imports(path) if m in modules and m != name}
        for name, path in modules.items()
        if not name.endswith("__init__") and name != "kmeansfw"
    }
    graph = {name: {m for m in deps if m in graph} for name, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node, trail):
        if state.get(node) == 1:
            raise AssertionError(f"import cycle: {' -> '.join([*trail, node])}")
        if state.get(node) == 2:
            return
        state[node] = 1
        for dep in sorted(graph[node]):
            visit(dep, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])


def test_core_depends_on_nothing_above_it():
    for path in (ROOT / "kmeansfw" / "core").glob("*.py"):
        layers = ("kmeansfw.engine", "kmeansfw.strategies", "kmeansfw.workflow")
        above = [m for m in _imports(path) if m.startswith(layers)]
        assert not above, f"{path.name} imports {above}"


def test_version_is_written_once_and_the_package_is_typed():
    import importlib.metadata

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert kmeansfw.__version__ == importlib.metadata.version("kmeansfw")
    assert (ROOT / "kmeansfw" / "py.typed").exists()


class _DistanceWithoutCost:
    """A hook-style distance that forgot ``kmeansfw_cost``."""

    name = "no-cost"
    natural_update = "median"

    @kmeansfw.hookimpl
    def kmeansfw_distance(self, X, centroids):
        return np.abs(X[:, None, :] - centroids[None, :, :]).sum(axis=2)


def test_a_distance_without_cost_is_refused_by_name_when_the_fit_is_built():
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(StrategyError, match=r"'no-cost'.*implements no kmeansfw_cost.*Distance"):
        KMeans(2, distance=_DistanceWithoutCost()).fit(X)
