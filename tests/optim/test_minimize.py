"""Every optimizer minimises a parabola and Rosenbrock's function (optax's alias_test settings)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import pytest

from jaxnet import optim

SETTINGS = {
    "adadelta": lambda: optim.adadelta(learning_rate=0.1),
    "adagrad": lambda: optim.adagrad(learning_rate=1.0),
    "adam": lambda: optim.adam(learning_rate=1e-1),
    "adamax": lambda: optim.adamax(learning_rate=1e-1),
    "adamw": lambda: optim.adamw(learning_rate=1e-1),
    "lamb": lambda: optim.lamb(learning_rate=1e-3),
    "lion": lambda: optim.lion(learning_rate=1e-2, weight_decay=1e-4),
    "nadam": lambda: optim.nadam(learning_rate=1e-2),
    "rmsprop": lambda: optim.rmsprop(learning_rate=5e-3),
    "rmsprop-momentum": lambda: optim.rmsprop(learning_rate=5e-3, momentum=0.9),
    "sgd-momentum": lambda: optim.sgd(learning_rate=1e-3, momentum=0.9),
}


def parabola():
    start, target = jnp.array([-1.0, 10.0, 1.0]), jnp.array([1.0, -1.0, 1.0])
    return start, target, lambda x: jnp.sum(jnp.square(x - target))


def rosenbrock(a=1.0, b=100.0):
    start, target = jnp.array([0.0, 0.0]), jnp.array([a, a**2])
    return start, target, lambda x: jnp.square(a - x[0]) + b * jnp.square(x[1] - x[0] ** 2)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_optimizer_minimises_parabola_and_rosenbrock(name):
    opt = SETTINGS[name]()
    problems = [parabola(), rosenbrock()]

    @jax.jit
    def solve(starts):
        results = []
        for start, (_, _, objective) in zip(starts, problems, strict=True):

            def step(_, carry, objective=objective):
                params, state = carry
                updates, state = opt.update(jax.grad(objective)(params), state, params)
                return optim.apply_updates(params, updates), state

            results.append(jax.lax.fori_loop(0, 10_000, step, (start, opt.init(start)))[0])
        return results

    for found, (_, target, _) in zip(solve([p[0] for p in problems]), problems, strict=True):
        chex.assert_trees_all_close(found, target, rtol=3e-2, atol=3e-2)
