"""scikit-learn's own ``check_estimator``: every check, no expected failures."""

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from jaxnet.sklearn import (  # noqa: E402
    MLPClassifier,
    MLPRegressor,
    NeuralNetClassifier,
    NeuralNetRegressor,
)

# Few epochs keep the checks quick (scikit-learn runs its own MLPs' checks with max_iter=100);
# the NeuralNet estimators' Glorot-initialised default body needs a larger step to reach the
# checks' training scores in so few.
ESTIMATORS = [
    MLPClassifier(max_iter=20, random_state=0),
    MLPRegressor(max_iter=20, random_state=0),
    NeuralNetClassifier(max_iter=20, learning_rate=0.01, random_state=0),
    NeuralNetRegressor(max_iter=20, learning_rate=0.01, random_state=0),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=None)
def test_sklearn_compatible(estimator, check):
    check(estimator)
