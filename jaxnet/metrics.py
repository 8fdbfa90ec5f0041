"""Metrics ``metric(predictions, targets) -> scalar``, on the same conventions as the losses.

Classification metrics take scores (logits by default; probabilities with ``from_logits=False``).
In ``fit`` a training metric is the mean of its per-batch values over the epoch; validation and
``evaluate`` compute every metric on the whole data set at once, so ``rmse`` and ``r2`` are exact.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from jaxnet.errors import ShapeError


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
