"""The benchmark suite: kmeansfw against scikit-learn (and faiss when installed).

For every case (shapes from iris up to 1M x 64, k from 8 to 1024, float32 and float64) it
measures the time of one Lloyd iteration from the same initial centroids
(``bench_lloyd.per_iteration``: the difference of a long and a 1 iteration run over the
iterations made, each run the best of ``repeat``), for kmeansfw and scikit-learn in the
same run, in ``--rounds`` rounds with the two libraries in turns (each one's least time
kept), their ratio, the nominal GFLOP/s of kmeansfw (the 2 n k d flops of an iteration
that computed every distance, over its time), and the peak memory of a kmeansfw fit over
the loaded data (fresh process, VmHWM).  Small cases time whole default fits instead
(median of 50), since there the per-fit overhead is what matters.  Then whole fits
(``bench_assignment``, ``bench_default_fit``, ``bench_minibatch``): the exact
assignments against scikit-learn's elkan from the same init, default fits end to end,
and mini-batch.

    python benchmarks/suite.py                 # everything (~40 minutes on 2 cores)
    python benchmarks/suite.py --quick         # the small and medium cases only
    python benchmarks/suite.py --no-fits       # without the whole-fit sections
    python benchmarks/suite.py --write docs/benchmarks.md

``--write`` regenerates the Markdown report (the command, the machine, the table, and the
whole-fit sections, titled "Latest run: ...", unless ``--no-fits``) between the two marker
comments of the file (:data:`GENERATED_START`, :data:`GENERATED_END`, each on a line of
its own) and keeps the rest of the file and its line endings; a new file gets the title
and the markers.  An existing file without exactly one start marker followed by one end
marker, or a path that cannot be written, stops the run before anything is timed; the
file is replaced whole at the end (written beside it, then renamed), and if its markers
went missing during the run the report is saved as ``PATH.generated.md`` instead.  With
faiss installed (``pip install -e ".[bench]"``), its Lloyd iterations on every sample
(float32, ``max_points_per_centroid=n``) fill the faiss column.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import pathlib
import platform
import statistics
import sys
import time
import warnings
from functools import partial

import numpy as np
from bench_lloyd import KmfwFit, SkFit, make_data, peak_memory, per_iteration, processor

from kmeansfw.workflow.checkpoint import replace_files

ITERATION_CASES = [
    (200_000, 32, 64, "float64"),
    (200_000, 32, 64, "float32"),
    (200_000, 32, 1024, "float32"),
    (1_000_000, 64, 8, "float64"),
    (1_000_000, 64, 256, "float64"),
    (1_000_000, 64, 256, "float32"),
    (1_000_000, 64, 1024, "float32"),
]
QUICK_CASES = ITERATION_CASES[:3]

#: The marker comments around the part of the report file that ``--write`` regenerates.
GENERATED_START = "<!-- benchmarks/suite.py --write: generated from here -->"
GENERATED_END = "<!-- benchmarks/suite.py --write: generated up to here -->"


def splice_report(existing: str | None, generated: list[str], path: str = "the file") -> str:
    """The report file's new text: ``generated`` between the markers, the rest kept.

    The lines outside the markers are kept as they are, line endings included; the
    markers and the lines between them take the start marker's line ending (CRLF or LF).

    Parameters
    ----------
    existing : str or None
        The file's current text, or None when there is no file yet (the new text is a
        title, then the markers around ``generated``).
    generated : list of str
        The lines of the regenerated report.
    path : str
        The file's name, for the error message.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        When ``existing`` does not hold exactly one start marker followed by exactly one
        end marker, each on a line of its own (surrounding blanks allowed, so an indented
        marker counts; the file is then left as it is: a report written over a hand-kept
        history would lose it).
    """
    if existing is None:
        return "\n".join(["# Benchmarks", "", GENERATED_START, *generated, GENERATED_END, ""])
    parts = existing.split("\n")  # each line with its own ending ("\r\n" keeps its "\r")
    lines = [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    starts = [i for i, line in enumerate(lines) if line.strip() == GENERATED_START]
    ends = [i for i, line in enumerate(lines) if line.strip() == GENERATED_END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        found = f"found {len(starts)} and {len(ends)}"
        if len(starts) == 1 == len(ends):
            found += ", the end marker first"
        raise ValueError(
            f"{path} needs exactly one line {GENERATED_START!r} followed by one line "
            f"{GENERATED_END!r} around the part that --write regenerates ({found}); not "
            f"overwriting its {len(lines)} lines: add the markers, or write to a new file"
        )
    start, end = lines[starts[0]], lines[ends[0]]
    eol = "\r\n" if start.endswith("\r\n") else "\n"
    end_eol = end[len(end.rstrip("\r\n")) :]  # "" when the end marker is the last line
    block = "".join(line + eol for line in [GENERATED_START, *generated])
    return "".join(lines[: starts[0]]) + block + GENERATED_END + end_eol + "".join(
        lines[ends[0] + 1 :]
    )


def small_fits(repeat: int = 50, rounds: int = 1) -> list[dict]:
    """Whole default fits on small data: median seconds of kmeansfw and scikit-learn
    (each library's least median over ``rounds`` rounds, in turns)."""
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.datasets import load_digits, load_iris

    import kmeansfw

    rows = []
    iris, digits = load_iris().data, load_digits().data
    cases = (("iris", iris, 8, " defaults"), ("iris", iris, 3, ""), ("digits", digits, 10, ""))
    for name, X, k, note in cases:

        def time_median(make):
            make()
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                make()
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        ours, theirs = _in_turns(
            rounds,
            lambda X=X, k=k: time_median(lambda: kmeansfw.KMeans(k, random_state=0).fit(X)),
            lambda X=X, k=k: time_median(lambda: SkKMeans(k, random_state=0).fit(X)),
        )
        rows.append(
            {
                "case": f"{name} {X.shape[0]}x{X.shape[1]} k={k} (whole fit{note})",
                "ours_ms": ours * 1e3,
                "sk_ms": theirs * 1e3,
                "gflops": None,
                "memory": "",
            }
        )
    return rows


def faiss_iteration(X: np.ndarray, init: np.ndarray, iters: int, repeat: int) -> float | None:
    """faiss's Lloyd time per iteration (``bench_grid.FaissFit``, every sample, float32,
    ``bench_lloyd.per_iteration`` as the others, once per case: not in the rounds), or
    None when faiss is not installed."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return None
    from bench_grid import FaissFit

    return per_iteration(partial(FaissFit, X, init), iters, repeat)


def _in_turns(rounds: int, ours, theirs) -> tuple[float, float]:
    """Each library's least time over ``rounds`` rounds, the two measured in turns (a
    shared machine's speed moves by up to a half over minutes: in turns, both see the
    same spells); NaN where no round gave a figure."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for measure, out in ((ours, times[0]), (theirs, times[1])):
            value = measure()
            if value == value:
                out.append(value)
    return (min(times[0], default=math.nan), min(times[1], default=math.nan))


