"""describe/build: every built-in layer and combinator survives JSON and rebuilds bit for bit.

The reference for each round trip is the original model: the rebuilt one, initialised with the
same key, must give the same params, state and outputs (training mode, same key, so dropout masks
match too).
"""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet import activations, init, layers, models, recipes, registry
from jaxnet.core import Layer, serial
from jaxnet.errors import ConfigError
from jaxnet.regularizers import ActivityRegularization
from jaxnet.topology import branch, concat, parallel, residual, select, wide_and_deep


def _inputs(shape, seed=0):
    """A batch of 3 standard-normal inputs for a shape, or a tuple/dict of shapes."""
    if isinstance(shape, dict):
        return {k: _inputs(v, seed + i) for i, (k, v) in enumerate(sorted(shape.items()))}
    if shape and isinstance(shape[0], tuple):
        return tuple(_inputs(s, seed + i) for i, s in enumerate(shape))
    return jnp.asarray(np.random.default_rng(seed).normal(size=(3, *shape)), jnp.float32)


# (id, model factory, per-example input shape): every built-in layer, cell and combinator.
CASES = [
    ("dense", lambda: layers.Dense(3, kernel_init="he_normal", name="d"), (5,)),
    (
        "dense_options",
        lambda: layers.Dense(
            3, kernel_init=init.normal(0.3), bias_init=init.constant(0.1), use_bias=True
        ),
        (5,),
    ),
    ("dense_no_bias", lambda: layers.Dense(2, use_bias=False, kernel_init="lecun_uniform"), (4,)),
    (
        "dense_variance_scaling",
        lambda: layers.Dense(2, kernel_init=init.variance_scaling(0.5, "fan_out", "uniform")),
        (4,),
    ),
    ("conv1d", lambda: layers.Conv1D(4, 3, padding="SAME", dilation=2), (6, 2)),
    (
        "conv2d",
        lambda: layers.Conv2D(4, (3, 2), strides=2, padding=((1, 1), (0, 1)), groups=2),
        (6, 6, 2),
    ),
    ("conv3d", lambda: layers.conv.Conv(2, 2, rank=3), (3, 3, 3, 1)),
    ("max_pool", lambda: layers.MaxPool(2), (4, 4, 2)),
    ("avg_pool", lambda: layers.AvgPool((2, 2), strides=1, padding="SAME"), (4, 4, 2)),
    ("global_max_pool", lambda: layers.GlobalMaxPool(), (4, 4, 2)),
    ("global_avg_pool", lambda: layers.GlobalAvgPool(), (4, 4, 2)),
    ("upsample", lambda: layers.UpSample((2, 1)), (2, 2, 1)),
    ("flatten", lambda: layers.Flatten(), (2, 3)),
    ("dropout", lambda: layers.Dropout(0.5), (6,)),
    ("gaussian_dropout", lambda: layers.GaussianDropout(0.3), (6,)),
    ("gaussian_noise", lambda: layers.GaussianNoise(0.1), (6,)),
    ("alpha_dropout", lambda: layers.AlphaDropout(0.2), (6,)),
    ("random_shift", lambda: layers.RandomShift(1), (4, 4, 1)),
    ("rescale", lambda: layers.Rescale(1 / 255, offset=-0.5), (4, 4, 1)),
    ("batch_norm", lambda: layers.BatchNorm(0.9, 1e-4, center=False), (3,)),
    ("layer_norm", lambda: layers.LayerNorm(scale=False), (3,)),
    ("simple_rnn", lambda: layers.RNN(layers.SimpleRNNCell(3, activation="relu")), (5, 2)),
    ("simple_rnn_jnp_tanh", lambda: layers.RNN(layers.SimpleRNNCell(3)), (5, 2)),
    ("gru", lambda: layers.RNN(layers.GRUCell(3, name="enc"), return_sequences=True), (5, 2)),
    (
        "lstm",
        lambda: layers.RNN(layers.LSTMCell(3, unit_forget_bias=False), reverse=True, name="r"),
        (5, 2),
    ),
    (
        "bidirectional",
        lambda: layers.Bidirectional(
            layers.GRUCell(2), layers.LSTMCell(3), return_sequences=True, name="bi"
        ),
        (5, 2),
    ),
    *[(f"activation_{n}", lambda n=n: activations.Activation(n), (4,)) for n in activations.NAMES],
    ("leaky_relu_alpha", lambda: jaxnet.activations.LeakyRelu(0.2), (4,)),
    ("elu_alpha", lambda: jaxnet.activations.Elu(0.5), (4,)),
    ("gelu_tanh", lambda: jaxnet.activations.Gelu(approximate=True), (4,)),
    ("softmax_axis", lambda: jaxnet.activations.Softmax(axis=1), (2, 4)),
    ("activity_regularization", lambda: ActivityRegularization(0.01, 0.02), (4,)),
    ("perceptron", lambda: jaxnet.perceptron.Perceptron(2), (4,)),
    (
        "serial",
        lambda: serial(layers.Dense(3), jaxnet.activations.Relu(), layers.Dense(2), name="net"),
        (4,),
    ),
    ("jaxnet_function", lambda: serial(layers.Dense(3), activations.elu), (4,)),
    (
        "parallel",
        lambda: serial(parallel(layers.Dense(2), layers.Dense(3)), concat()),
        ((2,), (3,)),
    ),
    (
        "branch",
        lambda: serial(branch(layers.Dense(2), jaxnet.activations.Tanh()), concat(axis=-1)),
        (4,),
    ),
    ("select", lambda: serial(select("b"), layers.Dense(2)), {"a": (2,), "b": (3,)}),
    ("select_index", lambda: serial(select(1), layers.Dense(2)), ((2,), (3,))),
    (
        "residual_identity",
        lambda: residual(serial(layers.Dense(4), jaxnet.activations.Relu())),
        (4,),
    ),
    ("residual_auto_projection", lambda: residual(layers.Dense(5)), (4,)),
    (
        "residual_projection",
        lambda: residual(
            layers.Conv2D(3, 3, strides=2, padding="SAME"),
            projection=layers.Conv2D(3, 1, strides=2),
        ),
        (4, 4, 2),
    ),
    (
        "wide_and_deep",
        lambda: wide_and_deep("wide", "deep", deep_hidden=(3, 2), n_outputs=2, activation="selu"),
        {"deep": (3,), "wide": (2,)},
    ),
    ("mlp", lambda: recipes.mlp(3, (4,), "tanh", dropout=0.1, batch_norm=True), (5,)),
    ("mlp_selu", lambda: recipes.mlp(2, (4, 4), "selu", dropout=0.2), (5,)),
    ("scaled_output", lambda: recipes.scaled_output("tanh", -2.0, 3.0), (4,)),
    (
        "regression_mlp_model",
        lambda: jaxnet.regression_mlp(1, (4,), output="sigmoid", output_range=(0.0, 5.0)).model,
        (3,),
    ),
    (
        "dense_autoencoder",
        lambda: models.dense_autoencoder(6, 2, hidden=(4,), output_activation="sigmoid").model,
        (6,),
    ),
    ("conv_autoencoder", lambda: models.conv_autoencoder((4, 4, 1), filters=(2,)).model, (4, 4, 1)),
]


