"""The Dask backend's input: ``X`` and ``sample_weight`` as validated dask arrays, checked
chunk by chunk once persisted, or computed into memory when no client is active."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import scipy.sparse as sp

from kmeansfw.backends.dask.cluster import _futures_in_order
from kmeansfw.core.data import real_numbers, validate_X

_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


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
    """One chunk of sample weights, checked: real numbers, finite and non-negative."""
    real_numbers(np.asarray(weights), "sample_weight")
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
    if not isinstance(sample_weight, da.Array):
        sample_weight = np.asarray(sample_weight)
        real_numbers(sample_weight, "sample_weight")
        if sample_weight.ndim == 0:
            return da.full(n, sample_weight, chunks=(X.chunks[0],), dtype=dtype)
        if sample_weight.ndim != 1:
            raise ValueError(
                f"sample_weight must be 1-D, got an array of shape {sample_weight.shape}"
            )
        if sample_weight.shape[0] != n:  # before chunking it like X's rows
            raise ValueError(
                f"sample_weight has {sample_weight.shape[0]} entries but X has {n} samples"
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
