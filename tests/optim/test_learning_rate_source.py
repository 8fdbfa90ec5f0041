"""Where ``scale_by_learning_rate`` takes its rate from: the state (a Python number, changed by
``set_hyperparameter``) or the constructor (a JAX array: ``inject_hyperparams``, ``fit_many``)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnet import optim


def _params():
    return {"w": jnp.array([[0.5, -1.0], [2.0, 0.3]]), "b": jnp.array([0.1, -0.2])}


def _loss(params):
    return jnp.sum(jnp.tanh(params["w"]) ** 2) + jnp.sum((params["b"] - 1.0) ** 2)


def _run(opt, state, params, rates, change, jit):
    """Four steps; before each, ``change(state, rate)`` sets the rate. Returns the updates."""
    update = jax.jit(opt.update) if jit else opt.update
    out = []
    for rate in rates:
        state = change(state, rate)
        updates, state = update(jax.grad(_loss)(params), state, params)
        params = optax.apply_updates(params, updates)
        out.append(updates)
    return out


RATES = [1e-2, 1e-2, 3e-3, 1e-3]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
def test_inject_hyperparams_changes_the_step_like_optax(name, jit):
    def change(state, rate):
        return state._replace(hyperparams={**state.hyperparams, "learning_rate": jnp.float32(rate)})

    ours = optax.inject_hyperparams(getattr(optim, name))(learning_rate=RATES[0])
    theirs = optax.inject_hyperparams(getattr(optax, name))(learning_rate=RATES[0])
    params = _params()
    got = _run(ours, ours.init(params), params, RATES, change, jit)
    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction: float ** int32
        want = _run(theirs, theirs.init(params), params, RATES, change, jit)
    chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-9)
    # the rate reached the step: injecting the first rate throughout gives other updates
    same = _run(ours, ours.init(params), params, RATES, lambda s, r: change(s, RATES[0]), jit)
    assert not np.allclose(got[2]["w"], same[2]["w"])


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_set_hyperparameter_changes_the_step_like_optax_with_that_rate(name, jit):
    """A Python-float rate lives in the state: set_hyperparameter changes the step taken, which
    equals optax's step with the new rate injected."""

    def ours_change(state, rate):
        return optim.set_hyperparameter(state, "learning_rate", rate)

    def theirs_change(state, rate):
        return state._replace(hyperparams={**state.hyperparams, "learning_rate": jnp.float32(rate)})

    ours = getattr(optim, name)(RATES[0])
    static = {"sgd": (), "adam": ("b1", "b2", "eps", "eps_root")}[name]  # Python floats, as ours
    theirs = optax.inject_hyperparams(getattr(optax, name), static)(learning_rate=RATES[0])
    params = _params()
    got = _run(ours, ours.init(params), params, RATES, ours_change, jit)
    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction: float ** int32
        want = _run(theirs, theirs.init(params), params, RATES, theirs_change, jit)
    chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-9)


def test_sgd_step_is_the_rate_times_the_gradient_after_each_change():
    """Closed form for plain SGD: u = -rate * g, for both ways of changing the rate."""
    params, grads = _params(), jax.grad(_loss)(_params())
    plain = optim.sgd(0.1)
    injected = optax.inject_hyperparams(optim.sgd)(learning_rate=0.1)
    plain_state, injected_state = plain.init(params), injected.init(params)
    for rate in (0.1, 0.02, 0.5):
        plain_state = optim.set_hyperparameter(plain_state, "learning_rate", rate)
        injected_state = injected_state._replace(hyperparams={"learning_rate": jnp.float32(rate)})
        for opt, state in ((plain, plain_state), (injected, injected_state)):
            updates, _ = opt.update(grads, state, params)
            np.testing.assert_allclose(updates["w"], -rate * grads["w"], rtol=1e-6)


def test_an_array_rate_is_written_to_the_state_each_update():
    """A JAX-array rate is an input of every update, and the state reports the rate used."""
    opt = optim.sgd(jnp.float32(0.1))
    params = _params()
    state = optim.set_hyperparameter(opt.init(params), "learning_rate", 0.5)
    updates, state = opt.update(jax.grad(_loss)(params), state, params)
    np.testing.assert_allclose(updates["b"], -0.1 * jax.grad(_loss)(params)["b"], rtol=1e-6)
    np.testing.assert_allclose(optim.get_hyperparameter(state), 0.1)
