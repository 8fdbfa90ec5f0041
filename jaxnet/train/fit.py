"""``fit``: the thin host loop around compiled epochs."""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.checkpoint import CheckpointManager
from jaxnet.compilation import run_once
from jaxnet.core import Layer, path_string
from jaxnet.errors import ConfigError, check_range
from jaxnet.train import parallel
from jaxnet.train.data import input_shapes, match_targets, output_shape, prepare
from jaxnet.train.evaluate import make_evaluate
from jaxnet.train.logging import default_progress
from jaxnet.train.step import (
    TrainState,
    create_train_state,
    make_epoch,
    named_metrics,
    probed_steps,
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


def _as_key(seed):
    if isinstance(seed, int | np.integer):
        return jax.random.key(int(seed))
    return seed


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
    verbose: int = 1,
    train_state: TrainState | None = None,
    penalty: Callable | None = None,
    shuffle: bool = True,
    checkpoint_dir=None,
    keep: int = 3,
    resume: bool = False,
    compute_dtype=None,
    mesh=None,
) -> tuple[TrainState, History]:
    """Train ``model`` on ``(x, y)``; return the final :class:`TrainState` and the :class:`History`.

    Each epoch is one compiled program (:func:`~jaxnet.train.step.make_epoch`): the data is moved to
    the device once, shuffled by a key derived from ``seed``, cut into ``batch_size`` batches (the
    remainder is dropped, a different one each epoch), and scanned over. Python runs only between
    epochs: validation, logging, callbacks. The same ``seed`` gives bit-identical results.

    Args:
      model: a :class:`~jaxnet.core.Layer` (e.g. from :func:`~jaxnet.serial` or a recipe).
      loss_fn: ``loss(predictions, targets) -> scalar``.
      optimizer: any optax-protocol ``GradientTransformation`` (``jaxnet.optim`` or ``optax``).
      x, y: arrays (or pytrees of arrays) with examples on the leading axis. Integer class labels
        are checked against the model's number of outputs before training starts.
      validation_data: ``(x_val, y_val)``; or ``validation_split``: the last fraction of ``x``.
      callbacks: objects following :mod:`jaxnet.train.callbacks`'s protocol.
      verbose: ``0`` silent; ``1`` a progress bar over epochs on a terminal, one line per epoch
        otherwise; ``2`` one line per epoch.
      train_state: continue from this state instead of initialising from ``seed``.
      penalty: ``penalty(params) -> scalar`` added to the loss (weight regularization).
      checkpoint_dir: save a checkpoint (TrainState, epoch, history) here after every epoch,
        keeping the newest ``keep`` (see :mod:`jaxnet.checkpoint`; a
        :class:`~jaxnet.checkpoint.CheckpointManager` may be passed instead of a path).
      resume: continue from the newest intact checkpoint in ``checkpoint_dir`` (if any) for the
        remaining epochs; the result is bit-identical to an uninterrupted run.
      compute_dtype: ``jnp.bfloat16`` for mixed precision (float32 master weights and loss).
      mesh: a ``jax.sharding.Mesh`` from :func:`~jaxnet.train.parallel.data_parallel_mesh`: each
        batch is split across its devices, params replicated (data parallelism).

    ``history.compile_seconds`` is the time spent compiling the epoch program, kept apart from
    the per-epoch ``history["time"]``.

    >>> ts, history = fit(model, losses.sparse_categorical_cross_entropy, optax.adam(1e-3),
    ...                   x, y, epochs=20, metrics=[metrics.accuracy], validation_split=0.1)
    """
    check_range("fit", "epochs", epochs, 0)
    check_range("fit", "batch_size", batch_size, 1)
    x, y, validation_data, n = prepare(
        x,
        y,
        batch_size=batch_size,
        validation_data=validation_data,
        validation_split=validation_split,
    )
    input_shape = input_shapes(x)
    if train_state is None:
        # One program, compiled for speed of compiling: it runs once.
        init = functools.partial(create_train_state, model, optimizer, input_shape)
        train_state = run_once(init, _as_key(seed))
    out_shape = output_shape(model, train_state.params, train_state.state, x)
    y = match_targets(y, out_shape)
    batch_sharding = None
    if mesh is None:
        x, y = jax.device_put((x, y))
    else:
        parallel.check_batch_size(mesh, batch_size)
        x, y, train_state = jax.device_put((x, y, train_state), parallel.replicated(mesh))
        batch_sharding = parallel.batch_sharded(mesh)
    if validation_data is not None:
        x_val, y_val = validation_data
        validation = jax.device_put(
            (x_val, match_targets(y_val, out_shape, "y_val")),
            None if mesh is None else parallel.replicated(mesh),
        )
        evaluate = make_evaluate(model, loss_fn, metrics)

    probers = [c for c in callbacks if getattr(c, "probe", None) is not None]
    if len(probers) > 1:
        raise ConfigError("fit: at most one callback may define a probe", ("fit",))
    probe = probers[0].probe if probers else None
    probe_every = getattr(probers[0], "every", 1) if probers else 1
    epoch_fn = jax.jit(
        make_epoch(
            model,
            loss_fn,
            optimizer,
            batch_size,
            metrics,
            penalty=penalty,
            probe=probe,
            probe_every=probe_every,
            shuffle=shuffle,
            compute_dtype=compute_dtype,
            batch_sharding=batch_sharding,
        )
    )
    callbacks = list(callbacks) + default_progress(epochs, verbose)
    history = History()
    train_state, start_epoch, manager = _restore(checkpoint_dir, keep, resume, train_state, history)
    if start_epoch and mesh is not None:  # a restored state lives on the default device
        train_state = jax.device_put(train_state, parallel.replicated(mesh))
    if start_epoch < epochs:
        start = time.perf_counter()
        epoch_fn = epoch_fn.lower(train_state, x, y).compile()
        history.compile_seconds = time.perf_counter() - start
    for callback in callbacks:
        getattr(callback, "on_train_begin", lambda ts: None)(train_state)

    log_names = ["loss", *named_metrics(metrics)]
    for epoch in range(start_epoch, epochs):
        start = time.perf_counter()
        steps_before = train_state.step
        new_state, logs, probes = epoch_fn(train_state, x, y)
        logs = jax.device_get(logs)  # one transfer for every log
        logs = {name: float(logs[name]) for name in log_names}
        if probe is not None:
            steps = int(steps_before) + np.array(probed_steps(n, batch_size, probe_every))
            probes = jax.device_get(probes)
            for callback in probers:
                callback.on_probe(epoch, steps, probes)
        if not all(np.isfinite(v) for v in logs.values()):
            probed_epoch = make_epoch(
                model, loss_fn, optimizer, batch_size, metrics, penalty=penalty,
                probe=_finite_probe, shuffle=shuffle, compute_dtype=compute_dtype,
                batch_sharding=batch_sharding,
            )  # fmt: skip
            where = _locate_non_finite(probed_epoch, train_state, x, y)
            warnings.warn(
                f"fit: non-finite training loss/metrics in epoch {epoch + 1} ({logs}); {where}. "
                "Stopped and kept the parameters from the end of the previous epoch. Lower the "
                "learning rate, clip gradients or check the data.",
                RuntimeWarning,
                stacklevel=2,
            )
            break
        train_state = new_state
        if validation_data is not None:
            val_logs = jax.device_get(evaluate(train_state.params, train_state.state, *validation))
            logs |= {f"val_{name}": float(val_logs[name]) for name in log_names}
        logs["time"] = time.perf_counter() - start
        history.append(logs)
        if manager is not None:
            manager.save(train_state, epoch + 1, metrics=logs, extra={"history": history.to_dict()})
        stop = False
        for callback in callbacks:
            hook = getattr(callback, "on_epoch_end", None)
            stop = bool(hook and hook(epoch, logs, train_state)) or stop
        if stop:
            break

    for callback in callbacks:
        hook = getattr(callback, "on_train_end", None)
        replacement = hook(train_state, history) if hook else None
        train_state = train_state if replacement is None else replacement
    return train_state, history


