"""The kmeansfw extension contract: every hook a strategy or observer may implement.

A fit holds exactly the strategies its configuration names (one per slot; each slot owns
its answering hooks, see :mod:`kmeansfw.core.slots`) and its observers, resolved once per
fit by :mod:`kmeansfw.engine.plugins`.  The engine
(:mod:`kmeansfw.engine.loop`) only sequences the calls below; every computation on the data
lives in an implementation.

Conventions shared by every hook
--------------------------------
* Arguments are keyword-only and an implementation declares only those it uses.
  pluggy never passes default-valued arguments, so a strategy's parameters live on the
  strategy object (an attrs class), never as hook keyword defaults.
* ``X`` is a C-contiguous float32 or float64 array and every floating array a hook
  returns has ``X.dtype``.  ``n`` is the number of samples, ``d`` of features, ``k`` of
  clusters; per-block hooks see ``b`` rows, ``X = data.X[rows]``.
* Nobody writes into ``X``, ``sample_weight`` or ``centroids``: they may be the user's
  arrays.  Nor into ``labels``: the next iteration's map compares them with the new ones.
  Return new arrays.
* ``data`` is the :class:`kmeansfw.core.data.FitData` of the call: its ``cache`` dict holds
  what :func:`kmeansfw_prepare` computed once; ``rows`` is the slice of ``data.X`` a
  block comes from (None when a strategy passes other rows, e.g. a cluster's members);
  ``cache`` arguments hold what
  :func:`kmeansfw_prepare_centroids` computed for the current centroids.  Store under
  keys prefixed with your strategy's name.
* ``firstresult`` hooks ("one strategy per slot answers") stop at the first non-None
  answer; the engine checks that answer's shape, dtype and finiteness and names the
  strategy when it is wrong.  Implementations run last-registered-first, so an observer
  or a ``@hookimpl(wrapper=True)`` registered after the strategies can wrap them.
* Per-block hooks run concurrently in worker threads: they must not mutate shared state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kmeansfw.core.markers import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import pluggy

    from kmeansfw.core.catalog import Register
    from kmeansfw.core.data import FitData
    from kmeansfw.core.sums import SumsRequest
    from kmeansfw.engine.loop import FitResult, FitState, OnlineState
    from kmeansfw.engine.steps import Assignment

# --------------------------------------------------------------------------- discovery


@hookspec
def kmeansfw_register_strategies(register: Register) -> None:
    """Add strategies to the catalog.

    Called once per installed plugin distribution (entry-point group ``kmeansfw``) and
    for the built-ins.  Call ``register(slot, name, factory)`` for each strategy, where
    ``slot`` is one of ``init``, ``distance``, ``assignment``, ``update``, ``empty``,
    ``convergence`` or ``observer`` and ``factory(**params)`` builds the strategy
    object (usually its attrs class).
    """


# --------------------------------------------------------------------------- set-up


@hookspec
def kmeansfw_learn(data: FitData) -> dict | None:
    """Learn what the strategy keeps from the training data; return it, or None.

    Called once per fit, on every strategy, with the training data.  Return a dict of
    plain values (arrays, numbers) under keys prefixed with your strategy's name (e.g.
    ``{"mahalanobis.cholesky": L}``).  The fitted model keeps the union of the answers
    (``KMeans.fitted_state_``), checkpoints and pickles save it, and every later data set
    (``predict``, ``transform``, ``score``, ``partial_fit``, each mini-batch) sees it,
    unchanged, as the read-only mapping ``data.fitted``.  Numeric caches of one data set
    (row norms) belong in :func:`kmeansfw_prepare` instead.
    """


@hookspec
def kmeansfw_prepare(data: FitData) -> None:
    """Precompute what stays fixed for a data set (row norms, feature variance).

    Called once per :class:`~kmeansfw.core.data.FitData` (a fit, a ``predict`` call) on every
    strategy; store results in ``data.cache``.  Return value ignored.
    """


@hookspec
def kmeansfw_prepare_centroids(centroids: np.ndarray, data: FitData, cache: dict) -> None:
    """Precompute what stays fixed for one set of centroids (norms, a transposed copy).

    Called on every strategy each time the per-block hooks are about to run against new
    ``centroids`` (k, d); store results in ``cache``, which the per-block hooks receive.
    """


# --------------------------------------------------------------------------- initialization


@hookspec(firstresult=True)
def kmeansfw_init_centroids(
    X: np.ndarray,
    sample_weight: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    data: FitData,
    hook: pluggy.HookRelay,
) -> np.ndarray:
    """Return the initial centroids, shape (k, d), dtype of X, finite.

    ``rng`` is the fit's only source of randomness.  ``hook`` lets a seeding rule ask the
    distance strategy for costs (``hook.kmeansfw_cost``) block by block.
    """


# --------------------------------------------------------------------------- geometry


@hookspec(firstresult=True)
def kmeansfw_distance(
    X: np.ndarray, centroids: np.ndarray, rows: slice, data: FitData, cache: dict
) -> np.ndarray:
    """Return the (b, k) distances between the rows of the block ``X`` and ``centroids``.

    Non-negative, dtype of X.  This is what ``KMeans.transform`` returns.
    """


@hookspec(firstresult=True)
def kmeansfw_cost(
    X: np.ndarray, centroids: np.ndarray, rows: slice, data: FitData, cache: dict
) -> np.ndarray:
    """Return the (b, k) objective contributions of assigning each row to each centroid.

    The fit minimizes the weighted sum, over samples, of the cost to their centroid
    (Euclidean: the squared distance, so the objective is scikit-learn's inertia).
    Non-negative, dtype of X, ordered like :func:`kmeansfw_distance`.
    """


@hookspec(firstresult=True)
def kmeansfw_paired_cost(
    X: np.ndarray,
    centroids: np.ndarray,
    labels: np.ndarray,
    rows: slice | None,
    data: FitData,
    cache: dict,
    hook: pluggy.HookRelay,
) -> np.ndarray:
    """Optional: the (b,) cost of each row of the block to the centroid its label names.

    Equal to ``kmeansfw_cost(...)[arange(b), labels]`` in O(b d) instead of O(b k d);
    bound-based assignments (``hamerly``, ``yinyang``) use it for the rows they do not
    recompute.  Optional: the default of :class:`kmeansfw.Distance` asks
    ``kmeansfw_cost`` one centroid (present in the block) at a time.
    """


@hookspec(firstresult=True)
def kmeansfw_nearest(
    X: np.ndarray,
    centroids: np.ndarray,
    groups: np.ndarray | None,
    n_groups: int,
    rows: slice | None,
    data: FitData,
    cache: dict,
    hook: pluggy.HookRelay,
    with_costs: bool,
    sums: SumsRequest | None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The exact nearest centroid of each row, optionally with per-group rivals.

    Return ``(labels, costs, distances, rivals)``: (b,) the argmin of
    :func:`kmeansfw_cost` (ties: the lowest index) and its minimum; with ``n_groups`` >
    0 also (b,) the *distance* to the chosen centroid and (b, n_groups) the distance to
    the nearest centroid of each group (``groups``, (k,) intp in ``[0, n_groups)``)
    other than the chosen one (``inf`` for a group without another centroid).  With
    ``n_groups == 0`` (plain assignment, ``groups`` None) ``distances`` and ``rivals``
    may be None.  ``hamerly`` asks for one group (the runner-up), ``yinyang`` for
    several.  ``with_costs`` False (only with ``n_groups == 0``: the ``nearest``
    assignment, when its caller reads no costs) lets the search answer None for
    ``costs``, skipping the pass over the block that computes them; a distance may
    ignore it and answer the costs anyway.  A call through the fit's hooks that leaves
    it out gets True.

    ``sums`` (None in a call that leaves it out, and for a search over part of a block):
    the update's map offered to a search over a whole block
    (:class:`kmeansfw.core.sums.SumsRequest`);
    a search that adds every row's weight times its values to ``sums.sums[label]`` and its
    weight to ``sums.weights[label]`` in its own pass calls ``sums.mark_added()``; one that
    does not leaves it, and the engine sums the block with the update's map.  Euclidean
    adds them on dense rows with no group or one (the plain search, ``hamerly``'s).

    Optional: a distance that does not implement it gets the default of
    :class:`kmeansfw.Distance` (the argmin of ``kmeansfw_cost`` and of
    ``kmeansfw_distance`` blocks); Euclidean answers from one fused matrix-product pass.
    """


# --------------------------------------------------------------------------- assignment


@hookspec(firstresult=True)
def kmeansfw_assign(
    X: np.ndarray,
    centroids: np.ndarray,
    rows: slice,
    data: FitData,
    cache: dict,
    hook: pluggy.HookRelay,
    with_costs: bool,
    sums: SumsRequest | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Assign the rows of one block: return ``(labels, costs)``, both shape (b,).

    ``labels`` are intp in [0, k); ``costs`` the (finite, non-negative) cost of each row
    to its assigned centroid, dtype of X, or None to leave them to the engine: they are
    then the distance's :func:`kmeansfw_paired_cost` of the labels, computed only if
    something reads them (:class:`~kmeansfw.engine.steps.Assignment`).  A strategy that
    has the costs for free (e.g. from its search) returns them; one that would need a
    second pass over the rows for them (e.g. ``hamerly`` for rows its bounds settle)
    returns None, so an iteration whose costs nobody reads skips that pass.
    ``with_costs`` False says the engine does not expect to read them (the iterations of
    a Lloyd run, ``predict``): a strategy whose costs take their own pass even in its
    search (``nearest``: the exact distance to the chosen centroid) may then leave them
    too.  Costs a strategy leaves are still computed when read, whatever ``with_costs``
    said.  A Lloyd run asks for them (True) when a strategy of the fit declares
    ``reads_costs``; a call through the fit's hooks that leaves it out gets True.

    ``sums``: None, or the update's map for this block, offered when the fit's update
    declares ``sums_map`` and the assignment declares this argument
    (:class:`kmeansfw.core.sums.SumsRequest`): an assignment whose search adds every row
    to its cluster's totals in its own pass (``nearest`` passes it to the distance's
    :func:`kmeansfw_nearest`; ``hamerly`` and ``yinyang`` do on a block they search
    whole; ``auto`` through them) lets the engine skip the update's
    :func:`kmeansfw_accumulate` for the block; one that leaves it unmarked gets the map
    called as usual.  A call through the fit's hooks that leaves it out gets None.
    """


# --------------------------------------------------------------------------- update


@hookspec(firstresult=True)
def kmeansfw_accumulate(
    X: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray,
    n_clusters: int,
    partial: Any,
    data: FitData,
    rows: slice | None,
    previous_labels: np.ndarray | None,
    previous_partial: Any,
) -> Any:
    """Map step of the update: fold one assigned block into its task's running summary.

    Called right after each block is assigned, while its rows are hot in cache.
    ``partial`` is None on a task's first block and the previous answer after that
    (update it in place or return a new one).  The tasks' final answers, in row order,
    reach :func:`kmeansfw_update` as ``partials``.  An update that needs no map step
    does not implement this hook and receives ``None``.  ``data`` is the data set the
    block belongs to (its ``fitted`` state, and
    :func:`kmeansfw.engine.executors.kernel_threads` for a kernel's own threads);
    ``rows`` the block's slice of ``data.X`` in the assignment's map (None when an update
    sums rows outside it).

    In the iterations of a Lloyd run after the first, ``previous_labels`` may be the
    block's labels in the previous iteration and ``previous_partial`` a read-only copy of
    this task's answer then, as a plain tuple of arrays (given together on every block of
    the task).  Both are None whenever the engine kept no partial for the task: a run's
    first iteration or the first after a resume, mini-batch steps and ``partial_fit``,
    sparse data, the Dask and torch backends, and partials that are not tuples of arrays
    or take more than a quarter of the data's size.  A map may start from it and revisit
    only what the changed labels touch (``mean`` does, with the same result bit for bit).
    """


@hookspec(firstresult=True)
def kmeansfw_update(
    data: FitData,
    labels: np.ndarray,
    costs: np.ndarray | None,
    assignment: Assignment,
    partials: list | None,
    centroids: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    hook: pluggy.HookRelay,
    online: OnlineState | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce step: return ``(new_centroids, cluster_weights)``, shapes (k, d) and (k,).

    ``cluster_weights[j]`` (float64) is the total sample weight assigned to cluster j; a
    cluster with weight 0 is empty and its row of ``new_centroids`` is left to
    :func:`kmeansfw_empty_clusters` (it may hold anything finite).  Reduce ``partials``
    in the given order so the result does not depend on the number of threads; when
    ``partials`` is None (the update is asked outside the iteration, e.g. to seed from a
    partition), compute from ``labels`` alone.  ``hook`` reaches the distance
    (``kmeansfw_cost``), e.g. for medoids; ``rng`` is the fit's generator.

    ``costs`` (each sample's cost to its centroid) is computed for a strategy that
    declares it; an update that needs the costs only sometimes declares
    ``assignment`` (labels, partials and costs read on demand) instead, so the
    iterations that do not need them skip computing them.

    ``online`` is None in a batch update.  In mini-batch mode it is the run's
    :class:`~kmeansfw.engine.loop.OnlineState`: move the centroids by an online rule
    from this batch's ``partials`` and update ``online.seen``.  Only an update that
    declares the ``online`` argument runs mini-batch; others are refused by name.
    """


@hookspec(firstresult=True)
def kmeansfw_empty_clusters(
    data: FitData,
    labels: np.ndarray,
    costs: np.ndarray | None,
    assignment: Assignment,
    old_centroids: np.ndarray,
    new_centroids: np.ndarray,
    cluster_weights: np.ndarray,
    rng: np.random.Generator,
    hook: pluggy.HookRelay,
) -> np.ndarray:
    """Return the centroids with every empty cluster (weight 0) dealt with, shape (k, d).

    Called every iteration (cheap when no cluster is empty; the engine's one-call
    iteration on small data, :mod:`kmeansfw.engine.lloyd_step`, calls the built-in
    ``relocate-farthest`` only when a cluster is empty, the only time it changes
    anything).  May return
    ``new_centroids`` itself when it has nothing to change; it is read-only (the update's
    checked answer): change a copy.  ``hook`` lets a strategy ask
    the update again (``hook.kmeansfw_update``) for a changed partition.  ``costs`` is
    computed for a strategy that declares it; one that needs the costs only when a
    cluster is empty (the built-in ones) reads ``assignment.costs`` then instead.
    """


# --------------------------------------------------------------------------- convergence


@hookspec
def kmeansfw_converged(state: FitState) -> bool | None:
    """Say whether the fit should stop after this iteration.

    Every convergence strategy is called; the fit stops when any returns True (and, in
    any case, after ``max_iter`` iterations).  Answer True, False (NumPy's bools too) or
    None; anything else raises a StrategyError naming the criterion.  Set
    ``state.strict = True`` when the labels are known to match the new centroids, which
    spares the final assignment (cleared by the engine when the empty-cluster strategy
    moved a centroid in the iteration).
    """


# --------------------------------------------------------------------------- observers


@hookspec
def kmeansfw_fit_start(state: FitState) -> None:
    """Observe the start of one run (after initialization, before the first iteration)."""


@hookspec
def kmeansfw_iteration_end(state: FitState) -> None:
    """Observe the end of an iteration: ``state`` holds labels, costs, old and new centroids."""


@hookspec
def kmeansfw_fit_end(result: FitResult) -> None:
    """Observe the result of one run (one of the ``n_init`` restarts)."""
