"""Built-in observers: ``history``, ``progress`` (a tqdm bar on terminals), ``log``."""

from __future__ import annotations

import logging
from typing import Any

import attrs

from kmeansfw.core.markers import hookimpl
from kmeansfw.engine.loop import FitResult, FitState
from kmeansfw.strategies.validators import finite_non_negative


@attrs.define(eq=False)
class History:
    """Record, per iteration of every run: objective, centroid shift, labels changed, time.

    ``records`` is a list of dicts with keys ``run``, ``iteration``, ``objective`` (of the
    iteration's assignment), ``center_shift`` (sum of squared centroid moves),
    ``n_changed`` (samples that changed cluster) and ``seconds`` (since the run started).
    ``runs`` holds each run's final objective, iteration count, whether it converged and
    why it stopped (``stop_reason``, see :class:`~kmeansfw.engine.loop.FitResult`).
    """

    name = "history"
    reads_costs = True  # every iteration's objective
    records: list[dict] = attrs.field(factory=list, init=False)
    runs: list[dict] = attrs.field(factory=list, init=False)

    @hookimpl
    def kmeansfw_iteration_end(self, state: FitState) -> None:
        self.records.append(
            {
                "run": state.run,
                "iteration": state.iteration,
                "objective": state.objective,
                "center_shift": state.center_shift,
                "n_changed": state.n_changed,
                "seconds": state.seconds,
            }
        )

    @hookimpl
    def kmeansfw_fit_end(self, result: FitResult) -> None:
        self.runs.append(
            {
                "run": result.run,
                "objective": result.objective,
                "n_iter": result.n_iter,
                "converged": result.converged,
                "stop_reason": result.stop_reason,
            }
        )

    def for_run(self, run: int) -> list[dict]:
        """The records of one run.

        Parameters
        ----------
        run : int
            The run's index among the fit's ``n_init`` runs (``Fit.result.run`` is the
            best one's).

        Returns
        -------
        list of dict
            That run's records, one per iteration, in order.
        """
        return [r for r in self.records if r["run"] == run]

    def to_frame(self) -> Any:
        """The records as a pandas DataFrame, one row per iteration (needs pandas)."""
        return records_frame(self.records, HISTORY_COLUMNS)


def _is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (False when it cannot say)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


#: The columns of a history record (see :class:`History`).
HISTORY_COLUMNS = ("run", "iteration", "objective", "center_shift", "n_changed", "seconds")


def require_pandas(what: str) -> Any:
    """The pandas module, or an ImportError saying which extra installs it."""
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(
            f"{what} needs pandas, which is not installed: pip install 'kmeansfw[pandas]'"
        ) from exc
    return pandas


def records_frame(records: list[dict], columns: Any = None) -> Any:
    """A list of dicts (an estimator's ``history_``, an experiment's rows) as a pandas
    DataFrame with ``columns`` in that order (needs pandas)."""
    pd = require_pandas("a DataFrame of records")
    return pd.DataFrame(records, columns=list(columns) if columns is not None else None)


#: The streams a config names for :class:`ProgressBar`'s ``file``.
_STREAMS = ("stderr", "stdout")


