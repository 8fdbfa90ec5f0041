"""Overhead of gradient diagnostics inside the compiled epoch, on the suite's workloads.

For each workload of ``benchmarks/suite.py`` — (a) digits MLP 64-100-100-10, batch 32; (b) the
MNIST-sized MLP 784-1024-1024-10, batch 256 (synthetic data, 20 steps an epoch); (c) the CNN on
8x8 digits, batch 32; (e) the GRU(64), batch 32 — with Adam(1e-3): the time of one fused epoch
(``jit(make_epoch)``) without a probe, with ``GradientMonitor``'s probe
(``make_probe(model, packed=True)``) every step, every 10 steps and at ``GradientMonitor``'s
default cadence. Variants run interleaved (round-robin) so machine load hits all of them alike; the
table reports the median over rounds, its overhead relative to no probe, the overhead of the
fastest epochs (the least disturbed by other processes), of the median CPU time (all threads
of this process, which other processes disturb less than the wall clock) and the paired
overhead: the median over rounds of each epoch's time over the same round's epoch without a
probe (load that changes between rounds cancels). ``uptime``'s load is
printed first and last: with a load above the number of cores the figures come from a loaded
machine.

With ``--e2e EPOCHS`` it also times ``fit`` end to end (build, compile, train ``EPOCHS`` epochs)
without and with ``monitor=GradientMonitor(model)``, three times each, alternating: what leaving
the diagnostics on costs a short run, compile included.

    python benchmarks/bench_diagnostics.py [--rounds 30] [--only a,b,c,e] [--e2e 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

import jaxnet
from jaxnet.compilation import clear_programs
from jaxnet.diagnostics import GradientMonitor, make_probe
from jaxnet.train.step import create_train_state, make_epoch

sys.path.insert(0, str(Path(__file__).parent))
import suite  # noqa: E402
from peers import jaxnet_model  # noqa: E402

EVERY_DEFAULT = GradientMonitor().every  # GradientMonitor's default cadence


def workloads() -> dict:
    """The suite's workloads; (b) gets 5120 examples (20 steps) so every 10 steps means 2 probes."""
    chosen = suite.workloads(quick=False)
    b = chosen["b"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5120, 784)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(784, 10)), axis=1).astype(np.int32)
    chosen["b"] = b._replace(x=x, y=y)
    return chosen


def variants(model, cadences=(1, 10, EVERY_DEFAULT)) -> dict:
    out = {"no probe": {}}
    for every in dict.fromkeys(cadences):
        name = "every step" if every == 1 else f"every {every} steps"
        if every == EVERY_DEFAULT:
            name += " (default)"
        out[name] = dict(probe=make_probe(model, packed=True), probe_every=every)
    return out


def measure(workload, rounds: int, options: dict | None = None, cadences=None):
    """Per variant: ``(wall, CPU)`` seconds of each of ``rounds`` interleaved epochs. The CPU
    time (all threads of this process) is less disturbed by other processes than the wall."""
    model, optimizer = jaxnet_model.model(workload), jaxnet_model.optimizer()
    if options is None:
        options = variants(model) if cadences is None else variants(model, cadences)
    x, y = jax.device_put((workload.x, workload.y))
    ts0 = create_train_state(model, optimizer, workload.input_shape, jax.random.key(0))
    compiled, states, seconds = {}, {}, []
    for name, kwargs in options.items():
        epoch = jax.jit(make_epoch(model, jaxnet_model.LOSS, optimizer, workload.batch, **kwargs))
        start = time.perf_counter()
        lowered = epoch.lower(ts0, x, y)
        traced = time.perf_counter()
        compiled[name] = lowered.compile()
        seconds.append(f"{name} {traced - start:.2f} + {time.perf_counter() - traced:.2f}")
        states[name] = jax.block_until_ready(compiled[name](ts0, x, y))[0]  # warm-up epoch
    print("  trace + compile (s): " + ", ".join(seconds), flush=True)
    times = {name: [] for name in options}
    for _ in range(rounds):
        for name in options:
            start, cpu = time.perf_counter(), time.process_time()
            out = jax.block_until_ready(compiled[name](states[name], x, y))
            times[name].append((time.perf_counter() - start, time.process_time() - cpu))
            states[name] = out[0]
    return times


