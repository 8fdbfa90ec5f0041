import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet import activations as A

X = jnp.concatenate([jnp.linspace(-30.0, 30.0, 601), jnp.array([-1e4, -80.0, 0.0, 80.0, 1e4])])

REFERENCE = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "softplus": jax.nn.softplus,
    "swish": jax.nn.swish,
    "silu": jax.nn.silu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_matches_jax_nn_values_and_gradients(name):
    ours, ref = A.get(name), REFERENCE[name]
    np.testing.assert_allclose(ours(X), ref(X), rtol=1e-6, atol=1e-6)
    grad_ours = jax.vmap(jax.grad(ours))(X)
    grad_ref = jax.vmap(jax.grad(ref))(X)
    np.testing.assert_allclose(grad_ours, grad_ref, rtol=1e-5, atol=1e-6)
    assert np.isfinite(grad_ours).all()


def test_sigmoid_matches_the_closed_form_in_float64():
    x = np.asarray(X, np.float64)
    with np.errstate(over="ignore"):  # exp(1e4) = inf gives s = 0, the right limit
        s = 1.0 / (1.0 + np.exp(-x))
    normal = s > np.finfo(np.float32).tiny
    np.testing.assert_allclose(np.asarray(A.sigmoid(X))[normal], s[normal], rtol=3e-7)
    np.testing.assert_allclose(jax.vmap(jax.grad(A.sigmoid))(X), s * (1 - s), rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(A.sigmoid(X))[~normal] < 1e-30)


@pytest.mark.parametrize("alpha", [0.01, 0.2, 0.3])
def test_leaky_relu_matches_jax_nn(alpha):
    np.testing.assert_allclose(A.leaky_relu(X, alpha), jax.nn.leaky_relu(X, alpha), rtol=1e-7)


def test_elu_alpha_and_gelu_approximate():
    np.testing.assert_allclose(A.elu(X, 0.5), jax.nn.elu(X, 0.5), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        A.gelu(X, approximate=True), jax.nn.gelu(X, approximate=True), rtol=1e-5, atol=1e-6
    )


def test_softmax_and_log_softmax_are_stable_for_huge_logits():
    logits = jax.random.normal(jax.random.key(1), (7, 10)) * 1e3
    np.testing.assert_allclose(A.softmax(logits), jax.nn.softmax(logits), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(A.log_softmax(logits), jax.nn.log_softmax(logits), rtol=1e-6)
    np.testing.assert_allclose(A.softmax(logits).sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        A.softmax(logits, axis=0), jax.nn.softmax(logits, axis=0), rtol=1e-5, atol=1e-7
    )


def test_step_is_heaviside_with_zero_gradient():
    np.testing.assert_array_equal(A.step(jnp.array([-2.0, -1e-9, 0.0, 3.0])), [0, 0, 1, 1])
    assert jax.grad(A.step)(0.5) == 0.0


def test_layers_wrap_functions_and_record_their_kind(key):
    x = jax.random.normal(key, (4, 3))
    for layer, fn in [
        (jaxnet.activations.Relu(), jax.nn.relu),
        (jaxnet.activations.LeakyRelu(0.2), lambda v: jax.nn.leaky_relu(v, 0.2)),
        (jaxnet.activations.Softmax(), jax.nn.softmax),
        (jaxnet.activations.Selu(), jax.nn.selu),
    ]:
        shape, params, state = layer.init(key, (3,))
        y, _ = layer.apply(params, state, x)
        assert shape == (3,) and params == {} and state == {}
        np.testing.assert_allclose(y, fn(x), rtol=1e-6)
    assert jaxnet.activations.Relu().info["kind"] == "relu"
    assert jaxnet.activations.Sigmoid().info["kind"] == "saturating"


def test_unknown_activation_lists_the_valid_names():
    with pytest.raises(jaxnet.errors.ConfigError, match="leaky_relu"):
        jaxnet.Activation("rectifier")
