"""The strategy catalog: ``(slot, name) -> factory``, and how names become strategies.

Filled, on first use, from the built-ins (:data:`DEFAULT_PLUGINS`), from installed
distributions that declare an entry point in the ``kmeansfw`` group (each implements
``kmeansfw_register_strategies``), and from in-process registration
(:func:`register_strategy`, :func:`distance`).  The environment variable
``KMEANSFW_PLUGINS`` restricts which installed plugins load: unset loads all, a
comma-separated list loads those only (each an entry-point name, ``geo``, or a
distribution name, ``kmeansfw-geo``, spelled as pip would), an empty value loads none; a
name that matches no installed plugin is reported with a warning listing those that exist.
A plugin that fails to import or to register is reported (a warning and
:attr:`Catalog.failures`) and never breaks the built-ins; its registration is all or
nothing: a plugin whose ``kmeansfw_register_strategies`` raises, or registers one invalid
entry, adds none of its entries.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
import numpy as np
import pluggy

from kmeansfw.core import hookspecs
from kmeansfw.core.adapters import OBJECTIVES, ArrayInit, CallableInit, FunctionDistance
from kmeansfw.core.distance import describe
from kmeansfw.core.errors import ConfigError, UnknownStrategyError, warn
from kmeansfw.core.markers import PROJECT
from kmeansfw.core.slots import CATALOG_SLOTS

SLOTS = CATALOG_SLOTS
ENTRY_POINT_GROUP = "kmeansfw"
ENV_VAR = "KMEANSFW_PLUGINS"
DEFAULT_PLUGINS = ("kmeansfw.strategies.builtin",)
BUILTIN = "built-in"


def plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with NumPy scalars (``np.int64(3)`` from ``np.arange``, ``np.float32``)
    as the Python numbers they hold, so that a strategy's checks, a config's TOML and
    the built-strategy cache see the same values as for Python numbers; anything else
    (arrays included) as it is.

    Parameters
    ----------
    params : mapping of str to object
        A strategy's parameters.

    Returns
    -------
    dict of str to object
    """
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}


@attrs.frozen
class StrategySpec:
    """A strategy named in a configuration, with its parameters.

    Attributes
    ----------
    name : str
        The strategy's name in the catalog (``"k-means++"``, ``"minkowski"``, ...).
    params : Mapping[str, Any]
        The keyword arguments its factory is called with (empty: its defaults).
    """

    name: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=plain_params)

    def to_value(self) -> str | dict[str, Any]:
        """The plain form: the name alone, or a table with ``name`` and parameters."""
        return self.name if not self.params else {"name": self.name, **self.params}


class Register(Protocol):
    """The callable a ``kmeansfw_register_strategies`` implementation receives."""

    def __call__(self, slot: str, name: str, factory: Callable[..., Any]) -> None: ...


@attrs.frozen
class Entry:
    """One catalog entry: ``factory(**params)`` builds the strategy ``name`` of ``slot``."""

    slot: str
    name: str
    factory: Callable[..., Any]
    source: str

    @property
    def doc(self) -> str:
        """First line of the factory's docstring."""
        source = self.factory
        if isinstance(source, _FunctionDistanceFactory):
            source = source.func
        text = inspect.getdoc(source) or ""
        return text.splitlines()[0] if text else ""

    def parameters(self) -> list[str]:
        """The parameter names the factory accepts."""
        if isinstance(self.factory, _FunctionDistanceFactory):  # its extra keyword arguments
            return list(inspect.signature(self.factory.func).parameters)[2:]
        if attrs.has(self.factory):
            return [a.alias or a.name for a in attrs.fields(self.factory) if a.init]
        try:
            sig = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return []
        return [p for p in sig.parameters if not p.startswith("_")]


