"""The passes of one Lloyd iteration on the device: assignment with the update's float64
sums, the centroids from the sums, ``relocate-farthest`` for empty clusters, and the
lowest cost to a point set (for seeding)."""

from __future__ import annotations

import torch
from torch import Tensor

from kmeansfw.backends.torch.data import _UNIT_WEIGHTS, _blocks, _columns, _sw
from kmeansfw.backends.torch.host import assign as host_assign
from kmeansfw.backends.torch.plan import _Plan
from kmeansfw.core.data import FitData


def _assign(
    plan: _Plan, data: FitData, C: Tensor, accumulate: bool
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Labels and exact costs of every sample and, with ``accumulate``, the update's
    float64 per-cluster sums (k, d) and weights (k,)."""
    done = host_assign(data, C, accumulate)  # a CPU tensor's compiled path, if attached
    if done is not None:
        return done
    X = data.X
    n, k = X.shape[0], C.shape[0]
    pts = plan.geometry.points(C, data)
    labels = torch.empty(n, dtype=torch.int64, device=X.device)
    costs = torch.empty(n, dtype=X.dtype, device=X.device)
    sums = weights = None
    if accumulate:
        sums = torch.zeros((k, X.shape[1]), dtype=torch.float64, device=X.device)
        weights = torch.zeros(k, dtype=torch.float64, device=X.device)
    for rows in _blocks(data):
        block_labels, block_costs = plan.geometry.nearest(data, rows, pts)
        labels[rows], costs[rows] = block_labels, block_costs
        if sums is not None and weights is not None:
            values, w = _contributions(plan, data, rows)
            sums.index_add_(0, block_labels, values)
            weights.index_add_(0, block_labels, w)
    return labels, costs, sums, weights


def _sums(plan: _Plan, data: FitData, labels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The update's float64 per-cluster sums and weights of a given partition."""
    X = data.X
    sums = torch.zeros((k, X.shape[1]), dtype=torch.float64, device=X.device)
    weights = torch.zeros(k, dtype=torch.float64, device=X.device)
    for rows in _blocks(data):
        values, w = _contributions(plan, data, rows)
        sums.index_add_(0, labels[rows], values)
        weights.index_add_(0, labels[rows], w)
    return sums, weights


def _contributions(plan: _Plan, data: FitData, rows: slice) -> tuple[Tensor, Tensor]:
    """Each row's float64 addition to its cluster's sums, and its weight (mean: ``w x``;
    spherical: ``w x / |x|``, zero rows adding nothing)."""
    X, w = data.X[rows], _sw(data)[rows]
    w64 = w.to(torch.float64)
    if not plan.spherical:
        if data.cache.get(_UNIT_WEIGHTS, False):
            return X.to(torch.float64), w64
        return X.to(torch.float64) * w64[:, None], w64
    norms = (X * X).sum(dim=1).sqrt()
    scaled = w / torch.where(norms > 0, norms, torch.full_like(norms, float("inf")))
    return X.to(torch.float64) * scaled.to(torch.float64)[:, None], w64


def _centroids_from(plan: _Plan, sums: Tensor, weights: Tensor, C: Tensor) -> Tensor:
    """The update's centroids from the sums (as ``mean`` / ``spherical`` compute them)."""
    filled = weights > 0
    if bool(filled.all()):
        new = (sums / weights[:, None]).to(C.dtype)
    else:
        new = C.clone()
        new[filled] = (sums[filled] / weights[filled, None]).to(C.dtype)
    if plan.spherical:
        norms = (new * new).sum(dim=1).sqrt()
        usable = filled & (norms > 0)
        new[usable] = new[usable] / norms[usable, None]
        new[~usable] = C[~usable]
    return new


def _relocate(
    plan: _Plan,
    data: FitData,
    labels: Tensor,
    costs: Tensor,
    C: Tensor,
    new: Tensor,
    weights: Tensor,
) -> Tensor:
    """``relocate-farthest``: each empty cluster takes one of the samples of highest cost
    (farthest first), and the clusters concerned take the update of the moved partition,
    as the NumPy strategy asks the update again."""
    empty = torch.nonzero(weights == 0)[:, 0]
    out = new.clone()
    out[empty] = C[empty]
    n_far = min(int(empty.numel()), costs.shape[0])
    far = torch.topk(costs, n_far).indices
    far = far[costs[far] > 0]
    if far.numel() == 0:
        return out
    # the update of the changed partition, summed afresh (one pass, no distance product)
    targets = empty[: far.numel()]
    donors = labels[far]
    moved = labels.clone()
    moved[far] = targets
    moved_sums, moved_weights = _sums(plan, data, moved, C.shape[0])
    relocated = _centroids_from(plan, moved_sums, moved_weights, out)
    changed = torch.unique(torch.cat([donors, targets]))
    out[changed] = relocated[changed]
    return out


def _min_cost(
    plan: _Plan, data: FitData, P: Tensor, closest: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Every sample's lowest cost to the points ``P`` and its index, lowered by
    ``closest`` when given."""
    X = data.X
    pts = plan.geometry.points(P, data)
    data = _columns(data, P.shape[0])
    low = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
    arg = torch.empty(X.shape[0], dtype=torch.int64, device=X.device)
    for rows in _blocks(data):
        cost = plan.geometry.cost(data, rows, pts)
        value, best = cost.min(dim=1)
        low[rows], arg[rows] = value, best
    if closest is not None:
        low = torch.minimum(low, closest)
    return low, arg
