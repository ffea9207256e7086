"""Defects an adversarial probe of the estimators, the command line, the experiment
runner, checkpoints and plugins found (2026-12-08), each with the case that showed it."""

from __future__ import annotations

import warnings

import attrs
import numpy as np
import pytest
import scipy.sparse as sp

import kmeansfw
from kmeansfw.core.errors import PrecisionWarning, StrategyError
from kmeansfw.workflow.experiment import DataError, load_file


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(300, 5))


# ---------------------------------------------------------------- fitted centroids
@pytest.mark.parametrize("kind", ["KMeans", "MiniBatchKMeans", "KMedoids"])
def test_hand_set_centers_that_do_not_fit_the_model_are_refused(X, kind):
    # scikit-learn code sets cluster_centers_ by hand; centroids of another width were
    # compared with rows of the wrong length (labels and a score, no error)
    est = getattr(kmeansfw, kind)(4, random_state=0).fit(X)
    good = est.cluster_centers_.copy()
    bad = {  # by what is wrong with them
        "narrower": good[:, :3].copy(),
        "wider": np.c_[good, good[:, :2]],
        "no rows": good[:0],
        "one dimension": good[0].copy(),
        "NaN": np.where(good > 0, np.nan, good),
    }
    for centers in bad.values():
        est.cluster_centers_ = centers
        for call in (est.predict, est.transform, est.score):
            with pytest.raises(ValueError, match="cluster_centers_"):
                call(X[:6])
    est.cluster_centers_ = good
    assert est.predict(X[:6]).shape == (6,)


def test_the_engine_refuses_centroids_of_another_width(X):
    from kmeansfw.core.data import FitData
    from kmeansfw.engine import loop as engine
    from kmeansfw.engine import plugins, steps

    km = kmeansfw.KMeans(3, random_state=0).fit(X)
    data = FitData.build(X, n_clusters=3, fitted=km.fitted_state_)
    hooks = plugins.build(km._strategies)
    engine.prepare(hooks, data)
    with pytest.raises(ValueError, match=r"centroids of shape \(3, 4\) for data of 5 features"):
        steps.assign(hooks, data, km.cluster_centers_[:, :4].copy())
    assert steps.assign(hooks, data, km.cluster_centers_).labels.shape == (300,)


# ---------------------------------------------------------------- parameters
def test_sample_weights_whose_total_overflows_are_refused_as_such(X):
    # each weight finite, their float64 total not: the update's sums overflowed and the
    # error blamed the 'mean' strategy
    with pytest.raises(ValueError, match="sample_weight sums to more than float64"):
        kmeansfw.KMeans(3, random_state=0).fit(X, sample_weight=np.full(300, 1e308))


def test_history_takes_a_numpy_boolean(X):
    km = kmeansfw.KMeans(3, random_state=0, history=np.True_).fit(X)
    assert len(km.history_) == km.n_iter_


@attrs.frozen
class _FixedInit:
    centroids: np.ndarray = attrs.field(eq=False, repr=False)  # arrays: the attrs idiom

    @kmeansfw.hookimpl
    def kmeansfw_init_centroids(self, X, n_clusters):
        return np.array(self.centroids, dtype=X.dtype)


def test_strategies_equal_only_for_a_field_left_out_are_not_shared(X):
    # two such strategies compare equal whatever the field holds: the second estimator
    # ran with the first one's (cached) strategy and its centroids
    a = kmeansfw.KMeans(4, init=_FixedInit(X[:4]), max_iter=1).fit(X)
    b = kmeansfw.KMeans(4, init=_FixedInit(X[100:104]), max_iter=1).fit(X)
    expected = kmeansfw.KMeans(4, init=X[100:104], n_init=1, max_iter=1).fit(X)
    np.testing.assert_array_equal(b.cluster_centers_, expected.cluster_centers_)
    assert not np.array_equal(a.cluster_centers_, b.cluster_centers_)


@attrs.frozen
class _Answer:
    value: object

    @kmeansfw.hookimpl
    def kmeansfw_converged(self, state):
        return self.value


def test_strategies_with_parameters_equal_across_types_are_not_shared(X):
    # 1 == np.True_, so a cached _Answer(1) answered for _Answer(np.True_): an error
    # about an int the second fit's strategy never returned
    with pytest.raises(StrategyError, match="returned 1 "):
        kmeansfw.KMeans(3, random_state=0, convergence=_Answer(1)).fit(X)
    km = kmeansfw.KMeans(3, random_state=0, convergence=_Answer(np.True_)).fit(X)
    assert km.n_iter_ == 1


# ---------------------------------------------------------------- observers
class _SetsCentroids:
    def __init__(self, make):
        self.make = make

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        if state.iteration == 2:
            state.centroids = self.make(state.centroids)


