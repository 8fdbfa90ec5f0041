"""The digits MLP (64-100-100-10, batch 32, Adam): jaxnet's ``fit`` against hand-written loops.

    python benchmarks/bench_fit.py [--quick]

Rows: steady-state time per epoch (compile excluded) of
  - jaxnet.fit (its per-epoch time, logs and validation-free host loop included),
  - a hand-written ``jax.jit`` step called from a Python loop (one dispatch per step),
  - a hand-written ``lax.scan`` epoch (the limit fit should reach),
and end-to-end time for 50 epochs (compile included) of fit vs scikit-learn's MLPClassifier.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

import jaxnet  # noqa: E402
from jaxnet import optim  # noqa: E402
from jaxnet.compilation import clear_programs  # noqa: E402

BATCH, LR = 32, 1e-3


def hand_written(x, y):
    """A plain-JAX MLP with optax Adam: what a user would write without a library."""
    sizes = [64, 100, 100, 10]
    keys = jax.random.split(jax.random.key(0), 3)
    params = [
        (jax.random.normal(k, (m, n)) * np.sqrt(2 / m), jnp.zeros(n))
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]
    opt = optax.adam(LR)

    def loss(params, xb, yb):
        h = xb
        for w, b in params[:-1]:
            h = jax.nn.relu(h @ w + b)
        w, b = params[-1]
        return optax.softmax_cross_entropy_with_integer_labels(h @ w + b, yb).mean()

    def step(carry, batch):
        params, opt_state = carry
        grads = jax.grad(loss)(params, *batch)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    n_batches = len(x) // BATCH
    xb = jnp.asarray(x[: n_batches * BATCH]).reshape(n_batches, BATCH, -1)
    yb = jnp.asarray(y[: n_batches * BATCH]).reshape(n_batches, BATCH)
    jit_step = jax.jit(lambda c, b: step(c, b)[0])

    @jax.jit
    def scan_epoch(carry, key):
        perm = jax.random.permutation(key, n_batches * BATCH)
        batches = (jnp.asarray(x)[perm].reshape(xb.shape), jnp.asarray(y)[perm].reshape(yb.shape))
        return jax.lax.scan(step, carry, batches)[0]

    carry0 = (params, opt.init(params))

    def run_jit_loop():
        carry = carry0
        for i in range(n_batches):
            carry = jit_step(carry, (xb[i], yb[i]))
        jax.block_until_ready(carry)

    def run_scan():
        jax.block_until_ready(scan_epoch(carry0, jax.random.key(1)))

    return run_jit_loop, run_scan


def fit_epoch_time(x, y, epochs: int) -> tuple[float, float]:
    """(median steady-state epoch time, end-to-end seconds) of jaxnet.fit."""
    recipe = jaxnet.classifier_mlp(10, hidden=(100, 100))
    start = time.perf_counter()
    _, history = jaxnet.fit(
        recipe.model,
        recipe.loss,
        optim.adam(LR),
        x,
        y,
        epochs=epochs,
        batch_size=BATCH,
        metrics=recipe.metrics,
        verbose=0,
    )
    total = time.perf_counter() - start
    return float(np.median(history["time"][1:])), total


def sklearn_time(x, y, epochs: int) -> float | None:
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    clf = MLPClassifier(
        (100, 100),
        solver="adam",
        learning_rate_init=LR,
        batch_size=BATCH,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        random_state=0,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 20
    x, _, y, _ = common.digits()
    run_jit_loop, run_scan = hand_written(x, y)
    t_loop = common.median_time(run_jit_loop, repeats)
    t_scan = common.median_time(run_scan, repeats)
    t_fit, _ = fit_epoch_time(x, y, repeats + 1)
    clear_programs()  # compile included: not the programs the run above compiled
    _, t_fit_50 = fit_epoch_time(x, y, 50)
    t_sklearn = sklearn_time(x, y, 50)
    steps = len(x) // BATCH

    print(f"# digits MLP 64-100-100-10, batch {BATCH}, Adam — {common.machine()}\n")
    rows = [
        ["jaxnet.fit (fused epoch)", t_fit * 1e3, steps / t_fit, t_scan / t_fit],
        ["hand-written lax.scan epoch", t_scan * 1e3, steps / t_scan, 1.0],
        ["hand-written jit step loop", t_loop * 1e3, steps / t_loop, t_scan / t_loop],
    ]
    print(common.table(["steady state", "ms/epoch", "steps/s", "speed vs scan"], rows))
    print()
    rows = [["jaxnet.fit, compile included", t_fit_50, 1.0]]
    if t_sklearn is not None:
        rows.append(["scikit-learn MLPClassifier", t_sklearn, t_sklearn / t_fit_50])
    print(common.table(["50 epochs end to end", "seconds", "time / jaxnet's"], rows))
    print(
        f"\ntargets: fit within 10% of the scan epoch -> {t_fit / t_scan:.2f}x its time; "
        f"faster than scikit-learn -> {'yes' if t_sklearn and t_sklearn > t_fit_50 else 'no'}"
    )


if __name__ == "__main__":
    main()
