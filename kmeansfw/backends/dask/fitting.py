"""The Dask backend's fit: :func:`fit` and :func:`fit_config` (refusing by name what
cannot run distributed), which persist and check the data, build the chunks on the
workers, learn, resume a checkpoint and run the restarts."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from kmeansfw.backends.dask.arrays import (
    _as_array,
    _check_persisted,
    _dtype_of,
    _ready_block,
    _weights_array,
)
from kmeansfw.backends.dask.checkpoints import (
    ClusterCheckpoint,
    _fingerprint,
    _load_checkpoint,
)
from kmeansfw.backends.dask.chunks import _build_chunk, _chunk_weight, _costs_to
from kmeansfw.backends.dask.cluster import (
    RowStream,
    _Cluster,
    _futures_in_order,
    active_client,
)
from kmeansfw.backends.dask.lloyd import _run
from kmeansfw.backends.dask.seeding import _seeding_of
from kmeansfw.core.config import Config, make_rng
from kmeansfw.core.data import FitData, Fitted, plan_block_rows
from kmeansfw.core.errors import StrategyError
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins
from kmeansfw.engine.results import Fit, best_fit, check_n_clusters, observers_and_history
from kmeansfw.strategies import convergence as _convergence
from kmeansfw.strategies.empty import Keep, Raise, RelocateFarthest, SplitLargest
from kmeansfw.strategies.euclidean import warn_if_imprecise
from kmeansfw.strategies.observers import History
from kmeansfw.strategies.update import Mean
from kmeansfw.workflow import checkpoint

_UPDATES_OK = (Mean,)  # Spherical is a Mean
_EMPTY_OK = (RelocateFarthest, SplitLargest, Keep, Raise)
_PER_SAMPLE = {"labels", "costs", "assignment", "data"}


def _refuse(strategies: list[tuple[str, str, Any]], hooks: Any, cfg: Config) -> None:
    """Refuse, by name, what cannot run with the samples spread over workers."""
    if cfg.batch_size is not None:
        raise ValueError(
            "batch_size (mini-batch k-means) is not supported on a Dask cluster: fit "
            "with batch_size=None, or compute a sample into memory"
        )
    for slot, label, strategy in strategies:
        if slot == "update" and not isinstance(strategy, _UPDATES_OK):
            takes = set(hooks.argnames("kmeansfw_update") or ())
            if not hooks.implemented("kmeansfw_accumulate") or takes & (_PER_SAMPLE - {"data"}):
                raise StrategyError(
                    f"update strategy {label} cannot run on a Dask cluster: it needs "
                    "every member of a cluster on one machine (only updates whose "
                    "kmeansfw_update reduces kmeansfw_accumulate's partials, such as "
                    "'mean' and 'spherical', run distributed)"
                )
        if slot == "empty" and not isinstance(strategy, _EMPTY_OK):
            if set(hooks.argnames("kmeansfw_empty_clusters") or ()) & _PER_SAMPLE:
                raise StrategyError(
                    f"empty strategy {label} cannot run on a Dask cluster: it reads "
                    "per-sample labels, costs or data, which stay on the workers (use "
                    "'relocate-farthest', 'split-largest', 'keep' or 'raise')"
                )
        if slot == "init":
            _seeding_of(strategy, label, 0, cfg.n_clusters)


def _learn(hooks: Any, driver: FitData) -> Fitted:
    """``kmeansfw_learn`` on the driver, ``data.X`` a :class:`RowStream` of the persisted
    array and ``data.sample_weight`` the persisted weights."""
    return engine.learn(hooks, driver)


def _mean_variance(X: Any) -> float:
    """The ``tol`` criterion's scale, mean over features of the variance, on the cluster."""
    n = X.shape[0]
    mean = (X.sum(axis=0, dtype=np.float64) / n).compute()
    squares = ((X - mean) ** 2).sum(axis=0, dtype=np.float64).compute()
    return float(np.mean(squares / n))


def fit(
    X: Any,
    config: Config | dict | str | None = None,
    *,
    sample_weight: Any = None,
    validate: bool = True,
    **params: Any,
) -> Fit:
    """:func:`kmeansfw.fit` on the active client's cluster (what it routes Dask input to).

    Parameters and result as :func:`kmeansfw.fit`; ``sample_weight`` may be a dask array
    (rechunked like the rows of ``X`` when it is not), a NumPy array or None.

    Raises
    ------
    RuntimeError
        No :class:`distributed.Client` is active (:func:`kmeansfw.fit` then computes the
        array into memory and fits it with threads).
    """
    cfg = Config.load(config) if config is not None else Config()
    if params:
        cfg = Config.from_dict({**cfg.to_dict(), **params})
    return fit_config(X, cfg, sample_weight=sample_weight)


