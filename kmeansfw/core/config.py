"""Run configuration: attrs classes built from a dict or a TOML file, validated early.

The keys are the estimator's parameters.  Each strategy slot takes a name
(``distance = "euclidean"``), a table with ``name`` and parameters
(``[distance] name = "minkowski" p = 3``), or, from Python, a strategy object.
``convergence`` may list several criteria (the fit stops when any says stop).
Every error is a :class:`~kmeansfw.core.errors.ConfigError` naming the key at fault.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from kmeansfw.core.catalog import CATALOG, StrategySpec, array_like
from kmeansfw.core.data import DEFAULT_MEMORY_BUDGET
from kmeansfw.core.distance import describe
from kmeansfw.core.errors import (
    ConfigError,
    InvalidParameterError,
    UnknownStrategyError,
    warn,
)
from kmeansfw.core.numbers import integer, real
from kmeansfw.core.slots import SLOTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STRATEGY_KEYS = SLOTS


class PairingWarning(UserWarning):
    """An update strategy that does not minimize the distance's objective was chosen."""


def _to_specs(value: Any) -> Any:
    """A tuple of specs from a list (of criteria or observers), else one spec."""
    if isinstance(value, list | tuple):
        return tuple(_to_spec(v) for v in value)
    return _to_spec(value)


def _to_spec(value: Any) -> Any:
    if isinstance(value, Mapping) and "name" in value:
        return StrategySpec(value["name"], {k: v for k, v in value.items() if k != "name"})
    if isinstance(value, str):
        return StrategySpec(value)
    return value


def _to_init(value: Any) -> Any:
    """An init as :func:`_to_spec` takes it; an array-like (a DataFrame, a tensor) as an
    ndarray of its values, so that everything reading the config (the number of runs,
    the checkpoint's fingerprint, KMedoids' check of its rows) sees explicit centroids."""
    if array_like(value):
        return np.array(value)
    return _to_spec(value)


def _plain_bool(value: Any) -> Any:
    """A NumPy boolean (``np.True_``, from an array of flags) as the bool it holds,
    as the estimators' other flags take it; anything else as it is."""
    return bool(value) if isinstance(value, np.bool_) else value


