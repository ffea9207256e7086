"""The fit entry points for a torch tensor: :func:`fit` (as :func:`kmeansfw.fit`) and
:func:`fit_config` (a built config; also the best run's tensors)."""

from __future__ import annotations

from typing import Any

import torch

from kmeansfw.backends.torch.data import (
    _UNIT_WEIGHTS,
    _as_tensor,
    _blocks,
    _check_finite,
    _data,
    _weights,
)
from kmeansfw.backends.torch.executor import _budget, _matmul_precision, _options
from kmeansfw.backends.torch.host import attach
from kmeansfw.backends.torch.loop import _mean_variance, _run, _Tensors
from kmeansfw.backends.torch.plan import _plan, _refuse_config
from kmeansfw.core.config import Config, make_rng
from kmeansfw.core.data import Fitted
from kmeansfw.engine import plugins
from kmeansfw.engine.results import Fit, best_fit, check_n_clusters, observers_and_history
from kmeansfw.strategies.convergence import _MEAN_VARIANCE


def fit(
    X: Any,
    config: Config | dict | str | None = None,
    *,
    sample_weight: Any = None,
    **params: Any,
) -> Fit:
    """:func:`kmeansfw.fit` for a torch tensor: the fit runs on the tensor's device.

    Parameters and result as :func:`kmeansfw.fit` (``executor`` may be a
    :class:`TorchExecutor`); the result's arrays are NumPy.
    """
    cfg = Config.load(config) if config is not None else Config()
    if params:
        cfg = Config.from_dict({**cfg.to_dict(), **params})
    return fit_config(X, cfg, sample_weight=sample_weight)[0]


def _distance(strategies: list[tuple[str, str, Any]]) -> tuple[str, Any]:
    """The label and strategy of a fit's distance."""
    return next((label, s) for slot, label, s in strategies if slot == "distance")


def fit_config(
    X: Any,
    cfg: Config,
    *,
    sample_weight: Any = None,
    strategies: list[tuple[str, str, Any]] | None = None,
) -> tuple[Fit, _Tensors]:
    """:func:`fit` for a built :class:`~kmeansfw.core.config.Config` (and, optionally, its
    built strategies); also returns the best run's centroids and labels on the device."""
    _refuse_config(cfg)
    options = _options(cfg.executor)
    X = _as_tensor(X)
    n, d = X.shape
    check_n_clusters(n, cfg.n_clusters)
    if strategies is None:
        strategies = cfg.build_strategies()
    observers, history = observers_and_history(cfg)
    hooks = plugins.build(strategies, observers)
    plan = _plan(strategies, hooks, options.precision)
    budget = _budget(options, cfg.memory_budget, X.device)
    sw = _weights(sample_weight, X)
    data = _data(X, sw, budget, cfg.n_clusters, {})
    data.cache[_UNIT_WEIGHTS] = sample_weight is None
    _check_finite(X, _blocks(data))
    rng = make_rng(cfg.random_state)
    keep: dict = {}
    with _matmul_precision(options.precision), torch.no_grad():
        data.fitted = Fitted(plan.geometry.learn(data))
        plan.geometry.prepare(data)
        attach(data, options, plan.geometry, plan.spherical, strategies, cfg.n_clusters)
        data.cache[_MEAN_VARIANCE] = _mean_variance(data)
        runs = (
            _run(plan, hooks, data, cfg, rng, run_index, keep)
            for run_index in range(cfg.resolved_n_init())
        )
        outcome = best_fit(cfg, runs, strategies, history, data.fitted)
    return outcome, keep["tensors"]
