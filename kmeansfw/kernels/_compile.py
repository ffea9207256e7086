"""The numba switch shared by every kernel module, and the guard of its thread teams.

numba is imported once, here: ``numba`` is the module, or None when it cannot be imported
or ``KMEANSFW_NUMBA=0`` is set, and :data:`HAVE_NUMBA` says which.  The kernel modules
define their compiled kernels (``numba.njit``) under ``if HAVE_NUMBA:`` and their public
functions call the compiled kernel when there is one, its NumPy twin otherwise.

numba caches the compiled kernels on disk (``cache=True``), each checked against a stamp of
all the kernel modules' sources (:func:`kernel_sources_stamp`), not of its own file only,
so that a change to any of them (an upgrade, a checkout) compiles again every kernel that
may hold another's code.

A few kernels also have a variant that splits small data between numba's own threads
(``parallel=True``), for data too small to be worth kmeansfw's worker threads; they run
through :func:`launch`.  :func:`parallel_ready` says whether they may run in this
process: numba's fallback threading layer (``workqueue``) aborts the process when two
threads launch at once, and the GNU OpenMP layer kills a forked child that launches after
its parent did, so they run only under a thread-safe layer (``tbb`` or ``omp``) that
kmeansfw itself started in this process (or ``tbb``, which survives a fork), never in a
forked child of a process that started ``omp``, and not at all with
``KMEANSFW_PARALLEL_KERNELS=0``.  Elsewhere the serial kernels run, with the same results:
the variants split rows at the serial kernels' own sub-block boundaries, so every row is
computed the same way whatever the number of threads.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from typing import Any

try:  # pragma: no cover - exercised by whichever branch the environment allows
    if os.environ.get("KMEANSFW_NUMBA", "1") == "0":
        raise ImportError("disabled by KMEANSFW_NUMBA=0")
    import numba
except ImportError:  # pragma: no cover
    numba = None

HAVE_NUMBA = numba is not None

#: The kernel modules' directory: every kernel kmeansfw caches (``cache=True``) lives here.
KERNELS_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.cache
def kernel_sources_stamp(directory: str = KERNELS_DIR) -> str:
    """The SHA-256 of every kernel module's source (``*.py`` in ``directory``, by name).

    numba checks a cached kernel against a stamp of its own file only, but a kernel's
    compiled code holds the kernels it calls from the other modules (the compiled Lloyd
    iterations in ``lloyd`` hold ``euclidean``'s search): with a stamp of the one file, a
    changed callee would leave its callers' cached code running the old one (an upgrade
    that changed ``euclidean.py`` but not ``lloyd.py`` would keep the old search in the
    compiled iterations, without an error).  kmeansfw's kernels are checked against this
    stamp of all the kernel modules instead, so any change to any of them compiles them
    all again.  Computed once per process and directory.

    Parameters
    ----------
    directory : str
        The kernel modules' directory.

    Returns
    -------
    str
        The digest, in hexadecimal.
    """
    digest = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py"):
            digest.update(name.encode() + b"\0")
            with open(os.path.join(directory, name), "rb") as source:
                digest.update(source.read())
            digest.update(b"\0")
    return digest.hexdigest()


if HAVE_NUMBA:  # pragma: no branch
    from numba.core import caching as _caching

    class _WholeKernelsStamp:
        """A numba cache locator for kmeansfw's kernel modules: the stamp of them all
        (:func:`kernel_sources_stamp`), not of the kernel's own file."""

        def get_source_stamp(self) -> str:
            return kernel_sources_stamp()

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if os.path.dirname(os.path.abspath(py_file)) != KERNELS_DIR:
                return None  # not kmeansfw's: numba's own locators take it
            return super().from_function(py_func, py_file)  # type: ignore[misc]

    #: numba's locators for files with a source, in numba's order (a cache directory
    #: the user set, the package's ``__pycache__``, the user's cache directory), each
    #: with the stamp of all the kernel modules; ahead of numba's own.
    KERNEL_CACHE_LOCATORS = tuple(
        type(f"Kernels{base.__name__}", (_WholeKernelsStamp, base), {})
        for base in (
            _caching.UserProvidedCacheLocator,
            _caching.InTreeCacheLocator,
            _caching.UserWideCacheLocator,
        )
    )
    # numba's cache implementation (CacheImpl from numba 0.61, _CacheImpl before) lists
    # the locators it tries in order
    _cache_impl = getattr(_caching, "CacheImpl", None) or getattr(_caching, "_CacheImpl", None)
    if isinstance(getattr(_cache_impl, "_locator_classes", None), list):
        _cache_impl._locator_classes[:0] = KERNEL_CACHE_LOCATORS  # type: ignore[union-attr]
    else:  # pragma: no cover - a numba whose caching kmeansfw does not know
        from kmeansfw.core.errors import warn

        warn(
            "kmeansfw could not give numba its kernels' cache stamp (numba "
            f"{numba.__version__}): a cached kernel is checked against its own module "
            "only, so after a change to another kernel module clear kmeansfw/kernels/"
            "__pycache__ (or set NUMBA_CACHE_DIR to an empty directory)",
            RuntimeWarning,
        )

