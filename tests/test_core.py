import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxnet
from jaxnet.errors import DTypeError, ShapeError


def test_serial_names_children_by_kind_and_position(key):
    model = jaxnet.serial(
        jaxnet.Dense(8), jax.nn.relu, jaxnet.Dense(8), jaxnet.activations.Relu(), jaxnet.Dense(2)
    )
    shape, params, state = model.init(key, (5,))
    assert shape == (2,)
    assert list(params) == ["dense_0", "relu_1", "dense_2", "relu_3", "dense_4"]
    assert params["relu_1"] == {} and state["dense_0"] == {}
    assert params["dense_2"]["w"].shape == (8, 8) and params["dense_4"]["b"].shape == (2,)


def test_serial_equals_manual_composition(key):
    model = jaxnet.serial(jaxnet.Dense(8), jax.nn.tanh, jaxnet.Dense(3))
    _, params, state = model.init(key, (5,))
    x = jax.random.normal(key, (4, 5))
    y, _ = model.apply(params, state, x)
    p0, p2 = params["dense_0"], params["dense_2"]
    manual = jnp.tanh(x @ p0["w"] + p0["b"]) @ p2["w"] + p2["b"]
    np.testing.assert_allclose(y, manual, rtol=1e-6)


def test_child_keys_do_not_depend_on_other_children():
    seen = {}

    def recorder(tag):
        def init(key, shape):
            return shape, {}, {}

        def apply(params, state, x, *, key=None, train=False):
            seen[tag] = key
            return x, state

        return jaxnet.Layer(init, apply, tag, {})

    root = jax.random.key(3)
    model = jaxnet.serial(recorder("a"), recorder("b"))
    model.apply({"a_0": {}, "b_1": {}}, {"a_0": {}, "b_1": {}}, jnp.ones((1, 2)), key=root)
    expected = jax.random.key_data(jax.random.fold_in(root, 1))
    np.testing.assert_array_equal(jax.random.key_data(seen["b"]), expected)


def test_apply_with_outputs_returns_every_child_output(key):
    model = jaxnet.serial(jaxnet.Dense(4), jaxnet.activations.Relu(), jaxnet.Dense(2))
    _, params, state = model.init(key, (3,))
    x = jax.random.normal(key, (5, 3))
    y, _, outputs = jaxnet.apply_with_outputs(model, params, state, x)
    assert list(outputs) == ["dense_0", "relu_1", "dense_2"]
    np.testing.assert_array_equal(outputs["relu_1"], jnp.maximum(outputs["dense_0"], 0))
    np.testing.assert_array_equal(outputs["dense_2"], y)


def test_shape_errors_name_the_layer_and_both_shapes(key):
    model = jaxnet.serial(jaxnet.Dense(4), jaxnet.activations.Relu(), jaxnet.Dense(2), name="mlp")
    _, params, state = model.init(key, (3,))
    with pytest.raises(
        ShapeError, match=r"mlp/dense_0: expected input with 3 features .* \(5, 7\)"
    ):
        model.apply(params, state, jnp.ones((5, 7)))
    with pytest.raises(DTypeError, match=r"mlp/dense_0: .*int32"):
        model.apply(params, state, jnp.ones((5, 3), jnp.int32))


def test_nested_serial_error_path(key):
    inner = jaxnet.serial(jaxnet.Dense(4), name="block")
    outer = jaxnet.serial(jaxnet.Dense(3), inner, name="net")
    _, params, state = outer.init(key, (2,))
    bad = jax.tree.map(lambda a: a, params)
    bad["block_1"]["dense_0"]["w"] = jnp.ones((5, 4))
    with pytest.raises(ShapeError, match="net/block_1/dense_0"):
        outer.apply(bad, state, jnp.ones((1, 2)))


def test_flatten_and_count_params(key):
    model = jaxnet.serial(jaxnet.Flatten(), jaxnet.Dense(3))
    shape, params, state = model.init(key, (4, 2, 2))
    assert shape == (3,)
    assert jaxnet.count_params(params) == 16 * 3 + 3
    y, _ = model.apply(params, state, jnp.ones((2, 4, 2, 2)))
    assert y.shape == (2, 3)


@pytest.mark.parametrize(
    "layer",
    [
        jaxnet.activations.Sigmoid(),
        jaxnet.activations.Tanh(),
        jaxnet.activations.Elu(0.7),
        jaxnet.activations.Selu(),
        jaxnet.activations.Softplus(),
        jaxnet.activations.Gelu(),
        jaxnet.activations.Swish(),
        jaxnet.activations.LeakyRelu(0.2),
        jaxnet.activations.Softmax(),
        jaxnet.activations.LogSoftmax(),
        jaxnet.activations.Relu(),
    ],
    ids=lambda layer: layer.name,
)
def test_gradients_match_finite_differences(layer):
    bias = jaxnet.init.constant(0.1)
    with jax.enable_x64(True):
        model = jaxnet.serial(
            jaxnet.Dense(6, kernel_init="he_normal", bias_init=bias, dtype=jnp.float64),
            layer,
            jaxnet.Dense(3, dtype=jnp.float64),
        )
        _, params, state = model.init(jax.random.key(1), (4,))
        x = jax.random.normal(jax.random.key(2), (5, 4), jnp.float64)

        def f(params, x):
            return jnp.sum(jnp.sin(model.apply(params, state, x)[0]))

        check_grads(f, (params, x), order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6)


