"""Distances beyond Euclidean; each knows its objective and the update that minimizes it.

Every distance computes whole (b, k) blocks: the L_p family through compiled kernels
(:func:`kmeansfw.kernels.lp_block`), cosine and Mahalanobis through matrix products.
Parameters are validated when the strategy is built, i.e. at configuration time.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import scipy.sparse as sp

from kmeansfw import kernels  # looked up at call time: numba loads on first use
from kmeansfw.core.data import FitData, real_numbers
from kmeansfw.core.distance import Distance
from kmeansfw.core.markers import hookimpl
from kmeansfw.engine.executors import map_tasks
from kmeansfw.strategies.euclidean import Euclidean, row_sq_norms
from kmeansfw.strategies.validators import real


@attrs.frozen
class SqEuclidean(Euclidean):
    """Squared Euclidean distance (``transform`` returns squared distances).

    Same objective (inertia) and natural update (``mean``) as ``euclidean``.  Not a true
    metric (no triangle inequality).
    """

    name = "sqeuclidean"
    is_metric = False

    @hookimpl
    def kmeansfw_distance(
        self, X: np.ndarray, rows: slice | None, data: FitData, cache: dict
    ) -> np.ndarray:
        return self.kmeansfw_cost(X=X, rows=rows, data=data, cache=cache)


@attrs.frozen
class _KernelDistance(Distance):
    """A distance computed by one compiled block kernel; its cost is the distance."""

    kind = "L1"  # the name of the kernel's constant in kmeansfw.kernels

    @hookimpl
    def kmeansfw_distance(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        return kernels.lp_block(X, centroids, getattr(kernels, self.kind))

    @hookimpl
    def kmeansfw_cost(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        return kernels.lp_block(X, centroids, getattr(kernels, self.kind))


@attrs.frozen
class Manhattan(_KernelDistance):
    """Manhattan (L1, cityblock) distance; the objective is the sum of distances.

    Natural update: ``median`` (the coordinate-wise median minimizes it).  A metric.
    """

    name = "manhattan"
    objective = "sum of Manhattan distances"
    natural_update = "median"
    is_metric = True
    kind = "L1"


@attrs.frozen
class Chebyshev(_KernelDistance):
    """Chebyshev (L-infinity) distance; the objective is the sum of distances.

    Natural update: ``mean``.  No closed form minimizes the sum; measured on blobs,
    anisotropic and uneven-size data (``benchmarks/bench_pairings.py``), the mean ends
    with the lowest objective of the built-in updates (the medoid 3-6 % higher).  A
    metric.
    """

    name = "chebyshev"
    objective = "sum of Chebyshev distances"
    natural_update = "mean"
    is_metric = True
    kind = "LINF"


def _check_p(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not real(value) or not math.isfinite(value):
        raise ValueError(f"minkowski: p must be a finite number, got {value!r}")
    if value <= 0:
        raise ValueError(f"minkowski: p must be > 0, got {value!r}")


@attrs.frozen
class Minkowski(Distance):
    """Minkowski distance ``(sum |x - c|^p)^(1/p)``; the objective is the sum of distances.

    Natural update: ``median`` for p < 2, ``mean`` for p >= 2, as measured on blobs,
    anisotropic and uneven-size data (``benchmarks/bench_pairings.py``: p = 1, 1.5, 2, 3;
    the medoid ends 3-10 % higher).  A metric for p >= 1.

    Parameters
    ----------
    p : float, default=2
        The order, > 0.  p = 1, 1.5, 2, 2.5, 3, 4 take vectorized fast paths; any other
        p computes a power per term (about 30x slower).
    """

    name = "minkowski"
    objective = "sum of Minkowski distances"
    p: float = attrs.field(default=2.0, validator=_check_p)

    @property
    def natural_update(self) -> str:
        """``median`` for p < 2, else ``mean`` (measured, see the class docstring)."""
        return "median" if self.p < 2 else "mean"

    @property
    def is_metric(self) -> bool:
        """The triangle inequality holds for p >= 1."""
        return self.p >= 1

    @hookimpl
    def kmeansfw_distance(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        powered = kernels.lp_block(X, centroids, kernels.LP, self.p)
        if self.p == 2:
            return np.sqrt(powered, out=powered)
        if self.p == 3:
            return np.cbrt(powered, out=powered)
        if self.p == 4:
            return np.sqrt(np.sqrt(powered, out=powered), out=powered)
        return np.power(powered, 1.0 / self.p, out=powered)

    @hookimpl
    def kmeansfw_cost(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        return self.kmeansfw_distance(X=X, centroids=centroids)


_COSINE_C = "cosine.unit_centroids"


def _unit_rows(X, what: str, *, in_float64: bool = False):
    """``X`` with its rows scaled to unit norm (rows of zero norm refused, by ``what``).

    With ``in_float64`` a dense float32 array is scaled in float64 and rounded once
    (the centroids: an error in a centroid's norm moves the cost of every one of its
    members the same way, where the rows' own errors cancel).
    """
    source = X.astype(np.float64, copy=False) if in_float64 and not sp.issparse(X) else X
    norms = np.sqrt(row_sq_norms(source))
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(
            f"cosine distance is undefined for zero vectors: {zero.size} {what} of zero norm "
            f"(first at index {zero[0]})"
        )
    if sp.issparse(X):
        return sp.csr_matrix(X.multiply(1 / norms[:, None]))
    return (source / norms[:, None]).astype(X.dtype, copy=False)


@attrs.frozen
class Cosine(Distance):
    """Cosine distance ``1 - x.c / (|x| |c|)``; the objective is the sum of distances.

    Natural update: ``spherical`` (the unit-norm mean).  Rejects zero vectors.  Not a
    true metric.
    """

    name = "cosine"
    objective = "sum of cosine distances"
    natural_update = "spherical"
    is_metric = False
    accepts_sparse = True

    @hookimpl
    def kmeansfw_prepare(self, data: FitData) -> None:
        def check(task: list[slice]) -> None:
            for rows in task:
                try:
                    _unit_rows(data.X[rows], "rows of X")
                except ValueError as exc:
                    raise ValueError(f"{exc} (in rows {rows.start}-{rows.stop - 1})") from None

        map_tasks(data, check)

    @hookimpl
    def kmeansfw_prepare_centroids(self, centroids: np.ndarray, cache: dict) -> None:
        cache[_COSINE_C] = _unit_rows(centroids, "centroids", in_float64=True)

    @hookimpl
    def kmeansfw_distance(self, X: np.ndarray, cache: dict) -> np.ndarray:
        similarity = np.asarray(_unit_rows(X, "rows") @ cache[_COSINE_C].T)
        np.subtract(1, similarity, out=similarity)
        return np.clip(similarity, 0, 2, out=similarity)

    @hookimpl
    def kmeansfw_cost(self, X: np.ndarray, cache: dict) -> np.ndarray:
        return self.kmeansfw_distance(X=X, cache=cache)


_MAHALANOBIS_L = "mahalanobis.cholesky"
#: In the fitted state: the training mean (the data's dtype) rows and centroids are
#: centered on before the factor's products (a state without it: none).
_MAHALANOBIS_ORIGIN = "mahalanobis.origin"


def _cholesky_of_inverse_covariance(VI: np.ndarray, what: str) -> np.ndarray:
    if VI.ndim != 2 or VI.shape[0] != VI.shape[1]:
        raise ValueError(f"mahalanobis: {what} must be a square matrix, got shape {VI.shape}")
    if not np.isfinite(VI).all():
        raise ValueError(f"mahalanobis: {what} contains NaN or infinity")
    if not np.allclose(VI, VI.T, rtol=1e-10, atol=1e-12 * np.abs(VI).max()):
        raise ValueError(f"mahalanobis: {what} is not symmetric")
    try:
        return np.linalg.cholesky(VI)
    except np.linalg.LinAlgError:
        raise ValueError(f"mahalanobis: {what} is singular or not positive definite") from None


def _optional_matrix(value: object) -> np.ndarray | None:
    if value is None:
        return None
    try:
        matrix = np.asarray(value)
    except (TypeError, ValueError) as exc:  # a ragged list: name the parameter
        raise ValueError(f"mahalanobis: VI must be a matrix of real numbers ({exc})") from None
    real_numbers(matrix, "mahalanobis: VI")  # a string, complex values (their part lost)
    return matrix.astype(np.float64)


def _learned(data: FitData, key: str) -> np.ndarray:
    """A fitted value, or the error saying the data set has none (not from a fit)."""
    try:
        return data.fitted[key]
    except KeyError:
        raise ValueError(
            f"{key} was not learned: this data set does not come from a fit of this "
            "distance (kmeansfw_learn runs on the training data)"
        ) from None


def covariance(data: FitData, mean: np.ndarray | None = None) -> np.ndarray:
    """The (unweighted) covariance matrix of ``data.X``, in bounded memory (``mean``:
    ``data.X``'s float64 column means when the caller has them)."""
    X = data.X
    if mean is None:
        mean = X.mean(axis=0, dtype=np.float64)

    def run_task(task: list[slice]) -> np.ndarray:
        total = np.zeros((X.shape[1], X.shape[1]))
        for rows in task:  # block by block: one block-sized temporary at a time
            centered = X[rows] - mean
            total += centered.T @ centered
        return total

    return np.sum(map_tasks(data, run_task), axis=0) / max(1, data.n_samples - 1)


@attrs.frozen(eq=False)
class Mahalanobis(Distance):
    """Mahalanobis distance ``sqrt((x - c)' VI (x - c))``; objective: sum of squares.

    Natural update: ``mean`` (it minimizes the sum of squared Mahalanobis distances).
    A metric.

    Parameters
    ----------
    VI : array of shape (d, d) or None
        The inverse covariance matrix (symmetric positive definite); None estimates it
        from the training data (its covariance must not be singular).  Either way the
        factor is fitted state: ``predict`` and ``transform`` use the training data's,
        whatever data they are given.
    """

    name = "mahalanobis"
    objective = "sum of squared Mahalanobis distances"
    natural_update = "mean"
    is_metric = True
    VI: np.ndarray | None = attrs.field(default=None, converter=_optional_matrix)

    def __attrs_post_init__(self) -> None:
        if self.VI is not None:
            _cholesky_of_inverse_covariance(self.VI, "VI")

    @hookimpl
    def kmeansfw_learn(self, data: FitData) -> dict:
        mean = np.asarray(data.X.mean(axis=0, dtype=np.float64))
        # rows and centroids centered before the products: far from the origin
        # (float32 at 1e6), products of the raw rows lost the differences, and 8 of 400
        # labels with them (54 at 1e7)
        origin = mean.astype(data.dtype)
        if self.VI is not None:
            VI = self.VI
            if VI.shape[0] != data.n_features:
                raise ValueError(
                    f"mahalanobis: VI is {VI.shape[0]}x{VI.shape[0]} but X has "
                    f"{data.n_features} features"
                )
            L = _cholesky_of_inverse_covariance(VI, "VI")
        else:
            cov = covariance(data, mean)
            if np.linalg.matrix_rank(cov) < data.n_features:
                raise ValueError(
                    "mahalanobis: the covariance matrix of X is singular (constant or "
                    "collinear features); pass VI explicitly"
                )
            L = _cholesky_of_inverse_covariance(np.linalg.inv(cov), "the inverse covariance of X")
        return {_MAHALANOBIS_L: L, _MAHALANOBIS_ORIGIN: origin}

    @hookimpl
    def kmeansfw_cost(self, X: np.ndarray, centroids: np.ndarray, data: FitData) -> np.ndarray:
        L = _learned(data, _MAHALANOBIS_L).astype(X.dtype, copy=False)
        C = centroids.astype(X.dtype)
        origin = data.fitted.get(_MAHALANOBIS_ORIGIN)
        if origin is not None:  # the products of centered values keep their digits
            origin = np.asarray(origin, dtype=X.dtype)
            X, C = X - origin, C - origin
        # (x - c)' L L' (x - c) = |L'x - L'c|^2, from differences of the products
        return kernels.lp_block(X @ L, C @ L, kernels.LP, 2.0)

    @hookimpl
    def kmeansfw_distance(self, X: np.ndarray, centroids: np.ndarray, data: FitData) -> np.ndarray:
        return np.sqrt(self.kmeansfw_cost(X=X, centroids=centroids, data=data))
