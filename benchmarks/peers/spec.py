"""Workloads as data: the layers, the data, the batch size; and what every peer shares.

A workload's ``layers`` is a tuple of plain tuples that each peer translates into its own API:

- ``("dense", units, activation)`` with activation ``"relu"`` or ``None``;
- ``("conv", features, kernel, activation)``: 2-D, stride 1, ``SAME`` padding, channels-last;
- ``("maxpool", window)``; ``("flatten",)``;
- ``("gru", units)``: a GRU over ``(batch, time, features)``, returning the last hidden state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

LEARNING_RATE = 1e-3
ADAM = {"b1": 0.9, "b2": 0.999, "eps": 1e-8}


class Skip(Exception):
    """The peer cannot run this workload; the message says why (shown in the table)."""


class Workload(NamedTuple):
    key: str
    title: str
    layers: tuple
    x: np.ndarray  # float32, (n, *input_shape); n is a multiple of batch
    y: np.ndarray  # int32 class labels, (n,)
    batch: int
    classes: int = 10

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def steps(self) -> int:
        return len(self.x) // self.batch

    def kinds(self) -> set[str]:
        return {layer[0] for layer in self.layers}


class Runner(NamedTuple):
    """``epoch_times(n)`` trains ``n`` more epochs and returns each one's wall time (seconds).

    The first call compiles (it is the warm-up); every epoch blocks until its result is ready.
    """

    epoch_times: Callable[[int], list[float]]
    note: str = ""


def timed_epochs(run_epoch: Callable[[], None]) -> Callable[[int], list[float]]:
    """``epoch_times`` from a function that trains one epoch and blocks."""

    def epoch_times(n: int) -> list[float]:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            run_epoch()
            times.append(time.perf_counter() - start)
        return times

    return epoch_times


def numpy_batches(workload: Workload, rng: np.random.Generator):
    """One shuffled epoch as a list of ``(x, y)`` NumPy batches (what a data loader hands over)."""
    order = rng.permutation(len(workload.x))
    xs = workload.x[order].reshape(workload.steps, workload.batch, *workload.input_shape)
    ys = workload.y[order].reshape(workload.steps, workload.batch)
    return list(zip(xs, ys, strict=True))


def require(workload: Workload, supported: set[str], library: str) -> None:
    missing = workload.kinds() - supported
    if missing:
        raise Skip(f"{library} has no {', '.join(sorted(missing))} layer")


def weight_uses(workload: Workload) -> int:
    """Multiply-adds of one example's forward pass, counting biases (= params for an MLP)."""
    shape = workload.input_shape
    uses = 0
    for layer in workload.layers:
        kind = layer[0]
        if kind == "dense":
            uses += (shape[-1] + 1) * layer[1]
            shape = (*shape[:-1], layer[1])
        elif kind == "conv":
            _, features, kernel, _ = layer
            height, width, channels = shape
            uses += (kernel * kernel * channels + 1) * features * height * width
            shape = (height, width, features)
        elif kind == "maxpool":
            shape = (shape[0] // layer[1], shape[1] // layer[1], shape[2])
        elif kind == "flatten":
            shape = (int(np.prod(shape)),)
        elif kind == "gru":
            time_steps, features = shape
            units = layer[1]
            uses += time_steps * (3 * units * (features + units) + 4 * units)
            shape = (units,)
    return uses


def flops_per_step(workload: Workload) -> float:
    """Training FLOPs of one step: ``6 * weight_uses * batch`` (forward 2, backward 4 per use)."""
    return 6.0 * weight_uses(workload) * workload.batch


def optax_step_runner(apply, params, workload: Workload) -> Runner:
    """The usual jitted optax step, ``logits = apply(params, x)``, fed NumPy batches from Python.

    Shared by the peers whose library only builds the model (Flax Linen, Haiku, stax).
    """
    import jax
    import optax

    tx = optax.adam(LEARNING_RATE, **ADAM)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss(params):
            return optax.softmax_cross_entropy_with_integer_labels(apply(params, x), y).mean()

        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    state = {"carry": (params, tx.init(params))}
    rng = np.random.default_rng(0)

    def run_epoch():
        params, opt_state = state["carry"]
        for x, y in numpy_batches(workload, rng):
            params, opt_state = step(params, opt_state, x, y)
        state["carry"] = jax.block_until_ready((params, opt_state))

    return Runner(timed_epochs(run_epoch))
