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

import math

import jax
import jax.numpy as jnp

from jaxnet import init as initializers
from jaxnet.core import Layer
from jaxnet.errors import ConfigError, ShapeError, check_range
from jaxnet.layers._checks import check_floating, check_rank

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}
_WHAT = {1: "time, channels", 2: "height, width, channels", 3: "depth, height, width, channels"}


def as_tuple(owner: str, what: str, value, rank: int) -> tuple[int, ...]:
    """``3 -> (3, 3)`` for rank 2; a sequence must have ``rank`` positive entries."""
    values = (value,) * rank if isinstance(value, int) else tuple(value)
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
    name = name or f"conv{rank}d"
    check_range(name, "features", features, 1)
    check_range(name, "groups", groups, 1)
    kernel_size = as_tuple(name, "kernel_size", kernel_size, rank)
    strides = as_tuple(name, "strides", strides, rank)
    dilation = as_tuple(name, "dilation", dilation, rank)
    padding = normalize_padding(name, padding, rank)
    if features % groups:
        raise ConfigError(f"features={features} is not divisible by groups={groups}", (name,))
    kernel_init_fn, bias_init_fn = initializers.get(kernel_init), initializers.get(bias_init)
    spatial = _SPATIAL[rank]
    dimension_numbers = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")

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
        k_w, k_b = jax.random.split(key)
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
        y = jax.lax.conv_general_dilated(
            x,
            params["w"],
            window_strides=strides,
            padding=padding,
            rhs_dilation=dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=groups,
        )
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
    }
    return Layer(init, apply, name, info)


def Conv1D(features: int, kernel_size, **kwargs) -> Layer:
    """1-D convolution over ``(batch, time, channels)``; kernel ``(k, in // groups, features)``.

    Keyword arguments as :func:`Conv2D` (``strides``, ``padding``, ``dilation``, ``groups``, ...).

    >>> Conv1D(8, 5, padding="SAME").init(jax.random.key(0), (100, 3))[0]
    (100, 8)
    """
    return Conv(features, kernel_size, rank=1, **kwargs)


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
