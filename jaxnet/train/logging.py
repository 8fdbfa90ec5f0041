"""Logging callbacks: a progress bar over epochs, CSV, JSON-lines and TensorBoard logs.

An epoch runs as one compiled program, or as chunks of one (a data source, or an epoch long
enough that the bar should move), so progress is shown per epoch or per chunk (one bar over
epochs with the latest loss and metrics as its postfix), never by splitting the epoch into
per-step calls.

::

    fit(model, loss, optimizer, x, y, epochs=50, verbose=0,
        callbacks=[ProgressBar(50), CSVLogger("out/log.csv"), JSONLinesLogger("out/log.jsonl")])

:class:`TensorBoardLogger` needs the optional ``tensorboardX`` package; the CSV/JSON-lines files
are plotted by :func:`jaxnet.plots.plot_history`.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxnet.diagnostics.stats import HISTOGRAM_EDGES
from jaxnet.errors import ConfigError
from jaxnet.jsonable import dumps
from jaxnet.train.callbacks import Callback, PrintProgress


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (progress bars only draw there)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # closed stream
        return False


def _format_logs(logs: dict) -> dict[str, str]:
    return {name: f"{value:.4f}" for name, value in logs.items() if name != "time"}


class ProgressBar(Callback):
    """One ``tqdm`` bar over epochs; the postfix shows the last epoch's loss and metrics.

    An epoch that runs in chunks (a data source or a long epoch, see :mod:`jaxnet.train.feed`)
    moves the bar after every chunk, showing the epoch's running loss and examples per second.
    Silent when ``verbose=0`` or when ``stream`` (default ``sys.stderr``) is not a terminal, so logs
    of batch jobs stay clean. Needs ``tqdm`` (``pip install tqdm``).

    Args:
      epochs: the total number of epochs (the bar's length).
      stream: where to draw; ``sys.stderr`` by default, as tqdm does.
      verbose: ``0`` disables the bar.
      leave: keep the finished bar on screen.
    """

    def __init__(self, epochs: int, *, stream=None, verbose: int = 1, leave: bool = True):
        self.epochs, self.stream, self.verbose, self.leave = epochs, stream, verbose, leave
        self.bar = None
        self._chunk_start = None

    @property
    def enabled(self) -> bool:
        return bool(self.verbose) and is_terminal(self.stream or sys.stderr)

    def on_train_begin(self, loop):
        if not self.enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("ProgressBar needs tqdm: pip install tqdm") from error
        self.bar = tqdm(
            total=self.epochs,
            unit="epoch",
            file=self.stream or sys.stderr,
            leave=self.leave,
            dynamic_ncols=True,
            bar_format="{l_bar}{bar}| {n:.3g}/{total} [{elapsed}<{remaining}{postfix}]",
        )

    def on_chunk_end(self, epoch, steps_done, train_state, step_logs, loop):
        if self.bar is None:
            return
        losses = np.concatenate([np.atleast_1d(np.asarray(logs["loss"])) for logs in step_logs])
        now = time.perf_counter()  # after the chunk's results arrived
        postfix = {"step": f"{steps_done}/{loop.steps_per_epoch}", "loss": f"{losses.mean():.4f}"}
        if self._chunk_start is not None and now > self._chunk_start[0]:
            examples = (steps_done - self._chunk_start[1]) * loop.batch_size
            postfix["examples/s"] = f"{examples / (now - self._chunk_start[0]):.0f}"
        self._chunk_start = (now, steps_done)
        self.bar.update(epoch + steps_done / loop.steps_per_epoch - self.bar.n)
        self.bar.set_postfix(postfix, refresh=True)

    def on_epoch_end(self, epoch, logs, loop):
        self._chunk_start = (time.perf_counter(), 0)
        if self.bar is None:
            return
        # ``epoch + 1 - n`` rather than 1: a resumed run starts part-way through the bar.
        self.bar.update(epoch + 1 - self.bar.n)
        self.bar.set_postfix(_format_logs(logs), refresh=True)

    def on_train_end(self, loop):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def default_progress(epochs: int, verbose: int, stream=None) -> list:
    """The progress callback ``fit`` adds for ``verbose``.

    ``0``: none. ``1``: a :class:`ProgressBar` on a terminal (if tqdm is installed), otherwise one
    :class:`~jaxnet.train.callbacks.PrintProgress` line per epoch. ``2``: always one line per epoch.
    Only process 0 of a run of several processes shows progress.
    """
    if not verbose or jax.process_index() != 0:
        return []
    if verbose == 1 and is_terminal(stream or sys.stderr):
        try:
            import tqdm  # noqa: F401
        except ImportError:
            pass
        else:
            return [ProgressBar(epochs, stream=stream)]
    return [PrintProgress(epochs, stream=stream)]


class _FileLogger(Callback):
    def __init__(self, path, append: bool = False):
        self.path, self.append = Path(path), append
        self._file = None

    def on_train_begin(self, loop):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a" if self.append else "w", newline="")  # noqa: SIM115

    def on_train_end(self, loop):
        if self._file is not None:
            self._file.close()
            self._file = None


class CSVLogger(_FileLogger):
    """One CSV row per epoch: ``epoch,loss,accuracy,val_loss,...,time``; flushed every epoch.

    The columns are those of the first epoch. ``append=True`` continues an existing file (a
    resumed run) without writing the header again.
    """

    def __init__(self, path, append: bool = False):
        super().__init__(path, append)
        self._writer = None

    def on_epoch_end(self, epoch, logs, loop):
        if self._writer is None:
            fields = ["epoch", *logs]
            has_header = self.append and self.path.exists() and self.path.stat().st_size > 0
            self._writer = csv.DictWriter(self._file, fields, restval="", extrasaction="ignore")
            if not has_header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch + 1, **logs})
        self._file.flush()

    def on_train_end(self, loop):
        self._writer = None
        super().on_train_end(loop)


class JSONLinesLogger(_FileLogger):
    """One JSON object per epoch and line: ``{"epoch": 1, "loss": 0.52, ...}``; flushed every epoch.

    Non-finite values are written as ``null`` (JSON has no NaN).
    """

    def on_epoch_end(self, epoch, logs, loop):
        self._file.write(dumps({"epoch": epoch + 1, **logs}) + "\n")
        self._file.flush()


class TensorBoardLogger(Callback):
    """Every logged value as a TensorBoard scalar per epoch (``loss``, ``val_accuracy``, ...).

    With ``monitor`` (a :class:`~jaxnet.diagnostics.GradientMonitor` made with
    ``histograms=True``, passed to ``fit(monitor=...)`` too) it also writes, at every probed
    step, the global gradient norm (``gradients/global_norm``, before any clipping) and each
    layer's histogram of ``log2 |g|`` (``gradients/<layer>``, one bucket per power of two),
    indexed by the training step.

    Needs the optional ``tensorboardX`` package (``pip install jaxnet-classic[tensorboard]``);
    view with ``tensorboard --logdir DIR``.
    """

    def __init__(self, log_dir, *, monitor=None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as error:
            raise ImportError(
                "TensorBoardLogger needs tensorboardX: pip install tensorboardX"
            ) from error
        if monitor is not None and not getattr(monitor, "histograms", False):
            raise ConfigError(
                "the monitor records no gradient histograms: make it with "
                "GradientMonitor(model, histograms=True)",
                ("TensorBoardLogger",),
            )
        self._writer_class, self.log_dir, self._writer = SummaryWriter, str(log_dir), None
        self.monitor, self._written = monitor, 0

    def on_train_begin(self, loop):
        self._writer = self._writer_class(self.log_dir)
        self._written = 0

    def on_epoch_end(self, epoch, logs, loop):
        for name, value in logs.items():
            self._writer.add_scalar(name, value, epoch + 1)
        if self.monitor is not None:
            self._write_gradients(self.monitor.history)
        self._writer.flush()

    def _write_gradients(self, history) -> None:

        limits, centres = HISTOGRAM_EDGES[1:], HISTOGRAM_EDGES[:-1] + 0.5
        for t in range(self._written, len(history["step"])):
            step = int(history["step"][t])
            self._writer.add_scalar("gradients/global_norm", history["grad_global_norm"][t], step)
            for layer, stats in history["layers"].items():
                if "grad_histogram" not in stats:
                    continue
                counts = np.asarray(stats["grad_histogram"][t], np.float64)
                filled = np.nonzero(counts)[0]
                if filled.size == 0:
                    continue
                self._writer.add_histogram_raw(
                    f"gradients/{layer}",
                    min=float(HISTOGRAM_EDGES[filled[0]]),
                    max=float(HISTOGRAM_EDGES[filled[-1] + 1]),
                    num=int(counts.sum()),
                    sum=float(counts @ centres),
                    sum_squares=float(counts @ centres**2),
                    bucket_limits=limits.tolist(),
                    bucket_counts=counts.tolist(),
                    global_step=step,
                )
        self._written = len(history["step"])

    def on_train_end(self, loop):
        self._writer.close()
