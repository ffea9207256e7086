"""The hook contract: documented exactly, each hook exercised by a plugin written here."""

from __future__ import annotations

import inspect
import pathlib
import re

import attrs
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.datasets import make_blobs

import kmeansfw
from kmeansfw import KMeans
from kmeansfw.core import hookspecs

ROOT = pathlib.Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("kmeansfw_"))


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(name):
    docs = (ROOT / "docs" / "hooks.md").read_text()
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert f"### {name}({params})" in docs


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_docstring_and_a_test(name):
    assert inspect.getdoc(getattr(hookspecs, name))
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    implemented = re.findall(rf"def {name}\(", tests)
    assert implemented, f"no test implements {name}"


def test_docs_state_the_hook_count_and_the_slot_table():
    from kmeansfw.core import slots

    docs = (ROOT / "docs" / "hooks.md").read_text()
    assert f"**{len(HOOKS)} hooks**" in docs
    for slot, hooks in slots.ANSWERING.items():
        row = next(line for line in docs.splitlines() if line.startswith(f"| `{slot}`"))
        assert sorted(re.findall(r"`(kmeansfw_\w+)`", row)) == sorted(hooks)
    declared = {a for names in slots.ATTRIBUTES.values() for a in names}
    for attribute in declared:
        assert f"| `{attribute}` |" in docs
    from kmeansfw.core.distance import DEFAULTS

    assert declared == {"name", *DEFAULTS}  # every declared attribute read by describe()
    assert "register_strategy" in docs and "`observer`" in docs


def test_no_undocumented_hooks_in_docs():
    docs = (ROOT / "docs" / "hooks.md").read_text()
    assert sorted(set(re.findall(r"^### (kmeansfw_\w+)\(", docs, flags=re.M))) == HOOKS


@attrs.frozen
class CachedManhattan:
    """A distance using both set-up hooks and its own fast nearest search."""

    name = "cached-manhattan"
    natural_update = "mean"
    is_metric = True
    calls: dict = attrs.field(factory=dict)

    @kmeansfw.hookimpl
    def kmeansfw_prepare(self, data):
        data.cache["cached-manhattan.abs-sum"] = np.abs(data.X).sum(axis=1)
        self.calls["prepare"] = self.calls.get("prepare", 0) + 1

    @kmeansfw.hookimpl
    def kmeansfw_prepare_centroids(self, centroids, cache):
        cache["cached-manhattan.centroids"] = centroids.copy()
        self.calls["centroids"] = self.calls.get("centroids", 0) + 1

    @kmeansfw.hookimpl
    def kmeansfw_distance(self, X, cache):
        return cdist(X, cache["cached-manhattan.centroids"], "cityblock").astype(X.dtype)

    @kmeansfw.hookimpl
    def kmeansfw_cost(self, X, cache):
        return self.kmeansfw_distance(X=X, cache=cache)

    @kmeansfw.hookimpl
    def kmeansfw_nearest(self, X, groups, n_groups, rows, data, cache):
        kind = "nearest" if n_groups == 0 else "two" if n_groups == 1 else "groups"
        self.calls[kind] = self.calls.get(kind, 0) + 1
        if rows is not None:
            assert data.cache["cached-manhattan.abs-sum"][rows].shape == (X.shape[0],)
        D = self.kmeansfw_distance(X=X, cache=cache).astype(np.float64)
        index = np.arange(X.shape[0])
        labels = D.argmin(axis=1)
        first = D[index, labels]
        if n_groups == 0:
            return labels, first.astype(X.dtype), None, None
        D[index, labels] = np.inf
        rivals = np.stack(
            [D[:, groups == g].min(axis=1, initial=np.inf) for g in range(n_groups)], axis=1
        )
        return labels, first.astype(X.dtype), first.astype(X.dtype), rivals.astype(X.dtype)

    @kmeansfw.hookimpl
    def kmeansfw_paired_cost(self, X, labels, cache):
        self.calls["paired"] = self.calls.get("paired", 0) + 1
        C = cache["cached-manhattan.centroids"][labels]
        return np.abs(X - C).sum(axis=1).astype(X.dtype)


def test_paired_cost_serves_bound_based_assignment(blobs):
    X, _ = blobs
    distance = CachedManhattan()
    km = KMeans(5, distance=distance, assignment="hamerly", random_state=0).fit(X)
    plain = KMeans(5, distance=CachedManhattan(), random_state=0).fit(X)  # nearest
    # the first pass takes costs from the two-nearest search, later ones from paired_cost
    assert distance.calls["two"] >= 1 and distance.calls["paired"] >= 1
    np.testing.assert_array_equal(km.labels_, plain.labels_)
    np.testing.assert_allclose(km.inertia_, plain.inertia_, rtol=1e-9)


