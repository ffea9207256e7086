"""kmeansfw on a Dask LocalCluster (2 workers x 1 thread) against dask-ml (when installed)
and against in-memory kmeansfw (threads) on the same data.

    python benchmarks/bench_dask.py            # 2M x 64 float64, k=64
    python benchmarks/bench_dask.py --quick    # 200k x 16, k=16
    python benchmarks/bench_dask.py --large [--rows 20000000]
    python benchmarks/bench_dask.py --out-of-core [--gb 36] [--dir /tmp]

Default: per method, seconds, iterations, clusters found, the true inertia (sum of squared
distances, computed the same way for every method) relative to in-memory kmeansfw, and the
driver's resident-memory growth during the fit.

``--large``: ``--rows`` x 64 float32, k=64 (default 20M rows, 5.1 GB): time per Lloyd
iteration on the LocalCluster against the in-memory threads backend, both from the same
initial centroids with ``tol=0`` and ``max_iter=10`` (the workers get 12 GB each, so the
persisted data is not spilled; the driver holds a copy for the in-memory fit).

``--out-of-core``: writes a ``.npy`` of ``--gb`` gigabytes (default 1.5 x this machine's
memory) of 64 float64 columns to ``--dir`` block by block, opens it with
``np.load(path, mmap_mode="r")`` and fits it with the threads backend (k=16,
``k-means||``, ``max_iter=5``), reporting the time, the peak anonymous memory growth
(what the process allocated; the mapped file's pages are page cache, reclaimable) and the
peak resident set; the file is removed afterwards.

Timings on a shared machine are noisy: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import warnings

import numpy as np


def rss() -> int:
    """Resident set size of this process, bytes."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def true_inertia(X, centroids) -> float:
    """Sum of squared distances to the nearest centroid, on the cluster."""
    import dask.array as da

    c = np.asarray(centroids, dtype=np.float64)

    def block(x):
        d = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None, :]
        return np.array([np.maximum(d.min(axis=1), 0).sum()])

    parts = X.map_blocks(block, dtype=np.float64, drop_axis=1, chunks=((1,) * X.numblocks[0],))
    return float(da.sum(parts).compute())


