"""``fit``: the thin host loop around compiled epochs."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxnet.compilation import run_once
from jaxnet.core import Layer
from jaxnet.errors import ConfigError, check_range
from jaxnet.train import parallel
from jaxnet.train.callbacks import Loop, call
from jaxnet.train.checkpointing import Checkpoint
from jaxnet.train.data import place, prepare
from jaxnet.train.evaluate import make_evaluate
from jaxnet.train.guard import NonFiniteGuard
from jaxnet.train.logging import default_progress
from jaxnet.train.step import (
    TrainState,
    create_train_state,
    make_epoch,
    named_metrics,
    probed_steps,
)


class History:
    """Per-epoch logs: ``history["loss"]``, ``history["val_accuracy"]``, ... (lists of floats)."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.compile_seconds: float = 0.0  # compiling the epoch program, not in history["time"]

    def append(self, logs: dict) -> None:
        for name, value in logs.items():
            self.history.setdefault(name, []).append(value)

    def __getitem__(self, name: str) -> list[float]:
        return self.history[name]

    def __contains__(self, name: str) -> bool:
        return name in self.history

    @property
    def epochs(self) -> int:
        return len(next(iter(self.history.values()), []))

    def to_dict(self) -> dict[str, list[float]]:
        return {name: list(values) for name, values in self.history.items()}

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items()}
        return f"History(epochs={self.epochs}, last={last})"


def as_key(seed):
    """A PRNG key from an ``int`` seed (a key passes through)."""
    if isinstance(seed, int | np.integer):
        return jax.random.key(int(seed))
    return seed


