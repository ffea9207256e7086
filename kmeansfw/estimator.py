"""The scikit-learn compatible estimator :class:`KMeans` (and what it shares with
:class:`kmeansfw.MiniBatchKMeans`)."""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from kmeansfw.backends import for_input, is_dask_collection, is_torch_tensor
from kmeansfw.core.adapters import SHARE_MAX_BYTES, ArrayInit
from kmeansfw.core.catalog import CATALOG, is_value_strategy, value_types
from kmeansfw.core.config import (
    Config,
    InvalidParameterError,
    budget_bytes,
    check_key,
    make_rng,
)
from kmeansfw.core.data import FitData, c_ordered, fitted_centers, is_ready_array, is_sparse
from kmeansfw.core.distance import describe
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins, steps
from kmeansfw.engine.fitting import (
    check_n_clusters,
    check_sparse_support,
    fit_config,
    splits_work,
)
from kmeansfw.strategies.euclidean import (
    PRECISION_STEP_EVERY,
    warn_if_imprecise,
    warn_if_predictions_imprecise,
)
from kmeansfw.strategies.observers import VerboseLog

_FLOATS = [np.float64, np.float32]
_PARAM_NAMES: dict[type, list[str]] = {}


_PLAIN = (str, int, float, bool, type(None))
#: Configs and strategies built for parameter sets (see KMeans._built_config), with
#: whether they take sparse data once asked (``[config, strategies, sparse or None]``).
_BUILT: OrderedDict[tuple, list] = OrderedDict()
_BUILT_LOCK = threading.Lock()
#: Each fitted estimator's splits_work, with the strategies it is of (weakly: it goes
#: with the estimator; see _BaseKMeans._fitted_splits_work).
_SPLITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _params_key(params: dict[str, Any]) -> tuple | None:
    """A comparable snapshot of parameters that are plain values, value strategies (see
    :func:`kmeansfw.core.catalog.is_value_strategy`) or a small ``init`` array (by its values);
    None when any parameter is not."""
    items: list[tuple[Any, ...]] = []
    for name in sorted(params):
        value = params[name]
        kind = type(value)
        if name == "observers":
            if value not in ((), []):
                return None
            items.append((name, tuple, ()))
            continue
        if name == "init" and isinstance(value, np.ndarray) and value.nbytes <= SHARE_MAX_BYTES:
            value = ArrayInit(value)  # compared by its values
        if not (isinstance(value, _PLAIN) or is_value_strategy(value)):
            return None
        try:  # an unhashable value (a list field) has no key: before value_types walks it
            hash(value)
        except TypeError:
            return None
        items.append((name, kind, value, value_types(value)))
    key = tuple(items)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _describe_distance(spec: Any) -> Any:
    """The declared attributes of the distance ``spec`` names (None when it cannot be
    built: the config's own validation then reports it)."""
    try:
        _, strategy = CATALOG.create("distance", spec)
    except Exception:  # noqa: BLE001 - reported by the Config with its key
        return None
    return describe(strategy)


def refuse_backend_input(X: Any, estimator: str) -> None:
    """Refuse a torch tensor or a Dask collection, which ``estimator`` does not fit yet
    (checked by the type's module: torch and dask are never imported here)."""
    if is_torch_tensor(X):
        raise TypeError(
            f"{estimator} does not take torch tensors yet: use KMeans (it fits a tensor on "
            "its device), or pass X.cpu().numpy()"
        )
    if is_dask_collection(X):
        raise TypeError(
            f"{estimator} does not take Dask collections yet: use KMeans (it runs on the "
            "cluster), or compute the array into memory (X.compute())"
        )


#: The algorithms of scikit-learn's KMeans and the assignment strategy each runs.
ALGORITHMS = {"lloyd": "nearest", "elkan": "hamerly"}


