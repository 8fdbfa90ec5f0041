"""NeuralNetClassifier/NeuralNetRegressor: any jaxnet model, nested parameters, pickling."""

import pickle
import subprocess
import sys

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")
pytestmark = pytest.mark.usefixtures("quiet_convergence")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, load_iris  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from jaxnet import Activation, Conv2D, Dense, Dropout, Flatten, recipes, serial  # noqa: E402
from jaxnet.sklearn import MLPClassifier, NeuralNetClassifier, NeuralNetRegressor  # noqa: E402


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_tiny_cnn_on_digit_images():
    X, y = load_digits(return_X_y=True)
    images = (X / 16).reshape(-1, 8, 8, 1)
    body = serial(Conv2D(8, (3, 3)), Activation("relu"), Flatten())
    net = NeuralNetClassifier(body, learning_rate=0.01, max_iter=8, batch_size=64, random_state=0)
    net.fit(images[:1000], y[:1000])
    shapes = {a.shape for a in jax.tree.leaves(net.params_)}
    assert {(3, 3, 1, 8), (8,), (288, 10), (10,)} == shapes  # the given body, and the head
    assert net.score(images[1000:], y[1000:]) > 0.85
    assert net.predict_proba(images[1000:1005]).shape == (5, 10)


def test_momentum_sgd_equals_a_numpy_loop():
    """A linear model (no head), full-batch SGD with optimizer__momentum: params_ equal heavy-ball
    gradient descent on the half squared error, written in NumPy."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    model = Dense(1, kernel_init="zeros")
    net = NeuralNetRegressor(model, optimizer="sgd", learning_rate=0.1, head=False, shuffle=False,
                             max_iter=6, tol=0.0, random_state=0)  # fmt: skip
    net.set_params(optimizer__momentum=0.9).fit(X, y)
    w, b, vw, vb = np.zeros(3), 0.0, np.zeros(3), 0.0
    for _ in range(6):
        error = X @ w + b - y
        vw, vb = X.T @ error / len(y) + 0.9 * vw, error.mean() + 0.9 * vb
        w, b = w - 0.1 * vw, b - 0.1 * vb
    np.testing.assert_allclose(net.params_["w"].ravel(), w, rtol=1e-5)
    np.testing.assert_allclose(net.params_["b"], [b], rtol=1e-5)


def test_each_epoch_draws_its_own_dropout_key(iris):
    """fit's epochs equal as many partial_fit calls: each epoch's key is folded from the
    examples seen so far (``t_``), not fixed for the run."""
    X, y = iris
    body = serial(Dense(16), Activation("relu"), Dropout(0.5))
    options = dict(learning_rate=0.01, batch_size=50, shuffle=False, tol=0.0, random_state=0)
    fitted = NeuralNetClassifier(body, max_iter=3, **options).fit(X, y)
    stepped = NeuralNetClassifier(body, **options)
    for _ in range(3):
        stepped.partial_fit(X, y, classes=np.unique(y))
    assert fitted.t_ == stepped.t_ == 3 * len(X)
    jax.tree.map(np.testing.assert_array_equal, fitted.params_, stepped.params_)


def test_nested_parameters_get_set_clone(iris):
    X, y = iris
    net = NeuralNetClassifier(recipes.mlp(8, (4,)), optimizer="sgd", max_iter=3, random_state=0)
    net.set_params(optimizer__momentum=0.5, optimizer__learning_rate=0.05, model__hidden=(6,))
    params = net.get_params()
    assert params["optimizer__momentum"] == 0.5 and params["model__hidden"] == (6,)
    assert net.learning_rate == 0.05
    copy = clone(net)
    assert copy.get_params()["optimizer__momentum"] == 0.5
    copy.set_params(optimizer__momentum=0.0)
    assert net.optimizer_options == {"momentum": 0.5}  # the clone's options are its own
    net.fit(X, y)
    assert net.params_["mlp_0"]["dense_0"]["w"].shape == (4, 6)  # model__hidden applied


def test_grid_search_over_nested_parameters(iris):
    X, y = iris
    net = NeuralNetClassifier(recipes.mlp(8, (4,)), max_iter=10, random_state=0)
    grid = {"optimizer__learning_rate": [0.01, 0.05], "model__hidden": [(4,), (8,)]}
    search = GridSearchCV(net, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert (
        search.best_estimator_.get_params()["model__hidden"] == search.best_params_["model__hidden"]
    )
    assert search.score(X, y) > 0.6


def test_pickle_stores_the_description(iris):
    X, y = iris
    net = NeuralNetClassifier(recipes.mlp(8, (4,)), max_iter=5, random_state=0).fit(X, y)
    state = net.__getstate__()
    assert state["model"] == {"__jaxnet_description__": __import__("jaxnet").describe(net.model)}
    assert not hasattr(net, "diagnostics_")  # only with diagnostics=True
    restored = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(restored.predict_proba(X), net.predict_proba(X))


def test_diagnostics_one_argument_away(iris):
    """A deep logistic MLP's gradients vanish: diagnostics=True reports it after fit."""
    X, y = iris
    deep = MLPClassifier((8,) * 6, activation="logistic", max_iter=30, random_state=0,
                         diagnostics=True).fit(X, y)  # fmt: skip
    vanishing = [f for f in deep.diagnostics_ if f.kind == "vanishing"]
    assert vanishing and "dense_0" in vanishing[0].layers  # the layer farthest from the loss


def test_import_jaxnet_does_not_import_sklearn():
    code = "import sys, jaxnet; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
