"""Assignment strategies: ``nearest``, ``hamerly``, ``yinyang`` and ``auto`` (all exact)."""

from __future__ import annotations

import threading

import attrs
import numpy as np
import pluggy

from kmeansfw import kernels  # attributes read at call time: numba loads on first fit
from kmeansfw.core import contract
from kmeansfw.core.config import budget_bytes
from kmeansfw.core.data import BLOCK_TEMPORARIES, MIN_BLOCK_ROWS, FitData
from kmeansfw.core.markers import hookimpl
from kmeansfw.core.sums import SumsRequest
from kmeansfw.engine import steps
from kmeansfw.strategies.validators import positive_int, positive_number


@attrs.frozen
class Nearest:
    """Each sample goes to the centroid of lowest cost (ties: the lowest index).

    Uses the distance's fast ``kmeansfw_nearest`` search when it has one, else the
    argmin of its ``kmeansfw_cost`` block.
    """

    name = "nearest"
    accepts_sparse = True
    #: Answers the engine's one-call Lloyd iteration (kmeansfw.engine.lloyd_step).
    _lloyd_step = True
    splits_work = True  # the distance's search does the work (it declares its own)

    @hookimpl
    def kmeansfw_assign(
        self,
        X: np.ndarray,
        centroids: np.ndarray,
        rows: slice,
        data: FitData,
        cache: dict,
        hook: pluggy.HookRelay,
        with_costs: bool,
        sums: SumsRequest | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        labels, costs, _, _ = contract.call(
            hook,
            "kmeansfw_nearest",
            X=X,
            centroids=centroids,
            groups=None,
            n_groups=0,
            rows=rows,
            data=data,
            cache=cache,
            hook=hook,
            with_costs=with_costs,
            sums=sums,  # the mean's sums in the search's pass, when the distance can
        )
        return labels, costs


def search(hook, X, centroids, groups, n_groups, data, cache, sums=None):
    """The distance's checked nearest search with ``n_groups`` groups of rivals (and the
    mean's sums offered to it, for a search over a whole block)."""
    name = "kmeansfw_nearest"
    found = contract.call(
        hook,
        name,
        X=X,
        centroids=centroids,
        groups=groups,
        n_groups=n_groups,
        rows=None,
        data=data,
        cache=cache,
        hook=hook,
        with_costs=True,
        sums=sums,
    )
    return contract.check_search(
        hook, name, found, X.shape[0], centroids.shape[0], data.dtype, (X.shape[0], n_groups)
    )


class _Bounded:
    """What ``hamerly`` and ``yinyang`` share: per-sample distance bounds kept across
    iterations in the data's cache, moved by the centroid shifts, and a full search for
    the samples the bounds cannot settle.

    Every sample keeps an upper bound on the distance to its centroid and, per group of
    centroids, a lower bound on the distance to the group's other centroids (``hamerly``:
    one group).  A subclass chooses the groups (:meth:`_groups`), how bounds are stored
    (:attr:`lower_dtype`) and how rows are searched (:meth:`_search`).  The state
    survives restarts (``n_init``): bounds stay valid for any movement of the centroids,
    because the shift of centroid j is the distance between its old and new position
    whatever the run.
    """

    state_key = "bounded.state"
    lower_dtype = np.float64

    @staticmethod
    def _lower(rivals: np.ndarray) -> np.ndarray:
        """The stored form of the rivals' distances (lower bounds: never rounded up)."""
        return rivals

    def _search(self, hook, X, centroids, data, cache, state, labels, upper, lower, sums=None):
        """Nearest centroid, its distance and every group's nearest rival for every row
        of X, written into ``labels``, ``upper`` and ``lower``; returns the costs.
        ``sums``: the mean's sums, offered when X is the whole block."""
        groups, t = state["groups"], state["n_groups"]
        found = search(hook, X, centroids, groups, t, data, cache, sums)
        labels[:], costs, upper[:], rivals = found
        lower[:] = self._lower(rivals)
        return costs

    def _iteration(self, hook, centroids, data, cache) -> dict:
        """Per-iteration geometry (shifts, half gaps), computed once by the first block."""
        key = f"{self.state_key}.iteration"
        with _LOCK:
            if key in cache:
                return cache[key]
            k = centroids.shape[0]
            state = data.cache.get(self.state_key)
            fresh = (
                state is None
                or state["centroids"].shape != centroids.shape
                or state["now"] + 1 >= MAX_STEPS  # the shift tables are full: start over
            )
            gaps = contract.call(
                hook,
                "kmeansfw_distance",
                X=centroids,
                centroids=centroids,
                rows=None,
                data=data,
                cache=cache,
            ).astype(np.float64)
            np.fill_diagonal(gaps, np.inf)
            half_gap = 0.5 * gaps.min(axis=1) if k > 1 else np.full(1, np.inf)
            if fresh:
                n = data.n_samples
                groups = self._groups(centroids, data)
                t = int(groups.max()) + 1
                state = {
                    "upper": np.zeros(n),
                    "lower": np.zeros((n, t), dtype=self.lower_dtype),
                    "labels": np.zeros(n, dtype=np.intp),
                    "stamps": np.zeros(n, dtype=np.int32),
                    "groups": groups,
                    "n_groups": t,
                    "cum_shift": np.zeros((MAX_STEPS, k)),
                    "cum_drift": np.zeros((MAX_STEPS, t)),
                    "now": 0,
                    "centroids": None,
                }
                data.cache[self.state_key] = state
            else:
                old = state["centroids"]
                old_cache = steps.prepare_centroids(hook, data, old)
                moved = contract.call(
                    hook,
                    "kmeansfw_distance",
                    X=centroids,
                    centroids=old,
                    rows=None,
                    data=data,
                    cache=old_cache,
                )
                shift = np.diagonal(np.asarray(moved, dtype=np.float64))
                drift = np.zeros(state["n_groups"])
                np.maximum.at(drift, state["groups"], shift)  # over k centroids
                now = state["now"] = state["now"] + 1
                state["cum_shift"][now] = state["cum_shift"][now - 1] + shift
                state["cum_drift"][now] = state["cum_drift"][now - 1] + drift
            state["centroids"] = centroids.copy()
            info = {
                "fresh": fresh,
                # a pass that renews every row's bounds: searches whole blocks without
                # the stale check (set by ``auto``, see Auto._bounds_pay)
                "renew": False,
                "half_gap": half_gap,
                "state": state,
                "margin": np.sqrt(np.finfo(data.dtype).eps),
            }
            cache[key] = info
            return info

    @hookimpl
    def kmeansfw_assign(
        self,
        X: np.ndarray,
        centroids: np.ndarray,
        rows: slice,
        data: FitData,
        cache: dict,
        hook: pluggy.HookRelay,
        sums: SumsRequest | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        info = self._iteration(hook, centroids, data, cache)
        state = info["state"]
        # this block's rows of the state (views: tasks own disjoint rows)
        labels, upper, lower = state["labels"][rows], state["upper"][rows], state["lower"][rows]
        stamps = state["stamps"][rows]
        costs = None
        redo = None
        if not (info["fresh"] or info["renew"]):  # the rows the bounds cannot settle
            redo = stale_rows(info, labels, upper, lower, stamps)
        if redo is None or redo.size > full_search_fraction(centroids.shape[0]) * X.shape[0]:
            # the first pass, a renewal, or most rows stale: the whole block searched in
            # place (no gather, no scatter, no second pass for the costs; the mean's sums
            # in the search's pass when the distance can add them)
            costs = self._search(hook, X, centroids, data, cache, state, labels, upper, lower, sums)
            stamps[:] = state["now"]
        else:
            # the stale rows gathered and searched in runs whose copies fit the memory
            # budget (an inline block may be the whole data): whole sub-blocks of rows,
            # so each row sits where it would in one gather and is searched alike
            step = gather_rows(X.shape[1], X.dtype.itemsize, data.memory_budget)
            for a in range(0, redo.size, step):
                part = redo[a : a + step]
                sub_labels, sub_upper, sub_lower = labels[part], upper[part], lower[part]
                self._search(
                    hook, X[part], centroids, data, cache, state, sub_labels, sub_upper, sub_lower
                )
                labels[part], upper[part], lower[part] = sub_labels, sub_upper, sub_lower
            stamps[redo] = state["now"]
        # the state's rows change in later iterations; costs None (rows the bounds
        # settled): the engine computes them if something reads them
        return labels.copy(), costs


def gather_rows(n_features: int, itemsize: int, memory_budget: int) -> int:
    """Stale rows a bound-based assignment gathers and searches at once: as many whole
    runs of :data:`kmeansfw.core.data.MIN_BLOCK_ROWS` rows as keep
    :data:`kmeansfw.core.data.BLOCK_TEMPORARIES` copies of them within
    ``memory_budget`` (one run at least).

    Parameters
    ----------
    n_features, itemsize : int
        The rows' width and bytes per value.
    memory_budget : int
        Bytes of working memory per thread.

    Returns
    -------
    int
    """
    rows = memory_budget // (BLOCK_TEMPORARIES * max(1, n_features) * itemsize)
    return max(MIN_BLOCK_ROWS, rows - rows % MIN_BLOCK_ROWS)


def full_search_fraction(n_clusters: int) -> float:
    """Above this fraction of stale rows a bound-based assignment searches the whole block.

    Searching only the stale rows costs a gather and scatter of those rows (plus, when
    something reads the costs, a second pass over every row for those of the others);
    searching all rows costs the search alone.  With a row's search worth ``r`` reads of
    it, the two cost the same at a fraction ``(r - 1) / (r + 1)``; ``r`` grows with k,
    here ``1 + k / 8`` (k=3: 0.16, k=8: 0.33, k=32: 0.67, k=256: 0.94).  Either way the
    labels, bounds and costs are those of a search, so only the time depends on it.

    Parameters
    ----------
    n_clusters : int
        The number of centroids.

    Returns
    -------
    float
        The fraction, in [0, 1).
    """
    r = 1.0 + n_clusters / 8.0
    return (r - 1.0) / (r + 1.0)


def bounds_pay_fraction(n_clusters: int) -> float:
    """Up to this share of stale rows a bounded pass costs less than a ``nearest`` one
    (what ``auto`` keeps its bounds by, :meth:`Auto._bounds_pay`).

    A bounded pass checks every row's bounds, gathers the stale rows, searches them with
    the runner-up and the exact costs, scatters the answers back and leaves the mean's
    sums to a pass of their own; a ``nearest`` pass searches every row with the sums in
    its pass.  Measured here (per pass, against a ``nearest`` pass over the same data,
    two threads): ``hamerly`` at k=32 and 64 costs about 0.4-0.75x with 5 % of the rows
    stale, and 2.5-4x a ``nearest`` pass's cost more per stale row: it breaks even at
    about 0.15 of them (100000 x 16-64, float32 and float64); ``yinyang`` at k=128 and
    256 about 0.3-0.5x, and 1.7-2x more per stale row: even at 0.25 (20000 x 64,
    float32, no clusters) to 0.4 (100000 x 64, blobs).  ``k / (k + 192)``, at most
    :data:`BOUNDS_PAY_MAX_SHARE`: 0.14 at k=32, 0.25 at k=64, 0.3 from k=96 up.

    Parameters
    ----------
    n_clusters : int
        The number of centroids.

    Returns
    -------
    float
        The share, in [0, 1).
    """
    return min(BOUNDS_PAY_MAX_SHARE, n_clusters / (n_clusters + 192.0))


#: The largest share of stale rows ``auto`` keeps its bounds at (:func:`bounds_pay_fraction`).
BOUNDS_PAY_MAX_SHARE = 0.3


def stale_share(info: dict, n_rows: int) -> float:
    """The share of rows a bounded pass would find stale now, judged on an even sample.

    Parameters
    ----------
    info : dict
        This pass's geometry from the bounded assignment (its state, advanced to this
        pass's centroids, the half gaps and the rounding margin).
    n_rows : int
        At most this many rows are judged: every ``ceil(n / n_rows)``-th row of the
        data.

    Returns
    -------
    float
        In [0, 1]: the share of the sampled rows whose bounds, as they stand (moved by
        the centroids' shifts since each row's last search), cannot vouch for its
        centroid: what :func:`kmeansfw.kernels.stale_rows` finds for them.
    """
    state = info["state"]
    step = -(-state["upper"].shape[0] // max(1, n_rows))  # ceil: at most n_rows rows
    sample = [
        np.ascontiguousarray(state[key][::step]) for key in ("labels", "upper", "lower", "stamps")
    ]
    return stale_rows(info, *sample).size / max(1, sample[0].shape[0])


def stale_rows(
    info: dict, labels: np.ndarray, upper: np.ndarray, lower: np.ndarray, stamps: np.ndarray
) -> np.ndarray:
    """:func:`kmeansfw.kernels.stale_rows` for rows of a bounded state (their labels,
    bounds and stamps), with this pass's geometry from ``info``: the one check both a
    bounded pass and ``auto``'s judgement of it make."""
    state = info["state"]
    return kernels.stale_rows(
        labels,
        upper,
        lower,
        stamps,
        state["cum_shift"],
        state["cum_drift"],
        state["now"],
        info["half_gap"],
        info["margin"],
    )


#: Steps (centroid sets) a bound-based state remembers; then it starts over with a full
#: search (one ``nearest`` pass), e.g. after 4 restarts of 255 iterations.
MAX_STEPS = 1024
#: Held while the first block of an iteration computes the iteration's geometry (and
#: ``auto``'s decision, which may compute it: reentrant).
_LOCK = threading.RLock()


@attrs.frozen
class Hamerly(_Bounded):
    """Exact nearest-centroid assignment that skips samples by triangle-inequality bounds.

    Hamerly's algorithm: each sample keeps an upper bound on the distance to its centroid
    and a lower bound on the distance to every other one; when the centroids move, the
    bounds move by at most the shifts, and only samples whose upper bound exceeds both
    their lower bound and half the distance from their centroid to its nearest other
    centroid are recomputed (in full, as one block).  Gives the labels of ``nearest`` at
    every iteration, far faster once few samples change cluster.  Needs a distance that
    is a true metric (``is_metric``); bounds are kept in float64 with a relative margin of
    sqrt(machine epsilon), so rounding never skips a sample that had to be recomputed.
    """

    name = "hamerly"
    accepts_sparse = True
    requires_metric = True
    state_key = "hamerly.state"

    @staticmethod
    def _groups(centroids: np.ndarray, data: FitData) -> np.ndarray:
        return np.zeros(centroids.shape[0], dtype=np.intp)  # one group: every centroid


@attrs.frozen
class Yinyang(_Bounded):
    """Exact nearest-centroid assignment with one lower bound per group of centroids.

    Yinyang k-means (Ding et al., 2015): the centroids are grouped once (a few Lloyd
    steps on the initial centroids); each sample keeps an upper bound on the distance to
    its centroid and, per group, a lower bound on the distance to the group's centroids
    other than its own.  When the centroids move, a group's bounds drop only by the
    largest shift *within that group*, instead of the largest shift overall as in
    ``hamerly``, so far fewer samples need a look once most centroids have settled.  A
    sample whose upper bound exceeds its lowest group bound (and half the gap from its
    centroid to the nearest other one) is searched in full with the distance's fused
    kernel (``kmeansfw_nearest`` with groups), which also refreshes its group bounds; so the
    labels are exactly those of ``nearest`` at every iteration.  Needs a true metric.

    Bounds take n x groups floats (float32, never rounded upwards); the number of groups
    is ``k // 10`` (the paper's choice) but at most ``max_groups`` and what fits in
    ``max_bounds_mb``.

    Parameters
    ----------
    max_groups : int
        Upper limit on the number of centroid groups.
    max_bounds_mb : float
        Memory allowed for the group bounds, in MiB (default 64: 16 groups at 1M samples,
        which keeps a fit at 1M x 64, k=1024 within the data's size + 256 MB).
    """

    name = "yinyang"
    accepts_sparse = True
    requires_metric = True
    state_key = "yinyang.state"
    lower_dtype = np.float32
    max_groups: int = attrs.field(default=64, validator=positive_int)
    max_bounds_mb: float = attrs.field(default=64.0, validator=positive_number)

    def n_groups(self, n_samples: int, n_clusters: int) -> int:
        """Groups for this shape: k // 10, within ``max_groups`` and the memory budget."""
        budget = budget_bytes(self.max_bounds_mb) // (4 * max(1, n_samples))
        return int(max(1, min(n_clusters // 10, self.max_groups, budget)))

    def _groups(self, centroids: np.ndarray, data: FitData) -> np.ndarray:
        return group_centroids(centroids, self.n_groups(data.n_samples, centroids.shape[0]))

    @staticmethod
    def _lower(rivals: np.ndarray) -> np.ndarray:
        return _round_down(rivals)


def _round_down(values: np.ndarray) -> np.ndarray:
    """``values`` as float32 lower bounds: rounded, then one step down, so never above."""
    return np.nextafter(np.asarray(values).astype(np.float32), np.float32(-np.inf))


def group_centroids(centroids: np.ndarray, n_groups: int, n_steps: int = 5) -> np.ndarray:
    """Group the (k, d) centroids into at most ``n_groups`` groups: (k,) group indices.

    A few Lloyd steps on the centroids themselves (Euclidean, deterministic: seeded with
    evenly spaced centroids), as Yinyang k-means does; empty groups are dropped, so the
    indices run over ``0 .. groups-1``.  Only how much work the bounds save depends on
    the grouping, never the labels.
    """
    k = centroids.shape[0]
    if n_groups <= 1 or k <= 1:
        return np.zeros(k, dtype=np.intp)
    points = np.asarray(centroids, dtype=np.float64)
    centers = points[np.linspace(0, k - 1, n_groups).astype(np.intp)].copy()
    groups = np.zeros(k, dtype=np.intp)
    for _ in range(n_steps):  # steps over k centroids, never samples
        sq = (
            np.einsum("ij,ij->i", points, points)[:, None]
            - 2 * points @ centers.T
            + np.einsum("ij,ij->i", centers, centers)[None, :]
        )
        groups = sq.argmin(axis=1)
        counts = np.bincount(groups, minlength=n_groups)
        sums = np.zeros_like(centers)
        np.add.at(sums, groups, points)
        filled = counts > 0
        centers[filled] = sums[filled] / counts[filled, None]
    _, groups = np.unique(groups, return_inverse=True)
    return groups.astype(np.intp)


#: ``auto`` uses hamerly from this much work per iteration (samples x clusters) upwards
#: (at the defaults implied by the samples and clusters below; kept for other settings) ...
AUTO_MIN_WORK = 1 << 17
#: ... with at least this many clusters ...
AUTO_MIN_CLUSTERS = 32
#: ... and this many features (below, the bounds weigh as much as the search they save) ...
AUTO_MIN_FEATURES = 16
#: ... and this many samples: below, a search over every row costs little next to the
#: bounds' bookkeeping, and the group search of ``yinyang`` runs on one thread where
#: ``nearest``'s splits between numba's.  Measured per Lloyd iteration (10 iterations
#: from the same centroids, two threads): at 2000 x 64, k=256 and 2000 x 32, k=128
#: ``nearest`` took 0.47-0.53x ``auto``'s time on standard normal data (0.47x at
#: 2000 x 64, k=256 on ``make_classification`` from k-means++ centroids); whole default
#: fits on blobs at 2000 x 64, k=256 0.80-0.87x.  At 5000 x 64, k=128 the bounds paid on
#: blobs (``auto`` 0.52x ``nearest``'s time) but not on ``make_classification`` (1.11x);
#: between 2000 and 5000 rows nothing was measured.  Judged on the rows of the data set
#: the assignment sees: a Dask chunk's rows under the Dask backend.
AUTO_MIN_SAMPLES = 4096
#: ``auto`` keeps yinyang's group bounds instead of hamerly's from this many clusters ...
AUTO_YINYANG_MIN_CLUSTERS = 128
#: ... and this many features.
AUTO_YINYANG_MIN_FEATURES = 32
#: ``auto`` judges its bounds before each pass on at most this many rows, evenly spaced
#: (:func:`stale_share`) ...
AUTO_JUDGED_ROWS = 2048
#: ... renews the bounds of every row when they stop paying, and counts a renewal as
#: repaid when the bounds paid for at least this many passes after it ...
AUTO_RENEWAL_PASSES = 2
#: ... else waits longer before the next one, at most this many passes.
AUTO_MAX_WAIT = 8


@attrs.frozen
class Auto:
    """The default: ``hamerly`` or ``yinyang`` where their bounds repay their bookkeeping,
    else ``nearest``.
    Same labels either way (both exact), so only the time depends on the choice.

    ``hamerly`` when the distance is a metric (``metric``, which the configuration sets),
    samples x clusters >= :data:`AUTO_MIN_WORK`, k >= :data:`AUTO_MIN_CLUSTERS`, features
    >= :data:`AUTO_MIN_FEATURES`, samples >= :data:`AUTO_MIN_SAMPLES` (:meth:`bounded`),
    and only for a data set assigned more than once: bounds pay only when kept from one
    pass to the next, so a single pass (``predict``, ``score``, a ``partial_fit`` call, a
    mini-batch step, whose rows are a new data set each time, or a task run on a copy of
    the data) takes ``nearest``; a Lloyd
    run's data in process (no executor, or an ``in_process`` one) takes them from its
    first iteration (the run marks it, :data:`kmeansfw.engine.steps.REPEATED`), any other
    from its second pass.  Measured
    here (whole fits from the same k-means++ centroids, 200k samples, float64): on
    clustered data (Gaussian blobs; ``make_classification``'s uneven, anisotropic
    clusters) hamerly took 0.30-0.61x nearest's time at 64 features and k=256,
    0.53-0.77x at 16 features and k=64, 0.84-1.02x at 64 features and k=32, but
    0.84-0.97x at 8 features and k=32 and 1.06-1.07x at k=8; on unstructured data
    (standard normal, where labels keep changing) an iteration took 1.07-1.21x nearest's
    time from 16 features and k=32 up, and up to 2x below that.  At 1M x 64, k=256
    (``make_classification``) a default fit's Lloyd iterations took 179 ms each instead
    of 369 ms.

    From :data:`AUTO_YINYANG_MIN_CLUSTERS` clusters and
    :data:`AUTO_YINYANG_MIN_FEATURES` features it keeps ``yinyang``'s group bounds
    instead (:meth:`bounded_by`): same labels, fewer rows searched once most centroids
    have settled.  Measured here (whole fits from the same seeding, ``hamerly`` = 1):
    ``make_classification`` 200k x 64, k=256 0.82, 200k x 32, k=128 0.88, but 200k x 16,
    k=256 0.98 and 200k x 16, k=64 1.06; Gaussian blobs that converge in a few
    iterations 0.99-1.24 (its grouping of the centroids is a fixed cost); the default fit
    at 1M x 64, k=256 16.1-16.5 s against 19.1 s (``make_classification``, seed 0) and
    4.0-4.5 s against 4.2-4.9 s (blobs).

    Each pass keeps the bounds only where a bounded pass would pay (:meth:`_bounds_pay`):
    it judges, on an even sample of at most 2048 rows, the share its bounds as they
    stand would leave stale (:func:`stale_share`) against :func:`bounds_pay_fraction`
    (0.14 at k=32, 0.3 from k=96).  Bounds that stop paying are renewed (one pass
    searches every row whole, with the runner-up), and when renewed bounds do not pay
    either, ``nearest`` passes follow, 1, 2, 4, up to 8 of them, before the next
    judgement: on unstructured data the centroids move too much for the bounds for many
    iterations, and in the first iterations on any data.  Measured here per Lloyd
    iteration on standard normal data (the same centroids, two threads, against trying
    the bounds every other pass, as before): 0.64x the time at 20000 x 64, k=32,
    float32, 0.76-0.97x at 20000-200000 rows, 64-256 features, k=32 and 256, float32 and
    float64 (20000 x 64, k=32, float32: 0.86 ms, scikit-learn 0.86 in the same run);
    0.99-1.14x ``nearest``'s time there, the renewals' cost.  Whole fits on clustered
    data (Gaussian blobs, ``make_classification``, 30000-200000 rows, 16-64 features,
    k=32 to 256) 0.92-1.15x, within the noise of those runs (repeats of one fit varied
    by up to 15 %).
    """

    name = "auto"
    accepts_sparse = True
    #: Answers the engine's one-call Lloyd iteration (kmeansfw.engine.lloyd_step).
    _lloyd_step = True
    # inline, nearest's search and hamerly's (the distance's) split their rows between
    # numba's threads; yinyang's group search does not: it starts at the clusters from
    # which mid-size data runs in worker threads (kmeansfw.core.data.INLINE_MAX_CLUSTERS),
    # and only data worker threads would give one thread anyway runs inline beyond them
    splits_work = True
    metric: bool = False

    def bounded(self, n_samples: int, n_features: int, n_clusters: int) -> bool:
        """Whether a data set of this shape keeps bounds (``hamerly`` or ``yinyang``, see
        :meth:`bounded_by`) when it is assigned more than once.

        Parameters
        ----------
        n_samples, n_features : int
            The data set's shape.
        n_clusters : int
            The number of centroids.

        Returns
        -------
        bool
            True for a metric distance and a shape above every threshold.
        """
        return (
            self.metric
            and n_samples * n_clusters >= AUTO_MIN_WORK
            and n_clusters >= AUTO_MIN_CLUSTERS
            and n_features >= AUTO_MIN_FEATURES
            and n_samples >= AUTO_MIN_SAMPLES
        )

    def bounded_by(self, n_samples: int, n_features: int, n_clusters: int) -> str | None:
        """The bound-based assignment a data set of this shape takes (from the pass
        :meth:`bounded` says), or None when it takes ``nearest``.

        Parameters
        ----------
        n_samples, n_features, n_clusters : int
            As for :meth:`bounded`.

        Returns
        -------
        str or None
            ``"yinyang"`` from :data:`AUTO_YINYANG_MIN_CLUSTERS` clusters and
            :data:`AUTO_YINYANG_MIN_FEATURES` features, else ``"hamerly"``, when
            :meth:`bounded`; None otherwise.
        """
        if not self.bounded(n_samples, n_features, n_clusters):
            return None
        many = n_clusters >= AUTO_YINYANG_MIN_CLUSTERS and n_features >= AUTO_YINYANG_MIN_FEATURES
        return "yinyang" if many else "hamerly"

    @staticmethod
    def _pass(data: FitData, cache: dict) -> int:
        """Which pass over ``data`` this assignment is (0 for the first), counted once per
        pass by its first block (``cache`` is the pass's centroid cache)."""
        with _LOCK:
            if _AUTO_PASS not in cache:
                cache[_AUTO_PASS] = data.cache.get(_AUTO_PASS, 0)
                data.cache[_AUTO_PASS] = cache[_AUTO_PASS] + 1
            return cache[_AUTO_PASS]

    @staticmethod
    def _bounds_pay(
        data: FitData,
        cache: dict,
        bounded: _Bounded,
        hook: pluggy.HookRelay,
        centroids: np.ndarray,
        this_pass: int,
    ) -> bool:
        """Whether this pass keeps the bounds of ``bounded`` or is a ``nearest`` pass,
        decided once per pass by its first block (``cache`` is the pass's centroid cache,
        ``this_pass`` its number, :meth:`_pass`).

        The bounds are kept when a bounded pass would pay: when at most
        :func:`bounds_pay_fraction` of an even sample of rows (:data:`AUTO_JUDGED_ROWS`)
        are stale with the bounds as they stand (:func:`stale_share`, after the bounds'
        geometry is advanced to this pass's centroids).  Bounds that stop paying grow
        looser, so the first pass they do not pay for is a ``nearest`` one, a wait of
        ``w`` more ``nearest`` passes follows without judgement or geometry (the bounds
        stay valid: the next geometry moves them by the centroids' shifts since the last
        one, in one step), and then, unless the bounds as they stand pay again, a pass
        renews every row's bounds (a bounded pass that searches whole blocks, without
        checking them) and the next pass judges bounds one step old.  ``w`` is 0 when the
        bounds paid for at least :data:`AUTO_RENEWAL_PASSES` passes since the last
        renewal, else it doubles: 1, 2, 4, up to :data:`AUTO_MAX_WAIT`.  The record
        spans restarts on the same data (``n_init``: the bounds stay valid for any
        movement of the centroids) and starts over with fresh bounds (a new k, full
        shift tables).
        """
        with _LOCK:
            if _AUTO_BOUNDS in cache:
                return cache[_AUTO_BOUNDS]
            renewal = data.cache.get(_AUTO_RENEWAL)
            # a new k in a wait (or the other kind of bounds): its fresh search, or a new
            # record, when the wait ends (nearest passes are exact either way)
            waiting = (
                renewal is not None and renewal["due"] is not None and this_pass < renewal["due"]
            )
            if waiting:
                keep = False
            else:
                info = bounded._iteration(hook, centroids, data, cache)
                if info["fresh"] or renewal is None or renewal["state"] is not info["state"]:
                    # a first search, or the bounds of a record of other bounds (a change of
                    # k between hamerly and yinyang): a new record, this pass bounded
                    record = {"state": info["state"], "wait": 0, "paid": 0, "due": None}
                    data.cache[_AUTO_RENEWAL] = record
                    keep = True
                else:
                    keep = stale_share(info, AUTO_JUDGED_ROWS) <= bounds_pay_fraction(
                        centroids.shape[0]
                    )
                    if keep:
                        renewal.update(paid=renewal["paid"] + 1, due=None)
                    elif renewal["due"] is None:  # the first pass they do not pay for
                        wait = renewal["wait"]
                        repaid = renewal["paid"] >= AUTO_RENEWAL_PASSES
                        wait = 0 if repaid else min(max(1, 2 * wait), AUTO_MAX_WAIT)
                        renewal.update(wait=wait, due=this_pass + 1 + wait)
                    else:  # due: renew them all
                        renewal.update(paid=0, due=None)
                        info["renew"] = keep = True
            cache[_AUTO_BOUNDS] = keep
            return keep

    @hookimpl
    def kmeansfw_assign(
        self,
        X: np.ndarray,
        centroids: np.ndarray,
        rows: slice,
        data: FitData,
        cache: dict,
        hook: pluggy.HookRelay,
        with_costs: bool,
        sums: SumsRequest | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        kind = self.bounded_by(data.n_samples, data.n_features, centroids.shape[0])
        args = dict(X=X, centroids=centroids, rows=rows, data=data, cache=cache, hook=hook)
        if kind is not None:
            this_pass = self._pass(data, cache)
            bounded = _YINYANG if kind == "yinyang" else _HAMERLY
            again = data.cache.get(steps.REPEATED, False) or this_pass > 0
            if again and self._bounds_pay(data, cache, bounded, hook, centroids, this_pass):
                # the bounds skip rows: the sums go with a whole-block search only
                return bounded.kmeansfw_assign(**args, sums=sums)
        return _NEAREST.kmeansfw_assign(**args, with_costs=with_costs, sums=sums)


#: In a data set's cache: how many passes ``auto`` made over it; in a pass's centroid
#: cache: which pass this is.
_AUTO_PASS = "auto.pass"
#: In a pass's centroid cache: whether the pass keeps bounds; in a data set's cache:
#: ``auto``'s record of its bounds (their state, the passes to wait after renewed bounds
#: that did not pay, the passes they paid for since the last renewal, and the pass the
#: current wait ends at; see :meth:`Auto._bounds_pay`).
_AUTO_BOUNDS, _AUTO_RENEWAL = "auto.bounds", "auto.renewal"
_HAMERLY, _YINYANG, _NEAREST = Hamerly(), Yinyang(), Nearest()
