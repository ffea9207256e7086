"""
GridSearchCV over distance / update pairs
=========================================

``KMeans`` is a scikit-learn estimator, so ``GridSearchCV`` searches its strategies like
any other parameter: here every distance / update pair, scored by agreement with the true
labels (adjusted Rand index).

Run: ``python examples/grid_search.py``.
"""

import warnings

from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV

import kmeansfw

X, y = make_blobs(900, centers=3, n_features=4, cluster_std=2.0, random_state=7)
grid = {
    "distance": ["euclidean", "manhattan", "cosine"],
    "update": [None, "mean", "median", "trimmed-mean"],  # None: the distance's natural update
}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", kmeansfw.PairingWarning)  # mismatched pairs are the point
    search = GridSearchCV(
        kmeansfw.KMeans(3, random_state=0), grid, scoring="adjusted_rand_score", cv=3
    ).fit(X, y)
for params, score in zip(
    search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
):
    print(f"  {params['distance']:<10} {str(params['update']):<13} ARI {score:.3f}")
print("best:", search.best_params_, f"ARI {search.best_score_:.3f}")
