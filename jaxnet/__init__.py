"""jaxnet: classic neural networks as pure JAX functions.

A model is a :class:`Layer` — ``init(key, input_shape) -> (output_shape, params, state)`` and
``apply(params, state, x, *, key=None, train=False) -> (y, new_state)`` — over dicts of arrays.

>>> import jax, jaxnet
>>> model = jaxnet.serial(jaxnet.Dense(100, kernel_init="he_normal"), jax.nn.relu, jaxnet.Dense(10))
>>> params, state = jaxnet.init_model(model, jax.random.key(0), (64,))
>>> y, state = model.apply(params, state, jax.numpy.ones((5, 64)))
>>> y.shape
(5, 10)

Modules: ``activations``, ``init``, ``layers``, ``losses``, ``metrics``, ``optim`` (hand-written
optimizers on optax's protocol), ``regularizers``, ``recipes``, ``train``, ``diagnostics``,
``topology``, ``models``, ``perceptron``, ``checkpoint``, ``datasets``, ``plots``, ``studies``.
"""

from jaxnet import (
    activations,
    checkpoint,
    convert,
    diagnostics,
    errors,
    init,
    layers,
    losses,
    metrics,
    models,
    optim,
    perceptron,
    recipes,
    regularizers,
    topology,
    train,
)
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
from jaxnet.description import build, describe, register
from jaxnet.diagnostics import GradientMonitor, diagnose, diagnose_at_init
from jaxnet.exporting import export, load_exported
from jaxnet.layers import (
    RNN,
    AlphaDropout,
    AvgPool,
    BatchNorm,
    Bidirectional,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GaussianDropout,
    GaussianNoise,
    GlobalAvgPool,
    GlobalMaxPool,
    GRUCell,
    LayerNorm,
    LSTMCell,
    MaxPool,
    RandomShift,
    Rescale,
    SimpleRNNCell,
)
from jaxnet.onnx_export import export_onnx
from jaxnet.recipes import Recipe, classifier_mlp, regression_mlp
from jaxnet.regularizers import ActivityRegularization
from jaxnet.saving import Preprocessing, SavedModel, load_model, save_model
from jaxnet.summarize import summary
from jaxnet.topology import branch, concat, parallel, residual, select, wide_and_deep
from jaxnet.train import (
    Callback,
    EarlyStopping,
    History,
    TrainState,
    create_train_state,
    evaluate,
    fit,
    fit_many,
    lr_find,
    make_epoch,
    make_train_step,
    predict,
)

__version__ = "0.1.0"

__all__ = [
    "RNN",
    "Activation",
    "ActivityRegularization",
    "AlphaDropout",
    "AvgPool",
    "BatchNorm",
    "Bidirectional",
    "Callback",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Elu",
    "Flatten",
    "GRUCell",
    "GaussianDropout",
    "GaussianNoise",
    "Gelu",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "GradientMonitor",
    "History",
    "LSTMCell",
    "Layer",
    "LayerNorm",
    "LeakyRelu",
    "LogSoftmax",
    "MaxPool",
    "Preprocessing",
    "RandomShift",
    "Rescale",
    "Recipe",
    "Relu",
    "SavedModel",
    "Selu",
    "Sigmoid",
    "SimpleRNNCell",
    "Softmax",
    "Softplus",
    "Step",
    "Swish",
    "Tanh",
    "TrainState",
    "activations",
    "apply_with_outputs",
    "branch",
    "build",
    "checkpoint",
    "convert",
    "classifier_mlp",
    "concat",
    "count_params",
    "create_train_state",
    "describe",
    "diagnose",
    "diagnose_at_init",
    "diagnostics",
    "errors",
    "evaluate",
    "export",
    "export_onnx",
    "fit",
    "lr_find",
    "fit_many",
    "function_layer",
    "init",
    "init_model",
    "layers",
    "load_exported",
    "load_model",
    "losses",
    "make_epoch",
    "make_train_step",
    "metrics",
    "models",
    "optim",
    "parallel",
    "perceptron",
    "predict",
    "recipes",
    "regression_mlp",
    "register",
    "regularizers",
    "residual",
    "save_model",
    "select",
    "serial",
    "summary",
    "topology",
    "train",
    "wide_and_deep",
]
