"""Layers with parameters or state. Activation layers live in :mod:`jaxnet.activations`."""

from jaxnet.layers.conv import Conv1D, Conv2D
from jaxnet.layers.dense import Dense
from jaxnet.layers.dropout import (
    AlphaDropout,
    Dropout,
    GaussianDropout,
    GaussianNoise,
    RandomShift,
)
from jaxnet.layers.normalization import BatchNorm, LayerNorm
from jaxnet.layers.pooling import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool, UpSample
from jaxnet.layers.recurrent import RNN, Bidirectional, Cell, GRUCell, LSTMCell, SimpleRNNCell
from jaxnet.layers.rescale import Rescale
from jaxnet.layers.reshape import Flatten

__all__ = [
    "RNN",
    "AlphaDropout",
    "AvgPool",
    "BatchNorm",
    "Bidirectional",
    "Cell",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GRUCell",
    "GaussianDropout",
    "GaussianNoise",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "LSTMCell",
    "LayerNorm",
    "MaxPool",
    "RandomShift",
    "Rescale",
    "SimpleRNNCell",
    "UpSample",
]
