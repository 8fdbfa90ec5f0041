"""Loss functions ``loss(predictions, targets, *, reduction="mean")``.

``reduction="mean"`` (default) averages over examples, ``"sum"`` adds them up and ``"none"``
returns one value per example, shape ``(batch,)``. Where a target has several components
(multi-output regression, multilabel classification) the per-example value is their mean, as in
Keras. Classification losses take **logits** by default (``from_logits=True``): the output
sigmoid/softmax is folded into the loss, which is exact and never takes ``log(0)``.

>>> loss = sparse_categorical_cross_entropy(jnp.array([[2.0, 0.0]]), jnp.array([0]))
>>> round(float(loss), 6)             # -log(e**2 / (e**2 + 1))
0.126928
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

from jaxnet.activations import log_softmax
from jaxnet.errors import ConfigError, ShapeError

# Probabilities are clipped to [EPSILON, 1 - EPSILON] before a log (Keras' default epsilon).
EPSILON = 1e-7


def _reduce(per_example, reduction: str):
    if reduction == "mean":
        return jnp.mean(per_example)
    if reduction == "sum":
        return jnp.sum(per_example)
    if reduction == "none":
        return per_example
    raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}", ("loss",))


def _mean_per_example(elementwise):
    return jnp.mean(elementwise.reshape(elementwise.shape[0], -1), axis=1)


def _same_shape(loss: str, predictions, targets):
    if predictions.shape != targets.shape:
        raise ShapeError(
            f"predictions and targets must have the same shape, got {tuple(predictions.shape)} "
            f"and {tuple(targets.shape)} (reshape a target vector (n,) to (n, 1) for one output)",
            (loss,),
        )


def _sparse_labels(loss: str, scores, labels):
    if labels.shape != scores.shape[:-1] or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ShapeError(
            f"expected integer labels of shape {tuple(scores.shape[:-1])} for scores of shape "
            f"{tuple(scores.shape)}, got {labels.dtype} labels of shape {tuple(labels.shape)}",
            (loss,),
        )


def mean_squared_error(predictions, targets, *, reduction: str = "mean"):
    """MSE: ``mean((y_hat - y)^2)``."""
    _same_shape("mean_squared_error", predictions, targets)
    return _reduce(_mean_per_example((predictions - targets) ** 2), reduction)


def mean_absolute_error(predictions, targets, *, reduction: str = "mean"):
    """MAE: ``mean(|y_hat - y|)``; robust to outliers."""
    _same_shape("mean_absolute_error", predictions, targets)
    return _reduce(_mean_per_example(jnp.abs(predictions - targets)), reduction)


def huber(predictions, targets, *, delta: float = 1.0, reduction: str = "mean"):
    """Huber: ``e^2 / 2`` for ``|e| <= delta``, ``delta * (|e| - delta / 2)`` beyond: MSE near 0,
    MAE for outliers."""
    _same_shape("huber", predictions, targets)
    error = jnp.abs(predictions - targets)
    quadratic = jnp.minimum(error, delta)
    elementwise = 0.5 * quadratic**2 + delta * (error - quadratic)
    return _reduce(_mean_per_example(elementwise), reduction)


def binary_cross_entropy(predictions, targets, *, from_logits: bool = True, reduction="mean"):
    """BCE ``-[y log p + (1 - y) log(1 - p)]`` for binary and multilabel targets in [0, 1].

    With logits it is computed as ``max(z, 0) - z y + log(1 + exp(-|z|))``, exact for any ``z``.
    """
    _same_shape("binary_cross_entropy", predictions, targets)
    targets = targets.astype(predictions.dtype)
    if from_logits:
        z = predictions
        elementwise = jnp.maximum(z, 0) - z * targets + jnp.log1p(jnp.exp(-jnp.abs(z)))
    else:
        p = jnp.clip(predictions, EPSILON, 1 - EPSILON)
        elementwise = -(targets * jnp.log(p) + (1 - targets) * jnp.log1p(-p))
    return _reduce(_mean_per_example(elementwise), reduction)


def categorical_cross_entropy(predictions, targets, *, from_logits: bool = True, reduction="mean"):
    """CE ``-sum_k y_k log p_k`` for one-hot/probability targets of shape ``(batch, classes)``."""
    _same_shape("categorical_cross_entropy", predictions, targets)
    if from_logits:
        log_p = log_softmax(predictions)
    else:
        log_p = jnp.log(jnp.clip(predictions, EPSILON, 1.0))
    per_example = -jnp.sum(targets * log_p, axis=-1)
    return _reduce(per_example.reshape(per_example.shape[0], -1).mean(axis=1), reduction)


def sparse_categorical_cross_entropy(
    predictions, labels, *, from_logits: bool = True, reduction: str = "mean"
):
    """CE for integer labels of shape ``(batch,)`` and scores of shape ``(batch, classes)``."""
    _sparse_labels("sparse_categorical_cross_entropy", predictions, labels)
    if from_logits:
        log_p = log_softmax(predictions)
    else:
        log_p = jnp.log(jnp.clip(predictions, EPSILON, 1.0))
    return _reduce(_pick(-log_p, labels), reduction)


def negative_log_likelihood(log_probs, labels, *, reduction: str = "mean"):
    """NLL ``-log p[label]`` from log-probabilities (e.g. a ``LogSoftmax`` output layer)."""
    _sparse_labels("negative_log_likelihood", log_probs, labels)
    return _reduce(_pick(-log_probs, labels), reduction)


def _pick(values, labels):
    picked = jnp.take_along_axis(values, labels[..., None], axis=-1)[..., 0]
    return picked.reshape(picked.shape[0], -1).mean(axis=1)


def _signed(targets):
    """Targets in {-1, +1}; 0/1 targets are mapped to -1/+1 (as Keras does)."""
    is_binary = jnp.all((targets == 0) | (targets == 1))
    return jnp.where(is_binary, 2 * targets - 1, targets)


def hinge(predictions, targets, *, reduction: str = "mean"):
    """Hinge ``max(0, 1 - y * score)`` for targets in {-1, +1} (0/1 targets are mapped)."""
    _same_shape("hinge", predictions, targets)
    margin = jnp.maximum(0.0, 1.0 - _signed(targets.astype(predictions.dtype)) * predictions)
    return _reduce(_mean_per_example(margin), reduction)


def squared_hinge(predictions, targets, *, reduction: str = "mean"):
    """Squared hinge ``max(0, 1 - y * score)^2``."""
    _same_shape("squared_hinge", predictions, targets)
    margin = jnp.maximum(0.0, 1.0 - _signed(targets.astype(predictions.dtype)) * predictions)
    return _reduce(_mean_per_example(margin**2), reduction)


mse, mae = mean_squared_error, mean_absolute_error
nll = negative_log_likelihood

_BY_NAME = {
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "huber": huber,
    "binary_cross_entropy": binary_cross_entropy,
    "categorical_cross_entropy": categorical_cross_entropy,
    "sparse_categorical_cross_entropy": sparse_categorical_cross_entropy,
    "nll": negative_log_likelihood,
    "hinge": hinge,
    "squared_hinge": squared_hinge,
}


# What each loss expects as targets; ``fit``, ``evaluate``, ``fit_many`` and the studies check the
# targets by it (jaxnet.train.data.match_targets) before any compiling:
#   "real":         any finite numbers, shaped like the outputs (regression);
#   "binary":       0 or 1 (ints, bools or floats), shaped like the outputs (binary, multilabel);
#   "classes":      integer class labels in [0, classes), the outputs' shape without the last axis;
#   "distribution": one-hot or probability rows (>= 0, summing to 1), shaped like the outputs;
#   "signs":        -1/+1 (or 0/1, mapped to -1/+1), shaped like the outputs (hinge losses).
TARGET_KINDS = {
    mean_squared_error: "real",
    mean_absolute_error: "real",
    huber: "real",
    binary_cross_entropy: "binary",
    categorical_cross_entropy: "distribution",
    sparse_categorical_cross_entropy: "classes",
    negative_log_likelihood: "classes",
    hinge: "signs",
    squared_hinge: "signs",
}


def target_kind(loss_fn) -> str | None:
    """The kind of targets ``loss_fn`` takes (a value of :data:`TARGET_KINDS`), also
    through ``functools.partial``; ``None`` for a loss jaxnet does not know (then only shapes are
    checked).

    >>> target_kind(binary_cross_entropy), target_kind(functools.partial(huber, delta=2.0))
    ('binary', 'real')
    """
    while isinstance(loss_fn, functools.partial):
        loss_fn = loss_fn.func
    try:
        return TARGET_KINDS.get(loss_fn)
    except TypeError:  # an unhashable callable: not one of jaxnet's
        return None


def get(name_or_fn):
    """A loss from itself or its name (``"mse"``, ``"huber"``, ``"binary_cross_entropy"``)."""
    if callable(name_or_fn):
        return name_or_fn
    try:
        return _BY_NAME[name_or_fn]
    except KeyError:
        raise ConfigError(
            f"unknown loss {name_or_fn!r}; expected one of {sorted(_BY_NAME)}", ("loss",)
        ) from None
