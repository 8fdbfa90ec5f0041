"""Early stopping: stop ``fit`` when a monitored metric stops improving, keep the best model.

::

    stop = EarlyStopping("val_loss", patience=10, restore_best=True)
    ts, history = fit(model, loss, opt, x, y, epochs=500, validation_split=0.2, callbacks=[stop])
    stop.best_epoch, stop.best            # ts holds the parameters of that epoch
"""

from __future__ import annotations

import os

from jaxnet.checkpoint import save
from jaxnet.errors import check_int
from jaxnet.train.callbacks import Callback, Loop
from jaxnet.train.monitored import Monitored

BEST = "best"  # the checkpoint's name inside ``checkpoint``'s directory


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs in a row without improvement of ``logs[monitor]``.

    Args:
      monitor: any name ``fit`` logs: ``"val_loss"`` (needs validation data), ``"val_accuracy"``,
        ``"loss"``, ...
      mode: ``"min"``, ``"max"`` or ``"auto"`` (by name, :func:`jaxnet.metrics.direction`: losses
        and errors go down, accuracies up).
      patience: epochs without improvement to wait before stopping; ``0`` and ``1`` both stop at the
        first epoch that does not improve (Keras's rule).
      min_delta: an improvement must beat the best value by more than this.
      restore_best: if ``True``, ``fit`` returns the :class:`TrainState` of the best epoch, not
        the last one (Keras's ``restore_best_weights``, also ``False`` by default).
      checkpoint: optional directory; at every improvement the best train state is written there
        as the :mod:`jaxnet.checkpoint` checkpoint ``best`` (atomic, checksummed); read it back
        with ``jaxnet.checkpoint.load(directory / "best.json", template)``.

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
        check_int("EarlyStopping", "patience", patience, 0)
        self.watched = Monitored(monitor, mode, min_delta, owner="EarlyStopping")
        self.monitor, self.mode, self.min_delta = monitor, self.watched.mode, min_delta
        self.patience = patience
        self.restore_best, self.checkpoint = restore_best, checkpoint
        self._reset()

    @property
    def best(self) -> float:
        return self.watched.best

    def _reset(self):
        self.watched.reset()
        self.best_epoch = None
        self.best_train_state = None
        self.stopped_epoch = None
        self.wait = 0

    def on_train_begin(self, loop: Loop) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: dict, loop: Loop) -> None:
        if self.watched.improved(logs):
            self.best_epoch, self.wait = epoch, 0
            # fit never donates its buffers, so keeping a reference keeps this epoch's arrays.
            self.best_train_state = loop.train_state
            if self.checkpoint is not None:
                extra = {"monitor": self.monitor, "best": self.best}
                save(self.checkpoint, BEST, loop.train_state, epoch=epoch + 1, extra=extra)
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            loop.stop_training = True

    def on_train_end(self, loop: Loop) -> None:
        if self.restore_best and self.best_train_state is not None:
            loop.train_state = self.best_train_state
