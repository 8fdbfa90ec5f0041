"""The main demo: the textbook multiclass MLP (2 x 100 ReLU, He init, softmax, Adam) on digits.

    python examples/digits_mlp.py [--epochs 30] [--out out/demo]      # the same program as
    jaxnet demo [--epochs 30] [--out out/demo]

Uses scikit-learn's bundled 8x8 digits (1797 images, no download; ``pip install
"jaxnet-classic[examples]"``): prints per-epoch progress, the test accuracy and a per-layer
gradient-health report, and writes ``config.json``, ``history.json``, ``metrics.json``,
``curves.png``, gradient-flow plots (with matplotlib) and the trained model (``model/``, which
``jaxnet.load_model`` reloads and ``jaxnet predict --model`` applies to raw 0-16 pixel values: a
CSV of 64 columns, without a header line or headed ``pixel_0_0`` ... ``pixel_7_7``) to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import jaxnet
from jaxnet import optim
from jaxnet.arguments import Parser, count, number, output_folder
from jaxnet.compilation import enable_compilation_cache
from jaxnet.diagnostics import GradientMonitor, save_plots
from jaxnet.jsonable import dumps
from jaxnet.plots import plot_history

HIDDEN = (100, 100)
# The input columns, as scikit-learn names them (digits.feature_names): a CSV with this header,
# or 64 columns and no header, is what ``jaxnet predict --model OUT/model`` takes.
PIXELS = tuple(f"pixel_{row}_{column}" for row in range(8) for column in range(8))


def load(seed: int = 0, test_fraction: float = 0.2):
    """Digits as float32 pixels in [0, 1], stratified: ``x_train, x_test, y_train, y_test``."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            'the demo uses scikit-learn\'s bundled digits: pip install "jaxnet-classic[examples]"'
        ) from error
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel intensities 0..16 -> [0, 1]
    return train_test_split(
        x, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=count(1), default=30)
    parser.add_argument("--batch-size", type=count(1), default=32)
    parser.add_argument("--lr", type=number(0), default=1e-3, help="Adam's learning rate")
    parser.add_argument("--seed", type=count(0), default=0)
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")


def run(args) -> dict:
    """Train, evaluate, report; write the files under ``args.out``; return the metrics."""
    out = output_folder(args.out)
    enable_compilation_cache()  # a second run skips compiling
    x_train, x_test, y_train, y_test = load(args.seed)
    recipe = jaxnet.classifier_mlp(10, hidden=HIDDEN, activation="relu")  # He init for ReLU
    print(f"digits: {len(x_train)} train / {len(x_test)} test images of 8x8 pixels, 10 classes")
    print(f"model: 64-100-100-10 ReLU MLP, He init, Adam(lr={args.lr}), batch {args.batch_size}\n")

    monitor = GradientMonitor(recipe.model)  # per-layer statistics inside the epoch, every 50 steps
    start = time.perf_counter()
    ts, history = jaxnet.fit(
        recipe.model, recipe.loss, optim.adam(args.lr), x_train, y_train, epochs=args.epochs,
        batch_size=args.batch_size, metrics=recipe.metrics, validation_split=0.1, seed=args.seed,
        monitor=monitor, verbose=0 if args.quiet else 1,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    test = jaxnet.evaluate(
        recipe.model, ts.params, ts.state, x_test, y_test, recipe.loss, recipe.metrics
    )
    print(f"\ntest accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}  "
          f"({seconds:.1f}s for {history.epochs} epochs, {history.compile_seconds:.1f}s of it "
          "compiling)")  # fmt: skip
    print("\ngradient health per layer (last probed step):")
    print(monitor.table())
    findings = monitor.diagnose()
    print("\n".join(str(f) for f in findings) if findings else "verdict: healthy — no vanishing "
          "or exploding gradients, dead ReLUs or saturated units found")  # fmt: skip

    config = {"hidden": list(HIDDEN), "activation": "relu", "init": "he_normal",
              "optimizer": "adam", "lr": args.lr, "batch_size": args.batch_size,
              "epochs": args.epochs, "seed": args.seed}  # fmt: skip
    results = {"data": "digits", "n_train": len(x_train), "n_test": len(x_test),
               "epochs_run": history.epochs, "seconds": round(seconds, 2),
               "test": test}  # fmt: skip
    for name, value in (("config", config), ("history", history.to_dict()), ("metrics", results)):
        (out / f"{name}.json").write_text(dumps(value, indent=2) + "\n")
    pixels = jaxnet.Preprocessing(
        feature_std=16.0, class_names=tuple(map(str, range(10))), feature_names=PIXELS
    )
    jaxnet.save_model(out / "model", recipe, ts, input_shape=(64,), preprocessing=pixels,
                      metadata={"test": test}, overwrite=True)  # fmt: skip
    wrote = ["config.json", "history.json", "metrics.json", "model/"]
    try:
        plot_history(history, out / "curves.png", title=f"digits MLP: test accuracy "
                     f"{test['accuracy']:.4f}")  # fmt: skip
        wrote += [
            "curves.png",
            *(Path(p).name for p in save_plots(monitor.history, out, "digits_")),
        ]
    except ImportError:
        print('(pip install "jaxnet-classic[examples]" for the plots)')
    print(f"test_accuracy {test['accuracy']:.4f}; wrote {', '.join(wrote)} to {out}")
    return results


def main(argv=None) -> dict:
    parser = Parser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
