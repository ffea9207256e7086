"""Fuzzing the command line: any arguments, any data file content, any small config.

Every case must end in success (exit 0) or in a documented error (exit 2: a bad
argument named by click, or one ``kmeansfw: error:`` line for bad data or a bad
config), never in a Python traceback or an exception escaping the command.
"""

from __future__ import annotations

import json
import pathlib
import tempfile

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kmeansfw.workflow.cli import main

NAMES = ["iris", "wine", "blobs", "irs", "", "-k", "--seed", "data.parquet", "a\x00b"]

# valid values often enough that the fits themselves get fuzzed, not only the parsing
valid = st.integers(1, 4).map(str)
numbers = st.one_of(
    st.integers(-3, 12),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
).map(str)
argument = st.one_of(
    valid, valid, numbers, st.text(max_size=12), st.sampled_from(["", "1e3", "0x10"])
)

# Data file content: (suffix, bytes).  Small numeric tables, then every kind of damage.
cells = st.one_of(
    st.floats(-1e3, 1e3).map(repr),
    st.floats(-1e3, 1e3).map(repr),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "1e200", "-1e200", "x", "", "1,2"]),
    st.integers(-100, 100).map(str),
)
csv_rows = st.integers(1, 3).flatmap(
    lambda width: st.lists(st.lists(cells, min_size=width, max_size=width), min_size=0, max_size=8)
)
csv_files = st.tuples(
    st.just(".csv"),
    st.one_of(
        csv_rows.map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
        st.binary(max_size=40),
        st.just(b""),
        st.just(b"a,b\n"),
        st.just(b"\xff\xfe\x00garbage"),
    ),
)


def _npy(values: list[list[float]]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array(values))
    return buffer.getvalue()


npy_files = st.tuples(
    st.just(".npy"),
    st.one_of(
        st.lists(st.lists(st.floats(width=64), min_size=2, max_size=2), min_size=1, max_size=8).map(
            _npy
        ),
        st.lists(st.lists(st.floats(-10, 10), min_size=2, max_size=2), min_size=4, max_size=8).map(
            _npy
        ),
        st.just(_npy([["a", "b"]])),  # strings
        st.just(_npy([1.0, 2.0])),  # 1-D
        st.binary(max_size=60),
    ),
)
other_files = st.tuples(st.sampled_from([".parquet", ".json", ""]), st.binary(max_size=20))
data_files = st.one_of(csv_files, csv_files, npy_files, npy_files, other_files)

config_values = st.fixed_dictionaries(
    {},
    optional={
        "n_clusters": st.one_of(st.integers(-2, 5), st.text(max_size=3)),
        "n_init": st.one_of(st.integers(-1, 3), st.just("auto"), st.floats()),
        "max_iter": st.one_of(st.integers(-1, 50), st.booleans()),
        "tol": st.one_of(st.floats(-1, 1), st.just(float("nan"))),
        "init": st.sampled_from(["k-means++", "random", "nope", "farthest-first"]),
        "distance": st.sampled_from(["euclidean", "manhattan", "cosine", "nope"]),
        "colour": st.integers(),
    },
)


def _toml(values: dict) -> str:
    import json

    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float):
            text = {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
        elif isinstance(value, str):
            text = json.dumps(value)
        else:
            text = str(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _check(result, out: pathlib.Path | None = None) -> None:
    """Exit 0 having done the work (``fit``: its files in ``out``; ``compare``: its
    table), or exit 2 with a message."""
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.stderr.strip(), "an error without a message"
        assert "kmeansfw: error: " in result.stderr or "Error: " in result.stderr
    elif out is not None:  # fit: success means the results were written
        for name in ("labels.csv", "centroids.csv", "report.json"):
            assert (out / name).is_file(), f"exit 0 without {name}"
        assert json.loads((out / "report.json").read_text())
    else:  # compare: success means a summary table with a row
        lines = result.stdout.strip().splitlines()
        assert len(lines) >= 3 and lines[0].split()[0] == "dataset", result.stdout


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # few distinct rows: fine
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    command=st.sampled_from(["fit", "compare"]),
    data=st.one_of(st.sampled_from(NAMES), data_files),
    k=st.one_of(st.none(), argument),
    seed=st.one_of(st.none(), st.none(), argument),
    seeds=st.one_of(st.none(), st.none(), argument),
    config=st.one_of(st.none(), st.none(), config_values),
)
# the cases that once ended in exit 1 and a traceback, or exit 0 with nothing done
@example("fit", (".npy", b""), None, None, None, None)
@example("fit", (".csv", b"1e200,1\n-1e200,2\n3,4\n"), "2", "0", None, None)
@example("fit", (".csv", b"1,1e400\n2,3\n"), "1", None, None, None)
@example("fit", (".csv", b"1,x\n2,3\n"), "1", None, None, None)
@example("fit", ".", "2", None, None, None)
@example("compare", "iris", None, None, "0", None)
@example("compare", "iris", "0", None, "1", None)
@example("fit", "iris", "2", "-1", None, None)
def test_cli_arguments_and_files_end_in_success_or_exit_2(command, data, k, seed, seeds, config):
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        if isinstance(data, tuple):
            suffix, content = data
            path = folder / f"data{suffix}"
            path.write_bytes(content)
            data = str(path)
        config_path = folder / "config.toml"
        config_path.write_text(_toml(config or {"n_clusters": 2}))
        if command == "fit":
            args = ["fit", data, "--out", str(folder / "out"), "-q"]
            if config is not None:
                args += ["--config", str(config_path)]
            if seed is not None:
                args += ["--seed", seed]
        else:
            args = ["compare", str(config_path), "--dataset", data, "-q"]
            args += ["--seeds", seeds if seeds is not None else "1"]
        if k is not None:
            args += ["-k", k]
        _check(CliRunner().invoke(main, args), folder / "out" if command == "fit" else None)


def _parquet(columns: dict) -> bytes:
    import io

    pa = __import__("pyarrow")
    pq = __import__("pyarrow.parquet", fromlist=["write_table"])
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


parquet_cells = st.one_of(
    st.floats(-1e3, 1e3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
)


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # few distinct rows: fine
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    columns=st.one_of(
        # numeric columns of one length, with NaN, inf and nulls among the values
        st.integers(1, 3).flatmap(
            lambda width: st.integers(0, 8).flatmap(
                lambda n: st.lists(
                    st.lists(parquet_cells, min_size=n, max_size=n), min_size=width, max_size=width
                )
            )
        ).map(lambda cols: {f"c{i}": col for i, col in enumerate(cols)}),
        st.just({"name": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]}),  # a text column
        st.just({"x": [[1.0, 2.0], [3.0], []]}),  # a nested column
        st.just({"flag": [True, False, True], "x": [1.0, 2.0, 3.0]}),
    ),
    k=st.sampled_from(["1", "2", "4"]),
)
def test_parquet_files_with_bad_content_end_in_success_or_exit_2(columns, k):
    pytest.importorskip("pyarrow")
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "data.parquet"
        path.write_bytes(_parquet(columns))
        result = CliRunner().invoke(main, ["fit", str(path), "-k", k, "--out", tmp, "-q"])
        _check(result, pathlib.Path(tmp))
