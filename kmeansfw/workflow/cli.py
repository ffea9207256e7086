"""The ``kmeansfw`` command line: demo, fit, compare, plugins, compile, config.

Exit codes: 0 success; 1 a failure while computing (a strategy raised, a file could not
be written, or an unexpected error: a bug to report); 2 bad usage (a bad argument, named
by click's usage message), a bad configuration, a bad checkpoint or bad data.  Errors are
one line on standard error (``kmeansfw: error: ...``), no traceback; set the environment
variable ``KMEANSFW_TRACEBACK=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import Any

import click
import numpy as np

from kmeansfw import __version__
from kmeansfw.core.catalog import CATALOG
from kmeansfw.core.config import Config
from kmeansfw.core.errors import (
    CheckpointError,
    ConfigError,
    StrategyError,
    UnknownStrategyError,
)
from kmeansfw.core.markers import hookimpl
from kmeansfw.workflow.experiment import (
    BLOBS,
    BUNDLED,
    COLUMNS,
    SUMMARY_COLUMNS,
    DataError,
    fit_checked,
    is_file,
    load_dataset,
    run_experiment,
)

BAD_INPUT = 2
FAILURE = 1
#: Seeds are what numpy accepts everywhere: 0 .. 2**32 - 1.
SEED = click.IntRange(0, 2**32 - 1)


class _Main(click.Group):
    """Turns known errors into one line on stderr and the conventional exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (`kmeansfw plugins | head`)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(FAILURE)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click prints these (usage errors name the argument; exit 2)
        except (CheckpointError, ConfigError, UnknownStrategyError, DataError) as exc:
            _fail(f"{exc}", BAD_INPUT)
        except StrategyError as exc:
            _fail(f"{exc}", FAILURE)
        except ValueError as exc:  # the estimator's checks of its input
            _fail(f"{exc}", BAD_INPUT)
        except (OSError, ImportError) as exc:
            _fail(f"{exc}", FAILURE)
        except Exception as exc:
            if os.environ.get("KMEANSFW_TRACEBACK"):
                raise
            _fail(
                f"unexpected {type(exc).__name__}: {exc} (a bug in kmeansfw or a plugin; "
                f"KMEANSFW_TRACEBACK=1 shows where)",
                FAILURE,
            )


def _fail(message: str, code: int) -> None:
    first = " ".join(str(message).split())
    click.echo(f"kmeansfw: error: {first}", err=True)
    sys.exit(code)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kmeansfw")
def main() -> None:
    """kmeansfw: plugin-based k-means.  Run `kmeansfw demo` to start."""


# --------------------------------------------------------------------------- demo


class _InitialCentroids:
    """Observer keeping the centroids each run starts from."""

    def __init__(self) -> None:
        self.centroids: list[np.ndarray] = []

    @hookimpl
    def kmeansfw_fit_start(self, state) -> None:
        self.centroids.append(state.centroids.copy())


@main.command()
@click.option(
    "--samples",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Samples to generate.",
)
@click.option(
    "--centers",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="True clusters, and k.",
)
@click.option("--seed", default=0, show_default=True, type=SEED, help="Random seed.")
@click.option(
    "--out",
    default="kmeansfw-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the plot.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; just write the plot.")
