"""No recompilation, stable state types, and vmap over a leading model axis."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from jaxnet import optim

OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda: optim.adagrad(0.1),
    "rmsprop": lambda: optim.rmsprop(0.01, centered=True, momentum=0.9),
    "adadelta": lambda: optim.adadelta(1.0, weight_decay=1e-3),
    "adam": lambda: optim.adam(optim.exponential_decay(1e-3, 10, 0.9)),
    "adamw": lambda: optim.adamw(1e-3, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
    "nadam": lambda: optim.nadam(1e-3),
    "adamax": lambda: optim.adamax(1e-3),
    "lion": lambda: optim.lion(1e-4),
    "lamb": lambda: optim.lamb(1e-3, weight_decay=1e-2),
}


def _params(dtype=jnp.float32):
    return {"w": jnp.ones((3, 2), dtype), "b": jnp.full((2,), 0.5, dtype), "s": jnp.array(1, dtype)}


def _loss(params):
    return sum(jnp.sum(jnp.square(x.astype(jnp.float32) - 0.25)) for x in jax.tree.leaves(params))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_dtypes_and_shapes_are_stable(name, dtype):
    """``update`` returns a state of exactly ``init``'s types; checked under ``lax.cond``, which
    only traces when both branches agree (as optax's alias_test does). Tracing only: no compile."""
    opt = OPTIMIZERS[name]()
    params = _params(dtype)

    def step(params, state):
        grads = jax.grad(_loss)(params)
        pred = jax.random.bernoulli(jax.random.key(0))
        updates, new_state = jax.lax.cond(
            pred, lambda: opt.update(grads, state, params), lambda: (params, state)
        )
        return optim.apply_updates(params, updates), new_state

    state = jax.eval_shape(opt.init, params)
    new_params, new_state = jax.eval_shape(step, params, state)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_params, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
    counts = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.integer)]
    assert counts and all(c.dtype == jnp.int32 and c.shape == () for c in counts)


def test_second_step_does_not_recompile_and_new_learning_rate_neither():
    opt = optim.adam(1e-3)
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(1)  # runs only while tracing
        updates, state = opt.update(jax.grad(_loss)(params), state, params)
        return optim.apply_updates(params, updates), state

    params = _params()
    state = opt.init(params)
    params, state = step(params, state)
    params, state = step(params, state)
    state = optim.set_hyperparameter(state, "learning_rate", 5e-4)  # a sweep, a decay by hand
    params, state = step(params, state)
    assert len(traces) == 1
    assert step._cache_size() == 1


@pytest.mark.parametrize("name", ["sgd", "adam", "lamb"])
def test_jit_matches_eager(name):
    opt = OPTIMIZERS[name]()
    params = _params()
    grads = jax.grad(_loss)(params)
    state = opt.init(params)
    eager = opt.update(grads, state, params)
    jitted = jax.jit(opt.update)(grads, state, params)
    chex.assert_trees_all_close(jitted, eager, rtol=1e-6)


def test_vmap_over_models_with_different_learning_rates():
    """vmap over a leading model axis equals a loop over models, each with its own rate, and
    equals optax run per model with that rate."""
    n_models = 3
    rates = jnp.array([1e-3, 1e-2, 1e-1])
    opt = optim.adamw(1e-3, weight_decay=0.1)
    keys = jax.random.split(jax.random.key(0), n_models)
    params = jax.vmap(
        lambda k: jax.tree.map(lambda x: x + jax.random.normal(k, x.shape), _params())
    )(keys)
    state = jax.vmap(opt.init)(params)
    state = optim.set_hyperparameter(state, "learning_rate", rates)

    def run(params, state):
        def step(carry, _):
            params, state = carry
            updates, state = opt.update(jax.grad(_loss)(params), state, params)
            return (optim.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (params, state), length=20)[0]

    vmapped_params, vmapped_state = jax.jit(jax.vmap(run))(params, state)
    looped = jax.jit(run)

    def take(tree, i):
        return jax.tree.map(lambda x: x[i], tree)

    for i in range(n_models):
        p_i, s_i = looped(take(params, i), take(state, i))
        # batched and unbatched programs may fuse (FMA) differently: allow a few float32 ulps
        chex.assert_trees_all_close(take(vmapped_params, i), p_i, rtol=1e-6, atol=1e-6)
        chex.assert_trees_all_close(take(vmapped_state, i), s_i, rtol=1e-6, atol=1e-6)

    theirs = optax.adamw(float(rates[-1]), weight_decay=0.1)  # the last model, against optax

    def step(carry, _):
        p, s = carry
        u, s = theirs.update(jax.grad(_loss)(p), s, p)
        return (optax.apply_updates(p, u), s), None

    p0 = take(params, -1)
    with jax.numpy_dtype_promotion("standard"):  # optax is not strict-clean
        p_ref, _ = jax.jit(lambda p0: jax.lax.scan(step, (p0, theirs.init(p0)), length=20)[0])(p0)
    chex.assert_trees_all_close(take(vmapped_params, -1), p_ref, rtol=1e-6, atol=1e-6)
