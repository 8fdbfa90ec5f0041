"""Activation functions, and the same functions as parameter-free layers.

Functions are elementwise ``f(x) -> y`` (``softmax``/``log_softmax`` reduce over ``axis``).
Layers (``Relu()``, ``LeakyRelu(0.2)``, ``Activation("selu")``) wrap them and record
``info["activation"]`` so diagnostics know which units can die (ReLU family) or saturate
(sigmoid, tanh).

>>> relu(jnp.array([-1.0, 2.0]))
Array([0., 2.], dtype=float32)
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxnet import registry
from jaxnet.core import Layer, Unrecorded, constructor_info, function_layer
from jaxnet.errors import ConfigError

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def step(x):
    """Heaviside step ``1[x >= 0]``: the perceptron's threshold unit. Its gradient is zero."""
    return jnp.where(x >= 0, 1.0, 0.0).astype(x.dtype)


def sigmoid(x):
    """Logistic ``1 / (1 + exp(-x))``, in (0, 1): ``jax.nn.sigmoid``, one XLA op whose derivative
    is ``s * (1 - s)``; full relative precision wherever the result is a normal float."""
    return jax.nn.sigmoid(x)


logistic = sigmoid


def tanh(x):
    """Hyperbolic tangent, in (-1, 1)."""
    return jnp.tanh(x)


def relu(x):
    """``max(x, 0)``; its gradient at 0 is 0, as in ``jax.nn.relu``."""
    return jnp.where(x > 0, x, jnp.zeros_like(x))


def leaky_relu(x, alpha: float = 0.01):
    """``x`` if ``x >= 0`` else ``alpha * x`` (``jax.nn.leaky_relu``'s ``negative_slope``)."""
    return jnp.where(x >= 0, x, alpha * x)


def elu(x, alpha: float = 1.0):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""
    return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.where(x > 0, 0.0, x)))


def selu(x):
    """Scaled ELU with Klambauer et al.'s (2017) self-normalising constants; pair with LeCun."""
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


def softplus(x):
    """``log(1 + exp(x))``, a smooth ReLU that is always > 0 (for positive regression targets)."""
    return jnp.logaddexp(x, 0.0)


def gelu(x, approximate: bool = False):
    """Gaussian error linear unit ``x * Phi(x)``; ``approximate=True`` uses the tanh formula."""
    if approximate:
        return 0.5 * x * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + jax.lax.erf(x / math.sqrt(2.0)))


def swish(x):
    """``x * sigmoid(x)``, also called SiLU."""
    return x * sigmoid(x)


silu = swish


def log_softmax(x, axis: int = -1):
    """``x - logsumexp(x)`` along ``axis``; stable for any magnitude of ``x``."""
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def softmax(x, axis: int = -1):
    """``exp(x) / sum(exp(x))`` along ``axis``: class probabilities from logits."""
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    e = jnp.exp(shifted)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def identity(x):
    """``x`` unchanged (a linear output unit)."""
    return x


# kind: how diagnostics treat the units. "relu" units can die; "saturating" ones can saturate.
_FUNCTIONS = {
    "step": (step, "saturating"),
    "sigmoid": (sigmoid, "saturating"),
    "logistic": (sigmoid, "saturating"),
    "tanh": (tanh, "saturating"),
    "relu": (relu, "relu"),
    "leaky_relu": (leaky_relu, "leaky"),
    "elu": (elu, "leaky"),
    "selu": (selu, "leaky"),
    "softplus": (softplus, "smooth"),
    "gelu": (gelu, "smooth"),
    "swish": (swish, "smooth"),
    "silu": (swish, "smooth"),
    "softmax": (softmax, "output"),
    "log_softmax": (log_softmax, "output"),
    "identity": (identity, "linear"),
    "linear": (identity, "linear"),
}

NAMES = tuple(_FUNCTIONS)


def get(name_or_fn):
    """An activation function from itself or its name (``"relu"``, ``"leaky_relu"``)."""
    if callable(name_or_fn):
        return name_or_fn
    try:
        return _FUNCTIONS[name_or_fn][0]
    except KeyError:
        raise ConfigError(
            f"unknown activation {name_or_fn!r}; expected one of {sorted(_FUNCTIONS)}",
            ("activation",),
        ) from None


