"""The workload's layers as a jaxnet model."""

from __future__ import annotations

import jaxnet
from jaxnet import losses, optim
from peers.spec import ADAM, LEARNING_RATE, Workload


def model(workload: Workload):
    from jaxnet import layers

    children = []
    for layer in workload.layers:
        kind = layer[0]
        if kind == "dense":
            children.append(layers.Dense(layer[1], kernel_init="he_normal"))
        elif kind == "conv":
            children.append(
                layers.Conv2D(layer[1], layer[2], padding="SAME", kernel_init="he_normal")
            )
        elif kind == "maxpool":
            children.append(layers.MaxPool(layer[1]))
        elif kind == "flatten":
            children.append(layers.Flatten())
        elif kind == "gru":
            children.append(layers.RNN(layers.GRUCell(layer[1])))
        if layer[-1] == "relu" and kind in ("dense", "conv"):
            children.append(jaxnet.activations.Relu())
    return jaxnet.serial(*children)


def optimizer():
    return optim.adam(LEARNING_RATE, **ADAM)


LOSS = losses.sparse_categorical_cross_entropy
