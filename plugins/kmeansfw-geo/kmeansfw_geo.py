"""kmeansfw-geo: cluster (latitude, longitude) points by great-circle distance.

A third-party kmeansfw plugin.  Installing this distribution registers, through the
``kmeansfw`` entry-point group:

* distance ``haversine``: great-circle distance between (latitude, longitude) pairs in
  degrees, in kilometres (parameter ``radius``); the objective is the sum of squared
  great-circle distances and the natural update is ``geodesic-mean``;
* update ``geodesic-mean``: the weighted Fréchet (Karcher) mean on the sphere, the point
  that minimizes the sum of squared great-circle distances to the cluster's members.

>>> import kmeansfw
>>> km = kmeansfw.KMeans(3, distance="haversine")          # update: geodesic-mean
"""

from __future__ import annotations

import math
import numbers

import attrs
import numpy as np

import kmeansfw

#: Mean Earth radius in kilometres (IUGG).
EARTH_RADIUS_KM = 6371.0088


def _real(value: object) -> bool:
    # Python's or NumPy's real numbers, not booleans
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _check_radius(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not _real(value) or not value > 0:
        raise ValueError(f"haversine: radius must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"haversine: radius must be finite, got {value!r}")


def _check_steps(instance: object, attribute: attrs.Attribute, value: int) -> None:
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if not integer or value < 1:
        raise ValueError(f"geodesic-mean: max_steps must be an integer >= 1, got {value!r}")


def _check_tol(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not _real(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"geodesic-mean: tol must be a finite number >= 0, got {value!r}")


def check_coordinates(X: np.ndarray, what: str = "X") -> None:
    """Raise ValueError unless X is (n, 2) latitudes in [-90, 90] and longitudes."""
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(
            f"haversine: {what} must have 2 columns (latitude, longitude in degrees), "
            f"got shape {X.shape}"
        )
    bad = np.flatnonzero(np.abs(X[:, 0]) > 90)
    if bad.size:
        raise ValueError(
            f"haversine: latitudes must lie in [-90, 90] degrees; {bad.size} do not "
            f"(first: row {bad[0]}, latitude {X[bad[0], 0]})"
        )


def to_unit_vectors(X: np.ndarray) -> np.ndarray:
    """(n, 3) unit vectors of (latitude, longitude) degrees."""
    lat, lon = np.radians(X[:, 0]), np.radians(X[:, 1])
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def to_degrees(P: np.ndarray) -> np.ndarray:
    """(n, 2) (latitude, longitude) degrees of (n, 3) unit vectors."""
    lat = np.degrees(np.arcsin(np.clip(P[:, 2], -1.0, 1.0)))
    lon = np.degrees(np.arctan2(P[:, 1], P[:, 0]))
    return np.column_stack([lat, lon])


@attrs.frozen
class Haversine:
    """Great-circle distance between (latitude, longitude) points given in degrees.

    Parameters
    ----------
    radius : float, default=6371.0088
        Sphere radius; distances come out in its unit (km by default).
    """

    name = "haversine"
    objective = "sum of squared great-circle distances"
    natural_update = "geodesic-mean"
    is_metric = True
    radius: float = attrs.field(default=EARTH_RADIUS_KM, validator=_check_radius)

    @kmeansfw.hookimpl
    def kmeansfw_prepare(self, data) -> None:
        check_coordinates(data.X)

    @kmeansfw.hookimpl
    def kmeansfw_distance(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        lat1, lon1 = np.radians(X[:, 0])[:, None], np.radians(X[:, 1])[:, None]
        lat2, lon2 = np.radians(centroids[:, 0])[None, :], np.radians(centroids[:, 1])[None, :]
        h = (
            np.sin((lat2 - lat1) / 2) ** 2
            + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        )
        return (2 * self.radius * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))).astype(X.dtype)

    @kmeansfw.hookimpl
    def kmeansfw_cost(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        d = self.kmeansfw_distance(X=X, centroids=centroids)
        return d * d


@attrs.frozen
class GeodesicMean:
    """Weighted Fréchet (Karcher) mean on the sphere, by Riemannian gradient steps.

    Starts from the normalized mean of the members' unit vectors and moves along the
    average of their log maps until the step is below ``tol`` radians; all clusters are
    updated together, vectorized over samples.

    Parameters
    ----------
    max_steps : int, default=50
        At most this many steps (at least 1).
    tol : float, default=1e-12
        Stop when every cluster's step is below this many radians (>= 0).
    """

    name = "geodesic-mean"
    max_steps: int = attrs.field(default=50, validator=_check_steps)
    tol: float = attrs.field(default=1e-12, validator=_check_tol)

    @kmeansfw.hookimpl
    def kmeansfw_update(
        self, data, labels: np.ndarray, centroids: np.ndarray, n_clusters: int
    ) -> tuple[np.ndarray, np.ndarray]:
        P = to_unit_vectors(data.X.astype(np.float64))
        w = data.sample_weight.astype(np.float64)
        weights = np.bincount(labels, weights=w, minlength=n_clusters)
        filled = weights > 0

        def per_cluster_mean(V: np.ndarray) -> np.ndarray:
            sums = np.column_stack(
                [np.bincount(labels, weights=w * V[:, c], minlength=n_clusters) for c in range(3)]
            )
            return sums / np.where(filled, weights, 1.0)[:, None]

        centre = per_cluster_mean(P)
        norms = np.linalg.norm(centre, axis=1)
        ok = filled & (norms > 0)
        centre[ok] /= norms[ok, None]
        centre[~ok] = to_unit_vectors(centroids.astype(np.float64))[~ok]
        for _ in range(self.max_steps):
            c = centre[labels]
            cos = np.clip(np.einsum("ij,ij->i", P, c), -1.0, 1.0)
            tangent = P - cos[:, None] * c
            length = np.linalg.norm(tangent, axis=1)
            angle = np.arccos(cos)
            scale = np.divide(angle, length, out=np.zeros_like(angle), where=length > 0)
            step = per_cluster_mean(tangent * scale[:, None])
            size = np.linalg.norm(step, axis=1)
            if size.max(initial=0.0) < self.tol:
                break
            direction = np.divide(
                step, size[:, None], out=np.zeros_like(step), where=size[:, None] > 0
            )
            centre = np.cos(size)[:, None] * centre + np.sin(size)[:, None] * direction
            centre /= np.linalg.norm(centre, axis=1)[:, None]
        new = centroids.astype(data.dtype, copy=True)
        new[filled] = to_degrees(centre[filled]).astype(data.dtype)
        return new, weights


@kmeansfw.hookimpl
def kmeansfw_register_strategies(register) -> None:
    """Register ``haversine`` and ``geodesic-mean`` in the kmeansfw catalog."""
    register("distance", "haversine", Haversine)
    register("update", "geodesic-mean", GeodesicMean)
