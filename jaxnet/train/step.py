"""Pure training steps: one step, and one whole epoch as a single ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.core import Layer, init_model
from jaxnet.objective import make_loss
from jaxnet.optim import apply_updates
from jaxnet.random import (
    folded_permutation,
    host_fold_in,
    host_permutation,
    key_words,
    permutation,
)
from jaxnet.train import parallel


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
    return run_shuffle_key(ts.key, epoch)


SHUFFLE_STREAM = 1  # the run key folded with this, then the epoch, shuffles the epoch's data


def run_shuffle_key(key, epoch):
    """The key that shuffles the data in ``epoch`` of the run whose key is ``key``."""
    return jax.random.fold_in(jax.random.fold_in(key, SHUFFLE_STREAM), epoch)


def create_train_state(model: Layer, optimizer, input_shape, key) -> TrainState:
    """Initialise params/state from ``key`` and the optimizer state from the params."""
    params, state, step, train_key = model_train_state(model, input_shape, key)
    return TrainState(params, state, optimizer.init(params), step, train_key)


def model_train_state(model: Layer, input_shape, key):
    """``(params, state, step, key)`` of :func:`create_train_state`: everything but the optimizer
    state (``fit`` compiles the two parts apart: the optimizer's holds its hyper-parameters)."""
    init_key, train_key = jax.random.split(key)
    params, state = init_model(model, init_key, input_shape)
    return params, state, jnp.zeros((), jnp.int32), train_key


def named_metrics(metrics) -> dict[str, Callable]:
    """``[accuracy]`` or ``{"acc": accuracy}`` -> ``{"accuracy": accuracy}``."""
    if metrics is None:
        return {}
    if isinstance(metrics, Mapping):
        return dict(metrics)
    return {getattr(m, "__name__", f"metric_{i}"): m for i, m in enumerate(metrics)}


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

    >>> from jaxnet import Dense, init_model, losses, optim
    >>> model, optimizer = Dense(1), optim.sgd(0.1)
    >>> params, state = init_model(model, jax.random.key(0), (3,))
    >>> opt_state = optimizer.init(params)
    >>> step = jax.jit(make_train_step(model, losses.mse, optimizer))
    >>> x, y = jnp.ones((4, 3)), jnp.zeros((4, 1))
    >>> params, state, opt_state, logs = step(params, state, opt_state, (x, y), jax.random.key(1))
    >>> sorted(logs)
    ['loss']
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


def probed_steps(n_steps: int, every: int) -> list[int]:
    """Positions (counted from the first step of a :func:`make_steps` run of ``n_steps``) whose
    probe results it returns: the first of every whole run of ``every`` steps."""
    every = min(every, n_steps)
    return list(range(0, (n_steps // every) * every, every))


def make_steps(
    model: Layer,
    loss_fn: Callable,
    optimizer,
    metrics=None,
    *,
    penalty: Callable | None = None,
    probe: Callable | None = None,
    probe_every: int = 1,
    compute_dtype=None,
    batch_sharding=None,
):
    """``run(ts, items, fetch) -> (ts, logs, probes)``: one ``lax.scan`` of training steps.

    ``items`` has one entry per step on its leading axis and ``fetch(item) -> (x, y)`` turns an
    entry into that step's batch: a row of example indices gathered from device-resident data
    (:func:`make_epoch`), or the batch itself (:func:`make_chunk`). ``logs`` stacks each step's
    loss and metrics (leading axis: steps). ``probes`` stacks ``probe``'s result at the steps
    :func:`probed_steps` names, or is ``None``; the other steps never compute it. With
    ``batch_sharding`` (a ``jax.sharding.Sharding`` over the batch axis, see
    :mod:`jaxnet.train.parallel`) every batch is split across devices: data parallelism by
    placement, the same program.
    """
    options = dict(penalty=penalty, compute_dtype=compute_dtype, jit=False)
    step = make_train_step(model, loss_fn, optimizer, metrics, **options)
    probed_step = make_train_step(model, loss_fn, optimizer, metrics, probe=probe, **options)

    def body(step_fn, fetch):
        def run(ts: TrainState, item):
            batch = fetch(item)
            if batch_sharding is not None:
                batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
            args = (ts.params, ts.state, ts.opt_state, batch, step_key(ts))
            params, state, opt_state, logs = step_fn(*args)
            return TrainState(params, state, opt_state, ts.step + 1, ts.key), logs

        return run

    def run(ts: TrainState, items, fetch):
        n_steps = jax.tree.leaves(items)[0].shape[0]
        if probe is None:
            ts, logs = jax.lax.scan(body(step, fetch), ts, items)
            return ts, logs, None
        # Probe the first step of every chunk of `every` steps: an outer scan over chunks, whose
        # body runs one probed step and an inner scan of plain ones (no lax.cond per step).
        every = min(probe_every, n_steps)
        probed = body(probed_step, fetch)
        if every == 1:  # every step probed: one scan, no chunks
            ts, (logs, probes) = jax.lax.scan(lambda t, i: _split_probe(probed(t, i)), ts, items)
            return ts, logs, probes
        n_chunks = n_steps // every
        chunks = jax.tree.map(
            lambda a: a[: n_chunks * every].reshape(n_chunks, every, *a.shape[1:]), items
        )

        def chunk(ts, chunk_items):
            first_item = jax.tree.map(lambda a: a[0], chunk_items)
            ts, (first, values) = _split_probe(probed(ts, first_item))
            ts, rest = jax.lax.scan(
                body(step, fetch), ts, jax.tree.map(lambda a: a[1:], chunk_items)
            )
            logs = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
            return ts, (logs, values)

        ts, (logs, probes) = jax.lax.scan(chunk, ts, chunks)
        logs = jax.tree.map(lambda a: a.reshape(-1), logs)
        if n_chunks * every < n_steps:
            tail = jax.tree.map(lambda a: a[n_chunks * every :], items)
            ts, tail_logs = jax.lax.scan(body(step, fetch), ts, tail)
            logs = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), logs, tail_logs)
        return ts, logs, probes

    return run


def epoch_means(logs):
    """The epoch's logs: the mean over steps (the leading axis) of each stacked per-step log."""
    return jax.tree.map(lambda a: jnp.mean(a, axis=0), logs)


def make_chunk(
    model: Layer,
    loss_fn: Callable,
    optimizer,
    metrics=None,
    *,
    mesh=None,
    split_data: bool = True,
    **step_options,
):
    """``chunk(train_state, x, y, rows) -> (train_state, logs, probes)``: one step per row of
    example indices ``rows`` (``(K, batch)``), each gathering its batch from ``x``/``y``.

    ``x``/``y`` are a whole device-resident data set (:func:`make_epoch`, or a part of an epoch
    when it runs in chunks) or one chunk of batches read from a source. ``logs`` stay per step
    (leading axis ``K``) so an epoch's means can be taken over all its chunks
    (:func:`epoch_means`); ``step_options`` as in :func:`make_steps`.

    With a ``mesh`` (data parallelism, :mod:`jaxnet.train.parallel`), device ``s`` gathers its
    share of every batch, the indices ``rows[:, s * b:(s + 1) * b]`` (``b = batch / devices``),
    from the data it holds: with ``split_data``, ``x``/``y`` are split by rows across the
    ``"data"`` axis and those indices are local to device ``s``'s rows; without, every device
    holds ``x``/``y`` whole (replicated) and the indices are global. Either way no example
    crosses devices; XLA adds the gradient all-reduce.
    """
    if mesh is not None:
        step_options.setdefault("batch_sharding", parallel.batch_sharded(mesh))
    run = make_steps(model, loss_fn, optimizer, metrics, **step_options)

    def take(data, index):  # (the targets' rows as jnp.take gathers them: see take_rows)
        x, y = data
        targets = jax.tree.map(lambda a: jnp.take(a, index, axis=0), y)
        return jax.tree.map(lambda a: take_rows(a, index), x), targets

    if mesh is not None:
        spec = jax.sharding.PartitionSpec(parallel.DATA_AXIS)
        data_spec = spec if split_data else jax.sharding.PartitionSpec()
        take = jax.shard_map(take, mesh=mesh, in_specs=(data_spec, spec), out_specs=spec)

    def chunk(ts: TrainState, x, y, rows):
        return run(ts, rows, lambda index: take((x, y), index))

    return chunk


def make_epoch(
    model: Layer,
    loss_fn: Callable,
    optimizer,
    batch_size: int,
    metrics=None,
    *,
    shuffle: bool = True,
    mesh=None,
    shard_order: str = "global",
    **step_options,
):
    """``epoch(train_state, x, y, order=None) -> (train_state, logs, probes)``: one program.

    The permutation, the per-step batch gather, forward, backward and update all run inside one
    ``lax.scan`` (:func:`make_chunk` over every batch; ``step_options`` as in
    :func:`make_steps`: ``penalty``, ``probe``, ``probe_every``, ``compute_dtype``,
    ``batch_sharding``); ``x``/``y`` (arrays or pytrees of arrays) stay on the device. The last
    ``n % batch_size`` examples of each (shuffled) epoch are dropped, so every step has the same
    shape; shuffling makes a different remainder drop each epoch. ``logs`` are the epoch means of
    the per-step loss and metrics; ``probes`` as in :func:`make_steps`.

    With a ``mesh`` and ``shard_order="global"``, the batches are the one-device epoch's: ``x``
    and ``y`` are replicated and each device gathers its part of every batch. With
    ``shard_order="per_device"``, ``x`` and ``y`` are split by rows across the devices and each
    device shuffles and gathers its own (:func:`sharded_epoch_rows`; ``order`` is not used).
    Wrap in ``jax.jit`` (``fit`` does).
    """
    per_device = mesh is not None and parallel.check_shard_order(shard_order) == "per_device"
    chunk = make_chunk(
        model, loss_fn, optimizer, metrics, mesh=mesh, split_data=per_device, **step_options
    )

    def epoch(ts: TrainState, x, y, order=None):
        n = jax.tree.leaves(x)[0].shape[0]
        if per_device:
            rows = sharded_epoch_rows(ts, n, mesh.shape[parallel.DATA_AXIS], batch_size, shuffle)
        else:
            order = epoch_order(ts, n, batch_size, shuffle) if order is None else order
            rows = epoch_rows(order, batch_size)
        ts, logs, probes = chunk(ts, x, y, rows)
        return ts, epoch_means(logs), probes

    return epoch


def epoch_order(ts: TrainState, n: int, batch_size: int, shuffle: bool = True):
    """The order in which the epoch that starts at step ``ts.step`` visits ``n`` examples."""
    return order_of_epoch(ts.key, ts.step // (n // batch_size), n, shuffle)


def order_of_epoch(key, epoch, n: int, shuffle: bool = True):
    """The order in which epoch ``epoch`` of the run with key ``key`` visits ``n`` examples (a
    permutation by :func:`run_shuffle_key`, or ``arange(n)`` without ``shuffle``)."""
    if not shuffle:
        return jnp.arange(n)
    return permutation(run_shuffle_key(key, epoch), n)


def host_order_of_epoch(words, epoch: int, n: int, shuffle: bool = True, key=None):
    """:func:`order_of_epoch` as an ``int32`` NumPy array, computed by NumPy from the run key's
    data ``words`` (a Threefry key's, :func:`~jaxnet.random.key_words`): the same order, no
    program. ``words=None`` (a key of another kind): from ``key`` by a small jitted program."""
    if not shuffle:
        return np.arange(n, dtype=np.int32)
    if words is None:
        return np.asarray(folded_permutation(key, np.array([SHUFFLE_STREAM, epoch], np.int32), n))
    return host_permutation(host_fold_in(host_fold_in(words, SHUFFLE_STREAM), epoch), n)


def epoch_order_on_host(ts: TrainState, n: int, batch_size: int, shuffle: bool = True):
    """:func:`epoch_order` as an ``int32`` NumPy array (:func:`host_order_of_epoch`)."""
    words = key_words(ts.key) if shuffle else None
    return host_order_of_epoch(words, int(ts.step) // (n // batch_size), n, shuffle, ts.key)


def sharded_epoch_rows(ts: TrainState, n: int, shards: int, batch_size: int, shuffle=True):
    """The epoch's batches for ``n`` examples split into ``shards`` equal row blocks, one per
    device: ``(n_batches, batch_size)`` local row indices, shard ``s`` in columns
    ``s * b:(s + 1) * b`` (``b = batch_size // shards``). Each shard is shuffled with its own key
    (``fold_in(shuffle key, s)``); a single shard visits its rows in :func:`epoch_order`."""
    if shards == 1:
        return epoch_rows(epoch_order(ts, n, batch_size, shuffle), batch_size)
    n_local, b = n // shards, batch_size // shards
    n_batches = n_local // b
    key = shuffle_key(ts, ts.step // n_batches)
    if shuffle:
        orders = jax.vmap(lambda s: permutation(jax.random.fold_in(key, s), n_local))(
            jnp.arange(shards)
        )
    else:
        orders = jnp.tile(jnp.arange(n_local), (shards, 1))
    blocks = orders[:, : n_batches * b].reshape(shards, n_batches, b)
    return blocks.transpose(1, 0, 2).reshape(n_batches, shards * b)


def take_rows(a, index):
    """``a[index]`` along the first axis, for row indices in range (a shuffled order's): XLA's
    plain gather. ``jnp.take``'s default fills out-of-range rows with NaN, whose checks make the
    inputs' gather kernel ~5x longer to compile (~0.06 s of the digits epoch's compile); the rows
    are the same. (The targets keep ``jnp.take``: XLA fuses their gather into the loss, and a
    plain one there fuses the loss's arithmetic differently: other bits.)"""
    return jnp.take(a, index, axis=0, mode="clip")


def epoch_rows(order, batch_size: int):
    """``order`` cut into the epoch's batches, ``(n // batch_size, batch_size)``; the remainder
    is dropped."""
    n_batches = order.shape[0] // batch_size
    return order[: n_batches * batch_size].reshape(n_batches, batch_size)
