"""Checkpoints: fingerprints of the data's content, reuse rules, atomic writes, validated
loads (issue 11, items 1 and 2), and a fuzz test over damaged checkpoint files."""

from __future__ import annotations

import functools
import io
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw import KMeans
from kmeansfw.core.errors import CheckpointError
from kmeansfw.workflow import checkpoint as ckpt
from kmeansfw.workflow.checkpoint import CheckpointWarning
from tests.test_hooks import SortedAssignment

#: Small data for the file-level tests: 60 x 2, three blobs.
X60 = make_blobs(60, n_features=2, centers=3, cluster_std=1.5, random_state=3)[0]
PARAMS = {"init": "random", "n_init": 3, "random_state": 0, "tol": 0}


class _Interrupt:
    """An observer that stops the process (like Ctrl-C) after a given iteration of a run."""

    def __init__(self, run, iteration):
        self.run, self.iteration = run, iteration

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        if state.run == self.run and state.iteration == self.iteration:
            raise KeyboardInterrupt


class _CountIterations:
    """An observer counting the iterations a fit runs."""

    def __init__(self):
        self.count = 0

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.count += 1


def _fit(folder, X=X60, k=3, **params):
    return KMeans(k, checkpoint=str(folder), **{**PARAMS, **params}).fit(X)


def _interrupted(folder, X=X60, run=1, iteration=2, **params):
    """A checkpoint of a fit stopped in run ``run`` after ``iteration`` (so it holds the
    current centroids and labels and a best run)."""
    with pytest.raises(KeyboardInterrupt):
        _fit(folder, X, observers=[_Interrupt(run, iteration)], **params)
    return folder


def _meta(folder):
    return json.loads((folder / "state.json").read_text())


def _arrays(folder):
    with np.load(folder / "state.npz", allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _reseal(folder, meta=None, arrays=None, npz_bytes=None):
    """Rewrite the checkpoint as a deliberate edit would: new arrays or npz bytes, new
    JSON, with the digest and checksum recomputed so the deeper checks are reached."""
    if arrays is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        npz_bytes = buffer.getvalue()
    if npz_bytes is not None:
        (folder / "state.npz").write_bytes(npz_bytes)
    meta = _meta(folder) if meta is None else meta
    meta["arrays"] = ckpt._hexdigest((folder / "state.npz").read_bytes())
    meta["checksum"] = ckpt._checksum(meta)
    (folder / "state.json").write_text(json.dumps(meta))


def _names(path):
    return re.escape(repr(str(path)))


# ---------------------------------------------------------------------- item 1: reuse
def test_checkpoint_for_other_data_of_the_same_shape_starts_afresh(tmp_path):
    Xb = make_blobs(500, n_features=3, centers=5, random_state=1)[0]
    params = {"init": "random", "n_init": 3, "random_state": 0, "tol": 0}
    folder = tmp_path / "ck"
    first = KMeans(20, checkpoint=str(folder), **params).fit(Xb)
    other = Xb * 100 + 7
    with pytest.warns(CheckpointWarning, match=r"different X\b"):
        refit = KMeans(20, checkpoint=str(folder), **params).fit(other)
    reference = KMeans(20, **params).fit(other)
    np.testing.assert_array_equal(refit.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(refit.labels_, reference.labels_)
    assert refit.inertia_ == reference.inertia_ != first.inertia_
    # the checkpoint now holds the new fit: the same call returns it without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        again = KMeans(20, checkpoint=str(folder), **params).fit(other)
    assert again.inertia_ == reference.inertia_


def test_one_changed_value_of_the_data_is_noticed(tmp_path):
    folder = tmp_path / "ck"
    _fit(folder)
    X = X60.copy()
    X[17, 1] = np.nextafter(X[17, 1], np.inf)
    with pytest.warns(CheckpointWarning, match="different X"):
        _fit(folder, X)


def test_checkpoint_for_other_sample_weights_starts_afresh(tmp_path):
    folder = tmp_path / "ck"
    KMeans(3, checkpoint=str(folder), **PARAMS).fit(X60)
    weights = np.ones(len(X60))
    KMeans(3, checkpoint=str(folder), **PARAMS).fit(X60, sample_weight=weights)  # same
    weights[:20] = 5.0
    with pytest.warns(CheckpointWarning, match="different sample_weight"):
        refit = KMeans(3, checkpoint=str(folder), **PARAMS).fit(X60, sample_weight=weights)
    reference = KMeans(3, **PARAMS).fit(X60, sample_weight=weights)
    np.testing.assert_array_equal(refit.cluster_centers_, reference.cluster_centers_)


def test_checkpoint_of_other_sparse_data_starts_afresh(tmp_path):
    folder = tmp_path / "ck"
    X = sp.csr_matrix(np.where(np.abs(X60) > 2, X60, 0.0))
    _fit(folder, X)
    Y = X.copy()
    Y.data[5] += 1.0
    with pytest.warns(CheckpointWarning, match="different X"):
        refit = _fit(folder, Y)
    np.testing.assert_array_equal(
        refit.cluster_centers_, KMeans(3, **PARAMS).fit(Y).cluster_centers_
    )


@pytest.mark.parametrize(
    ("change", "part"),
    [
        ({"max_iter": 50}, "max_iter"),
        ({"tol": 1e-3}, "tol"),
        ({"random_state": 1}, "random_state"),
        ({"convergence": "unchanged"}, "convergence"),
        ({"init": "farthest-first"}, "init"),
        ({"memory_budget_mb": 1.0}, "memory_budget_mb"),
    ],
)
def test_checkpoint_for_other_settings_starts_afresh(tmp_path, change, part):
    folder = tmp_path / "ck"
    _interrupted(folder)
    with pytest.warns(CheckpointWarning, match=f"different {part}"):
        refit = _fit(folder, **change)
    reference = KMeans(3, **{**PARAMS, **change}).fit(X60)
    np.testing.assert_array_equal(refit.cluster_centers_, reference.cluster_centers_)


def _init_from(offset):
    """An init function whose rows depend on a closure's value."""
    return lambda X, k, rng: np.array(X[offset : offset + k])


def _init_default(X, k, rng, offset=0):
    return np.array(X[offset : offset + k])


_OFFSET = 0


def _init_global(X, k, rng):
    return np.array(X[_OFFSET : _OFFSET + k])


def _init_rows(X, k, rng, *, rows):
    return np.array(X[rows])


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param(lambda: (_init_from(0), _init_from(30)), id="closure"),
        pytest.param(
            lambda: (_init_default, lambda X, k, rng, offset=30: np.array(X[offset : offset + k])),
            id="default",
        ),
        pytest.param(
            lambda: (
                functools.partial(_init_rows, rows=[0, 1, 2]),
                functools.partial(_init_rows, rows=[30, 31, 32]),
            ),
            id="partial",
        ),
    ],
)
def test_a_function_computing_something_else_is_another_setting(tmp_path, pair):
    # same code, other values in its closure, defaults or partial arguments: another init,
    # so a finished checkpoint must not be returned as its result
    first, second = pair()
    folder = tmp_path / "ck"
    params = {"n_init": 1, "random_state": 0, "max_iter": 1}  # results that show the init
    _fit(folder, init=first, **params)
    with pytest.warns(CheckpointWarning, match="different init"):
        refit = _fit(folder, init=second, **params)
    reference = KMeans(3, init=second, **params).fit(X60)
    np.testing.assert_array_equal(refit.cluster_centers_, reference.cluster_centers_)
    other = KMeans(3, init=first, **params).fit(X60)
    assert not np.array_equal(refit.cluster_centers_, other.cluster_centers_)


