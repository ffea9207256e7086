"""Which update minimizes each distance's objective?  Every distance x update pair, measured.

For each data kind (``blobs``, ``anisotropic``: blobs under a random linear map,
``uneven``: blobs of sizes 1200/500/200/80/20), every built-in distance and every update
runs from the same seeds (k-means++ with the distance's own cost, so every update of a
distance starts from the same centroids), and the distance's own objective (the weighted
sum of its cost: squared distances for ``euclidean``, distances for ``manhattan``, ...)
of the final clustering is recorded; the table shows the median over seeds divided by the
row's best (1.0000 = best update for that distance).  The summary gives, per distance, the
updates within ``TIE`` (0.05 %) of the row's best on each data kind (differences that small
are which local optimum a seed lands in, not the update) and the distance's declared
``natural_update``, which should be among the best on at least two of the three kinds.

Usage: python benchmarks/bench_pairings.py [--n 2000] [--seeds 3] [--markdown]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.datasets import make_blobs

from kmeansfw import CATALOG, KMeans
from kmeansfw.core.distance import describe

DISTANCES = {
    "euclidean": "euclidean",
    "sqeuclidean": "sqeuclidean",
    "manhattan": "manhattan",
    "chebyshev": "chebyshev",
    "minkowski p=1.5": {"name": "minkowski", "p": 1.5},
    "minkowski p=2": {"name": "minkowski", "p": 2},
    "minkowski p=3": {"name": "minkowski", "p": 3},
    "cosine": "cosine",
    "mahalanobis": "mahalanobis",
}
UPDATES = ["mean", "median", "medoid", "pam", "spherical", "trimmed-mean"]
K = 5
D = 8
#: Updates within this relative distance of a row's best count as tied for best.
TIE = 5e-4


def data_kinds(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    blobs, _ = make_blobs(n, D, centers=K, cluster_std=2.0, random_state=0)
    transform = rng.normal(size=(D, D))
    sizes = np.array([1200, 500, 200, 80, 20]) * n // 2000
    uneven, _ = make_blobs(sizes, D, cluster_std=2.0, random_state=1)
    # shifted away from the origin so that cosine's directions are defined everywhere
    return {
        "blobs": blobs + 20,
        "anisotropic": blobs @ transform + 20,
        "uneven": uneven + 20,
    }


def measure(X: np.ndarray, distance, update: str, seed: int) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(
            K,
            init="k-means++",
            distance=distance,
            update=update,
            convergence="centroids-unchanged" if update == "pam" else "tol",
            max_iter=100,
            random_state=seed,
        ).fit(X)
    return float(km.inertia_)


def natural(distance) -> str | None:
    return describe(CATALOG.create("distance", distance)[1]).natural_update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()

    kinds = data_kinds(args.n)
    best: dict[str, list[list[str]]] = {name: [] for name in DISTANCES}
    tables = {}
    for kind, X in kinds.items():
        rows = {}
        for name, distance in DISTANCES.items():
            values = np.array(
                [
                    np.median([measure(X, distance, u, s) for s in range(args.seeds)])
                    for u in UPDATES
                ]
            )
            rows[name] = values / values.min()
            best[name].append([u for u, v in zip(UPDATES, rows[name], strict=True) if v <= 1 + TIE])
        tables[kind] = rows

    sep = " | " if args.markdown else "  "
    for kind, rows in tables.items():
        print(
            f"\n{kind} (n={args.n}, d={D}, k={K}; objective / best of the row, median of "
            f"{args.seeds} seeds)"
        )
        header = ["distance", *UPDATES]
        print(sep.join(f"{h:>16s}" if i == 0 else f"{h:>12s}" for i, h in enumerate(header)))
        if args.markdown:
            print("|".join(["---"] * len(header)))
        for name, values in rows.items():
            cells = [f"{name:>16s}", *[f"{v:12.4f}" for v in values]]
            print(sep.join(cells))
    print(f"\nupdates within {TIE:.2%} of the best per data kind (blobs; anisotropic; uneven)")
    for name, distance in DISTANCES.items():
        declared = natural(distance)
        wins = sum(declared in tied for tied in best[name])
        flag = "" if wins >= 2 else "   <-- the declared update is not among the best"
        kinds_text = "; ".join("/".join(tied) for tied in best[name])
        print(f"{name:>16s}: {kinds_text:50s} natural_update={declared} ({wins}/3){flag}")


if __name__ == "__main__":
    main()
