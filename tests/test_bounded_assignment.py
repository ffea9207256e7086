"""The bound-based assignments (hamerly, yinyang) give nearest's labels at every
iteration, with less work."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw import ConfigError, KMeans
from kmeansfw.core.data import FitData


class LabelsPerIteration:
    def __init__(self):
        self.labels = []

    @kmeansfw.hookimpl
    def kmeansfw_iteration_end(self, state):
        self.labels.append(state.labels.copy())


@pytest.mark.parametrize("bounded", ["hamerly", "yinyang"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("distance", "k"),
    [
        ("euclidean", 8),
        ("euclidean", 40),
        ("manhattan", 5),
        ("manhattan", 25),
        ({"name": "minkowski", "p": 3}, 20),
        ("chebyshev", 3),
        ("chebyshev", 12),
    ],
)
def test_same_labels_as_nearest_every_iteration(distance, k, dtype, bounded):
    # k=12 chebyshev and k=25 manhattan in float32 have rows within the rounding margin
    # of a tie: they caught bounds compared with the margin the wrong way round.
    X, _ = make_blobs(6000, n_features=5, centers=k, cluster_std=3.0, random_state=2)
    X = X.astype(dtype)
    runs = {}
    for assignment in ("nearest", bounded):
        seen = LabelsPerIteration()
        km = KMeans(
            k,
            distance=distance,
            assignment=assignment,
            init="random",
            n_init=2,
            random_state=4,
            tol=0,
            observers=[seen],
            memory_budget_mb=0.05,
        )
        with np.errstate(all="ignore"):
            km.fit(X)
        runs[assignment] = (km, seen.labels)
    (near, near_labels), (ham, ham_labels) = runs["nearest"], runs[bounded]
    assert len(near_labels) == len(ham_labels)
    for a, b in zip(near_labels, ham_labels, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(near.labels_, ham.labels_)
    np.testing.assert_allclose(near.cluster_centers_, ham.cluster_centers_)
    np.testing.assert_allclose(near.inertia_, ham.inertia_, rtol=1e-6)
    np.testing.assert_array_equal(near.predict(X[:100]), ham.predict(X[:100]))


def test_hamerly_recomputes_fewer_rows_over_time():
    X, _ = make_blobs(5000, n_features=4, centers=6, random_state=1)
    recomputed = []

    class Count:
        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_distance(self, X):  # the centroid-to-centroid geometry, 6 rows
            recomputed.append(X.shape[0])
            return (yield)

        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_nearest(self, X):  # the rows the bounds could not settle
            recomputed.append(X.shape[0])
            return (yield)

    KMeans(
        6, assignment="hamerly", init="random", n_init=1, random_state=0, tol=0, observers=[Count()]
    ).fit(X)
    # per iteration: the centroid-centroid distances (6 rows) then the recomputed rows
    iterations, current = [], None
    for n in recomputed:
        if n == 6:
            current = [] if current is None or current else current
            if not iterations or iterations[-1] is not current:
                iterations.append(current)
        else:
            current.append(n)
    totals = [sum(rows) for rows in iterations]
    assert totals[0] == 5000  # the first pass computes everything
    assert totals[-1] < 0.05 * 5000  # at the end almost every row is skipped


def test_hamerly_needs_a_metric():
    with pytest.raises(ConfigError, match="needs a distance that is a true metric.*'cosine'"):
        kmeansfw.Config(distance="cosine", assignment="hamerly").build_strategies()


def test_auto_picks_by_metric_and_shape():
    strategies = dict(
        (s, o) for s, _, o in kmeansfw.Config(n_clusters=40, assignment="auto").build_strategies()
    )
    auto = strategies["assignment"]
    assert auto.metric is True
    assert auto.bounded(6000, 16, 40)  # 240000 >= 2^17 samples x clusters, k >= 32, d >= 16
    assert not auto.bounded(6000, 15, 40)  # few features: the bounds cost what they save
    assert not auto.bounded(20000, 16, 31)  # few clusters
    assert not auto.bounded(3000, 16, 40)  # few samples (and little work per iteration)
    assert auto.bounded(4096, 64, 256) and auto.bounded_by(4096, 64, 256) == "yinyang"
    assert not auto.bounded(4095, 64, 256)  # few samples: a search over every row is cheap
    assert auto.bounded_by(6000, 16, 40) == "hamerly"
    assert auto.bounded_by(6000, 32, 128) == "yinyang"  # many clusters and features
    assert auto.bounded_by(6000, 31, 128) == auto.bounded_by(6000, 32, 127) == "hamerly"
    assert auto.bounded_by(6000, 15, 128) is None
    cosine = dict(
        (s, o)
        for s, _, o in kmeansfw.Config(
            n_clusters=40, distance="cosine", assignment="auto"
        ).build_strategies()
    )
    assert cosine["assignment"].metric is False
    assert not cosine["assignment"].bounded(6000, 16, 40)  # not a metric: never bounds


def _spy_on_auto(monkeypatch, name: str, what: str = "rows") -> list:
    """Record ``kwargs[what]`` of every block ``auto`` hands to its ``name`` strategy
    (``"_HAMERLY"``, ``"_YINYANG"`` or ``"_NEAREST"``), which still answers.  Fits run
    the hooks' iteration, whose choices these tests follow (small data would take the
    one-call step, which makes nearest's search itself: tests/test_lloyd_step.py)."""
    from kmeansfw.engine import loop
    from kmeansfw.strategies import assignment

    monkeypatch.setattr(loop, "lloyd_step", lambda *args: None)

    calls: list = []
    real = getattr(assignment, name)

    class Spy:
        def __getattr__(self, attribute):  # the state key, the geometry: the real one's
            return getattr(real, attribute)

        def kmeansfw_assign(self, **kwargs):
            value = kwargs[what]
            calls.append(value.n_samples if what == "data" else value)
            return real.kmeansfw_assign(**kwargs)

    monkeypatch.setattr(assignment, name, Spy())
    return calls


