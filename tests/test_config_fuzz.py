"""Fuzzing configurations, as a dict and as TOML text (issue 11): every case ends in a
Config (which survives a round trip through ``to_dict`` and through TOML, and fits small
data or fails with a documented error) or in a :class:`~kmeansfw.ConfigError` /
:class:`~kmeansfw.UnknownStrategyError` naming the problem; never a raw Python exception,
never a modified input."""

from __future__ import annotations

import copy
import math
import os
import tempfile
import warnings

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kmeansfw
from kmeansfw import Config, ConfigError, StrategyError, UnknownStrategyError
from kmeansfw.core.catalog import CATALOG
from kmeansfw.core.errors import CheckpointError
from kmeansfw.workflow.cli import to_toml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

KEYS = [field.name for field in attrs.fields(Config)]
X = np.random.default_rng(0).normal(size=(40, 3))
#: Errors a fit may end in for a valid Config on valid data (docs/errors.md): a strategy
#: that cannot serve this data, or more clusters than samples (ValueError naming both).
FIT_ERRORS = (ConfigError, UnknownStrategyError, StrategyError, CheckpointError)


def _names(slot: str) -> st.SearchStrategy[str]:
    return st.sampled_from([*CATALOG.names(slot), "nope", "", "Euclidean"])


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
params = st.dictionaries(
    st.sampled_from(["p", "n_local_trials", "tol", "fraction", "max_candidates", "q", "name"]),
    scalars,
    max_size=2,
)


def _spec(slot: str) -> st.SearchStrategy:
    return st.one_of(
        _names(slot),
        st.builds(lambda name, extra: {"name": name, **extra}, _names(slot), params),
        params,  # a table without a name
        scalars,
    )


def _valid_spec(slot: str) -> st.SearchStrategy:
    names = st.sampled_from(CATALOG.names(slot))
    return st.one_of(names, names.map(lambda name: {"name": name}))


#: Values that are usually valid, so the fits themselves get fuzzed too.
valid = {
    "n_clusters": st.integers(1, 5),
    "init": _valid_spec("init"),
    "distance": _valid_spec("distance"),
    "assignment": _valid_spec("assignment"),
    "update": st.one_of(st.none(), _valid_spec("update")),
    "empty": _valid_spec("empty"),
    "convergence": st.one_of(
        _valid_spec("convergence"), st.lists(_valid_spec("convergence"), max_size=2)
    ),
    "n_init": st.one_of(st.integers(1, 2), st.just("auto")),
    "max_iter": st.integers(1, 20),
    "tol": st.floats(0, 1),
    "random_state": st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    "memory_budget_mb": st.floats(0.01, 100),
    "batch_size": st.one_of(st.none(), st.integers(1, 50)),
}
#: Anything at all, per key.
hostile = {
    "n_clusters": st.one_of(st.integers(-1, 6), scalars),
    "init": _spec("init"),
    "distance": _spec("distance"),
    "assignment": _spec("assignment"),
    "update": st.one_of(st.none(), _spec("update")),
    "empty": _spec("empty"),
    "convergence": st.one_of(_spec("convergence"), st.lists(_spec("convergence"), max_size=3)),
    "observers": st.one_of(st.lists(_spec("observer"), max_size=2), scalars),
    "n_init": st.one_of(st.integers(-1, 3), st.just("auto"), scalars),
    "max_iter": st.one_of(st.integers(-1, 20), scalars),
    "tol": st.one_of(st.floats(-1, 1), scalars),
    "random_state": st.one_of(st.integers(-1, 2**40), scalars),
    "memory_budget_mb": st.one_of(st.floats(-1, 100), scalars),
    "batch_size": st.one_of(st.none(), st.integers(-1, 50), scalars),
}
FUZZED = [key for key in KEYS if key not in ("checkpoint", "executor")]


@st.composite
def configs(draw) -> dict:
    """A config of usually valid values, with zero to two keys (or an unknown key) drawn
    from anything at all."""
    keys = draw(st.lists(st.sampled_from(sorted(valid)), unique=True, max_size=6))
    values = {key: draw(valid[key]) for key in keys}
    for key in draw(st.lists(st.sampled_from([*FUZZED, "colour"]), unique=True, max_size=2)):
        values[key] = draw(hostile.get(key, scalars))
    return values


def _fit_or_documented_error(cfg: Config) -> None:
    cfg = attrs.evolve(cfg, max_iter=min(cfg.max_iter, 20), n_threads=1)
    if isinstance(cfg.n_init, int):
        cfg = attrs.evolve(cfg, n_init=min(cfg.n_init, 2))
    with tempfile.TemporaryDirectory() as folder:
        if cfg.checkpoint is not None:  # a fuzzed folder name: written under a scratch folder
            name = os.path.basename(os.fspath(cfg.checkpoint)) or "ck"
            cfg = attrs.evolve(cfg, checkpoint=os.path.join(folder, name))
        _fit_checked(cfg)


