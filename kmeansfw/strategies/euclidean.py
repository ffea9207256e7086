"""The Euclidean geometry: squared-distance objective, mean update, norm caching.

As scikit-learn does, distances are computed on data centered on its mean, which keeps
``||x||^2 - 2 x.c + ||c||^2`` accurate: each block is centered on the fly, with no
centered copy of the data (the one exception: :meth:`Euclidean.plusplus_steps`, greedy
k-means++ on one small block, centers a copy once for all its steps); sparse CSR data is
used uncentered, as scikit-learn does, and so is dense data whose mean is already near
the origin (:func:`centered_already`: standardized features, say), where centering would
change little of the rounding and costs a copy of every block.  Two more exceptions
(:func:`learned_origin`): data whose mean far rows drag away from the rest is centered
on the rest's median, and data of whole numbers on a point of whole numbers.  Squared distances
take one matrix product per block; the mean is computed
once per data set, the centroid norms once per centroid set.  The
nearest-centroid search (:func:`kmeansfw.kernels.nearest_sq_euclidean`) compares
``||c||^2 - 2 x.c`` in one fused pass after the product and then computes the exact
squared distance to the chosen centroid only.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import attrs
import numpy as np
import scipy.sparse as sp

from kmeansfw import kernels  # attributes read at call time: numba loads on first fit
from kmeansfw.core.data import FitData, is_sparse
from kmeansfw.core.distance import Distance, nearest_by_blocks
from kmeansfw.core.errors import PrecisionWarning, StrategyError, warn
from kmeansfw.core.markers import hookimpl
from kmeansfw.core.paging import column_means
from kmeansfw.core.sums import SumsRequest
from kmeansfw.engine.executors import kernel_threads, single_threaded_blas

_MEAN = "euclidean.mean"
#: In the fitted state: whether data is compared on the origin instead of :data:`_MEAN`
#: (see :func:`centered_already`).
_AT_ORIGIN = "euclidean.at_origin"
#: In the fitted state, only where the rows are compared on another point than their
#: mean or zeros (the bulk's median, a point of whole numbers; see
#: :func:`learned_origin`): that point.
_ORIGIN = "euclidean.origin"
_CENTERED_C = "euclidean.centered_c"
_MINUS_2C = "euclidean.minus_2c"
_C_NORMS = "euclidean.c_sq_norms"
_NORMS = "euclidean.centered_sq_norms"
#: In a data set's cache: the blocks (start, stop) whose rows' norms :data:`_NORMS` holds.
_NORMS_DONE = "euclidean.centered_sq_norms.blocks"
_COST_SHIFT = "euclidean.cost_shift"


#: Dense data is compared on the origin instead of its mean when the mean's squared norm
#: is at most this fraction of the median of the rows' squared distances to the mean: the
#: data is centered already (standardized features, say): a row at the median distance
#: from the mean is then at most 1 + 1/8 times as far from the origin (about
#: sqrt(1 + 1/64), 1.008 times, where it lies across the mean), and the products read X
#: as it is, without a centered copy of each block (per Lloyd iteration on standard
#: normal data, float64: about 0.85-0.9x the time at k=3 and 64-256 features, 0.9-0.95x
#: at k=8, level at k=32; float32: 0.79-0.93x at 20000-1000000 rows, 32-256 features and
#: k=3-8).  The rounding of ``||c||^2 - 2 x.c`` grows with the norms of x and c, so
#: centering favours a tight cluster at the mean and the origin one at the origin, by
#: the same amount: in float32, a cluster of radius 1e-4 (the spread being 1) and 20000
#: of 120000 rows, with four of the eight centroids in it, lost 1272 labels to the
#: rounding compared on the origin and 4 centered when it sat at the mean (the mean near
#: this rule's edge), 0 and 1964 when it sat at the origin; standard normal data lost
#: none either way (100000 x 64, k=8).  So the rule holds for float32 as for float64
#: (where the rounding is 5e8 times finer).
ORIGIN_MAX_OFFSET = 1 / 64
#: ... judged on at most this many rows drawn from the data (and at most
#: :data:`ORIGIN_SAMPLE_VALUES` values; see :func:`origin_sample_rows`).
ORIGIN_SAMPLE_ROWS = 256
ORIGIN_SAMPLE_VALUES = 1 << 20
#: Rows are compared on the coordinate-wise median of the drawn rows instead of their
#: mean when the mean lies farther from that median than :func:`mean_gap_limit` times the
#: drawn rows' typical distance to it (see :func:`bulk_origin`).  Rows compared on a
#: point ``g`` times their spread away keep their exact costs to about ``2 g eps``
#: relative, but the search's comparisons (``||c||^2 - 2 x.c`` of values about ``g``
#: spreads large) to about ``g^2 eps``: a 1e20 outlier among 50 rows spread over 1 put
#: the mean 2e18 from them, where float64's spacing is 256, and every cost came out 0;
#: in float32 a gap of 600 misplaced rows already.  The limit is the smaller of this
#: many spreads and ``sqrt(ORIGIN_MAX_COMPARE_ERROR / eps)``: 1024 in float64, 11.3 in
#: float32.  Data without far rows has its mean within a few spreads of its median.
ORIGIN_MAX_MEAN_GAP = 1024.0
#: ... and the relative error of the search's comparisons it allows (see above).
ORIGIN_MAX_COMPARE_ERROR = 2.0**-16
#: ... and how much farther than from the mean the farthest drawn row may lie from the
#: median (see :func:`bulk_origin`): a far group of a fifth of the rows, 1.25 times.
ORIGIN_MAX_FARTHEST = 1.25
#: The seed of the rows :func:`origin_sample_rows` draws (a generator of its own: the
#: decision depends on the data alone, never on a fit's random stream).
ORIGIN_SAMPLE_SEED = 0x6B6D


def origin_sample_rows(n_samples: int, n_features: int) -> np.ndarray:
    """The rows :func:`centered_already` judges the data on: all of them up to
    :data:`ORIGIN_SAMPLE_ROWS` (and :data:`ORIGIN_SAMPLE_VALUES` values), else that many
    distinct rows drawn uniformly by a generator seeded with :data:`ORIGIN_SAMPLE_SEED`,
    sorted.

    Drawn, not taken at a rule: rows taken every ``step`` rows see one kind of row only
    in data that repeats with a period dividing the step (a tight bulk far from the
    origin and a wide row every 100th, 25600 x 16 in float32: judged on every 100th row,
    the rule passed it as centered, and compared on the origin it lost 16349 of its 25344
    bulk labels), and the golden ratio's multiples, tried next, fall on one row of the
    period when ``n / period`` is near a Fibonacci number (a review found 2,865,700 rows
    with a wide row every 100th passed, then 1,862,213 bulk labels lost).  A uniform draw
    has no arithmetic to line up with: fooling the median takes about half the rows.
    The same rows for the same shape, whatever the fit's ``random_state``.

    Parameters
    ----------
    n_samples, n_features : int
        The data's shape.

    Returns
    -------
    ndarray of int64
        Sorted distinct row indices.
    """
    return _drawn_rows(int(n_samples), int(n_features)).copy()


@functools.lru_cache(maxsize=16)
def _drawn_rows(n_samples: int, n_features: int) -> np.ndarray:
    """:func:`origin_sample_rows`, drawn once per shape (a model's ``predict`` calls on
    batches of one size draw nothing again)."""
    rows = max(1, min(ORIGIN_SAMPLE_ROWS, ORIGIN_SAMPLE_VALUES // max(1, n_features)))
    if n_samples <= rows:
        return np.arange(n_samples)
    draw = np.random.default_rng(ORIGIN_SAMPLE_SEED)
    return np.sort(draw.choice(n_samples, size=rows, replace=False)).astype(np.int64)


def centered_already(X: Any, mean: np.ndarray) -> bool:
    """Whether dense data is compared on the origin, as it is, rather than centered.

    :func:`learned_origin`'s choice on at most :data:`ORIGIN_SAMPLE_ROWS` rows drawn
    from ``X`` (:func:`origin_sample_rows`, read as ``X[rows]``: a NumPy array, a file
    map, or a Dask driver's stream of rows, which fetches just those rows): True for
    float64 and float32 data when ``||mean||^2 <= ORIGIN_MAX_OFFSET`` times the median of
    ``||x - mean||^2`` (the median, so that a few far rows do not pass off a tight bulk
    far from the origin as centered; the bulk's median instead of the mean where far
    rows drag the mean away), or when data of whole numbers has its point of whole
    numbers at zero.  False for other dtypes and for anything without a 2-D shape.
    Decided once, when the distance learns the data, and kept in the fitted state, so
    that every data set the model then sees is compared on the same origin.

    Parameters
    ----------
    X : array of shape (n, d)
    mean : ndarray, shape (d,)

    Returns
    -------
    bool
    """
    sample = _origin_sample(X)
    if sample is None:
        return False
    return bool(learned_origin(sample, np.asarray(mean, dtype=np.dtype(X.dtype)))[_AT_ORIGIN])


def _origin_sample(X: Any) -> Any:
    """The rows of dense float64 or float32 ``X`` that :func:`origin_rule` and
    :func:`check_spread` judge it on (``X[origin_sample_rows(n, d)]``), else None."""
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] == 0 or is_sparse(X):
        return None
    if np.dtype(getattr(X, "dtype", None)) not in (np.float64, np.float32):
        return None
    return X[origin_sample_rows(shape[0], shape[1])]


def check_spread(sample: Any, mean: Any, dtype: Any, name: str = "euclidean") -> None:
    """Refuse data whose squared distances would underflow its dtype, judged on rows
    drawn from it (those of :func:`origin_sample_rows`, as :func:`origin_rule`).

    Squared distances of data spread over less than ``sqrt(tiny / eps)`` of its dtype
    (about 3e-16 in float32, 1e-146 in float64) fall below the smallest normal number:
    they lose digits, then round to zero, and distinct rows end in one cluster without an
    error (the opposite of an overflow, which the assignment's checks catch).  The spread
    is the largest ``|x - mean|`` among the drawn rows, in float64 (which neither squares
    nor underflows); data whose drawn rows all equal the mean passes (a constant data set
    has one cluster, and zero is its inertia).

    Parameters
    ----------
    sample : array of shape (m, d)
        The drawn rows (anything ``np.asarray`` reads).
    mean : array of shape (d,)
    dtype : dtype
        The data's dtype (float64 or float32; any other passes).
    name : str
        The distance named in the error.

    Raises
    ------
    SpreadError
        When the spread is positive but under the limit; the message says to rescale.
    """
    problem = spread_problem(sample, mean, dtype)
    if problem is not None:
        raise SpreadError(f"distance strategy {name!r}: {problem}", problem)


class SpreadError(StrategyError):
    """:func:`check_spread`'s refusal: data spread too little for its squared distances
    (``problem``: the reason, without the distance's name; the command line reports it
    as bad data)."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


def spread_problem(rows: Any, mean: Any, dtype: Any) -> str | None:
    """:func:`check_spread`'s test on ``rows`` (drawn, or all of them): the reason,
    without the distance's name, when they spread too little for ``dtype``; else None."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float64, np.float32):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        diff = np.asarray(rows, dtype=np.float64) - np.asarray(mean, dtype=np.float64)
        spread = float(np.abs(diff).max(initial=0.0))
    info = np.finfo(dtype)
    limit = float(np.sqrt(float(info.tiny) / float(info.eps)))
    if not 0.0 < spread < limit:
        return None
    return (
        f"the data spreads only about {spread:.3g} around its mean, so its squared "
        f"distances come too near {dtype}'s smallest normal number "
        f"({float(info.tiny):.3g}) to keep their digits (they round towards zero, and "
        f"distinct rows would end in one cluster): rescale it, e.g. X / X.std(), so that "
        f"it spreads over more than {limit:.3g}"
    )


def origin_rule(sample: Any, mean: Any) -> bool:
    """:func:`centered_already`'s test on rows already drawn (:func:`origin_sample_rows`):
    ``||mean||^2 <= ORIGIN_MAX_OFFSET`` times the median of ``||x - mean||^2``, in
    float64.  The torch backend draws its rows on the device and asks this.

    Parameters
    ----------
    sample : array of shape (m, d)
        The drawn rows (anything ``np.asarray`` reads).
    mean : array of shape (d,)
        The point judged: the training mean, or the point :func:`learned_origin` chose.

    Returns
    -------
    bool
    """
    m = np.asarray(mean, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # values near the float limits
        diff = np.asarray(sample, dtype=np.float64) - m
        spread = float(_middle(np.einsum("ij,ij->i", diff, diff)))
        offset = float(m @ m)
    return bool(np.isfinite(offset) and offset <= ORIGIN_MAX_OFFSET * spread)


def mean_gap_limit(dtype: Any) -> float:
    """How many typical distances from the bulk's median the mean may lie before rows
    of ``dtype`` are compared on that median instead (:data:`ORIGIN_MAX_MEAN_GAP`):
    1024 in float64, 11.3 in float32.

    Parameters
    ----------
    dtype : dtype
        The data's (float64 or float32; another is taken as float64).

    Returns
    -------
    float
    """
    dtype = np.dtype(dtype)
    eps = float(np.finfo(dtype if dtype == np.float32 else np.float64).eps)
    return min(ORIGIN_MAX_MEAN_GAP, float(np.sqrt(ORIGIN_MAX_COMPARE_ERROR / eps)))


def bulk_origin(sample: Any, mean: Any, dtype: Any = np.float64) -> np.ndarray | None:
    """The coordinate-wise median of the drawn rows (float64) when ``mean`` lies more
    than :func:`mean_gap_limit` times their typical distance from it, and the median
    leaves no drawn row much farther away than the mean does; else None.

    A few far rows (outliers) drag the mean away from the bulk of the data; compared on
    it, the bulk's rows lose their digits (the differences that tell them apart are
    below the spacing of numbers that large), and their labels and costs with them.
    The typical distance is the lower median of the drawn rows' nonzero distances to the
    median (so that a bulk of repeated rows still has one); drawn rows all equal to the
    median, or a gap or distances that are not finite, keep the mean.  A far group of
    many rows (45 % of them, say) moves the mean too, but there the median, inside the
    larger group, would put the far group's rows about twice as far from the point they
    are compared on as the mean does, and their comparisons would lose four times the
    digits: the median is taken only while the farthest drawn row lies at most
    :data:`ORIGIN_MAX_FARTHEST` times as far from it as from the mean (a lone outlier
    lies about as far from either; a far group of a tenth of the rows, 1.11 times).

    Parameters
    ----------
    sample : array of shape (m, d)
        The drawn rows (:func:`origin_sample_rows`; anything ``np.asarray`` reads).
    mean : array of shape (d,)
        The training data's mean.
    dtype : dtype, default=float64
        The data's, whose precision sets the limit.

    Returns
    -------
    ndarray of shape (d,), or None
    """
    rows = np.asarray(sample, dtype=np.float64)
    if rows.shape[0] == 0:
        return None
    mean = np.asarray(mean, dtype=np.float64)
    median = _middle(np.ascontiguousarray(rows.T))  # each feature's, in one partition
    with np.errstate(over="ignore", invalid="ignore"):
        diff = rows - median
        distances = np.einsum("ij,ij->i", diff, diff)
        gap = mean - median
        far = float(gap @ gap)
        from_mean = rows - mean
        farthest_from_mean = float(np.einsum("ij,ij->i", from_mean, from_mean).max())
    farthest = float(distances.max())
    distances = distances[distances > 0]
    if distances.size == 0 or not np.isfinite(far) or not np.all(np.isfinite(distances)):
        return None
    limit = mean_gap_limit(dtype)
    # the lower median: of two rows' distances (three drawn rows, one far), the nearer
    typical = float(np.partition(distances, (distances.size - 1) // 2)[(distances.size - 1) // 2])
    if not far > limit**2 * typical:
        return None
    # one far row among m drawn lies m / (m - 1) times as far from the median as from
    # the mean: on a handful of rows that alone passes the guard's limit
    m = rows.shape[0]
    allowed = max(ORIGIN_MAX_FARTHEST, m / (m - 1)) if m > 1 else ORIGIN_MAX_FARTHEST
    return median if farthest <= allowed**2 * farthest_from_mean else None


def _middle(values: np.ndarray) -> Any:
    """The median along the last axis (``np.median``'s value), by one partition: this
    runs once per fit, and ``np.median``'s own overhead was most of a small fit's.
    Values with a NaN, or none, go to ``np.median`` (NaN)."""
    m = values.shape[-1]
    if m == 0:  # np.median's NaN, without its warning (filters are the process's)
        return np.full(values.shape[:-1], np.nan, dtype=np.result_type(values, np.float64))
    if np.isnan(values).any():
        return np.median(values, axis=-1)
    k = m // 2
    if m % 2:
        return np.partition(values, k, axis=-1)[..., k]
    part = np.partition(values, (k - 1, k), axis=-1)
    return (part[..., k - 1] + part[..., k]) * 0.5


def learned_origin(sample: Any, mean: np.ndarray) -> dict[str, Any]:
    """The fitted state's choice of the point rows are compared on, from the drawn rows
    (:func:`origin_sample_rows`) and the training ``mean`` (in the data's dtype): the
    mean, or the bulk's median when the mean lies far from it (:func:`bulk_origin`);
    zeros when that point is near the origin (:func:`origin_rule`); that point rounded
    to whole numbers when the drawn rows hold whole numbers only
    (:func:`whole_numbers`: counts, categories, pixels), so that the rows' differences
    from it stay exact and a row exactly as far from two centroids of whole numbers is
    a tie, which every search breaks by the lowest index (compared on a fractional
    mean, the rounding broke it, each search its own way).  Exact while the squared
    distances, and the products the searches compare, stay whole numbers the dtype
    holds exactly: below 2^24 in float32 (counts up to a few hundred in a few
    features), 2^53 in float64; past that, ties go by rounding as on other data.  The
    torch backend decides by the same rule.

    Parameters
    ----------
    sample : array of shape (m, d)
        The drawn rows.
    mean : ndarray of shape (d,)
        The training mean, in the data's dtype (which sets the precision the rules
        weigh).

    Returns
    -------
    dict of str to object
        ``euclidean.mean``, ``euclidean.at_origin`` and, with the bulk's median or a
        rounded point, ``euclidean.origin`` (in the mean's dtype).
    """
    rows = np.asarray(sample, dtype=np.float64)  # once, for every rule below
    bulk = bulk_origin(rows, mean, mean.dtype)
    point = mean if bulk is None else bulk
    if origin_rule(rows, point):
        return {_MEAN: mean, _AT_ORIGIN: True}
    if whole_numbers(rows):
        # compared on a point of whole numbers, whole-number rows keep exact differences
        # (and products, below 2^24 in float32, 2^53 in float64), so that a row exactly
        # as far from two centroids of whole numbers is a tie broken by the lowest index
        point = np.round(np.asarray(point, dtype=np.float64))
        if not point.any():
            return {_MEAN: mean, _AT_ORIGIN: True}
        return {_MEAN: mean, _AT_ORIGIN: False, _ORIGIN: point.astype(mean.dtype)}
    if bulk is None:
        return {_MEAN: mean, _AT_ORIGIN: False}
    return {_MEAN: mean, _AT_ORIGIN: False, _ORIGIN: bulk.astype(mean.dtype)}


def whole_numbers(sample: Any) -> bool:
    """Whether every drawn row holds whole numbers only (counts, categories, 0/1).

    Parameters
    ----------
    sample : array of shape (m, d)
        The drawn rows (anything ``np.asarray`` reads; finite, as validated data is);
        none: False.

    Returns
    -------
    bool
    """
    rows = np.asarray(sample, dtype=np.float64)
    return bool(rows.size) and bool(np.all(rows == np.trunc(rows)))


def fitted_origin(fitted: Any) -> np.ndarray:
    """The point a fitted state compares rows on: the training mean, zeros when the
    training data was centered already (``euclidean.at_origin``; a state saved without
    that choice keeps the mean), or another point (``euclidean.origin``: the bulk's
    median when the mean lay far from it, a point of whole numbers for data of whole
    numbers; see :func:`learned_origin`).

    Parameters
    ----------
    fitted : mapping
        A fitted state holding ``euclidean.mean``.

    Returns
    -------
    ndarray, shape (d,)
    """
    mean = np.asarray(fitted[_MEAN])
    if fitted.get(_AT_ORIGIN):
        return np.zeros_like(mean)
    origin = fitted.get(_ORIGIN)
    return mean if origin is None else np.asarray(origin, dtype=mean.dtype)


#: A float32 fit's labels are checked on the rows of :func:`origin_sample_rows`: a row
#: counts against them when its label's centroid is farther than its nearest (computed
#: in float64) by more than this fraction of the nearest's squared distance (rounding
#: near a boundary moves a label by far less; the failures this catches, by far more).
PRECISION_MARGIN = 1 / 64
#: ... its product holding BLAS to one thread from this many multiply-adds.
PRECISION_BLAS_HOLD = 1 << 16
#: ``predict`` and each ``partial_fit`` step check every fourth of the drawn rows (at
#: most 64): a model's labels are checked in full after its fit, and a data set whose
#: labels the rounding picks has a good share of them wrong (139 of 256 in the case
#: tested; 64 rows miss a share of 10 % once in a thousand calls).
PRECISION_STEP_EVERY = 4


def precision_problem(
    sample: Any, labels: Any, centroids: Any, fitted: Any, dtype: Any = np.float32
) -> str | None:
    """Whether ``dtype``'s rounding gave drawn rows a centroid farther than their nearest.

    The searches compare ``||c||^2 - 2 x.c`` of rows and centroids centered on the fitted
    origin (:func:`fitted_origin`), whose rounding grows with their squared distance
    from it.  Rows far from that point, in clusters close together (say two groups of
    clusters 1e5 apart, each of clusters a few units wide), are then labelled by the
    rounding: in float32 most of them, silently (scikit-learn's float32 fits fare the
    same).  This recomputes the drawn rows' nearest centroids in float64 and counts the
    labels whose centroid is farther than the nearest by more than
    :data:`PRECISION_MARGIN` of its squared distance, and by no more than the dtype's
    rounding of the terms compared could explain (a label farther than that did not
    come from the rounding: an approximate assignment's, say).

    Parameters
    ----------
    sample : array of shape (m, d)
        The drawn rows (:func:`origin_sample_rows`).
    labels : array of shape (m,)
        Their labels, as the fit or ``predict`` found them.
    centroids : array of shape (k, d)
    fitted : mapping
        The fitted state (``euclidean.mean`` and the origin's keys).
    dtype : dtype, default=float32
        The data's: its precision bounds what a label may owe to the rounding, and it
        is named in the message.

    Returns
    -------
    str or None
        What went wrong, with the remedy; None when every checked label stands.
    """
    rows = np.asarray(sample, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.intp)
    if rows.shape[0] == 0:
        return None
    # finite float32 values: their float64 squares and products neither overflow nor NaN
    origin = np.asarray(fitted_origin(fitted), dtype=np.float64)
    xc = rows - origin
    cc = np.asarray(centroids, dtype=np.float64) - origin
    c_sq = np.einsum("ij,ij->i", cc, cc)
    # (k, m): squared distances less each row's own square; the minimum over the
    # centroids then runs down whole rows (a reduction over short rows was 5x slower);
    # BLAS on one thread where it would start its own (its idle threads spun against
    # numba's: 19 ms, not 0.3), not for a few rows (a hold costs 10 us)
    if cc.size * xc.shape[0] >= PRECISION_BLAS_HOLD:
        with single_threaded_blas():
            products = cc @ xc.T
    else:
        products = cc @ xc.T
    scores = c_sq[:, None] - 2.0 * products
    at = np.arange(labels.shape[0])
    nearest = scores.argmin(axis=0)
    best, found = scores[nearest, at], scores[labels, at]
    x_sq = np.einsum("ij,ij->i", xc, xc)
    gap = found - best
    # float64's own rounding of the same sums: at most (d + 4) float64 eps of the terms
    # compared (not more: rows 7e4 from the origin in clusters 0.5 apart have gaps of
    # 0.002-0.005, which a slack of 2^-40 of the terms, 0.009 there, once hid) ...
    terms = 2.0 * x_sq + c_sq[labels] + c_sq[nearest]
    own = (rows.shape[1] + 4) * float(np.finfo(np.float64).eps) * terms
    slack = PRECISION_MARGIN * np.maximum(x_sq + best, 0.0) + own
    # ... and what the dtype's rounding can explain, at most (d + 4) eps of the terms
    # compared: a label farther still came from elsewhere (an approximate assignment
    # plugin, half-precision products the user chose), not from the data's reach
    eps = float(np.finfo(dtype).eps)
    rounding = (rows.shape[1] + 4) * eps * terms
    wrong = int(np.count_nonzero((gap > slack) & (gap <= rounding)))
    if not wrong:
        return None
    reach = float(np.sqrt(x_sq.max()))
    return (
        f"{np.dtype(dtype)} rounding gave {wrong} of the {labels.shape[0]} rows checked a "
        f"centroid farther than their nearest: rows lie up to {reach:.3g} from the point "
        f"the fit compares them on, where {np.dtype(dtype)} squared distances are rounded "
        f"by about {reach**2 * eps:.3g}, too coarse for clusters this close; labels, "
        f"predictions and the inertia may be wrong for many rows: fit the data as "
        f"float64 (X.astype(np.float64))"
    )


def rounding_can_mislabel(centroids: Any, fitted: Any, dtype: Any = np.float32) -> bool:
    """Whether ``dtype``'s rounding could give any row, wherever it lies, a label that
    :func:`precision_problem` counts, with these centroids.

    Such a label is farther than the row's nearest centroid by more than
    :data:`PRECISION_MARGIN` of the nearest's squared distance and by at most the
    rounding of the terms compared, ``(d + 4) eps (2 |x|^2 + |a|^2 + |b|^2)`` (norms
    from the fitted origin).  For rows within 4 times the largest centroid norm ``R``
    that rounding is at most ``34 (d + 4) eps R^2``, and the gap of a label ``b`` over
    the nearest ``a`` is at least ``PRECISION_MARGIN |a - b|^2 / 16`` (near the
    bisector the nearest is that far; nearer ``a`` the gap is larger still); rows
    farther out than ``4 R`` have their nearest at least ``(3/4)^2 |x|^2`` away, beyond
    what the rounding can bridge (below 34,000 features in float32; the limit scales
    with ``1 / eps``).  Equal centroids are left out (a label's gap between them is 0).
    So when the bound stays under
    the closest pair's ``PRECISION_MARGIN |a - b|^2 / 16``, no row can be mislabelled
    by the rounding, and ``predict`` skips its check (standard normal data, k=8: the
    bound is about 1e-4 of the pair's; two groups of clusters 1e5 apart: 1e6 times it).

    Parameters
    ----------
    centroids : array of shape (k, d)
    fitted : mapping
        The fitted state (the origin's keys).
    dtype : dtype, default=float32
        The precision the rows are compared in (float32; another's eps scales the
        bound).

    Returns
    -------
    bool
    """
    origin = np.asarray(fitted_origin(fitted), dtype=np.float64)
    # equal centroids never count against a label (their gap is 0): distinct ones only
    cc = np.unique(np.asarray(centroids, dtype=np.float64), axis=0) - origin
    k, d = cc.shape
    if k < 2:
        return False
    eps = float(np.finfo(dtype).eps)
    if 2.125 * (d + 4) * eps >= 0.5625 * PRECISION_MARGIN:  # the far rows' argument
        return True
    c_sq = np.einsum("ij,ij->i", cc, cc)
    with single_threaded_blas():
        pairs = c_sq[:, None] + c_sq[None, :] - 2.0 * (cc @ cc.T)
    np.fill_diagonal(pairs, np.inf)
    closest = max(float(pairs.min()), 0.0)
    bound = 34.0 * (d + 4) * eps * float(c_sq.max())
    return bool(bound >= PRECISION_MARGIN * closest / 16.0)


#: :func:`model_can_mislabel`'s answers, by model (weakly: they go with it), with the
#: centroids each was computed for; kept outside the model, whose ``predict`` must leave
#: its attributes as they are (scikit-learn's ``check_dict_unchanged``).
_JUDGED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_can_mislabel(model: Any) -> bool:
    """:func:`rounding_can_mislabel` of a fitted model's ``cluster_centers_`` and
    ``fitted_state_`` (False without the Euclidean distances' state), kept with the
    centroids it was computed for, so that ``predict`` pays it once per fit."""
    fitted = getattr(model, "fitted_state_", None)
    if fitted is None or fitted.get(_MEAN) is None:
        return False
    centroids = model.cluster_centers_
    try:
        kept = _JUDGED.get(model)
    except TypeError:  # an unhashable model (a subclass defining __eq__): no table
        return rounding_can_mislabel(centroids, fitted)
    # the values, not the array: centroids changed in place are judged again
    if kept is None or not np.array_equal(kept[0], centroids):
        kept = (np.array(centroids), rounding_can_mislabel(centroids, fitted))
        _JUDGED[model] = kept
    return bool(kept[1])


def warn_if_predictions_imprecise(model: Any, X: Any, labels: Any, centroids: Any) -> None:
    """``predict``'s float32 check of a fitted ``model`` (``KMeans``, ``MiniBatchKMeans``,
    ``KMedoids``): every :data:`PRECISION_STEP_EVERY`-th drawn row of float32 ``X``,
    for centroids the rounding can mislabel rows by at all (:func:`model_can_mislabel`,
    judged once per fit); see :func:`warn_if_imprecise`."""
    if np.dtype(getattr(X, "dtype", None)) == np.float32 and model_can_mislabel(model):
        warn_if_imprecise(X, labels, centroids, model.fitted_state_, PRECISION_STEP_EVERY, True)


def warn_if_imprecise(
    X: Any,
    labels: Any,
    centroids: Any,
    fitted: Any,
    every: int = 1,
    judged: bool = False,
) -> None:
    """Warn (:class:`~kmeansfw.core.errors.PrecisionWarning`) when float32 ``X`` (dense,
    or sparse: its drawn rows are made dense) compared by the Euclidean distances
    (``fitted`` holds ``euclidean.mean``) has labels that :func:`precision_problem`
    finds wrong on the drawn rows; else nothing.

    Parameters
    ----------
    X : array of shape (n, d)
        The rows ``labels`` belong to (an ndarray or a file map; ``X[rows]`` is read).
    labels : array of shape (n,)
    centroids : array of shape (k, d)
    fitted : mapping
        The fitted state.
    every : int
        Check every ``every``-th drawn row (:data:`PRECISION_STEP_EVERY` for a
        ``predict`` or a ``partial_fit`` step).
    judged : bool
        Whether the caller found already that the centroids can be mislabelled by
        (:func:`model_can_mislabel`); else, no more centroids than rows to check (where
        it costs less than the check) are judged first (:func:`rounding_can_mislabel`),
        and centroids no rounding can mislabel by are not checked.
    """
    if labels is None or fitted.get(_MEAN) is None:
        return
    if len(labels) != X.shape[0]:  # a mini-batch fit that computed no labels
        return
    if np.dtype(getattr(X, "dtype", None)) != np.float32 or len(X.shape) != 2:
        return
    rows = origin_sample_rows(X.shape[0], X.shape[1])[::every]
    # judged first where that costs less than the check (k^2 d against rows x k x d)
    if not judged and len(centroids) <= len(rows):
        if not rounding_can_mislabel(centroids, fitted):
            return
    sample = X[rows]
    if is_sparse(sample):
        sample = sample.toarray()
    problem = precision_problem(sample, np.asarray(labels)[rows], centroids, fitted)
    if problem is not None:
        warn(problem, PrecisionWarning)  # located in the user's program


def row_sq_norms(X) -> np.ndarray:
    """Squared L2 norm of each row of a dense array or CSR matrix."""
    if sp.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1)).ravel().astype(X.dtype)
    return np.einsum("ij,ij->i", X, X)


def centered_sq_norms(data: FitData, rows: slice) -> np.ndarray:
    """``||x - mean||^2`` of the rows ``rows`` of a prepared data set, computed on the
    first request for that block and kept in the data's cache.

    Only cost blocks need them (the nearest-centroid search and the paired costs do
    not), so a data set that never asks for one (``predict`` on dense data, mini-batches,
    a Lloyd run from given centroids) skips the pass over its rows.  Blocks are disjoint
    within one map over the data and maps run one after the other, so two threads never
    fill the same rows at once; a block of another plan overlapping filled rows fills them
    again with the same values (a row's norm does not depend on its block).

    Parameters
    ----------
    data : FitData
        A data set prepared by :class:`Euclidean` (its origin in ``data.cache``: the
        point :func:`fitted_origin` gives, zero for a sparse fit; sparse rows of a model
        fitted on dense data are centered on that point too).
    rows : slice
        Consecutive rows (step 1).

    Returns
    -------
    ndarray of shape (rows,)
        In the data's dtype; a view of the cached norms, not to be written.
    """
    n = data.n_samples
    start, stop, step = rows.indices(n)
    if step != 1:
        raise ValueError(f"centered_sq_norms takes consecutive rows, got the slice {rows}")
    cache = data.cache
    norms = cache.get(_NORMS)
    if norms is None:  # setdefault: one array even if two blocks race to make it
        norms = cache.setdefault(_NORMS, np.empty(n, dtype=data.dtype))
    done = cache.get(_NORMS_DONE)
    if done is None:
        done = cache.setdefault(_NORMS_DONE, set())
    if (start, stop) not in done:
        block, mean = data.X[start:stop], cache[_MEAN]
        if sp.issparse(block):
            norms[start:stop] = _sparse_centered_norms(block, mean)
        else:
            norms[start:stop] = kernels.centered_row_norms(block, mean)
        done.add((start, stop))
    return norms[start:stop]


def _sparse_costs(X: Any, centered_c: np.ndarray, mean: np.ndarray, dtype: Any) -> np.ndarray:
    """The (b, k) squared distances of sparse rows to the centroids ``centered_c + mean``
    of a model fitted on dense data (``mean`` its training mean, not zero), without
    densifying the rows: ``||x||^2 - 2 x.c + ||c||^2`` in float64, whose terms cancel
    when the mean is far from the origin (in float32 a mean of 1000 lost every digit of
    some costs), rounded to ``dtype``."""
    X = X.astype(np.float64)
    centroids = centered_c.astype(np.float64) + mean
    out = np.asarray(X @ (centroids.T * -2.0))
    out += np.einsum("ij,ij->i", centroids, centroids)
    out += row_sq_norms(X)[:, None]
    return np.maximum(out, 0, out=out).astype(dtype)


def _sparse_centered_norms(X: Any, mean: np.ndarray) -> np.ndarray:
    """``||x - mean||^2`` of sparse rows without densifying them (``||x||^2`` when the
    mean is zero, as for a sparse fit)."""
    if not mean.any():
        return row_sq_norms(X)
    mean = mean.astype(np.float64)
    out = row_sq_norms(X).astype(np.float64) - 2 * np.asarray(X @ mean).ravel() + mean @ mean
    return np.maximum(out, 0).astype(X.dtype)


@attrs.frozen
class Euclidean(Distance):
    """Euclidean distance; the objective is the sum of squared distances (inertia).

    Natural update: ``mean``.  A true metric.  Learns the training data's mean and the
    point rows are compared on (its fitted state, ``euclidean.mean``,
    ``euclidean.at_origin`` and, for some data, ``euclidean.origin``; see
    :func:`learned_origin`): every data set, at fit and at predict, is compared centered
    on that point (the mean; the rest's median where far rows drag the mean; a point of
    whole numbers for data of whole numbers), or as it is when the data was centered
    already (its products then need no centered copy of each block).
    """

    name = "euclidean"
    objective = "sum of squared Euclidean distances"
    natural_update = "mean"
    is_metric = True
    accepts_sparse = True
    squared = True
    splits_work = True  # the search and cost blocks split rows between numba's threads
    #: Answers the engine's one-call Lloyd iteration (kmeansfw.engine.lloyd_step).
    _lloyd_step = True

    @hookimpl
    def kmeansfw_learn(self, data: FitData) -> dict:
        if data.sparse:  # centering would densify: sparse rows are used as they are
            return {_MEAN: np.zeros(data.n_features, dtype=data.dtype), _AT_ORIGIN: True}
        # X.mean(axis=0) exactly, block by block for data mapped from a large file
        mean = column_means(data.X)
        sample = _origin_sample(data.X)
        if sample is None:
            return {_MEAN: mean, _AT_ORIGIN: False}
        check_spread(sample, mean, data.X.dtype, self.name)
        return learned_origin(sample, mean)

    @hookimpl
    def kmeansfw_prepare(self, data: FitData) -> None:
        fitted = data.fitted
        if fitted.get(_MEAN) is None:  # a data set outside a fit: its own mean
            fitted = self.kmeansfw_learn(data=data)
        # the origin rows are compared on (the cache keeps the mean's key)
        data.cache[_MEAN] = np.asarray(fitted_origin(fitted), dtype=data.dtype)
        # the rows' norms: block by block when a cost block first needs them (prepared
        # again, e.g. with another mean: none of the old ones kept)
        data.cache.pop(_NORMS, None)
        data.cache.pop(_NORMS_DONE, None)

    def origin(self, data: FitData) -> np.ndarray:
        """The origin rows and centroids of prepared ``data`` are compared on (the point
        :func:`fitted_origin` gives: the mean, zeros or ``euclidean.origin``; see
        ``kmeansfw_prepare``), in the data's dtype.

        Parameters
        ----------
        data : FitData
            Data this distance prepared.

        Returns
        -------
        ndarray, shape (d,)
        """
        return data.cache[_MEAN]

    @hookimpl
    def kmeansfw_prepare_centroids(self, centroids: np.ndarray, data: FitData, cache: dict) -> None:
        centered, minus_2c, norms, shift = kernels.prepare_euclidean_centroids(
            centroids, data.cache[_MEAN], data.dtype
        )
        cache[_CENTERED_C], cache[_MINUS_2C], cache[_C_NORMS] = centered, minus_2c, norms
        # -2 (x - m).c' = -2 x.c' + 2 m.c': the cost needs no centered copy of X
        cache[_COST_SHIFT] = shift

    @hookimpl
    def kmeansfw_cost(
        self, X: np.ndarray, rows: slice | None, data: FitData, cache: dict
    ) -> np.ndarray:
        if not is_sparse(X):  # centered on the fly: accurate far from the origin
            mean = data.cache[_MEAN]
            if rows is not None and isinstance(X, np.ndarray) and X.flags.c_contiguous:
                norms = centered_sq_norms(data, rows)
            else:
                X = np.ascontiguousarray(X, dtype=data.dtype)
                norms = kernels.centered_row_norms(X, mean)
            return kernels.sq_euclidean_costs(
                X, mean, cache[_MINUS_2C], cache[_C_NORMS], norms, n_threads=kernel_threads(data)
            )
        mean = data.cache[_MEAN]
        if mean.any():  # sparse rows for a model fitted on dense data: see _sparse_costs
            return _sparse_costs(X, cache[_CENTERED_C], mean, data.dtype)
        # sparse rows of a sparse fit (mean zero), uncentered: ||x||^2 - 2 x.c + ||c||^2
        out = np.asarray(X @ cache[_MINUS_2C].T)
        out += cache[_COST_SHIFT]
        norms = centered_sq_norms(data, rows) if rows is not None else row_sq_norms(X)
        out += norms[:, None]
        return np.maximum(out, 0, out=out)

    #: The hooks whose arithmetic :meth:`plusplus_steps` repeats: it stands for them only
    #: in a class that defines it with them (or below them), see
    #: :meth:`kmeansfw.engine.plugins.Hooks.distance_fast_path`.
    plusplus_steps_replaces = ("kmeansfw_prepare_centroids", "kmeansfw_cost")

    def plusplus_steps(
        self,
        data: FitData,
        sample_weight: np.ndarray,
        closest: np.ndarray,
        first: int,
        potential: float,
        draws: np.ndarray,
    ) -> np.ndarray | None:
        """Greedy k-means++'s steps in one compiled call, or None where that does not pay.

        Called by ``k-means++`` on dense data that is one block, after its first step
        (:func:`kmeansfw.kernels.plusplus_sq_euclidean`: the same samples as asking
        ``kmeansfw_prepare_centroids`` and ``kmeansfw_cost`` step by step, without the
        calls between the steps).

        Parameters
        ----------
        data : FitData
            The data, prepared (its mean cached; its rows' centered norms are filled
            here if no cost block asked for them yet).
        sample_weight : ndarray, shape (n,)
        closest : ndarray, shape (n,)
            Every sample's cost to the first centroid.
        first : int
            The first centroid's sample.
        potential : float
            The weighted sum of ``closest``.
        draws : ndarray, shape (k - 1, trials)
            One row of uniforms per step.

        Returns
        -------
        ndarray of intp, shape (k,), or None
            The chosen samples, ``first`` first; None (the strategy then goes on step by
            step) for sparse data, data of more than one block, a block not C-contiguous,
            without numba, above the work where the one call gains
            (:func:`kmeansfw.kernels.fused_plusplus_pays`), and when a step's costs hold
            NaN or infinity (the steps then raise, naming the distance).
        """
        X, block = data.X, data.single_block
        n, d = X.shape
        dense = isinstance(X, np.ndarray) and not data.sparse and X.flags.c_contiguous
        if not dense or block is None or (block.start or 0, block.stop) != (0, n):
            return None
        if not kernels.fused_plusplus_pays(n, d, draws.shape[1]):
            return None
        mean, norms = data.cache[_MEAN], centered_sq_norms(data, block)
        return kernels.plusplus_sq_euclidean(
            X, mean, norms, sample_weight, closest, first, potential, draws,
            n_threads=kernel_threads(data),
        )

    @hookimpl
    def kmeansfw_distance(
        self, X: np.ndarray, rows: slice | None, data: FitData, cache: dict
    ) -> np.ndarray:
        return np.sqrt(self.kmeansfw_cost(X=X, rows=rows, data=data, cache=cache))

    @hookimpl
    def kmeansfw_paired_cost(
        self, X: np.ndarray, labels: np.ndarray, data: FitData, cache: dict
    ) -> np.ndarray:
        if is_sparse(X):  # uncentered rows: against the centroids themselves
            mean = data.cache[_MEAN]
            chosen = cache[_CENTERED_C][labels]
            if mean.any():  # a model fitted on dense data: in float64, see _sparse_costs
                chosen = chosen.astype(np.float64) + mean
                X = X.astype(np.float64)
            cross = np.asarray(X.multiply(chosen).sum(axis=1)).ravel()
            out = row_sq_norms(X) - 2 * cross + np.einsum("ij,ij->i", chosen, chosen)
            return np.maximum(out, 0).astype(data.dtype)
        return kernels.paired_sq_euclidean(X, data.cache[_MEAN], cache[_CENTERED_C], labels)

    @hookimpl
    def kmeansfw_nearest(
        self,
        X: np.ndarray,
        centroids: np.ndarray,
        groups: np.ndarray | None,
        n_groups: int,
        rows: slice | None,
        data: FitData,
        cache: dict,
        hook,
        with_costs: bool,
        sums: SumsRequest | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        if is_sparse(X):  # the argmin of cost blocks (the mean's sums left to its map)
            return nearest_by_blocks(hook, X, centroids, groups, n_groups, rows, data, cache)
        args = (X, data.cache[_MEAN], cache[_MINUS_2C], cache[_C_NORMS], cache[_CENTERED_C])
        threads = kernel_threads(data)
        if n_groups <= 1:  # the mean's sums, if offered, added in the same pass
            found = kernels.nearest_sq_euclidean(
                *args,
                with_second=n_groups == 1,  # the runner-up: the two-nearest kernel
                n_threads=threads,
                with_costs=with_costs or n_groups == 1,  # without: the labels only
                sums=None if sums is None else sums.arrays(),
                prefetch=kernels.prefetch_data(getattr(data.X, "nbytes", 0)),
            )
            if sums is not None:
                sums.mark_added()
            if n_groups == 0:
                labels, costs = found
                return labels, costs, None, None
            labels, costs, second = found
            return labels, costs, np.sqrt(costs), np.sqrt(second)[:, None]
        labels, costs, lows = kernels.nearest_groups_sq_euclidean(*args, groups, n_groups)
        return labels, costs, np.sqrt(costs), np.sqrt(lows)
