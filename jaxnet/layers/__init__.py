"""Layers with parameters or state. Activation layers live in :mod:`jaxnet.activations`."""

from jaxnet.layers.dense import Dense
from jaxnet.layers.reshape import Flatten

__all__ = ["Dense", "Flatten"]
