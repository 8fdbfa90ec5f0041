"""Batch and layer normalization.

Both compute ``y = (x - mean) / sqrt(var + epsilon) * scale + bias`` per feature, with learned
``params["scale"]`` (ones) and ``params["bias"]`` (zeros) of shape ``(features,)``. They differ in
where ``mean``/``var`` come from:

- :func:`BatchNorm`: over the batch (and any spatial axes) in training; over running averages kept
  in ``state`` at inference.
- :func:`LayerNorm`: over each example's own features, always; no state.

Defaults follow Keras (``momentum=0.99``, ``epsilon=1e-3``); Flax's are ``0.99`` and ``1e-5``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxnet import registry
from jaxnet.core import Layer, constructor_info
from jaxnet.errors import ConfigError, ShapeError, check_range
from jaxnet.layers._checks import check_floating


def _feature_axis(name: str, axis: int, rank: int) -> int:
    """``axis`` (counted on the batched input, may be negative) as a non-negative axis, not 0."""
    if not -rank <= axis < rank or axis % rank == 0:
        raise ConfigError(
            f"axis={axis} must name a feature axis of the batched input (rank {rank}), "
            "not the batch axis 0",
            (name,),
        )
    return axis % rank


def _init_params(features: int, center: bool, scale: bool, dtype) -> dict:
    params = {}
    if scale:
        params["scale"] = jnp.ones((features,), dtype)
    if center:
        params["bias"] = jnp.zeros((features,), dtype)
    return params


def _check_features(name: str, x, axis: int, features: int) -> None:
    if x.shape[axis] != features:
        raise ShapeError(
            f"expected {features} features on axis {axis}, got input of shape {tuple(x.shape)}",
            (name,),
        )


def _normalize(x, mean, var, params, epsilon, axis):
    """``(x - mean) * rsqrt(var + epsilon) * scale + bias``; ``mean``/``var`` broadcast to ``x``."""
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    multiplier = jax.lax.rsqrt(var + epsilon)
    if "scale" in params:
        multiplier = multiplier * params["scale"].reshape(shape)
    y = (x - mean) * multiplier
    if "bias" in params:
        y = y + params["bias"].reshape(shape)
    return y.astype(x.dtype)


@registry.layer
def BatchNorm(
    momentum: float = 0.99,
    epsilon: float = 1e-3,
    *,
    center: bool = True,
    scale: bool = True,
    axis: int = -1,
    dtype=jnp.float32,
    name: str = "batch_norm",
) -> Layer:
    """Batch normalization (Ioffe & Szegedy, 2015) with running statistics in ``state``.

    Training (``train=True``) normalises with the batch's mean and (biased) variance over every axis
    but ``axis``, and returns the updated running averages
    ``running = momentum * running + (1 - momentum) * batch``. Inference (``train=False``)
    normalises with the running averages and leaves the state unchanged. Works on
    ``(batch, features)`` and ``(batch, height, width, channels)``; place it before or after an
    activation.

    ``params = {"scale": (C,), "bias": (C,)}`` (``scale=False``/``center=False`` drop them);
    ``state = {"mean": zeros (C,), "var": ones (C,)}``. The statistics are those of the batch the
    call is given: under data parallelism (``fit(..., mesh=...)``) that is the whole global batch,
    split across devices inside one program, so XLA computes them across devices and the result
    is one device's (a test on 4 CPU devices checks it); only inside your own ``shard_map`` would
    each device see just its own shard.

    >>> from jaxnet import Dense, serial
    >>> model = serial(Dense(100, use_bias=False), BatchNorm(), jax.nn.relu, Dense(10))
    >>> _, params, state = model.init(jax.random.key(0), (64,))
    >>> state["batch_norm_1"]["mean"].shape
    (100,)
    """
    check_range(name, "momentum", momentum, 0.0, 1.0)
    check_range(name, "epsilon", epsilon, 0.0, low_open=True)

    def init(key, input_shape):
        del key
        feature_axis = _feature_axis(name, axis, len(input_shape) + 1)
        features = input_shape[feature_axis - 1]
        state = {
            "mean": jnp.zeros((features,), jnp.float32),
            "var": jnp.ones((features,), jnp.float32),
        }
        return tuple(input_shape), _init_params(features, center, scale, dtype), state

    def apply(params, state, x, *, key=None, train=False):
        del key
        check_floating(name, x)
        feature_axis = _feature_axis(name, axis, x.ndim)
        features = state["mean"].shape[0]
        _check_features(name, x, feature_axis, features)
        shape = [1] * x.ndim
        shape[feature_axis] = features
        if not train:
            mean, var = state["mean"].reshape(shape), state["var"].reshape(shape)
            return _normalize(x, mean, var, params, epsilon, feature_axis), state
        reduce_axes = tuple(i for i in range(x.ndim) if i != feature_axis)
        count = math.prod(x.shape[i] for i in reduce_axes)
        if count < 2:
            raise ShapeError(
                f"batch statistics need at least 2 values per feature, got input of shape "
                f"{tuple(x.shape)}; train with batches of 2 or more examples, use train=False, "
                "or use LayerNorm",
                (name,),
            )
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=reduce_axes, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=reduce_axes, keepdims=True)
        y = _normalize(x, mean, var, params, epsilon, feature_axis)
        batch_mean, batch_var = jax.lax.stop_gradient((mean.reshape(-1), var.reshape(-1)))
        new_state = {
            "mean": momentum * state["mean"] + (1.0 - momentum) * batch_mean,
            "var": momentum * state["var"] + (1.0 - momentum) * batch_var,
        }
        return y, new_state

    info = {
        "momentum": momentum,
        "epsilon": epsilon,
        "axis": axis,
        "normalization": "batch",
        **constructor_info(
            "BatchNorm",
            momentum=momentum,
            epsilon=epsilon,
            center=center,
            scale=scale,
            axis=axis,
            dtype=jnp.dtype(dtype).name,
            name=name,
        ),
    }
    return Layer(init, apply, name, info)


@registry.layer
def LayerNorm(
    epsilon: float = 1e-3,
    *,
    center: bool = True,
    scale: bool = True,
    axis: int = -1,
    dtype=jnp.float32,
    name: str = "layer_norm",
) -> Layer:
    """Layer normalization (Ba et al., 2016): each example normalised over its own ``axis``.

    Same in training and inference, independent of the batch size; no state.
    ``params = {"scale": (C,), "bias": (C,)}`` with ``C = x.shape[axis]``.

    >>> x = jnp.array([[1.0, 2.0, 3.0, 4.0]])
    >>> _, params, _ = LayerNorm().init(None, (4,))
    >>> y, _ = LayerNorm().apply(params, {}, x)
    >>> round(float(y.mean()), 4), round(float(y.var()), 3)  # epsilon keeps the variance below 1
    (0.0, 0.999)
    """
    check_range(name, "epsilon", epsilon, 0.0, low_open=True)

    def init(key, input_shape):
        del key
        feature_axis = _feature_axis(name, axis, len(input_shape) + 1)
        features = input_shape[feature_axis - 1]
        return tuple(input_shape), _init_params(features, center, scale, dtype), {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        check_floating(name, x)
        feature_axis = _feature_axis(name, axis, x.ndim)
        if params:
            _check_features(name, x, feature_axis, next(iter(params.values())).shape[0])
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=feature_axis, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=feature_axis, keepdims=True)
        return _normalize(x, mean, var, params, epsilon, feature_axis), state

    info = {
        "epsilon": epsilon,
        "axis": axis,
        "normalization": "layer",
        **constructor_info(
            "LayerNorm",
            epsilon=epsilon,
            center=center,
            scale=scale,
            axis=axis,
            dtype=jnp.dtype(dtype).name,
            name=name,
        ),
    }
    return Layer(init, apply, name, info)
