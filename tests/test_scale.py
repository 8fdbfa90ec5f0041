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
from jaxnet.errors import ArgumentTypeError, ConfigError
from jaxnet.objective import make_loss
from jaxnet.train.many import fit_many, grid_configs, model_slice
from jaxnet.train.per_example import clipped_mean_gradient, per_example_gradients


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
            order = jaxnet.random.permutation(jax.random.fold_in(jax.random.key(0), e), len(x))
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
        epochs=30,
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


MESH_SCRIPT = textwrap.dedent(
    """
    import json, sys, jax, jax.numpy as jnp, numpy as np, optax, jaxnet
    from jaxnet.train import parallel
    from jaxnet.checkpoint import CheckpointManager
    from jaxnet.train.checkpointing import Checkpoint
    from jaxnet.train.data import output_shape
    from jaxnet.train.feed import make_feed
    from jaxnet.train.step import create_train_state, make_epoch, sharded_epoch_rows
    assert jax.device_count() == 4, jax.devices()
    folder = sys.argv[1]
    jaxnet.compilation.enable_compilation_cache(folder + "/xla")  # the runs share programs
    rng = np.random.default_rng(0)
    x = rng.normal(size=(130, 6)).astype(np.float32)  # 130: 4 batches of 32, 2 rows left over
    y = (x[:, 0] > 0).astype(np.int32)
    loss = jaxnet.losses.sparse_categorical_cross_entropy
    mesh = parallel.data_parallel_mesh()
    # BatchNorm's batch statistics under the mesh are the global batch's, as on one device (no
    # bias before it: its true gradient is 0, and Adam turns the rounding noise into full steps);
    # dropout's mask is the global batch's (the step's key does not depend on the device).
    net = jaxnet.serial(jaxnet.Dense(16, use_bias=False), jaxnet.BatchNorm(momentum=0.5),
                        jaxnet.activations.Relu(), jaxnet.Dropout(0.3), jaxnet.Dense(2))

    def fit(**options):
        options = dict(epochs=3, batch_size=32, verbose=0) | options
        return jaxnet.fit(net, loss, optax.adam(1e-2), x, y, **options)

    def diff(a, b):
        pairs = zip(jax.tree.leaves((a.params, a.state, a.step)),
                    jax.tree.leaves((b.params, b.state, b.step)), strict=True)
        return max(float(np.abs(np.asarray(p) - np.asarray(q)).max()) for p, q in pairs)

    class Killed(Exception):
        pass

    class KillMidEpoch:  # the "process" dies 2 steps into an epoch, just after a save
        def __init__(self, epoch):
            self.epoch = epoch

        def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop):
            if epoch == self.epoch and steps_done >= 2:
                raise Killed

    class Start:  # records the step each run starts from (after the checkpoint's restore)
        steps = []

        def on_train_begin(self, loop):
            self.steps.append(int(loop.train_state.step))

    one, h1 = fit()  # the reference: one device
    result = {"loss": h1["loss"]}
    many, h4 = fit(mesh=mesh)
    result["global"] = {"diff": diff(one, many), "loss": h4["loss"]}
    # Checkpointed in the middle of epoch 1 on 4 devices, resumed on 1 device; that run
    # checkpointed in the middle of epoch 2 and resumed on 4 devices to the end.
    path = f"{folder}/checkpoints"
    for run_mesh, killed_in in ((mesh, 1), (None, 2), (mesh, None)):
        kill = [] if killed_in is None else [KillMidEpoch(killed_in)]
        save = Checkpoint(path, resume=run_mesh is None or killed_in is None, every_steps=2)
        try:
            ts, h = fit(mesh=run_mesh, steps_per_execution=2, callbacks=[save, Start(), *kill])
        except Killed:
            pass
    result["resumed"] = {"diff": diff(one, ts), "loss": h["loss"], "starts": Start.steps}
    # shard_order="per_device": each device shuffles its own rows; the same as one device given
    # those batches, other batches (so another model) than the one-device run's.
    split, hs = fit(mesh=mesh, shard_order="per_device", checkpoint_dir=f"{folder}/split")
    runs = [CheckpointManager(p).manifests()[-1] for p in (path, f"{folder}/split")]
    result["recorded"] = [json.loads(m.read_text())["extra"]["run"].get("shard_order", "(absent)")
                          for m in runs]  # what a resumed run must match
    ts = create_train_state(net, optax.adam(1e-2), (6,), jax.random.key(0))
    epoch = jax.jit(make_epoch(net, loss, optax.adam(1e-2), 32))
    for _ in range(3):
        rows = np.asarray(sharded_epoch_rows(ts, 128, 4, 32))
        order = (rows + (np.arange(32) // 8) * 32).reshape(-1)  # shard s: rows 32s..32s+31
        ts, logs, _ = epoch(ts, x[:128], y[:128], jnp.asarray(order))
    result["per_device"] = {"diff": diff(ts, split), "loss": [hs["loss"][-1], float(logs["loss"])],
                            "diff_one_device": diff(one, split)}
    for order in ("global", "per_device"):  # where the rows live
        feed = make_feed(x, y, batch_size=32)
        feed.place(output_shape(net, one.params, one.state, x), mesh, order)
        result[f"rows_{order}"] = [s.data.shape[0] for s in feed.data.x.addressable_shards]
    print(json.dumps(result))
    """
)