def test_nearest_groups_serves_yinyang():
    X, _ = make_blobs(3000, n_features=3, centers=30, random_state=4)
    distance = CachedManhattan()
    km = KMeans(30, distance=distance, assignment="yinyang", random_state=0).fit(X)
    plain = KMeans(30, distance=CachedManhattan(), random_state=0).fit(X)  # nearest
    assert distance.calls["groups"] >= 1 and distance.calls["paired"] >= 1
    assert "two" not in distance.calls
    np.testing.assert_array_equal(km.labels_, plain.labels_)
    assert km.n_iter_ == plain.n_iter_
    np.testing.assert_allclose(km.inertia_, plain.inertia_, rtol=1e-9)


def test_setup_hooks_and_fast_nearest(blobs):
    X, _ = blobs
    distance = CachedManhattan()
    km = KMeans(5, distance=distance, random_state=0).fit(X)
    assert distance.calls["prepare"] == 1
    assert distance.calls["centroids"] >= km.n_iter_
    assert distance.calls["nearest"] >= km.n_iter_
    np.testing.assert_array_equal(
        km.labels_, cdist(X, km.cluster_centers_, "cityblock").argmin(axis=1)
    )


@attrs.frozen
class CountingMean:
    """A mean update whose map step keeps per-task counts and sums (unweighted)."""

    name = "counting-mean"

    @kmeansfw.hookimpl
    def kmeansfw_accumulate(self, X, labels, n_clusters, partial):
        if partial is None:
            partial = [np.zeros((n_clusters, X.shape[1])), np.zeros(n_clusters)]
        np.add.at(partial[0], labels, X)
        partial[1] += np.bincount(labels, minlength=n_clusters)
        return partial

    @kmeansfw.hookimpl
    def kmeansfw_update(self, partials, centroids):
        sums = sum(p[0] for p in partials)
        counts = sum(p[1] for p in partials)
        new = centroids.copy()
        filled = counts > 0
        new[filled] = sums[filled] / counts[filled, None]
        return new, counts


def test_custom_map_reduce_update_matches_builtin_mean(blobs):
    X, _ = blobs
    ours = KMeans(5, update=CountingMean(), random_state=3).fit(X)
    builtin = KMeans(5, random_state=3).fit(X)
    np.testing.assert_array_equal(ours.labels_, builtin.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, builtin.cluster_centers_, rtol=1e-12)


def kmeansfw_warning():
    from sklearn.exceptions import ConvergenceWarning

    return ConvergenceWarning


@attrs.frozen
class KeepEmpty:
    """Empty clusters keep their previous centroid."""

    name = "keep"

    @kmeansfw.hookimpl
    def kmeansfw_empty_clusters(self, old_centroids, new_centroids, cluster_weights):
        out = new_centroids.copy()
        out[cluster_weights == 0] = old_centroids[cluster_weights == 0]
        return out


def test_custom_empty_cluster_strategy(blobs):
    X, _ = blobs
    init = X[:4].copy()
    init[3] = 1e4  # never gets a member
    with pytest.warns(kmeansfw_warning(), match="distinct clusters"):
        km = KMeans(4, init=init, empty=KeepEmpty()).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_[3], init[3])
    assert 3 not in set(km.labels_)
    relocated = KMeans(4, init=init).fit(X)
    assert 3 in set(relocated.labels_)


@attrs.frozen
class FirstSamples:
    """Initialization from the first k samples."""

    @kmeansfw.hookimpl
    def kmeansfw_init_centroids(self, X, n_clusters):
        return X[:n_clusters]


@attrs.frozen
class SortedAssignment:
    """Assignment through the distance's cost, ignoring its fast path."""

    @kmeansfw.hookimpl
    def kmeansfw_assign(self, X, centroids, rows, data, cache, hook):
        cost = hook.kmeansfw_cost(X=X, centroids=centroids, rows=rows, data=data, cache=cache)
        labels = cost.argmin(axis=1)
        return labels, cost[np.arange(len(labels)), labels]


def test_custom_init_and_assignment_match_defaults(blobs):
    X, _ = blobs
    custom = KMeans(5, init=FirstSamples(), assignment=SortedAssignment()).fit(X)
    default = KMeans(5, init=X[:5]).fit(X)
    np.testing.assert_array_equal(custom.labels_, default.labels_)
    np.testing.assert_allclose(custom.inertia_, default.inertia_, rtol=1e-9)
