"""Checkpoint and resume long fits, as plain data (``state.npz`` + ``state.json``).

A checkpoint is a folder holding the arrays (centroids, labels, the best run so far) in an
``.npz`` read with ``allow_pickle=False`` and everything else (iteration, run, the
generator's state, the criteria's memory, a fingerprint of the data and configuration) in
JSON: loading one never runs code.  Files are replaced atomically, so a fit killed while
writing leaves the previous checkpoint intact.  A fit resumed from a checkpoint draws the
same random numbers and computes the same centroids as the uninterrupted fit.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
from typing import Any

import attrs
import numpy as np

from kmeansfw.core.data import FitData
from kmeansfw.core.markers import hookimpl
from kmeansfw.engine.loop import FitResult, FitState

FORMAT = 1
#: Config keys that must match for a checkpoint to be resumed (criteria and observers may
#: change, e.g. a time budget or a progress bar added when resuming).
FINGERPRINT_KEYS = (
    "n_clusters",
    "init",
    "distance",
    "assignment",
    "update",
    "empty",
    "n_init",
    "max_iter",
    "tol",
    "random_state",
)


def fingerprint(config_values: dict[str, Any], X: Any) -> str:
    """A digest of the data's shape and dtype and of the configuration that must match."""
    plain = {}
    for key in FINGERPRINT_KEYS:
        value = config_values.get(key)
        plain[key] = value if _plain(value) else type(value).__name__
    plain["data"] = [list(X.shape), str(X.dtype)]
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


def _plain(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


@attrs.frozen(eq=False)
class Resume:
    """What a checkpoint restores: where to continue, and the best finished run."""

    next_run: int
    rng_state: dict
    iteration: int | None = None
    centroids: np.ndarray | None = None
    labels: np.ndarray | None = None
    scratch: dict = attrs.field(factory=dict)
    best: FitResult | None = None


def _write_atomic(path: pathlib.Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@attrs.define(eq=False)
class Checkpoint:
    """Observer writing the fit's state to ``folder`` every ``every`` iterations.

    Registered by :func:`kmeansfw.fit` when the config sets ``checkpoint``.
    """

    name = "checkpoint"
    folder: pathlib.Path = attrs.field(converter=pathlib.Path)
    fingerprint: str = ""
    every: int = 1
    _best: FitResult | None = attrs.field(default=None, init=False)
    _rng: Any = attrs.field(default=None, init=False)

    @hookimpl
    def kmeansfw_fit_start(self, state: FitState) -> None:
        self._rng = state.rng

    @hookimpl
    def kmeansfw_iteration_end(self, state: FitState) -> None:
        if state.iteration % self.every == 0:
            self._write(state.run, state)

    @hookimpl
    def kmeansfw_fit_end(self, result: FitResult) -> None:
        if self._best is None or result.objective < self._best.objective:
            self._best = result
        self._write(result.run + 1, None)

    def resume_with(self, resume: Resume | None) -> None:
        """Carry the best run of a resumed checkpoint on."""
        if resume is not None:
            self._best = resume.best

    def _write(self, run: int, state: FitState | None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "next_run": run,
            "rng_state": self._rng.bit_generator.state,
            "iteration": None,
            "scratch": {},
        }
        if state is not None:
            arrays["centroids"] = state.centroids
            arrays["labels"] = state.labels
            meta["iteration"] = state.iteration
            meta["scratch"] = {k: v for k, v in state.scratch.items() if _plain(v)}
        if self._best is not None:
            arrays["best_centroids"] = self._best.centroids
            arrays["best_labels"] = self._best.labels
            arrays["best_costs"] = self._best.costs
            meta["best"] = {
                "objective": self._best.objective,
                "n_iter": self._best.n_iter,
                "converged": self._best.converged,
                "run": self._best.run,
            }
        _write_atomic(self.folder / "state.npz", lambda tmp: _savez(tmp, arrays))
        _write_atomic(
            self.folder / "state.json", lambda tmp: pathlib.Path(tmp).write_text(json.dumps(meta))
        )


def _savez(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load(folder: str | os.PathLike[str], expected_fingerprint: str) -> Resume | None:
    """The state saved in ``folder``, or None when there is no checkpoint there yet.

    Raises
    ------
    ValueError
        The checkpoint was written for other data or another configuration, or is not a
        kmeansfw checkpoint.
    """
    folder = pathlib.Path(folder)
    meta_path, arrays_path = folder / "state.json", folder / "state.npz"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays = dict(np.load(arrays_path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {str(folder)!r} cannot be read: {exc}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{str(folder)!r} is not a kmeansfw checkpoint (format {FORMAT})")
    if meta.get("fingerprint") != expected_fingerprint:
        raise ValueError(
            f"checkpoint {str(folder)!r} was written for other data or another configuration "
            f"({', '.join(FINGERPRINT_KEYS)} and the data's shape must match); remove it to "
            "start afresh"
        )
    best = None
    if "best" in meta:
        b = meta["best"]
        costs = arrays["best_costs"]
        best = FitResult(
            centroids=arrays["best_centroids"],
            labels=arrays["best_labels"],
            costs=costs,
            objective=b["objective"],
            n_iter=b["n_iter"],
            converged=b["converged"],
            run=b["run"],
        )
    return Resume(
        next_run=meta["next_run"],
        rng_state=meta["rng_state"],
        iteration=meta["iteration"],
        centroids=arrays.get("centroids"),
        labels=arrays.get("labels"),
        scratch=meta.get("scratch", {}),
        best=best,
    )


def attach(
    cfg: Any, data: FitData, observers: list[Any], rng: np.random.Generator
) -> Resume | None:
    """With ``cfg.checkpoint``: add the checkpoint observer and restore a saved state."""
    if cfg.checkpoint is None:
        return None
    stamp = fingerprint(cfg.to_dict(), data.X)
    resume = load(cfg.checkpoint, stamp)
    keeper = Checkpoint(cfg.checkpoint, stamp, cfg.checkpoint_every)
    keeper.resume_with(resume)
    observers.append(keeper)
    if resume is not None:
        rng.bit_generator.state = resume.rng_state
    return resume
