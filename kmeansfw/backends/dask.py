"""Fit, predict and transform ``dask.array.Array`` data on a Dask cluster.

With a :class:`distributed.Client` active, :func:`fit` (what ``kmeansfw.fit`` and
``KMeans.fit`` call for a Dask array) runs on the client's cluster, following Spark MLlib's
pattern rather than a new task graph per iteration:

* ``X`` (and ``sample_weight``) are validated and persisted once, one row chunk per
  persisted block.  Each worker builds, next to every chunk it holds, a
  :class:`_Chunk`: a :class:`~kmeansfw.core.data.FitData` of the chunk's rows with the
  fit's fitted state, the fit's hooks rebuilt from the (pickled) strategies, and the
  per-data caches ``kmeansfw_prepare`` fills.  Every chunk is checked (shape, dtype,
  finite values) before any strategy runs.  ``X`` is never gathered into the driver's
  memory; the one pass that reads it on the driver is ``kmeansfw_learn`` of a strategy
  that learns from every row (the ``mahalanobis`` covariance): it streams the chunks
  through the driver one row block at a time (see :class:`RowStream`), so the data
  crosses the network once while the driver's memory stays bounded.
* Every iteration submits one task per chunk (a fixed set, never a growing graph): it
  receives only the centroids (broadcast to the workers when large, see
  :data:`SCATTER_BYTES`), runs the same per-block hooks as the threads backend
  (:func:`kmeansfw.engine.steps.assign`: assignment, the distance, the update's map step)
  and returns small partials: the update's partial, the weighted objective and how many
  labels changed.  The labels stay on the workers; so do the bounds of ``hamerly`` and
  ``yinyang`` (kept in the chunk's cache).
* The driver reduces the partials in chunk order through the update's own
  ``kmeansfw_update``, handles empty clusters, and calls observers and convergence
  criteria on a state that carries the reduced quantities.  Only the final labels (and
  costs) of the best run come back, as NumPy arrays.

Seeding runs distributed too: ``k-means||`` (l = ``oversampling`` x k candidates per
round, ``rounds`` rounds, a random first centre, per-chunk random streams derived from the
fit's seed with :class:`numpy.random.SeedSequence`, duplicate candidates merged, a weighted
recluster by greedy k-means++ and Lloyd with the fit's own strategies), ``k-means++``
(greedy; k passes over the data, two round trips each), ``random`` (weighted sampling
without replacement, by per-chunk keys) and explicit centroids.  ``auto`` picks between
k-means++ and k-means|| by the same rule as in memory.

A worker lost mid-fit costs time, never correctness: Dask recomputes its chunks from the
persisted lineage, the rebuilt :class:`_Chunk` knows it has no labels (its count of
changed labels is then all its rows, so no criterion stops on a stale count) and no
bounds (a full, exact search), and seeding state is rebuilt from the candidates so far.

Checkpoints (``checkpoint=folder``) are written on the driver from reduced quantities
(:class:`ClusterCheckpoint`): mid-run, the centroids and the previous centroids (those the
last labels were assigned to) instead of the labels, so nothing per sample is gathered.
A fit interrupted on the driver and started again resumes: the workers rebuild the
labels of the checkpoint's iteration with one assignment to the previous centroids, and
the fit goes on exactly as the uninterrupted one.  The fingerprint digests ``X`` and the
weights chunk by chunk on the workers and combines the digests in row order (with the
chunk sizes), so the same data chunked otherwise starts afresh.

:func:`kmeansfw.fit` and ``KMeans.fit`` route a Dask array here when a client is active;
without one they compute it into memory and fit it with threads (:func:`fit` here then
raises).  Strategies that need every sample's label or cost on one machine (``median``,
``trimmed-mean``, ``medoid`` updates, seedings other than the above, user empty-cluster
strategies reading labels or costs) are refused by name, as is ``batch_size``.
"""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
import scipy.sparse as sp

from kmeansfw.core import contract
from kmeansfw.core.config import Config, make_rng
from kmeansfw.core.data import (
    DEFAULT_MEMORY_BUDGET,
    FitData,
    Fitted,
    plan_block_rows,
    read_only,
    validate_X,
)
from kmeansfw.core.errors import CheckpointError, StrategyError
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins, steps
from kmeansfw.engine.results import Fit, best_fit, check_n_clusters
from kmeansfw.kernels import count_changed
from kmeansfw.strategies import convergence as _convergence
from kmeansfw.strategies.empty import Keep, Raise, RelocateFarthest, SplitLargest
from kmeansfw.strategies.init import (
    AutoInit,
    KMeansParallel,
    KMeansPlusPlus,
    RandomInit,
    _recluster,
)
from kmeansfw.strategies.observers import History
from kmeansfw.strategies.update import Mean
from kmeansfw.workflow import checkpoint

__all__ = [
    "fit",
    "fit_estimator",
    "predict",
    "score",
    "transform",
    "active_client",
    "to_memory",
]

_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


# --------------------------------------------------------------------------- the client
def active_client() -> Any:
    """The active :class:`distributed.Client`, or None (no client, or distributed missing)."""
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - the dask extra installs distributed
        return None
    try:
        return default_client()
    except ValueError:
        return None


def to_memory(X: Any, sample_weight: Any = None) -> tuple[np.ndarray, Any]:
    """``X`` (and ``sample_weight`` when it is a Dask collection) computed into NumPy
    arrays: what a fit without an active client works on."""
    import dask

    if dask.is_dask_collection(sample_weight):
        sample_weight = np.asarray(sample_weight)
    return np.asarray(X), sample_weight


def _dtype_of(X: Any) -> np.dtype:
    if X.dtype == np.float32:
        return np.dtype(np.float32)
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise ValueError(f"X must be numeric, got a dask array of dtype {X.dtype}")
    return np.dtype(np.float64)