def _boolean(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidParameterError(
            f"config key {attribute.name!r} must be true or false, got {value!r}"
        )


def _int_at_least(low: int, *, allow: tuple = ()) -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value in allow and isinstance(value, str | type(None)):
            return
        if not integer(value) or value < low:
            extra = "".join(f" or {a!r}" for a in allow)
            raise InvalidParameterError(
                f"config key {attribute.name!r} must be an integer >= {low}{extra}, got {value!r}"
            )

    return check


def _real_at_least(low: float, *, strict: bool = False, finite: bool = True) -> Any:
    # ``finite=False``: +inf passes too (NaN never does), as for an unbounded budget
    # (:func:`budget_bytes`)
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        ok = real(value)
        ok = ok and (np.isfinite(value) if finite else value == value)
        if not ok or value < low or (strict and value == low):
            op = ">" if strict else ">="
            kind = "a finite number" if finite else "a number"
            allowed = "" if finite else " (inf: no limit)"
            raise InvalidParameterError(
                f"config key {attribute.name!r} must be {kind} {op} {low}{allowed}, "
                f"got {value!r}"
            )

    return check


def _random_state(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    kinds = (np.random.Generator, np.random.RandomState, np.random.SeedSequence)
    if value is None or isinstance(value, kinds):
        return
    if not integer(value) or value < 0:
        raise InvalidParameterError(
            f"config key 'random_state' must be None, a non-negative integer or a numpy "
            f"Generator, got {value!r}"
        )


def _strategy(slot: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        values = value if slot == "convergence" and isinstance(value, list | tuple) else [value]
        if slot == "convergence" and not values:
            raise InvalidParameterError("config key 'convergence' needs at least one criterion")
        for item in values:
            try:
                CATALOG.create(slot, item)
            except (ConfigError, UnknownStrategyError) as exc:
                raise InvalidParameterError(f"config key {slot!r}: {exc}") from None

    return check


def _observers(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, list | tuple):
        given = value.to_value() if isinstance(value, StrategySpec) else value  # as passed
        hint = f" (for one observer, [{given!r}])" if isinstance(value, StrategySpec) else ""
        raise InvalidParameterError(
            f"config key 'observers' must be a list, got {given!r}{hint}"
        )
    for item in value:
        try:
            CATALOG.create("observer", item)
        except (ConfigError, UnknownStrategyError) as exc:
            raise InvalidParameterError(f"config key 'observers': {exc}") from None


#: The largest per-thread budget in bytes a fit plans with (far above any machine's memory):
#: a larger ``memory_budget_mb`` counts as this many bytes.
MAX_MEMORY_BUDGET = 1 << 62


def budget_bytes(memory_budget_mb: float) -> int:
    """A validated (positive, not NaN) ``memory_budget_mb`` in bytes, at least 1 and at
    most :data:`MAX_MEMORY_BUDGET`: a budget of 1e308 MB or of infinity is an unbounded
    one, not an ``OverflowError``, a large NumPy integer is not wrapped around, and a
    budget under a byte (1e-300 MB) is the smallest one, never 0 (which a plan could read
    as "no budget given")."""
    try:
        megabytes = float(memory_budget_mb)
    except OverflowError:  # an integer past a float's range (2**1100): unbounded too
        return MAX_MEMORY_BUDGET
    return max(1, int(min(megabytes * 2**20, MAX_MEMORY_BUDGET)))


def make_rng(random_state: Any) -> np.random.Generator:
    """The one :class:`numpy.random.Generator` a fit draws all its randomness from."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)


@attrs.frozen(kw_only=True)
class Config:
    """Everything a fit needs: strategies per slot and the loop's settings.

    Attributes mirror :class:`kmeansfw.KMeans`'s parameters; see there for meanings.
    """

    n_clusters: int = attrs.field(default=8, validator=_int_at_least(1))
    init: Any = attrs.field(default="auto", converter=_to_init, validator=_strategy("init"))
    distance: Any = attrs.field(
        default="euclidean", converter=_to_spec, validator=_strategy("distance")
    )
    assignment: Any = attrs.field(
        default="auto", converter=_to_spec, validator=_strategy("assignment")
    )
    update: Any = attrs.field(
        default=None,
        converter=_to_spec,
        validator=attrs.validators.optional(_strategy("update")),
    )
    empty: Any = attrs.field(
        default="relocate-farthest", converter=_to_spec, validator=_strategy("empty")
    )
    convergence: Any = attrs.field(
        default="tol",
        converter=_to_specs,
        validator=_strategy("convergence"),
    )
    observers: Any = attrs.field(default=(), converter=_to_specs, validator=_observers)
    n_init: Any = attrs.field(default="auto", validator=_int_at_least(1, allow=("auto",)))
    max_iter: int = attrs.field(default=300, validator=_int_at_least(1))
    tol: float = attrs.field(default=1e-4, validator=_real_at_least(0.0))
    random_state: Any = attrs.field(default=None, validator=_random_state)
    memory_budget_mb: float = attrs.field(
        default=DEFAULT_MEMORY_BUDGET / 2**20,
        validator=_real_at_least(0.0, strict=True, finite=False),
    )
    n_threads: Any = attrs.field(default=None, validator=_int_at_least(1, allow=(None,)))
    history: bool = attrs.field(default=False, converter=_plain_bool, validator=_boolean)
    batch_size: Any = attrs.field(default=None, validator=_int_at_least(1, allow=(None,)))
    reassignment_ratio: float = attrs.field(default=0.01, validator=_real_at_least(0.0))
    checkpoint: Any = attrs.field(default=None)
    checkpoint_every: int = attrs.field(default=1, validator=_int_at_least(1))
    executor: Any = attrs.field(default=None)

    @executor.validator
    def _check_executor(self, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None and not callable(getattr(value, "map", None)):
            raise InvalidParameterError(
                "config key 'executor' must be None (worker threads) or an executor with a "
                f"map(fn, chunks) method, got {value!r}"
            )

    @checkpoint.validator
    def _check_checkpoint(self, attribute: attrs.Attribute, value: Any) -> None:
        if value is not None and not isinstance(value, str | os.PathLike):
            raise InvalidParameterError(
                f"config key 'checkpoint' must be a folder path or None, got {value!r}"
            )
        if value is not None and not os.fspath(value).strip():
            # "" is no folder: it wrote state.json and state.npz into the working folder
            raise InvalidParameterError(
                f"config key 'checkpoint' must be a folder path or None, got {value!r} "
                "(for the working folder, pass '.')"
            )

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Config:
        """Build from a mapping; unknown keys raise a :class:`ConfigError` naming them.

        Parameters
        ----------
        values : mapping of str to object
            Config keys (``n_clusters``, ``init``, ``distance``, ...) and their values;
            strategies by name, as tables ``{"name": ..., **params}`` or as objects.

        Returns
        -------
        Config
            The validated configuration.
        """
        if not isinstance(values, Mapping):
            raise InvalidParameterError(f"a config must be a mapping, got {type(values).__name__}")
        allowed = [a.name for a in attrs.fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {', '.join(map(repr, unknown))}; "
                f"allowed keys: {', '.join(allowed)}"
            )
        try:
            return cls(**values)
        except ConfigError:
            raise
        except attrs.exceptions.NotAnAttrsClassError as exc:  # pragma: no cover
            raise ConfigError(str(exc)) from None
        except TypeError as exc:
            raise InvalidParameterError(f"config has a value of the wrong type: {exc}") from None

    @classmethod
    def from_toml(cls, source: str | os.PathLike[str]) -> Config:
        """Build from a TOML file path, or from TOML text when ``source`` is not a file.

        Parameters
        ----------
        source : str or path-like
            A TOML file's path, or TOML text (the keys of :meth:`from_dict`, strategies
            as strings or tables).

        Returns
        -------
        Config
            The validated configuration.
        """
        text = str(source)
        if not isinstance(source, os.PathLike) and not os.path.isfile(text):
            if not text.strip():  # TOML text, but surely not what was meant
                raise ConfigError(
                    "the config source is empty: give a TOML file's path or TOML text "
                    "(a config of defaults is Config())"
                )
            if os.path.isdir(text):
                raise ConfigError(f"config path {text!r} is a folder, not a TOML file")
            one_line = "\n" not in text
            looks_like_path = one_line and "=" not in text and "[" not in text
            named_toml = one_line and text.rstrip().lower().endswith(".toml")
            if (looks_like_path or named_toml) and not text.lstrip().startswith("#"):
                raise ConfigError(f"config file {text!r} does not exist")
        try:
            if isinstance(source, os.PathLike) or os.path.isfile(text):
                with open(source, "rb") as fh:
                    values = tomllib.load(fh)
            else:
                values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML in {source}: {exc}") from None
        except UnicodeDecodeError as exc:  # TOML is UTF-8
            raise ConfigError(f"config {source} is not UTF-8 text, as TOML is: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config {source}: {exc}") from None
        return cls.from_dict(values)

    @classmethod
    def load(cls, source: Config | Mapping[str, Any] | str | os.PathLike[str]) -> Config:
        """A Config from a Config, a mapping, a TOML path or TOML text.

        Parameters
        ----------
        source : Config, mapping, str or path-like
            A Config (returned as it is), a mapping (:meth:`from_dict`), or a TOML file's
            path or TOML text (:meth:`from_toml`).

        Returns
        -------
        Config
            The validated configuration.
        """
        if isinstance(source, Config):
            return source
        if isinstance(source, Mapping):
            return cls.from_dict(source)
        return cls.from_toml(source)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (names and tables for strategies) that :meth:`from_dict` accepts."""

        def plain(value: Any) -> Any:
            if isinstance(value, StrategySpec):
                return value.to_value()
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        return {a.name: plain(getattr(self, a.name)) for a in attrs.fields(type(self))}

    # ------------------------------------------------------------------ resolving
    def resolved_n_init(self, auto_random: int = 10) -> int:
        """The number of restarts.

        ``"auto"`` follows scikit-learn: ``auto_random`` (10, as ``KMeans``; 3 for
        ``MiniBatchKMeans``) for random seeding and for an init function, else 1 (the
        k-means++ family, explicit centroids, strategy objects).

        Parameters
        ----------
        auto_random : int, default=10
            The restarts ``"auto"`` means for random seeding and init functions.

        Returns
        -------
        int
            The restarts a fit runs (1 for explicit initial centroids, with a
            ``RuntimeWarning`` when ``n_init`` asked for more).
        """
        explicit = not isinstance(self.init, StrategySpec)
        if explicit and isinstance(self.init, np.ndarray | list | tuple):
            if self.n_init not in ("auto", 1):
                warn(
                    "Explicit initial centroids passed: performing only one init "
                    f"instead of n_init={self.n_init}.",
                    RuntimeWarning,
                )
            return 1
        if self.n_init == "auto":
            name = self.init.name if isinstance(self.init, StrategySpec) else None
            if name is None:  # a plain function, or one wrapped by CallableInit
                func = getattr(self.init, "func", self.init)
                plain = callable(func) and not hasattr(func, "kmeansfw_init_centroids")
                name = "callable" if plain else None
            return auto_random if name in ("random", "callable") else 1
        return int(self.n_init)

    def build_strategies(self, pairing_warnings: bool = True) -> list[tuple[str, str, Any]]:
        """Fresh ``(slot, label, strategy)`` triples in slot order, for one fit.

        ``update=None`` takes the distance's natural update; a named update that does not
        minimize the distance's objective gives a :class:`PairingWarning`, unless
        ``pairing_warnings`` is false (a caller that pairs them on purpose, or builds
        only to read the strategies' declarations: no warning filter is touched, which
        would change them for every thread of the process).

        Parameters
        ----------
        pairing_warnings : bool, default=True
            Whether a named update that does not minimize the distance's objective (or a
            distance that declares no natural update) gives a :class:`PairingWarning`.

        Returns
        -------
        list of (str, str, object)
            ``(slot, label, strategy)`` for each strategy, in slot order.
        """
        out = []
        distance = None
        for slot in STRATEGY_KEYS:
            value = getattr(self, slot)
            if slot == "update":
                value = self._paired_update(distance, pairing_warnings)
            several = slot == "convergence" and isinstance(value, list | tuple)
            for item in value if several else [value]:
                label, strategy = CATALOG.create(slot, item)
                if slot == "assignment" and getattr(strategy, "name", None) == "auto":
                    strategy = attrs.evolve(strategy, metric=describe(distance).is_metric)
                out.append((slot, label, strategy))
                if slot == "distance":
                    distance = strategy
                if describe(strategy).requires_metric and not describe(distance).is_metric:
                    raise InvalidParameterError(
                        f"{slot} strategy {label} needs a distance that is a true metric; "
                        f"distance {getattr(distance, 'name', distance)!r} is not (use "
                        "assignment='nearest')"
                    )
        return out

    def _warn_pairing(self, strategies: list[tuple[str, str, Any]]) -> None:
        """Give the :class:`PairingWarning` that :meth:`build_strategies` gives, for
        strategies built from this config without it (the estimator builds them once,
        keeps them for later fits, and says it at every fit: the program's warning
        filters decide how often it shows).

        Parameters
        ----------
        strategies : list of (str, str, object)
            What :meth:`build_strategies` returned for this config.
        """
        for slot, _, strategy in strategies:
            if slot == "distance":
                self._paired_update(strategy, True)
                return

    def _paired_update(self, distance: Any, warns: bool = True) -> Any:
        about = describe(distance)
        natural = about.natural_update
        if natural is None:
            if warns and (self.update is None or isinstance(self.update, StrategySpec)):
                warn(
                    f"distance {about.name!r} declares no natural_update, so nothing says "
                    f"which update minimizes {about.objective}; "
                    + ("using 'mean'" if self.update is None else "the pairing is unchecked")
                    + " (declare natural_update on the distance, or subclass kmeansfw.Distance)",
                    PairingWarning,
                )
            return StrategySpec("mean") if self.update is None else self.update
        if self.update is None:
            try:  # the distance's own declaration: say which distance named it
                CATALOG.lookup("update", natural)
            except UnknownStrategyError as exc:
                raise ConfigError(
                    f"distance {about.name!r} declares natural_update {natural!r}: {exc}"
                ) from None
            return StrategySpec(natural)
        if warns and isinstance(self.update, StrategySpec) and self.update.name != natural:
            name, objective = about.name, about.objective
            warn(
                f"update {self.update.name!r} does not minimize the objective of distance "
                f"{name!r} ({objective}); use update={natural!r}, or leave update unset",
                PairingWarning,
            )
        return self.update

    def build_observers(self) -> list[Any]:
        """Fresh observer objects, in order."""
        return [CATALOG.create("observer", item)[1] for item in self.observers]

    @property
    def memory_budget(self) -> int:
        """The per-thread working-memory budget in bytes."""
        return budget_bytes(self.memory_budget_mb)


def check_key(name: str, value: Any) -> None:
    """Check ``value`` for config key ``name`` by the config's own rule, as building a
    :class:`Config` would (for a value read again later, e.g. by each ``partial_fit``).

    Parameters
    ----------
    name : str
        A :class:`Config` key with a check.
    value : object

    Raises
    ------
    InvalidParameterError
        The value the rule refuses (the message names the key).
    """
    field = getattr(attrs.fields(Config), name)
    assert field.validator is not None, name
    field.validator(None, field, value)