@pytest.mark.parametrize(
    "make, what",
    [
        (lambda c: c[:2].copy(), r"shape \(2, 5\)"),
        (lambda c: np.full_like(c, np.nan), "NaN or infinity"),
        (lambda c: c.astype(np.float32), "dtype float32"),
        (lambda c: c.tolist(), "a list"),
    ],
)
def test_centroids_an_observer_sets_are_checked(X, make, what):
    with pytest.raises(StrategyError, match=f"_SetsCentroids.*state.centroids.*{what}"):
        kmeansfw.KMeans(4, random_state=0, observers=[_SetsCentroids(make)]).fit(X)
    # a finite array of the same shape is what the next iteration starts from
    moved = kmeansfw.KMeans(
        4, random_state=0, observers=[_SetsCentroids(lambda c: c + 1.0)], max_iter=2
    ).fit(X)
    plain = kmeansfw.KMeans(4, random_state=0, max_iter=2).fit(X)
    assert not np.array_equal(moved.cluster_centers_, plain.cluster_centers_)


class _Fails:
    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        raise RuntimeError("boom")


def test_an_observer_that_fails_is_the_one_named(X):
    with pytest.raises(StrategyError, match="boom") as caught:
        kmeansfw.KMeans(3, random_state=0, observers=["history", _Fails()]).fit(X)
    message = str(caught.value)
    assert "_Fails" in message and "history" not in message


# ---------------------------------------------------------------- float32 rounding
def _far_close_groups(spread, apart, offset):
    rng = np.random.default_rng(1)
    A = rng.normal(size=(2000, 2)) * spread
    A[:1000, 0] += apart
    return np.r_[A, A + offset].astype(np.float32)


@pytest.mark.parametrize(
    "sparse, spread, apart, offset, tol",
    # dense: rows 7e4 from the origin, clusters 0.5 apart; the check's allowance for
    # float64's own rounding (2^-40 of the terms) hid every gap.  Sparse (compared on
    # the origin): rows 1.4e4 out; sparse input was not checked at all
    [(False, 0.05, 0.5, 1e5, 1e-4), (True, 0.5, 1.5, 1e4, 0.0)],
)
def test_float32_labels_wrong_by_rounding_far_out_are_reported(sparse, spread, apart, offset, tol):
    X = _far_close_groups(spread, apart, offset)
    data = sp.csr_matrix(X) if sparse else X
    init = X[[0, 1500, 2000, 3500]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        km = kmeansfw.KMeans(4, init=init, n_init=1, tol=tol).fit(data)
    C = km.cluster_centers_.astype(np.float64)
    D = ((X.astype(np.float64)[:, None] - C) ** 2).sum(2)
    assert (D[np.arange(len(X)), km.labels_] > D.min(1)).sum() > 100  # the case holds
    assert any(issubclass(w.category, PrecisionWarning) for w in caught)


@pytest.mark.parametrize("sparse", [False, True])
def test_no_precision_warning_for_float32_near_the_origin(sparse):
    X = _far_close_groups(0.05, 0.5, 0.0)[:2000]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        km = kmeansfw.KMeans(2, init=X[[0, 1500]], n_init=1).fit(
            sp.csr_matrix(X) if sparse else X
        )
    assert km.inertia_ > 0


# ---------------------------------------------------------------- data files
def test_a_parquet_files_pandas_index_is_not_a_feature(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 3)), columns=list("abc"))
    kept = df[df.a > 0]  # an index other than 0..n-1: pandas stores it as a column
    kept.to_parquet(tmp_path / "idx.parquet")
    np.testing.assert_array_equal(load_file(tmp_path / "idx.parquet"), kept.to_numpy())
    df.to_parquet(tmp_path / "plain.parquet")
    np.testing.assert_array_equal(load_file(tmp_path / "plain.parquet"), df.to_numpy())


def test_a_parquet_column_of_timestamps_is_a_data_error(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"a": [1.0, 2.0], "when": pd.to_datetime(["2020-01-01", "2020-01-02"])})
    df.to_parquet(tmp_path / "ts.parquet")
    with pytest.raises(DataError, match="column 'when' holds timestamp"):
        load_file(tmp_path / "ts.parquet")


def test_a_file_named_npy_without_its_header_is_a_data_error(tmp_path):
    (tmp_path / "garbage.npy").write_text("hello\n")
    with pytest.raises(DataError, match=r"garbage.npy: not a .npy array file \(no NumPy"):
        load_file(tmp_path / "garbage.npy")
    with pytest.raises(DataError, match="is a folder, not a data file"):
        load_file(tmp_path)


# ---------------------------------------------------------------- fingerprints
class _Slotted:
    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    @kmeansfw.hookimpl
    def kmeansfw_converged(self, state):
        return state.iteration >= self.n


def _class_from_source(op):
    namespace: dict = {}
    exec(  # a class edited under the same name, as between two runs of a script
        "import kmeansfw\n"
        "class Stop:\n"
        "    def __init__(self, n):\n"
        "        self.n = n\n"
        "    @kmeansfw.hookimpl\n"
        "    def kmeansfw_converged(self, state):\n"
        f"        return state.iteration {op} self.n\n",
        namespace,
    )
    return namespace["Stop"](3)


