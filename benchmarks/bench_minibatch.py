"""Mini-batch k-means: kmeansfw ``KMeans(batch_size=...)`` against scikit-learn's
MiniBatchKMeans, same data, same batch size, measured in the same run.

For each seed both fit the whole data (each library's defaults otherwise: one run,
k-means++ seeding on a sample of 3 batches, early stopping); the script prints times and
the inertia of the final assignment of every sample, then the medians and their ratios.

    python benchmarks/bench_minibatch.py                       # 1M x 32, k=64, batch 4096
    python benchmarks/bench_minibatch.py --n 200000 --batch-size 1024
"""

from __future__ import annotations

import argparse

from bench_lloyd import make_data, print_against, time_against


def run(n: int, d: int, k: int, batch_size: int, dtype: str = "float64", seeds: int = 5) -> dict:
    """Mini-batch fits of both libraries for each seed (see :func:`bench_lloyd.time_against`)."""
    from sklearn.cluster import MiniBatchKMeans

    import kmeansfw

    X, _ = make_data(n, d, k, dtype)
    kmeansfw.KMeans(k, batch_size=256, random_state=0).fit(X[:5000])  # compile first
    return time_against(
        X,
        lambda seed: kmeansfw.KMeans(k, batch_size=batch_size, random_state=seed),
        lambda seed: MiniBatchKMeans(k, batch_size=batch_size, random_state=seed),
        seeds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    result = run(args.n, args.d, args.k, args.batch_size, args.dtype, args.seeds)
    print(f"{args.n} x {args.d}, k={args.k}, batch {args.batch_size}, {args.dtype}")
    print_against(result)


if __name__ == "__main__":
    main()
