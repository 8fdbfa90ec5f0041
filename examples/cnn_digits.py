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
from jaxnet.layers import Conv2D, Dense, Flatten, MaxPool
from jaxnet.recipes import classifier_mlp
from jaxnet.train import create_train_state, evaluate, fit, make_train_step


def cnn():
    conv = dict(padding="SAME", kernel_init="he_normal")
    return serial(
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


def shift(images, rng, max_shift=1):
    """Each image moved by up to ``max_shift`` pixels in x and y (zeros enter at the edges)."""
    out = np.zeros_like(images)
    dy, dx = rng.integers(-max_shift, max_shift + 1, size=(2, len(images)))
    for i, (a, b) in enumerate(zip(dy, dx, strict=True)):
        out[i, max(a, 0) : 8 + min(a, 0), max(b, 0) : 8 + min(b, 0)] = images[
            i, max(-a, 0) : 8 + min(-a, 0), max(-b, 0) : 8 + min(-b, 0)
        ]
    return out


def train_per_step(model, x, y, epochs, batch_size, seed, augment):
    """A host loop over jitted steps (see the note in docs/architectures.md: on XLA:CPU a
    convolution inside fit's fused-epoch ``lax.scan`` runs ~20x slower, jax issue 12868)."""
    optimizer = optim.adam(1e-3)
    ts = create_train_state(model, optimizer, x.shape[1:], jax.random.key(seed))
    step = make_train_step(model, losses.sparse_categorical_cross_entropy, optimizer)
    params, state, opt_state = ts.params, ts.state, ts.opt_state
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        x_epoch = shift(x, rng) if augment else x
        order = rng.permutation(len(x))
        for i in range(len(x) // batch_size):
            index = order[i * batch_size : (i + 1) * batch_size]
            key = jax.random.fold_in(ts.key, epoch * 10_000 + i)
            params, state, opt_state, _ = step(
                params, state, opt_state, (x_epoch[index], y[index]), key
            )
    return params, state


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
    params, state = train_per_step(model, x_train, y_train, args.epochs, 32, args.seed, True)
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