def _check_flag(name: str, value: Any, *, integer: bool = False) -> None:
    """``copy_x`` (a bool) and ``verbose`` (a bool or an int >= 0), as scikit-learn checks."""
    ok = isinstance(value, bool | np.bool_) or (
        integer and isinstance(value, int | np.integer) and value >= 0
    )
    if not ok:
        kind = "a bool or an integer >= 0" if integer else "a bool"
        raise InvalidParameterError(f"parameter {name!r} must be {kind}, got {value!r}")


class _BaseKMeans(ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, BaseEstimator):
    """What :class:`KMeans` and :class:`kmeansfw.MiniBatchKMeans` share: validation, the
    kept configs, ``partial_fit`` and the fitted estimator's methods."""

    #: Parameters that are not :class:`Config` keys (the estimator handles them).
    _OWN_PARAMS: tuple[str, ...] = ()

    # ------------------------------------------------------------------ validation
    @classmethod
    def _get_param_names(cls) -> list[str]:
        # scikit-learn reads the constructor's signature on every get_params call; the
        # names cannot change for a class, so they are read once per class.
        names = _PARAM_NAMES.get(cls)
        if names is None:
            names = _PARAM_NAMES[cls] = super()._get_param_names()
        return list(names)

    def _validate(self, X: Any, *, reset: bool) -> Any:
        """scikit-learn's ``validate_data``; an array needing no conversion (the common
        case), or only a C-ordered copy (a Fortran-ordered or strided float array: the
        copy ``check_array`` would make), skips ``check_array`` after one pass that
        checks it is finite."""
        X = c_ordered(X)
        if is_ready_array(X):
            X = np.asarray(X)  # a np.memmap as a plain view of its pages
            if reset:  # what validate_data records for an array without feature names
                self.n_features_in_ = X.shape[1]
                self.__dict__.pop("feature_names_in_", None)
                return X
            return validate_data(self, X, reset=reset, skip_check_array=True)
        return validate_data(self, X, accept_sparse="csr", dtype=_FLOATS, order="C", reset=reset)

    # ------------------------------------------------------------------ config
    def get_config(self) -> Config:
        """The validated :class:`~kmeansfw.core.config.Config` of this estimator's parameters."""
        return self._config_of(self.get_params(deep=False))

    def _config_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The Config keys of ``params`` (checks and drops the estimator's own ones)."""
        verbose = params.get("verbose", 0)
        _check_flag("verbose", verbose, integer=True)
        params = {k: v for k, v in params.items() if k not in self._OWN_PARAMS}
        if isinstance(params["observers"], tuple):
            params["observers"] = list(params["observers"])
        if verbose:  # scikit-learn's verbose: the log observer, printing as it goes
            observers = params["observers"]
            if not isinstance(observers, list):
                raise InvalidParameterError(
                    f"config key 'observers' must be a list, got {type(observers).__name__}"
                )
            params["observers"] = [*observers, VerboseLog()]
        return params

    def _config_of(self, params: dict[str, Any]) -> Config:
        return Config(**self._config_params(params))

    def _built_config(self) -> tuple[Config, list[tuple[str, str, Any]]]:
        """The Config and strategies of the current parameters, kept between fits.

        Building and validating them costs more than fitting a small data set, so the
        last few are kept (for any estimator) by their parameters when every parameter is
        a plain value or an immutable value strategy; any other parameter (an array, a
        list, a function, a stateful object or an observer) means they are built afresh.
        Every fit asks here, and each gets the :class:`PairingWarning` of its parameters,
        whether they were built now or kept (the tag lookup scikit-learn's searches and
        cross-validation make before fitting builds and keeps them too, without it).
        """
        cfg, strategies, _ = self._built()
        cfg._warn_pairing(strategies)
        return cfg, strategies

    def _built(self) -> tuple[Config, list[tuple[str, str, Any]], list | None]:
        """:meth:`_built_config` without the pairing warning, with the kept entry (None
        when not kept), where :meth:`_takes_sparse` keeps its answer."""
        params = self.get_params(deep=False)
        key = _params_key(params)
        if key is not None:  # a strategy registered since (replace=True) builds afresh
            CATALOG.load()
            key = (type(self).__name__, CATALOG.generation, *key)
            with _BUILT_LOCK:
                built = _BUILT.get(key)
                if built is not None:
                    _BUILT.move_to_end(key)
            if built is not None:  # shared: fitting only reads a Config, and fit keeps none
                return built[0], list(built[1]), built
        if key is not None and isinstance(params["init"], np.ndarray):
            params = {**params, "init": np.array(params["init"])}  # kept: not the caller's
        cfg = self._config_of(params)
        strategies = self._kept_strategies(cfg.build_strategies(pairing_warnings=False))
        entry = None
        if key is not None:
            entry = [cfg, list(strategies), None]
            with _BUILT_LOCK:
                _BUILT[key] = entry
                while len(_BUILT) > 32:
                    _BUILT.popitem(last=False)
        return cfg, strategies, entry

    def _kept_strategies(self, strategies: list[tuple[str, str, Any]]) -> list:
        """The built strategies this estimator fits with (all of them)."""
        return strategies

    @classmethod
    def from_config(cls, source: Config | Mapping[str, Any] | str | os.PathLike[str]) -> Any:
        """Build an estimator from a Config, a dict, or a TOML file path or text."""
        return cls(**Config.load(source).to_dict())

    # ------------------------------------------------------------------ fitting
    def _set_fitted(self, strategies: list, fitted: Mapping, centroids: np.ndarray) -> None:
        self._strategies = strategies
        self.fitted_state_ = dict(fitted)
        self.cluster_centers_ = centroids
        self._n_features_out = centroids.shape[0]

    def _seed(self, hooks: Any, batch: FitData, rng: np.random.Generator) -> np.ndarray:
        """The first ``partial_fit`` call's initial centroids."""
        return steps.initialize(hooks, batch, self.n_clusters, rng)

    def _online_after_fit(self, sample_weight: Any) -> engine.OnlineState:
        """The online state ``partial_fit`` continues from after :meth:`fit`: every
        cluster has absorbed the weight of its members."""
        weights = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        if weights is not None and weights.ndim == 0:
            weights = np.full(self.labels_.shape[0], float(weights))
        seen = np.bincount(self.labels_, weights=weights, minlength=self.n_clusters)
        return engine.OnlineState(
            seen=seen.astype(np.float64), reassignment_ratio=self.reassignment_ratio
        )

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Update the clustering with one batch (mini-batch k-means, Sculley's rule).

        The first call on an unfitted estimator seeds the centroids on this batch with
        the ``init`` strategy (it needs at least ``n_clusters`` rows, as in
        scikit-learn); after :meth:`fit` or an earlier call, it continues from the
        fitted centroids and ``fitted_state_``, whatever the batch's size.  Every call
        moves each centroid towards its batch members with a learning rate of batch
        weight / total weight absorbed (after :meth:`fit`: each cluster has absorbed its
        members' weight).  ``labels_`` and ``inertia_`` describe the last batch under the
        updated centroids; ``n_steps_`` counts the steps.

        A continuing call keeps the fitted model's strategies, number of clusters and
        dtype: changing ``n_clusters`` (``set_params``) since raises a ``ValueError``, a
        changed strategy parameter takes effect at the next :meth:`fit` (or on a clone),
        and a batch of the other float dtype is converted to the model's (a copy).  A
        changed ``reassignment_ratio`` applies from the next call, as in scikit-learn.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The next batch of samples.
        y : None
            Ignored; present for scikit-learn's API.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the batch's samples (None: all 1).

        Returns
        -------
        self : object
            The estimator, updated.
        """
        refuse_backend_input(X, f"{type(self).__name__}.partial_fit")
        first = not hasattr(self, "cluster_centers_")
        if not first and self.cluster_centers_.shape[0] != self.n_clusters:
            raise ValueError(
                f"{type(self).__name__}.partial_fit: n_clusters is {self.n_clusters!r}, but "
                f"the fitted model has {self.cluster_centers_.shape[0]} clusters; a "
                "continuing partial_fit cannot change the number of clusters: call fit, "
                "or partial_fit on a clone (sklearn.base.clone), to start over with "
                f"{self.n_clusters!r}"
            )
        X = self._validate(X, reset=first)
        if not first and X.dtype != self.cluster_centers_.dtype:
            X = self._as_model_dtype(X)
        if first:
            cfg, strategies = self._built_config()
            self._strategies = strategies
        hooks = plugins.build(self._strategies)
        ratio = self.reassignment_ratio  # read on every call: checked on every call
        check_key("reassignment_ratio", ratio)
        walk = engine.MiniBatch(reassignment_ratio=ratio)
        engine.check_walk(hooks, walk)
        batch = FitData.build(
            X,
            sample_weight,
            n_clusters=self.n_clusters,
            memory_budget=budget_bytes(self.memory_budget_mb),
            n_threads=self.n_threads,
            validate=False,
            fitted=None if first else self.fitted_state_,
        )
        check_sparse_support(self._strategies, batch)
        if first:
            check_n_clusters(batch.n_samples, self.n_clusters)
            batch.fitted = engine.learn(hooks, batch)
        engine.prepare(hooks, batch)
        if first:
            rng = make_rng(self.random_state)
            centroids = self._seed(hooks, batch, rng)
            walk.start(centroids)
            self._online: tuple[Any, np.random.Generator | None] = (walk.online, rng)
            self._set_fitted(self._strategies, batch.fitted, centroids)
        walk.online, maybe_rng = self._online
        # read on every call, as scikit-learn does (set_params between batches)
        walk.online.reassignment_ratio = walk.reassignment_ratio
        if maybe_rng is None:  # the first partial_fit after fit draws from random_state now
            maybe_rng = make_rng(self.random_state)
            self._online = (walk.online, maybe_rng)
        rng = maybe_rng
        state = engine.FitState(data=batch, n_clusters=self.n_clusters, tol=0.0, rng=rng, run=0)
        state.centroids = self._centers_for(batch)
        state.iteration = walk.online.steps
        engine.iterate(hooks, state, batch, walk, walk.online.steps + 1)
        centroids = np.array(state.centroids)
        self.cluster_centers_ = centroids
        self._n_features_out = centroids.shape[0]
        self.n_steps_ = walk.online.steps
        if self._label_batch(hooks, batch, centroids):  # a stream drifting far from the
            # centre the model learned first, in float32: labelled by the rounding
            warn_if_imprecise(
                batch.X, self.labels_, centroids, self.fitted_state_, PRECISION_STEP_EVERY
            )
        return self

    def _as_model_dtype(self, X: Any) -> Any:
        """A continuing ``partial_fit`` batch in the fitted model's dtype (a copy), so
        that a batch of another dtype neither rounds a float64 model to float32 nor
        widens a float32 one; refused when its values overflow the model's dtype."""
        dtype = self.cluster_centers_.dtype
        values = X.data if is_sparse(X) else X
        if values.size and np.dtype(dtype).itemsize < values.dtype.itemsize:
            largest = float(np.abs(values).max())
            if largest > float(np.finfo(dtype).max):
                raise ValueError(
                    f"{type(self).__name__}.partial_fit: the model was fitted in {dtype} "
                    f"and continues in it, but this {values.dtype} batch holds values up "
                    f"to {largest:.3g}, beyond {dtype}'s largest; refit in "
                    f"{values.dtype} (fit, or partial_fit on a clone)"
                )
        return X.astype(dtype)

    def _label_batch(self, hooks: Any, batch: FitData, centroids: np.ndarray) -> bool:
        """``labels_`` and ``inertia_`` of a ``partial_fit`` batch under ``centroids``;
        whether it set them."""
        final = steps.assign(hooks, batch, centroids.astype(batch.dtype), accumulate=False)
        self.labels_ = final.labels.astype(np.int32)
        self.inertia_ = steps.objective(batch, final.costs)
        return True

    # ------------------------------------------------------------------ fitted
    def _data(self, X: Any, sample_weight: Any = None) -> tuple[FitData, Any]:
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        data = FitData.build(
            X,
            sample_weight,
            n_clusters=self.n_clusters,
            memory_budget=budget_bytes(self.memory_budget_mb),
            n_threads=self.n_threads,
            validate=False,
            fitted=self.fitted_state_,
            executor=self.executor,
            splits_work=self._fitted_splits_work(),  # KMeans.fit's plan (labels: any plan)
        )
        check_sparse_support(self._strategies, data)
        hooks = plugins.build(self._strategies)
        engine.prepare(hooks, data)
        return data, hooks

    def _fitted_splits_work(self) -> bool:
        """:func:`~kmeansfw.engine.fitting.splits_work` of the fitted strategies, kept
        with them (asked at every ``predict``, ``transform`` and ``score``), outside
        the estimator, whose attributes those must leave as they are."""
        try:
            kept = _SPLITS.get(self)
        except TypeError:  # an unhashable estimator (a subclass defining __eq__)
            return splits_work(self._strategies)
        if kept is None or kept[0] is not self._strategies:  # fitted since
            kept = (self._strategies, splits_work(self._strategies))
            _SPLITS[self] = kept
        return bool(kept[1])

    def _centers_for(self, data: FitData) -> np.ndarray:
        return fitted_centers(self).astype(data.dtype, copy=False)

    def predict(self, X: Any) -> np.ndarray:
        """Index of the closest centroid (lowest cost) of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,), int32
        """
        backend = for_input(X)
        if backend is not None:  # a dask array runs on its cluster, a tensor on its device
            return backend.predict(self, X)
        data, hook = self._data(X)
        centers = self._centers_for(data)
        result = steps.assign(hook, data, centers, accumulate=False, with_costs=False)
        warn_if_predictions_imprecise(self, data.X, result.labels, centers)
        return result.labels.astype(np.int32)

    def transform(self, X: Any) -> np.ndarray:
        """Distances of each sample to each centroid.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        distances : ndarray of shape (n_samples, n_clusters)
            A pandas DataFrame with columns ``get_feature_names_out()`` after
            ``set_output(transform="pandas")``.
        """
        backend = for_input(X)
        if backend is not None:  # a dask array runs on its cluster, a tensor on its device
            return backend.transform(self, X)
        data, hook = self._data(X)
        return steps.pairwise(hook, data, self._centers_for(data))

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the objective of ``X`` under the fitted centroids (higher is better).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data, with the features ``fit`` saw.
        y : None
            Ignored; present for scikit-learn's API.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights (None: all 1).

        Returns
        -------
        score : float
            Minus the (weighted) objective of ``X``: the sum of each sample's cost to
            its nearest centroid.
        """
        backend = for_input(X)
        if backend is not None:  # a dask array runs on its cluster, a tensor on its device
            return backend.score(self, X, sample_weight)
        data, hook = self._data(X, sample_weight)
        result = steps.assign(hook, data, self._centers_for(data), accumulate=False)
        return -steps.objective(data, result.costs)

    def __sklearn_tags__(self):  # noqa: D105 - scikit-learn protocol
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = self._takes_sparse()
        return tags

    def _takes_sparse(self) -> bool:
        """Whether a fit with the current parameters takes sparse CSR data: every
        strategy declares it (``manhattan``, say, does not); True when the parameters
        do not build (the fit says what is wrong with them)."""
        try:  # pairing warnings: the fit gives them
            _, strategies, entry = self._built()
        except Exception:  # noqa: BLE001 - invalid parameters: the fit reports them
            return True
        if entry is not None and entry[2] is not None:  # scikit-learn asks at every call
            return bool(entry[2])
        sparse = all(describe(s).accepts_sparse for _, _, s in strategies)
        if entry is not None:
            entry[2] = sparse
        return sparse


class KMeans(_BaseKMeans):
    """K-Means clustering whose every step is a pluggable strategy.

    With the defaults this is Lloyd's algorithm with k-means++ seeding, exactly as
    :class:`sklearn.cluster.KMeans` (``algorithm="lloyd"``) defines it.  Every parameter
    of :class:`sklearn.cluster.KMeans` is accepted with its meaning, so code written for
    it runs unchanged; the strategy parameters (``distance``, ``assignment``, ...) are
    kmeansfw's own.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : str, dict, array of shape (n_clusters, n_features), callable or object, \
default="auto"
        Seeding: ``"auto"`` (greedy k-means++ on small data, k-means|| once samples x
        clusters >= 2^21), ``"k-means++"``, ``"k-means||"``, ``"random"``, explicit
        centroids, a function ``(X, n_clusters, rng) -> centroids`` or a strategy object.
        ``rng`` is the fit's :class:`numpy.random.Generator`; a function written for
        scikit-learn, ``(X, n_clusters, random_state)``, gets a
        :class:`numpy.random.RandomState` drawing from it (see
        :func:`kmeansfw.core.adapters.random_argument`).  A function sees sparse X only
        if it says it handles it (see :func:`kmeansfw.core.adapters.sparse_init`).
    distance : str, dict, callable or object, default="euclidean"
        The geometry; a plain function ``(X_block, centroids) -> distances`` works too.
    assignment : str, dict or object, default="auto"
        How samples are assigned to centroids.  ``"auto"``: each sample's nearest
        centroid, found by the bound-based ``hamerly`` (or ``yinyang`` from k >= 128 and
        32 features; they skip the samples their bounds prove unchanged) when the
        distance is a metric, there are at least 4096 samples, samples x clusters
        >= 2^17, k >= 32 and at least 16 features, by a full search (``"nearest"``)
        otherwise; the labels are those of ``"nearest"`` either way
        (:class:`kmeansfw.strategies.assignment.Auto`).
    update : str, dict, object or None, default=None
        How centroids are recomputed from their members; None takes the distance's
        natural update (``mean`` for Euclidean, ``median`` for Manhattan, ...).
    empty : str, dict or object, default="relocate-farthest"
        What happens to a cluster that lost all its members.
    convergence : str, dict, object or list of them, default="tol"
        Stopping criteria; the fit stops when any of them says so (or at ``max_iter``).
    observers : sequence of str, dict or objects, default=()
        Plugins called at fit start, after each iteration and at fit end.
    n_init : int or "auto", default="auto"
        Restarts; the best objective wins.  ``"auto"`` is scikit-learn's rule: 10 for
        ``init="random"`` and for an init function, 1 for the k-means++ family, explicit
        centroids and strategy objects.
    max_iter : int, default=300
        Maximum iterations of one run.
    tol : float, default=1e-4
        Tolerance of the ``tol`` criterion, relative to the mean feature variance.
    verbose : int, default=0
        Above 0, the log observer prints each iteration and each run's result to
        standard output (and logs them to the ``kmeansfw`` logger): it adds
        :class:`~kmeansfw.strategies.observers.VerboseLog` to the observers.
    random_state : int, numpy Generator or None, default=None
        Seeds the one :class:`numpy.random.Generator` all randomness comes from.
    copy_x : bool, default=True
        Accepted for scikit-learn compatibility and has no effect: kmeansfw never
        modifies its input (it never centres X in place), whatever the value.
    algorithm : {"lloyd", "elkan"}, default="lloyd"
        scikit-learn's choice of exact assignment.  ``"lloyd"`` runs ``assignment`` as
        given (the default ``"auto"`` gives the labels of computing every distance;
        ``assignment="nearest"`` computes every one); ``"elkan"`` always runs the
        ``hamerly`` assignment, the bound-based exact algorithm of the catalog (one lower
        bound per sample, where Elkan keeps k): it skips samples whose bounds prove their
        label unchanged, so labels, inertia and ``n_iter_`` are those of ``"lloyd"``.  It
        applies with ``assignment`` left at ``"auto"`` or set to ``"nearest"`` only
        (another assignment together with ``"elkan"`` raises), and needs a distance that
        is a true metric.
    memory_budget_mb : float, default=64
        Working memory per thread for block buffers, the temporaries that would
        otherwise grow with n (an ``n x k`` table of distances, a cluster's sorted
        values; ``float('inf')``: no limit).  The per-sample vectors a fit keeps
        (labels, costs, norms, bounds: about 40-120 bytes a sample) come on top.
        Mid-size data that runs inline with the built-in Euclidean strategies is one
        block while its rows' label vectors (24 bytes a row) fit it: their compiled
        kernels keep no buffers of the block's shape.  A block holds at least 256 rows,
        so a budget under 256 rows' buffers is exceeded up to that size.  The budget
        sets how finely the work is cut: the same labels and iterations, but the
        float64 sums of a block plan may be added in another order, so centroids can
        differ in their last bits (about 1e-15 relative) from another budget's (which
        is why a checkpoint records it).
    n_threads : int or None, default=None
        Worker threads (None: all CPUs available).  Results do not depend on it.
    history : bool, default=False
        Record per-iteration statistics in ``history_`` (those of the iterations this
        process ran: a fit resumed from a checkpoint records them from where it
        resumed; a finished checkpoint returned as it is records none).
    batch_size : int or None, default=None
        None: Lloyd's algorithm on all the data every iteration.  An int: mini-batch
        k-means (Sculley) on random batches of that size, ``n_init`` whole runs of
        ``max_iter`` passes at most, ``n_iter_`` counting the steps; needs the ``mean``
        or ``spherical`` update.  For scikit-learn's ``MiniBatchKMeans`` (its ``init_size``,
        ``max_no_improvement``, ``compute_labels``, ``n_iter_`` in passes and
        ``n_steps_``) use :class:`kmeansfw.MiniBatchKMeans`, which runs the same engine.
    reassignment_ratio : float, default=0.01
        Mini-batch only (``batch_size`` or :meth:`partial_fit`): every 10 k samples,
        centroids that have absorbed less than this share of the largest centroid's
        weight move to random batch samples, as in scikit-learn's MiniBatchKMeans.  0
        turns it off.
    checkpoint : str or None, default=None
        A folder: the fit writes its state there every ``checkpoint_every`` iterations
        (plain .npz + JSON), and a fit that finds a checkpoint there resumes from it and
        ends with the same result as an uninterrupted fit.  Not with ``batch_size``
        (a ValueError).
    checkpoint_every : int, default=1
        Iterations between checkpoint writes.
    executor : object or None, default=None
        How the map over row chunks runs: None for worker threads, or an executor with a
        ``map(fn, chunks)`` method returning the results in chunk order (see
        :mod:`kmeansfw.engine.executors`; :class:`~kmeansfw.engine.executors.
        PickleShuffleExecutor` checks that a plugin's chunk tasks are ready for one).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The centroids.
    labels_ : ndarray of shape (n_samples,), int32
        The label of every training sample under ``cluster_centers_``.
    inertia_ : float
        The objective of the final clustering (sum of weighted squared distances with
        the Euclidean defaults).
    n_iter_ : int
        Iterations of the best run (steps with ``batch_size``).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of the features, when X was a DataFrame with string column names.
    history_ : list of dict
        Only with ``history=True``: one record per iteration of the best run
        (``kmeansfw.strategies.observers.records_frame(km.history_)`` makes it a
        pandas DataFrame).
    fitted_state_ : dict
        What the strategies learned from the training data (``kmeansfw_learn``: the
        Euclidean mean, Mahalanobis' factor, ...); ``predict``, ``transform``, ``score``
        and ``partial_fit`` use it unchanged, whatever data they are given.

    See Also
    --------
    kmeansfw.MiniBatchKMeans : Scikit-learn's mini-batch estimator on the same engine.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeansfw import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    """

    _OWN_PARAMS = ("verbose", "copy_x", "algorithm")

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "auto",
        distance: Any = "euclidean",
        assignment: Any = "auto",
        update: Any = None,
        empty: Any = "relocate-farthest",
        convergence: Any = "tol",
        observers: Any = (),
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state: Any = None,
        copy_x: bool = True,
        algorithm: str = "lloyd",
        memory_budget_mb: float = 64.0,
        n_threads: int | None = None,
        history: bool = False,
        batch_size: int | None = None,
        reassignment_ratio: float = 0.01,
        checkpoint: str | None = None,
        checkpoint_every: int = 1,
        executor: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.distance = distance
        self.assignment = assignment
        self.update = update
        self.empty = empty
        self.convergence = convergence
        self.observers = observers
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.memory_budget_mb = memory_budget_mb
        self.n_threads = n_threads
        self.history = history
        self.batch_size = batch_size
        self.reassignment_ratio = reassignment_ratio
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.executor = executor

    def _config_params(self, params: dict[str, Any]) -> dict[str, Any]:
        algorithm = params.get("algorithm", "lloyd")
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise InvalidParameterError(
                f"parameter 'algorithm' must be 'lloyd' or 'elkan', got {algorithm!r}"
            )
        _check_flag("copy_x", params.get("copy_x", True))
        params = super()._config_params(params)
        if algorithm == "elkan":
            assignment = params["assignment"]
            if not (isinstance(assignment, str) and assignment in ("auto", "nearest")):
                raise InvalidParameterError(
                    f"algorithm='elkan' chooses the assignment (hamerly); it cannot be "
                    f"combined with assignment={assignment!r} (leave assignment unset)"
                )
            distance = _describe_distance(params["distance"])
            if distance is not None and not distance.is_metric:
                raise InvalidParameterError(
                    f"algorithm='elkan' runs the bound-based hamerly assignment, which needs a "
                    f"true metric; distance {distance.name!r} is not one (use "
                    "algorithm='lloyd')"
                )
            params["assignment"] = ALGORITHMS[algorithm]
        return params

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Compute the clustering.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; a DataFrame's string column names become
            ``feature_names_in_``.  Never modified.
        y : None
            Ignored; present for scikit-learn's API.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights.

        Returns
        -------
        self
        """
        backend = for_input(X)
        if backend is not None:  # a dask array runs on its cluster, a tensor on its device
            return backend.fit_estimator(self, X, sample_weight)
        X = self._validate(X, reset=True)
        cfg, strategies = self._built_config()
        outcome = fit_config(
            X, cfg, sample_weight=sample_weight, validate=False, strategies=strategies
        )
        return self._adopt(outcome, sample_weight)  # generator: made when partial_fit needs it

    def _adopt(self, outcome: Any, sample_weight: Any, rng: Any = None) -> KMeans:
        """Set the fitted attributes from a fit's ``outcome`` (in memory or on a backend;
        ``sample_weight`` in host memory): centroids and fitted state, ``labels_``,
        ``inertia_``, ``n_iter_``, ``history_``, and the online state ``partial_fit``
        continues from (with ``rng``, or a generator made when it is first needed)."""
        self._set_fitted(outcome.strategies, outcome.fitted, outcome.centroids)
        self.labels_ = outcome.labels.astype(np.int32)
        self.inertia_ = outcome.objective
        self.n_iter_ = outcome.n_iter
        self._online = (self._online_after_fit(sample_weight), rng)
        for name in ("n_steps_", "_streamed"):
            self.__dict__.pop(name, None)
        if outcome.history is not None:
            self.history_ = outcome.history.for_run(outcome.result.run)
        return self

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:  # noqa: D102
        if not hasattr(self, "cluster_centers_"):
            self._streamed = True
        super().partial_fit(X, y, sample_weight)
        if getattr(self, "_streamed", False):  # no fit, only partial_fit: it counts steps
            self.n_iter_ = self.n_steps_
        return self

    partial_fit.__doc__ = _BaseKMeans.partial_fit.__doc__
