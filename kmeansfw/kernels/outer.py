"""float32 products of rows by 16 to 64 centroids in vector registers, for the compiled
kernels.

The product search takes ``-2 x.c`` for every row and centroid from a matrix product
(BLAS), writes the (rows, k) block, transposes it and walks it for each row's least
``||c||^2 - 2 x.c``.  At 16 to 64 centroids all of ``(-2C)^T`` (features x centroids)
stays in the first-level cache, and each row's values for every centroid fit in one to
four 16-lane float32 registers: :func:`outer_nearest` keeps them there, a few rows at a
time, adding each feature's contribution by one fused multiply-add per register (the
row's value spread over the lanes, times the feature's row of ``(-2C)^T``), then adds
the norms and takes the least value and its index (and the runner-up) in the registers,
with nothing written but the answers.  :func:`outer_products` writes the products
instead, for the search that needs every value (``yinyang``'s search by groups of
centroids), so that both searches compare the same values and find the same labels.

Each product is the same sequence of operations whatever the rows around it, the block
or the thread: ``fma(x[d-1], c[d-1], ... fma(x[1], c[1], fma(x[0], c[0], 0)))`` in
float32, one rounding per feature.  Ties go to the lowest index, as in the search's
scalar walk.

float32 only, AVX-512 only (:func:`kmeansfw.kernels.lanes.registers_of_eight`, where it
was measured); elsewhere the intrinsics answer False and write nothing, and the caller
takes its BLAS products.
"""

from __future__ import annotations

from kmeansfw.kernels._compile import HAVE_NUMBA

#: float32 lanes per vector register (AVX-512).
OUTER_LANES = 16
#: The fewest and most (padded) centroids :func:`outer_nearest` holds in registers: two
#: to four registers a row (one register a row never paid: :func:`outer_pays`).
OUTER_MIN_CLUSTERS = 32
OUTER_MAX_CLUSTERS = 64
#: Rows that share each feature's loads, by registers a row (1 to 4): at most 18
#: accumulators.
OUTER_GROUP_ROWS = {2: 8, 3: 6, 4: 4}


