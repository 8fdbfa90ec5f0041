"""jaxnet's learning-rate schedules against optax's, on many step counts."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnet import optim

COUNTS = jnp.arange(0, 3000, dtype=jnp.int32)

SCHEDULES = {
    "constant": lambda m: m.constant_schedule(0.3),
    "linear": lambda m: m.linear_schedule(1.0, 0.1, transition_steps=700, transition_begin=100),
    "linear-negative-begin": lambda m: m.linear_schedule(0.5, 1.0, 50, transition_begin=-10),
    "polynomial": lambda m: m.polynomial_schedule(1.0, 1e-3, power=2.5, transition_steps=2000),
    "exponential": lambda m: m.exponential_decay(1.0, transition_steps=100, decay_rate=0.9),
    "exponential-staircase-begin-end": lambda m: m.exponential_decay(
        2.0, 250, 0.5, transition_begin=300, staircase=True, end_value=0.05
    ),
    "exponential-growth-capped": lambda m: m.exponential_decay(0.1, 100, 1.5, end_value=1.0),
    "exponential-zero-steps": lambda m: m.exponential_decay(0.7, 0, 0.5),
    "piecewise": lambda m: m.piecewise_constant_schedule(0.1, {500: 0.5, 1000: 0.1, 2500: 2.0}),
    "piecewise-none": lambda m: m.piecewise_constant_schedule(0.1),
    "cosine": lambda m: m.cosine_decay_schedule(1.0, decay_steps=1500),
    "cosine-alpha-exponent": lambda m: m.cosine_decay_schedule(0.5, 2000, alpha=0.1, exponent=2.0),
    "warmup-cosine": lambda m: m.warmup_cosine_decay_schedule(0.0, 1e-3, 200, 2500, 1e-5),
    "warmup-cosine-exponent": lambda m: m.warmup_cosine_decay_schedule(
        1e-4, 1.0, 100, 1000, end_value=0.0, exponent=0.5
    ),
    "join": lambda m: m.join_schedules(
        [m.constant_schedule(1.0), m.linear_schedule(1.0, 0.0, 100), m.constant_schedule(0.5)],
        [1000, 2000],
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_optax(name):
    ours, theirs = SCHEDULES[name](optim), SCHEDULES[name](optax)
    with jax.numpy_dtype_promotion("standard"):  # optax is not strict-clean
        expected = jax.vmap(theirs)(COUNTS)  # eager optax: the mathematically expected values
        compiled_theirs = jax.jit(jax.vmap(theirs))(COUNTS)
        theirs_at = {count: theirs(count) for count in (0, 1, 99, 100, 101, 1000, 2999)}
    chex.assert_trees_all_close(jax.vmap(ours)(COUNTS), expected, rtol=1e-6, atol=1e-9)
    # Under jit XLA rewrites x / T as x * (1 / T) and fuses pow: compiled schedules round a
    # little differently from eager ones, the same way in optax; compare compiled with compiled.
    # (optax's compiled polynomial schedule is NaN where pow(0, 2.5) is; jaxnet's guards it.)
    compiled_ours = jax.jit(jax.vmap(ours))(COUNTS)
    assert bool(jnp.all(jnp.isfinite(compiled_ours)))
    finite = jnp.isfinite(compiled_theirs)
    chex.assert_trees_all_close(
        compiled_ours[finite], compiled_theirs[finite], rtol=1e-6, atol=1e-8
    )
    chex.assert_trees_all_close(compiled_ours, expected, rtol=1e-4, atol=1e-6)
    for count, value in theirs_at.items():  # Python ints, as optax also accepts
        np.testing.assert_allclose(ours(count), value, rtol=1e-6, atol=1e-9)


def test_schedule_learning_rate_is_recorded_in_state():
    """The state reports the rate the latest update used, the same value optax's schedule gives."""
    schedule = optim.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100)
    opt = optim.sgd(schedule)
    params = jnp.zeros(3)

    def step(state, _):
        _, state = opt.update(jnp.ones(3), state, params)
        return state, optim.get_hyperparameter(state)

    _, rates = jax.lax.scan(step, opt.init(params), length=50)
    with jax.numpy_dtype_promotion("standard"):  # optax is not strict-clean
        expected = jax.vmap(optax.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100))(jnp.arange(50))
    chex.assert_trees_all_close(rates, expected, rtol=1e-6)


def test_bad_schedule_arguments():
    with pytest.raises(optim.OptimizerError, match="decay_steps"):
        optim.cosine_decay_schedule(1.0, 0)
    with pytest.raises(optim.OptimizerError, match="warmup_steps=100"):
        optim.warmup_cosine_decay_schedule(0.0, 1.0, 100, 100)
    with pytest.raises(optim.OptimizerError, match="scale"):
        optim.piecewise_constant_schedule(1.0, {10: -0.5})
