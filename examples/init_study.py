"""
Initialization strategies over 20 seeds
=======================================

Four initializations (k-means++, random, farthest-first, random partition), 20 seeds
each with ``n_init=1``, on scikit-learn's bundled data sets, through the experiment runner;
a box plot of the objective per data set.

Run: ``python examples/init_study.py [OUT_DIR]`` (writes ``init_study_<data set>.csv`` and
``init_study.png``).
"""

import sys
from pathlib import Path

from kmeansfw.workflow.experiment import run_experiment
from kmeansfw.workflow.plots import plot_experiment

out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples-out")
out.mkdir(parents=True, exist_ok=True)
configs = {
    name: {"init": name, "n_init": 1}
    for name in ("k-means++", "random", "farthest-first", "random-partition")
}
datasets = {"iris": 3, "wine": 3, "breast_cancer": 2, "digits": 10}
rows = []
for dataset, k in datasets.items():
    result = run_experiment(
        configs,
        [dataset],
        seeds=range(20),
        n_clusters=k,
        out=out / f"init_study_{dataset}.csv",
        n_jobs=-1,
    )
    rows += result.rows
    print(f"\n{dataset} (k={k}): mean objective / best / mean ARI over 20 seeds")
    for s in result.summary():
        print(
            f"  {s['config']:<17} {s['objective_mean']:>14.6g} {s['objective_best']:>14.6g}"
            f" {s['ari_mean']:>8.3f}"
        )
plot_experiment(
    rows,
    title="k-means objective of each initialization, 20 seeds, n_init=1 (lower is better)",
    path=out / "init_study.png",
)
print(f"\nplot: {out / 'init_study.png'}")
