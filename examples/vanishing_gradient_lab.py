"""Vanishing-gradient lab: the same deep MLP with four activation/initialisation choices.

Eight hidden layers of 64 units on the digits data set, trained with SGD + momentum:

- sigmoid + glorot_uniform   (the textbook's vanishing-gradient case)
- relu + he_normal
- selu + lecun_normal
- relu + he_normal + BatchNorm (a residual network instead when BatchNorm is not available)

For each it prints the findings of ``diagnose_at_init`` and of the ``GradientMonitor`` during
training, a side-by-side table of per-layer gradient norms, and the test accuracies; it saves
gradient norm vs depth for all four in one figure (``gradient_flow.png``) and each model's heat-map
under ``--out`` (``--out docs/images`` refreshes the docs' figure).

    python examples/vanishing_gradient_lab.py [--epochs 10] [--out out/]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
import optax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import jaxnet
from jaxnet import losses, metrics
from jaxnet.diagnostics import GradientMonitor, diagnose_at_init, plot_gradient_flow, plot_heatmap
from jaxnet.diagnostics.report import profile_by_epoch
from jaxnet.diagnostics.verdicts import as_history

DEPTH, WIDTH = 8, 64


def mlp(activation, kernel_init, batch_norm=False):
    layers = []
    for _ in range(DEPTH):
        layers.append(jaxnet.Dense(WIDTH, kernel_init=kernel_init))
        if batch_norm:
            layers.append(BatchNorm())
        layers.append(jaxnet.Activation(activation))
    return jaxnet.serial(*layers, jaxnet.Dense(10))


def residual_mlp():
    """He-initialised ReLU blocks ``x + Dense(relu(Dense(x)))`` (used without BatchNorm)."""

    def block():
        inner = jaxnet.serial(
            jaxnet.Dense(WIDTH, kernel_init="he_normal"),
            jaxnet.activations.Relu(),
            jaxnet.Dense(WIDTH),
        )

        def apply(params, state, x, *, key=None, train=False):
            y, state = inner.apply(params, state, x, key=key, train=train)
            return x + y, state

        return jaxnet.Layer(inner.init, apply, "residual", {"residual": True})

    layers = [jaxnet.Dense(WIDTH, kernel_init="he_normal"), jaxnet.activations.Relu()]
    return jaxnet.serial(*layers, *[block() for _ in range(DEPTH // 2)], jaxnet.Dense(10))


try:
    from jaxnet.layers.normalization import BatchNorm
except ImportError:  # pragma: no cover - BatchNorm arrives with another change
    BatchNorm = None

VARIANTS = {
    "sigmoid + glorot": lambda: mlp("sigmoid", "glorot_uniform"),
    "relu + he": lambda: mlp("relu", "he_normal"),
    "selu + lecun": lambda: mlp("selu", "lecun_normal"),
}
if BatchNorm is not None:
    VARIANTS["relu + he + BatchNorm"] = lambda: mlp("relu", "he_normal", batch_norm=True)
else:
    VARIANTS["relu + he + residual"] = residual_mlp


def run(name, model, data, epochs, out):
    x_train, x_test, y_train, y_test = data
    loss = losses.sparse_categorical_cross_entropy
    params, state = jaxnet.init_model(model, jax.random.key(0), (64,))
    at_init = diagnose_at_init(model, params, state, (x_train[:512], y_train[:512]), loss)
    monitor = GradientMonitor(model, every=1, verbose=False)  # tiny data: every step is cheap
    start = time.perf_counter()
    ts, history = jaxnet.fit(
        model, loss, optax.sgd(0.02, momentum=0.9), x_train, y_train,
        epochs=epochs, batch_size=32, metrics=[metrics.accuracy], monitor=monitor, verbose=0,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    accuracy = jaxnet.evaluate(model, ts.params, ts.state, x_test, y_test, loss, [metrics.accuracy])
    slug = name.replace(" + ", "_").replace(" ", "_").lower()
    plot_heatmap(monitor.history, path=os.path.join(out, f"heatmap_{slug}.png"), title=name)
    return {
        "at_init": at_init,
        "during": monitor.diagnose(),
        "history": monitor.history,
        "accuracy": accuracy["accuracy"],
        "loss": history["loss"][-1],
        "seconds": seconds,
    }


def dense_profile(history):
    """Per-epoch gradient norms of the Dense layers only (BatchNorm's scale/shift left out)."""
    names = as_history(history)["layers"]  # in depth order
    dense = [name for name in names if name.startswith(("dense", "residual"))]
    return profile_by_epoch(history, layers=dense)


def gradient_flow_table(results) -> str:
    """Per-layer gradient norm, first epoch (geometric mean) -> last epoch, one column a model."""
    profiles = {name: dense_profile(r["history"]) for name, r in results.items()}
    depth = max(len(p[0]) for p in profiles.values())
    lines = ["| depth | " + " | ".join(profiles) + " |", "|---:" + "|---:" * len(profiles) + "|"]
    for i in range(depth):
        cells = []
        for layers, _, values in profiles.values():
            cells.append(f"{values[0, i]:.1e} -> {values[-1, i]:.1e}" if i < len(layers) else "")
        label = "output" if i == depth - 1 else str(i)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(epochs: int = 8, out: str = "out") -> None:
    os.makedirs(out, exist_ok=True)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    data = train_test_split(x, y.astype(np.int32), test_size=0.2, random_state=0, stratify=y)
    results = {}
    for name, build in VARIANTS.items():
        results[name] = run(name, build(), data, epochs, out)
        r = results[name]
        print(f"\n=== {name}: test accuracy {r['accuracy']:.3f} ({r['seconds']:.1f}s) ===")
        print("at init:" if r["at_init"] else "at init: no findings")
        for finding in r["at_init"]:
            print(finding)
        kinds = sorted({f.kind for f in r["during"]})
        print(f"during training: {', '.join(kinds) if kinds else 'no findings'}")

    print("\nGradient norm per parameter layer (input -> output), first -> last epoch:\n")
    print(gradient_flow_table(results))
    print("\n| model | findings at init | findings in training | train loss | test accuracy |")
    print("|---|---|---|---:|---:|")
    for name, r in results.items():
        at_init = ", ".join(sorted({f.kind for f in r["at_init"]})) or "none"
        during = ", ".join(sorted({f.kind for f in r["during"]})) or "none"
        print(f"| {name} | {at_init} | {during} | {r['loss']:.3f} | {r['accuracy']:.3f} |")

    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.8), layout="constrained")
    first, last = figure.subplots(1, 2, sharey=True)
    for name, r in results.items():
        layers, _, values = dense_profile(r["history"])
        depth = np.arange(len(layers))
        first.plot(depth, values[0], marker="o", label=name)
        last.plot(depth, values[-1], marker="o", label=name)
    for ax, title in ((first, "epoch 1"), (last, f"epoch {epochs}")):
        ax.set_yscale("log")
        ax.set_xlabel("Dense layer (0 = input side, last = output)")
        ax.set_title(f"gradient norm per layer, {title}")
        ax.grid(True, alpha=0.3)
    first.set_ylabel("gradient norm (geometric mean over the epoch)")
    last.legend(fontsize=8)
    os.makedirs(out, exist_ok=True)
    figure.savefig(os.path.join(out, "gradient_flow.png"), dpi=80)
    sigmoid = results["sigmoid + glorot"]["history"]
    plot_gradient_flow(sigmoid, path=os.path.join(out, "gradient_flow_sigmoid.png"))
    print(f"\nsaved gradient_flow.png and heat-maps in {out}/")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default="out")
    args = parser.parse_args()
    main(args.epochs, args.out)
