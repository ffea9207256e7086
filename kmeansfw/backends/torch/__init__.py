"""Fit, predict and transform torch tensors on their own device (CPU or CUDA).

``KMeans.fit``, ``predict``, ``transform`` and ``score`` route a :class:`torch.Tensor` here
(extra ``kmeansfw[torch]``); torch is imported only for such input.  The data never
leaves its device: every pass over it is torch operations on row chunks (on a CPU tensor,
the Euclidean assignment pass is the NumPy backend's compiled step on the tensor's own
memory, :mod:`kmeansfw.backends.torch.host`), and only small things come back to the host
each iteration (the (k, d) centroids, the k cluster weights, a few scalars), so that
observers and convergence criteria run exactly as in the NumPy backend.

What runs on the device
-----------------------
* Distances ``euclidean``, ``sqeuclidean`` and ``cosine``.  Euclidean compares
  ``||c'||^2 - 2 x'.c'`` on rows and centroids centered on the training mean (its fitted
  state, as in the NumPy kernel; on the origin for data centered already,
  ``euclidean.at_origin``, which a torch fit decides by the NumPy fit's rule on the same
  drawn rows) and then recomputes the exact squared distance
  ``sum((x' - c')^2)`` of the chosen centroid only, so the objective is exact whatever the
  precision of the product.
* Assignment ``nearest`` (and ``auto``, which gives the same labels; on a CPU tensor with
  the compiled kernels, ``auto`` keeps ``hamerly``'s bounds as the NumPy backend does).
* Updates ``mean`` and ``spherical`` (per-cluster sums in float64: ``index_add_`` on a
  CPU, a fixed order of additions on CUDA; or by the compiled step on a CPU tensor).
* Empty clusters ``relocate-farthest`` (the farthest samples move, and the clusters
  concerned take the update of the moved partition, summed afresh), and any empty-cluster
  strategy whose hook reads only centroids and cluster weights (``keep``, ``raise``): it
  runs on the host copies.
* Seeding ``auto``, ``k-means++`` (greedy), ``k-means||``, ``random`` and explicit centroids.
* Every convergence criterion and observer, on the host, through the fit's hooks.

Memory: every pass walks row chunks whose temporaries (the (rows, k) product, two
(rows, d) copies and the float64 rows of the sums) fit the memory budget; no (n, k) matrix
is ever built beyond one chunk (:func:`plan_chunk_rows`).  The budget is the estimator's
``memory_budget_mb``, at least :data:`CUDA_MIN_BUDGET` on a CUDA device (kernel launches
per chunk would dominate below that), or exactly what :class:`TorchExecutor` says.

Threads: ``n_threads`` does not apply; torch runs CPU tensors on its own threads
(``torch.set_num_threads``), and the CPU host path (:mod:`kmeansfw.backends.torch.host`)
runs the NumPy engine's kernels with ``torch.get_num_threads()`` threads (worker threads on
large data, numba's on small data).  The precision options set torch's process-wide float32
matmul precision for the duration of a call and restore it after.

Randomness: every draw comes from the fit's :class:`numpy.random.Generator` on the host,
in the same order of calls as the NumPy backend's strategies (the first centre, k-means++'s
uniforms, k-means||'s per-sample uniforms, which are moved to the device); no torch
generator is used, so a seed gives the same result, bit for bit, on every run on the same
device.  On CUDA that takes care: torch's ``index_add_``, ``bincount`` with weights and
``cumsum`` add in whatever order the threads get there (on an H200 the same seed gave
centroids 1e-15 apart, and k-means|| other centroids altogether).  The backend adds the
float64 sums and weights as products ``one_hot(labels).T @ rows`` (at most 256 clusters
at a time; for more, the rows sorted by label and added 256 clusters at a time), which
cuBLAS computes with the same bits on every run on the same GPU and toolkit, and
k-means++ draws from block totals summed on the device and running sums on the host.

A strategy brings its own torch implementation by declaring ``accepts_torch = True``
(like ``accepts_sparse``): its hooks are then called with tensors.  This holds for
distances (``kmeansfw_cost`` / ``kmeansfw_distance`` get (b, d) row chunks and the (k, d)
centroids as tensors and return (b, k) tensors; a :class:`kmeansfw.Distance` subclass
writes ``pairwise`` with torch operations; ``kmeansfw_learn``, ``kmeansfw_prepare`` and
``kmeansfw_prepare_centroids`` get a :class:`~kmeansfw.core.data.FitData` holding tensors)
and for seedings (``kmeansfw_init_centroids`` gets ``X`` and ``sample_weight`` as tensors
and the fit's numpy Generator).  A plain function distance or init function declares it
with ``func.accepts_torch = True``.  Any other strategy is refused by name
(:class:`~kmeansfw.core.errors.StrategyError`), as are ``batch_size`` and ``checkpoint``
(:class:`~kmeansfw.core.errors.ConfigError`).
"""

from __future__ import annotations

from kmeansfw.backends.torch.data import CPU_CHUNK_BYTES as CPU_CHUNK_BYTES
from kmeansfw.backends.torch.data import CPU_MIN_ROWS as CPU_MIN_ROWS
from kmeansfw.backends.torch.data import is_tensor, plan_chunk_rows
from kmeansfw.backends.torch.estimator import fit_estimator, predict, score, transform
from kmeansfw.backends.torch.executor import CUDA_MIN_BUDGET as CUDA_MIN_BUDGET
from kmeansfw.backends.torch.executor import PRECISIONS as PRECISIONS
from kmeansfw.backends.torch.executor import TorchExecutor
from kmeansfw.backends.torch.fitting import fit, fit_config
from kmeansfw.backends.torch.loop import TorchState as TorchState

__all__ = [
    "TorchExecutor",
    "fit",
    "fit_config",
    "fit_estimator",
    "is_tensor",
    "plan_chunk_rows",
    "predict",
    "score",
    "transform",
]
