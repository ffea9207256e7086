"""
Strategies composed from a TOML file
====================================

A study's strategies written as data in ``examples/study.toml`` (Minkowski ``p = 1``,
whose natural update is the median: k-medians), loaded as a ``kmeansfw.Config`` and fitted
on the wine data.

Run: ``python examples/toml_config.py``.
"""

import sys
from pathlib import Path

from sklearn.datasets import load_wine
from sklearn.metrics import adjusted_rand_score

import kmeansfw

study = Path(sys.argv[0]).with_name("study.toml")  # next to this script
config = kmeansfw.Config.from_toml(study)
print("config:", config.to_dict())
X, y = load_wine(return_X_y=True)
km = kmeansfw.KMeans.from_config(study).fit(X)  # minkowski p=1 -> natural update: median
print(
    f"k-medians on wine: ARI {adjusted_rand_score(y, km.labels_):.3f}, "
    f"objective {km.inertia_:.1f}, {km.n_iter_} iterations"
)
