"""The ``jaxnet`` command line, end to end in a temporary folder (few epochs)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

import jaxnet
from jaxnet import cli
from jaxnet.checkpoint import CheckpointManager

PNG = b"\x89PNG\r\n\x1a\n"


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "train", "bench", "diagnose"):
        assert command in out


def test_demo_trains_the_textbook_mlp_and_writes_curves(tmp_path, capsys):
    code, out, err = _run(capsys, "demo", "--epochs", 2, "--out", tmp_path, "--quiet")
    assert code == 0, err
    assert "test_accuracy" in out and str(tmp_path) in out
    history = json.loads((tmp_path / "history.json").read_text())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    config = json.loads((tmp_path / "config.json").read_text())
    assert len(history["loss"]) == len(history["val_accuracy"]) == 2
    assert history["loss"][-1] < history["loss"][0]
    assert metrics["test"]["accuracy"] > 0.8  # the textbook MLP: ~0.93 after 2 epochs
    assert metrics["n_test"] == 360 and metrics["n_train"] == 1797 - 360  # stratified 20%
    setup = (config["hidden"], config["init"], config["optimizer"])
    assert setup == ([100, 100], "he_normal", "adam")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    digits = load_digits()  # the saved model reads raw 0..16 pixels
    saved = jaxnet.load_model(tmp_path / "model")
    classes = saved.predict(digits.data.astype("float32"), output="classes")
    assert (classes == digits.target).mean() > 0.8
    # The README's promise: `jaxnet predict` applies the demo's model to a CSV of raw pixels,
    # with digits' own column names or none.
    assert saved.preprocessing.feature_names == tuple(digits.feature_names)
    rows = [",".join(str(int(v)) for v in row) for row in digits.data[:40]]
    (tmp_path / "plain.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "named.csv").write_text("\n".join([",".join(digits.feature_names), *rows]))
    for name in ("plain.csv", "named.csv"):
        code, out, err = _run(capsys, "predict", "--model", tmp_path / "model",
                              "--csv", tmp_path / name)  # fmt: skip
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == "prediction" and lines[1:] == [str(c) for c in classes[:40]]


def test_train_on_a_csv_checkpoints_resumes_and_reports_target_units(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    price = 1000.0 + 200.0 * x[:, 0] - 50.0 * x[:, 1]
    rows = [f"{a},{b},{c},{p}" for (a, b, c), p in zip(x, price, strict=True)]
    path = tmp_path / "houses.csv"
    path.write_text("\n".join(["size,age,noise,price", *rows]) + "\n")
    out = tmp_path / "run"
    argv = ["train", "--csv", path, "--target", "price", "--hidden", 32, "--lr", 0.01,
            "--out", out, "--quiet"]  # fmt: skip
    code, _, err = _run(capsys, *argv, "--epochs", 20)
    assert code == 0, err
    manager = CheckpointManager(out / "checkpoints")
    assert [p.name for p in manager.manifests()] == [f"ckpt-0000{e}.json" for e in (18, 19, 20)]
    for name in ("config.json", "history.json", "metrics.json", "curves.png"):
        assert (out / name).exists()
    # Running again into the same folder without --resume is refused, with the way out.
    code, _, err = _run(capsys, *argv, "--epochs", 20)
    assert code == 2 and "--resume" in err and err.startswith("jaxnet: error:")
    code, _, err = _run(capsys, *argv, "--epochs", 40, "--resume")
    assert code == 0, err
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 40
    assert manager.manifests()[-1].name == "ckpt-000040.json"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "regression" and set(metrics["test"]) == {"mae", "rmse", "r2"}
    # A linear target: the MLP explains most of the variance, and errors are in price units
    # (a standardised-scale error would be < 1).
    assert metrics["test"]["r2"] > 0.8
    assert 1.0 < metrics["test"]["rmse"] < 0.5 * price.std()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--csv", "{tmp}/missing.csv", "--target", "y"], "no such file"),
        (["--csv", "{tmp}/bad.csv", "--target", "pric"], "did you mean 'price'"),
        (["--csv", "{tmp}/bad.csv"], "--csv needs --target"),
        (["--dataset", "iris", "--task", "regression"], "is a multiclass task"),
    ],
)
def test_train_bad_input_is_one_error_line_and_status_2(tmp_path, capsys, argv, message):
    (tmp_path / "bad.csv").write_text("size,price\n1,2\n")
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, out, err = _run(capsys, "train", *argv, "--out", tmp_path / "out", "--quiet")
    assert code == 2
    assert err.startswith("jaxnet: error:") and message in err and "Traceback" not in err


def test_bench_lists_dispatches_and_runs_the_built_in(tmp_path, capfd, monkeypatch):
    capsys = capfd  # the dispatched script writes to the real stdout
    (tmp_path / "bench_echo.py").write_text(
        "import sys\nif __name__ == '__main__':\n    print('echo', *sys.argv[1:])\n"
    )
    (tmp_path / "helpers.py").write_text("X = 1\n")  # not a script: not listed
    monkeypatch.setattr(cli, "benchmarks_directory", lambda: tmp_path)
    code, out, _ = _run(capsys, "bench", "--list")
    assert code == 0 and "bench_echo" in out and "helpers" not in out
    code, out, _ = _run(capsys, "bench", "echo", "--", "--quick")
    assert code == 0 and "echo --quick" in out
    code, _, err = _run(capsys, "bench", "nope")
    assert code == 2 and "no benchmark 'nope'" in err
    code, out, _ = _run(capsys, "bench", "--epochs", 1, "--repeats", 1, "--out", tmp_path)
    assert code == 0 and "epoch_s_median" in out
    assert json.loads((tmp_path / "bench.json").read_text())["examples"] == 1797


def test_diagnose_prints_a_per_layer_report(tmp_path, capsys):
    code, out, err = _run(capsys, "diagnose", "--dataset", "wine", "--hidden", 8, 8,
                          "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    assert "dense_0" in out and "dense_4" in out
    assert "findings" in json.loads((tmp_path / "diagnose.json").read_text())


def test_dropout_goes_after_each_hidden_activation():
    import argparse

    import jax

    from jaxnet.core import init_model

    args = argparse.Namespace(
        hidden=[8, 8], activation="relu", init="auto", loss="mse", dropout=0.5
    )
    data = argparse.Namespace(task="multiclass", n_classes=3)
    model = cli.make_recipe(data, args).model
    names = list(model.info["children"])
    assert names == ["dense_0", "relu_1", "dropout_2", "dense_3", "relu_4", "dropout_5", "dense_6"]
    params, state = init_model(model, jax.random.key(0), (4,))
    x = jax.numpy.ones((2, 4))
    inference = model.apply(params, state, x)[0]
    assert not np.allclose(
        model.apply(params, state, x, key=jax.random.key(1), train=True)[0], inference
    )
    selu = argparse.Namespace(**{**vars(args), "activation": "selu"})
    assert "alpha_dropout_2" in cli.make_recipe(data, selu).model.info["children"]


def test_study_command_is_wired_and_refuses_unknown_names(capsys):
    from jaxnet.cli import main

    assert main(["study", "no_such_study", "--no-cache", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no_such_study" in err


def test_summary_command_prints_the_mlp_that_train_builds(capsys):
    import jax

    from jaxnet.core import count_params, init_model

    code, out, err = _run(
        capsys, "summary", "--dataset", "iris", "--hidden", 8, "--activation", "selu"
    )
    assert code == 0, err
    params, _ = init_model(
        cli.make_recipe(cli.load_data(_namespace()), _namespace()).model, jax.random.key(0), (4,)
    )
    assert out.splitlines()[0] == "multiclass_mlp: input (4,)"
    assert "multiclass_mlp/dense_0" in out and "lecun_normal" in out and "selu" in out
    assert f"total: {count_params(params):,} params" in out


def _namespace():
    import argparse

    return argparse.Namespace(
        dataset="iris",
        csv=None,
        task="auto",
        hidden=[8],
        activation="selu",
        init="auto",
        loss="mse",
    )


def test_train_prints_the_summary_unless_quiet(tmp_path, capsys, monkeypatch):
    from jaxnet.errors import ConfigError

    def stop(*args, **kwargs):
        raise ConfigError("stopped before training", ("test",))

    monkeypatch.setattr(sys.modules["jaxnet.workflow"], "fit", stop)
    argv = ["train", "--dataset", "iris", "--hidden", 8, "--out", tmp_path]
    code, out, err = _run(capsys, *argv)
    assert code == 2 and "stopped before training" in err
    assert out.startswith("multiclass_mlp: input (4,)") and "total: " in out
    code, out, _ = _run(capsys, *argv, "--quiet")
    assert code == 2 and out == ""


def _status(capsys, *argv):
    """``(status, stdout, stderr)`` of the command line, argparse's exits included."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