def _restore(checkpoint_dir, keep, resume, train_state, history):
    """``(train_state, first epoch, manager)``: from the newest good checkpoint when resuming."""
    if checkpoint_dir is None:
        if resume:
            raise ConfigError("resume=True needs a checkpoint_dir to resume from", ("fit",))
        return train_state, 0, None
    manager = checkpoint_dir
    if not isinstance(manager, CheckpointManager):
        manager = CheckpointManager(checkpoint_dir, keep=keep)
    if not resume:
        if manager.manifests():
            raise ConfigError(
                f"{manager.directory} already holds checkpoints; pass resume=True to continue from "
                "the newest one, or use an empty checkpoint_dir",
                ("fit",),
            )
        return train_state, 0, manager
    restored = manager.restore_latest(train_state)
    if restored is None:
        return train_state, 0, manager
    history.history = restored.manifest["extra"].get("history", {})
    return restored.tree, restored.epoch, manager


def _finite_probe(*, grads, params, updates, outputs, loss):
    """Per step: is the loss finite, each layer's output, each gradient leaf?"""
    del params, updates

    def finite(tree):
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))

    return {
        "loss": jnp.isfinite(loss),
        "outputs": {name: finite(out) for name, out in outputs.items()},
        "grads": {
            path_string(path): jnp.all(jnp.isfinite(g))
            for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]
        },
    }


def _locate_non_finite(probed_epoch, train_state, x, y) -> str:
    """Re-run a failed epoch with :func:`_finite_probe` on every step; say where it first broke.

    Only called after a failure, so normal epochs pay nothing.
    """
    _, _, probes = jax.jit(probed_epoch)(train_state, x, y)
    probes = jax.tree.map(np.asarray, probes)
    ok = probes["loss"].copy()
    for flags in [*probes["outputs"].values(), *probes["grads"].values()]:
        ok &= flags
    if ok.all():
        return "re-running the epoch step by step found no non-finite loss, output or gradient"
    i = int(np.argmin(ok))
    step = int(train_state.step) + i
    layers = list(probes["outputs"])
    bad_outputs = [name for name in layers if not probes["outputs"][name][i]]
    bad_grads = [name for name, flags in probes["grads"].items() if not flags[i]]
    order = {name: k for k, name in enumerate(layers)}
    bad_grads.sort(key=lambda name: order.get(name.split("/")[0], len(order)))
    loss = "finite" if probes["loss"][i] else "non-finite"
    parts = [f"first at step {step} (batch {i + 1} of this epoch): the loss was {loss}"]
    if bad_outputs:
        parts.append(f"the first layer with a non-finite output was {bad_outputs[0]}")
    if bad_grads:
        first = bad_grads[0].split("/")[0]
        parts.append(
            f"the first layer with a non-finite gradient was {first} ({len(bad_grads)} of "
            f"{len(probes['grads'])} gradient arrays non-finite, e.g. {bad_grads[0]})"
        )
    return ", ".join(parts)
