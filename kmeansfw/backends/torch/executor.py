"""The torch backend's options: :class:`TorchExecutor` (precision of the distance
product, memory budget), the budget it gives a pass and the float32 matmul precision it sets
for the duration of a call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs
import torch

from kmeansfw.core.config import budget_bytes
from kmeansfw.core.errors import ConfigError

#: The smallest memory budget used on a CUDA device unless :class:`TorchExecutor` sets one.
CUDA_MIN_BUDGET = 1 << 30
#: Precisions of the distance product (see :class:`TorchExecutor`).
PRECISIONS = ("highest", "tf32", "fp16", "bf16")
#: How the assignment pass runs on CPU tensors (see :class:`TorchExecutor`).
CPU_KERNELS = ("compiled", "torch")
_LOW = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _check_precision(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value not in PRECISIONS:
        raise ConfigError(
            f"TorchExecutor: precision must be one of {', '.join(map(repr, PRECISIONS))}, "
            f"got {value!r}"
        )


def _check_cpu_kernels(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value not in CPU_KERNELS:
        raise ConfigError(
            f"TorchExecutor: cpu_kernels must be one of {', '.join(map(repr, CPU_KERNELS))}, "
            f"got {value!r}"
        )


def _check_budget(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    ok = value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    )
    if not ok:
        raise ConfigError(f"TorchExecutor: memory_budget_mb must be > 0 or None, got {value!r}")


@attrs.frozen
class TorchExecutor:
    """Options of the torch backend, passed as ``KMeans(executor=TorchExecutor(...))``.

    For tensor input the work runs on the tensor's device; these options say how.  For
    NumPy input it is a plain executor that runs the chunk tasks one after the other in
    the calling thread (so one estimator serves both kinds of input).

    Parameters
    ----------
    precision : {"highest", "tf32", "fp16", "bf16"}, default="highest"
        The precision of the distance product that picks each sample's centroid.
        ``"highest"``: the data's dtype (TF32 off even where torch enables it).
        ``"tf32"``: TF32 products on CUDA for float32 data (``torch``'s "high" float32
        matmul precision).  ``"fp16"`` / ``"bf16"``: the product in half precision.  For
        the Euclidean distances each chunk's rows and each centroid are first scaled by a
        power of two (exact) so that every product lies within [-1, 1]: fp16, whose range
        ends at 65504, cannot overflow whatever the data's magnitude; a chunk whose
        reduced distances still come out NaN or infinite is redone in the data's dtype.
        Half precision keeps about 3 significant digits (bf16 about 2) of ``x'.c'`` relative
        to ``|x'| |c'|`` (``x'``, ``c'`` centered on the training mean).  Whatever the
        precision, the cost of the chosen centroid is recomputed exactly in the data's
        dtype, so inertia and the objective are exact; only near-ties (within that
        round-off) may pick another centroid.
    memory_budget_mb : float or None, default=None
        Bytes of temporaries per chunk, in MiB.  None: the estimator's
        ``memory_budget_mb``, at least :data:`CUDA_MIN_BUDGET` on a CUDA device.
    cpu_kernels : {"compiled", "torch"}, default="compiled"
        How the assignment pass of a fit, ``predict`` and ``score`` runs on a CPU tensor
        with the ``euclidean`` or ``sqeuclidean`` distance, the ``mean`` update and full
        precision.  ``"compiled"``: the NumPy backend's compiled assignment step on the
        tensor's own memory (shared, never copied), in ``torch.get_num_threads()``
        threads; torch's CPU minimum-with-index makes the same pass as torch operations
        2-3x slower (:mod:`kmeansfw.backends.torch.host`).  ``"torch"``: torch operations,
        as on CUDA.  Either way the labels, costs and results are tensors on the CPU;
        they may differ in near-ties (the products round differently).  No effect on
        CUDA tensors or on other strategies.
    """

    precision: str = attrs.field(default="highest", validator=_check_precision)
    memory_budget_mb: float | None = attrs.field(default=None, validator=_check_budget)
    cpu_kernels: str = attrs.field(default="compiled", validator=_check_cpu_kernels)

    #: NumPy input's tasks run on the data itself, in this thread (as
    #: :class:`~kmeansfw.engine.executors.ThreadExecutor`'s): state a strategy keeps in
    #: the data's cache between passes is shared with them, and a ``transform``'s
    #: answers come back run by run (:func:`~kmeansfw.engine.executors.fill_rows`).
    in_process = True

    def map(self, fn: Any, chunks: Any) -> list:
        """Run ``fn`` on each chunk in order, in this thread (NumPy input)."""
        return [fn(chunk) for chunk in chunks]


def _options(executor: Any) -> TorchExecutor:
    if executor is None:
        return TorchExecutor()
    if isinstance(executor, TorchExecutor):
        return executor
    raise ConfigError(
        f"executor {executor!r} cannot run a fit on torch tensors: the torch backend runs "
        "on the tensor's device (pass executor=None or kmeansfw.backends.torch.TorchExecutor)"
    )


def _budget(options: TorchExecutor, default: int, device: torch.device) -> int:
    if options.memory_budget_mb is not None:
        return budget_bytes(options.memory_budget_mb)
    return max(default, CUDA_MIN_BUDGET) if device.type == "cuda" else default


@contextlib.contextmanager
def _matmul_precision(precision: str) -> Iterator[None]:
    """float32 products in full precision (or TF32 for ``"tf32"``) within the block.

    torch refuses to read its process-wide float32 matmul precision once a program has
    set a backend's own ``fp32_precision`` (``torch.backends.cuda.matmul.fp32_precision``,
    the setting that replaces the legacy ``allow_tf32`` flag; seen with torch 2.11 after a
    program set both).  The block then sets and restores the matmul ``fp32_precision`` of
    CUDA (``"tf32"`` or ``"ieee"``) and of the CPU's oneDNN (``"ieee"``: TF32 is CUDA's)
    instead.
    """
    try:
        before = torch.get_float32_matmul_precision()
    except RuntimeError:
        wanted = {torch.backends.cuda.matmul: "tf32" if precision == "tf32" else "ieee"}
        onednn = getattr(torch.backends.mkldnn, "matmul", None)  # not in every torch
        if onednn is not None:  # TF32 is CUDA's: the CPU multiplies in full precision
            wanted[onednn] = "ieee"
        restore = {backend: backend.fp32_precision for backend in wanted}
        try:
            for backend, value in wanted.items():
                backend.fp32_precision = value
            yield
        finally:
            for backend, value in restore.items():
                backend.fp32_precision = value
        return
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)
