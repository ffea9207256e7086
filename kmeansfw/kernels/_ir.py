"""Pieces of LLVM IR that the kernels' numba intrinsics share (numba only).

:mod:`kmeansfw.kernels.tiles` and :mod:`kmeansfw.kernels.lanes` write their code as LLVM
IR: both type their arguments the same way, answer True or False from a switch over the
shapes they compile, decline the arrays they cannot read as they expect, and spread one
value over a vector.
"""

from __future__ import annotations

from kmeansfw.kernels._compile import HAVE_NUMBA

if HAVE_NUMBA:
    from llvmlite import ir
    from numba.core import cgutils, types

    def is_float_array(value: object, ndim: int) -> bool:
        """Whether numba's type ``value`` is an array of ``ndim`` dimensions of floats."""
        return (
            isinstance(value, types.Array)
            and value.ndim == ndim
            and isinstance(value.dtype, types.Float)
        )

    def declined(context, builder, sig, args):  # pragma: no cover - compiled
        """An intrinsic's code that answers False and does nothing."""
        return cgutils.false_bit

    def splat(builder, value, vector_type):  # pragma: no cover - compiled
        """``value`` in every lane of a vector of ``vector_type``."""
        lanes = vector_type.count
        one = builder.insert_element(
            ir.Constant(vector_type, ir.Undefined), value, ir.IntType(32)(0)
        )
        return builder.shuffle_vector(
            one,
            ir.Constant(vector_type, ir.Undefined),
            ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes),
        )

    def answer(builder, done, results):  # pragma: no cover - compiled
        """The intrinsic's boolean answer at block ``done``: ``results`` pairs each bit
        with the block that branches to ``done`` with it."""
        builder.position_at_end(done)
        bit = builder.phi(ir.IntType(1))
        for value, block in results:
            bit.add_incoming(value, block)
        return bit
