"""Research workflow: experiment runner, observers, plots."""

from __future__ import annotations

import csv
import io
import logging
import os
import warnings

import numpy as np
import pytest

import kmeansfw
from kmeansfw import KMeans
from kmeansfw.strategies.observers import ProgressBar
from kmeansfw.workflow.experiment import DataError, load_dataset, load_file, run_experiment

CONFIGS = {"random": {"init": "random", "n_init": 1}, "plusplus": {}}


def test_experiment_table_summary_and_direct_loop():
    result = run_experiment(CONFIGS, ["iris", "blobs"], seeds=range(3), n_clusters=3)
    assert [(r["config"], r["dataset"], r["seed"]) for r in result.rows][:4] == [
        ("random", "iris", 0),
        ("random", "iris", 1),
        ("random", "iris", 2),
        ("random", "blobs", 0),
    ]
    X, y = load_dataset("iris")
    direct = KMeans(3, init="random", n_init=1, random_state=1).fit(X)
    row = result.rows[1]
    assert row["objective"] == pytest.approx(direct.inertia_, rel=1e-12)
    assert 0 < row["ari"] <= 1 and 0 < row["nmi"] <= 1 and -1 <= row["silhouette"] <= 1
    summary = {(s["dataset"], s["config"]): s for s in result.summary()}
    assert summary["blobs", "plusplus"]["cells"] == 3
    objectives = [
        r["objective"] for r in result.rows if r["config"] == "plusplus" and r["dataset"] == "blobs"
    ]
    assert summary["blobs", "plusplus"]["objective_best"] == pytest.approx(min(objectives))
    assert summary["blobs", "plusplus"]["objective_std"] == pytest.approx(np.std(objectives))


def test_worker_processes_get_the_strategies_this_process_registered():
    # a worker process starts from the installed catalog: a strategy registered by the
    # running program was unknown there, and a built-in it replaced ran the built-in
    from kmeansfw.core.catalog import BUILTIN, CATALOG

    def scaled(X, centroids):
        return 100.0 * np.sqrt(((X[:, None, :] - centroids[None]) ** 2).sum(axis=2))

    original = CATALOG.lookup("distance", "manhattan")
    kmeansfw.distance("exp-scaled")(scaled)
    kmeansfw.distance("manhattan", replace=True)(scaled)
    try:
        configs = {
            "new": {"distance": "exp-scaled", "update": "mean", "n_clusters": 3},
            "replaced": {"distance": "manhattan", "update": "mean", "n_clusters": 3},
        }
        here = run_experiment(configs, ["iris"], seeds=[0, 1], n_jobs=1)
        workers = run_experiment(configs, ["iris"], seeds=[0, 1], n_jobs=2)
    finally:
        CATALOG.register("distance", "manhattan", original.factory, source=BUILTIN, replace=True)
        CATALOG._entries.pop(("distance", "exp-scaled"), None)
    X = load_dataset("iris")[0]
    direct = KMeans(3, distance=scaled, update="mean", random_state=1).fit(X)
    for rows in (here.rows, workers.rows):
        assert [r["objective"] for r in rows[:2]] == [r["objective"] for r in rows[2:]]
        assert rows[1]["objective"] == pytest.approx(direct.inertia_, rel=1e-12)
    assert [r["objective"] for r in workers.rows] == [r["objective"] for r in here.rows]


def test_worker_processes_get_only_the_strategies_the_configs_name():
    # every strategy the program registered was sent: one that does not pickle, and
    # that no config named, failed the experiment with a bare PicklingError
    import threading

    from kmeansfw.core.catalog import CATALOG

    class Locked:
        name = "locked"

        def __init__(self):
            self.lock = threading.Lock()

        @kmeansfw.hookimpl
        def kmeansfw_converged(self, state):
            return None

    locked = Locked()
    CATALOG.register("convergence", "exp-locked", lambda: locked)
    CATALOG.register(
        "convergence",
        "exp-locked-factory",
        type("F", (), {"lock": locked.lock, "__call__": lambda self: locked})(),
    )
    try:
        configs = {"plain": {"n_clusters": 3}}
        rows = run_experiment(configs, ["iris"], seeds=[0, 1], n_jobs=2).rows
        assert [r["objective"] for r in rows] == [
            r["objective"] for r in run_experiment(configs, ["iris"], seeds=[0, 1]).rows
        ]
        nested = {"name": "any", "criteria": ["tol", "exp-locked-factory"]}
        for convergence in (["tol", "exp-locked-factory"], [nested]):  # at any depth
            named = {"locked": {"n_clusters": 3, "convergence": convergence}}
            with pytest.raises(ValueError, match="'exp-locked-factory', registered by this"):
                run_experiment(named, ["iris"], seeds=[0], n_jobs=2)
    finally:
        CATALOG._entries.pop(("convergence", "exp-locked"), None)
        CATALOG._entries.pop(("convergence", "exp-locked-factory"), None)


