"""The experiment runner: configs x data sets x seeds -> a tidy table.

Each cell fits one configuration on one data set with one seed (``random_state``) and
records the objective, ARI and NMI against the true labels when the data set has them,
the silhouette on a sample, the iterations, the fit time and k.  Cells run in parallel
worker processes (joblib), are appended to a CSV as they finish, and a rerun with the
same CSV skips the cells already there, so a long study that dies loses at most the cells
in flight.  Each row records a digest of its settings (the config's values, the
silhouette's sample, a data file's content): a row counts for a rerun only under the same
settings, so a config changed under its name, or a data file rewritten, is computed again.
The summary has one row per data set and config: objectives of different data sets are on
different scales and are never pooled.

>>> from kmeansfw.workflow.experiment import run_experiment
>>> result = run_experiment({"random": {"init": "random"}, "k-means++": {}},
...                         ["iris"], seeds=range(3), n_clusters=3)
>>> [row["config"] for row in result.summary()]
['random', 'k-means++']
"""

from __future__ import annotations

import collections
import csv
import io
import os
import pathlib
import sys
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np
from tqdm.auto import tqdm

from kmeansfw.core.catalog import Entry
from kmeansfw.core.config import Config
from kmeansfw.core.errors import ConfigError, StrategyError, warn
from kmeansfw.strategies.observers import records_frame
from kmeansfw.strategies.validators import integer

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
    "n_clusters",
    "settings",
]
#: The columns of :meth:`ExperimentResult.summary`, in the order ``kmeansfw compare``
#: prints them.
SUMMARY_COLUMNS = [
    "dataset",
    "config",
    "n_clusters",
    "cells",
    "objective_mean",
    "objective_std",
    "objective_best",
    "ari_mean",
    "nmi_mean",
    "n_iter_mean",
    "fit_seconds_mean",
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


def load_dataset(
    name: str, *, header: bool | None = None, mmap: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, y)`` for a data set name, or ``(X, None)`` for a data file.

    Names: scikit-learn's bundled ``iris``, ``wine``, ``breast_cancer``, ``digits``; the
    make_blobs presets ``blobs``, ``blobs-10d``, ``blobs-overlap``.  Files: ``.csv``
    (numbers only, an optional header line of column names; a header above an index
    column, as pandas writes one, and a first line reading ``0,1,...,d-1``, pandas'
    default column names, are refused: they cannot be told from data), ``.npy``, and
    ``.parquet`` when pyarrow is installed.

    Parameters
    ----------
    name : str
        A data set's name or a data file's path.
    header : bool or None, default=None
        For a CSV file, see :func:`load_file`.
    mmap : bool, default=False
        For a ``.npy`` file, see :func:`load_file`.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The samples.
    y : ndarray of shape (n_samples,) or None
        The true labels of a bundled or generated data set; None for a file.
    """
    from sklearn import datasets

    if name in BUNDLED:
        bunch = getattr(datasets, f"load_{name}")()
        return bunch.data.astype(np.float64), bunch.target
    if name in BLOBS:
        return datasets.make_blobs(**BLOBS[name])
    return load_file(name, header=header, mmap=mmap), None


def is_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an existing file (False for names no file can have)."""
    try:
        return pathlib.Path(path).is_file()
    except (OSError, ValueError):  # a NUL byte, a name too long...
        return False


def _is_folder(path: pathlib.Path) -> bool:
    """Whether ``path`` is a folder (False for a name the system refuses, too long, say:
    the message about a missing file then follows)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def load_file(
    path: str | os.PathLike[str], *, header: bool | None = None, mmap: bool = False
) -> np.ndarray:
    """Load a 2-D numeric array from a .csv, .npy or .parquet file, or raise DataError.

    Parameters
    ----------
    path : path
        The file.
    header : bool or None, default=None
        For a CSV: whether its first line is a header of column names.  None tells
        from the line: a header names every column with text, no number (so a first
        line with a number in it is data, and a bad value there is refused); True
        takes the first line as names whatever they read (``temp,2019``; but a first
        cell left empty, above an index column as pandas writes it, is refused), False
        as data.  Other file types ignore it.  (A Parquet file's index columns, those
        pandas writes for an index other than 0, 1, 2, ..., are not data: they are
        left out.)
    mmap : bool, default=False
        Map a ``.npy`` file read-only instead of reading it
        (``np.load(path, mmap_mode="r")``), so that a fit reads it block by block, for
        files near the machine's memory (the command line and :func:`run_experiment`
        do).  The array then reads the file as it is at each access: do not rewrite
        the file while it is in use.  Other file types ignore it.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        The table (a read-only ``np.memmap`` for a ``.npy`` file with ``mmap``).

    Raises
    ------
    DataError
        No such file, an unknown type, or no table of finite numbers in it (the
        message names the file and, for a CSV, the row and column).
    ValueError
        A ``header`` other than None, True or False.
    """
    return _load_file(path, header, mmap)[0]


def _load_file(
    path: str | os.PathLike[str], header: bool | None, mmap: bool
) -> tuple[np.ndarray, bool | None]:
    """:func:`load_file`'s table, and for a CSV file whether its first line was taken for
    a header (None for the other types): cells told it read the file as the check did,
    without its first-line warning again."""
    check_header(header)
    path = pathlib.Path(path)
    settled = None
    if _is_folder(path):
        raise DataError(f"{str(path)!r} is a folder, not a data file")
    if not is_file(path):
        known = ", ".join((*BUNDLED, *BLOBS))
        raise DataError(f"no such data file or data set: {str(path)!r} (data sets: {known})")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            with open(path, "rb") as file:
                magic = file.read(6)
            if magic != b"\x93NUMPY":  # np.load would read it as a pickle, and say so
                raise DataError(f"{path.name}: not a .npy array file (no NumPy header)")
            X = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            if not isinstance(X, np.ndarray):  # an .npz archive under an .npy name
                raise DataError(f"{path.name}: not a .npy array file")
        elif suffix == ".parquet":
            X = _read_parquet(path)
        elif suffix in (".csv", ".txt"):
            X, settled = _read_csv(path, header)
        else:
            raise DataError(
                f"{path.name}: unknown data file type {suffix!r} (.csv, .npy, .parquet)"
            )
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path.name}: cannot be read ({exc})") from None
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{path.name}: expected a non-empty 2-D table, got shape {X.shape}")
    if X.dtype.kind not in "fiub":
        raise DataError(f"{path.name}: the data must be numeric, got {X.dtype}")
    check_finite(X, path.name)
    return X, settled


def _read_parquet(path: pathlib.Path) -> np.ndarray:
    """A Parquet file's columns of numbers side by side, without the index columns that
    pandas wrote (named in the file's pandas metadata: ``df.to_parquet`` stores an index
    other than 0, 1, 2, ... as a column, which pandas reads back as the index, not as
    data); DataError naming a column that holds anything but numbers or booleans."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading Parquet needs pyarrow: pip install pyarrow") from None
    table = pq.read_table(path)
    try:
        metadata = table.schema.pandas_metadata or {}
    except ValueError:  # metadata that is not JSON: no pandas index to tell
        metadata = {}
    index = {name for name in metadata.get("index_columns", []) if isinstance(name, str)}
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name in index:
            continue
        kind = column.type
        numbers = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        if not (numbers or pa.types.is_boolean(kind)):
            raise DataError(
                f"{path.name}: column {name!r} holds {kind}, not numbers: drop or convert it"
            )
        columns.append(column.to_numpy())
    if not columns:
        return np.empty((table.num_rows, 0))
    return np.column_stack(columns)


