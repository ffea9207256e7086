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


def _figure(n_panels: int, size: tuple[float, float] = (5.0, 4.5), ncols: int | None = None):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'kmeansfw[plot]'") from None
    ncols = n_panels if ncols is None else ncols
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for spare in axes[n_panels:]:
        spare.remove()
    return fig, axes[:n_panels]


def _save(fig, path: str | os.PathLike[str] | None):
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def projection(
    X: np.ndarray, *others: np.ndarray, feature_names: Sequence[str] | None = None
) -> tuple[list[np.ndarray], tuple[str, str], str]:
    """X (and ``others`` in the same space) in 2-D, the two axis labels, and a note.

    Two features are drawn as they are; one is padded with a zero axis; more are
    projected on the first two principal components of X (PCA), and the labels say so,
    with the share of the variance each component explains (one sample has none: its
    first two features are drawn).  The note is ``""``, ``"PCA projection of the d
    features"`` or ``"the first two of the d features"``, for the figure's title.
    """
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    names = list(feature_names) if feature_names is not None else []
    if len(names) != d:
        names = [f"feature {i + 1}" for i in range(d)]
    if d == 2:
        arrays = [X, *(np.asarray(o, dtype=np.float64) for o in others)]
        return arrays, (names[0], names[1]), ""
    if d == 1:
        pad = [np.column_stack([a, np.zeros(len(a))]) for a in (X, *others)]
        return pad, (names[0], ""), ""
    if X.shape[0] < 2:  # no principal components of one sample: its first two features
        arrays = [X[:, :2], *(np.asarray(o, dtype=np.float64)[:, :2] for o in others)]
        return arrays, (names[0], names[1]), f"the first two of the {d} features"
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0).fit(X)
    share = np.nan_to_num(pca.explained_variance_ratio_)
    labels = (
        f"principal component 1 ({share[0]:.1%} of variance)",
        f"principal component 2 ({share[1]:.1%} of variance)",
    )
    return [pca.transform(a) for a in (X, *others)], labels, f"PCA projection of the {d} features"


def project_2d(X: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """X (and ``others`` in the same space) in 2-D: as is, or by PCA fitted on X."""
    return projection(X, *others)[0]


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


def _scatter(
    ax,
    points: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray | None,
    title: str,
    axis_labels: tuple[str, str],
):
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=8, alpha=0.8)
    if centroids is not None:
        ax.scatter(
            centroids[:, 0],
            centroids[:, 1],
            c="black",
            marker="x",
            s=90,
            linewidths=2,
            label="centroids",
        )
        ax.legend(loc="best", fontsize="small")
    ax.set_title(title)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_xticks([])
    ax.set_yticks([])


#: Rows a scatter plot draws at most (:func:`plot_comparison`).
MAX_POINTS = 100_000


def drawn_rows(n_rows: int, max_points: int | None) -> np.ndarray | None:
    """Sorted indices of a uniform sample of ``max_points`` of ``n_rows`` rows (the same
    on every call: a generator seeded with 0), or None when all of them are drawn."""
    if max_points is not None and (
        not isinstance(max_points, int | np.integer)
        or isinstance(max_points, bool)
        or max_points < 1
    ):
        raise ValueError(f"max_points must be a positive integer or None, got {max_points!r}")
    if max_points is None or n_rows <= max_points:
        return None
    return np.sort(np.random.default_rng(0).choice(n_rows, size=int(max_points), replace=False))


def plot_clusters(
    X: np.ndarray,
    labels: Sequence[int],
    centroids: np.ndarray | None = None,
    *,
    title: str = "clusters",
    data: str | None = None,
    k: int | None = None,
    feature_names: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    max_points: int | None = MAX_POINTS,
):
    """One scatter plot of the clusters (a PCA projection beyond two features).

    The figure's title names ``data`` and ``k`` (k defaults to the number of centroids)
    and says when the picture is a PCA projection, or a sample of the rows (more than
    ``max_points``, see :func:`plot_comparison`); the axes say what they show.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The samples.
    labels : sequence of int
        Each sample's cluster.
    centroids : ndarray of shape (k, n_features), optional
        Drawn as crosses.
    title : str, default="clusters"
        The panel's title.
    data : str, optional
        The data set's name, for the figure's title.
    k : int, optional
        The number of clusters, for the figure's title (default: the centroids').
    feature_names : sequence of str, optional
        The axes' names when X has two features.
    path : path, optional
        Where to save the figure (PNG, SVG... by the suffix).
    max_points : int or None, default=100000
        The most rows drawn (a uniform sample beyond); None draws them all.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (also written to ``path`` when given).
    """
    return plot_comparison(
        X,
        {title: labels},
        centroids={title: centroids},
        data=data,
        k=k,
        feature_names=feature_names,
        path=path,
        max_points=max_points,
    )


