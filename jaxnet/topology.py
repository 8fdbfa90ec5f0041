"""Non-sequential models from combinators: shortcuts, branches, several inputs.

Every combinator is itself a :class:`~jaxnet.core.Layer`, so they nest with :func:`~jaxnet.serial`.
Several inputs travel as a tuple or a dict of arrays (``fit`` accepts either as ``x``); their
per-example shapes are the same structure of shape tuples. Children are keyed like ``serial``'s:
``dense_0``, ``serial_1``, ... and errors inside a child are re-labelled with that name.

>>> block = serial(Dense(64), jax.nn.relu, Dense(64))
>>> model = serial(Dense(64), residual(block), jax.nn.relu, Dense(1))
>>> two_inputs = serial(parallel(Dense(8), Dense(8)), concat(), Dense(1))   # x = (x_a, x_b)
>>> wide_deep = wide_and_deep("wide", "deep")               # x = {"wide": ..., "deep": ...}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp

from jaxnet import activations, registry
from jaxnet.core import (
    Layer,
    apply_child,
    as_layer,
    combinator,
    constructor_info,
    described_as,
    init_child,
    serial,
    unique_names,
)
from jaxnet.errors import ConfigError, ShapeError, check_int
from jaxnet.init import recommended_for
from jaxnet.layers.dense import Dense


def _is_shape(shape) -> bool:
    return isinstance(shape, tuple | list) and all(isinstance(n, int) for n in shape)


def _children(layers, owner: str):
    if not layers:
        raise ConfigError("needs at least one layer", (owner,))
    children = tuple(as_layer(layer) for layer in layers)
    return children, unique_names(children)


def _init_each(owner, names, children, key, shapes):
    """Initialise child ``i`` on ``shapes[i]``: ``(output_shapes, params, state)``."""
    out, params, state = [], {}, {}
    for i, (child_name, child, shape) in enumerate(zip(names, children, shapes, strict=True)):
        child_out, params[child_name], state[child_name] = init_child(
            owner, child_name, i, child, key, shape
        )
        out.append(child_out)
    return tuple(out), params, state


def _apply_each(owner, names, children, params, state, inputs, key, train):
    """Apply child ``i`` to ``inputs[i]``: ``(outputs_tuple, new_state, recorded_outputs)``."""
    ys, new_state, outputs = [], {}, {}
    for i, (child_name, child, x) in enumerate(zip(names, children, inputs, strict=True)):
        y, new_state[child_name] = apply_child(
            owner,
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
        ys.append(y)
    return tuple(ys), new_state, outputs


def _info(layer_type: str, names, children, name: str) -> dict:
    return {
        "children": dict(zip(names, children, strict=True)),
        **constructor_info(layer_type, layers=children, name=name),
    }


def _check_inputs(owner: str, inputs, n: int, what: str) -> None:
    if not isinstance(inputs, tuple | list) or len(inputs) != n:
        got = (
            f"{type(inputs).__name__} of length {len(inputs)}"
            if isinstance(inputs, tuple | list)
            else (f"{what} {tuple(inputs)}" if _is_shape(inputs) else type(inputs).__name__)
        )
        raise ShapeError(f"expected a tuple of {n} inputs (one per layer), got a {got}", (owner,))


@registry.layer
def parallel(*layers, name: str = "parallel") -> Layer:
    """Apply ``layers[i]`` to input ``i``: ``(x_0, x_1, ...) -> (y_0, y_1, ...)``.

    >>> model = serial(parallel(Dense(8), Dense(8)), concat(), Dense(1))
    >>> model.init(jax.random.key(0), ((5,), (3,)))[0]
    (1,)
    """
    children, names = _children(layers, name)

    def init(key, input_shape):
        _check_inputs(name, input_shape, len(children), "a single shape")
        return _init_each(name, names, children, key, input_shape)

    def apply_with_outputs(params, state, x, *, key=None, train=False):
        _check_inputs(name, x, len(children), "an array of shape")
        return _apply_each(name, names, children, params, state, x, key, train)

    return combinator(init, apply_with_outputs, name, _info("parallel", names, children, name))


@registry.layer
def branch(*layers, name: str = "branch") -> Layer:
    """Fan out: every layer sees the same input, ``x -> (layer_0(x), layer_1(x), ...)``."""
    children, names = _children(layers, name)

    def init(key, input_shape):
        return _init_each(name, names, children, key, [input_shape] * len(children))

    def apply_with_outputs(params, state, x, *, key=None, train=False):
        return _apply_each(name, names, children, params, state, [x] * len(children), key, train)

    return combinator(init, apply_with_outputs, name, _info("branch", names, children, name))


def _as_sequence(inputs):
    """A tuple/list as is; a dict as its values in sorted key order (the pytree order)."""
    if isinstance(inputs, Mapping):
        return [inputs[k] for k in sorted(inputs)]
    return list(inputs)


@registry.layer
def concat(axis: int = -1, name: str = "concat") -> Layer:
    """Join a tuple (or dict, in sorted key order) of arrays along ``axis``.

    ``axis`` counts per-example axes (the batch axis excluded), so the default ``-1`` joins
    features and ``0`` joins along the first axis after the batch.
    """

    def init(key, input_shape):
        del key
        shapes = [tuple(s) for s in _as_sequence(input_shape)] if not _is_shape(input_shape) else []
        if not shapes or not all(_is_shape(s) for s in shapes):
            raise ShapeError(
                f"expected a tuple of inputs to join, got shape {input_shape}", (name,)
            )
        rank = len(shapes[0])
        if not -rank <= axis < rank or any(len(s) != rank for s in shapes):
            raise ShapeError(f"cannot join shapes {shapes} along axis {axis}", (name,))
        where = axis % rank
        rest = {s[:where] + s[where + 1 :] for s in shapes}
        if len(rest) != 1:
            raise ShapeError(
                f"inputs must agree on every axis but {axis}, got per-example shapes {shapes}",
                (name,),
            )
        out = list(shapes[0])
        out[where] = sum(s[where] for s in shapes)
        return tuple(out), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        arrays = _as_sequence(x)
        return jnp.concatenate(arrays, axis=axis if axis < 0 else axis + 1), state

    info = {"axis": axis, **constructor_info("concat", axis=axis, name=name)}
    return Layer(init, apply, name, info)


@registry.layer
def select(key, name: str = "select") -> Layer:
    """Pick one entry of a dict (by key) or tuple (by index) input: ``{"a": xa, "b": xb} -> xa``."""

    def pick(inputs, single: bool):
        if not single:
            if isinstance(inputs, Mapping) and key in inputs:
                return inputs[key]
            if (
                isinstance(inputs, tuple | list)
                and isinstance(key, int)
                and -len(inputs) <= key < len(inputs)
            ):
                return inputs[key]
        found = (
            f"keys {sorted(inputs)}"
            if isinstance(inputs, Mapping)
            else f"{len(inputs)} entries"
            if isinstance(inputs, tuple | list) and not single
            else "a single input"
        )
        raise ShapeError(f"expected a dict or tuple input with entry {key!r}, got {found}", (name,))

    def init(rng, input_shape):
        del rng
        return tuple(pick(input_shape, _is_shape(input_shape))), {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        return pick(x, not isinstance(x, Mapping | tuple | list)), state

    return Layer(init, apply, name, {"key": key, **constructor_info("select", key=key, name=name)})


@registry.layer
def residual(block, projection=None, name: str = "residual") -> Layer:
    """``y = block(x) + shortcut(x)`` (He et al., 2016).

    The shortcut is the identity when ``block`` keeps the shape. When ``block`` only changes the
    last axis, a bias-free ``Dense`` projection (a 1x1 convolution on images) is added
    automatically; otherwise (e.g. a strided convolution) pass ``projection``, such as
    ``Conv2D(c, 1, strides=2)``. Params: ``{"<block>_0": ..., "projection_1": ...}`` (the second
    only when there is a projection).

    >>> from jaxnet.layers import Conv2D
    >>> conv = lambda: Conv2D(16, 3, padding="SAME")
    >>> res = residual(serial(conv(), jax.nn.relu, conv()))
    >>> res.init(jax.random.key(0), (8, 8, 16))[0]
    (8, 8, 16)
    """
    block = as_layer(block)
    if projection is not None:
        projection = as_layer(projection)
    block_name = unique_names([block])[0]
    projection_name = f"{'projection' if projection is None else projection.name}_1"

    def auto_projection(units):
        return Dense(units, use_bias=False, name="projection")

    def init(key, input_shape):
        input_shape = tuple(input_shape)
        out, block_params, block_state = init_child(name, block_name, 0, block, key, input_shape)
        params, state = {block_name: block_params}, {block_name: block_state}
        shortcut = projection
        if shortcut is None and out != input_shape:
            if out[:-1] != input_shape[:-1]:
                raise ShapeError(
                    f"the block maps per-example shape {input_shape} to {out}; an automatic "
                    "projection only fixes the last axis, so pass projection= (e.g. a strided "
                    "Conv2D with kernel 1)",
                    (name,),
                )
            shortcut = auto_projection(out[-1])
        if shortcut is not None:
            proj_out, params[projection_name], state[projection_name] = init_child(
                name, projection_name, 1, shortcut, key, input_shape
            )
            if tuple(proj_out) != tuple(out):
                raise ShapeError(
                    f"the block outputs {out} but the projection outputs {tuple(proj_out)}", (name,)
                )
        return out, params, state

    def apply_with_outputs(params, state, x, *, key=None, train=False):
        new_state, outputs = {}, {}
        y, new_state[block_name] = apply_child(
            name,
            block_name,
            0,
            block,
            params[block_name],
            state[block_name],
            x,
            key=key,
            train=train,
            outputs=outputs,
        )
        if projection_name in params:
            shortcut = projection or auto_projection(params[projection_name]["w"].shape[-1])
            x, new_state[projection_name] = apply_child(
                name,
                projection_name,
                1,
                shortcut,
                params[projection_name],
                state[projection_name],
                x,
                key=key,
                train=train,
                outputs=outputs,
            )
        if y.shape != x.shape:
            raise ShapeError(
                f"the block outputs shape {tuple(y.shape)}, the shortcut {tuple(x.shape)}",
                (name,),
            )
        return y + x, new_state, outputs

    children = {block_name: block} | ({} if projection is None else {projection_name: projection})
    info = {
        "children": children,
        **constructor_info("residual", block=block, projection=projection, name=name),
    }
    return combinator(init, apply_with_outputs, name, info)


@registry.layer
def wide_and_deep(
    wide_inputs_key,
    deep_inputs_key,
    deep_hidden: Sequence[int] = (30, 30),
    n_outputs: int = 1,
    activation: str = "relu",
    name: str = "wide_and_deep",
) -> Layer:
    """The Wide & Deep network (Cheng et al., 2016) in Géron's form.

    The wide inputs reach the output layer directly (a linear model: memorisation of simple
    rules); the deep inputs pass through ``Dense -> activation`` hidden layers (generalisation).
    Both are concatenated and fed to a linear ``Dense(n_outputs)``. Input: a dict (or tuple) ``x``
    with ``x[wide_inputs_key]`` and ``x[deep_inputs_key]`` (the same key feeds both paths).

    >>> model = wide_and_deep("wide", "deep")
    >>> model.init(jax.random.key(0), {"wide": (5,), "deep": (6,)})[0]
    (1,)
    """
    check_int(name, "n_outputs", n_outputs, 1)
    kernel_init = recommended_for(activation)
    deep = [select(deep_inputs_key)]
    for units in deep_hidden:
        deep += [Dense(units, kernel_init=kernel_init), activations.Activation(activation)]
    model = serial(
        branch(select(wide_inputs_key), serial(*deep, name="deep"), name="wide_deep"),
        concat(),
        Dense(n_outputs),
        name=name,
    )
    return described_as(
        model,
        "wide_and_deep",
        wide_inputs_key=wide_inputs_key,
        deep_inputs_key=deep_inputs_key,
        deep_hidden=tuple(deep_hidden),
        n_outputs=n_outputs,
        activation=activation,
        name=name,
    )
