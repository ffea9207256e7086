"""Distances as torch operations on row chunks: Euclidean and squared Euclidean (centered
on the training mean, the reduced ``|c'|^2 - 2 x'.c'`` product in the chosen precision, half
precision on power-of-two scaled rows), cosine, and a user distance declaring
``accepts_torch`` called through its own hooks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from kmeansfw.backends.torch.data import _blocks, _host
from kmeansfw.backends.torch.executor import _LOW
from kmeansfw.core import contract
from kmeansfw.core.adapters import FunctionDistance
from kmeansfw.core.data import FitData
from kmeansfw.core.distance import Distance
from kmeansfw.core.errors import StrategyError
from kmeansfw.engine import plugins
from kmeansfw.strategies.euclidean import (
    _MEAN,
    check_spread,
    fitted_origin,
    learned_origin,
    origin_sample_rows,
)


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
    """Euclidean (``squared_transform``: sqeuclidean), centered on the NumPy fit's point
    (:func:`kmeansfw.strategies.euclidean.learned_origin`: the training mean, zeros, or
    ``euclidean.origin``)."""

    label = "euclidean"

    def __init__(self, precision: str, squared_transform: bool = False) -> None:
        super().__init__(precision)
        self.squared_transform = squared_transform

    def learn(self, data: FitData) -> dict:
        X = data.X
        total = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
        for rows in _blocks(data):
            total += X[rows].sum(dim=0, dtype=torch.float64)
        mean = _host((total / X.shape[0]).to(X.dtype))
        # whether the data is centered already: the NumPy fit's rule on the same rows
        # (cast on the host: not every device has float64); the mean is this backend's
        # own, so at the rule's very limit the choice may differ from a NumPy fit's
        picked = torch.as_tensor(origin_sample_rows(*X.shape), device=X.device)
        sample = _host(X[picked])
        check_spread(sample, mean, mean.dtype)  # squared distances that would underflow
        return learned_origin(sample, mean)

    def prepare(self, data: FitData) -> None:
        # the point the fitted state names (fitted_origin: the mean, zeros or its
        # euclidean.origin; a data set outside a fit: its own, as the NumPy backend's)
        fitted = data.fitted if data.fitted.get(_MEAN) is not None else self.learn(data)
        mean = fitted_origin(fitted)
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


def _unit(X: Tensor, what: str, offset: int = 0, in_float64: bool = False) -> Tensor:
    """``X`` with its rows scaled to unit norm (rows of zero norm refused); with
    ``in_float64`` a float32 tensor is scaled in float64 and rounded once, as the NumPy
    backend scales its centroids (not on MPS, which has no float64)."""
    source = X
    if in_float64 and X.dtype != torch.float64 and X.device.type != "mps":
        source = X.double()
    norms = (source * source).sum(dim=1).sqrt()
    zero = torch.nonzero(norms == 0)
    if zero.numel():
        raise ValueError(
            f"cosine distance is undefined for zero vectors: {zero.numel()} {what} of zero "
            f"norm (first at index {int(zero[0, 0]) + offset})"
        )
    return (source / norms[:, None]).to(X.dtype)


class _Cosine(_Geometry):
    """Cosine distance ``1 - x.c / (|x| |c|)``, clipped to [0, 2] as the NumPy backend."""

    label = "cosine"
    squared_update = False

    def prepare(self, data: FitData) -> None:
        for rows in _blocks(data):
            _unit(data.X[rows], "rows of X", rows.start)

    def points(self, P: Tensor, data: FitData) -> dict:
        return {"unit": _unit(P, "centroids", in_float64=True)}

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
