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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()

    from sklearn.cluster import KMeans as SkKMeans

    import kmeansfw

    X, _ = make_data(args.n, args.d, args.k, args.dtype)
    kmeansfw.KMeans(args.k, random_state=0).fit(X[: 4 * args.k])  # compile the kernels first
    print(f"{args.n} x {args.d}, k={args.k}, {args.dtype}, defaults of each library")
    print(
        f"{'seed':>4} {'kmeansfw s':>10} {'sklearn s':>10} {'kmeansfw inertia':>17} "
        f"{'sklearn inertia':>16} {'kmfw it':>7} {'sk it':>6}"
    )
    ours, theirs = [], []
    for seed in range(args.seeds):
        row = []
        for make in (kmeansfw.KMeans, SkKMeans):
            est = make(args.k, random_state=seed)
            start = time.perf_counter()
            est.fit(X)
            row.append((time.perf_counter() - start, est.inertia_, est.n_iter_))
        ours.append(row[0])
        theirs.append(row[1])
        print(
            f"{seed:4d} {row[0][0]:10.2f} {row[1][0]:10.2f} {row[0][1]:17.6e} {row[1][1]:16.6e} "
            f"{row[0][2]:7d} {row[1][2]:6d}"
        )
    t_ours = statistics.median(r[0] for r in ours)
    t_theirs = statistics.median(r[0] for r in theirs)
    i_ours = statistics.median(r[1] for r in ours)
    i_theirs = statistics.median(r[1] for r in theirs)
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
