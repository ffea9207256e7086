"""The functional entry point: :func:`fit` runs the engine for a configuration."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from kmeansfw.core.config import Config, make_rng
from kmeansfw.core.data import FitData, Fitted
from kmeansfw.core.distance import describe
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins
from kmeansfw.engine.executors import blas_hold
from kmeansfw.strategies.observers import History
from kmeansfw.workflow import checkpoint


@attrs.frozen(eq=False)
class Fit:
    """The best of a fit's runs, the history (when asked for) and the strategies used."""

    result: engine.FitResult
    config: Config
    strategies: list[tuple[str, str, Any]]
    history: History | None = None
    #: What the strategies learned from the training data (``kmeansfw_learn``).
    fitted: Fitted = attrs.field(factory=Fitted)

    @property
    def centroids(self) -> np.ndarray:
        """Final centroids of the best run, (k, d)."""
        return self.result.centroids

    @property
    def labels(self) -> np.ndarray:
        """Labels of every sample under the final centroids, (n,)."""
        return self.result.labels

    @property
    def objective(self) -> float:
        """The best run's objective (inertia with the Euclidean defaults)."""
        return self.result.objective

    @property
    def n_iter(self) -> int:
        """Iterations of the best run."""
        return self.result.n_iter


def check_n_clusters(n_samples: int, n_clusters: int) -> None:
    """Raise when there are fewer samples than clusters."""
    if n_samples < n_clusters:
        raise ValueError(f"n_samples={n_samples} should be >= n_clusters={n_clusters}.")


def check_sparse_support(strategies: list[tuple[str, str, Any]], data: FitData) -> None:
    """Refuse sparse data unless every strategy declares ``accepts_sparse = True``."""
    if not data.sparse:
        return
    refusing = [
        f"{slot} strategy {label}"
        for slot, label, s in strategies
        if not describe(s).accepts_sparse
    ]
    if refusing:
        raise ValueError(
            f"sparse input is not supported by the {', '.join(refusing)}; sparse CSR data "
            "works with the euclidean, sqeuclidean and cosine distances and the mean and "
            "spherical updates (or pass X.toarray())"
        )


def _best_fit(
    cfg: Config,
    runs: Iterable[engine.FitResult],
    strategies: list[tuple[str, str, Any]],
    history: History | None,
    fitted: Fitted,
    best: engine.FitResult | None = None,
) -> Fit:
    """The run of lowest objective (the first on ties, ``best`` counting as the first) as
    a :class:`Fit`, with a warning when it found fewer distinct clusters than asked."""
    for result in runs:
        if best is None or result.objective < best.objective:
            best = result
    if best is None:  # pragma: no cover - n_init >= 1 always gives a run
        raise ValueError("no run to choose from")
    _warn_if_fewer_clusters(best.labels, cfg.n_clusters)
    return Fit(result=best, config=cfg, strategies=strategies, history=history, fitted=fitted)


def _warn_if_fewer_clusters(labels: np.ndarray, n_clusters: int) -> None:
    distinct = np.count_nonzero(np.bincount(labels, minlength=n_clusters))
    if distinct < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({distinct}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X.",
            ConvergenceWarning,
            stacklevel=4,
        )


def fit(
    X: Any,
    config: Config | dict | str | None = None,
    *,
    sample_weight: Any = None,
    validate: bool = True,
    **params: Any,
) -> Fit:
    """Cluster ``X`` with the strategies and settings of ``config`` (plus overrides).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Data; float32 is clustered in float32, anything else in float64.
    config : Config, dict, TOML path or text, optional
        The run configuration; ``params`` override its keys.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights.
    validate : bool
        Validate ``X``; pass False only for an array already checked by
        :func:`kmeansfw.core.data.validate_X`.

    Returns
    -------
    Fit
        The best run of the ``n_init`` restarts (lowest objective).
    """
    cfg = Config.load(config) if config is not None else Config()
    if params:
        cfg = Config.from_dict({**cfg.to_dict(), **params})
    return fit_config(X, cfg, sample_weight=sample_weight, validate=validate)


def fit_config(
    X: Any,
    cfg: Config,
    *,
    sample_weight: Any = None,
    validate: bool = True,
    strategies: list[tuple[str, str, Any]] | None = None,
) -> Fit:
    """:func:`fit` for a built :class:`Config`, and optionally its already built strategies
    (``cfg.build_strategies()``, which the estimator keeps between fits)."""
    data = FitData.build(
        X,
        sample_weight,
        n_clusters=cfg.n_clusters,
        memory_budget=cfg.memory_budget,
        n_threads=cfg.n_threads,
        validate=validate,
        executor=cfg.executor,
    )
    check_n_clusters(data.n_samples, cfg.n_clusters)
    if strategies is None:
        strategies = cfg.build_strategies()
    with blas_hold(data):  # once for the whole fit, not per map over the blocks
        return fit_data(cfg, data, strategies)


def walk_for(cfg: Config) -> engine.FullBatch:
    """The walk a config asks for: Lloyd's full batches, or mini-batches."""
    if cfg.batch_size is None:
        return engine.FullBatch()
    return engine.MiniBatch(
        batch_size=cfg.batch_size, reassignment_ratio=cfg.reassignment_ratio
    )


def fit_data(cfg: Config, data: FitData, strategies: list[tuple[str, str, Any]]) -> Fit:
    """:func:`fit` on validated, planned data with strategies built from ``cfg``."""
    check_sparse_support(strategies, data)
    if cfg.batch_size is not None and cfg.checkpoint is not None:
        raise ValueError("checkpoint is not supported with batch_size (mini-batch fits)")
    observers = cfg.build_observers()
    history = History() if cfg.history else None
    if history is not None:
        observers.append(history)
    rng = make_rng(cfg.random_state)
    resume = checkpoint.attach(cfg, data, observers, rng)
    hooks = plugins.build(strategies, observers)
    if resume is not None and resume.fitted is not None:
        data.fitted = resume.fitted  # what the interrupted fit learned, saved with its state
    else:
        data.fitted = engine.learn(hooks, data)
    engine.prepare(hooks, data)
    walk = walk_for(cfg)
    first = resume.next_run if resume is not None else 0
    continuing = resume is not None and resume.iteration is not None
    runs = (
        engine.run(
            hooks,
            data,
            cfg.n_clusters,
            rng=rng,
            max_iter=cfg.max_iter,
            tol=cfg.tol,
            run_index=run_index,
            start=resume if continuing and run_index == first else None,
            walk=walk,
        )
        for run_index in range(first, cfg.resolved_n_init())
    )
    best = resume.best if resume is not None else None
    return _best_fit(cfg, runs, strategies, history, data.fitted, best)
