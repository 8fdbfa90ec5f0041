"""A small CNN (Conv2D + MaxPool) on scikit-learn's bundled 8x8 digits.

    python examples/cnn_digits.py [--epochs 40]

Prints the test accuracy of the CNN next to a dense MLP with about as many parameters trained the
same way (target: CNN test accuracy >= 0.98).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from jaxnet import losses, metrics, optim
from jaxnet.core import count_params, serial
from jaxnet.layers import Conv2D, Dense, Flatten, MaxPool, RandomShift
from jaxnet.recipes import classifier_mlp
from jaxnet.train import evaluate, fit


def cnn():
    conv = dict(padding="SAME", kernel_init="he_normal")
    return serial(
        RandomShift(1),                               # +-1 px augmentation, training only
        Conv2D(32, 3, **conv), jax.nn.relu,
        Conv2D(32, 3, **conv), jax.nn.relu,
        MaxPool(2),                                   # 8x8 -> 4x4
        Conv2D(64, 3, **conv), jax.nn.relu,
        MaxPool(2),                                   # 4x4 -> 2x2
        Flatten(),
        Dense(64, kernel_init="he_normal"), jax.nn.relu,
        Dense(10),
        name="cnn",
    )  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out")
    args = parser.parse_args(argv)

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # (1797, 8, 8, 1) in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=args.seed, stratify=digits.target
    )
    loss, scores = losses.sparse_categorical_cross_entropy, [metrics.accuracy]
    print(f"digits: {len(x_train)} train / {len(x_test)} test images 8x8x1, 10 classes")

    start = time.perf_counter()
    model = cnn()
    ts, _ = fit(
        model, loss, optim.adam(1e-3), x_train, y_train,
        epochs=args.epochs, batch_size=32, metrics=scores, seed=args.seed, verbose=0,
    )  # fmt: skip
    params, state = ts.params, ts.state
    cnn_accuracy = evaluate(model, params, state, x_test, y_test, loss, scores)["accuracy"]
    seconds = time.perf_counter() - start
    print(
        f"CNN (conv32-conv32-pool-conv64-pool-dense64, +-1 px shifts)  params "
        f"{count_params(params):6d}  test accuracy {cnn_accuracy:.4f}  ({seconds:.1f}s)"
    )

    start = time.perf_counter()
    mlp = classifier_mlp(10, hidden=(256, 128)).model
    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    ts, _ = fit(
        mlp, loss, optim.adam(1e-3), flat_train, y_train,
        epochs=args.epochs, batch_size=32, metrics=scores, seed=args.seed, verbose=0,
    )  # fmt: skip
    mlp_accuracy = evaluate(mlp, ts.params, ts.state, flat_test, y_test, loss, scores)["accuracy"]
    seconds = time.perf_counter() - start
    print(
        f"MLP 64-256-128-10 baseline (no augmentation)             params "
        f"{count_params(ts.params):6d}  test accuracy {mlp_accuracy:.4f}  ({seconds:.1f}s)"
    )
    verdict = "meets" if cnn_accuracy >= 0.98 else "MISSES"
    print(f"\nCNN test accuracy {cnn_accuracy:.4f} {verdict} the 0.98 target")


if __name__ == "__main__":
    main()
