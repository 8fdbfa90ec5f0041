"""Checkpoints: exact round trips, corruption detection, retention, and resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnet import optim, recipes
from jaxnet.checkpoint import CheckpointError, CheckpointManager, load, save
from jaxnet.train.fit import fit
from jaxnet.train.step import create_train_state


def _train_state(optimizer=None, seed=0):
    recipe = recipes.classifier_mlp(3, hidden=(8,))
    optimizer = optimizer or optim.adam(1e-2)
    return create_train_state(recipe.model, optimizer, (4,), jax.random.key(seed))


def _perturbed(ts, delta=1.0):
    """A different TrainState of the same structure (so a restore must really overwrite it)."""
    leaves, treedef = jax.tree.flatten(ts)
    changed = [
        leaf
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        else leaf + jnp.asarray(delta, leaf.dtype)
        for leaf in leaves
    ]
    return jax.tree.unflatten(treedef, changed)


def _assert_identical(a, b):
    a_leaves, b_leaves = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(a_leaves, b_leaves, strict=True):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize(
    "optimizer",
    [optax.adam(1e-2), optax.sgd(0.1, momentum=0.9), optim.adam(1e-2), optim.rmsprop(1e-3)],
    ids=["optax_adam", "optax_momentum", "jaxnet_adam", "jaxnet_rmsprop"],
)
def test_round_trip_restores_every_leaf_exactly(tmp_path, optimizer):
    ts = _train_state(optimizer)
    ts = ts._replace(step=jnp.asarray(17, jnp.int32), key=jax.random.key(42))
    manifest = save(tmp_path, "ckpt-000001", ts, epoch=1)
    restored = load(manifest, template=_perturbed(ts))
    _assert_identical(restored.tree, ts)
    # The optimizer state's NamedTuples come back as NamedTuples and keep working.
    assert type(restored.tree.opt_state[0]) is type(ts.opt_state[0])
    grads = jax.tree.map(jnp.ones_like, ts.params)
    # optax's adam is not strict-clean (float ** int32 in its bias correction)
    promotion = "strict" if isinstance(optimizer, optim.GradientTransformation) else "standard"
    with jax.numpy_dtype_promotion(promotion):
        chex.assert_trees_all_close(
            optimizer.update(grads, restored.tree.opt_state, restored.tree.params),
            optimizer.update(grads, ts.opt_state, ts.params),
        )


def test_files_are_safetensors_plus_manifest_without_pickle(tmp_path):
    from safetensors.numpy import load_file

    ts = _train_state()
    manifest_path = save(tmp_path, "ckpt-000002", ts, epoch=2, extra={"note": "x"})
    manifest = json.loads(manifest_path.read_text())
    arrays = load_file(tmp_path / manifest["arrays_file"])
    # Read back independently of jaxnet: plain safetensors, keyed by pytree path.
    np.testing.assert_array_equal(arrays["params/dense_0/w"], ts.params["dense_0"]["w"])
    np.testing.assert_array_equal(arrays["key"], jax.random.key_data(ts.key))
    assert manifest["arrays"]["key"]["prng_impl"] == "threefry2x32"
    assert manifest["epoch"] == 2 and manifest["step"] == 0 and manifest["extra"] == {"note": "x"}
    assert manifest["versions"]["jax"] == jax.__version__
    import hashlib

    assert (
        manifest["sha256"]
        == hashlib.sha256((tmp_path / manifest["arrays_file"]).read_bytes()).hexdigest()
    )
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_template_mismatch_names_the_path(tmp_path):
    manifest = save(tmp_path, "ckpt-000001", _train_state())
    wider = create_train_state(
        recipes.classifier_mlp(3, hidden=(9,)).model, optim.adam(1e-2), (4,), jax.random.key(0)
    )
    with pytest.raises(
        CheckpointError, match=r"params/dense_0/w: expected float32\[4, 9\], got float32\[4, 8\]"
    ):
        load(manifest, wider)
    other_optimizer = _train_state(optax.sgd(0.1))
    with pytest.raises(CheckpointError, match="opt_state/0/mu"):
        load(manifest, other_optimizer)


def _save_epochs(directory, epochs, keep=10, monitor=None, mode="min", values=None):
    manager = CheckpointManager(directory, keep=keep, monitor=monitor, mode=mode)
    states = []
    for epoch in range(1, epochs + 1):
        ts = _perturbed(_train_state(), float(epoch))
        metrics = {"val_loss": values[epoch - 1]} if values else None
        manager.save(ts, epoch, metrics=metrics)
        states.append(ts)
    return manager, states


def test_flipped_byte_is_detected_and_previous_checkpoint_used(tmp_path):
    manager, states = _save_epochs(tmp_path, 3)
    newest = tmp_path / "ckpt-000003.safetensors"
    data = bytearray(newest.read_bytes())
    data[len(data) - 5] ^= 0x01  # one bit of one parameter
    newest.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="ckpt-000003.*corrupted"):
        restored = manager.restore_latest(_train_state())
    assert restored.epoch == 2
    _assert_identical(restored.tree, states[1])


def test_truncated_file_and_bad_manifest_are_skipped(tmp_path):
    manager, states = _save_epochs(tmp_path, 3)
    (tmp_path / "ckpt-000003.safetensors").write_bytes(b"\x00" * 10)  # truncated
    (tmp_path / "ckpt-000002.json").write_text('{"format": "jaxnet-checkpo')  # cut mid-write
    with pytest.warns(RuntimeWarning) as record:
        restored = manager.restore_latest(_train_state())
    messages = " ".join(str(w.message) for w in record)
    assert "ckpt-000003" in messages and "ckpt-000002" in messages
    assert restored.epoch == 1
    _assert_identical(restored.tree, states[0])


def test_no_usable_checkpoint_is_an_error_and_none_is_none(tmp_path):
    assert CheckpointManager(tmp_path / "empty").restore_latest(_train_state()) is None
    manager, _ = _save_epochs(tmp_path, 1)
    (tmp_path / "ckpt-000001.safetensors").unlink()
    with (
        pytest.warns(RuntimeWarning, match="ckpt-000001"),
        pytest.raises(CheckpointError, match="none of the 1"),
    ):
        manager.restore_latest(_train_state())


def test_keeps_last_k_plus_best(tmp_path):
    values = [0.9, 0.2, 0.5, 0.6, 0.7, 0.8]  # the best (min) is epoch 2
    _save_epochs(tmp_path, 6, keep=2, monitor="val_loss", values=values)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"ckpt-00000{e}.{s}" for e in (2, 5, 6) for s in ("json", "safetensors")]
    _save_epochs(
        tmp_path / "max", 4, keep=1, monitor="val_loss", mode="max", values=[0.1, 0.9, 0.3, 0.2]
    )
    assert sorted(p.stem for p in (tmp_path / "max").glob("*.json")) == [
        "ckpt-000002",
        "ckpt-000004",
    ]


# ----------------------------------------------------------------------------- fit and processes

FAULT_ENV = "TEST_CHECKPOINT_FAULT"  # read by the child script below, not by jaxnet

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    import jax, numpy as np, optax
    from jaxnet import recipes
    from jaxnet.train.fit import fit

    # Crash simulation from outside jaxnet: the last step of every atomic write is os.replace.
    # "mid_arrays@3": killed with half of epoch 3's array file in its temporary file.
    # "before_manifest@5": killed after epoch 5's array file is in place, before its manifest.
    fault = os.environ.get("TEST_CHECKPOINT_FAULT", "")
    real_replace = os.replace

    def replace(source, destination):
        name = os.path.basename(destination)
        stage, _, epoch = fault.partition("@")
        if stage == "mid_arrays" and name == f"ckpt-{int(epoch):06d}.safetensors":
            os.truncate(source, os.path.getsize(source) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        if stage == "before_manifest" and name == f"ckpt-{int(epoch):06d}.json":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(source, destination)

    os.replace = replace
    checkpoint_dir, output, resume = sys.argv[1] or None, sys.argv[2], sys.argv[3] == "resume"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)
    recipe = recipes.classifier_mlp(3, hidden=(16,))

    class Announce:  # tells the parent which epochs finished; a short pause makes room for a kill
        def on_epoch_end(self, epoch, logs, loop):
            print("epoch", epoch + 1, flush=True)
            time.sleep(0.05)

    ts, history = fit(recipe.model, recipe.loss, optax.adam(0.02), x, y, epochs=8, batch_size=16,
                      seed=3, metrics=recipe.metrics, verbose=0, callbacks=[Announce()],
                      checkpoint_dir=checkpoint_dir, resume=resume, validation_split=0.25)
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(ts.params)]
    np.savez(output, *leaves, loss=np.asarray(history["loss"]), step=np.asarray(ts.step))
    """
)


