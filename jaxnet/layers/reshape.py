"""Layers that only change an array's shape."""

from __future__ import annotations

import math

from jaxnet import registry
from jaxnet.core import Layer, constructor_info


@registry.layer
def Flatten(name: str = "flatten") -> Layer:
    """``(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)``."""

    def init(key, input_shape):
        del key
        return (math.prod(input_shape),), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        return x.reshape(x.shape[0], -1), state

    return Layer(init, apply, name, constructor_info("Flatten", name=name))
