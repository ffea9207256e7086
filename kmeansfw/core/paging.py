"""Data mapped from a file and larger than memory: its pages handed back after each block.

A fit on an array mapped from a file (``np.load(path, mmap_mode="r")``, ``np.memmap``)
reads it block by block, but the operating system keeps every page read in the process's
resident set until memory runs short: a fit on a file larger than memory would show a
resident set as large as the machine's memory, although what the fit itself allocates is
a small part of it.  When the mapped data takes at least :data:`RELEASE_MIN_FRACTION` of
the machine's physical memory, the whole pages of each block are handed back
(``madvise(MADV_DONTNEED)``) once a pass is done with the block: the file's pages stay in
the page cache (reclaimable memory), and the next pass rereads the same values from it.
Smaller maps keep their pages (rereading them would cost time for nothing).  Only
``np.memmap`` arrays opened read-only (``"r"``) or shared (``"r+"``, ``"w+"``) are
released, never copy-on-write ones (``"c"``), whose changes live only in the mapped
pages, nor arrays on a bare ``mmap.mmap`` (whether it is private cannot be read from it).
Measured on Linux; elsewhere ``madvise`` may only be advisory (Windows has none: nothing
is released).

Nothing here changes a value: results are the same with or without the release.
"""

from __future__ import annotations

import functools
import mmap
import os
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import numpy as np

T = TypeVar("T")

#: Mapped data of at least this fraction of physical memory has its pages released.
RELEASE_MIN_FRACTION = 0.5
#: Bytes per block of the passes this module makes itself (validation, the mean).
PASS_BLOCK_BYTES = 16 << 20
#: The ``np.memmap`` modes whose pages may be released: the file holds every value.
_SHARED_MODES = frozenset({"r", "r+", "w+"})


