"""Declaring a study: cells of settings, a data set, a budget, seeds.

A *cell* is a dict of settings; what a cell leaves out comes from the study's ``base`` and then
from :data:`DEFAULTS`:

- model: ``hidden`` (hidden sizes), ``activation``, ``kernel_init`` (a name from
  :mod:`jaxnet.init`, or ``"normal(STD)"``), ``dropout``, ``batch_norm``, ``l1``, ``l2``;
- training: ``optimizer`` (a :mod:`jaxnet.optim` name, or ``momentum``/``nesterov`` = SGD with
  momentum 0.9, or ``momentum_cosine`` = momentum with a cosine decay to 0 over the budget),
  ``learning_rate``, ``batch_size``.

>>> study = Study("lr", cells=grid(optimizer=["sgd", "adam"], learning_rate=[1e-3, 1e-2]),
...               dataset="wine", epochs=10, seeds=4)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Mapping, Sequence

from jaxnet import init, optim
from jaxnet.errors import ConfigError, check_int, check_range
from jaxnet.recipes import Recipe, check_hidden, classifier_mlp, regression_mlp

DEFAULTS = {
    "hidden": (100, 100),
    "activation": "relu",
    "kernel_init": None,  # None: the recipe's pairing with the activation
    "dropout": 0.0,
    "batch_norm": False,
    "l1": 0.0,
    "l2": 0.0,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 32,
}
# Settings carried into the compiled program as arrays: cells differing only in these share one
# vmapped fit_many call. Every other setting changes code or shapes.
ARRAY_SETTINGS = ("learning_rate",)
OPTIMIZERS = (*optim.NAMES, "momentum_cosine")
_SHORT = {"learning_rate": "lr", "batch_size": "batch", "kernel_init": "init"}


@dataclasses.dataclass(frozen=True)
class Study:
    """A comparison: ``cells`` x ``seeds`` models on ``dataset`` for ``epochs`` each.

    Args:
      name: a short name (file names, the JSON).
      cells: one settings dict per compared configuration; an optional ``"name"`` key labels it
        (default: the settings that differ between cells).
      dataset: a bundled data set (``digits``, ``breast_cancer``, ``wine``, ``iris``,
        ``diabetes``).
      base: settings shared by every cell.
      epochs: the budget, equal for every cell.
      seeds: a count (seeds ``0..seeds-1``) or the seeds themselves. A seed sets a model's
        initialisation and dropout; the split and the batch order are the same for all.
      metric: the metric that ranks the cells (default ``test_accuracy`` for classification,
        ``test_rmse`` for regression).
      best_over: a setting (e.g. ``"learning_rate"``) to tune away: the report also lists, per
        value of the other settings, the cell with the best mean ``metric``.
      claim: the textbook claim this study checks (for the report).
      n_train: use at most this many training examples (``None``: all).
      test_fraction, validation_fraction: held-out test part of the data set, then validation
        part of the rest; ``data_seed`` shuffles before splitting and sets the batch order.
    """

    name: str
    cells: tuple
    dataset: str = "digits"
    base: Mapping = dataclasses.field(default_factory=dict)
    epochs: int = 20
    seeds: int | Sequence[int] = 8
    metric: str | None = None
    best_over: str | None = None
    claim: str = ""
    n_train: int | None = None
    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    data_seed: int = 0

    def __post_init__(self):
        owner = ("study", str(self.name))
        check_int(owner, "epochs", self.epochs, 1)
        if isinstance(self.seeds, str) or not hasattr(self.seeds, "__iter__"):
            check_int(owner, "seeds", self.seeds, 1)
        else:
            for i, seed in enumerate(self.seeds):
                check_int(owner, f"seeds[{i}]", seed)
        if self.n_train is not None:
            check_int(owner, "n_train", self.n_train, 1)
        check_int(owner, "data_seed", self.data_seed, 0)
        for name in ("test_fraction", "validation_fraction"):
            check_range(owner, name, getattr(self, name), 0, 1, low_open=True, high_open=True)
        if self.best_over is not None and self.best_over not in DEFAULTS:
            raise ConfigError(
                f"best_over must be a setting, one of {sorted(DEFAULTS)}; got {self.best_over!r}",
                owner,
            )

    def replace(self, **changes) -> Study:
        """A copy with some fields changed (``study.replace(epochs=5, seeds=2)``)."""
        return dataclasses.replace(self, **changes)

    @property
    def seed_list(self) -> list[int]:
        return (
            list(range(self.seeds)) if isinstance(self.seeds, int) else [int(s) for s in self.seeds]
        )

    def to_dict(self) -> dict:
        fields = dataclasses.asdict(self)
        fields["cells"], fields["base"] = [dict(c) for c in self.cells], dict(self.base)
        fields["seeds"] = self.seed_list
        return fields


def grid(**axes: Sequence) -> list[dict]:
    """Every combination of the axes' values as a cell, the first axis outermost.

    >>> grid(optimizer=["sgd", "adam"], learning_rate=[0.01, 0.1])[1]
    {'optimizer': 'sgd', 'learning_rate': 0.1}
    """
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def resolved_settings(study: Study) -> list[dict]:
    """Each cell's full settings (defaults < ``base`` < cell), without its ``"name"``."""
    unknown = sorted({k for c in (study.base, *study.cells) for k in c} - set(DEFAULTS) - {"name"})
    if unknown:
        raise ConfigError(
            f"unknown cell setting(s) {unknown}; known: {sorted(DEFAULTS)}", ("study", study.name)
        )
    settings = []
    for cell in study.cells:
        full = {**DEFAULTS, **study.base, **{k: v for k, v in cell.items() if k != "name"}}
        full["hidden"] = check_hidden(("study", study.name), full["hidden"])
        full["batch_size"] = check_int(("study", study.name), "batch_size", full["batch_size"], 1)
        settings.append(full)
    keys = [json.dumps(s, sort_keys=True, default=str) for s in settings]
    if len(set(keys)) != len(keys):
        raise ConfigError("two cells have the same settings", ("study", study.name))
    return settings


