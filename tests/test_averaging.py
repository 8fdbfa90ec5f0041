"""fit(accumulate=k) against one step on a k-times larger batch; fit(ema=decay) against a NumPy
EMA of the weight trajectory."""

import jax
import numpy as np
import pytest

import jaxnet
from jaxnet import losses, optim
from jaxnet.errors import ConfigError
from jaxnet.train.averaging import ema_params


def _data(n=96):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (np.tanh(x @ rng.normal(size=(5, 2)))).astype(np.float32)
    return x, y


def _model():
    return jaxnet.serial(jaxnet.Dense(8), jaxnet.activations.Tanh(), jaxnet.Dense(2))


def _close(a, b, tol=1e-6):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=tol, atol=tol), a, b)


@pytest.mark.parametrize("k", [2, 3])
def test_accumulating_k_batches_is_one_step_on_a_k_times_larger_batch(k):
    """Plain SGD on a mean loss: the mean of k batch gradients is the gradient of their union.
    fit's shuffle depends on the epoch only, so k consecutive batches of 16 are the batch of 16k
    the other run takes."""
    x, y = _data(96)
    run = dict(epochs=3, verbose=0, seed=1)
    small, _ = jaxnet.fit(
        _model(), losses.mse, optim.sgd(0.3), x, y, batch_size=16, accumulate=k, **run
    )
    large, _ = jaxnet.fit(_model(), losses.mse, optim.sgd(0.3), x, y, batch_size=16 * k, **run)
    _close(small.params, large.params)
    plain, _ = jaxnet.fit(_model(), losses.mse, optim.sgd(0.3), x, y, batch_size=16, **run)
    assert not np.allclose(plain.params["dense_2"]["w"], large.params["dense_2"]["w"], atol=1e-4)
    assert int(small.step) == 3 * 96 // 16  # steps count batches, not updates


class Trajectory:
    """Records the trained weights (and the EMA validation loss) after every epoch."""

    def __init__(self):
        self.params, self.val_loss = [], []

    def on_epoch_end(self, epoch, logs, loop):
        self.params.append(jax.tree.map(np.asarray, loop.train_state.params))
        self.val_loss.append(logs["val_loss"])


def _ema_of(trajectory, decay):
    """The debiased EMA of ``trajectory`` after its last point, in float64, by the sum."""
    t = len(trajectory)
    weights = np.array([(1 - decay) * decay ** (t - i) for i in range(1, t + 1)])
    weights /= 1 - decay**t
    return jax.tree.map(
        lambda *ws: sum(w.astype(np.float64) * c for w, c in zip(ws, weights, strict=True)),
        *trajectory,
    )


def test_ema_is_the_numpy_ema_of_the_weight_trajectory_and_validation_scores_it():
    """One batch per epoch, so the epoch ends are the whole trajectory."""
    x, y = _data(64)
    decay = 0.8
    trajectory = Trajectory()
    ts, history = jaxnet.fit(
        _model(),
        losses.mse,
        optim.sgd(0.2),
        x,
        y,
        batch_size=64,
        epochs=6,
        verbose=0,
        validation_data=(x[:32], y[:32]),
        ema=decay,
        callbacks=[trajectory],
    )
    expected = _ema_of(trajectory.params, decay)
    _close(ts.params, expected, 1e-5)
    _close(ema_params(ts.opt_state, decay), expected, 1e-5)
    # the trained weights are the plain run's: the average does not steer training
    plain, _ = jaxnet.fit(
        _model(), losses.mse, optim.sgd(0.2), x, y, batch_size=64, epochs=6, verbose=0
    )
    _close(trajectory.params[-1], plain.params)
    assert not np.allclose(plain.params["dense_0"]["w"], ts.params["dense_0"]["w"], atol=1e-4)
    # validation scored the average of each epoch
    model = _model()
    for epoch in (0, 3, 5):
        average = _ema_of(trajectory.params[: epoch + 1], decay)
        average = jax.tree.map(lambda a: a.astype(np.float32), average)
        predictions = jaxnet.predict(model, average, ts.state, x[:32])
        np.testing.assert_allclose(
            history["val_loss"][epoch], np.mean((predictions - y[:32]) ** 2), rtol=1e-5
        )


def test_ema_with_accumulation_averages_once_per_update():
    """Two batches per epoch and accumulate=2: one update, one averaged point per epoch."""
    x, y = _data(64)
    trajectory = Trajectory()
    ts, _ = jaxnet.fit(
        _model(),
        losses.mse,
        optim.sgd(0.2),
        x,
        y,
        batch_size=32,
        epochs=5,
        verbose=0,
        validation_data=(x, y),
        ema=0.5,
        accumulate=2,
        callbacks=[trajectory],
    )
    _close(ts.params, _ema_of(trajectory.params, 0.5), 1e-5)


def test_ema_of_the_restored_best_state():
    x, y = _data(64)
    stop = jaxnet.EarlyStopping("val_loss", patience=50, restore_best=True)
    trajectory = Trajectory()
    ts, history = jaxnet.fit(
        _model(),
        losses.mse,
        optim.sgd(1.5),
        x,
        y,
        batch_size=64,
        epochs=8,
        verbose=0,
        validation_data=(x, y),
        ema=0.6,
        callbacks=[stop, trajectory],
    )
    best = stop.best_epoch
    assert 1 <= best < 7  # the rate makes training diverge after a few epochs
    _close(ts.params, _ema_of(trajectory.params[: best + 1], 0.6), 1e-5)


def test_with_ema_needs_the_params():
    from jaxnet.errors import OptimizerError
    from jaxnet.train.averaging import with_ema

    opt = with_ema(optim.sgd(0.1), 0.9)
    params = {"w": np.ones(3, np.float32)}
    with pytest.raises(OptimizerError, match="with_ema"):
        opt.update(params, opt.init(params))


def test_bad_values_are_refused():
    x, y = _data(32)
    with pytest.raises(ConfigError, match="accumulate"):
        jaxnet.fit(_model(), losses.mse, optim.sgd(0.1), x, y, accumulate=0, verbose=0)
    with pytest.raises(ConfigError, match=r"fit: ema must be in \[0, 1\), got 1.5"):
        jaxnet.fit(_model(), losses.mse, optim.sgd(0.1), x, y, ema=1.5, verbose=0)
