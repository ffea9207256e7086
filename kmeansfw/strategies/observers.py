"""Built-in observers: ``history``, ``progress`` (a tqdm bar on terminals), ``log``."""

from __future__ import annotations

import logging

import attrs

from kmeansfw.core.markers import hookimpl
from kmeansfw.engine.loop import FitResult, FitState


@attrs.define(eq=False)
class History:
    """Record, per iteration of every run: objective, centroid shift, labels changed, time.

    ``records`` is a list of dicts with keys ``run``, ``iteration``, ``objective`` (of the
    iteration's assignment), ``center_shift`` (sum of squared centroid moves),
    ``n_changed`` (samples that changed cluster) and ``seconds`` (since the run started).
    ``runs`` holds each run's final objective and iteration count.
    """

    name = "history"
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
            }
        )

    def for_run(self, run: int) -> list[dict]:
        """The records of one run."""
        return [r for r in self.records if r["run"] == run]


@attrs.define(eq=False)
class ProgressBar:
    """A tqdm progress bar over iterations, on terminals only.

    The bar appears once a run has lasted ``delay`` seconds (so quick fits stay silent)
    and never when ``file`` (default: standard error) is not a terminal, e.g. a pipe.

    Parameters
    ----------
    delay : float, default=2.0
    file : writable stream or None
    """

    name = "progress"
    delay: float = 2.0
    file: object = None
    _bar: object = attrs.field(default=None, init=False, repr=False)

    @hookimpl
    def kmeansfw_fit_start(self, state: FitState) -> None:
        import sys

        from tqdm.auto import tqdm

        stream = self.file if self.file is not None else sys.stderr
        terminal = bool(getattr(stream, "isatty", lambda: False)())
        self._bar = tqdm(
            desc=f"k-means run {state.run}",
            unit="it",
            delay=self.delay,
            file=stream,
            disable=not terminal,
            leave=False,
        )

    @hookimpl
    def kmeansfw_iteration_end(self, state: FitState) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(objective=f"{state.objective:.6g}", refresh=False)

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
    logger: str = "kmeansfw"

    @hookimpl
    def kmeansfw_iteration_end(self, state: FitState) -> None:
        logging.getLogger(self.logger).debug(
            "run %d iteration %d: objective %.6g, shift %.3g, %d labels changed",
            state.run,
            state.iteration,
            state.objective,
            state.center_shift,
            state.n_changed,
        )

    @hookimpl
    def kmeansfw_fit_end(self, result: FitResult) -> None:
        logging.getLogger(self.logger).info(
            "run %d: objective %.6g after %d iterations (converged: %s)",
            result.run,
            result.objective,
            result.n_iter,
            result.converged,
        )