@registry.layer
def Activation(name: str, **kwargs) -> Layer:
    """A parameter-free layer applying the named activation; ``kwargs`` go to the function.

    >>> layer = Activation("leaky_relu", alpha=0.2)
    >>> layer.apply({}, {}, jnp.array([-1.0, 2.0]))[0]
    Array([-0.2,  2. ], dtype=float32)
    """
    fn, kind = _FUNCTIONS.get(name, (None, None))
    if fn is None:
        get(name)  # raises the error that lists the valid names
    bound = functools.partial(fn, **kwargs) if kwargs else fn
    info = {"activation": name, "kind": kind, **kwargs}
    return function_layer(bound, name, info | constructor_info("Activation", name=name, **kwargs))


def Step() -> Layer:
    return Activation("step")


def Sigmoid() -> Layer:
    return Activation("sigmoid")


def Tanh() -> Layer:
    return Activation("tanh")


def Relu() -> Layer:
    return Activation("relu")


def LeakyRelu(alpha: float = 0.01) -> Layer:
    return Activation("leaky_relu", alpha=alpha)


def Elu(alpha: float = 1.0) -> Layer:
    return Activation("elu", alpha=alpha)


def Selu() -> Layer:
    return Activation("selu")


def Softplus() -> Layer:
    return Activation("softplus")


def Gelu(approximate: bool = False) -> Layer:
    return Activation("gelu", approximate=approximate)


def Swish() -> Layer:
    return Activation("swish")


def Softmax(axis: int = -1) -> Layer:
    return Activation("softmax", axis=axis)


def LogSoftmax(axis: int = -1) -> Layer:
    return Activation("log_softmax", axis=axis)


def kind_of(name: str) -> str | None:
    """``"relu"``, ``"leaky"``, ``"saturating"``, ``"smooth"``, ``"output"`` or ``"linear"``."""
    return _FUNCTIONS.get(name, (None, None))[1]


def _known_functions() -> list:
    """``(function, name, kwargs)``: jaxnet's activation functions and the ``jax.nn`` ones with the
    same formula, so a plain ``jax.nn.relu`` in ``serial`` is recorded as ``Activation("relu")``."""
    own = [(fn, name, {}) for name, (fn, _) in _FUNCTIONS.items()]
    return own + [
        (jax.nn.relu, "relu", {}),
        (jax.nn.sigmoid, "sigmoid", {}),
        (jnp.tanh, "tanh", {}),
        (jax.nn.elu, "elu", {}),
        (jax.nn.selu, "selu", {}),
        (jax.nn.leaky_relu, "leaky_relu", {}),
        (jax.nn.softplus, "softplus", {}),
        (jax.nn.silu, "silu", {}),
        (jax.nn.gelu, "gelu", {"approximate": True}),  # jax.nn.gelu's default is the tanh form
        (jax.nn.softmax, "softmax", {}),
        (jax.nn.log_softmax, "log_softmax", {}),
    ]


def function_spec(fn) -> tuple[str, dict] | None:
    """``(name, kwargs)`` such that ``Activation(name, **kwargs)`` computes ``fn``, for the
    functions jaxnet knows (``jax.nn.relu -> ("relu", {})``); ``None`` for any other."""
    for known, name, kwargs in _known_functions():
        if fn is known:
            return name, kwargs
    return None


def spec_of(activation) -> str | Unrecorded:
    """The activation name :func:`get` turns back into ``activation`` (for a description)."""
    if isinstance(activation, str):
        get(activation)
        return activation
    spec = function_spec(activation)
    if spec is None or spec[1]:
        return Unrecorded(getattr(activation, "__name__", "custom"))
    return spec[0]


for _fn, _name, _kwargs in _known_functions():  # serial(Dense(8), jax.nn.relu) describes relu
    registry.function(_fn, {"activation": _name, "kind": kind_of(_name),
                            **constructor_info("Activation", name=_name, **_kwargs)})  # fmt: skip
