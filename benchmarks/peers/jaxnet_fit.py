"""jaxnet's ``fit``: a fused ``lax.scan`` epoch plus the host loop (logs, callbacks) per epoch.

An epoch's time is ``history["time"]``, which leaves out compiling (``history.compile_seconds``).
"""

from __future__ import annotations

import jaxnet as jn
from peers import jaxnet_model
from peers.spec import Runner, Workload


def build(workload: Workload) -> Runner:
    model = jaxnet_model.model(workload)
    state = {"train_state": None}

    def epoch_times(n: int) -> list[float]:
        train_state, history = jn.fit(
            model,
            jaxnet_model.LOSS,
            jaxnet_model.optimizer(),
            workload.x,
            workload.y,
            epochs=n,
            batch_size=workload.batch,
            verbose=0,
            train_state=state["train_state"],
        )
        state["train_state"] = train_state
        return list(history["time"])

    return Runner(epoch_times)
