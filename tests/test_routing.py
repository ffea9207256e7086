"""Estimators without a Dask backend refuse Dask input by name (never computed silently)."""

from __future__ import annotations

import numpy as np
import pytest

import kmeansfw

da = pytest.importorskip("dask.array")


@pytest.mark.parametrize("estimator", ["MiniBatchKMeans", "KMedoids"])
def test_estimators_without_a_dask_backend_refuse_dask_arrays(estimator):
    X = da.from_array(np.random.default_rng(0).normal(size=(200, 3)), chunks=50)
    km = getattr(kmeansfw, estimator)(3)
    with pytest.raises(TypeError, match=rf"{estimator} does not take Dask.*KMeans.*compute"):
        km.fit(X)
    if estimator == "MiniBatchKMeans":
        with pytest.raises(TypeError, match=rf"{estimator} does not take Dask"):
            km.partial_fit(X)
    assert not hasattr(km, "cluster_centers_")


def test_kmeans_partial_fit_refuses_dask_arrays_by_name():
    X = da.from_array(np.random.default_rng(0).normal(size=(200, 3)), chunks=50)
    km = kmeansfw.KMeans(3)
    with pytest.raises(TypeError, match=r"KMeans.partial_fit does not take Dask"):
        km.partial_fit(X)
    assert not hasattr(km, "cluster_centers_")
