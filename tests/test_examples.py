"""Every research script in examples/ runs as written."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
EXPECTED = {
    "article.py": ("iterations, inertia", ["article.png"]),
    "custom_distance.py": ("canberra + medoid: ARI 1.000", []),
    "toml_config.py": ("k-medians on wine", []),
    "init_study.py": ("farthest-first", ["init_study.png", "init_study_iris.csv"]),
    "grid_search.py": ("best:", []),
}


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script, tmp_path):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    text, files = EXPECTED[script]
    assert text in out.stdout
    for name in files:
        assert (tmp_path / "out" / name).stat().st_size > 0


@pytest.mark.parametrize(
    ("script", "function", "titles"),
    [
        ("article.py", "plot_comparison", ["K-Means Clustering", "Actual Clustering"]),
        (
            "init_study.py",
            "plot_experiment",
            ["iris (k = 3)", "wine (k = 3)", "breast_cancer (k = 2)", "digits (k = 10)"],
        ),
    ],
)
def test_example_figures_say_what_they_show(script, function, titles, tmp_path, monkeypatch):
    """Each figure has a title naming its data (and k), and labelled axes on every panel."""
    import runpy

    from kmeansfw.workflow import experiment, plots

    figures = []
    draw = getattr(plots, function)
    monkeypatch.setattr(plots, function, lambda *a, **kw: figures.append(draw(*a, **kw)))
    run = experiment.run_experiment

    def quick(configs, datasets, seeds=range(5), **kwargs):  # 2 seeds, in this process
        return run(configs, datasets, seeds=range(2), **{**kwargs, "n_jobs": 1})

    monkeypatch.setattr(experiment, "run_experiment", quick)
    monkeypatch.setattr(sys, "argv", [script, str(tmp_path / "out")])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    (fig,) = figures
    assert fig.get_suptitle()
    assert [ax.get_title() for ax in fig.axes] == titles
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    if script == "article.py":
        assert "make_blobs" in fig.get_suptitle() and "k = 3" in fig.get_suptitle()
