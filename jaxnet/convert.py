"""Weight converters: jaxnet <-> Flax (``flax.linen``) for every layer with parameters, and
jaxnet <-> Keras 3 / PyTorch for the recurrent cells.

jaxnet fuses a recurrent cell's gates into one matrix in **Flax's and PyTorch's gate order**:
GRU ``r, z, n``, LSTM ``i, f, g, o``. Keras's GRU orders them ``z, r, h``, so copying Keras GRU
weights column for column is silently wrong: use :func:`from_keras`. The GRU is the "reset
after" form (Keras's ``reset_after=True``, its default; PyTorch's and Flax's only form); a
Keras GRU with ``reset_after=False`` computes something else and is refused.

=============  ==========================================  ====================================
jaxnet         Flax variables                              Flax module
=============  ==========================================  ====================================
Dense, Conv*   ``{"kernel": w, "bias": b}`` (same layout)  ``nn.Dense``, ``nn.Conv``
BatchNorm      params ``scale``/``bias``, batch_stats      ``nn.BatchNorm``
               ``mean``/``var`` (jaxnet's state)
LayerNorm      ``{"scale", "bias"}``                       ``nn.LayerNorm``
cells          one Dense per gate (``ir``, ``hz``, ...)    ``nn.SimpleCell``, ``GRUCell``, ...
RNN(cell)      ``{"cell": cell}``                          ``nn.RNN(cell)``
Bidirectional  ``forward_rnn``/``backward_rnn``            ``nn.Bidirectional(nn.RNN, nn.RNN)``
serial         ``{"layers_i": child i}``                   ``nn.Sequential`` of the same layers
=============  ==========================================  ====================================

Keras (``layer.get_weights()`` / ``set_weights``): ``[kernel, recurrent_kernel, bias]``; a GRU's
bias is ``(2, 3u)`` (input and recurrent biases). PyTorch (``state_dict``): ``weight_ih``,
``weight_hh`` (transposed: ``(gates * u, in)``), ``bias_ih``, ``bias_hh``, with the suffix
``_l0`` for the first layer of ``nn.GRU``/``nn.LSTM``/``nn.RNN`` and none for ``nn.*Cell``. Both
keep two biases where jaxnet keeps one per gate (a GRU's candidate keeps both: ``b`` and
``b_hn``): going to jaxnet adds them, coming from jaxnet puts the whole bias on the input side.

::

    variables = to_flax(layer, params, state)     # then flax_module.apply(variables, x)
    params = from_keras(GRUCell(64), keras_gru.get_weights())
    torch_gru.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch(cell, params).items()})
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxnet.core import Layer
from jaxnet.errors import ConfigError, ShapeError
from jaxnet.layers.recurrent import Cell

_CELLS = ("SimpleRNNCell", "GRUCell", "LSTMCell")
_GATES = {"SimpleRNNCell": "", "GRUCell": "rzn", "LSTMCell": "ifgo"}


def _kind(layer) -> str:
    return layer.info.get("layer", "") if isinstance(layer, Layer | Cell) else type(layer).__name__


def _unsupported(layer, what: str) -> ConfigError:
    return ConfigError(
        f"{what} cannot convert a {_kind(layer) or type(layer).__name__!r} layer",
        (getattr(layer, "name", what),),
    )


# ----------------------------------------------------------------------------- Flax


def to_flax(layer: Layer | Cell, params, state=None) -> dict:
    """jaxnet ``params`` (and ``state``) of ``layer`` as the variables of the matching
    ``flax.linen`` module: ``{"params": ...}``, plus ``"batch_stats"`` for BatchNorm."""
    kind = _kind(layer)
    if kind in ("Dense", "Conv", "Conv1D", "Conv2D", "Conv3D"):
        return {
            "params": {"kernel": params["w"], **({"bias": params["b"]} if "b" in params else {})}
        }
    if kind == "BatchNorm":
        if state is None:
            raise ConfigError(
                "to_flax needs BatchNorm's state (running mean and var)", (layer.name,)
            )
        return {"params": dict(params), "batch_stats": dict(state)}
    if kind == "LayerNorm":
        return {"params": dict(params)}
    if kind in _CELLS:
        return {"params": _cell_to_flax(kind, params)}
    if kind == "RNN":
        return {"params": {"cell": _cell_to_flax(_kind(layer.info["args"]["cell"]), params)}}
    if kind == "Bidirectional":
        args = layer.info["args"]
        return {"params": {
            "forward_rnn": {"cell": _cell_to_flax(_kind(args["cell_fw"]), params["forward"])},
            "backward_rnn": {"cell": _cell_to_flax(_kind(args["cell_bw"]), params["backward"])},
        }}  # fmt: skip
    if kind == "serial":
        variables: dict = {}
        for i, (name, child) in enumerate(layer.info["children"].items()):
            if not _has_arrays(params[name]) and not _has_arrays((state or {}).get(name)):
                continue
            child_state = None if state is None else state[name]
            for collection, value in to_flax(child, params[name], child_state).items():
                variables.setdefault(collection, {})[f"layers_{i}"] = value
        return variables
    if not _has_arrays(params) and not _has_arrays(state):
        return {}
    raise _unsupported(layer, "to_flax")


def from_flax(layer: Layer | Cell, variables) -> tuple[dict, dict]:
    """``(params, state)`` for ``layer`` from the variables of the matching ``flax.linen`` module
    (:func:`to_flax`'s inverse); for a cell, ``state`` is ``{}``."""
    kind, flax_params = _kind(layer), variables.get("params", {})
    if kind in ("Dense", "Conv", "Conv1D", "Conv2D", "Conv3D"):
        params = {"w": jnp.asarray(flax_params["kernel"])}
        if "bias" in flax_params:
            params["b"] = jnp.asarray(flax_params["bias"])
        return params, {}
    if kind == "BatchNorm":
        stats = variables["batch_stats"]
        return _arrays(flax_params), {
            "mean": jnp.asarray(stats["mean"]),
            "var": jnp.asarray(stats["var"]),
        }
    if kind == "LayerNorm":
        return _arrays(flax_params), {}
    if kind in _CELLS:
        return _cell_from_flax(kind, flax_params), {}
    if kind == "RNN":
        return _cell_from_flax(_kind(layer.info["args"]["cell"]), flax_params["cell"]), {}
    if kind == "Bidirectional":
        args, fw, bw = layer.info["args"], flax_params["forward_rnn"], flax_params["backward_rnn"]
        return {
            "forward": _cell_from_flax(_kind(args["cell_fw"]), fw["cell"]),
            "backward": _cell_from_flax(_kind(args["cell_bw"]), bw["cell"]),
        }, {}
    if kind == "serial":
        params, state = {}, {}
        for i, (name, child) in enumerate(layer.info["children"].items()):
            child_variables = {
                c: v[f"layers_{i}"] for c, v in variables.items() if f"layers_{i}" in v
            }
            params[name], state[name] = (
                from_flax(child, child_variables) if child_variables else ({}, {})
            )
        return params, state
    raise _unsupported(layer, "from_flax")


def _cell_to_flax(kind: str, p) -> dict:
    if kind == "SimpleRNNCell":
        return {"i": {"kernel": p["w_x"], "bias": p["b"]}, "h": {"kernel": p["w_h"]}}
    w_x, w_h, b = (_split(p[name], len(_GATES[kind])) for name in ("w_x", "w_h", "b"))
    out = {}
    for i, gate in enumerate(_GATES[kind]):
        if kind == "GRUCell":  # input Dense layers carry the bias; hn has its own
            out[f"i{gate}"] = {"kernel": w_x[i], "bias": b[i]}
            out[f"h{gate}"] = {"kernel": w_h[i], **({"bias": p["b_hn"]} if gate == "n" else {})}
        else:  # LSTM: the recurrent Dense layers carry the bias
            out[f"i{gate}"] = {"kernel": w_x[i]}
            out[f"h{gate}"] = {"kernel": w_h[i], "bias": b[i]}
    return out


def _cell_from_flax(kind: str, f) -> dict:
    if kind == "SimpleRNNCell":
        return _arrays({"w_x": f["i"]["kernel"], "w_h": f["h"]["kernel"], "b": f["i"]["bias"]})
    gates = _GATES[kind]
    bias_side = "i" if kind == "GRUCell" else "h"
    params = {
        "w_x": np.concatenate([f[f"i{g}"]["kernel"] for g in gates], axis=1),
        "w_h": np.concatenate([f[f"h{g}"]["kernel"] for g in gates], axis=1),
        "b": np.concatenate([f[f"{bias_side}{g}"]["bias"] for g in gates]),
    }
    if kind == "GRUCell":
        params["b_hn"] = f["hn"]["bias"]
    return _arrays(params)


# ----------------------------------------------------------------------------- Keras and PyTorch


def _cell_of(layer: Layer | Cell, what: str) -> Cell:
    """The cell of a cell or of ``RNN(cell)``."""
    if _kind(layer) in _CELLS:
        return layer
    if _kind(layer) == "RNN":
        return layer.info["args"]["cell"]
    raise ConfigError(
        f"{what} converts a recurrent cell (SimpleRNNCell, GRUCell, LSTMCell) or RNN(cell), "
        f"got {_kind(layer) or type(layer).__name__!r}",
        (getattr(layer, "name", what),),
    )


def to_keras(layer: Layer | Cell, params) -> list[np.ndarray]:
    """A jaxnet cell's (or ``RNN(cell)``'s) params as the weights of the matching Keras 3 layer
    (``SimpleRNN``, ``GRU(reset_after=True)``, ``LSTM``), for ``keras_layer.set_weights``."""
    cell = _cell_of(layer, "to_keras")
    kind, p = _kind(cell), {k: np.asarray(v) for k, v in params.items()}
    if kind != "GRUCell":
        return [p["w_x"], p["w_h"], p["b"]]
    zrn = [1, 0, 2]  # Keras's gate order z, r, h from jaxnet's r, z, n
    kernel, recurrent, bias = (_reorder(p[n], zrn) for n in ("w_x", "w_h", "b"))
    recurrent_bias = np.concatenate([np.zeros_like(p["b_hn"])] * 2 + [p["b_hn"]])
    return [kernel, recurrent, np.stack([bias, recurrent_bias])]


def from_keras(layer: Layer | Cell, weights) -> dict:
    """jaxnet params for a cell (or ``RNN(cell)``) from a Keras 3 ``SimpleRNN``/``GRU``/``LSTM``
    layer's ``get_weights()``: ``[kernel, recurrent_kernel, bias]``."""
    cell = _cell_of(layer, "from_keras")
    kind = _kind(cell)
    if len(weights) != 3:
        raise ShapeError(
            f"expected Keras weights [kernel, recurrent_kernel, bias], got {len(weights)} arrays",
            (cell.name,),
        )
    kernel, recurrent, bias = (np.asarray(w) for w in weights)
    _check_width(cell, kind, kernel, recurrent, "Keras")
    if kind != "GRUCell":
        return _arrays({"w_x": kernel, "w_h": recurrent, "b": bias})
    if bias.shape != (2, kernel.shape[1]):
        raise ConfigError(
            f"expected a GRU bias of shape (2, {kernel.shape[1]}) (reset_after=True), got "
            f"{bias.shape}: a Keras GRU with reset_after=False applies the reset gate before the "
            "recurrent matrix product, which jaxnet's GRUCell (Flax's and PyTorch's form) cannot "
            "represent",
            (cell.name,),
        )
    rzn = [1, 0, 2]  # jaxnet's r, z, n from Keras's z, r, h
    input_bias, recurrent_bias = _split(bias[0], 3), _split(bias[1], 3)
    return _arrays({
        "w_x": _reorder(kernel, rzn),
        "w_h": _reorder(recurrent, rzn),
        "b": np.concatenate([input_bias[1] + recurrent_bias[1], input_bias[0] + recurrent_bias[0],
                             input_bias[2]]),
        "b_hn": recurrent_bias[2],
    })  # fmt: skip


def to_torch(layer: Layer | Cell, params, suffix: str = "_l0") -> dict[str, np.ndarray]:
    """A jaxnet cell's (or ``RNN(cell)``'s) params as a PyTorch ``state_dict`` (NumPy arrays:
    ``torch.from_numpy`` each) of ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (``suffix="_l0"``, one layer)
    or ``nn.RNNCell``/``GRUCell``/``LSTMCell`` (``suffix=""``)."""
    cell = _cell_of(layer, "to_torch")
    p = {k: np.asarray(v) for k, v in params.items()}
    bias_hh = np.zeros_like(p["b"])
    if _kind(cell) == "GRUCell":
        bias_hh[2 * cell.units :] = p["b_hn"]
    arrays = {
        "weight_ih": p["w_x"].T,
        "weight_hh": p["w_h"].T,
        "bias_ih": p["b"],
        "bias_hh": bias_hh,
    }
    return {name + suffix: np.ascontiguousarray(value) for name, value in arrays.items()}


def from_torch(layer: Layer | Cell, state_dict) -> dict:
    """jaxnet params for a cell (or ``RNN(cell)``) from a PyTorch ``state_dict`` of
    ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (first layer, ``..._l0``) or ``nn.*Cell`` (tensors or
    arrays)."""
    cell = _cell_of(layer, "from_torch")
    kind = _kind(cell)
    suffix = "_l0" if "weight_ih_l0" in state_dict else ""
    try:
        w_ih, w_hh, b_ih, b_hh = (
            np.asarray(_numpy(state_dict[name + suffix]))
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
    except KeyError as error:
        raise ConfigError(
            f"the PyTorch state_dict has no {error.args[0]!r}; its keys: {sorted(state_dict)}",
            (cell.name,),
        ) from None
    _check_width(cell, kind, w_ih.T, w_hh.T, "PyTorch")
    if kind != "GRUCell":
        return _arrays({"w_x": w_ih.T, "w_h": w_hh.T, "b": b_ih + b_hh})
    u = cell.units
    b = np.concatenate([b_ih[: 2 * u] + b_hh[: 2 * u], b_ih[2 * u :]])
    return _arrays({"w_x": w_ih.T, "w_h": w_hh.T, "b": b, "b_hn": b_hh[2 * u :]})


# ----------------------------------------------------------------------------- helpers


def _split(a, parts: int) -> list:
    return jnp.split(a, parts, axis=-1) if isinstance(a, jnp.ndarray) else np.split(a, parts, -1)


def _reorder(a: np.ndarray, order) -> np.ndarray:
    blocks = np.split(a, 3, axis=-1)
    return np.concatenate([blocks[i] for i in order], axis=-1)


def _arrays(tree: dict) -> dict:
    return {k: jnp.asarray(_numpy(v)) for k, v in tree.items()}


def _numpy(value):
    """A NumPy array from an array, a jax array or a (CPU) torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _has_arrays(tree) -> bool:
    if isinstance(tree, dict):
        return any(_has_arrays(v) for v in tree.values())
    return tree is not None


def _check_width(cell: Cell, kind: str, kernel, recurrent, source: str) -> None:
    gates = max(len(_GATES[kind]), 1)
    width = gates * cell.units
    if kernel.ndim != 2 or kernel.shape[1] != width or recurrent.shape != (cell.units, width):
        raise ShapeError(
            f"{source} weights do not fit a {kind}({cell.units}): expected an input kernel "
            f"(features, {width}) and a recurrent kernel ({cell.units}, {width}) (jaxnet "
            f"layout), got {tuple(kernel.shape)} and {tuple(recurrent.shape)}",
            (cell.name,),
        )


__all__ = ["from_flax", "from_keras", "from_torch", "to_flax", "to_keras", "to_torch"]
