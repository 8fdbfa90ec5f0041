"""``Checkpoint``: the callback that saves a run after every epoch and resumes it.

::

    ts, history = fit(model, loss, opt, x, y, epochs=50, callbacks=[Checkpoint("runs/mlp")])
    # killed at epoch 20? the same call with resume=True continues at epoch 21, bit for bit:
    ts, history = fit(model, loss, opt, x, y, epochs=50,
                      callbacks=[Checkpoint("runs/mlp", resume=True)])

``fit(..., checkpoint_dir=d, keep=k, resume=r)`` is shorthand for
``callbacks=[Checkpoint(d, k, r)]``.
The files are :mod:`jaxnet.checkpoint`'s (safetensors arrays + a checksummed JSON manifest).

Every manifest also records what defines the run (``loop.run_config``, filled by ``fit``: the
model, optimizer and its hyper-parameters, loss, metrics, batch size, validation, data
fingerprint, seed; :mod:`jaxnet.train.run_config`). Resuming with anything different is a
:class:`~jaxnet.checkpoint.CheckpointError` listing what changed; ``resume="force"`` continues
from the checkpoint anyway (with a warning listing the changes; the state, optimizer state and
learning rate included, is the checkpoint's, and the new checkpoints record this call's run).
To change the learning rate of a resumed run, resume with the original optimizer and set the new
rate with :func:`jaxnet.optim.set_hyperparameter` in a callback's ``on_train_begin``.
"""

from __future__ import annotations

import os
import warnings

import jax
import numpy as np

from jaxnet.checkpoint import CheckpointError, CheckpointManager, restore_into
from jaxnet.errors import ConfigError
from jaxnet.train.callbacks import Callback, Loop
from jaxnet.train.guard import became_non_finite
from jaxnet.train.run_config import differences


