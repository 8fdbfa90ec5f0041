"""Resume never silently changes the run; the manifest is as safe as the arrays; jaxnet deletes
no file it did not write."""

import json
import random
import shutil
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import optim, recipes
from jaxnet.checkpoint import CheckpointError, CheckpointManager, read_manifest
from jaxnet.errors import ConfigError
from jaxnet.train.callbacks import Callback
from jaxnet.train.checkpointing import check_history
from jaxnet.train.fit import fit
from jaxnet.train.run_config import differences, fingerprint, optimizer_record

RECIPE = recipes.classifier_mlp(3, hidden=(8,))
RNG = np.random.default_rng(1)
X, Y = RNG.normal(size=(40, 4)).astype(np.float32), RNG.integers(0, 3, 40)
SETTINGS = dict(epochs=2, batch_size=8, verbose=0)


def train(directory, optimizer=None, x=X, y=Y, recipe=RECIPE, **changes):
    settings = SETTINGS | changes
    optimizer = optimizer or optim.adam(1e-2)
    return fit(recipe.model, recipe.loss, optimizer, x, y, checkpoint_dir=directory, **settings)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished two-epoch run's checkpoints (do not write into it: copy it)."""
    directory = tmp_path_factory.mktemp("run") / "checkpoints"
    train(directory)
    return directory


def copy_of(run_dir, tmp_path):
    return shutil.copytree(run_dir, tmp_path / "checkpoints")


def listing(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (dict(optimizer=optim.adam(0.3)), "optimizer/hyperparameters/1/learning_rate: 0.01 in "
         "the checkpoint, 0.3 now"),
        (dict(optimizer=optim.sgd(1e-2)), 'optimizer/types: ["ScaleByAdamState", '
         '"ScaleByLearningRateState"] in the checkpoint, ["ScaleByLearningRateState"] now'),
        (dict(batch_size=16), "batch_size: 8 in the checkpoint, 16 now"),
        (dict(validation_split=0.25), "validation_split: null in the checkpoint, 0.25 now"),
        (dict(epochs=1), "the checkpoint has completed 2 epochs, more than epochs=1"),
        (dict(x=X + 1e-3), "x: \"float32[40, 4] sha256:"),
        (dict(x=X[:32], y=Y[:32]), "x: \"float32[40, 4] sha256:"),
        (dict(seed=1), "seed: 0 in the checkpoint, 1 now"),
        (dict(recipe=recipes.classifier_mlp(3, hidden=(8,), activation="tanh")),
         "model/model/args/activation: \"relu\" in the checkpoint, \"tanh\" now"),
        (dict(shuffle=False), "shuffle: true in the checkpoint, false now"),
        (dict(ema=0.9), "ema: null in the checkpoint, 0.9 now"),
        (dict(accumulate=2), "accumulate: 1 in the checkpoint, 2 now"),
        (dict(compute_dtype=jnp.bfloat16), 'compute_dtype: null in the checkpoint, "bfloat16" now'),
    ],
)  # fmt: skip
def test_resuming_a_different_run_is_an_error_listing_the_change(run_dir, change, expected):
    before = listing(run_dir)
    with pytest.raises(CheckpointError, match="cannot resume from ckpt-000002.json") as error:
        train(run_dir, resume=True, **change)
    assert expected in str(error.value) and "resume='force'" in str(error.value)
    assert listing(run_dir) == before  # nothing written, nothing deleted


