"""jaxnet optimizers inside optax code, optax optimizers inside jaxnet code."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnet import optim


def _params():
    return {
        "w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4),
        "b": jnp.arange(4.0),
        "s": jnp.array(2.0),
    }


def _grads(n, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    p = _params()
    return {
        "w": jax.random.normal(keys[0], (n, *p["w"].shape)),
        "b": jax.random.normal(keys[1], (n, *p["b"].shape)),
        "s": jax.random.normal(keys[2], (n,)),
    }


def _run(opt, n=12):
    """Scan ``opt`` over n gradient steps; return every step's updates and the final state."""
    params = _params()

    def step(carry, g):
        params, state = carry
        updates, state = opt.update(g, state, params)
        return (optax.apply_updates(params, updates), state), updates

    @jax.jit
    def run(params, grads):
        return jax.lax.scan(step, (params, opt.init(params)), grads)

    (_, state), updates = run(params, _grads(n))
    return updates, state


def test_jaxnet_optimizer_inside_optax_chain():
    ours, _ = _run(optax.chain(optax.clip_by_global_norm(1.0), optim.adamw(1e-2, weight_decay=0.1)))
    with jax.numpy_dtype_promotion("standard"):  # optax is not strict-clean
        theirs, _ = _run(
            optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=0.1))
        )
    chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-8)


def test_jaxnet_optimizer_inside_optax_multisteps():
    ours_opt = optax.MultiSteps(optim.adam(1e-2), every_k_schedule=3)
    with jax.numpy_dtype_promotion("standard"):  # optax's MultiSteps is not strict-clean
        ours, state = _run(ours_opt)
        theirs, _ = _run(optax.MultiSteps(optax.adam(1e-2), every_k_schedule=3))
    chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-8)
    # only every third mini-step moves the parameters
    moved = [bool(jnp.any(u != 0)) for u in ours["w"]]
    assert moved == [False, False, True] * 4
    # jaxnet's named state is still readable inside optax's wrapper
    assert int(optim.lookup(state, "count")) == 4
    np.testing.assert_allclose(optim.get_hyperparameter(state), 1e-2)


def test_optax_transform_inside_jaxnet_chain():
    ours, _ = _run(optim.chain(optax.clip(0.1), optim.scale_by_adam(), optim.scale(-1e-2)))
    with jax.numpy_dtype_promotion("standard"):  # optax is not strict-clean
        theirs, _ = _run(optax.chain(optax.clip(0.1), optax.scale_by_adam(), optax.scale(-1e-2)))
    chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-8)


def test_optax_optimizer_with_jaxnet_apply_updates_keeps_dtype():
    params = {"w": jnp.ones((2, 2), jnp.bfloat16), "b": jnp.zeros(2, jnp.float32)}
    opt = optax.sgd(0.1)
    updates, _ = opt.update(jax.tree.map(jnp.ones_like, params), opt.init(params), params)
    updates = {"w": updates["w"].astype(jnp.float32), "b": updates["b"]}  # mixed dtypes
    new = optim.apply_updates(params, updates)
    chex.assert_trees_all_equal_dtypes(new, params)
    with jax.numpy_dtype_promotion("standard"):  # optax is not strict-clean
        expected = optax.apply_updates(params, updates)
    chex.assert_trees_all_close(new, expected)


def test_jaxnet_state_field_names_and_lookup():
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(3e-4))
    state = opt.init(_params())
    np.testing.assert_allclose(optim.get_hyperparameter(state, "learning_rate"), 3e-4)
    chex.assert_trees_all_equal(optim.lookup(state, "mu"), jax.tree.map(jnp.zeros_like, _params()))
    new_state = optim.set_hyperparameter(state, "learning_rate", 1e-3)
    np.testing.assert_allclose(optim.get_hyperparameter(new_state), 1e-3)
    assert optim.get_hyperparameter(new_state).dtype == jnp.float32
    assert jax.tree.structure(new_state) == jax.tree.structure(state)


def _run_with_loss(opt, losses):
    """Scan ``opt`` with ``value=loss`` passed to every update (optax's extra-args protocol)."""
    params = _params()
    grads = _grads(len(losses))

    def step(carry, xs):
        params, state = carry
        g, loss = xs
        updates, state = opt.update(g, state, params, value=loss)
        return (optax.apply_updates(params, updates), state), updates

    run = jax.jit(lambda p, xs: jax.lax.scan(step, (p, opt.init(p)), xs))
    (_, state), updates = run(params, (grads, losses))
    return updates, state


def test_reduce_on_plateau_with_a_jaxnet_optimizer_in_optax_and_jaxnet_chains():
    """``optax.contrib.reduce_on_plateau`` needs ``value=loss`` at every update: a jaxnet chain
    passes it on, and a jaxnet optimizer inside ``optax.chain`` accepts it (and ignores it)."""
    losses = jnp.concatenate([jnp.linspace(2.0, 1.0, 5), jnp.ones(15)])  # a plateau from step 5

    def plateau():
        return optax.contrib.reduce_on_plateau(factor=0.5, patience=3)

    with jax.numpy_dtype_promotion("standard"):  # optax (reduce_on_plateau too) is not strict-clean
        theirs, theirs_state = _run_with_loss(optax.chain(optax.adam(1e-2), plateau()), losses)
        ours_runs = [
            _run_with_loss(chain(optim.adam(1e-2), plateau()), losses)
            for chain in (optax.chain, optim.chain)
        ]
    for ours, state in ours_runs:
        chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(
            optim.lookup(state, "scale"), optim.lookup(theirs_state, "scale")
        )
    assert float(optim.lookup(state, "scale")) < 0.5  # the plateau did cut the rate, twice


class SeenState(NamedTuple):
    value: jax.Array


def _value_probe():
    """A transformation that keeps the ``value`` extra argument it was given."""

    def update(updates, state, params=None, *, value, **extra_args):
        return updates, SeenState(jnp.asarray(value, jnp.float32))

    return optim.GradientTransformation(lambda p: SeenState(jnp.zeros([])), update)


def test_extra_args_reach_transforms_nested_in_every_wrapper():
    """Through named optimizers, chain, masked and multi_steps; a plain optax transformation
    (no ``**extra_args``) in the same chain is called without them."""
    nested = optim.multi_steps(
        optim.chain(
            optax.scale(
                1.0
            ),  # optax's plain GradientTransformation: update(updates, state, params)
            optim.masked(_value_probe(), {"w": True, "b": False, "s": True}),
            optim.adam(1e-3),
        ),
        every_k_schedule=1,
    )
    state = nested.init(_params())
    grads = jax.tree.map(lambda g: g[0], _grads(1, seed=2))
    _, state = nested.update(grads, state, _params(), value=3.5, other="ignored")
    assert float(optim.lookup(state, "value")) == 3.5
    for name in optim.NAMES:
        opt = optim.get(name, 0.1)
        opt.update(_params(), opt.init(_params()), _params(), value=1.0)  # accepted, ignored
