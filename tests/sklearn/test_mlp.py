"""MLPClassifier/MLPRegressor against scikit-learn's own MLPs: the same algorithm, so the same
initial weights, losses, learning-rate schedules, stopping and early stopping."""

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytestmark = pytest.mark.usefixtures("quiet_convergence")

from sklearn import neural_network  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits, load_iris  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from jaxnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

HIDDEN = (8,)  # one structure for most tests: its programs compile once


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def _both(cls, sk_cls, X, y, **params):
    ours = cls(hidden_layer_sizes=HIDDEN, random_state=0, **params).fit(X, y)
    theirs = sk_cls(hidden_layer_sizes=HIDDEN, random_state=0, **params).fit(X, y)
    return ours, theirs


@pytest.mark.parametrize(
    "params",
    [
        {"alpha": 0.5, "max_iter": 1},  # the loss at scikit-learn's initial weights, with L2
        {"solver": "sgd", "learning_rate": "invscaling", "learning_rate_init": 0.5},
        {"solver": "sgd", "learning_rate": "adaptive", "learning_rate_init": 0.5, "tol": 0.05,
         "n_iter_no_change": 2, "max_iter": 30},
        {"early_stopping": True, "learning_rate_init": 0.01, "max_iter": 30},
        {"batch_size": 32, "max_iter": 15, "nesterovs_momentum": False, "solver": "sgd"},
    ],
)  # fmt: skip
def test_loss_curve_and_stopping_match_sklearn(iris, params):
    """Same initial weights, shuffles, batches, loss (with alpha/(2n) sum W^2), schedule and
    stopping rule: the loss curves agree to float32 rounding and stop at the same epoch."""
    X, y = iris
    ours, theirs = _both(MLPClassifier, neural_network.MLPClassifier, X, y, **params)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-4)
    if params.get("early_stopping"):
        assert ours.best_loss_ is theirs.best_loss_ is None
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_validation_score_ == theirs.best_validation_score_
    else:
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-4)
    for a, b in zip(ours.coefs_, theirs.coefs_, strict=True):  # a ReLU kink may amplify rounding
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2)


def test_alpha_term_is_sklearns_loss_formula(iris):
    """One full-batch epoch reports the loss at the initial weights: the mean log loss of
    scikit-learn's initial network plus alpha / (2 n) * sum of squared kernels (no biases)."""
    X, y = iris
    alpha = 3.0
    ours = MLPClassifier(hidden_layer_sizes=HIDDEN, alpha=alpha, max_iter=1, random_state=0)
    ours.fit(X, y)
    start = neural_network.MLPClassifier(hidden_layer_sizes=HIDDEN, random_state=0)
    start._random_state = np.random.RandomState(0)
    coefs, intercepts = [], []
    for fan_in, fan_out in [(4, 8), (8, 3)]:  # scikit-learn's _init_coef draws, by hand
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        coefs.append(start._random_state.uniform(-bound, bound, (fan_in, fan_out)))
        intercepts.append(start._random_state.uniform(-bound, bound, fan_out))
    hidden = np.maximum(X @ coefs[0] + intercepts[0], 0)
    logits = hidden @ coefs[1] + intercepts[1]
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    data = -log_p[np.arange(len(y)), y].mean()
    l2 = alpha / (2 * len(y)) * sum((c**2).sum() for c in coefs)
    assert ours.loss_curve_[0] == pytest.approx(data + l2, rel=1e-5)


def test_digits_accuracy_level_of_sklearn():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, random_state=0)
    params = {"hidden_layer_sizes": (32,), "max_iter": 15, "learning_rate_init": 0.01}
    params["random_state"] = 0
    ours = MLPClassifier(**params).fit(X_train, y_train)
    theirs = neural_network.MLPClassifier(**params).fit(X_train, y_train)
    assert ours.score(X_test, y_test) == pytest.approx(theirs.score(X_test, y_test), abs=0.01)
    assert ours.score(X_test, y_test) > 0.9
    assert np.mean(ours.predict(X_test) == theirs.predict(X_test)) > 0.97


def test_diabetes_regression_level_of_sklearn():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    params = {"hidden_layer_sizes": HIDDEN, "max_iter": 40, "learning_rate_init": 0.01}
    ours = MLPRegressor(random_state=0, **params).fit(X_train, y_train)
    theirs = neural_network.MLPRegressor(random_state=0, **params).fit(X_train, y_train)
    assert ours.score(X_test, y_test) == pytest.approx(theirs.score(X_test, y_test), abs=0.02)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)


def test_lbfgs_reaches_sklearns_fit(iris):
    """Full-batch L-BFGS (a different line search than scipy's L-BFGS-B): the same training
    accuracy and a loss of the same order."""
    X, y = iris
    ours, theirs = _both(MLPClassifier, neural_network.MLPClassifier, X, y, solver="lbfgs",
                         max_iter=200)  # fmt: skip
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=0.02)
    assert ours.loss_ < 2 * theirs.loss_
    assert 0 < ours.n_iter_ <= 200
    assert not hasattr(ours, "loss_curve_")  # as scikit-learn: only the stochastic solvers