def outer_width(n_clusters: int) -> int:
    """Columns of the padded ``(-2C)^T`` (and entries of the padded norms) that
    :func:`outer_nearest` takes for ``n_clusters`` centroids: a whole number of
    registers.

    Parameters
    ----------
    n_clusters : int

    Returns
    -------
    int
    """
    return -(-n_clusters // OUTER_LANES) * OUTER_LANES


def outer_pays(n_clusters: int) -> bool:
    """Whether the product search takes its float32 products in registers
    (:func:`outer_nearest`) at ``n_clusters`` centroids, where it takes its products by
    rows (:func:`kmeansfw.kernels.euclidean.by_rows_product`): more than one register a
    row, at most an eighth of the lanes padding (28 to 32, 42 to 48, 56 to 64).

    Measured per Lloyd iteration on an AMD EPYC (Zen 4) with AVX-512, one thread,
    200000 standard normal float32 rows, against the products by rows, two rounds: 64
    features 0.92-0.95x the time at k=32, 0.89-0.90x at k=48, 0.86-0.89x at k=64; 0.95x
    at 256 features, k=32; 0.93-0.94x at 128 features, k=48.  Left to BLAS: k=40
    (0.94-0.98x), k=24 (1.03-1.07x), k=17 to 20 (1.2-1.3x: more padding than
    centroids) and k=16 (1.03-1.07x: one register a row, where the least value's search
    across the lanes is paid per 32 multiply-adds at 32 features).

    Parameters
    ----------
    n_clusters : int

    Returns
    -------
    bool
    """
    width = -(-n_clusters // OUTER_LANES) * OUTER_LANES  # outer_width (compiled too)
    return n_clusters > OUTER_LANES and 8 * n_clusters >= 7 * width


if HAVE_NUMBA:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    from kmeansfw.kernels._ir import answer, declined, is_float_array, splat
    from kmeansfw.kernels.lanes import registers_of_eight

    def _function(builder, name, returns, arguments):  # pragma: no cover - compiled
        kind = ir.FunctionType(returns, arguments)
        return cgutils.get_or_insert_function(builder.module, kind, name)

    def _float32(*arrays) -> bool:
        # whether every array holds float32 (the others compile a decline)
        return all(array.dtype == types.float32 for array in arrays)

    @intrinsic
    def outer_nearest(
        typingctx, rows, first, m, ct, norms, best, runner_up, arg, want_second
    ):  # pragma: no cover - compiled
        """For ``i < m``: ``arg[i]`` the least ``j`` of the least ``value[j] =
        dot(rows[first + i], ct[:, j]) + norms[j]`` (the product in the fused
        multiply-adds of this module's docstring), ``best[i]`` that value and, with
        ``want_second``, ``runner_up[i]`` the next least (the least again on a tie);
        True, or False with nothing written where the shapes or types do not fit or the
        processor has no AVX-512.

        ``rows`` (n, d) and ``ct`` (d, kp) are C-contiguous float32, ``kp`` 32, 48 or
        64 (:data:`OUTER_MIN_CLUSTERS` to :data:`OUTER_MAX_CLUSTERS`,
        :func:`outer_width`), ``norms`` (kp,) float32 (``+inf`` past the real
        centroids, whose zero columns of ``ct`` then never win), ``best`` and
        ``runner_up`` float32, ``arg`` int32.  Rows ``first`` to ``first + m - 1`` and
        the outputs' first ``m`` entries are bounds-checked on every call (IndexError
        before anything is read).
        """
        if not (
            is_float_array(rows, 2)
            and is_float_array(ct, 2)
            and is_float_array(norms, 1)
            and is_float_array(best, 1)
            and is_float_array(runner_up, 1)
            and isinstance(arg, types.Array)
            and arg.ndim == 1
            and arg.dtype == types.int32
            and best.mutable
            and runner_up.mutable
            and arg.mutable
            and isinstance(first, types.Integer)
            and isinstance(m, types.Integer)
            and isinstance(want_second, types.Boolean)
        ):
            return None
        signature = types.boolean(rows, first, m, ct, norms, best, runner_up, arg, want_second)
        if (
            rows.layout != "C"
            or ct.layout != "C"
            or not _float32(rows, ct, norms, best, runner_up)
            or not registers_of_eight()
        ):
            return signature, declined

        def codegen(context, builder, sig, args):
            return _outer(context, builder, sig, args, products=False)

        return signature, codegen

    @intrinsic
    def outer_products(typingctx, rows, first, m, ct, out):  # pragma: no cover - compiled
        """``out[i, j] = dot(rows[first + i], ct[:, j])`` for ``i < m`` and ``j < kp``,
        the products of :func:`outer_nearest` bit for bit; True, or False with nothing
        written as there.  ``out`` is (at least m, kp) C-contiguous float32."""
        if not (
            is_float_array(rows, 2)
            and is_float_array(ct, 2)
            and is_float_array(out, 2)
            and out.mutable
            and isinstance(first, types.Integer)
            and isinstance(m, types.Integer)
        ):
            return None
        signature = types.boolean(rows, first, m, ct, out)
        if (
            rows.layout != "C"
            or ct.layout != "C"
            or out.layout != "C"
            or not _float32(rows, ct, out)
            or not registers_of_eight()
        ):
            return signature, declined

        def codegen(context, builder, sig, args):
            return _outer(context, builder, sig, args, products=True)

        return signature, codegen

    def _outer(context, builder, sig, args, products):  # pragma: no cover - compiled
        # both intrinsics' code: the checks, then a loop nest per register count
        rows_type, first_type, m_type, ct_type = sig.args[:4]
        x = context.make_array(rows_type)(context, builder, args[0])
        c = context.make_array(ct_type)(context, builder, args[3])
        start = context.cast(builder, args[1], first_type, types.intp)
        count = context.cast(builder, args[2], m_type, types.intp)
        intp = context.get_value_type(types.intp)
        d, kp = cgutils.unpack_tuple(builder, c.shape, 2)
        n_features = cgutils.unpack_tuple(builder, x.shape, 2)[1]
        if products:
            out_type = sig.args[4]
            out = context.make_array(out_type)(context, builder, args[4])
            out_rows, out_width = cgutils.unpack_tuple(builder, out.shape, 2)
            outputs = (out_type, out)
            fits = builder.icmp_signed("==", out_width, kp)
            last_outputs = [((out_type, out), [builder.sub(count, intp(1)), intp(0)])]
        else:
            norms_type, best_type, second_type, arg_type = sig.args[4:8]
            norms = context.make_array(norms_type)(context, builder, args[4])
            best = context.make_array(best_type)(context, builder, args[5])
            second = context.make_array(second_type)(context, builder, args[6])
            labels = context.make_array(arg_type)(context, builder, args[7])
            want_second = args[8]
            outputs = (norms, best, second, labels, want_second)
            n_norms = cgutils.unpack_tuple(builder, norms.shape, 1)[0]
            fits = builder.icmp_signed(">=", n_norms, kp)
            last = [builder.sub(count, intp(1))]
            last_outputs = [((best_type, best), last), ((arg_type, labels), last)]
        fits = builder.and_(fits, builder.icmp_signed("==", d, n_features))
        fits = builder.and_(fits, builder.icmp_signed(">", d, intp(0)))

        done = builder.append_basic_block("outer.done")
        refused = builder.append_basic_block("outer.refused")
        results = [(cgutils.false_bit, refused)]
        with builder.goto_block(refused):
            builder.branch(done)
        checked = builder.append_basic_block("outer.checked")
        builder.cbranch(fits, checked, refused)
        builder.position_at_end(checked)
        with builder.if_then(builder.icmp_signed(">", count, intp(0))):
            # both corners of what is read and written, checked on every call
            last_row = builder.add(start, builder.sub(count, intp(1)))
            corners = [
                ((rows_type, x), [start, intp(0)]),
                ((rows_type, x), [last_row, builder.sub(d, intp(1))]),
                *last_outputs,
            ]
            for (array_type, array), indices in corners:
                cgutils.get_item_pointer(
                    context, builder, array_type, array, indices, boundscheck=True
                )
            if not products:
                with builder.if_then(want_second):
                    cgutils.get_item_pointer(
                        context, builder, sig.args[6], second, last, boundscheck=True
                    )
        switch = builder.switch(kp, refused)
        fewest, most = OUTER_MIN_CLUSTERS // OUTER_LANES, OUTER_MAX_CLUSTERS // OUTER_LANES
        for n_vectors in range(fewest, most + 1):
            body = builder.append_basic_block(f"outer.v{n_vectors}")
            switch.add_case(intp(OUTER_LANES * n_vectors), body)
            with builder.goto_block(body):
                _loops(
                    context,
                    builder,
                    sig,
                    x,
                    c,
                    start,
                    count,
                    d,
                    kp,
                    n_vectors,
                    products,
                    outputs,
                )
                results.append((cgutils.true_bit, builder.block))
                builder.branch(done)
        return answer(builder, done, results)

    def _loops(
        context, builder, sig, x, c, start, count, d, kp, n_vectors, products, outputs
    ):  # pragma: no cover - compiled
        # groups of OUTER_GROUP_ROWS rows, then the rows left one at a time
        rows_type, ct_type = sig.args[0], sig.args[3]
        intp = context.get_value_type(types.intp)
        f32 = ir.FloatType()
        i32 = ir.IntType(32)
        vector = ir.VectorType(f32, OUTER_LANES)
        ids = ir.VectorType(i32, OUTER_LANES)
        fma = _function(builder, "llvm.fma.v16f32", vector, [vector, vector, vector])
        least = _function(builder, "llvm.vector.reduce.fmin.v16f32", f32, [vector])
        least_id = _function(builder, "llvm.vector.reduce.smin.v16i32", i32, [ids])
        group = OUTER_GROUP_ROWS[n_vectors]
        accumulators = [
            [cgutils.alloca_once(builder, vector) for _ in range(n_vectors)] for _ in range(group)
        ]
        ct0 = cgutils.get_item_pointer(context, builder, ct_type, c, [intp(0), intp(0)])

        def vector_at(pointer, offset):
            place = builder.gep(pointer, [offset], inbounds=True)
            return builder.load(builder.bitcast(place, vector.as_pointer()), align=4)

        if not products:
            norms_array, best, second, labels, want_second = outputs
            norms_type, best_type, second_type, arg_type = sig.args[4:8]
            n0 = cgutils.get_item_pointer(context, builder, norms_type, norms_array, [intp(0)])
            norm_vectors = [vector_at(n0, intp(OUTER_LANES * v)) for v in range(n_vectors)]

        def rows_from(r0, n_rows):
            # rows r0 to r0 + n_rows - 1; those past the last (of the last group) read
            # the last row again and write nothing
            zero = ir.Constant(vector, [0.0] * OUTER_LANES)
            for r in range(n_rows):
                for v in range(n_vectors):
                    builder.store(zero, accumulators[r][v])
            last = builder.sub(count, intp(1))
            bases = []
            for r in range(n_rows):
                i = builder.add(r0, intp(r))
                i = builder.select(builder.icmp_signed("<", i, count), i, last)
                place = [builder.add(start, i), intp(0)]
                bases.append(cgutils.get_item_pointer(context, builder, rows_type, x, place))
            with cgutils.for_range(builder, d) as loop:
                f = loop.index
                row_of_ct = builder.gep(ct0, [builder.mul(f, kp)], inbounds=True)
                columns = [vector_at(row_of_ct, intp(OUTER_LANES * v)) for v in range(n_vectors)]
                for r in range(n_rows):
                    value = builder.load(builder.gep(bases[r], [f], inbounds=True))
                    spread = splat(builder, value, vector)
                    for v in range(n_vectors):
                        total = builder.load(accumulators[r][v])
                        builder.store(
                            builder.call(fma, [spread, columns[v], total]), accumulators[r][v]
                        )
            for r in range(n_rows):
                i = builder.add(r0, intp(r))
                with builder.if_then(builder.icmp_signed("<", i, count)):
                    answer_row(r, i)

        def answer_row(r, i):
            # row i's answer from its accumulators: its products, or its least value,
            # index and runner-up
            if products:
                out_type, out = outputs
                target = cgutils.get_item_pointer(context, builder, out_type, out, [i, intp(0)])
                for v in range(n_vectors):
                    place = builder.gep(target, [intp(OUTER_LANES * v)], inbounds=True)
                    builder.store(
                        builder.load(accumulators[r][v]),
                        builder.bitcast(place, vector.as_pointer()),
                        align=4,
                    )
                return
            values = [
                builder.fadd(builder.load(accumulators[r][v]), norm_vectors[v])
                for v in range(n_vectors)
            ]
            # per lane, the least value over the registers (the lowest index on a
            # tie: a later register wins only when strictly lower) and the next least
            low, low_ids = values[0], ir.Constant(ids, list(range(OUTER_LANES)))
            inf = ir.Constant(vector, [float("inf")] * OUTER_LANES)
            next_low = inf
            for v in range(1, n_vectors):
                lower = builder.fcmp_ordered("<", values[v], low)
                kept = builder.select(
                    builder.fcmp_ordered("<", values[v], next_low), values[v], next_low
                )
                next_low = builder.select(lower, low, kept)
                low = builder.select(lower, values[v], low)
                these = ir.Constant(ids, [OUTER_LANES * v + t for t in range(OUTER_LANES)])
                low_ids = builder.select(lower, these, low_ids)
            smallest = builder.call(least, [low])
            at_least = builder.fcmp_ordered("==", low, splat(builder, smallest, vector))
            none = ir.Constant(ids, [2**31 - 1] * OUTER_LANES)
            label = builder.call(least_id, [builder.select(at_least, low_ids, none)])
            # no lane equal to the least (values not numbers): index 0, as the walk
            label = builder.select(
                builder.icmp_signed("==", label, i32(2**31 - 1)), i32(0), label
            )
            builder.store(
                smallest, cgutils.get_item_pointer(context, builder, best_type, best, [i])
            )
            builder.store(
                label, cgutils.get_item_pointer(context, builder, arg_type, labels, [i])
            )
            with builder.if_then(want_second):
                # the least of the others: every lane's next least, and every lane's
                # least but the winner's lane
                lane_of = builder.srem(label, i32(OUTER_LANES))
                winner = builder.icmp_signed(
                    "==",
                    ir.Constant(ids, list(range(OUTER_LANES))),
                    splat(builder, lane_of, ids),
                )
                others = builder.select(winner, next_low, low)
                others = builder.select(
                    builder.fcmp_ordered("<", next_low, others), next_low, others
                )
                builder.store(
                    builder.call(least, [others]),
                    cgutils.get_item_pointer(context, builder, second_type, second, [i]),
                )

        groups = builder.sdiv(builder.add(count, intp(group - 1)), intp(group))
        with cgutils.for_range(builder, groups) as loop:
            rows_from(builder.mul(loop.index, intp(group)), group)
