"""Hand-written ``lax.scan`` epoch: the whole epoch in one compiled program (the limit)."""

from __future__ import annotations

import jax

from peers import hand_model
from peers.spec import Runner, Workload, timed_epochs


def build(workload: Workload) -> Runner:
    carry = hand_model.initial_carry(workload)
    scan_epoch = hand_model.make_scan_epoch(workload)

    @jax.jit
    def epoch(carry, x, y, index):  # the shuffle is inside the program too
        order = jax.random.permutation(jax.random.fold_in(jax.random.key(1), index), len(x))
        return scan_epoch(carry, x, y, order)

    x, y = jax.device_put((workload.x, workload.y))
    state = {"carry": carry, "epoch": 0}

    def run_epoch():
        state["carry"] = jax.block_until_ready(epoch(state["carry"], x, y, state["epoch"]))
        state["epoch"] += 1

    return Runner(timed_epochs(run_epoch))
