"""The plugins of one fit, checked against the slot table, and its resolved hooks.

:func:`build` takes exactly one fit's strategies and observers, refuses a plugin that
implements a hook its slot does not own (:mod:`kmeansfw.core.slots`) or a hook or
argument the contract does not have, and resolves every hook once: :class:`Hooks` is
what strategies receive as ``hook``.  Nothing built here is shared between fits.

Resolution, per hook:

* observer hooks, and any hook an observer wraps (``@hookimpl(wrapper=True)``): pluggy's
  own caller on a :class:`pluggy.PluginManager` holding the fit's plugins, so observers
  and wrappers run exactly as pluggy defines;
* an answering hook: its one owner's implementation, called directly with the arguments
  it declares (a distance fast path its distance does not implement is answered by the
  default of :mod:`kmeansfw.core.distance`, registered beside the distance);
* set-up hooks and convergence criteria: each implementation in pluggy's order (last
  registered first, ``tryfirst`` / ``trylast`` honoured), and an exception names the
  plugin that raised it.

Parsing a plugin's hook implementations (what pluggy does on ``register``) costs more than
fitting a small data set, so the parse of each plugin *class* is kept: an immutable tuple
of hook names, argument names and options, private to this module.  A plugin whose
instance carries its own ``kmeansfw_*`` attributes is parsed every time.
"""

from __future__ import annotations

import inspect
import operator
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import pluggy

from kmeansfw.core import distance, hookspecs, slots
from kmeansfw.core.errors import StrategyError
from kmeansfw.core.markers import PROJECT

_PREFIX = f"{PROJECT}_"
#: Every hook of the contract and the arguments its specification names.
SPECS: dict[str, tuple[str, ...]] = {
    name: tuple(inspect.signature(function).parameters)
    for name, function in vars(hookspecs).items()
    if name.startswith(_PREFIX) and callable(function)
}
_FIRSTRESULT = frozenset(
    name
    for name in SPECS
    if getattr(getattr(hookspecs, name), f"{PROJECT}_spec", {}).get("firstresult")
)


class _Manager(pluggy.PluginManager):
    """A PluginManager that only looks at ``kmeansfw_*`` attributes of a plugin."""

    def parse_hookimpl_opts(self, plugin: object, name: str):  # noqa: D102 - pluggy API
        if not name.startswith(_PREFIX):
            return None
        return super().parse_hookimpl_opts(plugin, name)


_PARSER = _Manager(PROJECT)
#: plugin class -> ((hook, argnames, wrapper, order), ...); immutable values only.
_PARSED: dict[type, tuple[tuple[str, tuple[str, ...], bool, int], ...]] = {}
_PARSED_LOCK = threading.Lock()


def _with_optional(name: str, impl: pluggy.HookImpl) -> tuple[str, ...]:
    """The arguments the engine calls ``impl`` of hook ``name`` with: those pluggy passes
    (its parameters without a default) and the optional arguments of the contract
    (:data:`CALL_DEFAULTS`, arguments a later version added) it declares *with* a
    default, so an implementation can take ``sums=None`` and still be called directly
    without it.  Other parameters with a default are never passed, as in pluggy."""
    optional = CALL_DEFAULTS.get(name, {})
    return (*impl.argnames, *(a for a in impl.kwargnames if a in optional))


def _parse(source: Any) -> tuple[tuple[str, tuple[str, ...], bool, int], ...]:
    """The hook implementations of a plugin object or class, as pluggy reads them."""
    found = []
    for name in dir(source):
        if not name.startswith(_PREFIX):
            continue
        opts = _PARSER.parse_hookimpl_opts(source, name)
        if opts is None:
            continue
        impl = pluggy.HookImpl(None, "", getattr(source, name), opts)
        wrapper = bool(impl.wrapper or impl.hookwrapper)
        order = 0 if impl.trylast else 2 if impl.tryfirst else 1
        found.append((name, _with_optional(name, impl), wrapper, order))
    return tuple(found)


def implementations(plugin: Any) -> tuple[tuple[str, tuple[str, ...], bool, int], ...]:
    """``(hook, argnames, is_wrapper, order)`` for each hook ``plugin`` implements."""
    own = getattr(plugin, "__dict__", None)
    if inspect.ismodule(plugin) or (own and any(k.startswith(_PREFIX) for k in own)):
        return _parse(plugin)
    cls = type(plugin)
    parsed = _PARSED.get(cls)
    if parsed is None:
        parsed = _parse(plugin)
        with _PARSED_LOCK:
            _PARSED[cls] = parsed
    return parsed


