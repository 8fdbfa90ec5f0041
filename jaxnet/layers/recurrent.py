"""Recurrent cells (simple RNN, GRU, LSTM) and the layers that run them over time.

A :class:`Cell` is one time step. Its input half (``x_t @ w_x + b``, every gate at once) does not
depend on the carry, so :func:`RNN` computes it for all time steps in one matrix product before the
``lax.scan``; only the recurrent half (``h @ w_h``) runs inside the loop.

Parameters are fused over gates, with the gate order of Flax and PyTorch (Keras's GRU orders its
gates z, r, h: convert Keras, Flax and PyTorch weights with :mod:`jaxnet.convert`):

========  ===========================  ==========================================================
cell      params                       Flax ``nn.*Cell`` equivalent (``u`` = units)
========  ===========================  ==========================================================
simple    ``w_x (in, u)``              ``i.kernel``;  ``w_h = h.kernel``;  ``b = i.bias``
GRU       ``w_x (in, 3u)`` r|z|n       ``ir/iz/in.kernel``; ``w_h``: ``hr/hz/hn.kernel``;
          ``b (3u,)``, ``b_hn (u,)``   ``b``: ``ir/iz/in.bias``; ``b_hn = hn.bias``
LSTM      ``w_x (in, 4u)`` i|f|g|o     ``ii/if/ig/io.kernel``; ``w_h``: ``hi/hf/hg/ho.kernel``;
          ``b (4u,)``                  ``b``: ``hi/hf/hg/ho.bias``
========  ===========================  ==========================================================

Inputs are batch-first ``(batch, time, features)``. Padded sequences: pass
``{"x": x, "mask": mask}`` (``mask`` ``(batch, time)``, true on real steps) or
``{"x": x, "lengths": lengths}``; a masked step leaves the carry unchanged and outputs zeros.

>>> layer = RNN(LSTMCell(32))
>>> out_shape, params, _ = layer.init(jax.random.key(0), (50, 3))
>>> out_shape, params["w_x"].shape
((32,), (3, 128))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnet import activations, random, registry
from jaxnet import init as initializers
from jaxnet.activations import sigmoid
from jaxnet.core import Layer, apply_child, combinator, constructor_info, init_child
from jaxnet.errors import ShapeError, check_int
from jaxnet.layers._checks import check_floating


class Cell(NamedTuple):
    """One recurrent step, as pure functions.

    - ``init(key, input_features) -> params``
    - ``project(params, x) -> x @ w_x + b``: the input half of every gate, any leading axes
    - ``step(params, carry, projected_t) -> (new_carry, output_t)``
    - ``initial_carry(batch_size, dtype) -> carry`` (zeros)

    ``info`` records facts (``gates``) and the constructor call, like a :class:`Layer`'s.
    """

    init: Callable
    project: Callable
    step: Callable
    initial_carry: Callable
    units: int
    name: str
    info: Mapping = {}

    def __repr__(self) -> str:
        return registry.constructor_repr(self)


def _cell_info(cell_type: str, gates: int, **args) -> dict:
    """A cell's ``info``: its gate count and its constructor call (initializers by name)."""
    for key in ("kernel_init", "recurrent_init"):
        args[key] = initializers.spec_of(args[key])
    args["dtype"] = jnp.dtype(args["dtype"]).name
    return {"gates": gates, **constructor_info(cell_type, **args)}


def cell_step(cell: Cell, params, carry, x_t):
    """One step on a raw input ``x_t`` ``(batch, features)``: ``(new_carry, output)``."""
    return cell.step(params, carry, cell.project(params, x_t))


