"""Map over row tasks in worker threads: the parallel half of map-then-reduce.

Each task (a fixed, thread-count independent range of rows, see
:class:`kmeansfw.core.data.FitData`) is processed by one worker; results come back in row
order, so whatever reduces them does so in a fixed order and results are bit-identical
whatever the number of threads.  BLAS is held to one thread while workers run, so the
matrix product inside a block is also computed the same way every time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

from threadpoolctl import ThreadpoolController

from kmeansfw.core.data import FitData

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
    """

    def __init__(self) -> None:
        self._holders = 0
        self._limiter = None

    def __enter__(self) -> None:
        global _controller
        with _lock:
            if self._holders == 0:
                if _controller is None:
                    _controller = ThreadpoolController()
                self._limiter = _controller.limit(limits=1, user_api="blas")
            self._holders += 1

    def __exit__(self, *exc_info: object) -> None:
        with _lock:
            self._holders -= 1
            if self._holders == 0:
                limiter, self._limiter = self._limiter, None
                limiter.restore_original_limits()


_single_threaded_blas = _SingleThreadedBlas()


def single_threaded_blas() -> _SingleThreadedBlas:
    """A context manager holding BLAS to one thread (process-wide, reference counted)."""
    return _single_threaded_blas


def map_items(n_threads: int, fn: Callable[[object], T], items: list) -> list[T]:
    """Apply ``fn`` to every item in worker threads (BLAS at one thread); results in order.

    For work split by something other than rows, e.g. one cluster per item.
    """
    with single_threaded_blas():
        if n_threads <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        return list(_pool(min(n_threads, len(items))).map(fn, items))


#: Below this many data elements (rows x features) tasks run inline: handing them to
#: threads would cost more than it saves.  The block plan, hence every result, is the same.
PARALLEL_MIN_ELEMENTS = 1 << 18


def is_small(data: FitData) -> bool:
    """Whether ``data`` is small enough for its tasks to run inline (no worker threads).

    Small data also runs without holding BLAS to one thread: its products are too small
    for BLAS to thread, and BLAS splits a product between threads by output blocks, never
    along the sums, so a product's values would not change anyway.
    """
    return data.n_samples * data.n_features < PARALLEL_MIN_ELEMENTS


def blas_hold(data: FitData) -> AbstractContextManager:
    """:func:`single_threaded_blas` for data that is not :func:`is_small`, else a no-op."""
    return nullcontext() if is_small(data) else _single_threaded_blas


def map_tasks(data: FitData, fn: Callable[[list[slice]], T]) -> list[T]:
    """Apply ``fn`` to every task of ``data`` and return the results in row order.

    Parameters
    ----------
    data : FitData
        Supplies the task plan and the thread count.
    fn : callable
        Takes a task (a list of consecutive row slices); runs in a worker thread, so it
        must only write to disjoint rows of shared arrays.
    """
    if is_small(data):
        return [fn(task) for task in data.tasks]
    return map_items(data.n_threads, fn, data.tasks)
