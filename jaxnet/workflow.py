"""Split, standardise, train, evaluate, save: the run ``jaxnet train`` makes, as library calls.

::

    from jaxnet import datasets, optim, recipes, workflow

    data = workflow.prepare_data(datasets.load_dataset("wine"), test_fraction=0.2, seed=0)
    recipe = recipes.classifier_mlp(3, hidden=(50, 50))
    run = workflow.train_evaluate_save(data, recipe, optim.adam(1e-3), "out/wine", epochs=50)
    run.test["accuracy"], run.model_path          # jaxnet.load_model(run.model_path) reloads it

:func:`prepare_data` holds out a test split and standardises the features with the training
split's statistics (a regression target too); :func:`train_evaluate_save` trains with
:func:`~jaxnet.train.fit`, measures the test split (regression: MAE, RMSE and R² in the target's
own units, from :mod:`jaxnet.metrics`), and writes ``config.json``, ``history.json``,
``metrics.json``, ``curves.png`` (with matplotlib) and the model (``model/``, with exactly the
preprocessing applied, so ``jaxnet predict`` takes raw rows).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxnet import metrics
from jaxnet.arguments import output_folder
from jaxnet.datasets import Dataset, standardize, train_test_split
from jaxnet.jsonable import dumps
from jaxnet.plots import plot_history
from jaxnet.recipes import Recipe
from jaxnet.saving import Preprocessing, save_model
from jaxnet.train.evaluate import evaluate, predict
from jaxnet.train.fit import History, fit
from jaxnet.train.step import TrainState


class PreparedData(NamedTuple):
    """A data set split and standardised for training, and the statistics used.

    ``x_train`` ``(n_train, d)`` and ``x_test`` ``(n_test, d)`` are standardised with
    ``feature_scale = (mean, std)`` of the training split; ``y_train`` is standardised with
    ``target_scale = (mean, std)`` for regression (``(0.0, 1.0)`` otherwise); ``y_test`` keeps
    the original units.
    """

    data: Dataset
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_scale: tuple[np.ndarray, np.ndarray]
    target_scale: tuple[float, float]


class TrainingRun(NamedTuple):
    """What :func:`train_evaluate_save` trained, measured and wrote."""

    train_state: TrainState
    history: History
    test: dict[str, float]  # test-split metrics; regression in the target's units
    results: dict[str, Any]  # what metrics.json holds
    out: Path
    model_path: Path
    wrote: tuple[str, ...]  # names written under ``out`` (folders end in "/")
    notes: tuple[str, ...]  # what was skipped, and why (no curves.png without matplotlib)


def prepare_data(data: Dataset, *, test_fraction: float = 0.2, seed: int = 0) -> PreparedData:
    """Hold out ``test_fraction`` of ``data`` (shuffled with ``seed``) and standardise.

    >>> from jaxnet.datasets import load_dataset
    >>> prepared = prepare_data(load_dataset("iris"), test_fraction=0.2, seed=0)
    >>> prepared.x_train.shape, prepared.x_test.shape
    ((120, 4), (30, 4))
    """
    (x_train, y_train), (x_test, y_test) = train_test_split(
        data.x, data.y, test_fraction, seed=seed
    )
    x_train, x_test, feature_scale = standardize(x_train, x_test)
    target_scale = (0.0, 1.0)
    if data.task == "regression":  # scale the target too; metrics are reported in its units
        target_scale = (float(y_train.mean()), float(y_train.std()) or 1.0)
        y_train = (y_train - target_scale[0]) / target_scale[1]
    return PreparedData(
        data, x_train, y_train, x_test, np.asarray(y_test), feature_scale, target_scale
    )


def evaluate_test_split(recipe: Recipe, train_state: TrainState, prepared: PreparedData) -> dict:
    """Metrics of the trained model on the test split, as Python floats.

    Regression: ``mae``, ``rmse`` and ``r2`` (:mod:`jaxnet.metrics`) of the predictions mapped
    back to the target's units. Classification: the recipe's loss and metrics
    (:func:`~jaxnet.train.evaluate`).
    """
    task, x_test, y_test = prepared.data.task, prepared.x_test, prepared.y_test
    if task == "regression":
        mean, std = prepared.target_scale
        output = predict(recipe.model, train_state.params, train_state.state, x_test)
        predicted = np.asarray(output)[:, 0] * std + mean
        measures = {
            "mae": metrics.mean_absolute_error,
            "rmse": metrics.root_mean_squared_error,
            "r2": metrics.r2_score,
        }
        return {name: float(measure(predicted, y_test)) for name, measure in measures.items()}
    y = y_test.reshape(-1, 1).astype(np.float32) if task == "binary" else y_test
    return evaluate(
        recipe.model, train_state.params, train_state.state, x_test, y, recipe.loss, recipe.metrics
    )


def train_evaluate_save(
    prepared: PreparedData,
    recipe: Recipe,
    optimizer,
    out,
    *,
    epochs: int = 20,
    batch_size: int = 32,
    validation_split: float = 0.1,
    seed: int = 0,
    verbose: int = 1,
    checkpoints: bool = False,
    keep: int = 3,
    resume: bool | str = False,
    config: Mapping | None = None,
    target: str | None = None,
    title: str | None = None,
) -> TrainingRun:
    """Train ``recipe`` on ``prepared``, measure the test split, write everything to ``out``.

    Args:
      prepared: from :func:`prepare_data`.
      recipe, optimizer: the model with its loss and metrics; an optax-protocol optimizer.
      out: the output folder (created if needed).
      epochs, batch_size, validation_split, seed, verbose: as for :func:`~jaxnet.train.fit`
        (``validation_split`` of the training split; 0 for none).
      checkpoints, keep, resume: checkpoint every epoch to ``out/checkpoints`` keeping ``keep``;
        ``resume`` continues from there (as ``fit(resume=)``).
      config: entries for ``config.json`` besides the task and sizes (e.g. the command's options).
      target: the target column's name, recorded for ``jaxnet predict``'s output header.
      title: the curves' title after the data set's name (default: the recipe's name).

    Returns a :class:`TrainingRun`. ``config.json`` is written after ``fit`` returns, so a refused
    ``resume`` changes nothing in ``out``.
    """
    out = output_folder(out, "out")
    data = prepared.data
    start = time.perf_counter()
    train_state, history = fit(
        recipe.model,
        recipe.loss,
        optimizer,
        prepared.x_train,
        prepared.y_train,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        metrics=recipe.metrics,
        validation_split=validation_split or None,
        verbose=verbose,
        penalty=recipe.penalty,
        checkpoint_dir=out / "checkpoints" if checkpoints else None,
        keep=keep,
        resume=checkpoints and resume,
    )
    seconds = time.perf_counter() - start
    n_classes = data.n_classes
    sizes = {"task": data.task, "n_features": int(data.x.shape[1]), "n_classes": n_classes}
    _write_json(out / "config.json", {**(config or {}), **sizes})
    test = evaluate_test_split(recipe, train_state, prepared)
    results = {
        "data": data.name,
        "task": data.task,
        "n_train": int(len(prepared.x_train)),
        "n_test": int(len(prepared.x_test)),
        "epochs_run": history.epochs,
        "seconds": round(seconds, 2),
        "final": {k: v[-1] for k, v in history.to_dict().items() if k != "time"},
        "test": test,
    }
    _write_json(out / "history.json", history.to_dict())
    _write_json(out / "metrics.json", results)
    model_path = save_trained(out / "model", recipe, train_state, prepared, test, target)
    wrote, notes = ["config.json", "history.json", "metrics.json", "model/"], []
    if history.epochs:
        name, value = next(iter(test.items()))
        heading = f"{data.name}: {title or recipe.info.get('recipe', 'model')}; test {name} "
        try:
            plot_history(history, out / "curves.png", title=f"{heading}{value:.4f}")
            wrote.append("curves.png")
        except ImportError as error:
            notes.append(f"no curves.png ({error})")
    if checkpoints:
        wrote.append("checkpoints/")
    return TrainingRun(
        train_state, history, test, results, out, model_path, tuple(wrote), tuple(notes)
    )


def save_trained(path, recipe, train_state, prepared: PreparedData, test, target=None) -> Path:
    """Write the trained model to ``path`` (:func:`jaxnet.save_model`) with exactly the
    preprocessing :func:`prepare_data` applied: the training split's feature mean and std, the
    regression target's mean and std, the class names and the feature columns."""
    data = prepared.data
    scale = {}
    if data.task == "regression":
        scale = dict(zip(("target_mean", "target_std"), prepared.target_scale, strict=True))
    preprocessing = Preprocessing(
        feature_mean=prepared.feature_scale[0],
        feature_std=prepared.feature_scale[1],
        class_names=data.class_names,
        feature_names=data.feature_names,
        **scale,
    )
    metadata = {"data": data.name, "task": data.task, "target": target, "test": test}
    return save_model(
        path,
        recipe,
        train_state,
        input_shape=tuple(data.x.shape[1:]),
        preprocessing=preprocessing,
        metadata=metadata,
        overwrite=True,
    )


def _write_json(path: Path, obj) -> None:
    path.write_text(dumps(obj, indent=2) + "\n")
