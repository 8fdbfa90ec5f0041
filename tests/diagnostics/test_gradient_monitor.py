"""GradientMonitor inside real ``fit`` runs: history, printed findings, stop on NaN gradients."""

import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import jaxnet
from jaxnet import losses
from jaxnet.diagnostics.monitor import GradientMonitor
from jaxnet.train.step import create_train_state


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x[:320] / 16).astype(np.float32), y[:320].astype(np.int32)


def test_monitor_records_every_nth_step_and_reports(digits):
    x, y = digits
    model = jaxnet.serial(
        jaxnet.Dense(32, kernel_init="he_normal"), jaxnet.activations.Relu(), jaxnet.Dense(10)
    )
    stream = io.StringIO()
    monitor = GradientMonitor(model, every=3, stream=stream)
    ts, fit_history = jaxnet.fit(
        model,
        losses.sparse_categorical_cross_entropy,
        jaxnet.optim.adam(1e-2),
        x,
        y,
        epochs=3,
        batch_size=32,
        monitor=monitor,
        verbose=0,
    )
    h = monitor.history
    steps_per_epoch = len(x) // 32
    # the first step of every chunk of 3 steps within each epoch (10 steps: 0, 3, 6)
    local = np.arange(0, (steps_per_epoch // 3) * 3, 3)
    expected_steps = np.concatenate([e * steps_per_epoch + local for e in range(3)])
    np.testing.assert_array_equal(h["step"], expected_steps)
    np.testing.assert_array_equal(h["epoch"], expected_steps // steps_per_epoch)
    assert set(h["layers"]) == {"dense_0", "relu_1", "dense_2"}
    assert h["layers"]["dense_0"]["grad_norm"].shape == expected_steps.shape
    assert h["layers"]["relu_1"]["dead_units"].shape == (len(expected_steps), 32)
    assert np.all(np.isfinite(h["layers"]["dense_0"]["grad_norm"]))
    assert np.all(h["layers"]["dense_2"]["update_ratio"] > 0)
    # the probed losses are the batch losses the step computed: close to the epoch means
    epoch_means = [h["loss"][h["epoch"] == e].mean() for e in range(3)]
    np.testing.assert_allclose(epoch_means, fit_history["loss"], rtol=0.3)
    assert monitor.findings == [] and stream.getvalue() == ""
    json.dumps(monitor.report(), allow_nan=False)
    assert "dense_0" in monitor.table() and "relu_1" in monitor.table()


def test_probe_every_step_matches_a_direct_step(digits):
    """The monitor's (packed) probe inside the scanned epoch equals a direct probed step."""
    x, y = digits
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.activations.Tanh(), jaxnet.Dense(10))
    optimizer = optax.sgd(0.1)
    monitor = GradientMonitor(model, every=1, verbose=False)
    epoch = jax.jit(
        jaxnet.make_epoch(
            model,
            losses.sparse_categorical_cross_entropy,
            optimizer,
            64,
            probe=monitor.probe,
            shuffle=False,
        )
    )
    ts = create_train_state(model, optimizer, (64,), jax.random.key(0))
    _, _, probes = epoch(ts, x, y)
    recorded = monitor.probe.unpack(jax.device_get(probes))
    from jaxnet.diagnostics.stats import make_probe

    step = jaxnet.make_train_step(
        model, losses.sparse_categorical_cross_entropy, optimizer, probe=make_probe(model)
    )
    key = jaxnet.train.step.step_key(ts)
    *_, logs = step(ts.params, ts.state, ts.opt_state, (x[:64], y[:64]), key)
    first = jax.tree.map(lambda a: a[0], recorded)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), first, logs["probe"])