#: Hook arguments a call may leave out, with the value they then take: arguments a later
#: version of the contract added, so that plugins calling a hook the older way still run.
CALL_DEFAULTS: dict[str, dict[str, Any]] = {
    "kmeansfw_assign": {"with_costs": True, "sums": None},
    "kmeansfw_nearest": {"with_costs": True, "sums": None},
}


def _argument(kwargs: dict, name: str, hook: str) -> Any:
    """The value of argument ``name`` in a call of ``hook``: the caller's, or its default
    (:data:`CALL_DEFAULTS`); a TypeError naming the hook and the argument otherwise."""
    if name in kwargs:
        return kwargs[name]
    defaults = CALL_DEFAULTS.get(hook, {})
    if name in defaults:
        return defaults[name]
    raise TypeError(f"{hook} was called without its argument {name!r}")


class _Direct:
    """One implementation, called with the keyword arguments it declares."""

    __slots__ = ("function", "argnames", "plugin_name", "name", "_pick")

    def __init__(self, function: Any, argnames: tuple[str, ...], plugin_name: str, name: str):
        self.function = function
        self.argnames = argnames
        self.plugin_name = plugin_name
        self.name = name
        # the declared arguments as a tuple in one C call (hooks run several times per
        # iteration); itemgetter answers a lone value, not a tuple, for one name
        self._pick = _pick(argnames)

    def __call__(self, **kwargs: Any) -> Any:
        return self.call_with(kwargs)

    def call_with(self, kwargs: dict[str, Any]) -> Any:
        """The call with its keyword arguments as a dict (not kept, not changed)."""
        try:
            args = self._pick(kwargs)
        except KeyError:  # an argument left out: its default, or a clear error
            args = [_argument(kwargs, a, self.name) for a in self.argnames]
        return self.function(*args)


def _pick(argnames: tuple[str, ...]) -> Any:
    """A function of a keyword dict answering the values of ``argnames`` as a tuple."""
    if len(argnames) > 1:
        return operator.itemgetter(*argnames)
    if argnames:
        name = argnames[0]
        return lambda kwargs: (kwargs[name],)
    return lambda kwargs: ()


class _Each:
    """Every implementation in pluggy's order; a list of the non-None answers."""

    __slots__ = ("calls", "name")

    def __init__(self, calls: Sequence[_Direct], name: str) -> None:
        self.calls = tuple(calls)
        self.name = name

    def __call__(self, **kwargs: Any) -> list:
        return self.call_with(kwargs)

    def call_with(self, kwargs: dict[str, Any], check: Any = None) -> list:
        """The call with its keyword arguments as a dict (not kept, not changed);
        ``check(answer, plugin_name)``, when given, sees each answer as it comes (so that
        its error can name the implementation at fault)."""
        results = []
        for call in self.calls:
            try:
                result = call.call_with(kwargs)
            except StrategyError:
                raise
            except Exception as exc:
                raise StrategyError(
                    f"{call.plugin_name} failed in {self.name}: {type(exc).__name__}: {exc}"
                ) from exc
            if result is not None:
                if check is not None:
                    check(result, call.plugin_name)
                results.append(result)
        return results

    @property
    def plugin_name(self) -> str:
        return ", ".join(c.plugin_name for c in self.calls) or "<no plugin>"


class _Pluggy:
    """Pluggy's caller of one hook, re-raising an exception with the plugins named."""

    __slots__ = ("caller", "name", "plugin_name", "wrappers", "defaults")

    def __init__(self, caller: pluggy.HookCaller, name: str) -> None:
        self.caller, self.name = caller, name
        self.defaults = CALL_DEFAULTS.get(name)  # for arguments a call leaves out
        impls = caller.get_hookimpls()
        plain = [i.plugin_name for i in impls if not (i.wrapper or i.hookwrapper)]
        self.plugin_name = plain[-1] if plain else "<no plugin>"
        #: the wrappers of the hook, which may change its answer (errors name them too)
        self.wrappers = tuple(i.plugin_name for i in impls if i.wrapper or i.hookwrapper)

    def __call__(self, **kwargs: Any) -> Any:
        if self.defaults:
            kwargs = {**self.defaults, **kwargs}
        try:
            return self.caller(**kwargs)
        except StrategyError:
            raise
        except Exception as exc:
            impls = self.caller.get_hookimpls()
            names = raising_plugin(impls, exc) or ", ".join(i.plugin_name for i in impls)
            raise StrategyError(
                f"{names} failed in {self.name}: {type(exc).__name__}: {exc}"
            ) from exc


