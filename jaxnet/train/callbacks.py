"""The callback protocol ``fit`` calls between epochs, and the built-in progress printer.

A callback is any object with some of these methods (missing ones are skipped):

- ``on_train_begin(train_state)``
- ``on_epoch_end(epoch, logs, train_state) -> bool | None``: return ``True`` to stop training;
  ``logs`` maps names (``"loss"``, ``"val_loss"``, ``"accuracy"``, ...) to floats.
- ``on_train_end(train_state, history) -> TrainState | None``: may return a replacement state
  (e.g. the best parameters seen).

A callback that defines ``probe`` (a function ``probe(grads=, params=, updates=, outputs=, loss=)
-> pytree``, see :func:`~jaxnet.train.step.make_train_step`) and ``every`` has the probe computed
inside the compiled epoch on every ``every``-th step, and receives the results after each epoch:

- ``on_probe(epoch, steps, probes)``: ``steps`` the probed step numbers, ``probes`` the stacked
  results (NumPy arrays with a leading axis over ``steps``).

At most one callback per ``fit`` may define ``probe``.
"""

from __future__ import annotations

import sys
import time


class Callback:
    """Optional base class: every hook does nothing."""

    def on_train_begin(self, train_state):
        pass

    def on_epoch_end(self, epoch, logs, train_state):
        return None

    def on_train_end(self, train_state, history):
        return None


class PrintProgress(Callback):
    """One line per epoch: ``epoch 3/50  loss 0.1234  accuracy 0.9700  val_loss ...  0.05s``."""

    def __init__(self, epochs: int, every: int = 1, stream=None):
        self.epochs, self.every, self.stream = epochs, every, stream or sys.stdout
        self._start = None

    def on_train_begin(self, train_state):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs, train_state):
        if (epoch + 1) % self.every and epoch + 1 != self.epochs:
            return None
        width = len(str(self.epochs))
        values = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "time")
        elapsed = time.perf_counter() - self._start
        print(
            f"epoch {epoch + 1:>{width}}/{self.epochs}  {values}  [{elapsed:.1f}s]",
            file=self.stream,
        )
        return None
