"""save_model/load_model: every built-in layer round-trips; preprocessing; every bad input.

References: the arrays saved (bit for bit), the original model's description, NumPy formulas for
the preprocessing, and ``jaxnet.predict`` of the original model on inputs scaled by NumPy. The
fresh-process reload is in tests/test_export.py (one subprocess loads the saved and the exported
model).
"""

import json
import shutil

import chex
import jax
import numpy as np
import pytest
from test_description import CASES

import jaxnet
from jaxnet import checkpoint
from jaxnet.errors import ConfigError, DTypeError, ShapeError
from jaxnet.recipes import Recipe
from jaxnet.saving import Preprocessing, SavedModelError


def random_weights(model, input_shape, seed=0):
    """Params and state with the shapes ``init`` gives, filled with arbitrary numbers."""
    params, state = jax.eval_shape(lambda: model.init(jax.random.key(0), input_shape)[1:])
    rng = np.random.default_rng(seed)

    def fill(spec):
        return rng.normal(size=spec.shape).astype(spec.dtype)

    return jax.tree.map(fill, params), jax.tree.map(fill, state)


@pytest.mark.parametrize("make, input_shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_round_trip_keeps_every_layer_and_its_weights(tmp_path, make, input_shape):
    model = make()
    params, state = random_weights(model, input_shape)
    jaxnet.save_model(tmp_path / "m", model, params, state=state, input_shape=input_shape)
    saved = jaxnet.load_model(tmp_path / "m")
    chex.assert_trees_all_equal((saved.params, saved.state), (params, state))  # bit for bit
    assert jaxnet.describe(saved.model) == jaxnet.describe(model)
    assert saved.input_shape == input_shape and saved.recipe is None and saved.task is None


@pytest.fixture(scope="module")
def classifier():
    """A trained-looking classifier with feature scaling and class names."""
    recipe = jaxnet.classifier_mlp(3, hidden=(8,), batch_norm=True)
    params, state = random_weights(recipe.model, (4,))
    rng = np.random.default_rng(1)
    x = rng.normal(loc=50.0, scale=10.0, size=(13, 4)).astype(np.float32)
    mean, std = x.mean(axis=0), x.std(axis=0)
    pre = Preprocessing(mean, std, class_names=("cat", "dog", "eel"), feature_names=tuple("abcd"))
    return recipe, params, state, x, pre


def test_saved_classifier_predicts_from_raw_inputs(tmp_path, classifier):
    recipe, params, state, x, pre = classifier
    path = jaxnet.save_model(tmp_path / "m", recipe, params, state=state, input_shape=(4,),
                             preprocessing=pre, metadata={"acc": 0.5})  # fmt: skip
    saved = jaxnet.load_model(path)
    assert saved.recipe.info == recipe.info and saved.task == "multiclass"
    assert saved.class_names == ("cat", "dog", "eel") and saved.metadata == {"acc": 0.5}
    np.testing.assert_array_equal(saved.preprocessing.feature_mean, pre.feature_mean)
    scaled = (x - pre.feature_mean) / pre.feature_std  # NumPy applies the scaling
    for output in ("probabilities", "classes", "logits"):
        expected = jaxnet.predict(recipe, params, state, scaled, output=output)
        np.testing.assert_allclose(saved.predict(x, output), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(saved.predict(x.astype(np.float64)), saved.predict(x), rtol=1e-6)
    assert "dense_0" in str(saved.summary()) and "multiclass" in repr(saved)


def test_regression_target_scale_is_undone(tmp_path):
    recipe = jaxnet.regression_mlp(2, hidden=(6,))
    params, state = random_weights(recipe.model, (3,))
    pre = Preprocessing(target_mean=[100.0, -5.0], target_std=[20.0, 0.5])
    train_state = jaxnet.TrainState(params, state, (), np.int32(0), jax.random.key(0))
    jaxnet.save_model(tmp_path / "m", recipe, train_state, input_shape=(3,), preprocessing=pre)
    saved = jaxnet.load_model(tmp_path / "m")
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    raw = np.asarray(recipe.model.apply(params, state, x)[0])
    expected = raw * np.array([20.0, 0.5], np.float32) + np.array([100.0, -5.0], np.float32)
    np.testing.assert_allclose(saved.predict(x), expected, rtol=1e-5)
    with pytest.raises(ConfigError, match="predicts values"):
        saved.predict(x, "classes")


def test_a_custom_recipe_keeps_its_task_and_output_activation(tmp_path):
    cnn = jaxnet.serial(jaxnet.Conv2D(2, 3), jaxnet.Flatten(), jaxnet.Dense(3), name="cnn")
    recipe = Recipe(cnn, jaxnet.losses.sparse_categorical_cross_entropy, {}, jax.nn.softmax)
    params, state = random_weights(cnn, (5, 5, 1))
    jaxnet.save_model(tmp_path / "m", recipe, params, state=state, input_shape=(5, 5, 1))
    saved = jaxnet.load_model(tmp_path / "m")
    assert saved.recipe is None and saved.task == "multiclass"
    x = np.random.default_rng(0).normal(size=(4, 5, 5, 1)).astype(np.float32)
    logits = cnn.apply(params, state, x)[0]
    np.testing.assert_allclose(saved.predict(x), jax.nn.softmax(logits), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(saved.predict(x, "classes"), np.argmax(logits, axis=1))
    custom = recipe._replace(output_activation=lambda z: z / 2)
    with pytest.raises(ConfigError, match="custom function"):
        jaxnet.save_model(tmp_path / "c", custom, params, state=state, input_shape=(5, 5, 1))


def test_wrong_inputs_to_a_saved_model_are_clear_errors(tmp_path, classifier):
    recipe, params, state, x, pre = classifier
    jaxnet.save_model(tmp_path / "m", recipe, params, state=state, input_shape=(4,))
    saved = jaxnet.load_model(tmp_path / "m")
    with pytest.raises(ShapeError, match=r"expected shape \(batch, 4\), got \(13, 3\)"):
        saved.predict(x[:, :3])
    with pytest.raises(ShapeError, match=r"x\[None\]"):
        saved.predict(x[0])
    with pytest.raises(DTypeError, match="expected numbers"):
        saved.predict(np.full((2, 4), "a"))


# ----------------------------------------------------------------------------- saving: refusals


def test_save_refuses_what_cannot_be_reloaded(tmp_path, classifier):
    recipe, params, state, _, pre = classifier
    with pytest.raises(SavedModelError, match="do not fit"):  # params of (4,) inputs, said (5,)
        jaxnet.save_model(tmp_path / "a", recipe, params, state=state, input_shape=(5,))
    custom = jaxnet.serial(jaxnet.Dense(2), lambda z: z * 2)
    p, s = random_weights(custom, (3,))
    with pytest.raises(ConfigError, match="plain function"):
        jaxnet.save_model(tmp_path / "b", custom, p, state=s, input_shape=(3,))
    with pytest.raises(SavedModelError, match="does not broadcast"):
        bad = Preprocessing(feature_mean=np.zeros(5))
        jaxnet.save_model(tmp_path / "c", recipe, params, state=state, input_shape=(4,),
                          preprocessing=bad)  # fmt: skip
    with pytest.raises(SavedModelError, match="metadata must be JSON"):
        jaxnet.save_model(tmp_path / "e", recipe, params, state=state, input_shape=(4,),
                          metadata={"when": object()})  # fmt: skip
    with pytest.raises(SavedModelError, match="positive"):
        bad = Preprocessing(feature_std=np.zeros(4))
        jaxnet.save_model(tmp_path / "d", recipe, params, state=state, input_shape=(4,),
                          preprocessing=bad)  # fmt: skip
    assert not any(tmp_path.iterdir())  # nothing written, not even a temporary folder


def test_overwrite_replaces_a_model_but_never_another_folder(tmp_path, classifier):
    recipe, params, state, _, _ = classifier
    path = tmp_path / "m"
    jaxnet.save_model(path, recipe, params, state=state, input_shape=(4,), metadata={"v": 1})
    with pytest.raises(SavedModelError, match="overwrite=True"):
        jaxnet.save_model(path, recipe, params, state=state, input_shape=(4,))
    jaxnet.save_model(path, recipe, params, state=state, input_shape=(4,), metadata={"v": 2},
                      overwrite=True)  # fmt: skip
    assert jaxnet.load_model(path).metadata == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no leftovers
    other = tmp_path / "data"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(SavedModelError, match="not a saved model"):
        jaxnet.save_model(other, recipe, params, state=state, input_shape=(4,), overwrite=True)
    assert (other / "keep.txt").read_text() == "precious"


def test_an_interrupted_save_leaves_the_old_model_and_no_half_written_one(
    tmp_path, classifier, monkeypatch
):
    recipe, params, state, _, _ = classifier
    path = tmp_path / "m"
    jaxnet.save_model(path, recipe, params, state=state, input_shape=(4,), metadata={"v": 1})

    def crash(directory, name, tree):
        (directory / "weights.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        jaxnet.save_model(path, recipe, params, state=state, input_shape=(4,), overwrite=True)
    with pytest.raises(KeyboardInterrupt):
        jaxnet.save_model(tmp_path / "new", recipe, params, state=state, input_shape=(4,))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert jaxnet.load_model(path).metadata == {"v": 1}


# ----------------------------------------------------------------------------- loading: refusals


@pytest.fixture
def saved_dir(tmp_path, classifier):
    recipe, params, state, _, pre = classifier
    return jaxnet.save_model(tmp_path / "m", recipe, params, state=state, input_shape=(4,),
                             preprocessing=pre)  # fmt: skip


def _edit(path, change):
    record = json.loads((path / "model.json").read_text())
    change(record)
    (path / "model.json").write_text(json.dumps(record))


def test_missing_and_foreign_paths(tmp_path, saved_dir):
    with pytest.raises(SavedModelError, match="no such folder"):
        jaxnet.load_model(tmp_path / "nowhere")
    with pytest.raises(SavedModelError, match=r"did you mean .*run/model"):
        run = tmp_path / "run"
        shutil.copytree(saved_dir, run / "model")
        jaxnet.load_model(run)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model.json").write_text('{"class_name": "Sequential", "config": {}}')
    with pytest.raises(SavedModelError, match="not a jaxnet saved model"):
        jaxnet.load_model(foreign)


def test_damaged_files_are_reported(saved_dir):
    text = (saved_dir / "model.json").read_text()
    (saved_dir / "model.json").write_text(text[: len(text) // 2])
    with pytest.raises(SavedModelError, match="damaged"):
        jaxnet.load_model(saved_dir)
    (saved_dir / "model.json").write_text(text)
    weights = saved_dir / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(SavedModelError, match="corrupted"):
        jaxnet.load_model(saved_dir)


def test_an_edited_description_fails_its_fingerprint(saved_dir):
    _edit(saved_dir, lambda r: r["preprocessing"].update(feature_std=[1.0] * 4))
    with pytest.raises(SavedModelError, match="fingerprint"):
        jaxnet.load_model(saved_dir)


def test_another_models_weights_are_refused(tmp_path, saved_dir, classifier):
    recipe, params, state, _, _ = classifier
    params2 = jax.tree.map(lambda a: a + 1, params)
    jaxnet.save_model(tmp_path / "other", recipe, params2, state=state, input_shape=(4,))
    for name in ("weights.json", "weights.safetensors"):
        shutil.copy(tmp_path / "other" / name, saved_dir / name)
    with pytest.raises(SavedModelError, match="does not belong"):
        jaxnet.load_model(saved_dir)


@pytest.mark.parametrize("field", ["format_version", "description"])
def test_a_model_from_a_newer_jaxnet_asks_for_an_upgrade(saved_dir, field):
    def newer(record):
        record["versions"]["jaxnet"] = "9.0.0"
        if field == "format_version":
            record["format_version"] = 2
        else:
            record["description"]["version"] = 2

    _edit(saved_dir, newer)
    with pytest.raises(SavedModelError, match=r"jaxnet 9\.0\.0 .* version 2.*upgrade jaxnet"):
        jaxnet.load_model(saved_dir)
