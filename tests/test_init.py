import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet import init

SHAPE = (400, 300)  # 120k samples: the variance is known to ~0.5%

CASES = {
    "glorot_normal": 2.0 / (400 + 300),
    "glorot_uniform": 2.0 / (400 + 300),
    "he_normal": 2.0 / 400,
    "he_uniform": 2.0 / 400,
    "lecun_normal": 1.0 / 400,
    "lecun_uniform": 1.0 / 400,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_variance_matches_the_textbook_formula(name):
    w = np.asarray(init.get(name)(jax.random.key(3), SHAPE))
    assert w.shape == SHAPE and w.dtype == np.float32
    assert abs(w.mean()) < 0.02 * math.sqrt(CASES[name])
    np.testing.assert_allclose(w.var(), CASES[name], rtol=0.02)


def test_normal_is_truncated_at_two_std_and_uniform_is_bounded():
    w = np.asarray(init.he_normal(jax.random.key(0), SHAPE))
    std = math.sqrt(2.0 / 400) / 0.87962566103423978
    assert np.abs(w).max() <= 2 * std + 1e-6
    u = np.asarray(init.glorot_uniform(jax.random.key(0), SHAPE))
    limit = math.sqrt(6.0 / 700)
    assert np.abs(u).max() <= limit and np.abs(u).max() > 0.99 * limit


def test_conv_fans_include_the_receptive_field():
    assert init.fans((3, 3, 16, 32)) == (144.0, 288.0)
    assert init.fans((5, 8, 4)) == (40.0, 20.0)
    w = np.asarray(init.he_normal(jax.random.key(1), (3, 3, 64, 128)))
    np.testing.assert_allclose(w.var(), 2.0 / (9 * 64), rtol=0.02)


def test_matches_jax_initializers_in_distribution():
    ours = np.asarray(init.lecun_normal(jax.random.key(5), SHAPE))
    ref = np.asarray(jax.nn.initializers.lecun_normal()(jax.random.key(6), SHAPE))
    np.testing.assert_allclose(ours.std(), ref.std(), rtol=0.02)


def test_orthogonal_columns_are_orthonormal_and_constants():
    q = init.orthogonal(2.0)(jax.random.key(0), (50, 20))
    np.testing.assert_allclose(q.T @ q, 4.0 * np.eye(20), atol=1e-4)
    wide = init.orthogonal()(jax.random.key(0), (10, 30))
    np.testing.assert_allclose(wide @ wide.T, np.eye(10), atol=1e-5)
    assert (init.zeros(None, (3,)) == 0).all() and (init.ones(None, (3,)) == 1).all()
    assert (init.constant(-5.0)(None, (2, 2)) == -5.0).all()


def test_dense_accepts_a_name_or_a_function_and_records_it(key):
    by_name = jaxnet.Dense(10, kernel_init="he_normal")
    by_fn = jaxnet.Dense(10, kernel_init=init.he_normal)
    a = by_name.init(key, (5,))[1]["w"]
    b = by_fn.init(key, (5,))[1]["w"]
    np.testing.assert_array_equal(a, b)
    assert by_name.info["kernel_init"] == by_fn.info["kernel_init"] == "he_normal"
    with pytest.raises(jaxnet.errors.ConfigError, match="he_normal"):
        jaxnet.Dense(10, kernel_init="he_gaussian")


def test_dtype_is_a_parameter(key):
    w = init.glorot_uniform(key, (3, 4), jnp.bfloat16)
    assert w.dtype == jnp.bfloat16


def test_recommended_for_follows_the_course_notes():
    """The notes: He for ReLU and leaky ReLU, LeCun for SELU and ELU, Glorot for softmax,
    logistic and tanh (and for a linear layer)."""
    expected = {
        "relu": "he_normal",
        "leaky_relu": "he_normal",
        "selu": "lecun_normal",
        "elu": "lecun_normal",
        "softmax": "glorot_uniform",
        "logistic": "glorot_uniform",
        "sigmoid": "glorot_uniform",
        "tanh": "glorot_uniform",
        None: "glorot_uniform",
        "linear": "glorot_uniform",
    }
    assert {a: init.recommended_for(a) for a in expected} == expected
    assert all(init.recommended_for(a) for a in jaxnet.activations.NAMES)  # every activation
    with pytest.raises(jaxnet.errors.ConfigError, match="mish"):
        init.recommended_for("mish")
    recipe = jaxnet.classifier_mlp(3, activation="elu")  # recipes read the same table
    assert recipe.model.info["children"]["dense_0"].info["kernel_init"] == "lecun_normal"


@pytest.mark.parametrize(
    "initializer",
    [
        init.he_normal,
        init.xavier_uniform,
        init.zeros,
        init.ones,
        init.normal(0.3),
        init.constant(-0.5),
        init.orthogonal(2.0),
        init.variance_scaling(0.5, "fan_out", "uniform"),
    ],
    ids=lambda f: f.__name__,
)
def test_named_initializers_are_rebuilt_from_their_spec(initializer):
    spec = init.spec_of(initializer)
    assert isinstance(spec, str)
    key = jax.random.key(4)
    np.testing.assert_array_equal(init.get(spec)(key, (6, 5)), initializer(key, (6, 5)))


def test_custom_initializers_have_no_spec():
    def mine(key, shape, dtype=jnp.float32):
        return jnp.ones(shape, dtype)

    assert isinstance(init.spec_of(mine), jaxnet.core.Unrecorded)
    with pytest.raises(jaxnet.errors.ConfigError, match="normal"):
        init.get("normal(")