def test_an_init_given_as_a_dataframe_is_told_apart_by_its_values(tmp_path):
    import pandas as pd

    folder = tmp_path / "ck"
    params = {"n_init": 1, "random_state": 0, "max_iter": 1}
    _fit(folder, init=pd.DataFrame(X60[:3]), **params)
    with pytest.warns(CheckpointWarning, match="different init"):
        refit = _fit(folder, init=pd.DataFrame(X60[30:33]), **params)
    fresh = KMeans(3, init=X60[30:33], **params).fit(X60)
    np.testing.assert_array_equal(refit.cluster_centers_, fresh.cluster_centers_)
    assert ckpt.value_digest(pd.DataFrame(X60[:3])) == ckpt.value_digest(X60[:3])


def test_a_function_reading_a_changed_global_is_another_setting(tmp_path, monkeypatch):
    folder = tmp_path / "ck"
    params = {"init": _init_global, "n_init": 1, "random_state": 0, "max_iter": 1}
    _fit(folder, **params)
    monkeypatch.setattr(sys.modules[__name__], "_OFFSET", 30)
    with pytest.warns(CheckpointWarning, match="different init"):
        refit = _fit(folder, **params)
    moved = KMeans(3, **params).fit(X60)
    np.testing.assert_array_equal(refit.cluster_centers_, moved.cluster_centers_)
    monkeypatch.setattr(sys.modules[__name__], "_OFFSET", 0)
    assert not np.array_equal(moved.cluster_centers_, KMeans(3, **params).fit(X60).cluster_centers_)


_SOURCE = """
import numpy as np

NAMES = {"alpha", "beta", "gamma", "delta", "epsilon"}


def distance(X, C, metric="sq"):
    assert metric in NAMES and metric not in {"l1", "cosine", "chebyshev", "l3"}
    square = lambda a: a * a  # a nested code object
    return np.sqrt(square(X[:, None, :] - C[None, :, :]).sum(axis=2))
"""


