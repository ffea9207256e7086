"""Data mapped from a file: fits equal in-memory fits, and a large map's pages are handed
back after each block (kmeansfw.core.paging)."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import kmeansfw
from kmeansfw.core import paging


@pytest.fixture
def mapped(tmp_path):
    """A 60000 x 16 float64 .npy on disk (7.7 MB), opened read-only, and its values."""
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=8, size=(6, 16))
    X = centres[rng.integers(0, 6, 60_000)] + rng.normal(size=(60_000, 16))
    path = tmp_path / "X.npy"
    np.save(path, X)
    return np.load(path, mmap_mode="r"), X


def _resident_kb(path_part: str) -> int:
    """Resident kB of this process's mappings of a file whose path contains
    ``path_part`` (Linux /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head[0].split("-")) == 2 and ":" not in head[0]:
                inside = path_part in line
            elif inside and line.startswith("Rss:"):
                total += int(head[1])
    return total


def test_page_range_covers_only_whole_pages_inside_the_rows():
    page = mmap.PAGESIZE
    region = paging.MappedRows(mapping=None, start=128, row_bytes=8 * 16)
    first, length = region.page_range(slice(0, 1000))  # bytes 128 .. 128128
    assert first == page and first >= 128
    assert first + length <= 128 + 1000 * 128 and (first + length) % page == 0
    assert region.page_range(slice(3, 4))[1] == 0  # one row: no whole page inside


def test_in_memory_and_small_maps_are_not_released(mapped):
    X_map, X = mapped
    assert paging.mapped_rows(X) is None  # not mapped
    assert paging.mapped_rows(X_map) is None  # mapped, far below half of memory
    assert paging.mapped_rows(X_map, min_fraction=0) is not None


def test_copy_on_write_maps_are_never_released(tmp_path):
    path = tmp_path / "c.npy"
    np.save(path, np.ones((1000, 4)))
    assert paging.mapped_rows(np.load(path, mmap_mode="c"), min_fraction=0) is None
    assert paging.mapped_rows(np.load(path, mmap_mode="r+"), min_fraction=0) is not None


@pytest.mark.skipif(not hasattr(mmap, "MAP_PRIVATE"), reason="POSIX mmap flags")
def test_arrays_on_a_bare_or_private_mmap_are_never_released(tmp_path):
    """Whether a bare mmap.mmap is private cannot be read from it, and releasing a private
    map's pages would throw the user's changes away: such arrays are never released."""
    private = mmap.mmap(-1, 1 << 16, flags=mmap.MAP_PRIVATE)
    X = np.ndarray((1 << 11, 4), dtype=np.float64, buffer=private)
    X[:] = 7.0
    assert paging.mapped_rows(X, min_fraction=0) is None
    path = tmp_path / "raw.bin"
    path.write_bytes(np.ones(1 << 13).tobytes())
    with open(path, "r+b") as f:
        copy = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    Y = np.ndarray((1 << 11, 4), dtype=np.float64, buffer=copy)
    Y[:] = 3.0
    assert paging.mapped_rows(Y, min_fraction=0) is None
    assert (X == 7.0).all() and (Y == 3.0).all()


def test_column_means_are_numpys_mean_bit_for_bit(monkeypatch):
    """The blocked mean equals X.mean(axis=0) exactly, float32 past 2**24 rows included
    (NumPy divides by the row count in float64), and a one-column map is released too."""
    X = np.random.default_rng(4).normal(1023.1, 3.0, size=((1 << 24) + 3, 2))
    X = X.astype(np.float32)
    released = []

    class Spy:
        def release(self, rows):
            released.append(rows)

    monkeypatch.setattr(paging, "mapped_rows", lambda X, min_fraction=None: Spy())
    monkeypatch.setattr(paging, "PASS_BLOCK_BYTES", 1 << 22)
    np.testing.assert_array_equal(paging.column_means(X), X.mean(axis=0))
    assert len(released) > 1
    column = np.ascontiguousarray(X[:100_001, :1])
    released.clear()
    np.testing.assert_array_equal(paging.column_means(column), column.mean(axis=0))
    assert released == [slice(0, 100_001)]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("blocked", [False, True], ids=["whole", "blocked"])
