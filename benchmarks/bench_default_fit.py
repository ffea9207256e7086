"""Default fits end to end: kmeansfw's defaults against scikit-learn's, same data, same run.

Each library is called with nothing but ``n_clusters`` and ``random_state`` (so seeding,
restarts, tolerance and algorithm are each library's defaults), for ``--seeds`` seeds.
The script prints, per seed, both times and inertias, then the medians, the ratio of the
median times and of the median inertias.  The issue's target: time ratio <= 1/3 with
median inertia no worse, at 1M x 64, k=256.

    python benchmarks/bench_default_fit.py                     # 1M x 64, k=256, 5 seeds
    python benchmarks/bench_default_fit.py --n 200000 --d 32 --k 64
"""

from __future__ import annotations

import argparse

from bench_lloyd import make_data, print_against, time_against


def run(n: int, d: int, k: int, dtype: str = "float64", seeds: int = 5) -> dict:
    """Default fits of both libraries for each seed (see :func:`bench_lloyd.time_against`)."""
    from sklearn.cluster import KMeans as SkKMeans

    import kmeansfw

    X, _ = make_data(n, d, k, dtype)
    kmeansfw.KMeans(k, random_state=0).fit(X[: 4 * k])  # compile the kernels first
    return time_against(
        X,
        lambda seed: kmeansfw.KMeans(k, random_state=seed),
        lambda seed: SkKMeans(k, random_state=seed),
        seeds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    result = run(args.n, args.d, args.k, args.dtype, args.seeds)
    print(f"{args.n} x {args.d}, k={args.k}, {args.dtype}, defaults of each library")
    print_against(result, " (target <= 0.333)", " (target <= 1)")


if __name__ == "__main__":
    main()
