"""Tampered artefacts are refused before anything runs; wrong inputs are errors that name the
expected input.

A saved model whose description (a layer width, the input shape) or weights were edited, and an
exported file that was truncated, bit-flipped or had its header edited: each load raises the
module's own error naming the file. Bits are flipped evenly over every file: each flip is either
refused or (where a flip leaves the JSON's meaning unchanged, e.g. ``1e-05`` -> ``1E-05``) loads
exactly the original. References: the weights and record saved, the original's predictions.
"""

import json

import chex
import jax
import numpy as np
import pytest
from test_saving import random_weights

import jaxnet
from jaxnet import exporting, saving
from jaxnet.errors import DTypeError, ShapeError
from jaxnet.exporting import ExportError
from jaxnet.saving import Preprocessing, SavedModelError

FLIPS_PER_FILE = 40


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    """A saved classifier (with feature scaling) and its export: paths and the saved bytes."""
    root = tmp_path_factory.mktemp("artefacts")
    recipe = jaxnet.classifier_mlp(3, hidden=(8,))
    params, state = random_weights(recipe.model, (4,))
    pre = Preprocessing(np.arange(4.0), np.array([1.0, 2.0, 0.5, 1e-5]), class_names=tuple("abc"))
    jaxnet.save_model(root / "model", recipe, params, state=state, input_shape=(4,),
                      preprocessing=pre)  # fmt: skip
    saved = jaxnet.load_model(root / "model")
    jaxnet.export(saved, root / "model.stablehlo", platforms=("cpu",))
    files = {p.name: p.read_bytes() for p in (root / "model").iterdir()}
    return root, saved, files, (root / "model.stablehlo").read_bytes()


@pytest.fixture
def model_dir(artefacts, tmp_path):
    """A fresh copy of the saved model, to edit."""
    _, _, files, _ = artefacts
    (tmp_path / "model").mkdir()
    for name, data in files.items():
        (tmp_path / "model" / name).write_bytes(data)
    return tmp_path / "model"


def _positions(size: int, count: int = FLIPS_PER_FILE) -> np.ndarray:
    return np.unique(np.linspace(0, size - 1, count).astype(int))


def _flipped(data: bytes, position: int) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 1 << (position % 8)  # a different bit each time
    return bytes(changed)


# ----------------------------------------------------------------------------- saved models


def _rewrite(model_dir, change, refingerprint: bool):
    record = json.loads((model_dir / "model.json").read_text())
    change(record)
    if refingerprint:  # as a tool that edits the file and recomputes its fingerprint would
        record["fingerprint"] = saving.fingerprint(record)
    (model_dir / "model.json").write_text(json.dumps(record))


def _recipe_hidden_9(record):
    record["description"]["recipe"]["args"]["hidden"] = [9]


def _hidden_9(record):
    _recipe_hidden_9(record)
    record["description"]["recipe"]["model"]["args"]["hidden"] = [9]


def _input_5(record):
    record["input"]["shape"] = [5]


@pytest.mark.parametrize(
    "change, message",
    [
        (_recipe_hidden_9, r"model.json: classifier_mlp: the recorded model differs"),
        (_hidden_9, r"dense_0/b: expected float32\[9\], got float32\[8\]"),
        (_input_5, r"dense_0/w: expected float32\[5, 8\], got float32\[4, 8\]"),
    ],
    ids=["recipe_width", "layer_width", "input_shape"],
)
def test_an_edited_description_is_refused(model_dir, change, message):
    _rewrite(model_dir, change, refingerprint=False)
    with pytest.raises(SavedModelError, match="model.json does not match its fingerprint"):
        jaxnet.load_model(model_dir)
    _rewrite(model_dir, change, refingerprint=True)  # the weights still do not fit
    with pytest.raises(SavedModelError, match=message):
        jaxnet.load_model(model_dir)