def raising_plugin(impls: list[Any], exc: BaseException) -> str | None:
    """The name of the implementation among ``impls`` (pluggy's) whose code ``exc`` was
    raised in (its outermost frame in the traceback), or None when none was (the error
    then names them all): a hook that calls several observers names the one that
    failed, not every one of them."""
    codes: dict[Any, str] = {}
    for impl in impls:
        code = getattr(impl.function, "__code__", None)
        if code is not None:
            codes.setdefault(code, impl.plugin_name)
    frame = exc.__traceback__
    while frame is not None:
        name = codes.get(frame.tb_frame.f_code)
        if name is not None:
            return name
        frame = frame.tb_next
    return None


def _nothing(**kwargs: Any) -> None:
    return None


def _no_answers(**kwargs: Any) -> list:
    return []


class Hooks:
    """Every ``kmeansfw_*`` hook of one fit, resolved once; use it like ``pm.hook``.

    Attributes
    ----------
    labels : dict
        Strategy label by slot (the first for convergence).
    """

    def __init__(
        self,
        plugins: list[tuple[str, str, Any, tuple]],
        labels: dict[str, str],
        spec: tuple,
    ) -> None:
        self.labels = labels
        self._plugins = plugins
        self._spec = spec
        self._pm: pluggy.PluginManager | None = None
        self._argnames: dict[str, tuple[str, ...] | None] = {}
        self._takes: dict[tuple[str, str], bool] = {}
        self._costs_read: bool | None = None
        self._sums: bool | None = None
        self._fast_paths: dict[str, Any] = {}
        piped, resolved = _plan(tuple((role, impls) for role, _, _, impls in plugins))
        self._piped = piped
        for hook in piped:
            setattr(self, hook, _Pluggy(getattr(self.pm.hook, hook), hook))
        # hooks nobody implements keep the class's defaults (see below): only the
        # implemented, wrapped or observed ones are resolved per fit
        for hook, order, first in resolved:
            calls = [
                _Direct(getattr(plugins[i][2], hook), argnames, plugins[i][1], hook)
                for i, argnames in order
            ]
            setattr(self, hook, calls[0] if first else _Each(calls, hook))

    @property
    def pm(self) -> pluggy.PluginManager:
        """A :class:`pluggy.PluginManager` holding this fit's plugins (built on first use,
        for observers, wrappers and tools that want pluggy's own view)."""
        if self._pm is None:
            pm = _Manager(PROJECT)
            pm.add_hookspecs(hookspecs)
            for _, name, plugin, _ in self._plugins:
                pm.register(plugin, name=name)
            self._pm = pm
        return self._pm

    def argnames(self, hook: str) -> tuple[str, ...] | None:
        """The arguments the answering implementation of ``hook`` declares (None: none)."""
        if hook in self._argnames:  # looked up once per fit (the engine asks per block)
            return self._argnames[hook]
        found: tuple[str, ...] | None = None
        for *_, impls in reversed(self._plugins):
            hit = [a for name, a, wrapper, _ in impls if name == hook and not wrapper]
            if hit:
                found = hit[0]
                break
        self._argnames[hook] = found
        return found

    def takes(self, hook: str, arg: str) -> bool:
        """Whether any implementation or wrapper of ``hook`` in this fit declares the
        argument ``arg`` (the engine computes an argument nobody reads only on demand)."""
        key = (hook, arg)
        if key not in self._takes:
            self._takes[key] = any(
                name == hook and arg in argnames
                for *_, impls in self._plugins
                for name, argnames, _, _ in impls
            )
        return self._takes[key]

    def costs_read_every_iteration(self) -> bool:
        """Whether a plugin of this fit declares ``reads_costs = True``: it reads every
        iteration's costs (``state.costs`` or ``state.objective``), so a Lloyd iteration
        asks the assignment for them (``with_costs``) instead of leaving them to a pass
        of their own."""
        if self._costs_read is None:  # looked up once per fit (the engine asks per iteration)
            self._costs_read = any(
                distance.describe(plugin).reads_costs for _, _, plugin, _ in self._plugins
            )
        return self._costs_read

    def sums_in_search(self) -> bool:
        """Whether this fit's assignment may be offered the update's map
        (:class:`kmeansfw.core.sums.SumsRequest`): the update declares ``sums_map``, the
        assignment's ``kmeansfw_assign`` takes ``sums``, and no observer wraps the
        assignment, the search or the map (a wrapper sees every call it wraps, and may
        change the labels the sums must follow)."""
        if self._sums is None:  # looked up once per fit (the engine asks per iteration)
            update = self.strategy("update")
            wrapped = {"kmeansfw_assign", "kmeansfw_nearest", "kmeansfw_accumulate"}
            self._sums = (
                update is not None
                and distance.describe(update).sums_map
                and "sums" in (self.argnames("kmeansfw_assign") or ())
                and not wrapped & self._piped
            )
        return self._sums

    def distance_fast_path(self, method: str) -> Any:
        """The distance's method ``method`` (bound), when it may stand in for the hooks it
        replaces, else None.

        A distance names those hooks in ``<method>_replaces``; the method stands in for
        them when the class that defines it defines them too (or derives from the one
        that does: a subclass, or an object, that replaces one of the hooks does not
        inherit the fast path), the distance alone implements every one of them (a
        set-up hook that another strategy implements too must see every call), and no
        observer wraps any of them (a wrapper sees every call it wraps).  Looked up once
        per fit.

        Parameters
        ----------
        method : str
            The method's name, e.g. ``"plusplus_steps"`` (see
            :meth:`kmeansfw.strategies.euclidean.Euclidean.plusplus_steps`).

        Returns
        -------
        bound method or None
        """
        if method not in self._fast_paths:
            self._fast_paths[method] = self._find_fast_path(method)
        return self._fast_paths[method]

    def answered_alone(self, hook: str, strategy: Any) -> bool:
        """Whether ``strategy`` alone answers ``hook`` in this fit, so that a call of its
        own method may stand in for the hook's: it owns the hook's answering
        implementation (firstresult), or every implementation (a set-up hook another
        strategy implements too must see every call of it), has not replaced the hook on
        the object itself, and no observer or wrapper sees the hook.

        Parameters
        ----------
        hook : str
            A hook's name.
        strategy : object
            One of the fit's strategies.

        Returns
        -------
        bool
        """
        if hook in self._piped or hook in getattr(strategy, "__dict__", {}):
            return False
        answer = getattr(self, hook, None)
        calls = getattr(answer, "calls", (answer,))
        owners = (getattr(getattr(c, "function", None), "__self__", None) for c in calls)
        return all(owner is strategy for owner in owners)

    @property
    def observed_or_wrapped(self) -> bool:
        """Whether an observer or a wrapper takes part in any hook of this fit (an observer
        sees every hook it may: the hooks then go through pluggy)."""
        return bool(self._piped)

    def _find_fast_path(self, method: str) -> Any:
        strategy = self.strategy("distance")
        found = getattr(strategy, method, None)
        replaces = tuple(getattr(strategy, f"{method}_replaces", ()))
        if found is None or not replaces:
            return None
        for hook in replaces:
            if not self.answered_alone(hook, strategy):
                return None
            if not distance.declared_with(strategy, method, hook):
                return None
        return found

    def implemented(self, name: str) -> bool:
        """Whether a plugin of the fit implements hook ``name`` (not only wraps it)."""
        return self.argnames(name) is not None

    def strategy(self, slot: str) -> Any:
        """The strategy object of ``slot`` in this fit (the first one for
        ``convergence``), or None when the fit has none.

        Parameters
        ----------
        slot : str
            A slot name (``"distance"``, ``"init"``, ...).

        Returns
        -------
        object or None
        """
        return next((s for role, _, s in self._spec[0] if role == slot), None)

    def __reduce__(self) -> tuple:
        """Pickled as its strategies and observers: a worker rebuilds the same hooks."""
        return (build, self._spec)


