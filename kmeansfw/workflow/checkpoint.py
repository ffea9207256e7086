"""Checkpoint and resume long fits, as plain data (``state.npz`` + ``state.json``).

A checkpoint is a folder holding the arrays (centroids, labels, the best run so far) in an
``.npz`` read with ``allow_pickle=False`` and everything else (iteration, run, the
generator's state, the criteria's memory, a fingerprint of the data and configuration) in
JSON: loading one never runs code.

* **Fingerprint.**  A checkpoint records digests of the data's *content* (every byte of
  ``X`` and of the sample weights, hashed block by block) and of every setting that
  changes the result (:data:`FINGERPRINT_KEYS` and the seed).  A checkpoint written for
  other data or settings is not resumed: the fit starts afresh with a
  :class:`CheckpointWarning` and replaces it.  A *finished* checkpoint is returned as the
  result only when data, settings and seed all match; with ``random_state=None`` (no
  seed to repeat) a finished checkpoint is never reused.
* **Atomic writes.**  Both files are written in full to temporary files first and then
  renamed over the old ones, so a fit killed or failing while writing leaves the previous
  checkpoint intact.  ``state.json`` records the digest of the ``state.npz`` it belongs to
  and a checksum of its own content, so a pair that is out of step or changed is noticed.
* **Validated loads.**  Every key, type, range, shape and value is checked before a fit
  resumes; anything wrong raises one :class:`~kmeansfw.core.errors.CheckpointError` naming
  the file and the fault.  What can be recomputed is compared with the data too, so that
  a checkpoint rewritten consistently (its digests recomputed) is refused as well: the
  learned state (:func:`check_restored`) and a finished best run's costs and objective
  (:func:`check_best`).
* **Fitted state.**  What the strategies learned from the training data
  (``kmeansfw_learn``: the Euclidean mean, Mahalanobis' factor, ...) is saved with the
  state, arrays in the ``.npz`` and plain values in the JSON, and a resumed fit uses the
  saved values, after learning them again to compare (the data's fingerprint matched,
  so a deterministic ``kmeansfw_learn`` gives the same values, up to another machine's
  last bits).  A learned value that is neither an array of numbers nor plain JSON cannot
  be saved: the checkpoint then records that the state is learned afresh on resume.

A fit resumed from a checkpoint draws the same random numbers and computes the same
centroids as the uninterrupted fit.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import functools
import hashlib
import io
import json
import math
import os
import pathlib
import secrets
import shutil
import stat
import types
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from kmeansfw.core.catalog import BUILTIN, CATALOG, array_like
from kmeansfw.core.data import FitData, Fitted, is_sparse
from kmeansfw.core.errors import CheckpointError, warn
from kmeansfw.core.markers import hookimpl
from kmeansfw.engine.loop import STOP_REASONS, FitResult, FitState

#: Version of the files' layout; older checkpoints are not resumed (a fresh fit replaces
#: them, with a warning), newer or unknown ones raise a CheckpointError.  4: the Euclidean
#: distances' learned state may name the point rows are compared on
#: (``euclidean.origin``: far rows dragging the mean, data of whole numbers), which a
#: format 3 checkpoint of such data lacks (its resume was refused as a changed state).
#: 5: ``mahalanobis`` learns the point it centers rows on (``mahalanobis.origin``).
FORMAT = 5
#: Config keys that must match for a checkpoint to be resumed: every setting that changes
#: the result (observers, ``n_threads``, ``history`` and ``checkpoint_every`` may change,
#: e.g. a progress bar added when resuming).  The seed (``random_state``) and the data
#: are part of the fingerprint too.
FINGERPRINT_KEYS = (
    "n_clusters",
    "init",
    "distance",
    "assignment",
    "update",
    "empty",
    "convergence",
    "n_init",
    "max_iter",
    "tol",
    "memory_budget_mb",  # the block plan, and so the order of floating-point sums
)
#: Bytes hashed at a time: the data is never copied whole to fingerprint it.
HASH_BLOCK_BYTES = 4 << 20
_JSON_NAME, _ARRAYS_NAME = "state.json", "state.npz"
_ARRAY_TAG = "__ndarray__"
_FITTED_PREFIX = "fitted_"


class CheckpointWarning(UserWarning):
    """A checkpoint was not resumed (other data, settings or seed, or an older format):
    the fit starts afresh and replaces it."""


def _warn(message: str) -> None:
    """Warn with a :class:`CheckpointWarning` located in the user's program
    (:func:`kmeansfw.core.errors.warn`)."""
    warn(message, CheckpointWarning)


# ---------------------------------------------------------------------- fingerprint
def _digest() -> Any:
    return hashlib.blake2b(digest_size=16)


def _hash_array(h: Any, array: np.ndarray) -> None:
    """Feed ``array``'s shape, dtype and bytes to ``h``, a block of rows at a time."""
    array = np.asarray(array)
    h.update(json.dumps([list(array.shape), array.dtype.str]).encode())
    if array.dtype.hasobject:
        h.update(repr(array.tolist()).encode())
        return
    if array.ndim == 0 or array.size == 0:
        h.update(array.tobytes())
        return
    row_bytes = max(1, array[0].nbytes)
    step = max(1, HASH_BLOCK_BYTES // row_bytes)
    for start in range(0, array.shape[0], step):
        block = np.ascontiguousarray(array[start : start + step])
        h.update(block.reshape(-1).view(np.uint8))


def data_digest(X: Any) -> str:
    """A digest of the content of ``X`` (dense array or sparse matrix), in bounded memory.

    A sparse matrix is hashed as CSR (its ``data``, ``indices`` and ``indptr``).
    """
    h = _digest()
    if is_sparse(X):
        if X.format != "csr":
            X = X.tocsr()
        h.update(json.dumps(["csr", list(X.shape)]).encode())
        for part in (X.data, X.indices, X.indptr):
            _hash_array(h, part)
    else:
        h.update(b"dense")
        _hash_array(h, np.asarray(X))
    return h.hexdigest()


#: How deep :func:`_canonical` describes nested values (a function's helpers take three
#: levels each: its description, its globals, the helper), past which only a type.
_MAX_DEPTH = 12


def _canonical(value: Any, depth: int = 0) -> Any:
    """A JSON-able description of a configuration value that is equal for equal values
    (arrays by content, strategy objects by type and fields, functions by code)."""
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):  # 0 and 0.0 (say, tol from TOML or Python) are one value
        if not math.isfinite(value):
            return repr(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, np.generic):
        return _canonical(value.item(), depth)
    if isinstance(value, np.ndarray):
        h = _digest()
        _hash_array(h, value)
        return {"ndarray": h.hexdigest()}
    if is_sparse(value):
        return {"sparse": data_digest(value)}
    if array_like(value):  # a DataFrame, a tensor: by its values, as an ndarray
        try:
            values = np.asarray(value)
        except Exception:  # noqa: BLE001 - described below, by type and fields
            values = None
        if values is not None and values.dtype != object:
            return _canonical(values, depth)
    if isinstance(value, set | frozenset):  # in an order that no hash seed changes
        items = [_canonical(v, depth + 1) for v in value]
        return {"set": sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=repr))}
    if depth > _MAX_DEPTH:
        return {"type": name}
    if isinstance(value, np.random.Generator):
        return {"Generator": _canonical(value.bit_generator.state, depth + 1)}
    if isinstance(value, np.random.RandomState):
        return {"RandomState": _canonical(value.get_state(legacy=False), depth + 1)}
    if isinstance(value, np.random.SeedSequence):
        return {
            "SeedSequence": _canonical(
                [value.entropy, value.spawn_key, value.pool_size, value.n_children_spawned],
                depth + 1,
            )
        }
    if isinstance(value, Mapping):
        return {
            "mapping": sorted(
                ([str(k), _canonical(v, depth + 1)] for k, v in value.items()),
                key=lambda kv: kv[0],
            )
        }
    if isinstance(value, list | tuple):
        return [_canonical(v, depth + 1) for v in value]
    if isinstance(value, type):
        return {"type": f"{value.__module__}.{value.__qualname__}", "code": _class_code(value)}
    if isinstance(value, functools.partial):
        return {
            "partial": _canonical(
                [value.func, list(value.args), dict(value.keywords)], depth + 1
            )
        }
    if isinstance(value, types.ModuleType):
        return {"module": value.__name__}
    code = getattr(value, "__code__", None)
    if isinstance(code, types.CodeType):
        return _function(value, code, name, depth)
    if attrs.has(kind):
        fields = {f.name: getattr(value, f.name, None) for f in attrs.fields(kind)}
        return {"type": name, "fields": _canonical(fields, depth + 1), "code": _class_code(kind)}
    state = _instance_state(value)
    if state is not None:
        return {"type": name, "state": _canonical(state, depth + 1), "code": _class_code(kind)}
    text = repr(value)
    return {"type": name, "repr": text if " at 0x" not in text else None}


