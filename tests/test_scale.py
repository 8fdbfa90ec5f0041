"""fit_many, per-example gradients, data parallelism, mixed precision, compile time."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet
from jaxnet import datasets, losses, optim
from jaxnet.compilation import DEFAULT_CACHE
from jaxnet.errors import ConfigError
from jaxnet.train.many import fit_many, grid_configs, model_slice
from jaxnet.train.per_example import clipped_mean_gradient, per_example_gradients
from jaxnet.train.step import make_loss


def problem(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] ** 2) > 1).astype(np.int32) + (x[:, 2] > 0.5)
    return x, y


MODEL = jaxnet.serial(
    jaxnet.Dense(16, kernel_init="he_normal"), jaxnet.activations.Relu(), jaxnet.Dense(3)
)
LOSS = losses.sparse_categorical_cross_entropy


def test_grid_configs_cover_every_cell_and_seed():
    configs = grid_configs([0, 1], {"learning_rate": [0.1, 0.2], "b1": [0.9]})
    assert configs == [
        {"learning_rate": 0.1, "b1": 0.9, "seed": 0},
        {"learning_rate": 0.1, "b1": 0.9, "seed": 1},
        {"learning_rate": 0.2, "b1": 0.9, "seed": 0},
        {"learning_rate": 0.2, "b1": 0.9, "seed": 1},
    ]


DROPOUT_MODEL = jaxnet.serial(
    jaxnet.Dense(16, kernel_init="he_normal"),
    jaxnet.activations.Relu(),
    jaxnet.Dropout(0.3),
    jaxnet.Dense(3),
)


@pytest.mark.parametrize("model", [MODEL, DROPOUT_MODEL], ids=["mlp", "dropout"])
def test_fit_many_equals_training_each_model_alone(model):
    """Also with dropout: each vmapped model draws exactly the masks it draws alone."""
    x, y = problem()
    result = fit_many(
        model,
        LOSS,
        lambda learning_rate: optim.adam(learning_rate),
        x,
        y,
        seeds=[0, 1],
        grid={"learning_rate": [1e-2, 3e-2]},
        epochs=2,
        batch_size=16,
        verbose=0,
    )
    assert result.history["loss"].shape == (2, 4)
    epoch = jax.jit(jaxnet.make_epoch(model, LOSS, optim.adam(0.0), 16))  # traced once below
    del epoch
    for m, config in enumerate(result.configs):
        opt = optim.adam(config["learning_rate"])
        ts = jaxnet.create_train_state(model, opt, (6,), jax.random.key(config["seed"]))
        epoch = jax.jit(jaxnet.make_epoch(model, LOSS, opt, 16))
        losses_m = []
        for e in range(2):
            order = jax.random.permutation(jax.random.fold_in(jax.random.key(0), e), len(x))
            ts, logs, _ = epoch(ts, x, y, order)
            losses_m.append(float(logs["loss"]))
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5),
            model_slice(result.train_state.params, m),
            ts.params,
        )
        np.testing.assert_allclose(result.history["loss"][:, m], losses_m, rtol=1e-4)


def test_fit_many_selects_the_best_model_by_validation_metric():
    x, y = problem(128)
    result = fit_many(
        MODEL,
        LOSS,
        lambda learning_rate: optax.sgd(learning_rate),
        x,
        y,
        seeds=[0, 1],
        grid={"learning_rate": [1e-4, 0.3]},
        epochs=3,
        batch_size=16,
        validation_split=0.25,
        metrics=[jaxnet.metrics.accuracy],
        verbose=0,
    )
    final = result.history["val_loss"][-1]
    assert result.best == int(np.argmin(final))
    assert result.configs[result.best]["learning_rate"] == 0.3  # 1e-4 barely moves in 3 epochs
    assert result.history["val_accuracy"].shape == (3, 4)
    assert result.compile_seconds > 0


def test_fit_many_with_a_grid_needs_an_optimizer_factory():
    x, y = problem()
    with pytest.raises(ConfigError, match="factory"):
        fit_many(MODEL, LOSS, optim.adam(1e-3), x, y, grid={"learning_rate": [1e-3]}, verbose=0)


@pytest.fixture(scope="module")
def per_example():
    """(x, y, params, state, grads) for the per-example tests: programs, not op-by-op dispatch,
    which compiles every operation of the model's gradient on its own (seconds, cold)."""
    x, y = problem(8)
    params, state = jax.jit(lambda k: jaxnet.init_model(MODEL, k, (6,)))(jax.random.key(0))
    per_example = jax.jit(lambda p, s, xb, yb: per_example_gradients(MODEL, LOSS, p, s, xb, yb))
    return x, y, params, state, per_example(params, state, x, y)