def _fit_checked(cfg: Config) -> None:
    try:
        fit = kmeansfw.fit(X, cfg)
    except FIT_ERRORS as exc:
        assert str(exc), "an error without a message"
        return
    except ValueError as exc:  # documented: more clusters than samples
        assert type(exc) is ValueError and "should be >= n_clusters" in str(exc), repr(exc)
        return
    assert fit.centroids.shape == (cfg.n_clusters, X.shape[1])
    assert np.isfinite(fit.objective)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
@example({"n_clusters": 2, "distance": {"name": "minkowski", "p": float("nan")}})
@example({"convergence": [{"name": "tol"}, {"tol": 1}]})
@example({"observers": 3})
@example({"n_init": True})
@example({"init": {"name": "k-means++", "n_local_trials": -(2**70)}})
def test_config_dicts_end_in_a_config_or_a_config_error(values):
    before = copy.deepcopy(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cfg = Config.from_dict(values)
        except (ConfigError, UnknownStrategyError) as exc:
            assert str(exc)
            assert values == before or _has_nan(before)  # the input is never modified
            return
        assert values == before or _has_nan(before)
        again = Config.from_dict(cfg.to_dict())
        assert again.to_dict() == cfg.to_dict()
        try:
            text = to_toml(cfg.to_dict())
        except ConfigError:  # a value TOML cannot hold (an object, not a plain value)
            text = None
        if text is not None:
            assert Config.from_toml(text).to_dict() == cfg.to_dict()
        _fit_or_documented_error(cfg)


def _has_nan(value) -> bool:  # nan != nan: compare such inputs by their repr instead
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False


toml_lines = st.one_of(
    st.builds(
        lambda key, value: f"{key} = {value}",
        st.sampled_from([*KEYS, "colour", "n clusters", ""]),
        st.sampled_from(
            [
                '"euclidean"',
                '"nope"',
                "3",
                "-1",
                "0.5",
                "nan",
                "inf",
                "true",
                "[1, 2]",
                '["tol", "unchanged"]',
                '{name = "minkowski", p = 3}',
                '"',
                "1979-05-27",
            ]
        ),
    ),
    st.sampled_from(["[distance]", 'name = "minkowski"', "p = 0", "[[x]]", "[init]", "=", "\x00"]),
    st.text(max_size=12),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(toml_lines, max_size=6).map("\n".join))
@example('n_clusters = 2\n[distance]\nname = "minkowski"\np = 0\n')
@example("n_clusters = 1979-05-27\n")
@example("convergence = [1, 2]\n")
@example('init = ["tol", "unchanged"]\n')  # a list of names where centroids go
def test_toml_texts_end_in_a_config_or_a_config_error(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cfg = Config.from_toml(text)
        except (ConfigError, UnknownStrategyError) as exc:
            assert str(exc)
            return
        assert Config.from_dict(tomllib.loads(text)).to_dict() == cfg.to_dict()
        _fit_or_documented_error(cfg)


@pytest.mark.parametrize("as_path", [False, True])
def test_a_missing_config_file_is_named_not_called_invalid_toml(tmp_path, as_path):
    path = tmp_path / "missing.toml"
    source = path if as_path else str(path)
    with pytest.raises(ConfigError, match="missing.toml") as info:
        Config.from_toml(source)
    assert "invalid TOML" not in str(info.value)
    with pytest.raises(ConfigError, match="'cfg.toml' does not exist"):
        Config.load("cfg.toml")
    for name in ("mystudy", "study.tml", "configs/x"):  # neither a file nor TOML text
        with pytest.raises(ConfigError, match=f"'{name}' does not exist"):
            Config.load(name)


@pytest.mark.parametrize("source", ["", "  ", "\n\t"])
def test_an_empty_config_source_is_refused_not_taken_as_the_defaults(source):
    from kmeansfw import KMeans

    with pytest.raises(ConfigError, match="config source is empty"):
        KMeans.from_config(source)
    assert Config.from_toml("# only a comment\n").n_clusters == Config().n_clusters


def test_explicit_centroids_in_a_config_are_not_modified_by_the_fit():
    init = X[:3].copy()
    kept = init.copy()
    cfg = Config(n_clusters=3, init=init, n_init=1, max_iter=5)
    kmeansfw.fit(X, cfg)
    np.testing.assert_array_equal(init, kept)