#: What :func:`_instance_state` gives for a slot left unset.
_UNSET = "<unset>"


def _instance_state(value: Any) -> dict[str, Any] | None:
    """An object's attributes: its ``__dict__`` and the slots its classes declare (a
    class with ``__slots__`` has no ``__dict__``); None for an object with neither (a
    built-in's value), which its repr describes."""
    has_dict = hasattr(value, "__dict__")
    state = dict(vars(value)) if has_dict else {}
    slotted = False
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            slotted = True
            stored = slot  # a private slot (``__n``) is stored under its mangled name
            if slot.startswith("__") and not slot.endswith("__"):
                stored = f"_{cls.__name__.lstrip('_')}{slot}"
            state[f"{cls.__qualname__}.{slot}"] = getattr(value, stored, _UNSET)
    return state if has_dict or slotted else None


@functools.lru_cache(maxsize=1024)
def _class_code(cls: type) -> str | None:
    """A digest of the code of the methods that ``cls`` and its bases outside Python's
    built-ins define (a strategy's hooks among them), so that a class edited under the
    same name describes another setting; None for a built-in class."""
    parts = []
    for klass in cls.__mro__:
        if klass.__module__ == "builtins" and getattr(builtins, klass.__name__, None) is klass:
            continue
        for attr, member in sorted(klass.__dict__.items()):
            function = getattr(member, "__func__", member)  # static and class methods
            if isinstance(member, property):
                function = member.fget
            code = getattr(function, "__code__", None)
            # attrs' generated methods hold a per-process hash salt among their
            # constants (and say nothing the fields do not): left out, so that a
            # digest is the same in every process
            if isinstance(code, types.CodeType) and not code.co_filename.startswith(
                "<attrs generated"
            ):
                parts.append([klass.__qualname__, attr, _code_text(code)])
    if not parts:
        return None
    return _hexdigest(json.dumps(parts).encode())


