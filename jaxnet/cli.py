"""The ``jaxnet`` command line: ``demo``, ``train``, ``predict``, ``export``, ``summary``, ...

::

    jaxnet demo --out out/demo                        # the textbook MLP on digits, with curves
    jaxnet train --csv houses.csv --target price --hidden 50 50 --epochs 100 --out out/houses
    jaxnet train --dataset wine --optimizer momentum --lr 0.01 --out out/wine [--resume]
    jaxnet bench [--list | NAME [ARGS...]]            # benchmarks/NAME.py, or a built-in timing
    jaxnet diagnose --dataset digits --hidden 100 100 # gradient/activation report at init
    jaxnet summary --dataset digits --hidden 100 100  # the model's layers, shapes and params
    jaxnet predict --model out/houses/model --csv new.csv [--output probabilities] [--out p.csv]
    jaxnet export --model out/houses/model --format stablehlo|onnx [--out PATH]
    jaxnet summary --model out/houses/model           # a saved model and its preprocessing

Also ``python -m jaxnet ...``. Every error in the input (a bad CSV, an option value of the wrong
type or out of range, an output folder that is a file) prints one line starting with
``jaxnet: error:`` and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from jaxnet import optim

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "swish", "tanh", "sigmoid")
DATASET_NAMES = ("digits", "breast_cancer", "iris", "wine", "diabetes")


# ----------------------------------------------------------------------------- option types


def count(low: int = 1):
    """An argparse type: an integer ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "count"
    return parse


def number(low: float | None = None, high: float | None = None, *, high_open: bool = False):
    """An argparse type: a finite number in ``[low, high]`` (``[low, high)`` if ``high_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or (low is not None and value < low) or too_high:
            ends = f"[{'-inf' if low is None else f'{low:g}'}, "
            ends += f"{'inf' if high is None else f'{high:g}'}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be a finite number in {ends}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``jaxnet: error: ...``, and status 2."""

    def error(self, message: str):
        self.exit(2, f"jaxnet: error: {message} (see {self.prog} --help)\n")


def output_folder(path, option: str = "--out") -> Path:
    """``path`` as a folder that exists (created if needed), or a ConfigError naming ``option``."""
    from jaxnet.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file; give a folder for the outputs", ("cli",))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or error
        raise ConfigError(f"{option} {path}: cannot create it ({reason})", ("cli",)) from None
    return path


# ----------------------------------------------------------------------------- building blocks


def load_data(args):
    """The :class:`~jaxnet.datasets.Dataset` named by ``--dataset`` or ``--csv/--target``."""
    from jaxnet import datasets
    from jaxnet.errors import ConfigError

    task = None if getattr(args, "task", "auto") == "auto" else args.task
    if args.csv is not None:
        if not args.target:
            raise ConfigError("--csv needs --target COLUMN (the column to predict)", ("cli",))
        return datasets.load_csv(args.csv, args.target, task=task)
    data = datasets.load_dataset(args.dataset)
    if task is not None and task != data.task:
        raise ConfigError(f"data set {data.name!r} is a {data.task} task, not {task}", ("cli",))
    return data


def make_recipe(data, args):
    """The textbook MLP for the data's task (:mod:`jaxnet.recipes`), with dropout and L2."""
    from jaxnet import recipes

    options = dict(
        kernel_init=None if args.init in (None, "auto") else args.init,
        dropout=getattr(args, "dropout", 0.0),
        l2=getattr(args, "l2", 0.0),
    )
    if data.task == "regression":
        return recipes.regression_mlp(
            1, tuple(args.hidden), args.activation, loss=args.loss, **options
        )
    n_classes = 1 if data.task == "binary" else data.n_classes
    return recipes.classifier_mlp(
        n_classes, tuple(args.hidden), args.activation, task=data.task, **options
    )


def _write_json(path: Path, obj) -> None:
    from jaxnet.jsonable import dumps

    path.write_text(dumps(obj, indent=2) + "\n")


