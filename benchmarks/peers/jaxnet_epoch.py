"""jaxnet's epoch program alone: ``jax.jit(make_epoch(...))`` once per epoch, no host loop."""

from __future__ import annotations

import jax

import jaxnet as jn
from peers import jaxnet_model
from peers.spec import Runner, Workload, timed_epochs


def build(workload: Workload) -> Runner:
    model, optimizer = jaxnet_model.model(workload), jaxnet_model.optimizer()
    epoch = jax.jit(jn.make_epoch(model, jaxnet_model.LOSS, optimizer, workload.batch))
    train_state = jn.create_train_state(model, optimizer, workload.input_shape, jax.random.key(0))
    x, y = jax.device_put((workload.x, workload.y))
    state = {"train_state": train_state}

    def run_epoch():
        state["train_state"] = jax.block_until_ready(epoch(state["train_state"], x, y)[0])

    return Runner(timed_epochs(run_epoch))
