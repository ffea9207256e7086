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