BAD_VALUES = [  # every sub-command, with a value of the wrong type, out of range, or a bad path
    (["train", "--dataset", "iris", "--lr", "-1"], "argument --lr"),
    (["train", "--dataset", "iris", "--lr", "nan"], "argument --lr"),
    (["train", "--dataset", "iris", "--optimizer", "momentum", "--momentum", "1.5"], "--momentum"),
    (["train", "--dataset", "iris", "--epochs", "1.5"], "argument --epochs"),
    (["train", "--dataset", "iris", "--hidden", "0"], "argument --hidden"),
    (["train", "--dataset", "iris", "--batch-size", "0"], "argument --batch-size"),
    (["train", "--dataset", "iris", "--test-fraction", "1"], "argument --test-fraction"),
    (["train", "--dataset", "iris", "--validation-split", "-0.1"], "--validation-split"),
    (["train", "--dataset", "iris", "--dropout", "1"], "argument --dropout"),
    (["train", "--dataset", "iris", "--keep", "0"], "argument --keep"),
    (["train", "--dataset", "iris", "--out", "{file}"], "is a file; give a folder"),
    (["train", "--dataset", "iris", "--out", "{file}/sub"], "cannot create it"),
    (["train", "--csv", "{tmp}", "--target", "y"], "is a directory"),
    (["train", "--dataset", "nope"], "argument --dataset: invalid choice"),
    (["demo", "--seed", "-1"], "argument --seed"),
    (["demo", "--out", "{file}"], "is a file"),
    (["summary", "--hidden", "2.5"], "argument --hidden"),
    (["summary", "--init", "nope"], "unknown initializer 'nope'"),
    (["diagnose", "--batch-size", "0"], "argument --batch-size"),
    (["diagnose", "--batch-size", "-3"], "argument --batch-size"),
    (["diagnose", "--out", "{file}"], "is a file"),
    (["bench", "--epochs", "0"], "argument --epochs"),
    (["bench", "--repeats", "0"], "argument --repeats"),
    (["bench", "--batch-size", "5000", "--epochs", "1", "--repeats", "1"], "larger than the 1797"),
    (["study", "activations", "--seeds", "0"], "argument --seeds"),
    (["study", "activations", "--n-train", "x"], "argument --n-train"),
    (["study", "{tmp}/spec.json", "--no-cache"], "takes ['name', 'cells'"),
    (["study", "{tmp}/list.json", "--no-cache"], "got a list"),
    (["nonsense"], "invalid choice: 'nonsense'"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_VALUES)
def test_every_user_mistake_is_one_line_and_status_2(tmp_path, capsys, argv, message):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "spec.json").write_text('{"name": "x", "cells": [{}], "bogus": 1}')
    (tmp_path / "list.json").write_text("[1, 2]")
    argv = [a.format(tmp=tmp_path, file=tmp_path / "a_file") for a in argv]
    if argv[0] in ("train", "demo") and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    code, _, err = _status(capsys, *argv, *(["--quiet"] if argv[0] in ("train", "demo") else []))
    assert code == 2
    assert err.startswith("jaxnet: error:") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_csv_without_line_breaks_is_refused_before_memory_runs_out(tmp_path, capsys):
    path = tmp_path / "zeros.csv"
    path.write_bytes(b"\0" * (csv_module().MAX_LINE_CHARS + 10))  # what /dev/zero gives, capped
    code, _, err = _status(capsys, "train", "--csv", path, "--target", "y", "--out", tmp_path)
    assert code == 2 and "line 1: longer than 1,048,576 characters" in err
    path.write_bytes(b"a,y\n1,\0\n")
    code, _, err = _status(capsys, "train", "--csv", path, "--target", "y", "--out", tmp_path)
    assert code == 2 and "line 2: holds NUL characters" in err
    if Path("/dev/zero").exists():
        code, _, err = _status(capsys, "summary", "--csv", "/dev/zero", "--target", "y")
        assert code == 2 and "not a CSV text file" in err


