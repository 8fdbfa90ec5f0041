"""A CNN trained on Fashion-MNIST straight from memory-mapped files, under a memory budget.

    python examples/fashion_mnist_cnn.py --out out/fashion           # downloads 31 MB once
    python examples/fashion_mnist_cnn.py --out out/fashion --synthetic --limit 6000   # offline

``jaxnet.datasets.load("fashion_mnist")`` stores the images once as uint8 ``.npy`` files and opens
them memory-mapped; ``fit`` reads them in chunks of ``steps_per_execution`` batches (chosen here
from ``--budget-mb``) while the previous chunk trains, so the 188 MB of float32 training data is
never in memory at once. ``Rescale(1 / 255)`` turns the stored bytes into floats inside the model.
Prints the chunking, each epoch, the test accuracy and the process's peak memory; writes
``history.json`` under ``--out``. ``--synthetic`` writes random images of the same shape (no
download; the accuracy is then chance level — for checking the pipeline and its speed).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import optax

import jaxnet
from jaxnet import datasets, losses, metrics


def synthetic(folder: Path, n_train: int, n_test: int):
    """Random uint8 images and labels of Fashion-MNIST's shape, memory-mapped from ``folder``."""
    rng = np.random.default_rng(0)
    splits = []
    for name, n in (("train", n_train), ("test", n_test)):
        np.save(folder / f"{name}_x.npy", rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8))
        np.save(folder / f"{name}_y.npy", rng.integers(0, 10, n).astype(np.int32))
        splits.append(tuple(np.load(folder / f"{name}_{a}.npy", mmap_mode="r") for a in "xy"))
    return splits


def model():
    return jaxnet.serial(
        jaxnet.Rescale(1 / 255),
        jaxnet.Conv2D(32, 3, padding="SAME"),
        jaxnet.activations.Relu(),
        jaxnet.MaxPool(2),
        jaxnet.Conv2D(64, 3, padding="SAME"),
        jaxnet.activations.Relu(),
        jaxnet.MaxPool(2),
        jaxnet.Flatten(),
        jaxnet.Dense(128),
        jaxnet.activations.Relu(),
        jaxnet.Dense(10),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/fashion_mnist_cnn")
    parser.add_argument("--data-dir", default=None, help="default: $JAXNET_DATA_DIR or ~/.cache")
    parser.add_argument("--synthetic", action="store_true", help="random images, no download")
    parser.add_argument("--limit", type=int, default=None, help="use the first N training images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--budget-mb", type=float, default=16, help="float32 data per chunk")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.synthetic:
        (x, y), (x_test, y_test) = synthetic(out, args.limit or 60_000, 10_000)
    else:
        train, test = datasets.load("fashion_mnist", data_dir=args.data_dir)
        (x, y), (x_test, y_test) = (train.x, train.y), (test.x, test.y)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]  # still memory-mapped views
    batch_bytes = args.batch_size * 28 * 28 * 4  # float32 after conversion
    steps = max(1, int(args.budget_mb * 2**20) // batch_bytes)
    print(f"training data: {type(x).__name__} {x.shape} {x.dtype} ({x.nbytes / 2**20:.0f} MB "
          f"on disk, {len(x) * 28 * 28 * 4 / 2**20:.0f} MB as float32); chunks of {steps} "
          f"batches = {steps * batch_bytes / 2**20:.1f} MB")  # fmt: skip

    start = time.perf_counter()
    ts, history = jaxnet.fit(
        model(),
        losses.sparse_categorical_cross_entropy,
        optax.adam(1e-3),
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        metrics=[metrics.accuracy],
        validation_split=0.1,
        steps_per_execution=steps,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    test = jaxnet.evaluate(
        model(), ts.params, ts.state, x_test, y_test,
        losses.sparse_categorical_cross_entropy, [metrics.accuracy],
    )  # fmt: skip
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}  "
          f"({seconds:.1f} s, peak memory of the process {peak_mb:.0f} MB)")  # fmt: skip
    (out / "history.json").write_text(json.dumps(history.to_dict(), indent=1))
    print(f"wrote history.json to {out}")


if __name__ == "__main__":
    main()
