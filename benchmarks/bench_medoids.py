"""k-medoids: kmeansfw.KMedoids against FasterPAM (the ``kmedoids`` package).

Data: ``make_blobs(n, 16, centers=10, cluster_std=4.0)``, k = 10.  For each of 3 seeds,
each library runs with its own seeding (FasterPAM: its default ``init="random"``;
kmeansfw: ``init="k-medoids++"``, and the scikit-learn-extra default ``"heuristic"``), and
the objective (sum of Euclidean distances to the medoids) is recomputed independently,
block by block.  FasterPAM's time includes building its n x n matrix (float64, as
``sklearn.metrics.pairwise_distances`` gives it).  Printed: the medians over seeds and the
ratios kmeansfw / FasterPAM measured in the same run (timings on a shared machine are
noisy; the ratios are what to compare).

Then kmeansfw alone at a large n (``--large``, default 1,000,000), where FasterPAM's
matrix would need n^2 x 8 bytes: time and peak resident memory.

Usage: python benchmarks/bench_medoids.py [--n 20000] [--large 1000000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from sklearn.datasets import make_blobs

from kmeansfw import KMedoids


def objective(X: np.ndarray, medoids: np.ndarray) -> float:
    """Sum over samples of the Euclidean distance to the closest medoid, block by block."""
    total = 0.0
    for start in range(0, X.shape[0], 65536):
        block = X[start : start + 65536]
        d2 = ((block[:, None, :] - medoids[None, :, :]) ** 2).sum(axis=2)
        total += float(np.sqrt(d2.min(axis=1)).sum())
    return total


def run_kmeansfw(X: np.ndarray, k: int, seed: int, init: str) -> tuple[float, float]:
    start = time.perf_counter()
    km = KMedoids(k, method="pam", init=init, random_state=seed).fit(X)
    seconds = time.perf_counter() - start
    return objective(X, X[km.medoid_indices_]), seconds


def run_fasterpam(X: np.ndarray, k: int, seed: int) -> tuple[float, float] | None:
    try:
        import kmedoids
    except ImportError:
        return None
    from sklearn.metrics import pairwise_distances

    start = time.perf_counter()
    diss = pairwise_distances(X, metric="euclidean")
    result = kmedoids.fasterpam(diss, k, random_state=seed)
    seconds = time.perf_counter() - start
    del diss
    return objective(X, X[np.asarray(result.medoids)]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    X, _ = make_blobs(args.n, 16, centers=10, cluster_std=4.0, random_state=0)
    rows = {"kmeansfw pam, k-medoids++": [], "kmeansfw pam, heuristic": [], "FasterPAM": []}
    for seed in range(args.seeds):
        rows["kmeansfw pam, k-medoids++"].append(run_kmeansfw(X, args.k, seed, "k-medoids++"))
        rows["kmeansfw pam, heuristic"].append(run_kmeansfw(X, args.k, seed, "heuristic"))
        fp = run_fasterpam(X, args.k, seed)
        if fp is not None:
            rows["FasterPAM"].append(fp)
    print(f"n={args.n} d=16 k={args.k}, median of {args.seeds} seeds")
    head = ["objective", "seconds", "obj ratio", "time ratio"]
    widths = (14, 9, 10, 10)
    print(f"{'method':28s} " + " ".join(f"{h:>{w}s}" for h, w in zip(head, widths, strict=True)))
    ref = rows["FasterPAM"]
    ref_obj = float(np.median([o for o, _ in ref])) if ref else None
    ref_t = float(np.median([t for _, t in ref])) if ref else None
    for name, values in rows.items():
        if not values:
            print(f"{name:28s} (not installed: pip install kmedoids)")
            continue
        obj = float(np.median([o for o, _ in values]))
        sec = float(np.median([t for _, t in values]))
        ratio = f"{obj / ref_obj:10.4f}" if ref_obj else f"{'-':>10s}"
        tratio = f"{sec / ref_t:10.3f}" if ref_t else f"{'-':>10s}"
        print(f"{name:28s} {obj:14.1f} {sec:9.3f} {ratio} {tratio}")

    if args.large:
        X, _ = make_blobs(args.large, 16, centers=10, cluster_std=4.0, random_state=0)
        tracemalloc.start()
        obj, sec = run_kmeansfw(X, args.k, 0, "k-medoids++")
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(
            f"n={args.large}: kmeansfw pam objective {obj:.1f} in {sec:.1f} s; peak memory "
            f"allocated by the fit {peak:.0f} MB (tracemalloc; the data itself is "
            f"{X.nbytes / 2**20:.0f} MB, the budget 64 MB per thread); FasterPAM's matrix "
            f"would need {args.large**2 * 8 / 2**30:.0f} GiB"
        )


if __name__ == "__main__":
    main()