def _code_text(code: types.CodeType) -> str:
    """A function body's instructions, constants (nested bodies, a lambda's or a
    comprehension's, by their own text: a code object's repr holds its address; the
    others as :func:`_canonical` describes them: a frozenset's repr depends on the hash
    seed) and names."""
    consts = [
        _code_text(c) if isinstance(c, types.CodeType) else [type(c).__name__, _canonical(c)]
        for c in code.co_consts
    ]
    return json.dumps([code.co_code.hex(), consts, code.co_names], sort_keys=True, default=repr)


def _function(value: Any, code: types.CodeType, name: str, depth: int) -> dict:
    """A function as the fingerprint sees it: its code and everything else that decides
    what it computes: default arguments, the values its closure holds, the module
    globals its code names (a module by its name), and a bound method's object."""
    referenced = getattr(value, "__globals__", None) or {}
    globals_used = {n: referenced[n] for n in code.co_names if n in referenced}
    cells = [c.cell_contents for c in getattr(value, "__closure__", None) or () if _filled(c)]
    described = {
        "code": _hexdigest(_code_text(code).encode()),
        "defaults": getattr(value, "__defaults__", None),
        "kwdefaults": getattr(value, "__kwdefaults__", None),
        "closure": cells,
        "globals": globals_used,
        "self": getattr(value, "__self__", None),
    }
    return {
        "function": getattr(value, "__qualname__", name),
        "described": _canonical(described, depth + 1),
    }


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _hexdigest(payload: bytes) -> str:
    h = _digest()
    h.update(payload)
    return h.hexdigest()


def value_digest(value: Any) -> str:
    """A digest of a configuration value, equal for values that compute the same:
    arrays by content, strategy objects by type and fields, functions by their code and
    what it reads (defaults, closure, the module globals it names)."""
    return _hexdigest(json.dumps(_canonical(value), sort_keys=True, default=repr).encode())


#: The built-in assignments that all give every sample its nearest centroid (the same
#: labels at every iteration; only how much work they skip differs): one setting for the
#: fingerprint, so a checkpoint written under one resumes under another (``auto`` became
#: the default where ``nearest`` was).
EXACT_ASSIGNMENTS = frozenset({"nearest", "auto", "hamerly", "yinyang"})


def _setting(key: str, value: Any) -> Any:
    """A setting as the fingerprint sees it (exact assignments as one; a strategy
    registered outside kmeansfw with what its name names, :func:`with_registered`)."""
    if key == "assignment":
        name = _strategy_name(value)
        if isinstance(name, str) and name in EXACT_ASSIGNMENTS:
            return "nearest"
    return with_registered(key, value)


def _strategy_name(value: Any) -> Any:
    """The name a setting gives its strategy: itself, or a table's ``name``."""
    return value.get("name") if isinstance(value, Mapping) else value


#: The settings that name a strategy of the slot of the same name.
_SLOT_SETTINGS = frozenset({"init", "distance", "assignment", "update", "empty", "convergence"})


def with_registered(key: str, value: Any) -> Any:
    """Setting ``key``'s ``value`` as the fingerprints see it: a name (or a table's
    ``name``) of a strategy registered outside kmeansfw's built-ins (a script's
    ``@kmeansfw.distance("...")``, a plugin) comes with what the name builds (its class or
    function, by code: :func:`value_digest`), so that a strategy edited under the same
    name is another setting; anything else as it is."""
    if key not in _SLOT_SETTINGS:
        return value
    name = _strategy_name(value)
    if not isinstance(name, str):
        return value
    try:
        entry = CATALOG.lookup(key, name)
    except Exception:  # noqa: BLE001 - not a known name: the fit reports it
        return value
    if entry.source == BUILTIN:
        return value
    return {"setting": value, "registered": entry.factory}


def fingerprint(
    config_values: Mapping[str, Any], X: Any, sample_weight: Any = None
) -> dict[str, str]:
    """Digests of everything that must match for a checkpoint to be resumed.

    One entry per setting in :data:`FINGERPRINT_KEYS` (the exact assignments of
    :data:`EXACT_ASSIGNMENTS` count as one), one for ``random_state`` (a generator by its
    state) and one each for the content of ``X`` and ``sample_weight`` (None stands for
    unit weights), so a mismatch can be reported by name.
    """
    parts = {
        key: value_digest(_setting(key, config_values.get(key))) for key in FINGERPRINT_KEYS
    }
    parts["random_state"] = value_digest(config_values.get("random_state"))
    parts["X"] = data_digest(X)
    if sample_weight is None:
        sample_weight = np.ones(X.shape[0])
    h = _digest()  # in float64: the same weights whatever X's dtype (a fit passes X's)
    _hash_array(h, np.asarray(sample_weight, dtype=np.float64))
    parts["sample_weight"] = h.hexdigest()
    return parts


@attrs.frozen(eq=False)
class Resume:
    """What a checkpoint restores: where to continue, and the best finished run."""

    next_run: int
    rng_state: dict
    iteration: int | None = None
    centroids: np.ndarray | None = None
    labels: np.ndarray | None = None
    scratch: dict = attrs.field(factory=dict)
    best: FitResult | None = None
    #: The fitted state saved with the checkpoint (None: learn it again).
    fitted: Fitted | None = None