def _as_array(X: Any) -> Any:
    """A 2-D dask array with known row chunks and one column chunk."""
    import dask.array as da

    if not isinstance(X, da.Array):
        raise TypeError(
            f"kmeansfw's Dask backend takes a dask.array.Array, got {type(X).__name__} "
            "(for a dask DataFrame, pass df.to_dask_array(lengths=True))"
        )
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array, got a dask array of shape {X.shape}")
    if any(np.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X has shape {X.shape}: at least one sample and one feature needed")
    rows = tuple(int(c) for c in X.chunks[0] if c)
    if len(X.chunks[1]) > 1 or len(rows) < len(X.chunks[0]):
        # one column chunk; row chunks without rows (X[mask] with a chunk wholly masked
        # out) dropped: each row chunk is a block of the fit, validated as non-empty
        X = X.rechunk((rows, (X.shape[1],)))
    return X


def _ready_block(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """One validated, C-contiguous row chunk (what the threads backend validates)."""
    if sp.issparse(block):
        raise ValueError("sparse chunks are not supported by the Dask backend (densify them)")
    return validate_X(block, dtype=dtype)


def _weights_block(weights: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """One chunk of sample weights, checked: finite and non-negative."""
    weights = np.ascontiguousarray(weights, dtype=dtype)
    if not np.isfinite(weights).all():
        raise ValueError("sample_weight contains NaN or infinity")
    if (weights < 0).any():
        raise ValueError("sample_weight contains negative values")
    return weights


def _weights_array(sample_weight: Any, X: Any, dtype: np.dtype) -> Any:
    """``sample_weight`` as a 1-D dask array chunked like the rows of ``X``."""
    import dask.array as da

    n = X.shape[0]
    if sample_weight is None:
        return da.ones(n, chunks=(X.chunks[0],), dtype=dtype)
    if np.isscalar(sample_weight):
        return da.full(n, sample_weight, chunks=(X.chunks[0],), dtype=dtype)
    if not isinstance(sample_weight, da.Array):
        sample_weight = np.asarray(sample_weight)
        if sample_weight.ndim != 1:
            raise ValueError(
                f"sample_weight must be 1-D, got an array of shape {sample_weight.shape}"
            )
        sample_weight = da.from_array(sample_weight, chunks=(X.chunks[0],))
    if sample_weight.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D, got an array of shape {sample_weight.shape}")
    if any(np.isnan(c) for c in sample_weight.chunks[0]):  # w[mask]: sizes unknown
        sample_weight = sample_weight.compute_chunk_sizes()
    if sample_weight.shape[0] != n:
        raise ValueError(
            f"sample_weight has {sample_weight.shape[0]} entries but X has {n} samples"
        )
    if sample_weight.chunks[0] != X.chunks[0]:
        sample_weight = sample_weight.rechunk((X.chunks[0],))
    return sample_weight.map_blocks(_weights_block, dtype, dtype=dtype)


# --------------------------------------------------------------------------- worker side
@attrs.define(eq=False)
class _Chunk:
    """What a worker keeps beside one row chunk for the whole fit (never sent back).

    ``step`` tags the stored labels and costs with the (run, iteration) that made them;
    a chunk rebuilt after a worker was lost has none, and every task checks the tag
    instead of trusting the state.
    """

    data: FitData
    hooks: Any
    index: int
    offset: int
    n_clusters: int
    labels: np.ndarray | None = None
    costs: np.ndarray | None = None
    step: tuple | None = None
    #: Seeding: the run it belongs to, each row's lowest cost to the candidates so far,
    #: the index of that candidate, and how many candidates were folded in.
    seed_run: int | None = None
    closest: np.ndarray | None = None
    nearest: np.ndarray | None = None
    absorbed: int = 0


def _build_chunk(
    X: np.ndarray,
    sample_weight: np.ndarray,
    index: int,
    offset: int,
    strategies: list,
    fitted: Mapping[str, Any],
    block_rows: int,
    n_clusters: int,
) -> _Chunk:
    """Worker: the :class:`_Chunk` of one persisted row chunk, prepared by the hooks."""
    data = FitData(
        X=X, sample_weight=sample_weight, block_rows=block_rows, n_threads=1, fitted=fitted
    )
    # one task for the whole chunk: one partial per chunk goes back to the driver
    data.tasks = [[rows for task in data.tasks for rows in task]]
    hooks = plugins.build(strategies)
    engine.prepare(hooks, data)
    return _Chunk(data, hooks, index, offset, n_clusters)


def _chunk_weight(chunk: _Chunk) -> float:
    """Worker: the chunk's total sample weight (float64)."""
    return float(chunk.data.sample_weight.sum(dtype=np.float64))


@attrs.frozen
class _Summary:
    """What one chunk returns after an iteration: small, whatever the chunk's size."""

    partial: Any
    objective: float
    changed: int
    known: bool
    spread: np.ndarray | None


def _assign_chunk(
    chunk: _Chunk,
    centroids: np.ndarray,
    step: tuple,
    accumulate: bool,
    spread: bool,
) -> _Summary:
    """Worker: one iteration's assignment (and the update's map step) on a chunk."""
    data = chunk.data
    result = steps.assign(chunk.hooks, data, centroids, accumulate=accumulate)
    run, iteration = step
    known = chunk.step == (run, iteration - 1)
    if known and chunk.labels is not None:
        changed = count_changed(result.labels, chunk.labels)
    else:  # first iteration, or state lost with a worker: count every row as changed
        changed = data.n_samples
    chunk.labels, chunk.costs, chunk.step = result.labels, result.costs, step
    partial = result.partials[0] if result.partials else None
    per_cluster = None
    if spread:  # split-largest's per-cluster cost sums
        per_cluster = np.bincount(result.labels, weights=result.costs, minlength=chunk.n_clusters)
    return _Summary(partial, steps.objective(data, result.costs), changed, known, per_cluster)


def _stored(chunk: _Chunk, centroids: np.ndarray, step: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's labels and costs of ``step``, recomputed from ``centroids`` (the ones
    that step assigned to) when the chunk lost them."""
    if chunk.step != step or chunk.labels is None or chunk.costs is None:
        result = steps.assign(chunk.hooks, chunk.data, centroids, accumulate=False)
        chunk.labels, chunk.costs, chunk.step = result.labels, result.costs, step
    assert chunk.labels is not None and chunk.costs is not None
    return chunk.labels, chunk.costs


def _restore(chunk: _Chunk, centroids: np.ndarray, step: tuple) -> None:
    """Worker: the chunk's labels and costs of ``step`` (a resumed checkpoint's last
    iteration), assigned to ``centroids``, the centroids that iteration assigned to."""
    _stored(chunk, centroids, step)


def _top_costs(
    chunk: _Chunk, centroids: np.ndarray, step: tuple, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worker: the chunk's ``m`` highest costs, their global rows and their labels."""
    labels, costs = _stored(chunk, centroids, step)
    m = min(m, costs.shape[0])
    top = np.argpartition(costs, -m)[-m:]
    return costs[top].astype(np.float64), top + chunk.offset, labels[top]


def _reaccumulate(
    chunk: _Chunk, centroids: np.ndarray, step: tuple, rows: np.ndarray, to: np.ndarray
) -> Any:
    """Worker: the update's partial of the chunk with global ``rows`` moved to clusters
    ``to`` (the relocation of ``relocate-farthest``)."""
    labels, _ = _stored(chunk, centroids, step)
    local = rows - chunk.offset
    mine = (local >= 0) & (local < labels.shape[0])
    moved = labels.copy()
    moved[local[mine]] = to[mine]
    data, partial = chunk.data, None
    for task in data.tasks:
        for block in task:
            partial = contract.call(
                chunk.hooks,
                "kmeansfw_accumulate",
                X=data.X[block],
                labels=moved[block],
                sample_weight=data.sample_weight[block],
                n_clusters=chunk.n_clusters,
                partial=partial,
            )
    return partial


def _labels_and_costs(
    chunk: _Chunk, centroids: np.ndarray, step: tuple
) -> tuple[np.ndarray, np.ndarray, float]:
    """Worker: the chunk's final labels, costs and weighted objective."""
    labels, costs = _stored(chunk, centroids, step)
    return labels, costs, steps.objective(chunk.data, costs)


def _lower(chunk: _Chunk, run: int, candidates: np.ndarray) -> None:
    """Fold the candidates the chunk has not seen into each row's lowest cost and the
    index of the candidate reaching it (earliest on ties).  A chunk rebuilt after a
    worker loss starts again from the first candidate, with the same result."""
    data = chunk.data
    if chunk.seed_run != run or chunk.closest is None or chunk.nearest is None:
        chunk.seed_run, chunk.absorbed = run, 0
        chunk.closest = np.full(data.n_samples, np.inf, dtype=data.dtype)
        chunk.nearest = np.zeros(data.n_samples, dtype=np.intp)
    new = candidates[chunk.absorbed :]
    if new.shape[0] == 0:
        return
    cache = steps.prepare_centroids(chunk.hooks, data, new)
    for task in data.tasks:
        for rows in task:
            cost = steps.block_matrix(chunk.hooks, "kmeansfw_cost", data, rows, new, cache)
            best = cost.argmin(axis=1)
            value = cost[np.arange(cost.shape[0]), best]
            better = value < chunk.closest[rows]
            chunk.closest[rows] = np.where(better, value, chunk.closest[rows])
            chunk.nearest[rows] = np.where(better, best + chunk.absorbed, chunk.nearest[rows])
    chunk.absorbed = candidates.shape[0]


def _seed_potential(chunk: _Chunk, run: int, candidates: np.ndarray) -> float:
    """Worker: fold in new candidates; the chunk's weighted potential (float64)."""
    _lower(chunk, run, candidates)
    assert chunk.closest is not None
    return float(np.dot(chunk.data.sample_weight, chunk.closest.astype(np.float64)))


def _oversample(
    chunk: _Chunk, run: int, candidates: np.ndarray, scale: float, entropy: int, round_: int
) -> np.ndarray:
    """Worker: k-means|| sampling on the chunk: keep each row with probability
    ``min(1, scale w cost)``, from the chunk's own stream of the fit's seed."""
    _lower(chunk, run, candidates)
    assert chunk.closest is not None
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(round_, chunk.index)))
    data = chunk.data
    p = np.minimum(1.0, scale * data.sample_weight * chunk.closest.astype(np.float64))
    picked = np.flatnonzero(rng.random(data.n_samples) < p)
    return np.array(data.X[picked])


