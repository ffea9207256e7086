"""Backends that run a fit somewhere other than this process's threads.

:mod:`kmeansfw.backends.dask` fits, predicts and transforms ``dask.array.Array`` inputs on
a Dask cluster (extra ``kmeansfw[dask]``); :mod:`kmeansfw.backends.torch` fits torch tensors
on their device (extra ``kmeansfw[torch]``).  This package imports nothing heavy: the
entry points ask :func:`for_input` (or :func:`is_dask_collection`, :func:`is_torch_tensor`)
and a backend is imported only for its own input, so neither Dask nor torch is imported
for NumPy or SciPy input.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def is_dask_collection(X: Any) -> bool:
    """Whether ``X`` is a Dask collection (checked by its type's module, importing nothing)."""
    return type(X).__module__.startswith("dask")


def is_torch_tensor(X: Any) -> bool:
    """Whether ``X`` is a torch tensor (checked by its type's module, importing nothing)."""
    return type(X).__module__.startswith("torch")


def for_input(X: Any) -> ModuleType | None:
    """The backend that takes ``X`` (imported now), or None for in-memory input.

    Each backend offers the estimator's methods as ``fit_estimator``, ``predict``,
    ``transform`` and ``score``, taking the estimator first.
    """
    if is_dask_collection(X):
        return importlib.import_module("kmeansfw.backends.dask")
    if is_torch_tensor(X):
        return importlib.import_module("kmeansfw.backends.torch")
    return None
