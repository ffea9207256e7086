"""Map over row tasks in worker threads: the parallel half of map-then-reduce.

Each task (a fixed, thread-count independent range of rows, see
:class:`kmeansfw.core.data.FitData`) is processed by one worker; results come back in row
order, so whatever reduces them does so in a fixed order and results are bit-identical
whatever the number of threads.  BLAS is held to one thread while workers run, so the
matrix product inside a block is also computed the same way every time.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, runtime_checkable

from threadpoolctl import ThreadpoolController

from kmeansfw.core.data import runs_inline
from kmeansfw.core.paging import releasing

T = TypeVar("T")

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}
_controller: ThreadpoolController | None = None


def _pool(n_threads: int) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(n_threads)
        if pool is None:
            pool = ThreadPoolExecutor(n_threads, thread_name_prefix="kmeansfw")
            _pools[n_threads] = pool
        return pool


class _SingleThreadedBlas:
    """Hold BLAS to one thread while any caller (in any thread) is inside.

    The limit is process-wide (BLAS libraries have one thread setting), so it is reference
    counted: the first caller sets it, the last one out restores the previous setting.
    Nesting is cheap, which lets a whole fit hold the limit once instead of every map.
    The first hold sets each BLAS library's threads directly (threadpoolctl's library
    controllers, found once per process): threadpoolctl's own ``limit`` took 5-6 us a
    hold here, this 2-2.5 us.
    """

    def __init__(self) -> None:
        self._holders = 0
        self._saved: list[tuple[Any, int]] = []

    def __enter__(self) -> None:
        with _lock:
            if self._holders == 0:
                self._saved = _blas_at_one_thread()
            self._holders += 1

    def __exit__(self, *exc_info: object) -> None:
        with _lock:
            self._holders -= 1
            if self._holders == 0:
                saved, self._saved = self._saved, []
                for library, threads in saved:
                    _set_blas_threads(library, threads)


def _blas_at_one_thread() -> list[tuple[Any, int]]:
    """Set every BLAS library loaded when kmeansfw first held BLAS to one thread; return
    ``(library controller, previous threads)`` for those it changed."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    saved = []
    for library in _controller.lib_controllers:
        if library.user_api != "blas":
            continue
        threads = library.get_num_threads()
        if threads is not None and threads != 1:
            _set_blas_threads(library, 1)
            saved.append((library, threads))
    return saved