def _helpers(limit):
    namespace: dict = {}
    exec(
        f"def h3(s): return s.iteration >= {limit}\n"
        "def h2(s): return h3(s)\n"
        "def h1(s): return h2(s)\n"
        "def f(s): return h1(s)\n",
        namespace,
    )
    return namespace["f"]


def test_fingerprints_tell_apart_what_computes_differently():
    from kmeansfw.workflow.checkpoint import value_digest

    def digest(value):
        return value_digest({"convergence": value})

    # an object with __slots__ (no __dict__): every value had one digest
    assert digest(_Slotted(2)) != digest(_Slotted(30))
    assert digest(_Slotted(2)) == digest(_Slotted(2))
    # a strategy class whose method changed
    assert digest(_class_from_source(">=")) != digest(_class_from_source(">"))
    assert digest(_class_from_source(">=")) == digest(_class_from_source(">="))
    # a callback whose constant sits three helpers deep
    assert digest({"name": "callback", "func": _helpers(3)}) != digest(
        {"name": "callback", "func": _helpers(30)}
    )


def test_a_checkpoint_of_a_slotted_strategy_is_not_reused_for_another(tmp_path, X):
    # the second fit returned the first one's finished result (2 iterations), silently
    first = kmeansfw.KMeans(
        5, random_state=0, init="random", n_init=1, convergence=_Slotted(2),
        checkpoint=str(tmp_path), tol=0.0,
    ).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "written for a different convergence"
        second = kmeansfw.KMeans(
            5, random_state=0, init="random", n_init=1, convergence=_Slotted(30),
            checkpoint=str(tmp_path), tol=0.0,
        ).fit(X)
    fresh = kmeansfw.KMeans(
        5, random_state=0, init="random", n_init=1, convergence=_Slotted(30), tol=0.0
    ).fit(X)
    assert first.n_iter_ == 2
    assert second.n_iter_ == fresh.n_iter_
    np.testing.assert_array_equal(second.cluster_centers_, fresh.cluster_centers_)


def test_a_strategy_registered_anew_under_its_name_is_another_setting():
    from kmeansfw.core.catalog import CATALOG
    from kmeansfw.workflow.checkpoint import value_digest, with_registered

    def scaled(weight):
        def distance(X, C):
            return np.sqrt((((X[:, None, :] - C[None]) * weight) ** 2).sum(2))

        return distance

    try:
        kmeansfw.distance("probe-scaled", replace=True)(scaled(1.0))
        one = value_digest(with_registered("distance", "probe-scaled"))
        again = value_digest(with_registered("distance", {"name": "probe-scaled"}))
        kmeansfw.distance("probe-scaled", replace=True)(scaled(10.0))
        ten = value_digest(with_registered("distance", "probe-scaled"))
    finally:
        CATALOG._entries.pop(("distance", "probe-scaled"), None)
    assert one != ten
    assert again != value_digest({"name": "probe-scaled"})  # the table's name too
    # built-in names stay names: checkpoints written before still resume
    assert with_registered("distance", "euclidean") == "euclidean"


def test_unit_weights_have_one_fingerprint_whatever_the_dtype(X):
    from kmeansfw.workflow.checkpoint import fingerprint

    as64 = fingerprint({}, X)["sample_weight"]
    as32 = fingerprint({}, X.astype(np.float32))["sample_weight"]
    assert as64 == as32
    assert fingerprint({}, X, np.full(300, 2.0))["sample_weight"] != as64


def test_fingerprints_of_attrs_strategies_are_the_same_in_every_process():
    # attrs' generated __hash__ holds a per-process salt: described with the class's
    # code, every new process gave a new digest and no checkpoint resumed
    import subprocess
    import sys

    script = (
        "from kmeansfw.workflow.checkpoint import value_digest\n"
        "from kmeansfw.strategies.init import KMeansPlusPlus\n"
        "print(value_digest({'init': KMeansPlusPlus()}))\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1 and "" not in digests


def test_object_centres_that_convert_to_floats_still_predict(X):
    km = kmeansfw.KMeans(3, random_state=0).fit(X)
    expected = km.predict(X)
    km.cluster_centers_ = km.cluster_centers_.astype(object)
    np.testing.assert_array_equal(km.predict(X), expected)


@attrs.frozen
class _Holds:
    items: list

    @kmeansfw.hookimpl
    def kmeansfw_converged(self, state):
        return state.iteration >= 2


def test_a_strategy_holding_a_list_that_holds_itself_still_fits(X):
    # the shared-strategy key walked the list's types without end (RecursionError)
    looped: list = []
    looped.append(looped)
    km = kmeansfw.KMeans(3, random_state=0, convergence=_Holds(looped)).fit(X)
    assert km.n_iter_ == 2


class _Private:
    __slots__ = ("__n",)

    def __init__(self, n):
        self.__n = n


def test_fingerprints_read_private_slots():
    # a slot named __n is stored as _Private__n: read by its own name it was always unset
    from kmeansfw.workflow.checkpoint import value_digest

    assert value_digest(_Private(2)) != value_digest(_Private(30))
    assert value_digest(_Private(2)) == value_digest(_Private(2))
