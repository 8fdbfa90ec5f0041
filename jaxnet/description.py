"""A model as data: ``describe(model) -> dict`` (JSON) and ``build(description) -> model``.

Every built-in layer records its constructor call in ``info`` (``info["layer"]``, its type, and
``info["args"]``, its arguments), so a description is that call written out, nested for
combinators::

    {"format": "jaxnet", "version": 1,
     "model": {"layer": "serial", "args": {"name": "mlp", "layers": [
         {"layer": "Dense", "args": {"units": 100, "kernel_init": "he_normal", ...}},
         {"layer": "Activation", "args": {"name": "relu"}}, ...]}}}

``build`` calls the constructors again, so the rebuilt model initialised with the same key has
bit-identical params and state. ``args["layers"]``, where present, are the positional layers of
``serial``/``parallel``/``branch``; any other argument is passed by keyword.

A :class:`~jaxnet.recipes.Recipe` from ``regression_mlp``/``classifier_mlp`` is described by its
recipe call, plus (for readers) its task, loss, metric names, output activation and model::

    {"format": "jaxnet", "version": 1,
     "recipe": {"recipe": "classifier_mlp", "args": {"n_classes": 10, ...}, "task": "multiclass",
                "loss": "sparse_categorical_cross_entropy", "metrics": ["accuracy"],
                "output_activation": "softmax", "model": {...}}}

A plain function in ``serial`` is described when jaxnet knows it (``jax.nn.relu`` becomes
``Activation("relu")``) or when it was registered (:func:`register`) before the model was built;
any other function, a custom initializer or a custom layer without a recorded constructor is
refused with an error naming the layer path.

>>> import json
>>> from jaxnet.layers import Dense
>>> model = jaxnet.serial(Dense(8), jax.nn.relu, Dense(1))
>>> text = json.dumps(describe(model))
>>> same = build(json.loads(text))          # same params for the same key
>>> same
serial(Dense(8), relu, Dense(1))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import numpy as np

from jaxnet import registry
from jaxnet.core import Layer, Unrecorded, as_layer
from jaxnet.errors import ConfigError, JaxnetError
from jaxnet.layers.recurrent import Cell
from jaxnet.recipes import Recipe

FORMAT = "jaxnet"
FORMAT_VERSION = 1


@registry.layer(name="function")
def registered_function(function: str, name: str) -> Layer:
    """The layer of a function registered as ``function`` (a ``"function"`` description)."""
    fn = registry.USER.get(function)
    if fn is None:
        raise ConfigError(
            f"the function {function!r} is not registered; call jaxnet.register({function!r}, fn) "
            "before build",
            (name,),
        )
    return as_layer(fn)._replace(name=name)


# ----------------------------------------------------------------------------- register


def register(name: str, fn_or_layer_factory: Callable) -> Callable:
    """Make a plain array function or a custom layer constructor describable under ``name``.

    - An array function ``fn(x) -> y``: register it *before* building models that use it
      (``serial(Dense(8), fn)``); the description records ``name`` and :func:`build` looks the
      function up again.
    - A layer constructor: its layers record ``info["layer"] = name`` and ``info["args"]`` (its
      JSON arguments, e.g. with :func:`~jaxnet.core.constructor_info`); :func:`build` calls
      ``constructor(**args)``.

    Returns ``fn_or_layer_factory`` unchanged. Names of built-in layers are refused.

    >>> from jaxnet.layers import Dense
    >>> def swish_beta(x):
    ...     return x * jax.nn.sigmoid(1.5 * x)
    >>> swish_beta = jaxnet.register("swish_beta", swish_beta)
    >>> model = jaxnet.serial(Dense(8), swish_beta, Dense(1))
    >>> describe(model)["model"]["args"]["layers"][1]["args"]
    {'function': 'swish_beta', 'name': 'swish_beta'}
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"name must be a non-empty string, got {name!r}", ("register",))
    if name in registry.LAYERS or name in registry.RECIPES:
        raise ConfigError(
            f"{name!r} is the name of a built-in jaxnet layer; choose another name", ("register",)
        )
    if not callable(fn_or_layer_factory):
        raise ConfigError(
            f"expected a function or a layer constructor, got {type(fn_or_layer_factory).__name__}",
            ("register",),
        )
    registry.USER[name] = fn_or_layer_factory
    return fn_or_layer_factory


# ----------------------------------------------------------------------------- describe


def describe(obj: Layer | Recipe) -> dict:
    """A JSON-serialisable description of a layer, model or recipe; :func:`build` rebuilds it.

    ``{"format": "jaxnet", "version": 1, "model": {...}}`` (or ``"recipe": {...}``).
    Raises :class:`~jaxnet.errors.ConfigError` naming the layer path when something cannot be
    written out: an unregistered plain function, a custom initializer, a custom layer.

    >>> from jaxnet.layers import Dense
    >>> describe(jaxnet.serial(Dense(2), jax.nn.relu))["model"]["args"]["layers"][1]
    {'layer': 'Activation', 'args': {'name': 'relu'}}
    """
    header = {"format": FORMAT, "version": FORMAT_VERSION}
    if isinstance(obj, Recipe):
        return header | {"recipe": _recipe_node(obj)}
    if isinstance(obj, Layer):
        return header | {"model": _node(obj, (obj.name,))}
    raise ConfigError(
        f"describe takes a jaxnet Layer or Recipe, got {type(obj).__name__}", ("describe",)
    )


