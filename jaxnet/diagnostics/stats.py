"""Per-layer gradient and activation statistics: pure ``jnp`` functions for inside a compiled step.

:func:`make_probe` returns the function that ``make_train_step(..., probe=)``, ``make_epoch`` and
``fit`` (through :class:`~jaxnet.diagnostics.GradientMonitor`) call inside the step. It returns a
small pytree of scalars, keyed by the readable layer names of a :func:`~jaxnet.serial` model::

    {"loss": scalar,
     "layers": {"dense_0": {"grad_norm": ..., "update_ratio": ..., ...},
                "relu_1":  {"activation_mean": ..., "dead_fraction": ..., ...}, ...}}

Statistics of a layer with parameters (over all of its parameter arrays together):

==================== ==========================================================================
``grad_norm``        ``||g||_2``
``grad_rms``         ``||g||_2 / sqrt(size)``: the typical gradient entry
``grad_max``         ``max |g|``
``grad_zero_fraction`` fraction of gradient entries that are exactly 0
``grad_nonfinite``   number of gradient entries that are NaN or +-inf
``param_norm``       ``||w||_2`` (before the update)
``update_norm``      ``||u||_2``, the optimizer's update (only when ``updates`` are given)
``update_ratio``     ``||u||_2 / ||w||_2``; about 1e-3 per step is the usual healthy value
==================== ==========================================================================

Statistics of an activation layer's output ``a`` of shape ``(batch, ..., units)``; a *unit* is one
index of the last axis, so for feature maps a unit is a channel seen at every position:

====================== ========================================================================
``activation_mean``    mean of ``a``
``activation_std``     standard deviation of ``a``
``dead_fraction``      ReLU only: fraction of units with ``a <= 0`` for every example (and
                       position) of the batch. Such a unit passes no gradient to its weights.
``dead_units``         ReLU only: ``(units,)`` 1.0 where the unit is dead in this batch, so a
                       verdict can ask which units stayed dead over several probed batches.
``saturated_fraction`` sigmoid/tanh only: fraction of units saturated on at least
                       ``batch_fraction`` of the batch. An entry is saturated when the derivative
                       there is below ``threshold`` times the function's largest derivative. With
                       ``u = a`` (tanh) or ``u = 2a - 1`` (sigmoid) the relative derivative is
                       ``1 - u^2`` for both, so saturated means ``|u| > sqrt(1 - threshold)``:
                       for the default 0.1, tanh outputs beyond +-0.949 and sigmoid outputs
                       below 0.026 or above 0.974.
====================== ========================================================================

>>> probe = make_probe(model)
>>> step = make_train_step(model, loss, optimizer, probe=probe)
>>> *_, logs = step(params, state, opt_state, (x, y), key)
>>> logs["probe"]["layers"]["dense_0"]["grad_norm"]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.activations import kind_of
from jaxnet.core import Layer

SATURATING = ("sigmoid", "logistic", "tanh")  # activations whose saturation is measured


def _leaves(tree) -> list:
    return [jnp.asarray(leaf, jnp.float32) for leaf in jax.tree.leaves(tree)]


def _rows(x):
    """``x`` as a matrix ``(-1, last axis)``; a scalar as ``(1, 1)``."""
    return x.reshape(1, 1) if x.ndim == 0 else x.reshape(-1, x.shape[-1])


def total(x):
    """Sum of every entry of ``x``, computed as ``x.reshape(-1, n) @ ones(n)`` then a short sum.

    XLA on CPU runs a plain float reduction as one sequential chain of additions (it may not
    reorder them); a matrix-vector product is vectorised and was 2-3x faster for the layer sizes
    of an MLP. Equal to ``jnp.sum`` up to the order of rounding.
    """
    m = _rows(jnp.asarray(x, jnp.float32))
    ones = jnp.ones((m.shape[-1],), jnp.float32)
    return jnp.sum(jnp.dot(m, ones, precision=jax.lax.Precision.HIGHEST))


def column_sums(a):
    """``(units,)`` sums over every axis but the last, as ``ones(n) @ a.reshape(n, units)``."""
    m = _rows(jnp.asarray(a, jnp.float32))
    ones = jnp.ones((m.shape[0],), jnp.float32)
    return jnp.dot(ones, m, precision=jax.lax.Precision.HIGHEST)


def sum_of_squares(tree):
    """``sum(x^2)`` over every entry of every array of ``tree`` (float32)."""
    return sum((total(leaf * leaf) for leaf in _leaves(tree)), jnp.zeros((), jnp.float32))


def global_norm(tree):
    """``sqrt(sum(x^2))`` over the whole tree, e.g. a layer's gradient norm."""
    return jnp.sqrt(sum_of_squares(tree))


