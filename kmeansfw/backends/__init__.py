"""Backends that run a fit somewhere other than this process's threads.

:mod:`kmeansfw.backends.dask` fits, predicts and transforms ``dask.array.Array`` inputs on
a Dask cluster (extra ``kmeansfw[dask]``).  This package imports nothing heavy: the
entry points ask :func:`is_dask_collection` and import the backend only when it says yes,
so Dask is never imported for NumPy or SciPy input.
"""

from __future__ import annotations

from typing import Any


def is_dask_collection(X: Any) -> bool:
    """Whether ``X`` is a Dask collection (checked by its type's module, importing nothing)."""
    return type(X).__module__.startswith("dask")
