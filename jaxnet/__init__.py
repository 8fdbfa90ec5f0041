"""jaxnet: classic neural networks as pure JAX functions.

A model is a :class:`Layer` — ``init(key, input_shape) -> (output_shape, params, state)`` and
``apply(params, state, x, *, key=None, train=False) -> (y, new_state)`` — over dicts of arrays.

>>> import jax, jaxnet
>>> model = jaxnet.serial(jaxnet.Dense(100, kernel_init="he_normal"), jax.nn.relu, jaxnet.Dense(10))
>>> out_shape, params, state = model.init(jax.random.key(0), (64,))
>>> y, state = model.apply(params, state, jax.numpy.ones((5, 64)))
>>> out_shape, y.shape
((10,), (5, 10))

The top level re-exports what most programs use, grouped as the package is laid out (see
``docs/design.md``): the layer protocol and combinators, layers, recipes, training, diagnostics,
saving and export. Everything else lives in its module: ``activations`` (functions and their
one-line layers such as ``activations.Relu()``), ``init``, ``losses``, ``metrics``, ``optim``
(hand-written optimizers on optax's protocol), ``regularizers``, ``train`` (callbacks, loggers,
``lr_sweep``, per-example gradients), ``diagnostics``, ``topology``, ``models``, ``perceptron``,
``checkpoint``, ``datasets``, ``plots``, ``studies``.
"""

# isort: skip_file
# (the imports are grouped as the package is laid out, not alphabetically)
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

# The layer protocol, combinators and descriptions.
from jaxnet.core import Layer, apply_with_outputs, count_params, function_layer, init_model, serial
from jaxnet.description import build, describe, register
from jaxnet.summarize import summary
from jaxnet.topology import branch, concat, parallel, residual, select, wide_and_deep

# Layers.
from jaxnet.activations import Activation
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
from jaxnet.regularizers import ActivityRegularization

# Recipes: textbook models with their matching loss and metrics.
from jaxnet.recipes import Recipe, classifier_mlp, regression_mlp

# Training.
from jaxnet.train import (
    Callback,
    Checkpoint,
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

# Diagnostics.
from jaxnet.diagnostics import GradientMonitor, diagnose, diagnose_at_init

# Saving and export.
from jaxnet.saving import Preprocessing, SavedModel, load_model, save_model
from jaxnet.exporting import export, load_exported
from jaxnet.onnx_export import export_onnx

from jaxnet.version import __version__ as __version__

__all__ = [
    # modules
    "activations",
    "checkpoint",
    "convert",
    "diagnostics",
    "errors",
    "init",
    "layers",
    "losses",
    "metrics",
    "models",
    "optim",
    "perceptron",
    "recipes",
    "regularizers",
    "topology",
    "train",
    # the layer protocol, combinators and descriptions
    "Layer",
    "serial",
    "function_layer",
    "init_model",
    "apply_with_outputs",
    "count_params",
    "describe",
    "build",
    "register",
    "summary",
    "branch",
    "concat",
    "parallel",
    "residual",
    "select",
    "wide_and_deep",
    # layers
    "Dense",
    "Activation",
    "Dropout",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "BatchNorm",
    "LayerNorm",
    "ActivityRegularization",
    "Rescale",
    "RandomShift",
    "Flatten",
    "Conv1D",
    "Conv2D",
    "MaxPool",
    "AvgPool",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "RNN",
    "Bidirectional",
    "SimpleRNNCell",
    "GRUCell",
    "LSTMCell",
    # recipes
    "Recipe",
    "classifier_mlp",
    "regression_mlp",
    # training
    "TrainState",
    "create_train_state",
    "make_train_step",
    "make_epoch",
    "fit",
    "fit_many",
    "History",
    "evaluate",
    "predict",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "lr_find",
    # diagnostics
    "GradientMonitor",
    "diagnose",
    "diagnose_at_init",
    # saving and export
    "save_model",
    "load_model",
    "SavedModel",
    "Preprocessing",
    "export",
    "load_exported",
    "export_onnx",
]