@pytest.mark.parametrize("apart", [True, False])
def test_a_monitor_probing_each_epochs_first_step_changes_no_bit_of_training(
    digits, apart, monkeypatch
):
    """An epoch of at most ``every`` steps is probed at its first step: by a program of its own
    for a cheap step, else inside the epoch. Either way training is bit for bit the unmonitored
    one (its parameters; and its logged losses too when the probe is apart), and the probe is
    what a probed step sees on the epoch's first (shuffled) batch."""
    from jaxnet.train import feed

    # every step counts as cheap (the probe apart), or none (the probe inside the epoch)
    monkeypatch.setattr(feed, "PROBE_APART_SECONDS", 1.0 if apart else 0.0)
    x, y = digits
    model = jaxnet.serial(jaxnet.Dense(16, kernel_init="he_normal"), jaxnet.activations.Relu(),
                          jaxnet.Dense(10))  # fmt: skip
    optimizer = jaxnet.optim.adam(1e-2)
    ts0 = create_train_state(model, optimizer, (64,), jax.random.key(3))
    loss = losses.sparse_categorical_cross_entropy
    run = dict(epochs=3, batch_size=32, train_state=ts0, verbose=0)
    monitor = GradientMonitor(model, every=10, verbose=False)  # 10 steps an epoch
    monitored, monitored_history = jaxnet.fit(model, loss, optimizer, x, y, monitor=monitor, **run)
    plain, plain_history = jaxnet.fit(model, loss, optimizer, x, y, **run)
    jax.tree.map(np.testing.assert_array_equal, monitored.params, plain.params)
    if apart:  # the very program fit runs without a monitor
        assert monitored_history["loss"] == plain_history["loss"]
    else:  # the probed step's loss is computed in a copy of the step, which XLA fuses its own way
        np.testing.assert_allclose(monitored_history["loss"], plain_history["loss"], rtol=1e-6)
    np.testing.assert_array_equal(monitor.history["step"], [0, 10, 20])

    from jaxnet.diagnostics.stats import make_probe
    from jaxnet.train.step import epoch_order, step_key

    rows = np.asarray(epoch_order(ts0, len(x), 32))[:32]
    step = jaxnet.make_train_step(model, loss, optimizer, probe=make_probe(model))
    *_, logs = step(ts0.params, ts0.state, ts0.opt_state, (x[rows], y[rows]), step_key(ts0))
    direct = logs["probe"]["layers"]
    for layer, stats in monitor.history["layers"].items():
        for name, values in stats.items():
            np.testing.assert_allclose(values[0], direct[layer][name], rtol=1e-5, atol=1e-7)


def test_the_probe_is_apart_only_for_a_cheap_step_in_a_short_run_on_the_cpu():
    from jaxnet.train.feed import PROBE_APART_EPOCHS, PROBE_APART_SECONDS, probe_apart

    cpu = jax.default_backend() == "cpu"
    assert probe_apart(PROBE_APART_SECONDS / 2, 50) == cpu
    assert probe_apart(PROBE_APART_SECONDS / 2, None) == cpu  # (epochs not known: short)
    assert not probe_apart(PROBE_APART_SECONDS * 2, 50)  # an expensive step
    assert not probe_apart(PROBE_APART_SECONDS / 2, PROBE_APART_EPOCHS + 1)  # a long run
    assert not probe_apart(None, 50)  # no cost analysis


def _nan_gradient_layer(threshold: float):
    """Identity forward; gives its counter ``c`` gradient -1 until ``c > threshold``, then NaN.

    The forward pass never reads ``c``, so the loss stays finite: only the gradient is poisoned.
    """

    @jax.custom_vjp
    def identity(x, c):
        return x

    def forward(x, c):
        return x, c

    def backward(c, g):
        return g, jnp.where(c > threshold, jnp.nan, -1.0).astype(c.dtype)

    identity.defvjp(forward, backward)

    def init(key, input_shape):
        return input_shape, {"c": jnp.zeros((), jnp.float32)}, {}

    def apply(params, state, x, *, key=None, train=False):
        return identity(x, params["c"]), state

    return jaxnet.Layer(init, apply, "nan_after", {})