def test_workers_get_criteria_named_inside_others_and_take_any_config():
    # a criterion named inside 'any' was not sent (unknown in the workers); a distance
    # without a natural update, or an observer object, broke the names' collection
    from kmeansfw.core.catalog import CATALOG

    class AfterTwo:
        name = "exp-after-two"

        @kmeansfw.hookimpl
        def kmeansfw_converged(self, state):
            return state.iteration >= 2

    class Quiet:  # an observer object: no name the catalog knows
        @kmeansfw.hookimpl
        def kmeansfw_iteration_end(self, state):
            pass

    CATALOG.register("convergence", "exp-after-two", AfterTwo)
    try:
        configs = {
            "nested": {
                "n_clusters": 3,
                "max_iter": 50,
                "convergence": [{"name": "any", "criteria": ["exp-after-two"]}],
            },
            "observer": {"n_clusters": 3, "observers": [Quiet()]},
        }
        workers = run_experiment(configs, ["iris"], seeds=[0], n_jobs=2).rows
        here = run_experiment(configs, ["iris"], seeds=[0]).rows
        assert [r["n_iter"] for r in workers] == [r["n_iter"] for r in here]
        assert workers[0]["n_iter"] == 2
    finally:
        CATALOG._entries.pop(("convergence", "exp-after-two"), None)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_cells_warnings_reach_the_calling_program(tmp_path, n_jobs):
    # a worker process's warnings went to its own stderr: no filter of the program's
    # applied and pytest.warns never saw them; now each comes back, the cell named at
    # the end, once per config, for the program's filters to judge; in this process
    # (n_jobs=1) they are raised as they happen, as by a direct fit
    from sklearn.exceptions import ConvergenceWarning

    from kmeansfw.core.catalog import CATALOG

    path = tmp_path / "dup.csv"  # 0,1 first: kept as data, with a warning, said once
    path.write_text("0,1\n" * 6 + "5,5\n" * 6)

    class LocalWarning(UserWarning):  # a class only this test defines
        pass

    def warns(X, centroids):
        warnings.warn("from the distance", LocalWarning, stacklevel=2)
        return np.sqrt(((X[:, None, :] - centroids[None]) ** 2).sum(axis=2))

    kmeansfw.distance("exp-warns")(warns)
    configs = {"dup": {"n_init": 1}, "warns": {"distance": "exp-warns", "update": "mean"}}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_experiment(configs, [str(path)], seeds=[0, 1], n_clusters=3, n_jobs=n_jobs)
        with warnings.catch_warnings(record=True) as quiet:  # the program's filters apply
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            run_experiment(
                {"dup": {"n_init": 1}}, [str(path)], seeds=[0], n_clusters=3, n_jobs=n_jobs
            )
    finally:
        CATALOG._entries.pop(("distance", "exp-warns"), None)
    assert len(result.rows) == 4
    texts = [(w.category, str(w.message)) for w in caught]
    header = [t for c, t in texts if "first line reads 0,1" in t]
    assert len(header) == 1 and "[" not in header[0]  # before any cell, not per cell
    fewer = [(c, t) for c, t in texts if "distinct clusters" in t]
    assert {c for c, _ in fewer} == {ConvergenceWarning}
    assert all(w.filename == __file__ for w in caught if "from the distance" not in str(w.message))
    local = [(c, t) for c, t in texts if "from the distance" in t]
    assert all(c.__name__ == "LocalWarning" for c, _ in local)  # its own class
    assert not [w for w in quiet if issubclass(w.category, ConvergenceWarning)]
    if n_jobs == 1:  # as they happen: every seed of both configs
        assert len(fewer) == 4 and not any("[config" in t for _, t in fewer)
        assert len(local) > 1
        return
    # once per config: the second seed's, the same text, not again; the cell named
    assert len(fewer) == 2
    cells = sorted(t[t.index("[") : t.rindex(",")] for _, t in fewer)
    assert cells == [f"[config '{c}', data set {str(path)!r}" for c in ("dup", "warns")]
    assert len(local) == 1 and local[0][1].startswith("from the distance [config 'warns'")


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_failing_cell_s_warnings_are_not_lost(n_jobs):
    # a cell that warned, then failed: its warning (the explanation) went with it
    from kmeansfw.core.catalog import CATALOG

    def broken(X, centroids):
        warnings.warn("input had to be clipped", RuntimeWarning, stacklevel=2)
        return np.full((X.shape[0], centroids.shape[0]), np.nan)

    kmeansfw.distance("exp-broken")(broken)
    configs = {"b": {"distance": "exp-broken", "update": "mean", "n_init": 1}}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(kmeansfw.StrategyError) as info:
                run_experiment(configs, ["iris"], seeds=[0], n_clusters=3, n_jobs=n_jobs)
    finally:
        CATALOG._entries.pop(("distance", "exp-broken"), None)
    if n_jobs == 1:  # raised before the failure, as by a direct fit
        assert any("input had to be clipped" in str(w.message) for w in caught)
    else:  # a worker's: named on the failure
        notes = getattr(info.value, "__notes__", [])
        assert any("RuntimeWarning raised by this cell first: input had to be" in n for n in notes)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_an_error_filter_stops_the_experiment(tmp_path, n_jobs):
    from sklearn.exceptions import ConvergenceWarning

    path = tmp_path / "dup.npy"
    np.save(path, np.repeat(np.eye(2), 6, axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning, match="distinct clusters"):
            run_experiment(
                {"d": {"n_init": 1}}, [str(path)], seeds=[0], n_clusters=3, n_jobs=n_jobs
            )


def test_experiment_is_resumable_and_parallel(tmp_path):
    out = tmp_path / "cells.csv"
    first = run_experiment(CONFIGS, ["iris"], seeds=range(2), n_clusters=3, out=out)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    # a rerun over more seeds computes only the new cells, in two worker processes
    second = run_experiment(CONFIGS, ["iris"], seeds=range(4), n_clusters=3, out=out, n_jobs=2)
    with open(out, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 8
    assert len(second.rows) == 8
    kept = {(r["config"], r["seed"]): r["objective"] for r in first.rows}
    for r in second.rows:
        if (r["config"], r["seed"]) in kept:
            assert r["objective"] == pytest.approx(kept[(r["config"], r["seed"])])
    result_file = tmp_path / "table.csv"
    second.to_csv(result_file)
    assert result_file.read_text().startswith("config,dataset,seed,objective")


def test_experiment_rejects_bad_configs_and_data_early():
    with pytest.raises(kmeansfw.ConfigError, match="config 'bad'.*unknown distance"):
        run_experiment({"bad": {"distance": "nope"}}, ["iris"], seeds=[0])
    with pytest.raises(DataError, match="no such data file or data set: 'irs'"):
        run_experiment(CONFIGS, ["irs"], seeds=[0])


def test_load_file_formats(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "x.npy", X)
    np.testing.assert_array_equal(load_file(tmp_path / "x.npy"), X)
    (tmp_path / "x.csv").write_text("a,b,c\n" + "\n".join(",".join(map(str, r)) for r in X))
    np.testing.assert_array_equal(load_file(tmp_path / "x.csv"), X)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="unknown data file type"):
        load_file(tmp_path / "x.json")


def test_npy_files_are_mapped_and_checked_a_block_at_a_time(tmp_path, monkeypatch):
    # a .npy file was read whole, and its checks made copies of its size (the absolute
    # values, a mask): a CLI fit of a 977 MB file peaked at 1953 MB
    from kmeansfw.workflow import experiment

    monkeypatch.setattr(experiment, "CHECK_BLOCK_VALUES", 30)  # blocks of 10 rows
    X = np.arange(300.0).reshape(100, 3)
    np.save(tmp_path / "x.npy", X)
    mapped = load_file(tmp_path / "x.npy", mmap=True)  # as the CLI and the cells read it
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, X)
    loaded = load_file(tmp_path / "x.npy")  # by default in memory, the program's own
    assert not isinstance(loaded, np.memmap) and loaded.flags.writeable
    np.testing.assert_array_equal(loaded, X)
    bad = X.copy()
    bad[57, 2] = np.nan
    bad[58, 0] = bad[93, 1] = np.inf  # in other blocks: counted, the first one named
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(DataError, match=r"\(3 value\(s\); the first, nan, in row 58, column 3\)"):
        load_file(tmp_path / "bad.npy")
    huge = X.copy()
    huge[99, 1] = 1e300  # in the last block
    assert "overflow to infinity" in str(experiment.overflow_error(huge, "huge"))
    assert experiment.overflow_error(X, "x") is None


