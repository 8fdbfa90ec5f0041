"""Checking and preparing user data (and ``fit``'s other arguments) before a compiled program.

Everything here runs once, on the host, before training: a bad data set or argument is refused
with a clear :class:`~jaxnet.errors.JaxnetError` that names it, instead of becoming a NaN, a
silently wrong answer or a traceback from deep inside JAX later.

- arrays come in through :func:`~jaxnet.train.arrays.to_numpy` (numbers, not empty, finite);
- :func:`match_targets`: the targets against the model's outputs and the loss's kind of targets
  (:data:`jaxnet.losses.TARGET_KINDS`);
- :func:`check_arguments`: the types and ranges of ``fit``'s and ``fit_many``'s arguments.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.core import init_model, path_string
from jaxnet.errors import (
    ConfigError,
    DataError,
    ShapeError,
)
from jaxnet.train.arrays import num_examples, to_numpy
from jaxnet.train.parallel import put
from jaxnet.train.sources import validation_count

# ----------------------------------------------------------------------------- targets


def match_targets(y, output_shape, name: str = "y", kind: str | None = None):
    """Check targets against the model's per-example ``output_shape`` and the loss's ``kind`` of
    targets (:func:`jaxnet.losses.target_kind`); return them ready for the loss.

    - ``"real"``: any finite numbers (integers become floats);
    - ``"binary"``: 0 or 1 (ints, bools or floats), as floats;
    - ``"classes"``: integer labels in ``[0, classes)`` (whole floats too), as int32;
    - ``"distribution"``: one-hot or probability rows (>= 0, summing to 1);
    - ``"signs"``: -1/+1, or 0/1;
    - ``None`` (a loss jaxnet does not know): shapes only, and integer labels ``(n,)`` for ``C``
      outputs must lie in ``[0, C)`` (for one output: 0/1).

    The one safe reshape: a missing trailing unit axis is added (``(n,)`` targets for one output
    become ``(n, 1)``; ``(n, 1)`` class labels become ``(n,)``).
    """
    if not isinstance(y, np.ndarray):
        raise DataError(
            f"{name} must be one array of targets, got a {type(y).__name__} of arrays; stack "
            "them (np.stack) or use one output",
            ("data",),
        )
    output_shape = tuple(output_shape)
    if kind is None:
        return _by_shape(y, output_shape, name)
    if kind == "classes":
        return _class_labels(y, output_shape, name)
    if kind == "distribution" and y.shape[1:] == output_shape[:-1] and y.dtype.kind in "iub":
        raise DataError(
            f"{name} holds class labels of per-example shape {y.shape[1:]}, but "
            f"categorical_cross_entropy takes one-hot or probability rows of shape "
            f"{output_shape}; use sparse_categorical_cross_entropy for labels (classifier_mlp"
            "(labels='sparse')) or one-hot encode them",
            ("data",),
        )
    y = _shaped_like(y, output_shape, name)
    if kind in ("binary", "signs"):
        allowed = (0, 1) if kind == "binary" or np.isin(y, (0, 1)).all() else (-1, 1)
        outside = ~np.isin(y, allowed)
        if outside.any():
            what = {
                "binary": "binary/multilabel targets (binary_cross_entropy) must be 0 or 1; "
                "map the labels to 0/1, e.g. (labels == positive_label)",
                "signs": "hinge targets must be -1/+1 (or all 0/1)",
            }[kind]
            raise DataError(f"{name} has values {_some(y[outside])} but {what}", ("data",))
    elif kind == "distribution":
        rows = y.reshape(-1, y.shape[-1]).astype(np.float64)
        sums = rows.sum(axis=1)
        bad = np.nonzero((rows < 0).any(axis=1) | (np.abs(sums - 1) > 1e-3))[0]
        if bad.size:
            raise DataError(
                f"{name} rows must be one-hot or class probabilities (>= 0, summing to 1) for "
                f"categorical_cross_entropy; {bad.size} rows are not, e.g. row {bad[0]} "
                f"{_some(rows[bad[0]])} sums to {sums[bad[0]]:g}",
                ("data",),
            )
    elif kind != "real":
        raise ConfigError(f"unknown kind of targets {kind!r}", ("match_targets",))
    return y.astype(np.float32)


def _some(values) -> str:
    """Up to five distinct values, as a short list."""
    unique = np.unique(np.asarray(values).reshape(-1))
    shown = ", ".join(f"{v:g}" for v in unique[:5].astype(np.float64))
    return f"[{shown}{', ...' if unique.size > 5 else ''}]"


def _shaped_like(y, output_shape: tuple, name: str):
    """``y`` with the model's per-example output shape (a trailing unit axis may be added)."""
    if y.shape[1:] + (1,) == output_shape:
        y = y.reshape(*y.shape, 1)
    if y.shape[1:] != output_shape:
        raise DataError(
            f"{name} has per-example shape {y.shape[1:]} but the model outputs {output_shape}",
            ("data",),
        )
    return y