def test_auto_keeps_bounds_only_for_data_assigned_again(monkeypatch):
    calls = _spy_on_auto(monkeypatch, "_HAMERLY", "data")
    plain = _spy_on_auto(monkeypatch, "_NEAREST", "data")
    X, _ = make_blobs(6000, n_features=16, centers=40, cluster_std=4.0, random_state=0)
    km = KMeans(40, random_state=0, max_iter=5, tol=0).fit(X)
    n_blocks = sum(len(task) for task in FitData.build(X, n_clusters=40).tasks)
    # a Lloyd run keeps bounds from its first iteration (5 iterations and the final pass;
    # a pass after one the bounds did not pay for is a nearest pass)
    assert calls[:n_blocks] == [6000] * n_blocks
    assert len(calls) + len(plain) == 6 * n_blocks and set(calls + plain) == {6000}
    calls.clear()
    plain.clear()
    km.predict(X)
    km.score(X)
    KMeans(40, random_state=0, batch_size=4096, max_iter=3).fit(X)  # each step: new rows
    assert calls == [] and plain  # one pass per data set: nearest


def _record_auto_passes(monkeypatch, shares=None) -> list:
    """Per pass ``auto`` makes over a data set with bounds, a record of its decision:
    ``"B"`` a bounded pass, ``"R"`` one that renews every row's bounds, ``"n"`` a
    ``nearest`` pass after a judgement, ``"w"`` one in a wait (no judgement); with the
    judged share, the bounds' step and the rows the pass checked and found stale.
    ``shares``: scripted shares (then 1.0) in place of the judged ones."""
    from kmeansfw.strategies import assignment

    passes: list = []
    real_pay, real_share = assignment.Auto._bounds_pay, assignment.stale_share
    judged: list = []
    script = iter(shares if shares is not None else ())

    def share(info, n_rows):
        found = real_share(info, n_rows)
        judged.append(found if shares is None else next(script, 1.0))
        return judged[-1]

    def pay(data, cache, bounded, hook, centroids, this_pass):
        first = assignment._AUTO_BOUNDS not in cache  # once per pass (one block here)
        before = len(judged)
        keep = real_pay(data, cache, bounded, hook, centroids, this_pass)
        if first:
            info = cache.get(f"{bounded.state_key}.iteration")
            state = data.cache[bounded.state_key]
            if keep:
                what = "R" if info["renew"] else "B"
            else:
                what = "n" if len(judged) > before else "w"
            judged_share = judged[-1] if len(judged) > before else None
            passes.append({"what": what, "share": judged_share, "now": state["now"]})
        return keep

    monkeypatch.setattr(assignment.Auto, "_bounds_pay", staticmethod(pay))
    monkeypatch.setattr(assignment, "stale_share", share)
    return passes


