"""Recurrent cells and layers vs flax.linen cells/RNN/Bidirectional with the same weights.

Our fused params are split into Flax's per-gate Dense layers (gate order r|z|n for the GRU and
i|f|g|o for the LSTM, as documented in jaxnet.layers.recurrent) by jaxnet.convert.to_flax.
"""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import convert
from jaxnet.core import serial
from jaxnet.errors import ConfigError, ShapeError
from jaxnet.layers.dense import Dense
from jaxnet.layers.recurrent import (
    RNN,
    Bidirectional,
    GRUCell,
    LSTMCell,
    SimpleRNNCell,
    cell_step,
)

UNITS, FEATURES, BATCH, TIME = 4, 3, 2, 5


def normal(shape, seed=0, scale=1.0):
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape), jnp.float32)


def random_params(kind):
    """Non-zero weights and biases from NumPy, in our fused layout."""
    gates = {"simple": 1, "gru": 3, "lstm": 4}[kind]
    params = {
        "w_x": normal((FEATURES, gates * UNITS), 1, 0.5),
        "w_h": normal((UNITS, gates * UNITS), 2, 0.5),
        "b": normal((gates * UNITS,), 3, 0.5),
    }
    if kind == "gru":
        params["b_hn"] = normal((UNITS,), 4, 0.5)
    return params


def to_flax(kind, p):
    """Our params as the param dict of the matching flax.linen cell (jaxnet.convert, tested
    both ways in tests/test_convert.py)."""
    return convert.to_flax(CELLS[kind][0](UNITS), p)["params"]


CELLS = {
    "simple": (SimpleRNNCell, nn.SimpleCell),
    "gru": (GRUCell, nn.GRUCell),
    "lstm": (LSTMCell, nn.LSTMCell),
}


def ours_and_flax(kind):
    ours, theirs = CELLS[kind]
    return ours(UNITS, kernel_init=np_init, recurrent_init=np_init), theirs(UNITS)


def np_init(key, shape, dtype=jnp.float32):
    del key
    return normal(shape, seed=sum(shape), scale=0.3).astype(dtype)


def vjp_run(fn, *args):
    """Jitted ``(fn(*args), grads of <fn(*args), fixed cotangent> w.r.t. args)``."""
    out_shapes = jax.eval_shape(fn, *args)
    cotangent = jax.tree.map(lambda s: normal(s.shape, seed=9), out_shapes)

    @jax.jit
    def run(args, cotangent):
        y, vjp = jax.vjp(fn, *args)
        return y, vjp(cotangent)

    return run(args, cotangent)


@pytest.mark.parametrize("kind", ["simple", "gru", "lstm"])
def test_one_step_matches_flax_cell(kind):
    cell, flax_cell = ours_and_flax(kind)
    params = random_params(kind)
    x = normal((BATCH, FEATURES), 5)
    h = normal((BATCH, UNITS), 6)
    carry = (normal((BATCH, UNITS), 7), h) if kind == "lstm" else h

    def ours(params, carry, x):
        return cell_step(cell, params, carry, x)

    def theirs(params, carry, x):
        return flax_cell.apply({"params": to_flax(kind, params)}, carry, x)

    chex.assert_trees_all_close(
        vjp_run(ours, params, carry, x), vjp_run(theirs, params, carry, x), atol=1e-5
    )