def cell_names(study: Study, settings: Sequence[dict]) -> list[str]:
    """A label per cell: its ``"name"``, else the values of the settings that differ."""
    varying = [k for k in DEFAULTS if len({json.dumps(s[k], default=str) for s in settings}) > 1]
    names = []
    for cell, full in zip(study.cells, settings, strict=True):
        if "name" in cell:
            names.append(str(cell["name"]))
            continue
        parts = []
        for key in varying:
            value = full[key]
            text = value if isinstance(value, str) else f"{_SHORT.get(key, key)}={value}"
            parts.append("x".join(map(str, value)) if key == "hidden" else str(text))
        names.append(" ".join(parts) or study.name)
    return names


def program_key(settings: dict) -> str:
    """Cells with equal keys compile to the same program (they differ only in array settings)."""
    return json.dumps({k: v for k, v in settings.items() if k not in ARRAY_SETTINGS}, default=str)


def kernel_initializer(spec):
    """``"he_normal"``, ``"normal(1.0)"``, a callable, or ``None`` (the recipe's default)."""
    if spec is None or callable(spec):
        return spec
    match = re.fullmatch(r"normal\(([0-9.eE+-]+)\)", str(spec))
    return init.normal(float(match.group(1))) if match else init.get(spec)


def make_recipe(settings: dict, task: str, n_outputs: int) -> Recipe:
    """The textbook MLP recipe for a cell on a data set's task."""
    options = {
        "activation": settings["activation"],
        "kernel_init": kernel_initializer(settings["kernel_init"]),
        "dropout": float(settings["dropout"]),
        "batch_norm": bool(settings["batch_norm"]),
        "l1": float(settings["l1"]),
        "l2": float(settings["l2"]),
    }
    hidden = settings["hidden"]
    if task == "regression":
        return regression_mlp(n_outputs, hidden, **options)
    if task == "binary":
        return classifier_mlp(1, hidden, task="binary", **options)
    return classifier_mlp(n_outputs, hidden, **options)


def make_optimizer(name: str, learning_rate, total_steps: int):
    """:func:`jaxnet.optim.get`, plus ``momentum_cosine``: ``momentum`` with its rate decayed to 0
    by a cosine over ``total_steps`` (the study's budget). ``learning_rate`` may be an array (a
    vmapped grid)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose from {list(OPTIMIZERS)}", ("study",))
    if name == "momentum_cosine":
        return optim.get(
            "momentum", optim.cosine_decay_schedule(learning_rate, max(total_steps, 1))
        )
    return optim.get(name, learning_rate)
