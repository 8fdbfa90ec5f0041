"""jaxnet.convert, both ways: against Flax modules (installed), against each library's cell as
written in its documentation (NumPy, always), and against real Keras 3 / PyTorch layers where
installed."""

import importlib.util
import os

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet.convert import from_flax, from_keras, from_torch, to_flax, to_keras, to_torch
from jaxnet.errors import ConfigError, ShapeError
from jaxnet.layers import BatchNorm, Conv1D, Conv2D, Dense, LayerNorm
from jaxnet.layers.recurrent import RNN, Bidirectional, GRUCell, LSTMCell, SimpleRNNCell, cell_step

U, F, B, T = 4, 3, 2, 5  # units, features, batch, time


def normal(shape, seed, scale=0.5):
    return np.asarray(scale * np.random.default_rng(seed).normal(size=shape), np.float32)


def close(a, b):
    chex.assert_trees_all_close(a, b, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- Flax

LAYERS = {
    "dense": (Dense(5), nn.Dense(5), (F,)),
    "dense_no_bias": (Dense(5, use_bias=False), nn.Dense(5, use_bias=False), (F,)),
    "conv2d": (Conv2D(4, 3, padding="SAME"), nn.Conv(4, (3, 3), padding="SAME"), (6, 6, 2)),
    "conv1d": (Conv1D(4, 2), nn.Conv(4, (2,), padding="VALID"), (7, 2)),
    "layer_norm": (LayerNorm(1e-5), nn.LayerNorm(1e-5), (F,)),
    "gru": (RNN(GRUCell(U), return_sequences=True), nn.RNN(nn.GRUCell(U)), (T, F)),
    "lstm": (RNN(LSTMCell(U), return_sequences=True), nn.RNN(nn.LSTMCell(U)), (T, F)),
    "simple": (RNN(SimpleRNNCell(U), return_sequences=True), nn.RNN(nn.SimpleCell(U)), (T, F)),
    "bidirectional": (
        Bidirectional(GRUCell(U), LSTMCell(U), return_sequences=True),
        nn.Bidirectional(nn.RNN(nn.GRUCell(U)), nn.RNN(nn.LSTMCell(U))),
        (T, F),
    ),
    "serial": (
        jaxnet.serial(Dense(8), jax.nn.relu, Dense(3)),
        nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)]),
        (F,),
    ),
}


@pytest.mark.parametrize("name", LAYERS)
def test_flax_both_ways(name):
    ours, theirs, shape = LAYERS[name]
    x = normal((B, *shape), 1, 1.0)
    # jaxnet's params in Flax: the same function. Biases are zeros at init: randomise everything.
    _, params, state = ours.init(jax.random.key(0), shape)
    params = jax.tree.map(lambda a: normal(a.shape, a.size), params)
    close(theirs.apply(to_flax(ours, params, state), x), ours.apply(params, state, x)[0])
    chex.assert_trees_all_equal(from_flax(ours, to_flax(ours, params, state))[0], params)
    # Flax's params in jaxnet: the same function.
    variables = theirs.init(jax.random.key(1), x)
    variables = jax.tree.map(lambda a: normal(a.shape, a.size + 7), variables)
    params, state = from_flax(ours, variables)
    close(ours.apply(params, state, x)[0], theirs.apply(variables, x))
    chex.assert_trees_all_equal(to_flax(ours, params, state), variables)


def test_flax_batch_norm_both_ways_with_running_statistics():
    ours = BatchNorm(0.9, 1e-5)
    theirs = nn.BatchNorm(momentum=0.9, epsilon=1e-5, use_fast_variance=False)
    x = normal((8, F), 2, 1.0)
    params = {"scale": normal((F,), 3) + 1, "bias": normal((F,), 4)}
    state = {"mean": normal((F,), 5), "var": np.abs(normal((F,), 6)) + 0.5}
    variables = to_flax(ours, params, state)
    close(ours.apply(params, state, x)[0], theirs.apply(variables, x, use_running_average=True))
    y, new_state = ours.apply(params, state, x, train=True)
    y_flax, updates = theirs.apply(variables, x, use_running_average=False, mutable="batch_stats")
    close((y, new_state), (y_flax, updates["batch_stats"]))
    chex.assert_trees_all_equal(from_flax(ours, variables), (params, state))