def _node(obj: Layer | Cell, path: tuple[str, ...]) -> dict:
    info = obj.info
    if "layer" not in info:
        what = (
            f"the plain function {info['function']!r}"
            if "function" in info
            else f"the custom layer {obj.name!r}"
        )
        raise ConfigError(
            f"{what} records no constructor, so a description cannot rebuild it; use a jaxnet "
            "layer (e.g. Activation('relu')), or jaxnet.register(name, fn) before building the "
            "model (a custom layer also records info['layer'] and info['args'])",
            path,
        )
    names = {id(child): name for name, child in info.get("children", {}).items()}
    args = {key: _json(value, path, key, names) for key, value in info["args"].items()}
    return {"layer": info["layer"], "args": args}


def _json(value, path: tuple[str, ...], key: str, names: Mapping):
    """An argument as JSON: child layers and cells become descriptions."""
    if isinstance(value, Layer | Cell):
        return _node(value, (*path, names.get(id(value), key)))
    if isinstance(value, Unrecorded):
        raise ConfigError(
            f"argument {key}={value.what} is a custom function, which a description cannot "
            f"hold; pass a jaxnet name instead (e.g. {key}='he_normal' or 'tanh')",
            path,
        )
    if isinstance(value, list | tuple):
        return [_json(v, path, key, names) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json(v, path, key, names) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ConfigError(
        f"argument {key} has type {type(value).__name__}, which JSON cannot hold", path
    )


def _recipe_node(recipe: Recipe) -> dict:
    info = recipe.info
    if "recipe" not in info:
        raise ConfigError(
            "only recipes made by regression_mlp or classifier_mlp record their call; describe "
            "recipe.model instead",
            ("describe",),
        )
    path = (info["recipe"],)
    return {
        "recipe": info["recipe"],
        "args": {key: _json(value, path, key, {}) for key, value in info["args"].items()},
        "task": info["task"],
        "loss": recipe.loss.__name__,
        "metrics": list(recipe.metrics),
        "output_activation": recipe.output_activation.__name__,
        "model": _node(recipe.model, (recipe.model.name,)),
    }


# ----------------------------------------------------------------------------- build


def build(description: Mapping) -> Layer | Recipe:
    """The layer (or recipe) a :func:`describe` dict describes, built by the same constructors.

    Raises :class:`~jaxnet.errors.ConfigError` for a description of a newer format version, an
    unknown layer type (neither built in nor :func:`register`-ed) or a malformed entry.
    """
    if not isinstance(description, Mapping) or description.get("format") != FORMAT:
        found = description.get("format") if isinstance(description, Mapping) else description
        raise ConfigError(
            f"not a jaxnet description: expected a dict with format {FORMAT!r}, got "
            f"{str(found)[:80]!r}",
            ("build",),
        )
    version = description.get("version")
    if not isinstance(version, int) or version < 1:
        raise ConfigError(f"expected an integer format version, got {version!r}", ("build",))
    if version > FORMAT_VERSION:
        raise ConfigError(
            f"the description has format version {version}, newer than the {FORMAT_VERSION} this "
            "jaxnet reads; upgrade jaxnet to build it",
            ("build",),
        )
    if "recipe" in description:
        return _build_recipe(description["recipe"])
    if "model" not in description:
        raise ConfigError("the description has neither 'model' nor 'recipe'", ("build",))
    return _build_node(description["model"], ())


def _build_node(node, path: tuple[str, ...]) -> Layer | Cell:
    if (
        not isinstance(node, Mapping)
        or not isinstance(node.get("layer"), str)
        or not isinstance(node.get("args", {}), Mapping)
    ):
        raise ConfigError(
            f"expected a layer entry {{'layer': type, 'args': {{...}}}}, got {str(node)[:80]}",
            path or ("build",),
        )
    layer_type, args = node["layer"], dict(node.get("args", {}))
    here = (*path, str(args.get("name") or layer_type))
    constructor = registry.LAYERS.get(layer_type) or registry.USER.get(layer_type)
    if constructor is None:
        raise ConfigError(
            f"unknown layer type {layer_type!r}: not a jaxnet layer and not registered; call "
            f"jaxnet.register({layer_type!r}, constructor) before build",
            here,
        )
    args = {key: _from_json(value, here) for key, value in args.items()}
    positional = args.pop("layers", ())
    _check_call(constructor, layer_type, positional, args, here)
    try:
        built = constructor(*positional, **args)
    except JaxnetError as error:
        error.path = here[:-1] + error.path
        raise
    if not isinstance(built, Layer | Cell):
        raise ConfigError(
            f"{layer_type}(...) returned a {type(built).__name__}, not a jaxnet Layer", here
        )
    return built


def _from_json(value, path):
    if isinstance(value, Mapping) and "layer" in value:
        return _build_node(value, path)
    if isinstance(value, list):
        return [_from_json(v, path) for v in value]
    return value


def _check_call(constructor, name: str, positional, args: Mapping, path) -> None:
    try:
        inspect.signature(constructor).bind(*positional, **args)
    except TypeError as error:
        raise ConfigError(f"{name} does not take these arguments: {error}", path) from None


def _build_recipe(node) -> Recipe:
    if not isinstance(node, Mapping) or node.get("recipe") not in registry.RECIPES:
        found = node.get("recipe") if isinstance(node, Mapping) else node
        raise ConfigError(
            f"unknown recipe {str(found)[:80]!r}; expected one of {sorted(registry.RECIPES)}",
            ("build",),
        )
    name = node["recipe"]
    args = {key: _from_json(value, (name,)) for key, value in node.get("args", {}).items()}
    _check_call(registry.RECIPES[name], name, (), args, (name,))
    recipe = registry.RECIPES[name](**args)
    if "model" in node and _node(recipe.model, (recipe.model.name,)) != node["model"]:
        raise ConfigError(
            f"the recorded model differs from the one {name}(...) builds with the recorded "
            "arguments in this version of jaxnet",
            (name,),
        )
    return recipe