@pytest.mark.parametrize("name", ["model.json", "weights.json", "weights.safetensors"])
def test_a_flipped_bit_anywhere_in_a_saved_model_is_refused(artefacts, model_dir, name):
    _, saved, files, _ = artefacts
    data, refused = files[name], 0
    for position in _positions(len(data)):
        (model_dir / name).write_bytes(_flipped(data, position))
        try:
            loaded = jaxnet.load_model(model_dir)
        except SavedModelError as error:
            assert name in str(error) or str(model_dir) in str(error), str(error)
            refused += 1
            continue
        assert loaded.record == saved.record, position  # a flip that changes no JSON value
        chex.assert_trees_all_equal((loaded.params, loaded.state), (saved.params, saved.state))
    assert refused >= len(_positions(len(data))) - 2


# ----------------------------------------------------------------------------- exported files


def test_a_truncated_or_bit_flipped_export_is_refused(artefacts, tmp_path):
    _, _, _, data = artefacts
    path = tmp_path / "m.stablehlo"
    header_end = data.index(b"\n")
    cuts = [0, 1, header_end // 2, header_end, header_end + 1, len(data) // 2, len(data) - 1]
    damaged = [data[:n] for n in cuts] + [_flipped(data, p) for p in _positions(len(data))]
    damaged += [_flipped(data, p) for p in _positions(header_end)]
    for content in damaged:
        path.write_bytes(content)
        with pytest.raises(ExportError, match=str(path)):
            jaxnet.load_exported(path)


def _header(data: bytes):
    line, _, payload = data.partition(b"\n")
    return json.loads(line), payload


def test_an_edited_export_header_is_refused(artefacts, tmp_path):
    _, _, _, data = artefacts
    path = tmp_path / "m.stablehlo"
    header, payload = _header(data)
    header["input"]["shape"] = [5]
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(ExportError, match="does not match its header_sha256"):
        jaxnet.load_exported(path)
    header["header_sha256"] = exporting.header_checksum(header)  # recomputed: the program says 4
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(ExportError, match=r"header says .*\(5,\).* its program takes .*\(4,\)"):
        jaxnet.load_exported(path)


# ----------------------------------------------------------------------------- wrong inputs


@pytest.fixture(scope="module")
def served(artefacts):
    root, saved, _, _ = artefacts
    return {
        "predict": saved.predict,
        "exported model": jaxnet.load_exported(root / "model.stablehlo"),
    }


EXPECTED = r"x: expected numbers \(float32\) of shape \(batch, 4\), got dtype "
BAD_INPUTS = [
    (np.zeros((5, 3), np.float32), ShapeError, r"x: expected shape \(batch, 4\), got \(5, 3\)$"),
    (
        np.zeros((5, 4, 1), np.float32),
        ShapeError,
        r"x: expected shape \(batch, 4\), got \(5, 4, 1\)$",
    ),
    (np.zeros(4, np.float32), ShapeError, r"x: .* got \(4,\); for one example pass x\[None\]$"),
    (np.zeros((0, 4), np.float32), ShapeError, r"x: no examples \(batch size 0\)$"),
    (np.zeros((5, 4), np.complex64), DTypeError, EXPECTED + "complex64$"),
    (np.full((5, 4), "1"), DTypeError, EXPECTED + "<U1$"),
    (np.zeros((5, 4), object), DTypeError, EXPECTED + "object$"),
]


@pytest.mark.parametrize("who", ["predict", "exported model"])
def test_wrong_inputs_name_the_expected_input(served, who):
    call = served[who]
    for x, error, message in BAD_INPUTS:
        with pytest.raises(error, match=f"^{who}: {message}"):
            call(x)
    x = np.random.default_rng(0).normal(size=(6, 4))
    expected = served["predict"](x.astype(np.float32))
    for cast in (x, x.astype(np.float16), x.astype(np.int64), jax.numpy.asarray(x, "bfloat16")):
        np.testing.assert_allclose(call(cast), served["predict"](np.asarray(cast, np.float32)),
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(call(x), expected, rtol=1e-5, atol=1e-6)
