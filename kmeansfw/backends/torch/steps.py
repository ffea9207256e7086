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
            _add_rows(sums, block_labels, values)
            _add_rows(weights, block_labels, w)
    return labels, costs, sums, weights


def _sums(plan: _Plan, data: FitData, labels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The update's float64 per-cluster sums and weights of a given partition."""
    X = data.X
    sums = torch.zeros((k, X.shape[1]), dtype=torch.float64, device=X.device)
    weights = torch.zeros(k, dtype=torch.float64, device=X.device)
    for rows in _blocks(data):
        values, w = _contributions(plan, data, rows)
        _add_rows(sums, labels[rows], values)
        _add_rows(weights, labels[rows], w)
    return sums, weights


#: On CUDA, the sums of at most this many clusters are a float64 product of a one-hot
#: matrix and the rows; of more, the rows are added by sorted index (see ``_add_rows``).
ONE_HOT_MAX_CLUSTERS = 256
#: Bytes of one-hot matrix at a time (the rows are added in pieces of this many).
ONE_HOT_BYTES = 1 << 28


def _add_rows(target: Tensor, index: Tensor, values: Tensor) -> None:
    """``target[index[i]] += values[i]`` for every i, with the same bits on every run.

    On the CPU ``index_add_`` adds the rows in order.  On CUDA it adds them with atomic
    operations in whatever order the threads get there: float64 sums then change their
    last bits from run to run, and a seeded fit does not repeat itself (seen on an H200:
    the same seed gave centroids 1e-15 apart, and k-means|| other centroids altogether).
    CUDA adds in a fixed order instead: for up to :data:`ONE_HOT_MAX_CLUSTERS` target rows
    as a product ``one_hot(index).T @ values`` (cuBLAS gives the same bits on every run),
    for more by sorted index (``index_put_`` with ``accumulate=True``, the path torch takes
    for ``index_add_`` under ``torch.use_deterministic_algorithms``).  Measured on an H200,
    the sums and weights of a million rows of 64 float64 values: at 8 clusters the product
    takes 0.3 ms and the sorted adds 116 ms (one thread block walks each cluster's rows);
    at 256 clusters 0.85 against 2.7 ms (half as many rows); at 1024 clusters and 128
    values 8.0 against 2.2 ms (atomic adds: 0.4 to 2.9 ms at these shapes).
    """
    if target.device.type == "cpu":
        target.index_add_(0, index, values)
    elif target.shape[0] <= ONE_HOT_MAX_CLUSTERS:
        _one_hot_add(target, index, values)
    else:
        _sorted_add(target, index, values)


def _one_hot_add(target: Tensor, index: Tensor, values: Tensor) -> None:
    """``_add_rows`` as products of one-hot pieces (any device; what runs on CUDA for few
    target rows)."""
    k = target.shape[0]
    step = max(1, ONE_HOT_BYTES // (values.element_size() * k))
    for start in range(0, index.shape[0], step):
        part = index[start : start + step]
        one_hot = torch.zeros((part.shape[0], k), dtype=values.dtype, device=values.device)
        one_hot.scatter_(1, part[:, None], 1.0)
        target += one_hot.T @ values[start : start + step]


def _sorted_add(target: Tensor, index: Tensor, values: Tensor) -> None:
    """``_add_rows`` by sorted indices (any device; what runs on CUDA for many target
    rows)."""
    target.index_put_((index,), values, accumulate=True)


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
