"""Fit, predict and transform ``dask.array.Array`` data on a Dask cluster.

With a :class:`distributed.Client` active, :func:`fit` (what ``kmeansfw.fit`` and
``KMeans.fit`` call for a Dask array) runs on the client's cluster, following Spark MLlib's
pattern rather than a new task graph per iteration:

* ``X`` (and ``sample_weight``) are validated and persisted once, one row chunk per
  persisted block.  Each worker builds, next to every chunk it holds, a
  :class:`~kmeansfw.backends.dask.chunks._Chunk`: a :class:`~kmeansfw.core.data.FitData` of
  the chunk's rows with the fit's fitted state, the fit's hooks rebuilt from the (pickled)
  strategies, and the per-data caches ``kmeansfw_prepare`` fills.  Every chunk is checked
  (shape, dtype, finite values) before any strategy runs.  ``X`` is never gathered into the
  driver's memory; the one pass that reads it on the driver is ``kmeansfw_learn`` of a
  strategy that learns from every row (the ``mahalanobis`` covariance): it streams the
  chunks through the driver one row block at a time (see
  :class:`~kmeansfw.backends.dask.cluster.RowStream`), so the data crosses the network once
  while the driver's memory stays bounded.
* Every iteration submits one task per chunk (a fixed set, never a growing graph): it
  receives only the centroids (broadcast to the workers when large, see
  :data:`~kmeansfw.backends.dask.cluster.SCATTER_BYTES`), runs the same per-block hooks as
  the threads backend (:func:`kmeansfw.engine.steps.assign`: assignment, the distance, the
  update's map step) and returns small partials: the update's partial, how many labels
  changed and, when a strategy of the fit declares ``reads_costs``, the weighted
  objective (otherwise the search may leave the costs, and a round over the chunks
  computes the objective only if something reads it).  The labels stay on the workers;
  so do the bounds of ``hamerly`` and ``yinyang`` (kept in the chunk's cache).
* The driver reduces the partials in chunk order through the update's own
  ``kmeansfw_update``, handles empty clusters, and calls observers and convergence criteria
  on a state that carries the reduced quantities.  Only the final labels (and costs) of the
  best run come back, as NumPy arrays.

Seeding runs distributed too: ``k-means||`` (l = ``oversampling`` x k candidates per
round, ``rounds`` rounds, a random first centre, per-chunk random streams derived from the
fit's seed with :class:`numpy.random.SeedSequence`, duplicate candidates merged, a weighted
recluster by greedy k-means++ and Lloyd with the fit's own strategies), ``k-means++``
(greedy; k passes over the data, two round trips each), ``random`` (weighted sampling
without replacement, by per-chunk keys) and explicit centroids.  ``auto`` picks between
k-means++ and k-means|| by the same rule as in memory.

A worker lost mid-fit costs time, never correctness: Dask recomputes its chunks from the
persisted lineage, the rebuilt :class:`~kmeansfw.backends.dask.chunks._Chunk` knows it has
no labels (its count of changed labels is then all its rows, so no criterion stops on a
stale count) and no bounds (a full, exact search), and seeding state is rebuilt from the
candidates so far.

Checkpoints (``checkpoint=folder``) are written on the driver from reduced quantities
(:class:`~kmeansfw.backends.dask.checkpoints.ClusterCheckpoint`): mid-run, the centroids
and the previous centroids (those the last labels were assigned to) instead of the labels,
so nothing per sample is gathered. A fit interrupted on the driver and started again
resumes: the workers rebuild the labels of the checkpoint's iteration with one assignment
to the previous centroids, and the fit goes on exactly as the uninterrupted one.  The
fingerprint digests ``X`` and the weights chunk by chunk on the workers and combines the
digests in row order (with the chunk sizes), so the same data chunked otherwise starts
afresh.  As in memory, a resumed fit compares the saved learned state with what its
strategies learn again, and a finished checkpoint's best run is checked before it is
returned: its saved costs against its rows' costs to its centroids (one assignment
pass on the workers, whose costs the driver compares, as it holds the saved ones) and
its objective against the saved costs' weighted sum.

:func:`kmeansfw.fit` and ``KMeans.fit`` route a Dask array here when a client is active;
without one they compute it into memory and fit it with threads (:func:`fit` here then
raises).  Strategies that need every sample's label or cost on one machine (``median``,
``trimmed-mean``, ``medoid`` updates, seedings other than the above, user empty-cluster
strategies reading labels or costs) are refused by name, as is ``batch_size``.
"""

from __future__ import annotations

# The modules: ``arrays`` (input validation, persisted chunks checked), ``cluster`` (the
# client, the driver's handle on the chunks, ``RowStream``), ``chunks`` (the worker side:
# every per-chunk task), ``seeding``, ``lloyd`` (one restart on the driver), ``fitting``
# (``fit``, ``fit_config``, refusals), ``checkpoints`` and ``estimator`` (the estimator's
# methods).  The names below are this package's API, as when it was one module.
from kmeansfw.backends.dask.arrays import to_memory
from kmeansfw.backends.dask.checkpoints import ClusterCheckpoint as ClusterCheckpoint
from kmeansfw.backends.dask.cluster import SCATTER_BYTES as SCATTER_BYTES
from kmeansfw.backends.dask.cluster import RowStream as RowStream
from kmeansfw.backends.dask.cluster import active_client
from kmeansfw.backends.dask.estimator import fit_estimator, predict, score, transform
from kmeansfw.backends.dask.fitting import fit
from kmeansfw.backends.dask.fitting import fit_config as fit_config
from kmeansfw.backends.dask.lloyd import ReducedState as ReducedState

__all__ = [
    "fit",
    "fit_estimator",
    "predict",
    "score",
    "transform",
    "active_client",
    "to_memory",
]
