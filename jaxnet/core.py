"""The layer protocol and the combinators that build models from layers.

A layer is a pair of pure functions plus a name and static facts::

    init(key, input_shape) -> (output_shape, params, state)
    apply(params, state, x, *, key=None, train=False) -> (y, new_state)

``input_shape`` excludes the batch axis. ``params`` and ``state`` are nested dicts of arrays
(``{}`` when a layer has none). Randomness only ever enters through ``key``; with ``train=False``
every layer is deterministic.

A combinator (a layer made of child layers) runs each child through :func:`init_child` and
:func:`apply_child`: child ``i`` gets ``fold_in(key, i)``, its params and state sit under its
name, an error inside it is re-labelled with its path, and its output is recorded for
:func:`apply_with_outputs`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from jaxnet import random, registry
from jaxnet.errors import ArgumentTypeError, JaxnetError, rescope

Params = Any  # nested dict of arrays
State = Any  # nested dict of arrays


class Layer(NamedTuple):
    """A layer: ``init`` and ``apply`` pure functions, a base ``name`` and static ``info``.

    ``info`` holds plain data that tools read without running the layer (no functions):
    facts such as ``{"activation": "relu"}`` or ``{"kernel_init": "he_normal"}``; a combinator's
    ``children`` (``{child_name: Layer}``); and the constructor call that rebuilds the layer,
    ``"layer"`` (its type, e.g. ``"Dense"``) and ``"args"`` (its arguments, see
    :func:`constructor_info`).

    ``apply_with_outputs`` is set by combinators: ``apply`` that also returns
    ``{path: output}`` for every layer inside (``"dense_0"``, ``"block_1/dense_0"``); ``apply``
    is the same function with the outputs dropped, so both are one code path.
    """

    init: Callable
    apply: Callable
    name: str
    info: Mapping = {}
    apply_with_outputs: Callable | None = None

    def __repr__(self) -> str:
        return registry.constructor_repr(self)


class Unrecorded(NamedTuple):
    """A constructor argument that a model description cannot hold (a custom function).

    Layers record it in ``info["args"]`` in place of the value; :func:`jaxnet.describe` refuses
    it with an error naming the layer and the argument.
    """

    what: str  # e.g. "np_init", shown in reprs and errors

    def __repr__(self) -> str:
        return self.what


def constructor_info(layer_type: str, **args) -> dict:
    """The ``info`` entries that let :func:`jaxnet.describe` rebuild a layer.

    ``args`` are the constructor's keyword arguments as JSON values (numbers, strings, lists,
    ``None``), child layers or cells, or :class:`Unrecorded`; ``layers=`` holds the positional
    layers of ``serial``/``parallel``/``branch``.

    >>> constructor_info("Dense", units=3, name="dense")
    {'layer': 'Dense', 'args': {'units': 3, 'name': 'dense'}}
    """
    return {"layer": layer_type, "args": args}


def described_as(layer: Layer, layer_type: str, **args) -> Layer:
    """``layer`` recorded as the call ``layer_type(**args)``: a builder (``mlp``,
    ``wide_and_deep``) made of other layers describes itself by its own arguments."""
    return layer._replace(info={**layer.info, **constructor_info(layer_type, **args)})


def function_name(fn: Callable) -> str:
    """The default layer name of a plain function: its ``__name__`` (``fn`` for a lambda)."""
    return getattr(fn, "__name__", "fn").replace("<lambda>", "fn")


def function_layer(fn: Callable, name: str | None = None, info: Mapping | None = None) -> Layer:
    """Wrap a parameter-free array function ``fn(x) -> y`` as a layer.

    >>> layer = function_layer(jax.nn.relu)
    >>> layer.name, layer.apply({}, {}, jax.numpy.array([-1.0, 2.0]))[0]
    ('relu', Array([0., 2.], dtype=float32))
    """
    name = name or function_name(fn)

    def init(key, input_shape):
        del key
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct((1, *input_shape), "float32"))
        return tuple(out.shape[1:]), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        return fn(x), state

    return Layer(init, apply, name, dict(info or {}))


def as_layer(obj) -> Layer:
    """Accept a :class:`Layer` or a plain array function (``jax.nn.relu``, a lambda).

    ``info["function"]`` records the function's name; a function jaxnet knows (``jax.nn.relu``,
    ``jnp.tanh``, ``jaxnet.activations.elu``) or one registered with :func:`jaxnet.register`
    also records how to rebuild it.
    """
    if isinstance(obj, Layer):
        return obj
    if callable(obj):
        name = function_name(obj)
        info = {"function": name, **registry.function_info(obj, name)}
        return function_layer(obj, info=info)
    raise ArgumentTypeError(
        f"expected a jaxnet Layer or an array function, got {obj!r} ({type(obj).__name__})",
        ("serial",),
    )


def unique_names(layers) -> tuple[str, ...]:
    """``dense, relu, dense`` -> ``dense_0, relu_1, dense_2``: positions make names unique."""
    return tuple(f"{layer.name}_{i}" for i, layer in enumerate(layers))


def init_child(owner: str, child_name: str, index: int, child: Layer, key, input_shape):
    """``child.init(fold_in(key, index), input_shape)``; an error inside it is re-labelled
    ``owner/child_name/...``. Returns ``(output_shape, params, state)``."""
    try:
        return child.init(random.fold_in(key, index), input_shape)
    except JaxnetError as error:
        raise rescope(error, owner, child_name) from None


def apply_child(
    owner: str, child_name: str, index: int, child: Layer, params, state, x, *, key, train, outputs
):
    """Apply ``child`` with ``fold_in(key, index)`` (no key stays no key); returns ``(y, state)``.

    An error inside it is re-labelled ``owner/child_name/...``. ``y`` is recorded in ``outputs``
    as ``outputs[child_name]``, and the child's own recorded outputs as ``child_name/...``.
    """
    child_key = None if key is None else jax.random.fold_in(key, index)
    try:
        if child.apply_with_outputs is None:
            y, new_state = child.apply(params, state, x, key=child_key, train=train)
            inner = {}
        else:
            y, new_state, inner = child.apply_with_outputs(
                params, state, x, key=child_key, train=train
            )
    except JaxnetError as error:
        raise rescope(error, owner, child_name) from None
    outputs[child_name] = y
    outputs.update({f"{child_name}/{path}": value for path, value in inner.items()})
    return y, new_state


def combinator(init: Callable, apply_with_outputs: Callable, name: str, info: Mapping) -> Layer:
    """A :class:`Layer` from ``init`` and ``apply_with_outputs``; ``apply`` drops the outputs."""

    def apply(params, state, x, *, key=None, train=False):
        y, new_state, _ = apply_with_outputs(params, state, x, key=key, train=train)
        return y, new_state

    return Layer(init, apply, name, info, apply_with_outputs)


@registry.layer
def serial(*layers, name: str = "serial") -> Layer:
    """Compose layers one after another; children's params/state are keyed by unique names.

    Each child gets ``jax.random.fold_in(key, i)``, so a child's key does not depend on which
    other layers consume keys. ``apply_with_outputs(model, ...)`` also returns every child's output.

    >>> from jaxnet.layers import Dense
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
            shape, params[child_name], state[child_name] = init_child(
                name, child_name, i, child, key, shape
            )
        return shape, params, state

    def apply_with_outputs(params, state, x, *, key=None, train=False):
        new_state, outputs = {}, {}
        for i, (child_name, child) in enumerate(zip(names, children, strict=True)):
            x, new_state[child_name] = apply_child(
                name,
                child_name,
                i,
                child,
                params[child_name],
                state[child_name],
                x,
                key=key,
                train=train,
                outputs=outputs,
            )
        return x, new_state, outputs

    info = {
        "children": dict(zip(names, children, strict=True)),
        **constructor_info("serial", layers=children, name=name),
    }
    return combinator(init, apply_with_outputs, name, info)