def _canonical_name(name: str) -> str:
    """A plugin or distribution name as pip compares them (PEP 503: case, ``-_.``)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _check_slot(slot: str) -> None:
    if slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}; slots are: {', '.join(SLOTS)}")


#: Entries a plugin's import changed: (slot, name) -> (the entry replaced or None, the
#: entry it registered).
_Changes = dict[tuple[str, str], tuple["Entry | None", "Entry"]]


class Catalog:
    """Maps ``(slot, name)`` to strategy factories; see the module docstring.

    Parameters
    ----------
    group : str, default="kmeansfw"
        The entry-point group installed plugin distributions are found under.
    """

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self.group = group
        self._entries: dict[tuple[str, str], Entry] = {}
        self._lock = threading.RLock()
        self._loaded = False
        #: plugin name -> why it failed to load or register
        self.failures: dict[str, str] = {}
        #: plugin name -> "distribution version" for plugins loaded from entry points
        self.distributions: dict[str, str] = {}
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        #: (slot, name, parameters) -> (label, strategy) already built; see :meth:`create`
        self._built: dict[tuple, tuple[str, Any]] = {}
        #: Counts the changes to the entries: what was built from an older generation
        #: (a config kept by its parameters) may name a strategy since replaced.
        self.generation = 0
        #: plugin name -> the entries its import registered (a module's
        #: ``@register_strategy``), each as (the entry it replaced or None, the entry):
        #: undone when the plugin then fails, so that a plugin registers all or nothing
        self._imported: dict[str, _Changes] = {}
        #: The value of :data:`ENV_VAR` when the plugins loaded (None: unset, all load).
        self.allowed: str | None = None
        #: The installed plugins it left out, as "name (distribution dist)".
        self.left_out: list[str] = []
        #: (entry, the entry it replaced) of failed plugins whose entry a later plugin had
        #: replaced: undoing that later plugin puts back the one before
        self._withdrawn: list[tuple[Entry, Entry | None]] = []

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Load the built-ins and the installed plugins (once; later calls do nothing)."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for module in DEFAULT_PLUGINS:
                self.pm.register(importlib.import_module(module), name=module)
            # the built-ins first: a plugin module registering at import (a decorator)
            # then meets them, as any later registration does
            self._register_from(builtins=True)
            self._load_entry_points()
            self._register_from(builtins=False)

    def _register_from(self, *, builtins: bool) -> None:
        """Run ``kmeansfw_register_strategies`` of the built-in modules, or of the
        plugins; a plugin registers all of its strategies or none."""
        with self._lock:
            for impl in self.pm.hook.kmeansfw_register_strategies.get_hookimpls():
                name = impl.plugin_name
                builtin = name in DEFAULT_PLUGINS
                if builtin != builtins:
                    continue
                source = BUILTIN if builtin else self.distributions.get(name, name)
                staged: list[Entry] = []
                try:
                    impl.function(register=self._stager(source, staged))
                    self._commit(staged)
                except Exception as exc:  # noqa: BLE001 - a plugin's bug must not break us
                    if builtin:
                        raise
                    self._undo(self._imported.pop(name, {}))
                    why = f"{type(exc).__name__}: {exc}"
                    if isinstance(exc, ValueError):  # an invalid entry: the message says it
                        why = str(exc)
                    self._fail(name, f"registration failed, nothing registered ({why})")

    def _load_entry_points(self) -> None:
        allowed = self.allowed = os.environ.get(ENV_VAR)
        wanted = None if allowed is None else {_canonical_name(s) for s in allowed.split(",")}
        wanted = None if wanted is None else wanted - {""}
        found: list[tuple[str, str]] = []
        for ep in importlib.metadata.entry_points(group=self.group):
            dist_name = ep.dist.name if ep.dist else ""
            found.append((ep.name, dist_name))
            names = {_canonical_name(ep.name), _canonical_name(dist_name)}
            if wanted is not None and not names & wanted:
                self.left_out.append(f"{ep.name} (distribution {dist_name})")
                continue
            if self.pm.is_blocked(ep.name) or self.pm.has_plugin(ep.name):
                continue
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else ep.value
            before = dict(self._entries)
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:  # noqa: BLE001
                self._undo(self._changed_since(before))
                self._fail(ep.name, f"{dist}: {type(exc).__name__}: {exc}")
                continue
            imported = self._changed_since(before)
            replaced = [key for key, (old, _) in imported.items() if old and old.source == BUILTIN]
            if replaced:  # as register() refuses a taken name: the built-ins stay
                self._undo(imported)
                self.pm.unregister(name=ep.name)
                slot, name = replaced[0]
                self._fail(
                    ep.name,
                    f"{dist}: its import replaced the built-in {slot} strategy {name!r} "
                    "(a plugin may not replace a built-in; register it under another name), "
                    "nothing registered",
                )
                continue
            self.distributions[ep.name] = dist
            for key, (old, entry) in imported.items():  # its module's: its distribution's
                imported[key] = (old, attrs.evolve(entry, source=dist))
                self._entries[key] = imported[key][1]
            self._imported[ep.name] = imported
        if wanted:
            known = {_canonical_name(n) for pair in found for n in pair}
            unknown = sorted(wanted - known)
            if unknown:
                exist = ", ".join(f"{ep} (distribution {dist})" for ep, dist in sorted(found))
                warn(
                    f"{ENV_VAR} names {', '.join(map(repr, unknown))}, which no installed "
                    f"kmeansfw plugin has; installed plugins: {exist or 'none'}"
                )

    def _changed_since(self, before: dict[tuple[str, str], Entry]) -> _Changes:
        """The entries added or replaced since ``before``, each as (its old entry or
        None, the entry now)."""
        entries = self._entries.items()
        return {
            key: (before.get(key), entry) for key, entry in entries if before.get(key) is not entry
        }

    def _undo(self, changes: _Changes) -> None:
        """Put back the entries ``changes`` replaced, and remove those it added; an entry
        replaced since (by a later plugin's import) is that plugin's and stays."""
        if not changes:
            return
        with self._lock:
            for key, (old, entry) in changes.items():
                old = self._before_withdrawn(old)
                if self._entries.get(key) is not entry:
                    # a later plugin's now; undoing that one must not bring this back
                    self._withdrawn.append((entry, old))
                    continue
                if old is None:
                    del self._entries[key]
                else:
                    self._entries[key] = old
            self._built.clear()
            self.generation += 1

    def _before_withdrawn(self, entry: Entry | None) -> Entry | None:
        """``entry``, or the entry it replaced when it is one of a plugin that failed."""
        for withdrawn, replaced in reversed(self._withdrawn):
            if entry is withdrawn:
                return self._before_withdrawn(replaced)
        return entry

    def _fail(self, name: str, why: str) -> None:
        self.failures[name] = why
        warn(f"kmeansfw plugin {name!r} failed to load: {why}")

    def _stager(self, source: str, staged: list[Entry]) -> Register:
        """A ``register`` function collecting a plugin's entries, checked, into ``staged``
        (see :meth:`_commit`): nothing reaches the catalog before the plugin returns."""

        def register(slot: str, name: str, factory: Callable[..., Any]) -> None:
            entry = self._checked_entry(slot, name, factory, source, replace=False)
            if any((e.slot, e.name) == (slot, name) for e in staged):
                raise ValueError(f"{slot} strategy {name!r} is registered twice by {source}")
            staged.append(entry)

        return register

    def _commit(self, staged: list[Entry]) -> None:
        """Add every staged entry, after checking them all again under the lock."""
        with self._lock:
            for e in staged:
                self._checked_entry(e.slot, e.name, e.factory, e.source, replace=False)
            for e in staged:
                self._entries[(e.slot, e.name)] = e
            self._built.clear()
            self.generation += 1

    # ------------------------------------------------------------------ registry
    def register(
        self,
        slot: str,
        name: str,
        factory: Callable[..., Any],
        *,
        source: str = "in-process",
        replace: bool = False,
    ) -> Entry:
        """Add ``factory`` as strategy ``name`` of ``slot``.

        Parameters
        ----------
        slot : str
            The slot the strategy fills (``"init"``, ``"distance"``, ``"assignment"``,
            ``"update"``, ``"empty"``, ``"convergence"`` or ``"observer"``).
        name : str
            The name configs and the estimator use for it.
        factory : callable
            Called with a config's parameters (``factory(**params)``) to build the
            strategy object for each fit.
        source : str, default="in-process"
            Where the strategy comes from, as ``kmeansfw plugins`` lists it.
        replace : bool, default=False
            Whether ``name`` may replace a strategy registered under it already.

        Returns
        -------
        Entry
            The catalog's record of the strategy.

        Raises
        ------
        ValueError
            Unknown slot, or the name is taken and ``replace`` is false.
        """
        with self._lock:
            entry = self._checked_entry(slot, name, factory, source, replace=replace)
            self._entries[(slot, name)] = entry
            self._built.clear()
            self.generation += 1
            return entry

    def _checked_entry(
        self, slot: str, name: str, factory: Callable[..., Any], source: str, *, replace: bool
    ) -> Entry:
        """The entry ``register`` would add; ValueError when it may not be added."""
        _check_slot(slot)
        if not isinstance(name, str) or not name:
            raise ValueError(f"a strategy name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise ValueError(
                f"{slot} strategy {name!r}: the factory must be callable, got "
                f"{type(factory).__name__}"
            )
        with self._lock:
            old = self._entries.get((slot, name))
        if old is not None and not replace and old.factory is not factory:
            raise ValueError(
                f"{slot} strategy {name!r} is already registered (from {old.source}); "
                "pass replace=True to override it"
            )
        return Entry(slot, name, factory, source)

    def in_process(self) -> list[Entry]:
        """The entries the running program registered (:meth:`register`, the
        ``register_strategy`` and ``distance`` decorators, plugins it registered itself),
        which a fresh process (a worker of
        :func:`kmeansfw.workflow.experiment.run_experiment`) does not have: all but the
        built-ins and what installed plugins registered.

        Returns
        -------
        list of Entry
        """
        with self._lock:
            installed = {BUILTIN, *self.distributions.values()}
            return [e for e in self._entries.values() if e.source not in installed]

    def lookup(self, slot: str, name: str) -> Entry:
        """The entry for ``(slot, name)``; the error lists the names known for the slot.

        Parameters
        ----------
        slot : str
            The slot to look in.
        name : str
            The strategy's name.

        Returns
        -------
        Entry
            Its record: slot, name, factory and source.

        Raises
        ------
        UnknownStrategyError
            No strategy of that name in that slot (the message lists those there are).
        """
        _check_slot(slot)
        self.load()
        entry = self._entries.get((slot, name))
        if entry is None:
            known = ", ".join(self.names(slot)) or "none"
            hint = ""
            if self.failures:
                hint = f" (plugins that failed to load: {', '.join(sorted(self.failures))})"
            if self.left_out:  # the plugin may be installed and left out
                hint += (
                    f" ({ENV_VAR}={self.allowed!r} left out the installed plugins "
                    f"{', '.join(self.left_out)})"
                )
            raise UnknownStrategyError(
                f"unknown {slot} strategy {name!r}; known {slot} strategies: {known}. "
                f"Is the plugin that provides it installed?{hint}"
            )
        return entry

    def names(self, slot: str) -> list[str]:
        """Sorted names registered for ``slot``.

        Parameters
        ----------
        slot : str
            The slot whose names to list.

        Returns
        -------
        list of str
            The names, sorted.
        """
        self.load()
        return sorted(n for s, n in self._entries if s == slot)

    def entries(self, slot: str | None = None) -> list[Entry]:
        """All entries (of one slot), sorted by slot then name.

        Parameters
        ----------
        slot : str or None, default=None
            Only this slot's entries; None: every slot's.

        Returns
        -------
        list of Entry
            The entries, in slot order, then by name.
        """
        self.load()
        order = {s: i for i, s in enumerate(SLOTS)}
        found = [e for e in self._entries.values() if slot is None or e.slot == slot]
        return sorted(found, key=lambda e: (order[e.slot], e.name))

    def listing(self) -> list[dict[str, str]]:
        """One row per strategy (slot, name, source, parameters, summary), then one per
        plugin that failed to load (slot ``"-"``, source ``"failed (see below)"``, and
        why under ``"error"``)."""
        rows = [
            {
                "slot": e.slot,
                "name": e.name,
                "source": e.source,
                "parameters": ", ".join(e.parameters()),
                "summary": e.doc,
            }
            for e in self.entries()
        ]
        rows += [
            {
                "slot": "-",
                "name": name,
                "source": "failed (see below)",
                "parameters": "",
                "summary": "",
                "error": why,
            }
            for name, why in sorted(self.failures.items())
        ]
        return rows

    # ------------------------------------------------------------------ building
    def create(self, slot: str, spec: Any) -> tuple[str, Any]:
        """Build the strategy a configuration value describes; return ``(label, strategy)``.

        Parameters
        ----------
        slot : str
            The slot the strategy fills.
        spec : str, mapping, StrategySpec or object
            A name, a mapping with ``name`` and parameters, a
            :class:`kmeansfw.core.config.StrategySpec`, or a ready strategy object.  For
            ``init`` an array of centroids or a function ``(X, k, rng)`` is accepted too;
            for ``distance`` a plain vectorized function ``(X_block, centroids)``.

        Returns
        -------
        tuple of (str, object)
            The label errors name the strategy by, and the strategy.
        """
        name, params = _name_and_params(spec)
        if name is not None:
            key = _built_key(slot, name, params)
            built = self._built.get(key) if key is not None else None
            if built is not None:
                return built
            entry = self.lookup(slot, name)
            try:
                strategy = entry.factory(**params)
            except TypeError as exc:
                allowed = ", ".join(entry.parameters()) or "none"
                raise ConfigError(
                    f"{slot} strategy {name!r} cannot be built from parameters "
                    f"{sorted(params)}: {str(exc).rstrip('.')}. Its parameters: {allowed}"
                ) from None
            except ValueError as exc:
                raise ConfigError(f"{slot} strategy {name!r}: {exc}") from None
            source = "" if entry.source == BUILTIN else f" from {entry.source}"
            built = f"{name!r}{source}", strategy
            if key is not None and is_value_strategy(strategy):
                with self._lock:
                    if len(self._built) >= _BUILT_MAX:
                        self._built.clear()
                    self._built[key] = built
            return built
        if slot == "init" and (isinstance(spec, (np.ndarray, list, tuple)) or array_like(spec)):
            try:
                return "'array'", ArrayInit(spec)
            except ValueError as exc:  # not numbers (a config's list of names, say)
                raise ConfigError(str(exc)) from None
        if isinstance(spec, type):
            raise ConfigError(f"{slot}: pass a strategy object or name, not the class {spec!r}")
        if not _has_hookimpls(spec) and callable(spec):  # a function, a partial, ...
            func_name = _callable_name(spec)
            if slot == "distance":
                return f"{func_name!r} (function)", FunctionDistance(spec, name=func_name)
            if slot == "init":
                return f"{func_name!r} (function)", CallableInit(spec, name=func_name)
        if not _has_hookimpls(spec):
            raise ConfigError(
                f"{slot}: {spec!r} is neither a strategy name nor an object with kmeansfw "
                f"hook implementations; known {slot} strategies: {', '.join(self.names(slot))}"
            )
        label = getattr(spec, "name", None) or type(spec).__name__
        return f"{label!r} ({type(spec).__module__}.{type(spec).__qualname__})", spec


def array_like(value: Any) -> bool:
    """Whether ``value`` is an array other than an ndarray, list or tuple that an init
    may be given as (a DataFrame, a tensor: anything with ``__array__`` that is not a
    strategy or a function)."""
    return (
        hasattr(value, "__array__")
        and not isinstance(value, np.ndarray | type)
        and not callable(value)
        and not _has_hookimpls(value)
    )


def _callable_name(func: Any) -> str:
    """A function's name; a partial's is its function's (``partial(name)``)."""
    name = getattr(func, "__name__", None)
    if isinstance(name, str):
        return name
    inner = getattr(func, "func", None)  # functools.partial
    if inner is not None:
        return f"partial({_callable_name(inner)})"
    return type(func).__name__


def _name_and_params(spec: Any) -> tuple[str | None, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, StrategySpec):
        return spec.name, dict(spec.params)
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ConfigError(f"a strategy table needs a 'name' key, got keys {sorted(spec)}")
        params = plain_params({k: v for k, v in spec.items() if k != "name"})
        return spec["name"], params
    return None, {}


#: At most this many built strategies are kept for reuse.
_BUILT_MAX = 256


def _built_key(slot: str, name: str, params: dict[str, Any]) -> tuple | None:
    """A key for a named strategy with these parameters, or None when they are unhashable.

    Parameter types are part of the key, so ``p=1`` and ``p=True`` stay different.
    """
    key = (slot, name, tuple(sorted((k, type(v), v) for k, v in params.items())))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def is_value_strategy(strategy: Any) -> bool:
    """Whether ``strategy`` is an immutable attrs instance compared by value.

    Such strategies hold nothing but their parameters, so fits may share one: the
    built-in strategies, and plugin strategies written with ``@attrs.frozen``.  A
    strategy may opt out with a false ``shareable`` attribute; one with a field left out
    of its comparisons (``attrs.field(eq=False)``, the usual way to hold an array) is
    never shared, since two such strategies compare equal whatever that field holds.
    """
    cls = type(strategy)
    return (
        attrs.has(cls)
        and _is_frozen(cls)
        and cls.__eq__ is not object.__eq__
        and all(field.eq for field in attrs.fields(cls))
        and describe(strategy).shareable
    )


def value_types(value: Any) -> Any:
    """The types of ``value`` and, for an attrs instance, tuple or list, of what it
    holds (recursively): with the value, a key that keeps apart values that compare
    equal across types (``1``, ``1.0``, ``True`` and ``np.True_`` as a strategy's
    parameter), which a shared strategy must not confuse."""
    cls = type(value)
    if attrs.has(cls):
        return (cls, tuple(value_types(getattr(value, f.name)) for f in attrs.fields(cls)))
    if isinstance(value, tuple | list):
        return (cls, tuple(value_types(item) for item in value))
    return cls


_FROZEN: dict[type, bool] = {}


def _is_frozen(cls: type) -> bool:
    """Whether instances of the attrs class ``cls`` refuse attribute assignment with
    attrs' public :class:`attrs.exceptions.FrozenInstanceError` (asked once per class, on
    an uninitialized instance)."""
    frozen = _FROZEN.get(cls)
    if frozen is None:
        frozen = _FROZEN[cls] = _refuses_setattr(cls)
    return frozen


def _refuses_setattr(cls: type) -> bool:
    probe = object.__new__(cls)
    try:
        probe.__setattr__("_kmeansfw_frozen_probe", None)
    except attrs.exceptions.FrozenInstanceError:
        return True
    except AttributeError:  # slotted and not frozen: no such attribute
        return False
    return False


def _has_hookimpls(obj: Any) -> bool:
    return any(
        name.startswith("kmeansfw_") and hasattr(getattr(obj, name, None), "kmeansfw_impl")
        for name in dir(obj)
    )


#: The process-wide catalog used by the estimator and the config.
CATALOG = Catalog()


def register_strategy(
    slot: str, name: str | None = None, *, replace: bool = False
) -> Callable[[Any], Any]:
    """Decorator: register a strategy class (or factory) in the catalog under ``name``.

    Parameters
    ----------
    slot : str
        The slot the strategy fills (one of ``kmeansfw.core.slots.CATALOG_SLOTS``:
        ``"init"``, ``"distance"``, ``"update"``, ``"observer"``, ...).
    name : str or None
        The name configs and the estimator use; None: the factory's ``name`` attribute,
        else its ``__name__``.
    replace : bool
        Whether the name may replace another strategy registered under it.

    Returns
    -------
    callable
        The decorator; it returns the factory unchanged.

    Raises
    ------
    ValueError
        When the decorator is applied: an unknown slot, an empty name, a factory that
        is not callable, or a name already taken and ``replace`` false.

    Examples
    --------
    >>> import attrs, kmeansfw
    >>> @kmeansfw.register_strategy("convergence", "five-iterations", replace=True)
    ... @attrs.frozen
    ... class FiveIterations:
    ...     @kmeansfw.hookimpl
    ...     def kmeansfw_converged(self, state):
    ...         return state.iteration >= 5
    """

    def decorate(factory: Any) -> Any:
        CATALOG.load()
        key = name or getattr(factory, "name", None) or factory.__name__
        CATALOG.register(slot, key, factory, source=_where(factory), replace=replace)
        return factory

    return decorate


def distance(
    name: str | None = None,
    *,
    objective: str = "squared",
    natural_update: str = "mean",
    is_metric: bool = False,
    replace: bool = False,
) -> Callable[[Any], Any]:
    """Decorator: register a distance, given as a strategy class or a plain function.

    A function takes a (b, d) block and the (k, d) centroids and returns the (b, k)
    distances, vectorized; parameters given in a config are passed to it as keywords.
    ``objective`` says what the fit minimizes: ``"squared"`` distances (k-means) or the
    ``"distance"`` itself.  The function is returned unchanged.

    Parameters
    ----------
    name : str or None
        The name configs and the estimator use; None: the class's ``name`` attribute
        (a class) or the function's ``__name__``.
    objective : {"squared", "distance"}
        For a function: what the fit minimizes, the squared distances or the distances.
    natural_update : str
        For a function: the update that minimizes its objective (``"mean"``,
        ``"median"``, ...), the one a fit takes when no update is named.
    is_metric : bool
        For a function: whether it is a true metric (the triangle inequality holds), so
        that bound-based assignments may use it.
    replace : bool
        Whether the name may replace a distance already registered under it.

    Returns
    -------
    callable
        The decorator; it returns the class or function unchanged.

    Raises
    ------
    ValueError
        When the decorator is applied: an empty name, a name already taken and
        ``replace`` false, an ``objective`` other than the two, a ``natural_update``
        that is not a name, an ``is_metric`` that is not a boolean.

    Examples
    --------
    >>> import numpy as np, kmeansfw
    >>> @kmeansfw.distance("chebyshev-doc", replace=True)
    ... def chebyshev(X, centroids):
    ...     return np.abs(X[:, None, :] - centroids[None, :, :]).max(axis=2)
    """

    def decorate(obj: Any) -> Any:
        if inspect.isclass(obj):
            return register_strategy("distance", name, replace=replace)(obj)
        key = obj.__name__ if name is None else name
        if objective not in OBJECTIVES:
            raise ValueError(
                f"distance {key!r}: objective must be one of {OBJECTIVES}, got {objective!r}"
            )
        if not isinstance(natural_update, str) or not natural_update:
            raise ValueError(
                f"distance {key!r}: natural_update must be an update strategy's name, got "
                f"{natural_update!r}"
            )
        if not isinstance(is_metric, bool | np.bool_):
            raise ValueError(
                f"distance {key!r}: is_metric must be True or False, got {is_metric!r}"
            )
        factory = _FunctionDistanceFactory(obj, key, objective, natural_update, bool(is_metric))
        CATALOG.load()
        CATALOG.register("distance", key, factory, source=_where(obj), replace=replace)
        return obj

    return decorate


@attrs.frozen
class _FunctionDistanceFactory:
    """Builds a :class:`FunctionDistance` for a registered function, config params as kwargs."""

    func: Callable[..., np.ndarray]
    name: str
    objective: str
    natural_update: str
    is_metric: bool

    def __call__(self, **params: Any) -> Any:
        try:  # a parameter the function does not take: refused when the config is built
            signature = inspect.signature(self.func)
        except (TypeError, ValueError):  # no signature to read (a builtin, say)
            signature = None
        if signature is not None:
            try:
                signature.bind(None, None, **params)
            except TypeError as exc:
                raise TypeError(f"{_callable_name(self.func)}() {exc}") from None
        return FunctionDistance(
            self.func,
            name=self.name,
            objective=self.objective,
            natural_update=self.natural_update,
            is_metric=self.is_metric,
            params=params,
        )


def _where(obj: Any) -> str:
    return f"module {getattr(obj, '__module__', '?')}"
