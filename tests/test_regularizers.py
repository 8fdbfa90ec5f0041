import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnet import losses, optim
from jaxnet.core import init_model, serial
from jaxnet.errors import ConfigError
from jaxnet.layers.dense import Dense
from jaxnet.objective import make_loss
from jaxnet.recipes import classifier_mlp, regression_mlp
from jaxnet.regularizers import (
    ActivityRegularization,
    combine,
    constrain,
    elastic_net,
    l1,
    l2,
    max_norm,
    min_max_norm,
    non_neg,
    param_paths,
    project,
    unit_norm,
)
from jaxnet.topology import branch, residual
from jaxnet.train.fit import fit
from jaxnet.train.step import make_train_step


def _model():
    return serial(Dense(4), jax.nn.relu, Dense(3), name="net")


@pytest.fixture
def params(key):
    p, _ = init_model(_model(), key, (5,))
    # Non-zero biases so that "biases excluded" is visible in the values.
    return jax.tree_util.tree_map_with_path(
        lambda path, a: a + 0.5 if path[-1].key == "b" else a, p
    )


def _np(params, layer, leaf):
    return np.asarray(params[layer][leaf], dtype=np.float64)


def test_param_paths(params):
    assert param_paths(params) == ["dense_0/b", "dense_0/w", "dense_2/b", "dense_2/w"]


def test_penalty_values_match_closed_forms_and_exclude_biases(params):
    w0, w2 = _np(params, "dense_0", "w"), _np(params, "dense_2", "w")
    sum_sq = (w0**2).sum() + (w2**2).sum()
    sum_abs = np.abs(w0).sum() + np.abs(w2).sum()
    np.testing.assert_allclose(l2(0.01)(params), 0.01 * sum_sq, rtol=1e-6)
    np.testing.assert_allclose(l1(0.02)(params), 0.02 * sum_abs, rtol=1e-6)
    np.testing.assert_allclose(
        elastic_net(0.02, 0.01)(params), 0.02 * sum_abs + 0.01 * sum_sq, rtol=1e-6
    )


def test_penalty_gradients_match_closed_forms(params):
    g2 = jax.jit(jax.grad(l2(0.01)))(params)
    g1 = jax.jit(jax.grad(l1(0.02)))(params)
    for layer in ("dense_0", "dense_2"):
        w = _np(params, layer, "w")
        np.testing.assert_allclose(g2[layer]["w"], 2 * 0.01 * w, rtol=1e-6)
        np.testing.assert_allclose(g1[layer]["w"], 0.02 * np.sign(w), rtol=1e-6)
        np.testing.assert_array_equal(g2[layer]["b"], 0.0)  # biases are not penalised
        np.testing.assert_array_equal(g1[layer]["b"], 0.0)


def test_per_layer_paths_and_function_selector(params):
    w0, b0 = _np(params, "dense_0", "w"), _np(params, "dense_0", "b")
    np.testing.assert_allclose(l2(0.1, paths="dense_0/w")(params), 0.1 * (w0**2).sum(), rtol=1e-6)
    # A layer name selects its whole subtree (kernel and bias).
    np.testing.assert_allclose(
        l2(0.1, paths="dense_0")(params), 0.1 * ((w0**2).sum() + (b0**2).sum()), rtol=1e-6
    )
    only_biases = l1(1.0, paths=lambda path: path.endswith("/b"))(params)
    np.testing.assert_allclose(
        only_biases, np.abs(b0).sum() + np.abs(_np(params, "dense_2", "b")).sum(), rtol=1e-6
    )
    per_layer = combine(l1(0.3, paths="dense_0/w"), l2(0.2, paths="dense_*2/w"))(params)
    expected = 0.3 * np.abs(w0).sum() + 0.2 * (_np(params, "dense_2", "w") ** 2).sum()
    np.testing.assert_allclose(per_layer, expected, rtol=1e-6)


def test_default_selects_recurrent_kernels_but_no_biases():
    params = {
        "simple_rnn_0": {"w_x": jnp.full((2, 3), 2.0), "w_h": jnp.ones((3, 3)), "b": jnp.ones(3)},
        "batch_norm_1": {"scale": jnp.ones(3), "bias": jnp.ones(3)},
    }
    np.testing.assert_allclose(l2(0.5)(params), 0.5 * (6 * 4.0 + 9 * 1.0), rtol=1e-6)


