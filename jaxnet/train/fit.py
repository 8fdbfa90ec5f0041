"""``fit``: the thin host loop around compiled epochs."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxnet.core import Layer
from jaxnet.errors import ConfigError, DataError, check_range
from jaxnet.train.callbacks import PrintProgress
from jaxnet.train.data import match_targets, num_examples, split_validation, to_numpy
from jaxnet.train.evaluate import make_evaluate
from jaxnet.train.step import TrainState, create_train_state, make_epoch, named_metrics


class History:
    """Per-epoch logs: ``history["loss"]``, ``history["val_accuracy"]``, ... (lists of floats)."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}

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


def _as_key(seed):
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
    verbose: int = 1,
    train_state: TrainState | None = None,
    penalty: Callable | None = None,
    shuffle: bool = True,
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
      callbacks: objects following :mod:`jaxnet.train.callbacks`'s protocol.
      verbose: ``1`` prints one line per epoch, ``0`` is silent.
      train_state: continue from this state instead of initialising from ``seed``.
      penalty: ``penalty(params) -> scalar`` added to the loss (weight regularization).

    >>> ts, history = fit(model, losses.sparse_categorical_cross_entropy, optax.adam(1e-3),
    ...                   x, y, epochs=20, metrics=[metrics.accuracy], validation_split=0.1)
    """
    check_range("fit", "epochs", epochs, 0)
    check_range("fit", "batch_size", batch_size, 1)
    x, y = to_numpy(x, "x"), to_numpy(y, "y")
    if validation_split:
        (x, y), validation_data = split_validation(x, y, validation_split)
    n = num_examples(x, y)
    if batch_size > n:
        raise DataError(f"batch_size={batch_size} is larger than the {n} training examples", ("fit",))

    input_shape = jax.tree.map(lambda a: a.shape[1:], x)
    if train_state is None:
        train_state = create_train_state(model, optimizer, input_shape, _as_key(seed))
    output_shape = jax.eval_shape(
        lambda p, s, xb: model.apply(p, s, xb)[0],
        train_state.params,
        train_state.state,
        jax.tree.map(lambda a: jax.ShapeDtypeStruct((1, *a.shape[1:]), a.dtype), x),
    ).shape[1:]
    y = match_targets(y, output_shape)
    x, y = jax.device_put((x, y))
    if validation_data is not None:
        x_val, y_val = to_numpy(validation_data[0], "x_val"), to_numpy(validation_data[1], "y_val")
        num_examples(x_val, y_val)
        validation = jax.device_put((x_val, match_targets(y_val, output_shape, "y_val")))
        evaluate = make_evaluate(model, loss_fn, metrics)

    probers = [c for c in callbacks if getattr(c, "probe", None) is not None]
    if len(probers) > 1:
        raise ConfigError("fit: at most one callback may define a probe", ("fit",))
    probe = probers[0].probe if probers else None
    probe_every = getattr(probers[0], "every", 1) if probers else 1
    epoch_fn = jax.jit(
        make_epoch(
            model,
            loss_fn,
            optimizer,
            batch_size,
            metrics,
            penalty=penalty,
            probe=probe,
            probe_every=probe_every,
            shuffle=shuffle,
        )
    )
    callbacks = list(callbacks) + ([PrintProgress(epochs)] if verbose else [])
    history = History()
    for callback in callbacks:
        getattr(callback, "on_train_begin", lambda ts: None)(train_state)

    for epoch in range(epochs):
        start = time.perf_counter()
        steps_before = int(train_state.step)
        new_state, logs, probes = epoch_fn(train_state, x, y)
        logs = {name: float(logs[name]) for name in ["loss", *named_metrics(metrics)]}
        if probe is not None:
            steps = np.arange(steps_before, int(new_state.step))
            keep = steps % probe_every == 0
            probes = jax.tree.map(lambda a: np.asarray(a)[keep], probes)
            for callback in probers:
                callback.on_probe(epoch, steps[keep], probes)
        if not all(np.isfinite(v) for v in logs.values()):
            warnings.warn(
                f"fit: non-finite training loss/metrics in epoch {epoch + 1} ({logs}); stopped and "
                "kept the parameters from the end of the previous epoch. Lower the learning rate, "
                "clip gradients or check the data.",
                RuntimeWarning,
                stacklevel=2,
            )
            break
        train_state = new_state
        if validation_data is not None:
            val_logs = evaluate(train_state.params, train_state.state, *validation)
            logs |= {f"val_{name}": float(val_logs[name]) for name in ["loss", *named_metrics(metrics)]}
        logs["time"] = time.perf_counter() - start
        history.append(logs)
        stop = False
        for callback in callbacks:
            hook = getattr(callback, "on_epoch_end", None)
            stop = bool(hook and hook(epoch, logs, train_state)) or stop
        if stop:
            break

    for callback in callbacks:
        hook = getattr(callback, "on_train_end", None)
        replacement = hook(train_state, history) if hook else None
        train_state = train_state if replacement is None else replacement
    return train_state, history