#: The resolution plan of a fit's plugins, by their roles and parsed hooks (immutable
#: keys and values, private): which hooks go through pluggy, and for the others, which
#: plugins answer in which order.  A plan depends on the plugins' classes only.
_PLANS: dict[tuple, tuple[frozenset[str], tuple]] = {}
_PLANS_MAX = 256


def _plan(key: tuple) -> tuple[frozenset[str], tuple]:
    """``(piped hooks, ((hook, ((plugin index, argnames), ...), firstresult), ...))``."""
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    wrapped = {name for _, impls in key for name, _, wrapper, _ in impls if wrapper}
    piped = set(wrapped)
    if any(role == "observer" for role, _ in key):
        piped.update(h for h in slots.OBSERVER if h in SPECS)
    by_hook: dict[str, list[tuple[int, int, tuple[str, ...]]]] = {}
    for index, (_, impls) in enumerate(key):
        for hook, argnames, wrapper, order in impls:
            if not wrapper and hook not in piped:
                by_hook.setdefault(hook, []).append((order, index, argnames))
    resolved = []
    for hook, found in by_hook.items():
        # pluggy calls the last registered first, tryfirst before, trylast after
        ordered = [(i, a) for _, i, a in sorted(found, key=lambda item: item[0])][::-1]
        resolved.append((hook, tuple(ordered), hook in _FIRSTRESULT))  # first: one owner
    plan = (frozenset(piped), tuple(resolved))
    with _PARSED_LOCK:
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