def _load_parsed(
    path: str | os.PathLike[str],
    header: bool | None,
    mmap: bool,
    tables: dict[tuple[Any, ...], tuple[np.ndarray, bool | None]] | None,
) -> tuple[np.ndarray, bool | None]:
    """:func:`_load_file`, or the table ``tables`` keeps of the same CSV or Parquet file
    unchanged: :func:`run_experiment`'s own, with ``n_jobs=1``, for its check and its
    cells (None: nothing kept).  It keeps one file at a time, parsed read-only, under
    ``(resolved path, size, modification time, header)`` and under the header a
    ``None`` settled on (the one the cells are told); an ``.npy`` file is mapped, not
    parsed, each time."""
    check_header(header)
    target = pathlib.Path(path)
    if (
        tables is None
        or target.suffix.lower() not in (".csv", ".txt", ".parquet")
        or not is_file(target)
    ):
        return _load_file(path, header, mmap)
    status = target.stat()
    place = (str(target.resolve()), status.st_size, status.st_mtime_ns)
    found = tables.get((*place, header))
    if found is None:
        table, settled = _load_file(path, header, mmap)
        table.flags.writeable = False  # shared by the cells that read it
        found = (table, settled)
        tables.clear()  # one file at a time
        tables[(*place, header)] = tables[(*place, settled)] = found
    return found


def check_header(header: Any) -> None:
    """Raise ValueError unless ``header`` is None, True or False (a string such as
    ``"no"`` would read as true)."""
    if header is not None and not isinstance(header, bool | np.bool_):
        raise ValueError(f"header must be None, True or False, got {header!r}")


#: Values a pass over a data file's rows checks at a time (``check_finite``,
#: ``overflow_error``): its temporaries stay a few MB whatever the file's size.
CHECK_BLOCK_VALUES = 1 << 20


