"""
The article reproduced
======================

``make_blobs`` (100 samples, 3 blobs), random initialization and the article's stopping
rule (no label changes), then a plot of the clusters found beside the true ones.

Run: ``python examples/article.py [OUT_DIR]`` (writes ``article.png``).
"""

import sys
from pathlib import Path

from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw.workflow.plots import plot_comparison

out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples-out")
out.mkdir(parents=True, exist_ok=True)

X, y = make_blobs(random_state=42)  # the article: 100 samples, 3 blobs
km = kmeansfw.KMeans(3, init="random", convergence="unchanged", random_state=0).fit(X)
print(f"k-means: {km.n_iter_} iterations, inertia {km.inertia_:.2f}")
plot_comparison(
    X,
    {"K-Means Clustering": km.labels_, "Actual Clustering": y},
    centroids={"K-Means Clustering": km.cluster_centers_},
    data="make_blobs(random_state=42)",
    k=3,
    path=out / "article.png",
)
print(f"plot: {out / 'article.png'}")
