"""Parallelism by placement: a device ``Mesh`` with the batch split across it and params
replicated (``fit``), or the models of ``fit_many`` split across it.

The training program is the same one ``fit`` runs on one device; only where arrays live changes.
XLA inserts the gradient all-reduce. ``fit(..., mesh=data_parallel_mesh())`` is all it takes;
``fit_many(..., mesh=models_mesh())`` gives each device its share of the models (no communication
at all: every model's step is independent).

On several hosts, call ``jax.distributed.initialize()`` first on every host; ``jax.devices()``
then lists every host's devices and the same mesh spans them (each host must feed the same data
arrays, which ``fit``'s in-memory data sets do).

To try it on a CPU: ``XLA_FLAGS=--xla_force_host_platform_device_count=4 python ...``.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnet.errors import ConfigError

DATA_AXIS = "data"
MODELS_AXIS = "models"


def data_parallel_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``devices`` (default: every device JAX sees)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), (DATA_AXIS,))


def models_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"models"`` for :func:`~jaxnet.fit_many`: each device trains a share of
    the models (default: every device JAX sees)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), (MODELS_AXIS,))


def model_sharded(mesh: Mesh) -> NamedSharding:
    """The leading (model) axis is split across the mesh's only axis."""
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (params, optimizer state, the data set)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """The leading (batch) axis is split across the mesh's ``"data"`` axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(mesh: Mesh, batch_size: int) -> None:
    devices = mesh.shape[DATA_AXIS]
    if batch_size % devices:
        raise ConfigError(
            f"batch_size={batch_size} must be a multiple of the {devices} devices of the mesh",
            ("fit",),
        )