def test_scatter_plots_of_many_rows_draw_a_sample_and_say_so(blobs):
    from kmeansfw.workflow import plots

    X, y = blobs
    fig = plots.plot_comparison(X, {"truth": y, "again": y}, data="blobs", max_points=100)
    assert all(len(ax.collections[0].get_offsets()) == 100 for ax in fig.axes)
    title = fig.get_suptitle()
    assert f"{len(X)} samples" in title and f"a uniform sample of 100 of the {len(X)}" in title
    again = plots.plot_clusters(X, y, max_points=100)
    np.testing.assert_array_equal(  # the same rows on every call
        again.axes[0].collections[0].get_offsets(), fig.axes[0].collections[0].get_offsets()
    )
    whole = plots.plot_clusters(X, y, max_points=None)
    assert len(whole.axes[0].collections[0].get_offsets()) == len(X)
    assert "uniform sample" not in whole.get_suptitle()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_points must be a positive integer"):
            plots.plot_clusters(X, y, max_points=bad)
    pandas = pytest.importorskip("pandas")
    for other in (pandas.DataFrame(X), X.tolist()):  # sampled as the array is
        drawn = plots.plot_clusters(other, list(y), max_points=100)
        np.testing.assert_allclose(
            drawn.axes[0].collections[0].get_offsets(), again.axes[0].collections[0].get_offsets()
        )


@pytest.mark.parametrize("index", [False, True])
def test_csv_as_pandas_writes_it_is_refused_not_misread(tmp_path, index):
    # the text of DataFrame(X).to_csv(path, index=index): pandas' default column names
    # (0, 1, ...) read like a row of data, and its index column like a feature; either
    # would change the clusters without a word
    X = np.random.default_rng(0).normal(size=(20, 3)) + 50
    rows = [",".join(map(repr, row.tolist())) for row in X]
    path = tmp_path / "x.csv"
    if index:
        path.write_text(",0,1,2\n" + "".join(f"{i},{row}\n" for i, row in enumerate(rows)))
        with pytest.raises(DataError, match="header's first cell is empty"):
            load_file(path)
    else:
        path.write_text("0,1,2\n" + "".join(f"{row}\n" for row in rows))
        with pytest.raises(DataError, match=r"first line reads 0,1,2, the column names"):
            load_file(path)
    path.write_text("a,b,c\n" + "".join(f"{row}\n" for row in rows))  # named columns
    np.testing.assert_array_equal(load_file(path), X)
    path.write_text("".join(f"{row}\n" for row in rows))  # no header
    np.testing.assert_array_equal(load_file(path), X)
    path.write_text("0,1\n1,0\n")  # two columns: 0,1 may well be data (kept, with a warning)
    with pytest.warns(UserWarning, match="first line reads 0,1, .* read as a sample"):
        np.testing.assert_array_equal(load_file(path), [[0, 1], [1, 0]])
    path.write_text("0.0,1.0,2.0\n3,4,5\n")  # such a row written as data
    np.testing.assert_array_equal(load_file(path), [[0, 1, 2], [3, 4, 5]])
    path.write_text("0\n1\n2\n")  # one column: its first value is data
    np.testing.assert_array_equal(load_file(path), [[0], [1], [2]])