def test_column_sums_are_numpys_sums_bit_for_bit(monkeypatch, compiled, blocked):
    """The compiled row-by-row sums equal X.sum(axis=0, dtype=...) in every bit (a -0.0
    column sums to NumPy's +0.0), in the data's dtype or float64, whole or block by block,
    and so does the NumPy path (no numba; a requested dtype the kernel does not sum)."""
    from kmeansfw.kernels import columns

    columns._load()
    if not compiled:
        monkeypatch.setattr(columns, "HAVE_NUMBA", False)
    elif not columns.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    if blocked:
        monkeypatch.setattr(paging, "mapped_rows", lambda X, min_fraction=None: _NoRelease())
        monkeypatch.setattr(paging, "PASS_BLOCK_BYTES", 4096)
    rng = np.random.default_rng(11)
    for case in range(60):
        n, d = int(rng.integers(1, 2500)), int(rng.integers(1, 40))
        dtype = (np.float32, np.float64)[case % 2]
        X = rng.normal(rng.uniform(-1e6, 1e6), 10 ** rng.uniform(-3, 5), size=(n, d))
        X = X.astype(dtype)
        if case % 5 == 0:
            X[:, 0] = -0.0
            X[1::2, -1] = 0.0
        for sums in (None, np.float64, np.float32):
            got, want = paging.column_sums(X, sums), X.sum(axis=0, dtype=sums)
            assert got.dtype == want.dtype
            assert got.tobytes() == want.tobytes(), (n, d, dtype, sums)
        assert paging.column_means(X).tobytes() == X.mean(axis=0).tobytes()
        # another layout or array type: NumPy's own sum (Fortran order sums pairwise)
        for other in (np.asfortranarray(X), np.ma.masked_less(X, X.mean()), X[:, ::-1]):
            got, want = paging.column_sums(other), other.sum(axis=0)
            assert type(got) is type(want) and got.shape == want.shape
            assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


@settings(max_examples=200, deadline=None)
@given(
    X=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
        elements=st.floats(width=32, allow_subnormal=True),  # NaN, +-inf, -0.0 included
    ),
    sums=st.sampled_from([None, np.float64, np.float32]),
)
def test_column_sums_match_numpy_for_any_values(X, sums):
    """Whatever the values (NaN, infinities, -0.0, subnormals, mixed magnitudes) and
    shape, the sums are NumPy's in every bit, and X is left as it was.  A NaN's sign and
    payload carry no value (x86 hands back whichever operand's NaN, or its default one
    for inf - inf, by the order of the additions): NaN where NumPy has NaN is enough."""
    before = X.copy()
    with np.errstate(all="ignore"):
        got, want = paging.column_sums(X, sums), X.sum(axis=0, dtype=sums)
    assert got.dtype == want.dtype
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    assert got[~nan].tobytes() == want[~nan].tobytes()
    assert X.tobytes() == before.tobytes()


def test_running_column_sums_refuse_sums_of_another_width():
    from kmeansfw.kernels import add_rows_in_order

    X = np.ones((5, 3))
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(2,\)"):
        add_rows_in_order(X, np.zeros(2))
    with pytest.raises(ValueError, match="sums of shape"):
        add_rows_in_order(np.ones(3), None)
    total = np.full(3, 0.5)
    np.testing.assert_array_equal(add_rows_in_order(X, total), [5.5, 5.5, 5.5])


class _NoRelease:
    def release(self, rows):
        pass


@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_a_released_map_fits_as_the_array_in_memory(mapped, monkeypatch, init):
    """With every page handed back after each block (threshold 0), the fit on the map
    equals the fit on the same values in memory: labels, centroids, inertia, n_iter."""
    X_map, X = mapped
    monkeypatch.setattr(paging, "RELEASE_MIN_FRACTION", 0.0)
    monkeypatch.setattr(paging, "PASS_BLOCK_BYTES", 1 << 20)  # several validation blocks
    released = []
    release = paging.MappedRows.release

    def spy(self, rows):
        released.append(rows)
        release(self, rows)

    monkeypatch.setattr(paging.MappedRows, "release", spy)
    params = {"n_clusters": 6, "init": init, "random_state": 0, "n_threads": 2}
    on_map = kmeansfw.KMeans(**params).fit(X_map)
    in_memory = kmeansfw.KMeans(**params).fit(X)
    np.testing.assert_array_equal(on_map.labels_, in_memory.labels_)
    np.testing.assert_array_equal(on_map.cluster_centers_, in_memory.cluster_centers_)
    assert on_map.inertia_ == in_memory.inertia_
    assert on_map.n_iter_ == in_memory.n_iter_
    covered = np.zeros(X.shape[0], dtype=int)
    for rows in released:
        covered[rows] += 1
    # validation, the mean, the variance scale, seeding and every iteration each pass
    # over all rows
    assert covered.min() >= on_map.n_iter_ + 3
    np.testing.assert_array_equal(on_map.predict(X_map[:500]), in_memory.labels_[:500])


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/smaps (Linux)")
def test_a_released_map_leaves_little_of_the_file_resident(mapped, monkeypatch):
    """The released fit ends with a fraction of the file resident in this process; the
    same fit without release keeps all of it."""
    X_map, _ = mapped
    name = str(X_map.filename)
    params = {"n_clusters": 6, "init": "k-means||", "random_state": 0, "n_threads": 2}
    kmeansfw.KMeans(**params).fit(X_map)
    whole = _resident_kb(name)
    assert whole >= 0.9 * X_map.nbytes / 1024  # without release: every page resident
    mapping = paging._mapping(X_map)
    mapping.madvise(mmap.MADV_DONTNEED, 0, len(mapping))  # start from nothing resident
    monkeypatch.setattr(paging, "RELEASE_MIN_FRACTION", 0.0)
    kmeansfw.KMeans(**params).fit(X_map)
    # what stays: the pages shared by two blocks (block edges) and the header page
    assert _resident_kb(name) < 0.1 * whole
