import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet import losses, metrics


def test_multiclass_recipe_follows_the_textbook_table(key):
    recipe = jaxnet.classifier_mlp(10, hidden=(100, 100))
    shape, params, _ = recipe.model.init(key, (64,))
    assert shape == (10,)
    kinds = [c.info.get("activation") for c in recipe.model.info["children"].values()]
    assert kinds == [None, "relu", None, "relu", None]
    assert recipe.model.info["children"]["dense_0"].info["kernel_init"] == "he_normal"
    assert recipe.loss is losses.sparse_categorical_cross_entropy
    assert recipe.metrics == {"accuracy": metrics.accuracy}
    logits = jax.random.normal(key, (4, 10))
    np.testing.assert_allclose(recipe.output_activation(logits), jax.nn.softmax(logits), rtol=1e-6)


def test_binary_and_multilabel_use_logistic_units_and_bce(key):
    binary = jaxnet.classifier_mlp(1, task="binary")
    assert binary.model.init(key, (5,))[0] == (1,)
    assert binary.loss is losses.binary_cross_entropy
    multilabel = jaxnet.classifier_mlp(4, task="multilabel")
    assert multilabel.model.init(key, (5,))[0] == (4,)
    assert set(multilabel.metrics) == {"hamming_accuracy", "exact_match"}
    z = jnp.linspace(-5, 5, 8)
    np.testing.assert_allclose(multilabel.output_activation(z), jax.nn.sigmoid(z), rtol=1e-6)
    assert jaxnet.classifier_mlp(10, labels="one_hot").loss is losses.categorical_cross_entropy


def test_selu_recipe_uses_lecun_and_sigmoid_uses_glorot():
    selu = jaxnet.classifier_mlp(3, activation="selu").model.info["children"]["dense_0"]
    sig = jaxnet.classifier_mlp(3, activation="sigmoid").model.info["children"]["dense_0"]
    assert (
        selu.info["kernel_init"] == "lecun_normal" and sig.info["kernel_init"] == "glorot_uniform"
    )


@pytest.mark.parametrize("output", ["sigmoid", "tanh"])
def test_regression_output_scaled_to_a_range(key, output):
    recipe = jaxnet.regression_mlp(2, hidden=(8,), output=output, output_range=(-3.0, 5.0))
    _, params, state = recipe.model.init(key, (4,))
    y, _ = recipe.model.apply(params, state, 100 * jax.random.normal(key, (256, 4)))
    assert y.shape == (256, 2)
    assert float(y.min()) >= -3.0 and float(y.max()) <= 5.0
    assert float(y.max() - y.min()) > 4.0  # the range is used, not squashed


@pytest.mark.parametrize("output", ["relu", "softplus"])
def test_regression_positive_outputs(key, output):
    recipe = jaxnet.regression_mlp(1, hidden=(8,), output=output, loss="huber")
    _, params, state = recipe.model.init(key, (4,))
    y, _ = recipe.model.apply(params, state, jax.random.normal(key, (64, 4)))
    assert float(y.min()) >= 0.0
    assert recipe.loss is losses.huber


def test_bad_recipe_arguments_are_config_errors():
    with pytest.raises(jaxnet.errors.ConfigError, match="output_range"):
        jaxnet.regression_mlp(output="sigmoid")
    with pytest.raises(jaxnet.errors.ConfigError, match="task"):
        jaxnet.classifier_mlp(3, task="ordinal")
    with pytest.raises(jaxnet.errors.ConfigError, match="loss"):
        jaxnet.regression_mlp(loss="logcosh")
