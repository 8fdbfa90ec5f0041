"""Checking and preparing user data before it enters a compiled program.

Everything here runs once, on the host, before training: a bad data set is refused with a clear
:class:`~jaxnet.errors.DataError` instead of becoming a NaN or a silently wrong answer later.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from jaxnet.errors import DataError


def to_numpy(x, name: str, dtype=np.float32):
    """A pytree of arrays as NumPy, floating leaves cast to ``dtype``; non-empty and finite."""

    def convert(a):
        a = np.asarray(a)
        if a.dtype == object or a.dtype.kind in "USV":
            raise DataError(f"{name} must be numeric, got dtype {a.dtype}", ("data",))
        if a.ndim == 0 or a.shape[0] == 0:
            raise DataError(f"{name} is empty (shape {a.shape})", ("data",))
        if a.dtype.kind == "f" or (a.dtype.kind in "iub" and name == "x"):
            a = a.astype(dtype)
            bad = ~np.isfinite(a)
            if bad.any():
                rows = np.unique(np.nonzero(bad)[0])
                raise DataError(
                    f"{name} has {int(bad.sum())} non-finite values (NaN/inf) in {rows.size} rows, "
                    f"first rows {rows[:5].tolist()}; impute or drop them before training",
                    ("data",),
                )
        return a

    return jax.tree.map(convert, x)


def num_examples(x, y=None) -> int:
    """The common leading dimension of every leaf of ``x`` (and ``y``)."""
    lengths = {leaf.shape[0] for leaf in jax.tree.leaves((x, y))}
    if len(lengths) != 1:
        raise DataError(
            f"x and y leaves have different numbers of examples: {sorted(lengths)}", ("data",)
        )
    return lengths.pop()


def match_targets(y, output_shape, name: str = "y"):
    """Check targets against the model's per-example ``output_shape`` and fix the one safe case.

    - integer labels ``(n,)`` for ``C > 1`` outputs must lie in ``[0, C)``;
    - integer labels for one output unit must be 0/1 (binary classification) and become ``(n, 1)``;
    - a float vector ``(n,)`` for one output becomes ``(n, 1)``.
    """
    output_shape = tuple(output_shape)
    width = output_shape[-1] if output_shape else 1
    if y.dtype.kind in "iub" and y.ndim == 1 and width > 1:
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= width:
            raise DataError(
                f"{name} has integer labels in [{low}, {high}] but the model has {width} outputs, "
                f"so labels must lie in [0, {width})",
                ("data",),
            )
        return y.astype(np.int32)
    if y.ndim == 1 and output_shape == (1,):
        if y.dtype.kind in "iub" and not np.isin(y, (0, 1)).all():
            raise DataError(
                f"{name} has integer labels {np.unique(y)[:5].tolist()}... but the model has one "
                "output unit (binary classification), so labels must be 0 or 1",
                ("data",),
            )
        return y.reshape(-1, 1).astype(np.float32)
    if tuple(y.shape[1:]) != output_shape:
        raise DataError(
            f"{name} has per-example shape {tuple(y.shape[1:])} but the model outputs "
            f"{output_shape}",
            ("data",),
        )
    return y.astype(np.float32) if y.dtype.kind in "iub" else y


def split_validation(x, y, fraction: float):
    """Hold out the last ``fraction`` of the examples (before any shuffling), as Keras does."""
    n = num_examples(x, y)
    n_val = int(round(n * fraction))
    if not 0.0 < fraction < 1.0 or n_val == 0 or n_val == n:
        raise DataError(
            f"validation_split={fraction} leaves {n - n_val} training and {n_val} validation "
            f"examples out of {n}; both must be at least 1",
            ("data",),
        )
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


def checked(data: Data, model, params, state) -> Data:
    """``data`` with its targets checked against ``model``'s output (:func:`match_targets`)."""
    out_shape = output_shape(model, params, state, data.x)
    validation = data.validation
    if validation is not None:
        validation = (validation[0], match_targets(validation[1], out_shape, "y_val"))
    return Data(data.x, match_targets(data.y, out_shape), validation, data.n)


def place(data: Data, model, params, state, sharding=None) -> Data:
    """:func:`checked` ``data`` with every array moved to the device (``sharding``: e.g.
    replicated over a mesh, possibly spanning processes; default: the default device)."""
    from jaxnet.train.parallel import put

    data = checked(data, model, params, state)
    x, y, validation = put((data.x, data.y, data.validation), sharding)
    return Data(x, y, validation, data.n)


def output_shape(model, params, state, x) -> tuple:
    """The model's per-example output shape for inputs like ``x`` (traced, nothing computed)."""
    one = jax.tree.map(lambda a: jax.ShapeDtypeStruct((1, *a.shape[1:]), a.dtype), x)
    return jax.eval_shape(lambda p, s, xb: model.apply(p, s, xb)[0], params, state, one).shape[1:]
