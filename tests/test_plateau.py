"""ReduceLROnPlateau: Keras's rule (hand-simulated and against Keras itself), no recompilation,
and the rate reaching the step for jaxnet optimizers and optax.inject_hyperparams."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet
from jaxnet import losses, optim
from jaxnet.errors import ConfigError, OptimizerError
from jaxnet.train.callbacks import Loop
from jaxnet.train.plateau import ReduceLROnPlateau, learning_rate
from jaxnet.train.step import TrainState


def _loop(opt):
    params = {"w": jnp.ones(3)}
    ts = TrainState(params, {}, opt.init(params), jnp.int32(0), jax.random.key(0))
    return Loop(ts, epochs=100, history=None)


def _drive(callback, values, opt=None):
    """Feed ``values`` as epoch-end ``val_loss``; return the rate of each epoch and the last."""
    loop = _loop(opt or optim.sgd(1.0))
    callback.on_train_begin(loop)
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"val_loss": value}, loop)
    return callback.learning_rates, learning_rate(loop.train_state.opt_state)


def test_hand_simulated_sequence():
    """patience 2, factor 0.5, cooldown 1, min_lr 0.3, min_delta 0.01, worked out by hand:

    epoch value  event                                  rate used  rate after
      0   1.00   best 1.00                              1          1
      1   0.995  not better by 0.01: wait 1             1          1
      2   0.99   wait 2 -> reduce, cooldown 1           1          0.5
      3   2.00   cooldown 1 -> 0, wait 0; not better,
                 in cooldown no more: wait 1            0.5        0.5
      4   2.00   wait 2 -> reduce to max(0.25, 0.3)     0.5        0.3
      5   0.50   cooldown -> 0; best 0.50               0.3        0.3
      6   0.60   wait 1                                 0.3        0.3
      7   0.60   wait 2, rate 0.3 not above min_lr      0.3        0.3
    """
    plateau = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.3, min_delta=0.01)
    used, last = _drive(plateau, [1.0, 0.995, 0.99, 2.0, 2.0, 0.5, 0.6, 0.6])
    np.testing.assert_allclose(used, [1, 1, 1, 0.5, 0.5, 0.3, 0.3, 0.3], rtol=1e-6)
    np.testing.assert_allclose(last, 0.3, rtol=1e-6)
    assert plateau.best == 0.5 and plateau.wait == 2


def _keras_rates(values, **kwargs):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")

    class Optimizer:
        learning_rate = 1.0

    class Model:
        optimizer = Optimizer()

    callback = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min", **kwargs)
    callback.set_model(Model())
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate(values):
        rates.append(Model.optimizer.learning_rate)
        callback.on_epoch_end(epoch, {"val_loss": value})
    return rates, Model.optimizer.learning_rate


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(factor=0.5, patience=2),
        dict(factor=0.1, patience=0, min_lr=1e-3),
        dict(factor=0.7, patience=3, cooldown=2, min_delta=0.05),
        dict(factor=0.5, patience=1, cooldown=1, min_lr=0.2),
    ],
)
def test_same_rates_as_keras(kwargs):
    rng = np.random.default_rng(sum(map(ord, str(kwargs))))
    values = np.cumsum(rng.normal(0.0, 0.1, 40)) + 5.0  # a random walk: plateaus and dips
    values[[7, 8]] = values[6]  # exact ties are not improvements
    want, want_last = _keras_rates(list(values), **kwargs)
    got, got_last = _drive(ReduceLROnPlateau(**kwargs), list(values))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got_last, want_last, rtol=1e-6)
    assert len(set(np.round(got, 8))) > 1  # the sequence did reduce


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 4)).astype(np.float32)
    y = (x @ rng.normal(size=(4, 1))).astype(np.float32)
    return x, y


def test_fit_reduces_without_recompiling_and_the_step_uses_the_new_rate():
    compiles = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    class CountAtEpochEnd:
        def __init__(self):
            self.counts = []

        def on_epoch_end(self, epoch, logs, loop):
            self.counts.append(len(compiles))

    x, y = _data()
    model = jaxnet.serial(jaxnet.Dense(1))
    # nothing improves by 1e9: the first epoch sets the best, every later one reduces
    plateau = ReduceLROnPlateau("loss", factor=0.5, patience=1, mode="max", min_delta=1e9)
    counter = CountAtEpochEnd()
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        ts, _ = jaxnet.fit(
            model,
            losses.mse,
            optim.sgd(0.1),
            x,
            y,
            epochs=5,
            batch_size=32,
            verbose=0,
            validation_data=(x, y),
            callbacks=[plateau, counter],
        )
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    np.testing.assert_allclose(plateau.learning_rates, [0.1, 0.1, 0.05, 0.025, 0.0125])
    assert counter.counts[1:] == counter.counts[:1] * 4  # no compile after the first epoch
    np.testing.assert_allclose(learning_rate(ts.opt_state), 0.00625, rtol=1e-6)

    # the rate reached the step: the third epoch, at half the rate, equals two epochs at 0.1 and
    # one more from that state with the rate set to 0.05 by hand
    fit = dict(epochs=2, batch_size=32, verbose=0)
    first, _ = jaxnet.fit(model, losses.mse, optim.sgd(0.1), x, y, **fit)
    halved = first._replace(
        opt_state=optim.set_hyperparameter(first.opt_state, "learning_rate", 0.05)
    )
    by_hand, _ = jaxnet.fit(
        model, losses.mse, optim.sgd(0.1), x, y, **{**fit, "epochs": 1}, train_state=halved
    )
    again = ReduceLROnPlateau("loss", factor=0.5, patience=1, mode="max", min_delta=1e9)
    reduced, _ = jaxnet.fit(
        model, losses.mse, optim.sgd(0.1), x, y, **{**fit, "epochs": 3}, callbacks=[again]
    )
    jax.tree.map(np.testing.assert_array_equal, by_hand.params, reduced.params)
    unreduced, _ = jaxnet.fit(model, losses.mse, optim.sgd(0.1), x, y, **{**fit, "epochs": 3})
    assert not np.allclose(unreduced.params["dense_0"]["w"], reduced.params["dense_0"]["w"])


def test_inject_hyperparams_rate_is_reduced_and_used():
    x, y = _data()
    model = jaxnet.serial(jaxnet.Dense(1))
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    plateau = ReduceLROnPlateau("loss", factor=0.5, patience=1, mode="max", min_delta=1e9)
    ts, _ = jaxnet.fit(
        model, losses.mse, opt, x, y, epochs=3, batch_size=32, verbose=0, callbacks=[plateau]
    )
    np.testing.assert_allclose(plateau.learning_rates, [0.1, 0.1, 0.05], rtol=1e-6)
    np.testing.assert_allclose(ts.opt_state.hyperparams["learning_rate"], 0.025, rtol=1e-6)


def test_refuses_what_it_cannot_change():
    with pytest.raises(OptimizerError, match="no learning rate"):
        _drive(ReduceLROnPlateau(), [1.0], opt=optax.sgd(0.1))
    schedule = optim.exponential_decay(1.0, 1, 0.5)
    loop = _loop(optim.sgd(schedule))
    plateau = ReduceLROnPlateau(patience=0)
    plateau.on_train_begin(loop)
    plateau.on_epoch_end(0, {"val_loss": 1.0}, loop)
    plateau.on_epoch_end(1, {"val_loss": 1.0}, loop)  # reduces: the state now says 0.1
    params = loop.train_state.params
    _, opt_state = optim.sgd(schedule).update(params, loop.train_state.opt_state, params)
    loop.train_state = loop.train_state._replace(opt_state=opt_state)  # one scheduled step
    with pytest.raises(OptimizerError, match="recomputes its rate"):
        plateau.on_epoch_end(2, {"val_loss": 1.0}, loop)
    with pytest.raises(ConfigError, match="not logged"):
        _drive(ReduceLROnPlateau("val_accuracy"), [1.0])
    with pytest.raises(ConfigError, match="factor"):
        ReduceLROnPlateau(factor=1.0)