def apply_with_outputs(model: Layer, params, state, x, *, key=None, train=False):
    """Like ``model.apply`` but also returns the output of every layer inside ``model``.

    Returns ``(y, new_state, outputs)``. For a :func:`serial` model ``outputs`` is
    ``{child_name: output}``, followed by the layers inside nested combinators under their paths
    (``"block_1/dense_0"``); for a single layer it is ``{model.name: y}``. The outputs are the
    arrays the forward pass computes (one code path), so diagnostics see what training sees.
    """
    if model.apply_with_outputs is None:
        y, new_state = model.apply(params, state, x, key=key, train=train)
        return y, new_state, {model.name: y}
    y, new_state, outputs = model.apply_with_outputs(params, state, x, key=key, train=train)
    top = {path: out for path, out in outputs.items() if "/" not in path}
    return y, new_state, top | outputs


def sublayers(model: Layer) -> dict[str, Layer]:
    """Every layer inside ``model`` by path (``"dense_0"``, ``"block_1/dense_0"``), parents first:
    the paths of ``params``, ``state`` and :func:`apply_with_outputs`' outputs."""
    found = {}
    for child_name, child in model.info.get("children", {}).items():
        found[child_name] = child
        found.update({f"{child_name}/{p}": layer for p, layer in sublayers(child).items()})
    return found


def init_model(model: Layer, key, input_shape):
    """``(params, state)`` of ``model`` for inputs of ``input_shape`` (batch axis excluded).

    ``model.init(key, input_shape)`` returns the output shape too; this drops it.
    """
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
