"""Overhead of gradient diagnostics inside the compiled epoch, on the suite's workloads.

For each workload of ``benchmarks/suite.py`` — (a) digits MLP 64-100-100-10, batch 32; (b) the
MNIST-sized MLP 784-1024-1024-10, batch 256 (synthetic data, 20 steps an epoch); (c) the CNN on
8x8 digits, batch 32; (e) the GRU(64), batch 32 — with Adam(1e-3): the time of one fused epoch
(``jit(make_epoch)``) without a probe, with ``GradientMonitor``'s probe
(``make_probe(model, packed=True)``) every step, and every 10 steps (``GradientMonitor``'s
default). Variants run interleaved (round-robin) so machine load hits all of them alike; the
table reports the median over rounds, its overhead relative to no probe, and the overhead of the
fastest epochs (the least disturbed by other processes). ``uptime``'s load is printed first and
last: with a load above the number of cores the figures come from a loaded machine.

    python benchmarks/bench_diagnostics.py [--rounds 30] [--only a,b,c,e]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxnet.diagnostics import make_probe
from jaxnet.train.step import create_train_state, make_epoch

sys.path.insert(0, str(Path(__file__).parent))
import suite  # noqa: E402
from peers import jaxnet_model  # noqa: E402

EVERY_DEFAULT = 10  # GradientMonitor's default cadence


def workloads() -> dict:
    """The suite's workloads; (b) gets 5120 examples (20 steps) so every 10 steps means 2 probes."""
    chosen = suite.workloads(quick=False)
    b = chosen["b"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5120, 784)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(784, 10)), axis=1).astype(np.int32)
    chosen["b"] = b._replace(x=x, y=y)
    return chosen


def variants(model) -> dict:
    return {
        "no probe": {},
        "every step": dict(probe=make_probe(model, packed=True), probe_every=1),
        f"every {EVERY_DEFAULT} steps": dict(
            probe=make_probe(model, packed=True), probe_every=EVERY_DEFAULT
        ),
    }


def measure(workload, rounds: int, options: dict | None = None) -> dict[str, list[float]]:
    """Per variant: the wall time of each of ``rounds`` interleaved epochs (seconds)."""
    model, optimizer = jaxnet_model.model(workload), jaxnet_model.optimizer()
    options = variants(model) if options is None else options
    x, y = jax.device_put((workload.x, workload.y))
    ts0 = create_train_state(model, optimizer, workload.input_shape, jax.random.key(0))
    compiled, states = {}, {}
    for name, kwargs in options.items():
        epoch = jax.jit(make_epoch(model, jaxnet_model.LOSS, optimizer, workload.batch, **kwargs))
        compiled[name] = epoch.lower(ts0, x, y).compile()
        states[name] = jax.block_until_ready(compiled[name](ts0, x, y))[0]  # warm-up epoch
    times = {name: [] for name in options}
    for _ in range(rounds):
        for name in options:
            start = time.perf_counter()
            out = jax.block_until_ready(compiled[name](states[name], x, y))
            times[name].append(time.perf_counter() - start)
            states[name] = out[0]
    return times


def table_rows(workload, times: dict[str, list[float]]) -> list[str]:
    base, base_min = np.median(times["no probe"]), np.min(times["no probe"])
    rows = []
    for name, values in times.items():
        median, fastest = np.median(values), np.min(values)
        if name == "no probe":
            over = "-", "-"
        else:
            over = f"{100 * (median / base - 1):+.1f}%", f"{100 * (fastest / base_min - 1):+.1f}%"
        step_ms = 1e3 * median / workload.steps
        rows.append(
            f"| {workload.key} | {name} | {1e3 * median:.1f} | {step_ms:.3f} | {over[0]} | "
            f"{over[1]} |"
        )
    return rows


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main(rounds: int = 30, only: str = "a,b,c,e") -> None:
    chosen = workloads()
    print(f"{jax.devices()[0].platform}, {os.cpu_count()} cores; {load()} (start)")
    print(f"median of {rounds} interleaved rounds per workload\n")
    lines = [
        "| workload | variant | median epoch (ms) | per step (ms) | overhead (median) | "
        "overhead (fastest) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key in only.split(","):
        workload = chosen[key]
        print(f"{workload.title}: {workload.steps} steps/epoch", flush=True)
        lines += table_rows(workload, measure(workload, rounds))
    print("\n" + "\n".join(lines))
    print(f"\n{load()} (end)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--only", default="a,b,c,e", help="comma-separated workloads")
    args = parser.parse_args()
    main(args.rounds, args.only)
