"""``GradientMonitor``: the ``fit`` monitor that records per-layer statistics and raises alarms::

monitor = GradientMonitor(model, every=50)
ts, history = fit(model, loss, optimizer, x, y, epochs=20, monitor=monitor)
print(monitor.table()); monitor.findings
"""

from __future__ import annotations

import sys

import numpy as np

from jaxnet.core import Layer
from jaxnet.diagnostics.report import format_table, to_report
from jaxnet.diagnostics.stats import make_probe
from jaxnet.diagnostics.verdicts import Finding, depth_index, diagnose
from jaxnet.errors import ConfigError

DIAGNOSE_EVERY = 10  # probed steps between two diagnoses during training


class GradientMonitor:
    """Record gradient/activation statistics every ``every`` steps; warn; stop on NaN/inf.

    The statistics are computed inside the compiled epoch (see :func:`make_probe`), so probing
    costs a few reductions per probed step and no host round trip. After each epoch the monitor
    keeps the probed steps' raw sums (turned into statistics when :attr:`history` is read); every
    ``DIAGNOSE_EVERY`` probed steps, at once when a gradient is NaN/inf, and at the end of
    training it runs :func:`diagnose` on the history and (``verbose``) prints each finding the
    first time it appears. Diagnosing after every epoch cost more than the epoch of a small model
    (the verdicts read the whole history, so the cost grew with the run).

    Non-finite gradients: with ``stop_on_nonfinite`` the monitor stops ``fit`` after the epoch in
    which a probed step had a NaN/inf gradient, and ``fit`` returns the train state from the end of
    the last epoch whose probed gradients were all finite (the initial state if it was the first).
    Steps between probes are not inspected, but a NaN there reaches the parameters and so the next
    probed gradient. When the epoch's mean loss or its train state is itself non-finite (a NaN
    gradient that reached the parameters), ``fit``'s guard already stops before ``on_epoch_end``
    and keeps the previous epoch's state, which is the same state; the monitor's own stop matters
    when the NaN updates were skipped (``optax.apply_if_finite``).

    Args:
      model: the trained model (optional): lets the statistics find activation layers from
        ``info`` and the remedies name activations and initializers. Without it, activation layers
        are recognised by name (``relu_1``).
      every: probe the first step of each chunk of ``every`` steps of an epoch (at least one step
        per epoch). See docs/diagnostics.md for the cost per workload.
      stop_on_nonfinite: stop training at the first non-finite gradient (see above).
      verbose: print new findings as they appear.
      stream: where to print (default ``sys.stdout``).
      histograms: also record each layer's ``grad_histogram`` (the counts of ``log2 |g|`` per
        power of two, :func:`~jaxnet.diagnostics.stats.log2_histogram`), which
        :class:`~jaxnet.train.logging.TensorBoardLogger` writes as histograms.
      **thresholds: passed to :func:`diagnose`.

    ``history["grad_global_norm"]`` is the global norm of each probed step's gradients, before
    any clipping by the optimizer.
    """

    def __init__(
        self,
        model: Layer | None = None,
        *,
        every: int = 50,
        stop_on_nonfinite: bool = True,
        verbose: bool = True,
        stream=None,
        histograms: bool = False,
        **thresholds,
    ):
        if every < 1:
            raise ConfigError(f"every must be >= 1, got {every!r}", ("GradientMonitor",))
        self.model, self.every = model, int(every)
        self.stop_on_nonfinite, self.verbose = stop_on_nonfinite, verbose
        self.stream, self.thresholds, self.histograms = stream, thresholds, histograms
        self.probe = make_probe(model, packed=True, histograms=histograms)
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded (``fit`` calls this through ``on_train_begin``)."""
        self._chunks: list[dict] = []  # statistics, one dict of arrays per absorbed run
        self._raw: list[tuple] = []  # (steps, epoch, packed probes) not yet absorbed
        self._history: dict | None = None  # cache of the concatenated chunks
        self._undiagnosed = 0  # probed steps since the last diagnosis
        self.epoch_loss: list[float] = []
        self.findings: list[Finding] = []
        self._reported: set = set()
        self.nonfinite_step: int | None = None  # first probed step with a NaN/inf gradient
        self.stopped_epoch: int | None = None
        self.last_good_state = None
        self._bad_epoch = False

    # -- fit's monitor protocol: a probe, and the callback hooks ---------------------------------
    def on_train_begin(self, loop) -> None:
        self.reset()
        self.last_good_state = loop.train_state

    def on_probe(self, epoch: int, steps, probes) -> None:
        steps = np.asarray(steps)
        if steps.size == 0:
            return
        self._raw.append((steps, epoch, probes))
        self._undiagnosed += steps.size
        # Every gradient entry is in some sum of g^2 among the packed floats, so all of them
        # finite means no NaN/inf gradient; otherwise the exact counts decide.
        if not np.isfinite(np.asarray(probes[0])).all():
            chunk = self._absorb()
            layers = chunk["layers"].values()
            counts = [s["grad_nonfinite"] for s in layers if "grad_nonfinite" in s]
            bad = np.any(np.stack(counts) > 0, axis=0) if counts else np.zeros(steps.shape, bool)
            bad = bad[-steps.size :]  # this epoch's probed steps
            if bad.any():
                self._bad_epoch = True
                if self.nonfinite_step is None:
                    self.nonfinite_step = int(steps[np.argmax(bad)])
                self._update_findings()
        if self._undiagnosed >= DIAGNOSE_EVERY:
            self._update_findings()

    def on_epoch_end(self, epoch: int, logs, loop) -> None:
        self.epoch_loss.append(float(logs.get("loss", np.nan)))
        if self._bad_epoch and self.stop_on_nonfinite:
            self.stopped_epoch = epoch
            self._say(
                f"GradientMonitor: non-finite gradients at step {self.nonfinite_step}; stopping "
                f"after epoch {epoch + 1} and keeping the state from the end of the previous epoch"
            )
            loop.stop_training = True
        elif not self._bad_epoch:
            self.last_good_state = loop.train_state

    def on_train_end(self, loop) -> None:
        if self._undiagnosed:
            self._update_findings()
        if self._bad_epoch and self.stop_on_nonfinite:
            loop.train_state = self.last_good_state

    # -- results ---------------------------------------------------------------------------------
    @property
    def history(self) -> dict:
        """``{"step", "epoch", "loss", "grad_global_norm": (T,), "layers": {layer: {stat: (T,)}}}``,
        T probed steps.

        Layers are in depth order; ``dead_units`` is ``(T, units)``, ``grad_histogram``
        ``(T, buckets)``.
        """
        fields = ("step", "epoch", "loss", "grad_global_norm")
        self._absorb()
        if not self._chunks:
            return {**{k: np.zeros(0) for k in fields}, "layers": {}}
        if self._history is None:
            out = {k: np.concatenate([c[k] for c in self._chunks]) for k in fields}
            names = self._chunks[-1]["layers"]
            out["layers"] = {
                name: {
                    stat: np.concatenate([c["layers"][name][stat] for c in self._chunks])
                    for stat in names[name]
                }
                for name in sorted(names, key=depth_index)
            }
            self._history = out
        return self._history

    def diagnose(self, **thresholds) -> list[Finding]:
        """:func:`diagnose` over the whole history, with the epoch losses as the loss history."""
        loss = self.epoch_loss if len(self.epoch_loss) >= 5 else None
        return diagnose(self.history, self.model, loss=loss, **{**self.thresholds, **thresholds})

    def table(self, **kwargs) -> str:
        """The per-layer text table of the latest probed step."""

        return format_table(self.history, **kwargs)

    def report(self) -> dict:
        """A JSON-serialisable report: latest statistics, findings and the history."""

        return to_report(self.history, self.findings, model=self.model)

    def _absorb(self) -> dict | None:
        """Turn the raw sums kept since the last call into one chunk of statistics (one
        :meth:`~jaxnet.diagnostics.stats.PackedProbe.unpack` for all of them); the last chunk."""
        if self._raw:
            steps = np.concatenate([s for s, _, _ in self._raw])
            epochs = np.concatenate([np.full(s.shape, e) for s, e, _ in self._raw])
            packed = [np.concatenate([np.asarray(p[i]) for *_, p in self._raw]) for i in (0, 1)]
            self._raw = []
            probes = self.probe.unpack(packed)
            self._chunks.append(
                {
                    "step": steps,
                    "epoch": epochs,
                    "loss": np.asarray(probes.get("loss", np.full(steps.shape, np.nan))),
                    "grad_global_norm": np.asarray(probes["grad_global_norm"]),
                    "layers": {
                        name: {stat: np.asarray(v) for stat, v in stats.items()}
                        for name, stats in probes["layers"].items()
                    },
                }
            )
            self._history = None
        return self._chunks[-1] if self._chunks else None

    def _update_findings(self) -> None:
        self._undiagnosed = 0
        self.findings = self.diagnose()
        for finding in self.findings:
            keys = {(finding.kind, layer) for layer in finding.layers or ("",)}
            if keys - self._reported:  # a new kind of problem, or a new layer with it
                self._reported |= keys
                self._say(str(finding))

    def _say(self, text: str) -> None:
        if self.verbose:
            print(text, file=self.stream or sys.stdout)
