"""Tensor input and its chunks: the checks of ``X`` and ``sample_weight``, the rows per
chunk of a pass (:func:`plan_chunk_rows`) and the :class:`~kmeansfw.core.data.FitData`
holding tensors that every pass walks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from kmeansfw.core.data import FitData, validate_sample_weight


def is_tensor(X: Any) -> bool:
    """Whether ``X`` is a torch tensor (checked by its type's module, importing nothing)."""
    return type(X).__module__.startswith("torch")


#: On a CPU a chunk's (rows, k) product is kept near this size (cache-resident: measured
#: here, 2048-row chunks at k=256 took 0.6x the time of 32768-row ones) ...
CPU_CHUNK_BYTES = 2 << 20
#: ... but never under this many rows (per-chunk call overhead).
CPU_MIN_ROWS = 256
#: Columns of the one-hot rows that add a chunk's totals off the CPU (at most; the value
#: of ``kmeansfw.backends.torch.steps.ONE_HOT_MAX_CLUSTERS``, which imports this module).
_ONE_HOT_COLUMNS = 256


def plan_chunk_rows(
    n_samples: int,
    n_columns: int,
    n_features: int,
    itemsize: int,
    memory_budget: int,
    cpu: bool = False,
) -> int:
    """Rows per chunk so that one chunk's temporaries fit ``memory_budget`` bytes.

    A chunk holds the (rows, ``n_columns``) product, two (rows, d) copies in the data's
    dtype and the float64 (rows, d + 1) rows of the update's totals; off the CPU also the
    float64 one-hot rows that add them (up to 256 columns,
    ``steps.ONE_HOT_MAX_CLUSTERS``) and, for more columns, the totals' rows sorted by
    cluster.  At least one row, at most ``n_samples``.  On a CPU (``cpu``) the product is
    also kept near :data:`CPU_CHUNK_BYTES`.  Depends on the shape, the dtype, the budget
    and the kind of device only, so results do not depend on the device's free memory.
    """
    columns = max(1, n_columns)
    per_row = itemsize * (columns + 2 * n_features) + 8 * (n_features + 2) + 16
    if not cpu:
        per_row += 8 * min(columns, _ONE_HOT_COLUMNS)
        if columns > _ONE_HOT_COLUMNS:  # the sorted rows, their labels and the order
            per_row += 8 * (n_features + 3)
    rows = max(1, memory_budget // per_row)
    if cpu:
        cache_rows = max(CPU_MIN_ROWS, CPU_CHUNK_BYTES // (itemsize * columns))
        rows = min(rows, cache_rows)
    return int(min(max(1, n_samples), rows))


def _as_tensor(X: Any) -> Tensor:
    """``X`` checked: a 2-D, non-empty, finite float32/float64 tensor (others converted:
    half precision to float32, integers and booleans to float64), detached from autograd.
    Never modified; copied only when converted."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"the torch backend takes a torch.Tensor, got {type(X).__name__}")
    if X.layout != torch.strided:
        raise ValueError(f"sparse tensors are not supported (layout {X.layout}): pass X.to_dense()")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D tensor, got a tensor of shape {tuple(X.shape)}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(
            f"X has shape {tuple(X.shape)}: at least one sample and one feature needed"
        )
    if X.is_complex():
        raise ValueError(f"X must be real, got a tensor of dtype {X.dtype}")
    X = X.detach()
    if X.dtype in (torch.float16, torch.bfloat16):
        X = X.to(torch.float32)
    elif X.dtype not in (torch.float32, torch.float64):
        X = X.to(torch.float64)
    return X


def _check_finite(X: Tensor, rows: list[slice]) -> None:
    bad = torch.zeros((), dtype=torch.bool, device=X.device)
    for r in rows:  # chunk by chunk: no (n, d) temporary
        bad |= ~torch.isfinite(X[r]).all()
    if bool(bad):
        raise ValueError("Input X contains NaN or infinity.")


def _weights(sample_weight: Any, X: Tensor) -> Tensor:
    """Sample weights as a (n,) tensor of X's dtype on X's device, checked as in the NumPy
    backend (finite, non-negative, not all zero)."""
    n = X.shape[0]
    if sample_weight is None:
        return torch.ones(n, dtype=X.dtype, device=X.device)
    if not isinstance(sample_weight, torch.Tensor):
        host = validate_sample_weight(sample_weight, n, np.dtype(_np_dtype(X.dtype)))
        return torch.as_tensor(host, device=X.device)
    if sample_weight.is_complex():  # the cast would drop the imaginary part
        raise ValueError(
            f"sample_weight must hold real numbers, got a tensor of dtype {sample_weight.dtype}"
        )
    sw = sample_weight.detach().to(device=X.device, dtype=X.dtype)
    if sw.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D, got a tensor of shape {tuple(sw.shape)}")
    if sw.shape[0] != n:
        raise ValueError(f"sample_weight has {sw.shape[0]} entries but X has {n} samples")
    if not bool(torch.isfinite(sw).all()):
        raise ValueError("sample_weight contains NaN or infinity")
    if bool((sw < 0).any()):
        raise ValueError("sample_weight contains negative values")
    if not bool((sw > 0).any()):
        raise ValueError("sample_weight is zero for every sample")
    return sw


def _np_dtype(dtype: torch.dtype) -> type:
    return np.float32 if dtype == torch.float32 else np.float64


def _host(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy()


_BUDGET = "torch.memory_budget"
#: In a data set's cache: whether every sample weight is 1 (the sums skip a product).
_UNIT_WEIGHTS = "torch.unit_weights"


def _data(X: Tensor, sw: Tensor, budget: int, n_columns: int, fitted: Mapping[str, Any]) -> FitData:
    """The data set as a :class:`FitData` holding tensors, its blocks the chunks of a pass
    against ``n_columns`` points."""
    cpu = X.device.type == "cpu"
    rows = plan_chunk_rows(X.shape[0], n_columns, X.shape[1], X.element_size(), budget, cpu)
    data = FitData(
        X=X, sample_weight=sw, block_rows=rows, n_threads=1, fitted=fitted, memory_budget=budget
    )
    data.cache[_BUDGET] = budget
    return data


def _columns(data: FitData, n_columns: int) -> FitData:
    """The same data (sharing its cache) chunked for a pass against ``n_columns`` points."""
    X = data.X
    budget, cpu = data.cache[_BUDGET], X.device.type == "cpu"
    rows = plan_chunk_rows(X.shape[0], n_columns, X.shape[1], X.element_size(), budget, cpu)
    if rows == data.block_rows:
        return data
    return FitData(
        X=X,
        sample_weight=data.sample_weight,
        block_rows=rows,
        n_threads=1,
        cache=data.cache,
        fitted=data.fitted,
        memory_budget=budget,
    )


def _blocks(data: FitData) -> list[slice]:
    return [rows for task in data.tasks for rows in task]


def _with_rows(data: FitData, X: Tensor, sw: Tensor, n_columns: int) -> FitData:
    """Another data set (the candidates of k-means||) with ``data``'s budget and fitted
    state."""
    return _data(X, sw, data.cache[_BUDGET], n_columns, data.fitted)


def _sw(data: FitData) -> Tensor:
    """The sample weights of a data set holding tensors."""
    return cast(Tensor, data.sample_weight)


def _objective(data: FitData, costs: Any) -> float:
    """The weighted sum of the costs in float64: one reduction, whatever the chunking."""
    return float(torch.dot(costs.to(torch.float64), _sw(data).to(torch.float64)))
