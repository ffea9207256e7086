"""Fit, predict and transform torch tensors on their own device (CPU or CUDA).

``KMeans.fit``, ``predict``, ``transform`` and ``score`` route a :class:`torch.Tensor` here
(extra ``kmeansfw[torch]``); torch is imported only for such input.  The data never
leaves its device: every pass over it is torch operations on row chunks, and only small
things come back to the host each iteration (the (k, d) centroids, the k cluster weights,
a few scalars), so that observers and convergence criteria run exactly as in the NumPy
backend.

What runs on the device
-----------------------
* Distances ``euclidean``, ``sqeuclidean`` and ``cosine``.  Euclidean compares
  ``||c'||^2 - 2 x'.c'`` on rows and centroids centered on the training mean (its fitted
  state, as in the NumPy kernel) and then recomputes the exact squared distance
  ``sum((x' - c')^2)`` of the chosen centroid only, so the objective is exact whatever the
  precision of the product.
* Assignment ``nearest`` (and ``auto``, which gives the same labels).
* Updates ``mean`` and ``spherical`` (per-cluster sums in float64 with ``index_add_``).
* Empty clusters ``relocate-farthest`` (the farthest samples move, and the clusters
  concerned take the update of the moved partition, summed afresh), and any empty-cluster
  strategy whose hook reads only centroids and cluster weights (``keep``, ``raise``): it
  runs on the host copies.
* Seeding ``auto``, ``k-means++`` (greedy), ``k-means||``, ``random`` and explicit centroids.
* Every convergence criterion and observer, on the host, through the fit's hooks.

Memory: every pass walks row chunks whose temporaries (the (rows, k) product, two
(rows, d) copies and the float64 rows of the sums) fit the memory budget; no (n, k) matrix
is ever built beyond one chunk (:func:`plan_chunk_rows`).  The budget is the estimator's
``memory_budget_mb``, at least :data:`CUDA_MIN_BUDGET` on a CUDA device (kernel launches
per chunk would dominate below that), or exactly what :class:`TorchExecutor` says.

Threads: ``n_threads`` does not apply; torch runs CPU tensors on its own threads
(``torch.set_num_threads``).  The precision options set torch's process-wide float32
matmul precision for the duration of a call and restore it after.

Randomness: every draw comes from the fit's :class:`numpy.random.Generator` on the host,
in the same order of calls as the NumPy backend's strategies (the first centre, k-means++'s
uniforms, k-means||'s per-sample uniforms, which are moved to the device); no torch
generator is used, so a seed gives the same result on every run on the same device (on
CUDA the float64 sums are added atomically, in no fixed order, which can change their last
bits; rounded to float32 centroids that practically never shows).

A strategy brings its own torch implementation by declaring ``accepts_torch = True``
(like ``accepts_sparse``): its hooks are then called with tensors.  This holds for
distances (``kmeansfw_cost`` / ``kmeansfw_distance`` get (b, d) row chunks and the (k, d)
centroids as tensors and return (b, k) tensors; a :class:`kmeansfw.Distance` subclass
writes ``pairwise`` with torch operations; ``kmeansfw_learn``, ``kmeansfw_prepare`` and
``kmeansfw_prepare_centroids`` get a :class:`~kmeansfw.core.data.FitData` holding tensors)
and for seedings (``kmeansfw_init_centroids`` gets ``X`` and ``sample_weight`` as tensors
and the fit's numpy Generator).  A plain function distance or init function declares it
with ``func.accepts_torch = True``.  Any other strategy is refused by name
(:class:`~kmeansfw.core.errors.StrategyError`), as are ``batch_size`` and ``checkpoint``
(:class:`~kmeansfw.core.errors.ConfigError`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, cast

import attrs
import numpy as np
import torch

from kmeansfw.core import contract
from kmeansfw.core.adapters import ArrayInit, CallableInit, FunctionDistance
from kmeansfw.core.config import Config, make_rng
from kmeansfw.core.data import FitData, Fitted, read_only, validate_sample_weight
from kmeansfw.core.distance import Distance
from kmeansfw.core.errors import ConfigError, StrategyError
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins
from kmeansfw.engine.results import Fit, best_fit, check_n_clusters
from kmeansfw.strategies.assignment import Auto, Nearest
from kmeansfw.strategies.convergence import _MEAN_VARIANCE
from kmeansfw.strategies.distances import Cosine, SqEuclidean
from kmeansfw.strategies.empty import RelocateFarthest
from kmeansfw.strategies.euclidean import _MEAN, Euclidean
from kmeansfw.strategies.init import (
    KEEP_COSTS_BYTES,
    AutoInit,
    KMeansParallel,
    KMeansPlusPlus,
    RandomInit,
    weighted_draw,
)
from kmeansfw.strategies.observers import History
from kmeansfw.strategies.update import Mean, Spherical

__all__ = [
    "TorchExecutor",
    "fit",
    "fit_config",
    "fit_estimator",
    "is_tensor",
    "plan_chunk_rows",
    "predict",
    "score",
    "transform",
]

Tensor = torch.Tensor

#: The smallest memory budget used on a CUDA device unless :class:`TorchExecutor` sets one.
CUDA_MIN_BUDGET = 1 << 30
#: Precisions of the distance product (see :class:`TorchExecutor`).
PRECISIONS = ("highest", "tf32", "fp16", "bf16")
_LOW = {"fp16": torch.float16, "bf16": torch.bfloat16}


def is_tensor(X: Any) -> bool:
    """Whether ``X`` is a torch tensor (checked by its type's module, importing nothing)."""
    return type(X).__module__.startswith("torch")


# --------------------------------------------------------------------------- options
def _check_precision(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value not in PRECISIONS:
        raise ConfigError(
            f"TorchExecutor: precision must be one of {', '.join(map(repr, PRECISIONS))}, "
            f"got {value!r}"
        )


def _check_budget(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    ok = value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    )
    if not ok:
        raise ConfigError(f"TorchExecutor: memory_budget_mb must be > 0 or None, got {value!r}")


@attrs.frozen
class TorchExecutor:
    """Options of the torch backend, passed as ``KMeans(executor=TorchExecutor(...))``.

    For tensor input the work runs on the tensor's device; these options say how.  For
    NumPy input it is a plain executor that runs the chunk tasks one after the other in
    the calling thread (so one estimator serves both kinds of input).

    Parameters
    ----------
    precision : {"highest", "tf32", "fp16", "bf16"}, default="highest"
        The precision of the distance product that picks each sample's centroid.
        ``"highest"``: the data's dtype (TF32 off even where torch enables it).
        ``"tf32"``: TF32 products on CUDA for float32 data (``torch``'s "high" float32
        matmul precision).  ``"fp16"`` / ``"bf16"``: the product in half precision.  For
        the Euclidean distances each chunk's rows and each centroid are first scaled by a
        power of two (exact) so that every product lies within [-1, 1]: fp16, whose range
        ends at 65504, cannot overflow whatever the data's magnitude; a chunk whose
        reduced distances still come out NaN or infinite is redone in the data's dtype.
        Half precision keeps about 3 significant digits (bf16 about 2) of ``x'.c'`` relative
        to ``|x'| |c'|`` (``x'``, ``c'`` centered on the training mean).  Whatever the
        precision, the cost of the chosen centroid is recomputed exactly in the data's
        dtype, so inertia and the objective are exact; only near-ties (within that
        round-off) may pick another centroid.
    memory_budget_mb : float or None, default=None
        Bytes of temporaries per chunk, in MiB.  None: the estimator's
        ``memory_budget_mb``, at least :data:`CUDA_MIN_BUDGET` on a CUDA device.
    """

    precision: str = attrs.field(default="highest", validator=_check_precision)
    memory_budget_mb: float | None = attrs.field(default=None, validator=_check_budget)

    def map(self, fn: Any, chunks: Any) -> list:
        """Run ``fn`` on each chunk in order, in this thread (NumPy input)."""
        return [fn(chunk) for chunk in chunks]


def _options(executor: Any) -> TorchExecutor:
    if executor is None:
        return TorchExecutor()
    if isinstance(executor, TorchExecutor):
        return executor
    raise ConfigError(
        f"executor {executor!r} cannot run a fit on torch tensors: the torch backend runs "
        "on the tensor's device (pass executor=None or kmeansfw.backends.torch.TorchExecutor)"
    )


def _budget(options: TorchExecutor, default: int, device: torch.device) -> int:
    if options.memory_budget_mb is not None:
        return int(options.memory_budget_mb * 2**20)
    return max(default, CUDA_MIN_BUDGET) if device.type == "cuda" else default


@contextlib.contextmanager
def _matmul_precision(precision: str) -> Iterator[None]:
    """float32 products in full precision (or TF32 for ``"tf32"``) within the block."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


#: On a CPU a chunk's (rows, k) product is kept near this size (cache-resident: measured
#: here, 2048-row chunks at k=256 took 0.6x the time of 32768-row ones) ...
CPU_CHUNK_BYTES = 2 << 20
#: ... but never under this many rows (per-chunk call overhead).
CPU_MIN_ROWS = 256


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
    dtype and the float64 (rows, d) rows of the update's sums; at least one row, at most
    ``n_samples``.  On a CPU (``cpu``) the product is also kept near
    :data:`CPU_CHUNK_BYTES`.  Depends on the shape, the dtype, the budget and the kind of
    device only, so results do not depend on the device's free memory.
    """
    per_row = itemsize * (max(1, n_columns) + 2 * n_features) + 8 * (n_features + 2) + 16
    rows = max(1, memory_budget // per_row)
    if cpu:
        cache_rows = max(CPU_MIN_ROWS, CPU_CHUNK_BYTES // (itemsize * max(1, n_columns)))
        rows = min(rows, cache_rows)
    return int(min(max(1, n_samples), rows))


# --------------------------------------------------------------------------- input
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
    data = FitData(X=X, sample_weight=sw, block_rows=rows, n_threads=1, fitted=fitted)
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


# --------------------------------------------------------------------------- geometry
class _Geometry:
    """A distance as torch operations.  ``cost`` and ``distance`` give (b, m) blocks of a
    chunk against a prepared point set; ``nearest`` the labels and exact costs."""

    label = "distance"
    squared_update = True

    def __init__(self, precision: str) -> None:
        self.precision = precision

    def product(self, A: Tensor, B: Tensor) -> Tensor:
        """``A @ B.T`` in the chosen precision, returned in A's dtype.

        For rows of norm at most 1 (the cosine distance's unit vectors): in half
        precision larger ones may overflow (the Euclidean distances scale them first,
        :meth:`_Euclidean._low_reduced`).
        """
        low = _LOW.get(self.precision)
        if low is None:
            return A @ B.T
        return (A.to(low) @ B.to(low).T).to(A.dtype)

    def learn(self, data: FitData) -> dict:
        return {}

    def prepare(self, data: FitData) -> None:
        """Per-data caches (in ``data.cache``)."""

    def points(self, P: Tensor, data: FitData) -> dict:
        """Per-point-set values (centroids, candidates)."""
        return {"P": P}

    def cost(self, data: FitData, rows: slice, pts: dict) -> Tensor:
        raise NotImplementedError

    def distance(self, data: FitData, rows: slice, pts: dict) -> Tensor:
        return self.cost(data, rows, pts)

    def nearest(self, data: FitData, rows: slice, pts: dict) -> tuple[Tensor, Tensor]:
        value, labels = torch.min(self.cost(data, rows, pts), dim=1)  # first on ties
        return labels, value


class _Euclidean(_Geometry):
    """Euclidean (``squared_transform``: sqeuclidean), centered on the training mean."""

    label = "euclidean"

    def __init__(self, precision: str, squared_transform: bool = False) -> None:
        super().__init__(precision)
        self.squared_transform = squared_transform

    def learn(self, data: FitData) -> dict:
        X = data.X
        total = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
        for rows in _blocks(data):
            total += X[rows].sum(dim=0, dtype=torch.float64)
        return {_MEAN: _host((total / X.shape[0]).to(X.dtype))}

    def prepare(self, data: FitData) -> None:
        mean = data.fitted.get(_MEAN)
        if mean is None:  # a data set outside a fit: centered on its own mean
            mean = self.learn(data)[_MEAN]
        data.cache[_MEAN] = torch.as_tensor(np.array(mean), device=data.X.device).to(data.X.dtype)

    def points(self, P: Tensor, data: FitData) -> dict:
        centered = P - data.cache[_MEAN]
        minus_2c = centered * -2
        pts = {
            "centered": centered,
            "minus_2c": minus_2c,
            "norms": (centered * centered).sum(dim=1),
        }
        low = _LOW.get(self.precision)
        if low is not None:  # each centroid scaled to norm <= 1 once, converted once
            scale, inverse = _pow2_scales(torch.linalg.vector_norm(minus_2c, dim=1))
            pts["low"] = (minus_2c * scale[:, None]).to(low)
            pts["inverse"] = inverse
        return pts

    def _reduced(self, centered: Tensor, pts: dict) -> Tensor:
        """``|c'|^2 - 2 x'.c'`` of a chunk (b, k), in the chosen precision."""
        if self.precision in _LOW:
            return self._low_reduced(centered, pts)
        return self._exact_reduced(centered, pts)

    def _exact_reduced(self, centered: Tensor, pts: dict) -> Tensor:
        return torch.addmm(pts["norms"], centered, pts["minus_2c"].T)

    def _low_reduced(self, centered: Tensor, pts: dict) -> Tensor:
        """The half-precision product of the chunk's rows scaled by one power of two (the
        largest row norm to at most 1) and the centroids scaled each to norm at most 1, so
        that every fp16 product and partial sum lies within [-1, 1]; scaled back exactly
        in the data's dtype (no host synchronization)."""
        low = _LOW[self.precision]
        top = torch.linalg.vector_norm(centered, dim=1).amax()
        scale, inverse = _pow2_scales(top)
        product = ((centered * scale).to(low) @ pts["low"].T).to(centered.dtype)
        return torch.addcmul(pts["norms"], product, pts["inverse"] * inverse)

    def cost(self, data: FitData, rows: slice, pts: dict) -> Tensor:
        centered = data.X[rows] - data.cache[_MEAN]
        out = self._reduced(centered, pts)
        if self.precision in _LOW and not bool(torch.isfinite(out).all()):
            out = self._exact_reduced(centered, pts)  # never a silently wrong chunk
        out += (centered * centered).sum(dim=1)[:, None]
        return out.clamp_(min=0)

    def distance(self, data: FitData, rows: slice, pts: dict) -> Tensor:
        cost = self.cost(data, rows, pts)
        return cost if self.squared_transform else cost.sqrt_()

    def nearest(self, data: FitData, rows: slice, pts: dict) -> tuple[Tensor, Tensor]:
        centered = data.X[rows] - data.cache[_MEAN]
        values, labels = torch.min(self._reduced(centered, pts), dim=1)  # first on ties
        # a NaN or -inf anywhere in a row is its minimum: redo such a chunk exactly
        if self.precision in _LOW and not bool(torch.isfinite(values).all()):
            labels = torch.min(self._exact_reduced(centered, pts), dim=1).indices
        # the exact cost of the chosen centroid (centered is not needed any more)
        diff = centered.sub_(torch.index_select(pts["centered"], 0, labels))
        return labels, torch.linalg.vecdot(diff, diff)


def _pow2_scales(norms: Tensor) -> tuple[Tensor, Tensor]:
    """Powers of two ``s`` with ``s * norms`` in [0.5, 1) (1 for zero norms), and ``1 / s``.

    Scaling by a power of two is exact (no rounding); the exponent is clamped to the
    dtype's normal range, so an extreme norm leaves a product out of fp16's range, which
    the callers detect (non-finite) and redo in full precision.
    """
    _, exponent = torch.frexp(norms)
    limit = int(np.log2(torch.finfo(norms.dtype).max)) - 1  # float32: 126
    exponent = exponent.clamp_(-limit, limit)
    one = torch.ones_like(norms)
    return torch.ldexp(one, -exponent), torch.ldexp(one, exponent)


def _unit(X: Tensor, what: str, offset: int = 0) -> Tensor:
    norms = (X * X).sum(dim=1).sqrt()
    zero = torch.nonzero(norms == 0)
    if zero.numel():
        raise ValueError(
            f"cosine distance is undefined for zero vectors: {zero.numel()} {what} of zero "
            f"norm (first at index {int(zero[0, 0]) + offset})"
        )
    return X / norms[:, None]


class _Cosine(_Geometry):
    """Cosine distance ``1 - x.c / (|x| |c|)``, clipped to [0, 2] as the NumPy backend."""

    label = "cosine"
    squared_update = False

    def prepare(self, data: FitData) -> None:
        for rows in _blocks(data):
            _unit(data.X[rows], "rows of X", rows.start)

    def points(self, P: Tensor, data: FitData) -> dict:
        return {"unit": _unit(P, "centroids")}

    def cost(self, data: FitData, rows: slice, pts: dict) -> Tensor:
        similarity = self.product(_unit(data.X[rows], "rows", rows.start), pts["unit"])
        return (1 - similarity).clamp_(0, 2)

    def nearest(self, data: FitData, rows: slice, pts: dict) -> tuple[Tensor, Tensor]:
        unit = _unit(data.X[rows], "rows", rows.start)
        labels = torch.min(1 - self.product(unit, pts["unit"]), dim=1).indices
        exact = (unit * pts["unit"][labels]).sum(dim=1)  # the chosen centroid, exactly
        return labels, (1 - exact).clamp_(0, 2)


class _Hooked(_Geometry):
    """A user distance declaring ``accepts_torch``: its own hooks, called with tensors."""

    def __init__(self, precision: str, label: str, strategy: Any) -> None:
        super().__init__(precision)
        self.label, self.strategy = label, strategy
        self.hooks: Any = plugins.build([("distance", label, strategy)])
        self.squared = bool(getattr(strategy, "squared", False))
        kind = type(strategy)
        # Distance's default cost converts with NumPy: ask pairwise and square it here
        self.from_distance = isinstance(strategy, Distance) and (
            kind.cost is Distance.cost and kind.kmeansfw_cost is Distance.kmeansfw_cost
        )
        self.function = strategy.func if isinstance(strategy, FunctionDistance) else None
        self.squared_update = True

    def learn(self, data: FitData) -> dict:
        learned: dict = {}
        for answer in contract.call(self.hooks, "kmeansfw_learn", data=data):
            learned.update(answer)
        return learned

    def prepare(self, data: FitData) -> None:
        contract.call(self.hooks, "kmeansfw_prepare", data=data)

    def points(self, P: Tensor, data: FitData) -> dict:
        cache: dict = {}
        contract.call(self.hooks, "kmeansfw_prepare_centroids", centroids=P, data=data, cache=cache)
        return {"P": P, "cache": cache}

    def _ask(self, name: str, data: FitData, rows: slice, pts: dict) -> Tensor:
        X, P = data.X[rows], pts["P"]
        if self.function is not None:
            try:
                value = self.function(X, P, **self.strategy.params)
            except Exception as exc:
                raise StrategyError(
                    f"distance strategy {self.label} failed in {name}: {type(exc).__name__}: {exc}"
                ) from exc
        else:
            value = contract.call(
                self.hooks, name, X=X, centroids=P, rows=rows, data=data, cache=pts["cache"]
            )
        return self._checked(name, value, (X.shape[0], P.shape[0]), X)

    def _checked(self, name: str, value: Any, shape: tuple, X: Tensor) -> Tensor:
        where = f"distance strategy {self.label}"
        if not isinstance(value, torch.Tensor):
            raise StrategyError(
                f"{where} returned a {type(value).__name__} from {name}, not a torch tensor "
                "(it declares accepts_torch)"
            )
        if tuple(value.shape) != shape:
            raise StrategyError(
                f"{where} returned shape {tuple(value.shape)} from {name}, expected {shape}"
            )
        if value.device != X.device or value.dtype != X.dtype:
            raise StrategyError(
                f"{where} returned a {value.dtype} tensor on {value.device} from {name}, "
                f"expected {X.dtype} on {X.device}"
            )
        if not bool(torch.isfinite(value).all()):
            raise StrategyError(f"{where} returned values containing NaN or infinity ({name})")
        low = float(value.min()) if value.numel() else 0.0
        if low < 0:  # round-off as contract.clip_round_off: relative to the block's scale
            scale = float(value.abs().max())
            if -low > contract.ROUND_OFF_ULPS * torch.finfo(value.dtype).eps * scale:
                raise StrategyError(f"{where} returned negative values from {name}")
            value = value.clamp(min=0)
        return value

    def distance(self, data: FitData, rows: slice, pts: dict) -> Tensor:
        return self._ask("kmeansfw_distance", data, rows, pts)

    def cost(self, data: FitData, rows: slice, pts: dict) -> Tensor:
        if self.from_distance or self.function is not None:
            d = self.distance(data, rows, pts)
            return d * d if self.squared else d
        return self._ask("kmeansfw_cost", data, rows, pts)


def _declares_torch(strategy: Any) -> bool:
    func = getattr(strategy, "func", None)
    return bool(getattr(strategy, "accepts_torch", False)) or (
        isinstance(strategy, CallableInit | FunctionDistance)
        and bool(getattr(func, "accepts_torch", False))
    )


# --------------------------------------------------------------------------- the plan
@attrs.define(eq=False)
class _Plan:
    """The torch implementation of each slot of a fit (refusing what has none)."""

    geometry: _Geometry
    init: Any
    spherical: bool
    empty: Any
    relocate: bool


_NO_TORCH = (
    "has no torch implementation; on torch tensors kmeansfw runs the distances euclidean, "
    "sqeuclidean and cosine, the assignment nearest, the updates mean and spherical, the "
    "empty-cluster strategies relocate-farthest, keep and raise, the seedings auto, "
    "k-means++, k-means||, random and explicit centroids, and any strategy declaring "
    "accepts_torch = True (see kmeansfw.backends.torch)"
)


def _refusal(slot: str, label: str) -> StrategyError:
    return StrategyError(f"{slot} strategy {label} {_NO_TORCH}")


def _geometry_of(label: str, strategy: Any, precision: str) -> _Geometry:
    kind = type(strategy)
    if kind is Euclidean or kind is SqEuclidean:
        return _Euclidean(precision, squared_transform=kind is SqEuclidean)
    if kind is Cosine:
        return _Cosine(precision)
    if _declares_torch(strategy):
        return _Hooked(precision, label, strategy)
    raise _refusal("distance", label)


def _plan(strategies: list[tuple[str, str, Any]], hooks: Any, precision: str) -> _Plan:
    geometry: _Geometry | None = None
    init = empty = None
    spherical = relocate = False
    for slot, label, strategy in strategies:
        kind = type(strategy)
        if slot == "distance":
            geometry = _geometry_of(label, strategy, precision)
        elif slot == "init":
            ok = kind in (AutoInit, KMeansPlusPlus, KMeansParallel, RandomInit, ArrayInit)
            if not (ok or _declares_torch(strategy)):
                raise _refusal(slot, label)
            init = strategy
        elif slot == "assignment":
            if kind not in (Nearest, Auto):
                raise _refusal(slot, label)
        elif slot == "update":
            if kind not in (Mean, Spherical):
                raise _refusal(slot, label)
            spherical = kind is Spherical
        elif slot == "empty":
            relocate = kind is RelocateFarthest
            takes = set(hooks.argnames("kmeansfw_empty_clusters") or ())
            if not relocate and takes & {"labels", "costs", "data", "hook"}:
                raise StrategyError(
                    f"empty strategy {label} {_NO_TORCH}: its kmeansfw_empty_clusters reads "
                    "per-sample labels, costs or data (a host-side strategy may read only "
                    "old_centroids, new_centroids, cluster_weights and rng)"
                )
            empty = strategy
    assert geometry is not None
    return _Plan(geometry, init, spherical, empty, relocate)


def _refuse_config(cfg: Config) -> None:
    if cfg.batch_size is not None:
        raise ConfigError(
            "config key 'batch_size': mini-batch fits are not supported on torch tensors "
            "(leave batch_size unset)"
        )
    if cfg.checkpoint is not None:
        raise ConfigError(
            "config key 'checkpoint': checkpoints are not supported on torch tensors "
            "(leave checkpoint unset)"
        )


# --------------------------------------------------------------------------- passes
def _assign(
    plan: _Plan, data: FitData, C: Tensor, accumulate: bool
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Labels and exact costs of every sample and, with ``accumulate``, the update's
    float64 per-cluster sums (k, d) and weights (k,)."""
    X = data.X
    n, k = X.shape[0], C.shape[0]
    pts = plan.geometry.points(C, data)
    labels = torch.empty(n, dtype=torch.int64, device=X.device)
    costs = torch.empty(n, dtype=X.dtype, device=X.device)
    sums = weights = None
    if accumulate:
        sums = torch.zeros((k, X.shape[1]), dtype=torch.float64, device=X.device)
        weights = torch.zeros(k, dtype=torch.float64, device=X.device)
    for rows in _blocks(data):
        block_labels, block_costs = plan.geometry.nearest(data, rows, pts)
        labels[rows], costs[rows] = block_labels, block_costs
        if sums is not None and weights is not None:
            values, w = _contributions(plan, data, rows)
            sums.index_add_(0, block_labels, values)
            weights.index_add_(0, block_labels, w)
    return labels, costs, sums, weights


def _sums(plan: _Plan, data: FitData, labels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The update's float64 per-cluster sums and weights of a given partition."""
    X = data.X
    sums = torch.zeros((k, X.shape[1]), dtype=torch.float64, device=X.device)
    weights = torch.zeros(k, dtype=torch.float64, device=X.device)
    for rows in _blocks(data):
        values, w = _contributions(plan, data, rows)
        sums.index_add_(0, labels[rows], values)
        weights.index_add_(0, labels[rows], w)
    return sums, weights


def _contributions(plan: _Plan, data: FitData, rows: slice) -> tuple[Tensor, Tensor]:
    """Each row's float64 addition to its cluster's sums, and its weight (mean: ``w x``;
    spherical: ``w x / |x|``, zero rows adding nothing)."""
    X, w = data.X[rows], _sw(data)[rows]
    w64 = w.to(torch.float64)
    if not plan.spherical:
        if data.cache.get(_UNIT_WEIGHTS, False):
            return X.to(torch.float64), w64
        return X.to(torch.float64) * w64[:, None], w64
    norms = (X * X).sum(dim=1).sqrt()
    scaled = w / torch.where(norms > 0, norms, torch.full_like(norms, float("inf")))
    return X.to(torch.float64) * scaled.to(torch.float64)[:, None], w64


def _centroids_from(plan: _Plan, sums: Tensor, weights: Tensor, C: Tensor) -> Tensor:
    """The update's centroids from the sums (as ``mean`` / ``spherical`` compute them)."""
    filled = weights > 0
    if bool(filled.all()):
        new = (sums / weights[:, None]).to(C.dtype)
    else:
        new = C.clone()
        new[filled] = (sums[filled] / weights[filled, None]).to(C.dtype)
    if plan.spherical:
        norms = (new * new).sum(dim=1).sqrt()
        usable = filled & (norms > 0)
        new[usable] = new[usable] / norms[usable, None]
        new[~usable] = C[~usable]
    return new


def _relocate(
    plan: _Plan,
    data: FitData,
    labels: Tensor,
    costs: Tensor,
    C: Tensor,
    new: Tensor,
    weights: Tensor,
) -> Tensor:
    """``relocate-farthest``: each empty cluster takes one of the samples of highest cost
    (farthest first), and the clusters concerned take the update of the moved partition,
    as the NumPy strategy asks the update again."""
    empty = torch.nonzero(weights == 0)[:, 0]
    out = new.clone()
    out[empty] = C[empty]
    n_far = min(int(empty.numel()), costs.shape[0])
    far = torch.topk(costs, n_far).indices
    far = far[costs[far] > 0]
    if far.numel() == 0:
        return out
    # the update of the changed partition, summed afresh (one pass, no distance product)
    targets = empty[: far.numel()]
    donors = labels[far]
    moved = labels.clone()
    moved[far] = targets
    moved_sums, moved_weights = _sums(plan, data, moved, C.shape[0])
    relocated = _centroids_from(plan, moved_sums, moved_weights, out)
    changed = torch.unique(torch.cat([donors, targets]))
    out[changed] = relocated[changed]
    return out


def _min_cost(
    plan: _Plan, data: FitData, P: Tensor, closest: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Every sample's lowest cost to the points ``P`` and its index, lowered by
    ``closest`` when given."""
    X = data.X
    pts = plan.geometry.points(P, data)
    data = _columns(data, P.shape[0])
    low = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
    arg = torch.empty(X.shape[0], dtype=torch.int64, device=X.device)
    for rows in _blocks(data):
        cost = plan.geometry.cost(data, rows, pts)
        value, best = cost.min(dim=1)
        low[rows], arg[rows] = value, best
    if closest is not None:
        low = torch.minimum(low, closest)
    return low, arg


# --------------------------------------------------------------------------- seeding
def _plusplus(
    plan: _Plan, data: FitData, k: int, rng: np.random.Generator, trials: int | None
) -> Tensor:
    """Greedy k-means++ (the NumPy strategy's steps and draws), passes on the device."""
    X, sw = data.X, _sw(data)
    n = X.shape[0]
    t = trials or 2 + int(np.log(k))
    sw64 = sw.to(torch.float64)
    first = weighted_draw(rng, _host(sw).astype(np.float64))
    draws = torch.as_tensor(rng.uniform(size=(k - 1, t)), device=X.device)
    chosen = [first]
    closest = _min_cost(plan, data, X[first : first + 1], None)[0]
    potential = float(torch.dot(sw64, closest.to(torch.float64)))
    keep = n * t * X.element_size() <= KEEP_COSTS_BYTES
    for c in range(1, k):
        if potential <= 0:
            candidates = torch.tensor(
                [min(int(float(draws[c - 1, 0]) * n), n - 1)], device=X.device
            )
        else:
            cumulative = torch.cumsum(sw64 * closest.to(torch.float64), dim=0)
            candidates = torch.searchsorted(cumulative, draws[c - 1] * potential)
            candidates = candidates.clamp_(max=n - 1)
        pts = plan.geometry.points(X[candidates], data)
        pots = torch.zeros(candidates.shape[0], dtype=torch.float64, device=X.device)
        lowered = []
        for rows in _blocks(_columns(data, t)):
            cost = torch.minimum(plan.geometry.cost(data, rows, pts), closest[rows, None])
            pots += (sw64[rows, None] * cost.to(torch.float64)).sum(dim=0)
            if keep:
                lowered.append(cost)
        best = int(torch.argmin(pots))
        if keep:
            closest = torch.cat([part[:, best] for part in lowered])
        else:
            point = X[candidates[best : best + 1]]
            closest = _min_cost(plan, data, point, closest)[0]
        potential = float(pots[best])
        chosen.append(int(candidates[best]))
    return X[torch.tensor(chosen, device=X.device)].clone()


def _parallel(
    plan: _Plan, data: FitData, k: int, rng: np.random.Generator, strategy: KMeansParallel
) -> Tensor:
    """k-means|| (the NumPy strategy's rounds and draws), passes on the device."""
    X, sw = data.X, _sw(data)
    n = X.shape[0]
    sw64 = sw.to(torch.float64)
    first = weighted_draw(rng, _host(sw).astype(np.float64))
    chosen = [torch.tensor([first], device=X.device)]
    candidates = X[first : first + 1]
    closest = _min_cost(plan, data, candidates, None)[0]
    nearest = torch.zeros(n, dtype=torch.int64, device=X.device)
    for _ in range(strategy.rounds):
        potential = float(torch.dot(sw64, closest.to(torch.float64)))
        if potential <= 0:
            break
        p = (strategy.oversampling * k * sw64 * closest.to(torch.float64) / potential).clamp(
            max=1.0
        )
        uniforms = torch.as_tensor(rng.random(n), device=X.device)
        picked = torch.nonzero(uniforms < p)[:, 0]
        if picked.numel() == 0:
            continue
        offset = candidates.shape[0]
        low, arg = _min_cost(plan, data, X[picked], None)
        better = low < closest
        closest = torch.where(better, low, closest)
        nearest = torch.where(better, arg + offset, nearest)
        candidates = torch.cat([candidates, X[picked]])
        chosen.append(picked)
    if candidates.shape[0] <= k:  # too few candidates: top up at random
        taken = _host(torch.cat(chosen))
        extra = rng.choice(
            np.setdiff1d(np.arange(n), taken), size=k - candidates.shape[0], replace=False
        )
        return torch.cat([candidates, X[torch.as_tensor(extra, device=X.device)]]).clone()
    weights = torch.bincount(nearest, weights=sw64, minlength=candidates.shape[0])
    keep = weights > 0
    small = _with_rows(data, candidates[keep], weights[keep].to(X.dtype), k)
    plan.geometry.prepare(small)
    centers = _plusplus(plan, small, k, rng, None)
    for _ in range(strategy.recluster_iter):
        _, _, sums, cluster_weights = _assign(plan, small, centers, accumulate=True)
        assert sums is not None and cluster_weights is not None
        new = _centroids_from(plan, sums, cluster_weights, centers)
        if torch.equal(new, centers):
            break
        centers = new
    return centers


def _initialize(plan: _Plan, hooks: Any, data: FitData, k: int, rng: np.random.Generator) -> Tensor:
    """The initial centroids of a run, on the device, checked."""
    X = data.X
    init = plan.init
    if isinstance(init, AutoInit):
        init = init.choice(X.shape[0], k)
    if isinstance(init, KMeansPlusPlus):
        C = _plusplus(plan, data, k, rng, init.n_local_trials)
    elif isinstance(init, KMeansParallel):
        C = _parallel(plan, data, k, rng, init)
    elif isinstance(init, RandomInit):
        p = _host(data.sample_weight).astype(np.float64)
        positive = int(np.count_nonzero(p))
        if positive < k:
            raise ValueError(
                f"only {positive} samples have a positive weight, fewer than n_clusters={k}"
            )
        idx = rng.choice(X.shape[0], size=k, replace=False, p=p / p.sum())
        C = X[torch.as_tensor(idx, device=X.device)].clone()
    elif isinstance(init, ArrayInit):
        array = init.centroids
        if array.shape != (k, X.shape[1]):
            raise contract.fail(
                hooks,
                "kmeansfw_init_centroids",
                f"holds an init array of shape {array.shape}, expected (n_clusters, "
                f"n_features) = ({k}, {X.shape[1]})",
            )
        C = torch.as_tensor(np.array(array), device=X.device).to(X.dtype)
    else:  # a seeding declaring accepts_torch
        answer = contract.call(
            hooks,
            "kmeansfw_init_centroids",
            X=X,
            sample_weight=data.sample_weight,
            n_clusters=k,
            rng=rng,
            data=data,
            hook=hooks,
        )
        C = torch.as_tensor(answer).to(device=X.device, dtype=X.dtype)
    if tuple(C.shape) != (k, X.shape[1]) or not bool(torch.isfinite(C).all()):
        raise contract.fail(
            hooks,
            "kmeansfw_init_centroids",
            f"returned centroids of shape {tuple(C.shape)} (expected {(k, X.shape[1])}, finite)",
        )
    return C


# --------------------------------------------------------------------------- the loop
@attrs.define(eq=False)
class TorchState(engine.FitState):
    """What observers and convergence criteria see in a torch fit.

    As :class:`kmeansfw.engine.loop.FitState`, with ``centroids`` and
    ``previous_centroids`` host NumPy copies (``centroids_tensor`` and
    ``previous_centroids_tensor`` on the device) and ``labels``, ``previous_labels`` and
    ``costs`` tensors on the device; ``data.X`` and ``data.sample_weight`` are the
    tensors.  ``n_changed`` and ``objective`` are computed on the device.
    """

    centroids_tensor: Any = None
    previous_centroids_tensor: Any = None

    def _count_changed(self) -> int:
        labels: Any = self.labels
        return int((labels != self.previous_labels).sum())

    @property
    def objective(self) -> float:
        """Weighted sum of the costs of this iteration's assignment (float64)."""
        return self._cached("objective", lambda: _objective(self.data, self.costs))


@attrs.frozen(eq=False)
class _Tensors:
    """The best run's results on the device."""

    centroids: Tensor
    labels: Tensor


def _run(
    plan: _Plan,
    hooks: Any,
    data: FitData,
    cfg: Config,
    rng: np.random.Generator,
    run_index: int,
    keep: dict,
) -> engine.FitResult:
    """One restart: seeding, then Lloyd iterations as :func:`kmeansfw.engine.loop.run`
    sequences them (assign and accumulate, update, empty clusters, observers, criteria,
    a final assignment unless the criteria proved the labels current)."""
    k = cfg.n_clusters
    state = TorchState(data=data, n_clusters=k, tol=cfg.tol, rng=rng, run=run_index)
    C = _initialize(plan, hooks, data, k, rng)
    state.centroids, state.centroids_tensor = read_only(_host(C)), C
    hooks.kmeansfw_fit_start(state=state)
    reason = "max_iter"
    for iteration in range(1, cfg.max_iter + 1):
        C = state.centroids_tensor
        labels, costs, sums, weights = _assign(plan, data, C, accumulate=True)
        assert sums is not None and weights is not None
        new = _centroids_from(plan, sums, weights, C)
        host_weights = _host(weights)
        if not host_weights.all():
            if plan.relocate:
                new = _relocate(plan, data, labels, costs, C, new, weights)
            else:  # a host-side strategy: centroids and weights only
                answer = contract.call(
                    hooks,
                    "kmeansfw_empty_clusters",
                    old_centroids=state.centroids,
                    new_centroids=_host(new),
                    cluster_weights=host_weights,
                    rng=rng,
                )
                new = torch.as_tensor(np.asarray(answer), device=C.device).to(C.dtype)
        state.previous_labels, state.labels, state.costs = state.labels, labels, costs  # type: ignore[assignment]
        state.previous_centroids = state.centroids
        state.previous_centroids_tensor = C
        state.centroids, state.centroids_tensor = read_only(_host(new)), new
        state.cluster_weights = host_weights
        state.iteration = iteration
        state.strict = False  # a criterion sets it when the labels match the new centroids
        hooks.kmeansfw_iteration_end(state=state)
        if any(contract.call(hooks, "kmeansfw_converged", state=state)):
            reason = "converged"
            break
    labels, costs = cast(Tensor, state.labels), cast(Tensor, state.costs)
    if not state.strict:  # one final assignment so that the labels match the centroids
        labels, costs, _, _ = _assign(plan, data, state.centroids_tensor, accumulate=False)
    result = engine.FitResult(
        centroids=np.array(state.centroids),
        labels=_host(labels),
        costs=_host(costs),
        objective=_objective(data, costs),
        n_iter=state.iteration,
        converged=reason == "converged",
        run=run_index,
        stop_reason=reason,
    )
    best = keep.get("objective")
    if best is None or result.objective < best:  # the first of lowest objective, as best_fit
        keep["objective"] = result.objective
        keep["tensors"] = _Tensors(state.centroids_tensor, labels)
    hooks.kmeansfw_fit_end(result=result)
    return result


def _mean_variance(data: FitData) -> float:
    """``tol``'s scale: the mean over features of the (unweighted) variance, float64."""
    X = data.X
    n = X.shape[0]
    total = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
    for rows in _blocks(data):
        total += X[rows].sum(dim=0, dtype=torch.float64)
    mean = total / n
    squares = torch.zeros_like(total)
    for rows in _blocks(data):
        centered = X[rows].to(torch.float64) - mean
        squares += (centered * centered).sum(dim=0)
    return float((squares / n).mean())


def fit(
    X: Any,
    config: Config | dict | str | None = None,
    *,
    sample_weight: Any = None,
    **params: Any,
) -> Fit:
    """:func:`kmeansfw.fit` for a torch tensor: the fit runs on the tensor's device.

    Parameters and result as :func:`kmeansfw.fit` (``executor`` may be a
    :class:`TorchExecutor`); the result's arrays are NumPy.
    """
    cfg = Config.load(config) if config is not None else Config()
    if params:
        cfg = Config.from_dict({**cfg.to_dict(), **params})
    return fit_config(X, cfg, sample_weight=sample_weight)[0]


def fit_config(
    X: Any,
    cfg: Config,
    *,
    sample_weight: Any = None,
    strategies: list[tuple[str, str, Any]] | None = None,
) -> tuple[Fit, _Tensors]:
    """:func:`fit` for a built :class:`~kmeansfw.core.config.Config` (and, optionally, its
    built strategies); also returns the best run's centroids and labels on the device."""
    _refuse_config(cfg)
    options = _options(cfg.executor)
    X = _as_tensor(X)
    n, d = X.shape
    check_n_clusters(n, cfg.n_clusters)
    if strategies is None:
        strategies = cfg.build_strategies()
    observers = cfg.build_observers()
    history = History() if cfg.history else None
    if history is not None:
        observers.append(history)
    hooks = plugins.build(strategies, observers)
    plan = _plan(strategies, hooks, options.precision)
    budget = _budget(options, cfg.memory_budget, X.device)
    sw = _weights(sample_weight, X)
    data = _data(X, sw, budget, cfg.n_clusters, {})
    data.cache[_UNIT_WEIGHTS] = sample_weight is None
    _check_finite(X, _blocks(data))
    rng = make_rng(cfg.random_state)
    keep: dict = {}
    with _matmul_precision(options.precision), torch.no_grad():
        data.fitted = Fitted(plan.geometry.learn(data))
        plan.geometry.prepare(data)
        data.cache[_MEAN_VARIANCE] = _mean_variance(data)
        runs = (
            _run(plan, hooks, data, cfg, rng, run_index, keep)
            for run_index in range(cfg.resolved_n_init())
        )
        outcome = best_fit(cfg, runs, strategies, history, data.fitted)
    return outcome, keep["tensors"]


# --------------------------------------------------------------------------- estimator
def fit_estimator(estimator: Any, X: Any, sample_weight: Any = None) -> Any:
    """``KMeans.fit`` for a tensor: fits on its device and sets the fitted attributes as
    ``KMeans.fit`` does (NumPy arrays), plus ``cluster_centers_tensor_`` and
    ``labels_tensor_`` on the device; returns the estimator."""
    cfg, strategies = estimator._built_config()
    X = _as_tensor(X)
    outcome, tensors = fit_config(X, cfg, sample_weight=sample_weight, strategies=strategies)
    estimator.n_features_in_ = X.shape[1]
    estimator.__dict__.pop("feature_names_in_", None)
    estimator._set_fitted(outcome.strategies, outcome.fitted, outcome.centroids)
    estimator.labels_ = outcome.labels.astype(np.int32)
    estimator.inertia_ = outcome.objective
    estimator.n_iter_ = outcome.n_iter
    estimator.cluster_centers_tensor_ = tensors.centroids
    estimator.labels_tensor_ = tensors.labels
    weights = sample_weight
    if isinstance(weights, torch.Tensor):
        weights = _host(weights)
    # partial_fit (NumPy input) continues from this fit, as after an in-memory fit
    estimator._online = (estimator._online_after_fit(weights), make_rng(estimator.random_state))
    for name in ("n_steps_", "_streamed"):
        estimator.__dict__.pop(name, None)
    if outcome.history is not None:
        estimator.history_ = outcome.history.for_run(outcome.result.run)
    return estimator


def _model(estimator: Any, X: Any, sample_weight: Any = None) -> tuple[_Plan, FitData, Tensor]:
    """A fitted estimator's geometry, the prepared data and its centroids on X's device."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    X = _as_tensor(X)
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    options = _options(estimator.executor)
    strategies = estimator._strategies
    label, distance = next((lb, s) for slot, lb, s in strategies if slot == "distance")
    geometry = _geometry_of(label, distance, options.precision)
    k = estimator.cluster_centers_.shape[0]
    budget = _budget(options, int(estimator.memory_budget_mb * 2**20), X.device)
    data = _data(X, _weights(sample_weight, X), budget, k, estimator.fitted_state_)
    _check_finite(X, _blocks(data))
    geometry.prepare(data)
    C = torch.as_tensor(estimator.cluster_centers_, device=X.device).to(X.dtype)
    plan = _Plan(geometry, None, False, None, False)
    return plan, data, C


def predict(estimator: Any, X: Any) -> Any:
    """``KMeans.predict`` for a tensor: the labels, an int64 tensor on X's device."""
    plan, data, C = _model(estimator, X)
    with _matmul_precision(_options(estimator.executor).precision), torch.no_grad():
        return _assign(plan, data, C, accumulate=False)[0]


def transform(estimator: Any, X: Any) -> Any:
    """``KMeans.transform`` for a tensor: the (n, k) distances, a tensor on X's device
    (filled chunk by chunk: the one (n, k) matrix is the answer asked for)."""
    plan, data, C = _model(estimator, X)
    out = torch.empty((data.n_samples, C.shape[0]), dtype=data.X.dtype, device=data.X.device)
    with _matmul_precision(_options(estimator.executor).precision), torch.no_grad():
        pts = plan.geometry.points(C, data)
        for rows in _blocks(data):
            out[rows] = plan.geometry.distance(data, rows, pts)
    return out


def score(estimator: Any, X: Any, sample_weight: Any = None) -> float:
    """``KMeans.score`` for a tensor: minus the objective under the fitted centroids."""
    plan, data, C = _model(estimator, X, sample_weight)
    with _matmul_precision(_options(estimator.executor).precision), torch.no_grad():
        costs = _assign(plan, data, C, accumulate=False)[1]
        return -_objective(data, costs)
