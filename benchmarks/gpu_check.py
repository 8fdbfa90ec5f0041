"""Check that jaxnet runs on the accelerator, and how fast: workloads (a), (b) and (d), jaxnet only.

    python benchmarks/gpu_check.py [--quick]

Prints ``jax.devices()``, the device kind, where each workload's arrays live, the matmul peak, and
per workload the steps/s, GFLOP/s and fraction of that peak (the suite's FLOP formula). With no GPU
or TPU it says so and runs on the CPU, so the script itself can be checked anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
import suite  # noqa: E402
from peers import build  # noqa: E402
from peers.many_models import MODELS, jaxnet_fit_many  # noqa: E402
from peers.spec import flops_per_step  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    devices = jax.devices()
    device = devices[0]
    print(f"jax.devices(): {devices}")
    print(f"backend: {jax.default_backend()}, device kind: {device.device_kind}")
    accelerated = device.platform in ("gpu", "cuda", "rocm", "tpu")
    if not accelerated:
        print("NO GPU/TPU FOUND: running on the CPU (this checks the script, not an accelerator)")
    peak = suite.matmul_peak()
    print(f"matmul peak (float32 2048x2048): {peak:.1f} GFLOP/s")
    workloads = suite.workloads(args.quick)
    epochs = 3 if args.quick else 10
    report = {
        "devices": [str(d) for d in devices],
        "device_kind": device.device_kind,
        "accelerated": accelerated,
        "peak_gflops": peak,
    }
    for key in ("a", "b"):
        workload = workloads[key]
        runner = build("jaxnet_epoch", workload)
        runner.epoch_times(1)
        seconds = statistics.median(runner.epoch_times(epochs))
        rate = workload.steps / seconds
        gflops = rate * flops_per_step(workload) / 1e9
        report[key] = {"steps_per_s": rate, "gflops": gflops}
        print(
            f"{workload.title}: {rate:.0f} steps/s, {gflops:.1f} GFLOP/s, "
            f"{100 * gflops / peak:.1f}% of peak"
        )
    workload = workloads["a"]
    many = jaxnet_fit_many(workload, epochs)
    rate = MODELS * workload.steps / many["epoch_seconds"]
    gflops = rate * flops_per_step(workload) / 1e9
    report["d"] = {"model_steps_per_s": rate, "gflops": gflops}
    print(
        f"(d) fit_many, {MODELS} digits MLPs: {rate:.0f} model-steps/s, {gflops:.1f} GFLOP/s, "
        f"{100 * gflops / peak:.1f}% of peak"
    )
    placed = jax.device_put(workload.x)
    print(f"training data placed on: {placed.devices()}")
    if hasattr(device, "memory_stats") and device.memory_stats():
        stats = device.memory_stats()
        print(
            f"device memory in use: {stats.get('bytes_in_use', 0) / 2**20:.1f} MiB, "
            f"peak {stats.get('peak_bytes_in_use', 0) / 2**20:.1f} MiB"
        )
    return report


if __name__ == "__main__":
    main()