def test_csv_first_lines_that_are_not_headers_are_not_dropped(tmp_path):
    # a first line taken for a header was dropped without a word, the labels then one
    # row short: a byte order mark before the first number (Excel's "CSV UTF-8"), or a
    # missing or bad value in the first row (refused in any other row)
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xef\xbb\xbf1,2\n3,4\n5,6\n")
    np.testing.assert_array_equal(load_file(path), [[1, 2], [3, 4], [5, 6]])
    path.write_bytes(b"\xef\xbb\xbfx,y\n3,4\n5,6\n")  # a header after the mark
    np.testing.assert_array_equal(load_file(path), [[3, 4], [5, 6]])
    for first, bad in (("1,,3", "''"), ("1,x,3", "'x'"), ("x,1,3", "'x'")):
        path.write_text(f"{first}\n4,5,6\n7,8,9\n")
        with pytest.raises(DataError, match=rf"value {bad} in row 1, .* header line names"):
            load_file(path)
    path.write_text("a,b,c\n1,2\n3,4\n")  # a header of another width than the rows
    with pytest.raises(DataError, match="header names 3 columns, the first row has 2"):
        load_file(path)
    for utf16 in (b"\xff\xfe1\x00,\x002\x00\n\x00", b"1\x00,\x002\x00\n\x00"):  # with, without BOM
        path.write_bytes(utf16)
        with pytest.raises(DataError, match="not UTF-8 text"):
            load_file(path)
    path.write_bytes(b"caf\xe9,na\xefve\n1,2\n3,4\n")  # Excel's plain CSV (Windows-1252)
    np.testing.assert_array_equal(load_file(path), [[1, 2], [3, 4]])


def test_csv_header_said_by_the_caller(tmp_path):
    # a header with a number-like name (a year) reads as data with a bad value, refused;
    # the caller can say the first line is a header (or is data)
    path = tmp_path / "x.csv"
    path.write_text("temp,2019\n1,2\n3,4\n")
    with pytest.raises(DataError, match=r"'temp' in row 1.*header=True to load_file, .* --header"):
        load_file(path)
    np.testing.assert_array_equal(load_file(path, header=True), [[1, 2], [3, 4]])
    for bad in ("no", 1, 0.0):  # a string would read as true
        with pytest.raises(ValueError, match="header must be None, True or False"):
            load_file(path, header=bad)
    path.write_text("0,1,2\n3,4,5\n")  # pandas' default names, or data: the caller says
    with pytest.raises(DataError, match="read it with header=True"):
        load_file(path)
    np.testing.assert_array_equal(load_file(path, header=True), [[3, 4, 5]])
    np.testing.assert_array_equal(load_file(path, header=False), [[0, 1, 2], [3, 4, 5]])
    path.write_text("a,b\n1,2\n")  # names, said to be data: refused as a bad value
    with pytest.raises(DataError, match=r"non-numeric value 'a' in row 1, column 1$"):
        load_file(path, header=False)
    path.write_text(",0,1\n0,1.5,2.5\n")  # above an index column: refused whatever is said
    with pytest.raises(DataError, match="header's first cell is empty"):
        load_file(path, header=True)


def test_experiment_reads_a_header_it_is_told_of(tmp_path):
    # a header with a number-like name: refused unless the experiment is told; the
    # reading is part of a cell's settings, so a rerun under another one recomputes
    path = tmp_path / "years.csv"
    path.write_text("temp,2019\n" + "".join(f"{i % 7},{(i * 3) % 5}\n" for i in range(40)))
    configs = {"a": {"n_clusters": 2, "n_init": 1}}
    with pytest.raises(DataError, match="header=True to load_file, load_dataset or run_exp"):
        run_experiment(configs, [str(path)], seeds=[0])
    with pytest.raises(ValueError, match="header must be None, True or False, got 'yes'"):
        run_experiment(configs, [str(path)], seeds=[0], header="yes")
    out = tmp_path / "cells.csv"
    first = run_experiment(configs, [str(path)], seeds=[0, 1], out=out, header=True)
    expected = KMeans(2, n_init=1, random_state=0).fit(np.loadtxt(path, delimiter=",", skiprows=1))
    assert first.rows[0]["objective"] == pytest.approx(expected.inertia_, rel=1e-12)
    lines = out.read_text().splitlines()
    again = run_experiment(configs, [str(path)], seeds=[0, 1], out=out, header=True)
    assert out.read_text().splitlines() == lines  # reused, nothing appended
    assert [r["objective"] for r in again.rows] == [r["objective"] for r in first.rows]
    # a named data set ignores the option: its cells keep their settings
    run_experiment(configs, ["iris"], seeds=[0], out=out)
    lines = out.read_text().splitlines()
    run_experiment(configs, ["iris"], seeds=[0], out=out, header=True)
    assert out.read_text().splitlines() == lines
    # read as data instead, the file's cells are not those computed with its header
    path.write_text("".join(f"{i % 7},{(i * 3) % 5}\n" for i in range(40)))
    run_experiment(configs, [str(path)], seeds=[0], out=out, header=False)
    assert len(out.read_text().splitlines()) == len(lines) + 1


