"""The ``jaxnet`` command line: ``demo``, ``train``, ``bench`` and ``diagnose``.

::

    jaxnet demo --out out/demo                        # the textbook MLP on digits, with curves
    jaxnet train --csv houses.csv --target price --hidden 50 50 --epochs 100 --out out/houses
    jaxnet train --dataset wine --optimizer momentum --lr 0.01 --out out/wine [--resume]
    jaxnet bench [--list | NAME [ARGS...]]            # benchmarks/NAME.py, or a built-in timing
    jaxnet diagnose --dataset digits --hidden 100 100 # gradient/activation report at init
    jaxnet summary --dataset digits --hidden 100 100  # the model's layers, shapes and params

Also ``python -m jaxnet ...``. Errors in the input (a bad CSV, an unknown option value) print one
line starting with ``jaxnet: error:`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from jaxnet import optim

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "swish", "tanh", "sigmoid")
DATASET_NAMES = ("digits", "breast_cancer", "iris", "wine", "diabetes")


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
    from jaxnet.train.fit import fit

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(args)
    (x_train, y_train), (x_test, y_test) = datasets.train_test_split(
        data.x, data.y, args.test_fraction, seed=args.seed
    )
    x_train, x_test, _ = datasets.standardize(x_train, x_test)
    target_scale = (0.0, 1.0)
    if data.task == "regression":  # scale the target too; metrics are reported in its units
        target_scale = (float(y_train.mean()), float(y_train.std()) or 1.0)
        y_train = (y_train - target_scale[0]) / target_scale[1]
    recipe = make_recipe(data, args)
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
        batch_size=min(args.batch_size, len(x_train)),
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
    wrote = ["config.json", "history.json", "metrics.json"]
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


# ----------------------------------------------------------------------------- commands


def command_demo(args) -> int:
    """The textbook multiclass MLP (2 x 100 ReLU, He init, Adam) on the digits data set."""
    args.dataset, args.csv, args.target, args.task = "digits", None, None, "multiclass"
    args.hidden, args.activation, args.init, args.optimizer = (
        [100, 100],
        "relu",
        "he_normal",
        "adam",
    )
    args.momentum, args.l2, args.loss, args.dropout = 0.9, 0.0, "mse", 0.0
    run_training(args, checkpoints=False)
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
    result = builtin_benchmark(args.epochs, args.repeats, args.batch_size)
    width = max(map(len, result))
    print("built-in benchmark: one fused epoch (lax.scan) of the 2x100 ReLU MLP on digits, Adam")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        _write_json(Path(args.out) / "bench.json", result)
    return 0


def command_diagnose(args) -> int:
    """Per-layer statistics and findings of one forward/backward pass at initialisation."""
    import jax

    from jaxnet import datasets, diagnostics
    from jaxnet.core import init_model
    from jaxnet.train.data import match_targets

    data = load_data(args)
    x = datasets.standardize(data.x)[0][: args.batch_size]
    recipe = make_recipe(data, args)
    params, state = init_model(recipe.model, jax.random.key(args.seed), x.shape[1:])
    output_shape = jax.eval_shape(lambda xb: recipe.model.apply(params, state, xb)[0], x).shape[1:]
    y = data.y[: args.batch_size]
    if data.task == "regression":
        y = (y - y.mean()) / (y.std() or 1.0)
    y = match_targets(y, output_shape)
    batch, key = (x, y), jax.random.key(args.seed + 1)
    stats = diagnostics.stats_at_init(recipe.model, params, state, batch, recipe.loss, key=key)
    # What diagnose_at_init does, reusing the statistics instead of a second pass:
    findings = diagnostics.diagnose(stats, recipe.model, params=params)
    hidden = " x ".join(map(str, args.hidden))
    print(f"{data.name}: {hidden} {args.activation} MLP, init {args.init}, batch of {len(x)}")
    print(diagnostics.format_table(stats))
    print("\n".join(str(f) for f in findings) if findings else "no problems found at init")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report = diagnostics.to_report(stats, findings, model=recipe.model)
        _write_json(out / "diagnose.json", report)
        print(f"wrote diagnose.json to {out}")
    return 0


def command_summary(args) -> int:
    """The table of layers of the MLP that ``train`` would build with the same options."""
    from jaxnet.summarize import summary

    data = load_data(args)
    print(summary(make_recipe(data, args).model, tuple(data.x.shape[1:])))
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
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100], metavar="UNITS",
                        help="hidden layer sizes (default: 100 100)")  # fmt: skip
    parser.add_argument("--activation", default="relu", choices=ACTIVATIONS)
    parser.add_argument("--init", default="auto",
                        help="kernel initializer (auto: He for ReLU-like, LeCun for SELU "
                        "and ELU, else Glorot)")  # fmt: skip
    parser.add_argument("--loss", default="mse", choices=("mse", "mae", "huber"),
                        help="regression loss (classification uses cross-entropy)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)


def _add_training_options(parser, *, epochs: int, out: str) -> None:
    parser.add_argument("--optimizer", default="adam", choices=optim.NAMES)
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--momentum", type=float, default=0.9, help="for momentum/nesterov")
    parser.add_argument("--l2", type=float, default=0.0, help="L2 penalty l2 * sum(w^2) on kernels")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="drop rate after each hidden layer (SELU: AlphaDropout)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--out", default=out, help=f"output folder (default {out})")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxnet", description="Classic neural networks as pure JAX functions."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train the textbook MLP on digits; write curves")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--batch-size", type=int, default=32)
    demo.add_argument("--lr", type=float, default=1e-3)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--test-fraction", type=float, default=0.2)
    demo.add_argument("--validation-split", type=float, default=0.1)
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(handler=command_demo)

    train = commands.add_parser("train", help="train a textbook MLP on a CSV file or data set")
    _add_data_options(train, required=True)
    _add_model_options(train)
    _add_training_options(train, epochs=20, out="out/train")
    train.add_argument("--keep", type=int, default=3, help="checkpoints to keep (default 3)")
    train.add_argument("--resume", nargs="?", const=True, default=False, choices=["force"],
                       help="continue from --out/checkpoints (the same run: any other setting is "
                       "an error); --resume force: continue even so")  # fmt: skip
    train.set_defaults(handler=command_train)

    bench = commands.add_parser("bench", help="run benchmarks/NAME.py, or a built-in timing")
    bench.add_argument("name", nargs="?", help="a script in benchmarks/ (without .py)")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the script")
    bench.add_argument("--list", action="store_true", help="list the benchmarks")
    bench.add_argument("--epochs", type=int, default=10, help="built-in: epochs per repeat")
    bench.add_argument("--repeats", type=int, default=5, help="built-in: repeats (median)")
    bench.add_argument("--batch-size", type=int, default=32)
    bench.add_argument("--out", default=None, help="built-in: also write bench.json here")
    bench.set_defaults(handler=command_bench)

    diagnose = commands.add_parser("diagnose", help="diagnostics report of an MLP at init")
    _add_data_options(diagnose, required=False)
    _add_model_options(diagnose)
    diagnose.add_argument("--batch-size", type=int, default=256)
    diagnose.add_argument("--out", default=None, help="also write diagnose.json here")
    diagnose.set_defaults(handler=command_diagnose, dataset="digits")

    summary = commands.add_parser("summary", help="layers, shapes and parameters of the MLP")
    _add_data_options(summary, required=False)
    _add_model_options(summary)
    summary.set_defaults(handler=command_summary, dataset="digits")

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
    except (JaxnetError, ImportError, FileNotFoundError, json.JSONDecodeError) as error:
        print(f"jaxnet: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
