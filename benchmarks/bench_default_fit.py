"""Default fits end to end: kmeansfw's defaults against scikit-learn's, same data, same run.

Each library is called with nothing but ``n_clusters`` and ``random_state`` (so seeding,
restarts, tolerance and algorithm are each library's defaults), for ``--seeds`` seeds.
The script prints, per seed, both times and inertias, then the medians, the ratio of the
median times and of the median inertias, for each kind of data asked for (``--data``):

* ``blobs``: k Gaussian blobs, centres N(0, 10^2), noise N(0, 2^2) per feature
  (clusters that touch in a few features);
* ``classification``: scikit-learn's ``make_classification`` with k clusters of uneven
  sizes (class weights falling geometrically, 1 to about 1/20), each an anisotropic
  Gaussian on a hypercube's vertices in 16 informative features, plus 16 redundant
  (linear combinations) and the rest pure noise;
* ``uniform``: :func:`bench_lloyd.make_data` (centres uniform in [-10, 10], unit noise).

The issue's target: time ratio <= 0.25 with median inertia no worse, at 1M x 64, k=256,
on two kinds of data.

    python benchmarks/bench_default_fit.py                     # 1M x 64, k=256, 5 seeds
    python benchmarks/bench_default_fit.py --n 200000 --d 32 --k 64 --data blobs
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_lloyd import make_data, print_against, time_against

DATA_KINDS = ("blobs", "classification", "uniform")


def make_kind(kind: str, n: int, d: int, k: int, dtype: str, seed: int = 0) -> np.ndarray:
    """The data of one ``--data`` kind (see the module docstring), C-contiguous."""
    if kind == "uniform":
        return make_data(n, d, k, dtype, seed)[0]
    if kind == "blobs":
        rng = np.random.default_rng(seed)
        centres = rng.normal(0, 10, size=(k, d))
        X = np.empty((n, d), dtype=dtype)
        step = 65536
        for start in range(0, n, step):  # chunks: no n x d float64 temporaries
            stop = min(start + step, n)
            which = rng.integers(0, k, size=stop - start)
            X[start:stop] = centres[which] + rng.normal(0, 2, size=(stop - start, d))
        return X
    if kind == "classification":
        from sklearn.datasets import make_classification

        per_class = 4 if k % 4 == 0 else 1
        classes = k // per_class
        weights = 0.95 ** np.arange(classes)
        informative = min(d, 16)
        X, _ = make_classification(
            n,
            d,
            n_informative=informative,
            n_redundant=min(d - informative, 16),
            n_classes=classes,
            n_clusters_per_class=per_class,
            weights=weights / weights.sum(),
            class_sep=4.0,
            flip_y=0.0,
            random_state=seed,
        )
        return np.ascontiguousarray(X, dtype=dtype)
    raise ValueError(f"unknown data kind {kind!r}: expected one of {DATA_KINDS}")


def run(
    n: int, d: int, k: int, dtype: str = "float64", seeds: int = 5, data: str = "uniform"
) -> dict:
    """Default fits of both libraries for each seed (see :func:`bench_lloyd.time_against`)
    on the data of kind ``data``."""
    from sklearn.cluster import KMeans as SkKMeans

    import kmeansfw

    X = make_kind(data, n, d, k, dtype)
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
    parser.add_argument(
        "--data", nargs="+", default=["blobs", "classification"], choices=DATA_KINDS
    )
    args = parser.parse_args()
    for kind in args.data:
        result = run(args.n, args.d, args.k, args.dtype, args.seeds, kind)
        print(f"{args.n} x {args.d}, k={args.k}, {args.dtype}, {kind}, defaults of each library")
        print_against(result, " (target <= 0.25)", " (target <= 1)")


if __name__ == "__main__":
    main()
