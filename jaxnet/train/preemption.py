"""Preemption: a SIGTERM (or a first Ctrl-C on a terminal) during ``fit`` saves and stops.

A scheduler that preempts a job (SLURM, Kubernetes, a cloud's spot VMs) sends SIGTERM and kills
the process a grace period later. During ``fit`` the signal handler only records the request;
the host loop acts on it at the next *chunk boundary* (between two compiled chunk programs of an
epoch, or at the end of an epoch that runs as one program; :mod:`jaxnet.train.feed`):

- with checkpoints (``checkpoint_dir=`` or a :class:`~jaxnet.train.checkpointing.Checkpoint`
  callback) the state is saved there through the same path as ``Checkpoint(every_steps=...)``
  (the position in the epoch included), a message says where, and ``fit`` raises
  :class:`Preempted`, a ``SystemExit``: uncaught, the process exits with status ``128 + signal``
  (143 for SIGTERM, as if the signal had killed it, so a scheduler sees a job that did not
  finish). The same ``fit`` call with ``resume=True`` continues bit-identically;
- without checkpoints ``fit`` stops there, warns, and returns the last finite state (the
  state at that boundary, or the one the epoch began with if the epoch went non-finite).

In a run of several processes the request is agreed on at every boundary with one small
collective (the largest signal number any process received), so every process stops, and
process 0 saves, at the same step, even when only one process got the signal.

SIGINT (Ctrl-C) is handled the same way only when standard input is a terminal: a first Ctrl-C
asks for a graceful stop, a second one interrupts at once (``KeyboardInterrupt``), as with
Keras and Orbax. Elsewhere (a notebook, a pipe) Ctrl-C keeps its usual meaning. A second SIGTERM
changes nothing: the first is being acted on. Handlers are installed only from the main thread
(Python runs signal handlers there); ``fit`` in another thread leaves signals alone. They are
installed when training begins and the previous ones are put back however it ends (a return,
:class:`Preempted`, or an exception from a callback, the data or a Ctrl-C: ``fit`` restores
them in a ``finally``).

``fit_many`` (:mod:`jaxnet.train.many`) uses the same callback: it keeps no checkpoints, so a
signal stops it at the next epoch boundary (a chunk boundary when it reads a data source), with
a warning, and it returns the models' state there and the history of the whole epochs so far.
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings

import jax
import numpy as np

from jaxnet.train.callbacks import Callback, Loop
from jaxnet.train.checkpointing import Checkpoint
from jaxnet.train.feed import step_count
from jaxnet.train.guard import became_non_finite


class Preempted(SystemExit):
    """Raised by ``fit`` after a preemption signal, once the state is saved. Uncaught, the
    process exits with :attr:`code` ``= 128 + signal`` (143 for SIGTERM, 130 for SIGINT).

    Attributes: ``signal`` (its number), ``epoch`` (0-based epoch it stopped in), ``steps``
    (steps of that epoch done; ``0``: at the epoch's start), ``step`` (the train state's step),
    ``message``.
    """

    def __init__(self, message: str, signum: int, epoch: int, steps: int, step: int):
        super().__init__(message)
        self.code = 128 + signum
        self.message, self.signal, self.epoch, self.steps, self.step = (
            message, signum, epoch, steps, step
        )  # fmt: skip

    def __str__(self) -> str:
        return self.message


class StopAtChunk(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by :class:`Preemption` at a chunk boundary to leave the running epoch; ``fit``
    catches it and ends training (``loop.train_state`` is the state to return)."""


def handled_signals() -> list[int]:
    """SIGTERM, and SIGINT when standard input is a terminal."""
    interactive = sys.stdin is not None and sys.stdin.isatty()
    return [signal.SIGTERM, *([signal.SIGINT] if interactive else [])]


class _Handler:
    """The installed handler: records the signal in its :class:`Preemption`; a second SIGINT
    puts the previous handlers back and raises ``KeyboardInterrupt``."""

    def __init__(self, owner: Preemption, previous):
        self.owner, self.previous = owner, previous

    def __call__(self, signum, frame):
        del frame
        if signum == signal.SIGINT and self.owner.requested == signal.SIGINT:
            self.owner.restore()
            raise KeyboardInterrupt
        if self.owner.requested is None:
            self.owner.requested = signum
            if jax.process_index() == 0:
                print(f"jaxnet: {signal.Signals(signum).name} received: stopping at the next "
                      "chunk boundary" + (" (Ctrl-C again to interrupt now)"
                      if signum == signal.SIGINT else ""), file=sys.stderr, flush=True)  # fmt: skip


