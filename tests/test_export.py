"""export/load_exported (StableHLO) and export_onnx: outputs equal ``predict``; clear errors.

References: ``jaxnet.predict`` (and ``SavedModel.predict``) of the same model in this process;
onnxruntime runs the ONNX files. One fresh process (importing jaxnet only, no model code) loads
a saved model and two exported ones.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_saving import random_weights

import jaxnet
from jaxnet import exporting, layers
from jaxnet.errors import DTypeError, ShapeError
from jaxnet.exporting import ExportError
from jaxnet.saving import Preprocessing
from jaxnet.signature import map_shapes

ROOT = Path(jaxnet.__file__).resolve().parent.parent


def cnn():
    return jaxnet.serial(
        layers.Conv2D(4, 3, padding="SAME"), jaxnet.activations.Relu(), layers.MaxPool(2),
        layers.Conv2D(4, 3), jaxnet.activations.Relu(), layers.AvgPool(2, strides=1),
        layers.Flatten(),
        layers.Dense(3), name="cnn",
    )  # fmt: skip


def rnn(cell):
    return jaxnet.serial(layers.RNN(cell), layers.Dense(2), name="rnn")


def _inputs(shape, n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory):
    recipe = jaxnet.classifier_mlp(3, hidden=(8,))
    params, state = random_weights(recipe.model, (4,))
    pre = Preprocessing(np.arange(4.0), np.array([1.0, 2.0, 0.5, 4.0]), class_names=("a", "b", "c"))
    path = tmp_path_factory.mktemp("saved") / "model"
    jaxnet.save_model(path, recipe, params, state=state, input_shape=(4,), preprocessing=pre)
    return jaxnet.load_model(path)


FRESH = """
import json, sys
import numpy as np
import jaxnet

directory = sys.argv[1]
inputs = np.load(directory + "/inputs.npz")
saved = jaxnet.load_model(directory + "/model")
results = {"saved": np.asarray(saved.predict(inputs["tabular"]))}
errors = []
for name, x in (("tabular", inputs["tabular"]), ("cnn", inputs["images"])):
    serve = jaxnet.load_exported(f"{directory}/{name}.stablehlo")
    for n in (1, 7, 64):
        results[f"{name}_{n}"] = np.asarray(serve(x[:n]))
    for bad in (x[:, ..., :-1], x.astype(str)):
        try:
            serve(bad)
        except (jaxnet.errors.ShapeError, jaxnet.errors.DTypeError) as error:
            errors.append(f"{type(error).__name__}: {error}")