# The children compile the same programs: a shared persistent compilation cache saves time.
COMPILE_CACHE = {
    "JAX_COMPILATION_CACHE_DIR": os.environ["JAX_COMPILATION_CACHE_DIR"],  # the session's
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}


def _child(tmp_path, checkpoint_dir, name, resume=False, env=None, kill_after_epoch=None):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    output = tmp_path / f"{name}.npz"
    command = [
        sys.executable,
        str(script),
        str(checkpoint_dir or ""),
        str(output),
        "resume" if resume else "new",
    ]
    environment = {**os.environ, "JAX_PLATFORMS": "cpu", **COMPILE_CACHE, **(env or {})}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )
    epochs = []
    for line in process.stdout:
        epochs.append(int(line.split()[1]))
        if kill_after_epoch is not None and epochs[-1] == kill_after_epoch:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    stderr = process.stderr.read()
    return process.returncode, epochs, (dict(np.load(output)) if output.exists() else None), stderr


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("reference")
    code, epochs, result, stderr = _child(tmp_path, None, "reference")
    assert code == 0, stderr
    assert epochs == list(range(1, 9))
    return result


def _assert_same_result(result, reference):
    assert result.keys() == reference.keys()
    for name in reference:
        assert np.array_equal(result[name], reference[name]), name


