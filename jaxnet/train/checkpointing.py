"""``Checkpoint``: the callback that saves a run after every epoch and resumes it.

>>> ts, history = fit(model, loss, opt, x, y, epochs=50, callbacks=[Checkpoint("runs/mlp")])
>>> # killed at epoch 20? the same call with resume=True continues at epoch 21, bit for bit:
>>> ts, history = fit(model, loss, opt, x, y, epochs=50,
...                   callbacks=[Checkpoint("runs/mlp", resume=True)])

``fit(..., checkpoint_dir=d, keep=k, resume=r)`` is shorthand for
``callbacks=[Checkpoint(d, k, r)]``.
The files are :mod:`jaxnet.checkpoint`'s (safetensors arrays + a checksummed JSON manifest).
"""

from __future__ import annotations

import os

from jaxnet.checkpoint import CheckpointManager
from jaxnet.errors import ConfigError
from jaxnet.train.callbacks import Callback, Loop


class Checkpoint(Callback):
    """Save the train state and history after every epoch; with ``resume``, start from the newest
    intact checkpoint.

    Args:
      directory: a folder (created if needed) or a :class:`~jaxnet.checkpoint.CheckpointManager`.
      keep: how many of the newest checkpoints to keep.
      resume: continue from the newest intact checkpoint in ``directory`` (if there is one):
        ``fit`` restores the train state, the history and the epoch count, and trains the
        remaining epochs; the result is bit-identical to an uninterrupted run. Without ``resume``,
        a directory that already holds checkpoints is refused, so two runs never mix.
    """

    def __init__(self, directory: str | os.PathLike | CheckpointManager, keep: int = 3,
                 resume: bool = False):  # fmt: skip
        if isinstance(directory, CheckpointManager):
            self.manager = directory
        else:
            self.manager = CheckpointManager(directory, keep=keep)
        self.resume = resume

    def on_train_begin(self, loop: Loop) -> None:
        if not self.resume:
            if self.manager.manifests():
                raise ConfigError(
                    f"{self.manager.directory} already holds checkpoints; pass resume=True "
                    "(jaxnet train: --resume) to continue from the newest one, or use an empty "
                    "directory",
                    ("Checkpoint",),
                )
            return
        restored = self.manager.restore_latest(loop.train_state)
        if restored is None:
            return
        loop.train_state, loop.initial_epoch = restored.tree, restored.epoch
        loop.history.history = restored.manifest["extra"].get("history", {})

    def on_epoch_end(self, epoch: int, logs: dict, loop: Loop) -> None:
        extra = {"history": loop.history.to_dict()}
        self.manager.save(loop.train_state, epoch + 1, metrics=logs, extra=extra)