def _candidate_weights(chunk: _Chunk, run: int, candidates: np.ndarray) -> np.ndarray:
    """Worker: the weight of the chunk's rows nearest to each candidate."""
    _lower(chunk, run, candidates)
    assert chunk.nearest is not None
    return np.bincount(
        chunk.nearest, weights=chunk.data.sample_weight, minlength=candidates.shape[0]
    )


def _rows_at(
    chunk: _Chunk, targets: np.ndarray, run: int, by_cost: bool, centers: np.ndarray
) -> np.ndarray:
    """Worker: the rows at positions ``targets`` of the chunk's cumulative mass: the
    weights (``by_cost`` False), or weight x lowest cost to ``centers`` (k-means++)."""
    data = chunk.data
    weights = data.sample_weight.astype(np.float64)
    if by_cost:
        _lower(chunk, run, centers)
        assert chunk.closest is not None
        weights = weights * chunk.closest
    if targets.size == 0:
        return np.empty((0, data.n_features), dtype=data.dtype)
    cumulative = np.cumsum(weights)
    idx = np.minimum(np.searchsorted(cumulative, targets, side="right"), data.n_samples - 1)
    positive = np.flatnonzero(weights > 0)
    if positive.size:  # never a row of zero mass (rounding at the chunk's end)
        idx = positive[np.minimum(np.searchsorted(positive, idx), positive.size - 1)]
    return np.array(data.X[idx])