def plot_comparison(
    X: np.ndarray,
    panels: Mapping[str, Sequence[int]],
    *,
    centroids: Mapping[str, np.ndarray | None] | None = None,
    title: str | None = None,
    data: str | None = None,
    k: int | None = None,
    feature_names: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    max_points: int | None = MAX_POINTS,
):
    """Side-by-side scatter plots of several labelings of the same data.

    ``panels`` maps a title to labels (predicted, true, another library's...); each
    labeling is renumbered to best match the first one, so equal clusters get equal
    colours.  ``centroids`` optionally maps the same titles to centroids drawn as crosses.

    The figure's title is ``title`` when given, else it is made of ``data`` (the data
    set's name), the samples and features and ``k`` (default: the number of the first
    centroids given); either way it says when the picture is a PCA projection, and the
    axis labels name the features or the principal components.  Data of more than
    ``max_points`` rows (None: no limit) is drawn, and projected, from a uniform sample
    of that many rows (the same rows on every call), and the title says so: a picture of
    millions of points shows no more, and the projection would hold copies of all of X.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The samples.
    panels : mapping of str to sequence of int
        Each panel's title and labels, one per sample.
    centroids : mapping of str to ndarray, optional
        Centroids drawn as crosses in the panel of the same title.
    title : str, optional
        The figure's title (default: made of ``data``, the shape and ``k``).
    data : str, optional
        The data set's name, for the default title.
    k : int, optional
        The number of clusters, for the default title.
    feature_names : sequence of str, optional
        The axes' names when X has two features.
    path : path, optional
        Where to save the figure.
    max_points : int or None, default=100000
        The most rows drawn.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (also written to ``path`` when given).
    """
    centroids = dict(centroids or {})
    reference = np.asarray(next(iter(panels.values())))
    panels = {name: align_labels(np.asarray(lab), reference) for name, lab in panels.items()}
    stacked = [np.asarray(c) for c in centroids.values() if c is not None]
    n_rows = np.shape(X)[0]
    shown = drawn_rows(n_rows, max_points)
    if shown is not None:  # a DataFrame or a list too; a memmap reads only these rows
        X = np.asarray(X)[shown]
        panels = {name: labels[shown] for name, labels in panels.items()}
    projected, axis_labels, note = projection(X, *stacked, feature_names=feature_names)
    if shown is not None:
        sample = f"a uniform sample of {len(shown)} of the {n_rows} samples"
        note = f"{note}; {sample}" if note else sample
    points, rest = projected[0], iter(projected[1:])
    if k is None and stacked:
        k = len(stacked[0])
    if title is None:
        d = np.shape(X)[1]
        title = f"{data or 'data'}: {n_rows} samples, {d} feature{'s' if d != 1 else ''}"
        if k is not None:
            title += f", k = {k}"
    fig, axes = _figure(len(panels))
    fig.suptitle(f"{title}\n({note})" if note else title)
    for ax, (name, labels) in zip(axes, panels.items(), strict=True):
        c = next(rest) if centroids.get(name) is not None else None
        _scatter(ax, points, np.asarray(labels), c, name, axis_labels)
    return _save(fig, path)


def plot_convergence(
    history: Sequence[Mapping[str, Any]],
    *,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
):
    """Objective per iteration, one line per run, from ``History.records`` or ``history_``.

    Parameters
    ----------
    history : sequence of mapping
        The records (``km.history_``, or a fit's ``History.records``).
    title : str, optional
        The figure's title.
    path : path, optional
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (also written to ``path`` when given).
    """
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
    ax.set_title(title or f"k-means objective per iteration ({len(runs)} run(s))")
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective")
    ax.set_yscale("log")
    if len(runs) > 1:
        ax.legend()
    return _save(fig, path)


def plot_experiment(
    result: Any,
    metric: str = "objective",
    *,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
):
    """Box plots of ``metric`` per config, one panel per data set, from an experiment.

    ``result`` is an experiment's result or its rows.  Data sets are never pooled: each
    panel is titled with its data set and k (when the cells record it) and has its own
    axis.  The figure's title is ``title``, or says the metric and the number of seeds.

    Parameters
    ----------
    result : ExperimentResult or sequence of mapping
        The experiment, or its rows.
    metric : str, default="objective"
        The column to draw (``"ari"``, ``"nmi"``, ``"silhouette"``, ``"n_iter"``,
        ``"fit_seconds"``...).
    title : str, optional
        The figure's title.
    path : path, optional
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (also written to ``path`` when given).
    """
    rows = result.rows if hasattr(result, "rows") else list(result)
    if not rows:
        raise ValueError("plot_experiment: the experiment has no cells to plot")
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    names = list(dict.fromkeys(r["config"] for r in rows))
    ncols = len(datasets) if len(datasets) <= 3 else (2 if len(datasets) == 4 else 3)
    fig, axes = _figure(len(datasets), size=(max(4.0, 1.6 * len(names)), 4.0), ncols=ncols)
    for ax, dataset in zip(axes, datasets, strict=True):
        mine = [r for r in rows if r["dataset"] == dataset]
        values = [
            [float(r[metric]) for r in mine if r["config"] == n and r[metric] not in ("", None)]
            for n in names
        ]
        if any(values):
            ax.boxplot(values, tick_labels=names)
        else:
            ax.text(0.5, 0.5, f"no {metric} for this data set", ha="center", transform=ax.transAxes)
        ks = {r.get("n_clusters") for r in mine} - {"", None}
        ax.set_title(f"{dataset} (k = {ks.pop()})" if len(ks) == 1 else str(dataset))
        ax.set_xlabel("configuration")
        ax.set_ylabel(metric)
    seeds = {len({r["seed"] for r in rows if r["dataset"] == d}) for d in datasets}
    if title is None:
        title = f"{metric} per configuration"
        if len(seeds) == 1:
            title += f", {seeds.pop()} seed(s) each"
    fig.suptitle(title)
    return _save(fig, path)