def test_force_continues_with_a_warning_and_records_the_new_run(run_dir, tmp_path):
    directory = copy_of(run_dir, tmp_path)
    # Forced: continues from the checkpoint (its optimizer state and rate), warns what changed,
    # and from then on the directory records the new run.
    with pytest.warns(RuntimeWarning, match="learning_rate: 0.01 in the checkpoint, 0.3 now"):
        forced, history = train(directory, optim.adam(0.3), resume="force", epochs=3)
    assert history.epochs == 3 and int(forced.step) == 15
    assert float(optim.get_hyperparameter(forced.opt_state)) == np.float32(1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, _ = train(directory, optim.adam(0.3), resume=True, epochs=3)  # nothing left to do
    chex.assert_trees_all_equal(again, forced)
    with pytest.raises(ConfigError, match="resume must be True, False or 'force'"):
        train(directory, resume="yes")


class SetRate(Callback):
    def __init__(self, rate):
        self.rate = rate

    def on_train_begin(self, loop):
        opt_state = optim.set_hyperparameter(loop.train_state.opt_state, "learning_rate", self.rate)
        loop.train_state = loop.train_state._replace(opt_state=opt_state)


def test_the_documented_way_to_change_the_rate_of_a_resumed_run(run_dir, tmp_path):
    directory = copy_of(run_dir, tmp_path)
    ts, history = train(directory, resume=True, epochs=3, callbacks=[SetRate(0.3)])
    assert history.epochs == 3 and float(optim.get_hyperparameter(ts.opt_state)) == np.float32(0.3)
    # The same epoch by hand: the checkpoint's state with the new rate, trained one epoch (the
    # batch order follows the step count, so it is the resumed run's third epoch).
    restored = CheckpointManager(run_dir).restore_latest(ts)
    opt_state = optim.set_hyperparameter(restored.tree.opt_state, "learning_rate", 0.3)
    start = restored.tree._replace(opt_state=opt_state)
    expected, _ = fit(RECIPE.model, RECIPE.loss, optim.adam(1e-2), X, Y, epochs=1, batch_size=8,
                      verbose=0, train_state=start)  # fmt: skip
    chex.assert_trees_all_equal(ts, expected)


def test_manifests_deleted_by_hand_are_refused_and_the_arrays_kept(run_dir, tmp_path):
    directory = copy_of(run_dir, tmp_path)
    for manifest in directory.glob("*.json"):
        manifest.unlink()
    before = listing(directory)
    for resume in (True, False):
        with pytest.raises(ConfigError, match="array files without their manifests"):
            train(directory, resume=resume)
    assert listing(directory) == before


def test_files_the_run_did_not_write_are_never_deleted(run_dir, tmp_path):
    directory = copy_of(run_dir, tmp_path)
    foreign = {"ckpt-000099.safetensors": b"not mine", ".ckpt-000050.json.x1.tmp": b"not mine"}
    for name, data in foreign.items():
        (directory / name).write_bytes(data)
    train(directory, resume=True, epochs=6, keep=2)
    names = sorted(p.name for p in directory.iterdir())
    assert names == sorted([".ckpt-000050.json.x1.tmp", "ckpt-000005.json",
                            "ckpt-000005.safetensors", "ckpt-000006.json",
                            "ckpt-000006.safetensors", "ckpt-000099.safetensors"])  # fmt: skip
    assert all((directory / name).read_bytes() == data for name, data in foreign.items())


# ----------------------------------------------------------------------------- the manifest


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_a_bit_flipped_anywhere_in_the_newest_manifest_falls_back_or_changes_nothing(run_dir):
    manager = CheckpointManager(run_dir)
    newest = manager.manifests()[-1]
    original = newest.read_bytes()
    path, manifest, arrays = manager.latest_intact(validate=check_history)
    assert path == newest
    # One bit in every third byte (cycling through the 8 bit positions), plus all 8 bits of 40
    # random bytes: ~1,500 positions over the whole file, each read as fit's resume reads it.
    rng = random.Random(0)
    bits = [8 * i + i % 8 for i in range(0, len(original), 3)]
    bits += [8 * i + b for i in rng.sample(range(len(original)), 40) for b in range(8)]
    fell_back = 0
    try:
        for bit in bits:
            newest.write_bytes(flip(original, bit))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                found_path, found_manifest, found_arrays = manager.latest_intact(check_history)
            if found_path != newest:  # fell back to the previous one, saying which file
                assert found_path.name == "ckpt-000001.json" and found_manifest["epoch"] == 1
                assert [newest.name in str(w.message) for w in caught] == [True], bit
                fell_back += 1
            else:  # accepted: then it must be exactly the checkpoint that was written
                assert found_manifest == manifest and not caught, bit
                chex.assert_trees_all_equal(found_arrays, arrays)
    finally:
        newest.write_bytes(original)
    assert fell_back > 0.99 * len(bits)  # JSON has no whitespace a single flip keeps as such


def test_older_manifests_without_a_checksum_are_still_read_and_checked(tmp_path, run_dir):
    directory = copy_of(run_dir, tmp_path)
    path = CheckpointManager(directory).manifests()[-1]
    manifest = json.loads(path.read_text())
    del manifest["manifest_sha256"]
    manifest["format_version"] = 1
    path.write_text(json.dumps(manifest))
    assert read_manifest(path)["epoch"] == 2  # format 1: no checksum to check
    manifest["epoch"] = "2"
    path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="epoch is '2', not a non-negative integer"):
        read_manifest(path)
    manifest["format_version"] = 2  # format 2 without its checksum: refused
    path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="does not match its manifest_sha256"):
        read_manifest(path)


