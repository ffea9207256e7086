"""Compile the kernels ahead of the first fit (``kmeansfw compile``).

The built-in strategies run compiled (numba) kernels, and numba compiles a kernel the first
time a process calls it with a new kind of argument, then keeps it on disk: beside the
kernel modules (``kmeansfw/kernels/__pycache__``), or in the user's cache where that folder
is read-only.  A first fit in a fresh installation therefore spends 10 to 30 seconds
compiling, and every later process loads the kernels in well under a second.
:func:`compile_kernels` pays that once, at a moment of the user's choosing (after
``pip install``, in a container image's build, on each node of a cluster before a job),
by running small fits that take every kernel the built-in strategies can take: each kind
of nearest-centroid search (by the data's features and the number of clusters), the
bound-based assignments, every seeding, mini-batch steps, sparse input, the other
distances and k-medoids, in float64 and float32.

Which kernels a fit compiles depends on the dtype, on the kind of search its shape takes
and on whether its rows are split between threads (from a few thousand rows), never on the
data's values or its exact size: fits of 20,000 rows compile what a fit of millions takes.
A changed kernel module (an upgrade) compiles them again; so does another numba version or
CPU.

numba reads and writes its cache only in a folder the running user can write to
(``NUMBA_CACHE_DIR`` when set, else beside the kernel modules, else the user's cache
folder), so run the warm-up as the user who will fit: in a container image, after its
``USER`` line (or make the folder it reports writable for that user); a cache made by
another user in a folder this one cannot write to is not used, and the first fit compiles
again.  The kernels are compiled for the CPU they are compiled on: a container image
built on another kind of CPU than the one it runs on compiles them again at run time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import numpy as np

#: The dtypes :func:`compile_kernels` compiles for by default.
DTYPES = ("float64", "float32")


@attrs.frozen
class WarmupStep:
    """One of :func:`compile_kernels`'s fits: what it ran and how long it took.

    Attributes
    ----------
    label : str
        What the step fits (estimator, strategies and data shape).
    dtype : str
        The data's dtype.
    seconds : float
        Its wall time: nearly all of it compiling when the kernels were not cached yet,
        well under a second when they were.
    """

    label: str
    dtype: str
    seconds: float


def _blobs(rng: np.random.Generator, n: int, d: int, centers: int, dtype: str) -> np.ndarray:
    """``n`` rows around ``centers`` random centres (unit noise), in ``dtype``."""
    means = rng.normal(0.0, 4.0, (centers, d))
    rows = means[rng.integers(0, centers, n)] + rng.standard_normal((n, d))
    return rows.astype(dtype)


@attrs.frozen
class KMeansFits:
    """Default-style KMeans fits of ``n_features`` features, one per ``(n, k)`` in
    ``shapes``, each followed by predict, transform and score (small data runs its Lloyd
    iterations on the calling thread, larger data splits them between threads: each a
    kernel of its own).

    Attributes
    ----------
    n_features : int
    shapes : tuple of (int, int)
        ``(n_samples, n_clusters)`` of each fit.
    params : dict
        Other KMeans parameters (strategies).
    """

    n_features: int
    shapes: tuple[tuple[int, int], ...]
    params: dict = attrs.field(factory=dict)

    def __call__(self, rng: np.random.Generator, dtype: str) -> None:
        from kmeansfw.estimator import KMeans

        for n, k in self.shapes:
            X = _blobs(rng, n, self.n_features, max(k, 2), dtype)
            # two threads asked for even on one CPU: the threaded kernels compile too
            model = KMeans(k, random_state=0, n_threads=2, **self.params).fit(X)
            model.predict(X)
            model.transform(X[:64])
            model.score(X)


def _kmeans(d: int, shapes: Sequence[tuple[int, int]], **params: Any) -> KMeansFits:
    return KMeansFits(d, tuple(shapes), params)


def _minibatch(rng: np.random.Generator, dtype: str) -> None:
    from kmeansfw.estimator import KMeans
    from kmeansfw.minibatch import MiniBatchKMeans

    X = _blobs(rng, 4000, 10, 8, dtype)
    MiniBatchKMeans(8, batch_size=512, random_state=0).fit(X).predict(X)
    model = KMeans(8, random_state=0).partial_fit(X[:2000])
    model.partial_fit(X[2000:])
    KMeans(8, random_state=0).fit(X).partial_fit(X[:500])


def _sparse(rng: np.random.Generator, dtype: str) -> None:
    import scipy.sparse as sp

    from kmeansfw.estimator import KMeans

    n, d = 3000, 40
    X = sp.random(n, d, density=0.1, format="csr", dtype=dtype, random_state=rng)
    X = (X + sp.csr_matrix((np.ones(n, dtype), (np.arange(n), np.arange(n) % d)), (n, d))).tocsr()
    KMeans(5, random_state=0).fit(X).predict(X)
    KMeans(5, distance="cosine", update="spherical", random_state=0).fit(X).predict(X)


def _medoids(rng: np.random.Generator, dtype: str) -> None:
    from kmeansfw.medoids import KMedoids

    X = _blobs(rng, 1500, 4, 5, dtype)
    for method in ("alternate", "pam"):
        KMedoids(5, method=method, random_state=0).fit(X).predict(X)
    KMedoids(5, metric="manhattan", random_state=0).fit(X)


def _distances(rng: np.random.Generator, dtype: str) -> None:
    from kmeansfw.core.config import Config
    from kmeansfw.engine.fitting import fit_config
    from kmeansfw.estimator import KMeans

    X = _blobs(rng, 3000, 6, 5, dtype)
    for params in (
        {"distance": "manhattan"},
        {"distance": "cosine"},
        {"distance": {"name": "minkowski", "p": 3}},
        {"distance": "sqeuclidean"},
        {"distance": "mahalanobis"},
    ):
        KMeans(5, random_state=0, **params).fit(X).predict(X)
    # updates paired on purpose with a distance whose objective they do not minimize, for
    # their kernels: built without the PairingWarning every fit of such a pairing gives,
    # so that the warm-up touches no warning filter of the process (a filter set here
    # would hold for every thread while it runs)
    on_purpose: tuple[dict[str, Any], ...] = (
        {"distance": "chebyshev", "update": "medoid"},
        {"update": "trimmed-mean"},
    )
    for params in on_purpose:
        cfg = Config(n_clusters=5, random_state=0, **params)
        fit_config(X, cfg, strategies=cfg.build_strategies(pairing_warnings=False))


#: (label, run) pairs, in the order :func:`compile_kernels` runs them.  The KMeans shapes
#: take each kind of nearest-centroid search (see
#: :func:`kmeansfw.kernels.euclidean.search_kind`) in the compiled Lloyd iterations that
#: run small data on the calling thread, and in the blocks that larger data, more
#: centroids or more features split between worker threads.
STEPS: tuple[tuple[str, Callable[[np.random.Generator, str], None]], ...] = (
    ("KMeans, 2 features", _kmeans(2, [(150, 3), (20000, 8)])),
    ("KMeans, 8 features", _kmeans(8, [(150, 3), (20000, 8)])),
    ("KMeans, 24 features", _kmeans(24, [(150, 5), (20000, 5)])),
    ("KMeans, 200 features", _kmeans(200, [(150, 8), (3000, 8), (3000, 3)])),
    ("KMeans, 64 features", _kmeans(64, [(150, 10), (20000, 64), (60000, 64)])),
    ("KMeans, many clusters", _kmeans(130, [(2000, 150)])),
    ("KMeans, many clusters, more rows", _kmeans(32, [(40000, 150)])),
    ("KMeans, assignment=hamerly", _kmeans(10, [(5000, 12)], assignment="hamerly")),
    ("KMeans, assignment=yinyang", _kmeans(10, [(5000, 40)], assignment="yinyang")),
    ("KMeans, assignment=nearest", _kmeans(10, [(5000, 12)], assignment="nearest")),
    ("KMeans, init=random", _kmeans(10, [(5000, 9)], init="random")),
    ("KMeans, init=k-means++", _kmeans(10, [(5000, 9)], init="k-means++")),
    ("KMeans, init=k-means||", _kmeans(10, [(5000, 9)], init="k-means||")),
    ("MiniBatchKMeans and partial_fit", _minibatch),
    ("sparse (CSR) input", _sparse),
    ("other distances and updates", _distances),
    ("KMedoids", _medoids),
)


def kernel_cache_folder() -> str | None:
    """Where numba keeps kmeansfw's compiled kernels, or None without numba."""
    from kmeansfw.kernels._compile import HAVE_NUMBA

    if not HAVE_NUMBA:
        return None
    from kmeansfw.kernels import euclidean

    cache = getattr(euclidean._direct_search, "_cache", None)
    return getattr(cache, "_cache_path", None)