def test_a_function_is_described_alike_in_every_process(tmp_path):
    # sets (a global's, a literal's frozenset) print in an order that Python's hash seed
    # changes from one process to the next, and a nested code object's repr holds its
    # address: a checkpoint written by one process must resume in the next
    (tmp_path / "studymod.py").write_text(_SOURCE.replace('"sq"', '"alpha"'))
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import studymod;"
        "from kmeansfw.workflow.checkpoint import value_digest;"
        "print(value_digest(studymod.distance))"
    )
    digests = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1 and len(digests.pop()) == 32


def test_the_same_function_resumes_and_its_description_is_stable():
    # one function, described twice (and a rebuilt closure with the same values): one
    # digest, so a checkpoint it wrote resumes; nested code (the lambda) by content
    assert ckpt.value_digest(_init_from(5)) == ckpt.value_digest(_init_from(5))
    assert ckpt.value_digest(_init_from(5)) != ckpt.value_digest(_init_from(6))
    assert ckpt.value_digest(_init_from) == ckpt.value_digest(_init_from)
    described = json.dumps(ckpt._canonical(_init_from))
    assert " at 0x" not in described  # no address of a nested code object


@pytest.mark.parametrize("written", ["nearest", "hamerly", {"name": "yinyang", "max_groups": 2}])
def test_a_checkpoint_resumes_under_another_exact_assignment(tmp_path, written):
    # nearest was the default before auto: the same labels, so the same fit
    folder = tmp_path / "ck"
    _interrupted(folder, assignment=written)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        resumed = _fit(folder)  # the default assignment, auto
    reference = KMeans(3, **PARAMS).fit(X60)
    np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
    with pytest.warns(CheckpointWarning, match="different assignment"):
        _fit(folder, assignment=SortedAssignment())  # a user's: a setting of its own


def test_finished_checkpoint_without_a_seed_is_not_reused(tmp_path):
    folder = tmp_path / "ck"
    _fit(folder, random_state=None)
    counter = _CountIterations()
    with pytest.warns(CheckpointWarning, match="random_state=None"):
        _fit(folder, random_state=None, observers=[counter])
    assert counter.count > 0  # it fitted, instead of returning the old result


def test_finished_checkpoint_with_the_same_seed_is_reused(tmp_path):
    folder = tmp_path / "ck"
    first = _fit(folder)
    counter = _CountIterations()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        again = _fit(folder, observers=[counter])
    assert counter.count == 0
    np.testing.assert_array_equal(again.cluster_centers_, first.cluster_centers_)


def test_interrupted_fit_without_a_seed_resumes(tmp_path):
    folder = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        _fit(folder, random_state=None, observers=[_Interrupt(1, 2)])
    counter = _CountIterations()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        _fit(folder, random_state=None, observers=[counter])
    assert _meta(folder)["next_run"] == 3 and counter.count > 0


def test_fingerprint_hashes_content_block_by_block(monkeypatch):
    X = np.random.default_rng(0).normal(size=(1000, 3))
    whole = ckpt.data_digest(X)
    monkeypatch.setattr(ckpt, "HASH_BLOCK_BYTES", 240)  # ten rows at a time
    assert ckpt.data_digest(X) == whole
    assert ckpt.data_digest(X.astype(np.float32)) != whole
    assert ckpt.data_digest(sp.csr_matrix(X)) != whole
    parts = ckpt.fingerprint(KMeans(3).get_config().to_dict(), X)
    assert {"X", "sample_weight", "random_state", "n_clusters", "convergence"} <= set(parts)


# ---------------------------------------------------------------------- item 2: damage
def _truncate_npz(folder):
    path = folder / "state.npz"
    path.write_bytes(path.read_bytes()[:100])
    return path


def _empty_npz(folder):
    (folder / "state.npz").write_bytes(b"")
    return folder / "state.npz"


def _resealed_truncated_npz(folder):
    _reseal(folder, npz_bytes=(folder / "state.npz").read_bytes()[:300])
    return folder / "state.npz"


def _resealed_empty_npz(folder):
    _reseal(folder, npz_bytes=b"")
    return folder / "state.npz"


def _npz_without_arrays(folder):
    _reseal(folder, arrays={})
    return folder / "state.npz"


def _missing_npz(folder):
    (folder / "state.npz").unlink()
    return folder / "state.npz"


def _json_without(key):
    def damage(folder):
        meta = _meta(folder)
        del meta[key]
        (folder / "state.json").write_text(json.dumps(meta))
        return folder / "state.json"

    damage.__name__ = f"_json_without_{key}"
    return damage


