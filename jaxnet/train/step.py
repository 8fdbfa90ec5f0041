"""Pure training steps: one step, and one whole epoch as a single ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.core import Layer, apply_with_outputs, init_model
from jaxnet.optim import apply_updates


class TrainState(NamedTuple):
    """Everything that changes during training, as one pytree.

    ``key`` is fixed for the whole run: the step's key is :func:`step_key` and the epoch's shuffle
    key :func:`shuffle_key`, both functions of ``key`` and a counter, so a run resumed at any step
    replays exactly.
    """

    params: Any
    state: Any
    opt_state: Any
    step: jax.Array  # int32 scalar: steps taken so far
    key: jax.Array


def step_key(ts: TrainState):
    """The key of step ``ts.step`` (for dropout and other layer randomness)."""
    return jax.random.fold_in(jax.random.fold_in(ts.key, 0), ts.step)


def shuffle_key(ts: TrainState, epoch):
    """The key that shuffles the data in ``epoch``."""
    return jax.random.fold_in(jax.random.fold_in(ts.key, 1), epoch)


def create_train_state(model: Layer, optimizer, input_shape, key) -> TrainState:
    """Initialise params/state from ``key`` and the optimizer state from the params."""
    init_key, train_key = jax.random.split(key)
    params, state = init_model(model, init_key, input_shape)
    return TrainState(params, state, optimizer.init(params), jnp.zeros((), jnp.int32), train_key)


def named_metrics(metrics) -> dict[str, Callable]:
    """``[accuracy]`` or ``{"acc": accuracy}`` -> ``{"accuracy": accuracy}``."""
    if metrics is None:
        return {}
    if isinstance(metrics, Mapping):
        return dict(metrics)
    return {getattr(m, "__name__", f"metric_{i}"): m for i, m in enumerate(metrics)}


def cast_floating(tree, dtype):
    """Cast the floating-point leaves of ``tree`` to ``dtype`` (integers, keys untouched)."""

    def cast(a):
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a

    return jax.tree.map(cast, tree)


def make_loss(model: Layer, loss_fn: Callable, penalty: Callable | None = None, compute_dtype=None):
    """``objective(params, state, x, y, key) -> (total_loss, aux)``.

    ``aux = (predictions, new_state, data_loss, outputs)`` where ``outputs`` maps each child of a
    :func:`~jaxnet.serial` model to its output (what diagnostics read).
    ``penalty(params) -> scalar``
    (e.g. an L2 term) is added to the data loss, and so is the activity penalty of every
    :func:`~jaxnet.regularizers.ActivityRegularization` layer, computed from ``outputs``.

    Mixed precision: with ``compute_dtype=jnp.bfloat16`` the forward and backward passes run in
    bfloat16 on a bfloat16 copy of the float32 params (the "master weights"), while the loss, the
    gradients and the state stay float32. bfloat16 has float32's exponent range, so no loss scaling
    is needed (float16 would need it and is not offered).
    """
    from jaxnet.regularizers import activity_penalty

    def objective(params, state, x, y, key):
        if compute_dtype is None:
            predictions, new_state, outputs = apply_with_outputs(
                model, params, state, x, key=key, train=True
            )
        else:
            low_params, low_state, low_x = cast_floating((params, state, x), compute_dtype)
            predictions, new_state, outputs = apply_with_outputs(
                model, low_params, low_state, low_x, key=key, train=True
            )
            predictions = predictions.astype(jnp.float32)
            new_state = jax.tree.map(lambda new, old: new.astype(old.dtype), new_state, state)
        data_loss = loss_fn(predictions, y)
        total = data_loss if penalty is None else data_loss + penalty(params)
        total = total + activity_penalty(model, outputs)
        return total, (predictions, new_state, data_loss, outputs)

    return objective


def make_train_step(
    model: Layer,
    loss_fn: Callable,
    optimizer,
    metrics=None,
    *,
    penalty: Callable | None = None,
    probe: Callable | None = None,
    compute_dtype=None,
    jit: bool = True,
):
    """A pure step ``(params, state, opt_state, (x, y), key) -> (params, state, opt_state, logs)``.

    ``optimizer`` is any optax-protocol ``GradientTransformation`` (jaxnet's or optax's).
    ``logs`` holds ``"loss"`` (the data loss, without ``penalty``) and each metric. With
    ``probe(grads=, params=, updates=, outputs=, loss=) -> pytree`` (e.g. per-layer gradient
    statistics), ``logs["probe"]`` holds its result, computed inside the same compiled step.
    ``compute_dtype=jnp.bfloat16`` trains in mixed precision (see :func:`make_loss`).

    >>> step = make_train_step(model, losses.mse, optim.adam(1e-3))
    >>> params, state, opt_state, logs = step(params, state, opt_state, (x, y), key)
    """
    objective = make_loss(model, loss_fn, penalty, compute_dtype)
    metric_fns = named_metrics(metrics)

    def step(params, state, opt_state, batch, key):
        x, y = batch
        grads, (predictions, new_state, data_loss, outputs) = jax.grad(objective, has_aux=True)(
            params, state, x, y, key
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        logs = {"loss": data_loss, **{n: m(predictions, y) for n, m in metric_fns.items()}}
        if probe is not None:
            logs["probe"] = probe(
                grads=grads, params=params, updates=updates, outputs=outputs, loss=data_loss
            )
        params = apply_updates(params, updates)
        return params, new_state, opt_state, logs

    return jax.jit(step) if jit else step


def _split_probe(carry_and_logs):
    """``(ts, logs)`` -> ``(ts, (logs without "probe", the probe's result))``."""
    ts, logs = carry_and_logs
    logs = dict(logs)
    return ts, (logs, logs.pop("probe"))


def probed_steps(n_examples: int, batch_size: int, every: int) -> list[int]:
    """Steps (counted from the epoch's first) whose probe results ``make_epoch`` returns."""
    n_batches = n_examples // batch_size
    every = min(every, n_batches)
    return list(range(0, (n_batches // every) * every, every))


def make_epoch(
    model: Layer,
    loss_fn: Callable,
    optimizer,
    batch_size: int,
    metrics=None,
    *,
    penalty: Callable | None = None,
    probe: Callable | None = None,
    probe_every: int = 1,
    shuffle: bool = True,
    compute_dtype=None,
    batch_sharding=None,
):
    """``epoch(train_state, x, y, order=None) -> (train_state, logs, probes)``: one program.

    The permutation, the per-step batch gather, forward, backward and update all run inside one
    ``lax.scan``; ``x``/``y`` (arrays or pytrees of arrays) stay on the device. The last
    ``n % batch_size`` examples of each (shuffled) epoch are dropped, so every step has the same
    shape; shuffling makes a different remainder drop each epoch. ``logs`` are the epoch means of
    the per-step loss and metrics. ``probes`` stacks ``probe``'s result for the first step of
    every chunk of ``probe_every`` steps of the epoch (:func:`probed_steps`), or is ``None``;
    the other steps never compute it.
    With ``batch_sharding`` (a ``jax.sharding.Sharding`` over the batch axis, see
    :mod:`jaxnet.train.parallel`) every gathered batch is split across devices: data parallelism
    by placement, the same program. Wrap in ``jax.jit`` (``fit`` does).
    """
    options = dict(penalty=penalty, compute_dtype=compute_dtype, jit=False)
    step = make_train_step(model, loss_fn, optimizer, metrics, **options)
    probed_step = make_train_step(model, loss_fn, optimizer, metrics, probe=probe, **options)

    def epoch(ts: TrainState, x, y, order=None):
        n = jax.tree.leaves(x)[0].shape[0]
        n_batches = n // batch_size
        if order is not None:
            pass  # a caller-chosen order, e.g. one shared by many models (fit_many)
        elif shuffle:
            order = jax.random.permutation(shuffle_key(ts, ts.step // n_batches), n)
        else:
            order = jnp.arange(n)
        batches = order[: n_batches * batch_size].reshape(n_batches, batch_size)

        def body(step_fn):
            def run(ts: TrainState, index):
                batch = jax.tree.map(lambda a: jnp.take(a, index, axis=0), (x, y))
                if batch_sharding is not None:
                    batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
                args = (ts.params, ts.state, ts.opt_state, batch, step_key(ts))
                params, state, opt_state, logs = step_fn(*args)
                return TrainState(params, state, opt_state, ts.step + 1, ts.key), logs

            return run

        if probe is None:
            ts, logs = jax.lax.scan(body(step), ts, batches)
            return ts, jax.tree.map(jnp.mean, logs), None

        # Probe the first step of every chunk of `every` steps: an outer scan over chunks, whose
        # body runs one probed step and an inner scan of plain ones (no lax.cond per step).
        every = min(probe_every, n_batches)
        if every == 1:  # every step probed: one scan, no chunks
            ts, (logs, probes) = jax.lax.scan(
                lambda ts, index: _split_probe(body(probed_step)(ts, index)), ts, batches
            )
            return ts, jax.tree.map(jnp.mean, logs), probes
        n_chunks = n_batches // every
        chunks = batches[: n_chunks * every].reshape(n_chunks, every, batch_size)

        def chunk(ts, indices):
            ts, (first, values) = _split_probe(body(probed_step)(ts, indices[0]))
            ts, rest = jax.lax.scan(body(step), ts, indices[1:])
            logs = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
            return ts, (logs, values)

        ts, (logs, probes) = jax.lax.scan(chunk, ts, chunks)
        logs = jax.tree.map(lambda a: a.reshape(-1), logs)
        if n_chunks * every < n_batches:
            ts, tail = jax.lax.scan(body(step), ts, batches[n_chunks * every :])
            logs = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), logs, tail)
        return ts, jax.tree.map(jnp.mean, logs), probes

    return epoch
