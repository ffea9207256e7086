"""kmeansfw: a plugin-based K-Means framework.

Every step of Lloyd's algorithm (initialization, distance, assignment, update,
empty-cluster handling, convergence) is a pluggy hook; built-in strategies are the
defaults and any of them can be swapped by name, by object, or from an installed plugin
distribution.  See :mod:`kmeansfw.core.hookspecs` for the contract.
"""

from kmeansfw.core.catalog import CATALOG, distance, register_strategy
from kmeansfw.core.config import Config, PairingWarning, StrategySpec
from kmeansfw.core.distance import Distance
from kmeansfw.core.errors import CheckpointError, ConfigError, StrategyError, UnknownStrategyError
from kmeansfw.core.markers import hookimpl, hookspec
from kmeansfw.engine.fitting import Fit, fit
from kmeansfw.engine.loop import FitResult, FitState
from kmeansfw.estimator import KMeans
from kmeansfw.strategies.observers import History

__version__ = "0.1.0"

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
    "KMeans",
    "PairingWarning",
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
