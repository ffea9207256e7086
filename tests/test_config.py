"""Config: dict and TOML in, dict out, errors naming the key; the estimator round trip."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import kmeansfw
from kmeansfw import Config, ConfigError, KMeans, MiniBatchKMeans, StrategySpec

STUDY = """
n_clusters = 5
n_init = 3
init = "k-means++"
random_state = 4

[distance]
name = "minkowski"
p = 3

[convergence]
name = "tol"
tol = 1e-3
"""


def test_toml_file_and_text(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    for source in (path, str(path), STUDY):
        cfg = Config.from_toml(source)
        assert cfg.n_clusters == 5 and cfg.n_init == 3 and cfg.random_state == 4
        assert cfg.distance == StrategySpec("minkowski", {"p": 3})
        assert cfg.convergence == StrategySpec("tol", {"tol": 1e-3})


def test_round_trip_dict():
    cfg = Config.from_toml(STUDY)
    values = cfg.to_dict()
    assert values["distance"] == {"name": "minkowski", "p": 3}
    assert values["init"] == "k-means++"
    assert Config.from_dict(values) == cfg


def test_estimator_from_config_and_back(tmp_path, blobs):
    X, _ = blobs
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    km = KMeans.from_config(path)
    assert km.n_clusters == 5 and km.distance == {"name": "minkowski", "p": 3}
    assert km.get_config() == Config.from_toml(STUDY)
    km.fit(X)
    assert km.cluster_centers_.shape == (5, 4)
    fitted = kmeansfw.fit(X, path)
    np.testing.assert_allclose(fitted.centroids, km.cluster_centers_)


def test_estimator_params_are_the_config_keys():
    import attrs

    # plus scikit-learn's parameters the estimator handles itself
    sklearn_only = {"algorithm", "copy_x", "verbose"}
    keys = {a.name for a in attrs.fields(Config)}
    assert set(KMeans().get_params()) == keys | sklearn_only
    assert not keys & sklearn_only


def test_custom_distance_selected_in_toml(blobs):
    X, _ = blobs

    @kmeansfw.distance("chebyshev-toml-test", replace=True)
    def chebyshev(X, centroids):
        return np.abs(X[:, None, :] - centroids[None, :, :]).max(axis=2)

    km = KMeans.from_config('n_clusters = 4\nrandom_state = 0\ndistance = "chebyshev-toml-test"')
    km.fit(X)
    np.testing.assert_array_equal(
        km.labels_, cdist(X, km.cluster_centers_, "chebyshev").argmin(axis=1)
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"n_clusters": 3, "distanse": "euclidean"}, r"unknown config key\(s\) 'distanse'"),
        ({"n_clusters": "3"}, r"'n_clusters' must be an integer >= 1, got '3'"),
        ({"n_clusters": 0}, r"'n_clusters' must be an integer >= 1"),
        ({"max_iter": 2.5}, r"'max_iter' must be an integer"),
        ({"tol": -1}, r"'tol' must be a finite number >= 0"),
        ({"n_init": "many"}, r"'n_init' must be an integer >= 1 or 'auto'"),
        ({"random_state": "seed"}, r"'random_state' must be None"),
        ({"memory_budget_mb": 0}, r"'memory_budget_mb' must be a number > 0"),
        ({"memory_budget_mb": float("nan")}, r"'memory_budget_mb' must be a number > 0"),
        ({"memory_budget_mb": -float("inf")}, r"'memory_budget_mb' must be a number > 0"),
        ({"memory_budget_mb": True}, r"'memory_budget_mb' must be a number > 0"),
        ({"distance": "cosin"}, r"config key 'distance': unknown distance strategy 'cosin'"),
        ({"update": {"p": 3}}, r"config key 'update'.*needs a 'name' key"),
        ({"convergence": []}, r"'convergence' needs at least one criterion"),
        ({"convergence": {"name": "tol", "tol": -3}}, r"'convergence'.*tol must be"),
        ({"observers": ["nope"]}, r"'observers': unknown observer strategy 'nope'"),
        ({"history": "yes"}, r"^config key 'history' must be true or false, got 'yes'$"),
        ({"history": 1}, r"^config key 'history' must be true or false, got 1$"),
        ({"convergence": {"name": "tol", "tol": "x"}}, r"tol must be a finite number >= 0"),
        ({"convergence": {"name": "objective", "rtol": "x"}}, r"rtol must be a finite number"),
        ({"convergence": {"name": "time-budget", "seconds": True}}, r"seconds must be a finite"),
        # an init list that is not centroids: a config error, not NumPy's or a ValueError
        ({"init": ["tol", "unchanged"]}, r"'init': the init array must hold real numbers"),
        ({"init": [[1.0, 2.0], [3.0]]}, r"'init': the init array cannot be read as an array"),
    ],
)
def test_errors_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message) as info:
        Config.from_dict(values)
    assert "Attribute(" not in str(info.value) and "ufunc" not in str(info.value)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid TOML"):
        Config.from_toml("n_clusters = ")
    with pytest.raises(ConfigError, match="invalid TOML|cannot read"):
        Config.from_toml(tmp_path / "missing.toml")


def test_n_init_auto():
    assert Config(init="random").resolved_n_init() == 10
    assert Config().resolved_n_init() == 1
    assert Config(init=np.zeros((8, 2))).resolved_n_init() == 1
    with pytest.warns(RuntimeWarning, match="only one init"):
        assert Config(init=np.zeros((8, 2)), n_init=4).resolved_n_init() == 1


def test_grid_search_over_strategies(blobs):
    X, y = blobs

    @kmeansfw.distance("l1-grid-test", objective="distance", replace=True)
    def l1(X, centroids):
        return cdist(X, centroids, "cityblock")

    grid = {"distance": ["euclidean", "l1-grid-test"], "init": ["random", "k-means++"]}
    search = GridSearchCV(KMeans(5, random_state=0), grid, scoring="adjusted_rand_score", cv=3).fit(
        X, y
    )
    assert len(search.cv_results_["params"]) == 4
    assert search.best_score_ > 0.9


def test_clone_and_pipeline_with_strategy_objects(blobs):
    X, _ = blobs
    from kmeansfw.strategies.convergence import Unchanged
    from kmeansfw.strategies.init import KMeansPlusPlus

    km = KMeans(5, init=KMeansPlusPlus(n_local_trials=5), convergence=Unchanged(), random_state=1)
    twin = clone(km)
    assert twin.init == km.init and twin.init is not km.init
    pipe = make_pipeline(StandardScaler(), km).fit(X)
    assert pipe[-1].labels_.shape == (X.shape[0],)
    assert pipe.predict(X[:3]).shape == (3,)


@pytest.mark.parametrize("budget", [1e308, sys.float_info.max, np.int64(2**43), float("inf")])
def test_a_huge_memory_budget_is_an_unbounded_one(budget):
    # found by the config fuzz: from about 1.71e302 MB the bytes overflowed int(); a
    # NumPy integer of 2**43 MB wrapped around to a negative budget
    from kmeansfw.core.config import MAX_MEMORY_BUDGET

    assert Config(memory_budget_mb=budget).memory_budget == MAX_MEMORY_BUDGET
    X = np.random.default_rng(0).standard_normal((300, 3))
    small = KMeans(3, random_state=0).fit(X)
    fitted = KMeans(3, random_state=0, memory_budget_mb=budget).fit(X)
    np.testing.assert_array_equal(fitted.labels_, small.labels_)
    np.testing.assert_array_equal(fitted.predict(X), small.labels_)
    MiniBatchKMeans(3, random_state=0, memory_budget_mb=budget, batch_size=64).partial_fit(X)
    median = {"name": "median", "memory_budget_mb": float(budget)}
    KMeans(3, random_state=0, update=median, distance="manhattan").fit(X)


def test_a_budget_under_a_byte_is_the_smallest_one():
    from kmeansfw.core.config import budget_bytes

    assert budget_bytes(1e-300) == 1
    assert Config(memory_budget_mb=1e-300).memory_budget == 1
    X = np.random.default_rng(0).standard_normal((300, 3))
    small = KMeans(3, random_state=0, memory_budget_mb=1e-300).fit(X)
    np.testing.assert_array_equal(small.labels_, KMeans(3, random_state=0).fit(X).labels_)


def test_an_integer_budget_past_a_float_is_an_unbounded_one():
    from kmeansfw.core.config import MAX_MEMORY_BUDGET, budget_bytes

    assert budget_bytes(2**1100) == MAX_MEMORY_BUDGET  # float() of it overflows
    assert Config(memory_budget_mb=2**1100).memory_budget == MAX_MEMORY_BUDGET


def test_a_strategy_budget_of_nan_is_refused():
    with pytest.raises(ConfigError, match="memory_budget_mb"):
        KMeans(3, update={"name": "median", "memory_budget_mb": float("nan")}).fit(
            np.zeros((10, 2))
        )


@pytest.mark.parametrize("folder", ["", "  "])
def test_an_empty_checkpoint_path_is_refused(tmp_path, monkeypatch, folder):
    # "" was taken as the working folder: state.json and state.npz written there
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"'checkpoint' must be a folder path or None.*'\.'"):
        KMeans(3, checkpoint=folder).fit(np.random.default_rng(0).normal(size=(30, 2)))
    with pytest.raises(ConfigError, match="'checkpoint'"):
        Config.from_dict({"checkpoint": folder})
    assert list(tmp_path.iterdir()) == []


def test_config_files_that_are_not_toml_text_are_named(tmp_path, monkeypatch):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"n_clusters = 3\n# caf\xe9\n")
    for source in (path, str(path)):  # a bare UnicodeDecodeError, without the file, before
        with pytest.raises(ConfigError, match=r"latin1\.toml is not UTF-8 text"):
            Config.from_toml(source)
    with pytest.raises(ConfigError, match="is a folder, not a TOML file"):
        Config.from_toml(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"config file 'configs/k=3\.toml' does not exist"):
        Config.from_toml("configs/k=3.toml")  # not taken for TOML text
    assert Config.from_toml("n_clusters = 4").n_clusters == 4


def test_numpy_scalars_in_strategy_parameters_are_their_numbers():
    # a grid from np.arange gave np.int64 parameters, refused as "must be a positive
    # integer, got np.int64(4)" where top-level keys took them
    from kmeansfw.strategies.distances import Minkowski
    from kmeansfw.strategies.init import KMeansParallel, KMeansPlusPlus

    X = np.random.default_rng(0).normal(size=(120, 3))
    cases = {
        "distance": {"name": "minkowski", "p": np.int64(3)},
        "assignment": {"name": "yinyang", "max_groups": np.int32(4)},
        "init": {"name": "k-means||", "rounds": np.int64(2), "oversampling": np.float32(2)},
        "update": {"name": "trimmed-mean", "trim": np.float64(0.1)},
    }
    for slot, spec in cases.items():
        plain = {k: v.item() if isinstance(v, np.generic) else v for k, v in spec.items()}
        params = {slot: spec, "update": "mean"} if slot == "distance" else {slot: spec}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", kmeansfw.PairingWarning)
            km = KMeans(3, random_state=0, **params).fit(X)
            same = KMeans(3, random_state=0, **{**params, slot: plain}).fit(X)
        assert km.get_config().to_dict()[slot] == plain
        assert not any(isinstance(v, np.generic) for v in km.get_config().to_dict()[slot].values())
        np.testing.assert_array_equal(km.cluster_centers_, same.cluster_centers_)
    # strategy objects take them too
    assert Minkowski(p=np.float32(1.5)).p == np.float32(1.5)
    assert KMeansPlusPlus(n_local_trials=np.int64(3)).n_local_trials == 3
    assert KMeansParallel(rounds=np.int64(2), oversampling=np.float32(2.0)).rounds == 2
    for bad in (True, np.bool_(True), 2.0):
        with pytest.raises(ValueError, match="n_local_trials must be a positive integer"):
            KMeansPlusPlus(n_local_trials=bad)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # a string for the observers' list was reported as "got StrategySpec"
        ({"observers": "history"}, r"a list, got 'history' \(for one observer, \['history'\]"),
        # logging's "A logger name must be a string" named no key, at fit
        ({"observers": [{"name": "log", "logger": 5}]}, "observer strategy 'log': logger must be"),
        # "could not convert string to float" named no parameter; complex lost its part
        ({"distance": {"name": "mahalanobis", "VI": "x"}}, "mahalanobis: VI must hold real"),
        ({"distance": {"name": "mahalanobis", "VI": np.eye(2) * 1j}}, "VI must hold real"),
        ({"distance": {"name": "mahalanobis", "VI": [[1, 2], [3]]}}, "VI must be a matrix"),
    ],
)
def test_parameter_errors_name_the_parameter(params, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_dict(params)


def test_mini_batch_refusing_a_natural_update_says_how_to_pair_it():
    with pytest.raises(kmeansfw.StrategyError, match="natural update: name update='mean'"):
        MiniBatchKMeans(3, distance="manhattan").fit(np.arange(40.0).reshape(20, 2))
