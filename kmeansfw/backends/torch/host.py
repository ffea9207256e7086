"""CPU tensors: the Lloyd step of the built-in Euclidean distances by the NumPy backend's
compiled kernels, on the tensor's own memory.

On a CPU, torch's minimum-with-index over a chunk's (rows, k) product costs several times
its plain minimum, and the float64 sums of the update take two more passes: as torch
operations an iteration took 2.3-3.2x the NumPy backend's time with as many threads.  A
CPU tensor's memory is a NumPy array already (``Tensor.numpy()`` shares it), so for the
built-in ``euclidean`` / ``sqeuclidean`` distances with the ``mean`` update at full
precision, the assignment pass (nearest centroid, its exact cost and the float64
per-cluster sums; with ``auto``, the bounds of ``hamerly`` kept between iterations) runs
the NumPy backend's own assignment step
(:func:`kmeansfw.engine.steps.assign`, its contract checks included) on that memory, in
``torch.get_num_threads()`` worker threads, with the same fitted state (the training
mean, and whether the rows are compared on the origin instead).  Nothing is copied:
the labels and costs come back as tensors sharing the arrays the step filled.  Every
other pass (seeding, empty clusters, half precision, the cosine distance, user
distances) stays in torch, as on CUDA; ``TorchExecutor(cpu_kernels="torch")`` keeps the
assignment in torch too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from kmeansfw.backends.torch.data import _BUDGET, _sw
from kmeansfw.backends.torch.executor import TorchExecutor
from kmeansfw.backends.torch.geometry import _Euclidean, _Geometry
from kmeansfw.core.data import FitData, plan_block_rows
from kmeansfw.engine import loop as engine
from kmeansfw.engine import plugins, steps
from kmeansfw.engine.executors import single_threaded_blas
from kmeansfw.strategies.update import Mean

#: In a data set's cache: the NumPy view of a CPU tensor's data and the hooks its
#: assignment runs (see :func:`attach`).
_HOST = "torch.host"


def attach(
    data: FitData,
    options: TorchExecutor,
    geometry: _Geometry,
    spherical: bool,
    strategies: list[tuple[str, str, Any]],
    n_clusters: int,
) -> bool:
    """Give ``data`` (its fitted state learned) the NumPy view its assignments run on, when
    :func:`usable` and ``options`` ask for the compiled kernels: a :class:`FitData` over
    the same memory, planned for ``n_clusters`` by the size rule of the NumPy backend's plan
    (not its mid-size inline rule, :func:`kmeansfw.core.data.runs_inline`), prepared by
    the fit's own distance strategy, assigned by its own assignment strategy (``nearest``,
    or ``auto``, whose bounds then stay in the view's cache from one iteration to the
    next, as in the NumPy backend) and summed by ``mean``.  Returns whether it did."""
    if options.cpu_kernels != "compiled" or not usable(data, geometry, spherical):
        return False
    view = data.X.numpy()  # shares the tensor's memory
    host = FitData(
        X=view,
        sample_weight=_sw(data).numpy(),
        block_rows=plan_block_rows(
            view.shape[0],
            max(n_clusters, view.shape[1]),
            view.dtype.itemsize,
            data.cache[_BUDGET],
            n_features=view.shape[1],
        ),
        n_threads=torch.get_num_threads(),
        fitted=data.fitted,
        memory_budget=data.cache[_BUDGET],
    )
    slots = [entry for entry in strategies if entry[0] in ("distance", "assignment")]
    hooks = plugins.build([*slots, ("update", "mean", Mean())])
    engine.prepare(hooks, host)
    data.cache[_HOST] = (host, hooks)
    return True


def usable(data: FitData, geometry: _Geometry, spherical: bool) -> bool:
    """Whether a fit's assignments on ``data`` can run on its NumPy view: a contiguous CPU
    tensor, the built-in Euclidean distances at full precision, the ``mean`` update."""
    X = data.X
    return (
        X.device.type == "cpu"
        and X.is_contiguous()
        and isinstance(geometry, _Euclidean)
        and geometry.precision in ("highest", "tf32")  # TF32 is a CUDA format
        and not spherical
    )


def assign(
    data: FitData, C: Tensor, accumulate: bool
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None] | None:
    """The NumPy engine's assignment pass (:func:`kmeansfw.engine.steps.assign`) on the
    view :func:`attach` gave ``data`` (None when it has none): labels (int64) and exact
    costs as tensors sharing the step's arrays and, with ``accumulate``, the float64
    per-cluster sums and weights, the per-task partials added in row order
    (:meth:`Mean.reduce <kmeansfw.strategies.update.Mean.reduce>`)."""
    attached = data.cache.get(_HOST)
    if attached is None:
        return None
    host, hooks = attached
    with single_threaded_blas():
        done = steps.assign(hooks, host, C.numpy(), accumulate=accumulate)
    # intp: int64 on 64-bit systems
    labels = torch.from_numpy(_writable(done.labels)).to(torch.int64)
    costs = torch.from_numpy(_writable(done.costs))
    if not accumulate:
        return labels, costs, None, None
    if not done.partials:
        raise RuntimeError("the compiled assignment step returned no partial sums")
    sums, weights = Mean.reduce(done.partials)
    return labels, costs, torch.from_numpy(sums), torch.from_numpy(weights)


def _writable(view: np.ndarray) -> np.ndarray:
    """The array behind an assignment's read-only view (made by this pass, held by
    nothing else: torch shares it), or a copy when the view is not of a whole array."""
    base = view.base
    if (
        isinstance(base, np.ndarray)
        and base.flags.writeable
        and base.shape == view.shape
        and base.dtype == view.dtype
        and base.strides == view.strides
    ):
        return base
    return view.copy()
