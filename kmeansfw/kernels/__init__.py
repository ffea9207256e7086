"""Compiled inner loops of the strategies, with NumPy fallbacks.

The default Lloyd step needs, per row block, a matrix product followed by a fused
"add the centroid norms, take the minimum and its index" pass, then per-cluster weighted
sums.  NumPy alone needs several passes over each (b, k) block for that; numba compiles
the fused pass (the matrix product stays in BLAS), which is what lets the defaults
outrun scikit-learn's Cython.  numba is a dependency, but every kernel has a NumPy twin
used when numba cannot be imported or ``KMEANSFW_NUMBA=0`` is set; both give the same
labels (ties go to the lowest index in both).

Kernels run with the GIL released and are called from kmeansfw's worker threads, with
BLAS held to one thread, so each block is computed the same way whatever the number of
threads.

Layout, one module per thing served (each holds its kernels, their NumPy twins and the
public function choosing between them; everything public is re-exported here):

* ``_compile``: the numba import and the ``KMEANSFW_NUMBA`` switch (:data:`HAVE_NUMBA`);
* ``euclidean``: the squared Euclidean distance: nearest-centroid searches (with the
  runner-up or per group of centroids), paired distances, cost blocks, centroid
  preparation and centered row norms;
* ``nearest``: the nearest-centroid search of a block (:func:`nearest_sq_euclidean`),
  on the calling thread or split between numba's threads in the kernel of the
  threaded Lloyd iterations;
* ``lp``: the L1, L-inf and L_p distances' block kernels;
* ``update``: the mean update's weighted per-cluster sums;
* ``seeding``: greedy k-means++ seeding (k-means|| reclusters with it), and all its
  steps on one Euclidean block in one compiled call (numba only: a fast path the
  step-by-step kernels stand in for without it);
* ``bounds``: the bound-based assignments' filter of rows needing a new search;
* ``checks``: the answer checks (finiteness, minimum, label range);
* ``convergence``: the convergence criteria's per-iteration summaries and the data's
  per-feature squared deviations;
* ``lloyd``: the built-in Lloyd iterations (Euclidean search with the mean's sums, the
  mean, ``tol``'s test) many in one compiled call (numba only; imported by the engine's
  step when it runs and by ``nearest``, not re-exported here), whose threaded kernels
  make the single searches on numba's threads too;
* ``columns``: the data's column sums in NumPy's order (its mean), in one compiled pass.

The kernel functions that fits call on data (the nearest-centroid searches, cost blocks,
paired distances, centered row norms, centroid preparation, the L_p blocks, the mean's
sums, greedy k-means++ in one call and the compiled Lloyd iterations) hand their kernels
the data, its mean, weights and row norms, and the centroids they prepare or iterate
from, as read-only views (:func:`read_only`): numba compiles a kernel once per type of
its arguments, and an array's writeable flag is part of that type, so writable and
read-only data reach the same compiled kernel.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np


def read_only(array: Any) -> Any:
    """A read-only view of an ndarray (itself when it is read-only already); anything
    else as it is.

    The kernel functions pass what they only read through this (see the module's
    docstring): numba types an array by its writeable flag too, and each flag compiled
    every kernel it reached again (10-25 s for each search and for the compiled Lloyd
    iterations).  Nothing is copied and the caller's array keeps its flags.

    Parameters
    ----------
    array : ndarray or any

    Returns
    -------
    ndarray or any
    """
    if not isinstance(array, np.ndarray) or not array.flags.writeable:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


#: Public name -> the submodule defining it.  Submodules load on first use, so importing
#: one kernel (the answer checks, say) does not import numba and every other kernel.
_WHERE = {
    "HAVE_NUMBA": "_compile",
    "stale_rows": "bounds",
    "finite_min": "checks",
    "int_range": "checks",
    "add_rows_in_order": "columns",
    "add_centered_column_squares": "convergence",
    "count_changed": "convergence",
    "labels_equal": "convergence",
    "sq_shift": "convergence",
    "SUB_BLOCK_ROWS": "euclidean",
    "centered_row_norms": "euclidean",
    "direct_pays": "euclidean",
    "nearest_groups_sq_euclidean": "euclidean",
    "paired_sq_euclidean": "euclidean",
    "prefetch_data": "euclidean",
    "row_search_pays": "euclidean",
    "screen_pays": "euclidean",
    "prepare_euclidean_centroids": "euclidean",
    "sq_euclidean_costs": "euclidean",
    "L1": "lp",
    "LINF": "lp",
    "LP": "lp",
    "lp_block": "lp",
    "nearest_sq_euclidean": "nearest",
    "draw_candidates": "seeding",
    "fold_candidates": "seeding",
    "plusplus_from_costs": "seeding",
    "plusplus_sq_euclidean": "seeding",
    "fused_plusplus_pays": "seeding",
    "add_weighted_cluster_sums": "update",
    "add_cluster_members": "update",
    "mark_changed_clusters": "update",
    "mark_moved_clusters": "update",
}

if TYPE_CHECKING:  # pragma: no cover
    from kmeansfw.kernels._compile import HAVE_NUMBA
    from kmeansfw.kernels.bounds import stale_rows
    from kmeansfw.kernels.checks import finite_min, int_range
    from kmeansfw.kernels.columns import add_rows_in_order
    from kmeansfw.kernels.convergence import (
        add_centered_column_squares,
        count_changed,
        labels_equal,
        sq_shift,
    )
    from kmeansfw.kernels.euclidean import (
        SUB_BLOCK_ROWS,
        centered_row_norms,
        direct_pays,
        nearest_groups_sq_euclidean,
        paired_sq_euclidean,
        prefetch_data,
        prepare_euclidean_centroids,
        row_search_pays,
        screen_pays,
        sq_euclidean_costs,
    )
    from kmeansfw.kernels.lp import L1, LINF, LP, lp_block
    from kmeansfw.kernels.nearest import nearest_sq_euclidean
    from kmeansfw.kernels.seeding import (
        draw_candidates,
        fold_candidates,
        fused_plusplus_pays,
        plusplus_from_costs,
        plusplus_sq_euclidean,
    )
    from kmeansfw.kernels.update import (
        add_cluster_members,
        add_weighted_cluster_sums,
        mark_changed_clusters,
        mark_moved_clusters,
    )


def __getattr__(name: str) -> Any:
    """Import the submodule defining ``name`` on first access."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "HAVE_NUMBA",
    "L1",
    "LINF",
    "LP",
    "SUB_BLOCK_ROWS",
    "add_centered_column_squares",
    "add_cluster_members",
    "add_weighted_cluster_sums",
    "add_rows_in_order",
    "centered_row_norms",
    "count_changed",
    "direct_pays",
    "draw_candidates",
    "finite_min",
    "fold_candidates",
    "fused_plusplus_pays",
    "int_range",
    "labels_equal",
    "lp_block",
    "mark_changed_clusters",
    "mark_moved_clusters",
    "nearest_groups_sq_euclidean",
    "nearest_sq_euclidean",
    "paired_sq_euclidean",
    "plusplus_from_costs",
    "plusplus_sq_euclidean",
    "prefetch_data",
    "prepare_euclidean_centroids",
    "read_only",
    "row_search_pays",
    "screen_pays",
    "sq_euclidean_costs",
    "sq_shift",
    "stale_rows",
]
