"""The numba switch shared by every kernel module.

numba is imported once, here: ``numba`` is the module, or None when it cannot be imported
or ``KMEANSFW_NUMBA=0`` is set, and :data:`HAVE_NUMBA` says which.  The kernel modules
define their compiled kernels (``numba.njit``) under ``if HAVE_NUMBA:`` and their public
functions call the compiled kernel when there is one, its NumPy twin otherwise.
"""

from __future__ import annotations

import os

try:  # pragma: no cover - exercised by whichever branch the environment allows
    if os.environ.get("KMEANSFW_NUMBA", "1") == "0":
        raise ImportError("disabled by KMEANSFW_NUMBA=0")
    import numba
except ImportError:  # pragma: no cover
    numba = None

HAVE_NUMBA = numba is not None

__all__ = ["HAVE_NUMBA", "numba"]
