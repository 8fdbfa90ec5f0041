"""What defines a training run, as JSON: what a checkpoint records so a resumed run is the same run.

``fit`` puts ``functools.partial(run_record, arguments, train_state)``
(:func:`jaxnet.train.options.run_record`) in ``loop.run_config``; a callback that needs the
record (:class:`~jaxnet.train.checkpointing.Checkpoint`) calls it once. The record holds every
option that :data:`jaxnet.train.options.OPTIONS` marks as defining the run, under its argument's
name, written by the functions here:

- ``model``: :func:`jaxnet.describe` of the model (layers, sizes, activations, initializers),
  or, for a model that cannot be described, its name and every parameter's path, dtype and shape;
- ``loss_fn``, ``penalty``: the functions' qualified names (:func:`callable_name`); ``metrics``
  their names;
- ``optimizer``: the state's types (``ScaleByAdamState``, ...) and its scalar floating-point
  leaves at initialisation, which are its hyper-parameters where the optimizer keeps them in its
  state: jaxnet's optimizers keep the learning rate there, ``optax.inject_hyperparams`` every
  hyper-parameter; a rate closed over by a plain optax optimizer cannot be read back;
- ``batch_size``, ``shuffle``, ``seed``, ``compute_dtype``, ``steps_per_epoch``, ``ema``,
  ``accumulate``, ``validation_split``: their values;
- ``shard_order``: ``null`` for a run in the one-device order (it resumes on any number of
  devices), ``"per_device over 4 devices"`` for a run whose batches depend on its number of
  devices (``shard_order="per_device"`` on more than one device);
- ``x``, ``y`` and ``validation_data``: for each array its dtype, shape and a cheap hash (SHA-256
  of at most :data:`SAMPLE` evenly spaced elements), or a data source's type and length
  (:func:`fingerprint`).

:func:`differences` compares two records and says, line by line, what changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.core import path_string
from jaxnet.description import describe

SAMPLE = 65536  # elements of an array hashed for its fingerprint


def model_record(model, params) -> dict:
    """:func:`jaxnet.describe` of ``model``; else its name and parameter specs."""

    try:
        return describe(model)
    except Exception:  # any model trains; one that describe refuses is recorded by its specs
        leaves = jax.tree_util.tree_flatten_with_path(params)[0]
        specs = {path_string(p): f"{jnp.result_type(a).name}{list(np.shape(a))}" for p, a in leaves}
        return {"name": getattr(model, "name", type(model).__name__), "params": specs}


def callable_name(fn: Callable) -> str:
    """A name of ``fn`` that is the same in every process (no memory addresses)."""
    if isinstance(fn, functools.partial):
        arguments = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in fn.keywords.items()]
        return f"partial({', '.join([callable_name(fn.func), *arguments])})"
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}" if module else name


def optimizer_record(opt_state) -> dict:
    """The types in ``opt_state`` and its scalar floating-point leaves (hyper-parameters)."""
    types = []

    def walk(node):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            types.append(type(node).__name__)
        children = node.values() if isinstance(node, Mapping) else node
        for child in children if isinstance(node, Mapping | tuple | list) else ():
            walk(child)

    walk(opt_state)
    scalars = {
        path_string(path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]
        if np.shape(leaf) == () and jnp.issubdtype(jnp.result_type(leaf), jnp.floating)
    }
    values = jax.device_get(scalars)
    return {"types": types, "hyperparameters": {k: float(v) for k, v in values.items()}}


def seed_record(seed):
    """An int seed as itself, a PRNG key as its key data."""
    if isinstance(seed, int | np.integer):
        return int(seed)
    if hasattr(seed, "dtype") and jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(seed)).tolist()
    return np.asarray(seed).tolist()


def fingerprint(data):
    """``"float32[150, 4] sha256:0123456789abcdef"`` for an array (``dict``/``list`` of them for
    a pytree); ``{"source": type, "length": n}`` for a data source or stream."""
    if data is None:
        return None
    if isinstance(data, Mapping):
        return {str(key): fingerprint(value) for key, value in data.items()}
    if isinstance(data, tuple | list) and any(hasattr(item, "shape") for item in data):
        return [fingerprint(item) for item in data]
    if isinstance(data, tuple | list) or (hasattr(data, "shape") and hasattr(data, "__array__")):
        return _array_fingerprint(data)
    length = len(data) if hasattr(data, "__len__") else None
    return {"source": type(data).__qualname__, "length": length}


def _array_fingerprint(array) -> str:
    if not isinstance(array, jax.Array):
        array = np.asarray(array)  # a view of NumPy arrays and memory maps: nothing is read
    shape, dtype = tuple(array.shape), np.dtype(array.dtype)
    step = max(1, int(np.prod(shape, dtype=np.int64)) // SAMPLE)
    sample = np.asarray(array.reshape(-1)[::step])
    data = sample.tobytes() if dtype.kind != "O" else "\n".join(map(repr, sample)).encode()
    return f"{dtype.name}{list(shape)} sha256:{hashlib.sha256(data).hexdigest()[:16]}"


MISSING = "(absent)"


def differences(stored, current, path: str = "") -> list[str]:
    """``["optimizer/hyperparameters/1/learning_rate: 0.01 in the checkpoint, 0.3 now", ...]``:
    every leaf where two records differ."""
    if isinstance(stored, dict) and isinstance(current, dict):
        found = []
        for key in [*stored, *(k for k in current if k not in stored)]:
            where = f"{path}/{key}" if path else str(key)
            found += differences(stored.get(key, MISSING), current.get(key, MISSING), where)
        return found
    if isinstance(stored, list) and isinstance(current, list) and len(stored) == len(current):
        found = []
        for i, (a, b) in enumerate(zip(stored, current, strict=True)):
            found += differences(a, b, f"{path}/{i}")
        return found
    if stored == current:
        return []
    return [f"{path}: {_short(stored)} in the checkpoint, {_short(current)} now"]


def _short(value) -> str:
    if isinstance(value, float) and float(np.float32(value)) == value:
        return str(np.float32(value))  # a float32 hyper-parameter: 0.01, not 0.009999999776482582
    text = value if value == MISSING else json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
