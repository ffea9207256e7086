"""The mean update's map offered to the assignment's search: :class:`SumsRequest`.

A Lloyd iteration reads every row twice when the assignment searches a block and the
update then sums it: once to find each row's centroid, once to add the row to its
cluster's totals.  When the fit's update declares ``sums_map`` (its
``kmeansfw_accumulate`` adds each row's weight times its values, and its weight, to its
cluster's float64 totals: ``mean``) and its assignment takes a ``sums`` argument, the
engine hands the assignment a :class:`SumsRequest` per block; a search that can add the
rows in its own pass, while they are in cache, does so and says so
(:meth:`SumsRequest.mark_added`), and the engine skips the update's map for that block.
A search that cannot (sparse rows, a bound-based pass that skips rows) leaves it, and
the engine calls the map as usual.
"""

from __future__ import annotations

import attrs
import numpy as np


@attrs.define(eq=False)
class SumsRequest:
    """One block's share of the mean's map, for a search that adds it in its pass.

    Attributes
    ----------
    sample_weight : ndarray, shape (b,)
        The block's rows' weights (read-only).
    sums : ndarray of float64, shape (k, d)
        The task's totals so far, to add each row's weight times its values to, at its
        label's row.  Updated in place.
    weights : ndarray of float64, shape (k,)
        The task's total weight per cluster so far, to add each row's weight to.
    added : bool
        Set by :meth:`mark_added` once the search has added every row of the block.
    """

    sample_weight: np.ndarray
    sums: np.ndarray
    weights: np.ndarray
    added: bool = False

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sample_weight, sums, weights)``, as the Euclidean kernels take them."""
        return self.sample_weight, self.sums, self.weights

    def mark_added(self) -> None:
        """Say that every row of the block is in :attr:`sums` and :attr:`weights`."""
        self.added = True
