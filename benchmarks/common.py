"""Shared helpers for the benchmarks: timing, data, machine facts, Markdown tables."""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np


def median_time(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds; ``fn`` must block until its result is ready."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def digits(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    return train_test_split(
        x, data.target.astype(np.int32), test_size=0.2, random_state=seed, stratify=data.target
    )


def digits_mlp():
    """The textbook digits MLP 64-100-100-10 (ReLU, He) as a jaxnet model."""
    import jaxnet

    return jaxnet.serial(
        jaxnet.Dense(100, kernel_init="he_normal"),
        jaxnet.activations.Relu(),
        jaxnet.Dense(100, kernel_init="he_normal"),
        jaxnet.activations.Relu(),
        jaxnet.Dense(10),
    )


def machine() -> str:
    import jax

    device = jax.devices()[0]
    return (
        f"{platform.processor() or platform.machine()}, {device.platform} ({device.device_kind}), "
        f"jax {jax.__version__}, python {platform.python_version()}"
    )


def cpu_set(n: int | None) -> list[int]:
    """The first ``n`` CPUs this process may run on (``None``: all of them). A child pinned to
    them before it imports JAX (``os.sched_setaffinity``, Linux) sees a machine with that many
    cores: XLA sizes its compile and run thread pools from the set."""
    if not hasattr(os, "sched_getaffinity"):  # not Linux: no pinning
        if n is not None:
            raise SystemExit("--cpus needs os.sched_setaffinity (Linux)")
        return list(range(os.cpu_count() or 1))
    allowed = sorted(os.sched_getaffinity(0))
    if n is None:
        return allowed
    if not 1 <= n <= len(allowed):
        raise SystemExit(f"--cpus {n}: this process may run on 1 to {len(allowed)} CPUs")
    return allowed[:n]


def table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
