"""kmeansfw: a plugin-based K-Means framework.

Every step of Lloyd's algorithm (initialization, distance, assignment, update,
empty-cluster handling, convergence) is a pluggy hook; built-in strategies are the
defaults and any of them can be swapped by name, by object, or from an installed plugin
distribution.  See :mod:`kmeansfw.core.hookspecs` for the contract.

``import kmeansfw`` is light: each public name below is imported from its module on
first use (scikit-learn, numba and the compiled kernels load only when a fit needs them),
so the command line starts fast.  ``from kmeansfw import KMeans`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module defining it (imported on first access).
_LAZY = {
    "CATALOG": "kmeansfw.core.catalog",
    "distance": "kmeansfw.core.catalog",
    "register_strategy": "kmeansfw.core.catalog",
    "Config": "kmeansfw.core.config",
    "PairingWarning": "kmeansfw.core.config",
    "StrategySpec": "kmeansfw.core.config",
    "Distance": "kmeansfw.core.distance",
    "CheckpointError": "kmeansfw.core.errors",
    "ConfigError": "kmeansfw.core.errors",
    "StrategyError": "kmeansfw.core.errors",
    "UnknownStrategyError": "kmeansfw.core.errors",
    "hookimpl": "kmeansfw.core.markers",
    "hookspec": "kmeansfw.core.markers",
    "Fit": "kmeansfw.engine.results",
    "fit": "kmeansfw.engine.fitting",
    "FitResult": "kmeansfw.engine.loop",
    "FitState": "kmeansfw.engine.loop",
    "KMeans": "kmeansfw.estimator",
    "KMedoids": "kmeansfw.medoids",
    "MiniBatchKMeans": "kmeansfw.minibatch",
    "InvalidParameterError": "kmeansfw.core.errors",
    "PrecisionWarning": "kmeansfw.core.errors",
    "History": "kmeansfw.strategies.observers",
}

if TYPE_CHECKING:  # pragma: no cover - what type checkers and IDEs see
    from kmeansfw.core.catalog import CATALOG, distance, register_strategy
    from kmeansfw.core.config import Config, PairingWarning, StrategySpec
    from kmeansfw.core.distance import Distance
    from kmeansfw.core.errors import (
        CheckpointError,
        ConfigError,
        InvalidParameterError,
        PrecisionWarning,
        StrategyError,
        UnknownStrategyError,
    )
    from kmeansfw.core.markers import hookimpl, hookspec
    from kmeansfw.engine.fitting import fit
    from kmeansfw.engine.loop import FitResult, FitState
    from kmeansfw.engine.results import Fit
    from kmeansfw.estimator import KMeans
    from kmeansfw.medoids import KMedoids
    from kmeansfw.minibatch import MiniBatchKMeans
    from kmeansfw.strategies.observers import History


def __getattr__(name: str) -> Any:
    """Import a public name (or a subpackage) on first access and keep it."""
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))


_SUBPACKAGES = frozenset(
    {"core", "engine", "estimator", "kernels", "medoids", "minibatch", "strategies", "workflow"}
)

__all__ = [
    "CATALOG",
    "CheckpointError",
    "Config",
    "ConfigError",
    "Distance",
    "Fit",
    "FitResult",
    "FitState",
    "History",
    "InvalidParameterError",
    "KMeans",
    "KMedoids",
    "MiniBatchKMeans",
    "PairingWarning",
    "PrecisionWarning",
    "StrategyError",
    "StrategySpec",
    "UnknownStrategyError",
    "__version__",
    "distance",
    "fit",
    "hookimpl",
    "hookspec",
    "register_strategy",
]
