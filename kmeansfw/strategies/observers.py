"""Built-in observers: ``history`` (one record per iteration)."""

from __future__ import annotations

import attrs

from kmeansfw.engine import FitResult, FitState
from kmeansfw.markers import hookimpl


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