class Checkpoint(Callback):
    """Save the train state and history after every epoch; with ``resume``, start from the newest
    intact checkpoint.

    Args:
      directory: a folder (created if needed) or a :class:`~jaxnet.checkpoint.CheckpointManager`.
      keep: how many of the newest checkpoints to keep.
      resume: continue from the newest intact checkpoint in ``directory`` (if there is one):
        ``fit`` restores the train state, the history and the position, and trains the rest;
        the result is bit-identical to an uninterrupted run. The run must be the same (see the
        module docstring) and must not have completed more epochs than ``fit`` is asked for;
        ``resume="force"`` continues from the checkpoint anyway, with a warning. Without
        ``resume``, a directory that already holds checkpoints is refused, so two runs never mix.
        A directory holding array files without their manifests is always refused (nothing to
        resume, and jaxnet deletes no file it did not write).
      every_steps: also save in the middle of an epoch, at the end of the first chunk (see
        :mod:`jaxnet.train.feed`) at least this many steps after the previous save, with the
        epoch's per-step logs so far; resuming there is bit-identical for arrays and
        random-access sources (a stream restarts its epoch). Epochs that run as one program
        have no middle. A state that has gone non-finite is not saved.
    """

    def __init__(self, directory: str | os.PathLike | CheckpointManager, keep: int = 3,
                 resume: bool | str = False, every_steps: int | None = None):  # fmt: skip
        if resume not in (True, False, "force"):
            raise ConfigError(f"resume must be True, False or 'force', got {resume!r}",
                              ("Checkpoint",))  # fmt: skip
        if isinstance(directory, CheckpointManager):
            self.manager = directory
        else:
            self.manager = CheckpointManager(directory, keep=keep)
        self.resume, self.every_steps, self.saved_step = resume, every_steps, 0
        self.run = None

    def on_train_begin(self, loop: Loop) -> None:
        manifests, orphans = self.manager.manifests(), self.manager.orphans()
        if orphans and not manifests:
            raise ConfigError(
                f"{self.manager.directory} holds checkpoint array files without their manifests "
                f"({', '.join(p.name for p in orphans[:3])}{' ...' if len(orphans) > 3 else ''}):"
                " they cannot be resumed, and jaxnet does not overwrite or delete files it did "
                "not write; move them away or use another directory",
                ("Checkpoint",),
            )
        self.run = None if loop.run_config is None else loop.run_config()
        if not self.resume:
            if manifests:
                raise ConfigError(
                    f"{self.manager.directory} already holds checkpoints; pass resume=True "
                    "(jaxnet train: --resume) to continue from the newest one, or use an empty "
                    "directory",
                    ("Checkpoint",),
                )
            return
        found = self.manager.latest_intact(validate=check_history)
        if found is None:
            return
        self._check_same_run(*found[:2], loop)  # before the template: it may not fit a new run
        restored = restore_into(loop.train_state, *found)
        extra = restored.manifest["extra"]
        loop.train_state, loop.initial_epoch = restored.tree, restored.epoch
        loop.history.history = extra.get("history", {})
        if "epoch_logs" in extra:  # saved in the middle of an epoch
            logs = {
                name: np.asarray(values, np.float32) for name, values in extra["epoch_logs"].items()
            }
            loop.initial_step, loop.initial_logs = len(next(iter(logs.values()))), logs
        loop.data_position = extra.get("data_position")
        self.saved_step = int(restored.step or 0)

    def _check_same_run(self, path, manifest: dict, loop: Loop) -> None:
        """Raise (or with ``resume="force"``, warn) if this call is not the checkpoint's run."""
        stored, epoch, changes = manifest["extra"].get("run"), manifest["epoch"], []
        if self.run is not None:
            if stored is None:
                changes = ["the checkpoint does not record what defined its run (older jaxnet)"]
            else:
                changes = differences(stored, self.run)
        if epoch > loop.epochs:
            changes.append(
                f"epochs: the checkpoint has completed {epoch} epochs, more than "
                f"epochs={loop.epochs} now"
            )
        if not changes:
            return
        listed = "; ".join(changes[:10]) + (
            f"; and {len(changes) - 10} more" if len(changes) > 10 else ""
        )
        where = f"{path.name} in {self.manager.directory}"
        if self.resume == "force":
            warnings.warn(
                f"resume='force': continuing from {where} although this run differs: {listed}. "
                "The train state (optimizer state and learning rate included) is the "
                "checkpoint's; new checkpoints record this run.",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        rate = any("learning_rate" in change for change in changes)
        raise CheckpointError(
            f"cannot resume from {where}: this run differs from the checkpoint's: {listed}. "
            "Resume with the same settings"
            + (" (to change the learning rate: resume, then optim.set_hyperparameter in a "
               "callback's on_train_begin)" if rate else "")
            + ", pass resume='force' (jaxnet train: --resume force) to continue from the "
            "checkpoint anyway, or use another directory",
            ("Checkpoint",),
        )  # fmt: skip

    def _extra(self, loop: Loop, **more) -> dict:
        run = {} if self.run is None else {"run": self.run}
        position = {} if loop.data_position is None else {"data_position": loop.data_position}
        return {"history": loop.history.to_dict(), **run, **position, **more}

    def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop: Loop) -> None:
        if not self.every_steps or steps_done >= loop.steps_per_epoch:
            return
        if int(train_state.step) - self.saved_step >= self.every_steps:
            self.save_chunk(epoch, steps_done, train_state, step_logs, loop)

    def save_chunk(self, epoch, steps_done, train_state, step_logs, loop: Loop) -> None:
        """Save ``train_state``, ``steps_done`` steps into ``epoch`` (``on_chunk_end``'s
        arguments), unless that step is saved already or the state has gone non-finite."""
        step = int(train_state.step)
        if step == self.saved_step:
            return
        step_logs = jax.device_get(step_logs)
        epoch_logs = {name: np.concatenate([np.atleast_1d(logs[name]) for logs in step_logs])
                      for name in step_logs[0]}  # fmt: skip
        finite = all(np.isfinite(values).all() for values in epoch_logs.values())
        if not finite or became_non_finite(loop.train_state, train_state):
            return  # the guard will refuse this epoch; never a checkpoint to resume into it
        extra = self._extra(loop, epoch_logs=epoch_logs)
        self.manager.save(train_state, epoch, extra=extra, steps_into_epoch=steps_done)
        self.saved_step = step

    def on_epoch_end(self, epoch: int, logs: dict, loop: Loop) -> None:
        self.manager.save(loop.train_state, epoch + 1, metrics=logs, extra=self._extra(loop))
        self.saved_step = int(loop.train_state.step)


def check_history(manifest: dict) -> None:
    """Raise :class:`CheckpointError` unless the manifest's history (and mid-epoch logs) is
    consistent with its epoch: a ``loss`` list per completed epoch, no list longer."""
    extra, epoch = manifest["extra"], manifest["epoch"]
    history, logs = extra.get("history", {}), extra.get("epoch_logs", {})
    for name, values in [*history.items(), *logs.items()]:
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise CheckpointError(f"history entry {name!r} is not a list of numbers",
                                  ("checkpoint",))  # fmt: skip
    lengths = {name: len(values) for name, values in history.items()}
    if any(n > epoch for n in lengths.values()) or lengths.get("loss", epoch) != epoch:
        raise CheckpointError(
            f"the history's lengths {lengths} do not match epoch {epoch}", ("checkpoint",)
        )
    if len({len(values) for values in logs.values()}) > 1:
        raise CheckpointError("the mid-epoch logs have different lengths", ("checkpoint",))


def _is_number(value) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))
