"""The numba switch shared by every kernel module, and the guard of its thread teams.

numba is imported once, here: ``numba`` is the module, or None when it cannot be imported
or ``KMEANSFW_NUMBA=0`` is set, and :data:`HAVE_NUMBA` says which.  The kernel modules
define their compiled kernels (``numba.njit``) under ``if HAVE_NUMBA:`` and their public
functions call the compiled kernel when there is one, its NumPy twin otherwise.

A few kernels also have a variant that splits small data between numba's own threads
(``parallel=True``), for data too small to be worth kmeansfw's worker threads.
:func:`parallel_ready` says whether those may run in this process: numba's fallback
threading layer (``workqueue``) aborts the process when two threads launch at once, and
the GNU OpenMP layer kills a forked child that launches after its parent did, so they run
only under a thread-safe layer (``tbb`` or ``omp``), in the process that first ran them,
and not at all with ``KMEANSFW_PARALLEL_KERNELS=0``.  Elsewhere the serial kernels run,
with the same results: the variants split rows at the serial kernels' own sub-block
boundaries, so every row is computed the same way whatever the number of threads.
"""

from __future__ import annotations

import os
import threading

try:  # pragma: no cover - exercised by whichever branch the environment allows
    if os.environ.get("KMEANSFW_NUMBA", "1") == "0":
        raise ImportError("disabled by KMEANSFW_NUMBA=0")
    import numba
except ImportError:  # pragma: no cover
    numba = None

HAVE_NUMBA = numba is not None

#: Threading layers under which concurrent launches from several threads are safe.
SAFE_LAYERS = ("tbb", "omp")

_probe_lock = threading.Lock()
#: (pid of the process that probed, whether the parallel variants may run there).
_probed: tuple[int, bool] | None = None

if HAVE_NUMBA:

    @numba.njit(parallel=True, cache=True)
    def _probe_kernel(out):  # pragma: no cover - compiled
        for i in numba.prange(out.shape[0]):
            out[i] = i


def _probe() -> bool:
    """Launch one tiny parallel kernel and report whether numba chose a safe layer."""
    import numpy as np

    try:
        _probe_kernel(np.empty(4, dtype=np.int64))
        return numba.threading_layer() in SAFE_LAYERS
    except Exception:  # no threading layer could be loaded: stay serial
        return False


def parallel_ready() -> bool:
    """Whether the kernels' ``parallel=True`` variants may run in this process.

    False without numba, with ``KMEANSFW_PARALLEL_KERNELS=0`` (read once, at the first
    call), when numba's threading layer is not thread-safe (``tbb`` or ``omp``), and in a
    process forked from one that ran them (the first call probes the layer once per
    process, under a lock).

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


__all__ = ["HAVE_NUMBA", "numba", "parallel_ready"]
