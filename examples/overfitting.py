"""Overfitting and its remedies: a wide MLP on 300 handwritten digits.

A 2 x 512 ReLU network has ~300k parameters and only 300 training images (8x8 digits from
scikit-learn), so it memorises the training set within a few dozen epochs while its validation
loss turns back up. The same network is trained again with dropout, an L2 penalty, batch
normalization, early stopping, and dropout + L2 + early stopping together. Every variant sees the
same data, initial seed and optimizer (Adam, 1e-3, batches of 32).

    python examples/overfitting.py [--epochs 150] [--out out/]

Prints a Markdown table and writes ``overfitting.png`` (train vs validation loss per variant) to
``--out`` and to ``docs/images/``.
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

HIDDEN = (512, 512)
N_TRAIN, N_VAL = 300, 300

# name -> (recipe options, early-stopping patience or None)
VARIANTS = {
    "baseline": ({}, None),
    "dropout 0.5": ({"dropout": 0.5}, None),
    "L2 1e-3": ({"l2": 1e-3}, None),
    "batch norm": ({"batch_norm": True}, None),
    "early stopping": ({}, 10),
    "dropout + L2 + early stop": ({"dropout": 0.5, "l2": 1e-3}, 10),
}


def load_data(seed: int = 0):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    train, val, test = np.split(order, [N_TRAIN, N_TRAIN + N_VAL])
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])


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
    for ax, (name, (history, test_accuracy, best_epoch)) in zip(axes.flat, results.items()):
        epochs = np.arange(1, history.epochs + 1)
        ax.plot(epochs, history["loss"], label="train loss", color="tab:blue")
        ax.plot(epochs, history["val_loss"], label="validation loss", color="tab:orange")
        if best_epoch is not None:
            ax.axvline(best_epoch + 1, color="gray", linestyle=":", label="restored epoch")
        ax.set_yscale("log")
        ax.set_title(f"{name}\nval acc {max(history['val_accuracy']):.3f}, test acc {test_accuracy:.3f}", fontsize=9)
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
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--out", default="out")
    args = parser.parse_args()
    data = load_data()

    start = time.perf_counter()
    results = {name: run_variant(*spec, data, args.epochs) for name, spec in VARIANTS.items()}
    elapsed = time.perf_counter() - start

    print("| variant | best val acc | final val acc | test acc | epochs run |")
    print("|---|---|---|---|---|")
    for name, (history, test_accuracy, best_epoch) in results.items():
        val = history["val_accuracy"]
        ran = f"{history.epochs}" + (f" (best {best_epoch + 1})" if best_epoch is not None else "")
        print(f"| {name} | {max(val):.3f} | {val[-1]:.3f} | {test_accuracy:.3f} | {ran} |")
    print(f"\n{N_TRAIN} train / {N_VAL} validation / {len(data[2][0])} test images; {elapsed:.0f} s")

    os.makedirs(args.out, exist_ok=True)
    plot(results, os.path.join(args.out, "overfitting.png"))
    docs_images = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "images")
    os.makedirs(docs_images, exist_ok=True)
    plot(results, os.path.join(docs_images, "overfitting.png"))
    print(f"wrote {os.path.join(args.out, 'overfitting.png')} and docs/images/overfitting.png")


if __name__ == "__main__":
    main()
