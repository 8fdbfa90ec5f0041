"""``jaxnet.workflow``: the train -> evaluate -> save run as library calls.

References: the split and the statistics recomputed with NumPy from ``datasets.train_test_split``,
the test metrics recomputed by scikit-learn (and a NumPy cross-entropy) from the saved model's
predictions on the raw test rows.
"""

import json

import numpy as np
import pytest
from sklearn import metrics as skm

import jaxnet
from jaxnet import datasets, optim, recipes, workflow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = datasets.load_dataset("breast_cancer")  # binary: the (n, 1) target path
    prepared = workflow.prepare_data(data, test_fraction=0.2, seed=1)
    recipe = recipes.classifier_mlp(1, hidden=(8,), task="binary")
    out = tmp_path_factory.mktemp("workflow")
    result = workflow.train_evaluate_save(
        prepared, recipe, optim.adam(1e-2), out, epochs=2, batch_size=64, validation_split=0,
        seed=1, verbose=0, config={"note": "a test"}, target="diagnosis",
    )  # fmt: skip
    return data, prepared, result


def test_prepare_data_standardises_with_the_training_split(run):
    data, prepared, _ = run
    (x_train, _), (x_test, y_test) = datasets.train_test_split(data.x, data.y, 0.2, seed=1)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    np.testing.assert_allclose(prepared.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(prepared.x_test, (x_test - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(prepared.y_test, y_test)
    assert prepared.target_scale == (0.0, 1.0)  # classification: the labels are left alone


def test_train_evaluate_save_measures_and_writes_what_it_returns(run):
    data, prepared, result = run
    _, (x_test, y_test) = datasets.train_test_split(data.x, data.y, 0.2, seed=1)
    saved = jaxnet.load_model(result.model_path)
    classes = np.asarray(saved.predict(x_test, output="classes"))  # raw rows, stored scaling
    assert result.test["accuracy"] == pytest.approx(skm.accuracy_score(y_test, classes), abs=1e-6)
    p = np.clip(np.asarray(saved.predict(x_test), np.float64)[:, 0], 1e-7, 1 - 1e-7)
    cross_entropy = -np.mean(y_test * np.log(p) + (1 - y_test) * np.log(1 - p))
    assert result.test["loss"] == pytest.approx(cross_entropy, rel=1e-3)
    assert result.history.epochs == 2 and len(result.history["loss"]) == 2
    on_disk = json.loads((result.out / "metrics.json").read_text())
    assert on_disk["test"] == pytest.approx(result.test) and on_disk["n_test"] == len(x_test)
    config = json.loads((result.out / "config.json").read_text())
    assert config == {"note": "a test", "task": "binary", "n_features": 30, "n_classes": 2}
    assert saved.metadata["target"] == "diagnosis" and saved.class_names == data.class_names
    for name in result.wrote:
        assert (result.out / name.rstrip("/")).exists(), name
    assert "checkpoints/" not in result.wrote and not (result.out / "checkpoints").exists()