def anonymous() -> int:
    """Anonymous resident memory of this process (RssAnon), bytes."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakWatch:
    """Samples RssAnon and VmRSS every 5 ms in a thread; the peaks above the start."""

    def __init__(self) -> None:
        self.start_anon, self.start_rss = anonymous(), rss()
        self.anon, self.rss = self.start_anon, self.start_rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            self.anon, self.rss = max(self.anon, anonymous()), max(self.rss, rss())
            time.sleep(0.005)

    def stop(self) -> tuple[int, int]:
        """(peak anonymous growth, peak resident growth), bytes."""
        self._done.set()
        self._thread.join()
        return self.anon - self.start_anon, self.rss - self.start_rss


def blobs(n: int, d: int, k: int, seed: int, dtype: str, chunk_rows: int):
    """A dask array of ``k`` Gaussian blobs (unit variance around centres of scale 6)."""
    import dask.array as da

    rs = da.random.RandomState(seed)
    centres = rs.normal(scale=6.0, size=(k, d), chunks=(k, d)).compute()
    labels = rs.randint(0, k, size=n, chunks=chunk_rows)
    noise = rs.normal(size=(n, d), chunks=(chunk_rows, d))
    return (da.from_array(centres)[labels] + noise).astype(dtype).rechunk((chunk_rows, d))


def warm_up(X, k: int) -> None:
    """One small fit on the cluster and in memory first: imports and kernel compilation on
    every worker and on the driver are not timed."""
    from kmeansfw import KMeans

    head = X[: max(20 * k, 50_000)]
    for data in (head, head.compute()):
        KMeans(n_clusters=k, init="k-means||", max_iter=2, random_state=0).fit(data)


def large(args: argparse.Namespace) -> None:
    """Time per iteration on the LocalCluster against in-memory threads (``--large``)."""
    from distributed import Client, LocalCluster

    from kmeansfw import KMeans

    n, d, k, iters = args.rows, 64, 64, 10
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit="12GB",
        dashboard_address=None,
    )
    client = Client(cluster)
    X = client.persist(blobs(n, d, k, args.seed, "float32", n // 16))
    X.sum().compute()
    init = X[:k].compute()
    warm_up(X, k)
    print(f"data: {n} x {d} float32 ({X.nbytes / 2**30:.2f} GiB), k={k}, {iters} iterations")
    params = {"n_clusters": k, "init": init, "max_iter": iters, "tol": 0.0}
    t = time.perf_counter()
    on_cluster = KMeans(**params).fit(X)
    dask_s = time.perf_counter() - t
    local = X.compute()
    t = time.perf_counter()
    in_memory = KMeans(**params, n_threads=2).fit(local)
    mem_s = time.perf_counter() - t
    assert on_cluster.n_iter_ == in_memory.n_iter_ == iters
    differ = int(np.count_nonzero(on_cluster.labels_ != in_memory.labels_))
    shift = np.abs(on_cluster.cluster_centers_ - in_memory.cluster_centers_).max()
    print(f"{'method':30s} {'s':>8s} {'s/iter':>8s}")
    print(f"{'kmeansfw dask (2 workers x 1)':30s} {dask_s:8.2f} {dask_s / iters:8.3f}")
    print(f"{'kmeansfw threads (2 threads)':30s} {mem_s:8.2f} {mem_s / iters:8.3f}")
    print(
        f"dask / in-memory time per iteration: {dask_s / mem_s:.2f}; labels that differ: "
        f"{differ} of {n} (float32 sums in another order: chunks of {n // 16} rows); largest "
        f"centroid difference {shift:.2e}; inertia ratio "
        f"{on_cluster.inertia_ / in_memory.inertia_:.7f}"
    )
    client.close()
    cluster.close()


def out_of_core(args: argparse.Namespace) -> None:
    """An on-disk .npy larger than memory, fitted through mmap (``--out-of-core``)."""
    from kmeansfw import KMeans

    with open("/proc/meminfo") as f:
        total = int(next(line for line in f if line.startswith("MemTotal:")).split()[1]) * 1024
    nbytes = int((args.gb or 1.5 * total / 2**30) * 2**30)
    d, k = 64, 16
    n = nbytes // (8 * d)
    path = os.path.join(args.dir, f"kmeansfw-bench-{os.getpid()}.npy")
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(scale=6.0, size=(k, d))
    t = time.perf_counter()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
    step = 1 << 17
    for start in range(0, n, step):
        rows = min(step, n - start)
        out[start : start + rows] = centres[rng.integers(0, k, rows)] + rng.normal(size=(rows, d))
    out.flush()
    del out
    print(
        f"wrote {n} x {d} float64 ({nbytes / 2**30:.1f} GiB, {nbytes / total:.2f} x this "
        f"machine's {total / 2**30:.1f} GiB) in {time.perf_counter() - t:.0f} s"
    )
    try:
        X = np.load(path, mmap_mode="r")
        watch = PeakWatch()
        t = time.perf_counter()
        km = KMeans(n_clusters=k, init="k-means||", max_iter=5, random_state=args.seed).fit(X)
        s = time.perf_counter() - t
        anon, resident = watch.stop()
        print(
            f"fit: {s:.0f} s, {km.n_iter_} iterations, {np.unique(km.labels_).size} clusters; "
            f"peak anonymous growth {anon / 2**20:.0f} MB ({anon / nbytes:.1%} of the data), "
            f"peak resident growth {resident / 2**20:.0f} MB ({resident / nbytes:.1%})"
        )
    finally:
        os.remove(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--out-of-core", action="store_true")
    parser.add_argument("--gb", type=float, default=None)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.large:
        return large(args)
    if args.out_of_core:
        return out_of_core(args)
    n, d, k = (200_000, 16, 16) if args.quick else (2_000_000, 64, 64)

    from distributed import Client, LocalCluster

    from kmeansfw import KMeans

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit="4GB",
        dashboard_address=None,
    )
    client = Client(cluster)
    X = client.persist(blobs(n, d, k, args.seed, "float64", n // 8))
    X.sum().compute()  # materialized on the workers before timing
    warm_up(X, k)
    print(f"data: {n} x {d} float64 ({X.nbytes / 2**30:.2f} GiB), k={k}, LocalCluster 2x1")

    rows = []
    before = rss()
    t = time.perf_counter()
    km = KMeans(n_clusters=k, init="k-means||", random_state=args.seed).fit(X)
    dask_s = time.perf_counter() - t
    growth = rss() - before
    rows.append(
        (
            "kmeansfw dask",
            dask_s,
            km.n_iter_,
            np.unique(km.labels_).size,
            true_inertia(X, km.cluster_centers_),
            growth,
        )
    )

    try:
        from dask_ml.cluster import KMeans as DaskMLKMeans
    except ImportError:
        print("dask-ml is not installed: skipping it")
    else:
        before = rss()
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = DaskMLKMeans(n_clusters=k, random_state=args.seed).fit(X)
        s = time.perf_counter() - t
        found = np.unique(np.asarray(ref.labels_)).size
        rows.append(
            (
                "dask-ml",
                s,
                ref.n_iter_,
                found,
                true_inertia(X, ref.cluster_centers_),
                rss() - before,
            )
        )

    local = X.compute()
    t = time.perf_counter()
    mem = KMeans(n_clusters=k, init="k-means||", random_state=args.seed).fit(local)
    mem_s = time.perf_counter() - t
    base = true_inertia(X, mem.cluster_centers_)
    rows.append(
        ("kmeansfw threads (in memory)", mem_s, mem.n_iter_, np.unique(mem.labels_).size, base, 0)
    )

    print(
        f"{'method':30s} {'s':>8s} {'iter':>5s} {'found':>6s} {'inertia/mem':>12s} "
        f"{'s/iter':>8s} {'driver +MB':>10s}"
    )
    for name, s, it, found, inertia, grow in rows:
        print(
            f"{name:30s} {s:8.2f} {it:5d} {found:6d} {inertia / base:12.4f} "
            f"{s / max(it, 1):8.3f} {grow / 2**20:10.0f}"
        )
    print(
        f"dask / in-memory time: {dask_s / mem_s:.2f}; "
        f"driver growth {rows[0][5] / X.nbytes:.1%} of the data"
    )
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
