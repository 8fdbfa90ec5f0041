"""``jax.example_libraries.stax`` + optax: ``jax.jit`` train step over NumPy batches (no GRU)."""

from __future__ import annotations

import jax
from jax.example_libraries import stax

from peers.spec import Runner, Workload, optax_step_runner, require


def make_model(workload: Workload):
    require(workload, {"dense", "conv", "maxpool", "flatten"}, "stax")
    layers = []
    for layer in workload.layers:
        kind = layer[0]
        if kind == "dense":
            layers.append(stax.Dense(layer[1]))
        elif kind == "conv":
            # stax.Conv is GeneralConv with ("NHWC", "HWIO", "NHWC"): channels-last already
            layers.append(stax.Conv(layer[1], (layer[2], layer[2]), padding="SAME"))
        elif kind == "maxpool":
            layers.append(stax.MaxPool((layer[1], layer[1]), (layer[1], layer[1]), spec="NHWC"))
        elif kind == "flatten":
            layers.append(stax.Flatten)
        if layer[-1] == "relu" and kind in ("dense", "conv"):
            layers.append(stax.Relu)
    return stax.serial(*layers)


def build(workload: Workload) -> Runner:
    init, apply = make_model(workload)
    _, params = init(jax.random.key(0), (-1, *workload.input_shape))
    return optax_step_runner(apply, params, workload)
