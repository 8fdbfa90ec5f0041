"""Convolution layers: channels-last, any stride, padding, dilation and group count.

A ``Conv2D`` kernel has shape ``(kh, kw, in_channels // groups, features)`` (Keras' and Flax's
layout, so weights map over unchanged) and the bias ``(features,)``. Inputs are
``(batch, height, width, channels)``; ``Conv1D`` takes ``(batch, time, channels)``.

Output length along each spatial axis (``k_eff = (k - 1) * dilation + 1``):

===========================  ===========================================
padding                      output length
===========================  ===========================================
``"VALID"``                  ``floor((n - k_eff) / stride) + 1``
``"SAME"``                   ``ceil(n / stride)``
``((lo, hi), ...)`` or int   ``floor((n + lo + hi - k_eff) / stride) + 1``
===========================  ===========================================

>>> conv = Conv2D(32, 3, padding="SAME")
>>> out_shape, params, _ = conv.init(jax.random.key(0), (28, 28, 1))
>>> out_shape, params["w"].shape
((28, 28, 32), (3, 3, 1, 32))
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxnet import init as initializers
from jaxnet import random, registry
from jaxnet.core import Layer, constructor_info
from jaxnet.errors import ConfigError, ShapeError, check_int
from jaxnet.layers._checks import check_floating, check_rank

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}
_WHAT = {1: "time, channels", 2: "height, width, channels", 3: "depth, height, width, channels"}


def as_tuple(owner: str, what: str, value, rank: int) -> tuple[int, ...]:
    """``3 -> (3, 3)`` for rank 2; a sequence must have ``rank`` positive int entries."""
    values = (value,) * rank if not isinstance(value, tuple | list) else tuple(value)
    if len(values) != rank or not all(isinstance(v, int) and v >= 1 for v in values):
        raise ConfigError(
            f"{what} must be a positive int or {rank} positive ints, got {value!r}", (owner,)
        )
    return values


def normalize_padding(owner: str, padding, rank: int):
    """``"SAME"``/``"VALID"`` (any case), an int ``p`` (``(p, p)`` per axis) or ``rank`` pairs."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ConfigError(
                f"padding must be 'SAME', 'VALID' or pairs, got {padding!r}", (owner,)
            )
        return padding.upper()
    if isinstance(padding, int):
        padding = ((padding, padding),) * rank
    pairs = tuple(tuple(pair) for pair in padding)
    if len(pairs) != rank or not all(len(p) == 2 and min(p) >= 0 for p in pairs):
        raise ConfigError(
            f"explicit padding must be {rank} (low, high) pairs of ints >= 0, got {padding!r}",
            (owner,),
        )
    return pairs