def _auto_shape(kind: str, clustered: bool):
    """Data (blobs, or standard normal: no clusters, labels change for many passes), k,
    at a shape where ``auto`` takes the bounded assignment ``kind`` (in one block)."""
    n, d, k, std = (6000, 16, 40, 4.0) if kind == "hamerly" else (8000, 32, 128, 3.0)
    if clustered:
        X, _ = make_blobs(n, n_features=d, centers=k, cluster_std=std, random_state=0)
    else:
        X = np.random.default_rng(0).standard_normal((n, d))
    assert len(FitData.build(X, n_clusters=k).tasks) == 1  # one block: one call a pass
    auto = kmeansfw.Config(n_clusters=k).build_strategies()[2][2]
    assert auto.bounded_by(n, d, k) == kind
    return X, k


@pytest.mark.parametrize("bounded", ["hamerly", "yinyang"])
def test_auto_judges_renews_and_waits_pass_by_pass(monkeypatch, bounded):
    from kmeansfw.strategies import assignment

    X, k = _auto_shape(bounded, clustered=False)  # many passes, whatever the decisions
    limit = assignment.bounds_pay_fraction(k)
    monkeypatch.setattr(assignment, "AUTO_MAX_WAIT", 2)  # waits 1, 2, then 2 again
    waits = 2
    # judged shares, and the decisions they lead to (pass 0: a fresh search, "B")
    script = [
        (1.0, "n"),  # renewed at pass 0, not paid: wait 1
        (1.0, "R"),  # due: renew
        (1.0, "n"),  # renewed bounds one step old do not pay: wait 2
        (1.0, "R"),
        (1.0, "n"),  # wait 4, at most AUTO_MAX_WAIT: 2
        (1.0, "R"),
        (limit, "B"),  # at the limit: kept, paid once
        (limit + 0.01, "n"),  # paid once since the renewal: not repaid, wait 2 again
        (0.0, "B"),  # due, and the bounds as they stand pay: no renewal
        (0.5, "n"),  # paid twice since the renewal: repaid, no wait
        (0.9, "R"),
        (1.0, "n"),  # the next wait starts at 1 again
        (1.0, "R"),
        (1.0, "n"),
    ]
    passes = _record_auto_passes(monkeypatch, [share for share, _ in script])
    km = KMeans(k, init=X[:k].copy(), max_iter=40, tol=0).fit(X)
    expected = ["B"]
    wait = 0
    for share, what in script:
        expected.append(what)
        if what == "n":  # the passes of its wait follow, without a judgement
            wait = 0 if share == 0.5 else min(max(1, 2 * wait), waits)
            expected += ["w"] * wait
    kinds = [p["what"] for p in passes]
    assert kinds[: len(expected)] == expected
    assert [p["share"] for p in passes if p["what"] != "w"][1 : len(script) + 1] == [
        share for share, _ in script
    ]
    for before, after in zip(passes, passes[1:], strict=False):  # geometry: judged passes
        assert after["now"] == before["now"] + (after["what"] != "w")
    # the bounds kept over nearest passes, waits and renewals stay valid: nearest's fit
    plain = KMeans(k, init=X[:k].copy(), max_iter=40, tol=0, assignment="nearest").fit(X)
    np.testing.assert_array_equal(km.labels_, plain.labels_)
    np.testing.assert_array_equal(km.cluster_centers_, plain.cluster_centers_)
    assert km.inertia_ == plain.inertia_ and km.n_iter_ == plain.n_iter_