def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path, reference):
    checkpoints = tmp_path / "checkpoints"
    code, epochs, result, _ = _child(tmp_path, checkpoints, "killed", kill_after_epoch=3)
    assert code == -signal.SIGKILL and result is None and epochs[-1] == 3
    code, epochs, result, stderr = _child(tmp_path, checkpoints, "resumed", resume=True)
    assert code == 0, stderr
    assert 3 < epochs[0] <= 8 and epochs[-1] == 8  # continued, did not start over
    _assert_same_result(result, reference)


def test_sigkill_while_writing_a_checkpoint_never_picks_it(tmp_path, reference):
    checkpoints = tmp_path / "checkpoints"
    # Killed with half of epoch 3's array file written to its temporary file.
    code, _, result, _ = _child(tmp_path, checkpoints, "a", env={FAULT_ENV: "mid_arrays@3"})
    assert code == -signal.SIGKILL and result is None
    assert list(checkpoints.glob(".ckpt-000003.safetensors.*.tmp"))
    assert not list(checkpoints.glob("ckpt-000003.*"))
    # Resumed from checkpoint 2, then killed between epoch 5's array file and its manifest.
    code, epochs, result, _ = _child(
        tmp_path, checkpoints, "b", resume=True, env={FAULT_ENV: "before_manifest@5"}
    )
    assert code == -signal.SIGKILL and result is None and epochs == [3, 4]
    assert (checkpoints / "ckpt-000005.safetensors").exists()
    assert not (checkpoints / "ckpt-000005.json").exists()
    # The orphan array file of epoch 5 is never picked: the run resumes at epoch 5.
    code, epochs, result, stderr = _child(tmp_path, checkpoints, "c", resume=True)
    assert code == 0, stderr
    assert epochs == [5, 6, 7, 8]
    _assert_same_result(result, reference)
    leftovers = [p.name for p in checkpoints.iterdir() if p.name.startswith(".")]
    assert not leftovers  # temporary files of the interrupted writes were cleaned up


def test_fit_refuses_to_mix_runs_and_resume_past_the_end_is_a_no_op(tmp_path):
    recipe = recipes.classifier_mlp(3, hidden=(8,))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    args = (recipe.model, recipe.loss, optim.adam(1e-2), x, y)
    ts, history = fit(*args, epochs=2, batch_size=8, verbose=0, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="already holds checkpoints; pass resume=True"):
        fit(*args, epochs=2, batch_size=8, verbose=0, checkpoint_dir=tmp_path)
    again, history_again = fit(
        *args, epochs=2, batch_size=8, verbose=0, checkpoint_dir=tmp_path, resume=True
    )
    _assert_identical(again, ts)
    assert history_again.to_dict() == history.to_dict()
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        fit(*args, epochs=1, verbose=0, resume=True)
