"""The speed grid: kmeansfw against scikit-learn (and scikit-learn-intelex, faiss) by shape.

For every cell of n in {2k, 20k, 200k, 1M}, d in {2, 8, 64, 256}, k in {3, 8, 32, 256},
float32 and float64 (cells whose data exceeds ``--budget-mb`` are skipped), it measures
the time of one Lloyd iteration from the same initial centroids (the difference of a long
and a 1 iteration run over the iterations made, ``bench_lloyd.per_iteration``) for kmeansfw
and scikit-learn in the same run, and prints their ratio (below 1: kmeansfw is faster).
scikit-learn-intelex and faiss get columns when installed (``pip install -e ".[bench]"``).

It also measures the machine's read bandwidth on the same data, one summing pass over X
(``X.sum()``, best of ``repeat``), and prints the fraction of it an iteration reaches: ``pass time /
iteration time``; 1.0 means the iteration runs at the speed of reading X once, the limit
of any exact Lloyd iteration at small k.

    python benchmarks/bench_grid.py --quick              # n <= 200k, d <= 64, k <= 32, float64
    python benchmarks/bench_grid.py                      # the whole grid (8 min on 2 cores)
    python benchmarks/bench_grid.py --png docs/bench_grid.png --write grid.md

``--png`` draws a heat map of the ratios (rows: n x d, columns: k and dtype); the
geometric mean of the ratios closes the table.  Timings on a shared machine are noisy:
the ratios, measured in the same run, are what to compare.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lloyd import KmfwFit, SkFit, best_time, per_iteration, processor  # noqa: E402

N_VALUES = (2_000, 20_000, 200_000, 1_000_000)
D_VALUES = (2, 8, 64, 256)
K_VALUES = (3, 8, 32, 256)
DTYPES = ("float32", "float64")
QUICK = ((2_000, 20_000, 200_000), (2, 8, 64), (3, 8, 32), ("float64",))


class IntelexFit(KmfwFit):
    """scikit-learn-intelex's KMeans (oneDAL), same parameters as scikit-learn's."""

    def __init__(self, X, init, max_iter):
        from sklearnex.cluster import KMeans

        self.est = KMeans(init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0.0)
        self.X = X


class FaissFit:
    """faiss's Lloyd iterations on every sample, from the same centroids (float32)."""

    def __init__(self, X, init, max_iter):
        import faiss

        self.faiss, self.max_iter = faiss, max_iter
        self.X = np.ascontiguousarray(X, np.float32)
        self.init = np.ascontiguousarray(init, np.float32)
        self.n_iter = max_iter

    def __call__(self):
        km = self.faiss.Kmeans(
            self.X.shape[1],
            self.init.shape[0],
            niter=self.max_iter,
            seed=0,
            verbose=False,
            max_points_per_centroid=self.X.shape[0],
        )
        km.train(self.X, init_centroids=self.init)


