"""The benchmark scripts' report and timing helpers (``benchmarks/suite.py``,
``benchmarks/bench_lloyd.py``): ``--write`` regenerates only its part of the report file,
and a timing that has no figure says so instead of printing a wrong one."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
DOCS_REPORT = BENCHMARKS.parent / "docs" / "benchmarks.md"


@pytest.fixture(scope="module")
def bench():
    """The modules ``suite`` and ``bench_lloyd``, imported from benchmarks/ without leaving
    that folder on ``sys.path`` for the other tests (some pass it on to subprocesses)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        suite = importlib.import_module("suite")
        bench_lloyd = importlib.import_module("bench_lloyd")
    finally:
        sys.path.remove(str(BENCHMARKS))
    return suite, bench_lloyd


@pytest.fixture
def suite(bench):
    return bench[0]


@pytest.fixture
def bench_lloyd(bench):
    return bench[1]


def test_new_file_gets_title_and_markers(suite):
    text = suite.splice_report(None, ["| a |", "| b |"])
    lines = text.split("\n")
    assert lines[0] == "# Benchmarks"
    start, end = lines.index(suite.GENERATED_START), lines.index(suite.GENERATED_END)
    assert lines[start + 1 : end] == ["| a |", "| b |"]


def test_only_the_marked_part_is_replaced(suite):
    start, end = suite.GENERATED_START, suite.GENERATED_END
    existing = "\n".join(
        ["# Title", "kept above", start, "old table", "old row", end, "## History", "kept", ""]
    )
    text = suite.splice_report(existing, ["new table"])
    assert text.split("\n") == [
        "# Title", "kept above", start, "new table", end, "## History", "kept", "",
    ]
    # splicing the same report again changes nothing
    assert suite.splice_report(text, ["new table"]) == text


def test_crlf_files_keep_their_line_endings(suite):
    start, end = suite.GENERATED_START, suite.GENERATED_END
    existing = "\r\n".join(["# Title", start, "old", end, "kept", ""])
    text = suite.splice_report(existing, ["new"])
    assert text == "\r\n".join(["# Title", start, "new", end, "kept", ""])


def test_mixed_line_endings_are_kept_line_by_line(suite):
    # one CRLF line in an LF file (or the other way round) neither hides the markers
    # nor changes the other lines
    start, end = suite.GENERATED_START, suite.GENERATED_END
    existing = f"# Title\r\nabove\n{start}\nold\n{end}\nbelow\r\nlast"
    text = suite.splice_report(existing, ["new"])
    assert text == f"# Title\r\nabove\n{start}\nnew\n{end}\nbelow\r\nlast"
    existing = f"a\r\n{start}\r\nold\n{end}"  # the end marker last, no line ending
    assert suite.splice_report(existing, ["new"]) == f"a\r\n{start}\r\nnew\r\n{end}"


@pytest.mark.parametrize(
    "body, found",
    [
        (["# Benchmarks", "a long hand-kept history"], "found 0 and 0\\)"),
        (["# B", "START", "table"], "found 1 and 0\\)"),
        (["# B", "END", "table", "START"], "found 1 and 1, the end marker first"),
        (["# B", "START", "END", "START", "END"], "found 2 and 2\\)"),
    ],
)
def test_a_file_without_one_ordered_pair_of_markers_is_refused(suite, body, found):
    names = {"START": suite.GENERATED_START, "END": suite.GENERATED_END}
    text = "\n".join(names.get(line, line) for line in body)
    with pytest.raises(ValueError, match=found) as info:
        suite.splice_report(text, ["new"], "report.md")
    assert "report.md" in str(info.value) and "not overwriting" in str(info.value)


def test_the_docs_report_has_its_markers(suite):
    # the file README points --write at: a run must splice into it, not refuse it
    text = DOCS_REPORT.read_text(encoding="utf-8")
    spliced = suite.splice_report(text, ["new table"])
    assert "new table" in spliced
    # everything outside the generated part is kept, line for line
    before, _, rest = text.partition(suite.GENERATED_START)
    inside, _, after = rest.partition(suite.GENERATED_END)
    assert spliced.startswith(before) and spliced.endswith(after)
    # and the markers hold the generated table, not an empty stretch elsewhere
    assert "| case | kmeansfw ms |" in inside


