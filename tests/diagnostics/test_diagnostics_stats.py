"""Statistics against a hand computation (NumPy forward and backward pass) on a tiny network."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet
from jaxnet.diagnostics.stats import (
    PackedProbe,
    activation_stats,
    make_probe,
    saturated_fraction,
    stats_at_init,
)
from jaxnet.train.step import make_train_step


def _tiny_model():
    return jaxnet.serial(
        jaxnet.Dense(5, bias_init=jaxnet.init.constant(0.0)),
        jaxnet.activations.Relu(),
        jaxnet.Dense(4),
        jaxnet.activations.Tanh(),
        jaxnet.Dense(2),
    )


def _tiny_params():
    """Hand-made weights: relu unit 0 is dead (bias -100), tanh unit 3 saturates (weight 50)."""
    rng = np.random.default_rng(0)
    w0, b0 = rng.normal(size=(3, 5)).astype(np.float32), np.zeros(5, np.float32)
    b0[0] = -100.0
    w2, b2 = rng.normal(size=(5, 4)).astype(np.float32), np.zeros(4, np.float32)
    b2[3] = 50.0
    w4, b4 = rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    return {
        "dense_0": {"w": w0, "b": b0},
        "relu_1": {},
        "dense_2": {"w": w2, "b": b2},
        "tanh_3": {},
        "dense_4": {"w": w4, "b": b4},
    }


def _mse(predictions, targets):
    return jnp.mean((predictions - targets) ** 2)


def _numpy_forward_backward(p, x, t):
    """Layer outputs and parameter gradients of the tiny model by hand (chain rule in NumPy)."""
    z0 = x @ p["dense_0"]["w"] + p["dense_0"]["b"]
    a1 = np.maximum(z0, 0)
    z2 = a1 @ p["dense_2"]["w"] + p["dense_2"]["b"]
    a3 = np.tanh(z2)
    y = a3 @ p["dense_4"]["w"] + p["dense_4"]["b"]
    dy = 2 * (y - t) / y.size
    g4 = {"w": a3.T @ dy, "b": dy.sum(0)}
    dz2 = (dy @ p["dense_4"]["w"].T) * (1 - a3**2)
    g2 = {"w": a1.T @ dz2, "b": dz2.sum(0)}
    dz0 = (dz2 @ p["dense_2"]["w"].T) * (z0 > 0)
    g0 = {"w": x.T @ dz0, "b": dz0.sum(0)}
    return {"relu_1": a1, "tanh_3": a3}, {"dense_0": g0, "dense_2": g2, "dense_4": g4}


def _norm(tree):
    return np.sqrt(sum(np.sum(np.asarray(v, np.float64) ** 2) for v in tree.values()))


def test_statistics_match_a_hand_computation():
    model, params = _tiny_model(), _tiny_params()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    t = rng.normal(size=(8, 2)).astype(np.float32)
    learning_rate = 0.1
    step = make_train_step(model, _mse, optax.sgd(learning_rate), probe=make_probe(model))
    jparams = jax.tree.map(jnp.asarray, params)
    opt_state = optax.sgd(learning_rate).init(jparams)
    *_, logs = step(jparams, {k: {} for k in params}, opt_state, (x, t), None)
    got = logs["probe"]["layers"]

    outputs, grads = _numpy_forward_backward(params, x, t)
    for name, g in grads.items():
        size = sum(v.size for v in g.values())
        flat = np.concatenate([v.ravel() for v in g.values()])
        expected = {
            "grad_norm": _norm(g),
            "grad_rms": _norm(g) / np.sqrt(size),
            "grad_max": np.abs(flat).max(),
            "grad_zero_fraction": np.mean(flat == 0),
            "grad_nonfinite": 0.0,
            "param_norm": _norm(params[name]),
            "update_norm": learning_rate * _norm(g),
            "update_ratio": learning_rate * _norm(g) / _norm(params[name]),
        }
        for stat, value in expected.items():
            np.testing.assert_allclose(got[name][stat], value, rtol=2e-4, atol=1e-7, err_msg=stat)

    a1, a3 = outputs["relu_1"], outputs["tanh_3"]
    np.testing.assert_allclose(got["relu_1"]["activation_mean"], a1.mean(), rtol=1e-5)
    np.testing.assert_allclose(got["relu_1"]["activation_std"], a1.std(), rtol=1e-4)
    dead = np.all(a1 <= 0, axis=0)
    assert dead[0]  # the construction works: the -100 bias kills unit 0
    np.testing.assert_allclose(got["relu_1"]["dead_fraction"], dead.mean())
    np.testing.assert_array_equal(got["relu_1"]["dead_units"], dead.astype(np.float32))
    saturated = np.mean(1 - a3**2 < 0.1, axis=0) >= 0.9  # tanh' below 10% of its peak (1)
    assert saturated[3]
    np.testing.assert_allclose(got["tanh_3"]["saturated_fraction"], saturated.mean())
    np.testing.assert_allclose(got["tanh_3"]["activation_std"], a3.std(), rtol=1e-4)
    # the output of the zero-gradient dead unit: its incoming weights get exactly zero gradient
    zero_w0 = np.mean(np.concatenate([grads["dense_0"]["w"].ravel(), grads["dense_0"]["b"]]) == 0)
    assert zero_w0 >= 0.2
    np.testing.assert_allclose(got["dense_0"]["grad_zero_fraction"], zero_w0)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_saturation_is_a_small_derivative_for_most_of_the_batch(activation):
    z = np.full((50, 4), 10.0, np.float32)  # unit 0: always saturated
    z[:5, 1] = 0.0  # saturated for 90% of the batch exactly
    z[:6, 2] = -0.3  # 88%: below the 90% majority
    z[:, 3] = np.linspace(-1, 1, 50)  # never saturated
    fn, grad = {
        "sigmoid": (jax.nn.sigmoid, lambda v: jax.nn.sigmoid(v) * (1 - jax.nn.sigmoid(v)) / 0.25),
        "tanh": (jnp.tanh, lambda v: 1 - jnp.tanh(v) ** 2),
    }[activation]
    a = fn(z)
    expected = np.mean(np.mean(np.asarray(grad(z)) < 0.1, axis=0) >= 0.9)
    assert expected == 0.5  # units 0 and 1
    np.testing.assert_allclose(saturated_fraction(a, activation), expected)
    assert "saturated_fraction" in activation_stats(a, activation)
    assert "dead_fraction" not in activation_stats(a, activation)


def test_dead_units_reduce_over_positions_of_feature_maps():
    a = np.ones((2, 3, 3, 4), np.float32)
    a[..., 1] = 0.0
    a[0, 1, 1, 2] = 0.0  # one zero position does not kill channel 2
    stats = activation_stats(jnp.asarray(a), "relu")
    np.testing.assert_allclose(stats["dead_fraction"], 0.25)
    np.testing.assert_array_equal(stats["dead_units"], [0, 1, 0, 0])


@pytest.mark.parametrize("shape", [(20, 6, 6, 8), (300, 256)])  # one column pass / three passes
def test_relu_statistics_of_small_and_large_activations_match_numpy(shape):
    rng = np.random.default_rng(4)
    a = np.maximum(rng.normal(size=shape), 0).astype(np.float32)
    a[..., 1] = 0.0  # a dead unit
    a[3, ..., 2] = 0.0  # one zero row does not kill unit 2
    stats = activation_stats(jnp.asarray(a), "relu")
    rows = a.reshape(-1, shape[-1]).astype(np.float64)
    np.testing.assert_allclose(stats["activation_mean"], rows.mean(), rtol=1e-5)
    np.testing.assert_allclose(stats["activation_std"], rows.std(), rtol=1e-4)
    dead = np.all(rows <= 0, axis=0)
    np.testing.assert_array_equal(stats["dead_units"], dead.astype(np.float32))
    np.testing.assert_allclose(stats["dead_fraction"], dead.mean())


def test_plain_functions_are_recognised_by_name_and_packing_round_trips():
    model = jaxnet.serial(jaxnet.Dense(8), jax.nn.relu, jaxnet.Dense(4), jax.nn.sigmoid)
    params, state = jaxnet.init_model(model, jax.random.key(0), (3,))
    batch = (jnp.ones((6, 3)), jnp.zeros((6, 4)))
    stats = stats_at_init(model, params, state, batch, _mse)
    assert set(stats["layers"]) == {"dense_0", "relu_1", "dense_2", "sigmoid_3"}
    assert "dead_fraction" in stats["layers"]["relu_1"]
    assert "saturated_fraction" in stats["layers"]["sigmoid_3"]

    packed = make_probe(model, packed=True)
    assert isinstance(packed, PackedProbe)
    objective = jaxnet.objective.make_loss(model, _mse)
    grads, aux = jax.grad(objective, has_aux=True)(params, state, *batch, None)
    kwargs = {"grads": grads, "params": params, "outputs": aux[3], "loss": aux[2]}
    floats, ints = packed(**kwargs)
    assert floats.ndim == ints.ndim == 1
    assert floats.dtype == np.float32 and ints.dtype == np.int32
    stacked = (np.stack([floats] * 3), np.stack([ints] * 3))  # as the scanned epoch stacks it
    unpacked = packed.unpack(stacked)
    reference = make_probe(model)(**kwargs)
    for got, want in zip(jax.tree.leaves(unpacked), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(got, np.stack([want] * 3), rtol=1e-6)


def test_magnitudes_and_counts_with_nan_inf_and_signed_zeros_match_numpy():
    """max |g| and the zero/NaN counts come from an integer pass over the float bits; arrays of
    several layers that share a last axis are stacked; packed (host) == unpacked (device)."""
    rng = np.random.default_rng(2)
    grads = {
        "a": {"w": rng.normal(size=(4, 6)), "b": np.array([0.0, -0.0, 3.0, -7.5, 0.0, 1e-30])},
        "b": {"w": rng.normal(size=(6, 6)), "b": np.zeros(6)},
        "c": {"w": rng.normal(size=(6, 3)), "b": np.array([np.nan, 1.0, -np.inf])},
    }
    grads["b"]["w"][2, 3] = np.inf
    grads["a"]["w"][0, 0] = -9.0  # the largest magnitude is negative
    grads = jax.tree.map(lambda a: np.asarray(a, np.float32), grads)
    params = jax.tree.map(lambda a: np.ones_like(a) * 2.0, grads)
    updates = jax.tree.map(lambda a: np.full_like(a, -0.5), grads)
    for probe in (make_probe(), make_probe(packed=True)):
        result = probe(grads=grads, params=params, updates=updates)
        got = probe.unpack(jax.device_get(result)) if isinstance(probe, PackedProbe) else result
        for name, g in grads.items():
            flat = np.concatenate([v.ravel() for v in g.values()]).astype(np.float64)
            stats = got["layers"][name]
            finite = np.isfinite(flat)
            np.testing.assert_equal(float(stats["grad_nonfinite"]), np.sum(~finite))
            np.testing.assert_allclose(stats["grad_zero_fraction"], np.mean(flat == 0))
            if np.isnan(flat).any():
                assert np.isnan(stats["grad_max"])
            else:
                np.testing.assert_allclose(stats["grad_max"], np.max(np.abs(flat)))
            expected_norm = np.sqrt(np.sum(flat**2))  # inf when an entry is inf
            np.testing.assert_allclose(stats["grad_norm"], expected_norm, rtol=1e-6)
            np.testing.assert_allclose(stats["param_norm"], 2.0 * np.sqrt(flat.size), rtol=1e-6)
            np.testing.assert_allclose(stats["update_ratio"], 0.25, rtol=1e-6)


def test_large_arrays_one_pass_each_match_numpy():
    """Arrays above SMALL entries take the one-read passes (gradient: sum of squares, max |g|,
    zeros, NaN/inf together; old and new weights together): every statistic equals NumPy's."""
    rng = np.random.default_rng(3)
    shape = (80, 64)  # 5120 entries > SMALL
    g = rng.normal(size=shape).astype(np.float32)
    g[0, :7] = 0.0
    g[5, 5] = -40.0  # the largest magnitude is negative
    w = rng.normal(size=shape).astype(np.float32)
    u = (1e-3 * rng.normal(size=shape)).astype(np.float32)
    bad = g.copy()
    bad[1, 1], bad[2, 2] = np.inf, np.nan
    for grads in (g, bad):
        for probe in (make_probe(), make_probe(packed=True)):
            result = probe(
                grads={"d": {"w": grads}}, params={"d": {"w": w}}, updates={"d": {"w": u}}
            )
            got = probe.unpack(jax.device_get(result)) if isinstance(probe, PackedProbe) else result
            stats, flat = got["layers"]["d"], grads.astype(np.float64).ravel()
            applied = (w + u).astype(np.float64) - w  # the update as float32 weights take it
            np.testing.assert_equal(float(stats["grad_nonfinite"]), np.sum(~np.isfinite(flat)))
            np.testing.assert_allclose(stats["grad_zero_fraction"], np.mean(flat == 0))
            if np.isnan(flat).any():
                assert np.isnan(stats["grad_max"]) and np.isnan(stats["grad_norm"])
            else:
                np.testing.assert_allclose(stats["grad_max"], 40.0)
                np.testing.assert_allclose(stats["grad_norm"], np.linalg.norm(flat), rtol=1e-6)
            np.testing.assert_allclose(stats["param_norm"], np.linalg.norm(w), rtol=1e-6)
            np.testing.assert_allclose(stats["update_norm"], np.linalg.norm(applied), rtol=1e-5)
