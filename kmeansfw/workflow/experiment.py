"""The experiment runner: configs x data sets x seeds -> a tidy table.

Each cell fits one configuration on one data set with one seed (``random_state``) and
records the objective, ARI and NMI against the true labels when the data set has them,
the silhouette on a sample, the iterations and the fit time.  Cells run in parallel worker
processes (joblib), are appended to a CSV as they finish, and a rerun with the same CSV
skips the cells already there, so a long study that dies loses at most the cells in
flight.

>>> from kmeansfw.workflow.experiment import run_experiment
>>> result = run_experiment({"random": {"init": "random"}, "k-means++": {}},
...                         ["iris"], seeds=range(3), n_clusters=3)
>>> [row["config"] for row in result.summary()]
['random', 'k-means++']
"""

from __future__ import annotations

import csv
import os
import pathlib
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np
from tqdm.auto import tqdm

from kmeansfw.core.config import Config
from kmeansfw.core.errors import ConfigError

COLUMNS = [
    "config",
    "dataset",
    "seed",
    "objective",
    "ari",
    "nmi",
    "silhouette",
    "n_iter",
    "fit_seconds",
]
BUNDLED = ("iris", "wine", "breast_cancer", "digits")
BLOBS = {
    "blobs": {"n_samples": 1000, "centers": 4, "n_features": 2, "random_state": 0},
    "blobs-10d": {"n_samples": 3000, "centers": 8, "n_features": 10, "random_state": 0},
    "blobs-overlap": {
        "n_samples": 2000,
        "centers": 5,
        "n_features": 3,
        "cluster_std": 3.0,
        "random_state": 0,
    },
}


class DataError(ValueError):
    """A data set name or file that cannot be loaded; the message says why."""


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, y)`` for a data set name, or ``(X, None)`` for a data file.

    Names: scikit-learn's bundled ``iris``, ``wine``, ``breast_cancer``, ``digits``; the
    make_blobs presets ``blobs``, ``blobs-10d``, ``blobs-overlap``.  Files: ``.csv``
    (numbers only, an optional header line), ``.npy``, and ``.parquet`` when pyarrow is
    installed.
    """
    from sklearn import datasets

    if name in BUNDLED:
        bunch = getattr(datasets, f"load_{name}")()
        return bunch.data.astype(np.float64), bunch.target
    if name in BLOBS:
        return datasets.make_blobs(**BLOBS[name])
    return load_file(name), None


def load_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Load a 2-D numeric array from a .csv, .npy or .parquet file, or raise DataError."""
    path = pathlib.Path(path)
    if not path.exists():
        known = ", ".join((*BUNDLED, *BLOBS))
        raise DataError(f"no such data file or data set: {str(path)!r} (data sets: {known})")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        elif suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise DataError("reading Parquet needs pyarrow: pip install pyarrow") from None
            X = np.column_stack([c.to_numpy() for c in pq.read_table(path).columns])
        elif suffix in (".csv", ".txt"):
            X = _read_csv(path)
        else:
            raise DataError(
                f"{path.name}: unknown data file type {suffix!r} (.csv, .npy, .parquet)"
            )
    except DataError:
        raise
    except (ValueError, OSError) as exc:
        raise DataError(f"{path.name}: {exc}") from None
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{path.name}: expected a non-empty 2-D table, got shape {X.shape}")
    if X.dtype.kind not in "fiub":
        raise DataError(f"{path.name}: the data must be numeric, got {X.dtype}")
    return X


def _read_csv(path: pathlib.Path) -> np.ndarray:
    with open(path, newline="") as fh:
        rows = [row for row in csv.reader(fh) if row]
    if not rows:
        raise DataError(f"{path.name}: the file is empty")

    def numeric(row: list[str]) -> bool:
        try:
            [float(v) for v in row]
        except ValueError:
            return False
        return True

    if not numeric(rows[0]):
        rows = rows[1:]  # a header line
        if not rows:
            raise DataError(f"{path.name}: only a header, no data")
    width = len(rows[0])
    for line, row in enumerate(rows, start=1):
        if len(row) != width:
            raise DataError(
                f"{path.name}: ragged rows: row {line} has {len(row)} values, the first {width}"
            )
        for column, value in enumerate(row, start=1):
            try:
                float(value)
            except ValueError:
                raise DataError(
                    f"{path.name}: non-numeric value {value!r} in row {line}, column {column}"
                ) from None
    return np.array(rows, dtype=np.float64)


def _config_values(config: Any) -> dict[str, Any]:
    if isinstance(config, Config):
        return config.to_dict()
    if isinstance(config, Mapping):
        return dict(config)
    return Config.from_toml(config).to_dict()


