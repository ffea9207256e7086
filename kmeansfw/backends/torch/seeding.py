"""Seeding on the device: greedy k-means++, k-means||, random, explicit centroids and
seedings declaring ``accepts_torch``, drawing from the fit's numpy Generator in the NumPy
strategies' order."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from kmeansfw.backends.torch.data import _blocks, _columns, _host, _objective, _sw, _with_rows
from kmeansfw.backends.torch.plan import _Plan
from kmeansfw.backends.torch.steps import _add_rows, _assign, _centroids_from, _min_cost
from kmeansfw.core import contract
from kmeansfw.core.adapters import ArrayInit
from kmeansfw.core.data import FitData
from kmeansfw.strategies.init import (
    KEEP_COSTS_BYTES,
    AutoInit,
    KMeansParallel,
    KMeansPlusPlus,
    RandomInit,
    weighted_draw,
)

#: Values per block of the cumulative weights that k-means++ draws from on a GPU.
DRAW_BLOCK = 4096


def _draw(weights: Tensor, targets: Tensor) -> Tensor:
    """For each target, the first index whose cumulative weight reaches it (at most the
    last index): ``searchsorted(cumsum(weights), targets)``, the same on every run.

    On the CPU that is what runs.  On CUDA ``torch.cumsum`` of floats may round
    differently from run to run (torch lists it among its nondeterministic operations), so
    the weights are summed in blocks of ``DRAW_BLOCK`` on the device (a fixed reduction),
    the blocks' totals are accumulated on the host, and only the block each target falls
    in comes over to be accumulated there (two small copies to the host).
    """
    n = weights.shape[0]
    if weights.device.type == "cpu":
        return torch.searchsorted(torch.cumsum(weights, dim=0), targets).clamp_(max=n - 1)
    return _blocked_draw(weights, targets)


def _blocked_draw(weights: Tensor, targets: Tensor) -> Tensor:
    """``_draw`` from block totals on the device and running sums on the host."""
    n = weights.shape[0]
    blocks = -(-n // DRAW_BLOCK)
    padded = torch.zeros(blocks * DRAW_BLOCK, dtype=weights.dtype, device=weights.device)
    padded[:n] = weights
    padded = padded.view(blocks, DRAW_BLOCK)
    ends = np.cumsum(_host(padded.sum(dim=1)))
    wanted = _host(targets)
    # a target past the blocks' total (rounding: the total was summed in another order)
    # falls in the first block that reaches it, never in all-zero blocks after it
    which = np.minimum(np.searchsorted(ends, wanted), np.searchsorted(ends, ends[-1]))
    starts = np.concatenate([[0.0], ends])[which]
    rows = _host(padded[torch.as_tensor(which, device=weights.device)])
    within = ((np.cumsum(rows, axis=1) + starts[:, None]) < wanted[:, None]).sum(axis=1)
    # a target within rounding of its block's end (the totals were summed in another
    # order) takes the block's last row of positive weight, not the next block's first
    last = DRAW_BLOCK - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)
    picked = np.minimum(which * DRAW_BLOCK + np.minimum(within, last), n - 1)
    return torch.as_tensor(picked, device=weights.device)


def _plusplus(
    plan: _Plan, data: FitData, k: int, rng: np.random.Generator, trials: int | None
) -> Tensor:
    """Greedy k-means++ (the NumPy strategy's steps and draws), passes on the device."""
    X, sw = data.X, _sw(data)
    n = X.shape[0]
    t = trials or 2 + int(np.log(k))
    sw64 = sw.to(torch.float64)
    first = weighted_draw(rng, _host(sw).astype(np.float64))
    draws = torch.as_tensor(rng.uniform(size=(k - 1, t)), device=X.device)
    chosen = [first]
    closest = _min_cost(plan, data, X[first : first + 1], None)[0]
    potential = float(torch.dot(sw64, closest.to(torch.float64)))
    keep = n * t * X.element_size() <= KEEP_COSTS_BYTES
    for c in range(1, k):
        if potential <= 0:
            candidates = torch.tensor(
                [min(int(float(draws[c - 1, 0]) * n), n - 1)], device=X.device
            )
        else:
            candidates = _draw(sw64 * closest.to(torch.float64), draws[c - 1] * potential)
        pts = plan.geometry.points(X[candidates], data)
        pots = torch.zeros(candidates.shape[0], dtype=torch.float64, device=X.device)
        lowered = []
        for rows in _blocks(_columns(data, t)):
            cost = torch.minimum(plan.geometry.cost(data, rows, pts), closest[rows, None])
            pots += (sw64[rows, None] * cost.to(torch.float64)).sum(dim=0)
            if keep:
                lowered.append(cost)
        best = int(torch.argmin(pots))
        if keep:
            closest = torch.cat([part[:, best] for part in lowered])
        else:
            point = X[candidates[best : best + 1]]
            closest = _min_cost(plan, data, point, closest)[0]
        potential = float(pots[best])
        chosen.append(int(candidates[best]))
    return X[torch.tensor(chosen, device=X.device)].clone()


def _parallel(
    plan: _Plan, data: FitData, k: int, rng: np.random.Generator, strategy: KMeansParallel
) -> Tensor:
    """k-means|| (the NumPy strategy's rounds and draws), passes on the device."""
    X, sw = data.X, _sw(data)
    n = X.shape[0]
    sw64 = sw.to(torch.float64)
    first = weighted_draw(rng, _host(sw).astype(np.float64))
    chosen = [torch.tensor([first], device=X.device)]
    candidates = X[first : first + 1]
    closest = _min_cost(plan, data, candidates, None)[0]
    nearest = torch.zeros(n, dtype=torch.int64, device=X.device)
    for _ in range(strategy.rounds):
        potential = float(torch.dot(sw64, closest.to(torch.float64)))
        if potential <= 0:
            break
        p = (strategy.oversampling * k * sw64 * closest.to(torch.float64) / potential).clamp(
            max=1.0
        )
        uniforms = torch.as_tensor(rng.random(n), device=X.device)
        picked = torch.nonzero(uniforms < p)[:, 0]
        if picked.numel() == 0:
            continue
        offset = candidates.shape[0]
        low, arg = _min_cost(plan, data, X[picked], None)
        better = low < closest
        closest = torch.where(better, low, closest)
        nearest = torch.where(better, arg + offset, nearest)
        candidates = torch.cat([candidates, X[picked]])
        chosen.append(picked)
    if candidates.shape[0] <= k:  # too few candidates: top up at random
        taken = _host(torch.cat(chosen))
        extra = rng.choice(
            np.setdiff1d(np.arange(n), taken), size=k - candidates.shape[0], replace=False
        )
        return torch.cat([candidates, X[torch.as_tensor(extra, device=X.device)]]).clone()
    weights = torch.zeros(candidates.shape[0], dtype=torch.float64, device=X.device)
    _add_rows(weights, nearest, sw64)
    keep = weights > 0
    small = _with_rows(data, candidates[keep], weights[keep].to(X.dtype), k)
    plan.geometry.prepare(small)
    best, best_objective = None, float("inf")
    for _ in range(strategy.recluster_n_init):  # restarts of the recluster, as in NumPy
        centers = _plusplus(plan, small, k, rng, None)
        costs = None  # the costs to the final centers, when the loop computed them
        for _ in range(strategy.recluster_iter):
            _, step_costs, sums, cluster_weights = _assign(plan, small, centers, accumulate=True)
            assert sums is not None and cluster_weights is not None
            new = _centroids_from(plan, sums, cluster_weights, centers)
            if torch.equal(new, centers):
                costs = step_costs
                break
            centers = new
        if strategy.recluster_n_init == 1:
            return centers
        if costs is None:
            _, costs, _, _ = _assign(plan, small, centers, accumulate=False)
        objective = _objective(small, costs)
        if best is None or objective < best_objective:
            best, best_objective = centers, objective
    assert best is not None
    return best


def _initialize(plan: _Plan, hooks: Any, data: FitData, k: int, rng: np.random.Generator) -> Tensor:
    """The initial centroids of a run, on the device, checked."""
    X = data.X
    init = plan.init
    if isinstance(init, AutoInit):
        init = init.choice(X.shape[0], k)
    if isinstance(init, KMeansPlusPlus):
        C = _plusplus(plan, data, k, rng, init.n_local_trials)
    elif isinstance(init, KMeansParallel):
        C = _parallel(plan, data, k, rng, init)
    elif isinstance(init, RandomInit):
        p = _host(data.sample_weight).astype(np.float64)
        positive = int(np.count_nonzero(p))
        if positive < k:
            raise ValueError(
                f"only {positive} samples have a positive weight, fewer than n_clusters={k}"
            )
        idx = rng.choice(X.shape[0], size=k, replace=False, p=p / p.sum())
        C = X[torch.as_tensor(idx, device=X.device)].clone()
    elif isinstance(init, ArrayInit):
        array = init.centroids
        if array.shape != (k, X.shape[1]):
            raise contract.fail(
                hooks,
                "kmeansfw_init_centroids",
                f"holds an init array of shape {array.shape}, expected (n_clusters, "
                f"n_features) = ({k}, {X.shape[1]})",
            )
        C = torch.as_tensor(np.array(array), device=X.device).to(X.dtype)
    else:  # a seeding declaring accepts_torch
        answer = contract.call(
            hooks,
            "kmeansfw_init_centroids",
            X=X,
            sample_weight=data.sample_weight,
            n_clusters=k,
            rng=rng,
            data=data,
            hook=hooks,
        )
        C = torch.as_tensor(answer).to(device=X.device, dtype=X.dtype)
    if tuple(C.shape) != (k, X.shape[1]) or not bool(torch.isfinite(C).all()):
        raise contract.fail(
            hooks,
            "kmeansfw_init_centroids",
            f"returned centroids of shape {tuple(C.shape)} (expected {(k, X.shape[1])}, finite)",
        )
    return C