@pytest.mark.parametrize("bounded", ["hamerly", "yinyang"])
def test_auto_judges_the_rows_its_bounded_pass_finds_stale(monkeypatch, bounded):
    from kmeansfw import kernels
    from kmeansfw.strategies import assignment

    X, k = _auto_shape(bounded, clustered=True)  # bounded passes with a few rows stale
    n = X.shape[0]
    judging, truth, checked = [], [], []
    real_stale, real_share = kernels.stale_rows, assignment.stale_share

    def stale_rows(*args):
        redo = real_stale(*args)
        if not judging:  # a bounded pass's own check: the rows the judgement saw
            np.testing.assert_array_equal(redo, truth[-1])
            checked.append(redo.size)
        return redo

    def share(info, n_rows):
        judging.append(True)
        state = info["state"]
        every = real_stale(
            *(state[key] for key in ("labels", "upper", "lower", "stamps")),
            state["cum_shift"],
            state["cum_drift"],
            state["now"],
            info["half_gap"],
            info["margin"],
        )
        truth.append(every)
        assert real_share(info, n) == every.size / n  # every row
        assert real_share(info, 10 * n) == every.size / n
        step = -(-n // (n // 7))  # an even sample of at most n // 7 rows
        sampled = np.isin(np.arange(0, n, step), every).mean()
        assert real_share(info, n // 7) == sampled
        found = real_share(info, n_rows)
        judging.clear()
        return found

    monkeypatch.setattr(kernels, "stale_rows", stale_rows)
    monkeypatch.setattr(assignment, "stale_share", share)
    passes = _record_auto_passes(monkeypatch)
    KMeans(k, init=X[:k].copy(), max_iter=25, tol=0).fit(X)
    kinds = "".join(p["what"] for p in passes)
    assert "R" in kinds and kinds[0] == "B"  # a first search and a renewal: no check
    assert len(checked) == kinds.count("B") - 1 >= 3  # each later bounded pass: one
    assert any(0 < size < n for size in checked)  # a pass with some rows stale


@pytest.mark.parametrize("kind", ["normal", "blobs"])
def test_auto_keeps_bounds_where_they_pay(monkeypatch, kind):
    from kmeansfw.strategies import assignment

    passes = _record_auto_passes(monkeypatch)
    X, k = _auto_shape("hamerly", clustered=kind == "blobs")
    params = dict(init=X[:k].copy(), max_iter=40, tol=0)
    km = KMeans(k, **params).fit(X)
    kinds = "".join(p["what"] for p in passes)
    limit = assignment.bounds_pay_fraction(k)
    for record in passes:  # kept exactly when the judged share is at most the limit
        if record["what"] in "Bn" and record["share"] is not None:
            assert (record["what"] == "B") == (record["share"] <= limit)
    if kind == "normal":  # mostly nearest passes, most of them without a judgement
        assert kinds.count("w") > len(kinds) / 2 and kinds.count("B") < len(kinds) / 8
        longest = max(len(run) for run in re.findall("w+", kinds))
        assert longest == assignment.AUTO_MAX_WAIT == 8
    else:  # after the first passes (and renewals), bounds every pass
        tail = kinds[kinds.rindex("R") + 1 :]  # after the last renewal
        assert kinds.startswith("Bn") and set(tail) == {"B"} and len(tail) > len(kinds) / 3
    plain = KMeans(k, assignment="nearest", **params).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, plain.cluster_centers_)
    np.testing.assert_array_equal(km.labels_, plain.labels_)
    assert km.inertia_ == plain.inertia_ and km.n_iter_ == plain.n_iter_


@pytest.mark.parametrize(("bounded", "clustered"), [("hamerly", False), ("yinyang", True)])
def test_auto_over_restarts_equals_nearest(monkeypatch, bounded, clustered):
    # the record of the bounds spans the runs of n_init (the bounds stay valid)
    X, k = _auto_shape(bounded, clustered)
    passes = _record_auto_passes(monkeypatch)
    params = dict(n_init=3, random_state=0, max_iter=12, tol=0)
    km = KMeans(k, **params).fit(X)
    kinds = "".join(p["what"] for p in passes)
    assert len(kinds) > 12 and set(kinds[12:]) & set("BR")  # bounds in later runs
    assert kinds.count("B") + kinds.count("R") >= 4
    plain = KMeans(k, assignment="nearest", **params).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, plain.cluster_centers_)
    np.testing.assert_array_equal(km.labels_, plain.labels_)
    assert km.inertia_ == plain.inertia_ and km.n_iter_ == plain.n_iter_


def _auto_passes_by_k(monkeypatch, X, sizes, seed) -> list:
    """``auto``'s passes (see :func:`_record_auto_passes`) over one data set, assigned
    through ``steps.assign`` as a Lloyd run's data, to random rows as centroids, ``size``
    of them a pass; every pass's labels checked against brute force."""
    from kmeansfw.engine import loop, plugins, steps

    km = KMeans(sizes[0], init=X[: sizes[0]].copy(), max_iter=1, tol=0).fit(X)
    data = FitData.build(X, n_clusters=sizes[0])
    hooks = plugins.build(km._strategies)
    loop.prepare(hooks, data)
    data.cache[steps.REPEATED] = True  # as a Lloyd run marks its data
    passes = _record_auto_passes(monkeypatch)
    rng = np.random.default_rng(seed)
    for size in sizes:
        centroids = X[rng.choice(X.shape[0], size, replace=False)]
        found = steps.assign(hooks, data, centroids, accumulate=False)
        sq = ((X[:, None, :] - centroids[None]) ** 2).sum(axis=2)
        np.testing.assert_array_equal(found.labels, sq.argmin(axis=1))
    return passes


