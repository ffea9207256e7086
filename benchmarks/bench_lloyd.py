"""Lloyd iteration time of kmeansfw against scikit-learn, measured in the same run.

For each case both libraries start from the same centroids and run a fixed number of
iterations (tol=0); the time of one iteration is the difference between a run of m + 1
iterations and a run of 1 iteration, divided by the iterations the long run made more, so
set-up (validation, norms, the final assignment) cancels out (:func:`per_iteration`, the
one every benchmark script uses: m is ``--iters``, raised once, up to 500, so that the
iterations take at least 50 ms unless ``--repeat`` is 1; each run the best of
``--repeat``).  Peak memory of a default kmeansfw fit
(k-means++ excluded: explicit init) is measured in a fresh subprocess as the growth of
the resident set over the loaded data.

Run ``python benchmarks/bench_lloyd.py`` (all four cases, a few minutes on 2 cores) or
``--quick`` for the two cases of 200k x 32, k=64 only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from functools import partial

import numpy as np

CASES = [
    (200_000, 32, 64, "float64"),
    (200_000, 32, 64, "float32"),
    (1_000_000, 64, 256, "float64"),
    (1_000_000, 64, 256, "float32"),
]


def make_data(n: int, d: int, k: int, dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around k random centres, generated in chunks (no big temporaries)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(k, d))
    X = np.empty((n, d), dtype=dtype)
    step = 65536
    for start in range(0, n, step):
        stop = min(start + step, n)
        which = rng.integers(0, k, size=stop - start)
        X[start:stop] = centres[which] + rng.standard_normal((stop - start, d))
    init = X[rng.choice(n, size=k, replace=False)].copy()
    return X, init


def best_time(fit, repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fit``."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fit()
        best = min(best, time.perf_counter() - start)
    return best


def per_iteration(make_fit, iters: int, repeat: int) -> float:
    """Seconds per Lloyd iteration: (time of 1 + m iterations - time of 1) / m, best of
    ``repeat`` each (the short run at least twice: the first fit on new data pays one-off
    costs), with m the iterations the long run really made (``iters``, or fewer when it
    converged first).  Unless ``repeat`` is 1 (the largest cells), ``iters`` is raised
    once, from a first timing of the long run, so that its iterations take at least
    50 ms and at least as long as the short run: a fit's fixed costs (validating X, its
    mean, the final labels) take about 30 ms at 1M x 2, and a first, cold long run of
    1 + 3 iterations took over 50 ms, so 3 iterations of 3 ms were the difference of two
    ~40 ms timings and the first cell of 1M x 2 read 1.17-1.45x scikit-learn's time where
    10 or more iterations read 0.5-0.7x.  NaN (printed as "-" by the grid's and the
    suite's tables, a blank cell in the grid's heat map) when the long run made no more
    iterations than the short one or was not slower than it: that case has no figure."""
    short_fit = make_fit(1)
    # at least twice: a library's first fit on new data pays one-off costs (scikit-learn's
    # first one-iteration fit at 200000 x 256, k=256 took 1.6 s, the next 0.83 s), which
    # would make a single timed short run look as slow as the long one
    short = best_time(short_fit, max(repeat, 2))
    long_fit = make_fit(iters + 1)
    long = best_time(long_fit, 1)
    # per iteration, at least a tenth of the long run's time per iteration (a difference
    # lost in noise would otherwise ask for hundreds of iterations)
    estimate = max((long - short) / iters, long / (iters + 1) / 10)
    wanted = max(0.05, short)  # the iterations' share of the long run
    if repeat > 1 and long - short < wanted:
        iters = min(500, max(iters, math.ceil(wanted / estimate)))
        long_fit = make_fit(iters + 1)
    # timed again, ``repeat`` times: the first timing of the long run may be its cold
    # one (with ``repeat`` 1 too, as the grid's and the suite's largest cells were
    # measured)
    long = best_time(long_fit, repeat)
    made = long_fit.n_iter - short_fit.n_iter
    if made <= 0 or long <= short:  # converged at once, or lost in noise: no figure
        return math.nan
    return (long - short) / made


class KmfwFit:
    def __init__(self, X, init, max_iter):
        import kmeansfw

        self.est = kmeansfw.KMeans(init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0.0)
        self.X = X

    def __call__(self):
        self.est.fit(self.X)

    @property
    def n_iter(self):
        return self.est.n_iter_


class SkFit(KmfwFit):
    def __init__(self, X, init, max_iter):
        from sklearn.cluster import KMeans

        self.est = KMeans(
            init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0.0, algorithm="lloyd"
        )
        self.X = X


def time_against(X, make_ours, make_theirs, seeds: int) -> dict:
    """Fit ``make_ours(seed)`` and ``make_theirs(seed)`` on X for each seed, in turn.

    Returns ``{"per_seed": [{"seed", "kmeansfw": (s, inertia, n_iter), "sklearn": ...}],
    "medians": {"kmeansfw": (s, inertia), "sklearn": (s, inertia)}}``.
    """
    per_seed = []
    for seed in range(seeds):
        row = {"seed": seed}
        for name, make in (("kmeansfw", make_ours), ("sklearn", make_theirs)):
            est = make(seed)
            start = time.perf_counter()
            est.fit(X)
            row[name] = (time.perf_counter() - start, est.inertia_, est.n_iter_)
        per_seed.append(row)
    medians = {
        name: (
            statistics.median(r[name][0] for r in per_seed),
            statistics.median(r[name][1] for r in per_seed),
        )
        for name in ("kmeansfw", "sklearn")
    }
    return {"per_seed": per_seed, "medians": medians}


def print_against(result: dict, time_target: str = "", inertia_target: str = "") -> None:
    """Print :func:`time_against`'s per-seed rows, medians and ratios."""
    print(
        f"{'seed':>4} {'kmeansfw s':>10} {'sklearn s':>10} {'kmeansfw inertia':>17} "
        f"{'sklearn inertia':>16} {'kmfw it':>7} {'sk it':>6}"
    )
    for row in result["per_seed"]:
        ours, theirs = row["kmeansfw"], row["sklearn"]
        print(
            f"{row['seed']:4d} {ours[0]:10.2f} {theirs[0]:10.2f} {ours[1]:17.6e} "
            f"{theirs[1]:16.6e} {ours[2]:7d} {theirs[2]:6d}"
        )
    (t_ours, i_ours), (t_theirs, i_theirs) = (
        result["medians"]["kmeansfw"],
        result["medians"]["sklearn"],
    )
    print(
        f"median time: kmeansfw {t_ours:.2f} s, scikit-learn {t_theirs:.2f} s, "
        f"ratio {t_ours / t_theirs:.3f}{time_target}"
    )
    print(
        f"median inertia: kmeansfw {i_ours:.6e}, scikit-learn {i_theirs:.6e}, "
        f"ratio {i_ours / i_theirs:.4f}{inertia_target}"
    )


