"""The driver's handles on the cluster: the active client, one fit's persisted chunks
(:class:`_Cluster`: one task per chunk, large arguments broadcast, see
:data:`SCATTER_BYTES`) and the persisted array read in row blocks (:class:`RowStream`)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from kmeansfw.backends.dask.chunks import _rows_at


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
        homes = self._homes()
        futures = []
        for i in range(n):  # one task per chunk, never per sample
            where = {"workers": homes[i], "allow_other_workers": True} if homes[i] else {}
            task_args = [values[i] for values in lists]
            futures.append(self.client.submit(fn, *task_args, key=keys[i], pure=False, **where))
        return self.client.gather(futures)

    def _homes(self) -> list:
        """For each chunk, the workers that hold it now (None when none does, e.g. while
        Dask recomputes a lost one).

        Each task is asked to run where its chunk lives, so the chunk's state (labels,
        bounds, seeding costs) is the one its earlier tasks left there: a task placed on
        another worker would run on a copy and leave the original a step behind (safe,
        the state is tagged with its step, but that chunk then searches in full and counts
        all its rows as changed), and would move the chunk's rows over the network.  The
        request is loose: with its home gone, a task runs wherever Dask can run it."""
        held = self.client.who_has(self.chunks)
        return [list(held.get(chunk.key, ())) or None for chunk in self.chunks]

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


def _futures_in_order(array: Any) -> list:
    """The futures of a persisted dask array's blocks, in row order."""
    from dask.core import flatten
    from distributed import futures_of

    by_key = {f.key: f for f in futures_of(array)}
    return [by_key[key] for key in flatten(array.__dask_keys__())]
