"""Time per Lloyd iteration of every built-in distance, relative to ``euclidean``.

200k x 32, k=64, float64, the same initial centroids for every distance.  Two columns:
the distance with the ``mean`` update (what the distance itself costs: distances, argmin,
sums) and the distance with its natural update (``median``, ``medoid``, ``spherical``...),
whose cost is reported separately because a medoid update is far costlier than the
distance.  Per-iteration time is the difference between a run of 1 + ``--iters``
iterations and a run of 1, so set-up cancels out.

Run ``python benchmarks/bench_distances.py`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time
import warnings

from bench_lloyd import make_data

import kmeansfw

DISTANCES = [
    "euclidean",
    "sqeuclidean",
    "manhattan",
    "chebyshev",
    {"name": "minkowski", "p": 3},
    {"name": "minkowski", "p": 1.5},
    "cosine",
    "mahalanobis",
]


def per_iteration(X, init, distance, update, iters: int) -> tuple[float, str]:
    def fit(max_iter):
        km = kmeansfw.KMeans(
            init.shape[0],
            init=init,
            distance=distance,
            update=update,
            max_iter=max_iter,
            tol=0.0,
            n_init=1,
        )
        start = time.perf_counter()
        km.fit(X)
        return time.perf_counter() - start, km

    fit(1)  # warm (compile kernels)
    short, _ = fit(1)
    long, km = fit(iters + 1)
    strategies = {slot: s for slot, _, s in kmeansfw.Config(distance=distance).build_strategies()}
    chosen = update or strategies["update"].name
    return (long - short) / iters, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    X, init = make_data(args.n, 32, 64, "float64")
    print(f"kmeansfw {kmeansfw.__version__}: {args.n}x32, k=64, float64; ms per iteration")
    header = (
        f"{'distance':<24}{'with mean':>11}{'ratio':>7}   "
        f"{'natural update':<16}{'ms':>9}{'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    base = None
    for distance in DISTANCES:
        label = distance if isinstance(distance, str) else f"minkowski p={distance['p']}"
        with_mean, _ = per_iteration(X, init, distance, "mean", args.iters)
        natural, update = per_iteration(X, init, distance, None, args.iters)
        base = base or with_mean
        print(
            f"{label:<24}{with_mean * 1e3:>11.1f}{with_mean / base:>7.2f}   "
            f"{update:<16}{natural * 1e3:>9.1f}{natural / base:>8.2f}"
        )


if __name__ == "__main__":
    main()
