"""``KMeans`` methods for a torch tensor: ``fit`` (:func:`fit_estimator`),
:func:`predict`, :func:`transform` and :func:`score`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from kmeansfw.backends.torch.data import (
    _as_tensor,
    _blocks,
    _check_finite,
    _data,
    _host,
    _objective,
    _weights,
)
from kmeansfw.backends.torch.executor import _budget, _matmul_precision, _options
from kmeansfw.backends.torch.fitting import _distance, fit_config
from kmeansfw.backends.torch.host import attach
from kmeansfw.backends.torch.plan import _geometry_of, _Plan
from kmeansfw.backends.torch.steps import _assign
from kmeansfw.core.config import budget_bytes, make_rng
from kmeansfw.core.data import FitData, fitted_centers
from kmeansfw.strategies.euclidean import (
    _MEAN,
    PRECISION_STEP_EVERY,
    model_can_mislabel,
    origin_sample_rows,
    warn_if_imprecise,
)


def fit_estimator(estimator: Any, X: Any, sample_weight: Any = None) -> Any:
    """``KMeans.fit`` for a tensor: fits on its device and sets the fitted attributes as
    ``KMeans.fit`` does (NumPy arrays), plus ``cluster_centers_tensor_`` and
    ``labels_tensor_`` on the device; returns the estimator."""
    cfg, strategies = estimator._built_config()
    X = _as_tensor(X)
    outcome, tensors = fit_config(X, cfg, sample_weight=sample_weight, strategies=strategies)
    estimator.n_features_in_ = X.shape[1]
    estimator.__dict__.pop("feature_names_in_", None)
    estimator.cluster_centers_tensor_ = tensors.centroids
    estimator.labels_tensor_ = tensors.labels
    weights = sample_weight
    if isinstance(weights, torch.Tensor):
        weights = _host(weights)
    # partial_fit (NumPy input) continues from this fit, as after an in-memory fit
    estimator._adopt(outcome, weights, make_rng(estimator.random_state))
    _warn_if_imprecise(X, tensors.labels, estimator.cluster_centers_, estimator.fitted_state_)
    return estimator


def _warn_if_imprecise(
    X: Tensor, labels: Tensor, centroids: Any, fitted: Any, every: int = 1, judged: bool = False
) -> None:
    """:func:`kmeansfw.strategies.euclidean.warn_if_imprecise` for a float32 tensor: its
    drawn rows and their labels brought to the host, where that function checks them
    (those rows are all of a sample that size: it draws the same ones again)."""
    if X.dtype != torch.float32 or fitted.get(_MEAN) is None:
        return
    picked = torch.as_tensor(origin_sample_rows(X.shape[0], X.shape[1]), device=X.device)
    sample, found = _host(X[picked]), _host(labels[picked])
    warn_if_imprecise(sample, found, np.asarray(centroids), fitted, every, judged)


def _model(
    estimator: Any, X: Any, sample_weight: Any = None, *, assigns: bool = True
) -> tuple[_Plan, FitData, Tensor]:
    """A fitted estimator's geometry, the prepared data and its centroids on X's device
    (with ``assigns``, ready for :func:`_assign`)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    X = _as_tensor(X)
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    options = _options(estimator.executor)
    label, distance = _distance(estimator._strategies)
    geometry = _geometry_of(label, distance, options.precision)
    centers = fitted_centers(estimator)
    k = centers.shape[0]
    budget = _budget(options, budget_bytes(estimator.memory_budget_mb), X.device)
    data = _data(X, _weights(sample_weight, X), budget, k, estimator.fitted_state_)
    _check_finite(X, _blocks(data))
    geometry.prepare(data)
    if assigns:
        attach(data, options, geometry, False, estimator._strategies, k)
    C = torch.as_tensor(centers, device=X.device).to(X.dtype)
    plan = _Plan(geometry, None, False, None, False)
    return plan, data, C


def predict(estimator: Any, X: Any) -> Any:
    """``KMeans.predict`` for a tensor: the labels, an int64 tensor on X's device."""
    plan, data, C = _model(estimator, X)
    with _matmul_precision(_options(estimator.executor).precision), torch.no_grad():
        labels = _assign(plan, data, C, accumulate=False, check_costs=False)[0]
    fitted = estimator.fitted_state_
    if data.X.dtype == torch.float32 and model_can_mislabel(estimator):
        centroids = estimator.cluster_centers_
        _warn_if_imprecise(data.X, labels, centroids, fitted, PRECISION_STEP_EVERY, True)
    return labels


def transform(estimator: Any, X: Any) -> Any:
    """``KMeans.transform`` for a tensor: the (n, k) distances, a tensor on X's device
    (filled chunk by chunk: the one (n, k) matrix is the answer asked for)."""
    plan, data, C = _model(estimator, X, assigns=False)
    out = torch.empty((data.n_samples, C.shape[0]), dtype=data.X.dtype, device=data.X.device)
    with _matmul_precision(_options(estimator.executor).precision), torch.no_grad():
        pts = plan.geometry.points(C, data)
        for rows in _blocks(data):
            out[rows] = plan.geometry.distance(data, rows, pts)
    return out


def score(estimator: Any, X: Any, sample_weight: Any = None) -> float:
    """``KMeans.score`` for a tensor: minus the objective under the fitted centroids."""
    plan, data, C = _model(estimator, X, sample_weight)
    with _matmul_precision(_options(estimator.executor).precision), torch.no_grad():
        costs = _assign(plan, data, C, accumulate=False)[1]
        return -_objective(data, costs)
