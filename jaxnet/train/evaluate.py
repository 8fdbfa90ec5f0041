"""Batched inference: ``predict`` and ``evaluate``.

On in-memory arrays (one device, one model), ``predict``, ``evaluate`` and ``fit``'s validation
run a batch at a time through one program per batch shape (:func:`batch_program`; the last batch
padded with zeros, the padding dropped), so inputs of any size from ``batch_size`` up share one
program; the outputs are joined (and scored in one program, for ``evaluate``). Sources,
``fit_many`` and meshes run one :func:`make_predict`/:func:`make_evaluate` program per chunk or
data set. Every example's outputs, and the scores, are the same bits either way (tested).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.compilation import compiled_ahead
from jaxnet.core import Layer
from jaxnet.errors import DataError, check_int
from jaxnet.losses import target_kind
from jaxnet.outputs import resolve
from jaxnet.recipes import Recipe
from jaxnet.train import options
from jaxnet.train.data import (
    check_params,
    match_targets,
    num_examples,
    output_shape,
    to_numpy,
)
from jaxnet.train.parallel import put
from jaxnet.train.sources import RandomAccess, Stream, as_source, inputs_source, read_in_order
from jaxnet.train.step import named_metrics

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FINISHES: dict = {}


def make_predict(model: Layer, batch_size: int = 256, finish: Callable | None = None) -> Callable:
    """``predict(params, state, x) -> y`` in inference mode, ``batch_size`` examples at a time.

    The data is padded to whole batches and the padding sliced off, so every example is predicted
    and the program compiles once per data-set size. ``finish`` (e.g. probabilities from logits,
    :mod:`jaxnet.outputs`) is applied to the outputs in the same program.
    """
    check_int("predict", "batch_size", batch_size, 1)

    def predict(params, state, x):
        n = jax.tree.leaves(x)[0].shape[0]
        if n == 0:
            raise DataError("x is empty: no examples to predict", ("predict",))
        size = min(batch_size, n)
        pad = (-n) % size

        def batched(a):
            a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
            return a.reshape(-1, size, *a.shape[1:])

        outputs = jax.lax.map(
            lambda xb: model.apply(params, state, xb, train=False)[0], jax.tree.map(batched, x)
        )
        outputs = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:])[:n], outputs)
        return outputs if finish is None else finish(outputs)

    return jax.jit(predict)


def batch_program(model: Layer, finish: Callable | None = None) -> Callable:
    """``predict_batch(params, state, xb)``: one batch's outputs in inference mode (``finish``
    applied); one ``jax.jit`` per model and ``finish``."""
    cache = _COMPILED.setdefault(model.apply, {})
    if ("batch", finish) not in cache:

        def predict_batch(params, state, xb):
            outputs = model.apply(params, state, xb, train=False)[0]
            return outputs if finish is None else finish(outputs)

        cache["batch", finish] = jax.jit(predict_batch)
    return cache["batch", finish]


def finish_program(finish: Callable) -> Callable:
    """``finish`` (:mod:`jaxnet.outputs`) as a program of its own, applied to all of a data
    set's outputs at once as :func:`make_predict` applies it (softmax's bits depend on how many
    rows it sees)."""
    if finish not in _FINISHES:
        _FINISHES[finish] = jax.jit(lambda outputs: finish(outputs))
    return _FINISHES[finish]


def in_batches(x, batch_size: int) -> list:
    """``x`` (a pytree of NumPy arrays) as batches of ``min(batch_size, n)`` rows, the last padded
    with zeros as :func:`make_predict` pads it (views of ``x`` but for the last)."""
    n = jax.tree.leaves(x)[0].shape[0]
    size = min(batch_size, n)

    def rows(a, start):
        b = a[start : start + size]
        if len(b) < size:
            b = np.concatenate([b, np.zeros((size - len(b), *b.shape[1:]), b.dtype)])
        return b

    return [jax.tree.map(functools.partial(rows, start=s), x) for s in range(0, n, size)]


def predict(model: Layer | Recipe, params, state, x, *, batch_size: int = 256,
            steps: int | None = None, output: str | None = None):  # fmt: skip
    """Model outputs for ``x`` (inference mode, ``batch_size`` examples at a time). Compiled once
    per model and batch shape: ``x`` of any size from ``batch_size`` up runs the same program (a
    recipe's ``output``, e.g. the softmax, is a small program of its own per size).

    ``x`` may also be a :mod:`~jaxnet.train.sources` source (a memory-mapped array, a
    random-access source, or a stream of ``(x, y)`` batches with ``steps``): it is read in
    order, a chunk at a time, and the outputs are concatenated. ``x`` is checked as ``fit``
    checks it (:func:`~jaxnet.train.arrays.to_numpy`: numbers, not empty, finite).

    ``model`` may be a :class:`~jaxnet.recipes.Recipe`: then ``output`` picks ``"probabilities"``
    (a classifier's default), ``"classes"`` or ``"logits"`` (:mod:`jaxnet.outputs`).
    """
    model, finish = resolve(model, output)
    options.check("predict", model=model, batch_size=batch_size, steps_per_epoch=steps)
    source = inputs_source(x, steps)
    if source is None:
        x = to_numpy(x, "x")
        check_model_params("predict", model, params, state, x)
        batches = in_batches(x, batch_size)
        if len(batches) == 1:  # all of x, unpadded: one call (serving one example, say)
            return batch_program(model, finish)(params, state, batches[0])
        run, n = batch_program(model), jax.tree.leaves(x)[0].shape[0]
        outputs = jax.device_get([run(params, state, xb) for xb in batches])  # all dispatched
        joined = jax.device_put(jax.tree.map(lambda *a: np.concatenate(a)[:n], *outputs))
        return joined if finish is None else finish_program(finish)(joined)
    cache = _COMPILED.setdefault(model.apply, {})
    if (batch_size, finish) not in cache:
        cache[batch_size, finish] = make_predict(model, batch_size, finish)
    compiled = cache[batch_size, finish]

    def run(xs):  # (checked once per model and signature)
        check_model_params("predict", model, params, state, xs)
        return compiled(params, state, xs)

    chunks = [outputs for outputs, _ in predicted(source, batch_size, run)]
    return jax.tree.map(lambda *a: jnp.concatenate(a), *chunks)


def predicted(source, batch_size: int, run: Callable):
    """``(run(x), y)`` for each chunk of ``source``, read in order
    (:func:`~jaxnet.train.sources.read_in_order`). A chunk is read while the one before runs,
    and sent to the device once that one has finished. Device work is dispatched
    asynchronously: without the wait the host would read the whole source ahead of the device,
    every chunk's inputs alive at once. So at most two chunks of inputs are in memory: the one
    running (on the device) and the next (on the host)."""
    before, chunks = None, read_in_order(source, batch_size)
    while (chunk := next(chunks, None)) is not None:  # read while the one before runs
        if before is not None:
            jax.block_until_ready(before)
        before, ys = run(chunk[0]), chunk[1]
        chunk = None  # (the inputs go once sent, not after the next read)
        yield before, ys


_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_model_params(owner: str, model: Layer, params, state, x) -> None:
    """:func:`~jaxnet.train.data.check_params` for inputs like ``x``, once per model and
    signature of ``(params, state, x)``."""
    input_shape = jax.tree.map(lambda a: tuple(a.shape[1:]), x)
    leaves, treedef = jax.tree.flatten((params, state))
    signature = (str(treedef), tuple(jnp.shape(a) for a in leaves), repr(input_shape))
    seen = _CHECKED.setdefault(model.apply, set())
    if signature not in seen:
        check_params(owner, model, params, state, x)
        seen.add(signature)


def make_score(loss_fn: Callable, metrics=None):
    """``score(predictions, y) -> {"loss": ..., metric: ...}`` over a whole data set at once."""
    metric_fns = named_metrics(metrics)

    def score(predictions, y):
        return {
            "loss": loss_fn(predictions, y),
            **{n: m(predictions, y) for n, m in metric_fns.items()},
        }

    return score


def make_evaluate(
    model: Layer, loss_fn: Callable, metrics=None, batch_size: int = 256, *, many: bool = False
):
    """``evaluate(params, state, x, y) -> {"loss": ..., metric: ...}`` on the whole data set.

    The one evaluator ``fit``, ``fit_many`` and the studies use: inference-mode predictions in
    batches (:func:`make_predict`), then the loss and every metric over all of them at once (so
    ``rmse`` and ``r2`` are exact). With ``many=True``, ``params`` and ``state`` carry a leading
    model axis and every value gets one too (``vmap``; the data is shared).
    """
    predict_fn = make_predict(model, batch_size)
    score = make_score(loss_fn, metrics)

    def evaluate(params, state, x, y):
        return score(predict_fn(params, state, x), y)

    return jax.jit(jax.vmap(evaluate, in_axes=(0, 0, None, None)) if many else evaluate)


def evaluate(
    model: Layer, params, state, x, y, loss_fn, metrics=None, *, batch_size: int = 256,
    steps: int | None = None,
):  # fmt: skip
    """Loss and metrics of ``model`` on ``(x, y)`` as a dict of Python floats.

    ``x``/``y`` may also be a :mod:`~jaxnet.train.sources` source (see :func:`predict`): the
    predictions and targets are collected chunk by chunk, then scored at once. The data and
    targets are checked as ``fit`` checks them (:func:`~jaxnet.train.data.match_targets` with
    the kind of targets ``loss_fn`` takes): a label out of range is an error, not a NaN loss.
    """
    options.check("evaluate", model=model, loss_fn=loss_fn, metrics=metrics,
                    batch_size=batch_size, steps_per_epoch=steps)  # fmt: skip
    if as_source(x, y, steps, "evaluate") is None:
        x, y = to_numpy(x, "x"), to_numpy(y, "y")
        num_examples(x, y)
        check_model_params("evaluate", model, params, state, x)
        y = match_targets(y, output_shape(model, params, state, x), "y", target_kind(loss_fn))
    validate = make_validate(model, loss_fn, metrics, (x, y), batch_size, steps)
    return {name: float(value) for name, value in validate(params, state).items()}


def _validate_in_batches(model: Layer, score: Callable, data, batch_size: int, ahead=None):
    """``validate(params, state)`` on arrays, one device: the inputs a batch at a time through
    :func:`batch_program` (``predict``'s), then every batch's outputs joined and scored in one
    program; the same bits as :func:`make_evaluate`'s one program (tested), whose ``lax.map``
    loop takes longer to compile than both. ``ahead``: as :func:`make_validate`'s."""
    x, y = jax.device_get(data)  # (batches of NumPy rows; ``fit`` placed its copy on the device)
    n = jax.tree.leaves(x)[0].shape[0]
    batches, run, y = in_batches(x, batch_size), batch_program(model), jax.device_put(y)

    @jax.jit
    def scored(outputs, y):
        return score(jax.tree.map(lambda *a: jnp.concatenate(a)[:n], *outputs), y)

    if ahead:
        outputs = (jax.eval_shape(run, *ahead, batches[0]),) * len(batches)
        run, scored = compiled_ahead(run, *ahead, batches[0]), compiled_ahead(scored, outputs, y)

    def validate(params, state):
        return scored(tuple(run(params, state, b) for b in batches), y)

    return validate


def make_validate(model: Layer, loss_fn: Callable, metrics, data, batch_size: int = 256,
                  steps: int | None = None, sharding=None, many: bool = False,
                  ahead=None):  # fmt: skip
    """``validate(params, state) -> logs`` on fixed ``data``: an ``(x, y)`` pair of arrays, or a
    :mod:`~jaxnet.train.sources` source (or a pair that makes one), whose predictions are
    collected chunk by chunk (each placed with ``sharding``) and then scored at once. Compiles
    once, runs every epoch. ``many``: params and state carry a leading model axis (``fit_many``).
    ``ahead``: ``(params, state)`` shapes (:func:`jax.eval_shape`) to start compiling the program
    for arrays now, on a worker thread (:func:`~jaxnet.compilation.compiled_ahead`); the first call
    waits for it.
    """

    source = data if isinstance(data, RandomAccess | Stream) else as_source(*data, steps)
    if source is None and not many and sharding is None:
        return _validate_in_batches(model, make_score(loss_fn, metrics), data, batch_size, ahead)
    if source is None:
        evaluate_fn = make_evaluate(model, loss_fn, metrics, batch_size, many=many)
        if ahead:
            evaluate_fn = compiled_ahead(evaluate_fn, *ahead, *data)

        def validate_arrays(params, state):
            return evaluate_fn(params, state, *data)

        return validate_arrays
    predict_fn, score = make_predict(model, batch_size), make_score(loss_fn, metrics)
    if many:  # one prediction per model; predictions get a leading model axis
        predict_fn = jax.jit(jax.vmap(predict_fn, in_axes=(0, 0, None)))
        score = jax.vmap(score, in_axes=(0, None))
    score, axis, kind = jax.jit(score), int(many), target_kind(loss_fn)

    def validate(params, state):
        predictions, targets = [], []
        run = lambda xs: predict_fn(params, state, put(xs, sharding))  # noqa: E731
        for outputs, ys in predicted(source, batch_size, run):
            predictions.append(outputs)
            targets.append(ys)
        predictions = jax.tree.map(lambda *a: jnp.concatenate(a, axis=axis), *predictions)
        out_shape = predictions.shape[axis + 1 :]
        targets = match_targets(np.concatenate(targets), out_shape, "y", kind)
        return score(predictions, put(targets, sharding))

    return validate