def _set_blas_threads(library: Any, threads: int) -> None:
    """Set a BLAS library's threads from whichever thread holds or releases BLAS.

    threadpoolctl (from 3.8) lets only one "controlling" thread set OpenBLAS's shared
    pool and silently ignores the others; the hold is released by whichever thread
    leaves last, so the controlling thread is cleared around each call (else a release
    from another thread would leave BLAS at one thread for good, and block a user's own
    limits in other threads)."""
    clear = getattr(type(library), "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)
    library.set_num_threads(threads)
    if clear is not None:
        clear(force=True)


_single_threaded_blas = _SingleThreadedBlas()


def _after_fork_in_child() -> None:
    """In a forked child: no pools (their threads did not survive the fork), a fresh lock
    (another thread may have held it) and no BLAS holders (a hold the parent was inside
    is never released in the child, which keeps BLAS at the limit it had then)."""
    global _lock, _pools
    _lock = threading.Lock()
    _pools = {}
    _single_threaded_blas._holders = 0
    _single_threaded_blas._saved = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def single_threaded_blas() -> _SingleThreadedBlas:
    """A context manager holding BLAS to one thread (process-wide, reference counted).

    A fit holds it from start to end, on small data too: small data's products run on
    the calling thread or on numba's (:func:`kernel_threads`), and BLAS's idle threads,
    which OpenBLAS starts for any dot product of more than 10000 entries, would spin
    against numba's.  BLAS splits a product between threads by output blocks, never along
    its sums, so the values do not depend on it.
    """
    return _single_threaded_blas


def map_items(n_threads: int, fn: Callable[[Any], T], items: list) -> list[T]:
    """Apply ``fn`` to every item in worker threads (BLAS at one thread); results in order.

    For work split by something other than rows, e.g. one cluster per item.
    """
    with single_threaded_blas():
        if n_threads <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        return _share_out(min(n_threads, len(items)), fn, items)


def _share_out(n_workers: int, fn: Callable[[Any], T], items: list) -> list[T]:
    """``fn`` over ``items`` by ``n_workers`` threads, the calling thread among them, each
    taking the next item not yet taken; results in the order of ``items``.

    One hand-off per helper thread rather than one future per item: at a few hundred
    microseconds of work per item the per-item hand-offs of ``Executor.map`` cost as much
    as the work.  Which thread runs an item never changes its result.  However the caller
    leaves (an error of ``fn`` on any thread, an interrupt), no new item is taken and every
    helper has stopped before it does; the first error of ``fn`` is the one raised.
    """
    results: list[Any] = [None] * len(items)
    lock = threading.Lock()
    taken = itertools.count()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            with lock:
                i = next(taken)
            if i >= len(items):
                return
            try:
                results[i] = fn(items[i])
            except BaseException:
                stop.set()
                raise

    pool = _pool(n_workers - 1)
    helpers = []
    error: BaseException | None = None
    try:
        for _ in range(n_workers - 1):
            helpers.append(pool.submit(work))
        work()
    except BaseException as exc:
        error = exc
    finally:
        if error is not None:
            stop.set()
        for helper in helpers:  # all of them, even when the caller is interrupted
            failure = helper.exception()
            if error is None and failure is not None:
                error = failure
    if error is not None:
        raise error
    return results


@runtime_checkable
class Executor(Protocol):
    """Runs ``fn`` on every chunk and returns the results in chunk order."""

    def map(self, fn: Callable[[Any], T], chunks: list) -> list[T]:
        """Apply ``fn`` to every chunk; results in the order of ``chunks``."""
        ...


class ThreadExecutor:
    """Chunks in worker threads (BLAS at one thread), results in chunk order.

    Parameters
    ----------
    n_threads : int
        Worker threads; 1 runs the chunks inline.
    """

    #: Tasks run on the data itself (not a copy): state a strategy keeps in the data's
    #: cache between passes (e.g. ``auto``'s bounds) is shared with them.
    in_process = True

    def __init__(self, n_threads: int = 1) -> None:
        self.n_threads = max(1, int(n_threads))

    def map(self, fn: Callable[[Any], T], chunks: list) -> list[T]:
        """Apply ``fn`` to every chunk in worker threads; results in chunk order."""
        return map_items(self.n_threads, fn, chunks)

    def __repr__(self) -> str:
        return f"ThreadExecutor(n_threads={self.n_threads})"


class PickleShuffleExecutor:
    """A test executor: every task and chunk round-trips through (cloud)pickle, and the
    chunks run in a shuffled order (results still come back in chunk order).

    A fit under it gives the same result as under threads exactly when its chunk tasks
    keep the executor contract: picklable, no writes into shared state, no dependence on
    the order chunks run in.

    Parameters
    ----------
    seed : int
        Seeds the shuffling (not the fit).
    """

    def __init__(self, seed: int = 0) -> None:
        import random

        self._random = random.Random(seed)
        #: How many chunks ran (for tests that check the seam was used).
        self.chunks_run = 0

    def map(self, fn: Callable[[Any], T], chunks: list) -> list[T]:
        """Run pickled copies of ``fn`` on pickled chunks in a shuffled order."""
        try:
            import cloudpickle as pickler
        except ImportError:  # pragma: no cover - cloudpickle comes with the test extra
            import pickle as pickler
        order = list(range(len(chunks)))
        self._random.shuffle(order)
        payload = pickler.dumps(fn)
        results: list[Any] = [None] * len(chunks)
        for i in order:
            task = pickler.loads(payload)
            chunk = pickler.loads(pickler.dumps(chunks[i]))
            results[i] = pickler.loads(pickler.dumps(task(chunk)))
            self.chunks_run += 1
        return results

    def __repr__(self) -> str:
        return "PickleShuffleExecutor()"


def is_small(data: Any) -> bool:
    """Whether the tasks of ``data`` run inline (no worker threads): its plan says so
    (:func:`kmeansfw.core.data.runs_inline`, :func:`~kmeansfw.core.data.one_worker_block`
    and :func:`~kmeansfw.core.data.one_inline_block`, decided by its shape, dtype and
    memory budget when it was built, never by threads).

    An executor other than threads always gets the map.
    """
    return data.executor is None and bool(data.inline)


def kernel_threads(data: Any) -> int:
    """Threads a kernel may start itself on ``data`` (numba's, see
    :func:`kmeansfw.kernels.euclidean.kernel_chunks`).

    Parameters
    ----------
    data : FitData

    Returns
    -------
    int
        ``data.n_threads`` when its tasks run inline (:func:`is_small`: no worker threads
        share the work), else 1: each worker thread's kernels then stay on that thread.
    """
    return data.n_threads if is_small(data) else 1


def inline_task(data: Any, fn: Callable[[list[slice]], T]) -> Callable[[list[slice]], T]:
    """``fn`` for the tasks of data that runs inline (:func:`is_small`): for mid-size data
    mapped from a file larger than memory, handing each task's pages back when it returns,
    as worker threads do (:func:`kmeansfw.core.paging.releasing`); ``fn`` itself for data
    that runs inline by its size alone (:func:`kmeansfw.core.data.runs_inline` without a
    cluster count), too small to matter."""
    if runs_inline(data.n_samples, data.n_features):
        return fn
    return releasing(data.X, fn)


def map_tasks(data: Any, fn: Callable[[list[slice]], T]) -> list[T]:
    """Apply ``fn`` to every task (chunk) of ``data``; the results in row order.

    Parameters
    ----------
    data : FitData
        Supplies the task plan and the executor (threads when it has none).
    fn : callable
        Takes a task (a list of consecutive row slices) and returns what it contributes;
        it may run in another thread or process, so it must not write to shared arrays
        (the engine's own assignment task and :func:`fill_rows`'s writer, which know
        they run in this process when the data has no executor, write only their own
        task's rows of the result arrays).
    """
    if is_small(data):
        run = inline_task(data, fn)
        return [run(task) for task in data.tasks]
    if data.executor is not None:
        return data.executor.map(fn, data.tasks)
    # in this process: the pages of data mapped from a file larger than memory are
    # handed back task by task (see kmeansfw.core.paging; values unchanged)
    return map_items(data.n_threads, releasing(data.X, fn), data.tasks)


def task_rows(task: list[slice]) -> slice:
    """The rows a task covers (its slices are consecutive)."""
    return slice(task[0].start, task[-1].stop)


def fill_rows(data: Any, fn: Callable[[list[slice]], Any], out: Any) -> Any:
    """Run ``fn`` on every task and write each task's answer (its rows' values) into
    ``out[task rows]``; return ``out``.

    In this process (no executor) each task writes its own rows as it finishes, so no
    task's answer outlives it: a ``transform``'s (n, k) answers are never held twice.
    An executor's ``map`` returns its answers as a list: one that runs the tasks in this
    process (``in_process``, as :class:`ThreadExecutor` and the torch backend's
    executor) gets them in runs (:func:`answer_runs`) whose answers take at most the
    memory budget per thread, and at least as many tasks as it has threads (its
    ``n_threads`` where that is a positive integer, else the data's), each
    run's answers written before the next run is mapped.  Any other executor gets one
    ``map`` of all the tasks (each ``map`` ships ``fn``, which holds the data, to its
    workers), whose answers are all held until it returns.
    """
    if data.executor is None:

        def write(task: list[slice]) -> None:  # disjoint rows: threads never overlap
            out[task_rows(task)] = fn(task)

        map_tasks(data, write)
        return out
    if getattr(data.executor, "in_process", False):
        threads = getattr(data.executor, "n_threads", None)
        if not isinstance(threads, int) or threads < 1:  # not said: the data's threads
            threads = data.n_threads
        runs = answer_runs(data.tasks, out[:1].nbytes, data.memory_budget * threads, threads)
    else:
        runs = [data.tasks]
    for run in runs:
        for task, part in zip(run, data.executor.map(fn, run), strict=True):
            out[task_rows(task)] = part
    return out


def answer_runs(
    tasks: list[list[slice]], row_bytes: int, limit: int, least: int = 1
) -> list[list[list[slice]]]:
    """Cut ``tasks`` into consecutive runs whose answers take at most ``limit`` bytes.

    Each run but the last holds at least ``least`` tasks, past the limit if it must;
    beyond ``least`` tasks, a run ends before the task that would take it past the limit.

    Parameters
    ----------
    tasks : list of list of slice
        A plan's tasks (each a list of consecutive row slices), in row order.
    row_bytes : int
        Bytes of one row of a task's answer.
    limit : int
        The most bytes of answers a run holds once it has ``least`` tasks.
    least : int, default=1
        The fewest tasks of a run (an executor's threads: each gets a task).

    Returns
    -------
    list of list of list of slice
        The runs, in order; together, ``tasks``.
    """
    runs: list[list[list[slice]]] = []
    run: list[list[slice]] = []
    held = 0
    for task in tasks:
        rows = task_rows(task)
        size = (rows.stop - rows.start) * row_bytes
        if len(run) >= least and held + size > limit:
            runs.append(run)
            run, held = [], 0
        run.append(task)
        held += size
    if run:
        runs.append(run)
    return runs