# A hook no plugin of a fit implements answers None (firstresult) or no answers: immutable
# functions on the class, so a fit only sets the hooks it resolves.
for _hook in SPECS:
    setattr(Hooks, _hook, staticmethod(_nothing if _hook in _FIRSTRESULT else _no_answers))
del _hook


def _check_contract(kind: str, impls: tuple) -> None:
    """Refuse a hook the contract does not have, or an argument its spec does not name."""
    for hook, argnames, _, _ in impls:
        spec = SPECS.get(hook)
        if spec is None:
            raise StrategyError(f"{kind} implements {hook}, which is not a kmeansfw hook")
        unknown = [a for a in argnames if a not in spec]
        if unknown:
            raise StrategyError(
                f"{kind} declares argument(s) {', '.join(map(repr, unknown))} in {hook}, "
                f"which takes only {', '.join(spec)}"
            )


#: ``(role, parsed hooks)`` pairs that passed :func:`_check_plugin` (immutable, private):
#: the checks depend on a plugin's class and role only.
_CHECKED: set[tuple] = set()


def _check_plugin(role: str, label: str, kind: str, impls: tuple) -> None:
    """Refuse a plugin whose hooks break the contract or its role's slot (by name)."""
    if (role, impls) in _CHECKED:
        return
    _check_contract(kind, impls)
    slots.check_plugin(role, label, [(hook, wrapper) for hook, _, wrapper, _ in impls])
    if role == "distance":
        missing = [
            hook
            for hook in ("kmeansfw_distance", "kmeansfw_cost")
            if not any(name == hook for name, *_ in impls)
        ]
        if missing:
            raise StrategyError(
                f"{kind} implements no {' or '.join(missing)}: subclass kmeansfw.Distance "
                "and write pairwise() (every other hook then has a default), or implement "
                "both kmeansfw_distance and kmeansfw_cost"
            )
    with _PARSED_LOCK:
        if len(_CHECKED) >= _PLANS_MAX:
            _CHECKED.clear()
        _CHECKED.add((role, impls))


def build(
    strategies: Sequence[tuple[str, str, object]], observers: Iterable[object] = ()
) -> Hooks:
    """The hooks of one fit holding exactly these strategies, then the observers.

    Parameters
    ----------
    strategies : sequence of (slot, label, strategy)
        In slot order; ``label`` names the strategy in errors.
    observers : iterable of objects
        Registered last, so their wrappers wrap the strategies.

    Raises
    ------
    StrategyError
        A plugin implements a hook its slot does not own (see :mod:`kmeansfw.core.slots`),
        a hook the contract does not have, or an argument the hook does not take.
    """
    strategies, observers = tuple(strategies), tuple(observers)
    plugins: list[tuple[str, str, Any, tuple]] = []
    labels: dict[str, str] = {}
    seen: set[int] = set()
    for slot, label, strategy in strategies:
        kind = f"{slot} strategy {label}"
        if id(strategy) in seen:
            raise StrategyError(f"{kind} is already part of this fit under another slot")
        seen.add(id(strategy))
        impls = implementations(strategy)
        _check_plugin(slot, label, kind, impls)
        plugins.append((slot, kind, strategy, impls))
        labels.setdefault(slot, label)
        if slot == "distance":
            for hook, default in distance.FAST_PATH_DEFAULTS.items():
                if not any(name == hook for name, *_ in impls):
                    extra = default()
                    name = f"{kind} (default {hook})"
                    plugins.append((slot, name, extra, implementations(extra)))
    for i, observer in enumerate(observers):
        label = repr(getattr(observer, "name", type(observer).__name__))
        kind = f"observer {label} #{i}"
        impls = implementations(observer)
        _check_plugin("observer", label, kind, impls)
        plugins.append(("observer", kind, observer, impls))
    return Hooks(plugins, labels, (strategies, observers))