def make_data(n: int, d: int, dtype: str, seed: int) -> np.ndarray:
    """Standard normal data, generated in chunks: no cluster structure, so that Lloyd's
    labels keep changing and no library stops early (scikit-learn stops when they do not,
    whatever ``tol``)."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, d), dtype=dtype)
    for start in range(0, n, 65536):
        stop = min(start + 65536, n)
        X[start:stop] = rng.standard_normal((stop - start, d))
    return X


def _available(module: str) -> bool:
    try:
        __import__(module)
    except Exception:
        return False
    return True


def read_pass(X: np.ndarray, repeat: int) -> float:
    """Seconds of one summing pass over X (best of ``repeat``): the read-bandwidth limit.

    The sum of all of X (NumPy's vectorized pairwise reduction over contiguous memory),
    not ``X.sum(axis=0)``: that one calls its inner loop once per row, and at a few
    columns its per-row cost, not reading, set its time (1M x 8 float64: 36 ms against
    5 ms for the whole sum), so it overstated the time of a read and the fraction."""
    return best_time(X.sum, max(repeat, 3))


def cells(quick: bool, budget_mb: float) -> list[tuple[int, int, int, str]]:
    """The grid's cells, those whose data fits in ``budget_mb``."""
    ns, ds, ks, dtypes = QUICK if quick else (N_VALUES, D_VALUES, K_VALUES, DTYPES)
    out = []
    for n, d, k, dtype in itertools.product(ns, ds, ks, dtypes):
        if n * d * np.dtype(dtype).itemsize > budget_mb * 2**20 or k >= n:
            continue
        out.append((n, d, k, dtype))
    return out


def run_grid(args: argparse.Namespace) -> list[dict]:
    others = {"intelex": _available("sklearnex"), "faiss": _available("faiss")}
    rows = []
    data_key, X = None, None
    for n, d, k, dtype in cells(args.quick, args.budget_mb):
        if data_key != (n, d, dtype):  # one data set per (n, d, dtype); k picks the init
            X = None
            X = make_data(n, d, dtype, seed=n + d)
            data_key = (n, d, dtype)
        rng = np.random.default_rng(k)
        init = X[rng.choice(n, size=k, replace=False)].copy()
        # the largest cells are timed once each way, a run of 1 + LARGE_ITERS iterations
        # against one of 1: enough iterations that the difference stands out of the noise
        iters = args.iters if n * d * k < 1e9 else LARGE_ITERS
        repeat = args.repeat if n * d * k < 1e9 else 1
        ours = per_iteration(partial_fit(KmfwFit, X, init), iters, repeat)
        theirs = per_iteration(partial_fit(SkFit, X, init), iters, repeat)
        row = {"n": n, "d": d, "k": k, "dtype": dtype, "ours": ours, "sk": theirs}
        if others["intelex"]:
            row["intelex"] = per_iteration(partial_fit(IntelexFit, X, init), iters, repeat)
        if others["faiss"]:
            row["faiss"] = per_iteration(partial_fit(FaissFit, X, init), iters, repeat)
        row["read"] = read_pass(X, repeat)
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def partial_fit(cls, X, init):
    return lambda max_iter: cls(X, init, max_iter)


def _ms(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value * 1e3:.3g}"


def _ratio(a: float | None, b: float | None) -> float:
    return a / b if a is not None and b and a == a and b == b else math.nan


def format_row(row: dict) -> str:
    ratio = _ratio(row["ours"], row["sk"])
    cells_ = [
        f"{row['n']}x{row['d']}",
        str(row["k"]),
        row["dtype"],
        _ms(row["ours"]),
        _ms(row["sk"]),
        f"{ratio:.2f}",
        _ms(row.get("intelex")),
        f"{_ratio(row['ours'], row.get('intelex')):.2f}",
        _ms(row.get("faiss")),
        f"{min(1.0, _ratio(row['read'], row['ours'])):.2f}",
    ]
    return "| " + " | ".join(cells_) + " |"


HEADER = (
    "| n x d | k | dtype | kmeansfw ms | scikit-learn ms | ratio | intelex ms "
    "| kmeansfw / intelex | faiss ms | fraction of read bandwidth |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def geometric_mean(values: list[float]) -> float:
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


#: Iterations a cell of n x d x k >= 1e9 adds to its timed run (once each way): with one,
#: a two-iteration run was often not measurably slower than a one-iteration run, and the
#: cell got no figure.
LARGE_ITERS = 3
#: The heat map's colours saturate at this ratio either way (1 / it and it).
HEAT_SPAN = 4.0


def heat_map(rows: list[dict], path: str) -> None:
    """A heat map of kmeansfw / scikit-learn per cell: rows n x d, columns k (and dtype)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    shapes = sorted({(r["n"], r["d"]) for r in rows})
    columns = sorted({(r["dtype"], r["k"]) for r in rows})
    grid = np.full((len(shapes), len(columns)), np.nan)
    for r in rows:
        ratio = _ratio(r["ours"], r["sk"])
        grid[shapes.index((r["n"], r["d"])), columns.index((r["dtype"], r["k"]))] = ratio
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.45 * len(shapes) + 1.8))
    finite = grid[np.isfinite(grid)]
    # colours on a log scale, even either side of 1, saturating at HEAT_SPAN (one outlier
    # cell cannot wash the others out); the printed numbers are exact
    shown = np.clip(grid, 1 / HEAT_SPAN, HEAT_SPAN)
    norm = LogNorm(1 / HEAT_SPAN, HEAT_SPAN)
    image = ax.imshow(shown, cmap="RdYlGn_r", norm=norm, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(columns)), [f"k={k}\n{t}" for t, k in columns], fontsize=8)
    ax.set_yticks(range(len(shapes)), [f"{n:,} x {d}" for n, d in shapes], fontsize=8)
    ax.set_xlabel("clusters k and dtype")
    ax.set_ylabel("samples n x features d")
    ax.set_title(
        "kmeansfw / scikit-learn time per Lloyd iteration (below 1: kmeansfw faster)\n"
        f"same run, same initial centroids; geometric mean {geometric_mean(list(finite)):.2f}",
        fontsize=9,
    )
    bar = fig.colorbar(image, ax=ax, label=f"time ratio (log scale, saturates at {HEAT_SPAN:g}x)")
    ticks = [HEAT_SPAN**e for e in (-1, -0.5, 0, 0.5, 1)]
    bar.set_ticks(ticks, labels=[f"{t:.2g}" for t in ticks])
    bar.ax.minorticks_off()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n <= 200k, d <= 64, k <= 32, f64")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--budget-mb", type=float, default=1024, help="skip larger data")
    parser.add_argument("--png", help="write the heat map of the ratios to this path")
    parser.add_argument("--write", help="write the Markdown table to this path")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(processor())
    print(HEADER)
    rows = run_grid(args)
    ratios = [_ratio(r["ours"], r["sk"]) for r in rows]
    summary = f"geometric mean of kmeansfw / scikit-learn over {len(rows)} cells: "
    summary += f"{geometric_mean(ratios):.2f}"
    print(summary)
    if args.png:
        heat_map(rows, args.png)
        print(f"heat map: {args.png}")
    if args.write:
        with open(args.write, "w") as out:
            out.write(HEADER + "\n" + "\n".join(map(format_row, rows)) + "\n\n" + summary + "\n")


if __name__ == "__main__":
    main()