@pytest.mark.parametrize("kind, reverse", [("simple", False), ("gru", True), ("lstm", False)])
def test_rnn_matches_flax_rnn(key, kind, reverse):
    cell, flax_cell = ours_and_flax(kind)
    layer = RNN(cell, return_sequences=True, reverse=reverse)
    flax_rnn = nn.RNN(flax_cell, reverse=reverse, keep_order=True)
    params = random_params(kind)
    x = normal((BATCH, TIME, FEATURES), 8)

    def ours(params, x):
        return layer.apply(params, {}, x)[0]

    def theirs(params, x):
        return flax_rnn.apply({"params": {"cell": to_flax(kind, params)}}, x)

    if kind == "lstm":  # forward and gradients (a scan's gradient is slow to compile: once)
        chex.assert_trees_all_close(vjp_run(ours, params, x), vjp_run(theirs, params, x), atol=1e-5)
    else:
        chex.assert_trees_all_close(jax.jit(ours)(params, x), jax.jit(theirs)(params, x), atol=1e-5)
    out_shape, _, _ = layer.init(key, x.shape[1:])
    assert (BATCH, *out_shape) == ours(params, x).shape


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_masked_sequences_stop_at_their_length(key, kind):
    cell, flax_cell = ours_and_flax(kind)
    params = random_params(kind)
    lengths = np.array([5, 2, 3])
    x = normal((3, TIME, FEATURES), 10)
    mask = np.arange(TIME)[None, :] < lengths[:, None]
    last_layer, seq_layer = RNN(cell), RNN(cell, return_sequences=True)

    @jax.jit
    def run(x):
        last, _ = last_layer.apply(params, {}, {"x": x, "mask": mask})
        same, _ = last_layer.apply(params, {}, {"x": x, "lengths": lengths})
        seqs, _ = seq_layer.apply(params, {}, {"x": x, "mask": mask})
        grads = jax.grad(
            lambda x: jnp.sum(last_layer.apply(params, {}, {"x": x, "mask": mask})[0])
        )(x)
        return last, same, seqs, grads

    last, same, seqs, grads = run(x)
    chex.assert_trees_all_close(last, same)

    # independent reference 1: each sequence alone, cut at its true length
    alone = jax.jit(lambda x: last_layer.apply(params, {}, x)[0])
    for i, n in enumerate(lengths):
        chex.assert_trees_all_close(last[i], alone(x[i : i + 1, :n])[0], atol=1e-6)
    # reference 2: Flax's RNN with seq_lengths gives the carry at the true length
    flax_rnn = nn.RNN(flax_cell, return_carry=True)
    carry, _ = jax.jit(flax_rnn.apply)(
        {"params": {"cell": to_flax(kind, params)}}, x, seq_lengths=jnp.asarray(lengths)
    )
    chex.assert_trees_all_close(last, carry[1] if kind == "lstm" else carry, atol=1e-5)

    # padded steps change nothing: other padding values give the same outputs, zero gradient
    noisy = jnp.where(mask[..., None], x, normal(x.shape, 11))
    chex.assert_trees_all_close(run(noisy)[0], last, atol=1e-6)
    assert np.all(np.asarray(grads)[~mask] == 0.0)
    assert np.all(np.asarray(seqs)[~mask] == 0.0)
    chex.assert_trees_all_close(seqs[np.arange(3), lengths - 1], last, atol=1e-6)


def test_float_mask_from_fit_is_accepted():
    cell = GRUCell(UNITS, kernel_init=np_init, recurrent_init=np_init)
    params = random_params("gru")
    x = normal((2, TIME, FEATURES), 12)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    y_bool, _ = RNN(cell).apply(params, {}, {"x": x, "mask": mask})
    y_float, _ = RNN(cell).apply(params, {}, {"x": x, "mask": mask.astype(np.float32)})
    chex.assert_trees_all_close(y_bool, y_float)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_matches_flax(key, return_sequences):
    fw, flax_fw = ours_and_flax("gru")
    bw, flax_bw = ours_and_flax("lstm")
    layer = Bidirectional(fw, bw, return_sequences=return_sequences)
    params = {"forward": random_params("gru"), "backward": random_params("lstm")}
    x = normal((BATCH, TIME, FEATURES), 13)
    flax_bi = nn.Bidirectional(nn.RNN(flax_fw), nn.RNN(flax_bw))

    def ours(params, x):
        return layer.apply(params, {}, x)[0]

    def theirs(params, x):
        flax_params = {
            "forward_rnn": {"cell": to_flax("gru", params["forward"])},
            "backward_rnn": {"cell": to_flax("lstm", params["backward"])},
        }
        y = flax_bi.apply({"params": flax_params}, x)
        if return_sequences:
            return y
        # summaries: forward after the last step, backward after reading back to step 0
        return jnp.concatenate([y[:, -1, :UNITS], y[:, 0, UNITS:]], axis=-1)

    chex.assert_trees_all_close(jax.jit(ours)(params, x), jax.jit(theirs)(params, x), atol=1e-5)
    out_shape, init_params, _ = layer.init(key, x.shape[1:])
    assert (BATCH, *out_shape) == ours(params, x).shape
    assert jax.tree.map(jnp.shape, init_params) == jax.tree.map(jnp.shape, params)


