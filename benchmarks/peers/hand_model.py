"""A plain-JAX model for any workload: params as a list of dicts, ``apply`` a loop over layers.

What a user writes without a library; shared by the hand-written peers and workload (d).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from peers.spec import ADAM, LEARNING_RATE, Workload, require

SUPPORTED = {"dense", "conv", "maxpool", "flatten", "gru"}


def init(workload: Workload, key):
    require(workload, SUPPORTED, "the hand-written model")
    params, shape = [], workload.input_shape
    for i, layer in enumerate(workload.layers):
        k = jax.random.fold_in(key, i)
        kind = layer[0]
        if kind == "dense":
            fan_in = shape[-1]
            params.append(
                {
                    "w": jax.random.normal(k, (fan_in, layer[1])) * np.sqrt(2 / fan_in),
                    "b": jnp.zeros(layer[1]),
                }
            )
            shape = (*shape[:-1], layer[1])
        elif kind == "conv":
            _, features, kernel, _ = layer
            fan_in = kernel * kernel * shape[-1]
            w = jax.random.normal(k, (kernel, kernel, shape[-1], features)) * np.sqrt(2 / fan_in)
            params.append({"w": w, "b": jnp.zeros(features)})
            shape = (*shape[:-1], features)
        elif kind == "maxpool":
            params.append({})
            shape = (shape[0] // layer[1], shape[1] // layer[1], shape[2])
        elif kind == "flatten":
            params.append({})
            shape = (int(np.prod(shape)),)
        elif kind == "gru":
            units, features = layer[1], shape[-1]
            kx, kh = jax.random.split(k)
            params.append(
                {
                    "w_x": jax.random.normal(kx, (features, 3 * units)) / np.sqrt(features),
                    "w_h": jax.random.normal(kh, (units, 3 * units)) / np.sqrt(units),
                    "b": jnp.zeros(3 * units),
                    "b_hn": jnp.zeros(units),
                }
            )
            shape = (units,)
    return params


def _gru(p, x):
    projected = jnp.einsum("btf,fg->tbg", x, p["w_x"]) + p["b"]  # all time steps at once

    def step(h, xp):
        x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(h @ p["w_h"], 3, axis=-1)
        r, z = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * (h_n + p["b_hn"]))
        return (1 - z) * n + z * h, None

    h0 = jnp.zeros((x.shape[0], p["w_h"].shape[0]), x.dtype)
    return jax.lax.scan(step, h0, projected)[0]


def apply(workload: Workload, params, x):
    for layer, p in zip(workload.layers, params, strict=True):
        kind = layer[0]
        if kind == "dense":
            x = x @ p["w"] + p["b"]
        elif kind == "conv":
            x = (
                jax.lax.conv_general_dilated(
                    x, p["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
                )
                + p["b"]
            )
        elif kind == "maxpool":
            w = layer[1]
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, w, w, 1), (1, w, w, 1), "VALID")
        elif kind == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif kind == "gru":
            x = _gru(p, x)
        if layer[-1] == "relu" and kind in ("dense", "conv"):
            x = jax.nn.relu(x)
    return x


def optimizer():
    return optax.adam(LEARNING_RATE, **ADAM)


def make_step(workload: Workload):
    """``step((params, opt_state), (x, y)) -> (params, opt_state)``: one Adam step, not jitted."""
    opt = optimizer()

    def loss(params, x, y):
        logits = apply(workload, params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(carry, batch):
        params, opt_state = carry
        grads = jax.grad(loss)(params, *batch)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


def make_scan_epoch(workload: Workload):
    """``epoch(carry, x, y, order) -> carry``: gather, forward, backward, update in one scan."""
    step = make_step(workload)
    steps, batch = workload.steps, workload.batch

    def epoch(carry, x, y, order):
        def body(carry, index):
            return step(carry, (x[index], y[index])), None

        return jax.lax.scan(body, carry, order[: steps * batch].reshape(steps, batch))[0]

    return epoch


def initial_carry(workload: Workload, seed: int = 0):
    params = init(workload, jax.random.key(seed))
    return params, optimizer().init(params)
