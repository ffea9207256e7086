"""Peak memory of each call that sees data, kmeansfw against scikit-learn, by n.

Each (library, call, n) runs in a fresh process: the data is generated (standard normal
rows), a warm-up fits a model (imports, compiled kernels, and the fitted model that
``predict``, ``score`` and ``transform`` need), the peak resident set is reset (Linux's
``/proc/self/clear_refs``), and the call runs once; its figure is the growth of the
peak resident set over the resident set just before the call (the data not counted).
Two sizes tell what grows with the data: ``(extra at n2 - extra at n1) / (n2 - n1)``
bytes a sample, against the bytes a sample of the call's answer (4 for int32 labels,
8 k for a float64 ``transform``).

    python benchmarks/bench_memory.py                          # 250k and 1M x 16, k=8
    python benchmarks/bench_memory.py --n 250000 2000000 --d 64 --k 8 --dtype float32

Fits run the defaults (k-means++ seeding, one init) for ``--max-iter`` iterations.
Below a few hundred thousand rows the figures are within the allocator's reuse of freed
memory (a call can even read a few MB below its baseline): compare sizes of 250000 rows
and more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lloyd import peak_rss_mb, processor, rss_mb  # noqa: E402

#: call -> (the libraries that have it, the bytes a sample of its answer given k)
CALLS = {
    "KMeans.fit": (("kmeansfw", "scikit-learn"), lambda k: 4),
    "KMeans.predict": (("kmeansfw", "scikit-learn"), lambda k: 4),
    "KMeans.score": (("kmeansfw", "scikit-learn"), lambda k: 0),
    "KMeans.transform": (("kmeansfw", "scikit-learn"), lambda k: 8 * k),
    "MiniBatchKMeans.fit": (("kmeansfw", "scikit-learn"), lambda k: 4),
    "KMedoids.fit": (("kmeansfw",), lambda k: 8),
}


def _estimator(library: str, kind: str, k: int, max_iter: int):
    if library == "kmeansfw":
        import kmeansfw as lib
    else:
        import sklearn.cluster as lib
    common = {"random_state": 0, "max_iter": max_iter}
    if kind == "KMedoids":
        return lib.KMedoids(k, **common)
    if kind == "MiniBatchKMeans":
        return lib.MiniBatchKMeans(k, n_init=1, batch_size=4096, **common)
    return lib.KMeans(k, n_init=1, tol=0.0, **common)


def reset_peak() -> None:
    """Start the peak resident set (VmHWM) again from the current one (Linux 4.0+)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def child(library: str, call: str, n: int, d: int, k: int, dtype: str, max_iter: int) -> None:
    """In a fresh process: the extra peak MB of one call, printed as JSON."""
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(n + d)
    X = np.empty((n, d), dtype=dtype)
    for start in range(0, n, 65536):  # generated in chunks: no temporaries of X's size
        stop = min(start + 65536, n)
        X[start:stop] = rng.standard_normal((stop - start, d))
    kind, method = call.split(".")
    est = _estimator(library, kind, k, max_iter)
    if method == "fit":
        est.fit(X[: min(n, 20_000)])  # imports and compiled kernels
        est = _estimator(library, kind, k, max_iter)
        run = lambda: est.fit(X)  # noqa: E731
    else:
        est.fit(X[: min(n, 50_000)])
        getattr(est, method)(X[:100])
        run = lambda: getattr(est, method)(X)  # noqa: E731
    base = rss_mb()
    reset_peak()
    answer = run()
    extra = peak_rss_mb() - base
    del answer
    print(json.dumps({"extra_mb": extra}))


def measure(library: str, call: str, n: int, args: argparse.Namespace) -> float:
    spec = f"{library},{call},{n},{args.d},{args.k},{args.dtype},{args.max_iter}"
    out = subprocess.run(
        [sys.executable, __file__, "--child", spec], check=True, capture_output=True, text=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["extra_mb"])


def per_sample(small: float, large: float, n1: int, n2: int) -> float:
    """Bytes a sample of the growth between two sizes (MB figures)."""
    return (large - small) * 2**20 / (n2 - n1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs=2, default=[250_000, 1_000_000])
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--max-iter", type=int, default=5)
    parser.add_argument("--calls", nargs="*", default=list(CALLS), choices=list(CALLS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        library, call, n, d, k, dtype, max_iter = args.child.split(",")
        child(library, call, int(n), int(d), int(k), dtype, int(max_iter))
        return
    if not os.path.exists("/proc/self/clear_refs"):
        sys.exit("bench_memory.py reads Linux's /proc/self/clear_refs and status")
    import sklearn

    import kmeansfw

    n1, n2 = sorted(args.n)
    data_mb = n2 * args.d * np.dtype(args.dtype).itemsize / 2**20
    print(
        f"{processor()}; kmeansfw {kmeansfw.__version__}, scikit-learn {sklearn.__version__}; "
        f"{args.d} features, k={args.k}, {args.dtype}, data {data_mb:.0f} MB at n={n2}"
    )
    print(
        f"| call | kmeansfw MB at {n1} / {n2} | kmeansfw bytes a sample | "
        f"scikit-learn MB at {n1} / {n2} | scikit-learn bytes a sample | answer bytes a sample |"
    )
    print("|---|---|---|---|---|---|")
    for call in args.calls:
        libraries, answer = CALLS[call]
        cells = []
        for library in ("kmeansfw", "scikit-learn"):
            if library not in libraries:
                cells += ["-", "-"]
                continue
            small, large = (measure(library, call, n, args) for n in (n1, n2))
            cells += [f"{small:.0f} / {large:.0f}", f"{per_sample(small, large, n1, n2):.0f}"]
        print(f"| {call} | {' | '.join(cells)} | {answer(args.k)} |", flush=True)


if __name__ == "__main__":
    main()
