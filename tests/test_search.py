"""Model selection as one program: ``jaxnet.sklearn.search`` against scikit-learn's own search
running the same estimator cell by cell."""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn import model_selection
from sklearn.datasets import load_digits
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jaxnet.errors import ConfigError
from jaxnet.sklearn import MLPClassifier, MLPRegressor, _search_plan
from jaxnet.sklearn.search import GridSearchCV, RandomizedSearchCV


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:240] / 16.0, y[:240]


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: few epochs on purpose
        return fn()


def _same_results(ours, reference):
    """Every cell's scores within 1e-4, the same best cell and the same result keys."""
    assert set(ours.cv_results_) == set(reference.cv_results_)
    for key in reference.cv_results_:
        if key.startswith(("split", "mean_test", "std_test")):
            np.testing.assert_allclose(
                ours.cv_results_[key], reference.cv_results_[key], atol=1e-4, err_msg=key
            )
    assert ours.best_params_ == reference.best_params_
    assert ours.best_score_ == pytest.approx(reference.best_score_, abs=1e-4)


def test_grid_search_equals_scikit_learn_cell_by_cell(digits):
    x, y = digits
    # numeric parameters only: one program; ``tol`` large enough that some models stop early,
    # each at its own epoch
    estimator = MLPClassifier(hidden_layer_sizes=(8,), max_iter=6, batch_size=50)
    grid = [
        {"learning_rate_init": [3e-3, 3e-2], "alpha": [1e-4, 1.0], "random_state": [0]},
        {"learning_rate_init": [3e-2], "random_state": [1, 2], "tol": [0.05]},
    ]
    reference = _quiet(lambda: model_selection.GridSearchCV(estimator, grid, cv=2).fit(x, y))
    ours = _quiet(lambda: GridSearchCV(estimator, grid, cv=2, n_devices=-1).fit(x, y))
    _same_results(ours, reference)
    assert ours.best_estimator_.get_params() == reference.best_estimator_.get_params()
    np.testing.assert_allclose(
        ours.best_estimator_.predict_proba(x), reference.best_estimator_.predict_proba(x)
    )


def test_randomized_search_pipeline_and_scoring_equal_scikit_learn(digits):
    x, y = digits
    pipeline = make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, batch_size=50, random_state=0),
    )
    space = {
        "mlpclassifier__learning_rate_init": [1e-3, 1e-2, 3e-2],
        "mlpclassifier__alpha": [1e-4, 1e-2],
        "standardscaler__with_mean": [True, False],  # preprocessing fitted per fold and setting
    }
    options = dict(n_iter=4, random_state=0, cv=model_selection.KFold(2), refit="accuracy",
                   scoring=["accuracy", "neg_log_loss"], return_train_score=True)  # fmt: skip
    reference = model_selection.RandomizedSearchCV(pipeline, space, **options)
    ours = RandomizedSearchCV(pipeline, space, **options)
    _quiet(lambda: reference.fit(x, y))
    _quiet(lambda: ours.fit(x, y))
    _same_results(ours, reference)
    for key in ("mean_train_accuracy", "mean_test_neg_log_loss"):
        np.testing.assert_allclose(ours.cv_results_[key], reference.cv_results_[key], atol=1e-4)


def test_regressor_grid_equals_scikit_learn(digits):
    x, _ = digits
    target = x[:, :8].sum(axis=1) - x[:, 8:12].sum(axis=1)
    estimator = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, solver="sgd", random_state=0)
    grid = {"learning_rate_init": [1e-2, 3e-2], "momentum": [0.5, 0.9]}
    reference = model_selection.GridSearchCV(estimator, grid, cv=2, refit=False)
    ours = GridSearchCV(estimator, grid, cv=2, refit=False)
    _quiet(lambda: reference.fit(x, target))
    _quiet(lambda: ours.fit(x, target))
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"], atol=1e-4
    )
    assert ours.best_index_ == reference.best_index_