def _test_metrics(recipe, train_state, data, x_test, y_test, target_scale) -> dict:
    """Loss and metrics on the test split; regression metrics in the target's original units."""
    import numpy as np

    from jaxnet.train.evaluate import evaluate, predict

    if data.task == "regression":
        mean, std = target_scale
        predicted = np.asarray(predict(recipe.model, train_state.params, train_state.state, x_test))
        predicted = predicted[:, 0] * std + mean
        error = predicted - y_test
        total = np.sum((y_test - y_test.mean()) ** 2)
        return {
            "mae": float(np.mean(np.abs(error))),
            "rmse": float(np.sqrt(np.mean(error**2))),
            "r2": float(1.0 - np.sum(error**2) / total),
        }
    y = y_test.reshape(-1, 1).astype(np.float32) if data.task == "binary" else y_test
    return evaluate(
        recipe.model, train_state.params, train_state.state, x_test, y, recipe.loss, recipe.metrics
    )


def run_training(args, *, checkpoints: bool) -> dict:
    """Load, split, standardise, train, evaluate; write config, history, metrics, curves."""
    import numpy as np

    from jaxnet import datasets
    from jaxnet.train.data import validation_count
    from jaxnet.train.fit import fit

    out = output_folder(args.out)
    data = load_data(args)
    (x_train, y_train), (x_test, y_test) = datasets.train_test_split(
        data.x, data.y, args.test_fraction, seed=args.seed
    )
    x_train, x_test, feature_scale = datasets.standardize(x_train, x_test)
    target_scale = (0.0, 1.0)
    if data.task == "regression":  # scale the target too; metrics are reported in its units
        target_scale = (float(y_train.mean()), float(y_train.std()) or 1.0)
        y_train = (y_train - target_scale[0]) / target_scale[1]
    recipe = make_recipe(data, args)
    n_fit = len(x_train) - validation_count(len(x_train), args.validation_split)
    if args.batch_size > n_fit:  # a small data set: one batch of everything
        print(f"jaxnet: note: --batch-size {args.batch_size} is larger than the {n_fit} training "
              f"examples; using {n_fit}", file=sys.stderr)  # fmt: skip
        args.batch_size = n_fit
    if not args.quiet:
        from jaxnet.summarize import summary

        print(summary(recipe.model, tuple(x_train.shape[1:])))
    momentum = {"momentum": args.momentum} if args.optimizer in ("momentum", "nesterov") else {}
    optimizer = optim.get(args.optimizer, args.lr, **momentum)
    config = {k: v for k, v in vars(args).items() if k != "handler"}
    config |= {"task": data.task, "n_features": int(data.x.shape[1]), "n_classes": data.n_classes}

    checkpoint_dir = out / "checkpoints" if checkpoints else None
    start = time.perf_counter()
    train_state, history = fit(
        recipe.model,
        recipe.loss,
        optimizer,
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        metrics=recipe.metrics,
        validation_split=args.validation_split or None,
        verbose=0 if args.quiet else 1,
        penalty=recipe.penalty,
        checkpoint_dir=checkpoint_dir,
        keep=getattr(args, "keep", 3),
        resume=checkpoints and args.resume,
    )
    seconds = time.perf_counter() - start
    _write_json(out / "config.json", config)  # after fit: a refused --resume changes nothing
    test = _test_metrics(recipe, train_state, data, x_test, np.asarray(y_test), target_scale)
    results = {
        "data": data.name,
        "task": data.task,
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "epochs_run": history.epochs,
        "seconds": round(seconds, 2),
        "final": {k: v[-1] for k, v in history.to_dict().items() if k != "time"},
        "test": test,
    }
    _write_json(out / "history.json", history.to_dict())
    _write_json(out / "metrics.json", results)
    save_trained(out / "model", recipe, train_state, data, args, feature_scale, target_scale, test)
    wrote = ["config.json", "history.json", "metrics.json", "model/"]
    if history.epochs:
        try:
            from jaxnet.plots import plot_history

            hidden = "x".join(map(str, args.hidden))
            first = next(iter(test.items()))
            title = (f"{data.name}: {hidden} {args.activation} MLP, {args.optimizer} "
                     f"lr {args.lr:g}; test {first[0]} {first[1]:.4f}")  # fmt: skip
            plot_history(history, out / "curves.png", title=title)
            wrote.append("curves.png")
        except ImportError as error:
            print(f"jaxnet: note: no curves.png ({error})", file=sys.stderr)
    if checkpoints:
        wrote.append("checkpoints/")
    summary = "  ".join(f"test_{k} {v:.4f}" for k, v in test.items())
    print(f"{data.name} ({data.task}, {len(x_train)} train / {len(x_test)} test): {summary}")
    print(f"wrote {', '.join(wrote)} to {out}")
    return results


