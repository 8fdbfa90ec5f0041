"""Pooling layers (no parameters): windowed max/average, global max/average, nearest upsampling.

Inputs are channels-last, ``(batch, *spatial, channels)``; pooling acts on every spatial axis and
never mixes channels. Window, stride and padding follow :mod:`jaxnet.layers.conv` (same output
length formula); ``strides`` defaults to the window, as in Keras.

>>> MaxPool(2).init(jax.random.key(0), (28, 28, 32))[0]
(14, 14, 32)
>>> GlobalAvgPool().init(jax.random.key(0), (7, 7, 64))[0]
(64,)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnet import registry
from jaxnet.core import Layer, constructor_info
from jaxnet.errors import ShapeError
from jaxnet.layers.conv import as_tuple, normalize_padding, output_length


def _check_spatial(name: str, shape, rank: int | None = None) -> None:
    if len(shape) < 2 or (rank is not None and len(shape) != rank + 1):
        want = "at least 1 spatial axis" if rank is None else f"{rank} spatial axes"
        raise ShapeError(
            f"expected inputs of shape (batch, *spatial, channels) with {want}, "
            f"got per-example shape {tuple(shape)}",
            (name,),
        )


def _window_layer(layer_type: str, kind: str, window, strides, padding, name: str) -> Layer:
    """Shared body of :func:`MaxPool` and :func:`AvgPool`; the spatial rank comes from the input."""

    def config(rank: int):
        window_t = as_tuple(name, "window", window, rank)
        strides_t = window_t if strides is None else as_tuple(name, "strides", strides, rank)
        return window_t, strides_t, normalize_padding(name, padding, rank)

    def spatial_rank() -> int | None:
        for arg in (window, strides):
            if arg is not None and not isinstance(arg, int):
                return len(tuple(arg))
        return None

    def init(key, input_shape):
        del key
        _check_spatial(name, input_shape, spatial_rank())
        rank = len(input_shape) - 1
        window_t, strides_t, pad = config(rank)
        per_axis = (pad,) * rank if isinstance(pad, str) else pad
        out = tuple(
            output_length(name, n, w, s, 1, p)
            for n, w, s, p in zip(input_shape[:-1], window_t, strides_t, per_axis, strict=True)
        )
        return (*out, input_shape[-1]), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        _check_spatial(name, x.shape[1:], spatial_rank())
        window_t, strides_t, pad = config(x.ndim - 2)
        if strides_t == window_t and not _pads_needed(x.shape[1:-1], window_t, pad):
            return _tiled(kind, x, window_t), state
        dims, steps = (1, *window_t, 1), (1, *strides_t, 1)
        pads = pad if isinstance(pad, str) else ((0, 0), *pad, (0, 0))
        if kind == "max":
            y = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, dims, steps, pads)
            return y.astype(x.dtype), state
        total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, steps, pads)
        # Divide by the number of real (unpadded) entries in each window, as Keras does.
        count = jax.lax.reduce_window(jnp.ones_like(x), 0.0, jax.lax.add, dims, steps, pads)
        return total / count, state

    args = {"window": window, "strides": strides, "padding": padding}
    return Layer(init, apply, name, {**args, **constructor_info(layer_type, **args, name=name)})


def _pads_needed(sizes, window, pad) -> bool:
    if pad == "VALID":
        return False
    if pad == "SAME":
        return any(n % w for n, w in zip(sizes, window, strict=True))
    return any(lo or hi for lo, hi in pad)


def _tiled(kind: str, x, window):
    """Pooling over non-overlapping windows (``strides == window``, no padding) as a reshape and
    a reduction: XLA:CPU runs ``reduce_window`` and its gradient (``select_and_scatter``) as slow
    loop nests, 2x slower for a small CNN's pooling. VALID semantics: a remainder is dropped."""
    shape, crop = [x.shape[0]], [slice(None)]
    for n, w in zip(x.shape[1:-1], window, strict=True):
        shape += [n // w, w]
        crop.append(slice(0, n // w * w))
    tiles = x[tuple(crop)].reshape(*shape, x.shape[-1])
    rank = len(window)
    axes = tuple(range(2, 2 * rank + 1, 2))
    if kind == "avg":
        return jnp.mean(tiles, axis=axes)
    # (batch, *windows, window elements in row-major order, channels), for first_max.
    order = (0, *range(1, 2 * rank, 2), *axes, 2 * rank + 1)
    tiles = tiles.transpose(order).reshape(shape[0], *shape[1::2], -1, x.shape[-1])
    return first_max(tiles)


@jax.custom_jvp
def first_max(x):
    """``max(x, axis=-2)``, whose gradient goes to the *first* maximum along that axis (ties
    included), as ``lax.reduce_window``'s does (``select_and_scatter`` keeps the first element
    that is ``>=`` the others), and so Flax's, Keras's and PyTorch's max pooling; ``jnp.max``
    would split it evenly between tied maxima."""
    return jnp.max(x, axis=-2)


@first_max.defjvp
def _first_max_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    first = jnp.argmax(x, axis=-2)  # the first index of the maximum (NaN counts as the maximum)
    chosen = jnp.arange(x.shape[-2])[:, None] == first[..., None, :]
    return jnp.max(x, axis=-2), jnp.sum(jnp.where(chosen, x_dot, 0), axis=-2)


@registry.layer
def MaxPool(window=2, strides=None, padding="VALID", name: str = "max_pool") -> Layer:
    """The largest value in each ``window``; padded positions count as ``-inf``.

    ``window``/``strides``: an int (same on every spatial axis) or one per axis; ``strides``
    defaults to ``window``. ``padding``: ``"VALID"``, ``"SAME"`` or ``(lo, hi)`` pairs.
    The gradient flows only to each window's maximum; between tied maxima, all of it to the
    first in row-major window order, as ``lax.reduce_window`` (and so Flax, Keras and PyTorch)
    does, whether the windows overlap or not.
    """
    return _window_layer("MaxPool", "max", window, strides, padding, name)


@registry.layer
def AvgPool(window=2, strides=None, padding="VALID", name: str = "avg_pool") -> Layer:
    """The mean of each ``window``; with padding, the mean of the real entries only (Keras'
    convention; Flax's ``avg_pool(count_include_pad=False)``)."""
    return _window_layer("AvgPool", "avg", window, strides, padding, name)


def _global_layer(layer_type: str, reduce, name: str) -> Layer:
    def init(key, input_shape):
        del key
        _check_spatial(name, input_shape)
        return (input_shape[-1],), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        _check_spatial(name, x.shape[1:])
        return reduce(x, axis=tuple(range(1, x.ndim - 1))), state

    return Layer(init, apply, name, constructor_info(layer_type, name=name))


@registry.layer
def GlobalMaxPool(name: str = "global_max_pool") -> Layer:
    """``(batch, *spatial, channels) -> (batch, channels)``: each channel's maximum."""
    return _global_layer("GlobalMaxPool", jnp.max, name)


@registry.layer
def GlobalAvgPool(name: str = "global_avg_pool") -> Layer:
    """``(batch, *spatial, channels) -> (batch, channels)``: each channel's mean (the 'global
    pooling' that replaces a large dense layer on top of a CNN)."""
    return _global_layer("GlobalAvgPool", jnp.mean, name)


@registry.layer
def UpSample(factor=2, name: str = "upsample") -> Layer:
    """Nearest-neighbour upsampling: each spatial entry repeated ``factor`` times per axis.

    ``(batch, h, w, c) -> (batch, h * fh, w * fw, c)``; the decoder's counterpart of pooling.
    """

    def factors(rank: int):
        return as_tuple(name, "factor", factor, rank)

    def init(key, input_shape):
        del key
        _check_spatial(name, input_shape)
        f = factors(len(input_shape) - 1)
        return (*(n * k for n, k in zip(input_shape[:-1], f, strict=True)), input_shape[-1]), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        _check_spatial(name, x.shape[1:])
        for axis, k in enumerate(factors(x.ndim - 2), start=1):
            x = jnp.repeat(x, k, axis=axis)
        return x, state

    info = {"factor": factor, **constructor_info("UpSample", factor=factor, name=name)}
    return Layer(init, apply, name, info)
