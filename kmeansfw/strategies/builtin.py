"""Registers the built-in strategies in the catalog (the ``DEFAULT_PLUGINS`` of kmeansfw)."""

from __future__ import annotations

from kmeansfw.markers import hookimpl
from kmeansfw.strategies.assignment import Nearest
from kmeansfw.strategies.convergence import Tol, Unchanged
from kmeansfw.strategies.empty import RelocateFarthest
from kmeansfw.strategies.euclidean import Euclidean
from kmeansfw.strategies.init import KMeansPlusPlus, RandomInit
from kmeansfw.strategies.observers import History
from kmeansfw.strategies.update import Mean

BUILTINS = {
    "init": (RandomInit, KMeansPlusPlus),
    "distance": (Euclidean,),
    "assignment": (Nearest,),
    "update": (Mean,),
    "empty": (RelocateFarthest,),
    "convergence": (Tol, Unchanged),
    "observer": (History,),
}


@hookimpl
def kmeansfw_register_strategies(register) -> None:
    for slot, classes in BUILTINS.items():
        for cls in classes:
            register(slot, cls.name, cls)
