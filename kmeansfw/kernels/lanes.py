"""The mean's sums of few clusters held in vector registers, for the compiled kernels.

The Euclidean searches add each row's weighted values and weight to its cluster's
float64 totals as soon as a sub-block's labels are known, row by row in order (the order
that makes the totals the same bits in every kernel, on every number of threads).  Kept
in memory, each row's additions are a load, an addition and a store per value, and a
row waits for the previous row's stores whenever both belong to one cluster: 2-5 ns a
row at one to eight features, up to half of a search's time at few clusters.

:func:`add_rows_in_lanes` keeps the totals of all the clusters in a few vector
registers instead, each cluster's values in lanes of its own, and adds every row to
every register under a mask of its cluster's lanes: the lanes of the row's cluster get
the addition, the others keep their values untouched (a masked addition, not an
addition of zero).  Each total sees the same additions in the same order as in memory,
so the totals are the same bits; what it costs is one vector addition per register and
row, whatever the labels, so it pays only where the totals fit in few registers
(:func:`lane_plan`).

The direct searches take it at up to four clusters (one or two features) or three (three
to eight features), each kernel compiling the layouts of its own shapes only.  Measured on
an AMD EPYC (Zen 4) with AVX-512, one thread, the sums' loop alone on 8192 rows in cache
(ns a row, row by row -> registers): two features, k=3, 2.1-2.4 -> 1.1-1.2 with labels
in random order, 3.3-3.4 -> 1.0-1.2 with labels in runs; eight features, k=3, 2.9-5.3 ->
1.6-2.2.  Past four registers (about a third of a nanosecond per register and row:
one 512-bit addition a cycle) it was slower than memory in all but one case measured,
and at eight clusters inside the search no faster.  Without AVX-512 (not measured) the
searches keep the row-by-row loop (:func:`registers_of_eight`).
"""

from __future__ import annotations

import functools

from kmeansfw.kernels._compile import HAVE_NUMBA

#: float64 values per vector register (AVX-512's eight lanes; on machines with narrower
#: registers LLVM splits each vector in two or four).
LANES = 8
#: The most features and clusters :func:`add_rows_in_lanes` takes ...
LANE_MAX_FEATURES = 8
LANE_MAX_CLUSTERS = 4
#: ... and the most registers their totals may take.
LANE_MAX_VECTORS = 4