def test_dense_dtype_parameter(key):
    layer = jaxnet.Dense(3, dtype=jnp.bfloat16)
    _, params, state = layer.init(key, (2,))
    assert params["w"].dtype == jnp.bfloat16
    y, _ = layer.apply(params, state, jnp.ones((1, 2), jnp.bfloat16))
    assert y.dtype == jnp.bfloat16


def test_every_combinator_gives_child_i_the_key_fold_in_key_i(key):
    """Bit-identical params: each child initialised alone with fold_in(key, i) is the reference."""
    dense_a, dense_b = jaxnet.Dense(3), jaxnet.Dense(2, kernel_init="he_normal")

    def alone(layer, i, shape):
        return layer.init(jax.random.fold_in(key, i), shape)[1]

    params = jaxnet.parallel(dense_a, dense_b).init(key, ((4,), (5,)))[1]
    chex.assert_trees_all_equal(
        params, {"dense_0": alone(dense_a, 0, (4,)), "dense_1": alone(dense_b, 1, (5,))}
    )
    params = jaxnet.branch(dense_a, dense_b).init(key, (4,))[1]
    chex.assert_trees_all_equal(
        params, {"dense_0": alone(dense_a, 0, (4,)), "dense_1": alone(dense_b, 1, (4,))}
    )
    params = jaxnet.residual(dense_a).init(key, (4,))[1]
    projection = jaxnet.Dense(3, use_bias=False, name="projection")
    expected = {"dense_0": alone(dense_a, 0, (4,)), "projection_1": alone(projection, 1, (4,))}
    chex.assert_trees_all_equal(params, expected)
    fw, bw = jaxnet.GRUCell(2), jaxnet.LSTMCell(3)
    params = jaxnet.Bidirectional(fw, bw).init(key, (5, 4))[1]
    expected = {
        "forward": alone(jaxnet.RNN(fw), 0, (5, 4)),
        "backward": alone(jaxnet.RNN(bw, reverse=True), 1, (5, 4)),
    }
    chex.assert_trees_all_equal(params, expected)


def test_apply_with_outputs_records_layers_inside_combinators(key):
    block = jaxnet.serial(jaxnet.Dense(4), jaxnet.activations.Relu(), name="block")
    model = jaxnet.serial(jaxnet.Dense(4), jaxnet.residual(block), jaxnet.Dense(2))
    params, state = jaxnet.init_model(model, key, (3,))
    x = jax.random.normal(key, (5, 3))
    y, _, outputs = jaxnet.apply_with_outputs(model, params, state, x)
    # The top level first, as diagnostics read it; then the layers inside, parents first.
    assert list(outputs) == [
        "dense_0",
        "residual_1",
        "dense_2",
        "residual_1/block_0",
        "residual_1/block_0/dense_0",
        "residual_1/block_0/relu_1",
    ]
    p = params["dense_0"]
    h = x @ p["w"] + p["b"]
    inner = params["residual_1"]["block_0"]["dense_0"]
    np.testing.assert_allclose(
        outputs["residual_1/block_0/dense_0"], h @ inner["w"] + inner["b"], rtol=1e-5
    )
    np.testing.assert_allclose(
        outputs["residual_1"], jnp.maximum(h @ inner["w"] + inner["b"], 0) + h, rtol=1e-5
    )
    np.testing.assert_array_equal(outputs["dense_2"], y)
    single = jaxnet.Dense(2)
    _, p1, s1 = single.init(key, (3,))
    assert list(jaxnet.apply_with_outputs(single, p1, s1, x)[2]) == ["dense"]


def test_rescale_maps_stored_units_to_float32():
    images = np.arange(12, dtype=np.uint8).reshape(1, 2, 3, 2) * 20
    layer = jaxnet.Rescale(1 / 255, offset=-0.5)
    out_shape, params, state = layer.init(None, (2, 3, 2))
    y, _ = layer.apply(params, state, jnp.asarray(images))
    assert out_shape == (2, 3, 2) and y.dtype == jnp.float32
    np.testing.assert_allclose(y, images.astype(np.float64) / 255 - 0.5, rtol=0, atol=1e-7)
    with pytest.raises(DTypeError, match="rescale: expected a numeric input"):
        layer.apply(params, state, np.array([["x"]]))