def processor() -> str:
    """The processor's model name and CPU count, for a run's header: Linux's
    ``/proc/cpuinfo`` names the model (``platform.processor()`` is empty there), else
    whatever ``platform`` knows."""
    name = ""
    try:
        with open("/proc/cpuinfo") as info:
            name = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                "",
            )
    except (OSError, ValueError):  # no such file, or not text
        pass
    return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss would include the parent's)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_child(n: int, d: int, k: int, dtype: str, assignment: str = "nearest") -> None:
    """In a fresh process: peak RSS growth of a fit over the loaded data, in MB."""
    import kmeansfw

    X, init = make_data(n, d, k, dtype)
    warm = X[: max(1000, 2 * k)]
    common = {"init": init, "n_init": 1, "assignment": assignment}
    kmeansfw.KMeans(k, max_iter=2, **common).fit(warm)  # warm imports, kernels
    base = rss_mb()
    kmeansfw.KMeans(k, max_iter=3, tol=0.0, **common).fit(X)
    peak = peak_rss_mb()
    print(json.dumps({"data_mb": X.nbytes / 2**20, "extra_mb": peak - base}))


def peak_memory(n: int, d: int, k: int, dtype: str, assignment: str = "nearest") -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", f"{n},{d},{k},{dtype},{assignment}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--iters",
        type=int,
        default=None,
        help="iterations of the long run at least (raised to 50 ms of iterations unless "
        "--repeat is 1); default: 10, 3 at 1M rows",
    )
    parser.add_argument("--repeat", type=int, default=None, help="default: 5, 2 at 1M rows")
    parser.add_argument("--quick", action="store_true", help="only 200k x 32, k=64")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        n, d, k, dtype, assignment = args.memory_child.split(",")
        memory_child(int(n), int(d), int(k), dtype, assignment)
        return

    import sklearn
    import threadpoolctl

    import kmeansfw

    blas = threadpoolctl.threadpool_info()
    print(
        f"kmeansfw {kmeansfw.__version__}, scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, BLAS {[b.get('internal_api') for b in blas]}"
    )
    header = f"{'case':<28}{'kmeansfw ms/it':>15}{'sklearn ms/it':>15}{'ratio':>8}  memory"
    print(header)
    print("-" * len(header) + "-" * 22)
    cases = CASES[:2] if args.quick else CASES
    for n, d, k, dtype in cases:
        X, init = make_data(n, d, k, dtype)
        iters = args.iters or (3 if n >= 1_000_000 else 10)
        repeat = args.repeat or (2 if n >= 1_000_000 else 5)
        ours = per_iteration(partial(KmfwFit, X, init), iters, repeat)
        theirs = per_iteration(partial(SkFit, X, init), iters, repeat)
        mem = ""
        if (n, k) == (1_000_000, 256) or args.quick:
            m = peak_memory(n, d, k, dtype)
            mem = f"data {m['data_mb']:.0f} MB + {m['extra_mb']:.0f} MB"
        case = f"{n}x{d} k={k} {dtype}"
        print(f"{case:<28}{ours * 1e3:>15.1f}{theirs * 1e3:>15.1f}{ours / theirs:>8.2f}  {mem}")


if __name__ == "__main__":
    main()