def save_trained(path, recipe, train_state, data, args, feature_scale, target_scale, test):
    """Write the trained model to ``path`` (:func:`jaxnet.save_model`) with exactly the
    preprocessing ``run_training`` applied: the training split's feature mean and std, the
    regression target's mean and std, the class names and the feature columns."""
    from jaxnet.saving import Preprocessing, save_model

    target = {}
    if data.task == "regression":
        target = {"target_mean": target_scale[0], "target_std": target_scale[1]}
    preprocessing = Preprocessing(
        feature_mean=feature_scale[0],
        feature_std=feature_scale[1],
        class_names=data.class_names,
        feature_names=data.feature_names,
        **target,
    )
    metadata = {"data": data.name, "task": data.task, "target": args.target, "test": test}
    return save_model(
        path,
        recipe,
        train_state,
        input_shape=tuple(data.x.shape[1:]),
        preprocessing=preprocessing,
        metadata=metadata,
        overwrite=True,
    )


# ----------------------------------------------------------------------------- commands


def command_demo(args) -> int:
    """The textbook multiclass MLP on digits (:mod:`jaxnet.demo`, as ``examples/digits_mlp.py``)."""
    from jaxnet import demo

    demo.run(args)
    return 0


def command_train(args) -> int:
    run_training(args, checkpoints=True)
    return 0


def benchmarks_directory() -> Path | None:
    """``benchmarks/`` of the source checkout jaxnet runs from, else of the current directory."""
    for root in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (root / "benchmarks").is_dir():
            return root / "benchmarks"
    return None


def benchmark_scripts(directory: Path | None) -> dict[str, Path]:
    """The runnable scripts in ``directory`` (those with a ``__main__`` guard), by name.

    ``bench_fit.py`` answers to ``bench_fit`` and to ``fit``.
    """
    scripts = {}
    for path in sorted(directory.glob("*.py")) if directory else []:
        if "__name__" in path.read_text(errors="replace"):
            scripts[path.stem] = path
            scripts.setdefault(path.stem.removeprefix("bench_"), path)
    return scripts


