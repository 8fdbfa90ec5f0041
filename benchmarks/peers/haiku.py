"""Haiku + optax: ``hk.transform`` and a ``jax.jit`` train step over NumPy batches."""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

from peers.spec import Runner, Workload, optax_step_runner


def forward(workload: Workload):
    def apply(x):
        for layer in workload.layers:
            kind = layer[0]
            if kind == "dense":
                x = hk.Linear(layer[1])(x)
            elif kind == "conv":
                x = hk.Conv2D(layer[1], layer[2], padding="SAME")(x)
            elif kind == "maxpool":
                x = hk.MaxPool(layer[1], layer[1], "VALID")(x)
            elif kind == "flatten":
                x = hk.Flatten()(x)
            elif kind == "gru":
                core = hk.GRU(layer[1])
                outputs, _ = hk.dynamic_unroll(
                    core, jnp.swapaxes(x, 0, 1), core.initial_state(x.shape[0])
                )
                x = outputs[-1]
            if layer[-1] == "relu" and kind in ("dense", "conv"):
                x = jax.nn.relu(x)
        return x

    return hk.without_apply_rng(hk.transform(apply))


def build(workload: Workload) -> Runner:
    model = forward(workload)
    params = model.init(jax.random.key(0), jnp.zeros((1, *workload.input_shape)))
    return optax_step_runner(model.apply, params, workload)
