"""Combinators (residual, parallel, branch, concat, select, wide_and_deep) vs hand-written jnp."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import losses, optim
from jaxnet.core import serial
from jaxnet.errors import ShapeError
from jaxnet.layers.conv import Conv2D
from jaxnet.layers.dense import Dense
from jaxnet.topology import branch, concat, parallel, residual, select, wide_and_deep
from jaxnet.train.fit import fit


def normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def np_init(key, shape, dtype=jnp.float32):
    """NumPy-drawn weights: no compilation per new kernel shape in these tests."""
    del key
    return 0.5 * normal(shape, seed=sum(shape)).astype(dtype)


def dense(units, **kwargs):
    return Dense(units, kernel_init=np_init, bias_init=np_init, **kwargs)


def linear(p, x):
    return x @ p["w"] + p.get("b", 0.0)


def test_residual_identity_shortcut(key):
    block = serial(dense(5), jax.nn.relu, dense(5))
    model = residual(block)
    x = normal((3, 5))
    out_shape, params, state = model.init(key, (5,))
    assert out_shape == (5,) and set(params) == {"serial_0"}

    def reference(params, x):
        p = params["serial_0"]
        return linear(p["dense_2"], jax.nn.relu(linear(p["dense_0"], x))) + x

    def ours(params, x):
        return model.apply(params, state, x)[0]

    chex.assert_trees_all_close(ours(params, x), reference(params, x), atol=1e-6)
    chex.assert_trees_all_close(
        jax.grad(lambda p, x: jnp.sum(ours(p, x) ** 2), argnums=(0, 1))(params, x),
        jax.grad(lambda p, x: jnp.sum(reference(p, x) ** 2), argnums=(0, 1))(params, x),
        atol=1e-5,
    )


def test_residual_adds_a_projection_when_the_last_axis_changes(key):
    model = residual(serial(dense(7), jnp.tanh))
    x = normal((3, 4))
    out_shape, params, state = model.init(key, (4,))
    assert out_shape == (7,)
    assert set(params) == {"serial_0", "projection_1"}
    assert set(params["projection_1"]) == {"w"} and params["projection_1"]["w"].shape == (4, 7)
    expected = jnp.tanh(linear(params["serial_0"]["dense_0"], x)) + x @ params["projection_1"]["w"]
    chex.assert_trees_all_close(model.apply(params, state, x)[0], expected, atol=1e-6)


def test_residual_with_strided_conv_projection(key):
    conv = dict(kernel_init=np_init, bias_init=np_init)
    block = serial(Conv2D(6, 3, strides=2, padding="SAME", **conv), jax.nn.relu)
    model = residual(block, projection=Conv2D(6, 1, strides=2, **conv))
    x = normal((2, 8, 8, 3))
    out_shape, params, state = model.init(key, (8, 8, 3))
    y, _ = model.apply(params, state, x)
    assert out_shape == (4, 4, 6) and y.shape == (2, 4, 4, 6)
    shortcut = x[:, ::2, ::2, :] @ params["conv2d_1"]["w"][0, 0] + params["conv2d_1"]["b"]
    chex.assert_trees_all_close(
        y - block.apply(params["serial_0"], state["serial_0"], x)[0], shortcut, atol=1e-5
    )


def test_residual_without_projection_refuses_spatial_change(key):
    model = serial(residual(Conv2D(4, 3, kernel_init=np_init)))
    with pytest.raises(ShapeError, match="pass projection=") as info:
        model.init(key, (8, 8, 4))
    assert info.value.path == ("serial", "residual_0")


def test_parallel_branch_concat_select(key):
    xa, xb = normal((3, 2), 1), normal((3, 4), 2)
    model = serial(parallel(dense(5), dense(6)), concat())
    out_shape, params, state = model.init(key, ((2,), (4,)))
    assert out_shape == (11,) and set(params["parallel_0"]) == {"dense_0", "dense_1"}
    p = params["parallel_0"]
    expected = jnp.concatenate([linear(p["dense_0"], xa), linear(p["dense_1"], xb)], axis=-1)
    chex.assert_trees_all_close(model.apply(params, state, (xa, xb))[0], expected, atol=1e-6)

    fan = serial(branch(dense(3), jnp.tanh), concat())
    out_shape, params, state = fan.init(key, (4,))
    assert out_shape == (7,)
    expected = jnp.concatenate([linear(params["branch_0"]["dense_0"], xb), jnp.tanh(xb)], axis=-1)
    chex.assert_trees_all_close(fan.apply(params, state, xb)[0], expected, atol=1e-6)

    pick = select("b")
    assert pick.init(key, {"a": (2,), "b": (4,)})[0] == (4,)
    chex.assert_trees_all_close(pick.apply({}, {}, {"a": xa, "b": xb})[0], xb)
    assert select(0).init(key, ((2,), (4,)))[0] == (2,)


def test_concat_along_a_per_example_axis(key):
    layer = concat(axis=0)
    a, b = normal((2, 3, 4), 1), normal((2, 5, 4), 2)
    assert layer.init(key, ((3, 4), (5, 4)))[0] == (8, 4)
    chex.assert_trees_all_close(layer.apply({}, {}, (a, b))[0], np.concatenate([a, b], axis=1))
    with pytest.raises(ShapeError, match="concat: inputs must agree"):
        layer.init(key, ((3, 4), (5, 2)))


def test_errors_name_the_child(key):
    model = serial(parallel(dense(2), dense(2)))
    _, params, state = model.init(key, ((3,), (4,)))
    with pytest.raises(ShapeError, match="4 features") as info:
        model.apply(params, state, (normal((2, 3)), normal((2, 5))))
    assert info.value.path == ("serial", "parallel_0", "dense_1")
    with pytest.raises(ShapeError, match="tuple of 2 inputs"):
        model.init(key, (3,))
    with pytest.raises(ShapeError, match=r"select: expected .* entry 'c', got keys \['a', 'b'\]"):
        select("c").init(key, {"a": (1,), "b": (2,)})
    with pytest.raises(ShapeError, match="got a single input"):
        select("a").apply({}, {}, normal((2, 3)))


def test_wide_and_deep_matches_the_hand_written_network(key):
    model = wide_and_deep("wide", "deep", deep_hidden=(4, 3), n_outputs=2)
    x = {"wide": normal((5, 2), 1), "deep": normal((5, 6), 2)}
    out_shape, params, state = model.init(key, {"wide": (2,), "deep": (6,)})
    assert out_shape == (2,)

    def reference(params, x):
        deep = params["wide_deep_0"]["deep_1"]
        h = jax.nn.relu(linear(deep["dense_1"], x["deep"]))
        h = jax.nn.relu(linear(deep["dense_3"], h))
        return linear(params["dense_2"], jnp.concatenate([x["wide"], h], axis=-1))

    def ours(params, x):
        return model.apply(params, state, x)[0]

    chex.assert_trees_all_close(ours(params, x), reference(params, x), atol=1e-5)
    chex.assert_trees_all_close(
        jax.grad(lambda p: jnp.sum(ours(p, x) ** 2))(params),
        jax.grad(lambda p: jnp.sum(reference(p, x) ** 2))(params),
        atol=1e-4,
    )
    assert params["dense_2"]["w"].shape == (2 + 3, 2)  # wide features reach the output directly


def test_wide_and_deep_trains_with_fit_on_a_tuple_input():
    rng = np.random.default_rng(0)
    wide, deep = rng.normal(size=(64, 2)), rng.normal(size=(64, 3))
    y = (wide @ [1.0, -2.0] + np.sin(deep).sum(axis=1)).reshape(-1, 1)
    model = wide_and_deep(0, 1, deep_hidden=(8,))
    _, history = fit(
        model,
        losses.mean_squared_error,
        optim.adam(0.03),
        (wide, deep),
        y,
        epochs=30,
        batch_size=16,
        verbose=0,
    )
    assert history["loss"][-1] < 0.2 * history["loss"][0]
