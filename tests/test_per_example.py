"""per_example_gradients with dropout: each example its own mask (fold_in(key, i)), and their mean
is exactly the batch gradient with those masks, computed here by hand in one batched pass."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxnet
from jaxnet import losses
from jaxnet.random import bernoulli
from jaxnet.train.per_example import per_example_gradients

RATE = 0.5
MODEL = jaxnet.serial(
    jaxnet.Dense(16), jaxnet.activations.Relu(), jaxnet.Dropout(RATE), jaxnet.Dense(3)
)
LOSS = losses.sparse_categorical_cross_entropy


def data(n=8):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 3, n)


def test_mean_of_per_example_gradients_is_the_batch_gradient_with_their_masks(key):
    x, y = data()
    params, state = jaxnet.init_model(MODEL, key, (5,))
    grads = jax.jit(
        lambda p: per_example_gradients(MODEL, LOSS, p, state, x, y, key=key, train=True)
    )(params)

    # Example i's mask: serial hands child 2 (the Dropout) fold_in(its key, 2), and example i
    # runs with fold_in(key, i). The batch below uses exactly these masks, one row each.
    def mask(i):
        return bernoulli(jax.random.fold_in(jax.random.fold_in(key, i), 2), 1 - RATE, (16,))

    @jax.jit
    def batch_gradient(p):
        masks = jax.vmap(mask)(jnp.arange(len(x)))

        def batch_loss(p):
            hidden = jax.nn.relu(x @ p["dense_0"]["w"] + p["dense_0"]["b"])
            hidden = jnp.where(masks, hidden / (1 - RATE), 0.0)
            return LOSS(hidden @ p["dense_3"]["w"] + p["dense_3"]["b"], y)

        return jax.grad(batch_loss)(p), masks

    expected, masks = batch_gradient(params)
    assert 0 < float(masks.mean()) < 1 and not bool(jnp.all(masks == masks[0]))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a.mean(0), b, rtol=1e-5, atol=1e-7),
        grads,
        expected,
    )


def test_identical_examples_get_different_masks_only_in_training(key):
    x, y = data(2)
    x, y = np.repeat(x[:1], 2, axis=0), np.repeat(y[:1], 2)
    params, state = jaxnet.init_model(MODEL, key, (5,))
    noisy = per_example_gradients(MODEL, LOSS, params, state, x, y, key=key, train=True)
    plain = per_example_gradients(MODEL, LOSS, params, state, x, y, key=key, train=False)
    w_noisy, w_plain = noisy["dense_0"]["w"], plain["dense_0"]["w"]
    assert not np.allclose(w_noisy[0], w_noisy[1])  # two masks
    np.testing.assert_array_equal(w_plain[0], w_plain[1])