def builtin_benchmark(epochs: int, repeats: int, batch_size: int) -> dict:
    """Time the fused epoch of the demo MLP on digits: compile time and median seconds per epoch."""
    import statistics

    import jax

    from jaxnet import datasets, recipes
    from jaxnet.train.step import create_train_state, make_epoch

    data = datasets.load_dataset("digits")
    if batch_size > len(data.x):
        from jaxnet.errors import ConfigError

        raise ConfigError(
            f"--batch-size {batch_size} is larger than the {len(data.x)} digits examples", ("cli",)
        )
    x, _ = datasets.standardize(data.x)[:2]
    recipe = recipes.classifier_mlp(10, (100, 100))
    optimizer = optim.get("adam", 1e-3)
    epoch = jax.jit(make_epoch(recipe.model, recipe.loss, optimizer, batch_size, recipe.metrics))
    ts = create_train_state(recipe.model, optimizer, x.shape[1:], jax.random.key(0))
    x, y = jax.device_put((x, data.y))
    start = time.perf_counter()
    ts, logs, _ = epoch(ts, x, y)
    jax.block_until_ready(ts)
    compile_seconds = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(epochs):
            ts, logs, _ = epoch(ts, x, y)
        jax.block_until_ready(ts)
        times.append((time.perf_counter() - start) / epochs)
    per_epoch = statistics.median(times)
    steps = len(x) // batch_size
    return {
        "backend": jax.default_backend(),
        "examples": int(len(x)),
        "batch_size": batch_size,
        "first_epoch_with_compile_s": round(compile_seconds, 4),
        "epoch_s_median": round(per_epoch, 5),
        "steps_per_s": round(steps / per_epoch, 1),
        "examples_per_s": round(steps * batch_size / per_epoch, 1),
    }


def command_bench(args) -> int:
    directory = benchmarks_directory()
    scripts = benchmark_scripts(directory)
    if args.list:
        print("built-in: the digits MLP epoch timing (run `jaxnet bench` without a name)")
        for path in sorted(set(scripts.values())):
            print(f"{path.stem}: {path}")
        return 0
    if args.name:
        if args.name not in scripts:
            where = directory or "benchmarks/ (not found)"
            print(
                f"jaxnet: error: no benchmark {args.name!r} in {where}; have {sorted(scripts)}",
                file=sys.stderr,
            )
            return 2
        rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
        return subprocess.call([sys.executable, str(scripts[args.name]), *rest])
    out = output_folder(args.out) if args.out else None  # before the minutes of timing
    result = builtin_benchmark(args.epochs, args.repeats, args.batch_size)
    width = max(map(len, result))
    print("built-in benchmark: one fused epoch (lax.scan) of the 2x100 ReLU MLP on digits, Adam")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    if out is not None:
        _write_json(out / "bench.json", result)
    return 0


def command_diagnose(args) -> int:
    """Per-layer statistics and findings of one forward/backward pass at initialisation."""
    import jax

    from jaxnet import datasets, diagnostics
    from jaxnet.core import init_model
    from jaxnet.train.data import match_targets

    out = output_folder(args.out) if args.out else None
    data = load_data(args)
    x = datasets.standardize(data.x)[0][: args.batch_size]
    recipe = make_recipe(data, args)
    params, state = init_model(recipe.model, jax.random.key(args.seed), x.shape[1:])
    output_shape = jax.eval_shape(lambda xb: recipe.model.apply(params, state, xb)[0], x).shape[1:]
    y = data.y[: args.batch_size]
    if data.task == "regression":
        y = (y - y.mean()) / (y.std() or 1.0)
    y = match_targets(y, output_shape, "y", recipe.targets)
    batch, key = (x, y), jax.random.key(args.seed + 1)
    stats = diagnostics.stats_at_init(recipe.model, params, state, batch, recipe.loss, key=key)
    # What diagnose_at_init does, reusing the statistics instead of a second pass:
    findings = diagnostics.diagnose(stats, recipe.model, params=params)
    hidden = " x ".join(map(str, args.hidden))
    print(f"{data.name}: {hidden} {args.activation} MLP, init {args.init}, batch of {len(x)}")
    print(diagnostics.format_table(stats))
    print("\n".join(str(f) for f in findings) if findings else "no problems found at init")
    if out is not None:
        report = diagnostics.to_report(stats, findings, model=recipe.model)
        _write_json(out / "diagnose.json", report)
        print(f"wrote diagnose.json to {out}")
    return 0


def command_summary(args) -> int:
    """The table of layers of the MLP that ``train`` would build with the same options."""
    from jaxnet.summarize import summary

    if args.model is not None:
        return command_model_summary(args)
    data = load_data(args)
    print(summary(make_recipe(data, args).model, tuple(data.x.shape[1:])))
    return 0