def output_length(owner: str, n: int, window: int, stride: int, dilation: int, padding) -> int:
    """Output length of a sliding window over ``n`` positions (see the module table)."""
    effective = (window - 1) * dilation + 1
    if padding == "SAME":
        return -(-n // stride)
    low, high = (0, 0) if padding == "VALID" else padding
    if n + low + high < effective:
        raise ShapeError(
            f"input length {n} (padded {n + low + high}) is shorter than the window "
            f"{effective} (size {window}, dilation {dilation})",
            (owner,),
        )
    return (n + low + high - effective) // stride + 1


def _channels_last(rank: int) -> tuple[str, str, str]:
    spatial = _SPATIAL[rank]
    return f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def convolve(x, w, strides, pads, dilation, groups):
    """``lax.conv_general_dilated`` of ``x (batch, *spatial, channels)`` with a kernel
    ``w (*window, channels // groups, features)``; ``pads`` holds one ``(low, high)`` per axis.

    The gradients are the same convolutions JAX's own rules compute, but written so that every
    backward convolution is channels-last too: XLA:CPU runs a convolution of any other layout
    inside a loop (``fit``'s scanned epoch) as a slow naive loop nest (jax issue 12868; 4x slower
    epochs for a small CNN). Reverse mode only (``jax.grad``/``vjp``), like any ``custom_vjp``.
    """
    rank = x.ndim - 2
    return jax.lax.conv_general_dilated(
        x,
        w,
        strides,
        pads,
        rhs_dilation=dilation,
        dimension_numbers=_channels_last(rank),
        feature_group_count=groups,
    )


def _convolve_forward(x, w, strides, pads, dilation, groups):
    return convolve(x, w, strides, pads, dilation, groups), (x, w)


def _convolve_backward(strides, pads, dilation, groups, residuals, dy):
    x, w = residuals
    rank, window = x.ndim - 2, w.shape[: x.ndim - 2]
    spatial = tuple(range(rank))
    layout = _channels_last(rank)
    k_eff = [(k - 1) * d + 1 for k, d in zip(window, dilation, strict=True)]
    sizes = zip(k_eff, pads, x.shape[1:-1], dy.shape[1:-1], strides, strict=True)
    in_pads, kernel_pads = [], []
    for k, (low, _), n, m, s in sizes:
        in_pads.append((k - low - 1, n + low - (m - 1) * s - 1))
        kernel_pads.append((low, (m - 1) * s + k - n - low))
    # Input gradient: dy, dilated by the strides, against the flipped kernel with its input and
    # output channels swapped within each group: (*window, c/g, g * o/g) -> (*window, o/g, c).
    per_group = w.shape[-1] // groups
    w_t = jnp.flip(w, spatial).reshape(*window, w.shape[-2], groups, per_group)
    w_t = jnp.moveaxis(w_t, (-3, -2, -1), (-1, -2, -3)).reshape(*window, per_group, -1)
    dx = jax.lax.conv_general_dilated(
        dy,
        w_t,
        (1,) * rank,
        in_pads,
        lhs_dilation=strides,
        rhs_dilation=dilation,
        dimension_numbers=layout,
        feature_group_count=groups,
    )
    # Kernel gradient: the input's channels act as the batch and its examples as the contracted
    # channels, (c, *spatial, n) against (*out_spatial, n, o) -> (c/g, *window, o).
    dw = jax.lax.conv_general_dilated(
        jnp.moveaxis(x, (0, -1), (-1, 0)),
        jnp.moveaxis(dy, 0, -2),
        dilation,
        kernel_pads,
        rhs_dilation=strides,
        dimension_numbers=layout,
        batch_group_count=groups,
    )
    return dx, jnp.moveaxis(dw, 0, -2)


convolve.defvjp(_convolve_forward, _convolve_backward)


@registry.layer
def Conv(
    features: int,
    kernel_size,
    *,
    rank: int,
    strides=1,
    padding="VALID",
    dilation=1,
    groups: int = 1,
    kernel_init="glorot_uniform",
    bias_init="zeros",
    use_bias: bool = True,
    dtype=jnp.float32,
    name: str | None = None,
) -> Layer:
    """An N-D convolution (``rank`` spatial axes) via ``jax.lax.conv_general_dilated``.

    ``groups`` splits the input and output channels into that many independent convolutions
    (``feature_group_count``; ``groups == in_channels`` is a depthwise convolution). Fans of the
    default ``glorot_uniform`` count the receptive field: ``fan_in = prod(kernel) * in / groups``.
    """
    args = dict(
        features=features,
        kernel_size=kernel_size,
        **({} if rank in (1, 2) else {"rank": rank}),
        strides=strides,
        padding=padding,
        dilation=dilation,
        groups=groups,
        kernel_init=initializers.spec_of(kernel_init),
        bias_init=initializers.spec_of(bias_init),
        use_bias=use_bias,
        dtype=jnp.dtype(dtype).name,
        name=name,
    )  # as given, for the description
    name = name or f"conv{rank}d"
    check_int(name, "features", features, 1)
    check_int(name, "groups", groups, 1)
    kernel_size = as_tuple(name, "kernel_size", kernel_size, rank)
    strides = as_tuple(name, "strides", strides, rank)
    dilation = as_tuple(name, "dilation", dilation, rank)
    padding = normalize_padding(name, padding, rank)
    if features % groups:
        raise ConfigError(f"features={features} is not divisible by groups={groups}", (name,))
    kernel_init_fn, bias_init_fn = initializers.get(kernel_init), initializers.get(bias_init)

    def check_channels(channels: int) -> None:
        if channels % groups:
            raise ShapeError(
                f"input channels ({channels}) must be divisible by groups={groups}", (name,)
            )

    def init(key, input_shape):
        check_rank(name, input_shape, rank + 1, _WHAT[rank])
        channels = input_shape[-1]
        check_channels(channels)
        per_axis = (padding,) * rank if isinstance(padding, str) else padding
        out_spatial = tuple(
            output_length(name, n, k, s, d, p)
            for n, k, s, d, p in zip(
                input_shape[:-1], kernel_size, strides, dilation, per_axis, strict=True
            )
        )
        k_w, k_b = random.split(key)
        params = {"w": kernel_init_fn(k_w, (*kernel_size, channels // groups, features), dtype)}
        if use_bias:
            params["b"] = bias_init_fn(k_b, (features,), dtype)
        return (*out_spatial, features), params, {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        check_floating(name, x)
        channels = params["w"].shape[-2] * groups
        if x.ndim != rank + 2 or x.shape[-1] != channels:
            raise ShapeError(
                f"expected inputs of shape (batch, {_WHAT[rank]}) with {channels} channels, "
                f"got shape {tuple(x.shape)}",
                (name,),
            )
        pads = padding
        if isinstance(padding, str):
            k_eff = [(k - 1) * d + 1 for k, d in zip(kernel_size, dilation, strict=True)]
            pads = tuple(jax.lax.padtype_to_pads(x.shape[1:-1], k_eff, strides, padding))
        y = convolve(x, params["w"], strides, pads, dilation, groups)
        if use_bias:
            y = y + params["b"]
        return y, state

    info = {
        "features": features,
        "kernel_size": kernel_size,
        "strides": strides,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "kernel_init": initializers.name_of(kernel_init),
        "has_kernel": True,
        "receptive_field": math.prod(kernel_size),
        **constructor_info(f"Conv{rank}D" if rank in (1, 2) else "Conv", **args),
    }
    return Layer(init, apply, name, info)


@registry.layer(signature=Conv)
def Conv1D(features: int, kernel_size, **kwargs) -> Layer:
    """1-D convolution over ``(batch, time, channels)``; kernel ``(k, in // groups, features)``.

    Keyword arguments as :func:`Conv2D` (``strides``, ``padding``, ``dilation``, ``groups``, ...).

    >>> Conv1D(8, 5, padding="SAME").init(jax.random.key(0), (100, 3))[0]
    (100, 8)
    """
    return Conv(features, kernel_size, rank=1, **kwargs)


@registry.layer(signature=Conv)
def Conv2D(features: int, kernel_size, **kwargs) -> Layer:
    """2-D convolution over ``(batch, height, width, channels)``.

    Args:
      features: output channels.
      kernel_size: ``k`` or ``(kh, kw)``.
      strides, dilation: an int or one per spatial axis (default 1).
      padding: ``"VALID"`` (default, as Keras), ``"SAME"``, an int, or ``((lo, hi), (lo, hi))``.
      groups: ``feature_group_count``; in and out channels must be divisible by it.
      kernel_init, bias_init, use_bias, dtype, name: as :func:`~jaxnet.layers.Dense`.

    >>> Conv2D(16, 3, strides=2, padding="SAME").init(jax.random.key(0), (8, 8, 1))[0]
    (4, 4, 16)
    """
    return Conv(features, kernel_size, rank=2, **kwargs)
