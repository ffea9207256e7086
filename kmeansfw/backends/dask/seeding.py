"""Seeding a Dask fit from the driver: distributed ``k-means||``, greedy ``k-means++``,
weighted ``random`` and explicit centroids (and the refusal of any other seeding)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kmeansfw.backends.dask.chunks import (
    _candidate_weights,
    _oversample,
    _random_keys,
    _seed_potential,
    _trial_potentials,
)
from kmeansfw.backends.dask.cluster import _Cluster
from kmeansfw.core import contract
from kmeansfw.core.data import FitData
from kmeansfw.core.errors import StrategyError
from kmeansfw.engine import steps
from kmeansfw.strategies.init import (
    AutoInit,
    KMeansParallel,
    KMeansPlusPlus,
    RandomInit,
    _recluster,
)


def _seeding_of(strategy: Any, label: str, n: int, k: int) -> Any:
    """The seeding that runs distributed for ``strategy`` (refusing the others)."""
    if isinstance(strategy, AutoInit):
        return strategy.choice(n, k) if n else strategy
    if isinstance(strategy, KMeansParallel | KMeansPlusPlus | RandomInit):
        return strategy
    if getattr(strategy, "name", None) == "array":
        return strategy
    raise StrategyError(
        f"init strategy {label} cannot run on a Dask cluster: it needs the samples on "
        "one machine (use 'k-means||', 'k-means++', 'random', 'auto' or explicit centroids)"
    )


def _entropy(rng: np.random.Generator) -> int:
    """An integer drawn from the fit's generator, the root of the per-chunk streams."""
    return int(rng.integers(0, 2**63 - 1))


def _first_centre(cluster: _Cluster, run: int, rng: np.random.Generator) -> np.ndarray:
    """One row drawn with probability proportional to its weight (a random first centre)."""
    total = float(cluster.weights.sum())
    return cluster.draw(np.array([rng.random() * total]), cluster.weights, run, False, _NO_CENTRES)


_NO_CENTRES = np.empty((0, 0))


def _seed_parallel(
    cluster: _Cluster,
    hooks: Any,
    fitted: Mapping[str, Any],
    k: int,
    rng: np.random.Generator,
    run: int,
    seeding: KMeansParallel,
    memory_budget: int,
) -> np.ndarray:
    """k-means|| over the chunks (see the module docstring); the recluster on the driver
    plans its candidates within ``memory_budget`` (the fit's)."""
    candidates = _first_centre(cluster, run, rng)
    entropy = _entropy(rng)
    scale_l = seeding.oversampling * k
    for round_ in range(seeding.rounds):
        potential = float(np.sum(cluster.map(_seed_potential, run, candidates)))
        if potential <= 0:
            break
        picked = cluster.map(_oversample, run, candidates, scale_l / potential, entropy, round_)
        new = [p for p in picked if p.shape[0]]
        if new:
            candidates = np.vstack([candidates, *new])
    weights = np.sum(cluster.map(_candidate_weights, run, candidates), axis=0)
    # duplicate candidates merged (their weight sits on the first copy anyway)
    candidates, inverse = np.unique(candidates, axis=0, return_inverse=True)
    weights = np.bincount(inverse.ravel(), weights=weights, minlength=candidates.shape[0])
    keep = weights > 0
    candidates, weights = candidates[keep], weights[keep]
    if candidates.shape[0] <= k:  # as few distinct points as clusters: take them all
        extra = (
            _seed_random(cluster, k - candidates.shape[0], rng) if candidates.shape[0] < k else None
        )
        return candidates if extra is None else np.vstack([candidates, extra])
    data = FitData.build(
        candidates,
        weights.astype(candidates.dtype),
        n_clusters=k,
        n_threads=1,
        validate=False,
        fitted=fitted,
        memory_budget=memory_budget,
    )
    return _recluster(
        hooks, data, candidates, weights, k, rng, seeding.recluster_iter, seeding.recluster_n_init
    )


def _seed_plusplus(
    cluster: _Cluster, k: int, rng: np.random.Generator, run: int, seeding: KMeansPlusPlus
) -> np.ndarray:
    """Greedy k-means++ over the chunks: k steps, each one round trip to draw the
    trials and one to evaluate them."""
    trials = seeding.n_local_trials or 2 + int(np.log(k))
    centers = _first_centre(cluster, run, rng)
    mass = np.array(cluster.map(_seed_potential, run, centers))
    draws = rng.uniform(size=(k - 1, trials))
    for step in range(k - 1):
        total = float(mass.sum())
        if total <= 0:  # every row sits on a centre: draw by weight
            points = cluster.draw(
                draws[step] * float(cluster.weights.sum()), cluster.weights, run, False, centers
            )
        else:
            points = cluster.draw(draws[step] * total, mass, run, True, centers)
        pots = np.array(cluster.map(_trial_potentials, run, centers, points))  # (chunks, trials)
        best = int(np.argmin(pots.sum(axis=0)))
        centers = np.vstack([centers, points[best : best + 1]])
        mass = pots[:, best]
    return centers


def _seed_random(cluster: _Cluster, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct rows drawn with probability proportional to their weights."""
    positive = float(cluster.weights.sum())
    entropy = _entropy(rng)
    parts = cluster.map(_random_keys, entropy, k)
    keys = np.concatenate([p[0] for p in parts])
    rows = np.vstack([p[1] for p in parts])
    if np.count_nonzero(np.isfinite(keys)) < k or positive <= 0:
        raise ValueError(f"fewer samples have a positive weight than n_clusters={k}")
    return rows[np.argsort(-keys, kind="stable")[:k]]


def _initialize(
    cluster: _Cluster,
    hooks: Any,
    driver: FitData,
    strategies: list,
    k: int,
    rng: np.random.Generator,
    run: int,
) -> np.ndarray:
    """The checked initial centroids of one run."""
    label, strategy = next((lab, s) for slot, lab, s in strategies if slot == "init")
    seeding = _seeding_of(strategy, label, driver.n_samples, k)
    if isinstance(seeding, KMeansParallel):
        centroids = _seed_parallel(
            cluster, hooks, driver.fitted, k, rng, run, seeding, driver.memory_budget
        )
    elif isinstance(seeding, KMeansPlusPlus):
        centroids = _seed_plusplus(cluster, k, rng, run, seeding)
    elif isinstance(seeding, RandomInit):
        centroids = _seed_random(cluster, k, rng)
    else:  # explicit centroids: the strategy's own hook, which reads only X's shape
        return steps.initialize(hooks, driver, k, rng)
    return contract.check_float_array(
        hooks,
        "kmeansfw_init_centroids",
        np.ascontiguousarray(centroids, dtype=driver.dtype),
        (k, driver.n_features),
        driver.dtype,
        what="centroids",
    )
