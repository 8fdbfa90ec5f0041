"""The names a model description uses, each registered by the module that defines it.

A built-in layer constructor registers itself where it is defined (``@registry.layer`` above
``def Dense``), so :mod:`jaxnet.description` reads this table and imports no layer, and no layer
imports the description. The tables:

- :data:`LAYERS`: recorded layer type (``info["layer"]``) -> built-in constructor;
- :data:`USER`: what users registered with :func:`jaxnet.register`: a name -> a layer
  constructor or a plain array function;
- :data:`RECIPES`: ``"classifier_mlp"`` -> the recipe function;
- :data:`FUNCTIONS`: the plain array functions jaxnet knows, with the layer that computes each
  (``jax.nn.relu`` -> ``Activation("relu")``, registered by :mod:`jaxnet.activations`);
- :data:`SIGNATURES`: the signature to show in a repr where a constructor forwards ``**kwargs``.

This module imports nothing from jaxnet but the error classes: it sits at the bottom of the
import graph.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import jax.numpy as jnp

LAYERS: dict[str, Callable] = {}
USER: dict[str, Callable] = {}
RECIPES: dict[str, Callable] = {}
FUNCTIONS: list[tuple[Callable, dict]] = []  # (function, the info of the layer computing it)
SIGNATURES: dict[str, Callable] = {}


def layer(constructor: Callable | None = None, *, name: str | None = None, signature=None):
    """Register a built-in layer constructor under ``name`` (default: its ``__name__``); returns
    it unchanged, so it works as a decorator (``@layer`` or ``@layer(name="mlp")``)."""

    def add(fn: Callable) -> Callable:
        LAYERS[name or fn.__name__] = fn
        if signature is not None:
            SIGNATURES[name or fn.__name__] = signature
        return fn

    return add if constructor is None else add(constructor)


def recipe(fn: Callable) -> Callable:
    """Register a recipe function (``classifier_mlp``) under its name; returns it unchanged."""
    RECIPES[fn.__name__] = fn
    return fn


def function(fn: Callable, info: dict) -> None:
    """Record that a layer with ``info`` (a constructor call, facts such as ``"activation"``)
    computes the plain function ``fn``: ``serial(Dense(8), fn)`` then describes ``fn``."""
    FUNCTIONS.append((fn, info))


def function_info(fn: Callable, name: str) -> dict:
    """The ``info`` that lets the layer ``name`` of a plain function be described (``{}`` if it
    cannot be): a user's registered function records ``("function", its name)``, a function
    jaxnet knows the ``Activation`` computing it."""
    for registered_name, registered in USER.items():
        if registered is fn:
            return {"layer": "function", "args": {"function": registered_name, "name": name}}
    return next((dict(info) for known, info in FUNCTIONS if known is fn), {})


# ----------------------------------------------------------------------------- repr


def constructor_repr(obj) -> str:
    """``Dense(100, kernel_init='he_normal')``: a layer's (or cell's) recorded call, default
    arguments left out.

    A plain function's layer shows the function's name (``relu``), an activation layer its
    activation (``leaky_relu(alpha=0.2)``), a layer without a recorded call ``Layer('name')``.
    """
    info = obj.info
    if "function" in info:
        return info["function"]
    if "layer" not in info:
        return f"{type(obj).__name__}({obj.name!r})"
    layer_type, args = info["layer"], dict(info["args"])
    if layer_type == "Activation":
        name = args.pop("name")
        return name if not args else f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
    constructor = SIGNATURES.get(layer_type) or LAYERS.get(layer_type) or USER.get(layer_type)
    parameters = inspect.signature(constructor).parameters if constructor else {}
    parts = [_short(child) for child in args.pop("layers", ())]
    for key, value in args.items():
        parameter = parameters.get(key)
        required = parameter is not None and parameter.default is inspect.Parameter.empty
        if not required and parameter is not None and _same(value, parameter.default):
            continue
        positional = required and parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        parts.append(_short(value) if positional else f"{key}={_short(value)}")
    return f"{layer_type}({', '.join(parts)})"


def _is_layer(value) -> bool:
    return hasattr(value, "info") and hasattr(value, "name") and not isinstance(value, type)


def _short(value) -> str:
    if isinstance(value, tuple | list) and not _is_layer(value):
        inner = ", ".join(_short(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _same(value, default) -> bool:
    return _comparable(value) == _comparable(default)


def _comparable(value):
    if _is_layer(value):
        return value
    if isinstance(value, tuple | list):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, type):
        try:
            return jnp.dtype(value).name
        except TypeError:
            return value
    if callable(value):  # an activation given as a function: its name, as recorded
        args = next((info["args"] for known, info in FUNCTIONS if known is value), {})
        return args["name"] if args.keys() == {"name"} else value
    return value