def iteration_rows(cases, iters: int, repeat: int, memory: bool, rounds: int = 1) -> list[dict]:
    rows = []
    for n, d, k, dtype in cases:
        X, init = make_data(n, d, k, dtype)
        # the largest products (a second or more a run) get fewer iterations and no
        # repeats; the others per_iteration's window of at least 50 ms (at 200000 x 32,
        # k=1024, a window of iterations 2-3 read 115-131 ms where the bounds of `auto`
        # were still settling, and 60-69 ms with the longer window)
        big = n * k * d >= 10**10
        it = max(2, iters // 3) if big else iters
        rep = 1 if big else repeat
        ours, theirs = _in_turns(
            rounds,
            partial(per_iteration, partial(KmfwFit, X, init), it, rep),
            partial(per_iteration, partial(SkFit, X, init), it, rep),
        )
        row = {
            "case": f"{n}x{d} k={k} {dtype}",
            "ours_ms": ours * 1e3,
            "sk_ms": theirs * 1e3,
            "gflops": 2 * n * k * d / ours / 1e9,
            "memory": "",
        }
        other = faiss_iteration(X, init, it, rep)
        if other is not None:
            row["faiss_ms"] = other * 1e3
        if memory:
            m = peak_memory(n, d, k, dtype)
            row["memory"] = f"+{m['extra_mb']:.0f} MB (data {m['data_mb']:.0f} MB)"
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def fit_sections(quick: bool) -> list[str]:
    """Whole fits: exact assignments against elkan, default fits, mini-batch (Markdown)."""
    import bench_assignment
    import bench_default_fit
    import bench_minibatch

    out = [
        "## Latest run: whole fits with the exact assignments",
        "",
        "From the same initial centroids to convergence (tol 1e-4); `same labels`: final "
        "labels equal kmeansfw `nearest`'s; last column: scikit-learn elkan's time / this "
        "fit's time.",
        "",
    ]
    shapes = [(200_000, 32, 64, True)] + ([] if quick else [(1_000_000, 64, 256, False)])
    for n, d, k, lloyd in shapes:
        rows = bench_assignment.run(
            n, d, k, assignments=("nearest", "hamerly", "yinyang", "auto"), sklearn_lloyd=lloyd
        )
        out += [
            f"{n} x {d}, k={k}, float64:",
            "",
            "| fit | seconds | iterations | inertia | same labels | elkan / this |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['fit']} | {r['seconds']:.2f} | {r['n_iter']} | {r['inertia']:.6e} | "
            f"{'-' if r['same_labels'] is None else r['same_labels']} | {r['elkan_ratio']:.2f} |"
            for r in rows
        ]
        out.append("")
        print("\n".join(out[-len(rows) - 3 :]), flush=True)
    if quick:
        return out
    for title, result, target in (
        (
            "## Latest run: default fits end to end (1000000 x 64, k=256, float64, 5 seeds)",
            bench_default_fit.run(1_000_000, 64, 256),
            "each library's defaults (kmeansfw: `init='auto'` = k-means\\|\\| here, "
            "Lloyd; scikit-learn: k-means++, Lloyd); target: time ratio <= 0.25, inertia no "
            "worse",
        ),
        (
            "## Latest run: mini-batch (1000000 x 32, k=64, batch 4096, float64, 5 seeds)",
            bench_minibatch.run(1_000_000, 32, 64, 4096),
            "kmeansfw `KMeans(batch_size=4096)` against scikit-learn `MiniBatchKMeans`",
        ),
    ):
        (t_ours, i_ours) = result["medians"]["kmeansfw"]
        (t_theirs, i_theirs) = result["medians"]["sklearn"]
        out += [
            title,
            "",
            f"Medians over seeds; {target}.",
            "",
            "| | kmeansfw | scikit-learn | ratio |",
            "|---|---|---|---|",
            f"| seconds | {t_ours:.2f} | {t_theirs:.2f} | {t_ours / t_theirs:.3f} |",
            f"| inertia | {i_ours:.6e} | {i_theirs:.6e} | {i_ours / i_theirs:.4f} |",
            "",
        ]
        print("\n".join(out[-9:]), flush=True)
    return out


def _line(row: dict) -> str:
    def number(value, digits: int = 2) -> str:
        # no figure (NaN: per_iteration's long run was not slower) prints as "-"
        return "-" if value is None or value != value else f"{value:.{digits}f}"

    ratio = row["ours_ms"] / row["sk_ms"]
    return (
        f"| {row['case']} | {number(row['ours_ms'])} | {number(row['sk_ms'])} | "
        f"{number(ratio)} | {number(row['gflops'], 1)} | {number(row.get('faiss_ms'), 1)} | "
        f"{row['memory']} |"
    )


HEADER = (
    "| case | kmeansfw ms | scikit-learn ms | ratio | kmeansfw GFLOP/s | faiss ms | "
    "peak memory over data |\n|---|---|---|---|---|---|---|"
)


def _read_report(path: str) -> str | None:
    # the report file's text, None when there is none (OSError when it cannot be read)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _check_report_path(path: str) -> None:
    """Stop the run, before anything is timed, when ``--write`` would refuse ``path``
    (no markers, not a file, unreadable) or could not write it (no such folder, no
    permission)."""
    if os.path.isdir(path):
        raise SystemExit(f"suite.py: cannot write {path}: it is a folder")
    try:
        splice_report(_read_report(path), [], path)
    except (OSError, ValueError) as error:
        raise SystemExit(f"suite.py: {error}") from None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SystemExit(f"suite.py: cannot write {path}: no folder {folder}")
    if not os.access(folder, os.W_OK) or (
        os.path.exists(path) and not os.access(path, os.W_OK)
    ):
        raise SystemExit(f"suite.py: cannot write {path}: permission denied")


def write_report(path: str, generated: list[str]) -> str:
    """Splice ``generated`` into the report at ``path`` (:func:`splice_report`) and
    replace the file whole (written beside it, then renamed over it; a symbolic link's
    target is the file replaced).  When the file can no longer take the report (its
    markers gone during the run, unreadable, or the write fails), the report goes to a
    new file ``PATH.generated.md`` (``PATH.generated-2.md`` ... when that exists), and as
    a last resort to standard output.  Returns where it went."""
    path = os.path.realpath(path)
    try:
        text = splice_report(_read_report(path), generated, path)
        replace_files([(pathlib.Path(path), text.encode("utf-8"))])  # keeps the mode
        return path
    except (OSError, ValueError) as error:
        print(f"suite.py: {error}", file=sys.stderr)
    text = splice_report(None, generated)
    stem, number = path + ".generated", 1
    while True:
        spare = f"{stem}.md" if number == 1 else f"{stem}-{number}.md"
        try:
            with open(spare, "x", encoding="utf-8") as fh:  # a new file, never another's
                fh.write(text)
            print(f"suite.py: the report is in {spare}", file=sys.stderr)
            return spare
        except FileExistsError:
            number += 1
        except OSError as error:
            print(f"suite.py: {error}; the report follows\n{text}")
            return "standard output"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs a positive number, not {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--rounds",
        type=_positive,
        default=2,
        help="measure each case this many times, the two libraries in turns, and keep "
        "each one's least time (default 2)",
    )
    parser.add_argument("--write", help="write the Markdown report to this path")
    parser.add_argument("--no-fits", action="store_true", help="skip the whole-fit sections")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.write is not None:  # a file --write would refuse stops the run before its timing
        _check_report_path(args.write)

    import sklearn

    import kmeansfw

    print(HEADER)
    rows = small_fits(rounds=args.rounds)
    for row in rows:
        print(_line(row), flush=True)
    cases = QUICK_CASES if args.quick else ITERATION_CASES
    rows += iteration_rows(
        cases, args.iters, args.repeat, memory=not args.no_memory, rounds=args.rounds
    )
    sections = [] if args.no_fits else fit_sections(args.quick)
    if args.write is not None:
        machine = (
            f"{processor()}, "
            f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"scikit-learn {sklearn.__version__}, kmeansfw {kmeansfw.__version__}"
        )
        command = " ".join(["python benchmarks/suite.py", *sys.argv[1:]])
        generated = [
            f"Generated by `{command}` on {datetime.date.today()} ({machine}).",
            "",
            "Whole-fit rows are medians of 50 default fits; the others are the time of one "
            "Lloyd iteration from the same initial centroids, both libraries measured in the "
            "same run (ratio < 1: kmeansfw is faster). GFLOP/s is nominal: the 2 n k d flops of an "
            "iteration that computes every distance, over its time (above the cores' peak "
            "where the default assignment's bounds skip distances). faiss (when installed) "
            "runs the same iterations on every sample in float32, whatever the case's "
            "dtype. Peak memory: resident-set growth of a fresh process over the loaded "
            "data. Each kmeansfw and scikit-learn figure is the library's "
            f"least over {args.rounds} round(s), the two measured in turns (faiss once); on a "
            "shared machine a case's ratio can still move by a third or more between runs.",
            "",
            HEADER,
            *(_line(r) for r in rows),
            "",
            *sections,
        ]
        print(f"wrote {write_report(args.write, generated)}")


if __name__ == "__main__":
    main()
