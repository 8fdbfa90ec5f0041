"""``fit``'s options, each declared once: its check, its documentation, whether it defines the run.

:data:`OPTIONS` maps an argument's name to an :class:`Option`. From it come

- :func:`check`: the types and ranges of the arguments of ``fit``, ``fit_many``, ``evaluate``
  and ``predict``, before anything is built or compiled (a wrong type is an
  :class:`~jaxnet.errors.ArgumentTypeError`, a wrong value a :class:`~jaxnet.errors.ConfigError`,
  both naming the function and the argument);
- :func:`run_record`: what defines a training run, as JSON, which a checkpoint stores and a resumed
  run must match (:mod:`jaxnet.train.run_config`);
- :func:`documented`: the ``Args:`` section of each function's docstring.

Adding an option to ``fit`` is one entry here and one parameter in ``fit``'s signature.

>>> check("fit", epochs=2.5)
Traceback (most recent call last):
...
jaxnet.errors.ArgumentTypeError: fit: epochs must be an integer, got 2.5 (float)
"""

from __future__ import annotations

import inspect
import json
import numbers
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.errors import ArgumentTypeError, ConfigError, check_int, check_range
from jaxnet.jsonable import dumps
from jaxnet.optim.transforms import DECAY
from jaxnet.train import parallel
from jaxnet.train.run_config import (
    callable_name,
    fingerprint,
    model_record,
    optimizer_record,
    seed_record,
)
from jaxnet.train.sources import RandomAccess, Stream
from jaxnet.train.step import named_metrics


class Option(NamedTuple):
    """One argument: ``check(owner, name, value)`` raises unless ``value`` is acceptable; ``doc``
    is its line in the docstrings; ``record(value, train_state, arguments) -> JSON`` is set when
    the value defines the training run (a resumed run must have the same; ``train_state``: the
    run's initial state; ``arguments``: all of them, for a record that depends on another), and
    ``None`` when it does not."""

    check: Callable
    doc: str
    record: Callable | None = None


def check(owner: str, **arguments) -> None:
    """Check arguments by their names with :data:`OPTIONS` (``owner``: the function's name)."""
    for name, value in arguments.items():
        OPTIONS[name].check(owner, name, value)


def run_record(arguments: Mapping[str, Any], train_state) -> dict:
    """What defines a training run, as JSON: every recorded option among ``arguments`` (see
    :class:`Option` and :mod:`jaxnet.train.run_config`); ``train_state``: the initial state."""
    record = {
        name: OPTIONS[name].record(value, train_state, arguments)
        for name, value in arguments.items()
        if OPTIONS[name].record is not None
    }
    return json.loads(dumps(record))  # exactly what a manifest gives back


def documented(**own: str) -> Callable:
    """Fill the line ``{arguments}`` in the decorated function's docstring with an ``Args:``
    entry for each of its parameters that :data:`OPTIONS` knows (``own``: a text that replaces
    the table's for this function), in the signature's order."""

    def document(fn: Callable) -> Callable:
        lines = []
        for name in inspect.signature(fn).parameters:
            text = own.get(name) or (OPTIONS[name].doc if name in OPTIONS else None)
            if text:
                lines.append(_entry(name, text))
        fn.__doc__ = fn.__doc__.replace("    {arguments}", "\n".join(lines))
        return fn

    return document


def _entry(name: str, text: str, width: int = 96) -> str:
    words = re.findall(r"\S*``[^`\s][^`]*``\S*|\S+", text)  # (never a break inside ``code``)
    lines, line = [], f"      {name}:"
    for word in words:
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "        " + word
        else:
            line = f"{line} {word}"
    return "\n".join([*lines, line])


# ----------------------------------------------------------------------------- checks


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


def _check_any(owner, name, value):
    del owner, name, value


def _check_monitor(owner, name, value):
    if value is not None and not all(hasattr(value, a) for a in ("probe", "every", "on_probe")):
        _refuse(owner, name, value, "a probe such as jaxnet.diagnostics.GradientMonitor(model)")


def _check_resume(owner, name, value):
    if value not in (True, False, "force"):
        raise ConfigError(f"{name} must be True, False or 'force', got {value!r}", (owner,))


def _value(encode: Callable = lambda value: value) -> Callable:
    """A record of the value alone (``None`` stays ``None``), encoded by ``encode``."""
    return lambda value, train_state, arguments: None if value is None else encode(value)


def _shard_record(shard_order, train_state, arguments):
    """``None`` for the one-device order (it resumes on any device count), else the count."""
    shards = parallel.data_shards(arguments.get("mesh"), shard_order)
    return None if shards == 1 else f"per_device over {shards} devices"


def _check_decay(owner, name, value):
    if value is not None:
        check_range(owner, name, value, **(DECAY | {"error": ConfigError}))


