"""The estimator's methods for a dask array: ``KMeans.fit`` (:func:`fit_estimator`),
``predict``, ``transform`` and ``score``, each block on the cluster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from kmeansfw.backends.dask.arrays import _as_array, _ready_block, _weights_array, to_memory
from kmeansfw.backends.dask.cluster import active_client
from kmeansfw.backends.dask.fitting import fit_config
from kmeansfw.core.config import budget_bytes, make_rng
from kmeansfw.core.data import FitData, fitted_centers
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins, steps


def fit_estimator(estimator: Any, X: Any, sample_weight: Any = None) -> Any:
    """``KMeans.fit`` for a dask array: fits on the active cluster and sets the fitted
    attributes as ``KMeans.fit`` does (``labels_`` a NumPy array); returns the estimator."""
    if active_client() is None:  # no cluster: the threads backend, in memory
        X, sample_weight = to_memory(X, sample_weight)
        return estimator.fit(X, sample_weight=sample_weight)
    X = _as_array(X)
    cfg, strategies = estimator._built_config()
    outcome = fit_config(X, cfg, sample_weight=sample_weight, strategies=strategies)
    estimator.n_features_in_ = X.shape[1]
    estimator.__dict__.pop("feature_names_in_", None)
    # partial_fit continues from this fit, as after an in-memory fit
    import dask

    weights = np.asarray(sample_weight) if dask.is_dask_collection(sample_weight) else sample_weight
    return estimator._adopt(outcome, weights, make_rng(estimator.random_state))


@attrs.frozen(eq=False)
class _Model:
    """What a predict/transform/score block needs: strategies, fitted state, centroids."""

    strategies: list
    fitted: Mapping[str, Any]
    centroids: np.ndarray
    memory_budget: int

    def data(self, block: np.ndarray, weights: np.ndarray | None = None) -> tuple[FitData, Any]:
        dtype = np.dtype(np.float32 if block.dtype == np.float32 else np.float64)
        block = _ready_block(block, dtype)
        data = FitData.build(
            block,
            weights,
            n_clusters=self.centroids.shape[0],
            memory_budget=self.memory_budget,
            n_threads=1,
            validate=False,
            fitted=self.fitted,
        )
        hooks = plugins.build(self.strategies)
        engine.prepare(hooks, data)
        return data, hooks


def _model_of(estimator: Any, X: Any) -> tuple[_Model, Any]:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    X = _as_array(X)
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    model = _Model(
        list(estimator._strategies),
        dict(estimator.fitted_state_),
        fitted_centers(estimator),
        budget_bytes(estimator.memory_budget_mb),
    )
    return model, X


def _predict_block(block: np.ndarray, model: _Model) -> np.ndarray:
    data, hooks = model.data(block)
    centroids = model.centroids.astype(data.dtype, copy=False)
    found = steps.assign(hooks, data, centroids, accumulate=False, with_costs=False)
    return found.labels.astype(np.int32)


def _transform_block(block: np.ndarray, model: _Model) -> np.ndarray:
    data, hooks = model.data(block)
    return steps.pairwise(hooks, data, model.centroids.astype(data.dtype, copy=False))


def _score_block(block: np.ndarray, weights: np.ndarray, model: _Model) -> np.ndarray:
    data, hooks = model.data(block, weights[:, 0])
    centroids = model.centroids.astype(data.dtype, copy=False)
    costs = steps.assign(hooks, data, centroids, accumulate=False).costs
    return np.array([steps.objective(data, costs)])


def predict(estimator: Any, X: Any) -> Any:
    """``KMeans.predict`` for a dask array: a lazy int32 dask array of labels."""
    model, X = _model_of(estimator, X)
    return X.map_blocks(_predict_block, model, dtype=np.int32, drop_axis=1)


def transform(estimator: Any, X: Any) -> Any:
    """``KMeans.transform`` for a dask array: a lazy dask array of distances."""
    model, X = _model_of(estimator, X)
    dtype = np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)
    k = model.centroids.shape[0]
    return X.map_blocks(_transform_block, model, dtype=dtype, chunks=(X.chunks[0], (k,)))


def score(estimator: Any, X: Any, sample_weight: Any = None) -> float:
    """``KMeans.score`` for a dask array, computed on the cluster (a float)."""
    model, X = _model_of(estimator, X)
    dtype = np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)
    sw = _weights_array(sample_weight, X, dtype)
    parts = X.map_blocks(
        _score_block,
        sw[:, None],
        model,
        dtype=np.float64,
        drop_axis=1,
        chunks=((1,) * len(X.chunks[0]),),
    )
    return -float(parts.sum().compute())
