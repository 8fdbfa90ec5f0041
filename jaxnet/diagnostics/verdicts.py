"""Verdicts: plain Python over recorded statistics (outside jit) -> findings with remedies.

:func:`diagnose` reads per-layer statistics (one probe result, or a history of them from
:class:`~jaxnet.diagnostics.GradientMonitor`) and returns :class:`Finding` s, worst first. Each
finding names the layers, gives the numbers it rests on, and lists remedies chosen for *this*
model: with ``model=`` it reads each layer's activation and ``kernel_init`` from ``info``.

Rules (thresholds are keyword arguments of :func:`diagnose`; statistics are the median of the last
``window`` probed steps):

- ``non_finite`` (critical): any NaN/inf gradient entry, or a non-finite loss.
- ``no_gradient``: layers whose gradient is exactly zero everywhere (nothing reaches them).
- ``vanishing``: a layer's gradient norm is below ``vanishing_ratio`` (0.1) times the output
  layer's; or the earliest layer's norm relative to the output layer's fell by ``time_ratio`` (100x)
  since the first probed steps.
- ``exploding``: a layer's gradient norm is above ``1 / vanishing_ratio`` times the output layer's
  (growing towards the input); or above ``grad_to_weight`` (100) times its own weight norm; or it
  grew ``time_ratio`` times since the first probed steps.
- ``dead_relu``: a ReLU layer with at least ``dead_threshold`` (40%) of its units dead (in
  every one of the last ``window`` probed batches when per-unit records exist).
- ``saturation``: a sigmoid/tanh layer with at least ``saturation_threshold`` (25%) of its units
  saturated.
- ``learning_rate_high`` / ``learning_rate_low``: the median ``update/param`` ratio over layers is
  above ``update_ratio_high`` (0.1) or below ``update_ratio_low`` (1e-5); about 1e-3 is typical.
- ``divergence`` / ``plateau``: from a loss history (per probed step, or per epoch via ``loss=``).

::

    findings = diagnose(monitor.history, model=model)
    print(findings[0].message); print(findings[0].remedies)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxnet.core import Layer
from jaxnet.diagnostics.stats import activation_of, stats_at_init
from jaxnet.init import recommended_for

# A remedy printed by several verdicts; the code after the colon runs as is with `from jaxnet import
# optim` and the user's optimizer.
CLIP_REMEDY = "clip gradients: optim.chain(optim.clip_by_global_norm(1.0), optimizer)"
LR_FIND_REMEDY = (
    "find the rate: jaxnet.lr_find(model, loss, optim.adam, x, y).suggestion (a range test, "
    "many rates trained at once)"
)
PLATEAU_REMEDY = (
    "lower the rate when the loss stalls: "
    "jaxnet.train.ReduceLROnPlateau('val_loss', factor=0.5, patience=5) in fit's callbacks"
)
EMA_REMEDY = "evaluate an average of the weights, which smooths a noisy loss: fit(..., ema=0.999)"

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


class Finding(NamedTuple):
    """One diagnosis: what (``kind``), how bad, where, the numbers, in words, and what to change."""

    kind: str  # "vanishing", "exploding", "non_finite", "dead_relu", "saturation", ...
    severity: str  # "critical", "warning" or "info"
    layers: tuple[str, ...]
    evidence: dict  # named plain floats (or {layer: float} dicts)
    message: str
    remedies: tuple[str, ...]

    def to_dict(self) -> dict:
        """A JSON-serialisable dict."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "layers": list(self.layers),
            "evidence": _plain(self.evidence),
            "message": self.message,
            "remedies": list(self.remedies),
        }

    def __str__(self) -> str:
        lines = [f"[{self.severity}] {self.kind}: {self.message}"]
        lines += [f"    - {remedy}" for remedy in self.remedies]
        return "\n".join(lines)


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return value
    return float(value)


# ----------------------------------------------------------------------------------- histories


