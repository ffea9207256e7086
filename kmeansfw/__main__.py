"""The main job: the article's scenario on built-in data (``python -m kmeansfw``).

make_blobs, a k-means fit with the default strategies, and a short summary: k,
iterations, inertia, agreement with the true labels, and scikit-learn's Lloyd run from
the same initial centroids (captured by a small observer plugin) for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from kmeansfw import KMeans, __version__, hookimpl


class InitialCentroids:
    """An observer that keeps the centroids each run starts from."""

    def __init__(self) -> None:
        self.centroids: list[np.ndarray] = []

    @hookimpl
    def kmeansfw_fit_start(self, state) -> None:
        self.centroids.append(state.centroids.copy())


def main(argv: list[str] | None = None) -> int:
    """Run the demo and print its summary; returns the exit code."""
    parser = argparse.ArgumentParser(prog="kmeansfw", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="samples (default 10000)")
    parser.add_argument("--centers", type=int, default=3, help="true clusters = k (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--version", action="version", version=f"kmeansfw {__version__}")
    args = parser.parse_args(argv)

    X, y = make_blobs(n_samples=args.samples, centers=args.centers, random_state=args.seed)
    start = time.perf_counter()
    seeds = InitialCentroids()
    km = KMeans(args.centers, random_state=args.seed, observers=[seeds]).fit(X)
    seconds = time.perf_counter() - start
    sk = SkKMeans(args.centers, init=seeds.centroids[0], n_init=1, algorithm="lloyd").fit(X)

    print(f"kmeansfw {__version__}: make_blobs n={X.shape[0]} d={X.shape[1]}")
    print(f"  k            {km.n_clusters}")
    print(f"  iterations   {km.n_iter_}")
    print(f"  inertia      {km.inertia_:.6g}")
    print(f"  ARI vs truth {adjusted_rand_score(y, km.labels_):.4f}")
    print(f"  fit seconds  {seconds:.4f}")
    same = np.array_equal(sk.labels_, km.labels_)
    print(
        f"  scikit-learn from the same initial centroids: inertia {sk.inertia_:.6g}, "
        f"iterations {sk.n_iter_}, same labels: {same}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
