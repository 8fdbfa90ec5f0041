"""A model's table of layers: ``print(jaxnet.summary(model, (64,)))``.

One row per layer path (``mlp/dense_0``) with its kind, per-example output shape, parameter count
and shapes, state entries, activation and initializer; then the totals. Shapes come from
``jax.eval_shape`` of ``init`` and of the forward pass: nothing is computed or allocated.

>>> from jaxnet import Dense, serial
>>> model = serial(Dense(100, kernel_init="he_normal"), jax.nn.relu, Dense(10))
>>> print(summary(model, (64,)))
serial: input (64,)
layer           kind    output  params  shapes                state  activation  init
-------------------------------------------------------------------------------------
serial          serial  (10,)    7,510
serial/dense_0  Dense   (100,)   6,500  b (100,) w (64, 100)                     he_normal
serial/relu_1   relu    (100,)       0                               relu
serial/dense_2  Dense   (10,)    1,010  b (10,) w (100, 10)                      glorot_uniform
-------------------------------------------------------------------------------------
total: 7,510 params (29.3 KiB), 0 state values (0 B)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.core import Layer, apply_with_outputs, path_string, sublayers


class Row(NamedTuple):
    """One layer of a :class:`Summary`; shapes exclude the batch axis."""

    path: str  # "mlp/dense_0"
    kind: str  # the constructor ("Dense", "serial"), or the function's name
    output_shape: object  # a shape tuple, or a tuple/dict of them for several outputs
    params: int  # parameters of the layer, children included
    param_shapes: dict  # {"w": (64, 100), "b": (100,)} for a layer without children
    state_shapes: dict  # {"mean": (100,), "var": (100,)}
    activation: str | None
    initializer: str | None


class Summary(NamedTuple):
    """The rows and totals; ``str()`` (and ``print``) gives the table."""

    name: str
    input_shape: object
    rows: tuple[Row, ...]
    total_params: int
    total_state: int  # scalars of state (e.g. running statistics)
    param_bytes: int
    state_bytes: int

    def __str__(self) -> str:
        return _table(self)

    __repr__ = __str__


def _is_shape(shape) -> bool:
    return isinstance(shape, tuple | list) and all(isinstance(n, int) for n in shape)


def _example(input_shape, dtype):
    """Abstract inputs with a batch of 1: one array spec per shape in ``input_shape``."""
    if _is_shape(input_shape):
        return jax.ShapeDtypeStruct((1, *input_shape), dtype)
    if isinstance(input_shape, Mapping):
        return {key: _example(shape, dtype) for key, shape in input_shape.items()}
    return tuple(_example(shape, dtype) for shape in input_shape)


def _per_example(output):
    """Output shapes without the batch axis, in the output's structure."""
    if hasattr(output, "shape"):
        return tuple(output.shape[1:])
    if isinstance(output, Mapping):
        return {key: _per_example(value) for key, value in output.items()}
    if isinstance(output, Sequence):
        return tuple(_per_example(value) for value in output)
    return None


def _subtree(tree, path: str):
    for part in path.split("/"):
        if not isinstance(tree, Mapping) or part not in tree:
            return {}
        tree = tree[part]
    return tree


def _shapes(tree) -> dict:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {path_string(path): tuple(leaf.shape) for path, leaf in leaves}


def _size(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _bytes(tree) -> int:
    return sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


def _orphans(params, model: Layer, layers: Mapping) -> list[str]:
    """Params with no layer of their own (a residual's automatic projection), by path."""
    found = []
    for parent, layer in [("", model), *layers.items()]:
        if not sublayers(layer):
            continue  # a layer without children owns all its params
        tree = _subtree(params, parent) if parent else params
        for key in tree:
            path = f"{parent}/{key}" if parent else key
            if path not in layers:
                found.append(path)
    return found


def _kind(layer: Layer | None) -> str:
    if layer is None:
        return "(automatic)"
    return layer.info.get("function") or layer.info.get("layer") or layer.name


def summary(model: Layer, input_shape, dtype=jnp.float32) -> Summary:
    """The table of ``model``'s layers for inputs of ``input_shape`` (batch axis excluded).

    ``input_shape`` is a shape, or a tuple/dict of shapes for several inputs. Every row is
    computed with ``jax.eval_shape`` (no FLOPs, no memory): output shapes from the inference
    forward pass, parameter and state shapes from ``init``.

    >>> from jaxnet import Dense, serial
    >>> s = summary(serial(Dense(100), jax.nn.relu, Dense(10)), (64,))
    >>> s.total_params
    7510
    """
    params, state = jax.eval_shape(lambda key: model.init(key, input_shape)[1:], jax.random.key(0))
    y, outputs = jax.eval_shape(
        lambda p, s, x: apply_with_outputs(model, p, s, x)[::2],
        params,
        state,
        _example(input_shape, dtype),
    )
    layers = sublayers(model)
    paths = list(layers)
    for orphan in _orphans(params, model, layers):  # after the rest of its parent's rows
        parent = orphan.rpartition("/")[0]
        inside = [i for i, p in enumerate(paths) if not parent or f"{p}/".startswith(f"{parent}/")]
        paths.insert(inside[-1] + 1 if inside else len(paths), orphan)
    rows = [_row(model.name, model, _per_example(y), params, state, leaf=not layers)]
    for path in paths:
        layer = layers.get(path)
        leaf = layer is None or not sublayers(layer)
        rows.append(
            _row(
                f"{model.name}/{path}",
                layer,
                _per_example(outputs.get(path)) if path in outputs else None,
                _subtree(params, path),
                _subtree(state, path),
                leaf,
            )
        )
    return Summary(
        model.name,
        input_shape,
        tuple(rows),
        _size(params),
        _size(state),
        _bytes(params),
        _bytes(state),
    )


def _row(path, layer, output_shape, params, state, leaf: bool) -> Row:
    info = layer.info if layer is not None else {}
    return Row(
        path,
        _kind(layer),
        output_shape,
        _size(params),
        _shapes(params) if leaf else {},
        _shapes(state) if leaf else {},
        info.get("activation"),
        info.get("kernel_init"),
    )


# ----------------------------------------------------------------------------- text


def _shape_text(shape) -> str:
    if shape is None:
        return "-"
    if isinstance(shape, Mapping):
        return "{" + ", ".join(f"{k}: {_shape_text(v)}" for k, v in shape.items()) + "}"
    if _is_shape(shape):
        return str(tuple(shape))
    return "[" + ", ".join(_shape_text(s) for s in shape) + "]"


def _entries(shapes: Mapping) -> str:
    return " ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())


def _bytes_text(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"


def _table(summary: Summary) -> str:
    header = ("layer", "kind", "output", "params", "shapes", "state", "activation", "init")
    body = [
        (
            row.path,
            row.kind,
            _shape_text(row.output_shape),
            f"{row.params:,}",
            _entries(row.param_shapes),
            _entries(row.state_shapes),
            row.activation or "",
            row.initializer or "",
        )
        for row in summary.rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    right = {3}  # numbers align right

    def line(cells):
        text = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(text).rstrip()

    rule = "-" * len(line(header))
    totals = (
        f"total: {summary.total_params:,} params ({_bytes_text(summary.param_bytes)}), "
        f"{summary.total_state:,} state values ({_bytes_text(summary.state_bytes)})"
    )
    title = f"{summary.name}: input {_shape_text(summary.input_shape)}"
    return "\n".join([title, line(header), rule, *map(line, body), rule, totals])
