"""scikit-learn's :class:`MiniBatchKMeans` on kmeansfw's engine."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kmeansfw.core.config import Config, InvalidParameterError, make_rng
from kmeansfw.core.data import FitData
from kmeansfw.core.errors import warn
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins
from kmeansfw.engine.executors import single_threaded_blas
from kmeansfw.engine.fitting import (
    check_n_clusters,
    check_sparse_support,
    observers_and_history,
)
from kmeansfw.estimator import _BaseKMeans, refuse_backend_input
from kmeansfw.strategies.euclidean import warn_if_imprecise
from kmeansfw.strategies.validators import integer


def _check_int(name: str, value: Any, low: int, *, none: bool = False) -> None:
    if none and value is None:
        return
    if not integer(value) or value < low:
        extra = " or None" if none else ""
        raise InvalidParameterError(
            f"parameter {name!r} must be an integer >= {low}{extra}, got {value!r}"
        )


class MiniBatchKMeans(_BaseKMeans):
    """Mini-batch K-Means, scikit-learn's :class:`sklearn.cluster.MiniBatchKMeans` on
    kmeansfw's engine.

    The same loop as :class:`kmeansfw.KMeans` with the mini-batch walk
    (:class:`kmeansfw.engine.loop.MiniBatch`): seed on a random sample of ``init_size``
    rows (the best of ``n_init`` seedings, judged on another sample), then move the
    centroids towards the members of random batches of ``batch_size`` rows (Sculley's
    rule, per-centroid learning rates), reassigning starved centroids.  Every parameter
    of scikit-learn's class is accepted with its meaning and default, and the strategy
    slots are kmeansfw's (the update must be ``mean`` or ``spherical``).

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : str, dict, array of shape (n_clusters, n_features), callable or object, \
default="auto"
        Seeding, as for :class:`kmeansfw.KMeans`, run on the ``init_size`` sample.
    max_iter : int, default=100
        Passes over the data at most: ``max_iter * n_samples // batch_size`` steps.
    batch_size : int, default=1024
        Rows per step, drawn with replacement.
    verbose : int, default=0
        Above 0, print each step and the result (the ``log`` observer).
    compute_labels : bool, default=True
        Label every training sample at the end (``labels_``, and ``inertia_`` on all the
        data).  False skips that pass: no ``labels_``, and ``inertia_`` is the smoothed
        batch objective times n_samples, as in scikit-learn.
    random_state : int, numpy Generator or None, default=None
        Seeds the one :class:`numpy.random.Generator` all randomness comes from.
    tol : float, default=0.0
        Stop (converged) once a step's squared centroid shift is at most ``tol`` times
        the mean feature variance; 0 turns this off.
    max_no_improvement : int or None, default=10
        Stop (not converged) when the smoothed batch objective has not improved for this
        many steps; None turns this off.
    init_size : int or None, default=None
        Rows the seeding sees: None is ``3 * batch_size``; raised to ``3 * n_clusters``
        when smaller than ``n_clusters`` (with a warning when given), and at most
        n_samples.
    n_init : int or "auto", default="auto"
        Seedings tried, the best kept; ``"auto"``: 3 for ``init="random"`` and an init
        function, else 1 (scikit-learn's rule).  Only one mini-batch run follows.
    reassignment_ratio : float, default=0.01
        Every 10 k samples, centroids that have absorbed less than this share of the
        largest centroid's weight move to random batch samples.  0 turns it off.
    distance : str, dict, callable or object, default="euclidean"
        The geometry (kmeansfw's).
    assignment : str, dict or object, default="nearest"
        How samples are assigned to centroids.
    update : str, dict, object or None, default=None
        None takes the distance's natural update; it must take the ``online`` argument
        (``mean``, ``spherical``).
    empty : str, dict or object, default="relocate-farthest"
        What happens to a centroid that has absorbed no weight yet.
    convergence : str, dict, object, list of them or None, default=None
        Extra stopping criteria (the fit stops when any says so); None: scikit-learn's
        rules only (``tol`` and ``max_no_improvement``).  Label criteria compare a
        batch's labels with those its rows had when last drawn.
    observers : sequence of str, dict or objects, default=()
        Plugins called at fit start, after each step and at fit end.
    memory_budget_mb : float, default=64
        Working memory per thread for block buffers (``float('inf')``: no limit).  A
        block holds at least 256 rows, so a budget under 256 rows' buffers is exceeded
        up to that size.
    n_threads : int or None, default=None
        Worker threads (None: all CPUs available).  Results do not depend on it.
    history : bool, default=False
        Record per-step statistics in ``history_``.
    executor : object or None, default=None
        How the map over row chunks runs (see :class:`kmeansfw.KMeans`).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The centroids.
    labels_ : ndarray of shape (n_samples,), int32
        Labels of the training data (``compute_labels=True``), or of the last
        ``partial_fit`` batch.
    inertia_ : float
        The objective of the training data under ``cluster_centers_``
        (``compute_labels=False``: its estimate from the smoothed batch objective), or
        of the last ``partial_fit`` batch.
    n_iter_ : int
        Passes over the data: ``ceil(n_steps_ * batch_size / n_samples)``.
    n_steps_ : int
        Mini-batch steps (``partial_fit`` adds one per call).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of the features, when X was a DataFrame with string column names.
    converged_ : bool
        Whether the fit stopped on ``tol`` or a criterion, not on ``max_no_improvement``
        nor ``max_iter`` (``stop_reason_`` says which).
    stop_reason_ : str
        ``"converged"``, ``"no-improvement"`` or ``"max_iter"``.
    history_ : list of dict
        Only with ``history=True``: one record per step.
    fitted_state_ : dict
        What the strategies learned from the training data.

    See Also
    --------
    kmeansfw.KMeans : Lloyd's algorithm (its ``batch_size`` runs whole mini-batch
        restarts, ``n_iter_`` in steps).

    Examples
    --------
    >>> import numpy as np
    >>> from kmeansfw import MiniBatchKMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 0], [4, 4],
    ...               [4, 5], [0, 1], [2, 2], [3, 2], [5, 5], [1, -1]])
    >>> km = MiniBatchKMeans(n_clusters=2, batch_size=6, random_state=0).fit(X)
    >>> km.cluster_centers_.shape, km.n_iter_ >= 1
    ((2, 2), True)
    """

    _OWN_PARAMS = ("verbose", "compute_labels", "max_no_improvement", "init_size")

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "auto",
        max_iter: int = 100,
        batch_size: int = 1024,
        verbose: int = 0,
        compute_labels: bool = True,
        random_state: Any = None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init: int | str = "auto",
        reassignment_ratio: float = 0.01,
        distance: Any = "euclidean",
        assignment: Any = "nearest",
        update: Any = None,
        empty: Any = "relocate-farthest",
        convergence: Any = None,
        observers: Any = (),
        memory_budget_mb: float = 64.0,
        n_threads: int | None = None,
        history: bool = False,
        executor: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.distance = distance
        self.assignment = assignment
        self.update = update
        self.empty = empty
        self.convergence = convergence
        self.observers = observers
        self.memory_budget_mb = memory_budget_mb
        self.n_threads = n_threads
        self.history = history
        self.executor = executor

    # ------------------------------------------------------------------ config
    def _config_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(params.get("compute_labels", True), bool | np.bool_):
            raise InvalidParameterError(
                f"parameter 'compute_labels' must be a bool, got {params['compute_labels']!r}"
            )
        _check_int("max_no_improvement", params.get("max_no_improvement"), 0, none=True)
        _check_int("init_size", params.get("init_size"), 1, none=True)
        _check_int("batch_size", params.get("batch_size"), 1)
        params = super()._config_params(params)
        if params["convergence"] is None:  # built, then left out (see _kept_strategies)
            params["convergence"] = "tol"
        return params

    def _kept_strategies(self, strategies: list[tuple[str, str, Any]]) -> list:
        if self.convergence is None:  # scikit-learn's rules only: the walk applies them
            strategies = [s for s in strategies if s[0] != "convergence"]
        return strategies

    def _walk(self, cfg: Config) -> engine.MiniBatch:
        """The mini-batch walk of these parameters."""
        return engine.MiniBatch(
            batch_size=self.batch_size,
            reassignment_ratio=self.reassignment_ratio,
            max_no_improvement=self.max_no_improvement,
            init_size=self.init_size,
            n_init=cfg.resolved_n_init(auto_random=3),
            tol=float(self.tol),
            compute_labels=bool(self.compute_labels),
        )

    def _check_init_size(self, n_samples: int) -> None:
        if self.init_size is not None and self.init_size < self.n_clusters:
            warn(
                f"init_size={self.init_size} should be larger than "
                f"n_clusters={self.n_clusters}. Setting it to "
                f"min(3*n_clusters, n_samples)={min(3 * self.n_clusters, n_samples)}",
                RuntimeWarning,
            )

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Compute the clustering by mini-batch steps.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (never modified).
        y : None
            Ignored; present for scikit-learn's API.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights.

        Returns
        -------
        self
        """
        refuse_backend_input(X, "MiniBatchKMeans")
        X = self._validate(X, reset=True)
        cfg, strategies = self._built_config()
        data = FitData.build(
            X,
            sample_weight,
            n_clusters=cfg.n_clusters,
            memory_budget=cfg.memory_budget,
            n_threads=cfg.n_threads,
            validate=False,
            executor=cfg.executor,
        )
        check_n_clusters(data.n_samples, cfg.n_clusters)
        check_sparse_support(strategies, data)
        self._check_init_size(data.n_samples)
        walk = self._walk(cfg)
        observers, history = observers_and_history(cfg)
        rng = make_rng(cfg.random_state)
        hooks = plugins.build(strategies, observers)
        with single_threaded_blas():
            data.fitted = engine.learn(hooks, data)
            engine.prepare(hooks, data)
            result = engine.run(
                hooks, data, cfg.n_clusters, rng=rng, max_iter=cfg.max_iter, tol=cfg.tol, walk=walk
            )
        self._set_fitted(strategies, data.fitted, result.centroids)
        self.n_steps_ = result.n_iter
        batch = min(self.batch_size, data.n_samples)
        self.n_iter_ = math.ceil(result.n_iter * batch / data.n_samples)
        self.inertia_ = result.objective
        self.converged_ = result.converged
        self.stop_reason_ = result.stop_reason
        if self.compute_labels:
            self.labels_ = result.labels.astype(np.int32)
            warn_if_imprecise(X, self.labels_, self.cluster_centers_, data.fitted)
        else:
            self.__dict__.pop("labels_", None)
        if history is not None:
            self.history_ = history.for_run(0)
        self._online = (walk.online, rng)  # partial_fit continues from this fit
        return self

    def partial_fit(  # noqa: D102
        self, X: Any, y: Any = None, sample_weight: Any = None
    ) -> MiniBatchKMeans:
        refuse_backend_input(X, "MiniBatchKMeans")
        return super().partial_fit(X, y, sample_weight)

    partial_fit.__doc__ = _BaseKMeans.partial_fit.__doc__

    def _seed(self, hooks: Any, batch: FitData, rng: np.random.Generator) -> np.ndarray:
        self._check_init_size(batch.n_samples)
        return self._walk(self.get_config()).initialize(hooks, batch, self.n_clusters, rng)

    def _label_batch(self, hooks: Any, batch: FitData, centroids: np.ndarray) -> bool:
        return bool(self.compute_labels) and super()._label_batch(hooks, batch, centroids)
