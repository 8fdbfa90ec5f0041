"""``fit_many``: an ensemble of seeds and/or a grid of hyper-parameters as one vmapped program."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.compilation import collector_spares_older_objects, compile_cached, jit_rarely_run
from jaxnet.core import Layer, init_model
from jaxnet.errors import ConfigError, check_range
from jaxnet.losses import target_kind
from jaxnet.metrics import check_mode, direction
from jaxnet.random import (
    folded_permutation,
    host_fold_in,
    host_permutation,
    host_split,
    init_on_host,
    key_words,
)
from jaxnet.train import options, parallel
from jaxnet.train.callbacks import Loop, call
from jaxnet.train.data import output_shape, place, prepare
from jaxnet.train.evaluate import make_validate
from jaxnet.train.feed import make_feed
from jaxnet.train.fit import as_key, chunk_end
from jaxnet.train.preemption import Preemption, StopAtChunk
from jaxnet.train.sources import RandomAccess, as_source
from jaxnet.train.step import TrainState, create_train_state, make_chunk, make_epoch


class ManyResult(NamedTuple):
    """What :func:`fit_many` returns.

    ``train_state`` has a leading model axis on every leaf (``model_slice`` takes one out);
    ``history[name]`` is an array ``(epochs, n_models)``; ``configs[m]`` is model ``m``'s seed and
    hyper-parameters; ``best`` indexes the model with the best final ``select`` metric;
    ``compile_seconds`` is the time spent compiling the epoch program and ``epoch_seconds`` the wall
    time of each epoch (all models, validation included, compiling excluded).
    """

    train_state: TrainState
    history: dict[str, np.ndarray]
    configs: list[dict]
    best: int
    compile_seconds: float
    epoch_seconds: tuple[float, ...] = ()  # wall time of each epoch, compiling excluded


def model_slice(tree, index: int):
    """Model ``index`` of a pytree with a leading model axis (e.g. ``result.train_state``)."""
    return jax.tree.map(lambda a: a[index], tree)


def grid_configs(seeds: Sequence[int], grid: Mapping[str, Sequence] | None) -> list[dict]:
    """Every (hyper-parameter cell x seed) combination, cells outermost."""
    grid = dict(grid or {})
    cells = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    return [{**cell, "seed": int(seed)} for cell in cells for seed in seeds]


@collector_spares_older_objects()
def fit_many(
    model: Layer,
    loss_fn: Callable,
    optimizer,
    x,
    y,
    *,
    seeds: Sequence[int] = (0,),
    grid: Mapping[str, Sequence[float]] | None = None,
    epochs: int = 10,
    batch_size: int = 32,
    metrics=None,
    validation_data=None,
    validation_split: float | None = None,
    select: str | None = None,
    mode: str = "auto",
    data_seed: int | None = 0,
    penalty: Callable | None = None,
    mesh=None,
    steps_per_epoch: int | None = None,
    steps_per_execution: int | None = None,
    verbose: int = 1,
) -> ManyResult:
    """Train ``len(seeds) * prod(len(v) for v in grid.values())`` models at once.

    ``optimizer`` is a ``GradientTransformation`` shared by all models, or — with a ``grid`` — a
    factory ``optimizer(**cell)`` receiving each cell's hyper-parameters as **arrays**, so one
    compiled program serves every value (``lambda learning_rate: optim.adam(learning_rate)``).
    Each model's seed decides its initialisation and its layer randomness (dropout), exactly as
    ``fit(seed=...)``'s does. By default all models see the same batches in the same order (from
    ``data_seed``), which lets XLA run the first layer of every model as one wide matrix product.
    With ``data_seed=None`` each model shuffles the data as ``fit`` does with its seed, so every
    model is reproducible on its own: model ``m`` is ``fit(model, loss_fn, optimizer(**cell_m),
    x, y, seed=configs[m]["seed"], epochs=, batch_size=, metrics=, validation_data= or
    validation_split=, penalty=)`` — the same arguments — up to float rounding (a test checks
    1e-6); the first layers then run as a batch of matrix products, a little slower.

    With ``mesh`` (a 1-D ``jax.sharding.Mesh``, e.g. :func:`~jaxnet.train.parallel.models_mesh`)
    the models are split across its devices, each device training its share (the number of
    models must be a multiple of the number of devices); the data is replicated. On a CPU,
    ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` makes one device per core.

    ``x``/``y`` may also be a data source (:mod:`jaxnet.train.sources`: memory-mapped arrays, a
    random-access source, a stream with ``steps_per_epoch``): it is read once per epoch in
    chunks of ``steps_per_execution`` batches, in ``data_seed``'s order, and every model trains
    on each chunk (the chunk program compiles during the first epoch).

    ``select`` names the logged metric that picks ``best`` (default ``"val_loss"`` when there is
    validation data, else ``"loss"``), minimised or maximised per ``mode`` (``"auto"``: by its
    name, :func:`jaxnet.metrics.direction`).

    A SIGTERM (or a first Ctrl-C on a terminal) stops training at the next epoch boundary (chunk
    boundary, with a data source) with a warning; ``fit_many`` keeps no checkpoints, so it returns
    the models' state there and the history of the whole epochs so far
    (:mod:`jaxnet.train.preemption`).

    For example (``result.configs[result.best]`` is then e.g.
    ``{'learning_rate': 0.003, 'seed': 2}``)::

        result = fit_many(model, losses.sparse_categorical_cross_entropy,
                          lambda learning_rate: optim.adam(learning_rate), x, y,
                          seeds=range(4), grid={"learning_rate": [1e-3, 3e-3]}, epochs=20)
        result.configs[result.best]
    """
    options.check("fit_many", model=model, loss_fn=loss_fn, epochs=epochs, batch_size=batch_size,
                    seeds=seeds, grid=grid, data_seed=data_seed, metrics=metrics,
                    validation_data=validation_data, validation_split=validation_split,
                    penalty=penalty, steps_per_epoch=steps_per_epoch,
                    steps_per_execution=steps_per_execution,
                    **({} if grid else {"optimizer": optimizer}))  # fmt: skip
    check_range("fit_many", "epochs", epochs, 1)
    if mode != "auto":
        check_mode(mode, "fit_many")
    configs = grid_configs(seeds, grid)
    if not configs:
        raise ConfigError(
            "fit_many needs at least one seed and one value per grid entry", ("fit_many",)
        )
    if mesh is not None and len(configs) % mesh.devices.size:
        raise ConfigError(
            f"{len(configs)} models do not split evenly across the {mesh.devices.size} devices "
            "of the mesh; train a multiple of that many",
            ("fit_many",),
        )
    if grid and not callable(optimizer) or (grid and hasattr(optimizer, "update")):
        raise ConfigError(
            "with a grid, optimizer must be a factory optimizer(**cell) -> GradientTransformation",
            ("fit_many",),
        )
    make_optimizer = (lambda **cell: optimizer) if not grid else optimizer
    for config in configs if grid else ():  # concrete values, checked (in the program: traced)
        cell = {name: config[name] for name in grid}
        try:
            make_optimizer(**cell)
        except TypeError as error:
            raise ConfigError(f"optimizer(**{cell}) failed: {error}", ("fit_many",)) from None
    # NumPy, made into keys inside the initialisation: nothing compiles op by op on the way
    hparams = {name: np.asarray([c[name] for c in configs], np.float32) for name in grid or {}}
    seeds = np.asarray([c["seed"] for c in configs], np.uint32)

    source = as_source(x, y, steps_per_epoch, "fit_many")
    if source is None:
        data = prepare(x, y, batch_size=batch_size, validation_data=validation_data,
                       validation_split=validation_split, owner="fit_many")  # fmt: skip
        input_shape = data.input_shape
    else:
        if data_seed is None or mesh is not None:
            raise ConfigError("a data source is read once for all the models: it needs a shared "
                              "data_seed and no mesh", ("fit_many",))  # fmt: skip
        feed = make_feed(x, y, batch_size=batch_size, validation_data=validation_data,
                         validation_split=validation_split, steps_per_epoch=steps_per_epoch,
                         steps_per_execution=steps_per_execution, owner="fit_many",
                         targets=target_kind(loss_fn))  # fmt: skip
        input_shape = feed.input_shape

    train_state = initial_states(model, make_optimizer, input_shape, seeds, hparams)
    one_params, one_state = jax.tree.map(  # one model's shapes
        lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype),
        (train_state.params, train_state.state),
    )
    start = time.perf_counter()
    if source is None:
        placement = None if mesh is None else parallel.replicated(mesh)
        out_shape = output_shape(model, one_params, one_state, data.x)
        data = place(data, out_shape, placement, target_kind(loss_fn))
        if mesh is not None:
            placed = jax.device_put((train_state, hparams), parallel.model_sharded(mesh))
            train_state, hparams = placed
        run_epoch = _array_epochs(model, loss_fn, make_optimizer, batch_size, metrics, penalty,
                                  data, data_seed, train_state, hparams)  # fmt: skip
        validation = data.validation
    else:
        feed.place(output_shape(model, one_params, one_state, feed.input_spec))
        run_epoch = _source_epochs(model, loss_fn, make_optimizer, metrics, penalty, feed,
                                   data_seed, hparams)  # fmt: skip
        validation = feed.validation
    compile_seconds = time.perf_counter() - start
    evaluate = None
    if validation is not None:
        evaluate = make_validate(model, loss_fn, metrics, validation, many=True)

    history: dict[str, list[np.ndarray]] = {}
    epoch_seconds = []
    loop = Loop(train_state, epochs, history, 0 if source is None else feed.n_batches)
    preemption = Preemption(owner="fit_many", unsaved="fit_many keeps no checkpoints")
    try:  # SIGTERM: stop at the next epoch (or chunk) boundary; the handlers go back however
        call([preemption], "on_train_begin", loop)
        for epoch in range(epochs):
            start = time.perf_counter()
            on_chunk = None
            if source is not None:
                on_chunk = functools.partial(chunk_end, [preemption], epoch, loop, feed)
            try:
                train_state, logs = run_epoch(loop.train_state, epoch, on_chunk)
            except StopAtChunk:  # a preemption signal, acted on between two chunks
                break
            loop.train_state = train_state
            if evaluate is not None:
                val_logs = evaluate(train_state.params, train_state.state)
                logs = logs | {f"val_{k}": v for k, v in val_logs.items()}
            for name, value in logs.items():
                history.setdefault(name, []).append(np.asarray(value))
            epoch_seconds.append(time.perf_counter() - start)
            if verbose:
                pick = {"min": np.nanmin, "max": np.nanmax}
                summary = "  ".join(
                    f"{k} {pick[direction(k, default='max')](v[-1]):.4f}"
                    for k, v in history.items()
                )
                print(f"epoch {epoch + 1}/{epochs}  best of {len(configs)} models: {summary}")
            call([preemption], "on_epoch_end", epoch, logs, loop)
            if loop.stop_training:
                break
        call([preemption], "on_train_end", loop)
    finally:
        preemption.restore()
    train_state = loop.train_state

    history_arrays = {name: np.stack(values) for name, values in history.items()}
    select = select or ("val_loss" if evaluate is not None else "loss")
    if not history_arrays:  # stopped by a signal during the first epoch: nothing to select by
        return ManyResult(train_state, {}, configs, 0, compile_seconds, ())
    if select not in history_arrays:
        raise ConfigError(
            f"select={select!r} is not logged; logged: {sorted(history_arrays)}", ("fit_many",)
        )
    mode = direction(select) if mode == "auto" else mode
    final = np.where(np.isfinite(history_arrays[select][-1]), history_arrays[select][-1], np.nan)
    best = (
        int(np.nanargmin(final) if mode == "min" else np.nanargmax(final))
        if np.isfinite(final).any()
        else 0
    )
    return ManyResult(
        train_state, history_arrays, configs, best, compile_seconds, tuple(epoch_seconds)
    )


def initial_states(model, make_optimizer, input_shape, seeds, hparams) -> TrainState:
    """The models' :func:`~jaxnet.train.step.create_train_state` with keys
    ``jax.random.key(seed)``, one ``vmap``ped run-once program; with Threefry keys its draws'
    bits come from NumPy (:func:`jaxnet.random.init_on_host`: no hash rounds to compile)."""
    on_host = None
    if jax.config.jax_default_prng_impl == "threefry2x32":  # key(seed)'s data: [0, seed]
        keys = np.stack([host_split(np.array([0, s], np.uint32)) for s in seeds])
        on_host = init_on_host(lambda k: init_model(model, k, input_shape), keys[:, 0])
    if on_host is None:

        def init_one(seed, hp):
            key = jax.random.key(seed)
            return create_train_state(model, make_optimizer(**hp), input_shape, key)

        return compile_cached(jit_rarely_run(jax.vmap(init_one)).lower(seeds, hparams))(
            seeds, hparams
        )
    program, bits = on_host

    def state_from_bits(drawn, train_words, hp):
        params, state = program(drawn)
        train_key = jax.random.wrap_key_data(train_words, impl="threefry2x32")
        optimizer_state = make_optimizer(**hp).init(params)
        return TrainState(params, state, optimizer_state, jnp.zeros((), jnp.int32), train_key)

    init_all = jit_rarely_run(jax.vmap(state_from_bits)).lower(bits, keys[:, 1], hparams)
    return compile_cached(init_all)(bits, keys[:, 1], hparams)


def _array_epochs(model, loss_fn, make_optimizer, batch_size, metrics, penalty, data, data_seed,
                  train_state, hparams):  # fmt: skip
    """``run_epoch(train_state, epoch, on_chunk=None) -> (train_state, logs)`` for
    device-resident ``data``: every model's epoch in one compiled, ``vmap``ped program (no chunk
    boundaries: ``on_chunk`` is never called)."""
    n = data.n

    def epoch_one(ts, hp, x, y, order):
        epoch = make_epoch(model, loss_fn, make_optimizer(**hp), batch_size, metrics,
                           penalty=penalty)  # fmt: skip
        return epoch(ts, x, y, order)[:2]

    @jax.jit
    def train_epoch(ts, hp, x, y, order):  # order None: each model's own, as in fit
        return jax.vmap(epoch_one, in_axes=(0, 0, None, None, None))(ts, hp, x, y, order)

    orders = None if data_seed is None else data_orders(data_seed, n)
    order_type = None if orders is None else jax.ShapeDtypeStruct((n,), np.int32)
    compiled = compile_cached(train_epoch.lower(train_state, hparams, data.x, data.y, order_type))

    def run_epoch(ts, epoch, on_chunk=None):
        del on_chunk
        return compiled(ts, hparams, data.x, data.y, None if orders is None else orders(epoch))

    return run_epoch


def _source_epochs(model, loss_fn, make_optimizer, metrics, penalty, feed, data_seed, hparams):
    """``run_epoch(train_state, epoch, on_chunk=None) -> (train_state, logs)`` for a data
    source: its chunks are read once, in the order ``data_seed`` gives, and every model trains on
    each (``vmap``); ``on_chunk(train_state, steps_done, logs)`` after each chunk."""

    def chunk_one(ts, hp, x, y, rows):
        chunk = make_chunk(model, loss_fn, make_optimizer(**hp), metrics, penalty=penalty)
        return chunk(ts, x, y, rows)[:2]

    @jax.jit
    def chunk_all(ts, x, y, rows):
        ts, logs = jax.vmap(chunk_one, in_axes=(0, 0, None, None, None))(ts, hparams, x, y, rows)
        return ts, jax.tree.map(lambda a: a.T, logs), None  # logs (steps, models)

    random_access = isinstance(feed.source, RandomAccess)  # (a stream has its own order)
    orders = data_orders(data_seed, len(feed.source)) if random_access else None

    def run_epoch(ts, epoch, on_chunk=None):
        order = orders(epoch) if random_access else None
        result = feed.run_chunks(ts, on_chunk=on_chunk, run_chunk=chunk_all, order=order)
        return result.train_state, result.logs

    return run_epoch


def data_orders(data_seed: int, n: int) -> Callable[[int], np.ndarray]:
    """``order(epoch)``: the ``int32`` order of ``n`` examples every model sees in ``epoch``,
    ``permutation(fold_in(key(data_seed), epoch), n)``: computed by NumPy for a Threefry key
    (:func:`~jaxnet.random.host_permutation`, the same numbers; nothing to compile), by a small
    program for a key of another kind."""
    key = as_key(data_seed)
    words = key_words(key)
    if words is None:
        return lambda epoch: np.asarray(folded_permutation(key, np.array([epoch], np.int32), n))
    return lambda epoch: host_permutation(host_fold_in(words, epoch), n)