def demo(samples: int, centers: int, seed: int, out: str, quiet: bool) -> None:
    """The scenario of the tutorial kmeansfw grew from: make_blobs, k-means, and a plot of
    predicted against true clusters."""
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    from kmeansfw.estimator import KMeans

    if samples < centers:
        raise click.BadParameter(
            f"{samples} samples cannot make {centers} clusters (need --samples >= --centers)",
            param_hint="'--samples'",
        )
    X, y = make_blobs(n_samples=samples, centers=centers, random_state=seed)
    seeds = _InitialCentroids()
    start = time.perf_counter()
    km = KMeans(centers, random_state=seed, observers=[seeds]).fit(X)
    seconds = time.perf_counter() - start
    sk = SkKMeans(centers, init=seeds.centroids[0], n_init=1, algorithm="lloyd").fit(X)
    same = bool(np.array_equal(sk.labels_, km.labels_))
    picture = _plot_or_none(
        pathlib.Path(out) / "demo.png",
        X,
        {"kmeansfw": km.labels_, "true clusters": y, "scikit-learn": sk.labels_},
        {"kmeansfw": km.cluster_centers_, "scikit-learn": sk.cluster_centers_},
        f"make_blobs (seed {seed})",
        km.n_clusters,
    )
    if quiet:
        return
    click.echo(f"kmeansfw {__version__}: make_blobs n={X.shape[0]} d={X.shape[1]}")
    click.echo(f"  k            {km.n_clusters}")
    click.echo(f"  iterations   {km.n_iter_}")
    click.echo(f"  inertia      {km.inertia_:.6g}")
    click.echo(f"  ARI vs truth {adjusted_rand_score(y, km.labels_):.4f}")
    click.echo(f"  fit seconds  {seconds:.4f}")
    click.echo(
        f"  scikit-learn from the same initial centroids: inertia {sk.inertia_:.6g}, "
        f"iterations {sk.n_iter_}, same labels: {same}"
    )
    click.echo(
        f"  plot         {picture}" if picture else "  plot         (install kmeansfw[plot])"
    )


def _plot_or_none(
    path: pathlib.Path, X, panels, centroids, data: str, k: int
) -> pathlib.Path | None:
    try:
        from kmeansfw.workflow.plots import plot_comparison
    except ImportError:  # pragma: no cover
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # pragma: no cover - the plot extra is not installed
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(X, panels, centroids=centroids, data=data, k=k, path=path)
    return path


# --------------------------------------------------------------------------- fit


def _load_config(path: str | None, k: int | None, seed: int | None) -> Config:
    values = Config.from_toml(pathlib.Path(path)).to_dict() if path else {}
    if k is not None:
        values["n_clusters"] = k
    if seed is not None:
        values["random_state"] = seed
    return Config.from_dict(values)


def draw_seed() -> int:
    """A fresh seed from the operating system's entropy, as a 32-bit integer."""
    return int(np.random.SeedSequence().entropy % 2**32)


@main.command()
@click.argument("data")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML config file.",
)
@click.option(
    "-k",
    "--n-clusters",
    "k",
    type=click.IntRange(min=1),
    help="Number of clusters (overrides config).",
)
@click.option(
    "--seed",
    type=SEED,
    help="random_state (overrides config); without one a seed is drawn, printed and "
    "recorded in report.json.",
)
@click.option(
    "--out",
    default="kmeansfw-fit",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for labels.csv, centroids.csv, report.json and clusters.png.",
)
@click.option(
    "--header/--no-header",
    default=None,
    help="Whether a CSV's first line is a header of column names (default: a line naming "
    "every column with text, no number); other data ignores it.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress, no summary.")
