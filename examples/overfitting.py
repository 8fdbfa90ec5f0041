"""Overfitting and its remedies: a wide MLP on 300 handwritten digits.

A 2 x 256 ReLU network has 85k parameters and only 300 training images (8x8 digits from
scikit-learn), 20% of them with a random label (as real labels are sometimes wrong); it memorises
the training set, wrong labels included, while its validation loss turns back up. The same network
is trained again with dropout, an L2 penalty, batch normalization, early stopping, and dropout +
L2 + early stopping together. Every variant sees the same data, initial seed and optimizer (Adam,
1e-3, batches of 32).

    python examples/overfitting.py [--epochs 100] [--label-noise 0.2] [--out out/]

Prints a Markdown table and writes ``overfitting.png`` (train vs validation loss per variant) to
``--out`` (``--out docs/images`` refreshes the docs' figure).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from sklearn.datasets import load_digits

from jaxnet import optim
from jaxnet.recipes import classifier_mlp
from jaxnet.train.early_stopping import EarlyStopping
from jaxnet.train.evaluate import evaluate
from jaxnet.train.fit import fit

HIDDEN = (256, 256)
N_TRAIN, N_VAL = 300, 300
DEFAULT_LABEL_NOISE = 0.2  # fraction of training labels replaced by random classes

# name -> (recipe options, early-stopping patience or None)
VARIANTS = {
    "baseline": ({}, None),
    "dropout 0.5": ({"dropout": 0.5}, None),
    "L2 1e-2": ({"l2": 1e-2}, None),
    "batch norm": ({"batch_norm": True}, None),
    "early stopping": ({}, 10),
    "dropout + L2 + early stop": ({"dropout": 0.5, "l2": 1e-2}, 10),
}


def load_data(label_noise: float, seed: int = 0):
    """Train/validation/test splits; ``label_noise`` of the *training* labels are replaced by random
    classes (validation and test labels stay clean)."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    train, val, test = np.split(rng.permutation(len(x)), [N_TRAIN, N_TRAIN + N_VAL])
    y_train = y[train].copy()
    noisy = rng.random(N_TRAIN) < label_noise
    y_train[noisy] = rng.integers(0, 10, noisy.sum())
    return (x[train], y_train), (x[val], y[val]), (x[test], y[test])


def run_variant(options, patience, data, epochs: int):
    (x, y), validation, (x_test, y_test) = data
    recipe = classifier_mlp(10, hidden=HIDDEN, **options)
    callbacks = []
    if patience is not None:
        callbacks.append(EarlyStopping("val_loss", patience=patience, restore_best=True))
    ts, history = fit(
        recipe.model,
        recipe.loss,
        optim.adam(1e-3),
        x,
        y,
        epochs=epochs,
        batch_size=32,
        seed=0,
        metrics=recipe.metrics,
        validation_data=validation,
        penalty=recipe.penalty,
        callbacks=callbacks,
        verbose=0,
    )
    test = evaluate(recipe.model, ts.params, ts.state, x_test, y_test, recipe.loss, recipe.metrics)
    best_epoch = callbacks[0].best_epoch if callbacks else None
    return history, test["accuracy"], best_epoch


def plot(results, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(11, 6), sharex=True, sharey=True)
    for ax, (name, result) in zip(axes.flat, results.items(), strict=True):
        history, test_accuracy, best_epoch = result
        epochs = np.arange(1, history.epochs + 1)
        ax.plot(epochs, history["loss"], label="train loss", color="tab:blue")
        ax.plot(epochs, history["val_loss"], label="validation loss", color="tab:orange")
        if best_epoch is not None:
            ax.axvline(best_epoch + 1, color="gray", linestyle=":", label="restored epoch")
        ax.set_yscale("log")
        best_val = max(history["val_accuracy"])
        ax.set_title(f"{name}\nbest val acc {best_val:.3f}, test acc {test_accuracy:.3f}", size=9)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("cross-entropy")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"MLP {HIDDEN} on {N_TRAIN} digits: training vs validation loss", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--label-noise", type=float, default=DEFAULT_LABEL_NOISE)
    parser.add_argument("--out", default="out")
    args = parser.parse_args()
    data = load_data(args.label_noise)

    start = time.perf_counter()
    results = {name: run_variant(*spec, data, args.epochs) for name, spec in VARIANTS.items()}
    elapsed = time.perf_counter() - start

    print("| variant | best val acc | final val acc | test acc | epochs run |")
    print("|---|---|---|---|---|")
    for name, (history, test_accuracy, best_epoch) in results.items():
        val = history["val_accuracy"]
        ran = f"{history.epochs}" + (f" (best {best_epoch + 1})" if best_epoch is not None else "")
        print(f"| {name} | {max(val):.3f} | {val[-1]:.3f} | {test_accuracy:.3f} | {ran} |")
    n_test = len(data[2][0])
    print(f"\n{N_TRAIN} train / {N_VAL} validation / {n_test} test images; {elapsed:.0f} s")

    os.makedirs(args.out, exist_ok=True)
    plot(results, os.path.join(args.out, "overfitting.png"))
    print(f"wrote {os.path.join(args.out, 'overfitting.png')}")


if __name__ == "__main__":
    main()
