"""PyTorch eager: the textbook ``zero_grad / backward / step`` loop, on CUDA when there is a GPU.

On the GPU the data sit on the device and each epoch's shuffled batches are sliced there (what a
careful PyTorch user does for data this small); on the CPU they come from NumPy batches.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from peers.spec import (
    ADAM,
    LEARNING_RATE,
    Runner,
    Workload,
    flops_per_step,
    numpy_batches,
    timed_epochs,
)

DEFAULT_THREADS = torch.get_num_threads()


class LastStepGRU(nn.Module):
    def __init__(self, features: int, units: int):
        super().__init__()
        self.gru = nn.GRU(features, units, batch_first=True)

    def forward(self, x):
        return self.gru(x)[1][0]  # the last hidden state, (batch, units)


def make_model(workload: Workload) -> nn.Module:
    shape, modules = workload.input_shape, []
    for layer in workload.layers:
        kind = layer[0]
        if kind == "dense":
            modules.append(nn.Linear(shape[-1], layer[1]))
            shape = (layer[1],)
        elif kind == "conv":  # PyTorch convolutions are channels-first
            modules.append(nn.Conv2d(shape[-1], layer[1], layer[2], padding="same"))
            shape = (*shape[:-1], layer[1])
        elif kind == "maxpool":
            modules.append(nn.MaxPool2d(layer[1]))
            shape = (shape[0] // layer[1], shape[1] // layer[1], shape[2])
        elif kind == "flatten":
            modules.append(nn.Flatten())
            shape = (int(np.prod(shape)),)
        elif kind == "gru":
            modules.append(LastStepGRU(shape[-1], layer[1]))
            shape = (layer[1],)
        if layer[-1] == "relu" and kind in ("dense", "conv"):
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


SMALL_STEP_FLOPS = (
    1e8  # below this, one thread beats two: thread hand-offs cost more than they save
)


def build(workload: Workload) -> Runner:
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = 1 if flops_per_step(workload) < SMALL_STEP_FLOPS else DEFAULT_THREADS
    torch.set_num_threads(threads)
    model = make_model(workload).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=LEARNING_RATE, betas=(ADAM["b1"], ADAM["b2"]), eps=ADAM["eps"]
    )
    loss_fn = nn.CrossEntropyLoss()
    channels_first = "conv" in workload.kinds()
    rng = np.random.default_rng(0)

    def step(x, y):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    if device == "cuda":
        xs = workload.x if not channels_first else np.moveaxis(workload.x, -1, 1)
        x_all = torch.from_numpy(np.ascontiguousarray(xs)).to(device)
        y_all = torch.from_numpy(workload.y).long().to(device)

        def run_epoch():
            order = torch.from_numpy(rng.permutation(len(workload.x))).to(device)
            for i in range(workload.steps):
                rows = order[i * workload.batch : (i + 1) * workload.batch]
                step(x_all[rows], y_all[rows])
            torch.cuda.synchronize()

        return Runner(timed_epochs(run_epoch), note="CUDA, data on the device")

    def run_epoch():
        for x, y in numpy_batches(workload, rng):
            x = torch.from_numpy(np.moveaxis(x, -1, 1).copy() if channels_first else x)
            step(x, torch.from_numpy(y).long())

    return Runner(timed_epochs(run_epoch), note=f"{threads} thread(s)")
