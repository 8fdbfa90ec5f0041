"""jaxnet's CPU fast paths, on and off, on this machine's default device (CPU, GPU or TPU).

    python benchmarks/bench_paths.py [--quick]

Three of jaxnet's code paths were chosen because XLA:CPU runs the plain JAX form slowly:

  conv gradients   ``layers.conv.convolve``'s custom VJP keeps every backward convolution
                   channels-last; off: JAX's own convolution gradient.
  reshape pooling  non-overlapping ``MaxPool``/``AvgPool`` as a reshape and a reduction; off:
                   ``lax.reduce_window`` (and ``select_and_scatter`` for its gradient).
  jaxnet.random    dropout masks from Threefry written as elementwise ops; off:
                   ``jax.random.bernoulli`` (the same bits).

Each row times the same fused training epoch (``jax.jit(make_epoch(...))``, Adam 1e-3) with the
path on and off, compiled once each and then timed in alternating rounds; the median epoch is
reported, and "off / on" > 1 means the fast path helps on this device. Workloads: the suite's
(c) CNN on the 8x8 digits (batch 32) for the convolution and pooling paths, and the suite's (a)
and (b) MLPs with ``Dropout(0.5)`` after each hidden layer for ``jaxnet.random``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
import suite  # noqa: E402
from peers import jaxnet_model  # noqa: E402

import jaxnet as jn  # noqa: E402
from jaxnet import layers  # noqa: E402
from jaxnet.layers import conv, dropout, pooling  # noqa: E402


def _plain_convolve(x, w, strides, pads, dilation, groups):
    return jax.lax.conv_general_dilated(
        x,
        w,
        strides,
        pads,
        rhs_dilation=dilation,
        dimension_numbers=conv._channels_last(x.ndim - 2),
        feature_group_count=groups,
    )


def _plain_tiled(kind, x, window):
    dims = (1, *window, 1)
    if kind == "max":
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, dims, dims, "VALID")
    return jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, dims, "VALID") / math.prod(window)


OFF = {
    "conv gradients": lambda: mock.patch.object(conv, "convolve", _plain_convolve),
    "reshape pooling": lambda: mock.patch.object(pooling, "_tiled", _plain_tiled),
    "jaxnet.random": lambda: mock.patch.object(dropout, "bernoulli", jax.random.bernoulli),
}


def _with_dropout(workload):
    children = []
    for layer in workload.layers:
        children.append(layers.Dense(layer[1], kernel_init="he_normal"))
        if layer[-1] == "relu":
            children += [jn.activations.Relu(), layers.Dropout(0.5)]
    return jn.serial(*children)


def _runner(model, workload, patch):
    """Compile the epoch under ``patch`` (the first call traces) and return a timed epoch."""
    optimizer = jaxnet_model.optimizer()
    epoch = jax.jit(jn.make_epoch(model, jaxnet_model.LOSS, optimizer, workload.batch))
    state = [jn.create_train_state(model, optimizer, workload.input_shape, jax.random.key(0))]
    x, y = jax.device_put((workload.x, workload.y))
    with patch():
        state[0] = jax.block_until_ready(epoch(state[0], x, y)[0])

    def run():
        start = time.perf_counter()
        state[0] = jax.block_until_ready(epoch(state[0], x, y)[0])
        return time.perf_counter() - start

    return run


def measure(name, model, workload, rounds):
    on = _runner(model, workload, contextlib.nullcontext)
    off = _runner(model, workload, OFF[name])
    times = {"on": [], "off": []}
    for _ in range(rounds):
        times["on"].append(on())
        times["off"].append(off())
    on_ms = 1e3 * statistics.median(times["on"])
    off_ms = 1e3 * statistics.median(times["off"])
    return {"path": name, "workload": workload.title, "on_ms": on_ms, "off_ms": off_ms}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 15
    device = jax.devices()[0]
    print(f"device: {device.platform} ({device.device_kind}), jax {jax.__version__}")
    work = suite.workloads(args.quick)
    cnn = jaxnet_model.model(work["c"])
    cases = [
        ("conv gradients", cnn, work["c"]),
        ("reshape pooling", cnn, work["c"]),
        ("jaxnet.random", _with_dropout(work["a"]), work["a"]),
        ("jaxnet.random", _with_dropout(work["b"]), work["b"]),
    ]
    rows = []
    print("| path | workload (+ Dropout(0.5) for jaxnet.random) | on, ms/epoch | off | off / on |")
    print("|---|---|---:|---:|---:|")
    for name, model, workload in cases:
        row = measure(name, model, workload, rounds)
        rows.append(row)
        print(
            f"| {name} | {workload.title} | {row['on_ms']:.2f} | {row['off_ms']:.2f} "
            f"| {row['off_ms'] / row['on_ms']:.2f} |",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
