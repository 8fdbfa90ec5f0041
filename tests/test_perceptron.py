"""The perceptron rule vs a NumPy loop, the convergence theorem's bound, and XOR's failure."""

import chex
import jax
import numpy as np
import pytest

from jaxnet.errors import DataError, ShapeError
from jaxnet.perceptron import Perceptron, predict, train_perceptron


def numpy_perceptron(x, y, epochs, lr):
    """Rosenblatt's rule, one example at a time, written plainly."""
    w, b, errors = np.zeros(x.shape[1]), 0.0, []
    for _ in range(epochs):
        mistakes = 0
        for xi, yi in zip(x, y, strict=True):
            y_hat = 1.0 if xi @ w + b >= 0 else 0.0
            w, b = w + lr * (yi - y_hat) * xi, b + lr * (yi - y_hat)
            mistakes += int(yi != y_hat)
        errors.append(mistakes)
    return w, b, np.array(errors)


def separable_data(n=80, margin=0.2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(4 * n, 2))
    w_star, b_star = np.array([1.0, -2.0]), 0.3
    score = x @ w_star + b_star
    keep = np.abs(score) / np.linalg.norm([*w_star, b_star]) > margin
    x, score = x[keep][:n], score[keep][:n]
    return x.astype(np.float32), (score > 0).astype(np.float32), np.array([*w_star, b_star])


def test_matches_a_numpy_loop():
    x, y, _ = separable_data()
    w, b, errors = train_perceptron(x, y, epochs=6, lr=0.5)
    w_np, b_np, errors_np = numpy_perceptron(x, y, 6, 0.5)
    chex.assert_trees_all_close((w, b), (w_np, b_np), atol=1e-5)
    np.testing.assert_array_equal(errors, errors_np)


def test_convergence_theorem_on_separable_data():
    x, y, w_star = separable_data()
    w, b, errors = train_perceptron(x, y, epochs=50)
    errors = np.asarray(errors)
    # Novikoff's bound on the total number of mistakes, with inputs augmented by a constant 1
    augmented = np.hstack([x, np.ones((len(x), 1))])
    radius = np.linalg.norm(augmented, axis=1).max()
    signed = 2 * y - 1
    gamma = (signed * (augmented @ w_star)).min() / np.linalg.norm(w_star)
    assert errors.sum() <= (radius / gamma) ** 2
    first_clean = int(np.argmax(errors == 0))
    assert errors[first_clean] == 0 and np.all(errors[first_clean:] == 0)  # converged, stays put
    np.testing.assert_array_equal(predict(w, b, x), y)


def test_cannot_learn_xor():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([0, 1, 1, 0], np.float32)
    w, b, errors = train_perceptron(x, y, epochs=30)
    # no line separates XOR, so every epoch makes a mistake and some point stays wrong
    assert np.all(np.asarray(errors) > 0)
    assert np.any(np.asarray(predict(w, b, x)) != y)


def test_shuffled_epochs_still_converge():
    x, y, _ = separable_data(seed=1)
    _, _, errors = train_perceptron(x, y, epochs=50, key=jax.random.key(3))
    assert np.asarray(errors)[-1] == 0


def test_several_units_are_independent_perceptrons():
    x, y0, _ = separable_data(seed=2)
    y1 = 1 - y0
    w, b, errors = train_perceptron(x, np.stack([y0, y1], axis=1), epochs=5)
    for k, yk in enumerate((y0, y1)):
        w_k, b_k, errors_k = numpy_perceptron(x, yk, 5, 1.0)
        chex.assert_trees_all_close((w[:, k], b[k]), (w_k, b_k), atol=1e-5)
    assert w.shape == (2, 2)
    layer = Perceptron(2)
    assert layer.init(jax.random.key(0), (2,))[0] == (2,)
    y_hat, _ = layer.apply({"w": w, "b": b}, {}, x)
    np.testing.assert_array_equal(y_hat, predict(w, b, x))


def test_bad_labels_and_shapes():
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(DataError, match="labels must be 0 or 1"):
        train_perceptron(x, np.array([0, 1, 2, 1]))
    with pytest.raises(ShapeError, match="expected x"):
        train_perceptron(x, np.array([0, 1, 1]))