def test_bidirectional_with_lengths_reads_each_sequence_backwards_from_its_end():
    fw, _ = ours_and_flax("gru")
    bw, _ = ours_and_flax("gru")
    params = {"forward": random_params("gru"), "backward": random_params("gru")}
    lengths = np.array([3, 5])
    x = normal((2, TIME, FEATURES), 14)
    apply = jax.jit(Bidirectional(fw, bw).apply)
    y, _ = apply(params, {}, {"x": x, "lengths": lengths})
    for i, n in enumerate(lengths):
        alone, _ = apply(params, {}, x[i : i + 1, :n])
        chex.assert_trees_all_close(y[i], alone[0], atol=1e-6)


def test_init_shapes_and_lstm_forget_bias(key):
    shape, params, _ = RNN(LSTMCell(UNITS)).init(key, {"x": (TIME, FEATURES), "mask": (TIME,)})
    assert shape == (UNITS,)
    assert params["w_x"].shape == (FEATURES, 4 * UNITS) and params["w_h"].shape == (
        UNITS,
        4 * UNITS,
    )
    np.testing.assert_array_equal(params["b"][UNITS : 2 * UNITS], 1.0)  # forget gate
    np.testing.assert_array_equal(params["b"][:UNITS], 0.0)
    # each gate's recurrent kernel is orthogonal
    w_f = np.asarray(params["w_h"][:, UNITS : 2 * UNITS])
    np.testing.assert_allclose(w_f.T @ w_f, np.eye(UNITS), atol=1e-5)


def test_stacked_model_shapes(key):
    model = serial(
        RNN(GRUCell(UNITS, kernel_init=np_init, recurrent_init=np_init), return_sequences=True),
        RNN(SimpleRNNCell(UNITS, kernel_init=np_init, recurrent_init=np_init)),
        Dense(1, kernel_init=np_init),
    )
    out_shape, params, state = model.init(key, (TIME, FEATURES))
    y, _ = model.apply(params, state, normal((BATCH, TIME, FEATURES)))
    assert out_shape == (1,) and y.shape == (BATCH, 1)


def test_bad_inputs_name_the_layer(key):
    cell = GRUCell(UNITS, kernel_init=np_init, recurrent_init=np_init)
    model = serial(RNN(cell))
    _, params, state = model.init(key, (TIME, FEATURES))
    x = normal((BATCH, TIME, FEATURES))
    with pytest.raises(
        ShapeError, match=r"mask of shape \(batch, time\) = \(2, 5\), got shape \(2, 4\)"
    ) as info:
        model.apply(params, state, {"x": x, "mask": jnp.ones((BATCH, TIME - 1), bool)})
    assert info.value.path == ("serial", "gru_0")
    with pytest.raises(ShapeError, match=r"gru: expected lengths of shape \(2,\)"):
        RNN(cell).apply(params["gru_0"], {}, {"x": x, "lengths": jnp.ones((3,), jnp.int32)})
    with pytest.raises(ShapeError, match=r"\(batch, time, features\), got shape \(2, 3\)"):
        RNN(cell).apply(params["gru_0"], {}, normal((BATCH, FEATURES)))
    with pytest.raises(ShapeError, match="3 features on the last axis"):
        RNN(cell).apply(params["gru_0"], {}, normal((BATCH, TIME, FEATURES + 1)))
    with pytest.raises(ShapeError, match="per-example shape"):
        RNN(cell).init(key, (FEATURES,))
    with pytest.raises(ShapeError, match="mask of shape"):
        RNN(cell).init(key, {"x": (TIME, FEATURES), "mask": (TIME + 1,)})


@pytest.mark.parametrize("make", [SimpleRNNCell, GRUCell, LSTMCell])
def test_cells_name_errors_and_their_rnn_by_their_own_name(make):
    with pytest.raises(ConfigError, match="units must be") as info:
        make(0, name="encoder")
    assert info.value.path == ("encoder",)
    layer = RNN(make(3, name="encoder"))
    assert layer.name == "encoder"
    with pytest.raises(ShapeError) as info:
        layer.init(jax.random.key(0), (FEATURES,))
    assert info.value.path == ("encoder",)