def fit(
    model: Layer,
    loss_fn: Callable,
    optimizer,
    x,
    y,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    seed=0,
    metrics=None,
    validation_data=None,
    validation_split: float | None = None,
    callbacks: Sequence = (),
    monitor=None,
    verbose: int = 1,
    train_state: TrainState | None = None,
    penalty: Callable | None = None,
    shuffle: bool = True,
    checkpoint_dir=None,
    keep: int = 3,
    resume: bool = False,
    compute_dtype=None,
    mesh=None,
) -> tuple[TrainState, History]:
    """Train ``model`` on ``(x, y)``; return the final :class:`TrainState` and the :class:`History`.

    Each epoch is one compiled program (:func:`~jaxnet.train.step.make_epoch`): the data is moved to
    the device once, shuffled by a key derived from ``seed``, cut into ``batch_size`` batches (the
    remainder is dropped, a different one each epoch), and scanned over. Python runs only between
    epochs: validation, logging, callbacks. The same ``seed`` gives bit-identical results.

    Args:
      model: a :class:`~jaxnet.core.Layer` (e.g. from :func:`~jaxnet.serial` or a recipe).
      loss_fn: ``loss(predictions, targets) -> scalar``.
      optimizer: any optax-protocol ``GradientTransformation`` (``jaxnet.optim`` or ``optax``).
      x, y: arrays (or pytrees of arrays) with examples on the leading axis. Integer class labels
        are checked against the model's number of outputs before training starts.
      validation_data: ``(x_val, y_val)``; or ``validation_split``: the last fraction of ``x``.
      callbacks: objects following :mod:`jaxnet.train.callbacks`'s protocol (``EarlyStopping``,
        ``Checkpoint``, loggers, ...), called in order after every epoch.
      monitor: a probe inside the compiled epoch, e.g.
        :class:`~jaxnet.diagnostics.GradientMonitor`: an object with ``probe``, ``every`` and
        ``on_probe(epoch, steps, probes)``; it is also called as a callback.
      verbose: ``0`` silent; ``1`` a progress bar over epochs on a terminal, one line per epoch
        otherwise; ``2`` one line per epoch.
      train_state: continue from this state instead of initialising from ``seed``.
      penalty: ``penalty(params) -> scalar`` added to the loss (weight regularization).
      checkpoint_dir, keep, resume: shorthand for a
        :class:`~jaxnet.train.checkpointing.Checkpoint` callback ``Checkpoint(checkpoint_dir, keep,
        resume)``, which saves after every epoch and resumes bit-identically.
      compute_dtype: ``jnp.bfloat16`` for mixed precision (float32 master weights and loss).
      mesh: a ``jax.sharding.Mesh`` from :func:`~jaxnet.train.parallel.data_parallel_mesh`: each
        batch is split across its devices, params replicated (data parallelism).

    ``history.compile_seconds`` is the time spent compiling the epoch program, kept apart from
    the per-epoch ``history["time"]``. An epoch with a non-finite loss or metric is not accepted
    (:mod:`jaxnet.train.guard`): ``fit`` warns where it broke and stops with the previous state.

    >>> ts, history = fit(model, losses.sparse_categorical_cross_entropy, optax.adam(1e-3),
    ...                   x, y, epochs=20, metrics=[metrics.accuracy], validation_split=0.1)
    """
    check_range("fit", "epochs", epochs, 0)
    check_range("fit", "batch_size", batch_size, 1)
    data = prepare(x, y, batch_size=batch_size, validation_data=validation_data,
                   validation_split=validation_split)  # fmt: skip
    if train_state is None:  # one program, compiled for speed of compiling: it runs once
        init = functools.partial(create_train_state, model, optimizer, data.input_shape)
        train_state = run_once(init, as_key(seed))
    placement = None if mesh is None else parallel.replicated(mesh)
    data = place(data, model, train_state.params, train_state.state, placement)
    make = functools.partial(
        make_epoch, model, loss_fn, optimizer, batch_size, metrics, penalty=penalty,
        shuffle=shuffle, compute_dtype=compute_dtype,
        batch_sharding=None if mesh is None else parallel.batch_sharded(mesh),
    )  # fmt: skip
    probe, every = (None, 1) if monitor is None else (monitor.probe, monitor.every)
    epoch_fn = jax.jit(make(probe=probe, probe_every=every))
    evaluate = make_evaluate(model, loss_fn, metrics) if data.validation is not None else None
    if any(hasattr(callback, "on_probe") for callback in callbacks):
        raise ConfigError("a probe goes in fit(monitor=...), not in callbacks", ("fit",))
    callbacks = [
        *checkpoint_callbacks(checkpoint_dir, keep, resume),
        *([] if monitor is None else [monitor]),
        *callbacks,
        *default_progress(epochs, verbose),
    ]
    guard, loop = NonFiniteGuard(make), Loop(train_state, epochs, History())
    call(callbacks, "on_train_begin", loop)
    loop.train_state = jax.device_put(loop.train_state, placement)
    if loop.initial_epoch < epochs:
        start = time.perf_counter()
        epoch_fn = epoch_fn.lower(loop.train_state, data.x, data.y).compile()
        loop.history.compile_seconds = time.perf_counter() - start

    log_names = ["loss", *named_metrics(metrics)]
    for epoch in range(loop.initial_epoch, epochs):
        start = time.perf_counter()
        new_state, logs, probes = epoch_fn(loop.train_state, data.x, data.y)
        logs = jax.device_get(logs)  # one transfer for every log
        logs = {name: float(logs[name]) for name in log_names}
        if monitor is not None:
            steps = probed_steps(data.n, batch_size, every)
            steps = int(loop.train_state.step) + np.array(steps)
            monitor.on_probe(epoch, steps, jax.device_get(probes))
        if not guard.accept(epoch, logs, loop.train_state, data.x, data.y):
            break
        loop.train_state = new_state
        if evaluate is not None:
            val_logs = jax.device_get(evaluate(new_state.params, new_state.state, *data.validation))
            logs |= {f"val_{name}": float(val_logs[name]) for name in log_names}
        logs["time"] = time.perf_counter() - start
        loop.history.append(logs)
        call(callbacks, "on_epoch_end", epoch, logs, loop)
        if loop.stop_training:
            break
    call(callbacks, "on_train_end", loop)
    return loop.train_state, loop.history


def checkpoint_callbacks(checkpoint_dir, keep: int, resume: bool) -> list:
    """``[Checkpoint(checkpoint_dir, keep, resume)]``, or ``[]`` without a directory."""
    if checkpoint_dir is None:
        if resume:
            raise ConfigError("resume=True needs a checkpoint_dir to resume from", ("fit",))
        return []
    return [Checkpoint(checkpoint_dir, keep=keep, resume=resume)]
