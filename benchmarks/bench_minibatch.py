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
import statistics
import time

from bench_lloyd import make_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()

    from sklearn.cluster import MiniBatchKMeans

    import kmeansfw

    X, _ = make_data(args.n, args.d, args.k, args.dtype)
    kmeansfw.KMeans(args.k, batch_size=256, random_state=0).fit(X[:5000])  # compile first
    print(f"{args.n} x {args.d}, k={args.k}, batch {args.batch_size}, {args.dtype}")
    print(
        f"{'seed':>4} {'kmeansfw s':>10} {'sklearn s':>10} {'kmeansfw inertia':>17} "
        f"{'sklearn inertia':>16}"
    )
    rows = []
    for seed in range(args.seeds):
        row = []
        for make in (kmeansfw.KMeans, MiniBatchKMeans):
            est = make(args.k, batch_size=args.batch_size, random_state=seed)
            start = time.perf_counter()
            est.fit(X)
            row.append((time.perf_counter() - start, est.inertia_))
        rows.append(row)
        print(f"{seed:4d} {row[0][0]:10.2f} {row[1][0]:10.2f} {row[0][1]:17.6e} {row[1][1]:16.6e}")
    t = [statistics.median(r[i][0] for r in rows) for i in (0, 1)]
    inertia = [statistics.median(r[i][1] for r in rows) for i in (0, 1)]
    print(f"median time: kmeansfw {t[0]:.2f} s, scikit-learn {t[1]:.2f} s, ratio {t[0] / t[1]:.2f}")
    print(
        f"median inertia: kmeansfw {inertia[0]:.6e}, scikit-learn {inertia[1]:.6e}, "
        f"ratio {inertia[0] / inertia[1]:.4f}"
    )


if __name__ == "__main__":
    main()