def depth_index(name: str) -> int:
    """Position of a ``serial`` child from its unique name: ``dense_12`` -> 12 (else very large)."""
    suffix = name.rsplit("_", 1)[-1]
    return int(suffix) if suffix.isdigit() else 1 << 30


VECTOR_STATS = ("dead_units", "grad_histogram")  # (units,) or (buckets,) per probed step


def as_history(stats) -> dict:
    """Any statistics -> ``{"layers": {layer: {stat: (T,) array}}, "loss": (T,), "step": (T,)}``.

    Accepts one probe result (scalars), stacked probe results (leading axis over steps), or a
    :class:`~jaxnet.diagnostics.GradientMonitor` history. Layers are ordered by depth; per-unit
    statistics (``dead_units``) become ``(T, units)``.
    """
    scalars = [
        v for layer in stats["layers"].values() for k, v in layer.items() if k not in VECTOR_STATS
    ]
    single = not scalars or np.ndim(scalars[0]) == 0
    layers = {}
    for name in sorted(stats["layers"], key=depth_index):
        layers[name] = {}
        for stat, value in stats["layers"][name].items():
            value = np.asarray(value, np.float64)
            layers[name][stat] = value[None] if single else value
    length = 1 if single else (len(scalars[0]) if scalars else 0)
    history = {"layers": layers}
    for field in ("loss", "step", "epoch", "grad_global_norm"):
        if field in stats:
            history[field] = np.atleast_1d(np.asarray(stats[field], np.float64))
    history.setdefault("step", np.arange(length, dtype=np.float64))
    return history