# ---------------------------------------------------------------------- writing
def _checksum(meta: Mapping[str, Any]) -> str:
    """The checksum ``state.json`` records of its own content (every key but itself)."""
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return _hexdigest(json.dumps(body, sort_keys=True).encode())


def file_digest(path: str | os.PathLike[str]) -> str:
    """A digest of a file's bytes, read :data:`HASH_BLOCK_BYTES` at a time."""
    h = _digest()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(HASH_BLOCK_BYTES), b""):
            h.update(chunk)
    return h.hexdigest()


def replace_files(files: list[tuple[pathlib.Path, bytes]]) -> None:
    """Write every ``(path, payload)`` to a temporary file next to it, then rename them
    all over the old files: nothing is replaced unless every payload was written.

    A replaced file keeps its permissions; a new one gets those of any file the process
    creates (its umask applies), not a temporary file's owner-only ones."""
    staged: list[tuple[str, pathlib.Path]] = []
    try:
        for path, payload in files:
            fd, tmp = _staging_file(path)
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
            if path.exists():
                shutil.copymode(path, tmp)
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                with contextlib.suppress(OSError):  # a read-only mode copied (Windows)
                    os.chmod(tmp, stat.S_IREAD | stat.S_IWRITE)
                os.remove(tmp)


def _staging_file(path: pathlib.Path) -> tuple[int, str]:
    """A new file beside ``path`` (a hidden name of its own), open for writing, made
    with the mode a plain ``open`` would give it (0o666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


@attrs.define(eq=False)
class Checkpoint:
    """Observer writing the fit's state to ``folder`` every ``every`` iterations.

    Registered by :func:`kmeansfw.fit` when the config sets ``checkpoint``.
    """

    name = "checkpoint"
    folder: pathlib.Path = attrs.field(converter=pathlib.Path)
    fingerprint: dict = attrs.field(factory=dict)
    every: int = 1
    _best: FitResult | None = attrs.field(default=None, init=False)
    _rng: Any = attrs.field(default=None, init=False)
    _fitted: tuple[dict, dict[str, np.ndarray]] | None = attrs.field(default=None, init=False)

    @hookimpl
    def kmeansfw_fit_start(self, state: FitState) -> None:
        self._rng = state.rng
        if self._fitted is None:
            self._fitted = _encode_fitted(state.train.fitted if state.train else {})

    @hookimpl
    def kmeansfw_iteration_end(self, state: FitState) -> None:
        if state.iteration % self.every == 0:
            self._write(state.run, state)

    @hookimpl
    def kmeansfw_fit_end(self, result: FitResult) -> None:
        if self._best is None or result.objective < self._best.objective:
            self._best = result
        self._write(result.run + 1, None)

    def resume_with(self, resume: Resume | None) -> None:
        """Carry the best run of a resumed checkpoint on."""
        if resume is not None:
            self._best = resume.best

    def _run_state(self, state: FitState) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The arrays and JSON keys of a run in progress (a backend that keeps other state,
        such as the Dask backend's reduced one, overrides this)."""
        arrays = {"centroids": state.centroids, "labels": state.labels}
        return arrays, {"iteration": state.iteration, "scratch": plain_scratch(state.scratch)}

    def _write(self, run: int, state: FitState | None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {
            "format": FORMAT,
            "fingerprint": dict(self.fingerprint),
            "next_run": run,
            "rng_state": _encode_state(self._rng.bit_generator.state),
            "iteration": None,
            "scratch": {},
        }
        fitted_meta, fitted_arrays = self._fitted if self._fitted is not None else (None, {})
        meta["fitted"] = fitted_meta
        arrays.update(fitted_arrays)
        if state is not None:
            run_arrays, run_meta = self._run_state(state)
            arrays.update(run_arrays)
            meta.update(run_meta)
        if self._best is not None:
            arrays["best_centroids"] = self._best.centroids
            arrays["best_labels"] = self._best.labels
            arrays["best_costs"] = self._best.costs
            meta["best"] = {
                "objective": self._best.objective,
                "n_iter": self._best.n_iter,
                "converged": self._best.converged,
                "run": self._best.run,
                "stop_reason": self._best.stop_reason,
            }
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        payload = buffer.getvalue()
        meta["arrays"] = _hexdigest(payload)
        meta["checksum"] = _checksum(meta)
        text = json.dumps(meta).encode()
        replace_files([(self.folder / _ARRAYS_NAME, payload), (self.folder / _JSON_NAME, text)])


def plain_scratch(scratch: Mapping[Any, Any]) -> dict[str, Any]:
    """The entries of a run's scratch memory that JSON holds exactly (string keys, finite
    plain values): what a checkpoint saves of it."""
    return {k: v for k, v in scratch.items() if isinstance(k, str) and _json_plain_finite(v)}


def _encode_fitted(fitted: Mapping[str, Any]) -> tuple[dict | None, dict[str, np.ndarray]]:
    """The fitted state as JSON (plain values, and the names of the arrays saved in the
    .npz); None for the JSON when a value can be neither (it is learned again on resume)."""
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    arrays: dict[str, np.ndarray] = {}
    for key, value in fitted.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            name = f"{_FITTED_PREFIX}{len(arrays)}"
            names[key], arrays[name] = name, value
        elif _json_plain_finite(value):
            values[key] = value
        else:
            return None, {}
    return {"values": values, "arrays": names}, arrays


# ---------------------------------------------------------------------- loading
def _fail(path: pathlib.Path, what: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint file {str(path)!r} {what}; remove the checkpoint folder to start afresh"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_in(meta: Mapping, key: str, low: int, high: int, path: pathlib.Path, where="") -> int:
    value = meta[key]
    if not _is_int(value):
        raise _fail(path, f"has {where}{key!r} = {_short(value)}, not an integer")
    if not low <= value <= high:
        raise _fail(path, f"has {where}{key!r} = {_short(value)}, outside [{low}, {high}]")
    return value


def _require_keys(meta: Mapping, keys: tuple[str, ...], path: pathlib.Path, where="") -> None:
    missing = [key for key in keys if key not in meta]
    if missing:
        raise _fail(path, f"has no {where}key {', '.join(map(repr, missing))}")


def _json_plain_finite(value: Any, depth: int = 0) -> bool:
    if depth > 32:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_plain_finite(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and _json_plain_finite(v, depth + 1) for k, v in value.items()
        )
    return False


def _read_meta(path: pathlib.Path) -> dict:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise _fail(path, "is not UTF-8 text") from None
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _fail(path, f"is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _fail(path, f"holds a JSON {type(meta).__name__}, not an object")
    return meta


@attrs.frozen
class _Expected:
    """What a valid checkpoint for this fit must look like."""

    fingerprint: dict
    n_samples: int
    n_features: int
    n_clusters: int
    n_init: int
    max_iter: int
    dtype: Any = None
    bit_generator: Any = None
    reproducible: bool = True


def _check_folder(folder: pathlib.Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(
            f"checkpoint {str(folder)!r} is a file, not a folder: pass the path of a folder "
            "for the checkpoint's files"
        )


def ready_folder(folder: str | os.PathLike[str]) -> None:
    """Make the checkpoint's folder, before the fit does any work: a path that is a file,
    or a folder that cannot be made, raises a :class:`CheckpointError` now rather than
    after the first iteration."""
    folder = pathlib.Path(folder)
    _check_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(
            f"cannot create the checkpoint folder {str(folder)!r}: {exc}"
        ) from None


def load(
    folder: str | os.PathLike[str],
    expected_fingerprint: Mapping[str, str],
    *,
    n_samples: int,
    n_features: int,
    n_clusters: int,
    n_init: int,
    max_iter: int,
    dtype: Any = None,
    bit_generator: Any = None,
    reproducible: bool = True,
) -> Resume | None:
    """The state saved in ``folder``; None when there is none to resume.

    None (a fresh fit) also when the checkpoint was written for other data, settings or
    seed, by an older kmeansfw, or when it is finished and the fit has no seed to repeat
    (``reproducible=False``); each with a :class:`CheckpointWarning`.

    Parameters
    ----------
    expected_fingerprint : mapping
        :func:`fingerprint` of this fit's settings and data.
    n_samples, n_features, n_clusters, n_init, max_iter : int
        This fit's shape and settings, which the saved arrays and counters must fit.
    dtype : numpy dtype, optional
        The data's dtype, which the saved centroids and costs must have (any float dtype
        when None).
    bit_generator : numpy BitGenerator, optional
        The fit's bit generator: the saved generator state must be restorable into it.
    reproducible : bool
        Whether the fit has a seed (a finished checkpoint is only reused then).

    Raises
    ------
    CheckpointError
        A file cannot be read or does not hold a valid state; the message names the file
        and what is wrong.
    """
    expected = _Expected(
        dict(expected_fingerprint),
        n_samples,
        n_features,
        n_clusters,
        n_init,
        max_iter,
        None if dtype is None else np.dtype(dtype),
        bit_generator,
        reproducible,
    )
    folder = pathlib.Path(folder)
    _check_folder(folder)
    meta_path, arrays_path = folder / _JSON_NAME, folder / _ARRAYS_NAME
    if not meta_path.exists() and not meta_path.is_symlink():
        return None  # state.json is written last: without it, nothing was saved
    meta = _read_meta(meta_path)
    if not _check_identity(meta, meta_path, expected):
        return None
    rng_state = _check_meta(meta, meta_path, expected)
    finished = meta["iteration"] is None and meta["next_run"] >= n_init
    if finished and not reproducible:
        _warn(
            f"checkpoint {str(folder)!r} holds a finished fit, but this fit has no seed "
            "(random_state=None) to repeat it: fitting afresh (the checkpoint will be "
            "replaced); set random_state to reuse finished checkpoints",
        )
        return None
    arrays = _read_arrays(arrays_path, meta["arrays"], meta, expected)
    best, fitted = best_and_fitted(meta, arrays)
    return Resume(
        next_run=meta["next_run"],
        rng_state=rng_state,
        iteration=meta["iteration"],
        centroids=arrays.get("centroids"),
        labels=arrays.get("labels"),
        scratch=dict(meta["scratch"]),
        best=best,
        fitted=fitted,
    )


#: How far a learned array saved in a checkpoint may be from the one learned again
#: (relative to the array's largest magnitude): another machine's BLAS or LAPACK rounds
#: the last bits of a covariance or a factor otherwise.
LEARNED_RTOL = 1e-6


def check_restored(resume: Resume, fresh: Mapping[str, Any], folder: Any) -> None:
    """Refuse a checkpoint whose learned state is not what this fit learns itself.

    Its files pass every check of form (keys, types, ranges, shapes, digests), and its
    data fingerprint is this fit's; yet a checkpoint rewritten consistently (its arrays
    edited, its digests recomputed) would still have been taken as it is.  ``fresh`` is
    what the fit's strategies learn from the same data: the saved state must hold the
    same keys, the same plain values (as saved: NumPy scalars as Python numbers) and
    arrays of the same shape and dtype within :data:`LEARNED_RTOL` of the largest
    magnitude.  The saved state is still what the resumed fit uses (bit for bit the
    interrupted fit's).

    Raises
    ------
    CheckpointError
        Naming the folder and the first learned value that differs.
    """
    if resume.fitted is None:
        return
    meta, arrays = _encode_fitted(fresh)
    if meta is None:  # this fit's state cannot be saved: nothing to compare it with
        return
    key = _first_difference(resume.fitted, _decoded_fitted(meta, arrays))
    if key is not None:
        raise CheckpointError(
            f"checkpoint {str(folder)!r}: its learned state ({key!r}) is not what this "
            "fit's strategies learn from the same data; it was changed after it was "
            "written (or a strategy learns at random): delete it to fit afresh"
        )


def check_best(best: FitResult, costs: np.ndarray, objective: float, folder: Any) -> None:
    """Refuse a finished checkpoint's best run whose costs or objective are not those of
    its own centroids on this fit's data (``costs``: each row's cost to its nearest
    centroid of ``best``, computed now; ``objective``: the weighted sum of ``best``'s
    saved costs).  The saved costs must be within ``1e-4`` (relative, or of their mean)
    of the recomputed ones, and the objective their sum to ``1e-9``; the labels are not
    compared (a tie may resolve otherwise on another machine).

    Raises
    ------
    CheckpointError
        Naming the folder and what disagrees.
    """
    problem = None
    scale = float(np.mean(costs)) if costs.size else 0.0
    if not math.isclose(best.objective, objective, rel_tol=1e-9, abs_tol=0.0):
        problem = f"an objective ({best.objective!r}) that is not its costs' sum ({objective!r})"
    elif not np.allclose(best.costs, costs, rtol=1e-4, atol=1e-4 * scale):
        problem = "costs that are not its rows' costs to its centroids"
    if problem is not None:
        raise CheckpointError(
            f"checkpoint {str(folder)!r}: its best run has {problem}; it was changed after "
            "it was written: delete it to fit afresh"
        )


def _first_difference(saved: Mapping[str, Any], fresh: Mapping[str, Any]) -> str | None:
    """The first key whose value differs between two learned states (None: the same)."""
    for key in sorted(set(saved) | set(fresh)):
        if key not in saved or key not in fresh:
            return key
        a, b = saved[key], fresh[key]
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape or a.dtype != b.dtype:
                return key
            scale = float(np.max(np.abs(b))) if b.size else 0.0
            if not np.allclose(a, b, rtol=0.0, atol=LEARNED_RTOL * scale):
                return key
        elif a != b:
            return key
    return None


def best_and_fitted(meta: dict, arrays: dict) -> tuple[FitResult | None, Fitted | None]:
    """The best finished run and the fitted state of a checked ``state.json`` and its
    checked arrays (None for what the checkpoint does not hold)."""
    best = None
    if "best" in meta:
        b = meta["best"]
        best = FitResult(
            centroids=arrays["best_centroids"],
            labels=arrays["best_labels"],
            costs=arrays["best_costs"],
            objective=float(b["objective"]),
            n_iter=b["n_iter"],
            converged=b["converged"],
            run=b["run"],
            stop_reason=b["stop_reason"],
        )
    fitted = None if meta["fitted"] is None else Fitted(_decoded_fitted(meta["fitted"], arrays))
    return best, fitted


def _decoded_fitted(fitted: dict, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A fitted state from its encoding (:func:`_encode_fitted`: ``{"values": ...,
    "arrays": {key: array name}}``) and the arrays it names."""
    stored = {key: arrays[name] for key, name in fitted["arrays"].items()}
    return {**fitted["values"], **stored}


def _check_identity(meta: dict, path: pathlib.Path, expected: _Expected) -> bool:
    """Whether the checkpoint is of this format and written for this fit (False, with a
    warning, when it is another's: the fit starts afresh)."""
    _require_keys(meta, ("format",), path)
    version = meta["format"]
    if not _is_int(version):
        raise _fail(path, f"has 'format' = {_short(version)}, not a kmeansfw checkpoint format")
    if version != FORMAT:
        if 1 <= version < FORMAT:
            _warn(
                f"checkpoint {str(path.parent)!r} was written by an older kmeansfw (format "
                f"{version}, now {FORMAT}) and cannot be checked against this fit's data: "
                "fitting afresh (the checkpoint will be replaced)",
            )
            return False
        raise _fail(path, f"has format {_short(version)}; this kmeansfw reads format {FORMAT}")
    _require_keys(meta, ("fingerprint",), path)
    stored = meta["fingerprint"]
    if not isinstance(stored, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in stored.items()
    ):
        raise _fail(path, "has a 'fingerprint' that is not an object of digests")
    if stored != expected.fingerprint:
        wanted = expected.fingerprint
        differ = [k for k in wanted if stored.get(k) != wanted[k]] or ["fingerprint"]
        _warn(
            f"checkpoint {str(path.parent)!r} was written for a different {', '.join(differ)} "
            "(the data's content, settings and seed must all match to resume): fitting "
            "afresh (the checkpoint will be replaced)",
        )
        return False
    return True


def _check_meta(meta: dict, path: pathlib.Path, expected: _Expected) -> dict:
    """Check every key of ``state.json`` (types, ranges, the generator state), then its
    checksum; raise a CheckpointError naming the first fault.  Returns the generator
    state, ready to restore."""
    _require_keys(
        meta,
        ("arrays", "checksum", "next_run", "rng_state", "iteration", "scratch", "fitted"),
        path,
    )
    _check_fitted_meta(meta["fitted"], path)
    for key in ("arrays", "checksum"):
        if not isinstance(meta[key], str):
            raise _fail(path, f"has {key!r} = {_short(meta[key])}, not a digest")
    next_run = _int_in(meta, "next_run", 0, expected.n_init, path)
    if meta["iteration"] is not None:
        _int_in(meta, "iteration", 1, expected.max_iter, path)
        if next_run >= expected.n_init:
            raise _fail(
                path, f"has an iteration of run {next_run}, but the fit has {expected.n_init} runs"
            )
    scratch = meta["scratch"]
    if not isinstance(scratch, dict) or not _json_plain_finite(scratch):
        raise _fail(path, "has a 'scratch' that is not an object of finite plain values")
    rng_state = _check_rng_state(meta["rng_state"], path, expected.bit_generator)
    if "best" in meta:
        best = meta["best"]
        if next_run == 0:
            raise _fail(path, "has a best run before any run finished ('next_run' = 0)")
        if not isinstance(best, dict):
            raise _fail(path, f"has 'best' = {_short(best)}, not an object")
        _require_keys(
            best, ("objective", "n_iter", "converged", "run", "stop_reason"), path, "best "
        )
        objective = best["objective"]
        if not _is_number(objective) or not math.isfinite(objective):
            raise _fail(path, f"has best 'objective' = {_short(objective)}, not a finite number")
        _int_in(best, "n_iter", 0, expected.max_iter, path, "best ")
        _int_in(best, "run", 0, next_run - 1, path, "best ")
        if not isinstance(best["converged"], bool):
            raise _fail(path, f"has best 'converged' = {_short(best['converged'])}, not a boolean")
        if best["stop_reason"] not in STOP_REASONS:
            raise _fail(
                path,
                f"has best 'stop_reason' = {_short(best['stop_reason'])}, not one of "
                f"{', '.join(STOP_REASONS)}",
            )
    elif next_run > 0:
        raise _fail(path, f"has no 'best' run although {next_run} run(s) finished")
    try:
        checksum = _checksum(meta)
    except (ValueError, RecursionError):  # nesting too deep to encode again
        checksum = None
    if meta["checksum"] != checksum:
        raise _fail(path, "was changed after it was written (its checksum does not match)")
    return rng_state


def _check_fitted_meta(fitted: Any, path: pathlib.Path) -> None:
    """``fitted`` must be null or ``{"values": {...plain...}, "arrays": {key: name}}``,
    every key once, every name one of the .npz's fitted arrays."""
    if fitted is None:
        return
    bad = "has a 'fitted' state that is not {'values': {...}, 'arrays': {...}}"
    if not isinstance(fitted, dict) or set(fitted) != {"values", "arrays"}:
        raise _fail(path, bad)
    values, names = fitted["values"], fitted["arrays"]
    if not isinstance(values, dict) or not _json_plain_finite(values):
        raise _fail(path, "has fitted 'values' that are not an object of finite plain values")
    if not isinstance(names, dict) or not all(
        isinstance(n, str) and n.startswith(_FITTED_PREFIX) for n in names.values()
    ):
        raise _fail(path, "has fitted 'arrays' that do not name fitted arrays of state.npz")
    if len(set(names.values())) != len(names) or set(values) & set(names):
        raise _fail(path, "has a fitted key or array named twice")


def _encode_state(value: Any) -> Any:
    """A bit generator's state as JSON (arrays, e.g. of MT19937 or Philox, tagged)."""
    if isinstance(value, dict):
        return {k: _encode_state(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {_ARRAY_TAG: value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode_state(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY_TAG, "dtype"}:
            dtype = np.dtype(value["dtype"])
            if dtype.kind not in "iu":
                raise TypeError(f"an array of dtype {dtype} in a generator state")
            return np.asarray(value[_ARRAY_TAG], dtype=dtype)
        return {k: _decode_state(v) for k, v in value.items()}
    return value


def _check_rng_state(state: Any, path: pathlib.Path, bit_generator: Any) -> dict:
    """The generator state saved in ``state.json``, once ``bit_generator``'s kind has
    taken it (on a copy)."""
    if not isinstance(state, dict):
        raise _fail(path, f"has 'rng_state' = {_short(state)}, not a generator state")
    if bit_generator is None:
        bit_generator = np.random.PCG64()
    trial = copy.deepcopy(bit_generator)
    try:
        decoded = _decode_state(state)
        trial.state = decoded
    except Exception as exc:  # numpy raises TypeError, ValueError, KeyError, OverflowError
        raise _fail(
            path,
            f"has a 'rng_state' that {type(bit_generator).__name__} cannot restore "
            f"({type(exc).__name__}: {_short(exc, str)})",
        ) from None
    return decoded


def _short(value: Any, show: Any = repr) -> str:
    text = show(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _read_arrays(path: pathlib.Path, digest: str, meta: dict, expected: _Expected) -> dict:
    """Open ``state.npz`` (it must be the file ``state.json`` was written with) and check
    the arrays this state needs."""
    try:
        actual = file_digest(path)
    except FileNotFoundError:
        raise _fail(path, "is missing (state.json refers to it)") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
    if actual != digest:
        raise _fail(
            path,
            "is not the file state.json was written with (it was changed, or a write was "
            "interrupted)",
        )
    needed = []
    if meta["iteration"] is not None:
        needed += ["centroids", "labels"]
    if "best" in meta:
        needed += ["best_centroids", "best_labels", "best_costs"]
    fitted_names = list(meta["fitted"]["arrays"].values()) if meta["fitted"] else []
    needed += fitted_names
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in needed if name not in npz.files]
            if missing:
                raise _fail(path, f"has no array {', '.join(map(repr, missing))}")
            arrays = {name: npz[name] for name in needed}
    except CheckpointError:
        raise
    except Exception as exc:  # any failure of parsing: zipfile, EOF, header, CRC, ...
        raise _fail(path, f"cannot be read as .npz ({type(exc).__name__}: {exc})") from None
    n, d, k = expected.n_samples, expected.n_features, expected.n_clusters
    dtype = expected.dtype
    for name in ("centroids", "best_centroids"):
        if name in arrays:
            arrays[name] = _checked(arrays[name], name, (k, d), dtype, path)
    for name in ("labels", "best_labels"):
        if name in arrays:
            labels = _checked(arrays[name], name, (n,), None, path)
            if labels.size and (labels.min() < 0 or labels.max() >= k):
                raise _fail(path, f"has {name!r} outside [0, {k})")
            arrays[name] = labels.astype(np.intp, copy=False)
    for name in fitted_names:
        array = arrays[name]
        if array.dtype.kind not in "biuf":
            raise _fail(path, f"has fitted array {name!r} of dtype {array.dtype}, not numeric")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise _fail(path, f"has NaN or infinity in fitted array {name!r}")
    if "best_costs" in arrays:
        costs = _checked(arrays["best_costs"], "best_costs", (n,), dtype, path)
        if (costs < 0).any():
            raise _fail(path, "has negative values in 'best_costs'")
        arrays["best_costs"] = costs
    return arrays


def _checked(
    array: np.ndarray, name: str, shape: tuple[int, ...], dtype: Any, path: pathlib.Path
) -> np.ndarray:
    """``array`` checked for ``shape`` and, with ``dtype``, that dtype (any float dtype
    when ``dtype`` is None and the name is not of labels) and finite values."""
    floating = not name.endswith("labels")
    if floating:
        if array.dtype.kind != "f" or (dtype is not None and array.dtype != dtype):
            wanted = "a floating-point dtype" if dtype is None else f"dtype {dtype}"
            raise _fail(path, f"has {name!r} of dtype {array.dtype}, expected {wanted}")
    elif array.dtype.kind not in "iu":
        raise _fail(path, f"has {name!r} of dtype {array.dtype}, not an integer dtype")
    if array.shape != shape:
        raise _fail(path, f"has {name!r} of shape {array.shape}, expected {shape}")
    if floating and not np.isfinite(array).all():
        raise _fail(path, f"has NaN or infinity in {name!r}")
    if name.endswith("centroids") and array.size:
        # distances to such centroids overflow: no fit can have computed them
        limit = np.sqrt(np.finfo(array.dtype).max / (4.0 * array.shape[1]))
        if np.abs(array).max() > limit:
            raise _fail(path, f"has values in {name!r} too large for distances ({limit:.3g})")
    return array


def _n_runs(cfg: Any) -> int:
    """``cfg.resolved_n_init()`` without repeating its warning for explicit centroids."""
    if isinstance(cfg.init, np.ndarray | list | tuple):
        return 1
    return cfg.resolved_n_init()


def attach(
    cfg: Any, data: FitData, observers: list[Any], rng: np.random.Generator
) -> Resume | None:
    """With ``cfg.checkpoint``: add the checkpoint observer and restore a saved state.

    Raises
    ------
    CheckpointError
        The checkpoint in ``cfg.checkpoint`` is damaged (see :func:`load`).
    """
    if cfg.checkpoint is None:
        return None
    ready_folder(cfg.checkpoint)
    stamp = fingerprint(cfg.to_dict(), data.X, data.sample_weight)
    resume = load(
        cfg.checkpoint,
        stamp,
        n_samples=data.n_samples,
        n_features=data.X.shape[1],
        n_clusters=cfg.n_clusters,
        n_init=_n_runs(cfg),
        max_iter=cfg.max_iter,
        dtype=data.X.dtype,
        bit_generator=rng.bit_generator,
        reproducible=cfg.random_state is not None,
    )
    keeper = Checkpoint(cfg.checkpoint, stamp, cfg.checkpoint_every)
    keeper.resume_with(resume)
    observers.append(keeper)
    if resume is not None:
        rng.bit_generator.state = resume.rng_state
    return resume
