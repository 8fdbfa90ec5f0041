import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import jaxnet
from jaxnet import losses, metrics, optim
from jaxnet.errors import ConfigError, DataError

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
XOR_Y = np.array([0, 1, 1, 0], np.float32)


def small_problem(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, :3].sum(1) > 0).astype(np.int32) + (x[:, 3] > 1)
    return x, y


def test_mlp_learns_xor():
    recipe = jaxnet.classifier_mlp(1, hidden=(8,), activation="tanh", task="binary")
    ts, history = jaxnet.fit(
        recipe.model,
        recipe.loss,
        optim.adam(0.05),
        XOR_X,
        XOR_Y,
        epochs=300,
        batch_size=4,
        metrics=recipe.metrics,
        verbose=0,
        seed=1,
    )
    logits = jaxnet.predict(recipe.model, ts.params, ts.state, XOR_X)
    np.testing.assert_array_equal((logits[:, 0] > 0).astype(np.float32), XOR_Y)
    assert history["accuracy"][-1] == 1.0


def test_train_step_equals_a_hand_written_optax_loop(key):
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.activations.Relu(), jaxnet.Dense(3))
    x, y = small_problem()
    params, state = jaxnet.init_model(model, key, (5,))
    opt = optax.sgd(0.1, momentum=0.9)
    step = jaxnet.make_train_step(model, losses.sparse_categorical_cross_entropy, opt)
    ours, opt_state = params, opt.init(params)
    ref, ref_opt_state = params, opt.init(params)

    def ref_loss(p, xb, yb):
        h = jax.nn.relu(xb @ p["dense_0"]["w"] + p["dense_0"]["b"])
        logits = h @ p["dense_2"]["w"] + p["dense_2"]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    for i in range(0, 64, 16):
        batch = (x[i : i + 16], y[i : i + 16])
        ours, state, opt_state, logs = step(ours, state, opt_state, batch, key)
        loss, grads = jax.value_and_grad(ref_loss)(ref, *batch)
        updates, ref_opt_state = opt.update(grads, ref_opt_state, ref)
        ref = optax.apply_updates(ref, updates)
        np.testing.assert_allclose(logs["loss"], loss, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), ours, ref)


def test_fused_epoch_equals_the_same_steps_one_by_one(key):
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.activations.Tanh(), jaxnet.Dense(3))
    x, y = small_problem(70)
    opt = optim.adam(1e-2)
    ts0 = jaxnet.create_train_state(model, opt, (5,), key)
    epoch = jax.jit(jaxnet.make_epoch(model, losses.sparse_categorical_cross_entropy, opt, 16))
    ts, logs, _ = epoch(ts0, x, y)
    assert int(ts.step) == 4  # 70 // 16 full batches, remainder dropped

    step = jaxnet.make_train_step(model, losses.sparse_categorical_cross_entropy, opt)
    # (jax.random.permutation's order: tests/test_random.py)
    order = np.asarray(jaxnet.random.permutation(jaxnet.train.step.shuffle_key(ts0, 0), 70))
    params, state, opt_state, step_losses = ts0.params, ts0.state, ts0.opt_state, []
    for i in range(4):
        idx = order[i * 16 : (i + 1) * 16]
        key_i = jaxnet.train.step.step_key(ts0._replace(step=jnp.int32(i)))
        params, state, opt_state, step_logs = step(
            params, state, opt_state, (x[idx], y[idx]), key_i
        )
        step_losses.append(step_logs["loss"])
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), ts.params, params
    )
    np.testing.assert_allclose(logs["loss"], np.mean(step_losses), rtol=1e-5)


def test_epoch_compiles_once():
    traces = []
    model = jaxnet.serial(jaxnet.Dense(4), jaxnet.activations.Relu(), jaxnet.Dense(3))
    opt = optim.adam(1e-3)
    x, y = small_problem()
    epoch = jaxnet.make_epoch(model, losses.sparse_categorical_cross_entropy, opt, 16)

    def counted(ts, x, y):
        traces.append(1)
        return epoch(ts, x, y)

    compiled = jax.jit(counted)
    ts = jaxnet.create_train_state(model, opt, (5,), jax.random.key(0))
    for _ in range(3):
        ts, _, _ = compiled(ts, x, y)
    assert len(traces) == 1


def test_fit_is_bit_for_bit_reproducible_and_seed_dependent():
    x, y = small_problem()
    recipe = jaxnet.classifier_mlp(3, hidden=(16,))

    def run(seed):
        ts, history = jaxnet.fit(
            recipe.model,
            recipe.loss,
            optim.adam(1e-2),
            x,
            y,
            epochs=3,
            batch_size=8,
            seed=seed,
            verbose=0,
            metrics=recipe.metrics,
        )
        return ts.params, history.to_dict()

    (p1, h1), (p2, h2), (p3, _) = run(0), run(0), run(1)
    jax.tree.map(np.testing.assert_array_equal, p1, p2)
    h1.pop("time"), h2.pop("time")
    assert h1 == h2
    assert not np.array_equal(p1["dense_0"]["w"], p3["dense_0"]["w"])


def test_fit_validation_split_logs_and_progress(capsys):
    x, y = small_problem(80)
    recipe = jaxnet.classifier_mlp(3, hidden=(8,))
    _, history = jaxnet.fit(
        recipe.model,
        recipe.loss,
        optim.adam(1e-2),
        x,
        y,
        epochs=2,
        batch_size=16,
        validation_split=0.25,
        metrics=recipe.metrics,
    )
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "time"}
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "val_accuracy" in out