def _power_of_two_from(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def lane_plan(n_features: int, n_clusters: int) -> tuple[int, int, int] | None:
    """How :func:`add_rows_in_lanes` lays out the totals of ``n_clusters`` clusters.

    Each cluster takes ``width`` lanes (a power of two, so that a register holds whole
    clusters): its ``n_features`` values and, where a lane is left, its weight, lane
    ``n_features``; otherwise the weights take registers of their own, eight clusters
    each.  The layout with fewer registers wins, the weight in the clusters' lanes on a
    tie.

    Parameters
    ----------
    n_features : int
        Features of the rows.
    n_clusters : int
        Clusters (the totals' rows).

    Returns
    -------
    tuple of int, or None
        ``(width, vectors, weight_vectors)``: lanes per cluster, registers of values,
        registers of weights (0: the weights in lane ``n_features`` of each cluster);
        None where the shape is outside :data:`LANE_MAX_FEATURES` and
        :data:`LANE_MAX_CLUSTERS` or takes more than :data:`LANE_MAX_VECTORS` registers.
    """
    d, k = n_features, n_clusters
    if not (1 <= d <= LANE_MAX_FEATURES and 2 <= k <= LANE_MAX_CLUSTERS):
        return None
    plans = []
    inside = _power_of_two_from(d + 1)
    if inside <= LANES:
        plans.append((inside, -(-k // (LANES // inside)), 0))
    apart = _power_of_two_from(d)
    plans.append((apart, -(-k // (LANES // apart)), -(-k // LANES)))
    best = min(plans, key=lambda plan: plan[1] + plan[2])  # the first on a tie
    return best if best[1] + best[2] <= LANE_MAX_VECTORS else None


@functools.cache
def registers_of_eight() -> bool:
    """Whether numba compiles for a processor with AVX-512 (eight float64 lanes a
    register), where :func:`add_rows_in_lanes` was measured: elsewhere it declines every
    shape, and the searches add their sums row by row.

    The processor numba targets: the host's, or ``NUMBA_CPU_NAME`` and
    ``NUMBA_CPU_FEATURES`` where set (a name without features, such as ``generic``
    for caches shared between machines: no).

    Returns
    -------
    bool
    """
    if not HAVE_NUMBA:
        return False
    import llvmlite.binding as llvm
    from numba.core import config

    if config.CPU_FEATURES is not None:
        return "+avx512f" in config.CPU_FEATURES.split(",")
    if config.CPU_NAME is not None and config.CPU_NAME != "host":
        return False
    try:
        return bool(llvm.get_host_cpu_features().get("avx512f", False))
    except RuntimeError:  # features unknown to LLVM on this host
        return False


if HAVE_NUMBA:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    from kmeansfw.kernels._ir import answer, declined, is_float_array, splat

    #: A flag on the sums' multiplications and additions that changes nothing they
    #: compute (a reciprocal is never taken), so that numba's pass giving every
    #: floating-point operation without flags the caller's fastmath flags leaves them
    #: alone: the direct searches state ``contract``, which could fuse them.
    _EXACT = ("arcp",)

    @intrinsic
    def add_rows_in_lanes(
        typingctx, X, sample_weight, start, m, arg, sums, weights, low, high, most
    ):  # pragma: no cover - compiled
        """``weights[arg[i]] += w`` and ``sums[arg[i], :] += w * X[start + i, :]`` (``w``:
        ``float64(sample_weight[start + i])``) for ``i < m``, in that order, the totals
        held in vector registers (:func:`lane_plan`); True, or False with nothing
        written where the shape has no plan or lies outside ``low`` to ``high``
        features and two to ``most`` clusters (integer literals: the layouts compiled
        into the caller), ``sums`` is not ``(k, X.shape[1])``, ``weights`` has fewer
        than ``k`` entries, ``X`` is not C-contiguous and aligned, ``sums`` is not
        C-contiguous, ``sums`` or ``weights`` is not float64, or the processor has no
        AVX-512 (:func:`registers_of_eight`).

        Labels (int32, a search's) must lie in ``[0, k)``: a row of another label is
        added nowhere.  Rows ``start`` to ``start + m - 1`` of ``X`` and
        ``sample_weight`` and ``arg``'s first ``m`` entries are bounds-checked on every
        call that takes the shape (IndexError before anything is read).
        """
        if not (
            is_float_array(X, 2)
            and is_float_array(sample_weight, 1)
            and isinstance(start, types.Integer)
            and isinstance(m, types.Integer)
            and isinstance(arg, types.Array)
            and arg.ndim == 1
            and arg.dtype == types.int32
            and is_float_array(sums, 2)
            and is_float_array(weights, 1)
            and sums.mutable
            and weights.mutable
            and isinstance(low, types.IntegerLiteral)
            and isinstance(high, types.IntegerLiteral)
            and isinstance(most, types.IntegerLiteral)
        ):
            return None
        signature = types.boolean(
            X, sample_weight, start, m, arg, sums, weights, low, high, most
        )
        if registers_of_eight():
            lowest, highest = max(1, low.literal_value), min(LANE_MAX_FEATURES, high.literal_value)
            features = range(lowest, highest + 1)
            clusters = range(2, min(LANE_MAX_CLUSTERS, most.literal_value) + 1)
        else:  # measured with AVX-512 only: elsewhere the row-by-row loop
            features = clusters = range(0)
        if (
            X.layout != "C"
            or not X.aligned
            or not features
            or not clusters
            or sums.layout != "C"
            or sums.dtype != types.float64
            or weights.dtype != types.float64
        ):
            return signature, declined

        def codegen(context, builder, sig, args):
            x_type, w_type, start_type, m_type, arg_type, sums_type, weights_type = sig.args[:7]
            x = context.make_array(x_type)(context, builder, args[0])
            sample = context.make_array(w_type)(context, builder, args[1])
            labels = context.make_array(arg_type)(context, builder, args[4])
            totals = context.make_array(sums_type)(context, builder, args[5])
            weighed = context.make_array(weights_type)(context, builder, args[6])
            first = context.cast(builder, args[2], start_type, types.intp)
            rows = context.cast(builder, args[3], m_type, types.intp)
            intp = context.get_value_type(types.intp)
            n_features = cgutils.unpack_tuple(builder, x.shape, 2)[1]
            k, width = cgutils.unpack_tuple(builder, totals.shape, 2)
            n_weights = cgutils.unpack_tuple(builder, weighed.shape, 1)[0]

            done = builder.append_basic_block("lanes.done")
            refused = builder.append_basic_block("lanes.refused")
            results = [(cgutils.false_bit, refused)]
            with builder.goto_block(refused):
                builder.branch(done)
            conditions = (
                builder.icmp_signed("==", width, n_features),
                builder.icmp_signed(">=", n_weights, k),
                builder.icmp_signed(">=", n_features, intp(features.start)),
                builder.icmp_signed("<", n_features, intp(features.stop)),
                builder.icmp_signed(">=", k, intp(clusters.start)),
                builder.icmp_signed("<", k, intp(clusters.stop)),
            )
            fits = conditions[0]
            for condition in conditions[1:]:
                fits = builder.and_(fits, condition)
            checked = builder.append_basic_block("lanes.checked")
            builder.cbranch(fits, checked, refused)
            builder.position_at_end(checked)
            with builder.if_then(builder.icmp_signed(">", rows, intp(0))):
                last = builder.add(first, builder.sub(rows, intp(1)))
                corners = (
                    (x_type, x, [first, intp(0)]),
                    (x_type, x, [last, builder.sub(n_features, intp(1))]),
                    (w_type, sample, [first]),
                    (w_type, sample, [last]),
                    (arg_type, labels, [builder.sub(rows, intp(1))]),
                )
                for array_type, array, indices in corners:
                    cgutils.get_item_pointer(
                        context, builder, array_type, array, indices, boundscheck=True
                    )
            key = builder.add(builder.mul(n_features, intp(LANE_MAX_CLUSTERS + 1)), k)
            switch = builder.switch(key, refused)
            bodies: dict[tuple[int, int, int, int], ir.Block] = {}
            for d in features:
                for n_clusters in clusters:
                    plan = lane_plan(d, n_clusters)
                    if plan is None:
                        continue
                    if (d, *plan) not in bodies:
                        body = builder.append_basic_block(f"lanes.d{d}.{plan}")
                        bodies[(d, *plan)] = body
                        with builder.goto_block(body):
                            _sum_rows(
                                context, builder, sig, x, sample, labels, totals, weighed,
                                first, rows, k, d, plan,
                            )
                            results.append((cgutils.true_bit, builder.block))
                            builder.branch(done)
                    switch.add_case(
                        intp(d * (LANE_MAX_CLUSTERS + 1) + n_clusters), bodies[(d, *plan)]
                    )
            return answer(builder, done, results)

        return signature, codegen

    def _sum_rows(
        context, builder, sig, x, sample, labels, totals, weighed, first, rows, k, d, plan
    ):
        # One layout's code: the totals loaded into registers (through a buffer on the
        # stack, lane c * width + f of the values' registers laid end to end), the rows
        # added under masks, the totals stored back.
        x_type, w_type, _, _, arg_type, sums_type, weights_type = sig.args[:7]
        width, n_vectors, n_weight_vectors = plan
        per_vector = LANES // width
        intp = context.get_value_type(types.intp)
        i32 = ir.IntType(32)
        double = ir.DoubleType()
        vector = ir.VectorType(double, LANES)
        ids_type = ir.VectorType(i32, LANES)
        zeros = ir.Constant(vector, [0.0] * LANES)
        lanes_of = ir.ArrayType(double, n_vectors * LANES)
        lanes_of_weights = ir.ArrayType(double, max(1, n_weight_vectors) * LANES)
        buffer = cgutils.alloca_once(builder, lanes_of)
        weight_buffer = cgutils.alloca_once(builder, lanes_of_weights)

        def lane(array, index):
            return builder.gep(array, [intp(0), index], inbounds=True)

        def vector_at(array, r):
            return builder.bitcast(lane(array, intp(r * LANES)), vector.as_pointer())

        for r in range(n_vectors):
            builder.store(zeros, vector_at(buffer, r), align=8)
        for r in range(n_weight_vectors):
            builder.store(zeros, vector_at(weight_buffer, r), align=8)

        def weight_slot(c):
            if n_weight_vectors:
                return lane(weight_buffer, c)
            return lane(buffer, builder.add(builder.mul(c, intp(width)), intp(d)))

        def copy_totals(into_buffer):
            # the k totals and weights between the arrays and the buffers
            with cgutils.for_range(builder, k) as loop:
                c = loop.index
                places = [
                    (
                        cgutils.get_item_pointer(
                            context, builder, sums_type, totals, [c, intp(f)]
                        ),
                        lane(buffer, builder.add(builder.mul(c, intp(width)), intp(f))),
                    )
                    for f in range(d)
                ]
                weight = cgutils.get_item_pointer(context, builder, weights_type, weighed, [c])
                places.append((weight, weight_slot(c)))
                for array_place, buffer_place in places:
                    source, target = (
                        (array_place, buffer_place) if into_buffer else (buffer_place, array_place)
                    )
                    builder.store(builder.load(source), target)

        copy_totals(into_buffer=True)

        accumulators = [
            cgutils.alloca_once_value(builder, builder.load(vector_at(buffer, r), align=8))
            for r in range(n_vectors)
        ]
        weight_accumulators = [
            cgutils.alloca_once_value(builder, builder.load(vector_at(weight_buffer, r), align=8))
            for r in range(n_weight_vectors)
        ]
        cluster_ids = [
            ir.Constant(ids_type, [r * per_vector + t // width for t in range(LANES)])
            for r in range(n_vectors)
        ]
        weight_ids = [
            ir.Constant(ids_type, [r * LANES + t for t in range(LANES)])
            for r in range(n_weight_vectors)
        ]
        # the row's d weighted values in lanes 0 to d - 1 of a register, its weight in
        # lane d (weights inside the clusters' lanes), zeros after; then repeated in
        # every cluster's lanes
        row_type = ir.VectorType(double, d)
        widen = ir.Constant(ids_type, [t if t < d else d for t in range(LANES)])
        if n_weight_vectors:
            spread_from = [t % width if t % width < d else d for t in range(LANES)]
        else:
            spread_from = [t % width if t % width <= d else d + 1 for t in range(LANES)]
        spread_from = ir.Constant(ids_type, spread_from)
        value = context.get_data_type(x_type.dtype)
        with cgutils.for_range(builder, rows) as loop:
            i = loop.index
            row = builder.add(first, i)
            label = builder.load(
                cgutils.get_item_pointer(context, builder, arg_type, labels, [i])
            )
            w = context.cast(
                builder,
                builder.load(cgutils.get_item_pointer(context, builder, w_type, sample, [row])),
                w_type.dtype,
                types.float64,
            )
            start_of_row = cgutils.get_item_pointer(
                context, builder, x_type, x, [row, intp(0)]
            )
            values = builder.load(
                builder.bitcast(start_of_row, ir.VectorType(value, d).as_pointer()),
                align=x_type.dtype.bitwidth // 8,
            )
            if x_type.dtype != types.float64:
                values = builder.fpext(values, row_type)
            weighted = builder.fmul(splat(builder, w, row_type), values, flags=_EXACT)
            base = builder.shuffle_vector(weighted, ir.Constant(row_type, [0.0] * d), widen)
            if not n_weight_vectors:
                base = builder.insert_element(base, w, i32(d))
            spread = builder.shuffle_vector(base, ir.Constant(vector, ir.Undefined), spread_from)
            label_everywhere = splat(builder, label, ids_type)

            def add_masked(slots, ids, addend):
                # each register's lanes of the row's cluster get the addition
                for slot, lane_ids in zip(slots, ids, strict=True):
                    mine = builder.icmp_signed("==", label_everywhere, lane_ids)
                    total = builder.load(slot)
                    added = builder.fadd(total, addend, flags=_EXACT)
                    builder.store(builder.select(mine, added, total), slot)

            add_masked(accumulators, cluster_ids, spread)
            if n_weight_vectors:
                add_masked(weight_accumulators, weight_ids, splat(builder, w, vector))

        for r in range(n_vectors):
            builder.store(builder.load(accumulators[r]), vector_at(buffer, r), align=8)
        for r in range(n_weight_vectors):
            builder.store(
                builder.load(weight_accumulators[r]), vector_at(weight_buffer, r), align=8
            )
        copy_totals(into_buffer=False)