def _round_trip(model):
    text = json.dumps(jaxnet.describe(model))  # JSON, not just a dict
    return jaxnet.build(json.loads(text))


@pytest.mark.parametrize("make, input_shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_round_trip_rebuilds_the_same_model(make, input_shape):
    model = make()
    rebuilt = _round_trip(model)
    assert jaxnet.describe(rebuilt) == jaxnet.describe(model)
    assert rebuilt.name == model.name and repr(rebuilt) == repr(model)
    key = jax.random.key(7)
    out, params, state = model.init(key, input_shape)
    out2, params2, state2 = rebuilt.init(key, input_shape)
    assert out2 == out
    chex.assert_trees_all_equal(params2, params)
    chex.assert_trees_all_equal(state2, state)
    x, train_key = _inputs(input_shape), jax.random.key(3)  # training: dropout masks too
    expected = model.apply(params, state, x, key=train_key, train=True)
    chex.assert_trees_all_equal(
        rebuilt.apply(params, state, x, key=train_key, train=True), expected
    )


@pytest.mark.parametrize(
    "fn, name",
    [
        (jax.nn.relu, "relu"),
        (jax.nn.sigmoid, "sigmoid"),
        (jnp.tanh, "tanh"),
        (jax.nn.elu, "elu"),
        (jax.nn.selu, "selu"),
        (jax.nn.leaky_relu, "leaky_relu"),
        (jax.nn.softplus, "softplus"),
        (jax.nn.silu, "silu"),
        (jax.nn.gelu, "gelu"),
        (jax.nn.softmax, "softmax"),
        (jax.nn.log_softmax, "log_softmax"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_jax_nn_functions_become_jaxnet_activations(fn, name):
    model = serial(layers.Dense(3), fn)
    entry = jaxnet.describe(model)["model"]["args"]["layers"][1]
    assert entry["layer"] == "Activation" and entry["args"]["name"] == name
    rebuilt = _round_trip(model)
    assert list(rebuilt.info["children"]) == list(model.info["children"])  # same param keys
    params, state = jaxnet.init_model(model, jax.random.key(0), (4,))
    x = 3 * _inputs((4,))
    # jaxnet's function for the same formula: equal up to rounding (the same ops for most).
    np.testing.assert_allclose(
        rebuilt.apply(params, state, x)[0], model.apply(params, state, x)[0], rtol=1e-6, atol=1e-7
    )


def test_recipe_round_trip_keeps_loss_metrics_output_and_penalty():
    recipe = jaxnet.classifier_mlp(4, hidden=(5,), activation="elu", l1=0.01, l2=0.1, dropout=0.1)
    entry = jaxnet.describe(recipe)["recipe"]
    assert entry["task"] == "multiclass" and entry["loss"] == "sparse_categorical_cross_entropy"
    assert entry["metrics"] == ["accuracy"] and entry["output_activation"] == "softmax"
    rebuilt = _round_trip(recipe)
    assert rebuilt.loss is recipe.loss and rebuilt.output_activation is recipe.output_activation
    assert rebuilt.metrics == recipe.metrics
    params, state = jaxnet.init_model(recipe.model, jax.random.key(0), (3,))
    chex.assert_trees_all_equal(
        jaxnet.init_model(rebuilt.model, jax.random.key(0), (3,))[0], params
    )
    np.testing.assert_array_equal(rebuilt.penalty(params), recipe.penalty(params))
    regression = jaxnet.regression_mlp(2, (3,), output="softplus", loss="huber")
    again = _round_trip(regression)
    assert again.loss is regression.loss and again.info == regression.info


def test_registered_function_and_layer_factory_round_trip(monkeypatch):
    monkeypatch.setattr(registry, "USER", {})

    def swish_beta(x):
        return x * jax.nn.sigmoid(1.5 * x)

    def Scale(factor: float, name: str = "scale") -> Layer:
        def init(key, input_shape):
            return tuple(input_shape), {}, {}

        def apply(params, state, x, *, key=None, train=False):
            return factor * x, state

        info = jaxnet.core.constructor_info("Scale", factor=factor, name=name)
        return Layer(init, apply, name, info)

    jaxnet.register("swish_beta", swish_beta)
    jaxnet.register("Scale", Scale)
    model = serial(layers.Dense(3), swish_beta, Scale(2.5), layers.Dense(1))
    assert repr(model) == "serial(Dense(3), swish_beta, Scale(2.5), Dense(1))"
    rebuilt = _round_trip(model)
    params, state = jaxnet.init_model(model, jax.random.key(0), (4,))
    x = _inputs((4,))
    chex.assert_trees_all_equal(rebuilt.apply(params, state, x), model.apply(params, state, x))
    text = jaxnet.describe(model)
    registry.USER.clear()
    with pytest.raises(ConfigError, match="'swish_beta' is not registered") as info:
        jaxnet.build(text)
    assert info.value.path == ("serial", "swish_beta")
    del text["model"]["args"]["layers"][1]
    with pytest.raises(ConfigError, match="unknown layer type 'Scale'") as info:
        jaxnet.build(text)
    assert info.value.path == ("serial", "scale")


def test_plain_functions_and_custom_pieces_are_refused_with_their_path():
    with pytest.raises(ConfigError, match=r"plain function 'fn'.*jaxnet.register") as info:
        jaxnet.describe(serial(layers.Dense(2), serial(lambda x: 2 * x, name="inner")))
    assert info.value.path == ("serial", "inner_1", "fn_0")

    def np_init(key, shape, dtype=jnp.float32):
        return jnp.ones(shape, dtype)

    with pytest.raises(ConfigError, match="kernel_init=np_init is a custom function") as info:
        jaxnet.describe(serial(jaxnet.activations.Relu(), layers.Dense(2, kernel_init=np_init)))
    assert info.value.path == ("serial", "dense_1")
    with pytest.raises(ConfigError, match="activation=sin"):
        jaxnet.describe(layers.RNN(layers.SimpleRNNCell(2, activation=jnp.sin)))
    custom = Layer(lambda key, s: (s, {}, {}), lambda p, s, x, **kw: (x, s), "custom")
    with pytest.raises(ConfigError, match="custom layer 'custom'"):
        jaxnet.describe(serial(custom))
    with pytest.raises(ConfigError, match="describe recipe.model instead"):
        jaxnet.describe(jaxnet.Recipe(layers.Dense(1), jaxnet.losses.mse, {}, activations.identity))


def test_build_refuses_newer_formats_unknown_types_and_bad_arguments():
    good = jaxnet.describe(serial(layers.Dense(2), name="net"))
    with pytest.raises(ConfigError, match="format version 2, newer than the 1"):
        jaxnet.build({**good, "version": 2})
    with pytest.raises(ConfigError, match="not a jaxnet description"):
        jaxnet.build({"layers": []})
    unknown = json.loads(json.dumps(good))
    unknown["model"]["args"]["layers"][0]["layer"] = "Densee"
    with pytest.raises(ConfigError, match="unknown layer type 'Densee'") as info:
        jaxnet.build(unknown)
    assert info.value.path == ("net", "dense")
    wrong = json.loads(json.dumps(good))
    wrong["model"]["args"]["layers"][0]["args"]["unit"] = 3
    with pytest.raises(ConfigError, match="Dense does not take these arguments"):
        jaxnet.build(wrong)
    bad_value = json.loads(json.dumps(good))
    bad_value["model"]["args"]["layers"][0]["args"]["units"] = 0
    with pytest.raises(ConfigError, match="units must be") as info:
        jaxnet.build(bad_value)
    assert info.value.path == ("net", "dense")
    with pytest.raises(ConfigError, match="built-in"):
        jaxnet.register("Dense", layers.Dense)


def test_layer_info_holds_no_functions():
    def check(value, where):
        if isinstance(value, Layer | layers.Cell):
            check(dict(value.info), f"{where}/{value.name}")
        elif isinstance(value, dict):
            for key, item in value.items():
                check(item, f"{where}.{key}")
        elif isinstance(value, list | tuple):
            for item in value:
                check(item, where)
        else:
            assert not callable(value), where

    for name, make, _ in CASES:
        check(make(), name)


def test_reprs_read_like_the_call():
    assert repr(layers.Dense(100, kernel_init="he_normal")) == "Dense(100, kernel_init='he_normal')"
    mlp = serial(layers.Dense(100), jax.nn.relu, layers.Dense(10))
    assert repr(mlp) == "serial(Dense(100), relu, Dense(10))"
    assert repr(jaxnet.activations.LeakyRelu(0.2)) == "leaky_relu(alpha=0.2)"
    assert repr(layers.RNN(layers.GRUCell(8), return_sequences=True)) == (
        "RNN(GRUCell(8), return_sequences=True)"
    )
    assert repr(layers.Conv2D(8, 3, padding="SAME")) == "Conv2D(8, 3, padding='SAME')"
    assert repr(residual(layers.Dense(4), name="res")) == "residual(Dense(4), name='res')"
