"""The functional entry point: :func:`fit` runs the engine for a configuration."""

from __future__ import annotations

from typing import Any

from kmeansfw.backends import is_dask_collection, is_torch_tensor
from kmeansfw.core.config import Config, make_rng
from kmeansfw.core.data import FitData
from kmeansfw.core.distance import describe
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins, steps
from kmeansfw.engine.executors import single_threaded_blas
from kmeansfw.engine.results import Fit, best_fit, check_n_clusters, observers_and_history
from kmeansfw.strategies.euclidean import warn_if_imprecise
from kmeansfw.workflow import checkpoint

__all__ = [
    "check_n_clusters",
    "check_sparse_support",
    "fit",
    "fit_config",
    "fit_data",
    "observers_and_history",
]


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
            "spherical updates; an init function opts in with "
            "kmeansfw.core.adapters.sparse_init (or pass X.toarray())"
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
    **params
        Config keys (``n_clusters=5``, ``init="random"``, ...) that override
        ``config``'s.

    Returns
    -------
    Fit
        The best run of the ``n_init`` restarts (lowest objective).

    Notes
    -----
    A ``dask.array.Array`` is fitted on the cluster of the active
    :class:`distributed.Client` (see :mod:`kmeansfw.backends.dask`); without a client it
    is computed into memory and fitted here.  Dask is imported only for Dask input.  A
    ``torch.Tensor`` is fitted on its device (:func:`kmeansfw.backends.torch.fit`; the
    result's arrays are NumPy); torch is imported only for tensor input.
    """
    cfg = Config.load(config) if config is not None else Config()
    if params:
        cfg = Config.from_dict({**cfg.to_dict(), **params})
    if is_dask_collection(X):
        from kmeansfw.backends import dask as backend  # imports dask: only for dask input

        if backend.active_client() is not None:
            return backend.fit_config(X, cfg, sample_weight=sample_weight)
        X, sample_weight = backend.to_memory(X, sample_weight)
    if is_torch_tensor(X):  # tensors stay on their device
        from kmeansfw.backends import torch as tensors  # imports torch: only for tensors

        return tensors.fit_config(X, cfg, sample_weight=sample_weight)[0]
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
    if strategies is None:
        strategies = cfg.build_strategies()
    data = FitData.build(
        X,
        sample_weight,
        n_clusters=cfg.n_clusters,
        memory_budget=cfg.memory_budget,
        n_threads=cfg.n_threads,
        validate=validate,
        executor=cfg.executor,
        splits_work=splits_work(strategies),
    )
    check_n_clusters(data.n_samples, cfg.n_clusters)
    with single_threaded_blas():  # once for the whole fit, not per map over the blocks
        return fit_data(cfg, data, strategies)


def splits_work(strategies: list[tuple[str, str, Any]]) -> bool:
    """Whether a fit's per-block work splits between numba's threads on data that runs
    inline: its distance, assignment and update all declare ``splits_work``
    (:func:`kmeansfw.core.distance.describe`; the built-in ``euclidean`` and
    ``sqeuclidean``, ``nearest``, ``auto``, ``mean`` and ``spherical`` do).

    Parameters
    ----------
    strategies : list of (slot, label, strategy)
        The fit's strategies (``Config.build_strategies()``).

    Returns
    -------
    bool
    """
    working = [s for slot, _, s in strategies if slot in ("distance", "assignment", "update")]
    return bool(working) and all(describe(s).splits_work for s in working)


def walk_for(cfg: Config) -> engine.FullBatch:
    """The walk a config asks for: Lloyd's full batches, or mini-batches."""
    if cfg.batch_size is None:
        return engine.FullBatch()
    return engine.MiniBatch(batch_size=cfg.batch_size, reassignment_ratio=cfg.reassignment_ratio)


def fit_data(cfg: Config, data: FitData, strategies: list[tuple[str, str, Any]]) -> Fit:
    """:func:`fit` on validated, planned data with strategies built from ``cfg``."""
    check_sparse_support(strategies, data)
    if cfg.batch_size is not None and cfg.checkpoint is not None:
        raise ValueError("checkpoint is not supported with batch_size (mini-batch fits)")
    observers, history = observers_and_history(cfg)
    rng = make_rng(cfg.random_state)
    resume = checkpoint.attach(cfg, data, observers, rng)
    hooks = plugins.build(strategies, observers)
    data.fitted = engine.learn(hooks, data)
    if resume is not None and resume.fitted is not None:
        # what it saved must be what this fit learns; the saved values are then used
        checkpoint.check_restored(resume, data.fitted, cfg.checkpoint)
        data.fitted = resume.fitted
    engine.prepare(hooks, data)
    first = resume.next_run if resume is not None else 0
    best = resume.best if resume is not None else None
    if best is not None and first >= cfg.resolved_n_init():
        # a finished fit, returned as saved: its costs checked against its centroids
        # (no run follows, so this pass changes nothing a run would see)
        found = steps.assign(hooks, data, best.centroids, accumulate=False)
        saved = steps.objective(data, best.costs)
        checkpoint.check_best(best, found.costs, saved, cfg.checkpoint)
    walk = walk_for(cfg)
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
    outcome = best_fit(cfg, runs, strategies, history, data.fitted, best)
    # float32 rows far from their centre, in clusters close together: labelled by the
    # rounding (checked on drawn rows, warned of)
    warn_if_imprecise(data.X, outcome.labels, outcome.centroids, outcome.fitted)
    return outcome
