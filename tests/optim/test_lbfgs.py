"""L-BFGS against optax: the direction step by step, and whole runs with the zoom line search."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from jaxnet import optim
from jaxnet.errors import ConfigError


def rosenbrock(params):
    x, y = params["x"], params["y"]
    return jnp.sum(100.0 * (y - x**2) ** 2 + (1.0 - x) ** 2)


START = {"x": jnp.array([-1.2, 0.5, 1.5]), "y": jnp.array([1.0, -0.3, 2.0])}


@pytest.mark.parametrize("scale_init_precond", [True, False])
def test_direction_matches_optax_step_by_step(scale_init_precond):
    """Same gradients and params at every step (optax's trajectory, small fixed steps): the
    preconditioned directions agree over 60 steps, past a full memory of 5."""
    ours = optim.scale_by_lbfgs(memory_size=5, scale_init_precond=scale_init_precond)
    theirs = optax.scale_by_lbfgs(memory_size=5, scale_init_precond=scale_init_precond)

    def step(carry, _):
        params, s_ours, s_theirs = carry
        grads = jax.grad(rosenbrock)(params)
        d_ours, s_ours = ours.update(grads, s_ours, params)
        with jax.numpy_dtype_promotion("standard"):
            d_theirs, s_theirs = theirs.update(grads, s_theirs, params)
            params = jax.tree.map(lambda p, d: p - 1e-3 * d, params, d_theirs)
        return (params, s_ours, s_theirs), (d_ours, d_theirs)

    @jax.jit
    def run(params):
        with jax.numpy_dtype_promotion("standard"):
            s_theirs = theirs.init(params)
        return jax.lax.scan(step, (params, ours.init(params), s_theirs), None, length=60)

    (_, s_ours, s_theirs), (d_ours, d_theirs) = run(START)
    chex.assert_trees_all_close(d_ours, d_theirs, rtol=2e-4, atol=1e-6)
    chex.assert_trees_all_close(s_ours.weights_memory, s_theirs.weights_memory, rtol=2e-4)
    assert int(s_ours.count) == int(s_theirs.count) == 60


def _minimise(opt, steps=150):
    value_and_grad = optax.value_and_grad_from_state(rosenbrock)

    def step(carry, _):
        params, state = carry
        with jax.numpy_dtype_promotion("standard"):
            value, grad = value_and_grad(params, state=state)
            updates, state = opt.update(
                grad, state, params, value=value, grad=grad, value_fn=rosenbrock
            )
        return (optax.apply_updates(params, updates), state), value

    @jax.jit
    def run(params):
        with jax.numpy_dtype_promotion("standard"):
            state = opt.init(params)
        return jax.lax.scan(step, (params, state), None, length=steps)

    (params, _), values = run(START)
    return params, values


def test_lbfgs_with_zoom_linesearch_matches_optax_lbfgs():
    """optax.lbfgs is the same chain with optax's own direction rule: the loss curves and the
    solution agree, and both reach Rosenbrock's minimum (1, 1)."""
    ours, values_ours = _minimise(optim.lbfgs())
    theirs, values_theirs = _minimise(optax.lbfgs())
    chex.assert_trees_all_close(values_ours[:20], values_theirs[:20], rtol=1e-3, atol=1e-6)
    chex.assert_trees_all_close(ours, theirs, atol=1e-3)
    chex.assert_trees_all_close(ours, jax.tree.map(jnp.ones_like, START), atol=1e-3)


def test_memory_size_is_checked():
    with pytest.raises(ConfigError, match="memory_size"):
        optim.scale_by_lbfgs(memory_size=0)
