"""jaxnet: classic neural networks as pure JAX functions.

A model is a :class:`Layer` — ``init(key, input_shape) -> (output_shape, params, state)`` and
``apply(params, state, x, *, key=None, train=False) -> (y, new_state)`` — over plain dicts of arrays.

>>> import jax, jaxnet
>>> model = jaxnet.serial(jaxnet.Dense(100, kernel_init="he_normal"), jax.nn.relu, jaxnet.Dense(10))
>>> params, state = jaxnet.init_model(model, jax.random.key(0), (64,))
"""

from jaxnet import activations, errors, init, losses, metrics, recipes
from jaxnet.activations import (
    Activation,
    Elu,
    Gelu,
    LeakyRelu,
    LogSoftmax,
    Relu,
    Selu,
    Sigmoid,
    Softmax,
    Softplus,
    Step,
    Swish,
    Tanh,
)
from jaxnet.core import Layer, apply_with_outputs, count_params, function_layer, init_model, serial
from jaxnet.layers import Dense, Flatten
from jaxnet.recipes import Recipe, classifier_mlp, regression_mlp
from jaxnet.train import (
    Callback,
    History,
    TrainState,
    create_train_state,
    evaluate,
    fit,
    make_epoch,
    make_train_step,
    predict,
)

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Callback",
    "Dense",
    "Elu",
    "Flatten",
    "Gelu",
    "History",
    "Layer",
    "LeakyRelu",
    "LogSoftmax",
    "Recipe",
    "Relu",
    "Selu",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Step",
    "Swish",
    "Tanh",
    "TrainState",
    "activations",
    "apply_with_outputs",
    "classifier_mlp",
    "count_params",
    "create_train_state",
    "errors",
    "evaluate",
    "fit",
    "function_layer",
    "init",
    "init_model",
    "losses",
    "make_epoch",
    "make_train_step",
    "metrics",
    "predict",
    "recipes",
    "regression_mlp",
    "serial",
]
