"""scikit-learn's own ``check_estimator``: every check, no expected failures."""

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from jaxnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# Small instances (scikit-learn's own suite runs its MLPs with max_iter=100; 20 is enough here).
ESTIMATORS = [
    MLPClassifier(max_iter=20, random_state=0),
    MLPRegressor(max_iter=20, random_state=0),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=None)
def test_sklearn_compatible(estimator, check):
    check(estimator)