def run_cell(
    name: str, config: Mapping[str, Any], dataset: str, seed: int, silhouette_sample: int
) -> dict[str, Any]:
    """Fit one configuration on one data set with one seed; return the table row."""
    from sklearn.metrics import (
        adjusted_rand_score,
        normalized_mutual_info_score,
        silhouette_score,
    )

    from kmeansfw.estimator import KMeans

    X, y = load_dataset(dataset)
    km = KMeans.from_config({**config, "random_state": int(seed)})
    start = time.perf_counter()
    km.fit(X)
    seconds = time.perf_counter() - start
    row: dict[str, Any] = {
        "config": name,
        "dataset": dataset,
        "seed": int(seed),
        "objective": km.inertia_,
        "ari": "",
        "nmi": "",
        "silhouette": "",
        "n_iter": km.n_iter_,
        "fit_seconds": seconds,
    }
    if y is not None:
        row["ari"] = adjusted_rand_score(y, km.labels_)
        row["nmi"] = normalized_mutual_info_score(y, km.labels_)
    if 1 < np.unique(km.labels_).size < X.shape[0]:
        sample = min(silhouette_sample, X.shape[0])
        row["silhouette"] = silhouette_score(
            X, km.labels_, sample_size=sample, random_state=int(seed)
        )
    return row


def _mean_of(rows: list[dict[str, Any]], key: str) -> float | str:
    values = [float(r[key]) for r in rows if r[key] not in ("", None)]
    return float(np.mean(values)) if values else ""


@attrs.define
class ExperimentResult:
    """The table of an experiment: one row per (config, data set, seed)."""

    rows: list[dict[str, Any]]

    def summary(self) -> list[dict[str, Any]]:
        """Per config (in first-seen order): cells, mean/std/best objective, mean ARI/NMI."""
        out = []
        for name in dict.fromkeys(r["config"] for r in self.rows):
            mine = [r for r in self.rows if r["config"] == name]
            objective = np.array([float(r["objective"]) for r in mine])

            out.append(
                {
                    "config": name,
                    "cells": len(mine),
                    "objective_mean": float(objective.mean()),
                    "objective_std": float(objective.std()),
                    "objective_best": float(objective.min()),
                    "ari_mean": _mean_of(mine, "ari"),
                    "nmi_mean": _mean_of(mine, "nmi"),
                    "n_iter_mean": _mean_of(mine, "n_iter"),
                    "fit_seconds_mean": _mean_of(mine, "fit_seconds"),
                }
            )
        return out

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the table (all columns, one row per cell)."""
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)

    def to_pandas(self):  # pragma: no cover - optional dependency
        """The table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=COLUMNS)


def _read_finished(path: pathlib.Path) -> list[dict[str, Any]]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["seed"] = int(row["seed"])
        row["objective"] = float(row["objective"])
        row["n_iter"] = int(row["n_iter"])
    return rows


def run_experiment(
    configs: Mapping[str, Any],
    datasets: Iterable[str],
    seeds: Iterable[int] = range(5),
    *,
    n_clusters: int | None = None,
    out: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    silhouette_sample: int = 1000,
    progress: bool = False,
) -> ExperimentResult:
    """Run every (config, data set, seed) cell; see the module docstring.

    Parameters
    ----------
    configs : mapping of name -> Config, dict or TOML path
    datasets : names or data files (see :func:`load_dataset`)
    seeds : the ``random_state`` of each repetition
    n_clusters : int, optional
        Overrides the configs' ``n_clusters``.
    out : path, optional
        CSV that cells are appended to as they finish; cells already in it are skipped.
    n_jobs : int
        Worker processes (joblib); -1 for all CPUs.
    silhouette_sample : int
        Samples for the silhouette score.
    progress : bool
        A progress bar over cells on standard error, when it is a terminal and the
        experiment lasts over 2 seconds.
    """
    from joblib import Parallel, delayed

    plain = {}
    for name, config in configs.items():
        values = _config_values(config)
        if n_clusters is not None:
            values["n_clusters"] = n_clusters
        try:
            Config.from_dict(values)
        except ConfigError as exc:
            raise ConfigError(f"config {name!r}: {exc}") from None
        plain[name] = values
    datasets, seeds = list(datasets), [int(s) for s in seeds]
    for dataset in datasets:
        if dataset not in BUNDLED and dataset not in BLOBS:
            load_file(dataset)  # fail early, before any worker starts
    path = pathlib.Path(out) if out is not None else None
    finished = _read_finished(path) if path is not None else []
    done = {(r["config"], r["dataset"], r["seed"]) for r in finished}
    todo = [
        (name, dataset, seed)
        for name in plain
        for dataset in datasets
        for seed in seeds
        if (name, dataset, seed) not in done
    ]
    rows = list(finished)
    writer = None
    fh = None
    try:
        if path is not None:
            new_file = not path.exists() or path.stat().st_size == 0
            fh = open(path, "a", newline="")
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            if new_file:
                writer.writeheader()
        jobs = (
            delayed(run_cell)(name, plain[name], dataset, seed, silhouette_sample)
            for name, dataset, seed in todo
        )
        bar = tqdm(
            total=len(todo),
            unit="cell",
            delay=2,
            leave=False,
            disable=not (progress and sys.stderr.isatty()),
        )
        for row in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
            bar.update(1)
            rows.append(row)
            if writer is not None:
                writer.writerow(row)
                fh.flush()
        bar.close()
    finally:
        if fh is not None:
            fh.close()
    order = {
        key: i for i, key in enumerate((n, d, s) for n in plain for d in datasets for s in seeds)
    }
    rows = [r for r in rows if (r["config"], r["dataset"], r["seed"]) in order]
    rows.sort(key=lambda r: order[(r["config"], r["dataset"], r["seed"])])
    return ExperimentResult(rows)
