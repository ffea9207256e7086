"""Eight rows centered and transposed in vector registers, for the compiled kernels.

The direct search reads a block's rows transposed (one array of the rows' values per
feature), so that its distances vectorize across rows.  Transposing row by row costs one
scalar load, subtraction and store per value: at three to eight features most of the
search's time outside its distances.  :func:`center_eight` does eight rows at once, as
LLVM vector instructions: one load of the eight rows' ``8 d`` contiguous values, one
shuffle per feature gathering its eight values, one vector subtraction of the feature's
mean, one store.  The values are those of the scalar loop (``X[row, f] - mean[f]``, one
IEEE subtraction each), bit for bit, on any processor LLVM compiles for; only the
instructions differ.

Rows up to :data:`TILE_MAX_FEATURES` features (the direct search's widest), of a
C-contiguous array (eight rows of a row-major array are one contiguous run of values);
for any other width or layout it writes nothing and answers False, and the caller
transposes the scalar way.  Measured on an AMD EPYC (Zen 4) with AVX-512, one thread,
20480 rows in cache, the transposition alone: 2.1-3.7 ns a row -> 0.3-1.0 at two to
eight features in float32, 2.1-4.1 -> 0.5-2.2 in float64; 4.4-5.4 -> 2.4-3.6 at 12 and
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

    def _is_float_array(value: object, ndim: int) -> bool:
        return (
            isinstance(value, types.Array)
            and value.ndim == ndim
            and isinstance(value.dtype, types.Float)
        )

    @intrinsic
    def center_eight(typingctx, X, row, mean, rows_t, col):  # pragma: no cover - compiled
        """``rows_t[f, col + t] = X[row + t, f] - mean[f]`` for ``t < 8`` and every
        feature ``f``; True, or False (nothing written) where ``X`` is not C-contiguous
        or has more than :data:`TILE_MAX_FEATURES` features.

        The caller keeps ``row + 8 <= X.shape[0]``, ``col + 8 <= rows_t.shape[1]``,
        ``rows_t.shape[0] >= X.shape[1]`` and ``mean.shape[0] >= X.shape[1]``; with
        numba's bounds checking on (``NUMBA_BOUNDSCHECK=1``) each is checked.
        """
        if not (
            _is_float_array(X, 2)
            and _is_float_array(mean, 1)
            and _is_float_array(rows_t, 2)
            and X.dtype == mean.dtype == rows_t.dtype
            and isinstance(row, types.Integer)
            and isinstance(col, types.Integer)
        ):
            return None
        signature = types.boolean(X, row, mean, rows_t, col)
        if X.layout != "C" or rows_t.layout != "C":

            def declined(context, builder, sig, args):
                return cgutils.false_bit

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
                    # the far corners, bounds-checked where numba checks bounds
                    cgutils.get_item_pointer(
                        context, builder, x_type, x, [last_row, intp(d - 1)],
                        boundscheck=True,
                    )
                    cgutils.get_item_pointer(
                        context, builder, rows_type, rows, [intp(d - 1), last_col],
                        boundscheck=True,
                    )
                    cgutils.get_item_pointer(
                        context, builder, mean_type, means, [intp(d - 1)], boundscheck=True
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
                        spread = builder.insert_element(
                            ir.Constant(lanes, ir.Undefined), mean_f, i32(0)
                        )
                        spread = builder.shuffle_vector(
                            spread,
                            ir.Constant(lanes, ir.Undefined),
                            ir.Constant(ir.VectorType(i32, TILE_ROWS), [0] * TILE_ROWS),
                        )
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
            builder.position_at_end(done)
            answer = builder.phi(ir.IntType(1))
            for bit, block in results:
                answer.add_incoming(bit, block)
            return answer

        return signature, codegen
