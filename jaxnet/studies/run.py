"""Running a study: one vmapped ``fit_many`` per distinct program, statistics per cell.

Cells that differ only in :data:`~jaxnet.studies.spec.ARRAY_SETTINGS` (the learning rate) share
one compiled program: ``fit_many`` trains ``cells x seeds`` models at once. Every other difference
(activation, depth, batch size, dropout, ...) is a separate ``fit_many`` call, which still trains
that cell's seeds as one vmapped program.

The result is a plain JSON-ready dict (see :func:`run_study`); :mod:`jaxnet.studies.report` turns
it into a Markdown table and plots.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.datasets import load_dataset, standardize, train_test_split
from jaxnet.diagnostics import diagnose_at_init
from jaxnet.errors import ConfigError
from jaxnet.metrics import direction
from jaxnet.studies import spec
from jaxnet.studies.builtin import STUDIES
from jaxnet.studies.report import save_outputs
from jaxnet.studies.stats import Summary, rank_with_ties, summarize
from jaxnet.train.data import match_targets, output_shape
from jaxnet.train.evaluate import make_evaluate
from jaxnet.train.many import fit_many, model_slice
from jaxnet.train.step import create_train_state

CONFIDENCE = 0.95
DIAGNOSIS_BATCH = 256


class StudyData(NamedTuple):
    """Standardised splits of a bundled data set (statistics from the training part only)."""

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    task: str
    n_outputs: int


def load_study_data(study: spec.Study) -> StudyData:
    """Split ``study.dataset`` into train / validation / test with ``study.data_seed``.

    Features are standardised with the training statistics; regression targets too (so losses
    are in units of the target's standard deviation).
    """
    data = load_dataset(study.dataset)
    rest, test = train_test_split(data.x, data.y, study.test_fraction, seed=study.data_seed)
    train, validation = train_test_split(*rest, study.validation_fraction, seed=study.data_seed + 1)
    if study.n_train is not None:
        train = (train[0][: study.n_train], train[1][: study.n_train])
    x_train, x_val, x_test, _ = standardize(train[0], validation[0], test[0])
    ys = [train[1], validation[1], test[1]]
    if data.task == "regression":
        mean, std = float(ys[0].mean()), float(ys[0].std()) or 1.0
        ys = [((y - mean) / std).astype(np.float32) for y in ys]
    n_outputs = data.n_classes if data.task == "multiclass" else 1
    return StudyData((x_train, ys[0]), (x_val, ys[1]), (x_test, ys[2]), data.task, n_outputs)


def evaluate_many(recipe, train_state, x, y) -> dict[str, np.ndarray]:
    """Loss and metrics of every model (leading axis of ``train_state``) on ``(x, y)``; one
    compiled program (:func:`~jaxnet.train.evaluate.make_evaluate` with ``many=True``)."""
    one_params, one_state = model_slice((train_state.params, train_state.state), 0)
    out_shape = output_shape(recipe.model, one_params, one_state, x)
    y = match_targets(np.asarray(y), out_shape, "y_test", recipe.targets)
    evaluate = make_evaluate(recipe.model, recipe.loss, recipe.metrics, many=True)
    logs = evaluate(train_state.params, train_state.state, jnp.asarray(x), jnp.asarray(y))
    return {name: np.asarray(value) for name, value in logs.items()}


def diagnose_cell(recipe, settings: dict, seed: int, data: StudyData) -> list[dict]:
    """Findings of :func:`jaxnet.diagnostics.diagnose_at_init` for one seed's initial model
    (on the first 256 training examples)."""
    x, y = (a[:DIAGNOSIS_BATCH] for a in data.train)
    optimizer = spec.make_optimizer(settings["optimizer"], settings["learning_rate"], 1)
    ts = create_train_state(recipe.model, optimizer, x.shape[1:], jax.random.key(seed))
    output_shape = jax.eval_shape(lambda: recipe.model.apply(ts.params, ts.state, x)[0]).shape[1:]
    y = match_targets(y, output_shape, "y", recipe.targets)
    # op by op, as diagnose_at_init does: after the first cell most primitives are cached, which
    # beats compiling each cell's pass as one program (measured: ~1.5 s vs ~4.5 s per cell)
    findings = diagnose_at_init(recipe.model, ts.params, ts.state, (x, y), recipe.loss)
    return [f.to_dict() for f in findings]


def verdict(findings: list[dict] | None) -> str | None:
    """``"ok"``, or the kinds of the warnings and critical findings (``"critical: vanishing"``)."""
    if findings is None:
        return None
    serious = [f for f in findings if f["severity"] in ("critical", "warning")]
    kinds = dict.fromkeys(f"{f['severity']}: {f['kind']}" for f in serious)
    return "; ".join(kinds) or "ok"


class CompileTimer:
    """Seconds JAX spends tracing, lowering and compiling (or loading from the compilation cache)
    inside a ``with`` block, from :mod:`jax.monitoring`'s compile events."""

    EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",  # includes cache retrieval
    )

    def __init__(self):
        self.seconds = 0.0

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if event in self.EVENTS:
            self.seconds += duration

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc_info):
        jax.monitoring.unregister_event_duration_listener(self._listen)


