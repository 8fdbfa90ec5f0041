"""The textbook's typical MLPs as functions: each returns the model *with* its matching loss,
metrics and output activation, so the pairing cannot be got wrong.

Typical regression MLP: 1-5 hidden layers of 10-100 ReLU/SELU units, one linear output per target
dimension (ReLU/softplus for positive targets, a scaled logistic/tanh for a range (a, b)), MSE
(MAE/Huber with outliers). Typical classifier: the same hidden layers; binary -> 1 logistic unit,
multilabel -> 1 logistic unit per label, multiclass -> softmax over classes; cross-entropy.

Classifiers output **logits**: the logistic/softmax is inside the loss (exact, stable);
``recipe.output_activation(model_output)`` gives probabilities.

>>> recipe = classifier_mlp(10, hidden=(100, 100))
>>> recipe.model                         # hidden=(100, 100) is the default
mlp(10, kernel_init='he_normal', name='multiclass_mlp')
>>> recipe.loss.__name__, list(recipe.metrics)
('sparse_categorical_cross_entropy', ['accuracy'])

Training it::

    ts, history = fit(recipe.model, recipe.loss, optim.adam(1e-3), x, y, metrics=recipe.metrics)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from jaxnet import activations, losses, metrics, registry
from jaxnet import init as initializers
from jaxnet.core import Layer, constructor_info, described_as, function_layer, serial
from jaxnet.errors import ArgumentTypeError, ConfigError, check_int, check_range
from jaxnet.layers import AlphaDropout, BatchNorm, Dense, Dropout
from jaxnet.regularizers import elastic_net


class Recipe(NamedTuple):
    """A model and what belongs with it.

    ``info`` records the recipe call (``{"recipe": "classifier_mlp", "args": {...}}``) and its
    ``task``, so :func:`jaxnet.describe` can write the recipe out and :func:`jaxnet.build` rebuild
    it with its loss, metrics, output activation and penalty. ``fit``, ``evaluate`` and
    ``fit_many`` check the targets by the task's loss (:func:`jaxnet.losses.target_kind`).
    """

    model: Layer
    loss: Callable
    metrics: Mapping[str, Callable]
    output_activation: Callable  # model output -> prediction (probabilities for classifiers)
    penalty: Callable | None = None  # weight penalty for fit(..., penalty=recipe.penalty)
    info: Mapping = {}

    @property
    def task(self) -> str | None:
        """``"regression"``, ``"binary"``, ``"multilabel"`` or ``"multiclass"``."""
        return self.info.get("task")

    @property
    def targets(self) -> str | None:
        """The kind of targets the recipe's loss takes (:data:`jaxnet.losses.TARGET_KINDS`):
        ``"real"`` (regression), ``"binary"`` (binary, multilabel: 0/1), ``"classes"``
        (multiclass labels) or ``"distribution"`` (multiclass one-hot)."""
        return losses.target_kind(self.loss)


def check_hidden(owner: str | tuple[str, ...], hidden) -> tuple[int, ...]:
    """``hidden`` as a tuple of layer sizes (ints >= 1), or an error naming the argument."""
    if isinstance(hidden, str) or not hasattr(hidden, "__iter__"):
        raise ArgumentTypeError(
            f"hidden must be a sequence of layer sizes, e.g. hidden=(100, 100), got {hidden!r}",
            (owner,) if isinstance(owner, str) else owner,
        )
    return tuple(check_int(owner, f"hidden[{i}]", units, 1) for i, units in enumerate(hidden))


@registry.layer
def mlp(
    n_outputs: int,
    hidden: Sequence[int] = (100, 100),
    activation: str = "relu",
    kernel_init: str | Callable | None = None,
    name: str = "mlp",
    *,
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> Layer:
    """``Dense -> activation`` for each hidden size, then a linear ``Dense(n_outputs)``.

    ``kernel_init`` defaults to :func:`jaxnet.init.recommended_for` ``(activation)``.
    ``batch_norm=True`` puts a
    ``BatchNorm`` between each hidden ``Dense`` (then without bias, which BatchNorm's own bias makes
    redundant) and its activation; ``dropout=rate`` adds ``Dropout(rate)`` after each hidden
    activation (``AlphaDropout`` for SELU, which plain dropout would de-normalise).
    """
    check_int(name, "n_outputs", n_outputs, 1)
    hidden = check_hidden(name, hidden)
    check_range(name, "dropout", dropout, 0.0, 1.0, high_open=True)
    kernel_init = kernel_init or initializers.recommended_for(activation)
    layers = []
    for units in hidden:
        layers.append(Dense(units, kernel_init=kernel_init, use_bias=not batch_norm))
        if batch_norm:
            layers.append(BatchNorm())
        layers.append(activations.Activation(activation))
        if dropout:
            layers.append(AlphaDropout(dropout) if activation == "selu" else Dropout(dropout))
    # Glorot on the output layer: it feeds a softmax/logistic/linear unit, not a ReLU.
    layers.append(Dense(n_outputs, kernel_init="glorot_uniform"))
    return described_as(
        serial(*layers, name=name),
        "mlp",
        n_outputs=n_outputs,
        hidden=tuple(hidden),
        activation=activation,
        kernel_init=initializers.spec_of(kernel_init),
        name=name,
        dropout=dropout,
        batch_norm=batch_norm,
    )


@registry.layer
def scaled_output(output: str, low: float, high: float) -> Layer:
    """``low + (high - low) * unit(z)``: a regression output in the range ``(low, high)``.

    ``output="sigmoid"`` uses the logistic ``unit``, ``"tanh"`` uses ``(tanh(z) + 1) / 2``.
    """
    if output not in ("sigmoid", "tanh"):
        raise ConfigError(f"output must be sigmoid or tanh, got {output!r}", ("scaled_output",))
    if not low < high:
        raise ConfigError(f"needs low < high, got low={low}, high={high}", (f"scaled_{output}",))

    def unit(z):
        return activations.sigmoid(z) if output == "sigmoid" else (activations.tanh(z) + 1) / 2

    def scaled(z):
        return low + (high - low) * unit(z)

    record = constructor_info("scaled_output", output=output, low=low, high=high)
    info = {"activation": output, **record}
    return function_layer(scaled, f"scaled_{output}", info)


def weight_penalty(l1: float = 0.0, l2: float = 0.0) -> Callable | None:
    """``l1 * sum|w| + l2 * sum w**2`` over every kernel (no biases); ``None`` if both are 0."""
    return elastic_net(l1, l2) if (l1 or l2) else None


_REGRESSION_LOSSES = {"mse": losses.mse, "mae": losses.mae, "huber": losses.huber}


@registry.recipe
def regression_mlp(
    n_outputs: int = 1,
    hidden: Sequence[int] = (100, 100),
    activation: str = "relu",
    *,
    output: str = "none",
    output_range: tuple[float, float] | None = None,
    loss: str = "mse",
    kernel_init: str | Callable | None = None,
    dropout: float = 0.0,
    batch_norm: bool = False,
    l1: float = 0.0,
    l2: float = 0.0,
) -> Recipe:
    """A regression MLP from the textbook table.

    Args:
      n_outputs: one output unit per target dimension.
      output: ``"none"`` (linear), ``"relu"``/``"softplus"`` (positive targets), or
        ``"sigmoid"``/``"tanh"`` scaled to ``output_range=(a, b)``.
      loss: ``"mse"``, ``"mae"`` or ``"huber"`` (the last two when there are outliers).
      dropout, batch_norm: see :func:`mlp`.
      l1, l2: weight penalty on every kernel, returned as ``recipe.penalty`` for
        ``fit(..., penalty=recipe.penalty)``.
    """
    if loss not in _REGRESSION_LOSSES:
        raise ConfigError(
            f"loss must be one of {sorted(_REGRESSION_LOSSES)}, got {loss!r}", ("regression_mlp",)
        )
    hidden = check_hidden("regression_mlp", hidden)
    extras = {"dropout": dropout, "batch_norm": batch_norm}
    model = mlp(n_outputs, hidden, activation, kernel_init, "regression_mlp", **extras)
    if output in ("sigmoid", "tanh"):
        if output_range is None or not output_range[0] < output_range[1]:
            raise ConfigError(
                f"output={output!r} needs output_range=(a, b) with a < b, got {output_range}",
                ("regression_mlp",),
            )
        head = scaled_output(output, *output_range)
        model = serial(*model.info["children"].values(), head, name="regression_mlp")
    elif output in ("relu", "softplus"):
        model = serial(
            *model.info["children"].values(), activations.Activation(output), name="regression_mlp"
        )
    elif output not in ("none", "linear"):
        raise ConfigError(
            f"output must be none, relu, softplus, sigmoid or tanh, got {output!r}",
            ("regression_mlp",),
        )
    recipe_metrics = {"mae": metrics.mae, "rmse": metrics.rmse}
    penalty = weight_penalty(l1, l2)
    info = _recipe_info(
        "regression_mlp",
        "regression",
        n_outputs=n_outputs,
        hidden=tuple(hidden),
        activation=activation,
        output=output,
        output_range=None if output_range is None else tuple(output_range),
        loss=loss,
        kernel_init=initializers.spec_of(kernel_init or initializers.recommended_for(activation)),
        dropout=dropout,
        batch_norm=batch_norm,
        l1=l1,
        l2=l2,
    )
    loss_fn = _REGRESSION_LOSSES[loss]
    return Recipe(model, loss_fn, recipe_metrics, activations.identity, penalty, info)


def _recipe_info(recipe_name: str, recipe_task: str, **args) -> dict:
    return {"recipe": recipe_name, "task": recipe_task, "args": args}


@registry.recipe
def classifier_mlp(
    n_classes: int,
    hidden: Sequence[int] = (100, 100),
    activation: str = "relu",
    *,
    task: str = "multiclass",
    labels: str = "sparse",
    kernel_init: str | Callable | None = None,
    dropout: float = 0.0,
    batch_norm: bool = False,
    l1: float = 0.0,
    l2: float = 0.0,
) -> Recipe:
    """A classification MLP from the textbook table.

    Args:
      n_classes: classes (multiclass), labels (multilabel), or 1 for binary.
      task: ``"binary"`` (1 logistic unit, BCE), ``"multilabel"`` (1 logistic unit per label,
        BCE) or ``"multiclass"`` (softmax, cross-entropy).
      labels: for multiclass, ``"sparse"`` integer labels or ``"one_hot"`` targets.
      dropout, batch_norm: see :func:`mlp`.
      l1, l2: weight penalty on every kernel, returned as ``recipe.penalty`` for
        ``fit(..., penalty=recipe.penalty)``.
    """
    check_int("classifier_mlp", "n_classes", n_classes, 1)
    hidden = check_hidden("classifier_mlp", hidden)
    extras = {"dropout": dropout, "batch_norm": batch_norm}
    penalty = weight_penalty(l1, l2)
    kernel_init = kernel_init or initializers.recommended_for(activation)
    info = _recipe_info(
        "classifier_mlp",
        task,
        n_classes=n_classes,
        hidden=tuple(hidden),
        activation=activation,
        task=task,
        labels=labels,
        kernel_init=initializers.spec_of(kernel_init),
        dropout=dropout,
        batch_norm=batch_norm,
        l1=l1,
        l2=l2,
    )
    if task == "binary":
        if n_classes not in (1, 2):
            raise ConfigError(
                f"a binary classifier has 1 output unit, got n_classes={n_classes}",
                ("classifier_mlp",),
            )
        model = mlp(1, hidden, activation, kernel_init, "binary_mlp", **extras)
        recipe_metrics = {"accuracy": metrics.binary_accuracy}
        sigmoid = activations.sigmoid
        return Recipe(model, losses.binary_cross_entropy, recipe_metrics, sigmoid, penalty, info)
    if task == "multilabel":
        model = mlp(n_classes, hidden, activation, kernel_init, "multilabel_mlp", **extras)
        recipe_metrics = {
            "hamming_accuracy": metrics.binary_accuracy,
            "exact_match": metrics.exact_match_accuracy,
        }
        sigmoid = activations.sigmoid
        return Recipe(model, losses.binary_cross_entropy, recipe_metrics, sigmoid, penalty, info)
    if task == "multiclass":
        check_range("classifier_mlp", "n_classes", n_classes, 2)
        if labels not in ("sparse", "one_hot"):
            raise ConfigError(
                f"labels must be 'sparse' or 'one_hot', got {labels!r}", ("classifier_mlp",)
            )
        loss = (
            losses.sparse_categorical_cross_entropy
            if labels == "sparse"
            else losses.categorical_cross_entropy
        )
        model = mlp(n_classes, hidden, activation, kernel_init, "multiclass_mlp", **extras)
        softmax = activations.softmax
        return Recipe(model, loss, {"accuracy": metrics.accuracy}, softmax, penalty, info)
    raise ConfigError(
        f"task must be binary, multilabel or multiclass, got {task!r}", ("classifier_mlp",)
    )