np.savez(directory + "/results.npz", **results)
test_code = sorted(m for m in sys.modules if m.startswith(("test_", "tests", "conftest")))
print(json.dumps({"errors": errors, "test_code": test_code}))
"""


def test_fresh_process_reloads_and_serves_equal_to_predict(tmp_path, saved_classifier):
    saved = saved_classifier
    jaxnet.save_model(tmp_path / "model", saved.recipe, saved.params, state=saved.state,
                      input_shape=(4,), preprocessing=saved.preprocessing)  # fmt: skip
    jaxnet.export(saved, tmp_path / "tabular.stablehlo")
    model = cnn()
    params, state = random_weights(model, (8, 8, 1))
    jaxnet.export(model, params, state, (8, 8, 1), tmp_path / "cnn.stablehlo")
    tabular, images = _inputs((4,), 64) * 3, _inputs((8, 8, 1), 64)
    np.savez(tmp_path / "inputs.npz", tabular=tabular, images=images)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    results = np.load(tmp_path / "results.npz")
    assert report["test_code"] == []  # the model is rebuilt from its description
    np.testing.assert_allclose(results["saved"], saved.predict(tabular), rtol=1e-6, atol=1e-7)
    for n in (1, 7, 64):
        expected = saved.predict(tabular[:n])
        np.testing.assert_allclose(results[f"tabular_{n}"], expected, rtol=1e-5, atol=1e-6)
        expected = jaxnet.predict(model, params, state, images[:n])
        np.testing.assert_allclose(results[f"cnn_{n}"], expected, rtol=1e-5, atol=1e-5)
    assert len(report["errors"]) == 4, report
    assert (
        "ShapeError: exported model: x: expected shape (batch, 4), got (64, 3)" in report["errors"]
    )
    assert any(e.startswith("DTypeError") and "expected numbers" in e for e in report["errors"])


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: layers.Bidirectional(layers.GRUCell(2), layers.LSTMCell(2)), (5, 2)),
        (lambda: jaxnet.serial(layers.Dense(4), layers.BatchNorm(), layers.Dropout(0.5)), (3,)),
        (lambda: jaxnet.wide_and_deep("w", "d", deep_hidden=(3,)), {"w": (2,), "d": (3,)}),
    ],
    ids=["bidirectional_gru_lstm", "batch_norm_dropout", "dict_inputs"],
)
def test_export_equals_predict_for_other_layers(tmp_path, make, shape):
    model = make()
    params, state = random_weights(model, shape)
    serve = jaxnet.load_exported(jaxnet.export(model, params, state, shape, tmp_path / "m"))
    for n in (1, 7):
        x = map_shapes(lambda s, n=n: _inputs(s, n), shape)
        expected = jaxnet.predict(model, params, state, x)
        np.testing.assert_allclose(serve(x), expected, rtol=1e-5, atol=1e-6)


def test_recipe_outputs_and_header(tmp_path, saved_classifier):
    saved = saved_classifier
    path = jaxnet.export(saved, tmp_path / "classes", output="classes", platforms=("cpu",))
    serve = jaxnet.load_exported(path)
    assert (serve.output, serve.class_names, serve.platforms) == (
        "classes",
        ("a", "b", "c"),
        ("cpu",),
    )
    x = _inputs((4,), 9) * 3
    np.testing.assert_array_equal(serve(x), saved.predict(x, "classes"))
    recipe, params, state = saved.recipe, saved.params, saved.state
    serve = jaxnet.load_exported(jaxnet.export(recipe, params, state, (4,), tmp_path / "r"))
    np.testing.assert_allclose(serve(x), jaxnet.predict(recipe, params, state, x), rtol=1e-6)


def test_export_arguments_are_checked(tmp_path, saved_classifier):
    saved = saved_classifier
    with pytest.raises(ExportError, match="holds its own params"):
        jaxnet.export(saved, saved.params, path=tmp_path / "x")
    with pytest.raises(ExportError, match="input_shape is required"):
        jaxnet.export(saved.model, saved.params, saved.state, path=tmp_path / "x")
    with pytest.raises(jaxnet.errors.ConfigError, match="pass the recipe"):
        jaxnet.export(saved.model, saved.params, saved.state, (4,), tmp_path / "x",
                      output="probabilities")  # fmt: skip


def test_damaged_foreign_and_newer_export_files(tmp_path, saved_classifier):
    path = jaxnet.export(saved_classifier, tmp_path / "m.stablehlo", platforms=("cpu",))
    data = path.read_bytes()
    with pytest.raises(ExportError, match="cannot read"):
        jaxnet.load_exported(tmp_path / "missing.stablehlo")
    flipped = bytearray(data)
    flipped[-10] ^= 0xFF
    for damaged in (bytes(flipped), data[: len(data) - 100]):
        path.write_bytes(damaged)
        with pytest.raises(ExportError, match="damaged"):
            jaxnet.load_exported(path)
    for foreign in (b"\x08\x07\x12\x04onnx-ish protobuf", b'{"format": "keras"}\n'):
        path.write_bytes(foreign)
        with pytest.raises(ExportError, match="not a jaxnet export file"):
            jaxnet.load_exported(path)
    header, _, payload = data.partition(b"\n")
    newer = {"format_version": exporting.FORMAT_VERSION + 1, "versions": {"jaxnet": "9.0.0"}}
    newer = json.loads(header) | newer
    path.write_bytes(json.dumps(newer).encode() + b"\n" + payload)
    with pytest.raises(ExportError, match=r"jaxnet 9\.0\.0 .*version 3.*upgrade jaxnet"):
        jaxnet.load_exported(path)


def test_exported_model_checks_dict_inputs(tmp_path):
    model = jaxnet.wide_and_deep("w", "d", deep_hidden=(3,))
    shape = {"w": (2,), "d": (3,)}
    params, state = random_weights(model, shape)
    serve = jaxnet.load_exported(jaxnet.export(model, params, state, shape, tmp_path / "m"))
    with pytest.raises(ShapeError, match=r"keys \['d', 'w'\]"):
        serve({"w": np.zeros((2, 2))})
    with pytest.raises(ShapeError, match="different batch sizes"):
        serve({"w": np.zeros((2, 2)), "d": np.zeros((3, 3))})
    with pytest.raises(DTypeError, match=r"x\['d'\]: expected numbers"):
        serve({"w": np.zeros((2, 2)), "d": np.zeros((2, 3), complex)})


# ----------------------------------------------------------------------------- ONNX

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("jax2onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(
    not HAS_ONNX, reason="the onnx extra is not installed: pip install 'jaxnet-classic[onnx]'"
)


def _onnx_run(path, inputs: dict):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


@needs_onnx
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: jaxnet.serial(layers.Dense(8), jaxnet.activations.Tanh(), layers.Dense(3)), (6,)),
        (cnn, (8, 8, 1)),
        (lambda: rnn(layers.GRUCell(3)), (5, 2)),
        (lambda: rnn(layers.LSTMCell(3)), (5, 2)),
    ],
    ids=["mlp", "cnn_pooling", "gru", "lstm"],
)
def test_onnx_equals_predict(tmp_path, make, shape):
    model = make()
    params, state = random_weights(model, shape)
    path = jaxnet.export_onnx(model, params, state, shape, tmp_path / "m.onnx")
    for n in (1, 7):
        x = _inputs(shape, n, seed=n)
        expected = jaxnet.predict(model, params, state, x)
        np.testing.assert_allclose(_onnx_run(path, {"x": x}), expected, rtol=1e-5, atol=1e-5)


@needs_onnx
def test_onnx_of_a_saved_model_applies_its_preprocessing(tmp_path, saved_classifier):
    import onnx

    path = jaxnet.export_onnx(saved_classifier, tmp_path / "m.onnx")
    x = _inputs((4,), 7) * 3
    expected = saved_classifier.predict(x)
    np.testing.assert_allclose(_onnx_run(path, {"x": x}), expected, rtol=1e-5, atol=1e-6)
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert proto.graph.output[0].name == props["output"] == "probabilities"
    assert json.loads(props["class_names"]) == ["a", "b", "c"]


def _reverse_lstm_inside():
    inner = jaxnet.serial(
        jaxnet.activations.Relu(), layers.RNN(layers.LSTMCell(3), reverse=True), name="inner"
    )
    return jaxnet.serial(layers.Dense(4), inner, layers.Dense(2), name="net")


@needs_onnx
@pytest.mark.parametrize(
    "make, shape, where",
    [
        (_reverse_lstm_inside, (5, 2), r"net/inner_1/lstm_1 \(RNN\)"),
        (
            lambda: layers.Bidirectional(layers.GRUCell(2), layers.GRUCell(2)),
            (5, 2),
            r"bidirectional \(Bidirectional\)",
        ),
        (
            lambda: jaxnet.serial(layers.conv.Conv(2, 2, rank=3), name="c"),
            (3, 3, 3, 1),
            r"c/conv3d_0 \(Conv\)",
        ),
    ],
    ids=["reverse_rnn", "bidirectional", "conv3d"],
)
def test_onnx_names_the_layer_it_cannot_convert(tmp_path, make, shape, where):
    model = make()
    params, state = random_weights(model, shape)
    with pytest.raises(ExportError, match=f"cannot convert {where} to ONNX"):
        jaxnet.export_onnx(model, params, state, shape, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_without_the_extra_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # import jax2onnx fails
    model = layers.Dense(2)
    params, state = random_weights(model, (3,))
    with pytest.raises(ImportError, match=r"pip install 'jaxnet-classic\[onnx\]'"):
        jaxnet.export_onnx(model, params, state, (3,), tmp_path / "m.onnx")