def test_nested_model_paths(key):
    block = serial(Dense(3), jax.nn.relu, name="block")
    p, _ = init_model(serial(block, Dense(2)), key, (4,))
    w_inner, w_outer = p["block_0"]["dense_0"]["w"], p["dense_1"]["w"]
    expected = jnp.sum(w_inner**2) + jnp.sum(w_outer**2)
    np.testing.assert_allclose(l2(1.0)(p), expected, rtol=1e-6)
    np.testing.assert_allclose(l2(1.0, paths="block_0")(p), jnp.sum(w_inner**2) + 0.0, rtol=1e-6)


def test_unknown_path_is_a_config_error_listing_valid_paths(params):
    with pytest.raises(ConfigError) as info:
        l2(0.01, paths="dense_1/w")(params)
    message = str(info.value)
    assert "dense_1/w" in message and "dense_0/w" in message and "dense_2/b" in message
    with pytest.raises(ConfigError, match="dense_0/w"):
        l2(0.01, paths=lambda path: False)(params)


def test_negative_scale_is_a_config_error():
    with pytest.raises(ConfigError, match="l2"):
        l2(-1.0)


def test_penalty_enters_the_training_gradient(key, params):
    model = _model()
    x = jax.random.normal(key, (8, 5))
    y = jax.random.normal(jax.random.fold_in(key, 1), (8, 3))
    _, state = init_model(model, key, (5,))
    plain = make_loss(model, losses.mse)
    penalised = make_loss(model, losses.mse, penalty=l2(0.05))
    g_plain, _ = jax.jit(jax.grad(plain, has_aux=True))(params, state, x, y, None)
    g_pen, _ = jax.jit(jax.grad(penalised, has_aux=True))(params, state, x, y, None)
    diff = jax.tree.map(lambda a, b: a - b, g_pen, g_plain)
    for layer in ("dense_0", "dense_2"):
        np.testing.assert_allclose(diff[layer]["w"], 0.1 * params[layer]["w"], atol=1e-6)
        np.testing.assert_allclose(diff[layer]["b"], 0.0, atol=1e-7)


def test_activity_regularization_adds_its_penalty_in_training(key):
    model = serial(Dense(4), jax.nn.relu, ActivityRegularization(l1=0.01, l2=0.1), Dense(2))
    params, state = init_model(model, key, (3,))
    x = jax.random.normal(key, (6, 3))
    y = jax.random.normal(jax.random.fold_in(key, 1), (6, 2))
    total, (predictions, new_state, data_loss, outputs) = jax.jit(make_loss(model, losses.mse))(
        params, state, x, y, None
    )
    h = np.asarray(jax.nn.relu(x @ params["dense_0"]["w"] + params["dense_0"]["b"]), np.float64)
    expected = (0.01 * np.abs(h).sum() + 0.1 * (h**2).sum()) / 6
    np.testing.assert_allclose(total - data_loss, expected, rtol=1e-5)
    # Inference leaves the state alone.
    _, eval_state = model.apply(params, new_state, x, train=False)
    chex.assert_trees_all_equal(eval_state, new_state)


def _numpy_max_norm(w, m, axis=0):
    norms = np.sqrt((w**2).sum(axis=axis, keepdims=True))
    return w * np.clip(norms, 0, m) / (1e-7 + norms)


def test_constraints_match_their_formulas(key):
    w = np.asarray(jax.random.normal(key, (6, 4)), np.float64) * 3
    norms = np.sqrt((w**2).sum(axis=0, keepdims=True))
    np.testing.assert_allclose(max_norm(2.0)(w), _numpy_max_norm(w, 2.0), rtol=1e-6)
    np.testing.assert_allclose(non_neg()(w), np.maximum(w, 0), rtol=0)
    np.testing.assert_allclose(unit_norm()(w), w / (1e-7 + norms), rtol=1e-6)
    desired = 0.5 * np.clip(norms, 1.0, 2.0) + 0.5 * norms
    np.testing.assert_allclose(
        min_max_norm(1.0, 2.0, rate=0.5)(w), w * desired / (1e-7 + norms), rtol=1e-6
    )
    projected = np.asarray(min_max_norm(5.0, 6.0)(w))
    new_norms = np.sqrt((projected**2).sum(axis=0))
    assert np.all((new_norms > 5.0 - 1e-4) & (new_norms < 6.0 + 1e-4))


def test_project_by_pattern_and_by_function(params):
    by_pattern = project(params, {"dense_0/w": non_neg()})
    assert np.all(np.asarray(by_pattern["dense_0"]["w"]) >= 0)
    chex.assert_trees_all_equal(by_pattern["dense_2"], params["dense_2"])
    chex.assert_trees_all_equal(by_pattern["dense_0"]["b"], params["dense_0"]["b"])
    by_function = project(params, lambda path: non_neg() if path.endswith("/b") else None)
    chex.assert_trees_all_equal(by_function["dense_0"]["w"], params["dense_0"]["w"])
    with pytest.raises(ConfigError, match="dense_0/w"):
        project(params, {"dense_9/w": non_neg()})