def test_monitor_stops_on_nonfinite_gradients_and_keeps_the_last_good_state(digits):
    x, y = digits
    # sgd(0.1) raises c by 0.1 per step; 10 steps per epoch -> NaN gradient at step 15 (epoch 1).
    # apply_if_finite skips those updates, so the train state stays finite and fit's guard
    # accepts the epoch: only the monitor sees the NaN gradients.
    model = jaxnet.serial(jaxnet.Dense(10), _nan_gradient_layer(1.45))
    stream = io.StringIO()
    monitor = GradientMonitor(model, every=1, stream=stream)
    ts, fit_history = jaxnet.fit(
        model,
        losses.sparse_categorical_cross_entropy,
        optax.apply_if_finite(optax.sgd(0.1), max_consecutive_errors=1000),
        x,
        y,
        epochs=5,
        batch_size=32,
        monitor=monitor,
        verbose=0,
    )
    assert monitor.nonfinite_step == 15 and monitor.stopped_epoch == 1
    assert fit_history.epochs == 2  # fit ran epoch 1 to its end, then the monitor stopped it
    assert int(ts.step) == 10  # the state from the end of epoch 0, the last all-finite one
    np.testing.assert_allclose(ts.params["nan_after_1"]["c"], 1.0, rtol=1e-5)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(ts.params))
    kinds = [f.kind for f in monitor.findings]
    assert kinds[0] == "non_finite"
    assert "non_finite" in stream.getvalue() and "stopping after epoch 2" in stream.getvalue()


def test_nan_reaching_the_parameters_is_refused_by_fit_before_the_monitor(digits):
    x, y = digits
    model = jaxnet.serial(jaxnet.Dense(10), _nan_gradient_layer(1.45))
    monitor = GradientMonitor(model, every=1, stream=io.StringIO())
    with pytest.warns(RuntimeWarning, match="epoch 2 made the train state non-finite"):
        ts, fit_history = jaxnet.fit(model, losses.sparse_categorical_cross_entropy,
                                     optax.sgd(0.1), x, y, epochs=5, batch_size=32,
                                     monitor=monitor, verbose=0)  # fmt: skip
    # The loss never reads c, so it stays finite; the guard sees c turn NaN and keeps the state
    # the monitor would have kept (it never reaches its on_epoch_end).
    assert monitor.nonfinite_step == 15 and monitor.stopped_epoch is None
    assert fit_history.epochs == 1 and int(ts.step) == 10
    np.testing.assert_allclose(ts.params["nan_after_1"]["c"], 1.0, rtol=1e-5)


def test_findings_are_complete_though_diagnosed_every_ten_probed_steps(digits, monkeypatch):
    """The monitor diagnoses every DIAGNOSE_EVERY probed steps and at the end of training, not
    after every epoch; what it finds and prints is what diagnosing the whole history finds."""
    from jaxnet.diagnostics import monitor as monitor_module

    x, y = digits
    deep = [layer for _ in range(6) for layer in (jaxnet.Dense(32), jaxnet.activations.Sigmoid())]
    model = jaxnet.serial(*deep, jaxnet.Dense(10))  # vanishing gradients at Glorot init
    stream = io.StringIO()
    monitor = GradientMonitor(model, every=1, stream=stream)
    calls = []
    diagnose = monitor.diagnose
    monkeypatch.setattr(monitor, "diagnose", lambda **kw: calls.append(1) or diagnose(**kw))
    jaxnet.fit(model, losses.sparse_categorical_cross_entropy, optax.sgd(0.01), x, y,
               epochs=3, batch_size=64, monitor=monitor, verbose=0)  # fmt: skip
    probed = len(monitor.history["step"])
    assert probed == 15 and monitor_module.DIAGNOSE_EVERY == 10
    assert len(calls) == 2  # after the 10th probed step, and at the end (5 more)
    final = diagnose()
    assert final and [str(f) for f in monitor.findings] == [str(f) for f in final]
    printed = stream.getvalue()  # each finding once, with its numbers when it first appeared
    for finding in final:
        assert printed.count(f"[{finding.severity}] {finding.kind}: ") == 1