def _trial_potentials(
    chunk: _Chunk, run: int, centers: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """Worker: k-means++'s trials on the chunk: per trial, the chunk's potential were
    that trial added to ``centers``."""
    _lower(chunk, run, centers)
    data = chunk.data
    assert chunk.closest is not None
    cache = steps.prepare_centroids(chunk.hooks, data, points)
    sw = data.sample_weight.astype(np.float64)
    total = np.zeros(points.shape[0])
    for task in data.tasks:
        for rows in task:
            cost = steps.block_matrix(chunk.hooks, "kmeansfw_cost", data, rows, points, cache)
            total += sw[rows] @ np.minimum(cost, chunk.closest[rows, None]).astype(np.float64)
    return total


def _random_keys(chunk: _Chunk, entropy: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Worker: weighted sampling without replacement (Efraimidis-Spirakis keys
    ``log(u) / w``): the chunk's ``k`` largest keys and their rows."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(chunk.index,)))
    data = chunk.data
    weights = data.sample_weight.astype(np.float64)
    u = rng.random(data.n_samples)
    with np.errstate(divide="ignore"):
        keys = np.where(weights > 0, np.log(u) / np.where(weights > 0, weights, 1.0), -np.inf)
    m = min(k, keys.shape[0])
    top = np.argpartition(keys, -m)[-m:]
    return keys[top], np.array(data.X[top])


# --------------------------------------------------------------------------- driver side
@attrs.define(eq=False)
class ReducedState(engine.FitState):
    """The state observers and criteria see in a Dask fit: the objective and the count
    of changed labels are reduced from the chunks (the labels stay on the workers, so
    ``labels``, ``previous_labels`` and ``costs`` are None)."""

    reduced_objective: float = 0.0
    reduced_changed: int = 0
    labels_known: bool = False

    @property
    def labels_unchanged(self) -> bool:
        """Whether no label changed (False when a chunk's previous labels were lost)."""
        return self.labels_known and self.reduced_changed == 0

    @property
    def n_changed(self) -> int:
        """Labels changed in this iteration (a chunk without previous labels counts all)."""
        return self.reduced_changed

    @property
    def objective(self) -> float:
        """The weighted objective, summed over the chunks."""
        return self.reduced_objective


_UPDATES_OK = (Mean,)  # Spherical is a Mean
_EMPTY_OK = (RelocateFarthest, SplitLargest, Keep, Raise)
_PER_SAMPLE = {"labels", "costs", "data"}


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
            if not hooks.implemented("kmeansfw_accumulate") or takes & {"labels", "costs"}:
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


def _seeding_of(strategy: Any, label: str, n: int, k: int) -> Any:
    """The seeding that runs distributed for ``strategy`` (refusing the others)."""
    if isinstance(strategy, AutoInit):
        return strategy.choice(n, k) if n else strategy
    if isinstance(strategy, KMeansParallel | KMeansPlusPlus | RandomInit):
        return strategy
    if getattr(strategy, "name", None) == "array":
        return strategy
    raise StrategyError(
        f"init strategy {label} cannot run on a Dask cluster: it needs the samples on "
        "one machine (use 'k-means||', 'k-means++', 'random', 'auto' or explicit centroids)"
    )


#: Arrays sent to every chunk task at least this large (bytes) are scattered to the
#: workers (``broadcast=True``, once per call, so once per iteration for the centroids)
#: and passed as a future; smaller ones are passed inline.  An inline array is copied
#: into each task's message (chunks x size bytes per iteration), a scattered one once
#: per worker, but scattering adds a round trip to the scheduler and the workers before
#: the tasks are submitted, which small centroids (k x d of a few kilobytes) do not
#: repay.  On a 2-worker LocalCluster with 16 chunks, 32 KiB to 512 KiB of centroids
#: timed the same either way within noise; the threshold keeps the common small case
#: inline and bounds what large k x d costs when chunks far outnumber workers.
SCATTER_BYTES = 64 * 1024


class _Cluster:
    """The driver's handle on one fit's persisted chunks."""

    def __init__(self, client: Any, chunks: list, sizes: list[int], weights: np.ndarray):
        self.client = client
        self.chunks = chunks
        self.sizes = sizes
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.weights = weights
        self.id = uuid.uuid4().hex[:12]
        self._calls = 0

    def map(self, fn: Any, *args: Any, each: list | None = None) -> list:
        """Run ``fn(chunk, [each[i],] *args)`` on every chunk (one task per chunk, the
        same arguments for all but ``each``); gather the results in chunk order.

        An array argument of at least :data:`SCATTER_BYTES` (the centroids, k-means||
        candidates, k-means++ trials) is broadcast to every worker once and passed to
        the tasks as a future; a smaller one travels inline, in each task's message."""
        self._calls += 1
        n = len(self.chunks)
        keys = [f"kmeansfw-{fn.__name__}-{self.id}-{self._calls}-{i}" for i in range(n)]
        lists = [self.chunks] + ([each] if each is not None else [])
        lists += [[self._shared(a)] * n for a in args]
        return self.client.gather(self.client.map(fn, *lists, key=keys))

    def _shared(self, arg: Any) -> Any:
        """``arg`` as the tasks of one :meth:`map` receive it: a large array scattered
        (``broadcast=True``: one copy per worker rather than one per task), else itself.
        Both arrive as the same array, so results do not depend on the threshold."""
        if isinstance(arg, np.ndarray) and arg.nbytes >= SCATTER_BYTES:
            return self.client.scatter(arg, broadcast=True, hash=False)
        return arg

    def draw(
        self, targets: np.ndarray, mass: np.ndarray, run: int, by_cost: bool, centers: np.ndarray
    ) -> np.ndarray:
        """The rows at global positions ``targets`` of the cumulative mass whose
        per-chunk totals are ``mass``, in the order of ``targets`` (see :func:`_rows_at`)."""
        bounds = np.cumsum(mass)
        starts = bounds - mass
        where = np.minimum(np.searchsorted(bounds, targets, side="right"), len(mass) - 1)
        nonzero = np.flatnonzero(mass > 0)
        where = nonzero[np.minimum(np.searchsorted(nonzero, where), nonzero.size - 1)]
        order = np.argsort(where, kind="stable")
        each = [targets[where == c] - starts[c] for c in range(len(self.chunks))]
        parts = self.map(_rows_at, run, by_cost, centers, each=each)
        rows = np.vstack(parts)  # in chunk order, targets in their order within a chunk
        out = np.empty_like(rows)
        out[order] = rows
        return out


def _reduced(partials: list | None) -> steps.Assignment:
    """What the driver's update sees: the chunks' partials, no per-sample labels or costs
    (they stay on the workers)."""
    none: Any = None
    return steps.Assignment(none, none, partials)


def _entropy(rng: np.random.Generator) -> int:
    """An integer drawn from the fit's generator, the root of the per-chunk streams."""
    return int(rng.integers(0, 2**63 - 1))


def _first_centre(cluster: _Cluster, run: int, rng: np.random.Generator) -> np.ndarray:
    """One row drawn with probability proportional to its weight (a random first centre)."""
    total = float(cluster.weights.sum())
    return cluster.draw(np.array([rng.random() * total]), cluster.weights, run, False, _NO_CENTRES)


_NO_CENTRES = np.empty((0, 0))


def _seed_parallel(
    cluster: _Cluster,
    hooks: Any,
    fitted: Mapping[str, Any],
    k: int,
    rng: np.random.Generator,
    run: int,
    seeding: KMeansParallel,
) -> np.ndarray:
    """k-means|| over the chunks (see the module docstring)."""
    candidates = _first_centre(cluster, run, rng)
    entropy = _entropy(rng)
    scale_l = seeding.oversampling * k
    for round_ in range(seeding.rounds):
        potential = float(np.sum(cluster.map(_seed_potential, run, candidates)))
        if potential <= 0:
            break
        picked = cluster.map(_oversample, run, candidates, scale_l / potential, entropy, round_)
        new = [p for p in picked if p.shape[0]]
        if new:
            candidates = np.vstack([candidates, *new])
    weights = np.sum(cluster.map(_candidate_weights, run, candidates), axis=0)
    # duplicate candidates merged (their weight sits on the first copy anyway)
    candidates, inverse = np.unique(candidates, axis=0, return_inverse=True)
    weights = np.bincount(inverse.ravel(), weights=weights, minlength=candidates.shape[0])
    keep = weights > 0
    candidates, weights = candidates[keep], weights[keep]
    if candidates.shape[0] <= k:  # as few distinct points as clusters: take them all
        extra = (
            _seed_random(cluster, k - candidates.shape[0], rng) if candidates.shape[0] < k else None
        )
        return candidates if extra is None else np.vstack([candidates, extra])
    data = FitData.build(
        candidates,
        weights.astype(candidates.dtype),
        n_clusters=k,
        n_threads=1,
        validate=False,
        fitted=fitted,
    )
    return _recluster(hooks, data, candidates, weights, k, rng, seeding.recluster_iter)


def _seed_plusplus(
    cluster: _Cluster, k: int, rng: np.random.Generator, run: int, seeding: KMeansPlusPlus
) -> np.ndarray:
    """Greedy k-means++ over the chunks: k steps, each one round trip to draw the
    trials and one to evaluate them."""
    trials = seeding.n_local_trials or 2 + int(np.log(k))
    centers = _first_centre(cluster, run, rng)
    mass = np.array(cluster.map(_seed_potential, run, centers))
    draws = rng.uniform(size=(k - 1, trials))
    for step in range(k - 1):
        total = float(mass.sum())
        if total <= 0:  # every row sits on a centre: draw by weight
            points = cluster.draw(
                draws[step] * float(cluster.weights.sum()), cluster.weights, run, False, centers
            )
        else:
            points = cluster.draw(draws[step] * total, mass, run, True, centers)
        pots = np.array(cluster.map(_trial_potentials, run, centers, points))  # (chunks, trials)
        best = int(np.argmin(pots.sum(axis=0)))
        centers = np.vstack([centers, points[best : best + 1]])
        mass = pots[:, best]
    return centers


def _seed_random(cluster: _Cluster, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct rows drawn with probability proportional to their weights."""
    positive = float(cluster.weights.sum())
    entropy = _entropy(rng)
    parts = cluster.map(_random_keys, entropy, k)
    keys = np.concatenate([p[0] for p in parts])
    rows = np.vstack([p[1] for p in parts])
    if np.count_nonzero(np.isfinite(keys)) < k or positive <= 0:
        raise ValueError(f"fewer samples have a positive weight than n_clusters={k}")
    return rows[np.argsort(-keys, kind="stable")[:k]]


def _initialize(
    cluster: _Cluster,
    hooks: Any,
    driver: FitData,
    strategies: list,
    k: int,
    rng: np.random.Generator,
    run: int,
) -> np.ndarray:
    """The checked initial centroids of one run."""
    label, strategy = next((lab, s) for slot, lab, s in strategies if slot == "init")
    seeding = _seeding_of(strategy, label, driver.n_samples, k)
    if isinstance(seeding, KMeansParallel):
        centroids = _seed_parallel(cluster, hooks, driver.fitted, k, rng, run, seeding)
    elif isinstance(seeding, KMeansPlusPlus):
        centroids = _seed_plusplus(cluster, k, rng, run, seeding)
    elif isinstance(seeding, RandomInit):
        centroids = _seed_random(cluster, k, rng)
    else:  # explicit centroids: the strategy's own hook, which reads only X's shape
        return steps.initialize(hooks, driver, k, rng)
    return contract.check_float_array(
        hooks,
        "kmeansfw_init_centroids",
        np.ascontiguousarray(centroids, dtype=driver.dtype),
        (k, driver.n_features),
        driver.dtype,
        what="centroids",
    )


def _relocate(
    cluster: _Cluster,
    hooks: Any,
    driver: FitData,
    centroids: np.ndarray,
    new: np.ndarray,
    weights: np.ndarray,
    step: tuple,
    rng: np.random.Generator,
) -> np.ndarray:
    """``relocate-farthest`` with per-chunk top costs: the farthest samples move to the
    empty clusters (farthest first) and the update is asked again for that partition."""
    empty = np.flatnonzero(weights == 0)
    if empty.size == 0:
        return new
    out = new.copy()
    out[empty] = centroids[empty]
    n_far = min(empty.size, driver.n_samples)
    parts = cluster.map(_top_costs, centroids, step, n_far)
    costs = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    labels = np.concatenate([p[2] for p in parts])
    order = np.argsort(-costs, kind="stable")[:n_far]
    order = order[costs[order] > 0]
    if order.size == 0:
        return out
    to = empty[: order.size]
    partials = cluster.map(_reaccumulate, centroids, step, rows[order], to)
    relocated, _ = steps.update(
        hooks,
        driver,
        _reduced(partials),
        out,
        rng,  # type: ignore[arg-type]
    )
    changed = np.unique(np.concatenate([labels[order], to]))
    out[changed] = relocated[changed]
    return out


def _empty_step(
    cluster: _Cluster,
    hooks: Any,
    driver: FitData,
    empty_strategy: Any,
    centroids: np.ndarray,
    new: np.ndarray,
    weights: np.ndarray,
    spread: np.ndarray | None,
    step: tuple,
    rng: np.random.Generator,
) -> np.ndarray:
    """The centroids after the fit's empty-cluster strategy, from reduced quantities."""
    if isinstance(empty_strategy, RelocateFarthest):
        out = _relocate(cluster, hooks, driver, centroids, new, weights, step, rng)
        return contract.check_float_array(
            hooks, "kmeansfw_empty_clusters", out, new.shape, driver.dtype, what="centroids"
        )
    k = centroids.shape[0]
    # split-largest reads only the per-cluster cost sums: labels 0..k-1 with those sums
    assignment = steps.Assignment(np.arange(k), spread, None)  # type: ignore[arg-type]
    return steps.fix_empty_clusters(hooks, driver, assignment, centroids, new, weights, rng)


def _run(
    cluster: _Cluster,
    hooks: Any,
    driver: FitData,
    strategies: list,
    cfg: Config,
    rng: np.random.Generator,
    run_index: int,
    start: _Resume | None = None,
) -> engine.FitResult:
    """One restart on the cluster: seeding, then Lloyd iterations until a criterion
    stops; or, with ``start``, the iterations after a checkpoint's."""
    k = cfg.n_clusters
    state = ReducedState(data=driver, n_clusters=k, tol=cfg.tol, rng=rng, run=run_index)
    if start is None:
        centroids = _initialize(cluster, hooks, driver, strategies, k, rng, run_index)
    else:
        centroids, state.iteration = start.centroids, start.iteration
        state.scratch = dict(start.scratch)
        state.previous_centroids = read_only(start.previous_centroids)
        # the chunks' labels of the checkpoint's iteration, rebuilt from the centroids
        # they were assigned to: the next iteration counts changed labels exactly
        cluster.map(_restore, start.previous_centroids, (run_index, start.iteration))
    state.centroids = read_only(centroids)
    hooks.kmeansfw_fit_start(state=state)
    empty_strategy = next(s for slot, _, s in strategies if slot == "empty")
    spread = isinstance(empty_strategy, SplitLargest)
    accumulate = hooks.implemented("kmeansfw_accumulate")
    converged = False
    step = (run_index, 0)
    for iteration in range(state.iteration + 1, cfg.max_iter + 1):
        centroids = state.centroids
        step = (run_index, iteration)
        summaries = cluster.map(_assign_chunk, np.asarray(centroids), step, accumulate, spread)
        partials = [s.partial for s in summaries] if accumulate else None
        new, weights = steps.update(
            hooks,
            driver,
            _reduced(partials),
            centroids,
            rng,  # type: ignore[arg-type]
        )
        per_cluster = np.sum([s.spread for s in summaries], axis=0) if spread else None
        new = _empty_step(
            cluster,
            hooks,
            driver,
            empty_strategy,
            np.asarray(centroids),
            new,
            weights,
            per_cluster,
            step,
            rng,
        )
        state.previous_centroids, state.centroids = centroids, read_only(new)
        state.cluster_weights = weights
        state.iteration = iteration
        state.strict = False
        state.reduced_objective = float(np.sum([s.objective for s in summaries]))
        state.reduced_changed = int(sum(s.changed for s in summaries))
        state.labels_known = all(s.known for s in summaries)
        hooks.kmeansfw_iteration_end(state=state)
        if any(contract.call(hooks, "kmeansfw_converged", state=state)):
            converged = True
            break
    final_centroids = np.array(state.centroids)
    if state.strict:  # the labels of the last assignment match the final centroids
        used = np.asarray(state.previous_centroids)
    else:  # one final assignment so that the labels match the final centroids
        step = (run_index, state.iteration + 1)
        used = final_centroids
    parts = cluster.map(_labels_and_costs, used, step)
    labels = np.concatenate([p[0] for p in parts])
    costs = np.concatenate([p[1] for p in parts])
    result = engine.FitResult(
        centroids=final_centroids,
        labels=labels,
        costs=costs,
        objective=float(np.sum([p[2] for p in parts])),
        n_iter=state.iteration,
        converged=converged,
        run=run_index,
        stop_reason="converged" if converged else "max_iter",
    )
    hooks.kmeansfw_fit_end(result=result)
    return result


class RowStream:
    """What ``data.X`` is on the driver of a Dask fit: the persisted array, read in row
    blocks.

    ``kmeansfw_learn`` runs once, on the driver, with this as ``data.X``: ``X[rows]``
    fetches that row block from the cluster (one block in memory at a time), ``mean`` and
    ``sum`` over the rows are computed on the cluster, and anything that would bring the
    whole array into the driver's memory raises instead.  A learner written block by
    block (``kmeansfw.engine.executors.map_tasks``) therefore runs unchanged, with the
    driver's memory bounded; but a learner that reads every row block (``mahalanobis``'s
    covariance) moves the whole of ``X`` through the driver once, over the network.
    """

    def __init__(self, array: Any) -> None:
        self.array = array
        self.shape = array.shape
        self.ndim = array.ndim
        self.dtype = array.dtype

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self.array[index].compute())

    def mean(self, axis: Any = None, dtype: Any = None) -> np.ndarray:
        """``X.mean``, computed on the cluster."""
        return np.asarray(self.array.mean(axis=axis, dtype=dtype).compute())

    def sum(self, axis: Any = None, dtype: Any = None) -> np.ndarray:
        """``X.sum``, computed on the cluster."""
        return np.asarray(self.array.sum(axis=axis, dtype=dtype).compute())

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError(
            "a strategy asked for the whole of X as one array on the driver of a Dask fit; "
            "read it in row blocks (X[rows]) instead"
        )


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
    observers = cfg.build_observers()
    history = History() if cfg.history else None
    if history is not None:
        observers.append(history)
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


def _futures_in_order(array: Any) -> list:
    """The futures of a persisted dask array's blocks, in row order."""
    from dask.core import flatten
    from distributed import futures_of

    by_key = {f.key: f for f in futures_of(array)}
    return [by_key[key] for key in flatten(array.__dask_keys__())]


def _chunk_layout(X: np.ndarray, sample_weight: np.ndarray) -> tuple[int, int, str, int]:
    """Worker: one persisted chunk's rows, columns and dtype, and its number of weights."""
    return int(X.shape[0]), int(X.shape[1]), X.dtype.str, int(sample_weight.shape[0])


def _check_persisted(client: Any, X: Any, sw: Any) -> None:
    """Validate every persisted chunk of ``X`` and ``sample_weight`` now, before any
    strategy runs (a small task per chunk; only its shape and dtype come back).

    The chunks were validated as they were persisted (:func:`_ready_block`: finite,
    numeric, 2-D, non-empty; :func:`_weights_block`: finite, non-negative), lazily; this
    makes those checks fire here, so bad data is reported as bad data, with the in-memory
    message, rather than as the failure of the first strategy to read it.

    Raises
    ------
    ValueError
        A chunk failed validation (the in-memory message, with the chunk's rows), or a
        chunk's shape or dtype is not what the dask array's metadata says.
    """
    from distributed import wait

    sizes = [int(c) for c in X.chunks[0]]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    tag = uuid.uuid4().hex[:12]
    checks = client.map(
        _chunk_layout,
        _futures_in_order(X),
        _futures_in_order(sw),
        key=[f"kmeansfw-check-{tag}-{i}" for i in range(len(sizes))],
    )
    wait(checks)
    for i, future in enumerate(checks):  # the first bad chunk in row order
        if future.status == "error":
            exc = future.exception()
            if isinstance(exc, ValueError):
                where = f"row chunk {i} of the dask array, rows {bounds[i]} to {bounds[i + 1] - 1}"
                raise ValueError(f"{exc} (in {where})") from None
            future.result()  # anything else (a failing upstream task) as it is
    expected_dtype = X.dtype.str
    for i, (rows, cols, dtype, n_weights) in enumerate(client.gather(checks)):
        if (rows, cols, dtype, n_weights) != (sizes[i], X.shape[1], expected_dtype, sizes[i]):
            raise ValueError(
                f"row chunk {i} of the dask array holds {rows} x {cols} samples of dtype "
                f"{np.dtype(dtype)} (and {n_weights} weights), but the array's metadata says "
                f"{sizes[i]} x {X.shape[1]} of dtype {X.dtype}: the chunks' real shapes must "
                "match the array's (X.compute_chunk_sizes() measures them)"
            )


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
    budget = cfg.memory_budget or DEFAULT_MEMORY_BUDGET
    block_rows = plan_block_rows(n, max(k, X.shape[1]), X.dtype.itemsize, budget)
    driver = FitData(
        X=RowStream(X), sample_weight=RowStream(sw), block_rows=block_rows, n_threads=1
    )
    rng = make_rng(cfg.random_state)
    resume, start = None, None
    if cfg.checkpoint is not None:
        stamp = _fingerprint(client, cfg, X, sw)
        resume, start = _load_checkpoint(cfg, stamp, X, rng)
        keeper = ClusterCheckpoint(cfg.checkpoint, stamp, cfg.checkpoint_every)
        keeper.resume_with(resume)
        hooks = plugins.build(strategies, [*observers, keeper])
        if resume is not None:
            rng.bit_generator.state = resume.rng_state
    if resume is not None and resume.fitted is not None:
        driver.fitted = resume.fitted  # what the interrupted fit learned
    else:
        driver.fitted = _learn(hooks, driver)
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
        key=[f"kmeansfw-chunk-{fit_id}-{i}" for i in range(len(sizes))],
    )
    cluster = _Cluster(client, chunks, sizes, np.zeros(len(sizes)))
    cluster.weights = np.array(cluster.map(_chunk_weight))
    if not cluster.weights.sum() > 0:
        raise ValueError("sample_weight is zero for every sample")
    first = resume.next_run if resume is not None else 0
    try:
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
        best = resume.best if resume is not None else None
        return best_fit(cfg, runs, strategies, history, driver.fitted, best)
    finally:
        client.cancel(chunks)


# --------------------------------------------------------------------------- checkpoints
def _digests(X: np.ndarray, sample_weight: np.ndarray) -> tuple[str, str]:
    """Worker: digests of one persisted chunk's rows and weights (their content)."""
    return checkpoint.data_digest(X), checkpoint.data_digest(sample_weight)


def _fingerprint(client: Any, cfg: Config, X: Any, sw: Any) -> dict[str, str]:
    """:func:`kmeansfw.workflow.checkpoint.fingerprint` of a Dask fit: the settings as in
    memory; ``X`` and ``sample_weight`` by their chunks' digests, computed on the
    workers and combined in row order with the shape, dtype and chunk sizes (X is never
    gathered).  The same data chunked otherwise does not resume the checkpoint: the
    per-chunk sums, and so the last bits of the centroids, depend on the chunking."""
    parts = client.gather(client.map(_digests, _futures_in_order(X), _futures_in_order(sw)))
    stamp = checkpoint.fingerprint(cfg.to_dict(), np.empty((0, X.shape[1]), dtype=X.dtype))
    layout = ["dask chunks", list(X.shape), X.dtype.str, [int(c) for c in X.chunks[0]]]
    for i, name in enumerate(("X", "sample_weight")):
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps([*layout, name]).encode())
        for part in parts:
            h.update(part[i].encode())
        stamp[name] = h.hexdigest()
    return stamp