def _dense_init(key, input_features, width, kernel_init, recurrent_init, units, dtype):
    k_x, k_h = random.split(key)
    w_x = initializers.get(kernel_init)(k_x, (input_features, width), dtype)
    # One orthogonal matrix per gate, as Keras/Flax initialise each gate's recurrent kernel.
    gate_keys = random.split(k_h, width // units)
    w_h = jnp.concatenate(
        [initializers.get(recurrent_init)(k, (units, units), dtype) for k in gate_keys], axis=1
    )
    return w_x, w_h


def project_inputs(params, x):
    """``x @ w_x + b`` for all time steps at once: the input half of every gate, before the scan."""
    return jnp.dot(x, params["w_x"]) + params["b"]


@registry.layer
def SimpleRNNCell(
    units: int,
    *,
    activation: str | Callable = jnp.tanh,
    kernel_init="glorot_uniform",
    recurrent_init="orthogonal",
    dtype=jnp.float32,
    name: str = "simple_rnn",
) -> Cell:
    """Elman cell: ``h' = activation(x @ w_x + h @ w_h + b)``; the output is ``h'``.

    ``activation`` is a function or an activation name (``"tanh"``, ``"relu"``).
    """
    check_int(name, "units", units, 1)
    activation_spec = activations.spec_of(activation)
    activation = activations.get(activation)

    def init(key, input_features):
        w_x, w_h = _dense_init(
            key, input_features, units, kernel_init, recurrent_init, units, dtype
        )
        return {"w_x": w_x, "w_h": w_h, "b": jnp.zeros((units,), dtype)}

    def step(params, h, projected):
        h = activation(projected + jnp.dot(h, params["w_h"]))
        return h, h

    def initial_carry(batch_size, dtype=jnp.float32):
        return jnp.zeros((batch_size, units), dtype)

    info = _cell_info(
        "SimpleRNNCell",
        1,
        units=units,
        activation=activation_spec,
        kernel_init=kernel_init,
        recurrent_init=recurrent_init,
        dtype=dtype,
        name=name,
    )
    return Cell(init, project_inputs, step, initial_carry, units, name, info)


@registry.layer
def GRUCell(
    units: int,
    *,
    kernel_init="glorot_uniform",
    recurrent_init="orthogonal",
    dtype=jnp.float32,
    name: str = "gru",
) -> Cell:
    """Gated recurrent unit (Cho et al., 2014), the 'reset after' form of Flax/PyTorch/cuDNN::

    r = sigmoid(x W_xr + b_r + h W_hr)          z = sigmoid(x W_xz + b_z + h W_hz)
    n = tanh(x W_xn + b_n + r * (h W_hn + b_hn))
    h' = (1 - z) * n + z * h
    """
    check_int(name, "units", units, 1)

    def init(key, input_features):
        w_x, w_h = _dense_init(
            key, input_features, 3 * units, kernel_init, recurrent_init, units, dtype
        )
        return {
            "w_x": w_x,
            "w_h": w_h,
            "b": jnp.zeros((3 * units,), dtype),
            "b_hn": jnp.zeros((units,), dtype),
        }

    def step(params, h, projected):
        x_r, x_z, x_n = jnp.split(projected, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(jnp.dot(h, params["w_h"]), 3, axis=-1)
        r = sigmoid(x_r + h_r)
        z = sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * (h_n + params["b_hn"]))
        h = (1.0 - z) * n + z * h
        return h, h

    def initial_carry(batch_size, dtype=jnp.float32):
        return jnp.zeros((batch_size, units), dtype)

    info = _cell_info(
        "GRUCell",
        3,
        units=units,
        kernel_init=kernel_init,
        recurrent_init=recurrent_init,
        dtype=dtype,
        name=name,
    )
    return Cell(init, project_inputs, step, initial_carry, units, name, info)


@registry.layer
def LSTMCell(
    units: int,
    *,
    kernel_init="glorot_uniform",
    recurrent_init="orthogonal",
    unit_forget_bias: bool = True,
    dtype=jnp.float32,
    name: str = "lstm",
) -> Cell:
    """Long short-term memory (Hochreiter & Schmidhuber, 1997); carry ``(c, h)`` as in Flax::

        i, f, o = sigmoid(x W_x + h W_h + b)[i|f|o]     g = tanh(x W_xg + h W_hg + b_g)
        c' = f * c + i * g                             h' = o * tanh(c')

    ``unit_forget_bias`` starts the forget-gate bias at 1 (Keras' default; Jozefowicz et al., 2015)
    so the cell remembers by default early in training.
    """
    check_int(name, "units", units, 1)

    def init(key, input_features):
        w_x, w_h = _dense_init(
            key, input_features, 4 * units, kernel_init, recurrent_init, units, dtype
        )
        b = jnp.zeros((4 * units,), dtype)
        if unit_forget_bias:
            b = b.at[units : 2 * units].set(1.0)
        return {"w_x": w_x, "w_h": w_h, "b": b}

    def step(params, carry, projected):
        c, h = carry
        i, f, g, o = jnp.split(projected + jnp.dot(h, params["w_h"]), 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * jnp.tanh(g)
        h = sigmoid(o) * jnp.tanh(c)
        return (c, h), h

    def initial_carry(batch_size, dtype=jnp.float32):
        zeros = jnp.zeros((batch_size, units), dtype)
        return zeros, zeros

    info = _cell_info(
        "LSTMCell",
        4,
        units=units,
        kernel_init=kernel_init,
        recurrent_init=recurrent_init,
        unit_forget_bias=unit_forget_bias,
        dtype=dtype,
        name=name,
    )
    return Cell(init, project_inputs, step, initial_carry, units, name, info)


def _split_input(name: str, inputs):
    """``x`` or ``{"x", "mask" | "lengths"}`` -> ``(x, mask or None)``, shapes checked."""
    if not isinstance(inputs, Mapping):
        x, mask = inputs, None
    else:
        if "x" not in inputs:
            raise ShapeError(f"a dict input needs an 'x' entry, got keys {sorted(inputs)}", (name,))
        x, mask = inputs["x"], inputs.get("mask")
        if "lengths" in inputs:
            lengths = jnp.asarray(inputs["lengths"])
            if lengths.shape != x.shape[:1]:
                raise ShapeError(
                    f"expected lengths of shape {tuple(x.shape[:1])} (one per sequence), "
                    f"got shape {tuple(lengths.shape)}",
                    (name,),
                )
            # step i is real when i < length: compared as floats for float lengths (fit passes
            # them as float32), else as int32
            floating = jnp.issubdtype(lengths.dtype, jnp.floating)
            steps = jnp.arange(x.shape[1], dtype=lengths.dtype if floating else jnp.int32)
            mask = steps < lengths[:, None].astype(steps.dtype)
    check_floating(name, x)
    if x.ndim != 3:
        raise ShapeError(
            f"expected inputs of shape (batch, time, features), got shape {tuple(x.shape)}", (name,)
        )
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != x.shape[:2]:
            raise ShapeError(
                f"expected a mask of shape (batch, time) = {tuple(x.shape[:2])}, "
                f"got shape {tuple(mask.shape)}",
                (name,),
            )
        mask = mask.astype(bool)  # fit() turns a boolean mask inside x into floats
    return x, mask


def _sequence_shape(name: str, input_shape):
    """The ``(time, features)`` part of an input shape, which may be a dict of shapes."""
    if isinstance(input_shape, Mapping):
        if "x" not in input_shape:
            raise ShapeError(
                f"a dict input needs an 'x' entry, got keys {sorted(input_shape)}", (name,)
            )
        shape = tuple(input_shape["x"])
        for key in ("mask", "lengths"):
            if key in input_shape:
                expected = shape[:1] if key == "mask" else ()
                if tuple(input_shape[key]) != expected:
                    raise ShapeError(
                        f"expected a per-example {key} of shape {expected} for sequences of shape "
                        f"{shape}, got {tuple(input_shape[key])}",
                        (name,),
                    )
    else:
        shape = tuple(input_shape)
    if len(shape) != 2:
        raise ShapeError(
            f"expected inputs of shape (batch, time, features), got per-example shape {shape}",
            (name,),
        )
    return shape


def scan_cell(cell: Cell, params, x, mask=None, *, reverse: bool = False):
    """Run ``cell`` over ``x`` ``(batch, time, features)``: ``(final_carry, outputs, last_output)``.

    ``outputs`` is ``(batch, time, units)``, aligned with the input time axis even when
    ``reverse`` (then step ``t`` has seen ``x[:, t:]``). Where ``mask`` is false the carry is
    kept and the output is zero; ``last_output`` is the output of the last real step processed.
    """
    projected = jnp.swapaxes(cell.project(params, x), 0, 1)  # (time, batch, gates * units)
    carry = cell.initial_carry(x.shape[0], projected.dtype)
    last = jnp.zeros((x.shape[0], cell.units), projected.dtype)
    if mask is None:  # every step is real: no selects, the last output is the last step's

        def body(loop, projected_t):
            carry, y = cell.step(params, loop[0], projected_t)
            return (carry, y), y

        (carry, last), outputs = jax.lax.scan(body, (carry, last), projected, reverse=reverse)
        return carry, jnp.swapaxes(outputs, 0, 1), last
    mask_t = jnp.swapaxes(mask, 0, 1)[..., None]  # (time, batch, 1)

    def masked_body(loop, inputs):
        carry, last = loop
        projected_t, keep = inputs
        new_carry, y = cell.step(params, carry, projected_t)
        carry = jax.tree.map(lambda new, old: jnp.where(keep, new, old), new_carry, carry)
        return (carry, jnp.where(keep, y, last)), jnp.where(keep, y, 0.0)

    (carry, last), outputs = jax.lax.scan(
        masked_body, (carry, last), (projected, mask_t), reverse=reverse
    )
    return carry, jnp.swapaxes(outputs, 0, 1), last


@registry.layer
def RNN(
    cell: Cell, *, return_sequences: bool = False, reverse: bool = False, name: str | None = None
) -> Layer:
    """Run ``cell`` over the time axis with ``lax.scan``.

    Input ``(batch, time, features)`` or ``{"x": ..., "mask": (batch, time)}`` /
    ``{"x": ..., "lengths": (batch,)}``. Output ``(batch, units)``: the output at each sequence's
    last real step; or, with ``return_sequences``, ``(batch, time, units)`` (zeros at padded
    steps). ``reverse`` reads the sequence from the end. Params are the cell's (see the module
    table); the carry starts at zeros for every batch.

    >>> from jaxnet import Dense, serial
    >>> model = serial(RNN(GRUCell(32), return_sequences=True), RNN(GRUCell(32)), Dense(1))
    >>> model.init(jax.random.key(0), (50, 3))[0]
    (1,)
    """
    layer_name = name or cell.name

    def init(key, input_shape):
        time, features = _sequence_shape(layer_name, input_shape)
        params = cell.init(key, features)
        return ((time, cell.units) if return_sequences else (cell.units,)), params, {}

    def apply(params, state, inputs, *, key=None, train=False):
        del key, train
        x, mask = _split_input(layer_name, inputs)
        expected = params["w_x"].shape[0]
        if x.shape[-1] != expected:
            raise ShapeError(
                f"expected inputs with {expected} features on the last axis, "
                f"got shape {tuple(x.shape)}",
                (layer_name,),
            )
        _, outputs, last = scan_cell(cell, params, x, mask, reverse=reverse)
        return (outputs if return_sequences else last), state

    info = {
        "units": cell.units,
        "cell": cell.name,
        "return_sequences": return_sequences,
        "reverse": reverse,
        **constructor_info(
            "RNN", cell=cell, return_sequences=return_sequences, reverse=reverse, name=name
        ),
    }
    return Layer(init, apply, layer_name, info)


@registry.layer
def Bidirectional(
    cell_fw: Cell, cell_bw: Cell, *, return_sequences: bool = False, name: str = "bidirectional"
) -> Layer:
    """Two RNNs, one reading forwards and one backwards; outputs concatenated ``[fw, bw]``.

    Params ``{"forward": ..., "backward": ...}`` (the children ``RNN`` layers, keys
    ``fold_in(key, 0)`` and ``fold_in(key, 1)``). Without ``return_sequences`` the output is
    ``[fw at the last real step, bw at step 0]``, i.e. each direction's summary of the whole
    sequence; with it, ``(batch, time, units_fw + units_bw)`` aligned with the input.
    """
    children = {
        "forward": RNN(cell_fw, return_sequences=return_sequences, name="forward"),
        "backward": RNN(cell_bw, return_sequences=return_sequences, reverse=True, name="backward"),
    }

    def init(key, input_shape):
        params, shapes = {}, []
        for i, (child_name, child) in enumerate(children.items()):
            shape, params[child_name], _ = init_child(name, child_name, i, child, key, input_shape)
            shapes.append(shape)
        (*time, fw_units), (*_, bw_units) = shapes
        return (*time, fw_units + bw_units), params, {}

    def apply_with_outputs(params, state, inputs, *, key=None, train=False):
        ys, outputs = [], {}
        for i, (child_name, child) in enumerate(children.items()):
            y, _ = apply_child(
                name,
                child_name,
                i,
                child,
                params[child_name],
                {},
                inputs,
                key=key,
                train=train,
                outputs=outputs,
            )
            ys.append(y)
        return jnp.concatenate(ys, axis=-1), state, outputs

    info = {
        "units": cell_fw.units + cell_bw.units,
        "cells": (cell_fw.name, cell_bw.name),
        "return_sequences": return_sequences,
        "children": children,
        **constructor_info(
            "Bidirectional",
            cell_fw=cell_fw,
            cell_bw=cell_bw,
            return_sequences=return_sequences,
            name=name,
        ),
    }
    return combinator(init, apply_with_outputs, name, info)
