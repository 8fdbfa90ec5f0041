"""A trained model as serialized StableHLO (``jax.export``): inference without the model's code.

:func:`export` traces the model's inference pass (weights as constants, a symbolic batch
dimension) for each of ``platforms`` and writes one file: a JSON header line (format version,
input shape and dtype, what the output is, class names, the payload's SHA-256, and the SHA-256 of
the header itself) followed by the bytes of ``jax.export``'s ``Exported.serialize()``, written
atomically (:mod:`jaxnet.atomic`). :func:`load_exported` checks the header and both checksums
before deserializing anything (a truncated, bit-flipped or edited file is an :class:`ExportError`
naming it) and returns an :class:`ExportedModel`, a callable that checks its input (shape, dtype)
before running, at any batch size. The serving process imports jax and jaxnet, never the code
that built or trained the model.

>>> model = jaxnet.serial(jaxnet.Dense(16), jax.nn.relu, jaxnet.Dense(10))
>>> params, state = jaxnet.init_model(model, jax.random.key(0), (64,))
>>> path = jaxnet.export(model, params, state, (64,), "digits.stablehlo")
>>> serve = jaxnet.load_exported("digits.stablehlo")    # elsewhere
>>> serve(np.ones((3, 64), np.float32)).shape           # x: (n, 64), any n >= 1
(3, 10)

A loaded :class:`~jaxnet.saving.SavedModel` is exported with its preprocessing and output:
``jaxnet.export(saved_model, "digits.stablehlo")``.

(Without jaxnet: the bytes after the first newline are a standard ``jax.export`` serialization,
``jax.export.deserialize(bytearray(payload)).call(x)``.)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from jaxnet import checkpoint
from jaxnet.atomic import write_bytes
from jaxnet.core import Layer
from jaxnet.errors import JaxnetError
from jaxnet.jsonable import dumps
from jaxnet.outputs import check_output, resolve, task_of
from jaxnet.recipes import Recipe
from jaxnet.saving import SavedModel
from jaxnet.signature import check_input, map_shapes, shape_from_json, shape_to_json

FORMAT = "jaxnet-export"
FORMAT_VERSION = 2  # 2: the header carries its own checksum (1: only the payload's)


class ExportError(JaxnetError, ValueError):
    """A model that cannot be exported, or an export file that cannot be read back."""


class Inference(NamedTuple):
    """What an export traces: ``fn(x) -> y`` on raw inputs, and what it takes and gives."""

    fn: Callable
    model: Layer  # the trained model inside fn (to name a layer that cannot be exported)
    params: object
    state: object
    input_shape: object
    dtype: str
    header: dict  # output, task, class names: what a server needs to read the outputs


def inference(model, params=None, state=None, input_shape=None, *, output=None,
              dtype="float32", owner: str = "export") -> Inference:  # fmt: skip
    """The inference pass of a layer, a recipe or a :class:`~jaxnet.saving.SavedModel`.

    A layer gives its outputs; a recipe ``output`` (:mod:`jaxnet.outputs`); a saved model its
    :meth:`~jaxnet.saving.SavedModel.inference` (preprocessing included), and takes no params,
    state or input shape (they are stored in it).
    """
    if isinstance(model, SavedModel):
        given = [n for n, v in (("params", params), ("state", state), ("input_shape", input_shape))
                 if v is not None]  # fmt: skip
        if given:
            raise ExportError(f"a SavedModel holds its own {', '.join(given)}", (owner,))
        layer = model.inference(output)
        params, state, input_shape = model.params, model.state, model.input_shape
        dtype = model.dtype
        task, trained = model.task, model.model
        class_names = list(model.class_names)
    else:
        if input_shape is None:
            raise ExportError("input_shape is required (the per-example shape)", (owner,))
        layer, finish = resolve(model, output, owner)
        trained = layer
        task = task_of(model) if isinstance(model, Recipe) else None
        class_names = []
        if finish is not None:
            layer = layer._replace(apply=_finished(layer.apply, finish))
        state = {} if state is None else state
    output = check_output(output, task, owner)

    def fn(x):
        return layer.apply(params, state, x, train=False)[0]

    header = {"output": output, "task": task, "class_names": class_names}
    return Inference(fn, trained, params, state, input_shape, np.dtype(dtype).name, header)


def _finished(apply, finish):
    def apply_finished(params, state, x, *, key=None, train=False):
        y, new_state = apply(params, state, x, key=key, train=train)
        return finish(y), new_state

    return apply_finished


def params_and_path(model, params, path):
    """``(params, path)`` of an export call: for ``export(saved_model, path)`` the path comes
    second, where params would be."""
    if isinstance(model, SavedModel) and path is None and isinstance(params, str | os.PathLike):
        return None, params
    return params, path


def export(model, params=None, state=None, input_shape=None, path=None, *, output=None,
           platforms=("cpu", "cuda"), dtype="float32") -> Path:  # fmt: skip
    """Write ``model``'s inference pass to ``path`` as serialized StableHLO; return the path.

    Args:
      model: a :class:`~jaxnet.core.Layer`, a :class:`~jaxnet.recipes.Recipe` or a loaded
        :class:`~jaxnet.saving.SavedModel` (then call ``export(saved, path)``: it holds its
        params, state, input shape and preprocessing).
      params, state: the trained weights (``train_state.params``, ``train_state.state``).
      input_shape: per-example input shape (or tuple/dict of shapes); the batch is symbolic.
      output: for a recipe or saved model, ``"probabilities"``, ``"classes"``, ``"logits"`` or
        ``None`` (its default, as :func:`jaxnet.predict`).
      platforms: the platforms to lower for (``"cpu"``, ``"cuda"``, ``"rocm"``, ``"tpu"``); a
        platform needs no device to be exported for.

    The file is written atomically: a full disk or another write error leaves the file that was
    at ``path`` as it was and raises :class:`~jaxnet.errors.WriteError` naming ``path``.
    """
    params, path = params_and_path(model, params, path)
    if path is None:
        raise ExportError("path is required (the file to write)", ("export",))
    served = inference(model, params, state, input_shape, output=output, dtype=dtype)
    batch = jax.export.symbolic_shape("batch")[0]
    specs = map_shapes(
        lambda shape: jax.ShapeDtypeStruct((batch, *shape), served.dtype), served.input_shape
    )
    try:
        exported = jax.export.export(jax.jit(served.fn), platforms=tuple(platforms))(specs)
        payload = bytes(exported.serialize())
    except JaxnetError:
        raise
    except ImportError as error:  # serialization needs the flatbuffers package
        raise ImportError(
            f"{error}: pip install flatbuffers (a jaxnet-classic dependency)"
        ) from None
    except Exception as error:  # jax's lowering errors vary by platform
        message = f"jax.export failed: {type(error).__name__}: {error}"
        raise ExportError(message, ("export",)) from None
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": checkpoint.versions(),
        "input": {"shape": shape_to_json(served.input_shape), "dtype": served.dtype},
        **served.header,
        "platforms": list(exported.platforms),
        "bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    header = json.loads(dumps(header))  # the JSON values a reader gets back
    header["header_sha256"] = header_checksum(header)
    return write_bytes(path, dumps(header).encode() + b"\n" + payload, owner=("export",))


def header_checksum(header: dict) -> str:
    """SHA-256 of ``header`` without its ``header_sha256`` field, as canonical JSON (sorted keys,
    no spaces): an edited input shape, output or class name does not match it."""
    body = {key: value for key, value in header.items() if key != "header_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ExportedModel:
    """A model loaded by :func:`load_exported`: ``model(x) -> y`` at any batch size.

    Attributes: ``input_shape`` and ``dtype`` (what it takes), ``output`` (what it returns:
    ``"probabilities"``, ``"classes"``, ``"logits"`` or ``"values"``), ``task``, ``class_names``,
    ``platforms``, ``header`` (the whole header) and ``exported`` (the ``jax.export.Exported``).
    """

    def __init__(self, exported, header: dict, path: Path):
        self.exported, self.header, self.path = exported, header, path
        self.input_shape = shape_from_json(header["input"]["shape"])
        self.dtype = header["input"]["dtype"]
        self.output, self.task = header.get("output"), header.get("task")
        self.class_names = tuple(header.get("class_names") or ())
        self.platforms = tuple(exported.platforms)
        self._call = jax.jit(exported.call)

    def __call__(self, x):
        """Outputs for ``x`` of shape ``(n, *input_shape)``; numbers of any real dtype are cast
        to ``dtype``; a wrong shape or a non-numeric dtype is a clear error."""
        return self._call(check_input(x, self.input_shape, self.dtype, "exported model"))

    def __repr__(self) -> str:
        return (f"ExportedModel({str(self.path)!r}: input {self.input_shape} {self.dtype}, "
                f"output {self.output}, platforms {list(self.platforms)})")  # fmt: skip


def load_exported(path) -> ExportedModel:
    """The model :func:`export` wrote to ``path``, as a callable.

    Raises :class:`ExportError` for a missing file, a file that is not a jaxnet export, one
    written by a newer jaxnet, and a damaged one (checksum mismatch, unreadable payload).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        message = f"cannot read {path}: {error.strerror or error}"
        raise ExportError(message, ("load_exported",)) from None
    line, _, payload = data.partition(b"\n")
    try:
        header = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ExportError(
            f"{path} is not a jaxnet export file (written by jaxnet.export; an .onnx file runs "
            "with onnxruntime)",
            ("load_exported",),
        )
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ExportError(f"{path} is damaged: format_version is {version!r}", ("load_exported",))
    if version > FORMAT_VERSION:
        writer = (header.get("versions") or {}).get("jaxnet", "a newer jaxnet")
        raise ExportError(
            f"{path} was written by jaxnet {writer} with export format version {version}; this "
            f"jaxnet reads up to version {FORMAT_VERSION}: upgrade jaxnet",
            ("load_exported",),
        )
    if version >= 2 and header.get("header_sha256") != header_checksum(header):
        raise ExportError(
            f"{path} is damaged: its header does not match its header_sha256 (edited or "
            "corrupted after export)",
            ("load_exported",),
        )
    if len(payload) != header.get("bytes") or hashlib.sha256(payload).hexdigest() != header.get(
        "sha256"
    ):
        raise ExportError(
            f"{path} is damaged: its payload has {len(payload)} bytes and does not match the "
            f"checksum in its header ({header.get('bytes')} bytes)",
            ("load_exported",),
        )
    try:
        exported = jax.export.deserialize(bytearray(payload))
    except Exception as error:  # flatbuffers and jax raise various errors
        raise ExportError(
            f"{path}: jax {jax.__version__} cannot read the payload (written with jax "
            f"{(header.get('versions') or {}).get('jax')}): {type(error).__name__}: {error}",
            ("load_exported",),
        ) from None
    _check_header_input(path, header, exported)
    return ExportedModel(exported, header, path)


def _check_header_input(path: Path, header: dict, exported) -> None:
    """The header's input shape and dtype must be what the deserialized program takes."""
    try:
        input_shape, dtype = shape_from_json(header["input"]["shape"]), header["input"]["dtype"]
        said = [
            (tuple(spec.shape), np.dtype(spec.dtype).name)
            for spec in jax.tree.leaves(
                map_shapes(lambda shape: jax.ShapeDtypeStruct(shape, dtype), input_shape)
            )
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise ExportError(
            f"{path} is damaged: its header's input is unreadable ({type(error).__name__}: "
            f"{error})",
            ("load_exported",),
        ) from None
    takes = [(tuple(aval.shape[1:]), aval.dtype.name) for aval in exported.in_avals]
    if said != takes:
        raise ExportError(
            f"{path} is inconsistent: its header says the inputs are {said} but its program "
            f"takes {takes} (per example)",
            ("load_exported",),
        )
