"""``kmeansfw compile`` and :func:`kmeansfw.workflow.warmup.compile_kernels`."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from kmeansfw.kernels import _compile, euclidean
from kmeansfw.kernels._compile import HAVE_NUMBA
from kmeansfw.workflow import warmup
from kmeansfw.workflow.cli import main


def _search_kinds(itemsize: int) -> set[str]:
    kinds = set()
    for _, run in warmup.STEPS:
        if isinstance(run, warmup.KMeansFits) and not run.params:
            d = run.n_features
            for _, k in run.shapes:
                kinds.add(euclidean.search_kind(euclidean.direct_pays(d, k), d, k, itemsize))
    return kinds


def test_the_fits_take_every_search_a_fit_can_take():
    # each kind of search is a kernel of its own (with its own Lloyd iterations): a
    # warm-up that missed one would leave its compile to the user's first fit; "wide"
    # is the tests' reference, which no fit takes
    assert _search_kinds(8) == {"pair", "fours", "rows", "screened rows", "product"}
    assert _search_kinds(4) == {"pair", "fours", "rows", "product"}
    # each default-strategy shape runs small data (serial iterations) and data that
    # numba's threads split (the kernels' own rule, on the two threads the fits ask for)
    for _, run in warmup.STEPS[:5]:
        chunks = [
            euclidean.kernel_chunks(n, run.n_features, k, 2) for n, k in run.shapes
        ]
        assert min(chunks) == 1 and max(chunks) >= 2, (run, chunks)


def test_compile_kernels_runs_each_step_per_dtype_and_reports_it(monkeypatch):
    seen = []
    monkeypatch.setattr(
        warmup, "STEPS", (("tiny", warmup.KMeansFits(3, ((60, 2),))), ("same", lambda r, d: None))
    )
    done = warmup.compile_kernels(["float32", np.float64, "float32"], progress=seen.append)
    assert [(s.label, s.dtype) for s in done] == [
        ("tiny", "float32"),
        ("same", "float32"),
        ("tiny", "float64"),
        ("same", "float64"),
    ]
    assert seen == done and all(s.seconds >= 0 for s in done)
    assert [s.dtype for s in warmup.compile_kernels("float64")] == ["float64"] * 2


@pytest.mark.parametrize("dtypes", [[], ["float16"], ["int64"], ["nonsense"], [None]])
def test_compile_kernels_refuses_other_dtypes(dtypes):
    with pytest.raises(ValueError, match="compile_kernels: "):
        warmup.compile_kernels(dtypes)


@pytest.mark.skipif(not HAVE_NUMBA, reason="without numba the command compiles nothing")
def test_compile_command_prints_the_steps_and_the_cache(monkeypatch):
    monkeypatch.setattr(warmup, "STEPS", (("tiny", warmup.KMeansFits(3, ((60, 2),))),))
    out = CliRunner().invoke(main, ["compile", "--dtype", "float32"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].startswith("float32  tiny") and lines[0].endswith(" s")
    assert lines[1].startswith("1 steps in ") and "the kernels are kept in" in lines[1]
    quiet = CliRunner().invoke(main, ["compile", "-q"])
    assert quiet.exit_code == 0 and quiet.stdout == ""
    bad = CliRunner().invoke(main, ["compile", "--dtype", "float16"])
    assert bad.exit_code == 2 and "float16" in bad.stderr


def test_compile_command_without_numba_says_there_is_nothing_to_compile(monkeypatch):
    monkeypatch.setattr(_compile, "HAVE_NUMBA", False)
    monkeypatch.setattr(warmup, "STEPS", ())
    out = CliRunner().invoke(main, ["compile"])
    assert out.exit_code == 0 and "need no compiling" in out.stderr and out.stdout == ""


def test_the_warm_up_gives_no_warning_and_touches_no_filter(monkeypatch):
    # the warm-up's fits pair two updates with distances whose objective they do not
    # minimize, on purpose; it silenced their PairingWarning with catch_warnings, which
    # swaps the warning filters of every thread of the process while it runs (minutes:
    # compile_kernels is public, and may run beside a program's other threads); they are
    # built without the warning instead
    import sys
    import warnings

    real, callers = warnings.catch_warnings, []

    def spy(*args, **kwargs):
        callers.append(sys._getframe(1).f_code.co_filename)
        return real(*args, **kwargs)

    steps = [step for step in warmup.STEPS if step[0] == "other distances and updates"]
    assert len(steps) == 1
    monkeypatch.setattr(warmup, "STEPS", tuple(steps))
    with real():
        warnings.simplefilter("error")  # any warning of the warm-up's fits fails here
        monkeypatch.setattr(warnings, "catch_warnings", spy)
        assert len(warmup.compile_kernels(["float64"])) == 1
    assert callers == []
