"""Weight initializers: ``init(key, shape, dtype=float32) -> array``.

Fans follow Keras/JAX: for a dense kernel ``(in, out)`` fan_in = in, fan_out = out; for a conv
kernel ``(*spatial, in, out)`` both are multiplied by the receptive field ``prod(spatial)``.

=============  ===================  =================================================
name           variance             use with (:func:`recommended_for`)
=============  ===================  =================================================
glorot/xavier  2 / (fan_in+fan_out) none, tanh, logistic, softmax (and softplus, step)
he/kaiming     2 / fan_in           ReLU and its variants: leaky ReLU, GELU, Swish/SiLU
lecun          1 / fan_in           SELU and ELU
=============  ===================  =================================================

``*_normal`` draws from a normal **truncated at two standard deviations** and rescaled so the
variance is exactly the one above (as Keras and ``jax.nn.initializers`` do); ``*_uniform`` draws
from ``U(-l, l)`` with ``l = sqrt(3 * variance)``.

>>> w = he_normal(jax.random.key(0), (64, 100))
>>> w.shape, w.dtype
((64, 100), dtype('float32'))
>>> from jaxnet.layers import Dense
>>> dense = Dense(100, kernel_init="he_normal")   # a name works wherever an initializer does
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxnet import random
from jaxnet.core import Unrecorded
from jaxnet.errors import ConfigError

Initializer = Callable  # (key, shape, dtype) -> array

# The std of a standard normal truncated to [-2, 2]; dividing by it restores unit variance.
_TRUNCATED_STD = 0.87962566103423978


def fans(shape) -> tuple[float, float]:
    """``(fan_in, fan_out)`` of a kernel of ``shape``: ``(in, out)`` or ``(*spatial, in, out)``."""
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def variance_scaling(scale: float, mode: str, distribution: str, name: str | None = None):
    """Initializer with variance ``scale / fan`` (``fan`` per ``mode``: fan_in, fan_out, fan_avg).

    ``distribution`` is ``"truncated_normal"`` (rescaled to the exact variance) or ``"uniform"``.
    """
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ConfigError(f"mode must be fan_in, fan_out or fan_avg, got {mode!r}", ("init",))
    if distribution not in ("truncated_normal", "uniform"):
        raise ConfigError(
            f"distribution must be truncated_normal or uniform, got {distribution!r}", ("init",)
        )

    def init(key, shape, dtype=jnp.float32):
        fan_in, fan_out = fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(fan, 1.0)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return _uniform(key, shape, dtype, -limit, limit)
        std = math.sqrt(variance) / _TRUNCATED_STD
        return std * _truncated_normal(key, -2.0, 2.0, shape, dtype)

    init.__name__ = name or f"variance_scaling({scale}, {mode!r}, {distribution!r})"
    return init


glorot_normal = variance_scaling(1.0, "fan_avg", "truncated_normal", "glorot_normal")
glorot_uniform = variance_scaling(1.0, "fan_avg", "uniform", "glorot_uniform")
he_normal = variance_scaling(2.0, "fan_in", "truncated_normal", "he_normal")
he_uniform = variance_scaling(2.0, "fan_in", "uniform", "he_uniform")
lecun_normal = variance_scaling(1.0, "fan_in", "truncated_normal", "lecun_normal")
lecun_uniform = variance_scaling(1.0, "fan_in", "uniform", "lecun_uniform")
xavier_normal, xavier_uniform = glorot_normal, glorot_uniform
kaiming_normal, kaiming_uniform = he_normal, he_uniform


# The draws: ``jax.random``'s; a host key's numbers come from bits that NumPy drew (the same
# numbers; :func:`jaxnet.random.init_on_host`).
def _uniform(key, shape, dtype, minval, maxval):
    if isinstance(key, random.HostKey):
        return random.uniform_from_bits(random.drawn_bits(key, shape, dtype), minval, maxval)
    return jax.random.uniform(key, shape, dtype, minval, maxval)


def _truncated_normal(key, lower, upper, shape, dtype):
    if isinstance(key, random.HostKey):
        bits = random.drawn_bits(key, shape, dtype)
        return random.truncated_normal_from_bits(bits, lower, upper)
    return jax.random.truncated_normal(key, lower, upper, shape, dtype)


def _normal(key, shape, dtype):
    if isinstance(key, random.HostKey):
        return random.normal_from_bits(random.drawn_bits(key, shape, dtype))
    return jax.random.normal(key, shape, dtype)


def constant(value: float) -> Initializer:
    """Every entry equals ``value``."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)

    init.__name__ = f"constant({value})"
    return init


def zeros(key, shape, dtype=jnp.float32):
    """All zeros (the default bias initializer)."""
    del key
    return jnp.zeros(shape, dtype)


def ones(key, shape, dtype=jnp.float32):
    """All ones (e.g. a BatchNorm scale)."""
    del key
    return jnp.ones(shape, dtype)


def normal(stddev: float = 0.05) -> Initializer:
    """Plain ``N(0, stddev^2)``: the 'unit variance' initialisation the textbook warns about."""

    def init(key, shape, dtype=jnp.float32):
        return stddev * _normal(key, shape, dtype)

    init.__name__ = f"normal({stddev})"
    return init


