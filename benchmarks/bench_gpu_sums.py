"""Per-cluster float64 sums on a GPU: time and run-to-run repeatability of the ways to add.

The torch backend's update adds each row (as float64) to its cluster's sums.  On CUDA
``index_add_`` does it with atomics, in whatever order the threads get there, so the sums
change their last bits from run to run; the backend adds in a fixed order instead.  This
script times, for one chunk of rows per shape, the ways one could add:

* ``backend``: what the backend runs (``kmeansfw.backends.torch.steps._add_rows``: on
  CUDA ``one-hot`` for at most ``ONE_HOT_MAX_CLUSTERS`` clusters, else ``grouped``);
* ``grouped``: the rows sorted by label, then ``one-hot`` per group of 256 labels;
* ``atomic``: ``sums.index_add_(0, labels, rows)`` (not repeatable);
* ``sorted``: ``sums.index_put_((labels,), rows, accumulate=True)``;
* ``embedding``: ``aten.embedding_dense_backward`` (sorted, partial sums per segment);
* ``one-hot``: ``one_hot(labels).T @ rows`` in float64 (a matrix product, in pieces);

and the float32 distance product of the same chunk against k centroids (``product``),
which an iteration takes anyway.  Each is the best of ``--repeat`` timings; "same" says
whether three runs gave the same bits.  Run ``python benchmarks/bench_gpu_sums.py`` on a
CUDA machine (``--device cpu`` runs it on a CPU).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from kmeansfw.backends.torch import steps

#: (rows, d, k, skew): with skew, 90 % of the rows in one cluster.
SHAPES = [
    (1_000_000, 2, 3, False),
    (1_000_000, 64, 8, False),
    (1_000_000, 64, 256, False),
    (4_000_000, 128, 1024, False),
    (4_000_000, 128, 1024, True),
]


def _timed(run: Callable[[], torch.Tensor], device: torch.device, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        torch.cuda.synchronize(device) if device.type == "cuda" else None
        start = time.perf_counter()
        run()
        torch.cuda.synchronize(device) if device.type == "cuda" else None
        best = min(best, time.perf_counter() - start)
    return best


def _methods(
    X: torch.Tensor, C: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor
) -> dict[str, Callable[[], torch.Tensor]]:
    """The ways to add ``rows`` to ``labels``' sums, and the distance product."""
    k, d = C.shape

    def zeros() -> torch.Tensor:
        return torch.zeros((k, d), dtype=torch.float64, device=X.device)

    def added(add: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]) -> torch.Tensor:
        out = zeros()
        add(out, labels, rows)
        return out

    return {
        "backend": lambda: added(steps._add_rows),
        "atomic": lambda: zeros().index_add_(0, labels, rows),
        "grouped": lambda: added(steps._grouped_add),
        "sorted": lambda: zeros().index_put_((labels,), rows, accumulate=True),
        "embedding": lambda: torch.ops.aten.embedding_dense_backward(rows, labels, k, -1, False),
        "one-hot": lambda: added(steps._one_hot_add),
        "product": lambda: X @ C.T,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gen = torch.Generator(device=device).manual_seed(0)
    print(f"device {device}, torch {torch.__version__}; ms per chunk, best of {args.repeat}")
    print(f"{'rows x d, k':>22} {'method':>10} {'ms':>9} {'same':>5} {'max rel diff':>13}")
    for n, d, k, skew in SHAPES:
        X = torch.randn((n, d), generator=gen, device=device)
        C = torch.randn((k, d), generator=gen, device=device)
        labels = torch.randint(0, k, (n,), generator=gen, device=device)
        if skew:
            crowded = torch.rand(n, generator=gen, device=device) < 0.9
            labels = torch.where(crowded, torch.zeros_like(labels), labels)
        rows = X.to(torch.float64)
        shape = f"{n}x{d}, k={k}" + (" skew" if skew else "")
        methods = _methods(X, C, labels, rows)
        ordered = methods["sorted"]
        reference = ordered()
        for name, run in methods.items():
            try:
                seconds = _timed(run, device, args.repeat)
                outs = [run() for _ in range(3)]
            except Exception as exc:  # noqa: BLE001 - report and go on (e.g. memory)
                print(f"{shape:>22} {name:>10} failed: {exc}")
                continue
            same = all(torch.equal(outs[0], other) for other in outs[1:])
            diff = (
                float(((outs[0] - reference).abs() / reference.abs().clamp(min=1e-300)).max())
                if name != "product"
                else 0.0
            )
            print(
                f"{shape:>22} {name:>10} {seconds * 1e3:>9.3f} {str(same):>5} {diff:>13.2e}",
                flush=True,
            )
        del X, C, labels, rows, reference
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
