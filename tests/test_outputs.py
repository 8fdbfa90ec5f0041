"""predict(recipe, ..., output=): probabilities, classes and logits against jax.nn and NumPy."""

import jax
import numpy as np
import pytest

import jaxnet
from jaxnet import activations
from jaxnet.errors import ConfigError
from jaxnet.recipes import Recipe


def _setup(recipe, n_features=5, n=11, seed=0):
    params, state = jaxnet.init_model(recipe.model, jax.random.key(seed), (n_features,))
    x = np.random.default_rng(seed).normal(size=(n, n_features)).astype(np.float32) * 3
    logits = np.asarray(recipe.model.apply(params, state, x)[0])
    return params, state, x, logits


def test_multiclass_probabilities_classes_and_logits():
    recipe = jaxnet.classifier_mlp(4, hidden=(8,))
    params, state, x, logits = _setup(recipe)
    probabilities = jaxnet.predict(recipe, params, state, x)  # the default for a classifier
    np.testing.assert_allclose(probabilities, jax.nn.softmax(logits), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    same = jaxnet.predict(recipe, params, state, x, output="probabilities")
    np.testing.assert_array_equal(same, probabilities)
    classes = jaxnet.predict(recipe, params, state, x, output="classes")
    assert classes.dtype == np.int32 and classes.shape == (11,)
    np.testing.assert_array_equal(classes, np.argmax(logits, axis=1))
    raw = jaxnet.predict(recipe, params, state, x, output="logits")
    np.testing.assert_allclose(raw, logits, rtol=1e-6, atol=1e-6)
    plain = jaxnet.predict(recipe.model, params, state, x)  # a plain model: its outputs
    np.testing.assert_array_equal(plain, raw)


def test_binary_and_multilabel_threshold_the_sigmoid():
    binary = jaxnet.classifier_mlp(1, hidden=(8,), task="binary")
    params, state, x, logits = _setup(binary, n=40)
    p = jaxnet.predict(binary, params, state, x)
    np.testing.assert_allclose(p, jax.nn.sigmoid(logits), rtol=1e-6, atol=1e-7)
    classes = jaxnet.predict(binary, params, state, x, output="classes")
    assert classes.shape == (40,)  # like the integer labels it was trained on
    np.testing.assert_array_equal(classes, (np.asarray(p)[:, 0] >= 0.5).astype(np.int32))
    assert 0 < classes.sum() < 40  # both classes occur, so the threshold is exercised

    multilabel = jaxnet.classifier_mlp(3, hidden=(8,), task="multilabel")
    params, state, x, logits = _setup(multilabel, n=40)
    classes = jaxnet.predict(multilabel, params, state, x, output="classes")
    assert classes.shape == (40, 3)
    np.testing.assert_array_equal(classes, (jax.nn.sigmoid(logits) >= 0.5).astype(np.int32))


def test_regression_recipe_predicts_values_and_refuses_classes():
    recipe = jaxnet.regression_mlp(2, hidden=(8,), output="softplus")
    params, state, x, outputs = _setup(recipe)
    np.testing.assert_allclose(jaxnet.predict(recipe, params, state, x), outputs, rtol=1e-6)
    assert np.all(outputs > 0)  # the softplus is inside the model
    with pytest.raises(ConfigError, match="regression model predicts values"):
        jaxnet.predict(recipe, params, state, x, output="probabilities")


def test_a_custom_recipe_without_a_recorded_task_uses_its_activation():
    model = jaxnet.serial(jaxnet.Dense(3))
    recipe = Recipe(model, jaxnet.losses.sparse_categorical_cross_entropy, {}, activations.softmax)
    params, state, x, logits = _setup(recipe)
    np.testing.assert_array_equal(
        jaxnet.predict(recipe, params, state, x, output="classes"), np.argmax(logits, axis=1)
    )


def test_bad_output_requests_are_clear_errors():
    recipe = jaxnet.classifier_mlp(3, hidden=(4,))
    params, state, x, _ = _setup(recipe)
    with pytest.raises(ConfigError, match="output must be one of"):
        jaxnet.predict(recipe, params, state, x, output="proba")
    with pytest.raises(ConfigError, match="pass the recipe"):
        jaxnet.predict(recipe.model, params, state, x, output="probabilities")
