"""The benchmark suite: kmeansfw against scikit-learn (and faiss when installed).

For every case (shapes from iris up to 1M x 64, k from 8 to 1024, float32 and float64) it
measures the time of one Lloyd iteration from the same initial centroids (difference of a
1 + ``iters`` and a 1 iteration run, best of ``repeat``), for kmeansfw and scikit-learn in
the same run, their ratio, the GFLOP/s kmeansfw achieves on the 2 n k d flops of an
iteration, and the peak memory of a kmeansfw fit over the loaded data (fresh process,
VmHWM).  Small cases time whole default fits instead (median of 50), since there the
per-fit overhead is what matters.  Then whole fits (``bench_assignment``,
``bench_default_fit``, ``bench_minibatch``): the exact assignments against scikit-learn's
elkan from the same init, default fits end to end, and mini-batch.

    python benchmarks/suite.py                 # everything (~40 minutes on 2 cores)
    python benchmarks/suite.py --quick         # the small and medium cases only
    python benchmarks/suite.py --no-fits       # without the whole-fit sections
    python benchmarks/suite.py --write docs/benchmarks.md

``--write`` regenerates the Markdown report (the table, with the machine's description, and
the whole-fit sections unless ``--no-fits``) between the two marker comments of the file
(:data:`GENERATED_START`, :data:`GENERATED_END`) and keeps the rest of the file as it is; a
new file gets the title and the markers; an existing file without exactly one pair of
markers in order is an error, never overwritten.  With faiss
installed (``pip install -e ".[bench]"``), its Lloyd iterations on every sample (float32,
``max_points_per_centroid=n``) fill the faiss column.
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import statistics
import time
import warnings
from functools import partial

import numpy as np
from bench_lloyd import KmfwFit, SkFit, make_data, peak_memory, per_iteration, processor

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
        end marker, each on a line of its own (the file is then left as it is: a report
        written over a hand-kept history would lose it).
    """
    block = [GENERATED_START, *generated, GENERATED_END]
    if existing is None:
        return "\n".join(["# Benchmarks", "", *block, ""])
    lines = existing.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == GENERATED_START]
    ends = [i for i, line in enumerate(lines) if line.strip() == GENERATED_END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(
            f"{path} needs exactly one line {GENERATED_START!r} followed by one line "
            f"{GENERATED_END!r} around the part that --write regenerates (found "
            f"{len(starts)} and {len(ends)}); not overwriting its {len(lines)} lines: add "
            "the markers, or write to a new file"
        )
    return "\n".join(lines[: starts[0]] + block + lines[ends[0] + 1 :])


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


def faiss_iteration(X: np.ndarray, init: np.ndarray, iters: int) -> float | None:
    """faiss's Lloyd time per iteration, or None when faiss is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    X32, init32 = np.ascontiguousarray(X, np.float32), np.ascontiguousarray(init, np.float32)

    def run(n):
        # faiss trains on a sample of 256 points per centroid unless told otherwise: every
        # sample here, as the other libraries use
        km = faiss.Kmeans(
            X.shape[1],
            init.shape[0],
            niter=n,
            seed=0,
            verbose=False,
            max_points_per_centroid=X.shape[0],
        )
        start = time.perf_counter()
        km.train(X32, init_centroids=init32)
        return time.perf_counter() - start

    run(1)
    return (run(iters + 1) - run(1)) / iters


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
        # the largest products (a second or more a run) get fewer iterations, one run
        # each; the others per_iteration's window of at least 50 ms (at 200000 x 32,
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
        other = faiss_iteration(X, init, it)
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
        "## Whole fits with the exact assignments",
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
            "## Default fits end to end (1000000 x 64, k=256, float64, 5 seeds)",
            bench_default_fit.run(1_000_000, 64, 256),
            "each library's defaults (kmeansfw: `init='auto'` = k-means\\|\\| here, "
            "Lloyd; scikit-learn: k-means++, Lloyd); target: time ratio <= 1/3, inertia no "
            "worse",
        ),
        (
            "## Mini-batch (1000000 x 32, k=64, batch 4096, float64, 5 seeds)",
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
    gflops = f"{row['gflops']:.1f}" if row["gflops"] else "-"
    faiss = f"{row['faiss_ms']:.1f}" if "faiss_ms" in row else "-"
    return (
        f"| {row['case']} | {row['ours_ms']:.2f} | {row['sk_ms']:.2f} | "
        f"{row['ours_ms'] / row['sk_ms']:.2f} | {gflops} | {faiss} | {row['memory']} |"
    )


HEADER = (
    "| case | kmeansfw ms | scikit-learn ms | ratio | kmeansfw GFLOP/s | faiss ms | "
    "peak memory over data |\n|---|---|---|---|---|---|---|"
)


def _spliced(path: str, generated: list[str]) -> str:
    # the report file's text with ``generated`` spliced in (splice_report), or the
    # run stopped with splice_report's message
    try:
        with open(path) as fh:
            existing: str | None = fh.read()
    except FileNotFoundError:
        existing = None
    try:
        return splice_report(existing, generated, path)
    except ValueError as error:
        raise SystemExit(f"suite.py: {error}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="measure each case this many times, the two libraries in turns, and keep "
        "each one's least time (default 2)",
    )
    parser.add_argument("--write", help="write the Markdown report to this path")
    parser.add_argument("--no-fits", action="store_true", help="skip the whole-fit sections")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.write:  # a file --write would refuse stops the run before its minutes of timing
        _spliced(args.write, [])

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
    if args.write:
        machine = (
            f"{processor()}, "
            f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"scikit-learn {sklearn.__version__}, kmeansfw {kmeansfw.__version__}"
        )
        generated = [
            "Generated by `python benchmarks/suite.py --write docs/benchmarks.md` on "
            f"{datetime.date.today()} ({machine}).",
            "",
            "Whole-fit rows are medians of 50 default fits; the others are the time of one "
            "Lloyd iteration from the same initial centroids, both libraries measured in the "
            "same run (ratio < 1: kmeansfw is faster). GFLOP/s counts the 2 n k d flops of an "
            "iteration's distance products. faiss (when installed) runs the same iterations "
            "on every sample in float32, whatever the case's dtype. Peak memory: resident-set "
            "growth of a fresh process over the loaded data. Each figure is the library's "
            f"least over {args.rounds} round(s), the two libraries measured in turns; on a "
            "shared machine a case's ratio can still move by a third or more between runs.",
            "",
            HEADER,
            *(_line(r) for r in rows),
            "",
            *sections,
        ]
        text = _spliced(args.write, generated)  # read again: checked, not kept, at start
        with open(args.write, "w") as fh:
            fh.write(text)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