def test_write_report_replaces_the_file_and_keeps_the_rest(suite, tmp_path):
    report = tmp_path / "report.md"
    report.write_text(f"# R\nabove\n{suite.GENERATED_START}\nold\n{suite.GENERATED_END}\nbelow\n")
    assert suite.write_report(str(report), ["new"]) == str(report)
    assert report.read_text() == (
        f"# R\nabove\n{suite.GENERATED_START}\nnew\n{suite.GENERATED_END}\nbelow\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]  # no scratch left


def test_write_report_keeps_the_mode_and_a_link(suite, tmp_path):
    report = tmp_path / "report.md"
    report.write_text(f"{suite.GENERATED_START}\n{suite.GENERATED_END}\n")
    report.chmod(0o640)
    link = tmp_path / "link.md"
    link.symlink_to(report)
    assert suite.write_report(str(link), ["new"]) == str(report)
    assert link.is_symlink() and "new" in report.read_text()
    assert report.stat().st_mode & 0o777 == 0o640


def test_a_failed_write_leaves_the_file_and_keeps_the_report(suite, tmp_path, monkeypatch):
    report = tmp_path / "report.md"
    old = f"# R\n{suite.GENERATED_START}\nold\n{suite.GENERATED_END}\n"
    report.write_text(old)
    real_replace = suite.os.replace

    def failing(source, target):
        if Path(target) == report:
            raise OSError("disk full")
        real_replace(source, target)

    monkeypatch.setattr(suite.os, "replace", failing)
    written = suite.write_report(str(report), ["| new |"])
    assert report.read_text() == old  # the page as it was
    assert written == str(report) + ".generated.md"
    assert "| new |" in Path(written).read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "report.md.generated.md"]


def test_write_report_keeps_a_file_that_lost_its_markers(suite, tmp_path, capsys):
    # markers removed while the suite ran: the file stays, the report goes beside it
    report = tmp_path / "report.md"
    report.write_text("# hand-written since\n")
    written = suite.write_report(str(report), ["| the table |"])
    assert written == str(report) + ".generated.md"
    assert report.read_text() == "# hand-written since\n"
    assert "| the table |" in Path(written).read_text()
    assert "the report is in" in capsys.readouterr().err
    # a second such run never overwrites the first one's report
    again = suite.write_report(str(report), ["| another |"])
    assert again == str(report) + ".generated-2.md"
    assert "| the table |" in Path(written).read_text()


# the shortest run the suite allows: should a refusal below regress, the test fails in
# seconds of timing, not minutes
QUICK = ["--quick", "--no-fits", "--no-memory", "--iters", "1", "--repeat", "1", "--rounds", "1"]


def _run_suite(*args: str, cwd: Path = BENCHMARKS) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / "suite.py"), *QUICK, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_write_refuses_before_timing_anything(tmp_path):
    # a file without markers stops the run at once, with a message, and is left as it was
    report = tmp_path / "notes.md"
    report.write_text("# My notes\n\nhand-written\n")
    done = _run_suite("--write", str(report))
    assert done.returncode == 1
    assert "not overwriting" in done.stderr and "Traceback" not in done.stderr
    assert "| case |" not in done.stdout  # no timing ran
    assert report.read_text() == "# My notes\n\nhand-written\n"


@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_write_to_a_path_that_cannot_be_a_file_refused_before_timing(tmp_path, where):
    path = tmp_path / "no" / "such" / "report.md" if where == "missing folder" else tmp_path
    done = _run_suite("--write", str(path))
    assert done.returncode == 1
    assert "cannot write" in done.stderr and "Traceback" not in done.stderr
    assert "| case |" not in done.stdout


