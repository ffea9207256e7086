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
import statistics
import time

from bench_lloyd import make_data


def run(n: int, d: int, k: int, dtype: str = "float64", seeds: int = 5) -> dict:
    """Default fits of both libraries for each seed; per-seed rows and the medians."""
    from sklearn.cluster import KMeans as SkKMeans

    import kmeansfw

    X, _ = make_data(n, d, k, dtype)
    kmeansfw.KMeans(k, random_state=0).fit(X[: 4 * k])  # compile the kernels first
    per_seed = []
    for seed in range(seeds):
        row = {"seed": seed}
        for name, make in (("kmeansfw", kmeansfw.KMeans), ("sklearn", SkKMeans)):
            est = make(k, random_state=seed)
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
        f"ratio {t_ours / t_theirs:.3f} (target <= 0.333)"
    )
    print(
        f"median inertia: kmeansfw {i_ours:.6e}, scikit-learn {i_theirs:.6e}, "
        f"ratio {i_ours / i_theirs:.4f} (target <= 1)"
    )


if __name__ == "__main__":
    main()