def test_per_example_gradients_match_a_loop_and_average_to_the_batch_gradient(per_example):
    x, y, params, state, grads = per_example
    assert grads["dense_0"]["w"].shape == (8, 6, 16)

    @jax.jit
    def grad(p, xb, yb):
        return jax.grad(lambda p: LOSS(MODEL.apply(p, state, xb)[0], yb))(p)

    for i in (0, 5):
        single = grad(params, x[i : i + 1], y[i : i + 1])
        jax.tree.map(
            lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-7),
            grads,
            single,
        )
    batch = grad(params, x, y)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a.mean(0), b, rtol=1e-5, atol=1e-7), grads, batch
    )


def test_clipped_mean_gradient_bounds_each_example(per_example):
    *_, grads = per_example
    norms = np.sqrt(
        sum(np.sum(np.asarray(g).reshape(8, -1) ** 2, 1) for g in jax.tree.leaves(grads))
    )
    clip = float(np.median(norms))
    mean, reported = clipped_mean_gradient(grads, clip)
    np.testing.assert_allclose(reported, norms, rtol=1e-5)
    scale = np.minimum(1.0, clip / norms)
    expected = jax.tree.map(
        lambda g: np.mean(np.asarray(g) * scale.reshape(-1, *[1] * (g.ndim - 1)), 0), grads
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8), mean, expected
    )


def test_mixed_precision_keeps_float32_master_weights_and_learns():
    x, y = problem(256)
    ts, history = jaxnet.fit(
        MODEL,
        LOSS,
        optim.adam(1e-2),
        x,
        y,
        epochs=15,
        batch_size=32,
        verbose=0,
        compute_dtype=jnp.bfloat16,
        metrics=[jaxnet.metrics.accuracy],
    )
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(ts.params))
    assert history["accuracy"][-1] > 0.8
    # At initialisation, the bfloat16 gradient is the float32 one up to bfloat16 rounding.
    params, state = jaxnet.init_model(MODEL, jax.random.key(1), (6,))
    f32 = jax.grad(lambda p: make_loss(MODEL, LOSS)(p, state, x, y, None)[0])(params)
    bf16 = jax.grad(
        lambda p: make_loss(MODEL, LOSS, compute_dtype=jnp.bfloat16)(p, state, x, y, None)[0]
    )(params)
    for a, b in zip(jax.tree.leaves(f32), jax.tree.leaves(bf16), strict=True):
        assert b.dtype == jnp.float32
        a, b = np.ravel(a), np.ravel(b)
        cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        assert cosine > 0.98, cosine  # same direction; bfloat16 keeps ~3 significant digits


def test_fit_reports_compile_time_apart_from_epoch_time():
    x, y = problem()
    _, history = jaxnet.fit(MODEL, LOSS, optax.sgd(0.1), x, y, epochs=2, batch_size=16, verbose=0)
    assert history.compile_seconds > 0
    assert len(history["time"]) == 2


DATA_PARALLEL_SCRIPT = textwrap.dedent(
    """
    import json, jax, jax.numpy as jnp, numpy as np, optax, jaxnet
    from jaxnet.train import parallel
    from jaxnet.train.step import create_train_state, make_epoch, sharded_epoch_rows
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(130, 6)).astype(np.float32)  # 130: two rows left out by the split
    y = (x[:, 0] > 0).astype(np.int32)
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.activations.Relu(), jaxnet.Dense(2))
    loss = jaxnet.losses.sparse_categorical_cross_entropy
    mesh = parallel.data_parallel_mesh()
    # BatchNorm's batch statistics under the mesh are the global batch's, as on one device (no
    # bias before it: its true gradient is 0, and Adam turns the rounding noise into full steps).
    bn = jaxnet.serial(jaxnet.Dense(16, use_bias=False), jaxnet.BatchNorm(momentum=0.5),
                       jaxnet.activations.Relu(), jaxnet.Dense(2))
    result = {}
    for name, net in (("mlp", model), ("bn", bn)):
        many, h4 = jaxnet.fit(net, loss, optax.adam(1e-2), x, y, epochs=3, batch_size=32,
                              verbose=0, mesh=mesh)
        # One device, the same batches: each device's shard of 32 rows shuffled on its own.
        ts = create_train_state(net, optax.adam(1e-2), (6,), jax.random.key(0))
        epoch = jax.jit(make_epoch(net, loss, optax.adam(1e-2), 32))
        for _ in range(3):
            rows = np.asarray(sharded_epoch_rows(ts, 128, 4, 32))
            order = (rows + (np.arange(32) // 8) * 32).reshape(-1)  # shard s: rows 32s..32s+31
            ts, logs, _ = epoch(ts, x[:128], y[:128], jnp.asarray(order))
        pairs = zip(jax.tree.leaves((ts.params, ts.state)),
                    jax.tree.leaves((many.params, many.state)))
        diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in pairs)
        result[name] = {"diff": diff, "loss": [h4["loss"][-1], float(logs["loss"])]}
    shards = parallel.shard_rows(x, mesh)
    result["devices"] = len(many.params["dense_0"]["w"].sharding.device_set)
    result["rows_per_device"] = [s.data.shape[0] for s in shards.addressable_shards]
    print(json.dumps(result))
    """
)


