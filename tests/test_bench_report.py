"""``benchmarks/suite.py --write`` regenerates only its part of the report file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from suite import GENERATED_END, GENERATED_START, splice_report  # noqa: E402

DOCS_REPORT = BENCHMARKS.parent / "docs" / "benchmarks.md"


def test_new_file_gets_title_and_markers():
    text = splice_report(None, ["| a |", "| b |"])
    lines = text.split("\n")
    assert lines[0] == "# Benchmarks"
    start, end = lines.index(GENERATED_START), lines.index(GENERATED_END)
    assert lines[start + 1 : end] == ["| a |", "| b |"]


def test_only_the_marked_part_is_replaced():
    existing = "\n".join(
        ["# Title", "kept above", GENERATED_START, "old table", "old row", GENERATED_END,
         "## History", "kept below", ""]
    )
    text = splice_report(existing, ["new table"])
    assert text.split("\n") == [
        "# Title", "kept above", GENERATED_START, "new table", GENERATED_END,
        "## History", "kept below", "",
    ]
    # splicing the same report again changes nothing
    assert splice_report(text, ["new table"]) == text


@pytest.mark.parametrize(
    "body, found",
    [
        (["# Benchmarks", "a long hand-kept history"], "found 0 and 0"),
        (["# B", GENERATED_START, "table"], "found 1 and 0"),
        (["# B", GENERATED_END, "table", GENERATED_START], "found 1 and 1"),
        (["# B", GENERATED_START, GENERATED_END, GENERATED_START, GENERATED_END], "found 2 and 2"),
    ],
)
def test_a_file_without_one_ordered_pair_of_markers_is_refused(body, found):
    with pytest.raises(ValueError, match=found) as info:
        splice_report("\n".join(body), ["new"], "report.md")
    assert "report.md" in str(info.value) and "not overwriting" in str(info.value)


def test_the_docs_report_has_its_markers():
    # the file README points --write at: a run must splice into it, not refuse it
    text = DOCS_REPORT.read_text()
    spliced = splice_report(text, ["new table"])
    assert "new table" in spliced
    # everything outside the generated part is kept, line for line
    before, _, rest = text.partition(GENERATED_START)
    _, _, after = rest.partition(GENERATED_END)
    assert spliced.startswith(before) and spliced.endswith(after)
    # and the markers hold the generated table, not an empty stretch elsewhere
    assert "| case | kmeansfw ms |" in rest.partition(GENERATED_END)[0]


def test_write_refuses_before_timing_anything(tmp_path):
    # a file without markers stops the run at once, and the file is left as it was
    report = tmp_path / "notes.md"
    report.write_text("# My notes\n\nhand-written\n")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "suite.py"), "--write", str(report)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCHMARKS,
    )
    assert done.returncode != 0
    assert "not overwriting" in done.stderr
    assert "| case |" not in done.stdout  # no timing ran
    assert report.read_text() == "# My notes\n\nhand-written\n"