def _truncated_json(folder):
    path = folder / "state.json"
    path.write_text(path.read_text()[:40])
    return path


def _json_list(folder):
    (folder / "state.json").write_text("[1, 2, 3]")
    return folder / "state.json"


def _json_not_utf8(folder):
    (folder / "state.json").write_bytes(b"\xff\xfe{}")
    return folder / "state.json"


def _edited(**changes):
    """Edit state.json's keys (nested with 'a.b'), resealed so the checksum is right."""

    def damage(folder):
        meta = _meta(folder)
        for dotted, value in changes.items():
            *parents, key = dotted.split(".")
            target = meta
            for parent in parents:
                target = target[parent]
            target[key] = value
        meta["checksum"] = ckpt._checksum(meta)  # state.npz unchanged: its digest holds
        (folder / "state.json").write_text(json.dumps(meta))
        return folder / "state.json"

    return damage


def _edited_unsealed(folder):
    meta = _meta(folder)
    meta["best"]["objective"] *= 0.5
    (folder / "state.json").write_text(json.dumps(meta))
    return folder / "state.json"


def _array(name, make):
    def damage(folder):
        arrays = _arrays(folder)
        arrays[name] = make(arrays[name])
        _reseal(folder, arrays=arrays)
        return folder / "state.npz"

    return damage


def _with_nan(a):
    a = a.astype(float)
    a.flat[0] = np.nan
    return a


def _array_unsealed(folder):
    arrays = _arrays(folder)
    arrays["centroids"] = arrays["centroids"][:2]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (folder / "state.npz").write_bytes(buffer.getvalue())
    return folder / "state.npz"


DAMAGE = {
    "truncated npz": (_truncate_npz, "not the file state.json was written with"),
    "empty npz": (_empty_npz, "not the file state.json was written with"),
    "truncated npz, resealed": (_resealed_truncated_npz, "cannot be read as .npz"),
    "empty npz, resealed": (_resealed_empty_npz, "cannot be read as .npz"),
    "npz without arrays": (_npz_without_arrays, "has no array 'centroids'"),
    "missing npz": (_missing_npz, "is missing"),
    "npz edited, not resealed": (_array_unsealed, "not the file state.json was written with"),
    "truncated json": (_truncated_json, "not valid JSON"),
    "json list": (_json_list, "not an object"),
    "json not utf-8": (_json_not_utf8, "not UTF-8"),
    "json edited, not resealed": (_edited_unsealed, "checksum does not match"),
    **{
        f"json without {key}": (_json_without(key), f"has no key '{key}'")
        for key in (
            "format",
            "fingerprint",
            "next_run",
            "iteration",
            "rng_state",
            "scratch",
            "arrays",
            "checksum",
            "fitted",
        )
    },
    "fitted not an object": (_edited(fitted=[1]), "'fitted' state that is not"),
    "fitted values not plain": (
        _edited(fitted={"values": {"x": float("inf")}, "arrays": {}}),
        "fitted 'values'",
    ),
    "fitted array name foreign": (
        _edited(fitted={"values": {}, "arrays": {"euclidean.mean": "centroids"}}),
        "do not name fitted arrays",
    ),
    "fitted array missing": (
        lambda folder: _edited(fitted={"values": {}, "arrays": {"euclidean.mean": "fitted_7"}})(
            folder
        ).with_name("state.npz"),
        "has no array 'fitted_7'",
    ),
    "fitted array NaN": (_array("fitted_0", _with_nan), "NaN or infinity in fitted array"),
    "fitted array as text": (
        _array("fitted_0", lambda a: a.astype(str)),
        "fitted array 'fitted_0' of dtype",
    ),
    "json without best": (_json_without("best"), "has no 'best' run"),
    "json without best.run": (
        lambda folder: _edited(
            best={"objective": 1.0, "n_iter": 2, "converged": True, "stop_reason": "converged"}
        )(folder),
        "has no best key 'run'",
    ),
    "bad generator state": (
        _edited(**{"rng_state.state.state": "not a number"}),
        "'rng_state' that PCG64 cannot restore",
    ),
    "other generator": (
        _edited(**{"rng_state.bit_generator": "MT19937"}),
        "'rng_state' that PCG64 cannot restore",
    ),
    "generator state not an object": (_edited(rng_state=[1, 2]), "not a generator state"),
    "run index out of range": (_edited(next_run=99), r"'next_run' = 99, outside \[0, 3\]"),
    "run index negative": (_edited(next_run=-1), "'next_run' = -1, outside"),
    "run index not an integer": (_edited(next_run=1.5), "'next_run' = 1.5, not an integer"),
    "run index a boolean": (_edited(next_run=True), "'next_run' = True, not an integer"),
    "iteration out of range": (_edited(iteration=301), r"'iteration' = 301, outside \[1, 300\]"),
    "iteration of a finished fit": (_edited(next_run=3), "iteration of run 3"),
    "best run out of range": (_edited(**{"best.run": 1}), r"best 'run' = 1, outside \[0, 0\]"),
    "best objective NaN": (_edited(**{"best.objective": float("nan")}), "not a finite number"),
    "best objective text": (_edited(**{"best.objective": "1"}), "not a finite number"),
    "best converged not boolean": (_edited(**{"best.converged": 1}), "not a boolean"),
    "best stop reason unknown": (_edited(**{"best.stop_reason": "tired"}), "'stop_reason'"),
    "best before any run": (_edited(next_run=0), "best run before any run finished"),
    "scratch not plain": (_edited(scratch={"x": float("inf")}), "'scratch'"),
    "fingerprint not digests": (_edited(fingerprint=[1]), "'fingerprint' that is not"),
    "unknown format": (_edited(format=99), "has format 99"),
    "format text": (_edited(format="3"), "not a kmeansfw checkpoint format"),
    "digest not text": (_edited(arrays=5), "'arrays' = 5, not a digest"),
    "centroids of the wrong shape": (
        _array("centroids", lambda a: a[:2]),
        r"'centroids' of shape \(2, 2\), expected \(3, 2\)",
    ),
    "centroids NaN": (_array("centroids", _with_nan), "NaN or infinity in 'centroids'"),
    "centroids of another dtype": (
        _array("centroids", lambda a: a.astype(np.float32)),
        "'centroids' of dtype float32, expected dtype float64",
    ),
    "centroids as text": (_array("centroids", lambda a: a.astype(str)), "'centroids' of dtype"),
    "best centroids NaN": (_array("best_centroids", _with_nan), "in 'best_centroids'"),
    "centroids too large": (
        _array("centroids", lambda a: a * 1e300),
        "too large for distances",
    ),
    "labels out of range": (_array("labels", lambda a: a + 3), r"'labels' outside \[0, 3\)"),
    "labels negative": (_array("labels", lambda a: a - 1), r"'labels' outside \[0, 3\)"),
    "labels of floats": (_array("labels", lambda a: a.astype(float)), "not an integer dtype"),
    "labels too short": (_array("labels", lambda a: a[:-1]), r"shape \(59,\), expected \(60,\)"),
    "best labels out of range": (_array("best_labels", lambda a: a + 7), "'best_labels'"),
    "best costs negative": (_array("best_costs", lambda a: -a - 1), "negative values"),
    "pickled object array": (
        _array("labels", lambda a: np.array([None] * len(a), dtype=object)),
        "cannot be read as .npz",
    ),
}


