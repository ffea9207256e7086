"""The main job: ``python -m kmeansfw`` on built-in data."""

from __future__ import annotations

import re
import subprocess
import sys

from kmeansfw.__main__ import main


def test_main_job_prints_summary(capsys):
    assert main(["--samples", "3000", "--centers", "4", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"k\s+4", out)
    iterations = int(re.search(r"iterations\s+(\d+)", out).group(1))
    assert 1 <= iterations <= 300
    assert float(re.search(r"ARI vs truth (\S+)", out).group(1)) > 0.9
    assert "same labels: True" in out


def test_module_runs_with_defaults():
    out = subprocess.run(
        [sys.executable, "-m", "kmeansfw"], check=True, capture_output=True, text=True
    ).stdout
    assert "inertia" in out and "ARI vs truth" in out
