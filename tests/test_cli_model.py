"""``jaxnet train`` writes a loadable model; ``predict``, ``export`` and ``summary --model``.

References: the preprocessing recomputed here from the same split (NumPy), predictions
recomputed from the saved weights with NumPy scaling, and the class of the highest probability.
"""

import csv
import json

import numpy as np
import pytest

import jaxnet
from jaxnet import cli, datasets


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _read(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def houses(tmp_path_factory):
    """A regression CSV, a model trained on it by the CLI, and new rows (shuffled columns)."""
    folder = tmp_path_factory.mktemp("houses")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)) * [10.0, 3.0, 1.0] + [50.0, 20.0, 0.0]
    price = 1000.0 + 20.0 * x[:, 0] - 5.0 * x[:, 1]
    rows = [f"{a},{b},{c},{p}" for (a, b, c), p in zip(x, price, strict=True)]
    (folder / "houses.csv").write_text("\n".join(["size,age,noise,price", *rows]) + "\n")
    new = [f"{i},{c},{a},{b}" for i, (a, b, c) in enumerate(x[:6])]
    (folder / "new.csv").write_text("\n".join(["id,noise,size,age", *new]) + "\n")
    code = cli.main([
        "train", "--csv", str(folder / "houses.csv"), "--target", "price", "--hidden", "8",
        "--epochs", "3", "--out", str(folder / "run"), "--quiet", "--seed", "3",
    ])  # fmt: skip
    assert code == 0
    return folder, x.astype(np.float32)


def test_train_stores_exactly_the_preprocessing_it_applied(houses):
    folder, _ = houses
    saved = jaxnet.load_model(folder / "run" / "model")
    data = datasets.load_csv(folder / "houses.csv", "price")
    (x_train, y_train), _ = datasets.train_test_split(data.x, data.y, 0.2, seed=3)
    _, (mean, std) = datasets.standardize(x_train)
    pre = saved.preprocessing
    np.testing.assert_array_equal(pre.feature_mean, mean)
    np.testing.assert_array_equal(pre.feature_std, std)
    assert pre.target_mean == np.float32(y_train.mean())
    assert pre.target_std == np.float32(y_train.std())
    assert pre.feature_names == ("size", "age", "noise") and saved.task == "regression"
    assert saved.metadata["target"] == "price" and "rmse" in saved.metadata["test"]


def test_predict_applies_the_stored_preprocessing(houses, capsys):
    folder, x = houses
    saved = jaxnet.load_model(folder / "run" / "model")
    out = folder / "predictions.csv"
    code, printed, err = _run(capsys, "predict", "--model", folder / "run" / "model",
                              "--csv", folder / "new.csv", "--out", out)  # fmt: skip
    assert code == 0, err
    assert "wrote 6 rows" in printed
    header, rows = _read(out)
    pre = saved.preprocessing
    scaled = (x[:6] - pre.feature_mean) / pre.feature_std  # NumPy: columns by name, not order
    raw = np.asarray(jaxnet.predict(saved.model, saved.params, saved.state, scaled))
    expected = raw[:, 0] * pre.target_std + pre.target_mean
    assert header == ["price"]
    np.testing.assert_allclose([float(r[0]) for r in rows], expected, rtol=1e-5)


def test_export_and_summary_of_a_saved_model(houses, capsys):
    folder, x = houses
    model_dir = folder / "run" / "model"
    code, printed, err = _run(capsys, "export", "--model", model_dir, "--platforms", "cpu")
    assert code == 0, err
    assert "-> values" in printed
    serve = jaxnet.load_exported(folder / "run" / "model.stablehlo")
    saved = jaxnet.load_model(model_dir)
    np.testing.assert_allclose(serve(x[:5]), saved.predict(x[:5]), rtol=1e-5)
    code, printed, err = _run(capsys, "summary", "--model", model_dir)
    assert code == 0, err
    assert "regression_mlp/dense_0" in printed and "target: predictions are output *" in printed


def test_classifier_predictions_carry_the_class_names(tmp_path, capsys):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 2))
    label = np.array(["cat", "dog", "eel"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)]
    rows = [f"{a},{b},{c}" for (a, b), c in zip(x, label, strict=True)]
    (tmp_path / "pets.csv").write_text("\n".join(["a,b,kind", *rows]) + "\n")
    argv = ["train", "--csv", tmp_path / "pets.csv", "--target", "kind", "--hidden", 8,
            "--epochs", 2, "--out", tmp_path / "run", "--quiet"]  # fmt: skip
    assert _run(capsys, *argv)[0] == 0
    model = tmp_path / "run" / "model"
    common = ["predict", "--model", model, "--csv", tmp_path / "pets.csv"]
    assert _run(capsys, *common, "--out", tmp_path / "classes.csv")[0] == 0
    assert _run(capsys, *common, "--output", "probabilities", "--out", tmp_path / "p.csv")[0] == 0
    header, classes = _read(tmp_path / "classes.csv")
    p_header, p = _read(tmp_path / "p.csv")
    assert header == ["kind"]
    assert p_header == ["probability_cat", "probability_dog", "probability_eel"]
    p = np.array(p, dtype=np.float64)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    names = np.array(["cat", "dog", "eel"])[p.argmax(axis=1)]
    assert [c[0] for c in classes] == list(names)