@attrs.define(eq=False)
class ProgressBar:
    """A tqdm progress bar over iterations, on terminals only.

    The bar appears once a run has lasted ``delay`` seconds (so quick fits stay silent)
    and never when ``file`` (default: standard error) is not a terminal, e.g. a pipe.

    Parameters
    ----------
    delay : float, default=2.0
        Seconds (>= 0) a run lasts before its bar shows.
    file : writable stream, "stderr", "stdout" or None
        Where the bar goes (None: standard error); a config file names a stream by
        ``"stderr"`` or ``"stdout"``.
    """

    name = "progress"
    delay: float = attrs.field(default=2.0, validator=finite_non_negative)
    file: object = attrs.field(default=None)
    _bar: object = attrs.field(default=None, init=False, repr=False)

    @file.validator
    def _check_file(self, attribute: attrs.Attribute, value: object) -> None:
        # a string (all a TOML config can give) other than the two names silently left
        # the bar off: it is not a terminal
        if value is None or value in _STREAMS:
            return
        if isinstance(value, str) or not callable(getattr(value, "write", None)):
            raise ValueError(
                f"file must be a writable stream, 'stderr', 'stdout' or None, "
                f"got {value!r}"
            )

    @property
    def reads_costs(self) -> bool:
        """Whether the bar reads every iteration's objective: only when it can show, on
        a terminal (a CLI run writing to a pipe or a file does not pay for costs)."""
        return _is_terminal(self._stream())

    def _stream(self) -> Any:
        import sys

        if self.file is None or isinstance(self.file, str):
            return getattr(sys, self.file or "stderr")
        return self.file

    @hookimpl
    def kmeansfw_fit_start(self, state: FitState) -> None:
        from tqdm.auto import tqdm

        stream = self._stream()
        self._bar = tqdm(
            desc=f"k-means run {state.run}",
            unit="it",
            delay=self.delay,
            file=stream,
            disable=not _is_terminal(stream),
            leave=False,
        )

    @hookimpl
    def kmeansfw_iteration_end(self, state: FitState) -> None:
        bar: Any = self._bar
        if bar is not None and not bar.disable:
            bar.update(1)
            bar.set_postfix(objective=f"{state.objective:.6g}", refresh=False)

    @hookimpl
    def kmeansfw_fit_end(self, result: FitResult) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@attrs.frozen
class LogProgress:
    """Log each iteration (``DEBUG``) and each run's result (``INFO``) to a logger.

    Parameters
    ----------
    logger : str, default="kmeansfw"
    """

    name = "log"
    #: Also print every message to standard output (see :class:`VerboseLog`).
    prints = False
    logger: str = attrs.field(default="kmeansfw")

    @logger.validator
    def _check_logger(self, attribute: attrs.Attribute, value: object) -> None:
        if not isinstance(value, str):  # logging's own refusal named no parameter
            raise ValueError(f"logger must be a logger's name (a string), got {value!r}")

    @property
    def reads_costs(self) -> bool:
        """Whether every iteration's objective is read: when the iterations' messages go
        somewhere (the logger is enabled for ``DEBUG``, or :attr:`prints`), so a silent
        logger costs a fit nothing."""
        return self._speaks(logging.DEBUG)

    def _speaks(self, level: int) -> bool:
        return self.prints or logging.getLogger(self.logger).isEnabledFor(level)

    def _emit(self, level: int, message: str, *args: Any) -> None:
        logging.getLogger(self.logger).log(level, message, *args)
        if self.prints:
            print(message % args, flush=True)

    @hookimpl
    def kmeansfw_iteration_end(self, state: FitState) -> None:
        if not self._speaks(logging.DEBUG):  # nothing evaluated for a message nobody sees
            return
        self._emit(
            logging.DEBUG,
            "run %d iteration %d: objective %.6g, shift %.3g, %d labels changed",
            state.run,
            state.iteration,
            state.objective,
            state.center_shift,
            state.n_changed,
        )

    @hookimpl
    def kmeansfw_fit_end(self, result: FitResult) -> None:
        self._emit(
            logging.INFO,
            "run %d: objective %.6g after %d iterations (converged: %s, stop: %s)",
            result.run,
            result.objective,
            result.n_iter,
            result.converged,
            result.stop_reason,
        )


@attrs.frozen
class VerboseLog(LogProgress):
    """:class:`LogProgress` that also prints every message to standard output, as
    scikit-learn's ``verbose`` does: what ``KMeans(verbose=1)`` and
    ``MiniBatchKMeans(verbose=1)`` add to their observers.

    Parameters
    ----------
    logger : str, default="kmeansfw"
    """

    name = "verbose"
    prints = True
