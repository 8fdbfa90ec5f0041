"""``Rescale``: a fixed affine map of the inputs, for data stored in its own units."""

from __future__ import annotations

import jax.numpy as jnp

from jaxnet import registry
from jaxnet.core import Layer, constructor_info
from jaxnet.errors import DTypeError


@registry.layer
def Rescale(scale: float, offset: float = 0.0, name: str = "rescale") -> Layer:
    """``y = x * scale + offset`` in float32 (Keras's ``Rescaling``), no parameters.

    Lets a model read data as stored — e.g. uint8 images memory-mapped from disk — without a
    preprocessing copy: ``serial(Rescale(1 / 255), Conv2D(32, 3), ...)``. Integer inputs are
    converted to float32 first.

    >>> Rescale(1 / 255).apply({}, {}, jnp.asarray([[0, 255]], jnp.uint8))[0]
    Array([[0., 1.]], dtype=float32)
    """

    def init(key, input_shape):
        del key
        return tuple(input_shape), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
            raise DTypeError(f"expected a numeric input, got dtype {x.dtype}", (name,))
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
        return x.astype(dtype) * jnp.asarray(scale, dtype) + jnp.asarray(offset, dtype), state

    info = constructor_info("Rescale", scale=scale, offset=offset, name=name)
    return Layer(init, apply, name, info)