def test_a_checkpoint_path_that_cannot_be_a_folder_fails_before_the_first_iteration(tmp_path):
    counter = _CountIterations()
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    with pytest.raises(CheckpointError, match="is a file, not a folder"):
        _fit(taken, observers=[counter])
    with pytest.raises(CheckpointError, match="cannot create the checkpoint folder"):
        _fit(taken / "inside", observers=[counter])
    assert counter.count == 0
    assert taken.read_text() == "not a folder"


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_checkpoint_raises_one_checkpoint_error_naming_the_file(tmp_path, damage):
    make, message = damage
    folder = _interrupted(tmp_path / "ck")
    path = make(folder)
    with pytest.raises(CheckpointError, match=_names(path)) as info:
        _fit(folder)
    assert re.search(message, str(info.value)), str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


@pytest.mark.parametrize("version", [1, 3, 4])
def test_checkpoint_of_an_older_format_is_replaced_with_a_warning(tmp_path, version):
    # format 3 lacks the Euclidean origin of whole-number data, format 4 mahalanobis's:
    # their resume was refused as a state changed since it was written; now an older
    # format, fitted afresh
    folder = _interrupted(tmp_path / "ck")
    _edited(format=version)(folder)
    with pytest.warns(CheckpointWarning, match=f"older kmeansfw \\(format {version}, now 5"):
        refit = _fit(folder)
    np.testing.assert_array_equal(
        refit.cluster_centers_, KMeans(3, **PARAMS).fit(X60).cluster_centers_
    )


def test_checkpoint_folder_without_state_json_starts_afresh(tmp_path):
    folder = _interrupted(tmp_path / "ck")
    (folder / "state.json").unlink()  # a first write cut between the two files
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        refit = _fit(folder)
    np.testing.assert_array_equal(
        refit.cluster_centers_, KMeans(3, **PARAMS).fit(X60).cluster_centers_
    )