def command_model_summary(args) -> int:
    """A saved model's table of layers, then what it predicts and the preprocessing it applies."""
    from jaxnet.saving import load_model

    saved = load_model(args.model)
    print(saved.summary())
    record, pre = saved.record, saved.preprocessing
    kind = saved.recipe.info["recipe"] if saved.recipe else "model"
    what = (
        f"{kind} ({saved.task}, outputs {saved.record.get('output_activation')})"
        if saved.task
        else kind
    )
    print(f"model: {what}; input {saved.input_shape} {saved.dtype}")
    if pre.feature_mean is not None or pre.feature_std is not None:
        columns = ", ".join(pre.feature_names[:4]) + (", ..." if len(pre.feature_names) > 4 else "")
        print(f"features: standardised with the training statistics ({columns or 'no names'})")
    if pre.target_std is not None or pre.target_mean is not None:
        print(
            f"target: predictions are output * {_number_text(pre.target_std)} + "
            f"{_number_text(pre.target_mean)}"
        )
    if saved.class_names:
        print(f"classes: {', '.join(saved.class_names)}")
    versions = record.get("versions", {})
    print(
        f"saved {record.get('created')} by jaxnet {versions.get('jaxnet')} (jax "
        f"{versions.get('jax')}); fingerprint {record['fingerprint'][:19]}..."
    )
    test = saved.metadata.get("test")
    if test:
        print("test: " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()))
    return 0


def _number_text(value) -> str:
    import numpy as np

    values = np.ravel(np.asarray(0.0 if value is None else value, np.float32))
    return " ".join(np.format_float_positional(v, unique=True, trim="-") for v in values)


