"""Initialization strategies: ``k-means++``, ``k-means||``, ``random``,
``random-partition``, ``farthest-first`` and explicit centroids."""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np
import pluggy

from kmeansfw import kernels  # attributes read at call time: numba loads on first fit
from kmeansfw.core import contract
from kmeansfw.core.data import FitData, rows_dense
from kmeansfw.core.markers import hookimpl
from kmeansfw.engine import steps
from kmeansfw.engine.executors import (
    fill_rows,
    is_small,
    map_items,
    map_tasks,
    single_threaded_blas,
    task_rows,
)
from kmeansfw.strategies.validators import integer, positive_int, real


def _positive_int_or_none(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is not None and (not integer(value) or value < 1):  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must be a positive integer or None, got {value!r}")


def _potential(sample_weight: np.ndarray, costs: np.ndarray) -> float:
    """``sum(sample_weight * costs)`` in float64 (``np.dot``, as before, for float64):
    float32 data's weights and costs are float32, whose total overflows past 3.4e38
    long before a squared distance does (the seeding's potential then read inf, and its
    draws went astray without an error)."""
    return float(np.dot(np.asarray(sample_weight, np.float64), np.asarray(costs, np.float64)))


@attrs.frozen
class RandomInit:
    """``k`` distinct samples drawn at random, weighted by ``sample_weight`` (the article's)."""

    name = "random"
    accepts_sparse = True

    @hookimpl
    def kmeansfw_init_centroids(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        positive = int(np.count_nonzero(sample_weight))
        if positive < n_clusters:
            raise ValueError(
                f"only {positive} samples have a positive weight, fewer than "
                f"n_clusters={n_clusters}"
            )
        p = sample_weight / sample_weight.sum(dtype=np.float64)
        idx = rng.choice(X.shape[0], size=n_clusters, replace=False, p=p)
        return rows_dense(X, idx)


@attrs.frozen
class KMeansPlusPlus:
    """Greedy k-means++ (Arthur & Vassilvitskii; scikit-learn's variant).

    Each new centroid is the best of ``n_local_trials`` samples drawn with probability
    proportional to their weighted cost to the closest centroid chosen so far, where the
    cost is the distance strategy's (``kmeansfw_cost``).  On small dense data every
    sample's cost to every sample is asked once and all steps run in one compiled call
    (see :data:`PAIRWISE_MAX_ENTRIES`), with the same centroids as step by step.  On
    other data that is one block, a distance that has a ``plusplus_steps`` method
    (Euclidean's: :meth:`kmeansfw.strategies.euclidean.Euclidean.plusplus_steps`) runs
    the steps after the first in one call, with the same centroids too
    (:meth:`kmeansfw.engine.plugins.Hooks.distance_fast_path` says when it may).

    Parameters
    ----------
    n_local_trials : int or None
        Candidates per step; None means ``2 + int(ln k)`` as in scikit-learn.
    """

    name = "k-means++"
    accepts_sparse = True
    n_local_trials: int | None = attrs.field(default=None, validator=_positive_int_or_none)

    @hookimpl
    def kmeansfw_init_centroids(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        data: FitData,
        hook: pluggy.HookRelay,
    ) -> np.ndarray:
        trials = self.n_local_trials or 2 + int(math.log(n_clusters))
        sw = sample_weight
        n = X.shape[0]
        first = weighted_draw(rng, sw)
        # every step's uniforms at once: the same stream as drawing them step by step
        draws = rng.uniform(size=(n_clusters - 1, trials))
        if _pairwise_pays(data, n_clusters):
            costs = _block_costs(hook, data, rows_dense(X, slice(None)))
            potential = _potential(sw, costs[:, first])
            chosen = kernels.plusplus_from_costs(costs, sw, first, potential, draws)
            return rows_dense(X, chosen)
        # blocks sized for a (rows, trials) cost matrix rather than (rows, k)
        plan = data.replan(trials)
        centers = np.empty((n_clusters, X.shape[1]), dtype=X.dtype)
        centers[0] = rows_dense(X, [first])[0]
        one_block = plan.single_block is not None
        if one_block:
            closest = _block_costs(hook, plan, centers[:1])[:, 0].copy()
        else:
            closest = _min_cost(hook, plan, centers[:1], None)
        potential = _potential(sw, closest)
        fused = getattr(hook, "distance_fast_path", None)
        fused = fused("plusplus_steps") if one_block and fused is not None else None
        if fused is not None:  # every later step in one call, where the distance has one
            chosen = fused(plan, sw, closest, first, potential, draws)
            if chosen is not None:
                return rows_dense(X, chosen)
        cumulative = None
        for c in range(1, n_clusters):
            if cumulative is None:
                cumulative = np.cumsum(np.multiply(sw, closest, dtype=np.float64))
            candidates = kernels.draw_candidates(cumulative, potential, draws[c - 1], n)
            points = rows_dense(X, candidates)
            if one_block:  # small data: the step's arithmetic in one compiled pass
                cost = _block_costs(hook, plan, points)
                best, potential, closest, cumulative = kernels.fold_candidates(cost, closest, sw)
            else:
                pots, lowered = _candidate_potentials(hook, plan, points, closest)
                best = int(np.argmin(pots))
                if lowered is not None:  # the best candidate's column, kept from the pass
                    closest = lowered[:, best].copy()
                else:
                    closest = _min_cost(hook, plan, points[best : best + 1], closest)
                potential = float(pots[best]) if potential > 0 else _potential(sw, closest)
                cumulative = None
            centers[c] = points[best]
        return centers


#: Greedy k-means++ on dense data of one block computes every sample's cost to every
#: sample once (one ``kmeansfw_cost`` block) and runs all its steps in one compiled call,
#: when that matrix has at most this many entries (1 MiB in float64) ...
PAIRWISE_MAX_ENTRIES = 1 << 17
#: ... and is the cheaper way: ``n^2 (d + 40) <= k * PAIRWISE_WORK_PER_CLUSTER``.  Measured
#: here (n up to 362, d 2 to 64, k 2 to 20): the matrix path costs about 35 us plus
#: n^2 (d + 40) / 32 ns, the step-by-step path about 45 us plus 18 us per centroid.
PAIRWISE_WORK_PER_CLUSTER = 1 << 19


def _pairwise_pays(data: FitData, n_clusters: int) -> bool:
    """Whether greedy k-means++ should start from the (n, n) sample cost matrix."""
    n, d = data.n_samples, data.n_features
    if data.sparse or n * n > PAIRWISE_MAX_ENTRIES or data.single_block is None:
        return False
    return n * n * (d + 40) <= n_clusters * PAIRWISE_WORK_PER_CLUSTER


def _block_costs(hook: pluggy.HookRelay, data: FitData, points: np.ndarray) -> np.ndarray:
    """The (n, m) cost block of data that is one block, to ``points``."""
    cache = steps.prepare_centroids(hook, data, points)
    with single_threaded_blas():
        return steps.block_matrix(hook, "kmeansfw_cost", data, data.tasks[0][0], points, cache)


def _min_cost(
    hook: pluggy.HookRelay, data: FitData, centers: np.ndarray, closest: np.ndarray | None
) -> np.ndarray:
    """Cost of every sample to ``centers``, lowered by ``closest`` when given (new array)."""
    out = np.empty(data.n_samples, dtype=data.dtype)
    cache = steps.prepare_centroids(hook, data, centers)

    def run_task(task: list[slice]) -> np.ndarray:
        parts = []
        for rows in task:
            cost = steps.block_matrix(hook, "kmeansfw_cost", data, rows, centers, cache)
            low = cost.min(axis=1)
            if closest is not None:
                np.minimum(low, closest[rows], out=low)
            parts.append(low)
        return np.concatenate(parts)

    return fill_rows(data, run_task, out)


#: Keep every candidate's lowered costs, (n, trials), when they fit in this many bytes:
#: the next step's closest costs are then one column of it instead of another pass.
KEEP_COSTS_BYTES = 256 << 20


def _candidate_potentials(
    hook: pluggy.HookRelay, data: FitData, candidates: np.ndarray, closest: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """For each candidate, the weighted total cost if it were added to the centroids, and
    (memory permitting) every sample's lowered cost per candidate."""
    sw = data.sample_weight
    cache = steps.prepare_centroids(hook, data, candidates)
    shape = (data.n_samples, candidates.shape[0])
    keep = shape[0] * shape[1] * data.dtype.itemsize <= KEEP_COSTS_BYTES
    lowered = np.empty(shape, dtype=data.dtype) if keep else None
    # tasks without an executor (inline, or on kmeansfw's worker threads) lower their
    # rows' costs straight into ``lowered`` (the rows of two tasks never overlap); tasks
    # under an executor return theirs (and do not carry the buffer: a pickled task takes
    # what it refers to along)
    target = lowered if data.executor is None else None

    def run_task(task: list[slice]) -> tuple[np.ndarray, np.ndarray | None]:
        total = np.zeros(candidates.shape[0], dtype=np.float64)
        costs = []
        for rows in task:
            cost = steps.block_matrix(hook, "kmeansfw_cost", data, rows, candidates, cache)
            if target is not None:
                cost = np.minimum(cost, closest[rows, None], out=target[rows])
            else:
                np.minimum(cost, closest[rows, None], out=cost)
                if keep:
                    costs.append(cost)
            total += sw[rows] @ cost
        return total, (np.concatenate(costs) if costs else None)

    parts = map_tasks(data, run_task)
    total = parts[0][0]
    for task, (part, costs) in zip(data.tasks, parts, strict=True):
        if part is not total:  # in row order, whatever the executor
            total = total + part
        if costs is not None and lowered is not None:
            lowered[task_rows(task)] = costs
    return total, lowered


def weighted_draw(rng: np.random.Generator, weights: np.ndarray) -> int:
    """One index drawn with probability proportional to ``weights``.

    The same draw (and the same use of the generator) as
    ``rng.choice(len(weights), p=weights / weights.sum())``, without that call's
    validation of ``p``, which costs more than a small fit's whole seeding step.
    """
    cdf = np.cumsum(weights / weights.sum(dtype=np.float64))
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))


@attrs.frozen
class RandomPartition:
    """Assign every sample to a random cluster and take the update of that partition.

    Clusters left empty by the draw (tiny data) get a random sample instead.
    """

    name = "random-partition"
    accepts_sparse = True

    @hookimpl
    def kmeansfw_init_centroids(
        self,
        X: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        data: FitData,
        hook: pluggy.HookRelay,
    ) -> np.ndarray:
        labels = rng.integers(0, n_clusters, size=X.shape[0])
        fallback = rows_dense(X, rng.choice(X.shape[0], size=n_clusters, replace=False))
        partition = steps.Assignment(labels, np.zeros(X.shape[0], X.dtype), None)
        centers, weights = steps.update(hook, data, partition, fallback, rng)
        centers = np.array(centers, dtype=X.dtype)
        empty = np.asarray(weights) == 0
        centers[empty] = fallback[empty]
        return centers


@attrs.frozen
class FarthestFirst:
    """Farthest-first traversal (Gonzalez): a random first centroid, then each next one
    is the sample of highest cost to its closest centroid so far (positive weight only)."""

    name = "farthest-first"
    accepts_sparse = True

    @hookimpl
    def kmeansfw_init_centroids(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        data: FitData,
        hook: pluggy.HookRelay,
    ) -> np.ndarray:
        plan = data.replan(1)
        centers = np.empty((n_clusters, X.shape[1]), dtype=X.dtype)
        first = weighted_draw(rng, sample_weight)
        centers[0] = rows_dense(X, [first])[0]
        closest = _min_cost(hook, plan, centers[:1], None)
        eligible = sample_weight > 0
        for c in range(1, n_clusters):
            scores = np.where(eligible, closest, -1)
            centers[c] = rows_dense(X, [int(np.argmax(scores))])[0]
            closest = _min_cost(hook, plan, centers[c : c + 1], closest)
        return centers


@attrs.frozen
class KMeansParallel:
    """k-means|| (Bahmani et al. 2012): a few passes of oversampling, then reclustering.

    A random first centroid; then ``rounds`` passes, each keeping every sample
    independently with probability ``oversampling * k * w * cost / potential`` (costs
    under the fit's distance, lowered as candidates are added, with each sample's nearest
    candidate tracked on the way); finally the candidates, weighted by the samples they
    are nearest to, are clustered into k centroids by greedy k-means++ and
    ``recluster_iter`` weighted Lloyd iterations with the fit's own update, the best of
    ``recluster_n_init`` such runs by their weighted objective on the candidates.  Needs
    ``rounds`` + 1 passes over the data instead of k: each pass runs the distance's fused
    nearest search (``kmeansfw_nearest``) against the round's new candidates only, and
    lowers every sample's cost, its nearest candidate (the candidates' weights) and the
    potential in the same pass, so no cost block is kept.  For the built-in metrics
    (``euclidean``, ``manhattan``, ``chebyshev``, ``minkowski`` with p >= 1) the triangle
    inequality prunes a round: a new candidate ``p`` can be closer to a sample than its
    nearest earlier candidate ``a`` only if ``d(a, p) < 2 d(x, a)``, so the samples,
    grouped by ``a``, are searched only against the new candidates within twice their
    group's largest distance (when that leaves at most 70 % of the pairs and the table of
    candidate pairs fits :data:`DEFAULT_PRUNE_BUDGET`); the costs, nearest candidates and
    potential are those of the full pass, up to the nearest search's rounding between
    near-tied candidates.  Measured at 1M x 64, k=256 on Gaussian blobs: the last three
    rounds took 0.20-0.22 s instead of about 0.7 s each.

    Parameters
    ----------
    oversampling : float, default=2.0
        Expected candidates per round, in multiples of k (Bahmani's l = 2k).
    rounds : int, default=5
    recluster_iter : int, default=30
    recluster_n_init : int, default=5
        Restarts of the recluster (it sees only the candidates, so a restart costs little
        next to a pass over the data).  Measured with ``benchmarks/bench_default_fit.py``
        at 1M x 64, k=256 (blobs, 3 seeds): one recluster ended at an inertia 9 % above
        scikit-learn's k-means++ in the median; the best of 5 ended 0.5 % below it, and
        the median default fit took 11.7 s instead of 15.6 s (fewer Lloyd iterations).
        On 65k-200k samples with k=16-32 it adds 4-7 % to a default fit and removes the
        bad seeds.
    """

    name = "k-means||"
    accepts_sparse = True
    oversampling: float = attrs.field(default=2.0)
    rounds: int = attrs.field(default=5)
    recluster_iter: int = attrs.field(default=30)
    recluster_n_init: int = attrs.field(default=5)

    @oversampling.validator
    def _check_oversampling(self, attribute: attrs.Attribute, value: float) -> None:
        if not real(value) or not value > 0:
            raise ValueError(f"k-means||: oversampling must be > 0, got {value!r}")

    @recluster_n_init.validator
    def _check_restarts(self, attribute: attrs.Attribute, value: int) -> None:
        if not integer(value) or value < 1:
            raise ValueError(f"k-means||: recluster_n_init must be an integer >= 1, got {value!r}")

    @rounds.validator
    @recluster_iter.validator
    def _check_count(self, attribute: attrs.Attribute, value: int) -> None:
        if not integer(value) or value < 0:
            raise ValueError(f"k-means||: {attribute.name} must be an integer >= 0, got {value!r}")

    @hookimpl
    def kmeansfw_init_centroids(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        data: FitData,
        hook: pluggy.HookRelay,
    ) -> np.ndarray:
        sw = sample_weight
        n = X.shape[0]
        first = weighted_draw(rng, sw)
        chosen = [first]
        candidates = rows_dense(X, [first])
        plan = data.replan(max(1, int(self.oversampling * n_clusters)))
        # the first pass lowers infinite costs: every sample's cost to the first centroid
        closest = np.full(n, np.inf, dtype=X.dtype)
        nearest = np.zeros(n, dtype=np.intp)
        potential = _lower_with(hook, plan, candidates, closest, nearest, 0)
        for _ in range(self.rounds):
            if potential <= 0:
                break
            picked = _oversample(rng, self.oversampling * n_clusters, sw, closest, potential)
            if picked.size == 0:
                continue
            points = rows_dense(X, picked)
            offset = candidates.shape[0]
            potential = _lower_pruned(hook, plan, candidates, points, closest, nearest)
            if potential is None:  # every row against every new candidate
                potential = _lower_with(hook, plan, points, closest, nearest, offset)
            candidates = np.vstack([candidates, points])
            chosen.extend(picked.tolist())
        if candidates.shape[0] <= n_clusters:  # too few candidates: top up at random
            extra = rng.choice(
                np.setdiff1d(np.arange(X.shape[0]), chosen),
                size=n_clusters - candidates.shape[0],
                replace=False,
            )
            return np.vstack([candidates, rows_dense(X, extra)])
        weights = np.bincount(nearest, weights=sw, minlength=candidates.shape[0])
        return _recluster(
            hook,
            data,
            candidates,
            weights,
            n_clusters,
            rng,
            self.recluster_iter,
            self.recluster_n_init,
        )


#: ``auto`` seeds with ``k-means||`` from this much seeding work (samples x clusters) up.
AUTO_PARALLEL_MIN_WORK = 1 << 21


@attrs.frozen
class AutoInit:
    """The default: greedy ``k-means++`` on small data, ``k-means||`` on large data.

    Greedy k-means++ makes k passes over the data, one per centroid, which dominates a
    fit on large data (at 1M x 64, k=256 it takes longer than the iterations that
    follow); k-means|| makes a few passes and reclusters their candidates, with inertia
    as good.  ``auto`` takes k-means|| when samples x clusters >= ``min_work``
    (2^21, e.g. 65k x 32 or 8k x 256), else k-means++.  Measured here (whole default
    fits, median of 3 seeds): k-means|| was faster from 100k x 16, k=32 (0.10 s against
    0.16 s) upwards, with equal or lower inertia; k-means++ at 20k x 8, k=8 (9 ms
    against 15 ms).

    Parameters
    ----------
    min_work : int
        Samples x clusters from which k-means|| is used.
    """

    name = "auto"
    accepts_sparse = True
    min_work: int = attrs.field(default=AUTO_PARALLEL_MIN_WORK, validator=positive_int)

    def choice(self, n_samples: int, n_clusters: int) -> KMeansPlusPlus | KMeansParallel:
        """The seeding used for this shape."""
        return _PARALLEL if n_samples * n_clusters >= self.min_work else _PLUS_PLUS

    @hookimpl
    def kmeansfw_init_centroids(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        data: FitData,
        hook: pluggy.HookRelay,
    ) -> np.ndarray:
        return self.choice(X.shape[0], n_clusters).kmeansfw_init_centroids(
            X=X, sample_weight=sample_weight, n_clusters=n_clusters, rng=rng, data=data, hook=hook
        )


_PARALLEL, _PLUS_PLUS = KMeansParallel(), KMeansPlusPlus()


#: Rows per block of k-means||'s sampling step, so that its temporaries stay bounded
#: whatever n is (drawn block by block, the uniforms are those of one draw of n).
SAMPLING_BLOCK_ROWS = 1 << 16


def _oversample(
    rng: np.random.Generator,
    expected: float,
    sample_weight: np.ndarray,
    closest: np.ndarray,
    potential: float,
) -> np.ndarray:
    """The rows a k-means|| round keeps: each independently with probability
    ``min(1, expected * w * cost / potential)``, in increasing order.

    Block by block (:data:`SAMPLING_BLOCK_ROWS`), so no temporary of n entries is made;
    the generator's stream, hence the rows kept, is the same as one draw for all rows.
    """
    picked = []
    n = closest.shape[0]
    for start in range(0, n, SAMPLING_BLOCK_ROWS):  # blocks of rows, never samples
        stop = min(start + SAMPLING_BLOCK_ROWS, n)
        # in float64 (float32 products of large costs overflowed: every row kept)
        weights = np.asarray(sample_weight[start:stop], dtype=np.float64)
        p = np.minimum(1.0, expected * weights * closest[start:stop] / potential)
        picked.append(np.flatnonzero(rng.random(stop - start) < p) + start)
    return np.concatenate(picked) if picked else np.empty(0, dtype=np.intp)


def _lower_with(
    hook: pluggy.HookRelay,
    data: FitData,
    points: np.ndarray,
    closest: np.ndarray,
    nearest: np.ndarray,
    offset: int,
) -> float:
    """One k-means|| round in one pass over the data: every sample's nearest new
    candidate (``points``, the distance's fused ``kmeansfw_nearest`` search, no cost
    block kept), its cost lowered with it and the index of its nearest candidate updated
    (``offset`` is the index of ``points[0]`` among all candidates), and the new
    potential, summed block by block in row order (the same whatever the thread count).

    ``closest`` and ``nearest`` (the seeding's own arrays) are updated in place once
    every task has answered (tasks only read them), so a round holds no second copy.
    Returns the potential.
    """
    cache = steps.prepare_centroids(hook, data, points)
    task = _RoundTask(hook, data, points, cache, closest, nearest, offset)
    potential = 0.0
    for rows, (low, pick, part) in zip(data.tasks, map_tasks(data, task), strict=True):
        closest[task_rows(rows)], nearest[task_rows(rows)] = low, pick
        potential += part
    return potential


#: A k-means|| round is pruned by the triangle inequality only when at most this fraction
#: of the (sample, new candidate) pairs remains to be computed (the pruned pass gathers
#: each group's rows, so it must save more than that copy costs).  Measured at 1M x 64,
#: k=256: a round keeping 0.4 % of the pairs took 0.20-0.24 s, one keeping about half
#: 0.48-0.51 s, the full pass 0.68-0.76 s.
PRUNE_MAX_FRACTION = 0.7
#: ... and only when a full pass would compute at least this much per row (new candidates x
#: features): the pruned pass gathers every row by group whatever is left to compute, so
#: with few new candidates the full pass costs less.  Measured per round (blobs, one
#: round's pruned pass against its full pass): 4x faster in full at 8 features and 16
#: candidates (k=8, 1M rows), 1.2x at 64 x 65 (k=32), level at 16 x 140, 1.1x at 8 x 250;
#: pruned 0.8x at 16 x 250, 0.8x at 64 x 135, 0.4x at 64 x 500 (k=256).
PRUNE_MIN_WORK = 6144
#: ... and when its (earlier x new candidates) table of booleans, one byte a pair, fits
#: this many bytes (the distances behind it are computed in blocks of
#: :data:`PRUNE_BLOCK_PAIRS`), whatever the fit's memory budget: at k=256 about 1.3M
#: pairs; from k of about 1000 the last rounds, from about 1500 every round, run in full.
DEFAULT_PRUNE_BUDGET = 8 << 20
PRUNE_BLOCK_PAIRS = 1 << 18


def _metric_of(hook: Any, data: FitData) -> tuple[int, str, dict] | None:
    """How a round can be pruned for the fit's distance: ``(q, metric, params)`` with the
    cost equal to the metric ``scipy.spatial.distance.cdist(..., metric, **params)``
    to the power ``q``, for the built-in true metrics (``euclidean``: q = 2;
    ``manhattan``, ``chebyshev``, ``minkowski`` with p >= 1: q = 1), dense rows and
    worker threads (no executor; not a file map large enough for the full pass to hand
    its pages back); None otherwise, e.g. for ``mahalanobis`` or a user's distance."""
    from kmeansfw.core import paging
    from kmeansfw.strategies.distances import Chebyshev, Manhattan, Minkowski
    from kmeansfw.strategies.euclidean import Euclidean

    if data.sparse or data.executor is not None or paging.mapped_rows(data.X) is not None:
        return None
    distance = hook.strategy("distance") if hasattr(hook, "strategy") else None
    kind = type(distance)
    if kind is Euclidean:
        return 2, "euclidean", {}
    if kind is Manhattan:
        return 1, "cityblock", {}
    if kind is Chebyshev:
        return 1, "chebyshev", {}
    if kind is Minkowski and distance.p >= 1:
        return 1, "minkowski", {"p": float(distance.p)}
    return None


def _lower_pruned(
    hook: Any,
    data: FitData,
    old: np.ndarray,
    points: np.ndarray,
    closest: np.ndarray,
    nearest: np.ndarray,
) -> float | None:
    """:func:`_lower_with` for a built-in metric, computing only the pairs that can count.

    A new candidate ``p`` is closer to a sample ``x`` than its nearest earlier candidate
    ``a`` only if ``d(a, p) < 2 d(x, a)`` (triangle inequality).  The samples are grouped
    by ``a``; each group is searched against the new candidates within twice its largest
    ``d(x, a)`` (:func:`_in_reach`: the distances between candidates from exact
    differences in float64, the bound widened by a relative margin of sqrt(machine
    epsilon) against the rounding of the costs); the others cannot lower any of its costs.
    The costs, nearest candidates and potential come out as :func:`_lower_with` computes
    them, up to the nearest search's rounding between near-tied candidates.  Returns None
    (nothing done) for another distance or data (:func:`_metric_of`), for too little work
    per row (:data:`PRUNE_MIN_WORK`), when the (earlier x new candidates) table would pass
    the memory budget, or when more than :data:`PRUNE_MAX_FRACTION` of the (sample, new
    candidate) pairs would remain.
    """
    found = _metric_of(hook, data)
    if found is None:
        return None
    power, metric, params = found
    n, offset, m = closest.shape[0], old.shape[0], points.shape[0]
    if m * data.n_features < PRUNE_MIN_WORK:  # a full pass costs less than the gathering
        return None
    if offset * m > DEFAULT_PRUNE_BUDGET:  # the table of booleans, one byte a pair
        return None
    from kmeansfw.kernels.seeding import group_rows, weighted_total  # numba on first fit

    order, starts, counts, reach = group_rows(nearest, closest, offset, power)
    relevant = _in_reach(old, points, reach, metric, params, data.dtype)
    if float(np.dot(counts, relevant.sum(axis=1))) > PRUNE_MAX_FRACTION * n * m:
        return None
    items = _group_blocks(starts, counts, data.block_rows)
    task = _GroupTask(hook, data, points, relevant, order, offset, closest, nearest)
    map_items(1 if is_small(data) else data.n_threads, task, items)  # BLAS held there
    # the potential as _lower_with sums it: row by row within a block, blocks in order
    sw, potential = data.sample_weight, 0.0
    for rows_of_task in data.tasks:
        part = 0.0
        for rows in rows_of_task:
            part += weighted_total(closest[rows], sw[rows])
        potential += part
    return potential


def _in_reach(
    old: np.ndarray,
    points: np.ndarray,
    reach: np.ndarray,
    metric: str,
    params: dict,
    dtype: np.dtype,
) -> np.ndarray:
    """(earlier, new) candidate pairs with ``d(a, p) < 2 reach_a``, widened by a relative
    margin of sqrt(eps of ``dtype``): distances from exact differences in float64
    (``scipy.spatial.distance.cdist``, never an expanded form, whose error grows with the
    distance from the origin), in blocks of :data:`PRUNE_BLOCK_PAIRS` pairs."""
    from scipy.spatial.distance import cdist

    margin = np.sqrt(np.finfo(dtype).eps)
    limit = 2 * reach * (1 + margin) + np.finfo(np.float64).tiny
    offset, m = old.shape[0], points.shape[0]
    relevant = np.empty((offset, m), dtype=bool)
    block = max(1, PRUNE_BLOCK_PAIRS // max(1, m))
    new64 = points.astype(np.float64)
    for lo in range(0, offset, block):  # blocks of earlier candidates: bounded temporaries
        hi = min(lo + block, offset)
        gaps = cdist(old[lo:hi].astype(np.float64), new64, metric, **params)
        np.less(gaps, limit[lo:hi, None], out=relevant[lo:hi])
    return relevant


def _group_blocks(starts: np.ndarray, counts: np.ndarray, step: int) -> list:
    """Blocks of at most ``step`` grouped rows: ``(first group, last group + 1, start,
    stop)`` with the rows ``order[start:stop]``; consecutive small groups share a block
    (one search against the union of their candidates), a group larger than ``step`` is
    cut into blocks of its own.  A loop over groups (candidates), never over samples."""
    items: list = []
    lo, total = 0, 0
    for g in range(counts.shape[0]):
        c = int(counts[g])
        if total and total + c > step:  # close the open block before it passes step
            items.append((lo, g, int(starts[lo]), int(starts[lo]) + total))
            lo, total = g, 0
        if c > step:  # a group of its own, in row blocks
            first = int(starts[g])
            items.extend(
                (g, g + 1, b, min(b + step, first + c)) for b in range(first, first + c, step)
            )
            lo, total = g + 1, 0
            continue
        total += c
    if total:
        items.append((lo, counts.shape[0], int(starts[lo]), int(starts[lo]) + total))
    return items


@attrs.frozen(eq=False)
class _GroupTask:
    """One block of grouped rows of a pruned k-means|| round (see :func:`_lower_pruned`):
    searched against the union of its groups' relevant new candidates; each task writes
    only its own rows of ``closest`` and ``nearest``."""

    hook: Any
    data: FitData
    points: np.ndarray
    relevant: np.ndarray
    order: np.ndarray
    offset: int
    closest: np.ndarray
    nearest: np.ndarray

    def __call__(self, item: tuple[int, int, int, int]) -> None:
        from kmeansfw.kernels.seeding import lower_costs  # numba loads on first fit

        first, last, start, stop = item
        which = np.flatnonzero(self.relevant[first:last].any(axis=0))
        if which.size == 0:  # no new candidate can lower these costs
            return
        rows = self.order[start:stop]
        points = self.points[which]
        cache = steps.prepare_centroids(self.hook, self.data, points)
        labels, costs = _nearest_of(self.hook, self.data, self.data.X[rows], points, cache)
        low, pick, _ = lower_costs(
            which[labels],
            costs,
            self.offset,
            self.closest[rows],
            self.nearest[rows],
            self.data.sample_weight[rows],
        )
        self.closest[rows], self.nearest[rows] = low, pick


@attrs.frozen(eq=False)
class _RoundTask:
    """The chunk task of a k-means|| round: its rows' lowered costs, nearest candidates
    and potential (see :func:`_lower_with`)."""

    hook: pluggy.HookRelay
    data: FitData
    points: np.ndarray
    cache: dict
    closest: np.ndarray
    nearest: np.ndarray
    offset: int

    def __call__(self, task: list[slice]) -> tuple[np.ndarray, np.ndarray, float]:
        from kmeansfw.kernels.seeding import lower_costs  # numba loads on first fit

        data = self.data
        lows, picks, total = [], [], 0.0
        for rows in task:
            labels, costs = _nearest(self.hook, data, self.points, rows, self.cache)
            low, pick, part = lower_costs(
                labels,
                costs,
                self.offset,
                self.closest[rows],
                self.nearest[rows],
                data.sample_weight[rows],
            )
            lows.append(low)
            picks.append(pick)
            total += part
        if len(task) == 1:
            return lows[0], picks[0], total
        return np.concatenate(lows), np.concatenate(picks), total


def _nearest(
    hook: pluggy.HookRelay, data: FitData, points: np.ndarray, rows: slice, cache: dict
) -> tuple[np.ndarray, np.ndarray]:
    """The checked nearest ``points`` of one block of rows and their costs."""
    return _nearest_of(hook, data, data.X[rows], points, cache, rows)


def _nearest_of(
    hook: pluggy.HookRelay,
    data: FitData,
    X: np.ndarray,
    points: np.ndarray,
    cache: dict,
    rows: slice | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The checked nearest ``points`` of the rows ``X`` of ``data`` (``rows``: where they
    are, when a slice) and their costs."""
    name = "kmeansfw_nearest"
    found = contract.call(
        hook,
        name,
        X=X,
        centroids=points,
        groups=None,
        n_groups=0,
        rows=rows,
        data=data,
        cache=cache,
        hook=hook,
        with_costs=True,
    )
    if not isinstance(found, tuple) or len(found) != 4:
        raise contract.fail(hook, name, "did not return (labels, costs, distances, rivals)")
    b = X.shape[0]
    labels, costs = found[0], found[1]
    labels = contract.check_labels(hook, name, labels, b, points.shape[0])
    costs = contract.check_float_array(
        hook, name, costs, (b,), data.dtype, nonnegative=True, what="costs"
    )
    return labels, costs


def _recluster(
    hook, data, candidates, weights, n_clusters, rng, iterations, n_init=1
) -> np.ndarray:
    """Weighted k-means++ and Lloyd on the candidates, with the fit's own strategies;
    with ``n_init`` > 1, the best of that many such runs by their weighted objective on
    the candidates (each run draws from ``rng`` in turn)."""
    keep = weights > 0
    candidates, weights = candidates[keep], weights[keep]
    small = FitData.build(
        candidates,
        weights.astype(candidates.dtype),
        n_clusters=n_clusters,
        n_threads=1,
        validate=False,
        fitted=data.fitted,
        memory_budget=data.memory_budget,
    )
    contract.call(hook, "kmeansfw_prepare", data=small)
    best, best_objective = None, np.inf
    for _ in range(n_init):  # over restarts of the recluster, never samples
        centers = KMeansPlusPlus().kmeansfw_init_centroids(
            X=small.X,
            sample_weight=small.sample_weight,
            n_clusters=n_clusters,
            rng=rng,
            data=small,
            hook=hook,
        )
        found = None  # an assignment to the final centers, when the loop made one
        for _ in range(iterations):
            assignment = steps.assign(hook, small, centers)
            new, cluster_weights = steps.update(hook, small, assignment, centers, rng)
            new[cluster_weights == 0] = centers[cluster_weights == 0]
            if np.array_equal(new, centers):
                found = assignment
                break
            centers = new
        if n_init == 1:
            return centers
        if found is None:
            found = steps.assign(hook, small, centers, accumulate=False)
        objective = steps.objective(small, found.costs)
        if best is None or objective < best_objective:
            best, best_objective = centers, objective
    assert best is not None
    return best
