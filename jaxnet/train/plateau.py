"""``ReduceLROnPlateau``: divide the learning rate when a monitored metric stops improving.

The rate is data in the optimizer state (jaxnet's :func:`~jaxnet.optim.scale_by_learning_rate`, or
``optax.inject_hyperparams``), so the callback replaces ``loop.train_state.opt_state`` between
epochs and the compiled epoch runs on unchanged: nothing is recompiled::

    plateau = ReduceLROnPlateau("val_loss", factor=0.5, patience=3, min_lr=1e-5)
    fit(model, loss, optim.adam(1e-3), x, y, validation_split=0.2, callbacks=[plateau])
    plateau.learning_rates          # the rate each epoch trained with
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from jaxnet import optim
from jaxnet.errors import OptimizerError, check_range
from jaxnet.train.callbacks import Callback, Loop
from jaxnet.train.monitored import Monitored

RATE = "learning_rate"


def learning_rate(opt_state: Any) -> float:
    """The learning rate an optimizer state carries: ``optax.inject_hyperparams``'s
    ``hyperparams["learning_rate"]`` if there is one, else the first ``learning_rate`` field."""
    found = _injected(opt_state)
    value = found.hyperparams[RATE] if found is not None else _lookup(opt_state)
    return float(np.asarray(value))


def set_learning_rate(opt_state: Any, value: float) -> Any:
    """``opt_state`` with its learning rate set to ``value``, dtypes kept (so nothing recompiles).

    Sets every ``learning_rate`` field (:func:`jaxnet.optim.set_hyperparameter`) and, inside
    ``optax.inject_hyperparams`` states, the injected ``hyperparams["learning_rate"]``, which is
    what those optimizers' updates read.
    """
    _lookup(opt_state)  # a clear error when there is no rate at all
    opt_state = _set_injected(opt_state, value)
    try:
        return optim.set_hyperparameter(opt_state, RATE, value)
    except OptimizerError:  # an injected rate only (an optax optimizer inside)
        return opt_state


def _lookup(opt_state):
    found = _injected(opt_state)
    if found is not None:
        return found.hyperparams[RATE]
    try:
        return optim.lookup(opt_state, RATE)
    except OptimizerError:
        raise OptimizerError(
            "the optimizer state holds no learning rate: optax's optimizers keep theirs in the "
            "compiled program. Use a jaxnet.optim optimizer (optim.adam(1e-3)) or "
            "optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)",
            ("ReduceLROnPlateau",),
        ) from None


def _children(tree):
    if isinstance(tree, dict):
        return list(tree.values())
    return list(tree) if isinstance(tree, (tuple, list)) else []


def _injected(tree):
    """The first state in ``tree`` with a ``hyperparams`` dict holding a learning rate."""
    if isinstance(getattr(tree, "hyperparams", None), dict) and RATE in tree.hyperparams:
        return tree
    for child in _children(tree):
        found = _injected(child)
        if found is not None:
            return found
    return None


def _set_injected(tree, value):
    if isinstance(getattr(tree, "hyperparams", None), dict) and RATE in tree.hyperparams:
        old = tree.hyperparams[RATE]
        new = np.asarray(value, dtype=np.asarray(old).dtype)
        tree = tree._replace(hyperparams={**tree.hyperparams, RATE: new})
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return tree._replace(**{f: _set_injected(getattr(tree, f), value) for f in tree._fields})
    if isinstance(tree, (tuple, list)):
        return type(tree)(_set_injected(child, value) for child in tree)
    if isinstance(tree, dict):
        return {key: _set_injected(child, value) for key, child in tree.items()}
    return tree


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement.

    Keras's rule, step for step: at each epoch end, a cooldown epoch counts the cooldown down and
    clears the wait; an improvement of ``logs[monitor]`` (by more than ``min_delta``) becomes
    the best and clears the wait; otherwise, outside cooldown, the wait grows and when it
    reaches ``patience`` the rate becomes ``max(rate * factor, min_lr)`` (if it is above
    ``min_lr``), the wait restarts and ``cooldown`` epochs follow in which no reduction happens.

    Args:
      monitor: a name ``fit`` logs (``"val_loss"`` needs validation data, ``"loss"``, ...).
      factor: in ``(0, 1)``.
      patience: epochs without improvement before a reduction.
      mode: ``"min"``, ``"max"`` or ``"auto"`` (by name, :func:`jaxnet.metrics.direction`).
      min_delta: an improvement must beat the best value by more than this (Keras's default).
      cooldown: epochs after a reduction during which no reduction happens.
      min_lr: the rate is never set below this.
      verbose: print each reduction.

    The rate must be data in the optimizer state: a ``jaxnet.optim`` optimizer built with a
    Python-number rate, or ``optax.inject_hyperparams``. A rate given as a JAX array or a
    schedule is recomputed by every update; the callback notices that its change did not stick
    and raises. ``learning_rates`` lists the rate each epoch trained with.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        *,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        verbose: int = 0,
        stream=None,
    ):
        check_range("ReduceLROnPlateau", "factor", factor, 0.0, 1.0, low_open=True, high_open=True)
        check_range("ReduceLROnPlateau", "patience", patience, 0)
        check_range("ReduceLROnPlateau", "cooldown", cooldown, 0)
        check_range("ReduceLROnPlateau", "min_lr", min_lr, 0.0)
        self.watched = Monitored(monitor, mode, min_delta, owner="ReduceLROnPlateau")
        self.monitor, self.factor, self.patience = monitor, factor, patience
        self.mode = self.watched.mode
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self.verbose, self.stream = verbose, stream
        self._reset()

    @property
    def best(self) -> float:
        return self.watched.best

    def _reset(self) -> None:
        self.watched.reset()
        self.wait = self.cooldown_counter = 0
        self.learning_rates: list[float] = []
        self._set = None  # the rate this callback last set

    def on_train_begin(self, loop: Loop) -> None:
        self._reset()
        learning_rate(loop.train_state.opt_state)  # fail before training if there is none

    def on_epoch_end(self, epoch: int, logs: dict, loop: Loop) -> None:
        self.watched.value(logs)  # (an unlogged name is an error before anything changes)
        rate = learning_rate(loop.train_state.opt_state)
        if self._set is not None and not np.isclose(rate, self._set, rtol=1e-6, atol=0):
            raise OptimizerError(
                f"the learning rate was set to {self._set:.6g} but the epoch trained with "
                f"{rate:.6g}: this optimizer recomputes its rate at every update (a schedule, "
                "or a rate given as a JAX array). Build it with a Python-float rate",
                ("ReduceLROnPlateau",),
            )
        self.learning_rates.append(rate)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.watched.improved(logs):
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and rate > np.float32(self.min_lr):
                new = max(rate * self.factor, self.min_lr)
                state = loop.train_state
                loop.train_state = state._replace(opt_state=set_learning_rate(state.opt_state, new))
                self._set = new
                self.cooldown_counter, self.wait = self.cooldown, 0
                if self.verbose:
                    print(
                        f"epoch {epoch + 1}: ReduceLROnPlateau: learning rate {rate:.4g} -> "
                        f"{new:.4g}",
                        file=self.stream or sys.stdout,
                    )