def test_structural_parameters_start_new_groups_numeric_ones_do_not(digits):
    x, y = digits
    estimator = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    grid = {
        "learning_rate_init": [1e-3, 1e-2],  # numeric: the same program
        "alpha": [1e-4, 1e-2],
        "hidden_layer_sizes": [(8,), (4,)],  # structural: one program each
        "solver": ["adam", "sgd"],
    }
    candidates = list(model_selection.ParameterGrid(grid))
    splits = list(model_selection.StratifiedKFold(3).split(x, y))
    groups = _search_plan.plan_search(estimator, candidates, x, y, splits)
    assert len(groups) == 4 and all(len(g) == 4 * 3 for g in groups)
    for group in groups:
        params = [candidates[m.candidate] for m in group]
        assert len({(p["hidden_layer_sizes"], p["solver"]) for p in params}) == 1
    # outside the engine: scikit-learn's own path for the whole search
    early = MLPClassifier(early_stopping=True)
    assert _search_plan.plan_search(early, candidates[:1], x, y, splits) is None


def test_the_search_compiles_whole_programs_once_nothing_op_by_op(digits, compile_log):
    x, y = digits
    # a hidden size no other test uses: programs made op by op for its shapes would show here
    estimator = MLPClassifier(hidden_layer_sizes=(13,), max_iter=2, batch_size=50, random_state=0)
    grid = {"learning_rate_init": [1e-3, 1e-2], "alpha": [1e-4, 1e-2]}
    for _ in range(2):  # the second search finds its programs compiled
        _quiet(lambda: GridSearchCV(estimator, grid, cv=2, refit=False).fit(x, y))
    assert compile_log.count("jit(run)") == 1, compile_log  # the epoch of all eight models
    op_by_op = {"jit(broadcast_in_dim)", "jit(convert_element_type)", "jit(_multi_slice)"}
    assert not op_by_op & set(compile_log), compile_log


def test_other_estimators_take_scikit_learns_path(digits):
    x, y = digits
    grid = {"C": [0.1, 1.0]}
    reference = model_selection.GridSearchCV(LogisticRegression(max_iter=50), grid, cv=2)
    ours = GridSearchCV(LogisticRegression(max_iter=50), grid, cv=2)
    _same_results(_quiet(lambda: ours.fit(x, y)), _quiet(lambda: reference.fit(x, y)))


def test_example_runs_quick_and_writes_only_under_out(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
    import sklearn_grid_search

    best = _quiet(lambda: sklearn_grid_search.main(["--quick", "--out", str(tmp_path / "out")]))
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "best.json",
        "cv_results.csv",
    ]
    written = json.loads((tmp_path / "out" / "best.json").read_text())
    assert written["params"] == best["params"] and 0.0 <= written["cv_score"] <= 1.0


def test_more_devices_than_there_are_is_a_clear_error(digits):
    x, y = digits
    search = GridSearchCV(MLPClassifier(max_iter=1), {"alpha": [1e-4]}, cv=2, n_devices=1000)
    with pytest.raises(ConfigError, match="GridSearchCV: n_devices must be -1 or between 1"):
        search.fit(x, y)


def test_a_diverging_cell_is_a_failed_fit_as_in_scikit_learn(digits):
    x, y = digits
    estimator = MLPClassifier(hidden_layer_sizes=(8,), max_iter=6, batch_size=50, solver="sgd")
    grid = {"learning_rate_init": [1e-2, 1e12], "random_state": [0]}  # 1e12: weights overflow
    reference = model_selection.GridSearchCV(estimator, grid, cv=2, refit=False)
    ours = GridSearchCV(estimator, grid, cv=2, refit=False)
    with pytest.warns(FitFailedWarning, match="fits failed"):
        _quiet_except_fit_failures(lambda: reference.fit(x, y))
    with pytest.warns(FitFailedWarning, match="fits failed"):
        _quiet_except_fit_failures(lambda: ours.fit(x, y))
    np.testing.assert_array_equal(
        ours.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"]
    )
    assert np.isnan(ours.cv_results_["mean_test_score"][1])


def _quiet_except_fit_failures(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", FitFailedWarning)
        return fn()
