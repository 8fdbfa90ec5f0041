"""Parallelism by placement: a device ``Mesh`` with the batch split across it and params
replicated (``fit``), or the models of ``fit_many`` split across it.

The training program is the same one ``fit`` runs on one device; only where arrays live changes.
XLA inserts the gradient all-reduce. ``fit(..., mesh=data_parallel_mesh())`` is all it takes;
``fit_many(..., mesh=models_mesh())`` gives each device its share of the models (no communication
at all: every model's step is independent).

The batches are the one-device run's (``shard_order="global"``, the default): the same seed gives
the same model on any number of devices, as PyTorch's ``DistributedSampler`` gives one process's
global batch. In-memory arrays are then replicated (every device holds them whole and gathers its
part of every batch from its copy: no communication, as much memory per device as one device
used); a data source is read by each process only for its own devices' part of every batch.
``shard_order="per_device"`` splits in-memory arrays by rows across the devices instead (each
holds ``1 / devices`` of them) and each device shuffles and gathers its own rows: for data that
must live split, at the price of other batches than a one-device run's, so another model for the
same seed, one that also changes with the number of devices.

Several processes (several hosts, or several processes on one machine) run the same program:
every process calls :func:`initialize` (``jax.distributed.initialize``) and then ``fit`` with the
same arguments; ``jax.devices()`` lists every process's devices and the mesh spans them. Each
process places only its own shards, only process 0 prints progress and writes checkpoints, and
every process returns the same (replicated) train state. ``python -m jaxnet.launch`` starts such
processes on one machine.

To try it on a CPU: ``XLA_FLAGS=--xla_force_host_platform_device_count=4 python ...``.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnet.errors import ArgumentTypeError, ConfigError

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


SHARD_ORDERS = ("global", "per_device")


def check_shard_order(shard_order, owner: str = "fit", name: str = "shard_order") -> str:
    """``shard_order`` if it is one of :data:`SHARD_ORDERS`; else a
    :class:`~jaxnet.errors.ConfigError` (an :class:`~jaxnet.errors.ArgumentTypeError` for a
    non-string) naming it."""
    if not isinstance(shard_order, str) or shard_order not in SHARD_ORDERS:
        error = ConfigError if isinstance(shard_order, str) else ArgumentTypeError
        raise error(f"{name} must be 'global' or 'per_device', got {shard_order!r}",
                    (owner,))  # fmt: skip
    return shard_order


def data_shards(mesh, shard_order: str = "global") -> int:
    """Into how many row blocks ``fit`` splits in-memory data: the devices of ``mesh`` for
    ``shard_order="per_device"``, else 1 (no mesh, or the data replicated on every device)."""
    return mesh.shape[DATA_AXIS] if mesh is not None and shard_order == "per_device" else 1


def put(tree, sharding=None):
    """``jax.device_put(tree, sharding)`` that also works when ``sharding`` spans several
    processes: every process passes the same whole arrays and places its own shards.

    PRNG key leaves keep their implementation. ``sharding=None``: the default device.
    """
    if sharding is None or sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def one(leaf):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(leaf)
            return jax.random.wrap_key_data(one(jax.random.key_data(leaf)), impl=impl)
        array = np.asarray(leaf)
        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    return jax.tree.map(one, tree)


def shard_rows(tree, mesh: Mesh):
    """Every leaf split by rows across the mesh's ``"data"`` axis (each device holds ``n // d``
    consecutive rows; the last ``n % d`` rows, fewer than the devices, are left out)."""
    devices = mesh.shape[DATA_AXIS]
    n = jax.tree.leaves(tree)[0].shape[0] // devices * devices
    sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    return put(jax.tree.map(lambda a: np.asarray(a)[:n], tree), sharding)


def local_positions(mesh: Mesh) -> list[int]:
    """Positions along the ``"data"`` axis of this process's devices, in mesh order."""
    here = jax.process_index()
    return [i for i, device in enumerate(mesh.devices.flat) if device.process_index == here]


