"""``fit``: the thin host loop around compiled epochs."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import random
from jaxnet.compilation import collector_spares_older_objects, run_once
from jaxnet.core import Layer, init_model
from jaxnet.errors import ConfigError
from jaxnet.losses import target_kind
from jaxnet.train import options, parallel
from jaxnet.train.averaging import ema_callbacks, evaluating, wrap_optimizer
from jaxnet.train.callbacks import Loop, call
from jaxnet.train.checkpointing import Checkpoint
from jaxnet.train.data import check_params, output_shape
from jaxnet.train.evaluate import make_validate
from jaxnet.train.feed import Programs, make_feed
from jaxnet.train.guard import guard_accepts
from jaxnet.train.logging import default_progress
from jaxnet.train.preemption import Preemption, StopAtChunk
from jaxnet.train.step import (
    TrainState,
    create_train_state,
    model_train_state,
    named_metrics,
)


class History:
    """Per-epoch logs: ``history["loss"]``, ``history["val_accuracy"]``, ... (lists of floats)."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.compile_seconds: float = 0.0  # compiling the epoch program, not in history["time"]

    def append(self, logs: dict) -> None:
        for name, value in logs.items():
            self.history.setdefault(name, []).append(value)

    def __getitem__(self, name: str) -> list[float]:
        return self.history[name]

    def __contains__(self, name: str) -> bool:
        return name in self.history

    @property
    def epochs(self) -> int:
        return len(next(iter(self.history.values()), []))

    def to_dict(self) -> dict[str, list[float]]:
        return {name: list(values) for name, values in self.history.items()}

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items()}
        return f"History(epochs={self.epochs}, last={last})"


def as_key(seed):
    """A PRNG key from an ``int`` seed (a key passes through): ``jax.random.key(seed)``.

    A seed in ``[0, 2**31)`` with the default Threefry keys is wrapped from its key data,
    ``[0, seed]``: what ``jax.random.key`` computes in a program of its own, whose compile costs
    a cold start about 0.08 s on a 2-core CPU.
    """
    if not isinstance(seed, int | np.integer):
        return seed
    if 0 <= seed < 2**31 and jax.config.jax_default_prng_impl == "threefry2x32":
        return jax.random.wrap_key_data(np.array([0, seed], np.uint32), impl="threefry2x32")
    return jax.random.key(int(seed))


