"""The catalog: built-ins, entry-point plugins, in-process registration, listing."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap

import attrs
import numpy as np
import pytest
from scipy.spatial.distance import cdist

import kmeansfw
from kmeansfw.core.catalog import CATALOG, ENV_VAR, SLOTS, Catalog
from kmeansfw.core.errors import UnknownStrategyError


def test_builtins_are_listed():
    names = {(e.slot, e.name) for e in kmeansfw.CATALOG.entries()}
    assert {
        ("init", "random"),
        ("init", "k-means++"),
        ("distance", "euclidean"),
        ("assignment", "nearest"),
        ("update", "mean"),
        ("empty", "relocate-farthest"),
        ("convergence", "tol"),
        ("convergence", "unchanged"),
        ("observer", "history"),
    } <= names
    assert all(e.source == "built-in" for e in kmeansfw.CATALOG.entries() if e.name == "mean")
    assert kmeansfw.CATALOG.lookup("distance", "euclidean").doc.startswith("Euclidean")


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownStrategyError) as err:
        kmeansfw.CATALOG.lookup("update", "medain")
    assert "unknown update strategy 'medain'" in str(err.value)
    assert "mean" in str(err.value)


def test_unknown_slot():
    with pytest.raises(ValueError, match="unknown slot 'metric'"):
        kmeansfw.CATALOG.lookup("metric", "euclidean")


def test_ten_line_function_distance_by_name(blobs):
    X, y = blobs

    @kmeansfw.distance("cityblock-test", objective="distance", replace=True)
    def cityblock(X, centroids):
        return np.abs(X[:, None, :] - centroids[None, :, :]).sum(axis=2)

    init = X[[0, 100, 200, 300, 400]]
    km = kmeansfw.KMeans(5, distance="cityblock-test", init=init).fit(X)
    # labels are the nearest centroid under the L1 distance (brute force)
    np.testing.assert_array_equal(
        km.labels_, cdist(X, km.cluster_centers_, "cityblock").argmin(axis=1)
    )
    np.testing.assert_allclose(km.transform(X[:7]), cdist(X[:7], km.cluster_centers_, "cityblock"))
    entry = kmeansfw.CATALOG.lookup("distance", "cityblock-test")
    assert entry.source == f"module {__name__}"


def test_duplicate_registration_needs_replace():
    @kmeansfw.distance("dup-test", replace=True)
    def first(X, centroids):
        return cdist(X, centroids)

    with pytest.raises(ValueError, match="already registered"):

        @kmeansfw.distance("dup-test")
        def second(X, centroids):
            return cdist(X, centroids)


def test_a_replaced_strategy_is_the_one_the_next_fit_uses(blobs):
    # the estimator keeps configs built from plain parameters between fits: a strategy
    # registered again under the same name (replace=True) must not be served from there
    X, _ = blobs

    def make(limit):
        @kmeansfw.register_strategy("convergence", "stop-at-test", replace=True)
        @attrs.frozen
        class StopAt:
            @kmeansfw.hookimpl
            def kmeansfw_converged(self, state):
                return state.iteration >= limit

    params = {"convergence": "stop-at-test", "init": "random", "n_init": 1, "random_state": 0}
    make(1)
    assert kmeansfw.KMeans(5, **params).fit(X).n_iter_ == 1
    make(3)
    assert kmeansfw.KMeans(5, **params).fit(X).n_iter_ == 3

    @kmeansfw.distance("scaled-test", replace=True)
    def plain(X, centroids):
        return cdist(X, centroids)

    first = kmeansfw.KMeans(5, distance="scaled-test", random_state=0).fit(X)

    scale = np.ones(X.shape[1])
    scale[0] = 100.0

    @kmeansfw.distance("scaled-test", replace=True)
    def stretched(X, centroids):
        return cdist(X * scale, centroids * scale)

    second = kmeansfw.KMeans(5, distance="scaled-test", random_state=0).fit(X)
    direct = kmeansfw.KMeans(5, distance=stretched, random_state=0).fit(X)
    assert second.inertia_ == direct.inertia_ != first.inertia_


def test_register_strategy_class_decorator(blobs):
    X, _ = blobs

    @kmeansfw.register_strategy("convergence", "after-two-test", replace=True)
    @attrs.frozen
    class AfterTwo:
        @kmeansfw.hookimpl
        def kmeansfw_converged(self, state):
            return state.iteration >= 2

    km = kmeansfw.KMeans(
        5, convergence=["tol", "after-two-test"], init="random", n_init=1, random_state=0, tol=0
    ).fit(X)
    assert km.n_iter_ <= 2


def test_function_distance_params_from_config(blobs):
    X, _ = blobs

    @kmeansfw.distance("scaled-test", replace=True)
    def scaled(X, centroids, scale=1.0):
        return scale * cdist(X, centroids)

    km = kmeansfw.KMeans(4, distance={"name": "scaled-test", "scale": 3.0}, random_state=0)
    km.fit(X)
    np.testing.assert_allclose(km.transform(X[:5]), 3.0 * cdist(X[:5], km.cluster_centers_))
    assert kmeansfw.CATALOG.lookup("distance", "scaled-test").parameters() == ["scale"]


def test_installed_plugin_distribution_found_by_entry_point():
    eps = [ep for ep in importlib.metadata.entry_points(group="kmeansfw") if ep.name == "geo"]
    assert eps, "plugins/kmeansfw-geo must be installed (see .ci/run)"
    for slot, name in (("distance", "haversine"), ("update", "geodesic-mean")):
        assert kmeansfw.CATALOG.lookup(slot, name).source.startswith("kmeansfw-geo ")
    X = np.array([[48.86, 2.35], [51.51, -0.13], [40.71, -74.01], [34.05, -118.24]])
    km = kmeansfw.KMeans(2, distance={"name": "haversine", "radius": 1.0}, random_state=0)
    km.fit(X)
    assert sorted(np.bincount(km.labels_)) == [2, 2]
    assert km.transform(X).max() <= np.pi  # radians on the unit sphere


def test_plugin_parameters_are_validated_at_config_time():
    with pytest.raises(kmeansfw.ConfigError, match=r"config key 'distance'.*radius must be"):
        kmeansfw.Config(distance={"name": "haversine", "radius": -1})
    with pytest.raises(kmeansfw.ConfigError, match=r"cannot be built from parameters \['q'\]"):
        kmeansfw.Config(distance={"name": "haversine", "q": 2})


class _FakeEntryPoint:
    def __init__(self, name, loader, dist_name="fake-dist"):
        self.name = name
        self.value = f"{name}:plugin"
        self._loader = loader
        self.dist = type("Dist", (), {"name": dist_name, "version": "9.9"})()

    def load(self):
        return self._loader()


def _installed(monkeypatch, *eps):
    """The entry points ``eps`` as the installed plugins, all of them loading."""
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: list(eps))
    monkeypatch.delenv(ENV_VAR, raising=False)


def _broken_loader():
    raise ImportError("No module named 'missing_dependency'")


def _plugin(strategy_name):
    def load():
        class Plugin:
            @staticmethod
            @kmeansfw.hookimpl
            def kmeansfw_register_strategies(register):
                register("distance", strategy_name, lambda: None)

        return Plugin()

    return load


_good_plugin = _plugin("fake-good")


def test_broken_plugin_is_reported_and_does_not_break_builtins(monkeypatch):
    eps = [_FakeEntryPoint("broken", _broken_loader), _FakeEntryPoint("good", _good_plugin)]
    _installed(monkeypatch, *eps)
    catalog = Catalog()
    with pytest.warns(UserWarning, match="plugin 'broken' failed to load.*missing_dependency"):
        catalog.load()
    assert "broken" in catalog.failures
    rows = {row["name"]: row for row in catalog.listing()}
    assert rows["broken"]["source"] == "failed (see below)"
    assert rows["broken"]["error"].startswith("fake-dist 9.9: ImportError")
    assert rows["fake-good"]["source"] == "fake-dist 9.9"
    assert rows["k-means++"]["parameters"] == "n_local_trials"
    assert "euclidean" in catalog.names("distance")
    assert "fake-good" in catalog.names("distance")
    assert catalog.lookup("distance", "fake-good").source == "fake-dist 9.9"
    with pytest.raises(UnknownStrategyError, match="failed to load: broken"):
        catalog.lookup("distance", "from-broken")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", set()),
        ("good", {"good"}),
        (" other, good ", {"good", "other"}),
        (None, {"good", "other"}),
    ],
)
def test_environment_variable_restricts_plugins(monkeypatch, value, expected):
    eps = [_FakeEntryPoint("good", _good_plugin), _FakeEntryPoint("other", _plugin("fake-other"))]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps)
    if value is None:
        monkeypatch.delenv(ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(ENV_VAR, value)
    catalog = Catalog()
    catalog.load()
    assert set(catalog.distributions) == expected
    assert "euclidean" in catalog.names("distance")


@pytest.mark.parametrize("value", ["fake-dist", "Fake_Dist", "fake.dist", "good"])
def test_environment_variable_takes_distribution_or_entry_point_names(monkeypatch, value):
    eps = [
        _FakeEntryPoint("good", _good_plugin, dist_name="fake-dist"),
        _FakeEntryPoint("other", _plugin("fake-other"), dist_name="other-dist"),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps)
    monkeypatch.setenv(ENV_VAR, value)
    catalog = Catalog()
    catalog.load()
    assert set(catalog.distributions) == {"good"}


def test_environment_variable_naming_no_plugin_warns_with_the_names_that_exist(monkeypatch):
    eps = [_FakeEntryPoint("good", _good_plugin, dist_name="fake-dist")]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps)
    monkeypatch.setenv(ENV_VAR, "good, kmeansfw-gep")
    catalog = Catalog()
    expected = r"'kmeansfw-gep'.*installed plugins: good \(distribution fake-dist\)"
    with pytest.warns(UserWarning, match=expected):
        catalog.load()
    assert set(catalog.distributions) == {"good"}


def test_an_unknown_name_says_when_the_environment_variable_left_plugins_out(monkeypatch):
    eps = [_FakeEntryPoint("other", _plugin("fake-other"), dist_name="other-dist")]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps)
    monkeypatch.setenv(ENV_VAR, "")
    catalog = Catalog()
    expected = rf"installed\? \({ENV_VAR}='' left out the installed plugins other \(dis"
    with pytest.raises(UnknownStrategyError, match=expected):
        catalog.lookup("distance", "fake-other")
    for value in ("other", None):  # nothing left out, or the variable unset: no hint
        if value is None:
            monkeypatch.delenv(ENV_VAR)
        else:
            monkeypatch.setenv(ENV_VAR, value)
        catalog = Catalog()
        with pytest.raises(UnknownStrategyError, match=r"installed\?$"):
            catalog.lookup("distance", "no-such")


def test_a_factory_refusing_its_parameters_is_quoted_once():
    # attrs' message ends with a period, and ". Its parameters" followed it: ".."
    with pytest.raises(kmeansfw.ConfigError, match=r"<class 'int'>\)\. Its parameters: func"):
        kmeansfw.Config.from_dict({"convergence": {"name": "callback", "func": 3}})


def _half_registering_plugin(failure):
    def load():
        class Plugin:
            @staticmethod
            @kmeansfw.hookimpl
            def kmeansfw_register_strategies(register):
                register("distance", "half-first", lambda: None)
                register("convergence", "half-second", lambda: None)
                failure(register)
                register("update", "half-never", lambda: None)

        return Plugin()

    return load


def _raise(register):
    raise RuntimeError("boom halfway")


def _register_taken_name(register):
    register("distance", "euclidean", lambda: None)


def _register_bad_slot(register):
    register("no-such-slot", "x", lambda: None)


def _register_twice(register):
    register("distance", "half-first", lambda: None)


@pytest.mark.parametrize(
    ("failure", "why"),
    [
        (_raise, "RuntimeError: boom halfway"),
        (_register_taken_name, "'euclidean' is already registered"),
        (_register_bad_slot, "no-such-slot"),
        (_register_twice, "registered twice"),
    ],
)
def test_plugin_registration_is_all_or_nothing(monkeypatch, failure, why):
    eps = [_FakeEntryPoint("half", _half_registering_plugin(failure))]
    _installed(monkeypatch, *eps)
    catalog = Catalog()
    with pytest.warns(UserWarning, match="plugin 'half' failed to load.*nothing registered"):
        catalog.load()
    assert why in catalog.failures["half"]
    for slot, name in [("distance", "half-first"), ("convergence", "half-second")]:
        assert name not in catalog.names(slot)
        with pytest.raises(UnknownStrategyError, match="failed to load: half"):
            catalog.lookup(slot, name)
    assert "euclidean" in catalog.names("distance")
    assert catalog.lookup("distance", "euclidean").source == "built-in"


@pytest.mark.parametrize("fails", ["import", "registration"])
def test_what_a_plugin_module_registers_on_import_is_undone_when_it_fails(monkeypatch, fails):
    # a module registering with @register_strategy as it is imported, then failing (in the
    # rest of its import, or in its kmeansfw_register_strategies): "nothing registered"
    # was said, but the decorator's strategy stayed
    catalog = Catalog()

    def load():
        catalog.register("convergence", "side-reg", lambda: None)  # what the decorator does
        catalog.register("distance", "euclidean", lambda: None, replace=True)
        if fails == "import":
            raise ImportError("the rest of the module failed")

        class Plugin:
            @staticmethod
            @kmeansfw.hookimpl
            def kmeansfw_register_strategies(register):
                raise RuntimeError("registration failed")

        return Plugin()

    _installed(monkeypatch, _FakeEntryPoint("side", load))
    with pytest.warns(UserWarning, match="plugin 'side' failed to load"):
        catalog.load()
    assert "side-reg" not in catalog.names("convergence")
    assert catalog.lookup("distance", "euclidean").source == "built-in"  # put back


def test_undoing_a_failed_plugin_keeps_what_a_later_plugin_replaced(monkeypatch):
    # plugin A's module registers "shared" and "mine" on import; plugin B's replaces
    # "shared" on its own import; then A fails in its registration hook.  Undoing A put
    # back the entry from before A (nothing), dropping B's "shared" with it.
    catalog = Catalog()

    def load_a():
        catalog.register("convergence", "shared", lambda: "a")
        catalog.register("convergence", "mine", lambda: "a")

        class Plugin:
            @staticmethod
            @kmeansfw.hookimpl
            def kmeansfw_register_strategies(register):
                raise RuntimeError("A's registration failed")

        return Plugin()

    def b_factory():
        return "b"

    def load_b():
        catalog.register("convergence", "shared", b_factory, replace=True)

        class Plugin:
            @staticmethod
            @kmeansfw.hookimpl
            def kmeansfw_register_strategies(register):
                pass

        return Plugin()

    eps = [_FakeEntryPoint("a", load_a, "dist-a"), _FakeEntryPoint("b", load_b, "dist-b")]
    _installed(monkeypatch, *eps)
    with pytest.warns(UserWarning, match="plugin 'a' failed to load"):
        catalog.load()
    assert "mine" not in catalog.names("convergence")  # A's own: undone
    entry = catalog.lookup("convergence", "shared")  # B's: kept
    assert entry.factory is b_factory and entry.source == "dist-b 9.9"


def test_undoing_both_plugins_does_not_bring_back_the_first(monkeypatch):
    # as above, and B fails too: undoing B must not put back A's "shared" (A failed)
    catalog = Catalog()

    def loader(name, replace):
        def load():
            catalog.register("convergence", "shared", lambda: name, replace=replace)

            class Plugin:
                @staticmethod
                @kmeansfw.hookimpl
                def kmeansfw_register_strategies(register):
                    raise RuntimeError(f"{name}'s registration failed")

            return Plugin()

        return load

    eps = [_FakeEntryPoint("a", loader("a", False)), _FakeEntryPoint("b", loader("b", True))]
    _installed(monkeypatch, *eps)
    with pytest.warns(UserWarning, match="failed to load"):
        catalog.load()
    assert set(catalog.failures) == {"a", "b"}
    assert "shared" not in catalog.names("convergence")


def test_a_plugin_replacing_a_built_in_on_import_is_refused(monkeypatch):
    # register() refuses a plugin's built-in name; a decorator with replace=True at its
    # import replaced the built-in without a word, and fits ran the plugin's code
    catalog = Catalog()
    calls = []

    def load():
        catalog.register("convergence", "sneaky-extra", lambda: None)
        catalog.register("distance", "manhattan", lambda: calls.append(1), replace=True)

        class Plugin:
            @staticmethod
            @kmeansfw.hookimpl
            def kmeansfw_register_strategies(register):
                calls.append("registered")

        return Plugin()

    _installed(monkeypatch, _FakeEntryPoint("sneaky", load))
    with pytest.warns(UserWarning, match="replaced the built-in distance strategy 'manhattan'"):
        catalog.load()
    assert "nothing registered" in catalog.failures["sneaky"]
    assert catalog.lookup("distance", "manhattan").source == "built-in"
    assert "sneaky-extra" not in catalog.names("convergence")
    assert calls == []  # its registration hook never ran
    assert not catalog.pm.has_plugin("sneaky")


def test_what_a_plugin_module_registers_on_import_is_named_by_its_distribution(monkeypatch):
    catalog = Catalog()

    def load():
        catalog.register("convergence", "side-reg", lambda: None)

        class Plugin:
            @staticmethod
            @kmeansfw.hookimpl
            def kmeansfw_register_strategies(register):
                register("distance", "side-distance", lambda: None)

        return Plugin()

    _installed(monkeypatch, _FakeEntryPoint("side", load))
    catalog.load()
    assert catalog.lookup("convergence", "side-reg").source == "fake-dist 9.9"
    assert catalog.lookup("distance", "side-distance").source == "fake-dist 9.9"


def test_conflicting_plugin_name_is_reported_not_fatal(monkeypatch):
    eps = [_FakeEntryPoint("clash", _plugin("euclidean"))]
    _installed(monkeypatch, *eps)
    catalog = Catalog()
    with pytest.warns(UserWarning, match="distance strategy 'euclidean' is already registered"):
        catalog.load()
    assert catalog.lookup("distance", "euclidean").source == "built-in"


def test_import_does_not_load_entry_points():
    code = textwrap.dedent(
        """
        import sys, kmeansfw
        assert "kmeansfw_geo" not in sys.modules
        assert not kmeansfw.CATALOG._loaded
        kmeansfw.CATALOG.names("distance")
        assert "kmeansfw_geo" in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_slot_has_a_builtin():
    for slot in SLOTS:
        assert kmeansfw.CATALOG.names(slot), slot