def test_experiment_parses_a_csv_file_once(tmp_path, monkeypatch):
    # the early check parsed each CSV file, then every cell parsed it again (two configs
    # and three seeds: seven parses); with n_jobs=1 the check and the cells share one
    from kmeansfw.workflow import experiment

    path = tmp_path / "points.csv"
    rng = np.random.default_rng(0)
    np.savetxt(path, rng.normal(size=(300, 3)), delimiter=",", fmt="%+.6e")
    parses = []
    real = experiment._read_csv

    def counting(*args, **kwargs):
        parses.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment, "_read_csv", counting)
    configs = {"a": {"n_clusters": 3, "n_init": 1}, "b": {"n_clusters": 4, "n_init": 1}}
    result = run_experiment(configs, [str(path)], seeds=range(3))
    assert len(parses) == 1 and len(result.rows) == 6
    X = np.loadtxt(path, delimiter=",")
    for row in result.rows:
        k = configs[row["config"]]["n_clusters"]
        expected = KMeans(k, n_init=1, random_state=row["seed"]).fit(X).inertia_
        assert row["objective"] == pytest.approx(expected, rel=1e-12)
    # a file rewritten at the same size, its modification time put back: a new
    # experiment (and a cell run on its own, as in a worker process) reads it anew
    stamp, size = path.stat().st_mtime_ns, path.stat().st_size
    np.savetxt(path, 5 * rng.normal(size=(300, 3)) + 1, delimiter=",", fmt="%+.6e")
    os.utime(path, ns=(stamp, stamp))
    assert path.stat().st_size == size  # the same width for every value
    X = np.loadtxt(path, delimiter=",")
    again = run_experiment({"a": configs["a"]}, [str(path)], seeds=[0])
    cell = experiment.run_cell("a", configs["a"], str(path), 0, 1000)
    fresh = KMeans(3, n_init=1, random_state=0).fit(X).inertia_
    assert again.rows[0]["objective"] == pytest.approx(fresh, rel=1e-12)
    assert cell["objective"] == pytest.approx(fresh, rel=1e-12)
    assert len(parses) == 3


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_streams_by_name_and_its_checks(blobs, monkeypatch):
    # a config can only give a string: any string but the streams' names left the bar
    # off without a word (not a terminal), and a negative delay was taken
    X, _ = blobs
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    KMeans(5, random_state=0, observers=[{"name": "progress", "delay": 0, "file": "stdout"}]).fit(X)
    assert "k-means run 0" in terminal.getvalue()
    for params, message in (
        ({"file": "log.txt"}, "file must be a writable stream"),
        ({"delay": -1}, "delay must be a finite number >= 0"),
    ):
        with pytest.raises(kmeansfw.ConfigError, match=message):
            KMeans(5, observers=[{"name": "progress", **params}]).fit(X)


def test_progress_bar_only_on_terminals(blobs):
    X, _ = blobs
    terminal, pipe = _Terminal(), io.StringIO()
    KMeans(5, random_state=0, observers=[ProgressBar(delay=0, file=terminal)]).fit(X)
    KMeans(5, random_state=0, observers=[ProgressBar(delay=0, file=pipe)]).fit(X)
    assert "k-means run 0" in terminal.getvalue() and "it" in terminal.getvalue()
    assert pipe.getvalue() == ""
    quick = _Terminal()
    KMeans(5, random_state=0, observers=[ProgressBar(delay=60, file=quick)]).fit(X)
    assert quick.getvalue() == ""  # a fit shorter than the delay shows nothing


def test_log_observer_and_callback_early_stopping(blobs, caplog):
    X, _ = blobs
    seen = []

    def stop_when_few_change(state):
        seen.append(state.n_changed)
        return state.n_changed < 50

    with caplog.at_level(logging.DEBUG, logger="kmeansfw"):
        km = KMeans(
            5,
            init="random",
            n_init=1,
            random_state=3,
            tol=0,
            observers=["log"],
            convergence={"name": "callback", "func": stop_when_few_change},
        ).fit(X)
    assert seen[-1] < 50 and all(n >= 50 for n in seen[:-1])
    assert km.n_iter_ == len(seen)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("run 0 iteration 1: objective") for m in messages)
    assert any("converged: True" in m for m in messages)


def test_a_quiet_log_observer_skips_the_iterations_and_logs_the_run(blobs, caplog):
    X, _ = blobs
    params = dict(init="random", n_init=1, random_state=3, tol=0, max_iter=5)
    with caplog.at_level(logging.INFO, logger="kmeansfw"):
        km = KMeans(5, observers=["log"], **params).fit(X)
    messages = [r.getMessage() for r in caplog.records]
    assert not any(m.startswith("run 0 iteration") for m in messages)
    assert [m for m in messages if m.startswith("run 0: objective")]
    np.testing.assert_array_equal(km.labels_, KMeans(5, **params).fit(X).labels_)


def _is_picture(path, width, height):
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[0] == height and image.shape[1] == width
    assert image[..., :3].std() > 0.05  # not blank


