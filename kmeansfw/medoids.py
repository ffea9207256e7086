"""The scikit-learn estimator :class:`KMedoids`, a drop-in for scikit-learn-extra's."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from kmeansfw.core.adapters import FunctionDistance
from kmeansfw.core.catalog import CATALOG, array_like
from kmeansfw.core.config import Config, InvalidParameterError, budget_bytes
from kmeansfw.core.data import FitData, fitted_centers
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins, steps
from kmeansfw.engine.fitting import fit_config
from kmeansfw.estimator import refuse_backend_input
from kmeansfw.strategies.euclidean import warn_if_predictions_imprecise
from kmeansfw.strategies.medoids import medoid_rows

_FLOATS = [np.float64, np.float32]

#: scikit-learn's metric names and the catalog distance whose cost is that distance.
METRICS: dict[str, Any] = {
    "euclidean": {"name": "minkowski", "p": 2},
    "l2": {"name": "minkowski", "p": 2},
    "manhattan": "manhattan",
    "cityblock": "manhattan",
    "l1": "manhattan",
    "chebyshev": "chebyshev",
    "cosine": "cosine",
    "sqeuclidean": "sqeuclidean",
}
#: ``method`` -> the update strategy and the stop rule that fits it.
METHODS = {"alternate": ("medoid", "unchanged"), "pam": ("pam", "centroids-unchanged")}
INITS = ("random", "heuristic", "k-medoids++", "build")


class KMedoids(ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, BaseEstimator):
    """K-medoids clustering: each cluster's center is one of its samples, and the fit
    minimizes the sum of distances (not squared) of the samples to their medoid.

    A drop-in for ``sklearn_extra.cluster.KMedoids``, run by kmeansfw's engine: the same
    hooks, observers and convergence criteria as :class:`kmeansfw.KMeans`, and memory
    linear in n (no n x n distance matrix, ``metric="precomputed"`` is not offered).

    Parameters
    ----------
    n_clusters : int, default=8
        The number of medoids (clusters) to find.
    metric : str, dict, callable or distance object, default="euclidean"
        The distance between samples and medoids: scikit-learn's names
        ``"euclidean"``/``"l2"`` (the ``minkowski`` distance with p = 2, so the
        objective is the sum of Euclidean distances), ``"manhattan"``/
        ``"cityblock"``/``"l1"``, ``"chebyshev"``, ``"cosine"``, ``"sqeuclidean"``; any
        other kmeansfw distance name or table (``{"name": "minkowski", "p": 3}``); a
        distance object; or a *vectorized* function ``(X_block, Y) -> (b, m)`` distances
        (unlike scikit-learn's per-pair callables), whose sum the fit minimizes.
    method : {"alternate", "pam"}, default="alternate"
        ``"alternate"``: Voronoi iteration, each medoid the member of lowest total
        distance to its cluster (the ``medoid`` update; fast; in a cluster of more than
        512 members, the best of 512 sampled candidates: the update's ``max_candidates``).
        ``"pam"``: PAM's swap phase with FasterPAM's gains on sampled candidates, block
        by block (the ``pam`` update; better objective, see
        :class:`kmeansfw.strategies.medoids.Pam`).
    init : {"random", "heuristic", "k-medoids++", "build"}, array or strategy, \
default="heuristic"
        ``"random"``: k distinct samples; ``"heuristic"``: the k samples of lowest total
        distance to (a sample of) the others; ``"k-medoids++"``: k-means++ sampling in
        proportion to the distance; ``"build"``: PAM's BUILD (exact up to 2048 samples,
        on a uniform subsample of 2048 above).  An array's rows must be samples of X.
    max_iter : int, default=300
        Iterations (alternations, or swap rounds) at most.
    random_state : int, numpy Generator or None, default=None
        Seeds every random draw of the fit (the init's samples, sampled candidates);
        the same seed gives the same medoids.
    convergence : str, dict, object or list of them, default=None
        Extra stop rules (e.g. ``"time-budget"``), asked with the method's own rule
        (``"unchanged"`` for alternate, ``"centroids-unchanged"`` for pam).
    observers : sequence of str, dict or objects, default=()
        Plugins called at fit start, after each iteration and at fit end.
    memory_budget_mb : float, default=64
        Working memory per thread for block buffers (``float('inf')``: no limit).  A
        block holds at least 256 rows, so a budget under 256 rows' buffers is exceeded
        up to that size.
    n_threads : int or None, default=None
        Worker threads (None: all CPUs available).
    history : bool, default=False
        Record per-iteration statistics in ``history_``.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The medoids, ``X[medoid_indices_]``.
    medoid_indices_ : ndarray of shape (n_clusters,)
        The samples that are the medoids: distinct samples, also where the data has
        fewer distinct values than ``n_clusters`` (medoids of equal value then name
        different copies, while there are enough of them).
    labels_ : ndarray of shape (n_samples,)
        The index of each sample's medoid.
    inertia_ : float
        The sum of the (weighted) distances of the samples to their medoid.
    n_iter_ : int
        Iterations (alternations, or swap rounds) run.
    n_features_in_ : int
        Features seen during ``fit``.
    history_ : list of dict
        Only with ``history=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeansfw import KMedoids
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 4], [4, 0]])
    >>> km = KMedoids(n_clusters=2, method="pam", random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [4.0, 2.0]]
    >>> float(km.inertia_)
    8.0
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        metric: Any = "euclidean",
        method: str = "alternate",
        init: Any = "heuristic",
        max_iter: int = 300,
        random_state: Any = None,
        convergence: Any = None,
        observers: Any = (),
        memory_budget_mb: float = 64.0,
        n_threads: int | None = None,
        history: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.metric = metric
        self.method = method
        self.init = init
        self.max_iter = max_iter
        self.random_state = random_state
        self.convergence = convergence
        self.observers = observers
        self.memory_budget_mb = memory_budget_mb
        self.n_threads = n_threads
        self.history = history

    # ------------------------------------------------------------------ config
    def _distance(self) -> Any:
        metric = self.metric
        if isinstance(metric, str):
            if metric == "precomputed":
                raise InvalidParameterError(
                    "KMedoids: metric='precomputed' is not supported: kmeansfw never holds an "
                    "n x n distance matrix; pass the data and a metric"
                )
            if metric not in METRICS and metric not in CATALOG.names("distance"):
                raise InvalidParameterError(
                    f"KMedoids: parameter 'metric' must be one of scikit-learn's names "
                    f"{sorted(METRICS)} or a kmeansfw distance {CATALOG.names('distance')}, "
                    f"got {metric!r}"
                )
            return METRICS.get(metric, metric)
        if callable(metric) and not hasattr(metric, "kmeansfw_cost"):
            name = getattr(metric, "__name__", "metric")
            return FunctionDistance(
                metric, name=name, objective="distance", natural_update="medoid"
            )
        return metric

    def get_config(self, X: Any = None) -> Config:
        """The :class:`~kmeansfw.core.config.Config` these parameters run.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), optional
            The data an array ``init`` is checked against (each of its rows must be a
            sample of ``X``).

        Returns
        -------
        Config
            The method's update and stop rule with the extra ``convergence`` rules.
        """
        if self.method not in METHODS:
            raise InvalidParameterError(
                f"KMedoids: parameter 'method' must be one of {sorted(METHODS)}, got "
                f"{self.method!r}"
            )
        update, rule = METHODS[self.method]
        extra = self.convergence
        if extra is None:
            extra = []
        elif not isinstance(extra, list | tuple):
            extra = [extra]
        init = self.init
        if isinstance(init, str) and init not in INITS:
            raise InvalidParameterError(
                f"KMedoids: parameter 'init' must be one of {list(INITS)}, an array of "
                f"samples or an init strategy, got {init!r}"
            )
        if (isinstance(init, np.ndarray | list | tuple) or array_like(init)) and X is not None:
            init = np.asarray(init, dtype=X.dtype)
            if init.ndim == 2 and init.shape[1] == X.shape[1]:
                found = medoid_rows(X, init, np.zeros(X.shape[0], dtype=np.intp))
                if (found < 0).any():
                    raise ValueError(
                        "KMedoids: every row of an init array must be a sample of X; row "
                        f"{int(np.flatnonzero(found < 0)[0])} is not"
                    )
        return Config(
            n_clusters=self.n_clusters,
            init=init,
            distance=self._distance(),
            update=update,
            convergence=[rule, *extra],
            observers=list(self.observers),
            n_init=1,
            max_iter=self.max_iter,
            tol=0.0,
            random_state=self.random_state,
            memory_budget_mb=self.memory_budget_mb,
            n_threads=self.n_threads,
            history=self.history,
        )

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMedoids:
        """Find the medoids.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples (float32 stays float32; other types become float64).
        y : None
            Ignored; present for scikit-learn's API.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the samples' distances in the objective (None: all 1).

        Returns
        -------
        self : KMedoids
            The fitted estimator.
        """
        refuse_backend_input(X, "KMedoids")
        X = validate_data(self, X, dtype=_FLOATS, order="C")
        cfg = self.get_config(X)
        # k-medoids is asked for by name: its update is the point, not a mismatch
        strategies = cfg.build_strategies(pairing_warnings=False)
        outcome = fit_config(
            X, cfg, sample_weight=sample_weight, validate=False, strategies=strategies
        )
        indices = medoid_rows(X, outcome.centroids, outcome.labels)
        if (indices < 0).any():
            raise ValueError(
                f"KMedoids: the init strategy {self.init!r} gave centroids that are not "
                "samples of X, and no iteration replaced them"
            )
        self._strategies = outcome.strategies
        self.fitted_state_ = dict(outcome.fitted)
        self.medoid_indices_ = indices
        self.cluster_centers_ = outcome.centroids
        self.labels_ = outcome.labels.astype(np.intp)
        self.inertia_ = outcome.objective
        self.n_iter_ = outcome.n_iter
        if outcome.history is not None:
            self.history_ = outcome.history.for_run(outcome.result.run)
        return self

    def _data(self, X: Any, sample_weight: Any = None) -> tuple[FitData, Any]:
        check_is_fitted(self)
        refuse_backend_input(X, "KMedoids")  # as fit: never gathered to memory silently
        X = validate_data(self, X, dtype=_FLOATS, order="C", reset=False)
        data = FitData.build(
            X,
            sample_weight,
            n_clusters=self.n_clusters,
            memory_budget=budget_bytes(self.memory_budget_mb),
            n_threads=self.n_threads,
            validate=False,
            fitted=self.fitted_state_,
        )
        hooks = plugins.build(self._strategies)
        engine.prepare(hooks, data)
        return data, hooks

    @property
    def _n_features_out(self) -> int:
        """transform's columns, one per medoid (read by ``get_feature_names_out``; a
        property, so that a model pickled before it existed names them too)."""
        return int(self.cluster_centers_.shape[0])

    def predict(self, X: Any) -> np.ndarray:
        """Index of the closest medoid of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data, with the features ``fit`` saw.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            The index of each sample's closest medoid.
        """
        data, hook = self._data(X)
        centers = fitted_centers(self).astype(data.dtype, copy=False)
        found = steps.assign(hook, data, centers, accumulate=False, with_costs=False)
        warn_if_predictions_imprecise(self, data.X, found.labels, centers)
        return found.labels.astype(np.intp)

    def transform(self, X: Any) -> np.ndarray:
        """Distances of each sample to each medoid.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data, with the features ``fit`` saw.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_clusters)
            The fit's distance from each sample to each medoid.
        """
        data, hook = self._data(X)
        return steps.pairwise(hook, data, fitted_centers(self).astype(data.dtype, copy=False))

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) sum of distances of ``X`` to their closest medoid.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data, with the features ``fit`` saw.
        y : None
            Ignored; present for scikit-learn's API.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the samples' distances (as in ``fit``: after a weighted fit,
            ``-score(X, sample_weight=w) == inertia_``).

        Returns
        -------
        score : float
            Minus the (weighted) sum of distances; higher is better.
        """
        data, hook = self._data(X, sample_weight)
        centers = fitted_centers(self).astype(data.dtype, copy=False)
        return -steps.objective(data, steps.assign(hook, data, centers, accumulate=False).costs)