def count_nonfinite(tree, sum_of_squares_value=None):
    """Number of NaN/inf entries in ``tree``.

    Given the tree's sum of squares (already computed for the norm), the count only runs when that
    sum is not finite, i.e. almost never.
    """
    leaves = _leaves(tree)

    def count():
        return sum(total(~jnp.isfinite(leaf)) for leaf in leaves)

    if sum_of_squares_value is None:
        return count()
    finite = jnp.isfinite(sum_of_squares_value)
    return jax.lax.cond(finite, lambda: jnp.zeros((), jnp.float32), count)


def gradient_stats(grads, params, updates=None) -> dict:
    """Statistics of one layer's gradients, parameters and (optionally) updates: see the module."""
    g = _leaves(grads)
    size = sum(leaf.size for leaf in g)
    squares = sum(total(leaf * leaf) for leaf in g)
    grad_norm = jnp.sqrt(squares)
    stats = {
        "grad_norm": grad_norm,
        "grad_rms": grad_norm / math.sqrt(size),
        "grad_max": functools.reduce(jnp.maximum, [jnp.max(jnp.abs(leaf)) for leaf in g]),
        "grad_zero_fraction": sum(total(leaf == 0) for leaf in g) / size,
        "grad_nonfinite": count_nonfinite(g, squares),
        "param_norm": global_norm(params),
    }
    if updates is not None:
        stats["update_norm"] = global_norm(updates)
        stats["update_ratio"] = stats["update_norm"] / jnp.maximum(stats["param_norm"], 1e-12)
    return stats


def _examples(a) -> int:
    """Entries per unit: the batch size times the number of positions."""
    return math.prod(a.shape[:-1])


def dead_units(a):
    """``(units,)`` booleans: ``a <= 0`` for every example (and position) of the batch."""
    return jnp.max(_rows(a), axis=0) <= 0


def dead_fraction(a):
    """Fraction of units (last axis) with ``a <= 0`` for every example/position of the batch."""
    return jnp.mean(dead_units(a))


def saturated_fraction(a, activation: str, threshold: float = 0.1, batch_fraction: float = 0.9):
    """Fraction of sigmoid/tanh units whose derivative is below ``threshold`` x its maximum on at
    least ``batch_fraction`` of the batch: ``|u| > sqrt(1 - threshold)``, ``u`` scaled to [-1, 1].
    """
    u = 2.0 * a - 1.0 if activation in ("sigmoid", "logistic") else a
    saturated = jnp.abs(u) > math.sqrt(1.0 - threshold)
    return jnp.mean(column_sums(saturated) / _examples(a) >= batch_fraction)


def activation_stats(
    a, activation: str, *, threshold: float = 0.1, batch_fraction: float = 0.9
) -> dict:
    """Statistics of an activation layer's output ``a`` of shape ``(batch, ..., units)``."""
    a = jnp.asarray(a, jnp.float32)
    sums, squares = column_sums(a), column_sums(a * a)
    n = a.size
    mean = jnp.sum(sums) / n
    variance = jnp.maximum(jnp.sum(squares) / n - mean * mean, 0.0)
    stats = {"activation_mean": mean, "activation_std": jnp.sqrt(variance)}
    if kind_of(activation) == "relu":
        # ReLU outputs are >= 0, so a unit is dead exactly when its column sums to 0.
        dead = (sums <= 0).astype(jnp.float32)
        stats["dead_fraction"], stats["dead_units"] = jnp.mean(dead), dead
    if activation in SATURATING:
        stats["saturated_fraction"] = saturated_fraction(a, activation, threshold, batch_fraction)
    return stats


def activation_of(name: str, layer: Layer | None = None) -> str | None:
    """The activation a child layer applies, from its ``info`` or else its name (``relu_1``).

    Returns ``None`` for layers that are not activations, or whose output is a prediction
    (softmax) or linear.
    """
    activation = (layer.info.get("activation") if layer is not None else None) or None
    if activation is None:
        base = layer.name if layer is not None else name.rsplit("_", 1)[0]
        activation = base if kind_of(base) is not None else None
    if activation is None or kind_of(activation) in ("output", "linear"):
        return None
    return activation