def test_predict_and_export_errors_are_one_line_and_status_2(houses, tmp_path, capsys):
    folder, _ = houses
    (tmp_path / "bad.csv").write_text("size,noise\n1,2\n")
    cases = [
        (["predict", "--model", tmp_path / "no", "--csv", tmp_path / "bad.csv"], "no such folder"),
        (["predict", "--model", folder / "run", "--csv", folder / "new.csv"], "did you mean"),
        (["predict", "--model", folder / "run" / "model", "--csv", tmp_path / "bad.csv"],
         "lacks the column(s) ['age']"),
        (["predict", "--model", folder / "run" / "model", "--csv", folder / "new.csv",
          "--output", "classes"], "predicts values"),
        (["export", "--model", tmp_path], "holds no model.json"),
    ]  # fmt: skip
    for argv, message in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_train_reports_scikit_learn_s_regression_metrics_in_target_units(houses):
    folder, _ = houses
    from sklearn import metrics as skm

    data = datasets.load_csv(folder / "houses.csv", "price")
    _, (x_test, y_test) = datasets.train_test_split(data.x, data.y, 0.2, seed=3)
    saved = jaxnet.load_model(folder / "run" / "model")
    predicted = np.asarray(saved.predict(x_test))[:, 0]  # raw rows, stored scaling
    test = json.loads((folder / "run" / "metrics.json").read_text())["test"]
    assert test["mae"] == pytest.approx(skm.mean_absolute_error(y_test, predicted), rel=1e-5)
    rmse = np.sqrt(skm.mean_squared_error(y_test, predicted))
    assert test["rmse"] == pytest.approx(rmse, rel=1e-5)
    assert test["r2"] == pytest.approx(skm.r2_score(y_test, predicted), rel=1e-4)


@pytest.fixture(scope="module")
def unnamed(houses, tmp_path_factory):
    """The houses model saved again without column names (as the demo's model once was)."""
    folder, x = houses
    saved = jaxnet.load_model(folder / "run" / "model")
    path = tmp_path_factory.mktemp("unnamed") / "model"
    pre = saved.preprocessing._replace(feature_names=())
    jaxnet.save_model(path, saved.recipe, saved.params, state=saved.state,
                      input_shape=saved.input_shape, preprocessing=pre)  # fmt: skip
    return path, saved, x


def _predict_column(capsys, model, csv_path, out):
    code, _, err = _run(capsys, "predict", "--model", model, "--csv", csv_path, "--out", out)
    assert code == 0, err
    return np.array([float(r[0]) for r in _read(out)[1]])


def test_predict_takes_a_header_less_csv_in_the_model_s_column_order(houses, unnamed, capsys):
    folder, x = houses
    path, saved, _ = unnamed
    plain = folder / "plain.csv"  # no header line: size, age, noise by position
    plain.write_text("\n".join(",".join(repr(float(v)) for v in row) for row in x[:6]) + "\n")
    expected = np.asarray(saved.predict(x[:6]))[:, 0]
    for model in (folder / "run" / "model", path):  # with and without recorded names
        got = _predict_column(capsys, model, plain, folder / "p.csv")
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Without recorded names, a header line is read by position when the count matches.
    named = folder / "named.csv"
    named.write_text("a,b,c\n" + plain.read_text())
    got = _predict_column(capsys, path, named, folder / "p.csv")
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_predict_refuses_a_csv_with_the_wrong_number_of_columns(houses, unnamed, capsys):
    folder, _ = houses
    path, _, _ = unnamed
    (folder / "two.csv").write_text("1,2\n3,4\n")
    (folder / "four.csv").write_text("a,b,c,d\n1,2,3,4\n")
    cases = [
        (folder / "run" / "model", "two.csv", "line 1: 2 columns, but the model takes 3 (size, "),
        (path, "two.csv", "line 1: 2 columns, but the model takes 3"),
        (path, "four.csv", "has 4 columns ['a', 'b', 'c', 'd'], but the model takes 3"),
    ]
    for model, name, message in cases:
        code, _, err = _run(capsys, "predict", "--model", model, "--csv", folder / name)
        assert code == 2 and err.startswith("jaxnet: error:") and message in err, err
        assert err.count("\n") == 1


def test_load_features_names_the_line_and_column_of_a_bad_value(tmp_path):
    from jaxnet.errors import DataError

    path = tmp_path / "x.csv"
    path.write_text("1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"line 2: 3 columns, but the model takes 2"):
        datasets.load_features(path, n_columns=2)
    path.write_text("1,2\n3,x\n")
    with pytest.raises(DataError, match=r"line 2: column 'column 2' is not numeric"):
        datasets.load_features(path, n_columns=2)
    path.write_text("1,NA\n3,4\n")  # a missing value does not make the first row a header
    with pytest.raises(DataError, match=r"missing values in column\(s\) 'b': 1 \(first on line 1"):
        datasets.load_features(path, ("a", "b"))
    path.write_text("1,2\n3,4\n")
    x = datasets.load_features(path, n_columns=2)
    np.testing.assert_array_equal(x, np.array([[1, 2], [3, 4]], np.float32))
