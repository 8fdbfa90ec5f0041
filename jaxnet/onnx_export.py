"""A trained model as an ONNX file, through ``jax2onnx`` (the ``jaxnet-classic[onnx]`` extra).

The same inference pass as :func:`jaxnet.export` (a layer's outputs, a recipe's ``output``, or a
saved model with its preprocessing) is converted by ``jax2onnx`` with a symbolic batch
dimension ``"batch"``; the weights become initializers. The graph's input is ``"x"`` (one entry
per input for a model with a tuple or dict of inputs), its output is named after what it holds
(``"probabilities"``, ``"classes"``, ``"logits"``, ``"values"``), and the model's metadata
properties record the jaxnet version, the input shape and the class names.

Where ONNX (or jax2onnx) has no form for a layer, the error names the innermost layer of the
model's ``serial`` chain that fails on its own, e.g. ``export_onnx: cannot convert net/rnn_1
(RNN) to ONNX: Reverse scan is not supported``.

::

    jaxnet.export_onnx(saved_model, "digits.onnx")
    session = onnxruntime.InferenceSession("digits.onnx")
    probabilities = session.run(None, {"x": x.astype(np.float32)})[0]
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import jax

from jaxnet import checkpoint
from jaxnet.atomic import write_bytes
from jaxnet.core import Layer, apply_with_outputs
from jaxnet.exporting import ExportError, inference, params_and_path
from jaxnet.signature import map_shapes, shape_to_json

# Builders made by core.serial: their children run one after another.
SEQUENTIAL = ("serial", "mlp", "dense_autoencoder", "conv_autoencoder")
_EXTRA = "ONNX export needs the onnx extra: pip install 'jaxnet-classic[onnx]' (jax2onnx)"


def _to_onnx():
    try:
        from jax2onnx import to_onnx
    except ImportError as error:
        raise ImportError(f"{_EXTRA}; {error}") from None
    return to_onnx


def _convert(fn, input_shape, dtype: str, output_name: str):
    """The ONNX ModelProto of ``fn`` over inputs of ``input_shape`` with a symbolic batch."""
    leaves, treedef = jax.tree.flatten(
        map_shapes(lambda shape: ("batch", *shape), input_shape), is_leaf=_is_spec
    )
    if dtype != "float32":
        raise ExportError(f"ONNX export takes float32 inputs, got {dtype}", ("export_onnx",))

    def positional(*xs):
        return fn(jax.tree.unflatten(treedef, xs))

    names = _input_names(input_shape)
    to_onnx = _to_onnx()
    chatty = logging.getLogger("onnx_ir")  # warns about every folded constant's unknown type
    level = chatty.level
    chatty.setLevel(logging.ERROR)
    try:
        return to_onnx(
            positional, leaves, model_name="jaxnet", input_names=names, output_names=[output_name]
        )
    finally:
        chatty.setLevel(level)


def _is_spec(value) -> bool:
    return isinstance(value, tuple) and value[:1] == ("batch",)


def _input_names(input_shape) -> list[str]:
    paths = jax.tree_util.tree_flatten_with_path(
        map_shapes(lambda shape: 0, input_shape), is_leaf=lambda v: v == 0
    )[0]
    if len(paths) == 1 and not paths[0][0]:
        return ["x"]
    return ["x_" + "_".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
            for path, _ in paths]  # fmt: skip


def export_onnx(model, params=None, state=None, input_shape=None, path=None, *, output=None,
                dtype="float32") -> Path:  # fmt: skip
    """Write ``model``'s inference pass to ``path`` as ONNX; arguments as :func:`jaxnet.export`.

    Raises :class:`~jaxnet.exporting.ExportError` naming the layer ONNX cannot express,
    ``ImportError`` when ``jax2onnx`` is not installed, and :class:`~jaxnet.errors.WriteError`
    when the file cannot be written (the file at ``path`` is then unchanged).
    """
    params, path = params_and_path(model, params, path)
    if path is None:
        raise ExportError("path is required (the file to write)", ("export_onnx",))
    served = inference(model, params, state, input_shape, output=output, dtype=dtype,
                       owner="export_onnx")  # fmt: skip
    name = served.header["output"]
    try:
        proto = _convert(served.fn, served.input_shape, served.dtype, name)
    except (ExportError, ImportError):
        raise
    except Exception as error:  # jax2onnx raises what each plugin raises
        where, layer = _failing_layer(served, name)
        kind = layer.info.get("layer") or layer.name
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ExportError(
            f"cannot convert {'/'.join(where)} ({kind}) to ONNX: {type(error).__name__}: "
            f"{message[:300]}",
            ("export_onnx",),
        ) from None
    import onnx

    versions = checkpoint.versions()
    properties = {
        "jaxnet_version": versions["jaxnet"],
        "jax_version": versions["jax"],
        "input_shape": json.dumps(shape_to_json(served.input_shape)),
        "output": name,
        "class_names": json.dumps(served.header["class_names"]),
    }
    onnx.helper.set_model_props(proto, properties)
    return write_bytes(path, proto.SerializeToString(), owner=("export_onnx",))


def _failing_layer(served, output_name: str) -> tuple[tuple[str, ...], Layer]:
    """The path and layer of the innermost part of ``served.model`` that fails on its own:
    down ``serial`` chains (each child converted alone, on its input's shape); a layer of any
    other kind is named as a whole."""
    layer, params, state, shape = served.model, served.params, served.state, served.input_shape
    dtype, path = served.dtype, (served.model.name,)
    while layer.info.get("layer") in SEQUENTIAL:
        example = map_shapes(lambda s: jax.ShapeDtypeStruct((1, *s), dtype), shape)
        outputs = jax.eval_shape(partial(apply_with_outputs, layer, params, state), example)[2]
        for child_name, child in layer.info["children"].items():
            if _fails(child, params[child_name], state[child_name], shape, dtype, output_name):
                layer, params, state = child, params[child_name], state[child_name]
                path += (child_name,)
                break
            shape = jax.tree.map(lambda a: tuple(a.shape[1:]), outputs[child_name])
        else:
            break  # every child converts alone: the failure is in how they are combined
    return path, layer


def _fails(layer: Layer, params, state, input_shape, dtype: str, output_name: str) -> bool:
    try:
        _convert(lambda x: layer.apply(params, state, x)[0], input_shape, dtype, output_name)
    except Exception:
        return True
    return False
