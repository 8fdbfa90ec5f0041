"""Hand-written ``jax.jit`` step from a Python loop over NumPy batches (a dispatch per step)."""

from __future__ import annotations

import jax
import numpy as np

from peers import hand_model
from peers.spec import Runner, Workload, numpy_batches, timed_epochs


def build(workload: Workload) -> Runner:
    step = jax.jit(hand_model.make_step(workload))
    state = {"carry": hand_model.initial_carry(workload)}
    rng = np.random.default_rng(0)

    def run_epoch():
        carry = state["carry"]
        for batch in numpy_batches(workload, rng):
            carry = step(carry, batch)
        state["carry"] = jax.block_until_ready(carry)

    return Runner(timed_epochs(run_epoch))
