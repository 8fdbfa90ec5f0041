"""Training curves from a :class:`~jaxnet.train.fit.History` (or its ``to_dict()``) as a PNG.

matplotlib is imported only when a plot is made (``pip install matplotlib``); nothing else in
jaxnet needs it.

::

    ts, history = fit(model, loss, optimizer, x, y, validation_split=0.1, metrics=[accuracy])
    plot_history(history, "out/curves.png")      # loss panel + one panel per metric
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def figure_class():
    """matplotlib's ``Figure`` class (no pyplot, no GUI), or an error saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "jaxnet.plots needs matplotlib, which is not installed: pip install matplotlib"
        ) from error
    return Figure


def _as_dict(history) -> dict[str, list[float]]:
    if hasattr(history, "to_dict"):
        return history.to_dict()
    if isinstance(history, Mapping):
        return {name: list(values) for name, values in history.items()}
    raise TypeError(f"expected a History or a dict of lists, got {type(history).__name__}")


def curve_names(history) -> list[str]:
    """The panels :func:`plot_history` draws: ``"loss"`` first, then each training metric.

    A ``val_`` series is drawn in its training counterpart's panel; ``time`` is not plotted.
    """
    logs = _as_dict(history)
    names = [n for n in logs if not n.startswith("val_") and n != "time"]
    names += [n[4:] for n in logs if n.startswith("val_") and n[4:] not in names]
    return sorted(names, key=lambda n: n != "loss")


def plot_history(
    history,
    path=None,
    *,
    names: Sequence[str] | None = None,
    title: str | None = None,
    log_loss: bool = False,
    dpi: int = 100,
):
    """Draw train (solid) and validation (dashed) curves per epoch; save a PNG if ``path`` is given.

    Args:
      history: a :class:`~jaxnet.train.fit.History` or a dict like
        ``{"loss": [...], "val_loss": [...]}``.
      path: where to write the PNG (folders are created); ``None`` only returns the figure.
      names: the panels to draw (default :func:`curve_names`).
      title: the figure's title.
      log_loss: a logarithmic y axis for the loss panel.

    Returns the ``matplotlib.figure.Figure`` (no pyplot state is touched, so it works headless).
    """
    Figure = figure_class()
    logs = _as_dict(history)
    names = list(names) if names is not None else curve_names(logs)
    if not names:
        raise ValueError("plot_history: the history is empty (no epochs were recorded)")
    figure = Figure(figsize=(4.2 * len(names), 3.4), dpi=dpi, layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        for key, style, label in ((name, "-", "train"), (f"val_{name}", "--", "validation")):
            if key in logs:
                values = logs[key]
                ax.plot(range(1, len(values) + 1), values, style, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if name == "loss" and log_loss:
            ax.set_yscale("log")
        ax.legend()
    if title:
        figure.suptitle(title)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    return figure
