"""The passes of one Lloyd iteration on the device: assignment with the update's float64
sums, the centroids from the sums, ``relocate-farthest`` for empty clusters, and the
lowest cost to a point set (for seeding)."""

from __future__ import annotations

import torch
from torch import Tensor

from kmeansfw.backends.torch.data import (
    _ONE_HOT_COLUMNS,
    _UNIT_WEIGHTS,
    _blocks,
    _columns,
    _np_dtype,
    _sw,
)
from kmeansfw.backends.torch.host import assign as host_assign
from kmeansfw.backends.torch.plan import _Plan
from kmeansfw.core import contract
from kmeansfw.core.data import FitData
from kmeansfw.core.errors import StrategyError


def _assign(
    plan: _Plan, data: FitData, C: Tensor, accumulate: bool, check_costs: bool = True
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Labels and exact costs of every sample and, with ``accumulate``, the update's
    float64 per-cluster sums (k, d) and weights (k,).  With ``check_costs`` costs that
    overflowed (the data is finite) raise a StrategyError; ``predict`` reads only the
    labels and skips the check, as the NumPy backend's does."""
    done = host_assign(data, C, accumulate)  # a CPU tensor's compiled path, if attached
    if done is not None:
        return done
    X = data.X
    n, k = X.shape[0], C.shape[0]
    pts = plan.geometry.points(C, data)
    labels = torch.empty(n, dtype=torch.int64, device=X.device)
    costs = torch.empty(n, dtype=X.dtype, device=X.device)
    totals = _zero_totals(data, k) if accumulate else None
    for rows in _blocks(data):
        block_labels, block_costs = plan.geometry.nearest(data, rows, pts)
        labels[rows], costs[rows] = block_labels, block_costs
        if totals is not None:
            _add_rows(totals, block_labels, _contributions(plan, data, rows))
    if check_costs and not bool(torch.isfinite(costs).all()):  # finite data: an overflow
        raise StrategyError(
            f"distance strategy {plan.geometry.label} gave costs containing NaN or infinity"
            f"{contract.overflow(_np_dtype(X.dtype))}"
        )
    if totals is None:
        return labels, costs, None, None
    return (labels, costs, *_split(totals))


def _sums(plan: _Plan, data: FitData, labels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The update's float64 per-cluster sums and weights of a given partition."""
    totals = _zero_totals(data, k)
    for rows in _blocks(data):
        _add_rows(totals, labels[rows], _contributions(plan, data, rows))
    return _split(totals)


def _zero_totals(data: FitData, k: int) -> Tensor:
    """Zero float64 per-cluster totals: the d sums, then the weight (k, d + 1)."""
    return torch.zeros((k, data.X.shape[1] + 1), dtype=torch.float64, device=data.X.device)


def _split(totals: Tensor) -> tuple[Tensor, Tensor]:
    """The sums (k, d) and weights (k,) of per-cluster totals."""
    return totals[:, :-1].contiguous(), totals[:, -1].contiguous()


#: On CUDA the rows are added to at most this many targets (clusters) at a time, as a
#: float64 product of a one-hot matrix and the rows (see ``_add_rows``).
ONE_HOT_MAX_CLUSTERS = _ONE_HOT_COLUMNS
#: Bytes of one-hot matrix at a time (the rows are added in pieces of this many).
ONE_HOT_BYTES = 1 << 28


def _add_rows(target: Tensor, index: Tensor, values: Tensor) -> None:
    """``target[index[i]] += values[i]`` for every i, with the same bits on every run.

    On the CPU ``index_add_`` adds the rows in order.  On CUDA it adds them with atomic
    operations in whatever order the threads get there: float64 sums then change their
    last bits from run to run, and a seeded fit does not repeat itself (seen on an H200:
    the same seed gave centroids 1e-15 apart, and k-means|| other centroids altogether).
    CUDA adds as matrix products instead, ``one_hot(index).T @ values`` in float64
    (cuBLAS gives the same bits on every run on the same GPU and toolkit): for up to
    :data:`ONE_HOT_MAX_CLUSTERS` targets at once, and for more the rows sorted by target
    (a stable sort) and added group by group of that many targets, so that the work is
    that of 256 targets whatever their number and however the rows spread over them.
    Measured on an H200 (docs/benchmarks.md, "GPU backend"): a million rows of 64
    float64 values to 8 targets in 0.30 ms, to 256 in 1.4 ms, where torch's
    ``index_put_`` with ``accumulate=True`` (deterministic too, but one thread block walks
    each target's rows) took 89 and 3.5 ms; four million rows of 128 values to 1024
    targets in 11.4 ms, against 4.2 ms for ``index_put_`` with even clusters and 2.5 s
    with nine rows in ten in one cluster.
    """
    if target.device.type == "cpu":
        target.index_add_(0, index, values)
    elif target.shape[0] <= ONE_HOT_MAX_CLUSTERS:
        _one_hot_add(target, index, values)
    else:
        _grouped_add(target, index, values)


def _one_hot_add(target: Tensor, index: Tensor, values: Tensor) -> None:
    """``_add_rows`` as products of one-hot pieces, in ``target``'s dtype (any device;
    what runs on CUDA)."""
    k = target.shape[0]
    values = values.to(target.dtype)
    step = max(1, ONE_HOT_BYTES // (target.element_size() * k))
    for start in range(0, index.shape[0], step):
        part = index[start : start + step]
        one_hot = torch.zeros((part.shape[0], k), dtype=target.dtype, device=target.device)
        one_hot.scatter_(1, part[:, None], 1.0)
        target += one_hot.T @ values[start : start + step]


def _grouped_add(target: Tensor, index: Tensor, values: Tensor) -> None:
    """``_add_rows`` for many targets: the rows sorted by target (stable), then one-hot
    products per group of :data:`ONE_HOT_MAX_CLUSTERS` targets (any device)."""
    group = ONE_HOT_MAX_CLUSTERS
    order = torch.argsort(index, stable=True)
    ordered, rows = index[order], values[order]
    starts = torch.arange(0, target.shape[0] + group, group, device=index.device)
    bounds = torch.searchsorted(ordered, starts).tolist()
    for g in range(len(bounds) - 1):
        a, b = bounds[g], bounds[g + 1]
        if a < b:
            first = g * group
            _one_hot_add(target[first : first + group], ordered[a:b] - first, rows[a:b])


def _contributions(plan: _Plan, data: FitData, rows: slice) -> Tensor:
    """Each row's float64 addition to its cluster's totals (rows, d + 1): its addition to
    the sums (mean: ``w x``; spherical: ``w x / |x|``, zero rows adding nothing), then its
    weight, so that one pass of :func:`_add_rows` adds both."""
    X, w = data.X[rows], _sw(data)[rows]
    out = torch.empty((X.shape[0], X.shape[1] + 1), dtype=torch.float64, device=X.device)
    values, weight = out[:, :-1], out[:, -1]
    values.copy_(X)
    weight.copy_(w)
    if not plan.spherical:
        if not data.cache.get(_UNIT_WEIGHTS, False):
            values.mul_(weight[:, None])
        return out
    norms = (X * X).sum(dim=1).sqrt()
    scaled = w / torch.where(norms > 0, norms, torch.full_like(norms, float("inf")))
    values.mul_(scaled.to(torch.float64)[:, None])
    return out


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
