"""Overhead of gradient diagnostics inside the compiled epoch.

Digits MLP 64-100-100-10 (ReLU + He), batch 32, Adam(1e-3): time of one fused epoch
(``make_epoch``, 56 steps) with no probe, the diagnostics probe every step and every 50 steps.
Variants run interleaved (round-robin) so machine load hits all of them alike; the table reports
the median over rounds (and the fastest round, the least disturbed by other processes) and the
overhead relative to no probe.

    python benchmarks/bench_diagnostics.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax
from sklearn.datasets import load_digits

from jaxnet import losses
from jaxnet.diagnostics import make_probe
from jaxnet.train.step import create_train_state, make_epoch

sys.path.insert(0, str(Path(__file__).parent))
from common import digits_mlp  # noqa: E402


def main(rounds: int = 30, batch_size: int = 32) -> None:
    x, y = load_digits(return_X_y=True)
    x, y = jax.device_put(((x / 16).astype(np.float32), y.astype(np.int32)))
    model, optimizer = digits_mlp(), optax.adam(1e-3)
    loss = losses.sparse_categorical_cross_entropy
    variants = {
        "no probe": dict(probe=None),
        "probe every step": dict(probe=make_probe(model, packed=True), probe_every=1),
        "probe every 50 steps": dict(probe=make_probe(model, packed=True), probe_every=50),
        "probe every step, unpacked dict": dict(probe=make_probe(model), probe_every=1),
    }
    ts0 = create_train_state(model, optimizer, (64,), jax.random.key(0))
    compiled, states = {}, {}
    for name, kwargs in variants.items():
        epoch = jax.jit(make_epoch(model, loss, optimizer, batch_size, **kwargs))
        compiled[name] = epoch.lower(ts0, x, y).compile()
        states[name] = jax.block_until_ready(compiled[name](ts0, x, y))[0]  # warm-up epoch
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name in variants:
            start = time.perf_counter()
            out = jax.block_until_ready(compiled[name](states[name], x, y))
            times[name].append(time.perf_counter() - start)
            states[name] = out[0]
    base, base_min = float(np.median(times["no probe"])), float(np.min(times["no probe"]))
    steps = len(x) // batch_size
    print(
        f"digits MLP 64-100-100-10, batch {batch_size}, Adam; {steps} steps/epoch; "
        f"median of {rounds} interleaved rounds; {jax.devices()[0].platform}\n"
    )
    print("| variant | median epoch (ms) | overhead | fastest epoch (ms) | overhead (fastest) |")
    print("|---|---:|---:|---:|---:|")
    for name in variants:
        median, fastest = float(np.median(times[name])), float(np.min(times[name]))
        if name == "no probe":
            print(f"| {name} | {1e3 * median:.2f} | - | {1e3 * fastest:.2f} | - |")
            continue
        over, over_min = 100 * (median / base - 1), 100 * (fastest / base_min - 1)
        cells = f"{1e3 * median:.2f} | {over:+.0f}% | {1e3 * fastest:.2f} | {over_min:+.0f}%"
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    main(parser.parse_args().rounds)
