"""The non-finite guard: an epoch whose loss or metrics are NaN/inf is not accepted.

``fit`` asks :func:`guard_accepts` before it takes an epoch's new train state. A finite
epoch costs nothing (the logs are on the host anyway). A non-finite one is re-run once with a
per-step probe to say where it first broke — the step, the first layer with a non-finite output,
the first with a non-finite gradient — and ``fit`` stops with the state from the end of the
previous epoch.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.core import path_string


def guard_accepts(epoch: int, logs: dict, train_state, feed) -> bool:
    """``True`` if every value in ``logs`` is finite. Otherwise warn where the epoch that started
    at ``train_state`` first broke (re-run once with :func:`finite_probe` on every step, by
    ``feed.probe_epoch``, see :mod:`jaxnet.train.feed`) and return ``False``.
    """
    if all(np.isfinite(v) for v in logs.values()):
        return True
    where = locate(feed.probe_epoch(train_state, finite_probe), int(train_state.step))
    warnings.warn(
        f"fit: non-finite training loss/metrics in epoch {epoch + 1} ({logs}); {where}. "
        "Stopped and kept the parameters from the end of the previous epoch. Lower the "
        "learning rate, clip gradients (optim.clip_by_global_norm) or check the data.",
        RuntimeWarning,
        stacklevel=3,
    )
    return False


def locate(probes, first_step: int) -> str:
    """Where :func:`finite_probe`'s per-step results first show a non-finite value."""
    probes = jax.tree.map(np.asarray, probes)
    ok = probes["loss"].copy()
    for flags in [*probes["outputs"].values(), *probes["grads"].values()]:
        ok &= flags
    if ok.all():
        return "re-running the epoch step by step found no non-finite loss, output or gradient"
    i = int(np.argmin(ok))
    layers = list(probes["outputs"])
    bad_outputs = [name for name in layers if not probes["outputs"][name][i]]
    bad_grads = [name for name, flags in probes["grads"].items() if not flags[i]]
    order = {name: k for k, name in enumerate(layers)}
    bad_grads.sort(key=lambda name: order.get(name.split("/")[0], len(order)))
    loss = "finite" if probes["loss"][i] else "non-finite"
    parts = [f"first at step {first_step + i} (batch {i + 1} of this epoch): the loss was {loss}"]
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
