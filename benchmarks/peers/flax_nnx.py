"""Flax NNX + optax: ``nnx.Optimizer`` and an ``nnx.jit`` train step over NumPy batches."""

from __future__ import annotations

import jax
import numpy as np
import optax
from flax import nnx

from peers.spec import ADAM, LEARNING_RATE, Runner, Workload, numpy_batches, timed_epochs


class Model(nnx.Module):
    def __init__(self, workload: Workload, rngs: nnx.Rngs):
        self.spec = tuple(workload.layers)
        shape = workload.input_shape
        modules = []
        for layer in workload.layers:
            kind = layer[0]
            if kind == "dense":
                modules.append(nnx.Linear(shape[-1], layer[1], rngs=rngs))
                shape = (*shape[:-1], layer[1])
            elif kind == "conv":
                conv = nnx.Conv(
                    shape[-1], layer[1], (layer[2], layer[2]), padding="SAME", rngs=rngs
                )
                modules.append(conv)
                shape = (*shape[:-1], layer[1])
            elif kind == "maxpool":
                modules.append(None)
                shape = (shape[0] // layer[1], shape[1] // layer[1], shape[2])
            elif kind == "flatten":
                modules.append(None)
                shape = (int(np.prod(shape)),)
            elif kind == "gru":
                cell = nnx.GRUCell(shape[-1], layer[1], rngs=rngs)
                modules.append(nnx.RNN(cell))
                shape = (layer[1],)
        self.modules = nnx.List(modules) if hasattr(nnx, "List") else modules

    def __call__(self, x):
        for layer, module in zip(self.spec, self.modules, strict=True):
            kind = layer[0]
            if kind == "maxpool":
                x = nnx.max_pool(x, (layer[1], layer[1]), (layer[1], layer[1]))
            elif kind == "flatten":
                x = x.reshape(x.shape[0], -1)
            elif kind == "gru":
                x = module(x)[:, -1]
            else:
                x = module(x)
            if layer[-1] == "relu" and kind in ("dense", "conv"):
                x = nnx.relu(x)
        return x


def build(workload: Workload) -> Runner:
    model = Model(workload, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(LEARNING_RATE, **ADAM), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        grads = nnx.grad(loss)(model)
        optimizer.update(model, grads)

    rng = np.random.default_rng(0)

    def run_epoch():
        for x, y in numpy_batches(workload, rng):
            step(model, optimizer, x, y)
        jax.block_until_ready(nnx.state(model))

    return Runner(timed_epochs(run_epoch))
