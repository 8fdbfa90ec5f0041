"""What a prediction is: ``"logits"``, ``"probabilities"`` or ``"classes"``.

Recipes fold the output activation into the loss (softmax cross-entropy on logits is exact and
stable), so a model's raw outputs are logits. A :class:`~jaxnet.recipes.Recipe` knows its task
and its output activation, so ``predict(recipe, params, state, x, output=...)`` returns what a
user expects:

- ``"logits"``: the raw outputs, ``(n, K)`` (multiclass), ``(n, 1)`` (binary), ``(n, L)``
  (multilabel);
- ``"probabilities"``: the softmax of each row (multiclass) or the sigmoid of each output;
- ``"classes"``: the argmax, ``(n,)`` int32 (multiclass), or ``p >= 0.5`` as int32, ``(n,)``
  (binary) or ``(n, L)`` (multilabel).

``output=None`` is the recipe's prediction: probabilities for a classifier, the values for a
regression recipe (``"logits"`` too: its output activation is inside the model). A plain
:class:`~jaxnet.core.Layer` has no output activation: only its outputs (``None``/``"logits"``).

>>> from jaxnet import classifier_mlp, init_model, predict
>>> recipe = classifier_mlp(10, hidden=(16,))
>>> params, state = init_model(recipe.model, jax.random.key(0), (64,))
>>> x = jnp.ones((3, 64))
>>> probabilities = predict(recipe, params, state, x)                  # (n, 10), rows sum to 1
>>> probabilities.shape, bool(jnp.allclose(probabilities.sum(axis=1), 1.0))
((3, 10), True)
>>> labels = predict(recipe, params, state, x, output="classes")       # (n,) int32
>>> labels.shape, labels.dtype
((3,), dtype('int32'))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnet import activations
from jaxnet.core import Layer
from jaxnet.errors import ConfigError
from jaxnet.recipes import Recipe

OUTPUTS = ("logits", "probabilities", "classes")
CLASSIFICATION = ("binary", "multilabel", "multiclass")


def task_of(recipe: Recipe) -> str:
    """``"regression"``, ``"binary"``, ``"multilabel"`` or ``"multiclass"``: the recorded task,
    else the one the output activation implies (softmax: multiclass, sigmoid: binary)."""
    task = recipe.info.get("task")
    if task is not None:
        return task
    name = activations.spec_of(recipe.output_activation)
    return {"softmax": "multiclass", "sigmoid": "binary", "logistic": "binary"}.get(
        name if isinstance(name, str) else None, "regression"
    )


def check_output(output, task: str | None, owner: str = "predict") -> str:
    """``output`` spelled out: ``None`` -> the task's default, and ``"values"`` for a regression
    (its output activation applied). A ConfigError when the task has no such output
    (probabilities of a regression, or of a plain layer: ``task=None``)."""
    if output is not None and output not in OUTPUTS:
        raise ConfigError(
            f"output must be one of {list(OUTPUTS)} or None, got {output!r}", (owner,)
        )
    if task in CLASSIFICATION:
        return output or "probabilities"
    if output in (None, "logits"):
        return "logits" if task is None else "values"
    if task is None:
        raise ConfigError(
            f"output={output!r} needs the model's output activation: pass the recipe (e.g. "
            "predict(recipe, ...)) rather than its model; a plain model gives its outputs only",
            (owner,),
        )
    raise ConfigError(
        f"a {task} model predicts values; output={output!r} is for classifiers (use None)", (owner,)
    )


@functools.partial(jax.jit, static_argnames=("activation", "task", "output"))
def convert(raw, activation: Callable, task: str, output: str):
    """Raw model outputs to ``output`` (see the module table) given the output ``activation``.

    ``"classes"`` is the argmax for a multiclass ``task``, else ``activation(raw) >= 0.5`` (the
    last axis dropped when it has one unit: a binary classifier gives ``(n,)`` labels).
    """
    if output == "logits":
        return raw
    probabilities = activation(raw)
    if output in ("probabilities", "values"):
        return probabilities
    if task == "multiclass":
        return jnp.argmax(raw, axis=-1).astype(jnp.int32)
    classes = (probabilities >= 0.5).astype(jnp.int32)
    return classes[..., 0] if classes.shape[-1] == 1 else classes


class Finish(NamedTuple):
    """``finish(raw) -> output``: :func:`convert` with its static arguments, hashable so a
    compiled ``predict`` can be cached per finish."""

    activation: Callable
    task: str
    output: str

    def __call__(self, raw):
        return convert(raw, self.activation, self.task, self.output)


def finisher(activation: Callable | None, task: str | None, output=None, owner="predict"):
    """The :class:`Finish` for a model with this output ``activation`` and ``task`` (``None``
    for both: a plain model), or ``None`` when the raw outputs are the answer."""
    output = check_output(output, task, owner)
    if output == "logits" or (output == "values" and activation is activations.identity):
        return None
    return Finish(activation, task, output)


def resolve(model: Layer | Recipe, output=None, owner: str = "predict"):
    """``(layer, finish)``: the layer to run and ``finish(raw) -> output`` (``None``: raw).

    ``model`` is a :class:`~jaxnet.recipes.Recipe` (any output) or a plain layer (raw outputs).
    A regression recipe's default applies its output activation (the identity for the textbook
    recipes, whose output units are inside the model).
    """
    if isinstance(model, Recipe):
        return model.model, finisher(model.output_activation, task_of(model), output, owner)
    if isinstance(model, Layer):
        return model, finisher(None, None, output, owner)
    raise ConfigError(f"expected a jaxnet Layer or Recipe, got {type(model).__name__}", (owner,))