def _class_labels(y, output_shape: tuple, name: str):
    """Integer class labels for scores of per-example shape ``output_shape`` (classes last)."""
    if not output_shape:
        raise DataError("class labels need a model with a class axis, got outputs ()", ("data",))
    expected, classes = output_shape[:-1], output_shape[-1]
    if y.shape[1:] == expected + (1,):
        y = y.reshape(y.shape[:-1])
    if y.shape[1:] != expected:
        raise DataError(
            f"{name} has per-example shape {y.shape[1:]} but integer class labels for outputs "
            f"{output_shape} have shape {expected}; for one-hot targets use "
            "categorical_cross_entropy (classifier_mlp(labels='one_hot')), or pass "
            "y.argmax(-1)",
            ("data",),
        )
    if y.dtype.kind == "f" and not (y == np.round(y)).all():
        raise DataError(
            f"{name} has non-integer values {_some(y[y != np.round(y)])} but class labels "
            f"(sparse cross-entropy) must be integers in [0, {classes})",
            ("data",),
        )
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:
        raise DataError(
            f"{name} has integer labels in [{low}, {high}] but the model has {classes} "
            f"outputs, so labels must lie in [0, {classes})",
            ("data",),
        )
    return y.astype(np.int32)


def _by_shape(y, output_shape: tuple, name: str):
    """A loss jaxnet does not know: check shapes, and integer labels against the outputs."""
    width = output_shape[-1] if output_shape else 1
    if y.dtype.kind in "iub" and y.ndim == 1 and width > 1:
        return _class_labels(y, output_shape, name)
    if y.ndim == 1 and output_shape == (1,):
        if y.dtype.kind in "iub" and not np.isin(y, (0, 1)).all():
            raise DataError(
                f"{name} has integer labels {_some(y)} but the model has one output unit "
                "(binary classification), so labels must be 0 or 1 (for regression targets "
                "pass floats, or a jaxnet regression loss)",
                ("data",),
            )
        return y.reshape(-1, 1).astype(np.float32)
    y = _shaped_like(y, output_shape, name)
    return y.astype(np.float32) if y.dtype.kind in "iub" else y


# ----------------------------------------------------------------------------- the data set


def split_validation(x, y, fraction: float):
    """Hold out the last ``fraction`` of the examples (before any shuffling), as Keras does."""
    n = num_examples(x, y)
    n_val = validation_count(n, fraction)
    head = jax.tree.map(lambda a: a[: n - n_val], (x, y))
    tail = jax.tree.map(lambda a: a[n - n_val :], (x, y))
    return head, tail


class Data(NamedTuple):
    """Checked training data: ``x``, ``y``, the optional ``validation`` pair ``(x_val, y_val)`` and
    ``n`` training examples. NumPy after :func:`prepare`; device arrays after :func:`place`."""

    x: Any
    y: Any
    validation: tuple | None
    n: int

    @property
    def input_shape(self):
        """The per-example shape of ``x`` (a pytree of shapes for pytree inputs)."""
        return jax.tree.map(lambda a: a.shape[1:], self.x)