#: ``state.json``'s mark of a Dask fit's mid-run state (centroids and the centroids the
#: last labels were assigned to, no labels).
_REDUCED = "reduced: centroids and previous_centroids"


@attrs.define(eq=False)
class ClusterCheckpoint(checkpoint.Checkpoint):
    """The checkpoint observer of a Dask fit.

    As :class:`~kmeansfw.workflow.checkpoint.Checkpoint` (same files, fingerprint,
    atomic writes and checks), but a run's state mid-fit holds only reduced quantities:
    the centroids and the previous centroids, to which the last labels were assigned.
    The labels stay on the workers; a resumed fit rebuilds them there with one
    assignment to the previous centroids.  Between runs the state is the in-memory one
    (the best run's labels and costs, which the driver holds anyway).
    """

    def _write(self, run: int, state: Any) -> None:
        if state is None:
            super()._write(run, None)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fitted_meta, fitted_arrays = self._fitted if self._fitted is not None else (None, {})
        arrays: dict[str, Any] = {
            **fitted_arrays,
            "centroids": np.asarray(state.centroids),
            "previous_centroids": np.asarray(state.previous_centroids),
        }
        meta: dict[str, Any] = {
            "format": checkpoint.FORMAT,
            "fingerprint": dict(self.fingerprint),
            "next_run": run,
            "rng_state": checkpoint._encode_state(self._rng.bit_generator.state),
            "iteration": state.iteration,
            "scratch": {
                k: v
                for k, v in state.scratch.items()
                if isinstance(k, str) and checkpoint._json_plain_finite(v)
            },
            "fitted": fitted_meta,
            "state": _REDUCED,
        }
        if self._best is not None:
            arrays["best_centroids"] = self._best.centroids
            arrays["best_labels"] = self._best.labels
            arrays["best_costs"] = self._best.costs
            meta["best"] = {
                "objective": self._best.objective,
                "n_iter": self._best.n_iter,
                "converged": self._best.converged,
                "run": self._best.run,
                "stop_reason": self._best.stop_reason,
            }
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        payload = buffer.getvalue()
        meta["arrays"] = checkpoint._hexdigest(payload)
        meta["checksum"] = checkpoint._checksum(meta)
        files = [
            (self.folder / "state.npz", payload),
            (self.folder / "state.json", json.dumps(meta).encode()),
        ]
        checkpoint._replace_all(files)


