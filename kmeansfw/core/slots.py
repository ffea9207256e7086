"""Which hooks each slot owns: the one table the contract is checked against.

A fit holds one strategy per slot (the ``convergence`` slot may hold several criteria)
and any number of observers.  A strategy may implement the *answering* hooks of its own
slot, the set-up hooks and the observer hooks; it may not answer another slot's hook (a
convergence criterion that also implemented ``kmeansfw_nearest`` would silently replace
the distance's search).  Observers implement observer hooks, and may wrap any hook with
``@kmeansfw.hookimpl(wrapper=True)``; they never answer one.  :func:`check_plugin`
refuses anything else when a fit is built, naming the strategy, its slot and the hook.
"""

from __future__ import annotations

from collections.abc import Iterable

from kmeansfw.core.errors import StrategyError

#: The strategy slots of a fit, in the order they are built.
SLOTS: tuple[str, ...] = ("init", "distance", "assignment", "update", "empty", "convergence")

#: Slots a catalog entry may belong to: the strategy slots and ``observer``.
CATALOG_SLOTS: tuple[str, ...] = (*SLOTS, "observer")

#: The answering hooks each slot owns.
ANSWERING: dict[str, tuple[str, ...]] = {
    "init": ("kmeansfw_init_centroids",),
    "distance": (
        "kmeansfw_distance",
        "kmeansfw_cost",
        "kmeansfw_nearest",
        "kmeansfw_paired_cost",
    ),
    "assignment": ("kmeansfw_assign",),
    "update": ("kmeansfw_accumulate", "kmeansfw_update"),
    "empty": ("kmeansfw_empty_clusters",),
    "convergence": ("kmeansfw_converged",),
}

#: Set-up hooks: any strategy may implement them, every implementation is called.
SETUP: tuple[str, ...] = ("kmeansfw_learn", "kmeansfw_prepare", "kmeansfw_prepare_centroids")

#: Observer hooks: notifications, every implementation is called.
OBSERVER: tuple[str, ...] = ("kmeansfw_fit_start", "kmeansfw_iteration_end", "kmeansfw_fit_end")

#: The discovery hook, implemented by plugin modules (never by a fit's strategies).
DISCOVERY: tuple[str, ...] = ("kmeansfw_register_strategies",)

#: Attributes a strategy may declare, by slot: every one is read through
#: :func:`kmeansfw.core.describe` (with its default in ``kmeansfw.core.distance.DEFAULTS``)
#: and documented in docs/hooks.md.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "any": ("name", "accepts_sparse", "accepts_torch", "shareable", "reads_costs"),
    "distance": ("objective", "natural_update", "is_metric", "squared", "splits_work"),
    "assignment": ("requires_metric", "splits_work"),
    "update": ("splits_work", "sums_map"),
}


def owner(hook: str) -> str | None:
    """The slot whose answering hook ``hook`` is (None for set-up and observer hooks)."""
    for slot, hooks in ANSWERING.items():
        if hook in hooks:
            return slot
    return None


def allowed(role: str) -> frozenset[str]:
    """The hooks a plugin of ``role`` (a slot, or ``"observer"``) may implement."""
    if role == "observer":
        return frozenset(OBSERVER)
    return frozenset((*ANSWERING[role], *SETUP, *OBSERVER))


def check_plugin(role: str, label: str, hooks: Iterable[tuple[str, bool]]) -> None:
    """Refuse a plugin that implements a hook its role does not own.

    Parameters
    ----------
    role : str
        The slot the plugin fills, or ``"observer"``.
    label : str
        How errors name the plugin.
    hooks : iterable of (hook name, is_wrapper)
        The plugin's hook implementations.

    Raises
    ------
    StrategyError
        Naming the plugin, its role and the first hook it may not implement.
    """
    mine = allowed(role)
    for name, wrapper in hooks:
        if (wrapper and role == "observer") or (name in mine and not wrapper):
            continue
        if wrapper:
            why = "only observers may wrap hooks"
        elif name in DISCOVERY:
            why = "it is the catalog's discovery hook, implemented by plugin modules"
        elif role == "observer":
            why = f"observers may only implement {', '.join(OBSERVER)} and wrappers"
        else:
            why = f"it belongs to the {owner(name)} slot"
        kind = "observer" if role == "observer" else f"{role} strategy"
        raise StrategyError(f"{kind} {label} implements {name}, which it may not: {why}")
