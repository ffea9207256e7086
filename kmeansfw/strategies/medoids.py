"""k-medoids with swap quality in bounded memory: the ``pam`` update, its stop rule and
the k-medoids seedings (``k-medoids++``, ``heuristic``, ``build``).

The ``pam`` update is the swap phase of PAM in the style of FasterPAM (Schubert and
Rousseeuw, 2021): the gain of replacing medoid ``i`` by candidate ``c`` is read, for
every ``i`` at once, from each sample's nearest and second-nearest medoid costs:

``delta(c, i) = removal[i] + shared[c] + loss[i, c]`` with, summed over samples ``o``
(weight ``w``, nearest medoid ``n(o)``, costs ``dn`` and ``ds`` to its nearest and
second-nearest medoid, ``D = cost(o, c)``):

* ``removal[i] = sum_{n(o) = i} w (ds - dn)``, what removing ``i`` alone costs;
* ``shared[c] = sum_o w min(D - dn, 0)``, what adding ``c`` alone gains;
* ``loss[i, c] = sum_{n(o) = i} w (min(D, ds) - ds - min(D - dn, 0))``, the correction
  for the samples of ``i`` (they move to ``c`` or to their second medoid).

FasterPAM evaluates every sample as a candidate against an n x n matrix.  Here no matrix
is built: each iteration evaluates a few hundred *candidates* (the members closest to each
cluster's mean, where a better medoid of the cluster lies, and samples drawn in
proportion to their cost, where a medoid is missing), in chunks, against every sample,
block by block through the distance's ``kmeansfw_cost``.  Each chunk's gains are exact;
its best swaps (one per medoid) are applied greedily, as many of them as lower the
objective together (checked exactly in one more pass).  Memory stays at a few
``block_rows x chunk`` buffers whatever n is.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from kmeansfw.core import contract
from kmeansfw.core.config import budget_bytes
from kmeansfw.core.data import FitData, rows_dense
from kmeansfw.core.markers import hookimpl
from kmeansfw.engine import steps
from kmeansfw.engine.executors import map_tasks, single_threaded_blas, task_rows
from kmeansfw.strategies.init import KMeansPlusPlus
from kmeansfw.strategies.update import cluster_members
from kmeansfw.strategies.validators import positive_int, positive_number, real

#: Swaps whose gain is smaller than this fraction of the objective are not made (no
#: cycling on round-off).
_REL_GAIN = 1e-12
#: Most swaps of one chunk applied together (each checked in the same exact pass).
MAX_JOINT_SWAPS = 16


def _check_share(instance: object, attribute: attrs.Attribute, value: float) -> None:
    ok = real(value)
    if not ok or not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be a number in [0, 1], got {value!r}")


def cost_block(hook: Any, data: FitData, X_rows: np.ndarray, points: np.ndarray, cache: dict):
    """The checked (b, m) ``kmeansfw_cost`` of rows ``X_rows`` (any rows of ``data``) to
    ``points``, whose per-centroid ``cache`` came from
    :func:`kmeansfw.engine.steps.prepare_centroids`."""
    name = "kmeansfw_cost"
    value = contract.call(hook, name, X=X_rows, centroids=points, rows=None, data=data, cache=cache)
    shape = (X_rows.shape[0], points.shape[0])
    return contract.check_float_array(
        hook, name, value, shape, data.dtype, nonnegative=True, what="a block"
    )


def _nearest_two(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the lowest cost of each row (ties: lowest index), it and the second
    lowest (``inf`` with one column), in float64."""
    b, k = cost.shape
    index = np.arange(b)
    nearest = cost.argmin(axis=1)
    dn = cost[index, nearest].astype(np.float64)
    if k == 1:
        return nearest, dn, np.full(b, np.inf)
    rest = cost.astype(np.float64, copy=True)
    rest[index, nearest] = np.inf
    return nearest, dn, rest.min(axis=1)


