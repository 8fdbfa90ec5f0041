"""``fit_rows``: many models, each on its own rows of one data set, as one vmapped program.

This is the engine under a cross-validated grid search (:mod:`jaxnet.sklearn.search`): a model
axis made of (cell x fold), where every model has

- its own **training rows** (indices into the shared ``x``/``y``; folds may differ in size),
- its own **numeric hyper-parameters** as arrays (learning rate, momentum, an L2 weight ...),
  reaching the optimizer and the penalty through factories, so one program serves every value,
- its own **seed** (initialisation, layer randomness and shuffling, exactly as ``fit(seed=)``),
- its own **stopping rule** (scikit-learn's ``tol``/``n_iter_no_change`` on the epoch's training
  loss): a model that stopped keeps its state while the others go on.

Model ``m`` is ``fit(model, loss_fn, make_optimizer(**hp_m), x[rows[m]], y[rows[m]],
seed=seeds[m], epochs=, batch_size=, penalty=make_penalty(**hp_m), shuffle=)`` (with the stopping
rule as a callback) up to float rounding; a test checks it. Models whose folds are shorter take
fewer steps per epoch: the extra steps of the padded scan leave them untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.compilation import run_once_options
from jaxnet.core import Layer
from jaxnet.errors import ConfigError, DataError, check_range
from jaxnet.losses import target_kind
from jaxnet.train import parallel
from jaxnet.train.data import check_arguments, place, prepare
from jaxnet.train.step import (
    TrainState,
    create_train_state,
    make_train_step,
    named_metrics,
    shuffle_key,
    step_key,
)


class RowsResult(NamedTuple):
    """What :func:`fit_rows` returns.

    ``train_state`` has a leading model axis (:func:`~jaxnet.train.many.model_slice` takes one
    out); ``history[name]`` is ``(epochs_run, n_models)``, NaN for the epochs after a model
    stopped; ``n_epochs[m]`` is how many epochs model ``m`` trained (scikit-learn's ``n_iter_``);
    ``compile_seconds`` the time spent initialising and compiling.
    """

    train_state: TrainState
    history: dict[str, np.ndarray]
    n_epochs: np.ndarray
    compile_seconds: float


class StopState(NamedTuple):
    """Per-model state of scikit-learn's ``n_iter_no_change`` rule (arrays ``(n_models,)``)."""

    best: jax.Array
    count: jax.Array
    stopped: jax.Array
    epochs: jax.Array


def no_improvement(stop: StopState, value, tol, n_iter_no_change) -> StopState:
    """One epoch of scikit-learn's MLP rule: an epoch whose ``value`` is not below
    ``best - tol`` counts; more than ``n_iter_no_change`` such epochs in a row stop the model.
    Already stopped models are left as they are."""
    worse = value > stop.best - tol
    count = jnp.where(worse, stop.count + 1, 0)
    best = jnp.minimum(stop.best, value)
    stopped = count > n_iter_no_change
    active = ~stop.stopped
    return StopState(
        jnp.where(active, best, stop.best),
        jnp.where(active, count, stop.count),
        jnp.where(active, stopped, stop.stopped),
        stop.epochs + active.astype(jnp.int32),
    )


def padded_rows(rows: Sequence[np.ndarray], fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` of possibly different lengths as one ``(n_models, longest)`` int32 array padded
    with ``fill``, and the lengths ``(n_models,)``."""
    lengths = np.array([len(r) for r in rows], np.int32)
    out = np.full((len(rows), max(lengths)), fill, np.int32)
    for m, r in enumerate(rows):
        out[m, : len(r)] = r
    return out, lengths


def fit_rows(
    model: Layer,
    loss_fn: Callable,
    make_optimizer: Callable,
    x,
    y,
    *,
    rows: Sequence,
    seeds: Sequence[int],
    hparams: Mapping[str, Sequence[float]] | None = None,
    make_penalty: Callable | None = None,
    epochs: int = 10,
    batch_size: int = 32,
    shuffle: bool = True,
    metrics=None,
    n_iter_no_change: int | None = None,
    tol: float = 1e-4,
    mesh=None,
) -> RowsResult:
    """Train ``len(rows)`` models at once, model ``m`` on ``x[rows[m]], y[rows[m]]``.

    Args:
      make_optimizer: ``make_optimizer(**hp) -> GradientTransformation``, called with every
        entry of ``hparams`` as a scalar **array** (one program for every value).
      x, y: the whole data set (arrays), moved to the device once.
      rows: one index array per model (training rows; lengths may differ).
      seeds: one ``int`` per model: its initialisation, dropout and shuffling, as ``fit(seed=)``.
      hparams: ``{name: one value per model}``.
      make_penalty: ``make_penalty(**hp) -> penalty(params) -> scalar`` (e.g. an L2 term whose
        weight is a hyper-parameter), or ``None``.
      n_iter_no_change, tol: stop a model after more than ``n_iter_no_change`` epochs in a row
        whose mean training loss did not go below its best so far minus ``tol``
        (scikit-learn's MLP rule); ``None`` trains every model ``epochs`` epochs.
      mesh: a 1-D mesh (:func:`~jaxnet.train.parallel.models_mesh`): the models are split across
        its devices (padded with copies of model 0 to a multiple of the devices, dropped after).

    The epoch is :func:`~jaxnet.train.step.make_epoch`'s: a permutation of the model's rows from
    its shuffle key, ``len(rows[m]) // batch_size`` full batches (the remainder dropped).
    """
    check_arguments("fit_rows", model=model, loss_fn=loss_fn, epochs=epochs,
                    batch_size=batch_size, metrics=metrics)  # fmt: skip
    check_range("fit_rows", "epochs", epochs, 1)
    n_models = len(rows)
    if n_models == 0 or len(seeds) != n_models:
        raise ConfigError(
            f"fit_rows needs one seed per model: {n_models} row sets, {len(seeds)} seeds",
            ("fit_rows",),
        )
    hparams = {k: np.asarray(v, np.float32) for k, v in (hparams or {}).items()}
    for name, values in hparams.items():
        if values.shape != (n_models,):
            raise ConfigError(
                f"hparams[{name!r}] needs one value per model ({n_models}), got shape "
                f"{values.shape}",
                ("fit_rows",),
            )
    data = prepare(x, y, batch_size=1, owner="fit_rows")
    rows_array, lengths = padded_rows([np.asarray(r, np.int64) for r in rows])
    if lengths.min() < batch_size:
        raise DataError(
            f"batch_size={batch_size} is larger than the {lengths.min()} training rows of "
            f"model {int(lengths.argmin())}",
            ("fit_rows",),
        )
    if rows_array.min() < 0 or rows_array.max() >= data.n:
        raise DataError(f"rows must index the {data.n} examples of x", ("fit_rows",))
    seeds_array = np.asarray([int(s) for s in seeds], np.uint32)

    padded = n_models if mesh is None else -(-n_models // mesh.devices.size) * mesh.devices.size
    take = np.r_[np.arange(n_models), np.zeros(padded - n_models, int)]
    per_model = {
        "hp": {k: v[take] for k, v in hparams.items()},
        "rows": rows_array[take],
        "lengths": lengths[take],
    }
    sizes = tuple(sorted(set(lengths.tolist())))  # the distinct fold sizes: one permutation each

    start = time.perf_counter()

    def init_one(seed, hp):
        return create_train_state(
            model, make_optimizer(**hp), data.x.shape[1:], jax.random.key(seed)
        )

    init_all = jax.jit(jax.vmap(init_one)).lower(seeds_array[take], per_model["hp"])
    train_state = init_all.compile(compiler_options=run_once_options())(
        seeds_array[take], per_model["hp"]
    )
    one_params, one_state = jax.tree.map(lambda a: a[0], (train_state.params, train_state.state))
    placement = None if mesh is None else parallel.replicated(mesh)
    data = place(data, model, one_params, one_state, placement, target_kind(loss_fn))
    inf = jnp.full((padded,), jnp.inf, jnp.float32)
    zeros = jnp.zeros((padded,), jnp.int32)
    stop = StopState(inf, zeros, jnp.zeros((padded,), bool), zeros)
    if mesh is not None:
        train_state, per_model, stop = jax.device_put(
            (train_state, per_model, stop), parallel.model_sharded(mesh)
        )

    longest = int(lengths.max())
    n_steps = longest // batch_size
    log_names = ["loss", *named_metrics(metrics)]

    def epoch_one(ts, hp, model_rows, length, x, y):
        penalty = None if make_penalty is None else make_penalty(**hp)
        step = make_train_step(model, loss_fn, make_optimizer(**hp), metrics, penalty=penalty,
                               jit=False)  # fmt: skip
        n_batches = length // batch_size
        if shuffle:
            key = shuffle_key(ts, ts.step // n_batches)
            orders = [
                jnp.pad(jax.random.permutation(key, size), (0, longest - size)) for size in sizes
            ]
            order = orders[0]
            for size, candidate in zip(sizes[1:], orders[1:], strict=True):
                order = jnp.where(length == size, candidate, order)
        else:
            order = jnp.arange(longest)
        batches = model_rows[order[: n_steps * batch_size]].reshape(n_steps, batch_size)

        def body(ts, item):
            index, batch = item
            xb, yb = jax.tree.map(lambda a: jnp.take(a, batch, axis=0), (x, y))
            args = (ts.params, ts.state, ts.opt_state, (xb, yb), step_key(ts))
            params, state, opt_state, logs = step(*args)
            new = TrainState(params, state, opt_state, ts.step + 1, ts.key)
            active = index < n_batches
            ts = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, ts)
            return ts, {k: logs[k] for k in log_names}

        ts, logs = jax.lax.scan(body, ts, (jnp.arange(n_steps), batches))
        mask = (jnp.arange(n_steps) < n_batches).astype(jnp.float32)
        means = {k: jnp.sum(v * mask) / n_batches.astype(jnp.float32) for k, v in logs.items()}
        return ts, means

    tol_array = jnp.float32(tol)
    patience = -1 if n_iter_no_change is None else int(n_iter_no_change)

    @jax.jit
    def train_epoch(ts, stop, per_model, x, y):
        new, logs = jax.vmap(epoch_one, in_axes=(0, 0, 0, 0, None, None))(
            ts, per_model["hp"], per_model["rows"], per_model["lengths"], x, y
        )
        active = ~stop.stopped
        ts = jax.tree.map(
            lambda a, b: jnp.where(active.reshape(-1, *(1,) * (a.ndim - 1)), a, b), new, ts
        )
        logs = {k: jnp.where(active, v, jnp.nan) for k, v in logs.items()}
        if patience >= 0:
            stop = no_improvement(stop, logs["loss"], tol_array, patience)
        else:
            stop = stop._replace(epochs=stop.epochs + 1)
        return ts, stop, logs

    compiled = train_epoch.lower(train_state, stop, per_model, data.x, data.y).compile()
    compile_seconds = time.perf_counter() - start

    history: dict[str, list[np.ndarray]] = {}
    for _ in range(epochs):
        train_state, stop, logs = compiled(train_state, stop, per_model, data.x, data.y)
        for name, value in logs.items():
            history.setdefault(name, []).append(np.asarray(value)[:n_models])
        if patience >= 0 and bool(np.asarray(stop.stopped)[:n_models].all()):
            break
    train_state = jax.tree.map(lambda a: a[:n_models], train_state)
    return RowsResult(
        train_state,
        {k: np.stack(v) for k, v in history.items()},
        np.asarray(stop.epochs)[:n_models],
        compile_seconds,
    )


def predict_rows(model: Layer, params, state, x, rows: Sequence) -> list[np.ndarray]:
    """Each model's predictions (``train=False``) on its own rows of ``x``: one vmapped program
    over the padded rows; returns one array per model, ``(len(rows[m]), *output)``."""
    rows_array, lengths = padded_rows([np.asarray(r, np.int64) for r in rows])
    x = jnp.asarray(x)

    @jax.jit
    def predict(params, state, rows_array):
        def one(p, s, r):
            return model.apply(p, s, jnp.take(x, r, axis=0), train=False)[0]

        return jax.vmap(one)(params, state, rows_array)

    predictions = np.asarray(predict(params, state, rows_array))
    return [predictions[m, :length] for m, length in enumerate(lengths)]
