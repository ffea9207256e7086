"""A fit's result (:class:`Fit`) and choosing it among the restarts.

Shared by every way of running a fit: :mod:`kmeansfw.engine.fitting` (threads, in this
process) and the backends (:mod:`kmeansfw.backends.dask`, :mod:`kmeansfw.backends.torch`),
which sit above this module and below nothing that fits; :mod:`kmeansfw.engine.fitting`
re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np

from kmeansfw.core.config import Config
from kmeansfw.core.data import Fitted
from kmeansfw.core.errors import warn
from kmeansfw.engine import loop as engine
from kmeansfw.strategies.observers import History

__all__ = ["best_fit", "check_n_clusters", "observers_and_history"]  # Fit: kmeansfw.Fit


def observers_and_history(cfg: Config) -> tuple[list, History | None]:
    """The observers a fit of ``cfg`` calls: the configured ones, then a
    :class:`~kmeansfw.strategies.observers.History` when ``cfg.history`` asks for one
    (also returned; None otherwise).  A ``history`` among the configured observers
    (``observers=["history"]``, built for this fit) is the fit's history: its records were
    otherwise kept nowhere the user could read them.  A History object of the user's is
    left to the user (it keeps every fit's records)."""
    observers = cfg.build_observers()
    history = next(  # built from its name for this fit: an object of the user's lives on
        (o for o, spec in zip(observers, cfg.observers, strict=True)
         if isinstance(o, History) and o is not spec),
        None,
    )
    if history is None and cfg.history:
        history = History()
        observers.append(history)
    return observers, history


@attrs.frozen(eq=False)
class Fit:
    """The best of a fit's runs, the history (when asked for) and the strategies used.

    Attributes
    ----------
    result : FitResult
        The best run (lowest objective; the first of equals).
    config : Config
        The validated configuration the fit ran.
    strategies : list of (str, str, object)
        ``(slot, label, strategy)`` for each strategy the fit built.
    history : History or None
        Each iteration's record, when the config asked for it (``history=True``).
    fitted : Fitted
        What the strategies learned from the training data (``kmeansfw_learn``), kept
        for predict, transform, score and checkpoints.
    """

    result: engine.FitResult
    config: Config
    strategies: list[tuple[str, str, Any]]
    history: History | None = None
    fitted: Fitted = attrs.field(factory=Fitted)

    @property
    def centroids(self) -> np.ndarray:
        """Final centroids of the best run, (k, d)."""
        return self.result.centroids

    @property
    def labels(self) -> np.ndarray:
        """Labels of every sample under the final centroids, (n,)."""
        return self.result.labels

    @property
    def objective(self) -> float:
        """The best run's objective (inertia with the Euclidean defaults)."""
        return self.result.objective

    @property
    def n_iter(self) -> int:
        """Iterations of the best run."""
        return self.result.n_iter


def check_n_clusters(n_samples: int, n_clusters: int) -> None:
    """Raise when there are fewer samples than clusters."""
    if n_samples < n_clusters:
        raise ValueError(f"n_samples={n_samples} should be >= n_clusters={n_clusters}.")


def best_fit(
    cfg: Config,
    runs: Iterable[engine.FitResult],
    strategies: list[tuple[str, str, Any]],
    history: History | None,
    fitted: Fitted,
    best: engine.FitResult | None = None,
) -> Fit:
    """The run of lowest objective as a :class:`Fit`.

    Parameters
    ----------
    cfg : Config
        The fit's configuration.
    runs : iterable of FitResult
        The restarts, consumed in order (a generator runs them one at a time).
    strategies : list of (slot, label, strategy)
        The strategies the runs used.
    history : History or None
        The history observer, when the fit records one.
    fitted : Fitted
        What the strategies learned from the training data.
    best : FitResult, optional
        A run finished earlier (a resumed checkpoint's best), counting as the first.

    Returns
    -------
    Fit
        The first run of the lowest objective; a ``ConvergenceWarning`` is issued when it
        found fewer distinct clusters than asked.
    """
    for result in runs:
        if best is None or result.objective < best.objective:
            best = result
    if best is None:  # pragma: no cover - n_init >= 1 always gives a run
        raise ValueError("no run to choose from")
    _warn_if_fewer_clusters(best.labels, cfg.n_clusters)
    return Fit(result=best, config=cfg, strategies=strategies, history=history, fitted=fitted)


def _warn_if_fewer_clusters(labels: np.ndarray, n_clusters: int) -> None:
    distinct = np.count_nonzero(np.bincount(labels, minlength=n_clusters))
    if distinct < n_clusters:
        from sklearn.exceptions import ConvergenceWarning  # deferred: a slow import

        warn(
            f"Number of distinct clusters ({distinct}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X.",
            ConvergenceWarning,
        )