@attrs.frozen(eq=False)
class _GainTask:
    """Chunk task: nearest / second-nearest medoid costs of its rows and their share of
    the swap gains of ``candidates``.

    With ``D`` the cost to a candidate, the three sums of the module docstring regroup
    into two products per block, ``w @ min(D, dn)`` and (per medoid)
    ``sum_{n(o) = i} w clip(D, dn, ds)``, and terms that do not depend on the candidate:
    ``delta(c, i) = sum_o w min(D, dn) + sum_{n(o) = i} w clip(D, dn, ds)
    - sum_o w dn - sum_{n(o) = i} w dn``.
    """

    hook: Any
    data: FitData
    medoids: np.ndarray
    candidates: np.ndarray
    cache: dict

    def __call__(self, task: list[slice]):
        data, k, m = self.data, self.medoids.shape[0], self.candidates.shape[0]
        points = np.concatenate([self.medoids, self.candidates])
        shared, owned = np.zeros(m), np.zeros((k, m))
        total_dn, owned_dn = 0.0, np.zeros(k)
        near = []
        for rows in task:
            cost = cost_block(self.hook, data, data.X[rows], points, self.cache)
            nearest, dn, ds = _nearest_two(cost[:, :k])
            near.append(nearest)
            w = data.sample_weight[rows].astype(np.float64)
            D = cost[:, k:]
            part = np.minimum(D, dn[:, None])
            shared += w @ part
            np.clip(D, dn[:, None], ds[:, None], out=part)
            owner = np.zeros((k, rows.stop - rows.start))
            owner[nearest, np.arange(owner.shape[1])] = w
            owned += owner @ part
            total_dn += float(w @ dn)
            owned_dn += np.bincount(nearest, weights=w * dn, minlength=k)
        return shared, owned, total_dn, owned_dn, near


@attrs.frozen(eq=False)
class _JointTask:
    """Chunk task: the weighted objective of each prefix of a list of swaps."""

    hook: Any
    data: FitData
    points: np.ndarray
    cache: dict
    columns: list[np.ndarray]

    def __call__(self, task: list[slice]) -> np.ndarray:
        totals = np.zeros(len(self.columns))
        for rows in task:
            cost = cost_block(self.hook, self.data, self.data.X[rows], self.points, self.cache)
            w = self.data.sample_weight[rows].astype(np.float64)
            for j, cols in enumerate(self.columns):  # at most MAX_JOINT_SWAPS prefixes
                totals[j] += w @ cost[:, cols].min(axis=1).astype(np.float64)
        return totals


