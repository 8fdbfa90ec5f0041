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

import numbers
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.core import init_model, path_string
from jaxnet.errors import (
    ArgumentTypeError,
    ConfigError,
    DataError,
    ShapeError,
    check_int,
    check_range,
)
from jaxnet.train.arrays import num_examples, to_numpy
from jaxnet.train.parallel import put
from jaxnet.train.sources import RandomAccess, Stream

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


def validation_count(n: int, fraction: float) -> int:
    """How many of ``n`` examples ``validation_split=fraction`` holds out."""
    return int(round(n * fraction))


def split_validation(x, y, fraction: float):
    """Hold out the last ``fraction`` of the examples (before any shuffling), as Keras does."""
    n = num_examples(x, y)
    n_val = validation_count(n, fraction)
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


def checked(data: Data, model, params, state, kind: str | None = None) -> Data:
    """``data`` with its targets checked against ``model``'s output and the loss's ``kind`` of
    targets (:func:`match_targets`)."""
    out_shape = output_shape(model, params, state, data.x)
    validation = data.validation
    if validation is not None:
        validation = (validation[0], match_targets(validation[1], out_shape, "y_val", kind))
    return Data(data.x, match_targets(data.y, out_shape, "y", kind), validation, data.n)


def place(data: Data, model, params, state, sharding=None, kind: str | None = None) -> Data:
    """:func:`checked` ``data`` with every array moved to the device (``sharding``: e.g.
    replicated over a mesh, possibly spanning processes; default: the default device)."""

    data = checked(data, model, params, state, kind)
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

    expected = jax.eval_shape(lambda key: init_model(model, key, input_shape), jax.random.key(0))
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


# ----------------------------------------------------------------------------- arguments


def check_arguments(owner: str, **arguments) -> None:
    """Check ``fit``-style arguments by their names, before anything is built or compiled.

    Counts (``epochs``, ``batch_size``, ``steps_per_epoch``, ...) must be ints in range; ``seed``
    an int or a PRNG key, ``seeds`` a sequence of ints; ``model`` a layer; ``loss_fn`` and
    ``penalty`` functions; ``optimizer`` a ``GradientTransformation``; ``metrics`` a list or dict
    of functions; ``callbacks`` a list of callback objects; ``validation_split`` a fraction in
    ``[0, 1)``; ``validation_data`` a pair ``(x_val, y_val)``. A wrong type is an
    :class:`~jaxnet.errors.ArgumentTypeError`, a wrong value a
    :class:`~jaxnet.errors.ConfigError`; both name ``owner`` and the argument.

    >>> check_arguments("fit", epochs=2.5)
    Traceback (most recent call last):
    ...
    jaxnet.errors.ArgumentTypeError: fit: epochs must be an integer, got 2.5 (float)
    """
    for name, value in arguments.items():
        _CHECKS[name](owner, name, value)


def _count(low, optional: bool = True):
    def check(owner, name, value):
        if value is not None or not optional:
            check_int(owner, name, value, low)

    return check