def test_write_to_a_file_without_permission_refused(suite, tmp_path, monkeypatch):
    # (os.access stands in for a read-only file: the tests may run as root)
    report = tmp_path / "report.md"
    report.write_text(f"{suite.GENERATED_START}\n{suite.GENERATED_END}\n")
    suite._check_report_path(str(report))  # writable: no complaint
    monkeypatch.setattr(suite.os, "access", lambda path, mode: Path(path) != report)
    with pytest.raises(SystemExit, match="permission denied"):
        suite._check_report_path(str(report))


def test_rounds_must_be_positive(tmp_path):
    done = _run_suite("--rounds", "0", "--write", str(tmp_path))
    assert done.returncode == 2 and "positive" in done.stderr


class _Clock:
    """A stand-in for time.perf_counter that fits advance by a set amount."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _FakeFit:
    def __init__(self, clock, max_iter, fixed, per_iter, converges_at=None):
        self.clock, self.fixed, self.per_iter = clock, fixed, per_iter
        self.calls = 0
        self.n_iter = max_iter if converges_at is None else min(max_iter, converges_at)

    def __call__(self):
        self.calls += 1
        self.clock.now += self.fixed + self.per_iter * self.n_iter


@pytest.fixture
def clock(bench_lloyd, monkeypatch):
    fake = _Clock()
    # bench_lloyd's own name for the time module: nothing else in the process sees it
    monkeypatch.setattr(bench_lloyd, "time", SimpleNamespace(perf_counter=fake))
    return fake


def test_per_iteration_divides_by_the_iterations_made(bench_lloyd, clock):
    # 10 ms of fixed costs and 2 ms an iteration: 2 ms whatever the window it picks
    value = bench_lloyd.per_iteration(lambda m: _FakeFit(clock, m, 0.010, 0.002), 3, 3)
    assert value == pytest.approx(0.002)
    # a fit that stops after 3 iterations: the long run (of 4) made 2 more than the
    # short one, not 3
    value = bench_lloyd.per_iteration(
        lambda m: _FakeFit(clock, m, 0.010, 0.002, converges_at=3), 3, 1
    )
    assert value == pytest.approx(0.002)


@pytest.mark.parametrize("repeat, long_runs", [(1, 2), (3, 4)])
def test_per_iteration_times_the_long_run_again_repeat_times(bench_lloyd, clock, repeat, long_runs):
    fits = []

    def make(m):
        fits.append(_FakeFit(clock, m, 0.010, 0.1))  # 0.1 s an iteration: no raise
        return fits[-1]

    assert bench_lloyd.per_iteration(make, 3, repeat) == pytest.approx(0.1)
    short, long = fits
    assert short.calls == max(repeat, 2) and long.calls == long_runs


@pytest.mark.parametrize(
    "fit",
    [
        # no more iterations (a set-up that grows with max_iter keeps the long run slower)
        lambda clock, m: _FakeFit(clock, m, 0.010 + 0.001 * m, 0.002, converges_at=1),
        # the long run is not slower (a slow spell during the short runs)
        lambda clock, m: _FakeFit(clock, m, 0.010, -0.0001),
    ],
)
def test_per_iteration_without_a_figure_is_nan(bench_lloyd, clock, fit):
    assert math.isnan(bench_lloyd.per_iteration(lambda m: fit(clock, m), 3, 3))


def test_in_turns_keeps_each_least_time_and_nan_when_no_round_gave_one(suite):
    ours = iter([0.3, 0.1, math.nan])
    theirs = iter([0.5, 0.7, 0.4])
    assert suite._in_turns(3, lambda: next(ours), lambda: next(theirs)) == (0.1, 0.4)
    least = suite._in_turns(2, lambda: math.nan, lambda: 1.0)
    assert math.isnan(least[0]) and least[1] == 1.0


def test_a_row_without_a_figure_prints_dashes(suite):
    row = {"case": "c", "ours_ms": math.nan, "sk_ms": 2.0, "gflops": math.nan, "memory": ""}
    assert suite._line(row) == "| c | - | 2.00 | - | - | - |  |"
