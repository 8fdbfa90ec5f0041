"""Model selection as one program: ``jaxnet.sklearn.search`` against scikit-learn's own search
running the same estimator cell by cell, and ``fit_rows`` against ``fit`` model by model."""

import json
import sys
import warnings
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import model_selection
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jaxnet import Dense, fit, losses, optim, serial
from jaxnet.sklearn import MLPClassifier, MLPRegressor
from jaxnet.sklearn.search import GridSearchCV, RandomizedSearchCV
from jaxnet.train.many import model_slice
from jaxnet.train.parallel import models_mesh
from jaxnet.train.search import fit_rows


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
    grid = {
        "learning_rate_init": [3e-3, 3e-2],
        "alpha": [1e-4, 1.0],
        "random_state": [0, 1],
        "tol": [1e-4, 0.05],
    }
    reference = _quiet(lambda: model_selection.GridSearchCV(estimator, grid, cv=2).fit(x, y))
    ours = _quiet(lambda: GridSearchCV(estimator, grid, cv=2, mesh=models_mesh()).fit(x, y))
    _same_results(ours, reference)
    assert ours.best_estimator_.get_params() == reference.best_estimator_.get_params()
    np.testing.assert_allclose(
        ours.best_estimator_.predict_proba(x), reference.best_estimator_.predict_proba(x)
    )


def test_randomized_search_pipeline_and_scoring_equal_scikit_learn(digits):
    x, y = digits
    pipeline = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    )
    space = {
        "mlpclassifier__learning_rate_init": [1e-3, 1e-2, 3e-2],
        "mlpclassifier__alpha": [1e-4, 1e-2],
        "standardscaler__with_mean": [True, False],  # preprocessing fitted per fold and setting
    }
    options = dict(n_iter=4, random_state=0, cv=model_selection.KFold(3), refit="accuracy",
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
    estimator = MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    grid = {"learning_rate_init": [1e-2, 3e-2], "solver": ["adam", "sgd"], "momentum": [0.5]}
    reference = _quiet(lambda: model_selection.GridSearchCV(estimator, grid, cv=2).fit(x, target))
    ours = _quiet(lambda: GridSearchCV(estimator, grid, cv=2).fit(x, target))
    _same_results(ours, reference)


def test_other_estimators_take_scikit_learns_path(digits):
    x, y = digits
    grid = {"C": [0.1, 1.0]}
    reference = model_selection.GridSearchCV(LogisticRegression(max_iter=50), grid, cv=2)
    ours = GridSearchCV(LogisticRegression(max_iter=50), grid, cv=2)
    _same_results(_quiet(lambda: ours.fit(x, y)), _quiet(lambda: reference.fit(x, y)))


def test_fit_rows_equals_fit_model_by_model(digits):
    x, y = digits
    x = x.astype(np.float32)
    model = serial(Dense(8), jax.nn.relu, Dense(10))
    rows = [np.arange(80, 240), np.r_[0:40, 80:201]]  # 160 and 161 rows: 5 batches each
    learning_rates, l2 = [1e-2, 3e-2], [1e-2, 0.0]

    def weight_sum(params):
        return sum(jnp.sum(w**2) for w in jax.tree.leaves(params))

    result = fit_rows(
        model, losses.sparse_categorical_cross_entropy,
        lambda learning_rate, l2: optim.adam(learning_rate), x, y, rows=rows, seeds=[0, 1],
        hparams={"learning_rate": learning_rates, "l2": l2}, epochs=3, batch_size=32,
        make_penalty=lambda learning_rate, l2: lambda p: l2 * weight_sum(p),
    )  # fmt: skip
    for m in range(2):
        ts, history = fit(
            model, losses.sparse_categorical_cross_entropy, optim.adam(learning_rates[m]),
            x[rows[m]], y[rows[m]], seed=m, epochs=3, batch_size=32, verbose=0,
            penalty=lambda p, m=m: l2[m] * weight_sum(p),
        )  # fmt: skip
        np.testing.assert_allclose(result.history["loss"][:, m], history["loss"], rtol=1e-5)
        chex.assert_trees_all_close(model_slice(result.train_state.params, m), ts.params,
                                    atol=1e-5)  # fmt: skip
        assert int(result.train_state.step[m]) == int(ts.step)


def test_fit_rows_stops_each_model_by_scikit_learns_rule(digits):
    x, y = digits
    model = serial(Dense(4), jax.nn.relu, Dense(10))
    result = fit_rows(
        model, losses.sparse_categorical_cross_entropy, lambda lr: optim.sgd(lr),
        x.astype(np.float32), y, rows=[np.arange(200)] * 2, seeds=[0, 0],
        hparams={"lr": [0.0, 0.1]}, epochs=6, batch_size=50, n_iter_no_change=1, tol=1e-3,
    )  # fmt: skip
    losses_seen = result.history["loss"]
    # learning rate 0: the loss never improves -> stopped after 1 + 2 epochs (count 2 > 1)
    assert result.n_epochs[0] == 3 and np.isnan(losses_seen[3:, 0]).all()
    expected = 0  # replay the rule on the logged losses of the other model
    best, count = np.inf, 0
    for value in losses_seen[:, 1]:
        if np.isnan(value):
            break
        expected += 1
        count = count + 1 if value > np.float32(best) - np.float32(1e-3) else 0
        best = min(best, value)
        if count > 1:
            break
    assert result.n_epochs[1] == expected


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
