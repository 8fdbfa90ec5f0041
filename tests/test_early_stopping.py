import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import checkpoint, losses, metrics, optim
from jaxnet.core import init_model
from jaxnet.errors import ConfigError
from jaxnet.recipes import classifier_mlp
from jaxnet.train.callbacks import Loop
from jaxnet.train.early_stopping import EarlyStopping
from jaxnet.train.evaluate import evaluate
from jaxnet.train.fit import fit
from jaxnet.train.step import TrainState


def _marker(epoch):
    """A TrainState whose params record the epoch it comes from."""
    return TrainState(
        {"w": jnp.asarray(float(epoch))}, {}, (), jnp.asarray(epoch), jax.random.key(0)
    )


def _drive(callback, values, monitor="val_loss"):
    """Call the callback as fit does; return ``(epoch at which it asked to stop or None, loop)``."""
    loop = Loop(_marker(-1), len(values), None)
    callback.on_train_begin(loop)
    for epoch, value in enumerate(values):
        loop.train_state = _marker(epoch)
        callback.on_epoch_end(epoch, {"loss": 0.0, monitor: value}, loop)
        if loop.stop_training:
            return epoch, loop
    return None, loop


def test_stops_after_patience_epochs_without_improvement_and_restores_the_best():
    # Improvements at epochs 0, 1, 3; then 4, 5, 6 do not improve -> stop at 6 with patience 3.
    values = [1.0, 0.9, 0.95, 0.85, 0.86, 0.87, 0.88, 0.1]
    stop = EarlyStopping("val_loss", patience=3, restore_best=True)
    stopped, loop = _drive(stop, values)
    assert stopped == 6
    assert stop.best_epoch == 3 and stop.best == 0.85 and stop.stopped_epoch == 6
    stop.on_train_end(loop)
    assert float(loop.train_state.params["w"]) == 3.0


def test_patience_zero_stops_at_first_non_improvement_and_no_restore_by_default():
    stop = EarlyStopping("val_loss")
    stopped, loop = _drive(stop, [3.0, 2.0, 1.0, 1.5, 0.5])
    assert stopped == 3
    stop.on_train_end(loop)
    assert float(loop.train_state.params["w"]) == 3.0  # Keras default: keep the last


def test_mode_max_auto_and_min_delta():
    accuracies = [0.5, 0.6, 0.605, 0.61, 0.7]
    # Improvements smaller than min_delta=0.02 do not count: stop at epoch 3 (2 epochs without).
    stop = EarlyStopping("val_accuracy", patience=2, min_delta=0.02)
    assert stop.mode == "max"
    assert _drive(stop, accuracies, "val_accuracy")[0] == 3
    assert stop.best_epoch == 1
    explicit = EarlyStopping("score", mode="max", patience=2)
    assert _drive(explicit, accuracies, "score")[0] is None and explicit.best_epoch == 4
    assert EarlyStopping("val_mae").mode == "min"


def test_non_finite_values_are_never_an_improvement():
    stop = EarlyStopping("loss", patience=2)
    assert _drive(stop, [1.0, float("nan"), float("inf")], "loss")[0] == 2
    assert stop.best_epoch == 0


def test_configuration_errors():
    with pytest.raises(ConfigError, match="mode='min' or mode='max'"):
        EarlyStopping("score")
    with pytest.raises(ConfigError, match="mode"):
        EarlyStopping("val_loss", mode="lowest")
    with pytest.raises(ConfigError, match="patience"):
        EarlyStopping(patience=-1)
    stop = EarlyStopping("val_loss")
    loop = Loop(_marker(0), 1, None)
    stop.on_train_begin(loop)
    with pytest.raises(ConfigError, match="'loss'"):
        stop.on_epoch_end(0, {"loss": 1.0}, loop)


def test_best_checkpoint_on_disk_is_a_jaxnet_checkpoint(tmp_path, key):
    recipe = classifier_mlp(3, hidden=(4,), batch_norm=True)
    params, state = init_model(recipe.model, key, (2,))
    stop = EarlyStopping("val_loss", patience=5, checkpoint=tmp_path)
    loop = Loop(None, 3, None)
    stop.on_train_begin(loop)
    shifted = jax.tree.map(lambda a: a + 1.0, params)
    for epoch, (value, p) in enumerate([(1.0, params), (0.5, shifted), (0.7, params)]):
        loop.train_state = TrainState(p, state, (), jnp.asarray(epoch), key)
        stop.on_epoch_end(epoch, {"val_loss": value}, loop)
    template = TrainState(params, state, (), jnp.asarray(0), key)
    restored = checkpoint.load(tmp_path / "best.json", template)
    chex.assert_trees_all_equal(restored.tree.params, shifted)  # epoch 1 was the best
    chex.assert_trees_all_equal(restored.tree.state, state)
    assert restored.epoch == 2 and restored.manifest["extra"] == {
        "monitor": "val_loss",
        "best": 0.5,
    }
    assert sorted(os.listdir(tmp_path)) == ["best.json", "best.safetensors"]  # no temporary file


def test_real_fit_stops_early_and_returns_the_best_parameters(key):
    # Random labels: the training loss falls while the validation loss soon rises.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=160)
    recipe = classifier_mlp(3, hidden=(64,))
    stop = EarlyStopping("val_loss", patience=3, restore_best=True)
    ts, history = fit(
        recipe.model,
        recipe.loss,
        optim.adam(0.01),
        x,
        y,
        epochs=200,
        batch_size=32,
        metrics=recipe.metrics,
        validation_split=0.25,
        callbacks=[stop],
        verbose=0,
    )
    val_loss = history["val_loss"]
    assert stop.stopped_epoch is not None and history.epochs == stop.stopped_epoch + 1 < 200
    assert stop.best_epoch == int(np.argmin(val_loss))
    assert stop.stopped_epoch - stop.best_epoch == 3
    # The returned state is the best epoch's: its validation loss is the logged minimum.
    logs = evaluate(
        recipe.model,
        ts.params,
        ts.state,
        x[120:],
        y[120:],
        losses.sparse_categorical_cross_entropy,
        [metrics.accuracy],
    )
    np.testing.assert_allclose(logs["loss"], min(val_loss), rtol=1e-5)
    assert int(ts.step) == (stop.best_epoch + 1) * (120 // 32)  # 3 steps per epoch
