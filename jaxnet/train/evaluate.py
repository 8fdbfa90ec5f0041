"""Batched inference: ``predict`` and ``evaluate``, each one compiled program."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxnet.core import Layer
from jaxnet.train.step import named_metrics

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def make_predict(model: Layer, batch_size: int = 256) -> Callable:
    """``predict(params, state, x) -> y`` in inference mode, ``batch_size`` examples at a time.

    The data is padded to whole batches and the padding sliced off, so every example is predicted
    and the program compiles once per data-set size.
    """

    def predict(params, state, x):
        n = jax.tree.leaves(x)[0].shape[0]
        size = min(batch_size, n)
        pad = (-n) % size

        def batched(a):
            a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
            return a.reshape(-1, size, *a.shape[1:])

        outputs = jax.lax.map(
            lambda xb: model.apply(params, state, xb, train=False)[0], jax.tree.map(batched, x)
        )
        return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:])[:n], outputs)

    return jax.jit(predict)


def predict(model: Layer, params, state, x, *, batch_size: int = 256):
    """Model outputs for ``x`` (inference mode, batched). Compiled once per model and batch size."""
    cache = _COMPILED.setdefault(model.apply, {})
    if batch_size not in cache:
        cache[batch_size] = make_predict(model, batch_size)
    return cache[batch_size](params, state, x)


def make_evaluate(
    model: Layer, loss_fn: Callable, metrics=None, batch_size: int = 256, *, many: bool = False
):
    """``evaluate(params, state, x, y) -> {"loss": ..., metric: ...}`` on the whole data set.

    The one evaluator ``fit``, ``fit_many`` and the studies use: inference-mode predictions in
    batches (:func:`make_predict`), then the loss and every metric over all of them at once.
    With ``many=True``, ``params`` and ``state`` carry a leading model axis and every value gets
    one too (``vmap``; the data is shared).
    """
    predict_fn = make_predict(model, batch_size)
    metric_fns = named_metrics(metrics)

    def evaluate(params, state, x, y):
        predictions = predict_fn(params, state, x)
        return {
            "loss": loss_fn(predictions, y),
            **{n: m(predictions, y) for n, m in metric_fns.items()},
        }

    return jax.jit(jax.vmap(evaluate, in_axes=(0, 0, None, None)) if many else evaluate)


def evaluate(model: Layer, params, state, x, y, loss_fn, metrics=None, *, batch_size: int = 256):
    """Loss and metrics of ``model`` on ``(x, y)`` as a dict of Python floats."""
    logs = make_evaluate(model, loss_fn, metrics, batch_size)(params, state, x, y)
    return {name: float(value) for name, value in logs.items()}