@functools.lru_cache(maxsize=1)
def physical_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its control group's limit
    when lower (Linux containers); 0 when the platform does not say."""
    try:
        total = int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 0
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                limit = f.read().strip()
        except OSError:
            continue
        if limit.isdigit() and 0 < int(limit) < total:
            total = int(limit)
    return total


def _mapping(X: Any) -> Any:
    """The ``mmap.mmap`` of the ``np.memmap`` that ``X``'s memory belongs to (through its
    chain of bases), when that map is read-only or shared; None otherwise."""
    array = X
    while isinstance(array, np.ndarray):
        mapping = getattr(array, "_mmap", None) if isinstance(array, np.memmap) else None
        if mapping is not None:
            return mapping if getattr(array, "mode", None) in _SHARED_MODES else None
        array = array.base
    return None  # in memory, or a bare mmap.mmap (possibly private): never released


@attrs.frozen(eq=False)
class MappedRows:
    """The pages of a C-contiguous array's rows inside the ``mmap`` that holds them."""

    mapping: Any
    #: Byte offset of row 0 from the start of the mapping.
    start: int
    row_bytes: int

    def page_range(self, rows: slice) -> tuple[int, int]:
        """``(offset, length)`` of the whole pages inside ``rows`` (length 0: none)."""
        page = mmap.PAGESIZE
        first = self.start + rows.start * self.row_bytes
        last = self.start + rows.stop * self.row_bytes
        first = -(-first // page) * page  # pages shared with other rows are kept
        last = last // page * page
        return first, max(0, last - first)

    def release(self, rows: slice) -> None:
        """Hand back the resident pages of ``rows`` (the file keeps the values)."""
        offset, length = self.page_range(rows)
        if length > 0:
            try:
                self.mapping.madvise(mmap.MADV_DONTNEED, offset, length)
            except (OSError, ValueError):  # pragma: no cover - a closed map: nothing held
                pass


def mapped_rows(X: Any, min_fraction: float | None = None) -> MappedRows | None:
    """How to release ``X``'s rows, when ``X`` is a C-contiguous array mapped from a file
    that takes at least ``min_fraction`` (default :data:`RELEASE_MIN_FRACTION`) of
    physical memory; None otherwise (in-memory data, small maps, platforms without
    ``madvise``)."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or not X.flags.c_contiguous:
        return None
    if not hasattr(mmap, "MADV_DONTNEED") or X.size == 0:
        return None
    fraction = RELEASE_MIN_FRACTION if min_fraction is None else min_fraction
    memory = physical_memory()
    if (memory == 0 and fraction > 0) or X.nbytes < fraction * memory:
        return None  # a small map, or a platform that does not say how much memory it has
    mapping = _mapping(X)
    if mapping is None or not hasattr(mapping, "madvise") or mapping.closed:
        return None
    base = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    start = X.ctypes.data - base
    if start < 0 or start + X.nbytes > len(mapping):  # pragma: no cover - not its memory
        return None
    return MappedRows(mapping, start, X.shape[1] * X.itemsize)


def releasing(X: Any, fn: Callable[[list[slice]], T]) -> Callable[[list[slice]], T]:
    """``fn`` over tasks (lists of consecutive row slices of ``X``), releasing each task's
    pages when it returns; ``fn`` itself when ``X`` needs no release."""
    region = mapped_rows(X)
    if region is None:
        return fn

    def run(task: list[slice]) -> T:
        try:
            return fn(task)
        finally:
            region.release(slice(task[0].start, task[-1].stop))

    return run


def pass_blocks(X: np.ndarray) -> list[slice]:
    """Row blocks of about :data:`PASS_BLOCK_BYTES` for a pass over ``X``."""
    rows = max(1, PASS_BLOCK_BYTES // max(1, X.shape[1] * X.itemsize))
    n = X.shape[0]
    return [slice(start, min(start + rows, n)) for start in range(0, n, rows)]


def all_finite(X: np.ndarray, check: Callable[[np.ndarray], bool]) -> bool:
    """``check`` (a finiteness test) on every row block of ``X``, pages released after
    each when ``X`` is a large map; stops at the first block that fails."""
    region = mapped_rows(X)
    for rows in pass_blocks(X):
        ok = check(X[rows])
        if region is not None:
            region.release(rows)
        if not ok:
            return False
    return True


def column_sums(X: np.ndarray, dtype: Any = None) -> np.ndarray:
    """``X.sum(axis=0, dtype=dtype)``, equal to it bit for bit; for a large map, block by
    block with the pages released after each block.

    NumPy adds the rows of a C-contiguous array of two or more columns one after the
    other; :func:`kmeansfw.kernels.columns.add_rows_in_order` makes the same additions in
    one compiled loop (NumPy's reduction calls its inner loop once per row: 2-10x slower
    here), block after block for a large map.  Anything else (a single column, which
    NumPy sums pairwise; another memory order; an ndarray subclass other than
    ``np.memmap``) takes NumPy's own sum, in one call.
    """
    region = mapped_rows(X)
    rows_first = type(X) in (np.ndarray, np.memmap) and X.ndim == 2 and X.flags.c_contiguous
    if not rows_first or X.shape[0] == 0 or X.shape[1] < 2:
        # NumPy's own sum: one column, or a layout or array type it sums another way
        # (column by column, pairwise, for Fortran order; masks, matrices)
        total = X.sum(axis=0, dtype=dtype)
        if region is not None:  # one call (NumPy's pairwise sum), then the pages handed back
            region.release(slice(0, X.shape[0]))
        return total
    from kmeansfw.kernels import add_rows_in_order  # numba: loaded on first use

    if region is None:
        return add_rows_in_order(X, None, dtype)
    total = None
    for rows in pass_blocks(X):
        total = add_rows_in_order(X[rows], total, dtype)
        region.release(rows)
    assert total is not None
    return total


def column_means(X: np.ndarray) -> np.ndarray:
    """``X.mean(axis=0)`` bit for bit (the sum of :func:`column_sums`, divided as NumPy
    divides: by the row count as an ``intp``, in float64, rounded to X's dtype)."""
    total = column_sums(X)
    return np.true_divide(total, np.intp(X.shape[0]), out=total, casting="unsafe")