def test_resumed_fit_from_a_valid_edit_still_matches(tmp_path):
    """The validation accepts every state the writer produces (labels of any integer
    dtype included)."""
    folder = _interrupted(tmp_path / "ck")
    arrays = _arrays(folder)
    arrays["labels"] = arrays["labels"].astype(np.int32)
    _reseal(folder, arrays=arrays)
    resumed = _fit(folder)
    reference = KMeans(3, **PARAMS).fit(X60)
    np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
    assert resumed.inertia_ == reference.inertia_


# ---------------------------------------------------------------------- atomic writes
class _Boom(OSError):
    pass


def _caused_by(exc, kind):
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _check_failed_write_kept_the_checkpoint(folder, before):
    assert _snapshot(folder) == before  # same files, same bytes, no temporary left
    resumed = _fit(folder)
    reference = KMeans(3, **PARAMS).fit(X60)
    np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
    assert resumed.inertia_ == reference.inertia_


def test_failing_npz_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    folder = _interrupted(tmp_path / "ck")
    before = _snapshot(folder)

    def savez_midway(file, *args, **kwds):
        handle = open(file, "wb") if isinstance(file, str | pathlib.Path) else file
        handle.write(b"PK\x03\x04 half an npz")
        raise _Boom("disk full")

    monkeypatch.setattr(np, "savez", savez_midway)
    with pytest.raises(BaseException) as info:  # noqa: B017 - whatever wraps it
        _fit(folder)
    assert _caused_by(info.value, _Boom)
    monkeypatch.undo()
    _check_failed_write_kept_the_checkpoint(folder, before)


def test_failing_json_write_leaves_both_files_intact(tmp_path, monkeypatch):
    """The npz is not replaced before the JSON that goes with it has been written."""
    folder = _interrupted(tmp_path / "ck")
    before = _snapshot(folder)
    dumps = json.dumps

    def failing_dumps(obj, *args, **kwds):
        if isinstance(obj, dict) and "next_run" in obj:
            raise _Boom("disk full")
        return dumps(obj, *args, **kwds)

    monkeypatch.setattr(json, "dumps", failing_dumps)
    with pytest.raises(BaseException) as info:  # noqa: B017 - whatever wraps it
        _fit(folder)
    assert _caused_by(info.value, _Boom)
    monkeypatch.undo()
    _check_failed_write_kept_the_checkpoint(folder, before)


def test_failing_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    folder = _interrupted(tmp_path / "ck")
    before = _snapshot(folder)

    def failing_replace(src, dst):
        raise _Boom("read-only file system")

    monkeypatch.setattr(ckpt.os, "replace", failing_replace)
    with pytest.raises(BaseException) as info:  # noqa: B017 - whatever wraps it
        _fit(folder)
    assert _caused_by(info.value, _Boom)
    monkeypatch.undo()
    _check_failed_write_kept_the_checkpoint(folder, before)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_written_files_get_plain_modes_and_keep_changed_ones(tmp_path):
    # a checkpoint (or an experiment's rewritten table) reads like a file made by open():
    # 0o666 less the umask, not a temporary file's owner-only mode; a replaced file
    # keeps the mode its owner gave it
    umask = os.umask(0o027)
    try:
        new, kept = tmp_path / "new.bin", tmp_path / "kept.bin"
        kept.write_bytes(b"old")
        kept.chmod(0o604)
        ckpt.replace_files([(new, b"a"), (kept, b"b")])
    finally:
        os.umask(umask)
    assert new.stat().st_mode & 0o777 == 0o640 and new.read_bytes() == b"a"
    assert kept.stat().st_mode & 0o777 == 0o604 and kept.read_bytes() == b"b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.bin", "new.bin"]


# ---------------------------------------------------------------------- fuzz
_TEMPLATE: dict[str, bytes] = {}


def _template() -> dict[str, bytes]:
    """The files of an interrupted checkpoint (run 1, iteration 2), made once."""
    if not _TEMPLATE:
        with tempfile.TemporaryDirectory() as tmp:
            folder = pathlib.Path(tmp) / "ck"
            with pytest.raises(KeyboardInterrupt):
                _fit(folder, max_iter=20, observers=[_Interrupt(1, 2)])
            _TEMPLATE.update(_snapshot(folder))
    return _TEMPLATE


