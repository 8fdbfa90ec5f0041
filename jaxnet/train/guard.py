"""The non-finite guard: an epoch that ends with a NaN/inf loss, metric or train state is not
accepted.

``fit`` asks :func:`guard_accepts` before it takes an epoch's new train state. Two things are
checked: the epoch's logs, and every floating-point entry of the new train state (params, layer
state, optimizer state) that was finite when the epoch began. The second matters because a step's
loss is computed *before* its update: an update that overflows the parameters (full-batch SGD at
a huge learning rate) leaves the epoch's loss finite. A finite epoch costs one reduction over the
whole state, inside the epoch's program (one reduction, not one per leaf: each is a kernel to
compile).
A rejected one is re-run once with a per-step probe to say where it first broke — the step, the
first layer with a non-finite output, gradient or updated parameter, or only the loss — and
``fit`` stops with the state it had when the epoch began, which is always finite.
"""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.core import path_string
from jaxnet.optim import apply_updates


def guard_accepts(epoch: int, logs: dict, train_state, new_state, feed, broke=None) -> bool:
    """``True`` if every value in ``logs`` is finite and no entry of ``new_state`` went
    non-finite during the epoch that started at ``train_state`` (``broke``: their
    :func:`went_non_finite`, when the epoch program computed it already). Otherwise warn where
    the epoch first broke (re-run once with :func:`finite_probe` on every step, by
    ``feed.probe_epoch``, see :mod:`jaxnet.train.feed`) and return ``False``; ``fit`` then keeps
    ``train_state``.
    """
    broken = became_non_finite(train_state, new_state, broke)
    bad_logs = {k: v for k, v in logs.items() if not np.isfinite(v)}
    if not broken and not bad_logs:
        return True
    if bad_logs:
        what = f"non-finite training loss/metrics in epoch {epoch + 1} ({logs})"
        what += f" and a non-finite train state ({_some(broken)})" if broken else ""
    else:
        what = (
            f"epoch {epoch + 1} made the train state non-finite ({_some(broken)}) although its "
            f"loss was finite ({logs}; a step's loss is computed before its update)"
        )
    where, remedy = locate(feed.probe_epoch(train_state, finite_probe), int(train_state.step))
    kept = (
        "the initial parameters" if not epoch else f"the parameters from the end of epoch {epoch}"
    )
    warnings.warn(
        f"fit: {what}; {where}. Stopped and kept {kept} (all finite). {remedy}.",
        RuntimeWarning,
        stacklevel=3,
    )
    return False


def became_non_finite(before, after, broke=None) -> list[str]:
    """Paths of the floating-point leaves of ``after`` with an entry that is not finite although
    the same entry of ``before`` was (an entry that starts non-finite, e.g. an optimizer's
    ``inf`` "best value so far", is left alone). ``broke``: :func:`went_non_finite` of the two,
    if already computed (``False`` answers without looking at the leaves)."""
    if broke is not None and not np.asarray(broke):
        return []
    flags = np.asarray(_leaves_went_non_finite(before, after))
    if not flags.any():
        return []
    leaves = jax.tree_util.tree_flatten_with_path(after)[0]
    paths = [path for path, a in leaves if _is_floating(a)]
    return [path_string(path) for path, bad in zip(paths, flags, strict=True) if bad]


def _is_floating(a) -> bool:
    return jnp.issubdtype(jnp.result_type(a), jnp.inexact)


def _floating(tree) -> list:
    return [a for a in jax.tree.leaves(tree) if _is_floating(a)]


def went_non_finite(before, after):
    """Whether an entry of a floating-point leaf of ``after`` is not finite although it was in
    ``before`` (a bool scalar; traceable: the fused epoch computes it for the state it returns,
    in the same program). Every leaf joins one vector (in the leaves' widest type, which keeps
    finiteness), so XLA compiles one reduction, not one per leaf."""

    def parts(tree):  # real vectors (a complex leaf's real and imaginary parts)
        leaves = [[a.real, a.imag] if jnp.iscomplexobj(a) else [a] for a in _floating(tree)]
        return [part.ravel() for pair in leaves for part in pair]

    before, after = parts(before), parts(after)
    if not after:
        return jnp.zeros((), bool)
    dtype = max((a.dtype for a in after), key=lambda d: jnp.finfo(d).max)

    def joined(vectors):
        return jnp.concatenate([a.astype(dtype) for a in vectors])

    return (jnp.isfinite(joined(before)) & ~jnp.isfinite(joined(after))).any()


