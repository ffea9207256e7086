"""Small data with and without numba's threads, against scikit-learn in the same run.

Data of fewer than 2^18 elements (rows x features) runs as one block on the calling
thread; its nearest-centroid search, cost blocks and the mean's sums split their work
between numba's threads (same results for any thread count).  This script measures what
that buys: for each case it times, in child processes that alternate, kmeansfw with
numba's threads, kmeansfw with ``KMEANSFW_PARALLEL_KERNELS=0`` (one thread) and
scikit-learn in each child, and prints the medians and the ratios to scikit-learn:

* one Lloyd iteration from the same initial centroids (``bench_lloyd.per_iteration``,
  the grid's measurement: the difference of a long and a one-iteration run), on
  unstructured data;
* the default fit of the digits data (1797 x 64, k=10), median over seeds, each
  library's fits in a row (fits of the two libraries alternating in one process slow
  both: each one's OpenMP threads spin after its fit while the other's want the cores);
* fits that the seeding dominates: k-means++ and one Lloyd iteration (``max_iter=1``) on
  Gaussian blobs, median over seeds, each library's fits in a row.

    python benchmarks/bench_small.py                 # a few minutes on 2 cores
    python benchmarks/bench_small.py --rounds 1 --seeds 20

Timings on a shared machine are noisy: the ratios, measured in the same child, and the
alternation of the two modes are what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grid import make_data  # noqa: E402
from bench_lloyd import KmfwFit, SkFit, per_iteration  # noqa: E402

#: (n, d, k) of the per-iteration cases: the quick grid's small cells.
CASES = [
    (2_000, 8, 8),
    (2_000, 64, 8),
    (2_000, 64, 32),
    (20_000, 2, 3),
    (20_000, 8, 8),
    (20_000, 8, 32),
]
#: (n, d, k) of the seeding cases (k-means++, then one iteration).
SEEDING_CASES = [(1_797, 64, 10), (2_000, 64, 128), (10_000, 16, 64), (2_560, 8, 256)]
MODES = ("threads", "one thread")


def _fit_times(makers: dict, X: np.ndarray, k: int, seeds: int, **params) -> dict:
    """Median fit time per library over ``seeds`` seeds, each library's fits in a row."""
    import time

    times = {}
    for name, make in makers.items():
        make(k, random_state=0, **params).fit(X)  # compiled and warm before timing
        spent = []
        for seed in range(seeds):
            est = make(k, random_state=seed, **params)
            start = time.perf_counter()
            est.fit(X)
            spent.append(time.perf_counter() - start)
        times[name] = statistics.median(spent)
    return times


def child(cases: list, seeds: int, iters: int, repeat: int) -> None:
    """In a fresh process: per-iteration times, the digits fit and the seeding cases, as
    one JSON line."""
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits, make_blobs
    from sklearn.exceptions import ConvergenceWarning

    import kmeansfw

    warnings.simplefilter("ignore", ConvergenceWarning)
    from kmeansfw.kernels._compile import parallel_ready

    out: dict = {"ready": parallel_ready(), "cases": {}}
    for n, d, k in cases:
        X = make_data(n, d, "float64", 0)
        init = X[np.random.default_rng(1).choice(n, k, replace=False)].copy()
        KmfwFit(X, init, 2)()  # compile and warm before timing
        ours = per_iteration(lambda m, X=X, init=init: KmfwFit(X, init, m), iters, repeat)
        theirs = per_iteration(lambda m, X=X, init=init: SkFit(X, init, m), iters, repeat)
        out["cases"][f"{n}x{d}x{k}"] = (ours, theirs)
    # each library's fits together: fits of the two alternating in one process slow both,
    # each library's OpenMP threads spinning after its fit while the other's want the cores
    makers = {"kmeansfw": kmeansfw.KMeans, "sklearn": KMeans}
    times = _fit_times(makers, load_digits().data, 10, seeds)
    out["digits"] = (times["kmeansfw"], times["sklearn"])
    for n, d, k in SEEDING_CASES:
        X = make_blobs(n, n_features=d, centers=k, cluster_std=4.0, random_state=0)[0]
        times = _fit_times(makers, X, k, max(3, seeds // 8), init="k-means++", max_iter=1)
        out["cases"][f"seed {n}x{d}x{k}"] = (times["kmeansfw"], times["sklearn"])
    print(json.dumps(out))


def run_child(mode: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env["KMEANSFW_PARALLEL_KERNELS"] = "1" if mode == "threads" else "0"
    command = [sys.executable, __file__, "--child", "--seeds", str(args.seeds)]
    command += ["--iters", str(args.iters), "--repeat", str(args.repeat)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the modes")
    parser.add_argument("--seeds", type=int, default=40, help="digits fits per library")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(CASES, args.seeds, args.iters, args.repeat)
        return
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            results[mode].append(run_child(mode, args))
    if not all(r["ready"] for r in results["threads"]):
        print("numba's threads are not available here: both modes ran on one thread")

    def median_ratio(mode: str, key: str | None) -> tuple[float, float]:
        # over the rounds that gave a figure (per_iteration's NaN: none; a NaN in a
        # median would land anywhere in its order): NaN, printed "nan", when none did
        pairs = [r["digits"] if key is None else r["cases"][key] for r in results[mode]]
        pairs = [p for p in pairs if p[0] == p[0] and p[1] == p[1]]
        if not pairs:
            return float("nan"), float("nan")
        ours = statistics.median(p[0] for p in pairs)
        return ours, statistics.median(p[0] / p[1] for p in pairs)

    print(f"{'case':>16} {'threads ms':>11} {'ratio':>6} {'one thread ms':>14} {'ratio':>6}")
    for n, d, k in CASES:
        key = f"{n}x{d}x{k}"
        (t_ms, t_ratio), (o_ms, o_ratio) = (median_ratio(m, key) for m in MODES)
        print(f"{key:>16} {t_ms * 1e3:11.3f} {t_ratio:6.2f} {o_ms * 1e3:14.3f} {o_ratio:6.2f}")
    (t_s, t_ratio), (o_s, o_ratio) = (median_ratio(m, None) for m in MODES)
    label = "digits fit"
    print(f"{label:>16} {t_s * 1e3:11.3f} {t_ratio:6.2f} {o_s * 1e3:14.3f} {o_ratio:6.2f}")
    for n, d, k in SEEDING_CASES:
        key = f"seed {n}x{d}x{k}"
        (t_ms, t_ratio), (o_ms, o_ratio) = (median_ratio(m, key) for m in MODES)
        print(f"{key:>16} {t_ms * 1e3:11.3f} {t_ratio:6.2f} {o_ms * 1e3:14.3f} {o_ratio:6.2f}")
    print("ratio: kmeansfw / scikit-learn in the same child (per iteration; the digits fit's")
    print("and the seeding cases' (k-means++ and one iteration, `seed`) medians over seeds);")
    print("medians over the rounds. Target for the digits fit: <= 0.7")


if __name__ == "__main__":
    main()
