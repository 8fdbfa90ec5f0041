"""Learning-rate range tests: many rates trained at once (jaxnet.lr_find) against Smith's sweep.

    python examples/lr_find.py [--out out/]             # digits MLP, Adam: both tests, 2 plots
    python examples/lr_find.py --compare [--out out/]   # digits MLP, wine MLP, digits CNN;
                                                        # Adam and SGD; every suggestion trained

``lr_find`` trains 24 copies from the same weights, one per rate (log-spaced over [1e-5, 10]),
for a short budget, all in one compiled fit_many program, and suggests the stable rate whose loss
fell the most. ``lr_sweep`` is the classic test as PyTorch Lightning runs it, with its defaults:
one run of 100 steps whose rate grows exponentially from 1e-8 to 1, smoothed, stopped at
divergence;
Lightning's current rule suggests the steepest descent per unit of rate, its earlier rule (and
fastai's "steep") per step of the log-spaced sweep. ``--compare`` then trains every suggested
rate, and a grid of 13 rates, for a ~10x longer budget (2 seeds each, one fit_many program per
workload) and prints the test accuracy each suggestion reaches next to the best rate of the grid.
Plots are written under ``--out`` only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, load_wine
from sklearn.model_selection import train_test_split

import jaxnet
from jaxnet import losses, optim
from jaxnet.metrics import accuracy
from jaxnet.train import lr_find, lr_sweep, model_slice

MIN_LR, MAX_LR = 1e-5, 10.0
LOSS = losses.sparse_categorical_cross_entropy


def digits():
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    return train_test_split(x, data.target, test_size=0.25, random_state=0, stratify=data.target)


def wine():
    data = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    mean, std = x_train.mean(0), x_train.std(0)
    return (
        ((x_train - mean) / std).astype(np.float32),
        ((x_test - mean) / std).astype(np.float32),
        y_train,
        y_test,
    )


def mlp(classes, hidden):
    layers = []
    for units in hidden:
        layers += [jaxnet.Dense(units, kernel_init="he_normal"), jaxnet.activations.Relu()]
    return jaxnet.serial(*layers, jaxnet.Dense(classes))


def cnn():
    from jaxnet import layers

    return jaxnet.serial(
        layers.Conv2D(16, 3, padding="SAME", kernel_init="he_normal"),
        jaxnet.activations.Relu(),
        layers.MaxPool(2),
        layers.Conv2D(32, 3, padding="SAME", kernel_init="he_normal"),
        jaxnet.activations.Relu(),
        layers.MaxPool(2),
        layers.Flatten(),
        jaxnet.Dense(10),
    )


def workloads():
    """name -> (model, data, batch size, epochs of the range test, epochs of the long run)."""
    x_train, x_test, y_train, y_test = digits()
    images = (x_train.reshape(-1, 8, 8, 1), x_test.reshape(-1, 8, 8, 1), y_train, y_test)
    return {
        "digits MLP 64-100-100-10": (mlp(10, (100, 100)), digits(), 32, 3, 30),
        "wine MLP 13-32-3": (mlp(3, (32,)), wine(), 16, 15, 150),
        "digits CNN (suite c)": (cnn(), images, 32, 3, 20),
    }


OPTIMIZERS = {"Adam": optim.adam, "SGD": optim.sgd}


def suggestions(model, data, batch, epochs, optimizer_fn):
    """Both tests on the training data; and the seconds each took, compiling included."""
    x_train, _, y_train, _ = data
    start = time.perf_counter()
    found = lr_find(
        model,
        LOSS,
        optimizer_fn,
        x_train,
        y_train,
        min_lr=MIN_LR,
        max_lr=MAX_LR,
        num=24,
        epochs=epochs,
        batch_size=batch,
    )
    middle = time.perf_counter()
    sweep = lr_sweep(model, LOSS, optimizer_fn, x_train, y_train, batch_size=batch)
    return found, sweep, (middle - start, time.perf_counter() - middle)


def long_run(model, data, batch, epochs, optimizer_fn, rates, seeds=(0, 1)):
    """Test accuracy after ``epochs`` at each rate, mean over ``seeds`` (one fit_many program)."""
    x_train, x_test, y_train, y_test = data
    result = jaxnet.fit_many(
        model,
        LOSS,
        optimizer_fn,
        x_train,
        y_train,
        seeds=seeds,
        grid={"learning_rate": list(rates)},
        epochs=epochs,
        batch_size=batch,
        verbose=0,
    )
    scores = []
    for index in range(len(result.configs)):
        ts = model_slice(result.train_state, index)
        predictions = jaxnet.predict(model, ts.params, ts.state, x_test)
        scores.append(float(accuracy(predictions, y_test)))
    return np.asarray(scores).reshape(len(rates), len(seeds)).mean(axis=1)


def compare(out: Path) -> None:
    rows = []
    for name, (model, data, batch, short, long) in workloads().items():
        for opt_name, optimizer_fn in OPTIMIZERS.items():
            start = time.perf_counter()
            found, sweep, seconds = suggestions(model, data, batch, short, optimizer_fn)
            tag = f"{name.split()[0]}_{name.split()[1].lower()}_{opt_name.lower()}"
            found.plot(out / f"lr_find_{tag}.png", title=f"{name}, {opt_name}")
            sweep.plot(out / f"lr_sweep_{tag}.png", title=f"{name}, {opt_name}: sweep")
            picks = [found.suggestion, sweep.suggestion, sweep.suggestion_log]
            grid = np.geomspace(1e-4, 1.0, 13)
            rates = sorted({*grid.tolist(), *(p for p in picks if p is not None)})
            accuracies = dict(
                zip(rates, long_run(model, data, batch, long, optimizer_fn, rates), strict=True)
            )
            best = max(grid, key=lambda r: accuracies[r])
            cells = [f"{p:.2g} ({accuracies[p]:.3f})" if p is not None else "none" for p in picks]
            rows.append([name, opt_name, *cells, f"{best:.2g} ({accuracies[best]:.3f})"])
            print(
                f"{name}, {opt_name}: lr_find {seconds[0]:.1f}s, sweep {seconds[1]:.1f}s, "
                f"all {time.perf_counter() - start:.0f}s",
                flush=True,
            )
    print(
        "\n| workload | optimizer | lr_find (parallel) | sweep, d/d lr (Lightning 2.x) | "
        "sweep, d/d log lr (Lightning 1.x, fastai) | best of 13 rates |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nrate (mean test accuracy of 2 seeds after the long budget)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="folder for the plots (needs matplotlib)")
    parser.add_argument("--compare", action="store_true", help="all workloads, long runs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.compare:
        compare(out)
        return
    model, data, batch, short, _ = workloads()["digits MLP 64-100-100-10"]
    found, sweep, seconds = suggestions(model, data, batch, short, optim.adam)
    print(
        f"digits MLP, Adam; lr_find {seconds[0]:.1f}s, sweep {seconds[1]:.1f}s (compiling included)"
    )
    print(
        f"lr_find, 24 rates from {MIN_LR:g} to {MAX_LR:g} at once, {short} epochs: suggestion "
        f"{found.suggestion:.3g}"
    )
    print(
        "  final loss per rate: "
        + ", ".join(
            f"{r:.1e}: {loss:.3f}" for r, loss in zip(found.rates, found.losses[-1], strict=True)
        )
    )
    print(
        f"sweep from 1e-8 to 1, 100 steps, kept {len(sweep.rates)}: Lightning 2.x (d/d lr) "
        f"suggests "
        f"{sweep.suggestion:.3g}, Lightning 1.x (d/d log lr) {sweep.suggestion_log:.3g}"
    )
    found.plot(out / "lr_find.png", title="digits MLP, Adam: 24 rates trained at once")
    sweep.plot(out / "lr_sweep.png", title="digits MLP, Adam: one exponential sweep")
    print(f"plots: {out / 'lr_find.png'}, {out / 'lr_sweep.png'}")


if __name__ == "__main__":
    main()
