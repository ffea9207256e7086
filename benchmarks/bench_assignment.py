"""Whole fits with the exact assignment strategies, against scikit-learn's elkan and lloyd.

Every fit starts from the same centroids (random samples of the data) and runs to
convergence with the same ``tol`` (or ``--max-iter`` iterations); the script prints each
fit's time, iterations and inertia, whether its final labels equal those of kmeansfw's
``nearest``, and the ratio of scikit-learn ``elkan``'s time to each kmeansfw fit's time,
measured in the same run.

    python benchmarks/bench_assignment.py                      # 200k x 32, k=64
    python benchmarks/bench_assignment.py --n 1000000 --d 64 --k 256
    python benchmarks/bench_assignment.py --n 1000000 --d 64 --k 256 --no-sklearn-lloyd
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from bench_lloyd import make_data

OURS = ("nearest", "hamerly", "yinyang", "auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--no-sklearn-lloyd", action="store_true", help="skip the slowest fit")
    parser.add_argument("--only", nargs="*", default=OURS, help="kmeansfw assignments to run")
    args = parser.parse_args()

    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.exceptions import ConvergenceWarning

    import kmeansfw

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, init = make_data(args.n, args.d, args.k, args.dtype)
    common = {"init": init, "n_init": 1, "tol": args.tol, "max_iter": args.max_iter}
    kmeansfw.KMeans(args.k, **common).fit(X[: 4 * args.k])  # compile the kernels first

    print(f"{args.n} x {args.d}, k={args.k}, {args.dtype}, tol={args.tol}, same init")
    print(
        f"{'fit':<22} {'seconds':>8} {'n_iter':>6} {'inertia':>14} {'labels':>8} {'elkan/this':>10}"
    )
    results = {}
    runs = [
        (f"kmeansfw {a}", lambda a=a: kmeansfw.KMeans(args.k, assignment=a, **common))
        for a in args.only
    ]
    runs.append(("scikit-learn elkan", lambda: SkKMeans(args.k, algorithm="elkan", **common)))
    if not args.no_sklearn_lloyd:
        runs.append(("scikit-learn lloyd", lambda: SkKMeans(args.k, algorithm="lloyd", **common)))
    for name, make in runs:
        est = make()
        start = time.perf_counter()
        est.fit(X)
        results[name] = (time.perf_counter() - start, est)
    reference = results.get("kmeansfw nearest", (None, None))[1]
    elkan = results["scikit-learn elkan"][0]
    for name, (seconds, est) in results.items():
        same = "-" if reference is None else str(np.array_equal(est.labels_, reference.labels_))
        print(
            f"{name:<22} {seconds:8.2f} {est.n_iter_:6d} {est.inertia_:14.6e} {same:>8} "
            f"{elkan / seconds:10.2f}"
        )


if __name__ == "__main__":
    main()
