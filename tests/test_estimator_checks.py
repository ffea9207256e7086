"""scikit-learn's estimator checks: every check that sklearn's own KMeans and
MiniBatchKMeans pass."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from kmeansfw import KMeans, MiniBatchKMeans

# scikit-learn marks exactly these two checks as expected failures for its own KMeans and
# MiniBatchKMeans (sklearn/utils/_test_common/instance_generator.py): k-means restarted
# from different seeds is not equivalent to repeating samples.
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data": (
        "sample_weight is not equivalent to removing/repeating samples."
    ),
    "check_sample_weight_equivalence_on_sparse_data": (
        "sample_weight is not equivalent to removing/repeating samples."
    ),
}


@parametrize_with_checks(
    [
        KMeans(n_clusters=2, n_init=2, max_iter=5),
        # scikit-learn's own test parameters for MiniBatchKMeans
        MiniBatchKMeans(n_clusters=2, n_init=2, max_iter=5, batch_size=10),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