def table_rows(workload, times: dict[str, list[tuple]]) -> list[str]:
    def stats(values):
        wall, cpu = np.asarray(values).T
        return np.median(wall), np.min(wall), np.median(cpu)

    base = stats(times["no probe"])
    base_walls = np.asarray(times["no probe"])[:, 0]
    rows = []
    for name, values in times.items():
        now = stats(values)
        # paired: each round's epoch against the same round's epoch without a probe
        paired = np.median(np.asarray(values)[:, 0] / base_walls)
        over = (
            ["-"] * 4
            if name == "no probe"
            else [
                f"{100 * (a / b - 1):+.1f}%"
                for a, b in zip((*now, paired), (*base, 1.0), strict=True)
            ]
        )
        step_ms = 1e3 * now[0] / workload.steps
        rows.append(
            f"| {workload.key} | {name} | {1e3 * now[0]:.1f} | {step_ms:.3f} | "
            + " | ".join(over)
            + " |"
        )
    return rows


def end_to_end(workload, epochs: int, repeats: int = 3) -> tuple[dict, dict]:
    """Seconds of ``fit`` from scratch (build, compile, ``epochs`` epochs), without and with a
    ``GradientMonitor``, alternating ``repeats`` times; and each run's median epoch after the
    first five (``history["time"]``: the epoch with everything ``fit`` does around it)."""
    times, epoch_times = {"no monitor": [], "monitor": []}, {"no monitor": [], "monitor": []}
    for _ in range(repeats):
        for name in times:
            clear_programs()  # from scratch: not the programs the run before compiled
            start = time.perf_counter()
            model = jaxnet_model.model(workload)
            monitor = GradientMonitor(model, verbose=False) if name == "monitor" else None
            _, history = jaxnet.fit(
                model,
                jaxnet_model.LOSS,
                jaxnet_model.optimizer(),
                workload.x,
                workload.y,
                epochs=epochs,
                batch_size=workload.batch,
                verbose=0,
                monitor=monitor,
            )
            times[name].append(time.perf_counter() - start)
            epoch_times[name].append(float(np.median(history["time"][5:])))
    return times, epoch_times


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main(rounds: int = 30, only: str = "a,b,c,e", cadences=None, e2e: int = 0) -> None:
    chosen = workloads()
    print(f"{jax.devices()[0].platform}, {os.cpu_count()} cores; {load()} (start)")
    print(f"median of {rounds} interleaved rounds per workload\n")
    lines = [
        "| workload | variant | median epoch (ms) | per step (ms) | overhead (median) | "
        "overhead (fastest) | overhead (median CPU time) | overhead (paired) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in only.split(","):
        workload = chosen[key]
        print(f"{workload.title}: {workload.steps} steps/epoch", flush=True)
        lines += table_rows(workload, measure(workload, rounds, cadences=cadences))
    print("\n" + "\n".join(lines))
    if e2e:
        print(f"\nfit end to end, {e2e} epochs (median of 3, seconds), and the median epoch after "
              "the first five (ms):\n")  # fmt: skip
        header = ["workload", "no monitor", "GradientMonitor", "overhead", "epoch, no monitor",
                  "epoch, GradientMonitor", "epoch overhead"]  # fmt: skip
        print("| " + " | ".join(header) + " |\n|---|" + "---:|" * 6)
        for key in only.split(","):
            runs, epochs_ = end_to_end(chosen[key], e2e)
            plain, probed = (float(np.median(runs[k])) for k in ("no monitor", "monitor"))
            e_plain, e_probed = (1e3 * float(np.median(epochs_[k])) for k in runs)
            cells = [key]
            for a, b in ((plain, probed), (e_plain, e_probed)):
                cells += [f"{a:.2f}", f"{b:.2f}", f"{100 * (b / a - 1):+.0f}%"]
            print("| " + " | ".join(cells) + " |")
    print(f"\n{load()} (end)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--only", default="a,b,c,e", help="comma-separated workloads")
    parser.add_argument("--every", help="comma-separated cadences (default: 1, 10, the default)")
    parser.add_argument("--e2e", type=int, default=0, help="also time fit end to end, N epochs")
    args = parser.parse_args()
    cadences = None if args.every is None else [int(e) for e in args.every.split(",")]
    main(args.rounds, args.only, cadences, args.e2e)
