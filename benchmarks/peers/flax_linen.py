"""Flax Linen + optax: the usual ``jax.jit`` train step over NumPy batches."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from peers.spec import ADAM, LEARNING_RATE, Runner, Workload, numpy_batches, timed_epochs


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
    tx = optax.adam(LEARNING_RATE, **ADAM)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss(params):
            logits = model.apply(params, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

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
