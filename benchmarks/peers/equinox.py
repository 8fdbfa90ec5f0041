"""Equinox + optax: ``eqx.filter_jit`` step over NumPy batches; layers vmapped over the batch."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from peers.spec import ADAM, LEARNING_RATE, Runner, Workload, numpy_batches, timed_epochs


class GRU(eqx.Module):
    cell: eqx.nn.GRUCell

    def __call__(self, x, *, key=None):  # x: (time, features) for one example
        def step(h, x_t):
            return self.cell(x_t, h), None

        return jax.lax.scan(step, jnp.zeros(self.cell.hidden_size), x)[0]


def make_model(workload: Workload, key):
    shape, modules = workload.input_shape, []
    for i, layer in enumerate(workload.layers):
        k = jax.random.fold_in(key, i)
        kind = layer[0]
        if kind == "dense":
            modules.append(eqx.nn.Linear(shape[-1], layer[1], key=k))
            shape = (layer[1],)
        elif kind == "conv":  # equinox convolutions are channels-first
            modules.append(eqx.nn.Conv2d(shape[-1], layer[1], layer[2], padding="SAME", key=k))
            shape = (*shape[:-1], layer[1])
        elif kind == "maxpool":
            modules.append(eqx.nn.MaxPool2d(layer[1], layer[1]))
            shape = (shape[0] // layer[1], shape[1] // layer[1], shape[2])
        elif kind == "flatten":
            modules.append(eqx.nn.Lambda(jnp.ravel))
            shape = (int(np.prod(shape)),)
        elif kind == "gru":
            modules.append(GRU(eqx.nn.GRUCell(shape[-1], layer[1], key=k)))
            shape = (layer[1],)
        if layer[-1] == "relu" and kind in ("dense", "conv"):
            modules.append(eqx.nn.Lambda(jax.nn.relu))
    return eqx.nn.Sequential(modules)


def build(workload: Workload) -> Runner:
    model = make_model(workload, jax.random.key(0))
    channels_first = "conv" in workload.kinds()
    tx = optax.adam(LEARNING_RATE, **ADAM)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        def loss(model):
            logits = jax.vmap(model)(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = eqx.filter_grad(loss)(model)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state

    state = {"carry": (model, tx.init(eqx.filter(model, eqx.is_array)))}
    rng = np.random.default_rng(0)

    def run_epoch():
        model, opt_state = state["carry"]
        for x, y in numpy_batches(workload, rng):
            if channels_first:
                x = np.moveaxis(x, -1, 1)
            model, opt_state = step(model, opt_state, x, y)
        state["carry"] = jax.block_until_ready((model, opt_state))

    return Runner(timed_epochs(run_epoch))