# ----------------------------------------------------------------------------- the record


def test_fingerprint_sees_dtype_shape_and_values_and_sources():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert fingerprint(x) == fingerprint(x.copy()) == fingerprint(jax.numpy.asarray(x))
    assert fingerprint(x).startswith("float32[3, 4] sha256:")
    assert fingerprint(x) != fingerprint(x.astype(np.float64))
    changed = x.copy()
    changed[1, 2] += 1
    assert fingerprint(changed) != fingerprint(x)
    pytree = {"a": x, "b": [1, 2]}
    assert fingerprint(pytree) == {"a": fingerprint(x), "b": fingerprint(np.array([1, 2]))}
    assert fingerprint(range(5)) == {"source": "range", "length": 5}


def test_optimizer_record_reads_hyperparameters_from_the_state():
    import optax

    params = {"w": np.zeros(3, np.float32)}
    record = optimizer_record(optim.adam(1e-3).init(params))
    assert record["hyperparameters"] == {"1/learning_rate": float(np.float32(1e-3))}
    injected = optax.inject_hyperparams(optax.adam)(learning_rate=0.1, b1=0.8)
    found = optimizer_record(injected.init(params))["hyperparameters"]
    assert found["hyperparams/b1"] == pytest.approx(0.8) and "hyperparams/b2" in found
    assert differences({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 3], "c": 0}) == [
        "b/1: 2 in the checkpoint, 3 now",
        "c: (absent) in the checkpoint, 0 now",
    ]


def test_cli_resume_checks_the_run_before_writing_its_config(tmp_path, capsys):
    from jaxnet import cli

    rng = np.random.default_rng(0)
    rows = [",".join(f"{v:.4f}" for v in row) for row in rng.normal(size=(60, 3))]
    (tmp_path / "data.csv").write_text("\n".join(["a,b,y", *rows]) + "\n")
    out = tmp_path / "run"
    argv = ["train", "--csv", tmp_path / "data.csv", "--target", "y", "--hidden", 4,
            "--epochs", 2, "--out", out, "--quiet"]  # fmt: skip
    assert cli.main([str(a) for a in [*argv, "--lr", 0.01]]) == 0
    config = (out / "config.json").read_bytes()
    capsys.readouterr()
    code = cli.main([str(a) for a in [*argv, "--lr", 0.3, "--epochs", 3, "--resume"]])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("jaxnet: error:") and len(err.splitlines()) == 1
    assert "learning_rate: 0.01 in the checkpoint, 0.3 now" in err and "--resume force" in err
    assert (out / "config.json").read_bytes() == config
    forced = cli.build_parser().parse_args([str(a) for a in [*argv, "--resume", "force"]])
    assert forced.resume == "force"  # what fit(resume=) receives


def test_a_state_gone_non_finite_mid_epoch_is_never_saved(tmp_path):
    from jaxnet.train.checkpointing import Checkpoint

    y = (Y[:, None] * 100.0).astype(np.float32)
    model = recipes.regression_mlp(1, hidden=(8,)).model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ts, history = fit(model, mse, optim.sgd(1e38), X, y, epochs=2, batch_size=8,
                          verbose=0, steps_per_execution=1,
                          callbacks=[Checkpoint(tmp_path, every_steps=1)])  # fmt: skip
    assert history.epochs == 0 and any("non-finite" in str(w.message) for w in caught)
    assert CheckpointManager(tmp_path).manifests() == []  # step 1's state was already inf


def mse(predictions, targets):
    return jnp.mean((predictions - targets) ** 2)


def test_a_model_describe_refuses_is_recorded_by_its_parameter_specs():
    from jaxnet.core import serial
    from jaxnet.layers import Dense
    from jaxnet.train.run_config import model_record

    def double(x):
        return 2 * x

    model = serial(Dense(4), double, Dense(3), name="custom")
    _, params, _ = model.init(jax.random.key(0), (5,))
    assert model_record(model, params) == {
        "name": "custom",
        "params": {"dense_0/b": "float32[4]", "dense_0/w": "float32[5, 4]",
                   "dense_2/b": "float32[3]", "dense_2/w": "float32[4, 3]"},
    }  # fmt: skip
