"""A trained model as a directory that reloads without the script that built it; no pickle.

::

    model/
      model.json           what the model is: its description (jaxnet.describe), input shape and
                           dtype, preprocessing, metadata, versions and a fingerprint
      weights.json         the weights' manifest (jaxnet.checkpoint): paths, shapes, SHA-256
      weights.safetensors  params and state

The directory is written under a temporary name beside ``path`` and renamed into place, so a
reader sees the old model, the complete new one, or nothing; a write that fails (a full disk)
leaves the old model and raises :class:`~jaxnet.errors.WriteError`. :func:`load_model` rebuilds the
model from its description (every built-in layer, combinator and recipe; custom functions only if
:func:`jaxnet.register`-ed), checks the fingerprint, the weights' checksum and that every array
fits the rebuilt model, and returns a :class:`SavedModel` that predicts from raw inputs: the
stored feature scaling is applied first, a regression's target scale undone last.

>>> recipe = jaxnet.classifier_mlp(10, hidden=(16,))
>>> train_state = jaxnet.create_train_state(recipe.model, optim.adam(1e-3), (64,),
...                                         jax.random.key(0))
>>> mean, std = np.full(64, 4.0, np.float32), np.full(64, 6.0, np.float32)
>>> path = jaxnet.save_model("out/digits", recipe, train_state, input_shape=(64,),
...                          preprocessing=Preprocessing(feature_mean=mean, feature_std=std))
>>> saved = jaxnet.load_model("out/digits")       # in a fresh process: no model code needed
>>> x_raw = np.zeros((3, 64), np.float32)
>>> saved.predict(x_raw).shape                    # (n, 10) probabilities
(3, 10)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxnet import activations, checkpoint
from jaxnet import description as descriptions
from jaxnet.atomic import fsync_directory, write_bytes, write_error
from jaxnet.core import Layer
from jaxnet.errors import ConfigError, JaxnetError
from jaxnet.jsonable import dumps
from jaxnet.outputs import CLASSIFICATION, finisher, task_of
from jaxnet.recipes import Recipe
from jaxnet.signature import check_input, is_shape, shape_from_json, shape_to_json
from jaxnet.summarize import summary
from jaxnet.train.evaluate import predict
from jaxnet.train.step import TrainState
from jaxnet.version import __version__

FORMAT = "jaxnet-model"
FORMAT_VERSION = 1
MODEL_FILE = "model.json"
WEIGHTS = "weights"  # weights.json (manifest) and weights.safetensors


class SavedModelError(JaxnetError, ValueError):
    """A model directory that cannot be written or read back: missing, damaged, foreign, newer."""


# ----------------------------------------------------------------------------- preprocessing


class Preprocessing(NamedTuple):
    """What was done to the data before training, so that prediction does it again.

    - ``feature_mean``, ``feature_std``: inputs become ``(x - mean) / std`` (arrays that
      broadcast against one example, e.g. ``(n_features,)``); ``None``: not scaled.
    - ``target_mean``, ``target_std``: a regression model learnt ``(y - mean) / std``; its
      predictions are mapped back, ``output * std + mean`` (numbers, or one per output).
    - ``class_names``: the label of each class index; ``feature_names``: the input columns.
    """

    feature_mean: Any = None
    feature_std: Any = None
    target_mean: Any = None
    target_std: Any = None
    class_names: tuple[str, ...] = ()
    feature_names: tuple[str, ...] = ()

    def transform(self, x):
        """``(x - feature_mean) / feature_std`` (each part only where set); traceable."""
        if self.feature_mean is not None:
            x = x - np.asarray(self.feature_mean, np.float32)
        if self.feature_std is not None:
            x = x / np.asarray(self.feature_std, np.float32)
        return x

    def inverse_target(self, y):
        """``y * target_std + target_mean`` (each part only where set); traceable."""
        if self.target_std is not None:
            y = y * np.asarray(self.target_std, np.float32)
        if self.target_mean is not None:
            y = y + np.asarray(self.target_mean, np.float32)
        return y

    def to_json(self) -> dict:
        """Plain JSON values: arrays as (nested) lists of numbers."""
        return {
            name: list(value) if name.endswith("names") else _json_array(value)
            for name, value in self._asdict().items()
        }

    @classmethod
    def from_json(cls, entry: Mapping) -> Preprocessing:
        """The inverse of :meth:`to_json` (arrays as float32)."""
        values = {}
        for name in cls._fields:
            value = entry.get(name)
            if name.endswith("names"):
                values[name] = tuple(value or ())
            else:
                values[name] = None if value is None else np.asarray(value, np.float32)
        return cls(**values)


def _json_array(value):
    return None if value is None else np.asarray(value, np.float32).tolist()


def _broadcasts(shape, onto) -> bool:
    try:
        return np.broadcast_shapes(shape, onto) == onto
    except ValueError:
        return False


def _check_preprocessing(pre: Preprocessing, input_shape, task: str | None) -> None:
    for name in ("feature_mean", "feature_std", "target_mean", "target_std"):
        value = getattr(pre, name)
        if value is None:
            continue
        array = np.asarray(value, np.float64)
        if not np.all(np.isfinite(array)) or (name.endswith("std") and np.any(array <= 0)):
            what = "positive and finite" if name.endswith("std") else "finite"
            raise SavedModelError(f"{name} must be {what}, got {value!r}"[:300], ("save_model",))
        if name.startswith("feature"):
            if not is_shape(input_shape):
                raise SavedModelError(
                    f"{name}: feature scaling applies to a model with one input array; "
                    f"this model takes {input_shape}",
                    ("save_model",),
                )
            if not _broadcasts(array.shape, tuple(input_shape)):
                raise SavedModelError(
                    f"{name} has shape {array.shape}, which does not broadcast against one "
                    f"example of shape {tuple(input_shape)}",
                    ("save_model",),
                )
    has_target = pre.target_mean is not None or pre.target_std is not None
    if task in CLASSIFICATION and has_target:
        raise SavedModelError(
            f"target_mean/target_std scale a regression target, but the model is a {task} "
            "classifier",
            ("save_model",),
        )


# ----------------------------------------------------------------------------- the model


class SavedModel:
    """A model with its weights and preprocessing, as :func:`load_model` returns it.

    Attributes: ``model`` (the :class:`~jaxnet.core.Layer`), ``params``, ``state``,
    ``input_shape`` (per example), ``dtype``, ``preprocessing`` (:class:`Preprocessing`),
    ``metadata`` (the free JSON saved with it), ``task`` and ``output_activation`` (``None`` for
    a plain model), ``recipe`` (the rebuilt :class:`~jaxnet.recipes.Recipe`, with its loss and
    metrics, for a textbook recipe; else ``None``), ``class_names``, ``path`` and ``record``
    (the whole ``model.json``).
    """

    def __init__(
        self, model, params, state, input_shape, dtype, preprocessing, metadata, *,
        recipe=None, task=None, output_activation=None, path=None, record=None,
    ):  # fmt: skip
        self.model, self.params, self.state = model, params, state
        self.input_shape, self.dtype = input_shape, np.dtype(dtype).name
        self.preprocessing, self.metadata = preprocessing, metadata
        self.recipe, self.task, self.output_activation = recipe, task, output_activation
        self.path, self.record = path, record
        self.class_names = tuple(preprocessing.class_names)
        self._inference: dict = {}

    def inference(self, output: str | None = None) -> Layer:
        """The layer from raw inputs to ``output``: feature scaling, the model, the output
        activation, the target scale undone. :meth:`predict` runs it; :func:`jaxnet.export`
        exports it. ``output`` as in :func:`predict`."""
        if output not in self._inference:
            layer, pre = self.model, self.preprocessing
            finish = finisher(self.output_activation, self.task, output, "predict")
            rescale = self.task not in CLASSIFICATION

            def apply(params, state, x, *, key=None, train=False):
                del key, train  # inference: no dropout, running statistics
                y, new_state = layer.apply(params, state, pre.transform(x))
                y = y if finish is None else finish(y)
                return (pre.inverse_target(y) if rescale else y), new_state

            self._inference[output] = Layer(layer.init, apply, layer.name)
        return self._inference[output]

    def predict(self, x, output: str | None = None, *, batch_size: int = 256):
        """Predictions for raw inputs ``x`` of shape ``(n, *input_shape)``.

        ``output``: ``None`` (probabilities for a classifier, values in the target's units for a
        regression), ``"probabilities"``, ``"classes"`` (int32 indices into ``class_names``) or
        ``"logits"`` (see :mod:`jaxnet.outputs`). Inputs of any real dtype are cast to
        ``dtype``; a wrong shape or a non-numeric dtype is a clear error.
        """
        x = check_input(x, self.input_shape, self.dtype, "predict")
        return predict(self.inference(output), self.params, self.state, x, batch_size=batch_size)

    def summary(self):
        """:func:`jaxnet.summary` of the model for its input shape."""

        return summary(self.model, self.input_shape)

    def __repr__(self) -> str:
        kind = self.recipe.info["recipe"] if self.recipe else "model"
        kind += f" ({self.task})" if self.task else ""
        where = f", path={str(self.path)!r}" if self.path else ""
        return (
            f"SavedModel({self.model.name}: {kind}, input {self.input_shape} {self.dtype}{where})"
        )


# ----------------------------------------------------------------------------- save


def save_model(path, model: Layer | Recipe, train_state_or_params, *, input_shape,
               state=None, dtype="float32", preprocessing: Preprocessing | None = None,
               metadata: Mapping | None = None, overwrite: bool = False) -> Path:  # fmt: skip
    """Write ``model`` (a layer or a recipe) with its weights to the directory ``path``.

    A textbook recipe (``classifier_mlp``, ``regression_mlp``) is rebuilt whole on load (loss,
    metrics, penalty); any other recipe, ``Recipe(cnn, loss, metrics, activations.softmax)``,
    keeps its model, task and output activation, so the saved model predicts probabilities.

    Args:
      train_state_or_params: a :class:`~jaxnet.train.TrainState` (its params and state are
        saved, not the optimizer state), or the params (then ``state=`` too, if the model has
        any).
      input_shape: the per-example input shape (or tuple/dict of shapes), as for ``init``.
      dtype: the input dtype the model takes.
      preprocessing: the :class:`Preprocessing` that :meth:`SavedModel.predict` applies.
      metadata: any JSON dict kept with the model (data set, test metrics, ...).
      overwrite: replace an existing saved model at ``path`` (never another kind of folder).

    Returns the path. Raises :class:`~jaxnet.errors.ConfigError` when the model cannot be
    described (a custom function: see :func:`jaxnet.register`), :class:`SavedModelError`
    when the weights do not fit the model for ``input_shape``, or ``path`` is taken, and
    :class:`~jaxnet.errors.WriteError` (naming ``path`` and the system's reason, e.g. a full
    disk) when the files cannot be written; the model at ``path`` is then unchanged.
    """
    path = Path(path)
    if isinstance(train_state_or_params, TrainState):
        params, state = train_state_or_params.params, train_state_or_params.state
    else:
        params, state = train_state_or_params, {} if state is None else state
    recipe = model if isinstance(model, Recipe) else None
    layer = recipe.model if recipe else model
    recorded = recipe is not None and "recipe" in recipe.info  # a textbook recipe
    description = descriptions.describe(model if recorded else layer)  # ConfigError: what not
    preprocessing = preprocessing or Preprocessing()
    task = None if recipe is None else task_of(recipe)
    activation = None if recipe is None else activations.spec_of(recipe.output_activation)
    if not isinstance(activation, str | None):
        raise ConfigError(
            f"the recipe's output activation {activation} is a custom function, which a saved "
            "model cannot hold; use a jaxnet one (activations.softmax, sigmoid or identity)",
            ("save_model",),
        )
    _check_preprocessing(preprocessing, input_shape, task)
    tree = {"params": params, "state": state}
    arrays, specs = checkpoint.flatten(tree)
    try:  # the weights must be the ones this model makes for input_shape
        checkpoint.unflatten_into(_template(layer, input_shape), arrays, specs)
    except checkpoint.CheckpointError as error:
        raise SavedModelError(
            f"the weights do not fit {layer.name} for input_shape {input_shape}: {error.detail}",
            ("save_model",),
        ) from None
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": checkpoint.versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "description": description,
        "input": {"shape": shape_to_json(input_shape), "dtype": np.dtype(dtype).name},
        "task": task,
        "output_activation": activation,
        "preprocessing": preprocessing.to_json(),
        "metadata": dict(metadata or {}),
    }
    try:
        record = json.loads(dumps(record))  # as it will read back
    except (TypeError, ValueError) as error:
        raise SavedModelError(f"metadata must be JSON: {error}", ("save_model",)) from None

    def write(directory: Path) -> None:
        manifest_path = checkpoint.save(directory, WEIGHTS, tree)
        sha256 = checkpoint.read_manifest(manifest_path)["sha256"]
        record["weights"] = {"manifest": manifest_path.name, "sha256": sha256}
        record["fingerprint"] = fingerprint(record)
        text = dumps(record, indent=1) + "\n"
        write_bytes(directory / MODEL_FILE, text.encode(), owner=("save_model",))

    _write_directory(path, write, overwrite)
    return path


def fingerprint(record: Mapping) -> str:
    """``sha256:...`` of ``model.json``'s content (the fingerprint entry left out), which
    records the weights' own SHA-256: an edited description or swapped weights do not match."""
    body = {key: value for key, value in record.items() if key != "fingerprint"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _template(layer: Layer, input_shape):
    """``{"params", "state"}`` as shapes and dtypes: what ``init`` makes, nothing computed."""
    params, state = jax.eval_shape(lambda: layer.init(jax.random.key(0), input_shape)[1:])
    return {"params": params, "state": state}


def _write_directory(path: Path, write, overwrite: bool) -> None:
    """``write(temporary)`` then rename the folder to ``path``: never a half-written model."""
    if path.exists():
        if not path.is_dir() or (not (path / MODEL_FILE).is_file() and any(path.iterdir())):
            raise SavedModelError(
                f"{path} exists and is not a saved model; choose another path", ("save_model",)
            )
        if not overwrite and (path / MODEL_FILE).is_file():
            raise SavedModelError(
                f"{path} already holds a saved model; pass overwrite=True to replace it",
                ("save_model",),
            )
    kept = f"the saved model at {path} is unchanged" if path.exists() else f"nothing is at {path}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as error:
        raise write_error(path, error, ("save_model",), kept) from None
    try:
        write(temporary)
        if path.exists():  # an empty folder or the model being replaced
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
            os.rename(path, old)
            try:
                os.rename(temporary, path)
            except OSError:
                os.rename(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temporary, path)
    except OSError as error:  # a WriteError too: it names the temporary folder's file
        shutil.rmtree(temporary, ignore_errors=True)
        raise write_error(path, error, ("save_model",), kept) from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    fsync_directory(path.parent)


# ----------------------------------------------------------------------------- load


def load_model(path) -> SavedModel:
    """The model saved at ``path`` (a directory from :func:`save_model` or ``jaxnet train``).

    Raises :class:`SavedModelError` for a missing folder or file, a damaged or foreign file, a
    model written by a newer jaxnet, a ``model.json`` that does not match its fingerprint, or
    weights that are corrupted or do not fit the model (each says which).
    """
    path = Path(path)
    record = read_record(path)
    model_file = path / MODEL_FILE
    try:
        built = descriptions.build(record["description"])
        input_shape = shape_from_json(record["input"]["shape"])
        dtype = np.dtype(record["input"]["dtype"])
        preprocessing = Preprocessing.from_json(record.get("preprocessing") or {})
        weights = record["weights"]
        task, activation = record.get("task"), record.get("output_activation")
        activation = None if activation is None else activations.get(activation)
    except JaxnetError as error:
        raise SavedModelError(f"{model_file}: {error}", ("load_model",)) from None
    except (KeyError, TypeError, ValueError) as error:
        raise SavedModelError(
            f"{model_file} is damaged: {type(error).__name__}: {error}", ("load_model",)
        ) from None
    recipe = built if isinstance(built, Recipe) else None
    layer = recipe.model if recipe else built
    manifest_path = path / str(weights.get("manifest"))
    try:
        manifest = checkpoint.read_manifest(manifest_path)
        if manifest.get("sha256") != weights.get("sha256"):
            raise SavedModelError(
                f"{manifest_path.name} does not belong to {model_file} (another model's weights?)",
                ("load_model",),
            )
        arrays = checkpoint.read_arrays(manifest_path, manifest)
        tree = checkpoint.unflatten_into(
            _template(layer, input_shape), arrays, manifest["arrays"], str(manifest_path)
        )
    except checkpoint.CheckpointError as error:
        raise SavedModelError(f"{path}: {error.detail}", ("load_model",)) from None
    return SavedModel(
        layer, tree["params"], tree["state"], input_shape, dtype, preprocessing,
        record.get("metadata", {}), recipe=recipe, task=task, path=path, record=record,
        output_activation=activation,
    )  # fmt: skip


def read_record(path) -> dict:
    """``model.json`` of the model at ``path``, after the format, version and fingerprint checks."""
    path = Path(path)
    model_file = path / MODEL_FILE
    if not path.is_dir():
        what = "no such folder" if not path.exists() else "not a folder"
        raise SavedModelError(f"{path}: {what}; expected a saved model directory", ("load_model",))
    if not model_file.is_file():
        hint = (
            f"; did you mean {path / 'model'} (where jaxnet train writes it)?"
            if (path / "model" / MODEL_FILE).is_file()
            else ""
        )
        raise SavedModelError(
            f"{path} holds no {MODEL_FILE}: not a saved model{hint}", ("load_model",)
        )
    try:
        record = json.loads(model_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SavedModelError(
            f"{model_file} is damaged (not readable JSON: {error})", ("load_model",)
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise SavedModelError(
            f"{model_file} is not a jaxnet saved model (format {found!r}, expected {FORMAT!r})",
            ("load_model",),
        )
    _check_version(model_file, record.get("format_version"), FORMAT_VERSION, record, "model")
    description = record.get("description")
    version = description.get("version") if isinstance(description, dict) else None
    _check_version(model_file, version, descriptions.FORMAT_VERSION, record, "description")
    if record.get("fingerprint") != fingerprint(record):
        raise SavedModelError(
            f"{model_file} does not match its fingerprint: it was edited or damaged after saving",
            ("load_model",),
        )
    return record


def _check_version(model_file, version, supported: int, record: dict, what: str) -> None:
    if not isinstance(version, int):
        raise SavedModelError(f"{model_file} is damaged: no {what} format version", ("load_model",))
    if version > supported:
        writer = (record.get("versions") or {}).get("jaxnet", "a newer jaxnet")
        raise SavedModelError(
            f"{model_file} was written by jaxnet {writer} with {what} format version {version}; "
            f"this jaxnet ({__version__}) reads up to version {supported}: upgrade jaxnet",
            ("load_model",),
        )