class PackedProbe:
    """A probe whose result is one float32 vector per step; :meth:`unpack` restores the dict.

    Inside a scanned epoch every leaf of a probe's result is its own output buffer, written at
    every step; on CPU that per-buffer cost dominates the cheap reductions (a 9-layer MLP's ~130
    scalars made an epoch ~3x slower than the statistics themselves). Packing writes one buffer.
    The layout (tree structure and shapes, all static) is recorded when the probe is traced, so
    use one ``PackedProbe`` per model.
    """

    def __init__(self, probe: Callable):
        self.probe = probe
        self.layout = None

    def __call__(self, **kwargs):
        leaves, treedef = jax.tree.flatten(self.probe(**kwargs))
        self.layout = (treedef, [tuple(leaf.shape) for leaf in leaves])
        return jnp.concatenate([jnp.ravel(leaf).astype(jnp.float32) for leaf in leaves])

    def unpack(self, packed):
        """``(..., n)`` packed results -> the probe's dict, each leaf with leading axes ``...``."""
        if self.layout is None:
            raise RuntimeError("PackedProbe.unpack: the probe has not been traced yet")
        treedef, shapes = self.layout
        packed = np.asarray(packed)
        leaves, start = [], 0
        for shape in shapes:
            size = math.prod(shape)
            leaves.append(packed[..., start : start + size].reshape(*packed.shape[:-1], *shape))
            start += size
        return jax.tree.unflatten(treedef, leaves)


def make_probe(
    model: Layer | None = None,
    *,
    packed: bool = False,
    threshold: float = 0.1,
    batch_fraction: float = 0.9,
) -> Callable:
    """The probe ``probe(grads=, params=, updates=, outputs=, loss=) -> stats`` for training hooks.

    With ``model`` (a :func:`~jaxnet.serial` model) activation layers are found from each child's
    ``info``; without it, from the child names (``relu_1``, ``sigmoid_3``). ``threshold`` and
    ``batch_fraction`` define saturation (see :func:`saturated_fraction`). ``packed=True``
    returns a :class:`PackedProbe` (one vector per step; much cheaper in a scanned epoch).

    >>> fit(model, loss, opt, x, y, callbacks=[GradientMonitor(model)])      # uses make_probe
    >>> make_epoch(model, loss, opt, 32, probe=make_probe(model), probe_every=50)
    """
    children = dict(model.info.get("children", {})) if model is not None else {}
    single = model is not None and not children  # not a serial model: one layer, the whole tree

    def probe(*, grads, params, updates=None, outputs=None, loss=None):
        if single:
            grads, params = {model.name: grads}, {model.name: params}
            updates = None if updates is None else {model.name: updates}
        layers = {}
        for name in grads:
            if jax.tree.leaves(grads[name]):
                layer_updates = None if updates is None else updates[name]
                layers[name] = gradient_stats(grads[name], params[name], layer_updates)
        for name, a in (outputs or {}).items():
            activation = activation_of(name, children.get(name))
            if activation is not None and hasattr(a, "ndim") and a.ndim >= 1:
                stats = activation_stats(
                    a, activation, threshold=threshold, batch_fraction=batch_fraction
                )
                layers[name] = {**layers.get(name, {}), **stats}
        result = {"layers": layers}
        if loss is not None:
            result["loss"] = jnp.asarray(loss, jnp.float32)
        return result

    return PackedProbe(probe) if packed else probe


def stats_at_init(model: Layer, params, state, batch, loss_fn: Callable, *, key=None, **probe_kw):
    """The probe's statistics for one forward/backward pass on ``batch = (x, y)``, no update.

    Runs in training mode (``train=True``) like a real step; ``key`` (default ``key(0)``) feeds
    dropout and the like.

    >>> stats = stats_at_init(model, params, state, (x[:128], y[:128]), losses.mse)
    """
    from jaxnet.train.step import make_loss  # diagnostics -> train, not the other way round

    objective = make_loss(model, loss_fn)
    probe = make_probe(model, **probe_kw)

    def run(params, state, x, y, key):  # one pass: op-by-op beats compiling a deep model
        grads, (_, _, data_loss, outputs) = jax.grad(objective, has_aux=True)(
            params, state, x, y, key
        )
        return probe(grads=grads, params=params, outputs=outputs, loss=data_loss)

    x, y = batch
    return run(params, state, x, y, jax.random.key(0) if key is None else key)