_JSON_PATHS = [
    ("format",),
    ("fingerprint",),
    ("fingerprint", "X"),
    ("fingerprint", "n_clusters"),
    ("next_run",),
    ("iteration",),
    ("rng_state",),
    ("rng_state", "bit_generator"),
    ("rng_state", "state"),
    ("rng_state", "state", "state"),
    ("rng_state", "state", "inc"),
    ("rng_state", "has_uint32"),
    ("rng_state", "uinteger"),
    ("scratch",),
    ("best",),
    ("best", "objective"),
    ("best", "n_iter"),
    ("best", "converged"),
    ("best", "run"),
    ("arrays",),
    ("checksum",),
]
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, 2, 3, 4, 20, 21, -1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)
_ARRAY_NAMES = ["centroids", "labels", "best_centroids", "best_labels", "best_costs"]
_SHAPES = [(), (0,), (3,), (3, 2), (2, 3), (2, 2), (59,), (60,), (61,), (60, 1), (3, 2, 1)]
_DTYPES = ["<f8", "<f4", ">f8", "<f2", "<i8", "<i4", "<u1", "|b1", "<c16", "<U2"]


@st.composite
def _new_array(draw):
    shape = draw(st.sampled_from(_SHAPES))
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    size = int(np.prod(shape))
    pool = [0, 1, 2, 3, -1, 0.5, 1e300, -1e300, float("nan"), float("inf")]
    values = draw(st.lists(st.sampled_from(pool), min_size=size, max_size=size))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype.kind in "iub":
            values = [0 if not np.isfinite(v) else int(max(min(v, 100), -100)) for v in values]
        return np.array(values).astype(dtype).reshape(shape)


_MUTATIONS = st.one_of(
    st.tuples(
        st.just("truncate"), st.sampled_from(["state.json", "state.npz"]), st.integers(0, 10**5)
    ),
    st.tuples(
        st.just("bytes"),
        st.sampled_from(["state.json", "state.npz"]),
        st.lists(st.tuples(st.integers(0, 10**5), st.integers(0, 255)), min_size=1, max_size=6),
    ),
    st.tuples(st.just("drop"), st.sampled_from(_JSON_PATHS)),
    st.tuples(st.just("set"), st.sampled_from(_JSON_PATHS), _JSON_VALUES),
    st.tuples(st.just("array"), st.sampled_from(_ARRAY_NAMES), st.none() | _new_array()),
)


def _mutate(folder: pathlib.Path, mutation, reseal: bool) -> None:
    kind, target, *rest = mutation
    if kind in ("truncate", "bytes"):
        path = folder / target
        data = bytearray(path.read_bytes())
        if kind == "truncate":
            del data[rest[0] % (len(data) + 1) :]
        else:
            for position, value in rest[0]:
                data[position % len(data)] = value
        path.write_bytes(bytes(data))
        if reseal and target == "state.npz":
            _reseal(folder)
        return
    if kind == "array":
        arrays = _arrays(folder)
        if rest[0] is None:
            arrays.pop(target, None)
        else:
            arrays[target] = rest[0]
        if reseal:
            _reseal(folder, arrays=arrays)
        else:
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            (folder / "state.npz").write_bytes(buffer.getvalue())
        return
    meta = _meta(folder)
    node = meta
    for key in target[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        if kind == "drop":
            node.pop(target[-1], None)
        else:
            node[target[-1]] = rest[0]
    if reseal:
        _reseal(folder, meta)
    else:
        (folder / "state.json").write_text(json.dumps(meta))


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang("a fit from a damaged checkpoint ran for more than 10 s")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutations=st.lists(_MUTATIONS, min_size=1, max_size=3), reseal=st.booleans())
def test_fuzz_damaged_checkpoints_end_in_a_fit_or_a_checkpoint_error(mutations, reseal):
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp) / "ck"
        folder.mkdir()
        for name, data in _template().items():
            (folder / name).write_bytes(data)
        for mutation in mutations:
            try:
                _mutate(folder, mutation, reseal)
            except Exception:  # the test itself cannot read the damaged files: stop there
                break
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(10)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = _fit(folder, max_iter=20)
        except CheckpointError as exc:
            assert str(folder) in str(exc)
        else:
            assert result.cluster_centers_.shape == (3, 2)
            assert np.isfinite(result.cluster_centers_).all()
            assert result.labels_.shape == (60,)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


class _LearnCounter(kmeansfw.Distance):
    """A squared, scaled Euclidean distance that learns its scale from the training data
    and counts how often it is asked to."""

    name = "learn-counter"
    natural_update = "mean"
    squared = True
    calls = 0

    @kmeansfw.hookimpl
    def kmeansfw_learn(self, data):
        type(self).calls += 1
        return {"learn-counter.scale": np.asarray(data.X).std(axis=0) + 1.0}

    def pairwise(self, X, centroids, data, cache):
        scale = data.fitted["learn-counter.scale"]
        diff = X[:, None, :] / scale - centroids[None, :, :] / scale
        return np.sqrt((diff**2).sum(axis=2))