def test_evaluate_is_exact_on_the_whole_data_set(key):
    model = jaxnet.serial(jaxnet.Dense(3))
    params, state = jaxnet.init_model(model, key, (5,))
    x, _ = small_problem(37)
    y = np.asarray(x[:, :3] * 2)
    logs = jaxnet.evaluate(model, params, state, x, y, losses.mse, [metrics.rmse], batch_size=10)
    pred = x @ np.asarray(params["dense_0"]["w"]) + np.asarray(params["dense_0"]["b"])
    np.testing.assert_allclose(
        logs["root_mean_squared_error"], np.sqrt(((pred - y) ** 2).mean()), rtol=1e-5
    )
    np.testing.assert_allclose(
        jaxnet.predict(model, params, state, x, batch_size=8), pred, rtol=1e-5, atol=1e-6
    )


def test_any_optax_optimizer_works_in_fit():
    x, y = small_problem()
    recipe = jaxnet.classifier_mlp(3, hidden=(8,))
    for opt in (optax.rmsprop(1e-3), optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1))):
        _, history = jaxnet.fit(
            recipe.model, recipe.loss, opt, x, y, epochs=2, batch_size=8, verbose=0
        )
        assert np.isfinite(history["loss"]).all()


@pytest.mark.parametrize(
    "x,y,match",
    [
        (np.array([[np.nan, 1.0]] * 8, np.float32), np.zeros(8, np.int32), "non-finite"),
        (
            np.ones((8, 2), np.float32),
            np.array([0, 1, 2, 3, 0, 1, 2, 3]),
            r"labels in \[0, 3\].*\[0, 3\)",
        ),
        (np.ones((8, 2), np.float32), -np.ones(8, np.int32), r"labels in \[-1, -1\]"),
        (np.ones((0, 2), np.float32), np.zeros(0, np.int32), "empty"),
        (np.ones((8, 2), np.float32), np.zeros(7, np.int32), "different numbers of examples"),
    ],
)
def test_fit_refuses_bad_data_before_training(x, y, match):
    recipe = jaxnet.classifier_mlp(3, hidden=(4,))
    with pytest.raises(DataError, match=match):
        jaxnet.fit(
            recipe.model, recipe.loss, optax.sgd(0.1), x, y, epochs=1, batch_size=4, verbose=0
        )


def test_batch_size_larger_than_data_is_an_error():
    x, y = small_problem(10)
    recipe = jaxnet.classifier_mlp(3, hidden=(4,))
    with pytest.raises(DataError, match="batch_size=32 is larger than the 10"):
        jaxnet.fit(recipe.model, recipe.loss, optax.sgd(0.1), x, y, epochs=1, verbose=0)


def test_non_finite_loss_stops_and_keeps_the_last_good_parameters():
    x, y = small_problem()
    recipe = jaxnet.regression_mlp(1, hidden=(16,))
    target = (x[:, 0] * 1e3).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        ts, history = jaxnet.fit(
            recipe.model,
            recipe.loss,
            optax.sgd(10.0),
            x,
            target,
            epochs=20,
            batch_size=8,
            verbose=0,
        )
    assert history.epochs < 20
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(ts.params))


def test_digits_demo_reaches_96_percent():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    recipe = jaxnet.classifier_mlp(10, hidden=(100, 100))
    ts, _ = jaxnet.fit(
        recipe.model,
        recipe.loss,
        optim.adam(1e-3),
        x_train,
        y_train,
        epochs=30,
        batch_size=32,
        metrics=recipe.metrics,
        verbose=0,
    )
    logs = jaxnet.evaluate(
        recipe.model, ts.params, ts.state, x_test, y_test, recipe.loss, recipe.metrics
    )
    assert logs["accuracy"] >= 0.96


def test_callbacks_share_the_loop_and_may_replace_the_state_or_stop():
    x, y = small_problem()
    recipe = jaxnet.classifier_mlp(3, hidden=(8,))
    seen = []

    class HalveOnce(jaxnet.train.Callback):
        """Stops after epoch 2 and hands back a state it chose, as a restore-best callback does."""

        def on_train_begin(self, loop):
            seen.append(("begin", loop.initial_epoch, loop.epochs, int(loop.train_state.step)))

        def on_epoch_end(self, epoch, logs, loop):
            seen.append(("epoch", epoch, sorted(logs), int(loop.train_state.step)))
            if epoch == 1:
                self.kept = loop.train_state
                loop.stop_training = True

        def on_train_end(self, loop):
            loop.train_state = jax.tree.map(lambda a: a, self.kept)

    ts, history = jaxnet.fit(recipe.model, recipe.loss, optim.adam(1e-2), x, y, epochs=5,
                             batch_size=16, metrics=recipe.metrics, callbacks=[HalveOnce()],
                             verbose=0)  # fmt: skip
    steps = len(x) // 16
    assert seen == [
        ("begin", 0, 5, 0),
        ("epoch", 0, ["accuracy", "loss", "time"], steps),
        ("epoch", 1, ["accuracy", "loss", "time"], 2 * steps),
    ]
    assert history.epochs == 2 and int(ts.step) == 2 * steps


def test_a_probe_is_passed_as_monitor_not_hidden_among_callbacks():
    x, y = small_problem()
    recipe = jaxnet.classifier_mlp(3, hidden=(8,))
    monitor = jaxnet.GradientMonitor(recipe.model, verbose=False)
    with pytest.raises(ConfigError, match=r"fit\(monitor=...\)"):
        jaxnet.fit(recipe.model, recipe.loss, optim.adam(1e-2), x, y, epochs=1, verbose=0,
                   callbacks=[monitor])  # fmt: skip