def _machine() -> str:
    device = jax.devices()[0]
    return f"{platform.machine()}, {device.platform} ({device.device_kind}), jax {jax.__version__}"


def resolve(name_or_spec) -> spec.Study:
    """A :class:`Study`, a built-in study's name, or a dict of :class:`Study` fields."""
    if isinstance(name_or_spec, spec.Study):
        return name_or_spec
    if not isinstance(name_or_spec, Mapping | str):
        raise ConfigError(
            "a study is a built-in name, a Study or a dict of its fields (a JSON object); got "
            f"a {type(name_or_spec).__name__}",
            ("study",),
        )
    if isinstance(name_or_spec, Mapping):
        fields = dict(name_or_spec)
        known = [field.name for field in dataclasses.fields(spec.Study)]
        unknown = sorted(set(fields) - set(known))
        if unknown or "name" not in fields or "cells" not in fields:
            raise ConfigError(
                f"a study needs 'name' and 'cells' and takes {known}; got {sorted(fields)}",
                ("study",),
            )
        fields["cells"] = tuple(fields.get("cells", ()))
        return spec.Study(**fields)
    if name_or_spec not in STUDIES:
        raise ConfigError(
            f"unknown study {name_or_spec!r}; built-in studies: {sorted(STUDIES)}", ("study",)
        )
    return STUDIES[name_or_spec]


def run_study(
    name_or_spec,
    *,
    seeds=None,
    epochs: int | None = None,
    n_train: int | None = None,
    out=None,
    diagnose: bool = True,
    verbose: int = 1,
) -> dict:
    """Train every cell of a study with every seed; summarise, rank, and optionally save.

    Args:
      name_or_spec: a built-in study's name (``"activations"``, ...), a :class:`Study`, or a dict
        of its fields.
      seeds, epochs, n_train: override the study's (a seed count or a list of seeds).
      out: a folder for ``study_<name>.json``, ``.md`` and ``.png`` (``None``: nothing written).
      diagnose: add the diagnostics verdict at initialisation of each program's first seed.

    Returns a JSON-ready dict: ``study`` (the declaration), ``metric``, ``mode``, ``data``,
    ``cells`` (per cell: ``name``, ``settings``, ``values`` {metric: one value per seed},
    ``summary`` {metric: mean, standard_error, low, high, n}, ``rank``, ``history``
    {name: epochs x seeds}, timings, steps, ``verdict``, ``findings``), ``best`` and timings.

    ::

        result = run_study("activations", seeds=4, epochs=10, out="out/studies")
        print(to_markdown(result))
    """
    study = resolve(name_or_spec)
    overrides = {"seeds": seeds, "epochs": epochs, "n_train": n_train}
    study = study.replace(**{k: v for k, v in overrides.items() if v is not None})
    settings = spec.resolved_settings(study)
    names = spec.cell_names(study, settings)
    seed_list = study.seed_list
    if not seed_list or not study.cells:
        raise ConfigError("a study needs at least one cell and one seed", ("study", study.name))
    start = time.perf_counter()
    data = load_study_data(study)
    metric = study.metric or ("test_rmse" if data.task == "regression" else "test_accuracy")

    programs: dict[str, list[int]] = {}
    for index, cell in enumerate(settings):
        programs.setdefault(spec.program_key(cell), []).append(index)
    cells: list[dict] = [{} for _ in settings]
    for number, members in enumerate(programs.values()):
        records = _run_program(study, data, [settings[i] for i in members], seed_list, diagnose)
        for index, record in zip(members, records, strict=True):
            cells[index] = {"name": names[index], "program": number, **record}
        if verbose:
            first = cells[members[0]]
            summary = ", ".join(
                f"{cells[i]['name']} {np.mean(cells[i]['values'][metric]):.4f}" for i in members
            )
            print(
                f"[{study.name} {number + 1}/{len(programs)}] {len(members) * len(seed_list)} "
                f"models: compile {first['compile_seconds']:.1f} s, "
                f"train {first['train_seconds'] * len(members):.1f} s | {metric}: {summary}",
                flush=True,
            )

    for cell in cells:
        cell["summary"] = {k: summarize(v, CONFIDENCE)._asdict() for k, v in cell["values"].items()}
    mode = direction(metric)
    if metric not in cells[0]["summary"]:
        raise ConfigError(
            f"metric {metric!r} is not measured; measured: {sorted(cells[0]['summary'])}",
            ("study", study.name),
        )
    for cell, rank in zip(cells, _ranks(cells, metric, mode), strict=True):
        cell["rank"] = rank
    best = _best_per_group(study, settings, cells, metric, mode)
    result = {
        "study": study.to_dict(),
        "metric": metric,
        "mode": mode,
        "confidence": CONFIDENCE,
        "data": {
            "dataset": study.dataset,
            "task": data.task,
            "n_train": len(data.train[0]),
            "n_validation": len(data.validation[0]),
            "n_test": len(data.test[0]),
        },
        "cells": cells,
        "best": best,
        "programs": len(programs),
        "total_seconds": time.perf_counter() - start,
        "machine": _machine(),
    }
    if out is not None:
        save_outputs(result, out)
    return result


