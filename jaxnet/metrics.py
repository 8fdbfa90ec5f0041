"""Metrics ``metric(predictions, targets) -> scalar``, on the same conventions as the losses.

Classification metrics take scores (logits by default; probabilities with ``from_logits=False``).
In ``fit`` a training metric is the mean of its per-batch values over the epoch; validation and
``evaluate`` compute every metric on the whole data set at once, so ``rmse`` and ``r2`` are exact.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from jaxnet.errors import ConfigError, ShapeError


def accuracy(predictions, targets):
    """Fraction of examples whose arg-max class is right; targets are labels ``(batch,)`` or one-hot
    ``(batch, classes)``."""
    predicted = jnp.argmax(predictions, axis=-1)
    if targets.ndim == predictions.ndim:
        targets = jnp.argmax(targets, axis=-1)
    if targets.shape != predicted.shape:
        raise ShapeError(
            f"expected labels of shape {tuple(predicted.shape)} or one-hot targets of shape "
            f"{tuple(predictions.shape)}, got {tuple(targets.shape)}",
            ("accuracy",),
        )
    return jnp.mean(predicted == targets)


def _positive(predictions, threshold: float, from_logits: bool):
    """Predicted positives: ``p > threshold``, i.e. ``logit > log(t / (1 - t))`` for logits."""
    if from_logits:
        return predictions > math.log(threshold / (1 - threshold))
    return predictions > threshold


def binary_accuracy(predictions, targets, *, threshold: float = 0.5, from_logits: bool = True):
    """Fraction of correct 0/1 decisions, a unit predicting 1 when its probability > ``threshold``.
    Averages over every label, so for multilabel targets it is the Hamming accuracy."""
    if predictions.shape != targets.shape:
        raise ShapeError(
            f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ",
            ("binary_accuracy",),
        )
    return jnp.mean(_positive(predictions, threshold, from_logits) == (targets > 0.5))


hamming_accuracy = binary_accuracy


def exact_match_accuracy(predictions, targets, *, threshold: float = 0.5, from_logits: bool = True):
    """Multilabel subset accuracy: an example counts only if all of its labels are right."""
    correct = _positive(predictions, threshold, from_logits) == (targets > 0.5)
    return jnp.mean(jnp.all(correct.reshape(correct.shape[0], -1), axis=1))


def mean_absolute_error(predictions, targets):
    """``mean(|y_hat - y|)``."""
    return jnp.mean(jnp.abs(predictions - targets))


def root_mean_squared_error(predictions, targets):
    """``sqrt(mean((y_hat - y)^2))``."""
    return jnp.sqrt(jnp.mean((predictions - targets) ** 2))


def r2_score(predictions, targets):
    """Coefficient of determination ``1 - SS_res / SS_tot``, averaged over outputs (scikit-learn's
    ``uniform_average``)."""
    predictions = predictions.reshape(predictions.shape[0], -1)
    targets = targets.reshape(targets.shape[0], -1)
    ss_res = jnp.sum((targets - predictions) ** 2, axis=0)
    ss_tot = jnp.sum((targets - jnp.mean(targets, axis=0)) ** 2, axis=0)
    return jnp.mean(1.0 - ss_res / ss_tot)


mae, rmse, r2 = mean_absolute_error, root_mean_squared_error, r2_score


# ----------------------------------------------------------------------------- direction

_MINIMIZED = ("loss", "error", "mae", "mse", "rmse", "hinge")
_MAXIMIZED = ("acc", "auc", "precision", "recall", "f1", "r2", "exact_match")
MODES = ("min", "max")


def direction(name: str, default: str | None = None) -> str:
    """``"min"`` if a smaller ``name`` is better (losses, errors), ``"max"`` if larger is better.

    The one rule every tool uses (early stopping, checkpoints kept by a metric, ``fit_many``'s
    best model, studies); it reads the name, as Keras's ``mode="auto"`` does, so ``"val_loss"``,
    ``"test_rmse"`` -> ``"min"`` and ``"val_accuracy"``, ``"r2"`` -> ``"max"``. An unknown name
    returns ``default``, or raises :class:`~jaxnet.errors.ConfigError` when there is none.

    >>> direction("val_loss"), direction("hamming_accuracy")
    ('min', 'max')
    """
    lowered = name.lower()
    if any(word in lowered for word in _MINIMIZED):
        return "min"
    if any(word in lowered for word in _MAXIMIZED):
        return "max"
    if default is not None:
        return check_mode(default, "direction")
    raise ConfigError(
        f"cannot tell whether {name!r} should go up or down; pass mode='min' or mode='max'",
        ("metrics",),
    )


def check_mode(mode: str, owner: str) -> str:
    """``mode`` if it is ``"min"`` or ``"max"``; else a :class:`~jaxnet.errors.ConfigError`."""
    if mode not in MODES:
        raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}", (owner,))
    return mode


def is_better(value: float, best: float, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in direction ``mode``; a NaN or
    infinite ``value`` never does."""
    if not math.isfinite(value):
        return False
    return value < best - min_delta if mode == "min" else value > best + min_delta
