"""Registers the built-in strategies in the catalog (the ``DEFAULT_PLUGINS`` of kmeansfw)."""

from __future__ import annotations

from kmeansfw.core.markers import hookimpl
from kmeansfw.strategies.assignment import Auto, Hamerly, Nearest, Yinyang
from kmeansfw.strategies.convergence import (
    AllOf,
    AnyOf,
    Callback,
    ObjectiveChange,
    TimeBudget,
    Tol,
    Unchanged,
)
from kmeansfw.strategies.distances import (
    Chebyshev,
    Cosine,
    Mahalanobis,
    Manhattan,
    Minkowski,
    SqEuclidean,
)
from kmeansfw.strategies.empty import Keep, Raise, RelocateFarthest, SplitLargest
from kmeansfw.strategies.euclidean import Euclidean
from kmeansfw.strategies.init import (
    AutoInit,
    FarthestFirst,
    KMeansParallel,
    KMeansPlusPlus,
    RandomInit,
    RandomPartition,
)
from kmeansfw.strategies.medoids import (
    Build,
    CentroidsUnchanged,
    Heuristic,
    KMedoidsPlusPlus,
    Pam,
)
from kmeansfw.strategies.observers import History, LogProgress, ProgressBar
from kmeansfw.strategies.update import Mean, Median, Medoid, Spherical, TrimmedMean

BUILTINS = {
    "init": (AutoInit, KMeansPlusPlus, KMeansParallel, RandomInit, RandomPartition, FarthestFirst)
    + (KMedoidsPlusPlus, Heuristic, Build),
    "distance": (Euclidean, SqEuclidean, Manhattan, Chebyshev, Minkowski, Cosine, Mahalanobis),
    "assignment": (Nearest, Hamerly, Yinyang, Auto),
    "update": (Mean, Median, Medoid, Spherical, TrimmedMean, Pam),
    "empty": (RelocateFarthest, SplitLargest, Keep, Raise),
    "convergence": (Tol, Unchanged, ObjectiveChange, TimeBudget, AnyOf, AllOf, Callback)
    + (CentroidsUnchanged,),
    "observer": (History, ProgressBar, LogProgress),
}


@hookimpl
def kmeansfw_register_strategies(register) -> None:
    for slot, classes in BUILTINS.items():
        for cls in classes:
            register(slot, cls.name, cls)
