"""A study's result as a Markdown table, a JSON file and a PNG (learning curves + bar chart).

Everything reads the plain dict :func:`~jaxnet.studies.run_study` returns, so a saved JSON can be
reported again later: ``to_markdown(load_result("out/study_activations.json"))``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from jaxnet.jsonable import dumps

RANK_RULE = (
    "rank = 1 + the number of cells whose 95% t-interval lies entirely on the better side; "
    "overlapping intervals tie"
)


def _label(metric: str) -> str:
    return metric.replace("_", " ")


def _number(value: float, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "nan" if value is None or math.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"{value:.{digits}f}" if abs(value) < 1e3 else f"{value:.3g}"


def _mean_se(summary: dict, digits: int = 4) -> str:
    return f"{_number(summary['mean'], digits)} ± {_number(summary['standard_error'], digits)}"


def _interval(summary: dict, digits: int = 4) -> str:
    return f"[{_number(summary['low'], digits)}, {_number(summary['high'], digits)}]"


def _secondary(result: dict) -> list[str]:
    """Columns shown after the ranking metric: the test loss and the final validation loss."""
    metric = result["metric"]
    present = result["cells"][0]["summary"]
    return [m for m in ("test_loss", "val_loss") if m != metric and m in present]


def cell_table(result: dict, indices=None) -> str:
    """One row per cell (best rank first): the metric's mean ± s.e. and t-interval, the test and
    validation losses, steps, time and the diagnostics verdict at initialisation."""
    metric, cells = result["metric"], result["cells"]
    indices = list(range(len(cells))) if indices is None else list(indices)
    rank_key = "rank" if len(indices) == len(cells) else "rank_among_best"
    indices.sort(key=lambda i: (cells[i][rank_key], -_signed_mean(result, cells[i])))
    with_verdict = any(cells[i].get("verdict") is not None for i in indices)
    header = ["rank", "cell", f"{_label(metric)} (mean ± s.e.)", "95% t-interval"]
    header += [f"{_label(m)} (mean ± s.e.)" for m in _secondary(result)]
    header += ["steps", "train s / cell", "compile s"] + (["at init"] if with_verdict else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i in indices:
        cell = cells[i]
        name, diverged = cell["name"], diverged_seeds(cell)
        if diverged:
            name += f" ({diverged}/{len(cell['seeds'])} seeds diverged)"
        row = [str(cell[rank_key]), name, _mean_se(cell["summary"][metric])]
        row += [_interval(cell["summary"][metric])]
        row += [_mean_se(cell["summary"][m], 3) for m in _secondary(result)]
        row += [
            str(cell["steps"]),
            f"{cell['train_seconds']:.1f}",
            f"{cell['compile_seconds']:.1f}",
        ]
        row += [cell.get("verdict") or "-"] if with_verdict else []
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def diverged_seeds(cell: dict) -> int:
    """How many seeds ended with a non-finite test loss."""
    values = cell["values"].get("test_loss", [])
    return sum(1 for v in values if v is None or not math.isfinite(v))


def _signed_mean(result: dict, cell: dict) -> float:
    mean = cell["summary"][result["metric"]]["mean"]
    if not math.isfinite(mean):
        return -math.inf
    return mean if result["mode"] == "max" else -mean


def to_markdown(result: dict) -> str:
    """The study as Markdown: what was compared, the table, the best-per-group table if any."""
    study, data = result["study"], result["data"]
    seeds = study["seeds"]
    lines = [f"### Study `{study['name']}`", ""]
    if study.get("claim"):
        lines += [f"Claim checked: {study['claim']}", ""]
    lines += [
        f"{data['dataset']} ({data['n_train']} train / {data['n_validation']} validation / "
        f"{data['n_test']} test examples), {study['epochs']} epochs, {len(seeds)} seeds per cell, "
        f"{len(result['cells'])} cells in {result['programs']} compiled programs, "
        f"{result['total_seconds']:.0f} s in all on {result['machine']}. "
        f"Ranked by {_label(result['metric'])} on the held-out test split; {RANK_RULE}.",
        "",
        cell_table(result),
    ]
    if result.get("best"):
        lines += [
            "",
            f"Best `{study['best_over']}` per group:",
            "",
            cell_table(result, result["best"]),
        ]
    return "\n".join(lines) + "\n"


def to_json(result: dict) -> str:
    """The whole result (every cell, every seed's values and curves) as JSON; ``nan`` -> null."""
    return dumps(result, indent=1)


def load_result(path) -> dict:
    """A result saved by :func:`save_outputs` (nulls become ``nan``)."""
    result = json.loads(Path(path).read_text())
    for cell in result["cells"]:
        cell["values"] = {
            k: [math.nan if x is None else x for x in v] for k, v in cell["values"].items()
        }
        for summary in cell["summary"].values():
            for key, value in summary.items():
                summary[key] = math.nan if value is None else value
    return result


def curve_name(result: dict) -> str:
    """The validation curve matching the ranking metric (``val_accuracy`` for ``test_accuracy``)."""
    history = result["cells"][0]["history"]
    name = "val_" + result["metric"].removeprefix("test_")
    return name if name in history else "val_loss"


def plot_study(result: dict, path=None, *, max_curves: int = 10):
    """Learning curves (validation, mean ± 1 s.e. band per cell) and a bar chart of the ranking
    metric with 95% t-interval error bars. Returns the matplotlib ``Figure``; saves it to ``path``.

    With a ``best_over`` setting, both panels show the best cell per group only.
    """
    from matplotlib.figure import Figure

    cells = result["cells"]
    curve = curve_name(result)
    shown = result.get("best") or list(range(len(cells)))
    shown = sorted(shown, key=lambda i: cells[i]["rank"])[:max_curves]
    figure = Figure(figsize=(11, 4.2), dpi=90, layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=(1.2, 1))
    for i in shown:
        values = np.asarray(cells[i]["history"][curve], np.float64)  # (epochs, seeds)
        epochs = np.arange(1, len(values) + 1)
        mean = values.mean(axis=1)
        se = (
            values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])
            if values.shape[1] > 1
            else 0 * mean
        )
        (line,) = left.plot(epochs, mean, label=cells[i]["name"], lw=1.5)
        left.fill_between(epochs, mean - se, mean + se, color=line.get_color(), alpha=0.25, lw=0)
    left.set(xlabel="epoch", ylabel=_label(curve), title=f"{_label(curve)} (mean ± 1 s.e.)")
    if "loss" in curve:
        left.set_yscale("log")
    left.legend(fontsize=7)
    _bars(right, result)
    figure.suptitle(f"study: {result['study']['name']} ({len(result['study']['seeds'])} seeds)")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    return figure


