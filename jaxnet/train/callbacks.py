"""The callback protocol ``fit`` calls between compiled epochs, and the plain progress printer.

``fit`` keeps what it knows between epochs in a :class:`Loop` — the one mutable thing in training,
and it lives on the host. A callback is any object with some of these methods (missing ones are
skipped); each gets the ``Loop`` and may read or change it:

- ``on_train_begin(loop)``: before the first epoch (and before compiling). May replace
  ``loop.train_state`` and set ``loop.initial_epoch`` and ``loop.history`` (resuming a run).
- ``on_chunk_end(epoch, steps_done, train_state, step_logs, loop)``: after each chunk of an epoch
  that runs in chunks (a data source, or a long epoch; see :mod:`jaxnet.train.feed`):
  ``train_state`` is the state after ``steps_done`` steps of the epoch (valid during the call
  only: the next chunk updates its buffers in place), ``step_logs`` a list of per-step log dicts
  (device arrays) of the epoch so far. For progress and mid-epoch checkpoints.
- ``on_epoch_end(epoch, logs, loop)``: after each epoch; ``logs`` maps names (``"loss"``,
  ``"val_loss"``, ``"accuracy"``, ...) to floats. Set ``loop.stop_training = True`` to stop; replace
  ``loop.train_state`` to change what training continues from (e.g. a new learning rate).
- ``on_train_end(loop)``: after the last epoch; may replace ``loop.train_state`` (e.g. with the
  best state seen), which is what ``fit`` returns.

Keras's callbacks have the same hooks and reach the model through ``self.model``; a jaxnet
callback reaches the train state through ``loop`` because the state is data, not an object.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class Loop:
    """``fit``'s host-side record between compiled epochs, shared with every callback.

    Attributes:
      train_state: the current :class:`~jaxnet.train.step.TrainState` (replaceable).
      epochs: the number of epochs ``fit`` was asked for.
      initial_epoch: the first epoch this call trains (``> 0`` when a run is resumed).
      initial_step, initial_logs: when resuming in the middle of ``initial_epoch``: the steps of
        it already taken and their per-step logs (``{name: array}``).
      steps_per_epoch, batch_size: steps in an epoch and examples in a step.
      data_position: where a stream of batches stands after the last step (its iterator's
        ``get_state()``, for Grain), saved by checkpoints and restored on resume.
      history: the :class:`~jaxnet.train.fit.History` so far.
      stop_training: set to ``True`` to stop after the current epoch.
      run_config: ``None``, or (set by ``fit``) a function returning what defines the run as
        JSON (:mod:`jaxnet.train.run_config`), for callbacks that record or check it.
    """

    def __init__(self, train_state, epochs: int, history, steps_per_epoch=0, batch_size=0):
        self.train_state: Any = train_state
        self.epochs, self.steps_per_epoch, self.batch_size = epochs, steps_per_epoch, batch_size
        self.initial_epoch, self.initial_step, self.initial_logs = 0, 0, None
        self.data_position = None  # where a stream stands (its iterator's get_state()), if known
        self.history = history
        self.stop_training = False
        self.run_config = None

    def resume_point(self, epoch: int) -> tuple[int, Any]:
        """``(first step, per-step logs of the steps before it)`` for ``epoch``."""
        if epoch != self.initial_epoch:
            return 0, None
        return self.initial_step, self.initial_logs


class Callback:
    """Optional base class: every hook does nothing."""

    def on_train_begin(self, loop: Loop) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict, loop: Loop) -> None:
        pass

    def on_train_end(self, loop: Loop) -> None:
        pass


def call(callbacks, hook: str, *args) -> None:
    """Call ``hook(*args)`` on every callback that defines it, in order."""
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(*args)


class PrintProgress(Callback):
    """One line per epoch: ``epoch 3/50  loss 0.1234  accuracy 0.9700  val_loss ...  [0.5s]``."""

    def __init__(self, epochs: int, every: int = 1, stream=None):
        self.epochs, self.every, self.stream = epochs, every, stream or sys.stdout
        self._start = None

    def on_train_begin(self, loop):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs, loop):
        if (epoch + 1) % self.every and epoch + 1 != self.epochs:
            return
        width = len(str(self.epochs))
        values = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "time")
        elapsed = time.perf_counter() - self._start
        print(
            f"epoch {epoch + 1:>{width}}/{self.epochs}  {values}  [{elapsed:.1f}s]",
            file=self.stream,
        )
