"""The command line: demo, fit, compare, plugins, config; errors are one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from kmeansfw import KMeans
from kmeansfw.core.errors import (
    CheckpointError,
    ConfigError,
    StrategyError,
    UnknownStrategyError,
)
from kmeansfw.workflow.cli import main
from kmeansfw.workflow.experiment import DataError, load_dataset


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


@pytest.mark.parametrize("features", [1, 2, 3])
def test_fit_of_one_sample_writes_everything_and_exits_0(tmp_path, run, features):
    # one sample has no principal components: the plot draws its first two features
    data = tmp_path / "one.csv"
    data.write_text(",".join(str(v) for v in [0.5, 2.0, -1.0][:features]) + "\n")
    result = run("fit", data, "-k", 1, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_samples"] == 1 and report["objective"] == 0.0
    assert (tmp_path / "out" / "clusters.png").stat().st_size > 1000
    assert "clusters.png" in result.output


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
        # summary: dataset, config, k, cells, objective mean, std, best, ...
        summary = next(s for s in (line.split() for line in lines) if s[:2] == ["iris", name])
        assert summary[2:4] == ["3", "10"]
        np.testing.assert_allclose(float(summary[4]), np.mean(direct), rtol=1e-9)
        np.testing.assert_allclose(float(summary[6]), np.min(direct), rtol=1e-9)


@pytest.mark.parametrize("args", [["--help"], ["config", "--help"], ["plugins", "--help"]])
def test_help_imports_neither_scipy_nor_scikit_learn_nor_the_kernels(args):
    # what keeps `kmeansfw --help` quick: none of the heavy imports happen before a fit,
    # and no plugin distribution is loaded
    script = (
        "import sys\n"
        "heavy = ('scipy', 'sklearn', 'numba', 'kmeansfw.kernels.euclidean', 'matplotlib',\n"
        "         'kmeansfw_geo')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
        "from kmeansfw.workflow.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this kmeansfw
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) >= 2, done.stdout
    if lines[0] != "[]":  # e.g. a sitecustomize importing SciPy: nothing to measure
        pytest.skip(f"the interpreter imports {lines[0]} at start-up")
    assert lines[-1] == "[]"


def test_plugins_lists_builtins_and_distributions(run):
    result = run("plugins")
    assert result.exit_code == 0
    assert "euclidean" in result.output and "built-in" in result.output
    assert "haversine" in result.output and "kmeansfw-geo" in result.output


def test_plugins_lists_a_failed_plugin_below_the_table_without_widening_it(monkeypatch, run):
    from kmeansfw.core.catalog import CATALOG

    width = max(len(line) for line in run("plugins").output.splitlines())
    reason = "fake-dist 9.9: ImportError: " + "a very long reason " * 12
    monkeypatch.setitem(CATALOG.failures, "broken-plugin", reason)
    output = run("plugins").output
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= max(width, 88)
    assert any(line.startswith("-") and "broken-plugin" in line for line in lines)
    assert "plugin 'broken-plugin' failed: fake-dist 9.9: ImportError" in output
    assert " ".join(output.split()).count("a very long reason") == 12


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


def test_config_writes_any_text_as_toml_it_reads_back(tmp_path, run):
    # JSON's escapes wrote a character past U+FFFF as a surrogate pair ("\\ud83d..."),
    # which TOML refuses: the printed config could not be read back
    import tomllib

    path = tmp_path / "c.toml"
    folder = "ck-\U0001f600-\u00e9-\x7f-\"q\"-\\"
    path.write_bytes(f"checkpoint = {_toml_string(folder)}\n".encode())
    result = run("config", path)
    assert result.exit_code == 0, result.output
    assert result.output.isascii()
    assert tomllib.loads(result.output)["checkpoint"] == folder
    again = tmp_path / "again.toml"
    again.write_text(result.output)
    assert run("config", again).output == result.output


def test_config_refuses_text_toml_cannot_write():
    from kmeansfw.workflow.cli import _toml_value

    with pytest.raises(ConfigError, match="lone surrogate"):
        _toml_value("ck-\udcff")  # a path's undecodable byte, as os.fsdecode gives it


def _toml_string(text):
    escaped = "".join(f"\\U{ord(c):08x}" if not (0x20 <= ord(c) < 0x7F) or c in '"\\' else c
                      for c in text)
    return f'"{escaped}"'


def test_an_unbounded_budget_is_written_as_toml_and_as_strict_json(tmp_path, run, blobs):
    # inf is a valid budget: `config` prints it as TOML's inf (it once refused to), and
    # the report's copy of the config is strict JSON (a bare Infinity is not)
    path = tmp_path / "c.toml"
    path.write_text("n_clusters = 3\nrandom_state = 0\nmemory_budget_mb = inf\n")
    result = run("config", path)
    assert result.exit_code == 0, result.output
    assert "memory_budget_mb = inf\n" in result.output
    again = tmp_path / "again.toml"
    again.write_text(result.output)
    assert run("config", again).output == result.output
    data = tmp_path / "data.csv"
    np.savetxt(data, blobs[0], delimiter=",")
    assert run("fit", data, "--config", path, "--out", tmp_path / "out").exit_code == 0

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    text = (tmp_path / "out" / "report.json").read_text()
    assert json.loads(text, parse_constant=refuse)["config"]["memory_budget_mb"] == "inf"


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


# --------------------------------------------------------------- issue 11, items 7, 8, 10


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_compare_prints_one_row_per_data_set_and_config(tmp_path, run):
    (tmp_path / "plusplus.toml").write_text("n_clusters = 3\n")
    result = run(
        "compare", tmp_path / "plusplus.toml", "--dataset", "iris", "--dataset", "wine",
        "--seeds", 2, "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["dataset", "config", "n_clusters", "cells"]
    rows = [line.split() for line in lines[2:]]
    assert [r[:4] for r in rows] == [["iris", "plusplus", "3", "2"], ["wine", "plusplus", "3", "2"]]
    for row, name in zip(rows, ["iris", "wine"], strict=True):
        X = load_dataset(name)[0]
        direct = [KMeans(3, random_state=s).fit(X).inertia_ for s in range(2)]
        np.testing.assert_allclose(float(row[4]), np.mean(direct), rtol=1e-9)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["compare", "{cfg}", "--dataset", "iris", "--seeds", "0"], "'--seeds'"),
        (["compare", "{cfg}", "--dataset", "iris", "--seeds", "-3"], "'--seeds'"),
        (["compare", "{cfg}", "--dataset", "irs"], "'--dataset'"),
        (["compare", "{cfg}", "--dataset", "iris", "--jobs", "0"], "'--jobs'"),
        (["compare", "{cfg}", "--dataset", "iris", "-k", "0"], "'--n-clusters'"),
        (["compare", "{tmp}/missing.toml", "--dataset", "iris"], "'CONFIGS...'"),
        (["fit", "iris", "-k", "0"], "'--n-clusters'"),
        (["fit", "iris", "-k", "151"], "'--n-clusters'"),
        (["fit", "iris", "-k", "three"], "'--n-clusters'"),
        (["fit", "iris", "--seed", "-1"], "'--seed'"),
        (["fit", "iris", "--seed", str(2**32)], "'--seed'"),
        (["fit", "iris", "--config", "{tmp}/missing.toml"], "'--config'"),
        (["fit", "iris", "--out", "{cfg}"], "'--out'"),
        (["config", "{tmp}/missing.toml"], "'PATH'"),
        (["demo", "--samples", "2", "--centers", "3"], "'--samples'"),
        (["demo", "--centers", "0"], "'--centers'"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(tmp_path, args, option):
    cfg = tmp_path / "c.toml"
    cfg.write_text("n_clusters = 3\n")
    args = [a.format(cfg=cfg, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and "Invalid value" in result.stderr
    assert "Traceback" not in result.output


def test_compare_with_zero_seeds_prints_no_empty_table(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("n_clusters = 3\n")
    result = CliRunner().invoke(main, ["compare", str(cfg), "--dataset", "iris", "--seeds", "0"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "'--seeds': 0 is not in the range 1<=x<=1000000" in result.stderr


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_overflowing_data_is_named_as_data_exit_2(tmp_path, suffix):
    X = np.random.default_rng(0).normal(size=(40, 3)) * 1e200  # squares overflow to inf
    path = tmp_path / f"big{suffix}"
    if suffix == ".npy":
        np.save(path, X)
    else:
        np.savetxt(path, X, delimiter=",")
    out = CliRunner().invoke(main, ["fit", str(path), "-k", "2", "--seed", "0", "-q"])
    assert out.exit_code == 2, out.output
    line = _one_line(out.stderr)
    assert f"big{suffix}: the data's values" in line and "overflow to infinity" in line
    assert "strategy" not in line


def test_compare_refuses_an_out_file_without_a_folder_and_repeated_data_sets(tmp_path):
    config = tmp_path / "pp.toml"
    config.write_text("n_clusters = 3\n")
    missing = tmp_path / "no" / "cells.csv"
    args = ["compare", str(config), "--dataset", "iris", "--out", str(missing)]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 2 and "no folder" in out.stderr and "--out" in out.stderr
    again = CliRunner().invoke(
        main, ["compare", str(config), "--dataset", "iris", "--dataset", "iris", "-q"]
    )
    assert again.exit_code == 2 and "datasets repeat 'iris'" in again.stderr


def test_data_spread_too_little_is_named_as_data_exit_2(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 3)) * 1e-200  # squares underflow to 0
    path = tmp_path / "tiny.npy"
    np.save(path, X)
    out = CliRunner().invoke(main, ["fit", str(path), "-k", "2", "--seed", "0", "-q"])
    assert out.exit_code == 2, out.output
    line = _one_line(out.stderr)
    assert "tiny.npy: the data spreads only about" in line and "smallest normal" in line
    assert "strategy" not in line


def test_infinite_values_in_a_file_are_named_with_their_cell(tmp_path):
    path = tmp_path / "inf.csv"
    path.write_text("1,2\n3,1e400\n")
    out = CliRunner().invoke(main, ["fit", str(path), "-k", "1", "-q"])
    assert out.exit_code == 2
    line = _one_line(out.stderr)
    assert "inf.csv: the data contains NaN or infinity" in line and "row 2, column 2" in line


def test_fit_without_seed_draws_records_and_prints_one(tmp_path, run):
    first = run("fit", "iris", "--out", tmp_path / "a")
    assert first.exit_code == 0, first.output
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    seed = report["random_state"]
    assert isinstance(seed, int) and 0 <= seed < 2**32
    assert report["config"]["random_state"] == seed and report["random_state_drawn"] is True
    assert f"--seed {seed}" in first.output
    again = run("fit", "iris", "--seed", seed, "--out", tmp_path / "b", "-q")
    assert again.exit_code == 0 and again.output == ""
    repeated = json.loads((tmp_path / "b" / "report.json").read_text())
    assert repeated["random_state"] == seed and repeated["random_state_drawn"] is False
    assert repeated["objective"] == report["objective"]
    np.testing.assert_array_equal(
        np.loadtxt(tmp_path / "a" / "labels.csv", skiprows=1),
        np.loadtxt(tmp_path / "b" / "labels.csv", skiprows=1),
    )
    assert run("fit", "iris", "--out", tmp_path / "c", "-q").exit_code == 0
    assert json.loads((tmp_path / "c" / "report.json").read_text())["random_state"] != seed


def test_config_seed_is_kept_and_not_redrawn(tmp_path, run):
    config = tmp_path / "c.toml"
    config.write_text("n_clusters = 3\nrandom_state = 7\n")
    result = run("fit", "iris", "--config", config, "--out", tmp_path / "a")
    assert result.exit_code == 0 and "drawn" not in result.output
    assert json.loads((tmp_path / "a" / "report.json").read_text())["random_state"] == 7


@pytest.mark.parametrize(
    ("kind", "message", "code"),
    [
        (CheckpointError, "checkpoint ck: state.npz is truncated", 2),
        (ConfigError, "config key 'n_init': bad", 2),
        (UnknownStrategyError, "unknown distance strategy 'nope'", 2),
        (DataError, "x.csv: bad data", 2),
        (ValueError, "Input X contains NaN.", 2),
        (StrategyError, "distance strategy 'mine' raised", 1),
        (KeyError, "next_run", 1),
        (OSError, "disk full", 1),
    ],
)
def test_each_error_is_one_line_with_its_exit_code(monkeypatch, tmp_path, kind, message, code):
    from kmeansfw.workflow import cli

    def fit_checked(km, X, name):
        raise kind(message)

    monkeypatch.setattr(cli, "fit_checked", fit_checked)
    monkeypatch.delenv("KMEANSFW_TRACEBACK", raising=False)
    result = CliRunner().invoke(main, ["fit", "iris", "--seed", "0", "--out", str(tmp_path)])
    assert result.exit_code == code
    assert isinstance(result.exception, SystemExit)  # handled, not escaped
    line = _one_line(result.stderr)
    assert line.startswith("kmeansfw: error: ") and message in line


def test_corrupted_checkpoint_is_one_line_exit_2(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'n_clusters = 3\nrandom_state = 0\ncheckpoint = "{tmp_path / "ck"}"\n')
    args = [sys.executable, "-m", "kmeansfw", "fit", "iris", "--config", str(config), "-q"]
    assert subprocess.run(args, capture_output=True, cwd=tmp_path).returncode == 0
    state = tmp_path / "ck" / "state.npz"
    state.write_bytes(state.read_bytes()[:100])  # truncated
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "ck" in _one_line(out.stderr)


def _capture_figures(monkeypatch):
    from kmeansfw.workflow import plots

    figures = []
    original = plots.plot_comparison

    def capture(*args, **kwargs):
        figures.append(original(*args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(plots, "plot_comparison", capture)
    return figures


def test_clusters_png_says_what_it_shows(tmp_path, run, monkeypatch):
    figures = _capture_figures(monkeypatch)
    result = run("fit", "wine", "-k", 3, "--seed", 0, "--out", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    (fig,) = figures
    title = fig.get_suptitle()
    assert "wine" in title and "k = 3" in title and "PCA projection of the 13 features" in title
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("principal component 1")
    assert ax.get_ylabel().startswith("principal component 2")
    assert (tmp_path / "clusters.png").stat().st_size > 1000


def test_demo_png_says_what_it_shows(tmp_path, run, monkeypatch):
    figures = _capture_figures(monkeypatch)
    result = run("demo", "--samples", 300, "--centers", 4, "--out", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    (fig,) = figures
    assert "make_blobs" in fig.get_suptitle() and "k = 4" in fig.get_suptitle()
    assert [ax.get_title() for ax in fig.axes] == ["kmeansfw", "true clusters", "scikit-learn"]
    assert all(ax.get_xlabel() == "feature 1" for ax in fig.axes)


def test_compare_names_the_config_file_at_fault(tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("n_clusters = 3\n")
    bad.write_text('n_clusters = "x"\n')
    result = CliRunner().invoke(main, ["compare", str(good), str(bad), "--dataset", "iris"])
    assert result.exit_code == 2
    assert f"{bad}: config key 'n_clusters' must be an integer" in result.output


def test_fit_reads_a_header_it_is_told_of(tmp_path, run):
    data = tmp_path / "years.csv"
    data.write_text("temp,2019\n" + "".join(f"{i % 7},{i % 5}\n" for i in range(40)))
    refused = run("fit", data, "-k", 2, "--seed", 0, "--out", tmp_path / "a")
    assert refused.exit_code == 2 and "--header" in refused.output
    result = run("fit", data, "-k", 2, "--seed", 0, "--out", tmp_path / "b", "--header")
    assert result.exit_code == 0, result.output
    labels = np.loadtxt(tmp_path / "b" / "labels.csv", skiprows=1)
    assert labels.shape[0] == 40  # every data row, the header none
    config = tmp_path / "two.toml"
    config.write_text("n_clusters = 2\nn_init = 1\n")
    refused = run("compare", config, "--dataset", data, "--seeds", 1)
    assert refused.exit_code == 2 and "--header to kmeansfw fit or compare" in refused.output
    result = run("compare", config, "--dataset", data, "--seeds", 1, "--header", "--cells")
    assert result.exit_code == 0, result.output
    fitted = KMeans(2, n_init=1, random_state=0).fit(np.loadtxt(data, delimiter=",", skiprows=1))
    assert f"{fitted.inertia_:.10g}" in result.output