class Preemption(Callback):
    """The callback ``fit`` adds last: installs the signal handlers on train begin, agrees on a
    stop request at every chunk boundary and epoch end, saves through ``callbacks``'
    :class:`~jaxnet.train.checkpointing.Checkpoint` s and stops; restores the handlers on train
    end, then raises :class:`Preempted` if it stopped with a checkpoint saved.

    ``owner`` names the training function in the warning given when nothing was saved, and
    ``unsaved`` says why.

    Attributes: ``requested`` (the signal number this process received, or ``None``),
    ``stopped`` (``(signal, epoch, steps into it, step)`` where training stopped, or ``None``).
    """

    def __init__(self, callbacks=(), owner="fit",
                 unsaved="no checkpoint_dir: nothing saved; pass one to resume later"):  # fmt: skip
        self.owner, self.unsaved = owner, unsaved
        self.checkpoints = [c for c in callbacks if isinstance(c, Checkpoint)]
        self.requested = self.stopped = None
        self.handlers: dict[int, _Handler] = {}

    # -- signals ---------------------------------------------------------------------------------
    def install(self) -> None:
        """Install the handlers of :func:`handled_signals` (main thread only); :meth:`restore`
        puts the previous ones back."""
        self.requested = self.stopped = None
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in handled_signals():
            self.handlers[signum] = _Handler(self, signal.getsignal(signum))
            signal.signal(signum, self.handlers[signum])

    def restore(self) -> None:
        """Put back the handlers that were installed before (the default where the previous one
        was not installed from Python). Nothing to do if none is installed: ``fit`` calls it
        again in a ``finally``."""
        for signum, handler in self.handlers.items():
            if signal.getsignal(signum) is handler:
                previous = handler.previous
                signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self.handlers = {}

    def agreed(self) -> int | None:
        """The signal any process of the run was asked to stop by (the largest number), or
        ``None``. In several processes every one must call this at the same points."""
        local = self.requested or 0
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            local = int(np.max(multihost_utils.process_allgather(np.int32(local))))
        return local or None

    # -- hooks -----------------------------------------------------------------------------------
    def on_train_begin(self, loop: Loop) -> None:
        self.install()

    def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop: Loop) -> None:
        # (The feed keeps the host at most one chunk ahead of the device, so a stop is acted on
        # within a chunk or two, not after every chunk of the epoch: see _Feed.run_chunks.)
        signum = self.agreed()
        if signum is None or steps_done >= loop.steps_per_epoch:
            return  # (at the epoch's last chunk: the epoch's end saves and stops)
        for checkpoint in self.checkpoints:
            checkpoint.save_chunk(epoch, steps_done, train_state, step_logs, loop)
        if became_non_finite(loop.train_state, train_state):
            steps_done = 0  # the guard would refuse this epoch: keep the state it began with
        else:  # no chunk runs after this one, so its buffers stay valid (none is donated)
            loop.train_state = train_state
        self.stopped = (signum, epoch, steps_done, step_count(loop.train_state))
        raise StopAtChunk

    def on_epoch_end(self, epoch: int, logs: dict, loop: Loop) -> None:
        signum = self.agreed()
        if signum is not None:
            loop.stop_training = True
            self.stopped = (signum, epoch + 1, 0, step_count(loop.train_state))

    def on_train_end(self, loop: Loop) -> None:
        self.restore()
        if self.stopped is None and self.requested is None:
            return
        signum, epoch, steps, step = self.stopped or (self.requested, loop.epochs, 0, None)
        step = step_count(loop.train_state) if step is None else step
        name = signal.Signals(signum).name
        where = f"epoch {epoch + 1}, {steps} steps into it (step {step})"
        if epoch >= loop.epochs:
            where = f"the end of training (step {step})"
        elif not steps:
            where = f"the start of epoch {epoch + 1} (step {step})"
        if not self.checkpoints:
            warnings.warn(
                f"{self.owner}: {name} received: stopped training at {where} and returned that "
                f"state ({self.unsaved})",
                RuntimeWarning,
                stacklevel=4,  # the call of fit (fit -> call -> on_train_end), or of fit_many
            )
            return
        directories = ", ".join(str(c.manager.directory) for c in self.checkpoints)
        message = (
            f"jaxnet: {name} received: stopped training at {where}, saved in {directories}; "
            "run the same fit with resume=True (jaxnet train: --resume) to continue"
        )
        if jax.process_index() == 0:
            print(message, file=sys.stderr, flush=True)
        raise Preempted(message, signum, min(epoch, loop.epochs), steps, step)


__all__ = ["Preempted", "Preemption", "handled_signals"]