def test_auto_starts_over_when_k_changes_on_the_same_data(monkeypatch):
    X, k = _auto_shape("hamerly", clustered=False)
    sizes = (k, k, k + 8, k + 8, k + 8, k + 8, k + 8, k)  # k changes in a wait, too
    passes = _auto_passes_by_k(monkeypatch, X, sizes, seed=1)
    # random centroids: the bounds never pay; a new k (in a wait: once it ends) starts
    # with a fresh search
    assert "".join(p["what"] for p in passes) == "BnwBnwRB"


def test_auto_starts_a_new_record_when_the_kind_of_bounds_changes(monkeypatch):
    X, _ = _auto_shape("yinyang", clustered=False)  # k=40: hamerly, k=128: yinyang
    passes = _auto_passes_by_k(monkeypatch, X, (40, 128, 128, 128, 128, 40), seed=2)
    # back to k=40: hamerly's bounds (kept, not fresh) with a new record, kept this pass
    assert "".join(p["what"] for p in passes) == "BBnwRB"
    assert passes[-1]["now"] == 1  # hamerly's second geometry: its state was not renewed


def test_bounds_pay_fraction_is_below_the_full_search_fraction():
    from kmeansfw.strategies.assignment import (
        BOUNDS_PAY_MAX_SHARE,
        bounds_pay_fraction,
        full_search_fraction,
    )

    ks = (1, 3, 8, 32, 64, 96, 256, 4096)
    values = [bounds_pay_fraction(k) for k in ks]
    assert values == sorted(values) and 0 < values[0]
    assert bounds_pay_fraction(32) == pytest.approx(1 / 7)
    assert bounds_pay_fraction(64) == pytest.approx(0.25)
    assert bounds_pay_fraction(96) == bounds_pay_fraction(4096) == BOUNDS_PAY_MAX_SHARE == 0.3
    # a kept pass gathers its stale rows (a pass with more searches whole blocks)
    assert all(bounds_pay_fraction(k) < full_search_fraction(k) for k in ks)


def test_auto_keeps_group_bounds_for_many_clusters_and_features(monkeypatch):
    calls = _spy_on_auto(monkeypatch, "_YINYANG")
    X, _ = make_blobs(4500, n_features=32, centers=128, cluster_std=6.0, random_state=0)
    init = X[:128].copy()
    km = KMeans(128, init=init, max_iter=20, tol=0).fit(X)
    assert calls  # auto took yinyang
    plain = KMeans(128, init=init, max_iter=20, tol=0, assignment="nearest").fit(X)
    np.testing.assert_array_equal(km.labels_, plain.labels_)
    assert km.inertia_ == pytest.approx(plain.inertia_, rel=1e-12)


def test_auto_searches_every_row_of_small_data(monkeypatch):
    bounded = _spy_on_auto(monkeypatch, "_YINYANG")
    plain = _spy_on_auto(monkeypatch, "_NEAREST")
    X, _ = make_blobs(4000, n_features=32, centers=128, cluster_std=6.0, random_state=0)
    KMeans(128, init=X[:128].copy(), max_iter=5, tol=0).fit(X)
    assert bounded == [] and plain  # under 4096 samples: nearest, every pass


def test_auto_takes_nearest_in_task_copies_of_the_data(monkeypatch):
    from kmeansfw.engine.executors import PickleShuffleExecutor, ThreadExecutor

    calls = _spy_on_auto(monkeypatch, "_HAMERLY")
    X, _ = make_blobs(6000, n_features=16, centers=40, cluster_std=4.0, random_state=0)
    params = dict(init=X[:40].copy(), max_iter=5, tol=0, memory_budget_mb=0.02)
    copied = KMeans(40, executor=PickleShuffleExecutor(), **params).fit(X)
    assert calls == []  # each task copy starts without bounds: nearest
    in_process = KMeans(40, **params).fit(X)
    assert calls  # in-process tasks share the data's bounds: hamerly
    calls.clear()
    plain = _spy_on_auto(monkeypatch, "_NEAREST")
    threads = KMeans(40, executor=ThreadExecutor(2), **params).fit(X)
    plan = FitData.build(X, n_clusters=40, memory_budget=int(0.02 * 2**20), splits_work=True)
    n_blocks = sum(len(task) for task in plan.tasks)
    # in process: bounds from the start (then judged pass by pass), on every block
    assert n_blocks > 1 and sum(c.stop - c.start for c in calls[:n_blocks]) == X.shape[0]
    assert len(calls) % n_blocks == 0 and len(calls) >= 2 * n_blocks
    assert len(calls) + len(plain) == 6 * n_blocks
    np.testing.assert_array_equal(threads.cluster_centers_, in_process.cluster_centers_)
    np.testing.assert_array_equal(copied.cluster_centers_, in_process.cluster_centers_)