def csv_module():
    from jaxnet.datasets import csv

    return csv


def test_batch_size_is_clamped_to_the_training_examples_after_the_validation_split(
    tmp_path, capsys
):
    args = cli.build_parser().parse_args(["train", "--dataset", "iris", "--batch-size", "500",
                                          "--epochs", "1", "--hidden", "4", "--out",
                                          str(tmp_path), "--quiet"])  # fmt: skip
    parsed = dict(vars(args))
    code = args.handler(args)
    err = capsys.readouterr().err
    assert vars(args) == parsed  # the command never changes its parsed arguments
    # iris: 150 -> 120 train / 30 test -> 108 fit / 12 validation (10%)
    assert code == 0, err
    assert "--batch-size 500 is larger than the 108 training examples; using 108" in err
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["batch_size"] == 108


def test_study_out_pointing_at_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    code, _, err = _status(capsys, "study", "activations", "--out", tmp_path / "a_file")
    assert code == 2 and "is a file; give a folder" in err


def test_no_module_of_the_package_imports_the_command_line():
    import ast

    package = Path(jaxnet.__file__).parent
    importers = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        if "cli" not in text:  # parse only the files that could import it
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            if "jaxnet.cli" in names:
                importers.append(str(path.relative_to(package)))
    assert importers == ["__main__.py"]
