"""Reports over recorded statistics: a per-layer text table, a JSON-ready dict and PNG plots.

Everything here takes a probe result, stacked probe results or ``GradientMonitor.history``
(see :func:`~jaxnet.diagnostics.verdicts.as_history`). Matplotlib is imported only by the plot
functions, and they draw on a ``matplotlib.figure.Figure`` (no pyplot, no global backend change).

::

    print(format_table(monitor.history))
    json.dumps(to_report(monitor.history, monitor.findings))
    plot_gradient_flow(monitor.history, path="out/gradient_flow.png")
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from jaxnet.diagnostics.verdicts import Finding, as_history, diagnose
from jaxnet.jsonable import jsonable

# (stat, column title, format) in table order
COLUMNS = (
    ("grad_norm", "grad norm", "{:.2e}"),
    ("grad_rms", "grad rms", "{:.2e}"),
    ("grad_max", "max |grad|", "{:.2e}"),
    ("grad_zero_fraction", "zero grad", "{:.0%}"),
    ("grad_nonfinite", "nan/inf", "{:.0f}"),
    ("param_norm", "weight norm", "{:.2e}"),
    ("update_ratio", "update/weight", "{:.1e}"),
    ("activation_mean", "act mean", "{:+.3f}"),
    ("activation_std", "act std", "{:.3f}"),
    ("dead_fraction", "dead", "{:.0%}"),
    ("saturated_fraction", "saturated", "{:.0%}"),
)


def _value_at(values: np.ndarray, index: int) -> float:
    return float(values[index])


def format_table(stats_or_history, index: int = -1, columns: Sequence[str] | None = None) -> str:
    """A fixed-width table, one row per layer (in depth order), at probed step ``index``.

    Columns without any value are left out; ``-`` marks a statistic a layer does not have (no
    dead fraction for a Dense layer).
    """
    history = as_history(stats_or_history)
    layers = history["layers"]
    chosen = [c for c in COLUMNS if columns is None or c[0] in columns]
    chosen = [c for c in chosen if any(c[0] in stats for stats in layers.values())]
    header = ["layer", *(title for _, title, _ in chosen)]
    rows = []
    for name, stats in layers.items():
        row = [name]
        for stat, _, fmt in chosen:
            if stat in stats:
                value = _value_at(stats[stat], index)
                row.append(fmt.format(value) if math.isfinite(value) else str(value))
            else:
                row.append("-")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs)

    lines = [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]
    if "step" in history and len(history["step"]):
        lines.append(f"(probed step {int(history['step'][index])})")
    return "\n".join(lines)


def to_report(
    stats_or_history,
    findings: Sequence[Finding] | None = None,
    *,
    model=None,
    include_history: bool = True,
) -> dict:
    """A JSON-serialisable report: ``{"latest", "findings", "history"}`` of plain floats/strings.

    ``latest`` holds each layer's statistics at the last probed step; ``history`` every probed
    step (lists). ``findings`` defaults to :func:`~jaxnet.diagnostics.diagnose` of the same
    statistics. Non-finite numbers are written as ``None`` (:func:`~jaxnet.jsonable.jsonable`).
    """

    history = as_history(stats_or_history)
    if findings is None:
        findings = diagnose(history, model)
    report = {
        "latest": {
            name: {stat: jsonable(values[-1]) for stat, values in stats.items()}
            for name, stats in history["layers"].items()
        },
        "findings": [f.to_dict() for f in findings],
    }
    if include_history:
        report["history"] = {
            field: jsonable(history[field])
            for field in ("step", "epoch", "loss", "grad_global_norm")
            if field in history
        }
        report["history"]["layers"] = {
            name: {stat: jsonable(values) for stat, values in stats.items()}
            for name, stats in history["layers"].items()
        }
    return report


# ----------------------------------------------------------------------------------- plots


def _figure(ax, size):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def _save(figure, path) -> None:
    if path is not None:
        os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
        figure.savefig(path, dpi=100)


def profile_by_epoch(
    stats_or_history, stat: str = "grad_norm", layers: Sequence[str] | None = None
) -> tuple[list, list, np.ndarray]:
    """``(layers, epochs, values[epoch, layer])``: the geometric mean of ``stat`` over each
    epoch's probed steps, for ``layers`` (default: every layer that has ``stat``, by depth)."""
    history = as_history(stats_or_history)
    if layers is None:
        layers = [n for n, s in history["layers"].items() if stat in s]
    layers = list(layers)
    epochs = history.get("epoch", np.zeros(len(history["step"])))
    unique = sorted(set(epochs.tolist()))
    values = np.full((len(unique), len(layers)), np.nan)
    for i, epoch in enumerate(unique):
        rows = epochs == epoch
        for j, name in enumerate(layers):
            v = history["layers"][name][stat][rows]
            v = v[np.isfinite(v) & (v > 0)]
            if v.size:
                values[i, j] = float(np.exp(np.mean(np.log(v))))
    return layers, unique, values


