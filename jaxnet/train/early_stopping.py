"""Early stopping: stop ``fit`` when a monitored metric stops improving, keep the best model.

>>> stop = EarlyStopping("val_loss", patience=10, restore_best=True)
>>> ts, history = fit(model, loss, opt, x, y, epochs=500, validation_split=0.2, callbacks=[stop])
>>> stop.best_epoch, stop.best            # ts holds the parameters of that epoch
"""

from __future__ import annotations

import math
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.errors import ConfigError, check_range
from jaxnet.regularizers import param_paths
from jaxnet.train.callbacks import Callback

_MAXIMIZED = ("acc", "auc", "precision", "recall", "f1", "r2")
_MINIMIZED = ("loss", "error", "mae", "mse", "rmse")


def infer_mode(monitor: str) -> str:
    """``"max"`` for accuracy-like names, ``"min"`` for losses and errors (Keras's ``"auto"``)."""
    name = monitor.lower()
    if any(word in name for word in _MINIMIZED):
        return "min"
    if any(word in name for word in _MAXIMIZED):
        return "max"
    raise ConfigError(
        f"cannot tell whether {monitor!r} should go up or down; pass mode='min' or mode='max'",
        ("EarlyStopping",),
    )


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs in a row without improvement of ``logs[monitor]``.

    Args:
      monitor: any name ``fit`` logs: ``"val_loss"`` (needs validation data), ``"val_accuracy"``,
        ``"loss"``, ...
      mode: ``"min"``, ``"max"`` or ``"auto"`` (by name: losses/errors go down, accuracies up).
      patience: epochs without improvement to wait before stopping; ``0`` and ``1`` both stop at the
        first epoch that does not improve (Keras's rule).
      min_delta: an improvement must beat the best value by more than this.
      restore_best: if ``True``, ``fit`` returns the :class:`TrainState` of the best epoch, not
        the last one (Keras's ``restore_best_weights``, also ``False`` by default).
      checkpoint: optional ``.npz`` path; the best epoch's params and state are written there at
        every improvement (atomically: a temporary file renamed into place). Read it back with
        :func:`load_checkpoint`.

    After ``fit``: ``best`` (value), ``best_epoch`` (0-based), ``stopped_epoch`` (0-based, or
    ``None`` if training ran to the end) and ``best_train_state``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        mode: str = "auto",
        patience: int = 0,
        min_delta: float = 0.0,
        restore_best: bool = False,
        checkpoint: str | os.PathLike | None = None,
    ):
        check_range("EarlyStopping", "patience", patience, 0)
        check_range("EarlyStopping", "min_delta", min_delta, 0.0)
        if mode not in ("min", "max", "auto"):
            raise ConfigError(
                f"mode must be 'min', 'max' or 'auto', got {mode!r}", ("EarlyStopping",)
            )
        self.monitor = monitor
        self.mode = infer_mode(monitor) if mode == "auto" else mode
        self.patience, self.min_delta = patience, min_delta
        self.restore_best, self.checkpoint = restore_best, checkpoint
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.best_train_state = None
        self.stopped_epoch = None
        self.wait = 0

    def is_improvement(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, train_state):
        self._reset()

    def on_epoch_end(self, epoch, logs, train_state):
        if self.monitor not in logs:
            raise ConfigError(
                f"monitor={self.monitor!r} is not logged; logged names are {sorted(logs)} "
                "(val_* names need validation_data or validation_split)",
                ("EarlyStopping",),
            )
        value = float(logs[self.monitor])
        if self.is_improvement(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            # fit never donates its buffers, so keeping a reference keeps this epoch's arrays.
            self.best_train_state = train_state
            if self.checkpoint is not None:
                save_checkpoint(self.checkpoint, train_state.params, train_state.state)
            return False
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, train_state, history):
        if self.restore_best and self.best_train_state is not None:
            return self.best_train_state
        return None


def _names(tree, prefix: str) -> list[str]:
    return [f"{prefix}/{path}" for path in param_paths(tree)]


def _flat(tree, prefix: str) -> dict:
    return dict(zip(_names(tree, prefix), map(np.asarray, jax.tree.leaves(tree)), strict=True))


def save_checkpoint(path, params, state) -> None:
    """Write ``params`` and ``state`` to ``path`` (``.npz``) via a temporary file and a rename.

    A crash mid-write leaves the previous checkpoint intact, never a half-written file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    arrays = _flat(params, "params") | _flat(state, "state")
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load_checkpoint(path, like):
    """``(params, state)`` from a :func:`save_checkpoint` file, shaped like ``like``.

    ``like`` (e.g. ``(ts.params, ts.state)`` or :func:`~jaxnet.init_model`'s result) supplies the
    tree structure, including empty dicts of stateless layers.
    """
    with np.load(os.fspath(path)) as stored:
        arrays = dict(stored)
    restored = []
    for prefix, template in zip(("params", "state"), like, strict=True):
        names = _names(template, prefix)
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ConfigError(
                f"checkpoint {os.fspath(path)!r} lacks {missing}; it holds {sorted(arrays)}",
                ("load_checkpoint",),
            )
        treedef = jax.tree.structure(template)
        restored.append(jax.tree.unflatten(treedef, [jnp.asarray(arrays[n]) for n in names]))
    return tuple(restored)
