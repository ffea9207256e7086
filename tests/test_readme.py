"""README's examples run as written (in order, in a scratch directory)."""

from __future__ import annotations

import pathlib
import re

import kmeansfw

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    text = README.read_text()
    tomls = re.findall(r"```toml\n(.*?)```", text, re.S)
    study = next(t for t in tomls if "n_clusters" in t)
    (tmp_path / "study.toml").write_text(study)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme_example"}
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    assert namespace["km"].n_clusters == 5
    assert namespace["result"].centroids.shape == (5, 2)
    assert kmeansfw.CATALOG.lookup("distance", "canberra").source == "module readme_example"


def test_readme_commands_match_ci():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert commands[1].strip() in ci
    *installs, main_job = commands[0].strip().split(" && ")
    for install in installs:  # the same packages, extras included (CI adds its dev extra)
        packages = install.replace("pip install", "").strip().replace('"', "")
        assert packages.replace("[test,plot]", "[test,plot,") in ci.replace('"', "")
    assert main_job == "kmeansfw demo"