@options.documented(
    validation_data="``(x_val, y_val)`` scored after every epoch; or ``validation_split``.",
)
@collector_spares_older_objects()
def fit(
    model: Layer,
    loss_fn: Callable,
    optimizer,
    x,
    y,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    seed=0,
    metrics=None,
    validation_data=None,
    validation_split: float | None = None,
    callbacks: Sequence = (),
    monitor=None,
    verbose: int = 1,
    train_state: TrainState | None = None,
    penalty: Callable | None = None,
    shuffle: bool = True,
    steps_per_epoch: int | None = None,
    steps_per_execution: int | None = None,
    checkpoint_dir=None,
    keep: int = 3,
    resume: bool | str = False,
    compute_dtype=None,
    mesh=None,
    shard_order: str = "global",
    ema: float | None = None,
    accumulate: int = 1,
) -> tuple[TrainState, History]:
    """Train ``model`` on ``(x, y)``; return the final :class:`TrainState` and the :class:`History`.

    Each epoch is one compiled program (:func:`~jaxnet.train.step.make_epoch`): the data is moved to
    the device once, shuffled by a key derived from ``seed``, cut into ``batch_size`` batches (the
    remainder is dropped, a different one each epoch), and scanned over. Python runs only between
    epochs: validation, logging, callbacks. The same ``seed`` gives bit-identical results.

    Args:
    {arguments}

    ``history.compile_seconds`` is the time spent compiling the epoch program, kept apart from
    the per-epoch ``history["time"]``. An epoch with a non-finite loss, metric or train
    state is not accepted (:mod:`jaxnet.train.guard`): ``fit`` warns where it broke and
    stops with the (finite) state from before that epoch.

    ::

        ts, history = fit(model, losses.sparse_categorical_cross_entropy, optim.adam(1e-3),
                          x, y, epochs=20, metrics=[metrics.accuracy], validation_split=0.1)
    """
    arguments = dict(locals())  # (the first line: exactly fit's arguments)
    options.check("fit", **arguments)
    optimizer = wrap_optimizer(optimizer, ema=ema, accumulate=accumulate)
    feed = make_feed(x, y, batch_size=batch_size, validation_data=validation_data,
                     validation_split=validation_split, steps_per_epoch=steps_per_epoch,
                     steps_per_execution=steps_per_execution, shuffle=shuffle,
                     targets=target_kind(loss_fn))  # fmt: skip
    init = functools.partial(create_train_state, model, optimizer, feed.input_shape)
    if train_state is None:  # its shapes for now: the epoch program compiles while it is made
        key = as_key(seed)
        shapes = jax.eval_shape(init, key)
    else:  # given: it must be this model's, for these inputs
        check_params("fit", model, train_state.params, train_state.state, feed.input_shape)
        shapes = train_state
    placement = None if mesh is None else parallel.replicated(mesh)
    out_shape = output_shape(model, shapes.params, shapes.state, feed.input_spec)
    feed.place(out_shape, mesh, shard_order)
    programs = Programs(model, loss_fn, optimizer, metrics, penalty=penalty,
                        compute_dtype=compute_dtype)  # fmt: skip
    probe = {} if monitor is None else {"probe": monitor.probe, "probe_every": monitor.every}
    if mesh is None:  # lowered now; it compiles on a worker thread during the initialisation
        feed.compile(programs, shapes, epochs, **probe)
    validate = feed.validation is not None and evaluating(
        make_validate(model, loss_fn, metrics, feed.validation, sharding=placement,
                      ahead=mesh is None and ema is None and (shapes.params, shapes.state)), ema
    )  # fmt: skip
    if train_state is None:  # compiled for speed of compiling: they run once
        train_state = initial_state(model, optimizer, feed.input_shape, key)
    callbacks = [
        *checkpoint_callbacks(checkpoint_dir, keep, resume), *([monitor] if monitor else []),
        *callbacks, *ema_callbacks(ema), *default_progress(epochs, verbose),
    ]  # fmt: skip
    preemption = Preemption(callbacks)  # SIGTERM: save at a chunk boundary and stop
    callbacks.append(preemption)
    loop = Loop(train_state, epochs, History(), feed.n_batches, feed.batch_size)
    loop.run_config = functools.partial(options.run_record, arguments, train_state)
    try:  # whatever ends training (an exception too) puts the signal handlers back
        call(callbacks, "on_train_begin", loop)
        loop.train_state = parallel.put(loop.train_state, placement)
        feed.restore(loop.data_position)
        if loop.initial_epoch < epochs:
            if mesh is not None or not feed.compiled_for(loop.train_state):
                feed.compile(programs, loop.train_state, epochs, **probe)
            loop.history.compile_seconds = feed.wait_compiled()

        log_names = ["loss", *named_metrics(metrics)]
        chunk_hooks = [c for c in callbacks if hasattr(c, "on_chunk_end")]
        for epoch in range(loop.initial_epoch, epochs):
            start = time.perf_counter()
            first_step, prior = loop.resume_point(epoch)
            on_chunk = chunk_hooks and functools.partial(chunk_end, chunk_hooks, epoch, loop, feed)
            try:
                result = feed.run_epoch(loop.train_state, first_step, on_chunk or None, prior)
            except StopAtChunk:  # a preemption signal, acted on between two chunks
                break
            new_state = result.train_state
            logs, broke = jax.device_get((result.logs, result.broke))  # one transfer for every log
            logs = {name: float(logs[name]) for name in log_names}
            if monitor is not None:  # the probed steps' numbers, counted from the first of the run
                first = int(loop.train_state.step) - first_step
                probes = jax.device_get(result.probes)
                monitor.on_probe(epoch, first + np.array(result.probed, int), probes)
            if not guard_accepts(epoch, logs, loop.train_state, new_state, feed, broke):
                break
            loop.train_state, loop.data_position = new_state, feed.position
            if validate:
                val_logs = jax.device_get(validate(new_state))
                logs |= {f"val_{name}": float(val_logs[name]) for name in log_names}
            logs["time"] = time.perf_counter() - start
            loop.history.append(logs)
            call(callbacks, "on_epoch_end", epoch, logs, loop)
            if loop.stop_training:
                break
        call(callbacks, "on_train_end", loop)
    finally:
        preemption.restore()
    return loop.train_state, loop.history


def initial_state(model, optimizer, input_shape, key) -> TrainState:
    """:func:`~jaxnet.train.step.create_train_state` as two run-once programs: the model's, kept
    for the next ``fit`` of this architecture (:func:`~jaxnet.compilation.compile_cached`), and
    the optimizer's, small, which holds its hyper-parameters (another learning rate compiles only
    this one again). For a Threefry key the model's program takes its draws' bits from NumPy
    (:func:`jaxnet.random.init_on_host`: no hash rounds to compile, and another seed compiles
    nothing). The same bits as one program."""
    params, state, step, train_key = initial_model_state(model, input_shape, key)
    return TrainState(params, state, run_once(optimizer.init, params), step, train_key)


def initial_model_state(model, input_shape, key):
    """:func:`~jaxnet.train.step.model_train_state` as a run-once program."""
    words = random.key_words(key)
    on_host = None
    if words is not None:  # split as model_train_state does, on the host
        init_words, train_words = random.host_split(words)
        on_host = random.init_on_host(lambda k: init_model(model, k, input_shape), init_words)
    if on_host is None:
        return run_once(functools.partial(model_train_state, model, input_shape), key)
    program, bits = on_host

    def model_state_from_bits(drawn):
        return (*program(drawn), jnp.zeros((), jnp.int32))

    params, state, step = run_once(model_state_from_bits, bits)
    return params, state, step, random.key_like(train_words, key)


def chunk_end(callbacks, epoch: int, loop: Loop, feed, train_state, steps_done: int, step_logs):
    """Call ``on_chunk_end`` of ``callbacks`` after a chunk of ``epoch`` (``loop.data_position``:
    where a stream stands after it)."""
    loop.data_position = feed.position
    call(callbacks, "on_chunk_end", epoch, steps_done, train_state, step_logs, loop)


def checkpoint_callbacks(checkpoint_dir, keep: int, resume: bool | str) -> list:
    """``[Checkpoint(checkpoint_dir, keep, resume)]``, or ``[]`` without a directory."""
    if checkpoint_dir is None:
        if resume:
            raise ConfigError("resume=True needs a checkpoint_dir to resume from", ("fit",))
        return []
    return [Checkpoint(checkpoint_dir, keep=keep, resume=resume)]
