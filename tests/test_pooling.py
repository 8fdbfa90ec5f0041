"""Pooling layers vs flax.linen.max_pool/avg_pool, NumPy reductions and jax.image.resize."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.core import serial
from jaxnet.errors import ShapeError
from jaxnet.layers.pooling import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool, UpSample


def normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def forward_and_grads(fn, x):
    @jax.jit
    def run(x, cotangent):
        y, vjp = jax.vjp(fn, x)
        return y, vjp(cotangent)[0]

    return run(x, normal(jax.eval_shape(fn, x).shape, seed=1))


def _flax_padding(padding):
    return padding if isinstance(padding, str) else tuple(padding)


CONFIGS = [  # the first three tile the input (strides == window, nothing to pad): reshape path
    ((2, 2), None, "VALID"),  # 7 x 6 -> 3 x 3, the 7th row dropped
    ((1, 3), None, "SAME"),
    ((3, 3), (3, 3), ((0, 0), (0, 0))),
    ((3, 3), (2, 2), "VALID"),
    ((3, 2), (1, 2), "SAME"),
    ((2, 3), (2, 1), ((1, 0), (1, 1))),
]


@pytest.mark.parametrize("window, strides, padding", CONFIGS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_window_pooling_matches_flax(key, kind, window, strides, padding):
    x = normal((2, 7, 6, 3))
    layer = (MaxPool if kind == "max" else AvgPool)(window, strides, padding)
    out_shape, params, state = layer.init(key, x.shape[1:])
    flax_strides = window if strides is None else strides
    if kind == "max":

        def reference(x):
            return nn.max_pool(x, window, flax_strides, _flax_padding(padding))
    else:

        def reference(x):
            return nn.avg_pool(
                x, window, flax_strides, _flax_padding(padding), count_include_pad=False
            )

    y, grads = forward_and_grads(lambda x: layer.apply(params, state, x)[0], x)
    expected_y, expected_grads = forward_and_grads(reference, x)
    chex.assert_trees_all_close(y, expected_y, atol=1e-6)
    chex.assert_trees_all_close(grads, expected_grads, atol=1e-6)
    assert (2, *out_shape) == y.shape


def test_max_pool_gives_the_gradient_to_the_first_of_tied_maxima():
    # Windows (row-major): [1, 1 | 0, 1] -> its first element; [5, 2 | 5, 5] -> its first element.
    x = jnp.array([[1.0, 1.0, 5.0, 2.0], [0.0, 1.0, 5.0, 5.0]]).reshape(1, 2, 4, 1)
    grads = jax.grad(lambda x: jnp.sum(MaxPool(2).apply({}, {}, x)[0]))(x)
    np.testing.assert_array_equal(grads.ravel(), [1, 0, 1, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("window, strides, padding", CONFIGS)
def test_max_pool_ties_follow_one_rule_on_both_paths_as_flax(window, strides, padding):
    # Small integers: nearly every window has tied maxima. The reshape path (tiling configs) and
    # the reduce_window path (the others) must both match Flax (lax.reduce_window) exactly.
    x = jnp.asarray(np.random.default_rng(2).integers(0, 3, size=(2, 7, 6, 3)), jnp.float32)
    flax_strides = window if strides is None else strides
    layer = MaxPool(window, strides, padding)
    y, grads = forward_and_grads(lambda x: layer.apply({}, {}, x)[0], x)
    expected_y, expected_grads = forward_and_grads(
        lambda x: nn.max_pool(x, window, flax_strides, _flax_padding(padding)), x
    )
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(grads, expected_grads)


@pytest.mark.parametrize("window", [1, 2, 3])
@pytest.mark.parametrize("strides", [1, 2, 3])
@pytest.mark.parametrize("padding", ["SAME", "VALID", ((1, 1), (0, 2))])
def test_pool_shape_inference(key, window, strides, padding):
    layer = MaxPool(window, strides, padding)
    x = jax.ShapeDtypeStruct((2, 7, 8, 3), jnp.float32)
    out_shape, params, state = layer.init(key, x.shape[1:])
    assert (2, *out_shape) == jax.eval_shape(lambda x: layer.apply(params, state, x)[0], x).shape


def test_max_pool_1d_against_numpy_loop(key):
    x = normal((2, 9, 3))
    y, _ = MaxPool(3, 2).apply({}, {}, x)
    x_np = np.asarray(x)
    expected = np.stack([x_np[:, i : i + 3].max(axis=1) for i in range(0, 7, 2)], axis=1)
    chex.assert_trees_all_close(y, expected)


def test_global_pools(key):
    x = normal((2, 4, 5, 3))
    for layer, reduce in ((GlobalMaxPool(), np.max), (GlobalAvgPool(), np.mean)):
        out_shape, _, _ = layer.init(key, x.shape[1:])
        y, grads = forward_and_grads(lambda x, layer=layer: layer.apply({}, {}, x)[0], x)
        assert out_shape == (3,) and y.shape == (2, 3)
        chex.assert_trees_all_close(y, reduce(np.asarray(x), axis=(1, 2)), atol=1e-6)
    # the mean's gradient spreads the cotangent evenly over the 20 positions
    cotangent = normal((2, 3), seed=1)
    expected = np.broadcast_to(np.asarray(cotangent)[:, None, None, :] / 20, x.shape)
    chex.assert_trees_all_close(grads, expected, atol=1e-6)


def test_upsample_matches_nearest_resize(key):
    x = normal((2, 3, 4, 2))
    layer = UpSample((2, 3))
    out_shape, _, _ = layer.init(key, x.shape[1:])
    y, _ = layer.apply({}, {}, x)
    assert out_shape == (6, 12, 2)
    chex.assert_trees_all_close(y, jax.image.resize(x, (2, 6, 12, 2), "nearest"))


def test_bad_inputs_name_the_layer(key):
    with pytest.raises(ShapeError, match="max_pool: expected inputs of shape"):
        MaxPool(2).init(key, (16,))
    with pytest.raises(ShapeError, match="2 spatial axes"):
        MaxPool((2, 2)).init(key, (8, 3))
    with pytest.raises(ShapeError, match="shorter than the window"):
        AvgPool(5).init(key, (3, 8, 1))
    model = serial(GlobalAvgPool())
    with pytest.raises(ShapeError) as info:
        model.apply({"global_avg_pool_0": {}}, {"global_avg_pool_0": {}}, jnp.ones((4, 3)))
    assert info.value.path == ("serial", "global_avg_pool_0")