def _row_blocks(X: Any) -> Iterable[tuple[int, np.ndarray]]:
    """``(first row, block)`` over ``X``'s rows, about :data:`CHECK_BLOCK_VALUES` values a
    block (blocks of rows, never single samples)."""
    step = max(1, CHECK_BLOCK_VALUES // max(1, X.shape[1]))
    for start in range(0, X.shape[0], step):
        yield start, np.asarray(X[start : start + step])


def check_finite(X: np.ndarray, name: str) -> None:
    """Raise DataError naming ``name`` and the first cell when ``X`` holds NaN or infinity.

    Checked a block of rows at a time: a file mapped from disk is read, never copied."""
    if X.dtype.kind != "f":
        return
    first, count = None, 0
    for start, block in _row_blocks(X):
        bad = ~np.isfinite(block)
        found = int(np.count_nonzero(bad))
        if found and first is None:
            row, column = np.argwhere(bad)[0]
            first = (start + int(row), int(column))
        count += found
    if first is not None:
        row, column = first
        raise DataError(
            f"{name}: the data contains NaN or infinity ({count} value(s); the first, "
            f"{float(X[row, column])}, in row {row + 1}, column {column + 1}); values beyond "
            f"{np.finfo(X.dtype).max:.3g} overflow to infinity in {X.dtype}"
        )


def overflow_error(X: Any, name: str) -> DataError | None:
    """A DataError when ``X``'s values are so large that squared distances overflow.

    Squared Euclidean distances (and the k-means objective) of rows whose entries reach
    ``m`` go up to about ``4 * m**2 * n_features``; beyond the largest float of ``X``'s
    dtype they become infinity, and the distance strategy is not to blame.
    """
    if not hasattr(X, "dtype") or not hasattr(X, "shape"):
        X = np.asarray(X)
    if X.dtype.kind != "f" or X.size == 0:
        return None
    largest = max(float(np.max(np.abs(block))) for _, block in _row_blocks(X))
    limit = float(np.finfo(X.dtype).max)
    if not np.isfinite(largest) or largest > (limit / (4.0 * X.shape[1])) ** 0.5:
        return DataError(
            f"{name}: the data's values (up to {largest:.3g} in magnitude) overflow to "
            f"infinity in squared distances ({X.dtype} holds at most {limit:.3g}); "
            f"rescale the data, e.g. standardize each column"
        )
    return None


def fit_checked(km: Any, X: np.ndarray, name: str) -> Any:
    """``km.fit(X)``, with a failure that comes from overflowing data, or data spread so
    little that its squared distances underflow, raised as DataError."""
    from kmeansfw.strategies.euclidean import SpreadError

    try:
        km.fit(X)
    except SpreadError as exc:  # the distance's own judgement, as a data error
        raise DataError(f"{name}: {exc.problem}") from None
    except StrategyError:
        error = overflow_error(X, name)
        if error is not None:
            raise error from None
        raise
    if not np.isfinite(km.inertia_):
        error = overflow_error(X, name)
        if error is not None:
            raise error
    return km


def _parses_as_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _counting(cells: list[str], start: int = 1) -> list[str]:
    """pandas' default column names for the cells from ``start``: 0, 1, 2, ..."""
    return [str(i) for i in range(len(cells) - start)]


def _read_csv(path: pathlib.Path, header: bool | None = None) -> tuple[np.ndarray, bool]:
    """The table of a CSV file and whether its first line was taken for a header."""
    raw = path.read_bytes()
    if b"\x00" in raw:  # UTF-16 (with or without its mark) or a binary file
        raise DataError(f"{path.name}: not UTF-8 text (it holds NUL bytes: UTF-16?)")
    try:  # utf-8-sig: a byte order mark (Excel's "CSV UTF-8") is not part of a value
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel's plain "CSV" (Windows-1252) with accented names in its header: the
        # numbers are ASCII either way, and the header's names are not used
        text = raw.decode("latin-1")
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    if not rows:
        raise DataError(f"{path.name}: the file is empty")
    # a header names every column with something other than a number; a first line
    # with a number in it is data (a bad value in it is refused below, as in any row)
    first = [v.strip() for v in rows[0]]
    told = header is not None  # the caller says; else the first line does
    if not told:
        header = not any(_parses_as_float(v) for v in first)
    # pandas' header above a DataFrame's index: an empty cell, then the column names
    # (its default names 0, 1, ... are numbers)
    above_index = len(first) > 1 and not first[0] and (header or first[1:] == _counting(first))
    if above_index and (header or not told):  # unless the caller says it is data
        raise DataError(
            f"{path.name}: the header's first cell is empty, as pandas writes it above "
            "a DataFrame's index (to_csv without index=False); that column would be "
            "clustered as a feature: write the file with index=False, or drop the column"
        )
    if header:
        names, rows = rows[0], rows[1:]
        if not rows:
            raise DataError(f"{path.name}: only a header, no data")
        if len(names) != len(rows[0]):
            raise DataError(
                f"{path.name}: the header names {len(names)} columns, the first row has "
                f"{len(rows[0])} values"
            )
    elif not told and len(first) > 1 and first == _counting(first, 0):
        message = (
            f"{path.name}: the first line reads {','.join(rows[0])}, the column names pandas "
            "gives a DataFrame without any (to_csv writes them as a header)"
        )
        if len(rows[0]) >= 3:  # a sample 0, 1, 2, ... is unlikely: refused
            raise DataError(
                f"{message}; it would be clustered as a sample: read it with header=True "
                "(--header), name the columns, or write the file with header=False; if the "
                "line is data, read it with header=False (--no-header)"
            )
        warn(  # two columns of 0/1 data may well start with 0,1: kept as data
            f"{message}, or a sample: read as a sample; if it is a header, read it with "
            "header=True (--header), name the columns or write the file with header=False"
        )
    width = len(rows[0])
    for line, row in enumerate(rows, start=1):
        if len(row) != width:
            raise DataError(
                f"{path.name}: ragged rows: row {line} has {len(row)} values, the first {width}"
            )
        for column, value in enumerate(row, start=1):
            if not _parses_as_float(value):
                hint = ""
                if line == 1 and not told:
                    hint = (
                        " (a header line names every column with text, no number; for "
                        "names such as 2019 pass header=True to load_file, "
                        "load_dataset or run_experiment, or --header to kmeansfw fit "
                        "or compare)"
                    )
                raise DataError(
                    f"{path.name}: non-numeric value {value!r} in row {line}, column {column}"
                    f"{hint}"
                )
    return np.array(rows, dtype=np.float64), bool(header)


def _config_values(config: Any) -> dict[str, Any]:
    if isinstance(config, Config):
        return config.to_dict()
    if isinstance(config, Mapping):
        return dict(config)
    return Config.from_toml(config).to_dict()


#: Worker: the experiments (their tokens) whose program's strategies this process has
#: registered already (a worker process runs many cells of one experiment).
_REGISTERED: set[str] = set()


def _run_cell_registering(
    token: str, entries: list[Entry], home: int, tables: dict | None, *args: Any
) -> tuple[dict[str, Any], bytes]:
    """Worker: register the calling program's own strategies (``entries``: those whose
    factories pickle, see :func:`_program_strategies`), once per experiment ``token``,
    then :func:`run_cell` (its data file from ``tables``, see :func:`_load_parsed`);
    returns its row and, in a worker process, the warnings it
    raised (:func:`_sendable`), for :func:`run_experiment` to raise again in the calling
    process (``home``, its process id), where the program's filters judge them. A
    worker process starts from the installed catalog, where such a name is unknown, or
    the built-in it replaced. In the calling process itself (``n_jobs=1``, or joblib's
    threading backend) a cell's warnings are raised as they happen; nothing here touches
    the process's warning filters, which threads share."""
    from kmeansfw.core.catalog import CATALOG

    if entries and token not in _REGISTERED:
        CATALOG.load()
        for e in entries:
            CATALOG.register(e.slot, e.name, e.factory, source=e.source, replace=True)
        _REGISTERED.add(token)
    if os.getpid() == home:
        return _cell(*args, tables), b""
    # a worker process: its own default filters (library deprecations hidden, as in
    # the program by default), each cell's warnings recorded
    with warnings.catch_warnings(record=True) as caught:
        try:
            row = _cell(*args, None)
        except BaseException as exc:  # the warnings that may explain it go with it
            notes = getattr(exc, "__notes__", None) or []
            for category, text in _unique(caught):
                notes.append(f"{category.__name__} raised by this cell first: {text}")
            if notes:
                exc.__notes__ = notes  # what add_note sets (Python 3.11+ prints them)
            raise
    return row, _sendable(caught)


def _unique(caught: Iterable[warnings.WarningMessage]) -> list[tuple[type[Warning], str]]:
    """Recorded warnings as (category, text), each once, in the order first raised."""
    return list(dict.fromkeys((w.category, str(w.message)) for w in caught))


def _sendable(caught: Iterable[warnings.WarningMessage]) -> bytes:
    """Recorded warnings (:func:`_unique`), pickled as joblib sends tasks (cloudpickle:
    a category the program defined in its script arrives as that class); a category
    that does not pickle goes as a ``UserWarning`` whose text starts with its name."""
    cloudpickle = _cloudpickle()
    out = []
    for category, text in _unique(caught):
        try:
            cloudpickle.dumps(category)
        except Exception:  # noqa: BLE001 - whatever stops it, the text still goes
            category, text = UserWarning, f"{category.__name__}: {text}"
        out.append((category, text))
    return cloudpickle.dumps(out)


def _cloudpickle() -> Any:
    try:  # what joblib's worker processes receive their tasks by
        import cloudpickle
    except ImportError:  # pragma: no cover - joblib before 1.5 vendored it
        from joblib.externals import cloudpickle  # type: ignore[no-redef]
    return cloudpickle


def _relay(sent: bytes, seen: set[tuple[Any, ...]], row: dict[str, Any]) -> None:
    """Raise again in this process the warnings a cell (``row``'s) raised in a worker
    process: the text as it was, then the cell in brackets (so that filters matching
    the start of a message still match), each category and text once per config and
    data set (the seeds of one config repeat each other); the location is the
    program's (:func:`kmeansfw.core.errors.warn`)."""
    if not sent:
        return
    group = (row["config"], row["dataset"])
    where = f"config {row['config']!r}, data set {row['dataset']!r}, seed {row['seed']}"
    for category, text in _cloudpickle().loads(sent):
        if (group, category, text) in seen:
            continue
        seen.add((group, category, text))
        try:
            warning = category(f"{text} [{where}]")
        except Exception:  # noqa: BLE001 - a category built otherwise than from a text
            warning = UserWarning(f"{category.__name__}: {text} [{where}]")
        warn(warning)


def _program_strategies(configs: Iterable[Mapping[str, Any]], n_jobs: int) -> list[Entry]:
    """The strategies this program registered itself (:meth:`Catalog.in_process
    <kmeansfw.core.catalog.Catalog.in_process>`) that reach worker processes: every one
    whose factory pickles; one that does not, and that a config names (at any depth:
    criteria inside ``any``, the distance's natural update), is refused by name."""
    from kmeansfw.core.catalog import CATALOG
    from kmeansfw.core.distance import describe

    cloudpickle = _cloudpickle()

    entries, stuck = [], {}
    for e in CATALOG.in_process():
        try:
            cloudpickle.dumps(e.factory)
            entries.append(e)
        except Exception as exc:  # noqa: BLE001 - whatever stops it, said if it is named
            stuck[e.name] = (e, exc)
    if not stuck:
        return entries
    for values in configs:
        names = set(_strategy_names(values))
        cfg = Config.from_dict(values)
        if cfg.update is None:  # the distance's natural update is the fit's
            natural = describe(CATALOG.create("distance", cfg.distance)[1]).natural_update
            names.add(natural or "mean")
        for name in sorted(names & set(stuck)):
            e, exc = stuck[name]
            raise ValueError(
                f"run_experiment with n_jobs={n_jobs}: the {e.slot} strategy {e.name!r}, "
                f"registered by this program, cannot be sent to worker processes "
                f"({type(exc).__name__}: {exc}); run with n_jobs=1, or register a factory "
                "that pickles"
            )
    return entries


def _strategy_names(value: Any) -> Iterable[str]:
    """Every strategy name in a config's values, at any depth (a criterion's criteria)."""
    from kmeansfw.core.catalog import StrategySpec

    if isinstance(value, str):
        yield value
    elif isinstance(value, StrategySpec):
        yield value.name
        yield from _strategy_names(dict(value.params))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strategy_names(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strategy_names(item)


def run_cell(
    name: str,
    config: Mapping[str, Any],
    dataset: str,
    seed: int,
    silhouette_sample: int,
    header: bool | None = None,
) -> dict[str, Any]:
    """Fit one configuration on one data set with one seed; return the table row
    (``header``: for a CSV data file, see :func:`load_file`)."""
    return _cell(name, config, dataset, seed, silhouette_sample, header, None)


def _cell(
    name: str,
    config: Mapping[str, Any],
    dataset: str,
    seed: int,
    silhouette_sample: int,
    header: bool | None,
    tables: dict | None,
) -> dict[str, Any]:
    # run_cell, its data file from ``tables`` (_load_parsed)
    from sklearn.metrics import (
        adjusted_rand_score,
        normalized_mutual_info_score,
        silhouette_score,
    )

    from kmeansfw.estimator import KMeans

    if dataset in BUNDLED or dataset in BLOBS:
        X, y = load_dataset(dataset)
    else:
        X, y = _load_parsed(dataset, header, True, tables)[0], None
    km = KMeans.from_config({**config, "random_state": int(seed)})
    if km.n_clusters > X.shape[0]:
        raise DataError(
            f"{dataset}: {X.shape[0]} samples, fewer than the k = {km.n_clusters} clusters asked"
        )
    start = time.perf_counter()
    fit_checked(km, X, dataset)
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
        "n_clusters": int(km.n_clusters),
    }
    if y is not None:
        row["ari"] = adjusted_rand_score(y, km.labels_)
        row["nmi"] = normalized_mutual_info_score(y, km.labels_)
    if 1 < np.unique(km.labels_).size < X.shape[0] and overflow_error(X, dataset) is None:
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

    def summary(self, as_frame: bool = False) -> Any:
        """One row per data set and config (both in first-seen order).

        Each row has the data set, the config, ``n_clusters`` (k; empty when the cells
        do not record it), the number of cells (seeds), the mean, standard deviation and
        best objective, and the mean ARI, NMI, iterations and fit time.  Objectives of
        different data sets are on different scales, so they are never pooled.  A list
        of dicts, or with ``as_frame=True`` a pandas DataFrame (needs pandas:
        ``pip install 'kmeansfw[pandas]'``).

        Parameters
        ----------
        as_frame : bool, default=False
            Return a pandas DataFrame instead of a list of dicts.

        Returns
        -------
        list of dict or pandas.DataFrame
            The summary rows, in :data:`SUMMARY_COLUMNS` order.
        """
        if as_frame:
            return records_frame(self.summary(), SUMMARY_COLUMNS)
        out = []
        for dataset in dict.fromkeys(r["dataset"] for r in self.rows):
            for name in dict.fromkeys(r["config"] for r in self.rows):
                mine = [r for r in self.rows if r["config"] == name and r["dataset"] == dataset]
                if not mine:
                    continue
                objective = np.array([float(r["objective"]) for r in mine])
                ks = {r.get("n_clusters") for r in mine} - {"", None}
                out.append(
                    {
                        "dataset": dataset,
                        "config": name,
                        "n_clusters": int(ks.pop()) if len(ks) == 1 else "",
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
        """Write the table (all columns, one row per cell).

        Parameters
        ----------
        path : path
            The CSV file to write (replaced when it exists).
        """
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame (needs pandas: ``pip install 'kmeansfw[pandas]'``)."""
        return records_frame(self.rows, COLUMNS)


#: Columns that older files may lack (their cells count as of the config's k, and as of
#: unknown settings).
_LATER_COLUMNS = ("n_clusters", "settings")


#: Characters of the settings' digest a row records (:func:`_settings`).
SETTINGS_DIGEST_CHARS = 20


def _settings(
    values: Mapping[str, Any], data: str, silhouette_sample: int, header: bool | None = None
) -> str:
    """What a cell's row depends on besides its key (config name, data set, seed, k): the
    config's values, the silhouette's sample and ``data``, a data file's digest (empty
    for a named data set), with the reading of its first line when the caller sets it
    (``header``); as a digest recorded with the row, so that a rerun does not take a row
    computed under other settings."""
    from kmeansfw.workflow.checkpoint import value_digest, with_registered

    settings = {key: with_registered(key, value) for key, value in values.items()}
    parts: list[Any] = [settings, int(silhouette_sample), data]
    if header is not None and data:  # rows written without the option keep their digest
        parts.append({"header": bool(header)})
    return value_digest(parts)[:SETTINGS_DIGEST_CHARS]


def _rewrite_with_columns(path: pathlib.Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite a cells file of an older layout with every column of :data:`COLUMNS` (the
    missing ones empty), so that new rows can be appended whole; atomically (written
    beside it, then renamed over it, as checkpoints are)."""
    from kmeansfw.workflow.checkpoint import replace_files

    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    replace_files([(path, text.getvalue().encode())])


#: Columns read back as floats ("" where a cell has no value) and as integers.
_FLOAT_COLUMNS = ("objective", "ari", "nmi", "silhouette", "fit_seconds")
_INT_COLUMNS = ("seed", "n_iter", "n_clusters")


def _parsed(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back with the value types of a freshly computed one."""
    if None in row or None in row.values():
        raise ValueError("more or fewer values than the header has columns")
    settings = row.get("settings")
    if settings and len(settings) != SETTINGS_DIGEST_CHARS:
        raise ValueError(
            f"a settings digest of {len(settings)} characters, not {SETTINGS_DIGEST_CHARS}"
        )
    for column in _INT_COLUMNS + _FLOAT_COLUMNS:
        value = row.get(column)
        if value not in ("", None) or column in ("seed", "objective", "n_iter"):
            row[column] = int(value) if column in _INT_COLUMNS else float(value)
    return row


def _read_finished(path: pathlib.Path) -> tuple[list[dict[str, Any]], list[str], str]:
    """The cells already in ``path``, its columns (COLUMNS for a new file) and the state
    of its end: ``"clean"``, ``"no newline"`` (a whole last row without one: the next
    row must start on a line of its own) or ``"torn"`` (a last row cut off by an
    interrupted write, left out of the cells; :func:`_cut_torn_row` removes it)."""
    if not path.exists() or path.stat().st_size == 0:
        return [], list(COLUMNS), "clean"
    try:
        with open(path, newline="") as fh:
            text = fh.read()
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = list(reader.fieldnames or [])
        rows = list(reader)
        missing = [c for c in COLUMNS if c not in columns and c not in _LATER_COLUMNS]
        if missing:
            raise ValueError(f"no column(s) {', '.join(map(repr, missing))}")
        end = "clean" if text.endswith(("\n", "\r")) else "no newline"
        if rows and end == "no newline":  # the last row may be one cut off mid-write
            try:
                _parsed(dict(rows[-1]))
                # cut just after its last comma: an empty digest, not an older file's row
                torn = "settings" in columns and not rows[-1].get("settings")
            except (ValueError, TypeError):
                torn = True
            if torn:
                rows, end = rows[:-1], "torn"
        for number, row in enumerate(rows, start=2):
            try:
                _parsed(row)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"line {number}: {exc}") from None
    except (ValueError, TypeError, OSError, csv.Error) as exc:
        raise DataError(
            f"{path}: not a table of cells written by run_experiment ({exc}); "
            f"pass another file to write the cells to"
        ) from None
    return rows, columns, end


def _cut_torn_row(path: pathlib.Path) -> None:
    """Remove the cut-off last row of ``path`` (everything after its last line end)."""
    data = path.read_bytes()
    keep = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    with open(path, "r+b") as fh:
        fh.truncate(keep)


def _names(value: Any, what: str) -> list[str]:
    """``value`` as a list of data set names or files, each once."""
    if isinstance(value, str | bytes | os.PathLike):
        raise ValueError(
            f"{what} must be a list of data set names or files, got the single "
            f"{type(value).__name__} {value!r}: pass [{value!r}]"
        )
    names = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{what}: {name!r} is not a data set name or file path")
    _refuse_repeats(names, what)
    return names


def _seeds(value: Any) -> list[int]:
    """``value`` as a list of seeds: non-negative integers, each once."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"seeds must be a list of integers, got {value!r}")
    seeds = list(value)
    for seed in seeds:
        if not integer(seed) or seed < 0:
            raise ValueError(f"seeds must be non-negative integers, got {seed!r}")
    seeds = [int(s) for s in seeds]
    _refuse_repeats(seeds, "seeds")
    return seeds


def _refuse_repeats(values: list[Any], what: str) -> None:
    repeated = [v for v, n in collections.Counter(values).items() if n > 1]
    if repeated:
        raise ValueError(
            f"{what} repeat {', '.join(map(repr, repeated))}: each (config, data set, "
            "seed) cell is computed once, and a repeat would count it twice"
        )


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
    header: bool | None = None,
) -> ExperimentResult:
    """Run every (config, data set, seed) cell; see the module docstring.

    Parameters
    ----------
    configs : mapping of name (a non-empty string) -> Config, dict or TOML path
        The configurations to compare, by the name the table gives them.
    datasets : iterable of str
        Data set names or data files (see :func:`load_dataset`).  With ``n_jobs=1``,
        the check before any cell runs and the cells that follow it on the same file
        share one parse of a CSV or Parquet file (one file kept at a time, while it is
        unchanged; cells that switch files parse theirs again); cells in worker
        processes parse the file each; an ``.npy`` file is mapped, not read.
    seeds : iterable of int, default=range(5)
        The ``random_state`` of each repetition.
    n_clusters : int, optional
        Overrides the configs' ``n_clusters``.
    out : path, optional
        CSV that cells are appended to as they finish; cells already in it under the same
        settings are skipped (the others are computed again and appended).
    n_jobs : int
        Worker processes (joblib); -1 for all CPUs.  Each worker gets the strategies
        this program registered itself (decorators, ``CATALOG.register``), which a
        fresh process would not have (or would have as the built-in they replaced),
        once per experiment; a factory that does not pickle stays behind, and a config
        naming it is refused (functions and classes defined in a script pickle).
    silhouette_sample : int
        Samples for the silhouette score (at least 2).
    progress : bool
        A progress bar over cells on standard error, when it is a terminal and the
        experiment lasts over 2 seconds.
    header : bool or None, default=None
        For CSV data files: whether their first line is a header of column names (see
        :func:`load_file`; None tells from the line).  Recorded in the cells' settings
        when set, so that a resumed run under another reading computes them again.

    Returns
    -------
    ExperimentResult

    Raises
    ------
    ConfigError
        A config that does not validate (named by its key in ``configs``).
    DataError
        A data file that cannot be read as a table of numbers.
    ValueError
        Bad ``datasets``, ``seeds``, ``n_jobs``, ``silhouette_sample``, ``header`` or
        config names;
        with ``n_jobs`` other than 1, a strategy a config names that this program
        registered with a factory that does not pickle.
    """
    from joblib import Parallel, delayed

    if not integer(n_jobs) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer (-1: all CPUs), got {n_jobs!r}")
    if not integer(silhouette_sample) or silhouette_sample < 2:
        raise ValueError(
            f"silhouette_sample must be an integer >= 2, got {silhouette_sample!r}"
        )
    check_header(header)
    for name in configs:  # the table's config column: read back as text when resuming
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"config names must be non-empty strings (the table's 'config' column, "
                f"read back as text to resume), got {name!r}"
            )
    plain, ks = {}, {}
    for name, config in configs.items():
        try:
            values = _config_values(config)
            if n_clusters is not None:
                values["n_clusters"] = n_clusters
            ks[name] = Config.from_dict(values).n_clusters
        except ConfigError as exc:
            raise ConfigError(f"config {name!r}: {exc}") from None
        plain[name] = values
    # worker processes get the strategies this program registered itself (a name they
    # lack, or a built-in replaced); in this process they are there already
    entries = _program_strategies(plain.values(), n_jobs) if n_jobs != 1 else []
    datasets, seeds = _names(datasets, "datasets"), _seeds(seeds)
    files = [d for d in dict.fromkeys(datasets) if d not in BUNDLED and d not in BLOBS]
    # fail early, before any worker starts; a CSV's first-line warning is said here, and
    # its cells are told how the check read that line
    # with n_jobs=1 the check and the cells share one parse of a data file (_load_parsed);
    # cells in worker processes parse it themselves
    tables: dict | None = {} if n_jobs == 1 else None
    headers = {d: _load_parsed(d, header, True, tables)[1] for d in files}
    path = pathlib.Path(out) if out is not None else None
    finished, columns, end = _read_finished(path) if path is not None else ([], list(COLUMNS), "")
    if end == "torn":
        warn(
            f"the last row of {path} was cut off (an interrupted write): it is removed, "
            "and its cell computed again"
        )
    from kmeansfw.workflow.checkpoint import file_digest

    digests = {d: file_digest(d) for d in files}  # each data file read once for its digest
    settings = {
        (name, dataset): _settings(
            plain[name], digests.get(dataset, ""), silhouette_sample, header
        )
        for name in plain
        for dataset in datasets
    }

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        # cells from files written before k was recorded count as the config's k
        k = row.get("n_clusters")
        k = ks.get(row["config"]) if k in ("", None) else k
        return (row["config"], row["dataset"], row["seed"], k)

    wanted = [(n, d, s, ks[n]) for n in plain for d in datasets for s in seeds]
    order = {cell: i for i, cell in enumerate(wanted)}
    # a finished row counts when its settings are the cell's; rows of a config changed
    # since (the same name, other values), or of a data file since changed, are left
    # in the file and computed again
    reused: dict[tuple[Any, ...], dict[str, Any]] = {}
    unknown = 0
    for row in finished:
        cell = key(row)
        if cell not in order:
            continue
        recorded = row.get("settings") or ""
        if recorded == settings[cell[:2]]:
            reused[cell] = row
        elif not recorded and cell not in reused:  # written before settings were recorded
            reused[cell] = row
            unknown += 1
    if unknown:
        warn(
            f"{unknown} cell(s) in {path} were written without their settings (by an older "
            "kmeansfw) and are reused as they are; remove them from the file to compute "
            "them again"
        )
    todo = [cell for cell in wanted if cell not in reused]
    rows = list(reused.values())
    writer = None
    fh = None
    bar = None
    try:
        if path is not None:
            new_file = not path.exists() or path.stat().st_size == 0
            if not new_file and "settings" not in columns:
                _rewrite_with_columns(path, finished)
                columns, end = list(COLUMNS), "clean"
            elif end == "torn":
                _cut_torn_row(path)
            fh = open(path, "a", newline="")
            if end == "no newline":  # the next row on a line of its own
                fh.write("\r\n")
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
        token, home = uuid.uuid4().hex, os.getpid()
        bar = tqdm(
            total=len(todo),
            unit="cell",
            delay=2,
            leave=False,
            disable=not (progress and sys.stderr.isatty()),
        )
        seen: set[tuple[Any, ...]] = set()  # the warnings of worker processes raised again
        jobs = (
            delayed(_run_cell_registering)(
                token,
                entries,
                home,
                tables,
                *(name, plain[name], dataset, seed, silhouette_sample),
                headers.get(dataset, header),
            )
            for name, dataset, seed, _ in todo
        )
        for row, sent in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
            bar.update(1)
            row["settings"] = settings[row["config"], row["dataset"]]
            rows.append(row)
            if writer is not None:
                writer.writerow(row)
                fh.flush()
            _relay(sent, seen, row)  # after the row is saved (an "error" filter stops here)
    finally:
        if bar is not None:
            bar.close()
        if fh is not None:
            fh.close()
    rows.sort(key=lambda r: order[key(r)])
    return ExperimentResult(rows)