def run_on_four_cpu_devices(script: str) -> dict:
    """Run ``script`` in a fresh Python with 4 simulated CPU devices; its last line as JSON."""
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_data_parallel_fit_on_four_cpu_devices_equals_one_device_on_the_same_batches():
    result = run_on_four_cpu_devices(DATA_PARALLEL_SCRIPT)
    assert result["devices"] == 4
    assert result["rows_per_device"] == [32, 32, 32, 32]  # the data is split, not replicated
    for name in ("mlp", "bn"):
        assert result[name]["diff"] < 1e-5, name
        np.testing.assert_allclose(*result[name]["loss"], rtol=1e-5)


def test_data_parallel_batch_must_divide_across_devices():
    from jaxnet.train.parallel import check_batch_size, data_parallel_mesh

    mesh = data_parallel_mesh(jax.devices()[:1])
    check_batch_size(mesh, 3)  # one device: anything goes
    fake = jax.sharding.Mesh(np.array(jax.devices()[:1] * 1), ("data",))
    assert fake.shape["data"] == 1


def test_persistent_compilation_cache_writes_programs_to_the_cache_dir_not_home(tmp_path):
    # conftest.py points $JAXNET_CACHE_DIR (and HOME) into the test session's temporary folder:
    # the default cache a CLI run turns on goes there, and a child with an empty HOME of its own
    # leaves it empty.
    home, cache = tmp_path / "home", Path(os.environ["JAXNET_CACHE_DIR"])
    home.mkdir()
    before = set(cache.iterdir())
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp
        from jaxnet.compilation import enable_compilation_cache
        print(enable_compilation_cache())
        jax.jit(lambda a: jnp.sin(a) * 2.5)(jnp.ones(3)).block_until_ready()
        """
    )
    env = {**os.environ, "HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(cache)]
    assert set(cache.iterdir()) - before  # the program, compiled
    assert list(home.rglob("*")) == []


def test_the_test_session_writes_nothing_under_the_users_home():
    session = Path(os.environ["JAXNET_CACHE_DIR"]).parent  # conftest.py's temporary folder
    assert Path.home() == session / "home"
    assert DEFAULT_CACHE == Path(os.environ["JAX_COMPILATION_CACHE_DIR"]) == session / "xla"
    assert datasets.cache_dir() == session / "datasets"


MODELS_MESH_SCRIPT = textwrap.dedent(
    """
    import json, jax, numpy as np, optax, jaxnet
    from jaxnet import losses
    from jaxnet.train.parallel import models_mesh
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.activations.Relu(), jaxnet.Dense(2))
    kw = dict(seeds=range(4), grid={"learning_rate": [1e-2, 3e-2]}, epochs=2, batch_size=16,
              validation_split=0.25, verbose=0)
    opt = lambda learning_rate: optax.adam(learning_rate)
    loss = losses.sparse_categorical_cross_entropy
    one = jaxnet.fit_many(model, loss, opt, x, y, **kw)
    many = jaxnet.fit_many(model, loss, opt, x, y, mesh=models_mesh(), **kw)
    w = many.train_state.params["dense_0"]["w"]
    pairs = zip(jax.tree.leaves(one.train_state.params), jax.tree.leaves(many.train_state.params))
    diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in pairs)
    print(json.dumps({"diff": diff, "devices": len(w.sharding.device_set),
                      "per_device": [s.data.shape[0] for s in w.addressable_shards],
                      "val1": one.history["val_loss"].tolist(),
                      "val4": many.history["val_loss"].tolist()}))
    """
)


def test_fit_many_splits_the_models_across_four_cpu_devices_with_the_same_result():
    result = run_on_four_cpu_devices(MODELS_MESH_SCRIPT)
    assert result["devices"] == 4
    assert result["per_device"] == [2, 2, 2, 2]  # 8 models, 2 per device
    assert result["diff"] < 1e-5
    np.testing.assert_allclose(result["val1"], result["val4"], rtol=1e-5)


def test_fit_many_models_must_split_evenly_across_the_mesh():
    x, y = problem()
    mesh_of_two = type("TwoDeviceMesh", (), {"devices": np.zeros(2)})()  # only .devices is read
    with pytest.raises(ConfigError, match="3 models do not split evenly across the 2 devices"):
        fit_many(MODEL, LOSS, optim.adam(1e-2), x, y, seeds=[0, 1, 2], mesh=mesh_of_two, verbose=0)