def test_the_default_assignment_is_auto_and_gives_nearest_labels():
    assert KMeans().assignment == "auto" and kmeansfw.Config().assignment.name == "auto"
    X, _ = make_blobs(6000, n_features=16, centers=40, cluster_std=4.0, random_state=0)
    # at this shape auto runs hamerly: after the first pass most rows are not searched
    _, searched = _rows_searched_per_iteration("auto", X, 40)
    assert searched[0] == X.shape[0] and min(searched[1:]) < 0.5 * X.shape[0]
    # 8 features: nearest (its every pass searches every row)
    assert not kmeansfw.Config(n_clusters=40).build_strategies()[2][2].bounded(6000, 8, 40)
    _, few = _rows_searched_per_iteration("auto", X[:, :8], 40)
    assert set(few) == {X.shape[0]}
    default = KMeans(40, random_state=0).fit(X)
    plain = KMeans(40, assignment="nearest", random_state=0).fit(X)
    np.testing.assert_array_equal(default.labels_, plain.labels_)
    assert default.n_iter_ == plain.n_iter_
    assert default.inertia_ == pytest.approx(plain.inertia_, rel=1e-12)
    elkan = KMeans(40, algorithm="elkan", random_state=0).fit(X)  # the default: accepted
    np.testing.assert_array_equal(elkan.labels_, plain.labels_)


@pytest.mark.parametrize("bounded", ["hamerly", "yinyang"])
@pytest.mark.parametrize("fraction", [0.0, 1.0], ids=["whole-blocks", "stale-rows-only"])
def test_whole_block_and_stale_row_searches_give_nearest_labels(bounded, fraction, monkeypatch):
    # unstructured data: many rows stale every iteration, so both paths are taken
    from kmeansfw.strategies import assignment

    monkeypatch.setattr(assignment, "full_search_fraction", lambda n_clusters: fraction)
    X = np.random.default_rng(3).standard_normal((4000, 6))
    runs, calls, firsts = {}, [], []

    class Count:  # the rows of every search, and how many searches the first pass made
        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_nearest(self, X):
            calls.append(X.shape[0])
            return (yield)

        @kmeansfw.hookimpl
        def kmeansfw_iteration_end(self, state):
            firsts.append(len(calls))

    for name in ("nearest", bounded):
        seen = LabelsPerIteration()
        km = KMeans(
            24,
            assignment=name,
            init="random",
            random_state=1,
            tol=0,
            max_iter=40,
            observers=[seen] + ([Count()] if name == bounded else []),
            memory_budget_mb=0.05,
        ).fit(X)
        runs[name] = (km, seen.labels)
    (near, near_labels), (other, other_labels) = runs["nearest"], runs[bounded]
    first_pass = firsts[0]
    blocks = set(calls[:first_pass])  # the first pass searches every block whole
    assert sum(calls[:first_pass]) == X.shape[0] and len(calls) > first_pass
    if fraction == 0.0:  # any block with a stale row: searched whole
        assert set(calls) <= blocks
    else:  # only the stale rows: parts of blocks
        assert not set(calls[first_pass:]) <= blocks
    assert len(near_labels) == len(other_labels) > 5
    for a, b in zip(near_labels, other_labels, strict=True):
        np.testing.assert_array_equal(a, b)
    assert other.inertia_ == pytest.approx(near.inertia_, rel=1e-12)


def test_full_search_fraction_grows_with_k():
    from kmeansfw.strategies.assignment import full_search_fraction

    values = [full_search_fraction(k) for k in (1, 3, 8, 32, 256, 4096)]
    assert values == sorted(values) and 0 < values[0] and values[-1] < 1
    assert full_search_fraction(8) == pytest.approx(1 / 3)


def _rows_searched_per_iteration(assignment, X, k):
    """Rows each iteration searched in full (the bounds could not settle them)."""
    searched, per_iteration = [], []

    class Count:
        @kmeansfw.hookimpl(wrapper=True)
        def kmeansfw_nearest(self, X):
            searched.append(X.shape[0])
            return (yield)

        @kmeansfw.hookimpl
        def kmeansfw_iteration_end(self, state):
            per_iteration.append(sum(searched))
            searched.clear()

    km = KMeans(
        k,
        assignment=assignment,
        init="random",
        n_init=1,
        random_state=0,
        tol=0,
        observers=[Count()],
    ).fit(X)
    return km, per_iteration