def test_plots_render_headless(tmp_path, blobs):
    from kmeansfw.workflow import plots

    X, y = blobs
    km = KMeans(5, random_state=0, history=True).fit(X)
    plots.plot_comparison(
        X,
        {"ours": km.labels_, "true": y},
        centroids={"ours": km.cluster_centers_},
        path=tmp_path / "a.png",
    )
    _is_picture(tmp_path / "a.png", 1000, 450)
    plots.plot_clusters(X[:, :2], km.labels_, path=tmp_path / "b.png")
    _is_picture(tmp_path / "b.png", 500, 450)
    plots.plot_convergence(km.history_, path=tmp_path / "c.png")
    _is_picture(tmp_path / "c.png", 600, 400)
    result = run_experiment(CONFIGS, ["iris"], seeds=range(3), n_clusters=3)
    plots.plot_experiment(result, path=tmp_path / "d.png")
    _is_picture(tmp_path / "d.png", 400, 400)


def test_align_labels_renumbers_to_the_reference():
    from kmeansfw.workflow.plots import align_labels

    reference = np.array([0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(align_labels(np.array([5, 5, 3, 3, 1, 1]), reference), reference)


class _Interrupt:
    """An observer that stops the process (like Ctrl-C) after a given iteration of a run."""

    def __init__(self, run, iteration):
        self.run, self.iteration = run, iteration

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        if state.run == self.run and state.iteration == self.iteration:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("n_init", "run", "iteration", "every"), [(1, 0, 3, 1), (3, 1, 2, 1), (3, 2, 4, 2)]
)
def test_resumed_fit_ends_like_an_uninterrupted_one(tmp_path, n_init, run, iteration, every):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(3000, n_features=3, centers=6, cluster_std=2.5, random_state=5)
    params = {
        "n_init": n_init,
        "init": "random",
        "random_state": 7,
        "tol": 0,
        "checkpoint_every": every,
    }
    reference = KMeans(6, **params).fit(X)
    folder = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        KMeans(6, checkpoint=str(folder), observers=[_Interrupt(run, iteration)], **params).fit(X)
    assert (folder / "state.npz").exists() and (folder / "state.json").exists()
    resumed = KMeans(6, checkpoint=str(folder), **params).fit(X)
    np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    assert resumed.inertia_ == reference.inertia_ and resumed.n_iter_ == reference.n_iter_


def test_checkpoint_is_plain_data_and_checked(tmp_path, blobs):
    import json

    X, _ = blobs
    folder = tmp_path / "ckpt"
    KMeans(5, random_state=0, checkpoint=str(folder)).fit(X)
    meta = json.loads((folder / "state.json").read_text())
    assert meta["next_run"] == 1 and "fingerprint" in meta
    np.load(folder / "state.npz", allow_pickle=False)  # no pickled objects inside
    # another configuration: a warning, and a fresh fit (issue 11: mismatches start afresh)
    with pytest.warns(UserWarning, match="checkpoint"):
        other = KMeans(4, random_state=0, checkpoint=str(folder)).fit(X)
    assert other.inertia_ == KMeans(4, random_state=0).fit(X).inertia_
    with pytest.raises(ValueError, match="checkpoint"):
        KMeans(5, checkpoint=3).fit(X)


# --------------------------------------------------------------- issue 11, item 7 and 10


def test_summary_has_one_row_per_data_set_and_config():
    # iris's objectives are about 80, wine's about 2.4e6: pooled, the mean and spread
    # described neither (1.22e6 +- 1.23e6)
    result = run_experiment(CONFIGS, ["iris", "wine"], seeds=range(3), n_clusters=3)
    summary = result.summary()
    assert [(s["dataset"], s["config"]) for s in summary] == [
        ("iris", "random"),
        ("iris", "plusplus"),
        ("wine", "random"),
        ("wine", "plusplus"),
    ]
    for s in summary:
        mine = [
            r["objective"]
            for r in result.rows
            if r["dataset"] == s["dataset"] and r["config"] == s["config"]
        ]
        assert s["cells"] == 3 and s["n_clusters"] == 3
        assert s["objective_mean"] == pytest.approx(np.mean(mine))
        assert s["objective_std"] == pytest.approx(np.std(mine))
        assert s["objective_best"] == pytest.approx(min(mine))
    by = {(s["dataset"], s["config"]): s for s in summary}
    assert (
        by["iris", "plusplus"]["objective_mean"]
        < 200
        < 1e6
        < by["wine", "plusplus"]["objective_mean"]
    )


def test_plot_experiment_draws_a_panel_per_data_set():
    from kmeansfw.workflow.plots import plot_experiment

    result = run_experiment(CONFIGS, ["iris", "wine"], seeds=range(3), n_clusters=3)
    fig = plot_experiment(result)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["iris (k = 3)", "wine (k = 3)"]
    assert "objective" in fig.get_suptitle() and "3 seed" in fig.get_suptitle()
    for ax, dataset in zip(axes, ["iris", "wine"], strict=True):
        assert ax.get_xlabel() == "configuration" and ax.get_ylabel() == "objective"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["random", "plusplus"]
        mine = [r["objective"] for r in result.rows if r["dataset"] == dataset]
        drawn = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.lines])
        # every box, whisker and median of the panel lies within its own data set's values
        assert drawn.min() >= min(mine) - 1e-9 and drawn.max() <= max(mine) + 1e-9


