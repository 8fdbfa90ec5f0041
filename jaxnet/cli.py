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
import csv
import functools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxnet import datasets, diagnostics, optim, recipes
from jaxnet.arguments import Parser, count, number, output_folder
from jaxnet.core import init_model
from jaxnet.demo import add_arguments as add_demo_arguments
from jaxnet.demo import run as run_demo
from jaxnet.errors import ConfigError, JaxnetError
from jaxnet.exporting import export
from jaxnet.jsonable import dumps
from jaxnet.onnx_export import export_onnx
from jaxnet.outputs import CLASSIFICATION, OUTPUTS, check_output
from jaxnet.saving import load_model
from jaxnet.signature import is_shape
from jaxnet.studies.builtin import STUDIES
from jaxnet.studies.command import add_arguments as add_study_arguments
from jaxnet.studies.command import run_from_args as run_study_from_args
from jaxnet.summarize import summary
from jaxnet.train.data import match_targets
from jaxnet.train.sources import validation_count
from jaxnet.train.step import create_train_state, make_epoch
from jaxnet.workflow import prepare_data, train_evaluate_save

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "swish", "tanh", "sigmoid")
DATASET_NAMES = ("digits", "breast_cancer", "iris", "wine", "diabetes")


# ----------------------------------------------------------------------------- building blocks


def load_data(args):
    """The :class:`~jaxnet.datasets.Dataset` named by ``--dataset`` or ``--csv/--target``."""
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
    path.write_text(dumps(obj, indent=2) + "\n")


# ----------------------------------------------------------------------------- commands


def command_demo(args) -> int:
    """The textbook multiclass MLP on digits (:mod:`jaxnet.demo`, as ``examples/digits_mlp.py``)."""
    run_demo(args)
    return 0


def command_train(args) -> int:
    """Train the MLP (:mod:`jaxnet.workflow`), print the test metrics and what was written."""
    out = output_folder(args.out)  # a file there is an error now, not after loading the data
    prepared = prepare_data(load_data(args), test_fraction=args.test_fraction, seed=args.seed)
    data, n_train = prepared.data, len(prepared.x_train)
    batch_size = args.batch_size
    held_out = validation_count(n_train, args.validation_split) if args.validation_split else 0
    n_fit = n_train - held_out
    if batch_size > n_fit:  # a small data set: one batch of everything
        print(f"jaxnet: note: --batch-size {batch_size} is larger than the {n_fit} training "
              f"examples; using {n_fit}", file=sys.stderr)  # fmt: skip
        batch_size = n_fit
    recipe = make_recipe(data, args)
    if not args.quiet:
        print(summary(recipe.model, tuple(prepared.x_train.shape[1:])))
    momentum = {"momentum": args.momentum} if args.optimizer in ("momentum", "nesterov") else {}
    config = {k: v for k, v in vars(args).items() if k != "handler"} | {"batch_size": batch_size}
    hidden = "x".join(map(str, args.hidden))
    run = train_evaluate_save(
        prepared,
        recipe,
        optim.get(args.optimizer, args.lr, **momentum),
        out,
        epochs=args.epochs,
        batch_size=batch_size,
        validation_split=args.validation_split,
        seed=args.seed,
        verbose=0 if args.quiet else 1,
        checkpoints=True,
        keep=args.keep,
        resume=args.resume,
        config=config,
        target=args.target,
        title=f"{hidden} {args.activation} MLP, {args.optimizer} lr {args.lr:g}",
    )
    for note in run.notes:
        print(f"jaxnet: note: {note}", file=sys.stderr)
    scores = "  ".join(f"test_{k} {v:.4f}" for k, v in run.test.items())
    print(f"{data.name} ({data.task}, {n_train} train / {len(prepared.x_test)} test): {scores}")
    print(f"wrote {', '.join(run.wrote)} to {out}")
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
    data = datasets.load_dataset("digits")
    if batch_size > len(data.x):
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
    if args.model is not None:
        return command_model_summary(args)
    data = load_data(args)
    print(summary(make_recipe(data, args).model, tuple(data.x.shape[1:])))
    return 0


def command_model_summary(args) -> int:
    """A saved model's table of layers, then what it predicts and the preprocessing it applies."""
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
    values = np.ravel(np.asarray(0.0 if value is None else value, np.float32))
    return " ".join(np.format_float_positional(v, unique=True, trim="-") for v in values)


def prediction_table(saved, y, output: str | None) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the CSV ``jaxnet predict`` writes: class labels under the target's
    name; probabilities and logits one column per class (binary: of the positive class)."""
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
    applied; columns matched by name, or by position in a CSV without a header line)."""
    saved = load_model(args.model)
    if not is_shape(saved.input_shape):
        raise ConfigError(
            f"the model in {args.model} takes several inputs {saved.input_shape}; a CSV file "
            "gives one table (call SavedModel.predict from Python)",
            ("predict",),
        )
    n_columns = int(np.prod(saved.input_shape))
    names = saved.preprocessing.feature_names
    x = datasets.load_features(args.csv, names, n_columns=n_columns)
    x = x.reshape(len(x), *saved.input_shape)
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
    return run_study_from_args(args)


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

    study = commands.add_parser("study", help="many-seed comparative study: table, JSON, plots")
    add_study_arguments(study, sorted(STUDIES))
    study.set_defaults(handler=command_study)
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
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
