"""README's examples run as written (in order, in a scratch directory)."""

from __future__ import annotations

import pathlib
import re
import warnings

import numpy as np
import pytest

import kmeansfw

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_its_examples():
    assert len(_python_blocks()) >= 5


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_each_readme_python_example_runs_on_its_own(tmp_path, monkeypatch, index):
    """Each block runs alone, pasted into a fresh interpreter namespace in an empty folder
    (with the README's TOML study file, which the text says to save)."""
    text = README.read_text()
    tomls = re.findall(r"```toml\n(.*?)```", text, re.S)
    study = next(t for t in tomls if "n_clusters" in t)
    (tmp_path / "study.toml").write_text(study)
    monkeypatch.chdir(tmp_path)
    block = _python_blocks()[index]
    for optional in ("torch", "dask", "distributed"):  # extras: CI installs them all
        if re.search(rf"^\s*(import|from) {optional}\b", block, re.M):
            pytest.importorskip(optional)
    namespace: dict = {"__name__": "readme_example"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kmeansfw.PairingWarning)
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)  # noqa: S102
    if "kmeansfw.distance(\"canberra\"" in block:
        assert kmeansfw.CATALOG.lookup("distance", "canberra").source == "module readme_example"
    if "kmeansfw.KMeans(5, random_state=0)" in block:  # the Quick start's comments hold
        km, X = namespace["km"], namespace["X"]
        gaps = np.linalg.norm(X[:3, None, :] - km.cluster_centers_[None], axis=2)
        np.testing.assert_allclose(km.transform(X[:3]), gaps, rtol=1e-12)  # Euclidean
        assert (km.predict(X[:3]) == gaps.argmin(axis=1)).all()  # the nearest centroid
        squared = ((X - km.cluster_centers_[km.labels_]) ** 2).sum()
        assert km.inertia_ == pytest.approx(squared, rel=1e-12)  # squared distances
        assert km.score(X) == -km.inertia_
    if "from_config(\"study.toml\")" in block:
        assert namespace["km"].n_clusters == 5
        assert namespace["result"].centroids.shape == (5, 2)


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
