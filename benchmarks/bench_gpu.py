"""Lloyd iteration time of kmeansfw on torch tensors against plain torch and the product.

Self-contained: the data (Gaussian blobs) is generated on the device.  For each shape and
precision it measures, per Lloyd iteration and from the same initial centroids:

* ``kmeansfw``: ``KMeans(init=C0, max_iter=m).fit(X)`` on the tensor (the torch
  backend, :mod:`kmeansfw.backends.torch`); one iteration is the difference between a fit
  of ``--iters`` + 2 iterations and one of 2, divided by ``--iters``, so set-up (the mean,
  the variance, the final assignment, the copies to the host) cancels out;
* ``torch``: a plain torch Lloyd loop as one would write it by hand (per chunk one
  distance product, argmin, ``index_add_`` of the rows into float32 sums; then sums /
  counts);
* ``product``: the bare matrix product ``X @ C.T`` over the same chunks (the floor);
* ``faiss``: ``faiss.Kmeans(gpu=True)`` when faiss's GPU build is installed (its
  iterations from the same centroids, also by difference of two runs);
* on a CPU only: ``ops``, kmeansfw with ``TorchExecutor(cpu_kernels="torch")`` (every pass
  as torch operations, as on CUDA; the default runs the assignment with the NumPy
  backend's compiled kernels on the tensor's memory), and ``numpy``, kmeansfw's NumPy
  backend on the same data (default settings), with as many threads as torch uses.

It prints ms per iteration and the ratios kmeansfw / product, kmeansfw / torch (and
kmeansfw / numpy), and the peak device memory of the kmeansfw fit above the data
(CUDA only).  The targets (issue "A GPU backend"): at most 1.2x the product and no
slower than plain torch at each shape; on CPU torch, no slower than 2x the NumPy backend.

Run ``python benchmarks/bench_gpu.py`` on a CUDA machine (the shapes 1M x 64 k=256,
10M x 128 k=1024 and 10M x 768 k=1024, fp32 and tf32; about 32 GiB of device memory for
the largest data), or ``python benchmarks/bench_gpu.py --quick`` (small shapes, runs on a
CPU too).  ``--device cpu`` forces the CPU; ``--threads`` sets torch's CPU threads.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from kmeansfw import KMeans
from kmeansfw.backends.torch import TorchExecutor

FULL = [(1_000_000, 64, 256), (10_000_000, 128, 1024), (10_000_000, 768, 1024)]
QUICK = [(100_000, 32, 64), (200_000, 64, 256)]
#: Every fit runs exactly max_iter iterations (no criterion stops it early).
NEVER = {"name": "callback", "func": lambda state: False}
#: Bytes of the (rows, k) block per chunk of the plain torch loop and the product.
CHUNK_BYTES = 1 << 30


def make_data(n: int, d: int, k: int, device: torch.device, seed: int = 0):
    """Blobs around k centres, generated on the device in chunks; and k initial rows."""
    gen = torch.Generator(device=device).manual_seed(seed)
    centres = torch.rand((k, d), generator=gen, device=device) * 20 - 10
    X = torch.empty((n, d), device=device)
    step = 1 << 20
    for start in range(0, n, step):
        stop = min(start + step, n)
        which = torch.randint(0, k, (stop - start,), generator=gen, device=device)
        X[start:stop] = centres[which] + torch.randn(
            (stop - start, d), generator=gen, device=device
        )
    init = X[torch.randperm(n, generator=gen, device=device)[:k]].clone()
    return X, init


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def chunk_rows(k: int) -> int:
    return max(1, CHUNK_BYTES // (4 * k))


def torch_lloyd(X: torch.Tensor, C: torch.Tensor, iters: int) -> torch.Tensor:
    """Plain torch Lloyd: per chunk one product, argmin, index_add_ (float32 sums)."""
    k = C.shape[0]
    rows = chunk_rows(k)
    x_norms = (X * X).sum(dim=1)
    for _ in range(iters):
        sums = torch.zeros_like(C)
        counts = torch.zeros(k, device=X.device)
        c_norms = (C * C).sum(dim=1)
        for start in range(0, X.shape[0], rows):
            block = X[start : start + rows]
            d2 = torch.addmm(c_norms, block, C.T, alpha=-2) + x_norms[start : start + rows, None]
            labels = d2.argmin(dim=1)
            sums.index_add_(0, labels, block)
            counts += torch.bincount(labels, minlength=k)
        filled = counts > 0
        C = torch.where(filled[:, None], sums / counts.clamp(min=1)[:, None], C)
    return C


def product_only(X: torch.Tensor, C: torch.Tensor, iters: int) -> None:
    rows = chunk_rows(C.shape[0])
    for _ in range(iters):
        for start in range(0, X.shape[0], rows):
            X[start : start + rows] @ C.T


def per_iteration(run: Callable[[int], object], device, iters: int, repeat: int) -> float:
    """Seconds per iteration: (time of iters + 2) - (time of 2), over iters."""
    short = timed(lambda: run(2), device, repeat)
    long = timed(lambda: run(iters + 2), device, repeat)
    return max(long - short, 0.0) / iters


def ratio(ours: float, theirs: float) -> str:
    """``ours / theirs`` to two places, or "-" when the difference of runs left no time."""
    return f"{ours / theirs:.2f}" if theirs > 0 else "-"


def faiss_gpu():
    try:
        import faiss
    except ImportError:
        return None
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
        return None
    return faiss


def measure(
    X: torch.Tensor,
    C0: torch.Tensor,
    precision: str,
    device: torch.device,
    iters: int,
    repeat: int,
    faiss: object,
) -> str:
    """One line of the table: the times per iteration of one shape and precision."""
    (n, d), k = X.shape, C0.shape[0]
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"  # plain torch and product
    options = TorchExecutor(precision="tf32" if precision == "tf32" else "highest")
    init = C0.cpu().numpy()

    def fit(m: int) -> object:
        km = KMeans(k, init=init, convergence=NEVER, max_iter=m, executor=options)
        return km.fit(X)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    ours = per_iteration(fit, device, iters, repeat)
    peak = ""
    if device.type == "cuda":
        peak = f" {(torch.cuda.max_memory_allocated(device) - base) / 2**20:>19.0f}"
    plain = per_iteration(lambda m: torch_lloyd(X, C0, m), device, iters, repeat)
    bare = per_iteration(lambda m: product_only(X, C0, m), device, iters, repeat)
    line = (
        f"{f'{n}x{d} k={k}':>22} {precision:>4} {ours * 1e3:>9.2f} "
        f"{plain * 1e3:>9.2f} {bare * 1e3:>9.2f} {ratio(ours, bare):>8} {ratio(ours, plain):>7}"
    )
    if faiss is not None:
        host = X.cpu().numpy()

        def run_faiss(m: int) -> None:
            km = faiss.Kmeans(d, k, niter=m, gpu=True, max_points_per_centroid=n)
            km.train(host, init_centroids=init)

        theirs = per_iteration(run_faiss, device, iters, 1)
        line += f" {theirs * 1e3:>9.2f} {ratio(ours, theirs):>7}"
    if device.type == "cpu":
        ops_options = TorchExecutor(cpu_kernels="torch")

        def fit_ops(m: int) -> object:
            km = KMeans(k, init=init, convergence=NEVER, max_iter=m, executor=ops_options)
            return km.fit(X)

        ops = per_iteration(fit_ops, device, iters, repeat)
        host = X.numpy()

        def fit_numpy(m: int) -> object:
            # as many threads as torch has, so the ratio compares the backends only
            threads = torch.get_num_threads()
            return KMeans(k, init=init, convergence=NEVER, max_iter=m, n_threads=threads).fit(host)

        numpy_time = per_iteration(fit_numpy, device, iters, repeat)
        line += (
            f" {ops * 1e3:>9.2f} {numpy_time * 1e3:>9.2f} {ratio(ours, numpy_time):>7}"
            f" {ratio(ops, numpy_time):>7}"
        )
    return line + peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (CPU friendly)")
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--iters", type=int, default=None, help="iterations timed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--shape", action="append", default=None, help="NxDxK (repeatable): these shapes only"
    )
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = QUICK if args.quick else FULL
    if args.shape:
        shapes = [tuple(int(v) for v in shape.lower().split("x")) for shape in args.shape]
    iters = args.iters or (5 if args.quick else 10)
    precisions = ["fp32", "tf32"] if device.type == "cuda" else ["fp32"]
    faiss = faiss_gpu() if device.type == "cuda" else None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {name}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"ms per Lloyd iteration ({iters} timed, best of {args.repeat}); ratio = kmeansfw / x")
    header = (
        f"{'shape':>22} {'prec':>4} {'kmeansfw':>9} {'torch':>9} {'product':>9} "
        f"{'/product':>8} {'/torch':>7}"
    )
    header += f" {'faiss':>9} {'/faiss':>7}" if faiss is not None else ""
    if device.type == "cpu":
        header += f" {'ops':>9} {'numpy':>9} {'/numpy':>7} {'ops/np':>7}"
    header += f" {'peak MiB over data':>19}" if device.type == "cuda" else ""
    print(header)
    for n, d, k in shapes:
        X, C0 = make_data(n, d, k, device)
        for precision in precisions:
            print(measure(X, C0, precision, device, iters, args.repeat, faiss), flush=True)
        del X, C0
        if device.type == "cuda":
            torch.cuda.empty_cache()
    torch.backends.cuda.matmul.allow_tf32 = False


if __name__ == "__main__":
    main()
