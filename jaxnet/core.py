"""The layer protocol and the combinators that build models from layers.

A layer is a pair of pure functions plus a name and static facts::

    init(key, input_shape) -> (output_shape, params, state)
    apply(params, state, x, *, key=None, train=False) -> (y, new_state)

``input_shape`` excludes the batch axis. ``params`` and ``state`` are nested dicts of arrays
(``{}`` when a layer has none). Randomness only ever enters through ``key``; with ``train=False``
every layer is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from jaxnet.errors import JaxnetError, rescope

Params = Any  # nested dict of arrays
State = Any  # nested dict of arrays


class Layer(NamedTuple):
    """A layer: ``init`` and ``apply`` pure functions, a base ``name`` and static ``info``.

    ``info`` holds facts that tools read without running the layer, e.g.
    ``{"activation": "relu"}`` or ``{"kernel_init": "he_normal", "units": 100}``; combinators list
    their ``children`` there.
    """

    init: Callable
    apply: Callable
    name: str
    info: Mapping = {}


def function_layer(fn: Callable, name: str | None = None, info: Mapping | None = None) -> Layer:
    """Wrap a parameter-free array function ``fn(x) -> y`` as a layer.

    >>> layer = function_layer(jax.nn.relu)         # name "relu"
    """
    name = name or getattr(fn, "__name__", "fn").replace("<lambda>", "fn")

    def init(key, input_shape):
        del key
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct((1, *input_shape), "float32"))
        return tuple(out.shape[1:]), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        return fn(x), state

    return Layer(init, apply, name, dict(info or {}))


def as_layer(obj) -> Layer:
    """Accept a :class:`Layer` or a plain array function (``jax.nn.relu``, a lambda)."""
    if isinstance(obj, Layer):
        return obj
    if callable(obj):
        return function_layer(obj)
    raise TypeError(f"expected a jaxnet Layer or an array function, got {type(obj).__name__}")


def unique_names(layers) -> tuple[str, ...]:
    """``dense, relu, dense`` -> ``dense_0, relu_1, dense_2``: positions make names unique."""
    return tuple(f"{layer.name}_{i}" for i, layer in enumerate(layers))


def serial(*layers, name: str = "serial") -> Layer:
    """Compose layers one after another; children's params/state are keyed by unique names.

    Each child gets ``jax.random.fold_in(key, i)``, so a child's key does not depend on which
    other layers consume keys. ``apply_with_outputs(model, ...)`` also returns every child's output.

    >>> mlp = serial(Dense(100), jax.nn.relu, Dense(10))
    >>> out_shape, params, state = mlp.init(jax.random.key(0), (64,))
    >>> sorted(params)
    ['dense_0', 'dense_2', 'relu_1']
    """
    children = tuple(as_layer(layer) for layer in layers)
    names = unique_names(children)

    def init(key, input_shape):
        params, state, shape = {}, {}, input_shape  # a shape, or a pytree of shapes (dict inputs)
        for i, (child_name, child) in enumerate(zip(names, children, strict=True)):
            try:
                shape, params[child_name], state[child_name] = child.init(
                    jax.random.fold_in(key, i), shape
                )
            except JaxnetError as error:
                raise rescope(error, name, child_name) from None
        return shape, params, state

    def run(params, state, x, *, key=None, train=False):
        new_state, outputs = {}, {}
        for i, (child_name, child) in enumerate(zip(names, children, strict=True)):
            child_key = None if key is None else jax.random.fold_in(key, i)
            try:
                x, new_state[child_name] = child.apply(
                    params[child_name], state[child_name], x, key=child_key, train=train
                )
            except JaxnetError as error:
                raise rescope(error, name, child_name) from None
            outputs[child_name] = x
        return x, new_state, outputs

    def apply(params, state, x, *, key=None, train=False):
        y, new_state, _ = run(params, state, x, key=key, train=train)
        return y, new_state

    info = {"children": dict(zip(names, children, strict=True)), "run": run}
    return Layer(init, apply, name, info)


def apply_with_outputs(model: Layer, params, state, x, *, key=None, train=False):
    """Like ``model.apply`` but also returns ``{child_name: output}`` for a :func:`serial` model.

    Returns ``(y, new_state, outputs)``; the outputs are the same arrays the forward pass computes
    (one code path), so diagnostics see exactly what training sees.
    """
    run = model.info.get("run")
    if run is None:
        y, new_state = model.apply(params, state, x, key=key, train=train)
        return y, new_state, {model.name: y}
    return run(params, state, x, key=key, train=train)


def init_model(model: Layer, key, input_shape):
    """``(params, state)`` of ``model`` for inputs of ``input_shape`` (batch axis excluded)."""
    _, params, state = model.init(key, input_shape)
    return params, state


def path_string(key_path) -> str:
    """A pytree key path as text: ``(DictKey('dense_0'), DictKey('w'))`` -> ``"dense_0/w"``.

    The names used everywhere a layer's parameter is named: penalties, constraints, checkpoints,
    diagnostics and error messages.
    """
    parts = []
    for entry in key_path:
        for attribute in ("key", "name", "idx"):
            if hasattr(entry, attribute):
                parts.append(str(getattr(entry, attribute)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def count_params(params) -> int:
    """Total number of scalars in a params pytree."""
    return sum(leaf.size for leaf in jax.tree.leaves(params))