def fit_config(
    X: Any,
    cfg: Config,
    *,
    sample_weight: Any = None,
    strategies: list[tuple[str, str, Any]] | None = None,
) -> Fit:
    """:func:`fit` for a built :class:`~kmeansfw.core.config.Config` (and, optionally, its
    built strategies)."""
    client = active_client()
    if client is None:
        raise RuntimeError(
            "kmeansfw.backends.dask.fit needs an active distributed.Client (create one, or "
            "call kmeansfw.fit, which computes a dask array into memory without a client)"
        )
    X = _as_array(X)
    dtype = _dtype_of(X)
    check_n_clusters(X.shape[0], cfg.n_clusters)
    if strategies is None:
        strategies = cfg.build_strategies()
    observers, history = observers_and_history(cfg)
    hooks = plugins.build(strategies, observers)
    _refuse(strategies, hooks, cfg)
    X = X.map_blocks(_ready_block, dtype, dtype=dtype)
    sw = _weights_array(sample_weight, X, dtype)
    X, sw = client.persist([X, sw])
    try:
        _check_persisted(client, X, sw)
        return _fit_persisted(client, X, sw, cfg, strategies, hooks, observers, history)
    finally:
        del X, sw


def _fit_persisted(
    client: Any,
    X: Any,
    sw: Any,
    cfg: Config,
    strategies: list,
    hooks: Any,
    observers: list,
    history: History | None,
) -> Fit:
    n, k = X.shape[0], cfg.n_clusters
    budget = cfg.memory_budget
    block_rows = plan_block_rows(n, max(k, X.shape[1]), X.dtype.itemsize, budget)
    driver = FitData(
        X=RowStream(X),
        sample_weight=RowStream(sw),
        block_rows=block_rows,
        n_threads=1,
        memory_budget=budget,
    )
    rng = make_rng(cfg.random_state)
    resume, start = None, None
    if cfg.checkpoint is not None:
        checkpoint.ready_folder(cfg.checkpoint)  # before the data's pass for the stamp
        stamp = _fingerprint(client, cfg, X, sw)
        resume, start = _load_checkpoint(cfg, stamp, X, rng)
        keeper = ClusterCheckpoint(cfg.checkpoint, stamp, cfg.checkpoint_every)
        keeper.resume_with(resume)
        hooks = plugins.build(strategies, [*observers, keeper])
        if resume is not None:
            rng.bit_generator.state = resume.rng_state
    driver.fitted = _learn(hooks, driver)
    if resume is not None and resume.fitted is not None:
        # what it saved must be what this fit learns; the saved values are then used
        checkpoint.check_restored(resume, driver.fitted, cfg.checkpoint)
        driver.fitted = resume.fitted
    if any(slot == "convergence" for slot, _, _ in strategies):
        driver.cache[_convergence._MEAN_VARIANCE] = _mean_variance(X)
    sizes = [int(c) for c in X.chunks[0]]
    offsets = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    fit_id = uuid.uuid4().hex[:12]
    chunks = client.map(
        _build_chunk,
        _futures_in_order(X),
        _futures_in_order(sw),
        range(len(sizes)),
        [int(o) for o in offsets],
        strategies=list(strategies),
        fitted=driver.fitted,
        block_rows=block_rows,
        n_clusters=k,
        memory_budget=budget,
        key=[f"kmeansfw-chunk-{fit_id}-{i}" for i in range(len(sizes))],
    )
    cluster = _Cluster(client, chunks, sizes, np.zeros(len(sizes)))
    first = resume.next_run if resume is not None else 0
    best = resume.best if resume is not None else None
    try:  # the chunks persisted on the workers are released however the fit ends
        cluster.weights = np.array(cluster.map(_chunk_weight))
        if not cluster.weights.sum() > 0:
            raise ValueError("sample_weight is zero for every sample")
        if best is not None and first >= cfg.resolved_n_init():
            # a finished fit, returned as saved: its costs checked against its centroids
            # on the workers (no run follows, so this pass changes nothing a run sees)
            saved = np.split(best.costs, np.cumsum(sizes)[:-1])
            parts = cluster.map(_costs_to, best.centroids, each=saved)
            found = np.concatenate([costs for costs, _ in parts])
            objective = float(sum(part for _, part in parts))
            checkpoint.check_best(best, found, objective, cfg.checkpoint)
        runs = (
            _run(
                cluster,
                hooks,
                driver,
                strategies,
                cfg,
                rng,
                run_index,
                start if run_index == first else None,
            )
            for run_index in range(first, cfg.resolved_n_init())
        )
        outcome = best_fit(cfg, runs, strategies, history, driver.fitted, best)
        # float32 labels the rounding picked: the drawn rows read from the persisted
        # array (never the source's graph again), checked on the driver
        warn_if_imprecise(  # the caller of KMeans.fit, or of kmeansfw.fit
            driver.X, outcome.labels, outcome.centroids, outcome.fitted
        )
        return outcome
    finally:
        client.cancel(chunks)
