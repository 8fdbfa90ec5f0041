import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import losses, optim
from jaxnet.core import init_model, serial
from jaxnet.errors import ConfigError, ShapeError
from jaxnet.layers.dense import Dense
from jaxnet.layers.dropout import Dropout
from jaxnet.layers.normalization import BatchNorm, LayerNorm
from jaxnet.train.fit import fit

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _random_affine(key, features, center=True, scale=True):
    k1, k2 = jax.random.split(key)
    params = {}
    if scale:
        params["scale"] = 1.0 + 0.5 * jax.random.normal(k1, (features,))
    if center:
        params["bias"] = jax.random.normal(k2, (features,))
    return params


def _batches(key, shape, n=3):
    # Offset and spread differ per feature so that the statistics are non-trivial.
    keys = jax.random.split(key, n)
    offset = jnp.arange(shape[-1], dtype=jnp.float32)
    return [3.0 + offset + (1.0 + offset) * jax.random.normal(k, shape) for k in keys]


@pytest.mark.parametrize(
    "shape, axis, momentum, epsilon, center, scale",
    [
        ((16, 5), -1, 0.99, 1e-3, True, True),
        ((16, 5), -1, 0.9, 1e-5, True, True),
        ((8, 4, 4, 3), -1, 0.8, 1e-3, True, True),
        ((8, 3, 4, 4), 1, 0.9, 1e-3, True, True),  # channels-first: features on axis 1
        ((16, 5), -1, 0.9, 1e-3, False, True),
        ((16, 5), -1, 0.9, 1e-3, True, False),
    ],
)
def test_batch_norm_matches_flax_in_training_and_inference(
    key, shape, axis, momentum, epsilon, center, scale
):
    features = shape[axis]
    ours = BatchNorm(momentum, epsilon, axis=axis, center=center, scale=scale)
    theirs = nn.BatchNorm(
        axis=axis,
        momentum=momentum,
        epsilon=epsilon,
        use_bias=center,
        use_scale=scale,
        use_fast_variance=False,
    )
    batches = _batches(key, shape)
    train_ours = jax.jit(lambda p, s, x: ours.apply(p, s, x, train=True))
    train_theirs = jax.jit(
        lambda v, x: theirs.apply(v, x, use_running_average=False, mutable=["batch_stats"])
    )
    _, _, state = ours.init(key, shape[1:])
    params = _random_affine(jax.random.fold_in(key, 1), features, center, scale)
    flax_stats = theirs.init(key, batches[0], use_running_average=True)["batch_stats"]
    chex.assert_trees_all_close(state, flax_stats)

    for x in batches:  # several training steps: batch statistics out, running averages updated
        y, state = train_ours(params, state, x)
        y_ref, updates = train_theirs({"params": params, "batch_stats": flax_stats}, x)
        flax_stats = updates["batch_stats"]
        chex.assert_trees_all_close(y, y_ref, **TOL)
        chex.assert_trees_all_close(state, flax_stats, **TOL)

    x = _batches(jax.random.fold_in(key, 2), shape, 1)[0]
    y, eval_state = ours.apply(params, state, x, train=False)  # running averages, state unchanged
    y_ref = theirs.apply({"params": params, "batch_stats": flax_stats}, x, use_running_average=True)
    chex.assert_trees_all_close(y, y_ref, **TOL)
    chex.assert_trees_all_equal(eval_state, state)


def test_batch_norm_gradients_match_flax(key):
    x = _batches(key, (12, 4), 1)[0]
    params = _random_affine(key, 4)
    weights = jax.random.normal(jax.random.fold_in(key, 3), (12, 4))
    layer = BatchNorm(0.9, 1e-3)
    _, _, state = layer.init(key, (4,))
    reference = nn.BatchNorm(momentum=0.9, epsilon=1e-3, use_fast_variance=False)

    def ours(p, x):
        return jnp.sum(weights * layer.apply(p, state, x, train=True)[0])

    def theirs(p, x):
        y, _ = reference.apply(
            {"params": p, "batch_stats": state},
            x,
            use_running_average=False,
            mutable=["batch_stats"],
        )
        return jnp.sum(weights * y)

    chex.assert_trees_all_close(
        jax.grad(ours, argnums=(0, 1))(params, x),
        jax.grad(theirs, argnums=(0, 1))(params, x),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize("shape", [(6, 7), (4, 3, 5)])
def test_layer_norm_matches_flax(key, shape):
    x = _batches(key, shape, 1)[0]
    params = _random_affine(jax.random.fold_in(key, 1), shape[-1])
    y, state = LayerNorm(1e-3).apply(params, {}, x)
    y_ref = nn.LayerNorm(epsilon=1e-3, use_fast_variance=False).apply({"params": params}, x)
    chex.assert_trees_all_close(y, y_ref, **TOL)
    assert state == {}
    y_train, _ = LayerNorm(1e-3).apply(params, {}, x, train=True)
    chex.assert_trees_all_equal(y_train, y)


def test_default_parameters_and_state(key):
    _, params, state = BatchNorm().init(key, (4, 4, 3))
    chex.assert_trees_all_equal(params, {"scale": jnp.ones(3), "bias": jnp.zeros(3)})
    chex.assert_trees_all_equal(state, {"mean": jnp.zeros(3), "var": jnp.ones(3)})
    _, params, state = LayerNorm(center=False).init(key, (7,))
    chex.assert_trees_all_equal(params, {"scale": jnp.ones(7)})
    assert state == {}


def test_batch_norm_on_one_example_in_training_is_a_clear_error(key):
    model = serial(Dense(3), BatchNorm())
    params, state = init_model(model, key, (2,))
    with pytest.raises(ShapeError) as info:
        model.apply(params, state, jnp.ones((1, 2)), train=True)
    assert info.value.path == ("serial", "batch_norm_1") and "at least 2" in str(info.value)
    y, _ = model.apply(params, state, jnp.ones((1, 2)), train=False)  # inference is fine
    assert y.shape == (1, 3)


def test_bad_arguments_are_config_errors(key):
    with pytest.raises(ConfigError, match="momentum"):
        BatchNorm(momentum=1.5)
    with pytest.raises(ConfigError, match="epsilon"):
        BatchNorm(epsilon=0.0)
    with pytest.raises(ConfigError, match="axis"):
        BatchNorm(axis=0).init(key, (3,))
    with pytest.raises(ShapeError, match="5 features"):
        layer = BatchNorm()
        _, params, state = layer.init(key, (5,))
        layer.apply(params, state, jnp.ones((4, 6)), train=True)


def test_fit_updates_running_statistics_before_and_after_activations(key):
    x = np.asarray(jax.random.normal(key, (128, 3))) * 4.0 + 2.0
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 1.0
    model = serial(
        Dense(16),
        BatchNorm(),
        jax.nn.relu,
        Dense(16),
        jax.nn.relu,
        BatchNorm(),
        Dropout(0.1),
        Dense(1),
    )
    ts, history = fit(model, losses.mse, optim.adam(0.01), x, y, epochs=5, batch_size=16, verbose=0)
    assert history["loss"][-1] < history["loss"][0]
    # The running means moved away from their initial zeros towards the features' means.
    for name in ("batch_norm_1", "batch_norm_5"):
        assert float(jnp.abs(ts.state[name]["mean"]).max()) > 0.1
    _, fresh_state = init_model(model, key, (3,))
    assert jax.tree.structure(ts.state) == jax.tree.structure(fresh_state)