@attrs.frozen(eq=False)
class _Resume:
    """A Dask checkpoint's mid-run state (see :class:`ClusterCheckpoint`)."""

    iteration: int
    centroids: np.ndarray
    previous_centroids: np.ndarray
    scratch: dict


def _load_checkpoint(
    cfg: Config, stamp: dict[str, str], X: Any, rng: np.random.Generator
) -> tuple[checkpoint.Resume | None, _Resume | None]:
    """The state of ``cfg.checkpoint`` for this fit, validated as
    :func:`kmeansfw.workflow.checkpoint.load` validates (None: start afresh), and the
    run's mid-run state when it holds one (written by :class:`ClusterCheckpoint`).

    Raises
    ------
    CheckpointError
        The checkpoint is damaged; the message names the file and the fault.
    """
    n, d = X.shape
    folder = pathlib.Path(cfg.checkpoint)
    expected = checkpoint._Expected(
        dict(stamp),
        n,
        d,
        cfg.n_clusters,
        checkpoint._n_runs(cfg),
        cfg.max_iter,
        X.dtype,
        rng.bit_generator,
        cfg.random_state is not None,
    )
    meta_path = folder / "state.json"
    if not meta_path.exists() and not meta_path.is_symlink():
        return None, None
    meta = checkpoint._read_meta(meta_path)
    if meta.get("iteration") is None:  # between runs: the in-memory layout and load
        resume = checkpoint.load(
            folder,
            stamp,
            n_samples=n,
            n_features=d,
            n_clusters=cfg.n_clusters,
            n_init=expected.n_init,
            max_iter=cfg.max_iter,
            dtype=X.dtype,
            bit_generator=rng.bit_generator,
            reproducible=expected.reproducible,
        )
        return resume, None
    if not checkpoint._check_identity(meta, meta_path, expected):
        return None, None  # another fit's (warned): start afresh
    rng_state = checkpoint._check_meta(meta, meta_path, expected)
    if meta.get("state") != _REDUCED:
        raise checkpoint._fail(meta_path, "does not hold a Dask fit's reduced state")
    arrays_path = folder / "state.npz"
    # the best run and fitted arrays, checked by the module (the mid-run arrays below)
    between = {**meta, "iteration": None}
    arrays = checkpoint._read_arrays(arrays_path, meta["arrays"], between, expected)
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            missing = [a for a in ("centroids", "previous_centroids") if a not in npz.files]
            if missing:
                raise checkpoint._fail(arrays_path, f"has no array {', '.join(map(repr, missing))}")
            now, previous = npz["centroids"], npz["previous_centroids"]
    except CheckpointError:
        raise
    except Exception as exc:  # any failure of parsing: zipfile, EOF, header, CRC, ...
        raise checkpoint._fail(
            arrays_path, f"cannot be read as .npz ({type(exc).__name__}: {exc})"
        ) from None
    shape = (cfg.n_clusters, d)
    start = _Resume(
        meta["iteration"],
        checkpoint._checked(now, "centroids", shape, X.dtype, arrays_path),
        checkpoint._checked(previous, "previous_centroids", shape, X.dtype, arrays_path),
        dict(meta["scratch"]),
    )
    best = None
    if "best" in meta:
        b = meta["best"]
        best = engine.FitResult(
            centroids=arrays["best_centroids"],
            labels=arrays["best_labels"],
            costs=arrays["best_costs"],
            objective=float(b["objective"]),
            n_iter=b["n_iter"],
            converged=b["converged"],
            run=b["run"],
            stop_reason=b["stop_reason"],
        )
    fitted = None
    if meta["fitted"] is not None:
        stored = {key: arrays[name] for key, name in meta["fitted"]["arrays"].items()}
        fitted = Fitted({**meta["fitted"]["values"], **stored})
    resume = checkpoint.Resume(
        next_run=meta["next_run"],
        rng_state=rng_state,
        iteration=meta["iteration"],
        centroids=start.centroids,
        scratch=start.scratch,
        best=best,
        fitted=fitted,
    )
    return resume, start


# --------------------------------------------------------------------------- estimator
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
    estimator._set_fitted(outcome.strategies, outcome.fitted, outcome.centroids)
    estimator.labels_ = outcome.labels.astype(np.int32)
    estimator.inertia_ = outcome.objective
    estimator.n_iter_ = outcome.n_iter
    # partial_fit continues from this fit, as after an in-memory fit
    import dask

    weights = np.asarray(sample_weight) if dask.is_dask_collection(sample_weight) else sample_weight
    estimator._online = (estimator._online_after_fit(weights), make_rng(estimator.random_state))
    for name in ("n_steps_", "_streamed"):
        estimator.__dict__.pop(name, None)
    if outcome.history is not None:
        estimator.history_ = outcome.history.for_run(outcome.result.run)
    return estimator


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
        estimator.cluster_centers_,
        int(estimator.memory_budget_mb * 2**20),
    )
    return model, X


def _predict_block(block: np.ndarray, model: _Model) -> np.ndarray:
    data, hooks = model.data(block)
    centroids = model.centroids.astype(data.dtype, copy=False)
    return steps.assign(hooks, data, centroids, accumulate=False).labels.astype(np.int32)


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