def _ranks(cells: list[dict], metric: str, mode: str) -> list[int]:
    return rank_with_ties([Summary(**c["summary"][metric]) for c in cells], mode)


def _best_per_group(study, settings, cells, metric, mode) -> list[int] | None:
    """Indices of the best cell (mean ``metric``) per value of the settings other than
    ``study.best_over``; each such cell gets ``rank_among_best``."""
    if study.best_over is None:
        return None
    groups: dict[str, list[int]] = {}
    for index, cell in enumerate(settings):
        key = spec.program_key({k: v for k, v in cell.items() if k != study.best_over})
        groups.setdefault(key, []).append(index)
    sign = 1.0 if mode == "max" else -1.0

    def score(i):
        mean = cells[i]["summary"][metric]["mean"]
        return sign * mean if np.isfinite(mean) else -np.inf

    best = [max(members, key=score) for members in groups.values()]
    for index, rank in zip(best, _ranks([cells[i] for i in best], metric, mode), strict=True):
        cells[index]["rank_among_best"] = rank
    return best


def _run_program(study, data: StudyData, members: list[dict], seeds: list[int], diagnose: bool):
    """``fit_many`` for cells that share a program; one record per cell."""
    first = members[0]
    recipe = spec.make_recipe(first, data.task, data.n_outputs)
    batch_size = int(first["batch_size"])
    n_train = len(data.train[0])
    steps_per_epoch = n_train // batch_size
    total_steps = study.epochs * steps_per_epoch

    def optimizer(learning_rate):
        return spec.make_optimizer(first["optimizer"], learning_rate, total_steps)

    start = time.perf_counter()
    with CompileTimer() as compile_timer:
        result = fit_many(
            recipe.model,
            recipe.loss,
            optimizer,
            *data.train,
            seeds=seeds,
            grid={"learning_rate": [float(c["learning_rate"]) for c in members]},
            epochs=study.epochs,
            batch_size=batch_size,
            metrics=recipe.metrics,
            validation_data=data.validation,
            data_seed=study.data_seed,
            penalty=recipe.penalty,
            verbose=0,
        )
        test = evaluate_many(recipe, result.train_state, *data.test)
    seconds = time.perf_counter() - start
    train_seconds = (seconds - compile_timer.seconds) / len(members)
    findings = diagnose_cell(recipe, first, seeds[0], data) if diagnose else None

    records = []
    for position, settings in enumerate(members):
        models = slice(position * len(seeds), (position + 1) * len(seeds))
        values = {f"test_{k}": v[models] for k, v in test.items()}
        for name, history in result.history.items():
            final = name if name.startswith("val_") else f"train_{name}"
            values[final] = history[-1, models]
        records.append(
            {
                "settings": {
                    k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()
                },
                "seeds": list(seeds),
                "values": {k: [float(x) for x in v] for k, v in values.items()},
                "history": {k: h[:, models].tolist() for k, h in result.history.items()},
                "program_seconds": seconds,
                "compile_seconds": compile_timer.seconds,
                "epoch_compile_seconds": result.compile_seconds,
                "train_seconds": train_seconds,
                "cells_in_program": len(members),
                "steps_per_epoch": steps_per_epoch,
                "steps": total_steps,
                "examples_per_epoch": steps_per_epoch * batch_size,
                "verdict": verdict(findings),
                "findings": findings,
            }
        )
    return records
