"""Conv1D/Conv2D vs flax.linen.Conv with the same weights: outputs, gradients, shapes, errors."""

import math
import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.core import serial
from jaxnet.errors import ConfigError, ShapeError
from jaxnet.layers.conv import Conv, Conv1D, Conv2D, convolve

PADDINGS = ["SAME", "VALID", ((1, 2), (0, 1))]


def _flax_conv(features, kernel, strides, padding, dilation, groups):
    return nn.Conv(
        features,
        kernel,
        strides=strides,
        padding=padding,
        kernel_dilation=dilation,
        feature_group_count=groups,
    )


def normal(shape, seed=0):
    """Test data from NumPy (each new shape of jax.random costs a compilation)."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def np_init(key, shape, dtype=jnp.float32):
    """A NumPy-drawn kernel: keeps the tests free of a compilation per new kernel shape."""
    del key
    return normal(shape, seed=sum(shape)).astype(dtype)


def forward_and_grads(fn, params, x):
    """``(fn(params, x), grads of <fn(params, x), fixed random cotangent> w.r.t. (params, x))``."""

    @jax.jit
    def run(params, x, cotangent):
        y, vjp = jax.vjp(fn, params, x)
        return y, vjp(cotangent)

    y_shape = jax.eval_shape(fn, params, x).shape
    return run(params, x, normal(y_shape, seed=1))


def _compare_with_flax(layer, flax_layer, x, key):
    out_shape, params, state = layer.init(key, x.shape[1:])

    def ours(params, x):
        return layer.apply(params, state, x)[0]

    def theirs(params, x):  # our params mapped into Flax's dict: kernel layouts are identical
        return flax_layer.apply({"params": {"kernel": params["w"], "bias": params["b"]}}, x)

    y, grads = forward_and_grads(ours, params, x)
    expected_y, expected_grads = forward_and_grads(theirs, params, x)
    chex.assert_trees_all_close(y, expected_y, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(grads, expected_grads, atol=1e-4, rtol=1e-4)
    assert tuple(y.shape[1:]) == out_shape  # init's shape inference matches the real output


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_shape_inference(key, padding, strides, dilation, groups):
    # init's output shape (a closed-form formula) equals the shape apply really produces, and
    # Flax's for the same configuration.
    x = jax.ShapeDtypeStruct((2, 9, 8, 4), jnp.float32)
    layer = Conv2D(
        6,
        (3, 2),
        strides=strides,
        padding=padding,
        dilation=dilation,
        groups=groups,
        kernel_init=np_init,
        bias_init=np_init,
    )
    out_shape, params, state = layer.init(key, x.shape[1:])
    y = jax.eval_shape(lambda x: layer.apply(params, state, x)[0], x)
    flax_layer = _flax_conv(6, (3, 2), strides, padding, dilation, groups)
    flax_y = jax.eval_shape(lambda x: flax_layer.init_with_output(key, x)[0], x)
    assert (2, *out_shape) == y.shape == flax_y.shape


@pytest.mark.parametrize(
    "padding, strides, dilation, groups",
    [
        ("SAME", 1, 1, 1),
        ("SAME", 2, 2, 2),
        ("VALID", 2, 1, 1),
        ("VALID", 1, 2, 2),
        (((1, 2), (0, 1)), 2, 2, 1),
    ],
)
def test_conv2d_matches_flax(key, padding, strides, dilation, groups):
    x = normal((2, 9, 8, 4))
    layer = Conv2D(
        6,
        (3, 2),
        strides=strides,
        padding=padding,
        dilation=dilation,
        groups=groups,
        kernel_init=np_init,
        bias_init=np_init,
    )
    flax_layer = _flax_conv(6, (3, 2), strides, padding, dilation, groups)
    _compare_with_flax(layer, flax_layer, x, jax.random.fold_in(key, 1))


@pytest.mark.parametrize(
    "padding, strides, dilation", [("SAME", 3, 1), ("VALID", 1, 2), (((2, 0),), 2, 1)]
)
def test_conv1d_matches_flax(key, padding, strides, dilation):
    x = normal((3, 11, 2))
    layer = Conv1D(4, 3, strides=strides, padding=padding, dilation=dilation, kernel_init=np_init)
    _compare_with_flax(layer, _flax_conv(4, (3,), strides, padding, dilation, 1), x, key)


@pytest.mark.parametrize(
    "rank, strides, dilation, pads, groups",
    [
        (1, (3,), (1,), ((0, 0),), 1),
        (1, (2,), (2,), ((4, 1),), 2),  # padding wider than the window
        (2, (1, 2), (2, 1), ((1, 1), (0, 2)), 1),
        (2, (2, 2), (1, 1), ((0, 1), (1, 0)), 4),  # depthwise, 2 features per channel
        (3, (2, 1, 1), (1, 1, 2), ((1, 1), (0, 0), (2, 2)), 2),
    ],
)
def test_convolve_gradients_equal_jax_autodiff_of_the_plain_convolution(
    rank, strides, dilation, pads, groups
):
    """The hand-written backward == JAX's own transpose rules (also under vmap and grad-of-grad)."""
    x, w = normal((3, *(7,) * rank, 4)), normal((*(3,) * rank, 4 // groups, 8), seed=2)
    layout = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}.get(
        rank, ("NDHWC", "DHWIO", "NDHWC")
    )

    def reference(x, w):
        return jax.lax.conv_general_dilated(
            x,
            w,
            strides,
            pads,
            rhs_dilation=dilation,
            dimension_numbers=layout,
            feature_group_count=groups,
        )

    def ours(x, w):
        return convolve(x, w, strides, pads, dilation, groups)

    y, grads = forward_and_grads(ours, x, w)
    expected_y, expected_grads = forward_and_grads(reference, x, w)
    chex.assert_trees_all_close(y, expected_y, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(grads, expected_grads, atol=1e-4, rtol=1e-4)

    def per_example_grads(conv):  # vmap over examples, as per_example_gradients does
        loss = lambda x, w: jnp.sum(jnp.tanh(conv(x[None], w)))  # noqa: E731
        return jax.vmap(jax.grad(loss, (0, 1)), (0, None))(x, w)

    def curvature(conv):  # reverse over reverse: the backward itself is differentiable
        loss = lambda w: jnp.sum(jax.grad(lambda w: jnp.sum(jnp.tanh(conv(x, w))))(w) ** 2)  # noqa: E731
        return jax.grad(loss)(w)

    for transform in (per_example_grads, curvature):
        chex.assert_trees_all_close(
            jax.jit(transform, static_argnums=0)(ours),
            jax.jit(transform, static_argnums=0)(reference),
            atol=1e-4,
            rtol=1e-4,
        )


def test_every_convolution_in_the_gradient_is_channels_last(key):
    """XLA:CPU runs other layouts inside fit's scanned epoch as slow loop nests (jax #12868)."""
    layer = Conv(8, (3, 3), rank=2, strides=2, padding="SAME", dilation=1, groups=2)
    _, params, state = layer.init(key, (8, 8, 4))
    loss = lambda p, x: jnp.sum(layer.apply(p, state, x)[0] ** 2)  # noqa: E731
    hlo = jax.jit(jax.grad(loss, (0, 1))).lower(params, normal((2, 8, 8, 4))).as_text()
    layouts = re.findall(r"stablehlo.convolution.*?dim_numbers = (.*?), window", hlo)
    assert len(layouts) == 3  # forward, input gradient, kernel gradient
    assert set(layouts) == {"[b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f]"}


def test_integer_padding_is_symmetric_pairs(key):
    x = normal((1, 5, 5, 1))
    a = Conv2D(2, 3, padding=1, kernel_init=np_init)
    b = Conv2D(2, 3, padding=((1, 1), (1, 1)), kernel_init=np_init)
    shape_a, params, _ = a.init(key, x.shape[1:])
    assert shape_a == b.init(key, x.shape[1:])[0] == (5, 5, 2)
    chex.assert_trees_all_close(a.apply(params, {}, x)[0], b.apply(params, {}, x)[0])


def test_kernel_layout_and_glorot_fans(key):
    # kernel (kh, kw, in/groups, out); fan_in = kh*kw*in/groups, fan_out = kh*kw*out.
    _, params, _ = Conv2D(64, (5, 3), groups=2).init(key, (8, 8, 32))
    assert params["w"].shape == (5, 3, 16, 64) and params["b"].shape == (64,)
    fan_in, fan_out = 5 * 3 * 16, 5 * 3 * 64
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    w = np.asarray(params["w"])
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit
    np.testing.assert_allclose(w.var(), 2.0 / (fan_in + fan_out), rtol=0.05)
    np.testing.assert_array_equal(params["b"], 0.0)


def test_no_bias(key):
    _, params, _ = Conv2D(3, 3, use_bias=False, kernel_init=np_init).init(key, (5, 5, 2))
    assert set(params) == {"w"}


def test_2d_input_to_conv2d_is_a_shape_error(key):
    layer = Conv2D(4, 3, kernel_init=np_init)
    with pytest.raises(
        ShapeError, match=r"conv2d: expected inputs of shape \(batch, height, width"
    ):
        layer.init(key, (64,))
    _, params, _ = layer.init(key, (8, 8, 1))
    with pytest.raises(ShapeError, match="conv2d.*got shape \\(5, 64\\)"):
        layer.apply(params, {}, jnp.ones((5, 64)))


def test_channel_mismatch_names_the_layer_inside_serial(key):
    model = serial(
        Conv2D(4, 3, kernel_init=np_init), jax.nn.relu, Conv2D(8, 3, kernel_init=np_init)
    )
    _, params, state = model.init(key, (8, 8, 3))
    with pytest.raises(ShapeError, match="with 3 channels, got shape \\(2, 8, 8, 1\\)") as info:
        model.apply(params, state, jnp.ones((2, 8, 8, 1)))
    assert info.value.path == ("serial", "conv2d_0")


def test_bad_configuration(key):
    with pytest.raises(ConfigError, match="divisible by groups"):
        Conv2D(5, 3, groups=2)
    with pytest.raises(ShapeError, match="input channels \\(3\\) must be divisible"):
        Conv2D(4, 3, groups=2).init(key, (8, 8, 3))
    with pytest.raises(ConfigError, match="padding"):
        Conv2D(4, 3, padding="FULL")
    with pytest.raises(ConfigError, match="kernel_size"):
        Conv2D(4, (3, 3, 3))
    with pytest.raises(ShapeError, match="shorter than the window"):
        Conv2D(4, 5, padding="VALID").init(key, (3, 8, 1))