def _pick_swaps(delta: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Improving ``(candidate, medoid)`` pairs, best first, each medoid and candidate at
    most once, at most :data:`MAX_JOINT_SWAPS`."""
    order = np.argsort(delta, axis=None, kind="stable")
    picked: list[tuple[int, int]] = []
    used_c: set[int] = set()
    used_i: set[int] = set()
    k = delta.shape[1]
    for flat in order[: max(1, delta.size)]:  # pairs of candidates and medoids, not samples
        c, i = divmod(int(flat), k)
        if delta[c, i] >= threshold or len(picked) == min(k, MAX_JOINT_SWAPS):
            break
        if c in used_c or i in used_i:
            continue
        picked.append((c, i))
        used_c.add(c)
        used_i.add(i)
    return picked


@attrs.frozen
class Pam:
    """k-medoids' swap phase (FasterPAM's gains, sampled candidates, no n x n matrix).

    Each iteration (one engine iteration: assign, then this update) evaluates
    ``n_candidates`` candidate medoids: ``local_share`` of them are the members closest
    to each cluster's weighted mean (by the distance's cost), the rest are drawn with
    probability proportional to ``sample_weight x cost`` to the nearest medoid.  They are
    evaluated ``chunk`` at a time: one pass over the data, block by block, gives every
    ``(candidate, medoid)`` swap's exact change of the objective (the distance's cost
    summed, e.g. the sum of distances with ``minkowski``); the best swaps of the chunk
    (one per medoid) are applied, as many as lower the objective together, checked in
    one more pass.  The objective never increases.  Works with any distance (it asks
    ``kmeansfw_cost``); the medoids are always samples.

    Label-based stop rules (``tol``, ``unchanged``) may stop while swaps still improve
    (a swap inside a cluster can leave every label unchanged): pair it with
    ``convergence="centroids-unchanged"``, which :class:`kmeansfw.KMedoids` does.

    Parameters
    ----------
    n_candidates : int, default=256
        Candidates evaluated per iteration.
    chunk : int, default=128
        Candidates evaluated in one pass over the data.
    local_share : float in [0, 1], default=0.5
        Share of the candidates taken near the clusters' means.
    memory_budget_mb : float, default=64
        Budget of the (rows, chunk) cost buffers, in MB.
    """

    name = "pam"
    n_candidates: int = attrs.field(default=256, validator=positive_int)
    chunk: int = attrs.field(default=128, validator=positive_int)
    local_share: float = attrs.field(default=0.5, validator=_check_share)
    memory_budget_mb: float = attrs.field(default=64.0, validator=positive_number)

    @hookimpl
    def kmeansfw_update(
        self,
        data: FitData,
        labels: np.ndarray,
        costs: np.ndarray,
        centroids: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        hook: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        # BLAS at one thread whoever calls (a fit already holds it; results do not depend
        # on it): the small products here would only wait on BLAS's threads
        with single_threaded_blas():
            return self._swap(data, labels, costs, centroids, n_clusters, rng, hook)

    def _swap(self, data, labels, costs, centroids, n_clusters, rng, hook):
        k = n_clusters
        medoids = np.array(centroids, dtype=data.dtype)
        budget = budget_bytes(self.memory_budget_mb)
        plan = data.replan(k + min(self.chunk, self.n_candidates), budget)
        candidates = self.candidates(data, hook, labels, costs, k, rng)
        sw = data.sample_weight
        objective = float(np.dot(costs.astype(np.float64), sw))
        nearest = labels
        for start in range(0, candidates.size, self.chunk):  # chunks of candidates
            chunk = candidates[start : start + self.chunk]
            points = rows_dense(data.X, chunk)
            delta, nearest = self._gains(hook, plan, medoids, points)
            picked = _pick_swaps(delta, -_REL_GAIN * abs(objective))
            if not picked:
                continue
            best, total = self._joint(hook, plan, medoids, points, picked)
            if total >= objective - _REL_GAIN * abs(objective):
                continue
            for c, i in picked[: best + 1]:
                medoids[i] = points[c]
            objective = total
            nearest = None
        if nearest is None:  # the last chunk changed the medoids: their clusters' weights
            nearest = self._gains(hook, plan, medoids, medoids[:0])[1]
        weights = np.bincount(nearest, weights=sw.astype(np.float64), minlength=k)
        return medoids, weights

    def candidates(
        self,
        data: FitData,
        hook: Any,
        labels: np.ndarray,
        costs: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Row indices of this iteration's candidates: near the clusters' means, then
        drawn in proportion to weighted cost (no current medoid); every such sample when
        there are at most ``n_candidates`` (then a fit ends at a local optimum of PAM's
        swap phase, as FasterPAM's).  A sample of zero weight counts for nothing in the
        objective but may still be the best medoid (as ``alternate`` may pick it): it is
        a candidate too, never drawn (its weighted cost is zero)."""
        sw = data.sample_weight
        usable = costs > 0
        if np.count_nonzero(usable) <= self.n_candidates:  # small data: every sample
            return np.flatnonzero(usable)
        n_local = int(round(self.local_share * self.n_candidates))
        local = self._local(data, hook, labels, n_clusters, n_local, usable)
        p = np.where(usable, sw * costs, 0).astype(np.float64)
        drawn = np.empty(0, dtype=np.intp)
        n_drawn = self.n_candidates - local.size
        if n_drawn > 0 and p.sum() > 0:
            cdf = np.cumsum(p)
            drawn = np.searchsorted(cdf, rng.random(n_drawn) * cdf[-1], side="right")
            drawn = np.minimum(drawn, data.n_samples - 1)
        # first occurrence order: local candidates first, then the drawn ones
        everything = np.concatenate([local, drawn]).astype(np.intp)
        _, first = np.unique(everything, return_index=True)
        return everything[np.sort(first)]

    def _local(self, data, hook, labels, k, n_local, usable) -> np.ndarray:
        """The ``n_local // k`` usable members closest to each cluster's weighted mean."""
        per_cluster = n_local // k
        if per_cluster == 0 or data.sparse:
            return np.empty(0, dtype=np.intp)
        sw = data.sample_weight.astype(np.float64)
        totals = np.bincount(labels, weights=sw, minlength=k)
        means = np.zeros((k, data.n_features))
        for f in range(data.n_features):  # features, never samples
            means[:, f] = np.bincount(labels, weights=sw * data.X[:, f], minlength=k)
        means /= np.where(totals > 0, totals, 1)[:, None]
        means = means.astype(data.dtype)
        cache = steps.prepare_centroids(hook, data, means)

        def run_task(task: list[slice]) -> np.ndarray:
            out = []
            for rows in task:
                cost = cost_block(hook, data, data.X[rows], means, cache)
                out.append(cost[np.arange(cost.shape[0]), labels[rows]].astype(np.float64))
            return np.concatenate(out)

        to_mean = np.concatenate(map_tasks(data, run_task))
        to_mean[~usable] = np.inf
        order = np.lexsort((to_mean, labels))  # by cluster, then by cost to its mean
        bounds = np.searchsorted(labels[order], np.arange(k + 1))
        take = bounds[:-1, None] + np.arange(per_cluster)[None, :]
        valid = take < bounds[1:, None]
        picked = order[take[valid]]
        return picked[np.isfinite(to_mean[picked])]

    def _gains(self, hook, plan, medoids, points) -> tuple[np.ndarray, np.ndarray]:
        """The (m, k) change of the objective of each swap, and the nearest medoid of
        each sample."""
        both = np.concatenate([medoids, points])
        cache = steps.prepare_centroids(hook, plan, both)
        task = _GainTask(hook, plan, medoids, points, cache)
        k, m = medoids.shape[0], points.shape[0]
        shared, owned, total_dn, owned_dn = np.zeros(m), np.zeros((k, m)), 0.0, np.zeros(k)
        nearest = np.empty(plan.n_samples, dtype=np.intp)
        for rows, (s, o, t, od, near) in zip(plan.tasks, map_tasks(plan, task), strict=True):
            shared += s  # reduced in row order: the same result for any thread count
            owned += o
            total_dn += t
            owned_dn += od
            nearest[task_rows(rows)] = np.concatenate(near)
        delta = shared[None, :] + owned - (total_dn + owned_dn)[:, None]
        return delta.T, nearest

    def _joint(self, hook, plan, medoids, points, picked) -> tuple[int, float]:
        """The prefix of ``picked`` (index of its last swap) whose swaps together give the
        lowest objective, and that objective."""
        k = medoids.shape[0]
        chosen = np.array([c for c, _ in picked])
        both = np.concatenate([medoids, points[chosen]])
        columns = []
        current = np.arange(k)
        for j, (_, i) in enumerate(picked):
            current = current.copy()
            current[i] = k + j
            columns.append(current)
        cache = steps.prepare_centroids(hook, plan, both)
        totals = np.sum(map_tasks(plan, _JointTask(hook, plan, both, cache, columns)), axis=0)
        best = int(np.argmin(totals))
        return best, float(totals[best])


