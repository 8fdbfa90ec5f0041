"""Per-layer gradient and activation statistics: pure ``jnp`` functions for inside a compiled step.

:func:`make_probe` returns the function that ``make_train_step(..., probe=)``, ``make_epoch`` and
``fit`` (through :class:`~jaxnet.diagnostics.GradientMonitor`) call inside the step. It returns a
small pytree of scalars, keyed by the readable layer names of a :func:`~jaxnet.serial` model::

    {"loss": scalar, "grad_global_norm": scalar,
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
``update_norm``      ``||u||_2``, the optimizer's update (only with ``updates``; for arrays
                     of over ``SMALL`` entries measured as applied, ``apply_updates(w, u) - w``,
                     which equals ``u`` up to rounding in the weights' dtype: :func:`updated`)
``update_ratio``     ``||u||_2 / ||w||_2``; about 1e-3 per step is the usual healthy value
``grad_histogram``   ``make_probe(histograms=True)`` only: ``(48,)`` counts of ``log2 |g|`` per
                     bucket ``[e, e + 1)``, ``e = -40 .. 7`` (:func:`log2_histogram`)
==================== ==========================================================================

``grad_global_norm`` is ``sqrt(sum of every layer's ||g||^2)``: the norm that
``clip_by_global_norm`` compares with its threshold, computed from the raw gradients (before any
clipping in the optimizer).

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

>>> model = jaxnet.serial(jaxnet.Dense(3), jaxnet.activations.Relu(), jaxnet.Dense(2))
>>> params, state = jaxnet.init_model(model, jax.random.key(0), (4,))
>>> opt = optim.sgd(0.1)
>>> step = jaxnet.make_train_step(model, losses.mse, opt, probe=make_probe(model))
>>> x, y = jnp.ones((8, 4)), jnp.zeros((8, 2))
>>> *_, logs = step(params, state, opt.init(params), (x, y), jax.random.key(1))
>>> sorted(logs["probe"]["layers"]), logs["probe"]["layers"]["dense_0"]["grad_norm"].shape
(['dense_0', 'dense_2', 'relu_1'], ())
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.activations import kind_of
from jaxnet.core import Layer
from jaxnet.objective import make_loss
from jaxnet.optim import apply_updates

SATURATING = ("sigmoid", "logistic", "tanh")  # activations whose saturation is measured


def _leaves(tree) -> list:
    """The non-empty leaves of ``tree`` as float32 arrays."""
    return [jnp.asarray(leaf, jnp.float32) for leaf in jax.tree.leaves(tree) if jnp.size(leaf)]


def _rows(x):
    """``x`` as a matrix ``(-1, last axis)``; a scalar as ``(1, 1)``."""
    return x.reshape(1, 1) if x.ndim == 0 else x.reshape(-1, x.shape[-1])


_MAGNITUDE = 0x7FFFFFFF  # float32 bits without the sign
_INF_BITS = 0x7F800000  # bits of +inf; larger magnitudes are NaNs


def _magnitude_operands(x):
    """The bits of ``|x|`` as int32, and 0/1 int32 indicators of its zeros and NaN/inf."""
    bits = jax.lax.bitcast_convert_type(jnp.asarray(x, jnp.float32), jnp.int32) & _MAGNITUDE
    return bits, (bits == 0).astype(jnp.int32), (bits >= _INF_BITS).astype(jnp.int32)


def _max_and_counts(a, b):
    return jnp.maximum(a[0], b[0]), a[1] + b[1], a[2] + b[2]


_NO_MAGNITUDES = (0, 0, 0)  # the identities of _max_and_counts (int32 bits of 0.0, no counts)


def magnitudes(x, axes=None):
    """``(max |x|, number of zeros, number of NaN/inf)`` over ``axes`` (default all), one pass.

    A float32's bits without the sign order like its magnitude (NaNs above ``inf``), so the max
    and both counts are one variadic integer reduction, which XLA vectorises. All three are
    int32; ``max |x|`` is returned as its float32 bits (:func:`from_bits` reads them), NaN where
    ``x`` holds a NaN, like ``jnp.max(jnp.abs(x))``.
    """
    axes = tuple(range(jnp.ndim(x))) if axes is None else axes
    init = tuple(jnp.int32(v) for v in _NO_MAGNITUDES)
    return jax.lax.reduce(_magnitude_operands(x), init, _max_and_counts, axes)


def gradient_pass(g):
    """``(sum g^2, max |g|, zeros, NaN/inf)`` of a whole array in one read of it.

    :func:`magnitudes`' integer reduction with the float32 sum of squares beside it: a large
    gradient is read once instead of twice. The barrier keeps XLA from sharing the square with
    an identical one elsewhere in the step (Adam's ``g^2``): a shared square is written to memory
    and read back by both users.
    """
    g = jax.lax.optimization_barrier(jnp.asarray(g, jnp.float32))

    def combine(a, b):
        return (a[0] + b[0], *_max_and_counts(a[1:], b[1:]))

    operands = (jnp.square(g), *_magnitude_operands(g))
    init = (jnp.float32(0), *(jnp.int32(v) for v in _NO_MAGNITUDES))
    return jax.lax.reduce(operands, init, combine, tuple(range(g.ndim)))


def weight_pass(w, new_w):
    """``(sum w^2, sum (new_w - w)^2)``: the weight norm and the applied update's, squared.

    Both arrays go through one barrier, so both sums read them where they lie, together; the
    difference is never written to memory.
    """
    w, new_w = jax.lax.optimization_barrier((w, new_w))
    w, new_w = jnp.asarray(w, jnp.float32), jnp.asarray(new_w, jnp.float32)
    return jnp.sum(jnp.square(w)), jnp.sum(jnp.square(new_w - w))


def _before(w, u):
    """``w``, recovered as ``(w + u) - u`` (equal up to rounding) from the new weights the step
    computes anyway: a small array read by the probe after the update would otherwise be copied
    to keep its old value."""
    return updated(w, u) - u


def from_bits(bits, xp=np):
    """int32 bits -> the float32 they encode (NumPy on the host, or ``jax.numpy``)."""
    if xp is np:
        return np.asarray(bits, np.int32).view(np.float32)
    return jax.lax.bitcast_convert_type(jnp.asarray(bits, jnp.int32), jnp.float32)


HISTOGRAM_LOW, HISTOGRAM_BINS = -40, 48
HISTOGRAM_EDGES = np.arange(HISTOGRAM_LOW, HISTOGRAM_LOW + HISTOGRAM_BINS + 1)  # of log2 |g|


def log2_histogram(x):
    """``(HISTOGRAM_BINS,)`` int32: how many entries of ``x`` have ``log2 |x|`` in each bucket
    ``[e, e + 1)`` of ``HISTOGRAM_EDGES`` (``2^-40`` to ``2^8``; smaller magnitudes fall in the
    first bucket, larger in the last). Zeros (and subnormals, below ``1.2e-38``) and NaN/inf
    are not counted (``grad_zero_fraction`` and ``grad_nonfinite`` count them). The bucket is
    the float32 exponent field, read from the bits: no logarithm is computed.
    """
    bits = jax.lax.bitcast_convert_type(jnp.ravel(jnp.asarray(x, jnp.float32)), jnp.int32)
    exponent = (bits >> 23) & 0xFF  # log2 |x| in [exponent - 127, exponent - 126)
    bucket = jnp.clip(exponent - 127 - HISTOGRAM_LOW, 0, HISTOGRAM_BINS - 1)
    counted = (exponent > 0) & (exponent < 0xFF)  # not zero (or subnormal), not NaN/inf
    bucket = jnp.where(counted, bucket, HISTOGRAM_BINS)
    return jnp.bincount(bucket, length=HISTOGRAM_BINS + 1)[:HISTOGRAM_BINS].astype(jnp.int32)


def _sum_of_squares(x):
    """``sum x^2`` as one reduction fused with its square.

    The barrier keeps XLA from sharing the square with an identical one elsewhere in the step
    (Adam's ``g^2``): a shared square is written to memory and read back by both users.
    """
    x = jax.lax.optimization_barrier(jnp.asarray(x, jnp.float32))
    return jnp.sum(jnp.square(x))


SMALL = 1 << 12  # arrays up to this many entries are reduced together, in rows of ROW entries
ROW = 256


def _in_rows(x):
    """``x`` flattened and zero-padded into ``(rows, ROW)``; and the number of padding zeros."""
    flat = jnp.ravel(jnp.asarray(x, jnp.float32))
    pad = (-flat.size) % ROW
    return jnp.pad(flat, (0, pad)).reshape(-1, ROW), pad


# Statistics are computed in two halves: ``gradient_sums``/``activation_sums`` run inside the
# compiled step and return raw sums, ``finish_*`` turn them into the statistics, with ``xp`` =
# NumPy on the host for a packed probe or ``jax.numpy`` inside a step, for any leading (step,
# model) axes. Inside the step each large parameter array is read where it lies: the gradient
# once (``g^2``, ``max |g|``, zeros, NaN/inf: :func:`gradient_pass`), the old and new weights
# once together (``w^2`` and ``u^2``, ``u = new_w - w``: :func:`weight_pass`; XLA copies the old
# weights, which a scanned epoch updates in place, but that costs less than writing ``u``: +7.6%
# against +10.2% of the MNIST-size MLP's step). The small arrays (biases, a small MLP's
# weights), for which every kernel's fixed cost outweighs its work, are laid out together in
# rows of ``ROW`` entries so that two reductions cover all of them; their columns are ``g``,
# ``u`` and ``w`` recovered as ``new_w - u`` (:func:`_before`): for them the copy of the old
# ``w`` was most of the probe, and without it probing every step of the digits MLP costs
# +20% instead of +41%.


def gradient_sums(layers: dict) -> tuple[list, dict]:
    """``{name: (grads, params, updates or None)}`` -> ``(raw sums, layout)``.

    ``raw`` is a list of blocks ``{"squares": (2 or 3, rows), "max", "zeros", "nonfinite":
    (rows,)}``: the sums of ``g^2``, ``w^2`` (and ``u^2`` of the update) and the per-row
    ``max |g|`` and zero and NaN/inf counts of ``g``; a large array is a block of one row, the
    small arrays share one block. ``layout`` (static, for :func:`finish_gradients`) holds each
    layer's ``sizes`` and, per block, the ``(layer, first row, rows, padding zeros)`` of each
    array.
    """
    blocks, spans, small, sizes = [], [], [], {}
    for name, (grads, params, updates) in layers.items():
        gs, ws = _leaves(grads), _leaves(params)
        us = [None] * len(gs) if updates is None else _leaves(updates)
        sizes[name] = sum(a.size for a in gs)
        for g, w, u in zip(gs, ws, us, strict=True):
            if g.size <= SMALL:
                small.append((name, (g, w if u is None else _before(w, u), u)))
                continue
            g_squares, largest, zeros, nonfinite = gradient_pass(g)
            if u is None:
                squares = [g_squares, _sum_of_squares(w)]
            else:
                squares = [g_squares, *weight_pass(w, updated(w, u))]
            blocks.append(
                {
                    "squares": jnp.stack(squares)[:, None],
                    "max": largest[None],
                    "zeros": zeros[None],
                    "nonfinite": nonfinite[None],
                }
            )
            spans.append([(name, 0, 1, 0)])
    if small:
        columns, span, start = [[], [], []], [], 0
        for name, arrays in small:
            for column, a in zip(columns, arrays, strict=True):
                if a is not None:
                    rows, pad = _in_rows(a)
                    column.append(rows)
            span.append((name, start, rows.shape[0], pad))
            start += rows.shape[0]
        stacked = jnp.stack([jnp.concatenate(c) for c in columns if c])  # (2 or 3, rows, ROW)
        largest, zeros, nonfinite = magnitudes(stacked[0], axes=(1,))
        squares = jnp.sum(jnp.square(stacked), axis=-1)
        blocks.append({"squares": squares, "max": largest, "zeros": zeros, "nonfinite": nonfinite})
        spans.append(span)
    return blocks, {"sizes": sizes, "spans": spans}


def finish_gradients(raw: list, layout: dict, xp=np) -> dict:
    """``{layer: statistics}`` (see the module) from :func:`gradient_sums`."""
    parts: dict[str, list] = {}
    for block, span in zip(raw, layout["spans"], strict=True):
        for name, start, rows, pad in span:
            part = slice(start, start + rows)
            parts.setdefault(name, []).append(
                (
                    xp.sum(xp.asarray(block["squares"], xp.float32)[..., part], axis=-1),
                    xp.max(from_bits(block["max"], xp)[..., part], axis=-1),  # NaN propagates
                    xp.sum(xp.asarray(block["zeros"], xp.float32)[..., part], axis=-1) - pad,
                    xp.sum(xp.asarray(block["nonfinite"], xp.float32)[..., part], axis=-1),
                )
            )
    stats = {}
    for name, arrays in parts.items():
        size = layout["sizes"][name]
        squares = sum(a[0] for a in arrays)  # (..., 2 or 3)
        largest = arrays[0][1]
        for a in arrays[1:]:
            largest = xp.maximum(largest, a[1])  # NaN propagates
        grad_norm, param_norm = xp.sqrt(squares[..., 0]), xp.sqrt(squares[..., 1])
        layer = {
            "grad_norm": grad_norm,
            "grad_rms": grad_norm / math.sqrt(size),
            "grad_max": largest,
            "grad_zero_fraction": sum(a[2] for a in arrays) / size,
            "grad_nonfinite": sum(a[3] for a in arrays),
            "param_norm": param_norm,
        }
        if squares.shape[-1] == 3:
            layer["update_norm"] = xp.sqrt(squares[..., 2])
            layer["update_ratio"] = layer["update_norm"] / xp.maximum(param_norm, 1e-12)
        stats[name] = layer
    return stats


def global_norm_of(raw: list, xp=np):
    """``sqrt(sum of every layer's ||g||^2)``: the global gradient norm, before any clipping."""
    total = sum(xp.sum(xp.asarray(b["squares"], xp.float32)[..., 0, :], axis=-1) for b in raw)
    return xp.sqrt(xp.asarray(total, xp.float32))


def updated(params, updates):
    """``apply_updates(params, updates)``: the new weights, from which the update is measured.

    The applied update ``new_w - w`` equals ``updates`` up to rounding in the parameters' dtype
    (an update too small to change a float32 weight counts as 0, which it is). For a large
    array the probe measures it rather than ``updates`` because the step computes the same
    ``params + updates`` (XLA shares it), so the optimizer's update is never written to memory
    for the probe alone: its norm reads the old and new weights, which exist anyway (on the
    MNIST-size MLP, reading ``updates`` instead cost +10% a step against +8%).
    """
    return apply_updates(params, updates)


def gradient_stats(grads, params, updates=None) -> dict:
    """Statistics of one layer's gradients, parameters and (optionally) updates: see the module."""
    raw, layout = gradient_sums({"layer": (grads, params, updates)})
    return finish_gradients(raw, layout, jnp)["layer"]


def _examples(a) -> int:
    """Entries per unit: the batch size times the number of positions."""
    return math.prod(a.shape[:-1])


def _saturated(a, activation: str, threshold: float):
    """Booleans: the sigmoid/tanh derivative at ``a`` is below ``threshold`` x its maximum."""
    u = 2.0 * a - 1.0 if activation in ("sigmoid", "logistic") else a
    return jnp.abs(u) > math.sqrt(1.0 - threshold)


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
    counts = jnp.sum(_rows(_saturated(a, activation, threshold)), axis=0)
    return jnp.mean(counts / _examples(a) >= batch_fraction)


COLUMN_PASS = 1 << 16  # ReLU outputs up to this many entries are reduced in one column pass


def _column_pass(m):
    """Per column of ``m``: ``(sum, sum of squares, largest)`` in one reduction over the rows.

    One pass instead of three saves two of the step's kernels per layer, which is most of what
    the statistics of a small activation cost (the CNN's: +7-9% a step instead of +8-11%).
    XLA:CPU does not vectorise this variadic float reduction, so a large activation takes three
    plain reductions instead (on the MNIST-size MLP's 256 x 1024 the column pass cost +15%).
    """

    def combine(a, b):
        return a[0] + b[0], a[1] + b[1], jnp.maximum(a[2], b[2])

    init = (jnp.float32(0), jnp.float32(0), jnp.float32(-jnp.inf))
    return jax.lax.reduce((m, jnp.square(m), m), init, combine, (0,))


def activation_sums(a, activation: str, threshold: float = 0.1) -> dict:
    """Raw sums of an activation ``a``: ``sum`` and ``squares`` ``(k,)``, which add up to ``sum a``
    and ``sum a^2``, and per unit the largest value (ReLU: all three in one column pass, the sums
    per unit, added up on the host: a sum of the units would be two more kernels, XLA:CPU splits
    a float reduction of over 32 entries in two) or the saturated count (an integer column
    reduction).
    """
    m = _rows(jnp.asarray(a, jnp.float32))
    sums = {"examples": jnp.float32(m.shape[0]), "units": jnp.float32(m.shape[1])}
    relu = kind_of(activation) == "relu"
    if relu and m.size <= COLUMN_PASS:  # one pass: per unit, the sums and the largest value
        unit_sums, unit_squares, sums["largest"] = _column_pass(m)
        sums["sum"], sums["squares"] = unit_sums, unit_squares
    else:
        sums["sum"], sums["squares"] = jnp.sum(m)[None], _sum_of_squares(m)[None]
        if relu:
            sums["largest"] = jnp.max(m, axis=0)  # a unit is dead iff its largest output is <= 0
    if activation in SATURATING:
        sums["saturated"] = jnp.sum(_saturated(m, activation, threshold), axis=0, dtype=jnp.int32)
    return sums


def finish_activations(sums: dict, activation: str, batch_fraction: float = 0.9, xp=np) -> dict:
    """The statistics of :func:`activation_stats` from :func:`activation_sums`."""
    total, squares = (xp.sum(xp.asarray(sums[k]), axis=-1) for k in ("sum", "squares"))
    examples, units = xp.asarray(sums["examples"]), xp.asarray(sums["units"])
    n = examples * units
    mean = total / n
    variance = xp.maximum(squares / n - mean * mean, 0.0)
    stats = {"activation_mean": mean, "activation_std": xp.sqrt(variance)}
    if "largest" in sums:
        dead = (xp.asarray(sums["largest"]) <= 0).astype(np.float32)
        stats["dead_fraction"], stats["dead_units"] = xp.mean(dead, axis=-1), dead
    if "saturated" in sums:
        counts = xp.asarray(sums["saturated"]).astype(examples.dtype)
        saturated = counts / examples[..., None] >= batch_fraction
        stats["saturated_fraction"] = xp.mean(saturated.astype(np.float32), axis=-1)
    return stats


def activation_stats(
    a, activation: str, *, threshold: float = 0.1, batch_fraction: float = 0.9
) -> dict:
    """Statistics of an activation layer's output ``a`` of shape ``(batch, ..., units)``."""
    sums = activation_sums(a, activation, threshold)
    return finish_activations(sums, activation, batch_fraction, jnp)


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
    """A probe whose result is two vectors per step, float32 and int32; :meth:`unpack` restores
    the dict.

    Inside a scanned epoch every leaf of a probe's result is its own output buffer, written at
    every step; on CPU that per-buffer cost dominates the cheap reductions (a 9-layer MLP's ~130
    scalars made an epoch ~3x slower than the statistics themselves). Packing writes two buffers;
    integer leaves (counts, float bits) go in their own vector unconverted, since each int to
    float conversion of a reduction's result would be a kernel of its own.
    ``finish(raw) -> result`` (NumPy, on the host) runs in :meth:`unpack`, so the step can return
    raw sums and leave the scalar arithmetic to the host. The layout (tree structure, shapes and
    kinds, all static) is recorded when the probe is traced, so use one ``PackedProbe`` per model.
    """

    def __init__(self, probe: Callable, finish: Callable | None = None):
        self.probe, self.finish = probe, finish
        self.layout = None

    def __call__(self, **kwargs):
        leaves, treedef = jax.tree.flatten(self.probe(**kwargs))
        integer = [jnp.issubdtype(jnp.result_type(leaf), jnp.integer) for leaf in leaves]
        self.layout = (
            treedef,
            [(tuple(jnp.shape(a)), bool(i)) for a, i in zip(leaves, integer, strict=True)],
        )
        floats = [
            jnp.ravel(a).astype(jnp.float32) for a, i in zip(leaves, integer, strict=True) if not i
        ]
        ints = [jnp.ravel(a).astype(jnp.int32) for a, i in zip(leaves, integer, strict=True) if i]
        return (
            jnp.concatenate(floats) if floats else jnp.zeros(0, jnp.float32),
            jnp.concatenate(ints) if ints else jnp.zeros(0, jnp.int32),
        )

    def unpack(self, packed):
        """``((..., n), (..., m))`` packed results -> the probe's dict, each leaf with leading
        axes ``...``."""
        if self.layout is None:
            raise RuntimeError("PackedProbe.unpack: the probe has not been traced yet")
        treedef, shapes = self.layout
        vectors = [np.asarray(packed[0]), np.asarray(packed[1])]
        starts, leaves = [0, 0], []
        for shape, integer in shapes:
            vector, size = vectors[integer], math.prod(shape)
            start = starts[integer]
            leaves.append(vector[..., start : start + size].reshape(*vector.shape[:-1], *shape))
            starts[integer] += size
        raw = jax.tree.unflatten(treedef, leaves)
        return raw if self.finish is None else self.finish(raw)


def make_probe(
    model: Layer | None = None,
    *,
    packed: bool = False,
    threshold: float = 0.1,
    batch_fraction: float = 0.9,
    histograms: bool = False,
) -> Callable:
    """The probe ``probe(grads=, params=, updates=, outputs=, loss=) -> stats`` for training hooks.

    With ``model`` (a :func:`~jaxnet.serial` model) activation layers are found from each child's
    ``info``; without it, from the child names (``relu_1``, ``sigmoid_3``). ``threshold`` and
    ``batch_fraction`` define saturation (see :func:`saturated_fraction`). ``packed=True``
    returns a :class:`PackedProbe` (two vectors per step; much cheaper in a scanned epoch).
    ``histograms=True`` adds each layer's ``grad_histogram`` (:func:`log2_histogram`).

    ::

        fit(model, loss, opt, x, y, monitor=GradientMonitor(model))      # uses make_probe
        make_epoch(model, loss, opt, 32, probe=make_probe(model), probe_every=50)
    """
    children = dict(model.info.get("children", {})) if model is not None else {}
    single = model is not None and not children  # not a serial model: one layer, the whole tree

    def activation(name):
        return activation_of(name, children.get(name))

    layout = {}  # of the gradient sums, recorded when the probe is traced

    def sums(*, grads, params, updates=None, outputs=None, loss=None):
        """Raw sums, computed inside the step."""
        if single:
            grads, params = {model.name: grads}, {model.name: params}
            updates = None if updates is None else {model.name: updates}
        trained = {
            name: (grads[name], params[name], None if updates is None else updates[name])
            for name in grads
            if jax.tree.leaves(grads[name])
        }
        gradients, layout["gradients"] = gradient_sums(trained)
        activations = {}
        for name, a in (outputs or {}).items():
            if activation(name) is not None and hasattr(a, "ndim") and a.ndim >= 1:
                activations[name] = activation_sums(a, activation(name), threshold)
        result = {"gradients": gradients, "activations": activations}
        if histograms:
            result["histograms"] = {
                name: sum(log2_histogram(g) for g in _leaves(trained[name][0])) for name in trained
            }
        if loss is not None:
            result["loss"] = jnp.asarray(loss, jnp.float32)
        return result

    def finish(raw, xp=np):
        layers = finish_gradients(raw["gradients"], layout["gradients"], xp)
        for name, part in raw["activations"].items():
            stats = finish_activations(part, activation(name), batch_fraction, xp)
            layers[name] = {**layers.get(name, {}), **stats}
        for name, counts in raw.get("histograms", {}).items():
            layers[name]["grad_histogram"] = xp.asarray(counts, xp.float32)
        order = {name: i for i, name in enumerate(children)}  # depth order for serial models
        layers = dict(sorted(layers.items(), key=lambda item: order.get(item[0], len(order))))
        result = {"layers": layers, "grad_global_norm": global_norm_of(raw["gradients"], xp)}
        if "loss" in raw:
            result["loss"] = raw["loss"]
        return result

    if packed:
        return PackedProbe(sums, finish)

    def probe(**kwargs):
        return finish(sums(**kwargs), jnp)

    return probe


def stats_at_init(model: Layer, params, state, batch, loss_fn: Callable, *, key=None, **probe_kw):
    """The probe's statistics for one forward/backward pass on ``batch = (x, y)``, no update.

    Runs in training mode (``train=True``) like a real step; ``key`` (default ``key(0)``) feeds
    dropout and the like.

    >>> model = jaxnet.serial(jaxnet.Dense(3), jaxnet.activations.Tanh(), jaxnet.Dense(1))
    >>> params, state = jaxnet.init_model(model, jax.random.key(0), (4,))
    >>> stats = stats_at_init(model, params, state, (jnp.ones((8, 4)), jnp.zeros((8, 1))),
    ...                       losses.mse)
    >>> sorted(stats["layers"]["tanh_1"])[:2]
    ['activation_mean', 'activation_std']
    """

    objective = make_loss(model, loss_fn)
    probe = make_probe(model, **probe_kw)

    def run(params, state, x, y, key):  # one pass: op-by-op beats compiling a deep model
        grads, (_, _, data_loss, outputs) = jax.grad(objective, has_aux=True)(
            params, state, x, y, key
        )
        return probe(grads=grads, params=params, outputs=outputs, loss=data_loss)

    x, y = batch
    return run(params, state, x, y, jax.random.key(0) if key is None else key)