def _recent(values: np.ndarray, window: int) -> float:
    """Median of the last ``window`` finite values (NaN if none)."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite[-window:])) if finite.size else math.nan


def _early(values: np.ndarray, window: int) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite[:window])) if finite.size else math.nan


# ----------------------------------------------------------------------------------- the model


class LayerFacts(NamedTuple):
    """What the remedies need to know about a layer with parameters."""

    name: str
    activation: str | None  # the activation that follows it (before the next parameter layer)
    kernel_init: str | None
    index: int


def describe(model: Layer | None, names: Sequence[str]) -> dict:
    """``{"layers": {name: LayerFacts}, "batch_norm": bool, "residual": bool}`` for remedies.

    Without ``model`` the activations are inferred from the child names (``sigmoid_3``).
    """
    children = dict(model.info.get("children", {})) if model is not None else {}
    ordered = list(children) if children else sorted(names, key=depth_index)
    facts, pending = {}, []
    for name in ordered:
        child = children.get(name)
        activation = activation_of(name, child)
        if activation is not None:
            for owner in pending:
                facts[owner] = facts[owner]._replace(activation=activation)
            pending = []
            continue
        info = child.info if child is not None else {}
        if name in names and not info.get("normalization"):
            facts[name] = LayerFacts(name, None, info.get("kernel_init"), depth_index(name))
            pending = [name]
        elif info.get("normalization"):
            continue  # a BatchNorm between Dense and its activation does not change the pairing
        else:
            pending = []
    text = " ".join(ordered).lower()
    kinds = [c.info.get("normalization") for c in children.values()]
    return {
        "layers": facts,
        "batch_norm": "batch" in kinds or "batch_norm" in text,
        "residual": "residual" in text or any(c.info.get("residual") for c in children.values()),
    }


def _init_family(name: str | None) -> str | None:
    if not name:
        return None
    for family, aliases in {
        "he": ("he_", "kaiming_"),
        "lecun": ("lecun_",),
        "glorot": ("glorot_", "xavier_"),
    }.items():
        if name.startswith(aliases):
            return family
    return name


def _mismatched_init(facts: list[LayerFacts]) -> list[tuple[LayerFacts, str]]:
    out = []
    for fact in facts:
        wanted = recommended_for(fact.activation)
        if fact.kernel_init and _init_family(fact.kernel_init) != _init_family(wanted):
            out.append((fact, wanted))
    return out


def _span(layers: Sequence[str], facts: Sequence[LayerFacts] = ()) -> str:
    """``"dense_0 ... dense_8 (5 layers; sigmoid + normal(1.0))"``: layers and their pairings."""
    notes = []
    if len(layers) > 2:
        notes.append(f"{len(layers)} layers")
    pairs = sorted({(f.activation or "linear", f.kernel_init or "?") for f in facts})
    if pairs:
        notes.append(", ".join(f"{a} + {i}" for a, i in pairs))
    text = ", ".join(layers) if len(layers) <= 2 else f"{layers[0]} ... {layers[-1]}"
    return f"{text} ({'; '.join(notes)})" if notes else text


def _init_remedy(facts: list[LayerFacts]) -> list[str]:
    remedies = []
    for (activation, actual), group in _group(_mismatched_init(facts)).items():
        wanted = recommended_for(activation)
        remedies.append(
            f"initialise the {activation} layers ({_span(group)}) with {wanted} instead of "
            f"{actual}: it keeps the signal's variance equal from layer to layer"
        )
    return remedies


def _group(pairs):
    groups: dict = {}
    for fact, _ in pairs:
        groups.setdefault((fact.activation or "linear", fact.kernel_init), []).append(fact.name)
    return groups


def _architecture_remedies(described: dict) -> list[str]:
    remedies = []
    if not described["batch_norm"]:
        remedies.append("add BatchNorm after each hidden Dense (before its activation)")
    if not described["residual"]:
        remedies.append("add residual connections (y = x + f(x)) around blocks of layers")
    return remedies


# ----------------------------------------------------------------------------------- diagnose


def diagnose(
    stats_or_history,
    model: Layer | None = None,
    *,
    params=None,
    loss: Sequence[float] | None = None,
    window: int = 5,
    vanishing_ratio: float = 0.1,
    grad_to_weight: float = 100.0,
    time_ratio: float = 100.0,
    dead_threshold: float = 0.4,
    saturation_threshold: float = 0.25,
    update_ratio_high: float = 0.1,
    update_ratio_low: float = 1e-5,
) -> list[Finding]:
    """Findings about training health, worst first (an empty list means nothing is wrong).

    Args:
      stats_or_history: a probe result from :func:`~jaxnet.diagnostics.make_probe`, stacked probe
        results, or ``GradientMonitor.history``.
      model: the model, to tailor remedies to its activations and initializers.
      params: optional parameters, to spot negative biases in front of dead ReLUs.
      loss: a loss history (e.g. ``history["loss"]`` from ``fit``); default: the probed losses.
      window: statistics are the median over the last ``window`` probed steps.
      Other arguments: the thresholds in the module docstring.
    """
    history = as_history(stats_or_history)
    layers = history["layers"]
    described = describe(model, list(layers))
    facts = described["layers"]
    context = _Context(history, facts, described, params, window)
    findings = []
    findings += context.non_finite(loss)
    findings += context.no_gradient()
    findings += context.gradient_flow(vanishing_ratio, grad_to_weight, time_ratio)
    findings += context.dead_relu(dead_threshold)
    findings += context.saturation(saturation_threshold)
    findings += context.learning_rate(update_ratio_high, update_ratio_low)
    findings += context.loss_trend(loss)
    return sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity])


def diagnose_at_init(model: Layer, params, state, batch, loss_fn, *, key=None, **thresholds):
    """Findings from one forward/backward pass on ``batch = (x, y)`` before training.

    Catches what is wrong by construction (saturating activations with the wrong initializer,
    dead units from negative biases, gradients that vanish or explode with depth) before a single
    epoch is spent. Learning-rate and loss-trend rules need training, so they stay silent.

    ::

        for finding in diagnose_at_init(model, params, state, (x[:256], y[:256]), loss):
            print(finding)
    """
    stats = stats_at_init(model, params, state, batch, loss_fn, key=key)
    return diagnose(stats, model, params=params, **thresholds)


class _Context:
    """The history plus the model facts; one method per rule."""

    def __init__(self, history, facts, described, params, window):
        self.history, self.facts, self.described = history, facts, described
        self.params, self.window = params, window
        self.layers = history["layers"]
        self.param_layers = [n for n in self.layers if "grad_norm" in self.layers[n]]

    def recent(self, layer: str, stat: str) -> float:
        return _recent(self.layers[layer][stat], self.window)

    def facts_of(self, names) -> list[LayerFacts]:
        return [self.facts[n] for n in names if n in self.facts]

    # -- non-finite ----------------------------------------------------------------------------
    def non_finite(self, loss) -> list[Finding]:
        steps = self.history["step"]
        counts = {n: self.layers[n]["grad_nonfinite"] for n in self.param_layers}
        bad = [n for n, c in counts.items() if np.any(c > 0)]
        losses = [np.asarray(self.history.get("loss", []), float), np.asarray(loss or [], float)]
        bad_loss = any(np.any(~np.isfinite(v)) for v in losses)
        if not bad and not bad_loss:
            return []
        first = [int(np.argmax(counts[n] > 0)) for n in bad]
        at = min(first) if first else None
        evidence: dict[str, Any] = {"nonfinite_count": {n: float(np.max(counts[n])) for n in bad}}
        if at is not None:
            evidence["first_step"] = float(steps[at]) if at < len(steps) else float(at)
        where = f"gradients of {_span(bad)}" if bad else "the loss"
        when = f" from step {int(evidence['first_step'])}" if at is not None else ""
        remedies = [
            "lower the learning rate (e.g. by 10x)",
            CLIP_REMEDY,
            "check the inputs and targets for NaN/inf and scale the inputs",
        ]
        remedies += _init_remedy(self.facts_of(self.param_layers))
        message = f"non-finite values (NaN/inf) in {where}{when}; training cannot recover"
        return [Finding("non_finite", "critical", tuple(bad), evidence, message, tuple(remedies))]

    # -- no gradient -----------------------------------------------------------------------------
    def no_gradient(self) -> list[Finding]:
        zero = [n for n in self.param_layers if self.recent(n, "grad_zero_fraction") >= 1.0]
        if not zero:
            return []
        dead = [n for n in self.layers if "dead_fraction" in self.layers[n]]
        dead = [n for n in dead if self.recent(n, "dead_fraction") >= 1.0]
        cause = f" ({_span(dead)} have every unit dead)" if dead else ""
        message = f"no gradient reaches {_span(zero)}: their gradients are exactly 0{cause}"
        remedies = (
            ["see the dead_relu finding: its remedies bring the gradient back"]
            if dead
            else ["check that the loss depends on these layers (not via a zero-gradient op)"]
        )
        evidence = {"grad_zero_fraction": {n: self.recent(n, "grad_zero_fraction") for n in zero}}
        return [Finding("no_gradient", "critical", tuple(zero), evidence, message, tuple(remedies))]

    # -- vanishing / exploding ------------------------------------------------------------------
    def gradient_flow(self, vanishing_ratio, grad_to_weight, time_ratio) -> list[Finding]:
        names = [n for n in self.param_layers if self.recent(n, "grad_zero_fraction") < 1.0]
        if not names:
            return []
        output = names[-1]
        norms = {n: self.recent(n, "grad_norm") for n in names}
        reference = norms[output]
        findings = []
        if len(names) >= 2 and reference > 0 and math.isfinite(reference):
            ratios = {n: norms[n] / reference for n in names[:-1]}
            small = [n for n, r in ratios.items() if r < vanishing_ratio]
            large = [n for n, r in ratios.items() if r > 1.0 / vanishing_ratio]
            if small:
                findings.append(self._vanishing(small, ratios, norms, output))
            if large:
                findings.append(self._exploding_depth(large, ratios, norms, output))
            findings += self._over_time(names, time_ratio)
        heavy = {}
        for n in names:
            weight = self.recent(n, "param_norm")
            if weight > 0 and norms[n] > grad_to_weight * weight:
                heavy[n] = norms[n] / weight
        if heavy:
            findings.append(self._exploding_magnitude(heavy, norms, grad_to_weight))
        return findings

    def _vanishing(self, small, ratios, norms, output) -> Finding:
        worst = min(small, key=ratios.get)
        exponent = math.log10(ratios[worst])
        facts = self.facts_of(small)
        message = (
            f"{_span(small, facts)}: the gradient norm falls to 10^{exponent:.1f} of the output "
            f"layer's ({output}) at {worst}, so these layers barely learn"
        )
        remedies = []
        saturating = sorted({f.activation for f in facts if f.activation in ("sigmoid", "tanh")})
        if saturating:
            remedies.append(
                f"replace {'/'.join(saturating)} with relu + he_normal (or selu + lecun_normal): "
                "non-saturating activations pass the gradient back undiminished"
            )
        remedies += _init_remedy(facts)
        remedies += _architecture_remedies(self.described)
        evidence = {
            "ratio_to_output": {n: ratios[n] for n in small},
            "grad_norm": {n: norms[n] for n in [*small, output]},
        }
        severity = "critical" if ratios[worst] < 1e-3 else "warning"
        return Finding("vanishing", severity, tuple(small), evidence, message, tuple(remedies))

    def _exploding_remedies(self, facts) -> list[str]:
        remedies = _init_remedy(facts)
        remedies += [
            CLIP_REMEDY,
            "lower the learning rate",
        ]
        if not self.described["batch_norm"]:
            remedies.append("add BatchNorm after each hidden Dense (before its activation)")
        return remedies

    def _exploding_depth(self, large, ratios, norms, output) -> Finding:
        worst = max(large, key=ratios.get)
        facts = self.facts_of(large)
        message = (
            f"{_span(large, facts)}: the gradient norm grows to 10^{math.log10(ratios[worst]):.1f} "
            f"times the output layer's ({output}) at {worst}: gradients explode towards the input"
        )
        evidence = {
            "ratio_to_output": {n: ratios[n] for n in large},
            "grad_norm": {n: norms[n] for n in [*large, output]},
        }
        remedies = tuple(self._exploding_remedies(facts))
        return Finding("exploding", "warning", tuple(large), evidence, message, remedies)

    def _exploding_magnitude(self, heavy, norms, grad_to_weight) -> Finding:
        names = list(heavy)
        worst = max(names, key=heavy.get)
        facts = self.facts_of(names)
        message = (
            f"{_span(names, facts)}: gradient norms are up to {heavy[worst]:.3g} times the weight "
            f"norm ({worst}, above {grad_to_weight:g}x): one plain gradient step would swamp the "
            "weights"
        )
        evidence = {"grad_to_weight": dict(heavy), "grad_norm": {n: norms[n] for n in names}}
        remedies = tuple(self._exploding_remedies(facts))
        return Finding("exploding", "warning", tuple(names), evidence, message, remedies)

    def _over_time(self, names, time_ratio) -> list[Finding]:
        length = len(self.history["step"])
        if length < 2 * self.window:
            return []
        findings = []
        first, output = names[0], names[-1]
        start = {n: _early(self.layers[n]["grad_norm"], self.window) for n in (first, output)}
        end = {n: self.recent(n, "grad_norm") for n in (first, output)}
        if min(start.values()) > 0 and min(end.values()) > 0:
            shrink = (start[first] / start[output]) / (end[first] / end[output])
            if shrink > time_ratio:
                facts = self.facts_of([first])
                message = (
                    f"{first}'s gradient norm relative to {output}'s shrank {shrink:.3g}x during "
                    "training: the early layers are being cut off from the gradient"
                )
                remedies = ["lower the learning rate (units drift into saturation or die)"]
                remedies += _init_remedy(facts) + _architecture_remedies(self.described)
                evidence = {"relative_norm_start": start[first] / start[output]}
                evidence["relative_norm_end"] = end[first] / end[output]
                findings.append(
                    Finding("vanishing", "warning", (first,), evidence, message, tuple(remedies))
                )
        growth = {}
        for n in names:
            before = _early(self.layers[n]["grad_norm"], self.window)
            after = self.recent(n, "grad_norm")
            if before > 0 and after > time_ratio * before:
                growth[n] = after / before
        if growth:
            grown = list(growth)
            worst = max(grown, key=growth.get)
            message = (
                f"gradient norms of {_span(grown)} grew up to {growth[worst]:.3g}x during training "
                f"({worst}): training is becoming unstable"
            )
            remedies = tuple(self._exploding_remedies(self.facts_of(grown)))
            evidence = {"growth": growth}
            findings.append(
                Finding("exploding", "warning", tuple(grown), evidence, message, remedies)
            )
        return findings

    # -- activations --------------------------------------------------------------------------
    def _owner(self, activation_layer: str) -> LayerFacts | None:
        """The parameter layer feeding ``activation_layer`` (the nearest one before it)."""
        before = [f for f in self.facts.values() if f.index < depth_index(activation_layer)]
        return max(before, key=lambda f: f.index) if before else None

    def dead_relu(self, threshold) -> list[Finding]:
        fractions, batches = {}, {}
        for name, stats in self.layers.items():
            if "dead_units" in stats:  # dead in every one of the last `window` probed batches
                recent = stats["dead_units"][-self.window :]
                fractions[name] = float(np.mean(np.all(recent > 0.5, axis=0)))
                batches[name] = len(recent)
            elif "dead_fraction" in stats:
                fractions[name], batches[name] = self.recent(name, "dead_fraction"), 1
        dead = [n for n, f in fractions.items() if f >= threshold]
        if not dead:
            return []
        worst = max(dead, key=fractions.get)
        listed = ", ".join(f"{n} {100 * fractions[n]:.0f}%" for n in dead)
        seen = max(batches[n] for n in dead)
        over = "the batch" if seen == 1 else f"each of the last {seen} probed batches"
        message = (
            f"dead ReLU units (zero for every example of {over}, so their weights get no "
            f"gradient): {listed}"
        )
        remedies = [
            "use leaky_relu (alpha 0.01-0.2), elu or selu: their gradient is never exactly zero",
            "lower the learning rate: large steps knock units into the always-negative region",
        ]
        owners = [o for o in (self._owner(n) for n in dead) if o is not None]
        negative = self._negative_biases([o.name for o in owners])
        if negative:
            listed_biases = ", ".join(f"{n} mean bias {b:.3g}" for n, b in negative.items())
            remedies.insert(0, f"initialise biases at zero (or slightly positive): {listed_biases}")
        remedies += _init_remedy(owners)
        evidence: dict[str, Any] = {"dead_fraction": {n: fractions[n] for n in dead}}
        evidence["batches"] = float(seen)
        if negative:
            evidence["mean_bias"] = negative
        severity = "critical" if fractions[worst] >= 0.9 else "warning"
        return [Finding("dead_relu", severity, tuple(dead), evidence, message, tuple(remedies))]

    def _negative_biases(self, owners) -> dict:
        out = {}
        for name in owners:
            bias = (self.params or {}).get(name, {}).get("b") if self.params is not None else None
            if bias is not None and float(np.mean(np.asarray(bias))) < 0:
                out[name] = float(np.mean(np.asarray(bias)))
        return out

    def saturation(self, threshold) -> list[Finding]:
        fractions = {
            n: self.recent(n, "saturated_fraction")
            for n in self.layers
            if "saturated_fraction" in self.layers[n]
        }
        hit = [n for n, f in fractions.items() if f >= threshold]
        if not hit:
            return []
        owners = [o for o in (self._owner(n) for n in hit) if o is not None]
        listed = ", ".join(f"{n} {100 * fractions[n]:.0f}%" for n in hit)
        message = (
            f"saturated units (output at the flat ends of sigmoid/tanh for most of the batch, "
            f"derivative below 10% of its peak): {listed}"
        )
        remedies = ["use relu + he_normal (or selu + lecun_normal): they do not saturate"]
        remedies += _init_remedy(owners)
        if not self.described["batch_norm"]:
            remedies.append("add BatchNorm before the activation to keep its inputs near zero")
        remedies.append("standardise the inputs (zero mean, unit variance)")
        evidence = {"saturated_fraction": {n: fractions[n] for n in hit}}
        return [Finding("saturation", "warning", tuple(hit), evidence, message, tuple(remedies))]

    # -- learning rate --------------------------------------------------------------------------
    def learning_rate(self, high, low) -> list[Finding]:
        names = [n for n in self.param_layers if "update_ratio" in self.layers[n]]
        ratios = {n: self.recent(n, "update_ratio") for n in names}
        ratios = {n: r for n, r in ratios.items() if math.isfinite(r) and r > 0}
        if not ratios:
            return []
        median = float(np.median(list(ratios.values())))
        evidence = {"median_update_ratio": median, "update_ratio": ratios}
        if median > high:
            message = (
                f"updates are {median:.2g} of the weights per step (median over layers; about "
                "1e-3 is typical): the learning rate is too high"
            )
            remedies = (
                f"lower the learning rate by about {median / 1e-3:.0f}x",
                LR_FIND_REMEDY,
                PLATEAU_REMEDY,
                CLIP_REMEDY,
            )
            names = tuple(n for n, r in ratios.items() if r > high)
            return [Finding("learning_rate_high", "warning", names, evidence, message, remedies)]
        if median < low:
            message = (
                f"updates are only {median:.2g} of the weights per step (median over layers; "
                "about 1e-3 is typical): the learning rate is too low, or gradients vanish"
            )
            remedies = (
                f"raise the learning rate by about {1e-3 / median:.0f}x",
                LR_FIND_REMEDY,
                "use an adaptive optimizer (Adam, RMSProp)",
            )
            names = tuple(n for n, r in ratios.items() if r < low)
            return [Finding("learning_rate_low", "warning", names, evidence, message, remedies)]
        return []

    # -- loss -----------------------------------------------------------------------------------
    def loss_trend(self, loss) -> list[Finding]:
        values = np.asarray(loss if loss is not None else self.history.get("loss", []), float)
        values = values[np.isfinite(values)]
        if values.size < 5:
            return []
        if values.size >= 10:  # batch losses are noisy: compare means of consecutive blocks
            blocks = min(20, max(5, values.size // 3))
            values = np.array([block.mean() for block in np.array_split(values, blocks)])
        tail = max(1, values.size // 10)
        first, final, best = float(values[0]), float(np.mean(values[-tail:])), float(values.min())
        evidence = {"first_loss": first, "final_loss": final, "best_loss": best}
        if final > 1.5 * best and final - best > 0.5 * (first - best):  # lost half the progress
            message = (
                f"the loss diverges: it reached {best:.4g} and is now {final:.4g} (started at "
                f"{first:.4g})"
            )
            remedies = (
                "lower the learning rate (or add a decaying schedule)",
                LR_FIND_REMEDY,
                PLATEAU_REMEDY,
                CLIP_REMEDY,
                EMA_REMEDY,
            )
            return [Finding("divergence", "warning", (), evidence, message, remedies)]
        half = values[values.size // 2 :]
        improvement = float(half[0] - np.mean(half[-tail:]))
        if improvement < 0.01 * abs(first) and final > 0.5 * first:
            message = (
                f"the loss plateaus at {final:.4g} (started at {first:.4g}; the second half of "
                f"training changed it by only {-improvement:+.3g})"
            )
            remedies = (
                "check the gradient-flow findings: vanishing gradients or saturated/dead units "
                "stall training",
                "raise the learning rate, or use Adam",
                LR_FIND_REMEDY,
                "use activations and initializers that match (relu + he_normal, selu + "
                "lecun_normal, sigmoid/tanh + glorot)",
            )
            return [Finding("plateau", "warning", (), evidence, message, remedies)]
        return []
