"""What a saved or exported model takes: per-example input shape(s) and a dtype.

``input_shape`` is what ``model.init`` takes: a shape ``(64,)``, or a tuple or dict of shapes for
a model with several inputs (``{"wide": (8,), "deep": (20,)}``); the batch axis is left out.
:func:`check_input` is the one check a saved model's ``predict`` and an exported model's call
make, so a wrong input is one clear error (naming the input, the expected and the received
shape or dtype) rather than an XLA message or a silently broadcast answer.

>>> check_input(np.zeros((5, 63)), (64,), "float32", "predict")
Traceback (most recent call last):
...
jaxnet.errors.ShapeError: predict: x: expected shape (batch, 64), got (5, 63)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from jaxnet.errors import ConfigError, DTypeError, ShapeError


def is_shape(shape) -> bool:
    """A single shape: a tuple or list of ints (``()`` included)."""
    return isinstance(shape, tuple | list) and all(isinstance(n, int) for n in shape)


def shape_to_json(input_shape):
    """``(64,)`` -> ``[64]``; tuples and dicts of shapes keep their structure."""
    if is_shape(input_shape):
        return [int(n) for n in input_shape]
    if isinstance(input_shape, Mapping):
        return {str(key): shape_to_json(value) for key, value in input_shape.items()}
    if isinstance(input_shape, Sequence) and not isinstance(input_shape, str):
        return [shape_to_json(value) for value in input_shape]
    raise ConfigError(
        f"input_shape must be a shape (a tuple of ints) or a tuple/dict of shapes, got "
        f"{input_shape!r}",
        ("input_shape",),
    )


def shape_from_json(value):
    """The inverse of :func:`shape_to_json`: lists of ints become tuples."""
    if isinstance(value, Mapping):
        return {key: shape_from_json(v) for key, v in value.items()}
    if is_shape(value):
        return tuple(value)
    return tuple(shape_from_json(v) for v in value)


def shape_text(shape) -> str:
    """``(batch, 8, 8, 1)``: a shape with its batch axis named."""
    return "(" + ", ".join(["batch", *map(str, shape)]) + ")"


def check_input(x, input_shape, dtype, owner: str, where: str = "x"):
    """``x`` with every array cast to ``dtype``, after checking its structure, shapes and dtypes.

    Arrays of any real dtype (integers, float64, bool) are cast to ``dtype``; text, objects and
    complex numbers are a :class:`~jaxnet.errors.DTypeError`. A wrong per-example shape, a
    missing batch axis, an empty batch or arrays with different batch sizes are a
    :class:`~jaxnet.errors.ShapeError`. The error path is ``owner``.
    """
    checked = _check(x, input_shape, np.dtype(dtype), owner, where)
    sizes = {len(a) for a in _leaves(checked)}
    if len(sizes) > 1:
        raise ShapeError(
            f"{where}: the inputs have different batch sizes {sorted(sizes)}", (owner,)
        )
    return checked


def _leaves(tree):
    if isinstance(tree, Mapping):
        return [leaf for value in tree.values() for leaf in _leaves(value)]
    if isinstance(tree, tuple):
        return [leaf for value in tree for leaf in _leaves(value)]
    return [tree]


def _check(x, input_shape, dtype: np.dtype, owner: str, where: str):
    if isinstance(input_shape, Mapping):
        if not isinstance(x, Mapping) or set(x) != set(input_shape):
            got = sorted(x) if isinstance(x, Mapping) else type(x).__name__
            raise ShapeError(
                f"{where}: expected a dict with keys {sorted(input_shape)}, got {got}", (owner,)
            )
        return {k: _check(x[k], s, dtype, owner, f"{where}[{k!r}]") for k, s in input_shape.items()}
    if not is_shape(input_shape):
        if not isinstance(x, tuple | list) or len(x) != len(input_shape):
            got = f"{len(x)} arrays" if isinstance(x, tuple | list) else type(x).__name__
            raise ShapeError(
                f"{where}: expected a tuple of {len(input_shape)} arrays, got {got}", (owner,)
            )
        return tuple(
            _check(a, s, dtype, owner, f"{where}[{i}]")
            for i, (a, s) in enumerate(zip(x, input_shape, strict=True))
        )
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = np.asarray(x)
        except ValueError as error:  # ragged nested lists
            raise ShapeError(f"{where}: not an array: {error}", (owner,)) from None
    expected = tuple(input_shape)
    real = jnp.issubdtype(x.dtype, jnp.integer) or jnp.issubdtype(x.dtype, jnp.floating)
    if not (real or x.dtype == np.bool_):
        raise DTypeError(
            f"{where}: expected numbers ({dtype.name}) of shape {shape_text(expected)}, got dtype "
            f"{x.dtype}",
            (owner,),
        )
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        hint = "; for one example pass x[None]" if tuple(x.shape) == expected else ""
        raise ShapeError(
            f"{where}: expected shape {shape_text(expected)}, got {tuple(x.shape)}{hint}", (owner,)
        )
    if x.shape[0] == 0:
        raise ShapeError(f"{where}: no examples (batch size 0)", (owner,))
    return x if x.dtype == dtype else x.astype(dtype)


def map_shapes(fn, input_shape):
    """``fn(shape)`` for every shape in ``input_shape``, keeping its tuple/dict structure."""
    if is_shape(input_shape):
        return fn(tuple(input_shape))
    if isinstance(input_shape, Mapping):
        return {key: map_shapes(fn, value) for key, value in input_shape.items()}
    return tuple(map_shapes(fn, value) for value in input_shape)