def test_yinyang_searches_fewer_rows_than_hamerly_on_the_tail():
    X, _ = make_blobs(20_000, n_features=6, centers=60, cluster_std=2.0, random_state=5)
    ham, ham_rows = _rows_searched_per_iteration("hamerly", X, 60)
    yin, yin_rows = _rows_searched_per_iteration("yinyang", X, 60)
    np.testing.assert_array_equal(ham.labels_, yin.labels_)
    assert ham.n_iter_ == yin.n_iter_
    assert ham_rows[0] == yin_rows[0] == X.shape[0]  # the first pass searches every row
    tail = slice(len(ham_rows) // 2, None)
    assert sum(yin_rows[tail]) < 0.7 * sum(ham_rows[tail])  # 0.56 here


def test_centroid_groups():
    from kmeansfw.strategies.assignment import Yinyang, group_centroids

    rng = np.random.default_rng(0)
    blobs = np.repeat(rng.normal(size=(4, 3)) * 100, 10, axis=0) + rng.normal(size=(40, 3))
    groups = group_centroids(blobs, 4)
    assert groups.shape == (40,) and set(groups) == {0, 1, 2, 3}
    for block in groups.reshape(4, 10):  # the four far-apart blobs are the four groups
        assert len(set(block)) == 1
    assert (group_centroids(blobs, 1) == 0).all()
    assert (group_centroids(blobs[:1], 5) == 0).all()
    assert Yinyang().n_groups(1000, 256) == 25  # k // 10
    assert Yinyang().n_groups(1000, 5) == 1
    assert Yinyang(max_groups=8).n_groups(1000, 256) == 8
    assert Yinyang().n_groups(1_000_000, 1024) == 16  # 64 MiB of float32 bounds
    # n x groups float32 bounds within max_bounds_mb: 1 MiB / (4 bytes x 100k) = 2 groups
    assert Yinyang(max_bounds_mb=1).n_groups(100_000, 256) == 2


def test_yinyang_parameters_and_metric_are_checked():
    with pytest.raises(ConfigError, match="needs a distance that is a true metric.*'cosine'"):
        kmeansfw.Config(distance="cosine", assignment="yinyang").build_strategies()
    with pytest.raises(ConfigError, match="max_groups must be a positive integer"):
        kmeansfw.Config(assignment={"name": "yinyang", "max_groups": 0})
    with pytest.raises(ConfigError, match="max_bounds_mb must be a number > 0"):
        kmeansfw.Config(assignment={"name": "yinyang", "max_bounds_mb": -1})


def test_yinyang_on_sparse_data_equals_nearest():
    import scipy.sparse as sp

    X, _ = make_blobs(3000, n_features=8, centers=30, random_state=1)
    X[X < 0] = 0
    sparse = sp.csr_matrix(X)
    near = KMeans(30, random_state=0, tol=0).fit(sparse)
    yin = KMeans(30, assignment="yinyang", random_state=0, tol=0).fit(sparse)
    np.testing.assert_array_equal(near.labels_, yin.labels_)
    assert near.n_iter_ == yin.n_iter_


@pytest.mark.parametrize("bounded", ["hamerly", "yinyang"])
def test_full_shift_tables_start_over_with_the_same_labels(bounded, monkeypatch):
    from kmeansfw.strategies import assignment

    monkeypatch.setattr(assignment, "MAX_STEPS", 4)  # start over every 3 steps
    X, _ = make_blobs(5000, n_features=4, centers=30, cluster_std=2.0, random_state=7)
    seen = {}
    for name in ("nearest", bounded):
        labels = LabelsPerIteration()
        km = KMeans(
            30,
            assignment=name,
            init="random",
            n_init=2,
            random_state=1,
            tol=0,
            observers=[labels],
        ).fit(X)
        seen[name] = (km, labels.labels)
    assert len(seen["nearest"][1]) == len(seen[bounded][1]) > 8
    for a, b in zip(seen["nearest"][1], seen[bounded][1], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(seen["nearest"][0].labels_, seen[bounded][0].labels_)


def test_bounded_assignment_with_sample_weight_equals_nearest():
    X, _ = make_blobs(4000, n_features=3, centers=25, random_state=3)
    w = np.random.default_rng(0).uniform(0, 3, size=X.shape[0])
    near = KMeans(25, random_state=2, tol=0).fit(X, sample_weight=w)
    for name in ("hamerly", "yinyang"):
        km = KMeans(25, assignment=name, random_state=2, tol=0).fit(X, sample_weight=w)
        np.testing.assert_array_equal(km.labels_, near.labels_)
        assert km.n_iter_ == near.n_iter_
        np.testing.assert_allclose(km.inertia_, near.inertia_, rtol=1e-9)


def test_stale_rows_are_gathered_in_runs_that_fit_the_memory_budget(monkeypatch):
    # inline data of a splitting fit is one block whatever its rows' width (its label
    # vectors fit the budget): auto's Hamerly bounds gather the rows they cannot settle
    # in runs of whole sub-blocks whose copies fit the budget, with the same results
    from kmeansfw.core.data import BLOCK_TEMPORARIES
    from kmeansfw.strategies import assignment

    X, _ = make_blobs(20_000, n_features=16, centers=40, cluster_std=5.0, random_state=3)
    budget_mb = 0.5  # the 20000 rows' label vectors (480 kB) fit it
    data = FitData.build(X, n_clusters=40, memory_budget=1 << 19, splits_work=True)
    assert data.single_block == slice(0, 20_000)
    assert assignment.Auto(metric=True).bounded_by(20_000, 16, 40) == "hamerly"
    step = assignment.gather_rows(16, 8, 1 << 19)
    assert step % 256 == 0 and step * 16 * 8 * BLOCK_TEMPORARIES <= 1 << 19 and step < 20_000
    searched: list = []
    real = assignment.Hamerly._search

    def spy(self, hook, X, *args, **kwargs):
        searched.append(X.shape[0])
        return real(self, hook, X, *args, **kwargs)

    params = dict(random_state=0, max_iter=20, tol=0)
    monkeypatch.setattr(assignment.Hamerly, "_search", spy)
    small = KMeans(40, memory_budget_mb=budget_mb, **params).fit(X)
    gathered = [rows for rows in searched if rows < 20_000]
    assert gathered and max(gathered) <= step
    assert step in gathered  # a gather cut into runs
    searched.clear()
    whole = KMeans(40, memory_budget_mb=64, **params).fit(X)  # one gather a pass
    assert max(rows for rows in searched if rows < 20_000) > step
    np.testing.assert_array_equal(small.cluster_centers_, whole.cluster_centers_)
    np.testing.assert_array_equal(small.labels_, whole.labels_)
    assert small.inertia_ == whole.inertia_ and small.n_iter_ == whole.n_iter_
    assert assignment.gather_rows(16, 8, 1) == 256  # one run of a sub-block at least


def test_whole_number_data_with_exact_ties_gets_the_same_labels_from_every_search():
    # counts in {0, 1, 2}, each row ten times, centroids from the rows: 860 rows exactly
    # as far from two centroids. Compared on the (fractional) mean, the rounding broke
    # those ties: 7 % of the rows away from the lowest index, and hamerly and yinyang
    # (other kernels, other rounding) on other rows than nearest, 350 labels apart after
    # one iteration. On a point of whole numbers every search is exact there.
    rng = np.random.default_rng(0)
    X = np.repeat(rng.integers(0, 3, (500, 16)).astype(np.float64), 10, axis=0)
    init = np.unique(X, axis=0)[:32]
    D = ((X[:, None, :] - init[None]) ** 2).sum(axis=2)
    assert ((D == D.min(axis=1, keepdims=True)).sum(axis=1) > 1).sum() > 500
    lowest = D.argmin(axis=1)
    fits = {}
    for assignment in ("nearest", "hamerly", "yinyang", "auto"):
        km = KMeans(32, init=init, n_init=1, max_iter=8, tol=0, assignment=assignment).fit(X)
        fits[assignment] = km
        first = KMeans(32, init=init, n_init=1, max_iter=1, tol=0, assignment=assignment).fit(X)
        first.cluster_centers_ = init.copy()
        np.testing.assert_array_equal(first.predict(X), lowest)
    for assignment, km in fits.items():
        np.testing.assert_array_equal(km.labels_, fits["nearest"].labels_, err_msg=assignment)
        np.testing.assert_array_equal(km.cluster_centers_, fits["nearest"].cluster_centers_)
        assert km.inertia_ == pytest.approx(fits["nearest"].inertia_, rel=1e-12)