@jax.jit
def _leaves_went_non_finite(before, after):
    """One flag per floating-point leaf: :func:`went_non_finite` of that leaf alone."""
    pairs = zip(_floating(before), _floating(after), strict=True)
    newly = [(jnp.isfinite(b) & ~jnp.isfinite(a)).any() for b, a in pairs]
    return jnp.stack(newly) if newly else jnp.zeros((0,), bool)


def _some(paths: list[str]) -> str:
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


REMEDY = "Lower the learning rate, clip gradients (optim.clip_by_global_norm) or check the data"
LOSS_REMEDY = (
    "Standardise the targets (and the inputs), use a loss that grows more slowly "
    "(losses.huber), or compute cross-entropies from logits (from_logits=True)"
)


def locate(probes, first_step: int) -> tuple[str, str]:
    """``(where, remedy)``: where :func:`finite_probe`'s per-step results first show a
    non-finite value, and what to do about it."""
    probes = jax.tree.map(np.asarray, probes)
    groups = [*probes["outputs"].values(), *probes["grads"].values(), *probes["updated"].values()]
    ok = probes["loss"].copy()
    for flags in groups:
        ok &= flags
    if ok.all():
        return (
            "re-running the epoch step by step found no non-finite loss, output, gradient or "
            "updated parameter"
        ), REMEDY
    i = int(np.argmin(ok))
    layers = sorted(probes["outputs"], key=forward_order)

    def first_bad(flags: dict) -> list[str]:
        return sorted((name for name, f in flags.items() if not f[i]), key=forward_order)

    bad_outputs = first_bad(probes["outputs"])
    bad_grads, bad_updated = first_bad(probes["grads"]), first_bad(probes["updated"])
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
    if bad_updated and not bad_grads:
        parts.append(
            f"the gradients were finite but the update made {len(bad_updated)} of "
            f"{len(probes['updated'])} parameter arrays non-finite (e.g. {bad_updated[0]}): the "
            "learning rate is far too large"
        )
    if not probes["loss"][i] and not (bad_outputs or bad_grads or bad_updated):
        output = max((name for name in layers if "/" not in name), key=forward_order)
        parts.append(
            f"only the loss overflowed: every layer's output (the model's output layer is "
            f"{output}) and every gradient stayed finite, but the loss of those outputs did "
            "not fit in the floating-point range"
        )
        return ", ".join(parts), LOSS_REMEDY
    return ", ".join(parts), REMEDY


def forward_order(path: str) -> tuple:
    """Sort key putting layer paths in forward order: ``serial`` names its children
    ``dense_0, relu_1, ..., dense_10`` (pytrees sort dict keys as strings: ``dense_10`` before
    ``dense_2``), and a parent comes before the layers inside it."""
    key = []
    for part in path.split("/"):
        match = re.search(r"_(\d+)$", part)
        key.append((int(match.group(1)) if match else -1, part))
    return tuple(key)


def finite_probe(*, grads, params, updates, outputs, loss):
    """Per step: is the loss finite, each layer's output, each gradient leaf, each parameter
    leaf after the update?"""

    def finite(tree):
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))

    def per_leaf(tree):
        return {
            path_string(path): jnp.all(jnp.isfinite(a))
            for path, a in jax.tree_util.tree_flatten_with_path(tree)[0]
        }

    return {
        "loss": jnp.isfinite(loss),
        "outputs": {name: finite(out) for name, out in outputs.items()},
        "grads": per_leaf(grads),
        "updated": per_leaf(apply_updates(params, updates)),
    }
