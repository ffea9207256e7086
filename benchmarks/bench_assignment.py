"""Whole fits with the exact assignment strategies, against scikit-learn's elkan and lloyd.

Every fit starts from the same centroids (random samples of the data) and runs to
convergence with the same ``tol`` (or ``--max-iter`` iterations); the script prints each
fit's time, iterations and inertia, whether its final labels equal those of kmeansfw's
``nearest``, and the ratio of scikit-learn ``elkan``'s time to each kmeansfw fit's time,
measured in the same run.

    python benchmarks/bench_assignment.py                      # 200k x 32, k=64
    python benchmarks/bench_assignment.py --n 1000000 --d 64 --k 256
    python benchmarks/bench_assignment.py --n 1000000 --d 64 --k 256 --no-sklearn-lloyd
    python benchmarks/bench_assignment.py --n 1000000 --d 64 --k 1024 --dtype float32 --memory
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from bench_lloyd import make_data, peak_memory

OURS = ("nearest", "hamerly", "yinyang", "auto")


def run(
    n: int,
    d: int,
    k: int,
    dtype: str = "float64",
    *,
    tol: float = 1e-4,
    max_iter: int = 300,
    assignments: tuple[str, ...] = OURS,
    sklearn_lloyd: bool = True,
) -> list[dict]:
    """Time whole fits from the same init; one dict per fit (name, seconds, n_iter,
    inertia, same_labels as kmeansfw's nearest, elkan_ratio = elkan time / this time)."""
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.exceptions import ConvergenceWarning

    import kmeansfw

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, init = make_data(n, d, k, dtype)
    common = {"init": init, "n_init": 1, "tol": tol, "max_iter": max_iter}
    kmeansfw.KMeans(k, **common).fit(X[: 4 * k])  # compile the kernels first
    runs = [
        (f"kmeansfw {a}", lambda a=a: kmeansfw.KMeans(k, assignment=a, **common))
        for a in assignments
    ]
    runs.append(("scikit-learn elkan", lambda: SkKMeans(k, algorithm="elkan", **common)))
    if sklearn_lloyd:
        runs.append(("scikit-learn lloyd", lambda: SkKMeans(k, algorithm="lloyd", **common)))
    fitted = {}
    for name, make in runs:
        est = make()
        start = time.perf_counter()
        est.fit(X)
        fitted[name] = (time.perf_counter() - start, est)
    reference = fitted.get("kmeansfw nearest", (None, None))[1]
    elkan = fitted["scikit-learn elkan"][0]
    return [
        {
            "fit": name,
            "seconds": seconds,
            "n_iter": est.n_iter_,
            "inertia": est.inertia_,
            "same_labels": None
            if reference is None
            else bool(np.array_equal(est.labels_, reference.labels_)),
            "elkan_ratio": elkan / seconds,
        }
        for name, (seconds, est) in fitted.items()
    ]


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
    parser.add_argument(
        "--memory", action="store_true", help="only peak memory of each assignment (3 iterations)"
    )
    args = parser.parse_args()
    if args.memory:
        print(f"{args.n} x {args.d}, k={args.k}, {args.dtype}: peak memory over the data")
        for assignment in args.only:
            m = peak_memory(args.n, args.d, args.k, args.dtype, assignment)
            print(f"kmeansfw {assignment:<10} +{m['extra_mb']:.0f} MB (data {m['data_mb']:.0f} MB)")
        return
    rows = run(
        args.n,
        args.d,
        args.k,
        args.dtype,
        tol=args.tol,
        max_iter=args.max_iter,
        assignments=tuple(args.only),
        sklearn_lloyd=not args.no_sklearn_lloyd,
    )
    print(f"{args.n} x {args.d}, k={args.k}, {args.dtype}, tol={args.tol}, same init")
    print(
        f"{'fit':<22} {'seconds':>8} {'n_iter':>6} {'inertia':>14} {'labels':>8} {'elkan/this':>10}"
    )
    for row in rows:
        same = "-" if row["same_labels"] is None else str(row["same_labels"])
        print(
            f"{row['fit']:<22} {row['seconds']:8.2f} {row['n_iter']:6d} {row['inertia']:14.6e} "
            f"{same:>8} {row['elkan_ratio']:10.2f}"
        )


if __name__ == "__main__":
    main()
