"""The textbook's typical MLPs as functions: each returns the model *with* its matching loss,
metrics and output activation, so the pairing cannot be got wrong.

Typical regression MLP: 1-5 hidden layers of 10-100 ReLU/SELU units, one linear output per target
dimension (ReLU/softplus for positive targets, a scaled logistic/tanh for a range (a, b)), MSE
(MAE/Huber with outliers). Typical classifier: the same hidden layers; binary -> 1 logistic unit,
multilabel -> 1 logistic unit per label, multiclass -> softmax over classes; cross-entropy.

Classifiers output **logits**: the logistic/softmax is inside the loss (exact, stable);
``recipe.output_activation(model_output)`` gives probabilities.

>>> recipe = classifier_mlp(10, hidden=(100, 100))
>>> ts, history = fit(recipe.model, recipe.loss, optax.adam(1e-3), x, y, metrics=recipe.metrics)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from jaxnet import activations, losses, metrics
from jaxnet.core import Layer, function_layer, serial
from jaxnet.errors import ConfigError, check_range
from jaxnet.layers import Dense


class Recipe(NamedTuple):
    """A model and what belongs with it."""

    model: Layer
    loss: Callable
    metrics: Mapping[str, Callable]
    output_activation: Callable  # model output -> prediction (probabilities for classifiers)


def initializer_for(activation: str) -> str:
    """The textbook pairing: He for the ReLU family, LeCun for SELU, Glorot otherwise."""
    if activation in ("relu", "leaky_relu", "elu", "gelu", "swish", "silu"):
        return "he_normal"
    if activation == "selu":
        return "lecun_normal"
    return "glorot_uniform"


def mlp(
    n_outputs: int,
    hidden: Sequence[int] = (100, 100),
    activation: str = "relu",
    kernel_init: str | Callable | None = None,
    name: str = "mlp",
) -> Layer:
    """``Dense -> activation`` for each hidden size, then a linear ``Dense(n_outputs)``.

    ``kernel_init`` defaults to :func:`initializer_for(activation)`.
    """
    check_range(name, "n_outputs", n_outputs, 1)
    kernel_init = kernel_init or initializer_for(activation)
    layers = []
    for units in hidden:
        layers += [Dense(units, kernel_init=kernel_init), activations.Activation(activation)]
    # Glorot on the output layer: it feeds a softmax/logistic/linear unit, not a ReLU.
    layers.append(Dense(n_outputs, kernel_init="glorot_uniform"))
    return serial(*layers, name=name)


def _scaled(fn01: Callable, low: float, high: float) -> Callable:
    def scaled(z):
        return low + (high - low) * fn01(z)

    return scaled


_REGRESSION_LOSSES = {"mse": losses.mse, "mae": losses.mae, "huber": losses.huber}


def regression_mlp(
    n_outputs: int = 1,
    hidden: Sequence[int] = (100, 100),
    activation: str = "relu",
    *,
    output: str = "none",
    output_range: tuple[float, float] | None = None,
    loss: str = "mse",
    kernel_init: str | Callable | None = None,
) -> Recipe:
    """A regression MLP from the textbook table.

    Args:
      n_outputs: one output unit per target dimension.
      output: ``"none"`` (linear), ``"relu"``/``"softplus"`` (positive targets), or
        ``"sigmoid"``/``"tanh"`` scaled to ``output_range=(a, b)``.
      loss: ``"mse"``, ``"mae"`` or ``"huber"`` (the last two when there are outliers).
    """
    if loss not in _REGRESSION_LOSSES:
        raise ConfigError(f"loss must be one of {sorted(_REGRESSION_LOSSES)}, got {loss!r}", ("regression_mlp",))
    model = mlp(n_outputs, hidden, activation, kernel_init, name="regression_mlp")
    if output in ("sigmoid", "tanh"):
        if output_range is None or not output_range[0] < output_range[1]:
            raise ConfigError(
                f"output={output!r} needs output_range=(a, b) with a < b, got {output_range}",
                ("regression_mlp",),
            )
        unit = activations.sigmoid if output == "sigmoid" else (lambda z: (activations.tanh(z) + 1) / 2)
        head = function_layer(_scaled(unit, *output_range), f"scaled_{output}", {"activation": output})
        model = serial(*model.info["children"].values(), head, name="regression_mlp")
    elif output in ("relu", "softplus"):
        model = serial(*model.info["children"].values(), activations.Activation(output), name="regression_mlp")
    elif output not in ("none", "linear"):
        raise ConfigError(
            f"output must be none, relu, softplus, sigmoid or tanh, got {output!r}", ("regression_mlp",)
        )
    recipe_metrics = {"mae": metrics.mae, "rmse": metrics.rmse}
    return Recipe(model, _REGRESSION_LOSSES[loss], recipe_metrics, activations.identity)


def classifier_mlp(
    n_classes: int,
    hidden: Sequence[int] = (100, 100),
    activation: str = "relu",
    *,
    task: str = "multiclass",
    labels: str = "sparse",
    kernel_init: str | Callable | None = None,
) -> Recipe:
    """A classification MLP from the textbook table.

    Args:
      n_classes: classes (multiclass), labels (multilabel), or 1 for binary.
      task: ``"binary"`` (1 logistic unit, BCE), ``"multilabel"`` (1 logistic unit per label,
        BCE) or ``"multiclass"`` (softmax, cross-entropy).
      labels: for multiclass, ``"sparse"`` integer labels or ``"one_hot"`` targets.
    """
    if task == "binary":
        if n_classes not in (1, 2):
            raise ConfigError(f"a binary classifier has 1 output unit, got n_classes={n_classes}", ("classifier_mlp",))
        model = mlp(1, hidden, activation, kernel_init, name="binary_mlp")
        return Recipe(model, losses.binary_cross_entropy, {"accuracy": metrics.binary_accuracy}, activations.sigmoid)
    if task == "multilabel":
        model = mlp(n_classes, hidden, activation, kernel_init, name="multilabel_mlp")
        recipe_metrics = {"hamming_accuracy": metrics.binary_accuracy, "exact_match": metrics.exact_match_accuracy}
        return Recipe(model, losses.binary_cross_entropy, recipe_metrics, activations.sigmoid)
    if task == "multiclass":
        check_range("classifier_mlp", "n_classes", n_classes, 2)
        if labels not in ("sparse", "one_hot"):
            raise ConfigError(f"labels must be 'sparse' or 'one_hot', got {labels!r}", ("classifier_mlp",))
        loss = losses.sparse_categorical_cross_entropy if labels == "sparse" else losses.categorical_cross_entropy
        model = mlp(n_classes, hidden, activation, kernel_init, name="multiclass_mlp")
        return Recipe(model, loss, {"accuracy": metrics.accuracy}, activations.softmax)
    raise ConfigError(f"task must be binary, multilabel or multiclass, got {task!r}", ("classifier_mlp",))