def from_local_blocks(blocks, mesh: Mesh):
    """A global array split by rows over the ``"data"`` axis, from this process's blocks (one per
    device of :func:`local_positions`, all the same length, in that order)."""
    local = jax.tree.map(lambda *a: np.concatenate(a), *blocks)
    devices = mesh.shape[DATA_AXIS]
    sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))

    def one(a):
        global_shape = (a.shape[0] // len(blocks) * devices, *a.shape[1:])
        return jax.make_array_from_process_local_data(sharding, a, global_shape)

    return jax.tree.map(one, local)


def is_main_process() -> bool:
    """Whether this is process 0, the one that prints and writes files."""
    return jax.process_index() == 0


COORDINATOR_ENV = "JAXNET_COORDINATOR"
PROCESSES_ENV = "JAXNET_NUM_PROCESSES"
PROCESS_ID_ENV = "JAXNET_PROCESS_ID"
HEARTBEAT_ENV = "JAXNET_HEARTBEAT_SECONDS"
LAUNCHER_ENV = "JAXNET_LAUNCHER_PID"
HEARTBEAT_SECONDS = 20  # a process silent this long is dead: the others stop (JAX's default: 100)


def initialize(heartbeat_timeout_seconds: int | None = None) -> int:
    """Join the processes started by ``python -m jaxnet.launch`` (read from the environment:
    ``JAXNET_COORDINATOR``, ``JAXNET_NUM_PROCESSES``, ``JAXNET_PROCESS_ID``) with
    ``jax.distributed.initialize``; return the number of processes. Without those variables,
    nothing happens (one process) — on a cluster call ``jax.distributed.initialize()`` yourself,
    which reads the cluster's own environment (SLURM, Kubernetes, Cloud TPU).

    A process that dies is noticed by the others within ``heartbeat_timeout_seconds`` (default
    ``JAXNET_HEARTBEAT_SECONDS`` or :data:`HEARTBEAT_SECONDS`; at once if it is process 0, the
    coordinator): JAX then ends them with "the JAX distributed service detected fatal errors
    ... another task died", a non-zero status. In process 0 a coordinator port that is already in
    use is a :class:`~jaxnet.errors.ConfigError`. If the launcher dies, this process gets SIGTERM
    (:func:`end_with_launcher`).
    """
    import os

    if COORDINATOR_ENV not in os.environ:
        return jax.process_count()
    end_with_launcher()
    address, process_id = os.environ[COORDINATOR_ENV], int(os.environ[PROCESS_ID_ENV])
    if heartbeat_timeout_seconds is None:
        heartbeat_timeout_seconds = int(os.environ.get(HEARTBEAT_ENV, HEARTBEAT_SECONDS))
    if process_id == 0:
        check_port_free(address)
    jax.distributed.initialize(
        coordinator_address=address,
        num_processes=int(os.environ[PROCESSES_ENV]),
        process_id=process_id,
        heartbeat_timeout_seconds=heartbeat_timeout_seconds,
    )
    return jax.process_count()


def end_with_launcher() -> None:
    """In a process started by ``python -m jaxnet.launch`` (on Linux): get SIGTERM when the
    launcher dies, even by SIGKILL, so that no process trains on alone (during ``fit`` it saves
    and stops, :mod:`jaxnet.train.preemption`). Elsewhere nothing happens."""
    import os
    import signal
    import sys

    launcher = os.environ.get(LAUNCHER_ENV)
    if launcher is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1  # <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(launcher):  # it died before the call above
        os.kill(os.getpid(), signal.SIGTERM)


def check_port_free(address: str) -> None:
    """Raise :class:`~jaxnet.errors.ConfigError` if the port of ``address`` (``host:port``)
    cannot be listened on here (another program, or another run's coordinator, holds it)."""
    import socket

    port = int(address.rsplit(":", 1)[1])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed run's port is free
        try:
            sock.bind(("", port))
        except OSError as error:
            raise ConfigError(
                f"the coordinator address {address}: port {port} is already in use ({error}); "
                "stop what holds it or choose another port (python -m jaxnet.launch picks a "
                "free one)",
                ("initialize",),
            ) from None
