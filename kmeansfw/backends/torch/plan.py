"""The torch implementation of each slot of a fit, and the refusal (by name) of every
strategy and config key that has none."""

from __future__ import annotations

from typing import Any

import attrs

from kmeansfw.backends.torch.geometry import _Cosine, _Euclidean, _Geometry, _Hooked
from kmeansfw.core.adapters import ArrayInit, CallableInit, FunctionDistance
from kmeansfw.core.config import Config
from kmeansfw.core.errors import ConfigError, StrategyError
from kmeansfw.strategies.assignment import Auto, Nearest
from kmeansfw.strategies.distances import Cosine, SqEuclidean
from kmeansfw.strategies.empty import RelocateFarthest
from kmeansfw.strategies.euclidean import Euclidean
from kmeansfw.strategies.init import (
    AutoInit,
    KMeansParallel,
    KMeansPlusPlus,
    RandomInit,
)
from kmeansfw.strategies.update import Mean, Spherical


def _declares_torch(strategy: Any) -> bool:
    func = getattr(strategy, "func", None)
    return bool(getattr(strategy, "accepts_torch", False)) or (
        isinstance(strategy, CallableInit | FunctionDistance)
        and bool(getattr(func, "accepts_torch", False))
    )


@attrs.define(eq=False)
class _Plan:
    """The torch implementation of each slot of a fit (refusing what has none)."""

    geometry: _Geometry
    init: Any
    spherical: bool
    empty: Any
    relocate: bool


_NO_TORCH = (
    "has no torch implementation; on torch tensors kmeansfw runs the distances euclidean, "
    "sqeuclidean and cosine, the assignment nearest, the updates mean and spherical, the "
    "empty-cluster strategies relocate-farthest, keep and raise, the seedings auto, "
    "k-means++, k-means||, random and explicit centroids, and any strategy declaring "
    "accepts_torch = True (see kmeansfw.backends.torch)"
)


def _refusal(slot: str, label: str) -> StrategyError:
    return StrategyError(f"{slot} strategy {label} {_NO_TORCH}")


def _geometry_of(label: str, strategy: Any, precision: str) -> _Geometry:
    kind = type(strategy)
    if kind is Euclidean or kind is SqEuclidean:
        return _Euclidean(precision, squared_transform=kind is SqEuclidean)
    if kind is Cosine:
        return _Cosine(precision)
    if _declares_torch(strategy):
        return _Hooked(precision, label, strategy)
    raise _refusal("distance", label)


def _plan(strategies: list[tuple[str, str, Any]], hooks: Any, precision: str) -> _Plan:
    geometry: _Geometry | None = None
    init = empty = None
    spherical = relocate = False
    for slot, label, strategy in strategies:
        kind = type(strategy)
        if slot == "distance":
            geometry = _geometry_of(label, strategy, precision)
        elif slot == "init":
            ok = kind in (AutoInit, KMeansPlusPlus, KMeansParallel, RandomInit, ArrayInit)
            if not (ok or _declares_torch(strategy)):
                raise _refusal(slot, label)
            init = strategy
        elif slot == "assignment":
            if kind not in (Nearest, Auto):
                raise _refusal(slot, label)
        elif slot == "update":
            if kind not in (Mean, Spherical):
                raise _refusal(slot, label)
            spherical = kind is Spherical
        elif slot == "empty":
            relocate = kind is RelocateFarthest
            takes = set(hooks.argnames("kmeansfw_empty_clusters") or ())
            if not relocate and takes & {"labels", "costs", "assignment", "data", "hook"}:
                raise StrategyError(
                    f"empty strategy {label} {_NO_TORCH}: its kmeansfw_empty_clusters reads "
                    "per-sample labels, costs or data (a host-side strategy may read only "
                    "old_centroids, new_centroids, cluster_weights and rng)"
                )
            empty = strategy
    assert geometry is not None
    return _Plan(geometry, init, spherical, empty, relocate)


def _refuse_config(cfg: Config) -> None:
    if cfg.batch_size is not None:
        raise ConfigError(
            "config key 'batch_size': mini-batch fits are not supported on torch tensors "
            "(leave batch_size unset)"
        )
    if cfg.checkpoint is not None:
        raise ConfigError(
            "config key 'checkpoint': checkpoints are not supported on torch tensors "
            "(leave checkpoint unset)"
        )
