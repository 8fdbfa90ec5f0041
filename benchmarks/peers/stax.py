"""``jax.example_libraries.stax`` + optax: ``jax.jit`` train step over NumPy batches (no GRU)."""

from __future__ import annotations

import jax
import numpy as np
import optax
from jax.example_libraries import stax

from peers.spec import ADAM, LEARNING_RATE, Runner, Workload, numpy_batches, require, timed_epochs


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
    tx = optax.adam(LEARNING_RATE, **ADAM)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss(params):
            return optax.softmax_cross_entropy_with_integer_labels(apply(params, x), y).mean()

        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    state = {"carry": (params, tx.init(params))}
    rng = np.random.default_rng(0)

    def run_epoch():
        params, opt_state = state["carry"]
        for x, y in numpy_batches(workload, rng):
            params, opt_state = step(params, opt_state, x, y)
        state["carry"] = jax.block_until_ready((params, opt_state))

    return Runner(timed_epochs(run_epoch))
