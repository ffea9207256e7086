"""Mini-batch k-means (Sculley 2010): the second, smaller loop of the engine.

Each step draws a batch of samples with the fit's generator, assigns it with the fit's
own assignment and distance hooks, and moves every centroid towards the weighted mean of
its batch members with a per-centroid learning rate ``batch weight / total weight seen``
(``c <- (seen c + sum w x) / (seen + sum w)``), which is Sculley's rule summed over a batch
as scikit-learn's MiniBatchKMeans does, including its random reassignment of starved
centroids (``reassignment_ratio``).  The update's map step
(``kmeansfw_accumulate``) supplies the batch sums, so this needs the ``mean`` or
``spherical`` update.  The loop stops after ``max_iter`` passes over the data or when the
exponentially weighted batch objective has not improved for ``max_no_improvement``
steps, then assigns every sample once.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pluggy

from kmeansfw.core import contract
from kmeansfw.core.data import FitData, rows_dense
from kmeansfw.engine import loop as engine
from kmeansfw.engine import steps

#: Steps without improvement of the smoothed batch objective before stopping.
MAX_NO_IMPROVEMENT = 10


#: Default share of the largest centroid's absorbed weight below which a centroid is
#: starved and moved to a random batch sample (scikit-learn's ``reassignment_ratio``).
REASSIGNMENT_RATIO = 0.01


@attrs.define(eq=False)
class MiniBatchState:
    """Centroids and the total weight each has absorbed so far (its inverse learning rate).

    With ``reassignment_ratio`` > 0 and a generator, starved centroids are moved to random
    batch samples (see :func:`reassign_starved`).
    """

    centroids: np.ndarray
    seen: np.ndarray
    spherical: bool = False
    rng: np.random.Generator | None = None
    reassignment_ratio: float = REASSIGNMENT_RATIO
    steps: int = 0
    since_reassign: int = 0
    reassigned: int = 0
    smoothed: float | None = None
    best: float | None = None
    stale: int = 0


def spherical_update(strategies: list[tuple[str, str, Any]]) -> bool:
    """Check the update provides (sums, weights) per batch (mean-like); True if spherical."""
    from kmeansfw.strategies.update import Mean, Spherical

    update = dict((slot, s) for slot, _, s in strategies)["update"]
    if not isinstance(update, Mean):
        label = next(lab for slot, lab, _ in strategies if slot == "update")
        raise ValueError(
            f"mini-batch k-means needs the mean or spherical update, not update strategy {label}"
        )
    return isinstance(update, Spherical)


def step(hook: pluggy.HookRelay, batch: FitData, state: MiniBatchState) -> steps.Assignment:
    """One Sculley step on ``batch`` (already prepared); updates ``state`` in place."""
    assignment = steps.assign(hook, batch, state.centroids)
    sums = sum(p[0] for p in assignment.partials)
    weights = sum(p[1] for p in assignment.partials)
    filled = weights > 0
    total = state.seen + weights
    new = state.centroids.astype(np.float64, copy=True)
    new[filled] = (state.seen[filled, None] * new[filled] + sums[filled]) / total[filled, None]
    if state.spherical:
        norms = np.linalg.norm(new, axis=1)
        new[norms > 0] /= norms[norms > 0, None]
    state.centroids = contract.check_float_array(
        hook, "kmeansfw_update", new, state.centroids.shape, batch.dtype, what="centroids"
    )
    state.seen = total
    state.steps += 1
    reassign_starved(batch, state)
    return assignment


def reassign_starved(batch: FitData, state: MiniBatchState) -> int:
    """Move starved centroids to random samples of the batch (scikit-learn's rule).

    Every time 10 k samples have been processed (at once when a centroid has absorbed
    nothing yet), centroids whose absorbed weight is below ``reassignment_ratio`` times
    the largest one (at most half a batch of them, the most starved first) jump to
    distinct batch samples drawn uniformly, and their absorbed weight is set to the
    smallest weight among the others, so they are not reassigned at once again.  Without
    this, a centroid seeded in a sparse region keeps a tiny share of every batch and
    never moves to where it would lower the objective.  Returns how many were moved.
    """
    if state.rng is None or state.reassignment_ratio <= 0:
        return 0
    k = state.centroids.shape[0]
    state.since_reassign += batch.n_samples
    if not ((state.seen == 0).any() or state.since_reassign >= 10 * k):
        return 0
    state.since_reassign = 0
    starved = state.seen < state.reassignment_ratio * state.seen.max()
    half = int(0.5 * batch.n_samples)
    if starved.sum() > half:  # keep the better-fed ones beyond half a batch
        starved[np.argsort(state.seen, kind="stable")[half:]] = False
    count = int(starved.sum())
    if count == 0 or count == k:
        return 0
    picked = state.rng.choice(batch.n_samples, size=count, replace=False)
    centroids = state.centroids.copy()
    centroids[starved] = rows_dense(batch.X, np.sort(picked))
    state.centroids = centroids
    state.seen[starved] = state.seen[~starved].min()
    state.reassigned += count
    return count


def improved(
    state: MiniBatchState, batch_objective: float, batch_size: int, n_samples: int
) -> bool:
    """scikit-learn's early stop: smooth the per-sample batch objective; False once it has
    not improved for MAX_NO_IMPROVEMENT steps."""
    if state.steps <= 1:  # the first batch only seeds the statistics' history
        return True
    alpha = min(1.0, batch_size * 2.0 / (n_samples + 1))
    value = batch_objective / batch_size
    state.smoothed = (
        value if state.smoothed is None else (state.smoothed * (1 - alpha) + value * alpha)
    )
    if state.best is None or state.smoothed < state.best:
        state.best, state.stale = state.smoothed, 0
    else:
        state.stale += 1
    return state.stale < MAX_NO_IMPROVEMENT


def batch_data(
    X: Any,
    sample_weight: np.ndarray | None,
    n_clusters: int,
    n_threads: int | None,
    hook: pluggy.HookRelay,
) -> FitData:
    """A prepared FitData for one batch of rows."""
    batch = FitData.build(
        X, sample_weight, n_clusters=n_clusters, n_threads=n_threads, validate=False
    )
    contract.call(hook, "kmeansfw_prepare", data=batch)
    return batch


def run(
    pm: pluggy.PluginManager,
    data: FitData,
    n_clusters: int,
    *,
    rng: np.random.Generator,
    batch_size: int,
    max_iter: int,
    spherical: bool,
    reassignment_ratio: float = REASSIGNMENT_RATIO,
    run_index: int = 0,
) -> Any:
    """One mini-batch run: seed on a sample, Sculley steps, one final full assignment."""
    from kmeansfw.engine.loop import FitResult, FitState

    hook = engine.relay(pm)
    n = data.n_samples
    batch_size = min(batch_size, n)
    init_size = min(n, max(3 * batch_size, 3 * n_clusters))
    seed_rows = np.sort(rng.choice(n, size=init_size, replace=False))
    seeding = batch_data(
        data.X[seed_rows], data.sample_weight[seed_rows], n_clusters, data.n_threads, hook
    )
    centroids = steps.initialize(hook, seeding, n_clusters, rng)
    state = MiniBatchState(
        centroids=centroids,
        seen=np.zeros(n_clusters),
        spherical=spherical,
        rng=rng,
        reassignment_ratio=reassignment_ratio,
    )
    start = FitState(data=data, n_clusters=n_clusters, tol=0.0, rng=rng, run=run_index)
    start.centroids = centroids
    hook.kmeansfw_fit_start(state=start)
    converged = False
    for _ in range(max(1, max_iter * n // batch_size)):
        index = rng.integers(0, n, size=batch_size)
        batch = batch_data(
            data.X[index], data.sample_weight[index], n_clusters, data.n_threads, hook
        )
        assignment = step(hook, batch, state)
        if not improved(state, steps.objective(batch, assignment.costs), batch_size, n):
            converged = True
            break
    final = steps.assign(hook, data, state.centroids, accumulate=False)
    result = FitResult(
        centroids=state.centroids,
        labels=final.labels,
        costs=final.costs,
        objective=steps.objective(data, final.costs),
        n_iter=state.steps,
        converged=converged,
        run=run_index,
    )
    hook.kmeansfw_fit_end(result=result)
    return result
