"""The non-finite guard: an epoch whose loss or metrics are NaN/inf is not accepted.

``fit`` asks :meth:`NonFiniteGuard.accept` before it takes an epoch's new train state. A finite
epoch costs nothing (the logs are on the host anyway). A non-finite one is re-run once with a
per-step probe to say where it first broke — the step, the first layer with a non-finite output,
the first with a non-finite gradient — and ``fit`` stops with the state from the end of the
previous epoch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.core import path_string


class NonFiniteGuard:
    """Refuse epochs with a non-finite loss or metric, and say where the first one broke.

    Args:
      make_epoch: ``make_epoch(probe=...) -> epoch`` building the same epoch program as training
        with a probe added (see :func:`~jaxnet.train.step.make_epoch`); used only after a failure.
    """

    def __init__(self, make_epoch: Callable):
        self.make_epoch = make_epoch

    def accept(self, epoch: int, logs: dict, train_state, x, y) -> bool:
        """``True`` if every value in ``logs`` is finite; else warn (naming the first bad step
        and layer, from re-running the epoch from ``train_state``) and return ``False``."""
        if all(np.isfinite(v) for v in logs.values()):
            return True
        where = self.locate(train_state, x, y)
        warnings.warn(
            f"fit: non-finite training loss/metrics in epoch {epoch + 1} ({logs}); {where}. "
            "Stopped and kept the parameters from the end of the previous epoch. Lower the "
            "learning rate, clip gradients (optim.clip_by_global_norm) or check the data.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False

    def locate(self, train_state, x, y) -> str:
        """Re-run the epoch from ``train_state`` probing every step; say where it first broke."""
        _, _, probes = jax.jit(self.make_epoch(probe=finite_probe))(train_state, x, y)
        probes = jax.tree.map(np.asarray, probes)
        ok = probes["loss"].copy()
        for flags in [*probes["outputs"].values(), *probes["grads"].values()]:
            ok &= flags
        if ok.all():
            return "re-running the epoch step by step found no non-finite loss, output or gradient"
        i = int(np.argmin(ok))
        step = int(train_state.step) + i
        layers = list(probes["outputs"])
        bad_outputs = [name for name in layers if not probes["outputs"][name][i]]
        bad_grads = [name for name, flags in probes["grads"].items() if not flags[i]]
        order = {name: k for k, name in enumerate(layers)}
        bad_grads.sort(key=lambda name: order.get(name.split("/")[0], len(order)))
        loss = "finite" if probes["loss"][i] else "non-finite"
        parts = [f"first at step {step} (batch {i + 1} of this epoch): the loss was {loss}"]
        if bad_outputs:
            parts.append(f"the first layer with a non-finite output was {bad_outputs[0]}")
        if bad_grads:
            first = bad_grads[0].split("/")[0]
            parts.append(
                f"the first layer with a non-finite gradient was {first} ({len(bad_grads)} of "
                f"{len(probes['grads'])} gradient arrays non-finite, e.g. {bad_grads[0]})"
            )
        return ", ".join(parts)


def finite_probe(*, grads, params, updates, outputs, loss):
    """Per step: is the loss finite, each layer's output, each gradient leaf?"""
    del params, updates

    def finite(tree):
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))

    return {
        "loss": jnp.isfinite(loss),
        "outputs": {name: finite(out) for name, out in outputs.items()},
        "grads": {
            path_string(path): jnp.all(jnp.isfinite(g))
            for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]
        },
    }
