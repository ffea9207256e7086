"""Software prefetch for the compiled kernels.

:func:`prefetch_line` asks the processor to bring the cache line holding ``X[i, j]`` of
a 2-D array into its second-level cache without waiting for it (LLVM's ``llvm.prefetch``:
a read, locality 2, the x86 ``prefetcht1``).  The prefetch changes no value and the
processor never faults on it: a hint only.  Its index is bounds-checked where numba's
bounds checking is on (``NUMBA_BOUNDSCHECK=1``), so that a kernel asking for a line past
its array fails there instead of passing unnoticed.
"""

from __future__ import annotations

from kmeansfw.kernels._compile import HAVE_NUMBA

#: Bytes per cache line: a row's lines are prefetched one item in this many bytes.
CACHE_LINE_BYTES = 64

if HAVE_NUMBA:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def prefetch_line(typingctx, X, i, j):  # pragma: no cover - compiled
        """Prefetch the cache line of ``X[i, j]`` (2-D array, indices in range)."""
        if not (isinstance(X, types.Array) and X.ndim == 2):
            return None
        signature = types.void(X, i, j)

        def codegen(context, builder, sig, args):
            array_type = sig.args[0]
            array = context.make_array(array_type)(context, builder, args[0])
            indices = [
                context.cast(builder, value, ty, types.intp)
                for value, ty in zip(args[1:], sig.args[1:], strict=True)
            ]
            pointer = cgutils.get_item_pointer(
                context, builder, array_type, array, indices, wraparound=False, boundscheck=True
            )
            if getattr(pointer.type, "is_opaque", False):  # LLVM 15 and later
                name = "llvm.prefetch.p0"
            else:  # typed pointers (older llvmlite): an i8*
                pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
                name = "llvm.prefetch.p0i8"
            i32 = ir.IntType(32)
            hint = ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32])
            function = cgutils.get_or_insert_function(builder.module, hint, name)
            # read (0), into the second-level cache and beyond (locality 2), data (1)
            builder.call(function, [pointer, i32(0), i32(2), i32(1)])
            return context.get_dummy_value()

        return signature, codegen
