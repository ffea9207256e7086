"""A distance described in one place: declared attributes and default fast paths.

A distance is a geometry: its pairwise distance, its cost (what the fit sums), the update
that minimizes that objective, whether it is a true metric (so triangle-inequality bounds
may use it) and whether it takes sparse rows.  :class:`Distance` holds all of it with
defaults, so an author writes :meth:`Distance.pairwise` (and optionally
:meth:`Distance.cost`) and overrides a fast path only when it knows a faster one.

The default fast paths (:func:`nearest_by_blocks`, :func:`paired_cost_by_cluster`) only
ask the distance's own ``kmeansfw_cost`` / ``kmeansfw_distance``; the engine registers them
(:data:`FAST_PATH_DEFAULTS`) beside any distance that does not implement the hook, whether
it subclasses :class:`Distance` or not, so wrappers and errors see them as the
distance's.  :func:`describe` reads the declared attributes of any strategy, with their
defaults.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np

from kmeansfw.core import contract
from kmeansfw.core.markers import hookimpl

#: Declared attributes of strategies and their defaults when a strategy declares none.
DEFAULTS: dict[str, Any] = {
    "objective": "its objective",
    "natural_update": None,
    "is_metric": False,
    "accepts_sparse": False,
    "accepts_torch": False,
    "requires_metric": False,
    "shareable": True,
    "squared": False,
    "reads_costs": False,
    "splits_work": False,
    "sums_map": False,
}


@attrs.frozen
class Description:
    """The declared attributes of one strategy (see :data:`DEFAULTS`)."""

    name: str
    objective: str
    natural_update: str | None
    is_metric: bool
    accepts_sparse: bool
    accepts_torch: bool
    requires_metric: bool
    shareable: bool
    squared: bool
    reads_costs: bool
    splits_work: bool
    sums_map: bool


def describe(strategy: Any) -> Description:
    """The declared attributes of ``strategy``, defaults filled in.

    The only place that reads them: a strategy declares ``name``, ``accepts_sparse``,
    ``accepts_torch``, ``shareable`` and ``reads_costs``; a distance ``objective``,
    ``natural_update``, ``is_metric`` and ``squared``; an assignment ``requires_metric``;
    a distance, an assignment or an update ``splits_work`` (its work on a block that runs
    inline splits between numba's threads, see :func:`kmeansfw.core.data.runs_inline`);
    an update ``sums_map`` (its map is the weighted per-cluster sums, see
    :mod:`kmeansfw.core.sums`), which a subclass that defines its own
    ``kmeansfw_accumulate`` or ``new_partial`` inherits only by declaring it again.
    """
    values = {key: getattr(strategy, key, default) for key, default in DEFAULTS.items()}
    values["name"] = str(getattr(strategy, "name", None) or type(strategy).__name__)
    for key in (
        "is_metric",
        "accepts_sparse",
        "accepts_torch",
        "requires_metric",
        "shareable",
        "squared",
        "reads_costs",
        "splits_work",
        "sums_map",
    ):
        values[key] = bool(values[key])
    if values["sums_map"]:
        values["sums_map"] = all(  # the map and the partial it starts from
            declared_with(strategy, "sums_map", method)
            for method in ("kmeansfw_accumulate", "new_partial")
        )
    return Description(**values)


def declared_with(strategy: Any, attribute: str, method: str) -> bool:
    """Whether ``attribute`` is declared by the class that defines ``method`` (or a
    subclass of it, or the object itself): a declaration about a method is not inherited
    by a subclass that replaces the method."""
    if attribute in getattr(strategy, "__dict__", {}):
        return True
    mro = type(strategy).__mro__
    declared = next((i for i, c in enumerate(mro) if attribute in vars(c)), len(mro))
    defined = next((i for i, c in enumerate(mro) if method in vars(c)), len(mro))
    return declared <= defined


class Distance:
    """Base class of distance strategies: declared attributes and every default.

    Subclass it (an attrs class, frozen when it holds only parameters) and implement
    :meth:`pairwise`; set ``squared = True`` when the fit minimizes squared distances (the
    natural update is then usually ``mean``).  Every other hook has a correct default:
    ``kmeansfw_cost`` from :meth:`cost`, the nearest search and the paired cost from cost
    blocks.  Override a hook with your own ``@kmeansfw.hookimpl`` method only for a faster
    exact answer.

    Attributes
    ----------
    name : str
        The catalog name, used in errors.
    objective : str
        What the fit minimizes, in words (shown by warnings and ``kmeansfw plugins``).
    natural_update : str or None
        The update strategy that minimizes the objective; ``update=None`` takes it.
        Undeclared (None), a fit warns (:class:`kmeansfw.PairingWarning`) and uses mean.
    is_metric : bool
        Whether the triangle inequality holds (``hamerly`` and ``yinyang`` need it).
    accepts_sparse : bool
        Whether ``pairwise`` takes scipy.sparse CSR rows.
    squared : bool
        Whether the cost is the squared distance (else the distance itself).

    Examples
    --------
    >>> import attrs, numpy as np, kmeansfw
    >>> @attrs.frozen
    ... class Chebyshev(kmeansfw.Distance):
    ...     name = "my-chebyshev"
    ...     natural_update = "mean"
    ...     is_metric = True
    ...     def pairwise(self, X, centroids, data, cache):
    ...         return np.abs(X[:, None, :] - centroids[None, :, :]).max(axis=2)
    """

    name: ClassVar[str] = "distance"
    objective: ClassVar[str] = "sum of distances"
    natural_update: ClassVar[str | None] = None
    is_metric: ClassVar[bool] = False
    accepts_sparse: ClassVar[bool] = False
    squared: ClassVar[bool] = False

    def pairwise(self, X: np.ndarray, centroids: np.ndarray, data: Any, cache: dict) -> np.ndarray:
        """The (b, k) distances between the rows of ``X`` and ``centroids``.

        Parameters
        ----------
        X : ndarray of shape (b, d)
            A block of rows (read-only; a CSR matrix when ``accepts_sparse``).
        centroids : ndarray of shape (k, d)
            The centroids, in the data's dtype.
        data : FitData
            The prepared data set the block belongs to (its dtype, fitted state).
        cache : dict
            The distance's own per-data cache (e.g. row norms kept between calls).

        Returns
        -------
        ndarray of shape (b, k)
            The distance of each row to each centroid.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement pairwise()")

    def cost(self, X: np.ndarray, centroids: np.ndarray, data: Any, cache: dict) -> np.ndarray:
        """The (b, k) costs: the squared distance when ``squared``, else the distance.

        Parameters
        ----------
        X : ndarray of shape (b, d)
            A block of rows, as for :meth:`pairwise`.
        centroids : ndarray of shape (k, d)
            The centroids, in the data's dtype.
        data : FitData
            The prepared data set the block belongs to.
        cache : dict
            The distance's own per-data cache.

        Returns
        -------
        ndarray of shape (b, k)
            The cost of each row to each centroid, the terms of the objective.
        """
        d = np.asarray(self.pairwise(X, centroids, data, cache))
        return d * d if self.squared else d

    @hookimpl
    def kmeansfw_distance(
        self, X: np.ndarray, centroids: np.ndarray, data: Any, cache: dict
    ) -> np.ndarray:
        return self.pairwise(X, centroids, data, cache)

    @hookimpl
    def kmeansfw_cost(self, X: np.ndarray, centroids: np.ndarray, data: Any, cache: dict):
        return self.cost(X, centroids, data, cache)


def nearest_by_blocks(
    hook: Any,
    X: np.ndarray,
    centroids: np.ndarray,
    groups: np.ndarray | None,
    n_groups: int,
    rows: slice | None,
    data: Any,
    cache: dict,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The default ``kmeansfw_nearest``: argmin of the cost block, rivals from distances."""
    cost = _block(hook, "kmeansfw_cost", X, centroids, rows, data, cache)
    b = cost.shape[0]
    index = np.arange(b)
    labels = cost.argmin(axis=1)
    costs = cost[index, labels]
    if n_groups == 0:
        return labels, costs, None, None
    dist = _block(hook, "kmeansfw_distance", X, centroids, rows, data, cache).astype(np.float64)
    distances = dist[index, labels].astype(data.dtype)
    dist[index, labels] = np.inf
    rivals = np.empty((b, n_groups), dtype=data.dtype)
    for g in range(n_groups):  # groups of centroids, never samples
        members = np.asarray(groups) == g
        rivals[:, g] = dist[:, members].min(axis=1) if members.any() else np.inf
    return labels, costs, distances, rivals


def paired_cost_by_cluster(
    hook: Any,
    X: np.ndarray,
    centroids: np.ndarray,
    labels: np.ndarray,
    data: Any,
    cache: dict,
) -> np.ndarray:
    """The default ``kmeansfw_paired_cost``: the cost to one centroid at a time."""
    out = np.empty(X.shape[0], dtype=data.dtype)
    for j in np.unique(labels):  # clusters present in the block, never samples
        members = np.flatnonzero(labels == j)
        one = centroids[j : j + 1]
        out[members] = _block(hook, "kmeansfw_cost", X[members], one, None, data, cache)[:, 0]
    return out


class DefaultNearest:
    """Plugin answering ``kmeansfw_nearest`` for a distance that does not
    (:func:`nearest_by_blocks`); the engine registers it beside such a distance."""

    @hookimpl
    def kmeansfw_nearest(self, X, centroids, groups, n_groups, rows, data, cache, hook):
        return nearest_by_blocks(hook, X, centroids, groups, n_groups, rows, data, cache)


class DefaultPairedCost:
    """Plugin answering ``kmeansfw_paired_cost`` for a distance that does not
    (:func:`paired_cost_by_cluster`); the engine registers it beside such a distance."""

    @hookimpl
    def kmeansfw_paired_cost(self, X, centroids, labels, data, cache, hook):
        return paired_cost_by_cluster(hook, X, centroids, labels, data, cache)


#: The distance fast paths with a default, and the plugin class providing it.
FAST_PATH_DEFAULTS = {
    "kmeansfw_nearest": DefaultNearest,
    "kmeansfw_paired_cost": DefaultPairedCost,
}


def _block(hook, name, X, centroids, rows, data, cache) -> np.ndarray:
    value = contract.call(hook, name, X=X, centroids=centroids, rows=rows, data=data, cache=cache)
    shape = (X.shape[0], centroids.shape[0])
    return contract.check_float_array(
        hook, name, value, shape, data.dtype, nonnegative=True, what="block"
    )