def fit(
    data: str,
    config_path: str | None,
    k: int | None,
    seed: int | None,
    out: str,
    header: bool | None,
    quiet: bool,
) -> None:
    """Cluster DATA (a .csv, .npy or .parquet file, or a data set name) and write results.

    Every run is repeatable: without --seed (and no random_state in the config) a seed is
    drawn, printed and recorded in report.json; rerun with --seed to get the same result.
    """
    from sklearn.metrics import adjusted_rand_score

    from kmeansfw.estimator import KMeans

    cfg = _load_config(config_path, k, seed)
    drawn = cfg.random_state is None
    if drawn:
        cfg = Config.from_dict({**cfg.to_dict(), "random_state": draw_seed()})
    X, y = load_dataset(data, header=header, mmap=True)  # a .npy file read as fitted
    if cfg.n_clusters > X.shape[0]:
        message = f"k = {cfg.n_clusters} clusters but {data} has only {X.shape[0]} samples"
        if k is not None:
            raise click.BadParameter(message, param_hint="'-k' / '--n-clusters'")
        raise DataError(f"{message} (set k with -k)")
    values = cfg.to_dict()
    if not quiet:
        values["observers"] = [*values["observers"], "progress"]
        if drawn:
            click.echo(
                f"seed {cfg.random_state} (drawn; repeat this run with --seed {cfg.random_state})"
            )
    km = KMeans(**values)
    start = time.perf_counter()
    fit_checked(km, X, data)
    seconds = time.perf_counter() - start
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "labels.csv", km.labels_, fmt="%d", header="label", comments="")
    np.savetxt(folder / "centroids.csv", km.cluster_centers_, delimiter=",", fmt="%.17g")
    report = {
        "data": data,
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "n_clusters": int(km.n_clusters),
        "random_state": _jsonable(cfg.random_state),
        "random_state_drawn": drawn,
        "n_iter": int(km.n_iter_),
        "objective": float(km.inertia_),
        "fit_seconds": seconds,
        "config": _jsonable(cfg.to_dict()),
    }
    if y is not None:
        report["ari"] = float(adjusted_rand_score(y, km.labels_))
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    picture = _plot_or_none(
        folder / "clusters.png",
        X,
        {"kmeansfw": km.labels_},
        {"kmeansfw": km.cluster_centers_},
        data if y is not None else pathlib.Path(data).name,
        km.n_clusters,
    )
    if not quiet:
        click.echo(
            f"{data}: {X.shape[0]} x {X.shape[1]}, k={km.n_clusters}, "
            f"{km.n_iter_} iterations, objective {km.inertia_:.6g}"
        )
        written = ["labels.csv", "centroids.csv", "report.json"] + (
            ["clusters.png"] if picture else []
        )
        click.echo(f"wrote {', '.join(written)} to {folder}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "inf": strict JSON has no infinity
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


# --------------------------------------------------------------------------- compare


def _jobs(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value == 0:
        raise click.BadParameter("must be a positive number of processes, or -1 for all CPUs")
    return value


def _out_csv(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        folder = pathlib.Path(value).parent
        if not folder.is_dir():
            raise click.BadParameter(f"no folder {str(folder)!r} to write {value!r} in")
    return value


def _dataset(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> tuple:
    for name in value:
        if name not in BUNDLED and name not in BLOBS and not is_file(name):
            known = ", ".join((*BUNDLED, *BLOBS))
            raise click.BadParameter(
                f"no such data file or data set: {name!r} (data sets: {known})"
            )
    return tuple(value)


@main.command()
@click.argument("configs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    callback=_dataset,
    help="Data set name or file (repeatable).",
)
@click.option(
    "--seeds",
    default=5,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="How many seeds: each config runs with random_state 0..N-1 on each data set.",
)
@click.option(
    "-k",
    "--n-clusters",
    "k",
    type=click.IntRange(min=1),
    help="Overrides the configs' n_clusters.",
)
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=int,
    callback=_jobs,
    help="Worker processes (-1: all CPUs).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    callback=_out_csv,
    help="CSV of all cells (resumable).",
)
@click.option(
    "--header/--no-header",
    default=None,
    help="Whether the CSV data files' first line is a header of column names (default: "
    "a line naming every column with text, no number).",
)
@click.option("--cells", is_flag=True, help="Print every cell, not only the summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def compare(
    configs: Sequence[str],
    datasets: Sequence[str],
    seeds: int,
    k: int | None,
    jobs: int,
    out: str | None,
    header: bool | None,
    cells: bool,
    quiet: bool,
) -> None:
    """Run the experiment runner over CONFIGS (TOML files) and print a table.

    The summary has one row per data set and config (objectives of different data sets
    are never pooled); --cells prints every (config, data set, seed) cell as well.
    """
    named = {}
    for path in configs:
        name = pathlib.Path(path).stem
        try:
            config = Config.from_toml(pathlib.Path(path))
        except ConfigError as exc:  # which of the files
            message = str(exc)
            raise ConfigError(message if path in message else f"{path}: {message}") from None
        named[name if name not in named else path] = config
    result = run_experiment(
        named,
        datasets,
        range(seeds),
        n_clusters=k,
        out=out,
        n_jobs=jobs,
        progress=not quiet,
        header=header,
    )
    summary = result.summary()
    if not summary:  # pragma: no cover - the options above make every run non-empty
        _fail("the experiment ran no cells", FAILURE)
    if cells:
        _print_table(result.rows, [c for c in COLUMNS if c != "settings"])  # a digest
        click.echo()
    _print_table(summary, SUMMARY_COLUMNS)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.10g}" if math.isfinite(value) else str(value)
    return str(value)


def _print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    cells = [[_format(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


# --------------------------------------------------------------------------- plugins


@main.command()
def plugins() -> None:
    """Every strategy by slot, with where it comes from (built-in or its distribution)."""
    rows = CATALOG.listing()
    _print_table(rows, ["slot", "name", "source", "parameters"])
    for row in rows:
        if "error" in row:  # below the table, wrapped: a long reason must not widen it
            click.echo("")
            click.echo(
                textwrap.fill(
                    f"plugin {row['name']!r} failed: {row['error']}",
                    width=88,
                    subsequent_indent="    ",
                    break_long_words=True,
                )
            )


# --------------------------------------------------------------------------- compile


@main.command("compile")
@click.option(
    "--dtype",
    "dtypes",
    multiple=True,
    type=click.Choice(["float64", "float32"]),
    help="Compile for this dtype only (repeatable; default: both).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def compile_command(dtypes: tuple[str, ...], quiet: bool) -> None:
    """Compile the kernels now, so that no later fit waits for them (once per
    installation, and again after an upgrade: a few minutes on 2 cores)."""
    from kmeansfw.kernels._compile import HAVE_NUMBA
    from kmeansfw.workflow.warmup import DTYPES, compile_kernels, kernel_cache_folder

    if not HAVE_NUMBA:
        click.echo(
            "kmeansfw: numba is not in use (not installed, or KMEANSFW_NUMBA=0): the "
            "NumPy kernels need no compiling",
            err=True,
        )
        return
    start = time.perf_counter()

    def report(step: Any) -> None:
        if not quiet:
            click.echo(f"{step.dtype:8s} {step.label:36s} {step.seconds:7.2f} s")

    done = compile_kernels(dtypes or DTYPES, progress=report)
    if not quiet:
        folder = kernel_cache_folder()
        where = "numba's cache" if folder is None else folder
        click.echo(
            f"{len(done)} steps in {time.perf_counter() - start:.1f} s; the kernels are "
            f"kept in {where}"
        )


# --------------------------------------------------------------------------- config


@main.command("config")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def config_command(path: str) -> None:
    """Validate the TOML config PATH and print it normalized (or the error, exit 2)."""
    click.echo(to_toml(Config.from_toml(pathlib.Path(path)).to_dict()), nl=False)


def to_toml(values: dict[str, Any]) -> str:
    """TOML text for a plain config dict (scalars first, then one table per table)."""
    scalars, tables = [], []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append(
                f"\n[{key}]\n"
                + "".join(f"{k} = {_toml_value(v)}\n" for k, v in value.items() if v is not None)
            )
        else:
            scalars.append(f"{key} = {_toml_value(value)}\n")
    return "".join(scalars) + "".join(tables)


def _toml_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):  # a float's repr is TOML's too: 1.5, inf, -inf, nan
        return repr(value if isinstance(value, int) else float(value))
    if isinstance(value, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):  # a path's undecodable bytes
            raise ConfigError(f"{value!r} holds text TOML cannot write (a lone surrogate)")
        # JSON's escapes are TOML's, but for characters past U+FFFF, which JSON writes as
        # surrogate pairs that TOML refuses: those (and DEL, and all non-ASCII, so that
        # any terminal shows it) as TOML's \uXXXX or \UXXXXXXXX
        return re.sub(r"[^\x20-\x7e]", _toml_escape, json.dumps(value, ensure_ascii=False))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + inner + "}"
    raise ConfigError(f"a {type(value).__name__} value cannot be written as TOML")


if __name__ == "__main__":  # pragma: no cover
    main()
