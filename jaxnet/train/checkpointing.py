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

import jax
import numpy as np

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
        ``fit`` restores the train state, the history and the position, and trains the rest;
        the result is bit-identical to an uninterrupted run. Without ``resume``, a directory
        that already holds checkpoints is refused, so two runs never mix.
      every_steps: also save in the middle of an epoch, at the end of the first chunk (see
        :mod:`jaxnet.train.feed`) at least this many steps after the previous save, with the
        epoch's per-step logs so far; resuming there is bit-identical for arrays and
        random-access sources (a stream restarts its epoch). Epochs that run as one program
        have no middle.
    """

    def __init__(self, directory: str | os.PathLike | CheckpointManager, keep: int = 3,
                 resume: bool = False, every_steps: int | None = None):  # fmt: skip
        if isinstance(directory, CheckpointManager):
            self.manager = directory
        else:
            self.manager = CheckpointManager(directory, keep=keep)
        self.resume, self.every_steps, self.saved_step = resume, every_steps, 0

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
        extra = restored.manifest["extra"]
        loop.train_state, loop.initial_epoch = restored.tree, restored.epoch
        loop.history.history = extra.get("history", {})
        if "epoch_logs" in extra:  # saved in the middle of an epoch
            logs = {
                name: np.asarray(values, np.float32) for name, values in extra["epoch_logs"].items()
            }
            loop.initial_step, loop.initial_logs = len(next(iter(logs.values()))), logs
        self.saved_step = int(restored.step or 0)

    def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop: Loop) -> None:
        step = int(train_state.step)
        if not self.every_steps or steps_done >= loop.steps_per_epoch:
            return
        if step - self.saved_step < self.every_steps:
            return
        step_logs = jax.device_get(step_logs)
        epoch_logs = {name: np.concatenate([np.atleast_1d(logs[name]) for logs in step_logs])
                      for name in step_logs[0]}  # fmt: skip
        extra = {"history": loop.history.to_dict(), "epoch_logs": epoch_logs}
        self.manager.save(train_state, epoch, extra=extra, steps_into_epoch=steps_done)
        self.saved_step = step

    def on_epoch_end(self, epoch: int, logs: dict, loop: Loop) -> None:
        extra = {"history": loop.history.to_dict()}
        self.manager.save(loop.train_state, epoch + 1, metrics=logs, extra=extra)
        self.saved_step = int(loop.train_state.step)
