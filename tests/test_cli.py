"""The command line: demo, fit, compare, plugins, config; errors are one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from kmeansfw import KMeans
from kmeansfw.workflow.cli import main


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_demo_without_arguments_writes_the_plot(tmp_path, monkeypatch, run):
    monkeypatch.chdir(tmp_path)
    result = run("demo")
    assert result.exit_code == 0, result.output
    assert "ARI vs truth" in result.output and "same labels: True" in result.output
    png = tmp_path / "kmeansfw-demo" / "demo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_module_entry_point_runs_the_demo(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "kmeansfw", "demo", "--samples", "500", "--out", tmp_path, "-q"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert (tmp_path / "demo.png").exists()


def test_fit_csv_writes_labels_centroids_report_plot(tmp_path, run, blobs):
    X, _ = blobs
    data = tmp_path / "data.csv"
    np.savetxt(data, X, delimiter=",", header="a,b,c,d", comments="")
    config = tmp_path / "c.toml"
    config.write_text('n_clusters = 3\nrandom_state = 0\ndistance = "manhattan"\n')
    result = run("fit", data, "--config", config, "-k", 5, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    labels = np.loadtxt(out / "labels.csv", skiprows=1)
    report = json.loads((out / "report.json").read_text())
    expected = KMeans(5, random_state=0, distance="manhattan").fit(X)
    np.testing.assert_array_equal(labels, expected.labels_)
    np.testing.assert_allclose(
        np.loadtxt(out / "centroids.csv", delimiter=","), expected.cluster_centers_
    )
    assert report["n_clusters"] == 5 and report["objective"] == pytest.approx(expected.inertia_)
    assert (out / "clusters.png").stat().st_size > 1000


def test_fit_npy_and_dataset_name(tmp_path, run, blobs):
    np.save(tmp_path / "x.npy", blobs[0])
    assert run("fit", tmp_path / "x.npy", "-k", 3, "--out", tmp_path / "a", "-q").exit_code == 0
    result = run("fit", "iris", "-k", 3, "--out", tmp_path / "b", "--seed", 1)
    assert result.exit_code == 0
    assert "ari" in json.loads((tmp_path / "b" / "report.json").read_text())


def test_compare_objectives_equal_a_direct_loop(tmp_path, run):
    (tmp_path / "plusplus.toml").write_text('n_clusters = 3\ninit = "k-means++"\n')
    (tmp_path / "random.toml").write_text('n_clusters = 3\ninit = "random"\nn_init = 1\n')
    result = run(
        "compare",
        tmp_path / "plusplus.toml",
        tmp_path / "random.toml",
        "--dataset",
        "iris",
        "--seeds",
        10,
        "--cells",
    )
    assert result.exit_code == 0, result.output
    from sklearn.datasets import load_iris

    X = load_iris().data
    lines = result.output.splitlines()
    for name, init, n_init in (("plusplus", "k-means++", "auto"), ("random", "random", 1)):
        direct = [
            KMeans(3, init=init, n_init=n_init, random_state=s).fit(X).inertia_ for s in range(10)
        ]
        cells = [line.split() for line in lines if line.startswith(name + " ")]
        printed = [float(c[3]) for c in cells if len(c) > 4 and c[1] == "iris"]
        np.testing.assert_allclose(printed, direct, rtol=1e-9)
        summary = next(c for c in cells if len(c) > 2 and c[1] == "10")
        np.testing.assert_allclose(float(summary[2]), np.mean(direct), rtol=1e-9)
        np.testing.assert_allclose(float(summary[4]), np.min(direct), rtol=1e-9)


def test_plugins_lists_builtins_and_distributions(run):
    result = run("plugins")
    assert result.exit_code == 0
    assert "euclidean" in result.output and "built-in" in result.output
    assert "haversine" in result.output and "kmeansfw-geo" in result.output


def test_config_prints_normalized_toml(tmp_path, run):
    path = tmp_path / "c.toml"
    path.write_text('n_clusters = 4\n[distance]\nname = "minkowski"\np = 3\n')
    result = run("config", path)
    assert result.exit_code == 0, result.output
    assert "n_clusters = 4\n" in result.output
    assert '[distance]\nname = "minkowski"\np = 3\n' in result.output
    again = tmp_path / "again.toml"
    again.write_text(result.output)
    assert run("config", again).output == result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("n_clusters = 3\ncolour = 1\n", "unknown config key(s) 'colour'"),
        ('distance = "nope"\n', "unknown distance strategy 'nope'"),
        ('n_clusters = "three"\n', "'n_clusters' must be an integer"),
        ("n_clusters = \n", "invalid TOML"),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    for args in (["config", path], ["fit", "iris", "--config", path, "-q"]):
        out = subprocess.run(
            [sys.executable, "-m", "kmeansfw", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert out.returncode == 2
        assert message in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,2\n3,4,5\n", "ragged rows: row 2 has 3 values"),
        ("1,2\n3,x\n", "non-numeric value 'x' in row 2, column 2"),
        ("", "the file is empty"),
        (None, "no such data file or data set"),
        ("1,nan\n2,3\n", "NaN"),
    ],
)
def test_bad_data_file_is_one_line_exit_2(tmp_path, content, message):
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    out = subprocess.run(
        [sys.executable, "-m", "kmeansfw", "fit", str(path), "-k", "1", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_strategy_failure_exits_1(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'n_clusters = 3\nempty = "raise"\ninit = [[100.0, 100.0], [0.0, 0.0], [1.0, 1.0]]\n'
    )
    data = tmp_path / "x.csv"
    np.savetxt(data, np.random.default_rng(0).normal(size=(50, 2)), delimiter=",")
    out = subprocess.run(
        [sys.executable, "-m", "kmeansfw", "fit", str(data), "--config", str(path), "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "empty strategy 'raise'" in out.stderr
