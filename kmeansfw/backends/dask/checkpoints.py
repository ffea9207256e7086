"""Checkpoints of a Dask fit: the fingerprint digested chunk by chunk on the workers,
the :class:`ClusterCheckpoint` observer writing reduced mid-run state, and loading it
back to resume."""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

import attrs
import numpy as np

from kmeansfw.backends.dask.cluster import _futures_in_order
from kmeansfw.core.config import Config
from kmeansfw.core.errors import CheckpointError
from kmeansfw.workflow import checkpoint


def _digests(X: np.ndarray, sample_weight: np.ndarray) -> tuple[str, str]:
    """Worker: digests of one persisted chunk's rows and weights (their content)."""
    return checkpoint.data_digest(X), checkpoint.data_digest(sample_weight)


def _fingerprint(client: Any, cfg: Config, X: Any, sw: Any) -> dict[str, str]:
    """:func:`kmeansfw.workflow.checkpoint.fingerprint` of a Dask fit: the settings as in
    memory; ``X`` and ``sample_weight`` by their chunks' digests, computed on the
    workers and combined in row order with the shape, dtype and chunk sizes (X is never
    gathered).  The same data chunked otherwise does not resume the checkpoint: the
    per-chunk sums, and so the last bits of the centroids, depend on the chunking."""
    parts = client.gather(client.map(_digests, _futures_in_order(X), _futures_in_order(sw)))
    stamp = checkpoint.fingerprint(cfg.to_dict(), np.empty((0, X.shape[1]), dtype=X.dtype))
    layout = ["dask chunks", list(X.shape), X.dtype.str, [int(c) for c in X.chunks[0]]]
    for i, name in enumerate(("X", "sample_weight")):
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps([*layout, name]).encode())
        for part in parts:
            h.update(part[i].encode())
        stamp[name] = h.hexdigest()
    return stamp


#: ``state.json``'s mark of a Dask fit's mid-run state (centroids and the centroids the
#: last labels were assigned to, no labels).
_REDUCED = "reduced: centroids and previous_centroids"


@attrs.define(eq=False)
class ClusterCheckpoint(checkpoint.Checkpoint):
    """The checkpoint observer of a Dask fit.

    As :class:`~kmeansfw.workflow.checkpoint.Checkpoint` (same files, fingerprint,
    atomic writes and checks), but a run's state mid-fit holds only reduced quantities:
    the centroids and the previous centroids, to which the last labels were assigned.
    The labels stay on the workers; a resumed fit rebuilds them there with one
    assignment to the previous centroids.  Between runs the state is the in-memory one
    (the best run's labels and costs, which the driver holds anyway).
    """

    def _run_state(self, state: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        # the labels stay on the workers; a resume rebuilds them from previous_centroids
        arrays = {
            "centroids": np.asarray(state.centroids),
            "previous_centroids": np.asarray(state.previous_centroids),
        }
        meta = {
            "iteration": state.iteration,
            "scratch": checkpoint.plain_scratch(state.scratch),
            "state": _REDUCED,
        }
        return arrays, meta


@attrs.frozen(eq=False)
class _Resume:
    """A Dask checkpoint's mid-run state (see :class:`ClusterCheckpoint`)."""

    iteration: int
    centroids: np.ndarray
    previous_centroids: np.ndarray
    scratch: dict


def _load_checkpoint(
    cfg: Config, stamp: dict[str, str], X: Any, rng: np.random.Generator
) -> tuple[checkpoint.Resume | None, _Resume | None]:
    """The state of ``cfg.checkpoint`` for this fit, validated as
    :func:`kmeansfw.workflow.checkpoint.load` validates (None: start afresh), and the
    run's mid-run state when it holds one (written by :class:`ClusterCheckpoint`).

    Raises
    ------
    CheckpointError
        The checkpoint is damaged; the message names the file and the fault.
    """
    n, d = X.shape
    folder = pathlib.Path(cfg.checkpoint)
    expected = checkpoint._Expected(
        dict(stamp),
        n,
        d,
        cfg.n_clusters,
        checkpoint._n_runs(cfg),
        cfg.max_iter,
        X.dtype,
        rng.bit_generator,
        cfg.random_state is not None,
    )
    meta_path = folder / "state.json"
    if not meta_path.exists() and not meta_path.is_symlink():
        return None, None
    meta = checkpoint._read_meta(meta_path)
    if meta.get("iteration") is None:  # between runs: the in-memory layout and load
        resume = checkpoint.load(
            folder,
            stamp,
            n_samples=n,
            n_features=d,
            n_clusters=cfg.n_clusters,
            n_init=expected.n_init,
            max_iter=cfg.max_iter,
            dtype=X.dtype,
            bit_generator=rng.bit_generator,
            reproducible=expected.reproducible,
        )
        return resume, None
    if not checkpoint._check_identity(meta, meta_path, expected):
        return None, None  # another fit's (warned): start afresh
    rng_state = checkpoint._check_meta(meta, meta_path, expected)
    if meta.get("state") != _REDUCED:
        raise checkpoint._fail(meta_path, "does not hold a Dask fit's reduced state")
    arrays_path = folder / "state.npz"
    # the best run and fitted arrays, checked by the module (the mid-run arrays below)
    between = {**meta, "iteration": None}
    arrays = checkpoint._read_arrays(arrays_path, meta["arrays"], between, expected)
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            missing = [a for a in ("centroids", "previous_centroids") if a not in npz.files]
            if missing:
                raise checkpoint._fail(arrays_path, f"has no array {', '.join(map(repr, missing))}")
            now, previous = npz["centroids"], npz["previous_centroids"]
    except CheckpointError:
        raise
    except Exception as exc:  # any failure of parsing: zipfile, EOF, header, CRC, ...
        raise checkpoint._fail(
            arrays_path, f"cannot be read as .npz ({type(exc).__name__}: {exc})"
        ) from None
    shape = (cfg.n_clusters, d)
    start = _Resume(
        meta["iteration"],
        checkpoint._checked(now, "centroids", shape, X.dtype, arrays_path),
        checkpoint._checked(previous, "previous_centroids", shape, X.dtype, arrays_path),
        dict(meta["scratch"]),
    )
    best, fitted = checkpoint.best_and_fitted(meta, arrays)
    resume = checkpoint.Resume(
        next_run=meta["next_run"],
        rng_state=rng_state,
        iteration=meta["iteration"],
        centroids=start.centroids,
        scratch=start.scratch,
        best=best,
        fitted=fitted,
    )
    return resume, start