def test_flax_refuses_what_it_cannot_convert():
    block = jaxnet.topology.residual(Dense(F))
    _, params, state = block.init(jax.random.key(0), (F,))
    with pytest.raises(ConfigError, match="to_flax cannot convert a 'residual' layer"):
        to_flax(block, params, state)


# ----------------------------------------------------------------------------- the cells'
# definitions as each library documents them, in NumPy (gate order and bias layout included)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def keras_step(kind, weights, h, c, x):
    """Keras 3 SimpleRNN/GRU(reset_after=True)/LSTM cells (keras/src/layers/rnn/*.py)."""
    kernel, recurrent, bias = weights
    if kind == "simple":
        return np.tanh(x @ kernel + bias + h @ recurrent), None
    if kind == "gru":  # gate order z, r, h; bias[0] input side, bias[1] recurrent side
        xz, xr, xh = np.split(x @ kernel + bias[0], 3, axis=-1)
        rz, rr, rh = np.split(h @ recurrent + bias[1], 3, axis=-1)
        z, r = sigmoid(xz + rz), sigmoid(xr + rr)
        hh = np.tanh(xh + r * rh)
        return z * h + (1 - z) * hh, None
    i, f, g, o = np.split(x @ kernel + h @ recurrent + bias, 4, axis=-1)  # i, f, c, o
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def torch_step(kind, sd, h, c, x):
    """torch.nn.RNN/GRU/LSTM as documented (weights (gates * u, in), gate rows r,z,n / i,f,g,o)."""
    w_ih, w_hh, b_ih, b_hh = (
        sd[n + "_l0"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if kind == "simple":
        return np.tanh(gi + gh), None
    if kind == "gru":
        (ir, iz, i_n), (hr, hz, hn) = np.split(gi, 3, -1), np.split(gh, 3, -1)
        r, z = sigmoid(ir + hr), sigmoid(iz + hz)
        n = np.tanh(i_n + r * hn)
        return (1 - z) * n + z * h, None
    i, f, g, o = np.split(gi + gh, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


CELLS = {"simple": SimpleRNNCell, "gru": GRUCell, "lstm": LSTMCell}
GATES = {"simple": 1, "gru": 3, "lstm": 4}


def jaxnet_run(kind, params, xs):
    """The jaxnet cell over the time steps of ``xs``: every hidden state, ``(T, B, U)``."""
    cell = CELLS[kind](U)
    carry = cell.initial_carry(B, jnp.float32)
    carry = jax.tree.map(lambda a: a + 0.3, carry)  # a non-zero start exercises every weight
    outputs = []
    for x in xs:
        carry, out = cell_step(cell, params, carry, x)
        outputs.append(out)
    return np.stack(outputs)


def library_run(step, kind, weights, xs):
    h = np.full((B, U), 0.3, np.float32)
    c = np.full((B, U), 0.3, np.float32)
    outputs = []
    for x in xs:
        h, c = step(kind, weights, h, c, x)
        outputs.append(h)
    return np.stack(outputs)


def jaxnet_params(kind, seed=0):
    g = GATES[kind]
    params = {"w_x": normal((F, g * U), seed), "w_h": normal((U, g * U), seed + 1),
              "b": normal((g * U,), seed + 2)}  # fmt: skip
    if kind == "gru":
        params["b_hn"] = normal((U,), seed + 3)
    return params


def keras_weights(kind, seed=0):
    g = GATES[kind]
    bias = normal((2, 3 * U) if kind == "gru" else (g * U,), seed + 2)  # both GRU biases non-zero
    return [normal((F, g * U), seed), normal((U, g * U), seed + 1), bias]


def torch_state_dict(kind, seed=0):
    g = GATES[kind]
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    shapes = ((g * U, F), (g * U, U), (g * U,), (g * U,))
    return {n: normal(s, seed + i) for i, (n, s) in enumerate(zip(names, shapes, strict=True))}


XS = normal((T, B, F), 9, 1.0)


@pytest.mark.parametrize("kind", CELLS)
def test_keras_both_ways_against_the_keras_cell_equations(kind):
    weights = keras_weights(kind)
    close(jaxnet_run(kind, from_keras(CELLS[kind](U), weights), XS),
          library_run(keras_step, kind, weights, XS))  # fmt: skip
    params = jaxnet_params(kind)
    close(library_run(keras_step, kind, to_keras(RNN(CELLS[kind](U)), params), XS),
          jaxnet_run(kind, params, XS))  # fmt: skip


@pytest.mark.parametrize("kind", CELLS)
def test_torch_both_ways_against_the_torch_cell_equations(kind):
    sd = torch_state_dict(kind)
    close(jaxnet_run(kind, from_torch(CELLS[kind](U), sd), XS),
          library_run(torch_step, kind, sd, XS))  # fmt: skip
    params = jaxnet_params(kind)
    close(library_run(torch_step, kind, to_torch(CELLS[kind](U), params), XS),
          jaxnet_run(kind, params, XS))  # fmt: skip
    cell_names = to_torch(CELLS[kind](U), params, suffix="")  # nn.GRUCell's keys
    chex.assert_trees_all_equal(from_torch(CELLS[kind](U), cell_names), from_torch(
        CELLS[kind](U), to_torch(CELLS[kind](U), params)))  # fmt: skip


def test_copying_keras_gru_weights_verbatim_is_wrong_and_the_converter_is_not():
    weights = keras_weights("gru")
    verbatim = {"w_x": weights[0], "w_h": weights[1], "b": weights[2][0], "b_hn": weights[2][1, 8:]}
    expected = library_run(keras_step, "gru", weights, XS)
    assert not np.allclose(jaxnet_run("gru", verbatim, XS), expected, atol=1e-3)
    close(jaxnet_run("gru", from_keras(GRUCell(U), weights), XS), expected)


def test_bad_weights_are_refused_naming_the_cell():
    with pytest.raises(ShapeError, match="gru: Keras weights do not fit a GRUCell"):
        from_keras(GRUCell(U), keras_weights("lstm"))
    with pytest.raises(ConfigError, match="reset_after=False"):
        from_keras(GRUCell(U), keras_weights("gru")[:2] + [normal((3 * U,), 0)])
    with pytest.raises(ConfigError, match="no 'weight_ih'"):
        from_torch(LSTMCell(U), {"weight": np.zeros(3)})
    with pytest.raises(ConfigError, match="converts a recurrent cell"):
        to_keras(Dense(3), {})


# ----------------------------------------------------------------------------- the real libraries

HAVE_KERAS = importlib.util.find_spec("keras") is not None
HAVE_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside keras, numpy 2 copy=
@pytest.mark.skipif(not HAVE_KERAS, reason="keras is not installed (pip install keras)")
@pytest.mark.parametrize("kind", CELLS)
def test_real_keras_layers_both_ways(kind):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip(f"keras runs on {keras.backend.backend()}, this test needs KERAS_BACKEND=jax")
    layer = {"simple": keras.layers.SimpleRNN, "gru": keras.layers.GRU,
             "lstm": keras.layers.LSTM}[kind](U, return_sequences=True)  # fmt: skip
    x = np.swapaxes(XS, 0, 1)  # (batch, time, features)
    layer(x)  # builds
    ours = RNN(CELLS[kind](U), return_sequences=True)
    params = jaxnet_params(kind)
    layer.set_weights(to_keras(ours, params))
    close(np.asarray(layer(x)), ours.apply(params, {}, x)[0])
    weights = keras_weights(kind, seed=20)
    layer.set_weights(weights)
    close(ours.apply(from_keras(ours, layer.get_weights()), {}, x)[0], np.asarray(layer(x)))


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed (a CPU wheel by hand)")
@pytest.mark.parametrize("kind", CELLS)
def test_real_torch_layers_both_ways(kind):
    import torch

    layer = {"simple": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[kind](
        F, U, batch_first=True
    )
    x = np.swapaxes(XS, 0, 1)
    ours = RNN(CELLS[kind](U), return_sequences=True)
    params = jaxnet_params(kind)
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch(ours, params).items()})
    with torch.no_grad():
        close(layer(torch.from_numpy(x))[0].numpy(), ours.apply(params, {}, x)[0])
        converted = from_torch(ours, layer.state_dict())
        close(ours.apply(converted, {}, x)[0], layer(torch.from_numpy(x))[0].numpy())
