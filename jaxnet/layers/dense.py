"""Fully connected layer."""

from __future__ import annotations

import numbers

import jax.numpy as jnp

from jaxnet import init as initializers
from jaxnet import random, registry
from jaxnet.core import Layer, constructor_info
from jaxnet.errors import ShapeError, check_int
from jaxnet.layers._checks import check_floating, check_last_axis


@registry.layer
def Dense(
    units: int,
    *,
    kernel_init="glorot_uniform",
    bias_init="zeros",
    use_bias: bool = True,
    dtype=jnp.float32,
    name: str = "dense",
) -> Layer:
    """``y = x @ w + b`` with ``w`` of shape ``(in, units)`` and ``b`` of shape ``(units,)``.

    Input ``(..., in)``, output ``(..., units)``. ``kernel_init`` is an initializer or its name;
    the default ``glorot_uniform`` matches Keras — use ``he_normal`` before ReLU and
    ``lecun_normal`` before SELU.

    >>> _, params, _ = Dense(3, kernel_init="he_normal").init(jax.random.key(0), (5,))
    >>> params["w"].shape, params["b"].shape
    ((5, 3), (3,))
    """
    check_int(name, "units", units, 1)
    kernel_init_fn, bias_init_fn = initializers.get(kernel_init), initializers.get(bias_init)

    def init(key, input_shape):
        if isinstance(input_shape, numbers.Integral | str):
            raise ShapeError(
                f"input_shape must be a tuple of ints, e.g. (3,), got {input_shape!r}", (name,)
            )
        if not all(isinstance(d, numbers.Integral) for d in input_shape):  # several inputs
            raise ShapeError(
                f"expected one array input, got several inputs of shapes {input_shape}; select "
                "or concatenate them first (jaxnet.topology.select / concat)",
                (name,),
            )
        if len(input_shape) < 1:
            raise ShapeError(
                f"expected inputs with a feature axis, got shape {input_shape}", (name,)
            )
        k_w, k_b = random.split(key)
        params = {"w": kernel_init_fn(k_w, (input_shape[-1], units), dtype)}
        if use_bias:
            params["b"] = bias_init_fn(k_b, (units,), dtype)
        return (*input_shape[:-1], units), params, {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        check_floating(name, x)
        check_last_axis(name, x, params["w"].shape[0])
        y = jnp.dot(x, params["w"])
        if use_bias:
            y = y + params["b"]
        return y, state

    info = {
        "units": units,
        "kernel_init": initializers.name_of(kernel_init),
        "has_kernel": True,
        **constructor_info(
            "Dense",
            units=units,
            kernel_init=initializers.spec_of(kernel_init),
            bias_init=initializers.spec_of(bias_init),
            use_bias=use_bias,
            dtype=jnp.dtype(dtype).name,
            name=name,
        ),
    }
    return Layer(init, apply, name, info)
