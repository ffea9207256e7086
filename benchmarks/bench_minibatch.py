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


def run(n: int, d: int, k: int, batch_size: int, dtype: str = "float64", seeds: int = 5) -> dict:
    """Mini-batch fits of both libraries for each seed; per-seed rows and the medians."""
    from sklearn.cluster import MiniBatchKMeans

    import kmeansfw

    X, _ = make_data(n, d, k, dtype)
    kmeansfw.KMeans(k, batch_size=256, random_state=0).fit(X[:5000])  # compile first
    per_seed = []
    for seed in range(seeds):
        row = {"seed": seed}
        for name, make in (("kmeansfw", kmeansfw.KMeans), ("sklearn", MiniBatchKMeans)):
            est = make(k, batch_size=batch_size, random_state=seed)
            start = time.perf_counter()
            est.fit(X)
            row[name] = (time.perf_counter() - start, est.inertia_)
        per_seed.append(row)
    medians = {
        name: (
            statistics.median(r[name][0] for r in per_seed),
            statistics.median(r[name][1] for r in per_seed),
        )
        for name in ("kmeansfw", "sklearn")
    }
    return {"per_seed": per_seed, "medians": medians}


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
    print(
        f"{'seed':>4} {'kmeansfw s':>10} {'sklearn s':>10} {'kmeansfw inertia':>17} "
        f"{'sklearn inertia':>16}"
    )
    for row in result["per_seed"]:
        ours, theirs = row["kmeansfw"], row["sklearn"]
        print(
            f"{row['seed']:4d} {ours[0]:10.2f} {theirs[0]:10.2f} {ours[1]:17.6e} {theirs[1]:16.6e}"
        )
    (t_ours, i_ours), (t_theirs, i_theirs) = (
        result["medians"]["kmeansfw"],
        result["medians"]["sklearn"],
    )
    print(
        f"median time: kmeansfw {t_ours:.2f} s, scikit-learn {t_theirs:.2f} s, "
        f"ratio {t_ours / t_theirs:.2f}"
    )
    print(
        f"median inertia: kmeansfw {i_ours:.6e}, scikit-learn {i_theirs:.6e}, "
        f"ratio {i_ours / i_theirs:.4f}"
    )


if __name__ == "__main__":
    main()