def _got(value) -> str:
    """A wrong argument as the message shows it: ``the string 'adam'``, ``a float``, ..."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, type):
        return f"the class {value.__name__} (pass an instance: {value.__name__}(...))"
    if callable(value):
        return f"the function {getattr(value, '__name__', type(value).__name__)}"
    if isinstance(value, numbers.Number):
        return f"{value!r} ({type(value).__name__})"
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"an object of type {type(value).__name__}"


def _refuse(owner, name, value, expected: str, hint: str = ""):
    raise ArgumentTypeError(f"{name} must be {expected}, got {_got(value)}{hint}", (owner,))


def _check_seed(owner, name, value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return
    dtype = getattr(value, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key) and value.shape == ():
        return
    if dtype == np.uint32 and getattr(value, "shape", None) == (2,):  # a raw jax.random.PRNGKey
        return
    _refuse(owner, name, value, "an int or a PRNG key (jax.random.key(0))")


def _check_seeds(owner, name, value):
    expected = "a sequence of int seeds, e.g. range(4) or [0, 1]"
    if isinstance(value, str | Mapping) or not hasattr(value, "__iter__"):
        _refuse(owner, name, value, expected)
    for seed in value:
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            _refuse(owner, name, seed, expected)


def _check_model(owner, name, value):
    if hasattr(value, "model") and hasattr(value, "loss"):
        raise ArgumentTypeError(
            f"{name} must be a layer, got a recipe; pass recipe.model (with recipe.loss and "
            "metrics=recipe.metrics)",
            (owner,),
        )
    if not (hasattr(value, "init") and hasattr(value, "apply")):
        _refuse(owner, name, value, "a layer (jaxnet.serial(...), a recipe's .model)")


def _check_function(expected: str, optional: bool = True):
    def check(owner, name, value):
        if (value is not None or not optional) and (not callable(value) or isinstance(value, type)):
            hint = f"; by name: jaxnet.losses.get({value!r})" if isinstance(value, str) else ""
            _refuse(owner, name, value, expected, hint)

    return check


def _check_optimizer(owner, name, value):
    if hasattr(value, "init") and hasattr(value, "update"):
        return
    hint = ""
    if isinstance(value, str):
        hint = f"; by name: jaxnet.optim.get({value!r}, learning_rate)"
    elif callable(value) and not isinstance(value, type):
        hint = "; call it with a learning rate"
    expected = "an optimizer such as jaxnet.optim.adam(1e-3) or optax.adam(1e-3)"
    _refuse(owner, name, value, expected, hint)


def _check_metrics(owner, name, value):
    if value is None:
        return
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        expected = "a list or dict of functions metric(predictions, targets)"
        _refuse(owner, name, value, expected, "; e.g. metrics=[jaxnet.metrics.accuracy]")
    for key, metric in items:
        if not callable(metric) or isinstance(metric, type):
            expected = "a function metric(predictions, targets) such as jaxnet.metrics.accuracy"
            _refuse(owner, f"{name}[{key!r}]", metric, expected)


HOOKS = ("on_train_begin", "on_chunk_end", "on_epoch_end", "on_train_end", "on_probe")


def _check_callbacks(owner, name, value):
    if not isinstance(value, list | tuple):
        _refuse(owner, name, value, "a list of callbacks", "; e.g. callbacks=[EarlyStopping()]")
    for i, callback in enumerate(value):
        if isinstance(callback, type) or not any(hasattr(callback, h) for h in HOOKS):
            expected = "a callback (an object with on_epoch_end or another hook)"
            _refuse(owner, f"{name}[{i}]", callback, expected)
        if hasattr(callback, "on_probe"):
            raise ConfigError("a probe goes in fit(monitor=...), not in callbacks", (owner,))


def _check_fraction(owner, name, value):
    if value is not None:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            _refuse(owner, name, value, "a fraction in [0, 1)")
        check_range(owner, name, value, 0.0, 1.0, high_open=True)


def _check_pair(owner, name, value):

    if value is None or isinstance(value, RandomAccess | Stream):
        return
    if not isinstance(value, tuple | list) or len(value) != 2:
        _refuse(owner, name, value, "a pair (x_val, y_val)")


def _check_flag(owner, name, value):
    if not isinstance(value, bool | np.bool_):
        _refuse(owner, name, value, "True or False")


def _check_verbose(owner, name, value):
    if not isinstance(value, bool | np.bool_):
        check_int(owner, name, value, 0, 2)


def _check_path(owner, name, value):
    if value is not None and not isinstance(value, str | os.PathLike):
        _refuse(owner, name, value, "a folder path (str or pathlib.Path), or None")


def _check_dtype(owner, name, value):
    if value is None:
        return
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        _refuse(owner, name, value, "a floating dtype such as jnp.bfloat16, or None")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ConfigError(f"{name} must be a floating dtype, got {dtype}", (owner,))


def _check_mesh(owner, name, value):
    if value is not None and not isinstance(value, jax.sharding.Mesh):
        _refuse(owner, name, value, "a jax.sharding.Mesh (parallel.data_parallel_mesh()), or None")


def _check_train_state(owner, name, value):
    if value is not None and not all(hasattr(value, f) for f in ("params", "opt_state", "step")):
        _refuse(owner, name, value, "a TrainState (as fit returns), or None")


def _check_grid(owner, name, value):
    if value is None:
        return
    if not isinstance(value, Mapping):
        _refuse(owner, name, value, "a dict {hyper-parameter: [values]}")
    for key, values in value.items():
        if isinstance(values, str) or not hasattr(values, "__iter__"):
            _refuse(owner, f"{name}[{key!r}]", values, "a list of values")
        for v in values:
            check_range(owner, f"{name}[{key!r}]", v)


_CHECKS = {
    "epochs": _count(0, optional=False),
    "batch_size": _count(1, optional=False),
    "steps_per_epoch": _count(1),
    "steps_per_execution": _count(1),
    "keep": _count(1),
    "data_seed": lambda owner, name, value: value is None or check_int(owner, name, value),
    "seed": _check_seed,
    "seeds": _check_seeds,
    "model": _check_model,
    "loss_fn": _check_function("a function loss(predictions, targets)", optional=False),
    "penalty": _check_function("a function penalty(params) -> scalar, or None"),
    "optimizer": _check_optimizer,
    "metrics": _check_metrics,
    "callbacks": _check_callbacks,
    "validation_split": _check_fraction,
    "validation_data": _check_pair,
    "grid": _check_grid,
    "shuffle": _check_flag,
    "verbose": _check_verbose,
    "checkpoint_dir": _check_path,
    "compute_dtype": _check_dtype,
    "mesh": _check_mesh,
    "train_state": _check_train_state,
}