def test_multilabel_and_multioutput_as_sklearn():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 5))
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5], axis=1).astype(int)
    ours, theirs = _both(MLPClassifier, neural_network.MLPClassifier, X, Y, max_iter=50,
                         learning_rate_init=0.01)  # fmt: skip
    assert ours.out_activation_ == theirs.out_activation_ == "logistic"
    assert ours.predict(X).shape == Y.shape and ours.predict_proba(X).shape == Y.shape
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)
    targets = np.stack([X[:, 0] + X[:, 1], X[:, 2] - X[:, 3]], axis=1)
    ours, theirs = _both(MLPRegressor, neural_network.MLPRegressor, X, targets, max_iter=30,
                         learning_rate_init=0.01)  # fmt: skip
    assert ours.predict(X).shape == targets.shape and ours.n_outputs_ == 2
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)


def test_binary_and_partial_fit_as_sklearn(iris):
    X, y = iris
    X, y = X[y < 2], y[y < 2]
    ours = MLPClassifier(hidden_layer_sizes=HIDDEN, random_state=0)
    theirs = neural_network.MLPClassifier(hidden_layer_sizes=HIDDEN, random_state=0)
    for _ in range(3):
        ours.partial_fit(X, y, classes=[0, 1])
        theirs.partial_fit(X, y, classes=[0, 1])
    assert ours.n_iter_ == theirs.n_iter_ == 1  # counts this call's epochs, as scikit-learn
    assert ours.t_ == theirs.t_ == 3 * len(X)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)
    proba = ours.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(ours.predict_log_proba(X), np.log(proba), rtol=1e-6)
    np.testing.assert_allclose(proba, theirs.predict_proba(X), atol=1e-4)


def test_warm_start_continues(iris):
    X, y = iris
    model = MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=5, warm_start=True, random_state=0)
    first = model.fit(X, y).loss_curve_[-1]
    model.fit(X, y)
    assert len(model.loss_curve_) == 10 and model.loss_curve_[5] < first


def test_pipeline_column_transformer_grid_search_clone_pickle(iris):
    X, y = iris
    pipe = make_pipeline(
        ColumnTransformer([("scale", StandardScaler(), [0, 1, 2, 3])]),
        MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=30, learning_rate_init=0.01,
                      random_state=0),
    )  # fmt: skip
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.8
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1.0]}, cv=2).fit(X, y)
    assert grid.best_params_["mlpclassifier__alpha"] in (1e-4, 1.0)
    fitted = grid.best_estimator_
    copy = clone(fitted)
    assert copy.get_params()["mlpclassifier__alpha"] == fitted.get_params()["mlpclassifier__alpha"]
    assert not hasattr(copy[-1], "coefs_")
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))


def test_joblib(iris, tmp_path):
    """joblib's parallel cross-validation (threads here: worker processes cost seconds to start;
    they receive the estimator pickled, which joblib.dump/load checks) and its persistence."""
    import joblib

    X, y = iris
    model = MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=5, random_state=0)
    with joblib.parallel_backend("threading", n_jobs=2):
        parallel = cross_val_score(model, X, y, cv=2, n_jobs=2)
    np.testing.assert_allclose(parallel, cross_val_score(model, X, y, cv=2))
    fitted = model.fit(X, y)
    joblib.dump(fitted, tmp_path / "model.joblib")
    restored = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))


def test_bad_parameters_raise_at_fit(iris):
    X, y = iris
    model = MLPClassifier(hidden_layer_sizes=(0,), activation="swish")  # __init__ validates nothing
    with pytest.raises(ValueError, match="activation"):
        model.fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        model.set_params(activation="relu").fit(X, y)
    with pytest.raises(AttributeError, match="partial_fit"):
        MLPClassifier(solver="lbfgs").partial_fit  # noqa: B018


def test_at_most_a_third_of_an_epochs_padded_batches_is_padding():
    """Explicit batch sizes: the steps and their rows padded to 2**k or 3 * 2**(k-1) (digits'
    1437 rows in batches of 32: 45 batches -> 48 x 32, not 64 x 256)."""
    from jaxnet.sklearn import _fitting

    order = np.random.default_rng(0).permutation(1437)
    rows, weights = _fitting.batch_rows(order, 32)
    assert rows.shape == weights.shape == (48, 32)
    np.testing.assert_array_equal(np.sort(rows[weights > 0]), np.arange(1437))
    np.testing.assert_array_equal(rows[:44].ravel(), order[: 44 * 32])  # in order, 32 a batch
    assert weights[44].sum() == 1437 - 44 * 32 and weights[45:].sum() == 0
    for n in range(1, 2000):
        padded = _fitting.batch_bucket(n)
        assert n <= padded and (padded - n) <= padded / 3, n
    assert _fitting.batch_rows(order[:150], 150, min_width=256)[0].shape == (1, 256)


def test_refits_reuse_the_compiled_epoch(iris, compile_log):
    """Other sample counts, feature counts (up to 32) and numeric hyper-parameters of the same
    structure run the same compiled epoch (and optimizer initialisation) program."""
    from jaxnet.sklearn import _fitting

    X, y = iris
    # (a hidden size no other test uses: the first fit compiles the epoch here)
    first = MLPClassifier(hidden_layer_sizes=(11,), max_iter=2, random_state=0).fit(X, y)
    programs = _fitting.programs(first._training())
    MLPClassifier(hidden_layer_sizes=(11,), max_iter=2, learning_rate_init=0.1, alpha=1.0,
                  beta_1=0.5, random_state=1).fit(X[::2, :3], y[::2])  # fmt: skip
    assert compile_log.count("jit(epoch)") == 1, compile_log
    assert programs.init_optimizer._cache_size() == 1  # the optimizer state's program too