def test_figures_say_what_they_show(blobs):
    from kmeansfw.workflow import plots

    X, y = blobs  # 4 features: a PCA projection
    km = KMeans(5, random_state=0, history=True).fit(X)
    fig = plots.plot_comparison(
        X,
        {"ours": km.labels_, "true": y},
        centroids={"ours": km.cluster_centers_},
        data="blobs",
    )
    title = fig.get_suptitle()
    assert "blobs" in title and "k = 5" in title and "PCA projection" in title
    for ax, name in zip(fig.axes, ["ours", "true"], strict=True):
        assert ax.get_title() == name
        assert ax.get_xlabel().startswith("principal component 1 (")
        assert ax.get_ylabel().startswith("principal component 2 (")
    two = plots.plot_clusters(X[:, :2], km.labels_, data="first two columns", k=5)
    assert "PCA" not in two.get_suptitle() and "first two columns" in two.get_suptitle()
    assert (two.axes[0].get_xlabel(), two.axes[0].get_ylabel()) == ("feature 1", "feature 2")
    named = plots.plot_clusters(X[:, :2], km.labels_, feature_names=["width", "height"])
    assert (named.axes[0].get_xlabel(), named.axes[0].get_ylabel()) == ("width", "height")
    convergence = plots.plot_convergence(km.history_)
    assert convergence.axes[0].get_title() and convergence.axes[0].get_xlabel() == "iteration"


def test_cells_file_of_other_content_is_a_data_error(tmp_path):
    out = tmp_path / "cells.csv"
    out.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a table of cells"):
        run_experiment(CONFIGS, ["iris"], seeds=[0], n_clusters=3, out=out)
    with pytest.raises(ValueError, match="n_jobs"):
        run_experiment(CONFIGS, ["iris"], seeds=[0], n_jobs=0)
    # a config named 1 was written as "1" and never matched again: every rerun appended
    for names in ({1: {}}, {"": {}}, {("a",): {}}):
        with pytest.raises(ValueError, match="config names must be non-empty strings"):
            run_experiment(names, ["iris"], seeds=[0])
    for sample in (0, 1, 2.5, True):  # 0 failed in scikit-learn after the first fit
        with pytest.raises(ValueError, match="silhouette_sample must be an integer >= 2"):
            run_experiment(CONFIGS, ["iris"], seeds=[0], silhouette_sample=sample)


