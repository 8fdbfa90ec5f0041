"""Noise layers for regularization and augmentation: active only with ``train=True``, identity
at inference.

Each layer draws its noise from the ``key`` it is given. :func:`~jaxnet.serial` hands child ``i``
``fold_in(key, i)`` and ``fit`` a fresh key every step, so two layers never share a mask and a mask
never repeats across steps, while the same key always gives the same mask.

>>> from jaxnet import Dense, init_model, serial
>>> model = serial(Dense(256), jax.nn.relu, Dropout(0.5), Dense(10))
>>> params, state = init_model(model, jax.random.key(0), (64,))
>>> x = jnp.ones((4, 64))
>>> y, _ = model.apply(params, state, x, key=jax.random.key(1), train=True)
>>> y.shape
(4, 10)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxnet import registry
from jaxnet.core import Layer, constructor_info
from jaxnet.errors import ConfigError, ShapeError, check_range
from jaxnet.layers._checks import check_floating
from jaxnet.random import bernoulli, normal, random_bits

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _noise_layer(layer_type: str, name: str, noisy, **args) -> Layer:
    """A shape-preserving layer that applies ``noisy(key, x)`` in training and nothing otherwise;
    ``info`` holds ``args`` (``rate``, ``stddev``...) and the constructor call."""

    def init(key, input_shape):
        del key
        return tuple(input_shape), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params
        if not train:
            return x, state
        check_floating(name, x)
        if key is None:
            raise ConfigError(
                "train=True needs a random key: call apply(..., key=key, train=True) "
                "(fit passes one every step)",
                (name,),
            )
        return noisy(key, x), state

    return Layer(init, apply, name, {**args, **constructor_info(layer_type, **args, name=name)})


@registry.layer
def Dropout(rate: float, *, name: str = "dropout") -> Layer:
    """Inverted dropout: zero each unit with probability ``rate``, scale the rest by ``1/(1-rate)``.

    ``rate`` is the **drop** probability, as in Keras (``Dropout(0.2)`` drops 20% of the units).
    The scaling keeps every unit's expected value, so inference needs no correction.
    Shape-preserving: ``(batch, ...) -> (batch, ...)``.
    """
    check_range(name, "rate", rate, 0.0, 1.0, high_open=True)
    keep = 1.0 - rate

    def noisy(key, x):
        if rate == 0.0:
            return x
        mask = bernoulli(key, keep, x.shape)
        return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros((), x.dtype))

    return _noise_layer("Dropout", name, noisy, rate=rate)


@registry.layer
def GaussianDropout(rate: float, *, name: str = "gaussian_dropout") -> Layer:
    """Multiply each unit by ``N(1, rate / (1 - rate))`` noise: dropout's mean and variance, no 0s.

    Keras's ``GaussianDropout``: the standard deviation is ``sqrt(rate / (1 - rate))``.
    """
    check_range(name, "rate", rate, 0.0, 1.0, high_open=True)
    stddev = math.sqrt(rate / (1.0 - rate))

    def noisy(key, x):
        return x * (1.0 + stddev * normal(key, x.shape, x.dtype))

    return _noise_layer("GaussianDropout", name, noisy, rate=rate)


@registry.layer
def GaussianNoise(stddev: float, *, name: str = "gaussian_noise") -> Layer:
    """Add ``N(0, stddev**2)`` noise to every unit (a data-augmentation-like regularizer)."""
    check_range(name, "stddev", stddev, 0.0)

    def noisy(key, x):
        return x + stddev * normal(key, x.shape, x.dtype)

    return _noise_layer("GaussianNoise", name, noisy, stddev=stddev)


@registry.layer
def AlphaDropout(rate: float, *, name: str = "alpha_dropout") -> Layer:
    """Dropout for SELU networks: keeps a zero-mean, unit-variance input at mean 0 and variance 1.

    Dropped units are set to SELU's negative saturation ``-scale * alpha`` instead of 0, then an
    affine map ``a * x + b`` restores the mean and variance (Klambauer et al., 2017, section 3.4;
    the same formula as Keras's ``AlphaDropout``).
    """
    check_range(name, "rate", rate, 0.0, 1.0, high_open=True)
    saturation = -_SELU_SCALE * _SELU_ALPHA
    a = ((1.0 - rate) * (1.0 + rate * saturation**2)) ** -0.5
    b = -a * saturation * rate

    def noisy(key, x):
        if rate == 0.0:
            return x
        kept = bernoulli(key, 1.0 - rate, x.shape)
        dropped_value = jnp.asarray(saturation, x.dtype)
        return (a * jnp.where(kept, x, dropped_value) + b).astype(x.dtype)

    return _noise_layer("AlphaDropout", name, noisy, rate=rate)


@registry.layer
def RandomShift(max_shift: int, *, name: str = "random_shift") -> Layer:
    """Data augmentation: move each example by a random whole number of positions, drawn
    uniformly from ``[-max_shift, max_shift]`` per spatial axis, zeros entering at the edges
    (Keras's ``RandomTranslation`` with ``fill_mode="constant"``). Inputs
    ``(batch, *spatial, channels)``, e.g. images ``(batch, height, width, channels)``.

    >>> from jaxnet import Conv2D, serial
    >>> model = serial(RandomShift(1), Conv2D(32, 3, padding="SAME"))  # +-1 pixel, then the net
    >>> x = jnp.arange(1.0, 6.0).reshape(1, 5, 1)           # one sequence of length 5
    >>> shifted, _ = RandomShift(2).apply({}, {}, x, key=jax.random.key(1), train=True)
    >>> shifted[0, :, 0]                                    # moved by -2
    Array([3., 4., 5., 0., 0.], dtype=float32)
    """
    check_range(name, "max_shift", max_shift, 0)

    def noisy(key, x):
        if x.ndim < 3:
            raise ShapeError(
                f"expected inputs of shape (batch, *spatial, channels), got shape {x.shape}",
                (name,),
            )
        rank = x.ndim - 2
        choices = jnp.uint32(2 * max_shift + 1)  # the modulo biases by < choices / 2**32
        shifts = (random_bits(key, (x.shape[0], rank)) % choices).astype(jnp.int32) - max_shift
        padded = jnp.pad(x, [(0, 0)] + [(max_shift, max_shift)] * rank + [(0, 0)])

        def shift_one(example, shift):  # out[i] = x[i - shift] = padded[i - shift + max_shift]
            return jax.lax.dynamic_slice(example, (*(max_shift - shift), 0), x.shape[1:])

        return jax.vmap(shift_one)(padded, shifts)

    return _noise_layer("RandomShift", name, noisy, max_shift=max_shift)
