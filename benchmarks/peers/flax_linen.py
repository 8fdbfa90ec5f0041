"""Flax Linen + optax: the usual ``jax.jit`` train step over NumPy batches."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from peers.spec import Runner, Workload, optax_step_runner


class Model(nn.Module):
    layers: tuple

    @nn.compact
    def __call__(self, x):
        for layer in self.layers:
            kind = layer[0]
            if kind == "dense":
                x = nn.Dense(layer[1])(x)
            elif kind == "conv":
                x = nn.Conv(layer[1], (layer[2], layer[2]), padding="SAME")(x)
            elif kind == "maxpool":
                x = nn.max_pool(x, (layer[1], layer[1]), (layer[1], layer[1]))
            elif kind == "flatten":
                x = x.reshape(x.shape[0], -1)
            elif kind == "gru":
                x = nn.RNN(nn.GRUCell(layer[1]))(x)[:, -1]
            if layer[-1] == "relu" and kind in ("dense", "conv"):
                x = nn.relu(x)
        return x


def build(workload: Workload) -> Runner:
    model = Model(workload.layers)
    params = model.init(jax.random.key(0), jnp.zeros((1, *workload.input_shape)))
    return optax_step_runner(model.apply, params, workload)