def compile_kernels(
    dtypes: Sequence[str] = DTYPES,
    *,
    progress: Callable[[WarmupStep], Any] | None = None,
) -> list[WarmupStep]:
    """Compile (or load) every kernel the built-in strategies take, for ``dtypes``.

    Runs small fits, on generated data, that take each kernel (see the module's
    docstring); numba keeps what they compile on disk for every later process, so a
    user's first fit compiles nothing.  Without numba (not installed, or
    ``KMEANSFW_NUMBA=0``) the fits run the NumPy kernels and compile nothing.

    Parameters
    ----------
    dtypes : sequence of {"float64", "float32"}, default=("float64", "float32")
        The data types to compile for (each has kernels of its own).
    progress : callable, optional
        Called with each :class:`WarmupStep` when it is done.

    Returns
    -------
    list of WarmupStep
        Every step run, in order.

    Raises
    ------
    ValueError
        When ``dtypes`` is empty or names a dtype other than float64 and float32.
    """
    chosen = _checked_dtypes(dtypes)
    done: list[WarmupStep] = []
    for dtype in chosen:
        rng = np.random.default_rng(0)
        for label, run in STEPS:
            start = time.perf_counter()
            run(rng, dtype)
            step = WarmupStep(label, dtype, time.perf_counter() - start)
            done.append(step)
            if progress is not None:
                progress(step)
    return done


def _checked_dtypes(dtypes: Iterable[str]) -> list[str]:
    if isinstance(dtypes, str):
        dtypes = [dtypes]
    chosen: list[str] = []
    for dtype in dtypes:
        name = np.dtype(dtype).name if _is_dtype(dtype) else str(dtype)
        if name not in DTYPES:
            raise ValueError(
                f"compile_kernels: dtype {dtype!r} is not one kmeansfw computes in; "
                f"choose from {', '.join(DTYPES)}"
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ValueError("compile_kernels: no dtype given; choose from float64, float32")
    return chosen


def _is_dtype(value: Any) -> bool:
    if value is None:  # np.dtype(None) is float64: not a choice anyone made
        return False
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True