OPTIONS: dict[str, Option] = {
    "model": Option(_check_model, "a :class:`~jaxnet.core.Layer` (e.g. from "
        ":func:`~jaxnet.serial` or a recipe's ``.model``); recorded by its description.",
        lambda model, train_state, arguments: model_record(model, train_state.params)),
    "loss_fn": Option(_check_function("a function loss(predictions, targets)", optional=False),
        "``loss(predictions, targets) -> scalar``.", _value(callable_name)),
    "optimizer": Option(_check_optimizer, "any optax-protocol ``GradientTransformation`` "
        "(``jaxnet.optim`` or ``optax``); recorded by its state's types and hyper-parameters.",
        lambda optimizer, train_state, arguments: optimizer_record(train_state.opt_state)),
    "x": Option(_check_any, "inputs with examples on the leading axis (an array, a pytree of "
        "arrays, lists or pandas objects, converted once), or a data source "
        "(:mod:`jaxnet.train.sources`).", _value(fingerprint)),
    "y": Option(_check_any, "targets, checked against the model's outputs and the kind of "
        "targets ``loss_fn`` takes (:func:`~jaxnet.train.data.match_targets`); ``None`` with a "
        "source that yields ``(x, y)``.", _value(fingerprint)),
    "epochs": Option(_count(0, optional=False), "how many passes over the data."),
    "batch_size": Option(_count(1, optional=False), "examples per step; an epoch's remainder "
        "is dropped (a different one each epoch).", _value(int)),
    "seed": Option(_check_seed, "an ``int`` or a PRNG key: initialisation, shuffling and layer "
        "randomness (dropout); the same seed gives bit-identical results.", _value(seed_record)),
    "seeds": Option(_check_seeds, "the models' seeds, e.g. ``range(4)``."),
    "grid": Option(_check_grid, "``{hyper-parameter: [values]}``: every combination is a model."),
    "data_seed": Option(lambda owner, name, value: value is None or check_int(owner, name, value),
        "the shuffling shared by all models; ``None``: each model shuffles with its own seed."),
    "metrics": Option(_check_metrics, "a list or dict of functions ``metric(predictions, "
        "targets)`` logged each epoch (``jaxnet.metrics``).",
        lambda metrics, train_state, arguments: list(named_metrics(metrics))),
    "validation_data": Option(_check_pair, "``(x_val, y_val)`` scored after every epoch.",
        _value(fingerprint)),
    "validation_split": Option(_check_fraction, "the last fraction of ``x`` held out as "
        "validation data (before shuffling), as Keras does.", _value()),
    "callbacks": Option(_check_callbacks, "objects following :mod:`jaxnet.train.callbacks`'s "
        "protocol (``EarlyStopping``, ``Checkpoint``, loggers, ...), called in order after "
        "every epoch."),
    "monitor": Option(_check_monitor, "a probe inside the compiled epoch, e.g. "
        ":class:`~jaxnet.diagnostics.GradientMonitor`: an object with ``probe``, ``every`` and "
        "``on_probe(epoch, steps, probes)``; it is also called as a callback."),
    "verbose": Option(_check_verbose, "``0`` silent; ``1`` a progress bar over epochs on a "
        "terminal, one line per epoch otherwise; ``2`` one line per epoch."),
    "train_state": Option(_check_train_state, "continue from this state instead of "
        "initialising from ``seed``."),
    "penalty": Option(_check_function("a function penalty(params) -> scalar, or None"),
        "``penalty(params) -> scalar`` added to the loss (weight regularization).",
        _value(callable_name)),
    "shuffle": Option(_check_flag, "shuffle the examples every epoch.", _value(bool)),
    "steps_per_epoch": Option(_count(1), "batches per epoch of a stream (or fewer of a data "
        "set).", _value()),
    "steps_per_execution": Option(_count(1), "batches per compiled call when data is read in "
        "chunks (default: about 64 MiB of a source's data, or half a second of an in-memory "
        "epoch that would run long); results do not depend on it."),
    "checkpoint_dir": Option(_check_path, "shorthand for a "
        ":class:`~jaxnet.train.checkpointing.Checkpoint` callback ``Checkpoint(checkpoint_dir, "
        "keep, resume)``, which saves after every epoch and resumes bit-identically."),
    "keep": Option(_count(1), "how many checkpoints to keep."),
    "resume": Option(_check_resume, "continue from the latest checkpoint; a run that differs "
        "from the checkpoint's (any recorded option) is refused, ``\"force\"`` continues "
        "anyway with a warning."),
    "compute_dtype": Option(_check_dtype, "``jnp.bfloat16`` for mixed precision (float32 "
        "master weights and loss).", _value(lambda dtype: jnp.dtype(dtype).name)),
    "mesh": Option(_check_mesh, "a ``jax.sharding.Mesh`` from "
        ":func:`~jaxnet.train.parallel.data_parallel_mesh`: each batch is split across its "
        "devices, params replicated (data parallelism); it may span several processes "
        "(:mod:`jaxnet.train.parallel`)."),
    "shard_order": Option(lambda owner, name, value: parallel.check_shard_order(value, owner, name),
        "with a ``mesh``, ``\"global\"``: the batches of the one-device run (in-memory arrays "
        "replicated on every device, each gathering its part of every batch), so the same seed "
        "gives the same model on any number of devices; ``\"per_device\"``: in-memory arrays "
        "split by rows across the devices, each shuffling its own (``1 / devices`` of the "
        "memory, but other batches, so another model, for each number of devices).",
        _shard_record),
    "ema": Option(_check_decay, "keep an exponential moving average of the "
        "weights with this decay (e.g. ``0.999``): validation scores the average, checkpoints "
        "hold it and the returned state's ``params`` are the average "
        "(:mod:`jaxnet.train.averaging`).", _value()),
    "accumulate": Option(_count(1, optional=False), "step the optimizer every ``accumulate`` "
        "batches on the mean of their gradients (:func:`jaxnet.optim.multi_steps`); steps, logs "
        "and ``batch_size`` stay per batch.", _value(int)),
}  # fmt: skip