def orthogonal(gain: float = 1.0) -> Initializer:
    """A (semi-)orthogonal matrix over the last axis times ``gain`` (Saxe et al., 2014).

    The kernel is reshaped to ``(prod(shape[:-1]), shape[-1])``; rows or columns are orthonormal,
    whichever are fewer.
    """

    def init(key, shape, dtype=jnp.float32):
        if len(shape) < 2:
            raise ConfigError(f"orthogonal needs a shape of rank >= 2, got {shape}", ("init",))
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = _normal(key, (max(rows, cols), min(rows, cols)), jnp.float32)
        q, r = jnp.linalg.qr(a)
        q = q * jnp.sign(jnp.diagonal(r))  # make the distribution uniform (Mezzadri, 2007)
        q = q if rows >= cols else q.T
        return (gain * q).reshape(shape).astype(dtype)

    init.__name__ = f"orthogonal({gain})"
    return init


_BY_NAME = {
    f.__name__: f
    for f in (glorot_normal, glorot_uniform, he_normal, he_uniform, lecun_normal, lecun_uniform)
}
_BY_NAME |= {
    "xavier_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "kaiming_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "zeros": zeros,
    "ones": ones,
    "orthogonal": orthogonal(),
}
# Initializers with arguments, by the name they give themselves: "normal(0.05)".
_FACTORIES = {
    "constant": constant,
    "normal": normal,
    "orthogonal": orthogonal,
    "variance_scaling": variance_scaling,
}


def _from_call(text: str) -> Initializer | None:
    """``"normal(0.05)"`` -> ``normal(0.05)``; ``None`` if ``text`` is not such a call."""
    match = re.fullmatch(r"(\w+)\((.*)\)", text.strip())
    if match is None or match.group(1) not in _FACTORIES:
        return None
    try:
        args = ast.literal_eval(f"({match.group(2)},)")
    except (ValueError, SyntaxError):
        return None
    return _FACTORIES[match.group(1)](*args)


def get(initializer) -> Initializer:
    """An initializer from itself or its name: ``"he_normal"``, or a call such as
    ``"normal(0.05)"``, ``"constant(0.1)"``, ``"orthogonal(2.0)"`` (the name it gives itself)."""
    if callable(initializer):
        return initializer
    found = _BY_NAME.get(initializer) if isinstance(initializer, str) else None
    if found is None and isinstance(initializer, str):
        found = _from_call(initializer)
    if found is None:
        raise ConfigError(
            f"unknown initializer {initializer!r}; expected one of {sorted(_BY_NAME)} or "
            f"{', '.join(f'{f}(...)' for f in _FACTORIES)}",
            ("init",),
        )
    return found


def name_of(initializer) -> str:
    """A readable name for an initializer (for layer ``info`` and diagnostics)."""
    return (
        initializer if isinstance(initializer, str) else getattr(initializer, "__name__", "custom")
    )


def spec_of(initializer) -> str | Unrecorded:
    """The name :func:`get` turns back into ``initializer``, for a model description.

    A name is kept as it is; jaxnet's own initializers give their name (``"he_normal"``,
    ``"normal(0.05)"``); any other function is :class:`~jaxnet.core.Unrecorded`.
    """
    if isinstance(initializer, str):
        get(initializer)
        return initializer
    if getattr(initializer, "__module__", None) == __name__:
        return initializer.__name__
    return Unrecorded(name_of(initializer))


# The textbook pairing of an activation with the initializer that keeps the variance of the
# signal equal from layer to layer (Glorot for none/tanh/logistic/softmax, He for ReLU and its
# variants, LeCun for SELU and ELU, as the course notes' table says). The gain 1 / E[f(z)^2] for
# z ~ N(0, 1) that a fan_in initializer needs is 2.0 for ReLU, 2.4 GELU, 2.8 Swish (He's 2),
# 1.55 ELU (between LeCun's 1 and He's 2) and 1.09 softplus (Glorot/LeCun, not He).
_RECOMMENDED = {
    "glorot_uniform": (
        "identity",
        "linear",
        "sigmoid",
        "logistic",
        "tanh",
        "softmax",
        "log_softmax",
        "softplus",
        "step",
    ),
    "he_normal": ("relu", "leaky_relu", "gelu", "swish", "silu"),
    "lecun_normal": ("selu", "elu"),
}


def recommended_for(activation: str | None) -> str:
    """The initializer to pair with ``activation`` (``None``: a linear layer).

    Glorot for none, tanh, logistic and softmax; He for ReLU and its variants; LeCun for SELU
    and ELU. Recipes, ``wide_and_deep``, the model builders and the diagnostics' remedies all
    read this one table.

    >>> recommended_for("relu"), recommended_for("selu"), recommended_for(None)
    ('he_normal', 'lecun_normal', 'glorot_uniform')
    """
    for initializer, names in _RECOMMENDED.items():
        if (activation or "linear") in names:
            return initializer
    known = sorted(n for names in _RECOMMENDED.values() for n in names)
    raise ConfigError(
        f"no recommended initializer for activation {activation!r}; known: {known}", ("init",)
    )