def test_resumed_cells_are_those_of_the_same_k(tmp_path):
    out = tmp_path / "cells.csv"
    three = run_experiment(CONFIGS, ["iris"], seeds=range(2), n_clusters=3, out=out)
    four = run_experiment(CONFIGS, ["iris"], seeds=range(2), n_clusters=4, out=out)
    assert {r["n_clusters"] for r in three.rows} == {3}
    assert {r["n_clusters"] for r in four.rows} == {4}
    assert len(four.rows) == 4
    direct = KMeans(4, init="random", n_init=1, random_state=1).fit(load_dataset("iris")[0])
    assert four.rows[1]["objective"] == pytest.approx(direct.inertia_)
    again = run_experiment(CONFIGS, ["iris"], seeds=range(2), n_clusters=3, out=out)
    assert [r["objective"] for r in again.rows] == pytest.approx(
        [r["objective"] for r in three.rows]
    )
    with open(out, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 8  # nothing computed twice


def test_resuming_a_cells_file_without_k_still_works(tmp_path):
    out = tmp_path / "cells.csv"
    first = run_experiment(CONFIGS, ["iris"], seeds=range(2), n_clusters=3)
    old_columns = [c for c in first.rows[0] if c not in ("n_clusters", "settings")]
    with open(out, "w", newline="") as fh:  # as written before k and settings were recorded
        writer = csv.DictWriter(fh, fieldnames=old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(first.rows)
    with pytest.warns(UserWarning, match="4 cell.* without their settings"):
        second = run_experiment(CONFIGS, ["iris"], seeds=range(3), n_clusters=3, out=out)
    assert len(second.rows) == 6
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        written = list(reader)
    assert len(written) == 6 and "settings" in reader.fieldnames  # the file took the column
    assert [bool(r["settings"]) for r in written] == [False] * 4 + [True] * 2


def _lines(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_config_changed_under_its_name_is_computed_again(tmp_path):
    out = tmp_path / "cells.csv"
    quick = {"cfg": {"init": "random", "n_init": 1, "max_iter": 1}}
    first = run_experiment(quick, ["iris"], seeds=[0], n_clusters=3, out=out)
    plusplus = {"cfg": {"init": "k-means++"}}
    changed = run_experiment(plusplus, ["iris"], seeds=[0], n_clusters=3, out=out)
    fresh = run_experiment(plusplus, ["iris"], seeds=[0], n_clusters=3)
    assert changed.rows[0]["objective"] == fresh.rows[0]["objective"]
    assert changed.rows[0]["objective"] != first.rows[0]["objective"]
    assert len(changed.rows) == 1 and len(_lines(out)) == 2
    back = run_experiment(quick, ["iris"], seeds=[0], n_clusters=3, out=out)  # reused
    assert back.rows[0]["objective"] == first.rows[0]["objective"] and len(_lines(out)) == 2
    other_sample = run_experiment(
        quick, ["iris"], seeds=[0], n_clusters=3, out=out, silhouette_sample=50
    )
    assert len(other_sample.rows) == 1 and len(_lines(out)) == 3


def test_a_data_file_changed_since_its_cells_is_computed_again(tmp_path):
    out, data = tmp_path / "cells.csv", tmp_path / "x.npy"
    rng = np.random.default_rng(0)
    np.save(data, rng.normal(size=(80, 2)))
    first = run_experiment({"p": {}}, [str(data)], seeds=[0], n_clusters=3, out=out)
    np.save(data, rng.normal(size=(80, 2)) * 5)
    second = run_experiment({"p": {}}, [str(data)], seeds=[0], n_clusters=3, out=out)
    fresh = run_experiment({"p": {}}, [str(data)], seeds=[0], n_clusters=3)
    assert second.rows[0]["objective"] == fresh.rows[0]["objective"] != first.rows[0]["objective"]
    assert len(_lines(out)) == 2


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([[1.0, 2.0], [3.0, np.inf]], "NaN or infinity"),
        ([[1.0, np.nan], [3.0, 4.0]], "row 1, column 2"),
        ([[1e200, 1.0], [-1e200, 2.0], [3.0, 4.0]], "overflow to infinity"),
    ],
)
def test_data_that_is_not_finite_or_overflows_is_a_data_error(tmp_path, values, message):
    path = tmp_path / "x.npy"
    np.save(path, np.array(values))
    with pytest.raises(DataError, match=message) as info:
        run_experiment({"plusplus": {}}, [str(path)], seeds=[0], n_clusters=2)
    assert "x.npy" in str(info.value)


def test_overflow_with_a_distance_that_copes_is_no_error(tmp_path):
    path = tmp_path / "x.npy"
    X = np.random.default_rng(0).normal(size=(60, 2)) * 1e200
    np.save(path, X)
    result = run_experiment({"l1": {"distance": "manhattan"}}, [str(path)], seeds=[0], n_clusters=2)
    assert np.isfinite(result.rows[0]["objective"])


@pytest.mark.parametrize("cut", [3, 22, 30, 60, 90])
def test_a_row_cut_off_by_an_interrupted_write_is_computed_again(tmp_path, cut):
    # a study killed while appending leaves its last row cut short (from the settings'
    # digest back to the objective): that cell is computed again, the rest reused
    out = tmp_path / "cells.csv"
    whole = run_experiment(CONFIGS, ["iris"], seeds=range(2), n_clusters=3, out=out)
    text = out.read_bytes()
    out.write_bytes(text[: len(text) - cut])
    with pytest.warns(UserWarning, match="last row of .* was cut off"):
        again = run_experiment(CONFIGS, ["iris"], seeds=range(2), n_clusters=3, out=out)
    assert [r["objective"] for r in again.rows] == pytest.approx(
        [r["objective"] for r in whole.rows]
    )
    written = _lines(out)
    assert len(written) == 4 and all(r["settings"] for r in written)
    assert out.read_bytes()[: len(text) - 200] == text[: len(text) - 200]  # rows kept as written


def test_a_file_without_a_final_newline_gets_the_next_row_on_its_own_line(tmp_path):
    out = tmp_path / "cells.csv"
    run_experiment(CONFIGS, ["iris"], seeds=[0], n_clusters=3, out=out)
    out.write_bytes(out.read_bytes().rstrip(b"\r\n"))  # as an editor may save it
    more = run_experiment(CONFIGS, ["iris"], seeds=range(2), n_clusters=3, out=out)
    written = _lines(out)
    assert len(written) == 4 and len(more.rows) == 4
    assert all(len(r["settings"]) == 20 for r in written)  # none glued to the next


def test_a_damaged_row_inside_the_file_is_named(tmp_path):
    out = tmp_path / "cells.csv"
    run_experiment(CONFIGS, ["iris"], seeds=range(2), n_clusters=3, out=out)
    lines = out.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:15] + "\r\n"
    out.write_text("".join(lines))
    with pytest.raises(DataError, match="line 3: more or fewer values"):
        run_experiment(CONFIGS, ["iris"], seeds=range(2), n_clusters=3, out=out)


def test_rows_read_back_have_the_types_of_computed_ones(tmp_path):
    out = tmp_path / "cells.csv"
    fresh = run_experiment(CONFIGS, ["iris"], seeds=[0], n_clusters=3, out=out)
    resumed = run_experiment(CONFIGS, ["iris"], seeds=[0], n_clusters=3, out=out)
    for a, b in zip(fresh.rows, resumed.rows, strict=True):
        for column in ("seed", "objective", "ari", "nmi", "silhouette", "n_iter", "fit_seconds"):
            assert type(a[column]) is type(b[column]), column
            assert b[column] == pytest.approx(a[column])


@pytest.mark.parametrize(
    ("datasets", "seeds", "match"),
    [
        ("iris", [0], r"datasets must be a list .* pass \['iris'\]"),
        (["iris", "iris"], [0], "datasets repeat 'iris'"),
        (["iris"], [0, 0, 1], "seeds repeat 0"),
        (["iris"], [0.5], "seeds must be non-negative integers, got 0.5"),
        (["iris"], "012", "seeds must be a list of integers"),
        (["iris"], [-1], "non-negative"),
        (["iris"], [True], "got True"),
    ],
)
def test_datasets_and_seeds_are_checked_not_coerced(datasets, seeds, match):
    with pytest.raises(ValueError, match=match):
        run_experiment(CONFIGS, datasets, seeds=seeds, n_clusters=3)


def test_a_config_file_at_fault_is_named_by_its_config_name(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('n_clusters = "x"\n')
    with pytest.raises(kmeansfw.ConfigError, match="config 'a': config key 'n_clusters'"):
        run_experiment({"a": bad}, ["iris"], seeds=[0])