def plot_gradient_flow(
    stats_or_history,
    *,
    stat: str = "grad_norm",
    layers: Sequence[str] | None = None,
    ax=None,
    path=None,
    title=None,
    label=None,
):
    """Gradient norm (``stat``) per layer against depth, one curve per epoch (light -> dark).

    Returns the matplotlib ``Figure``; saves a PNG when ``path`` is given. With ``label`` only the
    last epoch is drawn, labelled, so several models can share one ``ax``.
    """
    from matplotlib import colormaps

    figure, ax = _figure(ax, (6.4, 4.0))
    layers, epochs, values = profile_by_epoch(stats_or_history, stat, layers)
    depth = np.arange(len(layers))
    if label is not None:
        ax.plot(depth, values[-1], marker="o", label=label)
    else:
        colors = colormaps["viridis"](np.linspace(0.9, 0.1, max(len(epochs), 1)))
        for i, epoch in enumerate(epochs):
            ax.plot(depth, values[i], color=colors[i], marker=".", label=f"epoch {int(epoch) + 1}")
        if len(epochs) > 8:  # keep the legend short: first and last epoch only
            handles, labels = ax.get_legend_handles_labels()
            ax.legend([handles[0], handles[-1]], [labels[0], labels[-1]], fontsize=8)
        else:
            ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(depth, layers, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("layer (input -> output)")
    ax.set_ylabel(stat.replace("_", " "))
    ax.set_title(title or f"{stat.replace('_', ' ')} per layer")
    ax.grid(True, which="major", alpha=0.3)
    _save(figure, path)
    return figure


def plot_heatmap(stats_or_history, *, stat: str = "grad_norm", ax=None, path=None, title=None):
    """A layer x probed-step heat-map of ``log10(stat)``; returns the ``Figure``."""
    history = as_history(stats_or_history)
    layers = [n for n, s in history["layers"].items() if stat in s]
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = np.log10(np.stack([history["layers"][n][stat] for n in layers]))
    grid = np.where(np.isfinite(grid), grid, np.nan)
    figure, ax = _figure(ax, (7.0, 0.35 * len(layers) + 1.6))
    steps = history["step"]
    extent = (float(steps[0]), float(steps[-1]) + 1, len(layers) - 0.5, -0.5)
    image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="magma", extent=extent)
    ax.set_yticks(range(len(layers)), layers, fontsize=8)
    ax.set_xlabel("step")
    ax.set_title(title or f"log10 {stat.replace('_', ' ')}")
    figure.colorbar(image, ax=ax)
    _save(figure, path)
    return figure


def save_plots(stats_or_history, out_dir, prefix: str = "") -> list[str]:
    """Save the gradient-flow curve and the heat-map as PNGs in ``out_dir``; return the paths."""
    paths = [
        os.path.join(out_dir, f"{prefix}gradient_flow.png"),
        os.path.join(out_dir, f"{prefix}gradient_heatmap.png"),
    ]
    plot_gradient_flow(stats_or_history, path=paths[0])
    plot_heatmap(stats_or_history, path=paths[1])
    return paths