def prediction_table(saved, y, output: str | None) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the CSV ``jaxnet predict`` writes: class labels under the target's
    name; probabilities and logits one column per class (binary: of the positive class)."""
    import numpy as np

    target = saved.metadata.get("target") or "prediction"
    y = np.asarray(y)
    names = saved.class_names
    if output == "classes" and names and y.ndim == 1:
        return [target], [[names[i]] for i in y]
    columns = y.reshape(len(y), -1)
    k = columns.shape[1]
    labels = list(names[-k:]) if len(names) >= k else [str(j) for j in range(k)]
    prefix = {"probabilities": "probability", "logits": "logit"}.get(output)
    if prefix:
        header = [f"{prefix}_{label}" for label in labels]
    else:
        header = [target] if k == 1 else [f"{target}_{label}" for label in labels]
    if columns.dtype.kind in "iu":
        return header, [[str(v) for v in row] for row in columns]
    shortest = functools.partial(np.format_float_positional, unique=True)  # reads back exactly
    return header, [[shortest(v) for v in row] for row in columns]


def command_predict(args) -> int:
    """Predictions of a saved model for the rows of a CSV file, as CSV (stored preprocessing
    applied; columns matched by name)."""
    import csv

    from jaxnet import datasets
    from jaxnet.errors import ConfigError
    from jaxnet.outputs import CLASSIFICATION
    from jaxnet.saving import load_model

    saved = load_model(args.model)
    names = saved.preprocessing.feature_names
    if not names:
        raise ConfigError(
            f"the model in {args.model} records no feature names, so CSV columns cannot be "
            "matched to its inputs (save it with Preprocessing(feature_names=...))",
            ("predict",),
        )
    x = datasets.load_features(args.csv, names)
    output = args.output or ("classes" if saved.task in CLASSIFICATION else None)
    header, rows = prediction_table(saved, saved.predict(x, output), output)
    if args.out is not None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        handle = sys.stdout
        if args.out is not None:
            handle = stack.enter_context(open(args.out, "w", newline="", encoding="utf-8"))
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    if args.out is not None:
        print(f"wrote {len(rows)} rows of {', '.join(header[:3])}{' ...' * (len(header) > 3)} "
              f"to {args.out}")  # fmt: skip
    return 0


def command_export(args) -> int:
    """A saved model as serialized StableHLO (``jax.export``) or ONNX, for serving."""
    from jaxnet.exporting import export
    from jaxnet.onnx_export import export_onnx
    from jaxnet.outputs import check_output
    from jaxnet.saving import load_model

    saved = load_model(args.model)
    suffix = {"stablehlo": ".stablehlo", "onnx": ".onnx"}[args.format]
    model_dir = Path(args.model)
    out = Path(args.out) if args.out else model_dir.parent / (model_dir.name + suffix)
    if args.format == "onnx":
        export_onnx(saved, out, output=args.output)
    else:
        export(saved, out, output=args.output, platforms=tuple(args.platforms))
    output = check_output(args.output, saved.task, "export")
    shape = ", ".join(map(str, saved.input_shape))
    print(f"wrote {out} ({args.format}: (batch, {shape}) {saved.dtype} -> {output})")
    return 0


def command_study(args) -> int:
    """A comparative study (:mod:`jaxnet.studies`): every cell with every seed."""
    from jaxnet.studies.command import run_from_args

    return run_from_args(args)


# ----------------------------------------------------------------------------- argument parsing


def _add_data_options(parser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--csv", type=Path, help="a CSV file with a header line")
    group.add_argument(
        "--dataset", choices=DATASET_NAMES, help="a data set bundled with scikit-learn"
    )
    parser.add_argument("--target", help="with --csv: the column to predict")
    parser.add_argument(
        "--task", default="auto", choices=("auto", "regression", "binary", "multiclass"),
        help="default: inferred from the target (text or <= 20 integer values: classification)",
    )  # fmt: skip


def _add_model_options(parser) -> None:
    parser.add_argument("--hidden", type=count(1), nargs="+", default=[100, 100], metavar="UNITS",
                        help="hidden layer sizes (default: 100 100)")  # fmt: skip
    parser.add_argument("--activation", default="relu", choices=ACTIVATIONS)
    parser.add_argument("--init", default="auto",
                        help="kernel initializer (auto: He for ReLU-like, LeCun for SELU "
                        "and ELU, else Glorot)")  # fmt: skip
    parser.add_argument("--loss", default="mse", choices=("mse", "mae", "huber"),
                        help="regression loss (classification uses cross-entropy)")  # fmt: skip
    parser.add_argument("--seed", type=count(0), default=0)


def _add_training_options(parser, *, epochs: int, out: str) -> None:
    parser.add_argument("--optimizer", default="adam", choices=optim.NAMES)
    parser.add_argument("--lr", type=number(0), default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--momentum", type=number(0, 1, high_open=True), default=0.9,
                        help="for momentum/nesterov")  # fmt: skip
    parser.add_argument("--l2", type=number(0), default=0.0,
                        help="L2 penalty l2 * sum(w^2) on kernels")  # fmt: skip
    parser.add_argument("--dropout", type=number(0, 1, high_open=True), default=0.0,
                        help="drop rate after each hidden layer (SELU: AlphaDropout)")  # fmt: skip
    parser.add_argument("--epochs", type=count(1), default=epochs)
    parser.add_argument("--batch-size", type=count(1), default=32)
    parser.add_argument("--test-fraction", type=number(0, 1, high_open=True), default=0.2)
    parser.add_argument("--validation-split", type=number(0, 1, high_open=True), default=0.1)
    parser.add_argument("--out", default=out, help=f"output folder (default {out})")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def _add_deploy_commands(commands) -> None:
    from jaxnet.outputs import OUTPUTS

    model_help = "a saved model directory (jaxnet train writes OUT/model)"
    predict = commands.add_parser("predict", help="a saved model's predictions for a CSV file")
    predict.add_argument("--model", type=Path, required=True, help=model_help)
    predict.add_argument(
        "--csv", type=Path, required=True, help="new examples: a header and the feature columns"
    )
    predict.add_argument(
        "--output",
        choices=OUTPUTS,
        default=None,
        help="classifiers: classes (default), probabilities or logits; regression: the values",
    )
    predict.add_argument("--out", default=None, help="CSV file to write (default: print it)")
    predict.set_defaults(handler=command_predict)

    export = commands.add_parser("export", help="a saved model as StableHLO or ONNX for serving")
    export.add_argument("--model", type=Path, required=True, help=model_help)
    export.add_argument("--format", choices=("stablehlo", "onnx"), default="stablehlo")
    export.add_argument(
        "--output",
        choices=OUTPUTS,
        default=None,
        help="what it returns (default: probabilities for classifiers, values for regression)",
    )
    export.add_argument(
        "--platforms", nargs="+", default=["cpu", "cuda"], help="stablehlo: platforms to lower for"
    )
    export.add_argument(
        "--out", default=None, help="file to write (default: MODEL.stablehlo or MODEL.onnx)"
    )
    export.set_defaults(handler=command_export)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="jaxnet", description="Classic neural networks as pure JAX functions.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from jaxnet.demo import add_arguments as add_demo_arguments

    demo = commands.add_parser("demo", help="train the textbook MLP on digits; write curves")
    add_demo_arguments(demo)
    demo.set_defaults(handler=command_demo)

    train = commands.add_parser("train", help="train a textbook MLP on a CSV file or data set")
    _add_data_options(train, required=True)
    _add_model_options(train)
    _add_training_options(train, epochs=20, out="out/train")
    train.add_argument("--keep", type=count(1), default=3, help="checkpoints to keep (default 3)")
    train.add_argument("--resume", nargs="?", const=True, default=False, choices=["force"],
                       help="continue from --out/checkpoints (the same run: any other setting is "
                       "an error); --resume force: continue even so")  # fmt: skip
    train.set_defaults(handler=command_train)

    bench = commands.add_parser("bench", help="run benchmarks/NAME.py, or a built-in timing")
    bench.add_argument("name", nargs="?", help="a script in benchmarks/ (without .py)")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the script")
    bench.add_argument("--list", action="store_true", help="list the benchmarks")
    bench.add_argument("--epochs", type=count(1), default=10, help="built-in: epochs per repeat")
    bench.add_argument("--repeats", type=count(1), default=5, help="built-in: repeats (median)")
    bench.add_argument("--batch-size", type=count(1), default=32)
    bench.add_argument("--out", default=None, help="built-in: also write bench.json here")
    bench.set_defaults(handler=command_bench)

    diagnose = commands.add_parser("diagnose", help="diagnostics report of an MLP at init")
    _add_data_options(diagnose, required=False)
    _add_model_options(diagnose)
    diagnose.add_argument("--batch-size", type=count(1), default=256)
    diagnose.add_argument("--out", default=None, help="also write diagnose.json here")
    diagnose.set_defaults(handler=command_diagnose, dataset="digits")

    summary = commands.add_parser(
        "summary", help="layers, shapes and parameters of the MLP, or of a saved model"
    )
    _add_data_options(summary, required=False)
    _add_model_options(summary)
    summary.add_argument("--model", type=Path, default=None, help="a saved model directory")
    summary.set_defaults(handler=command_summary, dataset="digits")

    _add_deploy_commands(commands)

    from jaxnet.studies.builtin import STUDIES
    from jaxnet.studies.command import add_arguments

    study = commands.add_parser("study", help="many-seed comparative study: table, JSON, plots")
    add_arguments(study, sorted(STUDIES))
    study.set_defaults(handler=command_study)
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    from jaxnet.errors import JaxnetError

    try:
        return args.handler(args)
    except (JaxnetError, ImportError, OSError, json.JSONDecodeError) as error:
        print(f"jaxnet: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