def _bars(ax, result: dict) -> None:
    metric, cells = result["metric"], result["cells"]
    best = result.get("best")
    rank_key = "rank_among_best" if best else "rank"
    shown = best or range(len(cells))
    order = sorted(shown, key=lambda i: (cells[i][rank_key], -_signed_mean(result, cells[i])))
    summaries = [cells[i]["summary"][metric] for i in order]
    means = np.array([s["mean"] for s in summaries], np.float64)
    lows = np.array([s["low"] for s in summaries], np.float64)
    highs = np.array([s["high"] for s in summaries], np.float64)
    finite = np.isfinite(means)
    half = np.where(np.isfinite(highs - lows), (highs - lows) / 2, 0.0)
    positions = np.arange(len(order))[::-1]
    edges = np.concatenate([(means - half)[finite], (means + half)[finite]])
    start = float(edges.min()) if edges.size else 0.0
    span = float(edges.max()) - start if edges.size else 1.0
    start -= 0.1 * span or 0.01
    ax.barh(positions[finite], (means - start)[finite], left=start, xerr=half[finite], capsize=3,
            color="tab:blue", alpha=0.7)  # fmt: skip
    labels = [f"{cells[i]['name']} (#{cells[i][rank_key]})" for i in order]
    ax.set_yticks(positions, labels, fontsize=7)
    title = f"{_label(metric)}, ranked"
    title += f" (best {result['study']['best_over']} each)" if best else ""
    ax.set(xlabel=f"{_label(metric)} (95% t-interval)", title=title)


def save_outputs(result: dict, out) -> dict[str, str]:
    """Write ``study_<name>.json``, ``.md`` and ``.png`` under ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"study_{result['study']['name']}"
    paths = {"json": f"{stem}.json", "markdown": f"{stem}.md", "png": f"{stem}.png"}
    Path(paths["json"]).write_text(to_json(result))
    Path(paths["markdown"]).write_text(to_markdown(result))
    plot_study(result, paths["png"])
    return paths
