"""Eight rows centered and transposed in vector registers, for the compiled kernels.

The direct search reads a block's rows transposed (one array of the rows' values per
feature), so that its distances vectorize across rows.  Transposing row by row costs one
scalar load, subtraction and store per value: at three to eight features most of the
search's time outside its distances.  :func:`center_eight` does eight rows at once, as
LLVM vector instructions: one load of the eight rows' ``8 d`` contiguous values, one
shuffle per feature gathering its eight values, one vector subtraction of the feature's
mean, one store.  The values are those of the scalar loop (``X[row, f] - mean[f]``, one
IEEE subtraction each, with nothing to fuse it with), bit for bit: checked on x86-64
with SSE2, AVX2 and AVX-512 code, on data placed against unreadable pages (no read
past the eight rows).

Rows up to :data:`TILE_MAX_FEATURES` features (the direct search's widest), of a
C-contiguous array (eight rows of a row-major array are one contiguous run of values);
for any other width or layout it writes nothing and answers False, and the caller
transposes the scalar way.  Measured on an AMD EPYC (Zen 4) with AVX-512, one thread,
20480 rows in cache, the transposition alone: 2.1-3.7 ns a row -> 0.3-1.0 at three to
eight features in float32, 2.1-4.1 -> 0.5-2.2 in float64; 4.4-6.6 -> 2.4-3.6 at 12 and
16 in float32, and little or nothing at 16 in float64 (shuffles across a 1 KiB load).
Within the search and the mean's sums it made: 0.76-0.92x the time at three to eight
features, 0.79-0.91x at ten to sixteen.
"""

from __future__ import annotations

from kmeansfw.kernels._compile import HAVE_NUMBA

#: Rows one :func:`center_eight` call centers and transposes.
TILE_ROWS = 8

#: The most features :func:`center_eight` takes.
TILE_MAX_FEATURES = 16

if HAVE_NUMBA:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    from kmeansfw.kernels._ir import answer, declined, is_float_array, splat

    @intrinsic
    def center_eight(typingctx, X, row, mean, rows_t, col):  # pragma: no cover - compiled
        """``rows_t[f, col + t] = X[row + t, f] - mean[f]`` for ``t < 8`` and every
        feature ``f``; True, or False (nothing written) where ``X`` or ``rows_t`` is not
        C-contiguous, ``mean`` is not of ``X``'s dtype (the scalar loop subtracts in the
        wider type, then rounds), or ``X`` has more than :data:`TILE_MAX_FEATURES`
        features.  A read-only ``rows_t`` does not compile, as numba's own assignment.

        Rows ``row`` to ``row + 7`` of ``X``, columns ``col`` to ``col + 7`` of
        ``rows_t``, its first ``X.shape[1]`` rows and ``mean``'s first ``X.shape[1]``
        entries must exist: each is checked on every call, whatever numba's bounds
        checking, and one out of range raises IndexError before anything is read.
        """
        if not (
            is_float_array(X, 2)
            and is_float_array(mean, 1)
            and is_float_array(rows_t, 2)
            and X.dtype == rows_t.dtype
            and rows_t.mutable
            and isinstance(row, types.Integer)
            and isinstance(col, types.Integer)
        ):
            return None
        signature = types.boolean(X, row, mean, rows_t, col)
        if X.layout != "C" or rows_t.layout != "C" or mean.dtype != X.dtype:
            return signature, declined

        def codegen(context, builder, sig, args):
            x_type, row_type, mean_type, rows_type, col_type = sig.args
            x = context.make_array(x_type)(context, builder, args[0])
            means = context.make_array(mean_type)(context, builder, args[2])
            rows = context.make_array(rows_type)(context, builder, args[3])
            first = context.cast(builder, args[1], row_type, types.intp)
            column = context.cast(builder, args[4], col_type, types.intp)
            width = cgutils.unpack_tuple(builder, x.shape, 2)[1]
            intp = context.get_value_type(types.intp)
            value = context.get_data_type(x_type.dtype)
            align = x_type.dtype.bitwidth // 8
            i32 = ir.IntType(32)
            lanes = ir.VectorType(value, TILE_ROWS)

            done = builder.append_basic_block("center_eight.done")
            declined = builder.append_basic_block("center_eight.declined")
            switch = builder.switch(width, declined)
            results = [(cgutils.false_bit, declined)]
            with builder.goto_block(declined):
                builder.branch(done)
            for d in range(1, TILE_MAX_FEATURES + 1):
                case = builder.append_basic_block(f"center_eight.width{d}")
                switch.add_case(intp(d), case)
                with builder.goto_block(case):
                    last_row = builder.add(first, intp(TILE_ROWS - 1))
                    last_col = builder.add(column, intp(TILE_ROWS - 1))
                    # both corners of what is read and written, checked on every call
                    # (cgutils.do_boundscheck: an IndexError for an index below zero
                    # or past the end, numba's bounds checking on or off)
                    corners = (
                        (x_type, x, [first, intp(0)]),
                        (x_type, x, [last_row, intp(d - 1)]),
                        (rows_type, rows, [intp(0), column]),
                        (rows_type, rows, [intp(d - 1), last_col]),
                        (mean_type, means, [intp(d - 1)]),
                    )
                    for array_type, array, indices in corners:
                        cgutils.get_item_pointer(
                            context, builder, array_type, array, indices, boundscheck=True
                        )
                    start = cgutils.get_item_pointer(
                        context, builder, x_type, x, [first, intp(0)]
                    )
                    tile_type = ir.VectorType(value, TILE_ROWS * d)
                    tile = builder.load(builder.bitcast(start, tile_type.as_pointer()), align=align)
                    undefined = ir.Constant(tile_type, ir.Undefined)
                    for f in range(d):
                        picked = ir.Constant(
                            ir.VectorType(i32, TILE_ROWS), [f + t * d for t in range(TILE_ROWS)]
                        )
                        column_values = builder.shuffle_vector(tile, undefined, picked)
                        mean_f = builder.load(
                            cgutils.get_item_pointer(
                                context, builder, mean_type, means, [intp(f)]
                            )
                        )
                        spread = splat(builder, mean_f, lanes)
                        target = cgutils.get_item_pointer(
                            context, builder, rows_type, rows, [intp(f), column]
                        )
                        builder.store(
                            builder.fsub(column_values, spread),
                            builder.bitcast(target, lanes.as_pointer()),
                            align=align,
                        )
                    results.append((cgutils.true_bit, builder.block))
                    builder.branch(done)
            return answer(builder, done, results)

        return signature, codegen