@attrs.frozen
class CentroidsUnchanged:
    """Stop when an iteration leaves every centroid where it was.

    The stop rule of swap-based k-medoids (``pam``): a swap may leave every label as it
    was, so the labels say nothing about convergence; unchanged centroids do (and then
    the labels match them, so no final assignment is needed).
    """

    name = "centroids-unchanged"
    accepts_sparse = True

    @hookimpl
    def kmeansfw_converged(self, state: Any) -> bool:
        if np.array_equal(state.centroids, state.previous_centroids):
            state.strict = True
            return True
        return False


@attrs.frozen
class KMedoidsPlusPlus(KMeansPlusPlus):
    """k-medoids++ (scikit-learn-extra's): greedy k-means++ sampling in proportion to the
    distance's *cost*, which for k-medoids' distances (``minkowski``, ``manhattan``, ...)
    is the distance itself, not its square.

    Parameters
    ----------
    n_local_trials : int or None
        Candidates per step; None means ``2 + int(ln k)``.
    """

    name = "k-medoids++"


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """All rows when ``n <= size``, else ``size`` distinct rows drawn uniformly, sorted."""
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def _totals_to(hook, data: FitData, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """For every sample, ``sum_j weights[j] cost(sample, points[j])``, block by block."""
    cache = steps.prepare_centroids(hook, data, points)
    w = weights.astype(np.float64)

    def run_task(task: list[slice]) -> np.ndarray:
        return np.concatenate(
            [
                cost_block(hook, data, data.X[rows], points, cache).astype(np.float64) @ w
                for rows in task
            ]
        )

    return np.concatenate(map_tasks(data, run_task))


@attrs.frozen
class Heuristic:
    """scikit-learn-extra's ``heuristic`` seeding: the ``k`` samples of lowest total cost
    to the others.

    The totals are over ``n_references`` reference samples (all of them when there are
    no more; else drawn uniformly from the fit's generator), computed block by block, so
    memory stays at ``block_rows x n_references`` whatever n is.

    Parameters
    ----------
    n_references : int, default=1024
    """

    name = "heuristic"
    n_references: int = attrs.field(default=1024, validator=positive_int)

    @hookimpl
    def kmeansfw_init_centroids(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        data: FitData,
        hook: Any,
    ) -> np.ndarray:
        refs = _sample(data.n_samples, self.n_references, rng)
        plan = data.replan(refs.size)
        totals = _totals_to(hook, plan, rows_dense(X, refs), sample_weight[refs])
        totals[sample_weight == 0] = np.inf
        chosen = np.argsort(totals, kind="stable")[:n_clusters]
        return rows_dense(X, np.sort(chosen))


@attrs.frozen(eq=False)
class _BuildGain:
    """Chunk task of a BUILD step: each candidate's weighted lowering of the closest
    costs of the task's rows."""

    hook: Any
    data: FitData
    points: np.ndarray
    cache: dict
    closest: np.ndarray

    def __call__(self, task: list[slice]) -> np.ndarray:
        gain = np.zeros(self.points.shape[0])
        w = self.data.sample_weight
        for rows in task:
            cost = cost_block(self.hook, self.data, self.data.X[rows], self.points, self.cache)
            lowered = np.maximum(self.closest[rows, None] - cost.astype(np.float64), 0.0)
            gain += w[rows].astype(np.float64) @ lowered
        return gain


@attrs.frozen
class Build:
    """PAM's BUILD seeding, on at most ``sample_size`` samples.

    The first medoid is the sample of lowest total cost; each next one is the sample
    whose addition lowers the total cost most (ties: the lowest index).  Exact PAM BUILD
    when ``n <= sample_size``; on more data, BUILD on ``sample_size`` samples drawn
    uniformly from the fit's generator (CLARA's subsample), weighted by
    ``sample_weight``.  Costs are computed block by block (``k`` passes over the
    sample, never an n x n matrix), so memory stays at ``block x sample_size``.

    Parameters
    ----------
    sample_size : int, default=2048
    """

    name = "build"
    sample_size: int = attrs.field(default=2048, validator=positive_int)

    @hookimpl
    def kmeansfw_init_centroids(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray,
        n_clusters: int,
        rng: np.random.Generator,
        data: FitData,
        hook: Any,
    ) -> np.ndarray:
        pool = _sample(data.n_samples, self.sample_size, rng)
        sub = data if pool.size == data.n_samples else data.with_rows(pool)
        if sub is not data:
            contract.call(hook, "kmeansfw_prepare", data=sub)
        sub = sub.replan(pool.size)
        points = rows_dense(sub.X, slice(None))
        w = sub.sample_weight.astype(np.float64)
        usable = w > 0
        if np.count_nonzero(usable) < n_clusters:
            raise ValueError(
                f"only {np.count_nonzero(usable)} samples have a positive weight, fewer "
                f"than n_clusters={n_clusters}"
            )
        totals = np.where(usable, _totals_to(hook, sub, points, w), np.inf)
        chosen = [int(np.argmin(totals))]
        closest = self._costs_to(hook, sub, points[chosen[0] : chosen[0] + 1])
        cache = steps.prepare_centroids(hook, sub, points)
        for _ in range(1, n_clusters):  # k greedy steps, each one pass over the sample
            gain = np.sum(map_tasks(sub, _BuildGain(hook, sub, points, cache, closest)), axis=0)
            gain[~usable] = -np.inf
            gain[chosen] = -np.inf
            best = int(np.argmax(gain))
            chosen.append(best)
            closest = np.minimum(closest, self._costs_to(hook, sub, points[best : best + 1]))
        return points[chosen]

    @staticmethod
    def _costs_to(hook, data: FitData, point: np.ndarray) -> np.ndarray:
        cache = steps.prepare_centroids(hook, data, point)

        def run_task(task: list[slice]) -> np.ndarray:
            return np.concatenate(
                [cost_block(hook, data, data.X[rows], point, cache)[:, 0] for rows in task]
            ).astype(np.float64)

        return np.concatenate(map_tasks(data, run_task))


def medoid_rows(X: Any, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each center, the index of a row of ``X`` equal to it (-1 when none is).

    The center's own cluster (``labels``) is searched first; a center with no equal
    member (an empty cluster, or ties between duplicate rows) is then searched for in
    all of ``X``, preferring a row that no other center took, so that centers of equal
    value (data with fewer distinct rows than centers) name distinct rows while there
    are enough of them.  Block by block: never more than a block of rows is compared at
    once.
    """
    k = centers.shape[0]
    out = np.full(k, -1, dtype=np.intp)
    for j, members in enumerate(cluster_members(labels, k)):  # clusters, never samples
        out[j] = _equal_row(X, centers[j], members, taken=None)
    for j in np.flatnonzero(out < 0).tolist():  # centers no member of their cluster equals
        out[j] = _equal_row(X, centers[j], None, taken=out)
    return out


def _equal_row(X: Any, center: np.ndarray, where: np.ndarray | None, taken: Any) -> int:
    """The first row of ``X`` (of ``where``'s rows, if given) equal to ``center`` and not
    in ``taken`` (else the first equal row; -1 if none is), block by block."""
    block = 8192
    n = X.shape[0] if where is None else where.size
    first = -1
    for start in range(0, n, block):
        index = np.arange(start, min(start + block, n))
        if where is not None:
            index = where[index]
        hit = index[(rows_dense(X, index) == center).all(axis=1)]
        free = hit if taken is None else hit[~np.isin(hit, taken)]
        if free.size:
            return int(free[0])
        if hit.size and first < 0:
            first = int(hit[0])
    return first