def prepare(x, y, *, batch_size: int, validation_data=None, validation_split=None, owner="fit"):
    """Checked NumPy :class:`Data`: the validation pair is held out here if ``validation_split``;
    a ``batch_size`` larger than the training data is an error."""
    x, y = to_numpy(x, "x"), to_numpy(y, "y")
    num_examples(x, y)
    if validation_split:
        (x, y), validation_data = split_validation(x, y, validation_split)
    n = num_examples(x, y)
    if batch_size > n:
        raise DataError(
            f"batch_size={batch_size} is larger than the {n} training examples", (owner,)
        )
    if validation_data is not None:
        x_val, y_val = to_numpy(validation_data[0], "x_val"), to_numpy(validation_data[1], "y_val")
        num_examples(x_val, y_val)
        validation_data = (x_val, y_val)
    return Data(x, y, validation_data, n)


def checked(data: Data, out_shape: tuple, kind: str | None = None) -> Data:
    """``data`` with its targets checked against the model's per-example ``out_shape`` and the
    loss's ``kind`` of targets (:func:`match_targets`)."""
    validation = data.validation
    if validation is not None:
        validation = (validation[0], match_targets(validation[1], out_shape, "y_val", kind))
    return Data(data.x, match_targets(data.y, out_shape, "y", kind), validation, data.n)


def place(data: Data, out_shape: tuple, sharding=None, kind: str | None = None) -> Data:
    """:func:`checked` ``data`` with every array moved to the device (``sharding``: e.g.
    replicated over a mesh, possibly spanning processes; default: the default device)."""
    data = checked(data, out_shape, kind)
    x, y, validation = put((data.x, data.y, data.validation), sharding)
    return Data(x, y, validation, data.n)


def output_shape(model, params, state, x) -> tuple:
    """The model's per-example output shape for inputs like ``x`` (traced, nothing computed)."""
    one = jax.tree.map(lambda a: jax.ShapeDtypeStruct((1, *a.shape[1:]), a.dtype), x)
    return jax.eval_shape(lambda p, s, xb: model.apply(p, s, xb)[0], params, state, one).shape[1:]


def check_params(owner: str, model, params, state, x) -> None:
    """A :class:`~jaxnet.errors.ShapeError` unless ``params`` and ``state`` have the structure and
    shapes that ``model`` initialises for inputs like ``x`` (arrays, or a pytree of per-example
    shapes) — parameters of another model, say. Inputs the model cannot take raise its layers'
    own errors first (e.g. ``dense_0: expected input with 3 features``). Nothing is computed."""

    def is_shape(s):
        return isinstance(s, tuple) and all(isinstance(d, int) for d in s)

    if all(is_shape(s) for s in jax.tree.leaves(x, is_leaf=is_shape)):  # shapes: a batch of one
        x = jax.tree.map(lambda s: jax.ShapeDtypeStruct((1, *s), jnp.float32), x, is_leaf=is_shape)
    input_shape = jax.tree.map(lambda a: tuple(a.shape[1:]), x)

    # (the key made inside: an eager jax.random.key(0) compiles two programs, ~0.03 s cold)
    expected = jax.eval_shape(lambda: init_model(model, jax.random.key(0), input_shape))
    given = jax.tree.flatten_with_path({"params": params, "state": state})[0]
    wanted = jax.tree.flatten_with_path({"params": expected[0], "state": expected[1]})[0]
    names, wanted_names = [path_string(p) for p, _ in given], [path_string(p) for p, _ in wanted]
    if names != wanted_names:
        missing = [n for n in wanted_names if n not in names][:4]
        extra = [n for n in names if n not in wanted_names][:4]
        raise ShapeError(
            f"params/state do not belong to this model: missing {missing}, unexpected {extra}",
            (owner,),
        )
    for part, got, want in (("params", params, expected[0]), ("state", state, expected[1])):
        if jax.tree.structure(got) != jax.tree.structure(want):
            raise ShapeError(
                f"{part} of another model: got {jax.tree.structure(got)}, this model's is "
                f"{jax.tree.structure(want)}",
                (owner,),
            )
    jax.eval_shape(lambda p, s, xb: model.apply(p, s, xb)[0], params, state, x)  # layers speak
    for name, (_, leaf), (_, want) in zip(names, given, wanted, strict=True):
        if tuple(jnp.shape(leaf)) != tuple(want.shape):
            raise ShapeError(
                f"params/state do not belong to this model: {name} has shape "
                f"{tuple(jnp.shape(leaf))}, the model expects {tuple(want.shape)} for inputs "
                f"{input_shape}",
                (owner,),
            )