def test_constraints_hold_after_every_step(key):
    model = _model()
    x = jax.random.normal(key, (32, 5)) * 4
    y = jax.random.normal(jax.random.fold_in(key, 1), (32, 3)) * 10
    optimizer = constrain(optax.sgd(0.5), {"dense_0/w": max_norm(0.7), "dense_2/w": non_neg()})
    params, state = init_model(model, key, (5,))
    opt_state = optimizer.init(params)
    step = make_train_step(model, losses.mse, optimizer)
    for i in range(8):
        params, state, opt_state, _ = step(params, state, opt_state, (x, y), jax.random.key(i))
        norms = np.linalg.norm(np.asarray(params["dense_0"]["w"]), axis=0)
        assert np.all(norms <= 0.7 + 1e-5), (i, norms)
        assert np.all(np.asarray(params["dense_2"]["w"]) >= 0), i
    # The unconstrained run does leave the constraint set, so the check above is not vacuous.
    free_params, state = init_model(model, key, (5,))
    free_state = optax.sgd(0.5).init(free_params)
    free_step = make_train_step(model, losses.mse, optax.sgd(0.5))
    free_params, *_ = free_step(free_params, state, free_state, (x, y), key)
    assert np.linalg.norm(np.asarray(free_params["dense_0"]["w"]), axis=0).max() > 0.7


def test_constraints_hold_after_every_epoch_of_fit(key):
    x = np.asarray(jax.random.normal(key, (64, 5))) * 3
    y = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (64, 3))) * 5
    seen = []

    class Check:
        def on_epoch_end(self, epoch, logs, loop):
            w = loop.train_state.params["dense_0"]["w"]
            seen.append(np.linalg.norm(np.asarray(w), axis=0))

    optimizer = constrain(optim.adam(0.1), {"w": max_norm(1.0)})
    fit(
        _model(),
        losses.mse,
        optimizer,
        x,
        y,
        epochs=3,
        batch_size=16,
        verbose=0,
        callbacks=[Check()],
    )
    assert len(seen) == 3 and all(np.all(n <= 1.0 + 1e-5) for n in seen)


def test_constrain_needs_params():
    optimizer = constrain(optax.sgd(0.1), {"w": non_neg()})
    p = {"dense_0": {"w": jnp.ones((2, 2))}}
    with pytest.raises(ConfigError, match="params"):
        optimizer.update(p, optimizer.init(p))


def test_recipes_return_a_kernel_penalty(key):
    recipe = classifier_mlp(3, hidden=(8, 8), l2=0.01, l1=0.001)
    params, _ = init_model(recipe.model, key, (4,))
    kernels = [np.asarray(params[name]["w"], np.float64) for name in params if "w" in params[name]]
    expected = sum(0.001 * np.abs(w).sum() + 0.01 * (w**2).sum() for w in kernels)
    np.testing.assert_allclose(jax.jit(recipe.penalty)(params), expected, rtol=1e-6)
    assert classifier_mlp(3).penalty is None and regression_mlp(1).penalty is None
    assert regression_mlp(1, l2=0.1).penalty is not None


def test_activity_penalty_inside_combinators_counts_each_layer_once(key):
    """The penalty is read from the recorded outputs wherever the layer sits, not from state."""
    block = serial(Dense(4), ActivityRegularization(l2=0.5), name="block")
    model = serial(
        Dense(4), residual(block), branch(ActivityRegularization(l1=0.2), Dense(2)), name="net"
    )
    params, state = init_model(model, key, (3,))
    assert jax.tree.leaves(state) == []  # no state entry carries the penalty
    x = jax.random.normal(key, (6, 3))
    y = jax.random.normal(jax.random.fold_in(key, 1), (6, 2))

    def loss(predictions, targets):
        return jnp.mean((predictions[1] - targets) ** 2)

    wrapped = serial(model, name="outer")  # and one level deeper
    objective = make_loss(wrapped, loss)
    total, (_, _, data_loss, _) = objective({"net_0": params}, {"net_0": state}, x, y, None)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = np.asarray(x, np.float64) @ p["dense_0"]["w"] + p["dense_0"]["b"]
    inner = p["residual_1"]["block_0"]["dense_0"]
    g = h @ inner["w"] + inner["b"]
    expected = 0.5 * (g**2).sum() / 6 + 0.2 * np.abs(g + h).sum() / 6
    np.testing.assert_allclose(total - data_loss, expected, rtol=1e-5)