def run_on_four_cpu_devices(script: str, *args) -> dict:
    """Run ``script`` in a fresh Python with 4 simulated CPU devices; its last line as JSON."""
    flags = os.environ.get("XLA_FLAGS", "")  # the suite's own compile flags stay
    env = dict(
        os.environ,
        XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count=4",
        JAX_PLATFORMS="cpu",
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def on_four_devices(tmp_path_factory):
    """:data:`MESH_SCRIPT`'s results (one subprocess for the tests below)."""
    return run_on_four_cpu_devices(MESH_SCRIPT, tmp_path_factory.mktemp("mesh"))


def test_data_parallel_fit_on_four_cpu_devices_equals_one_device(on_four_devices):
    """The same seed, the same model (BatchNorm and dropout) on 1 and 4 devices."""
    result = on_four_devices
    assert result["global"]["diff"] < 1e-5
    np.testing.assert_allclose(result["global"]["loss"], result["loss"], rtol=1e-5)
    assert result["rows_global"] == [130] * 4  # every device holds every row


def test_checkpoint_from_four_devices_resumes_on_one_and_back(on_four_devices):
    """Killed in the middle of an epoch on 4 devices, resumed on 1, killed again and resumed on
    4: the run ends as the uninterrupted one-device run."""
    result = on_four_devices["resumed"]
    assert result["starts"] == [0, 6, 10]  # 2 steps into epochs 1 and 2 (4 steps an epoch)
    assert result["diff"] < 1e-5
    np.testing.assert_allclose(result["loss"], on_four_devices["loss"], rtol=1e-5)


def test_per_device_shard_order_splits_the_rows_and_shuffles_each_shard(on_four_devices):
    result = on_four_devices
    assert result["rows_per_device"] == [32, 32, 32, 32]  # the data is split, not replicated
    assert result["per_device"]["diff"] < 1e-5  # one device on the same batches
    np.testing.assert_allclose(*result["per_device"]["loss"], rtol=1e-5)
    assert result["per_device"]["diff_one_device"] > 1e-3  # not the one-device run's batches
    # A checkpoint of a per-device run records its devices (resuming on others is refused); one
    # in the one-device order records nothing and resumes anywhere.
    assert result["recorded"] == [None, "per_device over 4 devices"]


def test_shard_order_is_checked(tmp_path):
    x, y = problem(64)
    one_device = jaxnet.train.parallel.data_parallel_mesh(jax.devices()[:1])
    options = dict(epochs=1, batch_size=16, verbose=0)
    with pytest.raises(ConfigError, match="shard_order must be 'global' or 'per_device'"):
        jaxnet.fit(MODEL, LOSS, optim.sgd(0.1), x, y, mesh=one_device, shard_order="local",
                   **options)  # fmt: skip
    with pytest.raises(ArgumentTypeError, match="shard_order must be 'global' or 'per_device'"):
        jaxnet.fit(MODEL, LOSS, optim.sgd(0.1), x, y, mesh=one_device, shard_order=None,
                   **options)  # fmt: skip
    with pytest.raises(ConfigError, match="pass mesh="):
        jaxnet.fit(MODEL, LOSS, optim.sgd(0.1), x, y, shard_order="per_device", **options)
    np.save(tmp_path / "x.npy", x)
    memmap = np.load(tmp_path / "x.npy", mmap_mode="r")
    with pytest.raises(ConfigError, match="a data source is read in the one-device order"):
        jaxnet.fit(MODEL, LOSS, optim.sgd(0.1), memmap, y, mesh=one_device,
                   shard_order="per_device", **options)  # fmt: skip


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


def test_a_per_device_run_resumes_only_on_as_many_devices():
    from jaxnet.train.options import run_record
    from jaxnet.train.run_config import differences

    x, y = problem(32)
    ts = jaxnet.create_train_state(MODEL, optim.sgd(0.1), (6,), jax.random.key(0))

    def record(shards):
        mesh = type("Mesh", (), {"shape": {"data": shards}})()  # only .shape is read
        arguments = dict(model=MODEL, loss_fn=LOSS, x=x, y=y, batch_size=8, mesh=mesh,
                         shard_order="per_device" if shards > 1 else "global")  # fmt: skip
        return run_record(arguments, ts)

    assert differences(record(1), record(1)) == []
    assert differences(record(4), record(2)) == [
        'shard_order: "per_device over 4 devices" in the checkpoint, '
        '"per_device over 2 devices" now'
    ]
    assert differences(record(4), record(1)) == [
        'shard_order: "per_device over 4 devices" in the checkpoint, null now'
    ]
