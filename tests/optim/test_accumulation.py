"""``optim.ema`` against ``optax.ema`` and ``optim.multi_steps`` against ``optax.MultiSteps``, step
by step: the outputs and every field of the states."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnet import optim

N_STEPS = 14


def _tree(dtype=jnp.float32, seed=0, n=None):
    """A small pytree (a matrix, a vector, a scalar); with ``n``, ``n`` of them stacked."""
    keys = jax.random.split(jax.random.key(seed), 3)
    lead = () if n is None else (n,)
    shapes = {"w": (3, 2), "b": (2,), "s": ()}
    return {
        name: jax.random.normal(k, lead + shape, jnp.float32).astype(dtype)
        for k, (name, shape) in zip(keys, shapes.items(), strict=True)
    }


def _scan_both(ours, theirs, inputs, params):
    """Run both transformations over stacked ``inputs``; outputs and states of every step."""

    def step(carry, x):
        s_ours, s_theirs = carry
        u_ours, s_ours = ours.update(x, s_ours, params)
        with jax.numpy_dtype_promotion("standard"):  # optax is not strict-clean
            u_theirs, s_theirs = theirs.update(x, s_theirs, params)
        return (s_ours, s_theirs), (u_ours, u_theirs, s_ours, s_theirs)

    with jax.numpy_dtype_promotion("standard"):
        init = (ours.init(params), theirs.init(params))
    return jax.jit(lambda xs: jax.lax.scan(step, init, xs)[1])(inputs)


@pytest.mark.parametrize(
    ("decay", "debias", "accumulator_dtype", "dtype"),
    [
        (0.9, True, None, jnp.float32),
        (0.5, False, None, jnp.float32),
        (0.99, True, jnp.bfloat16, jnp.float32),
        (0.9, True, None, jnp.bfloat16),
    ],
)
def test_ema_equals_optax_step_by_step(decay, debias, accumulator_dtype, dtype):
    ours = optim.ema(decay, debias=debias, accumulator_dtype=accumulator_dtype)
    theirs = optax.ema(decay, debias=debias, accumulator_dtype=accumulator_dtype)
    inputs = _tree(dtype, n=N_STEPS)
    u_ours, u_theirs, s_ours, s_theirs = _scan_both(ours, theirs, inputs, _tree(dtype))
    tol = {"rtol": 1e-6, "atol": 1e-7} if dtype == jnp.float32 else {"rtol": 1e-2, "atol": 1e-2}
    chex.assert_trees_all_equal_dtypes(u_ours, u_theirs)
    chex.assert_trees_all_close(u_ours, u_theirs, **tol)
    chex.assert_trees_all_equal(s_ours.count, s_theirs.count)
    chex.assert_trees_all_equal_dtypes(s_ours.ema, s_theirs.ema)
    chex.assert_trees_all_close(s_ours.ema, s_theirs.ema, **tol)


def test_ema_of_parameters_and_ema_value_against_a_numpy_loop():
    """Averaging parameters (Polyak): the debiased average is the beta-weighted mean of the
    iterates so far, and ``ema_value`` reads it back by name, also from inside a chain."""
    decay = 0.8
    average = optim.ema(decay)
    iterates = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    state = (optim.sgd(0.1).init(jnp.zeros(4)), average.init(jnp.zeros(4)))
    for t, params in enumerate(iterates, start=1):
        out, ema_state = average.update(jnp.asarray(params), state[1])
        state = (state[0], ema_state)
        weights = decay ** np.arange(t - 1, -1, -1)  # beta^(t-i), i = 1..t
        expected = (weights[:, None] * iterates[:t]).sum(0) / weights.sum()
        np.testing.assert_allclose(out, expected, rtol=1e-5)
        np.testing.assert_allclose(optim.ema_value(state, decay), expected, rtol=1e-5)
    assert int(optim.lookup(state, "count")) == 0  # sgd's learning-rate state comes first
    np.testing.assert_allclose(
        optim.lookup(state, "ema"), expected * (1 - decay**t), rtol=1e-5
    )  # the raw (biased) average, as optax keeps it
    with pytest.raises(optim.OptimizerError, match="^ema_value: no EmaState"):
        optim.ema_value(state[0], decay)


def _k_schedule(gradient_step):
    return jnp.where(gradient_step < 2, 2, 3)  # a batch growing from 2 to 3 mini-batches


@pytest.mark.parametrize(
    ("inner", "every_k", "dtype"),
    [
        (lambda: optim.adam(1e-2), 3, jnp.float32),
        (lambda: optim.sgd(0.1, momentum=0.9), _k_schedule, jnp.float32),
        (
            lambda: optim.adamw(optim.linear_schedule(1e-2, 0.0, 10), weight_decay=0.1),
            2,
            jnp.float32,
        ),
        (lambda: optim.adam(1e-2), 4, jnp.bfloat16),
    ],
    ids=["adam-k3", "momentum-k-schedule", "adamw-lr-schedule-k2", "adam-k4-bf16"],
)
def test_multi_steps_equals_optax_step_by_step(inner, every_k, dtype):
    """Same inner optimizer, jaxnet's accumulation vs optax's: the updates and every state field
    (mini_step, gradient_step, the inner state, the accumulated mean) at every step."""
    ours = optim.multi_steps(inner(), every_k)
    theirs = optax.MultiSteps(inner(), every_k_schedule=every_k).gradient_transformation()
    grads = _tree(dtype, seed=1, n=N_STEPS)
    u_ours, u_theirs, s_ours, s_theirs = _scan_both(ours, theirs, grads, _tree(dtype))
    tol = {"rtol": 1e-6, "atol": 1e-8} if dtype == jnp.float32 else {"rtol": 1e-2, "atol": 1e-3}
    chex.assert_trees_all_equal_dtypes(u_ours, u_theirs)
    chex.assert_trees_all_close(u_ours, u_theirs, **tol)
    chex.assert_trees_all_equal(s_ours.mini_step, s_theirs.mini_step)
    chex.assert_trees_all_equal(s_ours.gradient_step, s_theirs.gradient_step)
    chex.assert_trees_all_close(s_ours.inner_opt_state, s_theirs.inner_opt_state, **tol)
    chex.assert_trees_all_close(s_ours.acc_grads, s_theirs.acc_grads, **tol)
    # the updates are zero between inner steps, and the inner steps come when k says
    moved = np.asarray([bool(jnp.any(u != 0)) for u in u_ours["w"]])
    np.testing.assert_array_equal(moved, np.asarray(s_ours.mini_step) == 0)
    assert moved.sum() == int(s_ours.gradient_step[-1]) > 0


def test_multi_steps_mean_of_k_gradients_against_a_manual_loop():
    """k accumulated mini-batch gradients make exactly one step on their mean."""
    grads = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    opt = optim.multi_steps(optim.adam(0.1), every_k_schedule=3)
    inner = optim.adam(0.1)
    state, inner_state = opt.init(jnp.zeros(3)), inner.init(jnp.zeros(3))
    for t, g in enumerate(grads, start=1):
        updates, state = opt.update(jnp.asarray(g), state)
        if t % 3:
            np.testing.assert_array_equal(updates, np.zeros(3))
        else:
            expected, inner_state = inner.update(jnp.asarray(grads[t - 3 : t].mean(0)), inner_state)
            np.testing.assert_allclose(updates, expected, rtol=1e-6)
    chex.assert_trees_all_close(state.inner_opt_state, inner_state, rtol=1e-6)
    np.testing.assert_allclose(optim.lookup(state, "mu"), optim.lookup(inner_state, "mu"))


def test_multi_steps_second_step_does_not_recompile():
    opt = optim.multi_steps(optim.adam(1e-3), every_k_schedule=2)
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(1)  # runs only while tracing
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    params = _tree()
    state = opt.init(params)
    for seed in range(4):  # an accumulating step and an applying step, twice
        params, state = step(params, state, _tree(seed=seed))
    assert len(traces) == 1 and step._cache_size() == 1
    assert int(state.gradient_step) == 2 and int(state.mini_step) == 0
