"""Plots for research scripts (the optional extra ``kmeansfw[plot]``, matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so it
works headless (no display, no GUI backend) and never touches global state; pass
``path`` to save it as well.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _figure(n_panels: int, size: tuple[float, float] = (5.0, 4.5)):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'kmeansfw[plot]'") from None
    fig = Figure(figsize=(size[0] * n_panels, size[1]), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, axes


def _save(fig, path: str | os.PathLike[str] | None):
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def project_2d(X: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """X (and ``others`` in the same space) in 2-D: as is, or by PCA fitted on X."""
    X = np.asarray(X, dtype=np.float64)
    if X.shape[1] == 2:
        return [X, *(np.asarray(o, dtype=np.float64) for o in others)]
    if X.shape[1] == 1:
        pad = [np.column_stack([a, np.zeros(len(a))]) for a in (X, *others)]
        return pad
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0).fit(X)
    return [pca.transform(a) for a in (X, *others)]


def align_labels(labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Renumber ``labels`` to agree with ``reference`` as much as possible (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    ours, inverse = np.unique(labels, return_inverse=True)
    theirs = np.unique(reference)
    overlap = np.zeros((ours.size, max(theirs.size, ours.size)))
    np.add.at(overlap, (inverse, np.searchsorted(theirs, reference)), 1)
    rows, cols = linear_sum_assignment(-overlap)
    target = np.empty(ours.size, dtype=np.int64)
    spare = iter(range(theirs.max(initial=0) + 1, theirs.max(initial=0) + 1 + ours.size))
    for r, c in zip(rows, cols, strict=True):
        target[r] = theirs[c] if c < theirs.size else next(spare)
    return target[inverse]


def _scatter(ax, points: np.ndarray, labels: np.ndarray, centroids: np.ndarray | None, title: str):
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=8, alpha=0.8)
    if centroids is not None:
        ax.scatter(centroids[:, 0], centroids[:, 1], c="black", marker="x", s=90, linewidths=2)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_clusters(
    X: np.ndarray,
    labels: Sequence[int],
    centroids: np.ndarray | None = None,
    *,
    title: str = "clusters",
    path: str | os.PathLike[str] | None = None,
):
    """One scatter plot of the clusters (a PCA projection beyond two features)."""
    return plot_comparison(X, {title: labels}, centroids={title: centroids}, path=path)


def plot_comparison(
    X: np.ndarray,
    panels: Mapping[str, Sequence[int]],
    *,
    centroids: Mapping[str, np.ndarray | None] | None = None,
    path: str | os.PathLike[str] | None = None,
):
    """Side-by-side scatter plots of several labelings of the same data.

    ``panels`` maps a title to labels (predicted, true, another library's...); each
    labeling is renumbered to best match the first one, so equal clusters get equal
    colours.  ``centroids`` optionally maps the same titles to centroids drawn as crosses.
    """
    centroids = dict(centroids or {})
    reference = np.asarray(next(iter(panels.values())))
    panels = {title: align_labels(np.asarray(lab), reference) for title, lab in panels.items()}
    stacked = [np.asarray(c) for c in centroids.values() if c is not None]
    projected = project_2d(X, *stacked)
    points, rest = projected[0], iter(projected[1:])
    fig, axes = _figure(len(panels))
    for ax, (title, labels) in zip(axes, panels.items(), strict=True):
        c = next(rest) if centroids.get(title) is not None else None
        _scatter(ax, points, np.asarray(labels), c, title)
    return _save(fig, path)


def plot_convergence(
    history: Sequence[Mapping[str, Any]], *, path: str | os.PathLike[str] | None = None
):
    """Objective per iteration, one line per run, from ``History.records`` or ``history_``."""
    fig, (ax,) = _figure(1, size=(6.0, 4.0))
    runs = sorted({r.get("run", 0) for r in history})
    for run in runs:
        records = [r for r in history if r.get("run", 0) == run]
        ax.plot(
            [r["iteration"] for r in records],
            [r["objective"] for r in records],
            marker="o",
            label=f"run {run}",
        )
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective")
    ax.set_yscale("log")
    if len(runs) > 1:
        ax.legend()
    return _save(fig, path)


def plot_experiment(
    result: Any, metric: str = "objective", *, path: str | os.PathLike[str] | None = None
):
    """Box plots of ``metric`` per config, from an experiment's result (or its rows)."""
    rows = result.rows if hasattr(result, "rows") else list(result)
    names = list(dict.fromkeys(r["config"] for r in rows))
    values = [
        [float(r[metric]) for r in rows if r["config"] == n and r[metric] != ""] for n in names
    ]
    fig, (ax,) = _figure(1, size=(max(4.0, 1.6 * len(names)), 4.0))
    ax.boxplot(values, tick_labels=names)
    ax.set_ylabel(metric)
    return _save(fig, path)
