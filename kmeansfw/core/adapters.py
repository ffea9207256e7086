"""Adapters that turn plain vectorized functions into strategies."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from kmeansfw.core import contract
from kmeansfw.core.data import real_numbers
from kmeansfw.core.distance import Distance
from kmeansfw.core.markers import hookimpl

OBJECTIVES = ("squared", "distance")


@attrs.frozen(eq=False)
class FunctionDistance(Distance):
    """A distance strategy from a function ``func(X_block, centroids, **params) -> (b, k)``.

    Parameters
    ----------
    func : callable
        Vectorized: takes a (b, d) block and the (k, d) centroids, returns (b, k) distances.
        Its answer is converted to the data's dtype (the adapter's job, so a plain NumPy
        function need not care whether the data is float32).
    name : str
        The catalog name, used in error messages.
    objective : {"squared", "distance"}
        What the fit minimizes: the sum of squared distances (k-means) or of distances.
    natural_update : str
        The update strategy that minimizes the objective.
    is_metric : bool
        Whether the distance satisfies the triangle inequality.
    params : dict
        Extra keyword arguments passed to ``func`` on every call.
    """

    func: Callable[..., np.ndarray]
    name: str = "function"
    objective: str = attrs.field(default="squared", validator=attrs.validators.in_(OBJECTIVES))
    natural_update: str = "mean"
    is_metric: bool = False
    params: dict[str, Any] = attrs.field(factory=dict)

    @property
    def squared(self) -> bool:  # type: ignore[override]
        """Whether the fit minimizes squared distances."""
        return self.objective == "squared"

    def pairwise(self, X: np.ndarray, centroids: np.ndarray, data: Any, cache: dict) -> np.ndarray:
        d = self.func(X, centroids, **self.params)
        if d is None:
            raise ValueError("returned None instead of a (b, k) array of distances")
        d = np.asarray(d)
        if d.dtype.kind not in "fiu":
            raise ValueError(f"returned an array of dtype {d.dtype}, not numbers")
        return d.astype(X.dtype, copy=False)

    def cost(self, X: np.ndarray, centroids: np.ndarray, data: Any, cache: dict) -> np.ndarray:
        d = self.pairwise(X, centroids, data, cache)
        if not self.squared:
            return d
        clipped = contract.clip_round_off(d)  # -1e-16 from 1 - cos is round-off, not an error
        if clipped is None:
            raise ValueError("returned negative distances")
        return clipped * clipped


@attrs.frozen(eq=False)
class CallableInit:
    """Initialization from a function ``func(X, n_clusters, rng) -> (k, d) centroids``.

    A plain function passed as ``init`` is wrapped in one.  Sparse CSR data reaches the
    function only when it says it handles it: set ``func.accepts_sparse = True`` (or
    decorate it with :func:`sparse_init`), or wrap it as
    ``CallableInit(func, accepts_sparse=True)``; otherwise a fit on sparse X is refused
    with a message naming the function.  The function must return dense centroids.

    Parameters
    ----------
    func : callable
        ``func(X, n_clusters, rng)``: the (n, d) data (an ndarray, or a scipy CSR matrix
        when sparse input is accepted), the number of clusters and the fit's
        :class:`numpy.random.Generator` (a :class:`numpy.random.RandomState` drawing
        from it when the third parameter is named ``random_state``, as in
        scikit-learn's init functions: see :func:`random_argument`); returns
        (n_clusters, d) centroids: an array or nested lists of real numbers, converted
        to the data's dtype.
    name : str
        The label used in messages.
    accepts_sparse : bool or None
        Whether ``func`` handles sparse X; None reads ``func.accepts_sparse`` (default
        False).
    """

    func: Callable[..., np.ndarray]
    name: str = "callable"
    sparse: bool | None = attrs.field(default=None, alias="accepts_sparse")

    @property
    def accepts_sparse(self) -> bool:
        """Whether the function takes sparse CSR data (see the class docstring)."""
        if self.sparse is not None:
            return bool(self.sparse)
        return bool(getattr(self.func, "accepts_sparse", False))

    @hookimpl
    def kmeansfw_init_centroids(
        self, X: np.ndarray, n_clusters: int, rng: np.random.Generator
    ) -> np.ndarray:
        try:
            centroids = self.func(X, n_clusters, random_argument(self.func, rng))
        except AttributeError as exc:
            if "Generator' object has no attribute" not in str(exc):
                raise
            raise AttributeError(
                f"{exc} (the third argument is the fit's numpy.random.Generator: "
                "rng.integers, rng.choice, rng.random; a function whose third parameter is "
                "named random_state, as scikit-learn calls its init functions, gets a "
                "numpy.random.RandomState drawing from it instead)"
            ) from exc
        dtype = getattr(X, "dtype", None)
        if isinstance(centroids, (list, tuple, np.ndarray)) and isinstance(dtype, np.dtype):
            # numbers of another type (a list of ints, a float32 answer on float64 data)
            # become the data's dtype, as scikit-learn's init functions' do; anything
            # else is left to the answer's check, which names what is wrong with it
            try:
                array = np.asarray(centroids)
            except (TypeError, ValueError):  # ragged lists, say
                return centroids
            if array.dtype.kind in "fiu":  # not booleans: a mask is not centroids
                return array.astype(dtype, copy=False)
        return centroids


class SharedRandomState(np.random.RandomState):
    """A :class:`numpy.random.RandomState` drawing from a fit's generator's own bit
    generator (one stream: the same seed, the same draws), which also answers the
    :class:`numpy.random.Generator`'s methods it lacks (``integers``, ...) from that
    generator, so that a function written for either kind runs.  Methods both have
    (``choice``, ``permutation``, ``random``, ...) are RandomState's.

    Parameters
    ----------
    rng : numpy.random.Generator
        The fit's generator.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng.bit_generator)
        self._generator = rng

    def __getattr__(self, name: str) -> Any:  # only what RandomState itself lacks
        if name == "_generator":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self._generator, name)

    def __reduce__(self) -> tuple:  # copies and pickles stay shared (RandomState's: plain)
        return (type(self), (self._generator,))


