"""One restart of a torch fit: seeding, then Lloyd iterations sequenced as
:func:`kmeansfw.engine.loop.run` does (observers and convergence criteria on the host), and
what observers see (:class:`TorchState`)."""

from __future__ import annotations

from typing import Any, cast

import attrs
import numpy as np
import torch
from torch import Tensor

from kmeansfw.backends.torch.data import _blocks, _host, _objective
from kmeansfw.backends.torch.plan import _Plan
from kmeansfw.backends.torch.seeding import _initialize
from kmeansfw.backends.torch.steps import _assign, _centroids_from, _relocate
from kmeansfw.core import contract
from kmeansfw.core.config import Config
from kmeansfw.core.data import FitData, read_only
from kmeansfw.engine import loop as engine
from kmeansfw.engine import steps as engine_steps


@attrs.define(eq=False)
class TorchState(engine.FitState):
    """What observers and convergence criteria see in a torch fit.

    As :class:`kmeansfw.engine.loop.FitState`, with ``centroids`` and
    ``previous_centroids`` host NumPy copies (``centroids_tensor`` and
    ``previous_centroids_tensor`` on the device) and ``labels``, ``previous_labels`` and
    ``costs`` tensors on the device; ``data.X`` and ``data.sample_weight`` are the
    tensors.  ``n_changed``, ``labels_unchanged`` and ``objective`` are computed on the
    device.
    """

    centroids_tensor: Any = None
    previous_centroids_tensor: Any = None

    def _count_changed(self) -> int:
        labels: Any = self.labels
        return int((labels != self.previous_labels).sum())

    def _labels_equal(self) -> bool:
        labels: Any = self.labels
        return bool(labels.equal(self.previous_labels))  # on the device, one answer back

    @property
    def objective(self) -> float:
        """Weighted sum of the costs of this iteration's assignment (float64)."""
        return self._cached("objective", lambda: _objective(self.data, self.costs))


@attrs.frozen(eq=False)
class _Tensors:
    """The best run's results on the device."""

    centroids: Tensor
    labels: Tensor


def _run(
    plan: _Plan,
    hooks: Any,
    data: FitData,
    cfg: Config,
    rng: np.random.Generator,
    run_index: int,
    keep: dict,
) -> engine.FitResult:
    """One restart: seeding, then Lloyd iterations as :func:`kmeansfw.engine.loop.run`
    sequences them (assign and accumulate, update, empty clusters, observers, criteria,
    a final assignment unless the criteria proved the labels current)."""
    k = cfg.n_clusters
    state = TorchState(data=data, n_clusters=k, tol=cfg.tol, rng=rng, run=run_index)
    C = _initialize(plan, hooks, data, k, rng)
    state.centroids, state.centroids_tensor = read_only(_host(C)), C
    hooks.kmeansfw_fit_start(state=state.seal())
    reason = "max_iter"
    for iteration in range(1, cfg.max_iter + 1):
        C = state.centroids_tensor
        labels, costs, sums, weights = _assign(plan, data, C, accumulate=True)
        assert sums is not None and weights is not None
        new = _centroids_from(plan, sums, weights, C)
        host_weights = _host(weights)
        updated = new
        if not host_weights.all():
            if plan.relocate:
                new = _relocate(plan, data, labels, costs, C, new, weights)
            else:  # a host-side strategy: centroids and weights only
                host_new = read_only(_host(new))  # as the NumPy engine hands them
                answer = contract.call(
                    hooks,
                    "kmeansfw_empty_clusters",
                    old_centroids=state.centroids,
                    new_centroids=host_new,
                    cluster_weights=host_weights,
                    rng=rng,
                )
                answer = engine_steps.checked_empty_answer(hooks, answer, host_new)
                new = torch.as_tensor(np.array(answer), device=C.device).to(C.dtype)
        state.previous_labels, state.labels, state.costs = state.labels, labels, costs  # type: ignore[assignment]
        state.previous_centroids = state.centroids
        state.previous_centroids_tensor = C
        state.centroids, state.centroids_tensor = read_only(_host(new)), new
        state.cluster_weights = host_weights
        state.iteration = iteration
        state.strict = False  # a criterion sets it when the labels match the new centroids
        hooks.kmeansfw_iteration_end(state=state.seal())
        if engine_steps.stop_after(hooks, state, engine_steps.moved_by_empty(updated, new)):
            reason = "converged"
            break
    labels, costs = cast(Tensor, state.labels), cast(Tensor, state.costs)
    if not state.strict:  # one final assignment so that the labels match the centroids
        labels, costs, _, _ = _assign(plan, data, state.centroids_tensor, accumulate=False)
    result = engine.FitResult(
        centroids=np.array(state.centroids),
        labels=_host(labels),
        costs=_host(costs),
        objective=_objective(data, costs),
        n_iter=state.iteration,
        converged=reason == "converged",
        run=run_index,
        stop_reason=reason,
    )
    best = keep.get("objective")
    if best is None or result.objective < best:  # the first of lowest objective, as best_fit
        keep["objective"] = result.objective
        keep["tensors"] = _Tensors(state.centroids_tensor, labels)
    hooks.kmeansfw_fit_end(result=engine.viewed_result(result))  # read-only arrays
    return result


def _mean_variance(data: FitData) -> float:
    """``tol``'s scale: the mean over features of the (unweighted) variance, float64."""
    X = data.X
    n = X.shape[0]
    total = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
    for rows in _blocks(data):
        total += X[rows].sum(dim=0, dtype=torch.float64)
    mean = total / n
    squares = torch.zeros_like(total)
    for rows in _blocks(data):
        centered = X[rows].to(torch.float64) - mean
        squares += (centered * centered).sum(dim=0)
    return float((squares / n).mean())
