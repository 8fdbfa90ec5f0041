import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnet import losses
from jaxnet.errors import ShapeError

K = jax.random.split(jax.random.key(42), 4)
PRED = jax.random.normal(K[0], (16, 3)) * 3
TARGET = jax.random.normal(K[1], (16, 3)) * 3
LOGITS = jax.random.normal(K[2], (16, 5)) * 4
LABELS = jax.random.randint(K[3], (16,), 0, 5)
EXTREME = jnp.array([[1e4, -1e4, 0.0, 50.0, -50.0], [-1e4, 1e4, 1e4, 0.0, -1e4]])


def test_regression_losses_match_optax():
    np.testing.assert_allclose(
        losses.mse(PRED, TARGET), jnp.mean(optax.squared_error(PRED, TARGET)), rtol=1e-6
    )
    np.testing.assert_allclose(
        losses.mae(PRED, TARGET), jnp.mean(jnp.abs(PRED - TARGET)), rtol=1e-6
    )
    for delta in (0.5, 1.0, 3.0):
        np.testing.assert_allclose(
            losses.huber(PRED, TARGET, delta=delta),
            jnp.mean(optax.huber_loss(PRED, TARGET, delta=delta)),
            rtol=1e-6,
        )


def test_huber_closed_form_on_both_sides_of_delta():
    pred = jnp.array([[0.5], [3.0]])
    target = jnp.zeros((2, 1))
    per_example = losses.huber(pred, target, delta=1.0, reduction="none")
    np.testing.assert_allclose(per_example, [0.125, 2.5])


def test_reductions_and_per_example_values():
    per_example = losses.mse(PRED, TARGET, reduction="none")
    assert per_example.shape == (16,)
    np.testing.assert_allclose(per_example, ((PRED - TARGET) ** 2).mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(
        losses.mse(PRED, TARGET, reduction="sum"), per_example.sum(), rtol=1e-6
    )
    with pytest.raises(ValueError, match="reduction"):
        losses.mse(PRED, TARGET, reduction="avg")


def test_sparse_and_categorical_cross_entropy_match_optax():
    ref = optax.softmax_cross_entropy_with_integer_labels(LOGITS, LABELS)
    np.testing.assert_allclose(
        losses.sparse_categorical_cross_entropy(LOGITS, LABELS, reduction="none"),
        ref,
        rtol=1e-5,
        atol=1e-6,
    )
    one_hot = jax.nn.one_hot(LABELS, 5)
    np.testing.assert_allclose(
        losses.categorical_cross_entropy(LOGITS, one_hot),
        optax.softmax_cross_entropy(LOGITS, one_hot).mean(),
        rtol=1e-6,
    )
    soft = jax.nn.softmax(jax.random.normal(K[0], (16, 5)))
    np.testing.assert_allclose(
        losses.categorical_cross_entropy(LOGITS, soft),
        optax.softmax_cross_entropy(LOGITS, soft).mean(),
        rtol=1e-6,
    )


def test_cross_entropy_from_probabilities_equals_from_logits():
    probs = jax.nn.softmax(LOGITS / 4)
    np.testing.assert_allclose(
        losses.sparse_categorical_cross_entropy(probs, LABELS, from_logits=False),
        losses.sparse_categorical_cross_entropy(LOGITS / 4, LABELS),
        rtol=1e-5,
    )
    log_probs = jax.nn.log_softmax(LOGITS)
    np.testing.assert_allclose(
        losses.nll(log_probs, LABELS), -jnp.mean(log_probs[jnp.arange(16), LABELS]), rtol=1e-6
    )


def test_binary_cross_entropy_matches_optax_and_probability_form():
    labels = (jax.random.uniform(K[1], (16, 3)) > 0.5).astype(jnp.float32)
    ref = optax.sigmoid_binary_cross_entropy(PRED, labels).mean()
    np.testing.assert_allclose(losses.binary_cross_entropy(PRED, labels), ref, rtol=1e-6)
    probs = jax.nn.sigmoid(PRED / 3)
    closed = -jnp.mean(labels * jnp.log(probs) + (1 - labels) * jnp.log(1 - probs))
    np.testing.assert_allclose(
        losses.binary_cross_entropy(probs, labels, from_logits=False), closed, rtol=1e-5
    )


@pytest.mark.parametrize(
    "loss,target",
    [
        (losses.sparse_categorical_cross_entropy, jnp.array([1, 3])),
        (losses.categorical_cross_entropy, jax.nn.one_hot(jnp.array([1, 4]), 5)),
        (losses.binary_cross_entropy, jnp.array([[1.0, 0, 1, 0, 1], [0, 1, 0, 1, 1]])),
    ],
)
def test_extreme_logits_give_finite_losses_and_gradients(loss, target):
    value, grad = jax.value_and_grad(loss)(EXTREME, target)
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert value > 1e3  # confidently wrong logits are penalised, not clipped to 0


def test_extreme_probabilities_are_clipped_not_infinite():
    probs = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    labels = jnp.array([1, 0])
    value = losses.sparse_categorical_cross_entropy(probs, labels, from_logits=False)
    np.testing.assert_allclose(value, -np.log(losses.EPSILON), rtol=1e-5)


def test_hinge_losses_match_optax_and_map_01_targets():
    scores = PRED[:, :1]
    signs = jnp.where(TARGET[:, :1] > 0, 1.0, -1.0)
    np.testing.assert_allclose(
        losses.hinge(scores, signs), optax.hinge_loss(scores, signs).mean(), rtol=1e-6
    )
    np.testing.assert_allclose(losses.hinge(scores, (signs + 1) / 2), losses.hinge(scores, signs))
    np.testing.assert_allclose(
        losses.squared_hinge(scores, signs),
        jnp.mean(jnp.maximum(0, 1 - signs * scores) ** 2),
        rtol=1e-6,
    )


def test_shape_mismatch_names_the_loss():
    with pytest.raises(ShapeError, match=r"mean_squared_error.*\(16, 3\).*\(16,\)"):
        losses.mse(PRED, TARGET[:, 0])
    with pytest.raises(ShapeError, match="sparse_categorical_cross_entropy"):
        losses.sparse_categorical_cross_entropy(LOGITS, LABELS.astype(jnp.float32))


def test_get_by_name():
    assert losses.get("huber") is losses.huber
    with pytest.raises(ValueError, match="mse"):
        losses.get("l2")