def random_argument(func: Callable[..., Any], rng: np.random.Generator) -> Any:
    """What an init function gets as its third argument: the fit's generator, or, for a
    function whose third parameter is named ``random_state`` (scikit-learn calls its
    init functions with ``random_state=``, a :class:`numpy.random.RandomState`), a
    :class:`SharedRandomState` on the generator's own bit generator, so that
    ``randint``, ``permutation`` and the other legacy methods work (and the Generator's
    own, such as ``integers``) and every draw still comes from the fit's one stream (the
    same seed, the same centroids).

    Parameters
    ----------
    func : callable
        The init function.
    rng : numpy.random.Generator
        The fit's generator.

    Returns
    -------
    numpy.random.Generator or SharedRandomState
    """
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # a builtin or an object without a signature
        return rng
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) >= 3 and params[2].kind in positional and params[2].name == "random_state":
        return SharedRandomState(rng)
    return rng


def sparse_init(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an init function ``func(X, n_clusters, rng)`` as handling sparse CSR ``X``.

    Sets ``func.accepts_sparse = True`` and returns ``func`` unchanged, so it can be used
    as a decorator::

        @sparse_init
        def first_rows(X, n_clusters, rng):
            return X[:n_clusters].toarray() if hasattr(X, "toarray") else X[:n_clusters]
    """
    func.accepts_sparse = True  # type: ignore[attr-defined]
    return func


#: Explicit initial centroids up to this size are compared by value, so fits with equal
#: ones share their built config and plugin manager; larger ones are rebuilt per fit.
SHARE_MAX_BYTES = 64 << 10


def _read_only_copy(value: object) -> np.ndarray:
    try:  # a copy: later changes to the caller's array do not leak in
        array = np.array(value)
    except (TypeError, ValueError) as exc:  # ragged lists, say
        raise ValueError(f"the init array cannot be read as an array: {exc}") from None
    real_numbers(array, "the init array")
    array.setflags(write=False)
    return array


@attrs.frozen(eq=False)
class ArrayInit:
    """Explicit initial centroids, an array of shape (k, d).

    Holds a read-only copy and compares equal to another ``ArrayInit`` with the same
    dtype, shape and values; up to :data:`SHARE_MAX_BYTES` it is ``shareable`` (see
    :func:`kmeansfw.core.catalog.is_value_strategy`).
    """

    name = "array"
    accepts_sparse = True
    centroids: np.ndarray = attrs.field(converter=_read_only_copy)

    @property
    def shareable(self) -> bool:
        """Whether fits may share this strategy (and its manager): small arrays only."""
        return self.centroids.nbytes <= SHARE_MAX_BYTES

    def _content(self) -> tuple:
        return (self.centroids.dtype.str, self.centroids.shape, self.centroids.tobytes())

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._content() == other._content()

    def __hash__(self) -> int:
        return hash(self._content())

    @hookimpl
    def kmeansfw_init_centroids(self, X: np.ndarray, n_clusters: int) -> np.ndarray:
        init = self.centroids
        if init.ndim != 2 or init.shape != (n_clusters, X.shape[1]):
            raise ValueError(
                f"the init array has shape {init.shape}, expected (n_clusters, n_features)"
                f" = ({n_clusters}, {X.shape[1]})"
            )
        if np.dtype(X.dtype).kind == "f" and init.dtype.itemsize > np.dtype(X.dtype).itemsize:
            largest = float(np.abs(init).max(initial=0.0))
            if largest > float(np.finfo(X.dtype).max):  # inf once cast: say so
                raise ValueError(
                    f"the init array holds values up to {largest:.3g}, beyond the largest "
                    f"{np.dtype(X.dtype)} ({float(np.finfo(X.dtype).max):.3g}) that the "
                    f"{np.dtype(X.dtype)} data's centroids are kept in"
                )
        return init.astype(X.dtype, copy=True)