def test_checkpoint_saves_the_fitted_state_and_a_resumed_fit_uses_it(tmp_path):
    folder = tmp_path / "ck"
    params = {"distance": "mahalanobis", "update": "mean"}
    full = _fit(tmp_path / "full", **params)
    with pytest.raises(KeyboardInterrupt):
        _fit(folder, observers=[_Interrupt(1, 2)], **params)
    meta = _meta(folder)
    assert set(meta["fitted"]["arrays"]) == set(full.fitted_state_)
    saved = _arrays(folder)
    for key, name in meta["fitted"]["arrays"].items():
        np.testing.assert_array_equal(saved[name], full.fitted_state_[key])
    resumed = _fit(folder, **params)
    np.testing.assert_array_equal(resumed.cluster_centers_, full.cluster_centers_)
    assert resumed.inertia_ == full.inertia_
    for key, value in full.fitted_state_.items():
        np.testing.assert_array_equal(resumed.fitted_state_[key], value)


def test_a_resumed_fit_refuses_a_saved_state_changed_since(tmp_path):
    # the saved learned state passes every check of form; rewritten consistently (its
    # digests recomputed), it was taken as it was: a forged mean of 1e300 gave inertia 0
    folder = tmp_path / "ck"
    params = {"distance": _LearnCounter()}
    full = _fit(tmp_path / "full", **params)
    with pytest.raises(KeyboardInterrupt):
        _fit(folder, observers=[_Interrupt(1, 2)], **params)
    untouched = _snapshot(folder)
    resumed = _fit(folder, **params)  # learned again, and the same as the saved state
    np.testing.assert_array_equal(
        resumed.fitted_state_["learn-counter.scale"], full.fitted_state_["learn-counter.scale"]
    )
    assert resumed.inertia_ == full.inertia_
    for name, content in untouched.items():  # the interrupted checkpoint again
        (folder / name).write_bytes(content)
    meta, arrays = _meta(folder), _arrays(folder)
    name = meta["fitted"]["arrays"]["learn-counter.scale"]
    arrays[name] = arrays[name] * 2.0
    _reseal(folder, meta, arrays)
    with pytest.raises(CheckpointError, match="learned state .*'learn-counter.scale'"):
        _fit(folder, **params)


@pytest.mark.parametrize("edit", ["centroids", "objective", "costs"])
def test_a_finished_run_changed_since_it_was_written_is_refused(tmp_path, edit):
    # a finished checkpoint's best run is returned without fitting: rewritten
    # consistently, any centroids and objective came back as the fit
    folder = tmp_path / "ck"
    _fit(folder)
    meta, arrays = _meta(folder), _arrays(folder)
    if edit == "centroids":
        arrays["best_centroids"] = np.full_like(arrays["best_centroids"], 5.0)
    elif edit == "objective":
        meta["best"]["objective"] = 1.0
    else:
        arrays["best_costs"] = arrays["best_costs"] * 0.5
    _reseal(folder, meta, arrays)
    with pytest.raises(CheckpointError, match="its best run has"):
        _fit(folder)


class _LearnsScalars(kmeansfw.Distance):
    """Squared Euclidean distance learning NumPy scalars (saved as Python numbers)."""

    name = "learns-scalars"
    natural_update = "mean"
    squared = True

    @kmeansfw.hookimpl
    def kmeansfw_learn(self, data):
        X = np.asarray(data.X)
        return {"learns-scalars.std": X.std(), "learns-scalars.wide": np.bool_(X.shape[1] > 1)}

    @kmeansfw.hookimpl
    def kmeansfw_cost(self, X, centroids):
        return cdist(X, centroids, "sqeuclidean").astype(X.dtype)


def test_a_resumed_fit_takes_learned_numpy_scalars_and_last_bits_as_the_same(tmp_path):
    # saved as Python numbers, learned again as NumPy scalars: the same values; an array
    # learned again with other last bits (another machine's BLAS) is the same too
    folder = tmp_path / "ck"
    params = {"distance": _LearnsScalars()}
    full = _fit(tmp_path / "full", **params)
    with pytest.raises(KeyboardInterrupt):
        _fit(folder, observers=[_Interrupt(1, 2)], **params)
    assert _fit(folder, **params).inertia_ == full.inertia_
    folder = tmp_path / "ck2"
    params = {"distance": _LearnCounter()}
    with pytest.raises(KeyboardInterrupt):
        _fit(folder, observers=[_Interrupt(1, 2)], **params)
    meta, arrays = _meta(folder), _arrays(folder)
    name = meta["fitted"]["arrays"]["learn-counter.scale"]
    arrays[name] = arrays[name] * (1 + 1e-12)
    _reseal(folder, meta, arrays)
    resumed = _fit(folder, **params)  # taken, and the saved values used
    np.testing.assert_array_equal(resumed.fitted_state_["learn-counter.scale"], arrays[name])