#: Threading layers under which concurrent launches from several threads are safe.
SAFE_LAYERS = ("tbb", "omp")
#: The one of them that also survives a fork.
FORK_SAFE_LAYER = "tbb"

_probe_lock = threading.Lock()
#: (pid of the process that probed, whether the parallel variants may run there).
_probed: tuple[int, bool] | None = None

if HAVE_NUMBA:

    @numba.njit(parallel=True, cache=True)
    def _probe_kernel(out):  # pragma: no cover - compiled
        for i in numba.prange(out.shape[0]):
            out[i] = i


def _layer_started() -> bool:
    """Whether numba's threading layer was started before kmeansfw's probe (by other
    code, here or in a parent process before a fork: the two cannot be told apart)."""
    from numba.np.ufunc import parallel as numba_parallel

    return bool(getattr(numba_parallel, "_is_initialized", True))


def _probe() -> bool:
    """Whether numba's threads may run here: launch one tiny parallel kernel, unless some
    other code started a layer that a fork may have made unsafe, and check the layer."""
    import numpy as np

    try:
        if _layer_started():
            return numba.threading_layer() == FORK_SAFE_LAYER
        _probe_kernel(np.empty(4, dtype=np.int64))
        return numba.threading_layer() in SAFE_LAYERS
    except Exception:  # no threading layer could be loaded: stay serial
        return False


def _after_fork_in_child() -> None:
    """In a forked child: a fresh lock (the parent's may have been held by another
    thread), and no numba threads if the parent started a layer that is not fork-safe."""
    global _probe_lock, _probed
    _probe_lock = threading.Lock()
    if _probed is not None:
        started_here = _probed[1]
        _probed = (os.getpid(), started_here and numba.threading_layer() == FORK_SAFE_LAYER)


if HAVE_NUMBA and hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def parallel_ready() -> bool:
    """Whether the kernels' ``parallel=True`` variants may run in this process.

    False without numba, with ``KMEANSFW_PARALLEL_KERNELS=0`` (read once, at the first
    call), when numba's threading layer is not thread-safe (``tbb`` or ``omp``), when
    other code started numba's layer before kmeansfw's first call and it is not ``tbb``,
    and in a process forked from one that started ``omp``.  The first call probes the
    layer once per process, under a lock.

    Returns
    -------
    bool
    """
    global _probed
    probed = _probed
    if probed is None:
        with _probe_lock:
            if _probed is None:
                switched_off = os.environ.get("KMEANSFW_PARALLEL_KERNELS", "1") == "0"
                _probed = (os.getpid(), HAVE_NUMBA and not switched_off and _probe())
            probed = _probed
    pid, ready = probed
    return ready and pid == os.getpid()


def launch(kernel: Any, *args: Any) -> Any:
    """Run a ``parallel=True`` kernel whose last argument is its number of chunks.

    numba's team is held to that many threads at most (``numba.set_num_threads``, per
    calling thread, restored after; never more than the caller's own setting), so
    ``n_threads`` bounds it; BLAS is held to one thread while it runs (a product asked of
    OpenBLAS from numba's threads with BLAS's own threads free ran 10-30x slower).

    Parameters
    ----------
    kernel : numba dispatcher
        A parallel variant, called as ``kernel(*args)``.
    *args
        Its arguments; the last is the number of chunks (at least 2).

    Returns
    -------
    object
        What the kernel returns.
    """
    global _blas_hold
    if _blas_hold is None:
        from kmeansfw.engine.executors import single_threaded_blas  # BLAS limits live there

        _blas_hold = single_threaded_blas()
    with _blas_hold:
        previous = numba.get_num_threads()
        team = max(1, min(int(args[-1]), previous))
        if team == previous:  # the usual case (chunks = n_threads = the CPUs): no change
            return kernel(*args)
        numba.set_num_threads(team)
        try:
            return kernel(*args)
        finally:
            numba.set_num_threads(previous)


#: :func:`kmeansfw.engine.executors.single_threaded_blas`, looked up at the first launch.
_blas_hold: Any = None


__all__ = ["HAVE_NUMBA", "KERNELS_DIR", "kernel_sources_stamp", "launch", "numba", "parallel_ready"]