def test_the_distance_decorator_checks_what_it_is_given_when_applied():
    # checked only at fit before (an attrs tuple for the objective, a bare unknown
    # update), or not at all (an empty name became the function's, "no" a metric)
    def measure(X, centroids):
        return np.sqrt(((X[:, None, :] - centroids[None]) ** 2).sum(axis=2))

    for params, message in (
        ({"name": ""}, "non-empty string, got ''"),
        ({"name": "m1", "objective": "cubed"}, "'m1': objective must be one of"),
        ({"name": "m2", "natural_update": None}, "'m2': natural_update must be"),
        ({"name": "m3", "is_metric": "no"}, "'m3': is_metric must be True or False"),
    ):
        with pytest.raises(ValueError, match=message):
            kmeansfw.distance(**params)(measure)
        assert params["name"] not in CATALOG.names("distance")
    kmeansfw.distance("m4", natural_update="meen", replace=True)(measure)
    try:
        with pytest.raises(kmeansfw.ConfigError, match="distance 'm4' declares natural_update"):
            kmeansfw.KMeans(3, distance="m4").fit(np.arange(20.0).reshape(10, 2))
    finally:
        CATALOG._entries.pop(("distance", "m4"), None)


def test_a_function_distances_parameters_are_checked_when_the_config_is_built():
    # a misspelled parameter failed only inside the fit's first cost call (a
    # StrategyError, exit 1 on the command line) instead of as a config error
    def scaled(X, centroids, scale=1.0):
        return scale * np.sqrt(((X[:, None, :] - centroids[None]) ** 2).sum(axis=2))

    kmeansfw.distance("scaled-doc", replace=True)(scaled)
    try:
        message = r"unexpected keyword argument 'sclae'.*Its parameters: scale"
        with pytest.raises(kmeansfw.ConfigError, match=message):
            kmeansfw.Config.from_dict({"distance": {"name": "scaled-doc", "sclae": 2}})
        cfg = kmeansfw.Config.from_dict({"distance": {"name": "scaled-doc", "scale": 2}})
        assert cfg.distance.params == {"scale": 2}
    finally:
        CATALOG._entries.pop(("distance", "scaled-doc"), None)
