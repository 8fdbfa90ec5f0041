"""How an epoch's batches reach the compiled steps: :func:`make_feed` picks one of two feeds.

- :class:`ArrayFeed`: arrays are moved to the device once. A short epoch is one compiled program
  that shuffles, gathers and trains (:func:`~jaxnet.train.step.make_epoch`); a long one runs the
  same steps as a few chunk programs (:func:`~jaxnet.train.step.make_chunk`) so progress can be
  shown while it runs (see :func:`auto_steps_per_execution`).
- :class:`ChunkFeed`: a :mod:`~jaxnet.train.sources` source is read in chunks of ``K`` batches.
  The host gathers chunk ``c + 1`` and starts its transfer while chunk ``c`` trains, so the
  device waits for data only when reading is slower than training. ``K`` is
  ``steps_per_execution`` (Keras's name) or comes from a memory budget, :data:`CHUNK_BYTES`.

Both live the same life — built from the data, ``place(out_shape, mesh)``, ``compile``, then
``run_epoch(train_state, start, on_chunk, prior) -> EpochResult`` once per epoch — and return the
same :class:`EpochResult`. The chunks of an epoch are the same steps on the same batches as the
fused program: the parameters are bit-identical, and so are the epoch's logs (the mean of the
same per-step values). A source produces its own chunks; the feed never asks which kind it has.

A probe (``fit``'s :class:`~jaxnet.diagnostics.GradientMonitor`) runs inside the programs, on the
first step of every ``every`` steps. One exception, for compile time: on the CPU, when the fused
epoch has at most ``every`` steps (so only its first is probed), a step is cheap
(:data:`PROBE_APART_SECONDS`) and the run short (:data:`PROBE_APART_EPOCHS`), the probe is a
program of its own, run after the epoch on the epoch's starting state and first batch
(:func:`first_step_probe`) and compiled for speed of compiling
(:func:`~jaxnet.compilation.jit_rarely_run`). The epoch program is then the one ``fit`` runs
without a monitor (the same bits); inside it, the probed step's second copy of forward, backward
and update cost half as much again to compile as the whole epoch, more than the separate
program's recomputed step costs a short run (docs/scale.md#cold-start).
"""

from __future__ import annotations

import collections
import functools
import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.compilation import Compiling, jit_rarely_run, run_once_options, same_types
from jaxnet.errors import ConfigError, DataError
from jaxnet.random import key_words
from jaxnet.train import parallel
from jaxnet.train import step as steps
from jaxnet.train.arrays import to_numpy
from jaxnet.train.data import Data, checked, match_targets, place, prepare
from jaxnet.train.guard import went_non_finite
from jaxnet.train.sources import CHUNK_BYTES, EpochPlan, as_source, batch_bytes

CHUNK_SECONDS = 0.5  # an automatic chunk takes at least this long: a chunk boundary is then cheap
LONG_EPOCH_SECONDS = 1.0  # epochs estimated to take longer are run in chunks (progress shown)
# A fast device's rate, so estimates err towards short steps (and so towards fewer chunks).
FAST_FLOPS = {"cpu": 2e11, "gpu": 1e14, "cuda": 1e14, "rocm": 1e14, "tpu": 2e14}
# A fused epoch's probe is a program of its own when a step is estimated to take less than this
# at FAST_FLOPS: the digits MLP's 16 us, not the small CNN's 60 us, nor the GRU's 35 us (the cost
# analysis counts its 20-step loop once). Its recomputed step at -O0 costs 0.4-1 ms an epoch
# there, where the probe inside the epoch cost 0.1-0.2 ms: short runs gain, long ones would pay,
# so runs of more than PROBE_APART_EPOCHS keep the probe inside (0.8 ms x 150 ~ 0.1 s, a third
# of what the probe apart saves a cold start).
PROBE_APART_SECONDS = 2.5e-5
PROBE_APART_EPOCHS = 150


def make_feed(x, y, *, batch_size: int, validation_data=None, validation_split=None,
              steps_per_epoch=None, steps_per_execution=None, shuffle: bool = True,
              owner: str = "fit", targets: str | None = None):  # fmt: skip
    """The feed for ``x``/``y``: :class:`ArrayFeed` for arrays, :class:`ChunkFeed` for sources.
    ``targets``: the loss's kind of targets (:func:`jaxnet.losses.target_kind`), checked by
    :func:`~jaxnet.train.data.match_targets` in ``place`` and for every batch of a source."""
    source = as_source(x, y, steps_per_epoch, owner)
    if source is None:
        data = prepare(x, y, batch_size=batch_size, validation_data=validation_data,
                       validation_split=validation_split, owner=owner)  # fmt: skip
        return ArrayFeed(data, batch_size, steps_per_execution, shuffle, targets)
    if validation_split:
        source, validation_data = source.split(validation_split)
    return ChunkFeed(source, batch_size, validation_data, steps_per_execution, shuffle, owner,
                     targets)  # fmt: skip


class EpochResult(NamedTuple):
    """What every feed's epoch returns: the new train state, the epoch's ``logs`` (means of the
    per-step values), the probe's results at the ``probed`` steps (positions in the epoch;
    ``probes`` is ``None`` without a probe) and the non-finite guard's ``broke``
    (:func:`~jaxnet.train.guard.went_non_finite`) where a fused epoch computed it, else
    ``None``."""

    train_state: Any
    logs: Any
    probes: Any = None
    probed: tuple = ()
    broke: Any = None


class Programs:
    """The step programs of one training setup, built with extra options (a probe) on demand."""

    def __init__(self, model, loss_fn, optimizer, metrics=None, **step_options):
        self.args, self.metrics, self.options = (model, loss_fn, optimizer), metrics, step_options

    def epoch(self, batch_size: int, shuffle: bool, **options):
        return steps.make_epoch(*self.args, batch_size, self.metrics, shuffle=shuffle,
                                **{**self.options, **options})  # fmt: skip

    def chunk(self, **options):
        return steps.make_chunk(*self.args, self.metrics, **{**self.options, **options})


class _Feed:
    """What both feeds share: compiling, and running an epoch chunk by chunk.

    Its life: built from the data (everything known then is set in ``__init__``), ``place``
    (the model's output shape and the device mesh), ``compile`` (the programs), then
    ``run_epoch`` once per epoch.
    """

    def __init__(self, n_batches: int, batch_size: int, steps_per_execution, shuffle: bool,
                 targets=None):  # fmt: skip
        self.n_batches, self.batch_size, self.shuffle = n_batches, batch_size, shuffle
        self.targets = targets  # the loss's kind of targets, checked against the outputs
        # steps per chunk; None: the whole epoch as one fused program (or automatic chunks)
        self.k = steps_per_execution and min(int(steps_per_execution), n_batches)
        self.mesh = None  # data parallelism: the device mesh (set by place)
        self.programs = self.run_chunk = None  # (set by compile)
        self.every = 1  # probe every this many steps (set by compile)
        self.positions = collections.deque()  # a stream's position after each chunk read
        self.position = None  # where the data stands after the last chunk that trained
        self.split_data = True  # with a mesh: the data chunks gather from is split by rows
        self.compiled_types = None  # the train state (or its shapes) the programs were built for
        self.compile_seconds = 0.0

    def compile(self, programs: Programs, train_state, epochs=None, **options) -> None:
        """Build (and where the shapes are known, start compiling) the programs for this data;
        ``train_state`` may be its shapes (``jax.ShapeDtypeStruct`` leaves, see
        :meth:`compiled_for`); ``epochs``: how many the run has at most (for a probe apart)."""
        start = time.perf_counter()
        self.programs, self.every = programs, options.get("probe_every", 1)
        self.compiled_types = train_state
        # The train state is donated: a chunk updates it in place instead of copying it first
        # (run_chunks copies the epoch's starting state once, which the guard may need back).
        program = programs.chunk(mesh=self.mesh, split_data=self.split_data, **options)
        self.run_chunk = jax.jit(program, donate_argnums=0)
        self.compile_seconds = time.perf_counter() - start

    def compiled_for(self, train_state) -> bool:
        """Whether :meth:`compile` was given train states of ``train_state``'s types."""
        return self.compiled_types is not None and same_types(train_state, self.compiled_types)

    def wait_compiled(self) -> float:
        """Seconds spent compiling (lowering, and compiling where it started), once done."""
        return self.compile_seconds

    def run_epoch(self, train_state, start=0, on_chunk=None, prior=None) -> EpochResult:
        """The epoch that ``train_state`` is in, from its step ``start`` on (``prior``: the
        per-step logs of the steps before, when resuming). ``on_chunk(train_state, steps_done,
        logs)`` is called after each chunk (``logs``: the per-step logs of the epoch so far)."""
        return self.run_chunks(train_state, start, on_chunk, prior)

    def run_chunks(self, train_state, start=0, on_chunk=None, prior=None, run_chunk=None,
                   order=None) -> EpochResult:  # fmt: skip
        """:meth:`run_epoch` chunk by chunk, with ``run_chunk`` in place of the compiled chunk
        program (``fit_many``'s) and ``order`` in place of the epoch's shuffled order of a
        random-access source (``fit_many``'s, shared by its models).

        At most two chunks are alive at once: the next chunk is read while this one trains, and
        not before the one before it has finished, so memory does not grow with the epoch.
        """
        chunks = self.chunks(train_state, start, order)  # (reads the key of the state given)
        if run_chunk is None:
            run_chunk, train_state = self.run_chunk, _copy(train_state)
        pending = next(chunks, None)
        logs = [] if prior is None else [jax.tree.map(jnp.asarray, prior)]
        probes, probed, done, running = [], [], start, None
        while pending is not None:
            train_state, chunk_logs, chunk_probes = run_chunk(train_state, *pending)
            self.position = self.positions.popleft() if self.positions else None
            k = len(pending[-1])
            pending = None  # (its buffers go when the program is done with them)
            if running is not None or (self.mesh is not None and _on_cpu()):
                # The chunk before has finished before the next is read: at most two chunks in
                # memory. (With a mesh on a CPU, one multi-device program in flight at a time:
                # XLA:CPU's collectives can otherwise wait on each other for ever.)
                jax.block_until_ready(chunk_logs if running is None else running)
            running = chunk_logs
            pending = next(chunks, None)  # read the next chunk while this one trains
            logs.append(chunk_logs)
            probes.append(chunk_probes)
            probed += [done + i for i in steps.probed_steps(k, self.every)]
            done += k
            if on_chunk is not None:
                on_chunk(train_state, done, logs)
        if probes[0] is not None:
            probes = jax.tree.map(lambda *a: jnp.concatenate(a), *probes)
        return EpochResult(train_state, _epoch_means(logs), probes if probed else None, probed)

    def restore(self, position) -> None:
        """Continue from ``position`` (``loop.data_position`` of a resumed run)."""
        del position  # arrays: the step count says where an epoch stands

    def probe_epoch(self, train_state, probe) -> dict:
        """``probe``'s result at every step of the epoch that starts at ``train_state``."""
        every, self.every = self.every, 1
        try:
            options = dict(probe=probe, mesh=self.mesh, split_data=self.split_data)
            program = jax.jit(self.programs.chunk(**options))
            return self.run_chunks(train_state, run_chunk=program).probes
        finally:
            self.every = every


class ArrayFeed(_Feed):
    """Device-resident data: one program per epoch, or chunks of one for long epochs."""

    def __init__(self, data, batch_size: int, steps_per_execution, shuffle: bool, targets=None):
        super().__init__(data.n // batch_size, batch_size, steps_per_execution, shuffle, targets)
        self.data = data
        self.run_fused = None  # the fused epoch (compiling), when the epoch is one program
        self.probe_first = None  # its first step's probe, when apart (see the module)
        self.orders = None  # the epochs' orders, computed apart (one device): EpochOrders

    @property
    def input_shape(self):
        return self.data.input_shape

    @property
    def input_spec(self):
        """One example's inputs as ``jax.ShapeDtypeStruct`` (with a batch axis of one)."""
        return _spec(self.data.x)

    @property
    def validation(self):
        return self.data.validation

    def place(self, out_shape: tuple, mesh=None, shard_order="global") -> None:
        """Check the targets against the model's per-example ``out_shape`` and move everything
        to the device; with a mesh, replicate the data on its devices, or with
        ``shard_order="per_device"`` split the training rows across them (validation data is
        replicated)."""
        self.mesh, self.split_data = mesh, shard_order == "per_device"
        if self.split_data and mesh is None:
            raise ConfigError("shard_order='per_device' splits the data across the devices of "
                              "a mesh; pass mesh=parallel.data_parallel_mesh()",
                              ("fit",))  # fmt: skip
        if mesh is None:
            self.data = place(self.data, out_shape, None, self.targets)
            return
        parallel.check_batch_size(mesh, self.batch_size)
        if not self.split_data:  # the one-device batches: every device holds every row
            self.data = place(self.data, out_shape, parallel.replicated(mesh), self.targets)
            return
        data = checked(self.data, out_shape, self.targets)
        x, y = parallel.shard_rows((data.x, data.y), mesh)
        validation = parallel.put(data.validation, parallel.replicated(mesh))
        self.data = Data(x, y, validation, len(jax.tree.leaves(x)[0]))
        devices = mesh.shape[parallel.DATA_AXIS]
        self.n_batches = self.data.n // devices // (self.batch_size // devices)
        if self.n_batches == 0:
            raise DataError(f"{self.data.n} examples split over {devices} devices leave less than "
                            f"a batch of {self.batch_size} per step", ("fit",))  # fmt: skip

    def compile(self, programs: Programs, train_state, epochs=None, **options) -> None:
        super().compile(programs, train_state, **options)
        self.probe_first = self.orders = None
        if self.k is None:  # the fused epoch, or chunks when it would run long
            start = time.perf_counter()
            probe = {k: options.pop(k) for k in ("probe", "probe_every") if k in options}
            # Could the probe be apart (a short epoch, a short run, the CPU; the step's cost is
            # not known yet)? Then the plain epoch is lowered first, and its cost analysis says
            # whether the step is cheap enough.
            could = (probe.get("probe") is not None and self.n_batches <= self.every
                     and probe_apart(0.0, epochs))  # fmt: skip
            lowered = self._lower_fused(
                programs, train_state, options if could else {**options, **probe}
            )
            seconds = step_seconds(lowered)
            self.k = auto_steps_per_execution(seconds, self.n_batches)
            apart = self.k is None and could and probe_apart(seconds, epochs)
            if self.k is None and could and not apart:
                lowered = self._lower_fused(programs, train_state, {**options, **probe})
            if self.k is None:  # compiles on a worker thread while fit initialises
                self.run_fused = Compiling(lowered)
            if apart:  # lowered for the epoch's first rows; compiles on the other worker
                chunk = programs.chunk(probe=probe["probe"], mesh=self.mesh,
                                       split_data=self.split_data)  # fmt: skip
                first_rows = lowered.out_info[-1]
                self.probe_first = Compiling(jit_rarely_run(first_step_probe(chunk)).lower(
                    train_state, self.data.x, self.data.y, first_rows))  # fmt: skip
            self.compile_seconds += time.perf_counter() - start

    def _lower_fused(self, programs: Programs, train_state, options: dict):
        """The fused epoch, lowered: the epoch with the guard's look at the states before and
        after (:func:`went_non_finite`), and the rows of its first batch (for a probe apart). On
        one device it takes the epoch's order as an argument (:class:`EpochOrders`,
        ``self.orders``)."""
        order = "per_device" if self.split_data else "global"
        epoch = programs.epoch(self.batch_size, self.shuffle, mesh=self.mesh,
                               shard_order=order, **options)  # fmt: skip
        n, shards = self.data.n, parallel.data_shards(self.mesh, order)

        def checked(ts, x, y, order=None):
            new, logs, probes = epoch(ts, x, y, order)
            if order is None:  # (the epoch computes the same rows: XLA computes them once)
                first = steps.sharded_epoch_rows(ts, n, shards, self.batch_size, self.shuffle)[:1]
            else:
                first = steps.epoch_rows(order, self.batch_size)[:1]
            return new, logs, probes, went_non_finite(ts, new), first

        if self.mesh is not None:
            return jax.jit(checked).lower(train_state, self.data.x, self.data.y)
        self.orders = EpochOrders(n, self.batch_size, self.shuffle)  # one device: an argument
        return jax.jit(checked).lower(train_state, self.data.x, self.data.y, self.orders.type)

    def wait_compiled(self) -> float:
        if self.k is None:
            self.run_fused.result()
            return self.compile_seconds + self.run_fused.seconds
        return self.compile_seconds

    def run_epoch(self, train_state, start=0, on_chunk=None, prior=None) -> EpochResult:
        """One epoch: the fused program (with the guard's look at the states before and after)
        when the epoch is one program and starts at its beginning, else chunk by chunk."""
        if self.run_fused is None or start:
            return self.run_chunks(train_state, start, on_chunk, prior)
        data = (self.data.x, self.data.y)
        if self.orders is not None:
            data = (*data, self.orders.of(train_state))
        new_state, logs, probes, broke, first = self.run_fused(train_state, *data)
        if self.orders is not None:  # the next epoch's, while the device trains this one
            self.orders.ahead(new_state)
        if self.probe_first is not None:  # its first step, probed apart (see the module)
            probes = self.probe_first(train_state, self.data.x, self.data.y, first)
        probed = steps.probed_steps(self.n_batches, self.every) if probes is not None else []
        return EpochResult(new_state, logs, probes, probed, broke)

    def chunks(self, train_state, start: int, order=None):
        """Arguments of each chunk program: the data and ``K`` rows of the epoch's order."""
        del order  # arrays are shuffled on the device
        shards = parallel.data_shards(self.mesh, "per_device" if self.split_data else "global")
        rows = _rows(train_state, self.data.n, shards, self.batch_size, self.shuffle)
        k = self.k or self.n_batches
        for first in range(start, self.n_batches, k):
            yield self.data.x, self.data.y, rows[first : first + k]


class ChunkFeed(_Feed):
    """A source (:mod:`~jaxnet.train.sources`) read in chunks of ``K`` batches, each trained by
    one compiled call. The source produces its chunks (:meth:`RandomAccess.chunks`,
    :meth:`Stream.chunks`); the feed checks them, puts them on the devices and reads the next
    epoch's first chunk ahead where the source can say its order."""

    def __init__(self, source, batch_size, validation_data, steps_per_execution, shuffle, owner,
                 targets=None):  # fmt: skip
        n_batches, batch_size, (x, y) = source.first_batch(batch_size, owner)
        super().__init__(n_batches, batch_size, steps_per_execution, shuffle, targets)
        self.source, self.validation = source, validation_data
        self.sample = (to_numpy(x, "x"), to_numpy(y, "y"))
        self.k = self.k or max(1, min(n_batches, CHUNK_BYTES // batch_bytes(self.sample)))
        self.out_shape = None  # the model's per-example outputs (set by place)
        self.local, self.b = [0], batch_size  # this process's devices, rows per device (place)
        self.ahead = None  # the next epoch's first chunk, read while this epoch's last trains

    @property
    def input_shape(self):
        return jax.tree.map(lambda a: a.shape[1:], self.sample[0])

    @property
    def input_spec(self):
        return _spec(self.sample[0])

    def place(self, out_shape: tuple, mesh=None, shard_order="global") -> None:
        """Remember the model's per-example ``out_shape`` (to check each batch's targets) and
        where chunks go; array validation data is checked and moved to the device now. With a
        mesh, each process reads only its own devices' part of every batch (a stream yields
        exactly that part in each process), in the one-device order (``shard_order="global"``
        only)."""
        if shard_order != "global":
            raise ConfigError(f"shard_order={shard_order!r} is for in-memory arrays; a data "
                              "source is read in the one-device order on any mesh "
                              "(shard_order='global')", ("fit",))  # fmt: skip
        self.mesh, self.out_shape = mesh, tuple(out_shape)
        self.local = [0] if mesh is None else parallel.local_positions(mesh)
        devices = 1 if mesh is None else mesh.shape[parallel.DATA_AXIS]
        if self.source.per_process:  # the batches read are this process's rows of a batch
            self.batch_size = self.batch_size * devices // len(self.local)
        if mesh is not None:
            parallel.check_batch_size(mesh, self.batch_size)
        self.b = self.batch_size // devices  # rows of a batch per device
        validation = self.validation
        if isinstance(validation, tuple) and as_source(*validation) is None:  # arrays
            sharding = None if mesh is None else parallel.replicated(mesh)
            data = place(prepare(*validation, batch_size=1), out_shape, sharding, self.targets)
            self.validation = (data.x, data.y)

    def restore(self, position) -> None:
        self.source.restore(position)

    # -- reading ---------------------------------------------------------------------------------
    def chunks(self, train_state, start: int, order=None):
        """Arguments of each chunk program: ``K`` batches read from the source and put on the
        device, with the rows that cut them into batches. While the epoch's last chunk trains,
        the first chunk of the next epoch is read already (a source that knows its order)."""
        first_step = step_count(train_state) - start
        ahead, self.ahead = self.ahead, None
        following, next_order = first_step + self.n_batches, None
        if order is None:
            # The next epoch's order is asked for now, before this epoch's programs: the device
            # runs programs in order, so asked later it would wait for the whole epoch.
            next_state = train_state._replace(step=jnp.asarray(following, jnp.int32))
            next_order = self.source.order(next_state, self.batch_size, self.shuffle)
        if ahead is not None and ahead[0] == (first_step, start) and order is None:
            yield ahead[1]
            yield from ahead[2]
        else:
            yield from self._read(train_state, start, order)
        if next_order is not None:
            rest = self._read(next_state, 0, next_order)
            self.ahead = ((following, 0), next(rest), rest)

    def _read(self, train_state, start: int, order=None):
        """The epoch's chunks from its step ``start`` on, checked and put on the device (the
        stream position after each chunk is queued for :attr:`position`)."""
        if order is None:
            order = self.source.order(train_state, self.batch_size, self.shuffle)
        columns = np.concatenate([np.arange(p * self.b, (p + 1) * self.b) for p in self.local])
        plan = EpochPlan(step_count(train_state) - start, start, self.n_batches, self.k,
                         self.batch_size, columns, order)  # fmt: skip
        for chunk in self.source.chunks(plan):
            self.positions.append(chunk.position)
            placed = self._put(self._checked(chunk.x, chunk.y, chunk.steps))
            chunk = None  # the host's copy goes once on the device, not after the next read
            yield placed

    def _checked(self, x, y, steps):
        """``K`` joined batches checked like in-memory data at once; a problem names the step
        of the first batch that has it."""

        def check(x, y):
            x = to_numpy(x, "x")
            return x, match_targets(to_numpy(y, "y"), self.out_shape, "y", self.targets)

        try:
            return check(x, y)
        except DataError:
            rows = len(jax.tree.leaves(x)[0]) // len(steps)
            for j, step in enumerate(steps):
                part = jax.tree.map(lambda a: a[j * rows : (j + 1) * rows], (x, y))  # noqa: B023
                try:
                    check(*part)
                except DataError as error:
                    detail = f"the batch of step {step}: {error.detail}"
                    raise DataError(detail, ("data",)) from None
            raise

    def _put(self, chunk):
        """``K`` checked batches (this process's rows of each, joined) as device data: each
        device's rows of all ``K`` steps one after another, and the rows each step gathers."""
        rows_per_batch = len(self.local) * self.b  # this process's rows of every batch
        k, b = len(jax.tree.leaves(chunk)[0]) // rows_per_batch, self.b

        def block(j):  # device j's rows of every batch of the chunk, one batch after another
            return jax.tree.map(
                lambda a: a.reshape(k, rows_per_batch, *a.shape[1:])[:, j * b : (j + 1) * b]
                .reshape(k * b, *a.shape[1:]), chunk
            )  # fmt: skip

        rows = np.arange(k * b).reshape(k, b)
        if self.mesh is None:
            return (*jax.device_put(chunk), rows)
        blocks = [block(j) for j in range(len(self.local))]
        devices = self.mesh.shape[parallel.DATA_AXIS]
        rows = parallel.put(np.tile(rows, (1, devices)), parallel.replicated(self.mesh))
        return (*parallel.from_local_blocks(blocks, self.mesh), rows)


def first_step_probe(chunk):
    """``probe(train_state, x, y, rows) -> probes``: what the chunk program ``chunk`` (built with
    a probe) reports for its first step on these arguments, ``rows[:1]``, without training (the
    rest of its work is dead code to XLA)."""

    def probe(train_state, x, y, rows):
        return chunk(train_state, x, y, rows[:1])[2]

    return probe


def step_seconds(lowered) -> float | None:
    """A training step's seconds on a fast device (:data:`FAST_FLOPS`) from the FLOPs of XLA's
    cost analysis of a lowered epoch or chunk (it counts a loop body once: one step); ``None``
    on a backend without cost analysis."""
    try:
        flops = float(lowered.cost_analysis().get("flops", 0.0))
    except Exception:  # noqa: BLE001 - a backend without cost analysis
        return None
    return flops / FAST_FLOPS.get(jax.default_backend(), 1e14)


def probe_apart(seconds: float | None, epochs: int | None = None) -> bool:
    """Whether the probe of a fused epoch whose step takes ``seconds`` (:func:`step_seconds`) is
    a program of its own: on a backend that compiles such programs for speed of compiling (the
    CPU), for a step estimated under :data:`PROBE_APART_SECONDS`, in a run of at most
    :data:`PROBE_APART_EPOCHS` epochs (``None``: not known, taken as short)."""
    cheap = seconds is not None and seconds < PROBE_APART_SECONDS
    short = epochs is None or epochs <= PROBE_APART_EPOCHS
    return bool(run_once_options()) and cheap and short


def auto_steps_per_execution(seconds: float | None, n_batches: int) -> int | None:
    """Steps per chunk for an in-memory epoch whose step takes ``seconds``: ``None`` (one fused
    program) unless the epoch is estimated to run longer than :data:`LONG_EPOCH_SECONDS`, then
    enough steps for a chunk of at least :data:`CHUNK_SECONDS`, preferably a divisor of
    ``n_batches``.

    The estimate (:func:`step_seconds`) is the step's FLOPs at a fast device's rate
    (:data:`FAST_FLOPS`), so it errs towards fewer, longer chunks: the
    progress bar moves about every half second on such a device (every 2 s on one 4x slower),
    and a chunk boundary (a dispatch and the host's look at the chunk's logs, about 1 ms on a
    CPU) costs well under 1% of a chunk that long.
    """
    if seconds is None or seconds * n_batches <= LONG_EPOCH_SECONDS:
        return None  # (without cost analysis: the fused epoch)
    k = max(1, math.ceil(CHUNK_SECONDS / max(seconds, 1e-9)))
    if k >= n_batches:
        return None
    # A length that divides the epoch (up to twice as long) spares compiling a shorter last chunk.
    return next((d for d in range(k, min(2 * k, n_batches - 1) + 1) if n_batches % d == 0), k)


def step_count(train_state) -> int:
    """The step count (the same for every model of ``fit_many``'s stacked train states)."""
    return int(np.ravel(np.asarray(train_state.step))[0])


@jax.jit
def _copy(tree):
    """A copy of ``tree`` in new buffers (a donated program may then reuse them)."""
    return jax.tree.map(jnp.copy, tree)


def _on_cpu() -> bool:
    return jax.default_backend() == "cpu"


def _spec(x):
    r"""One example of ``x`` (a batch of one) as ``jax.ShapeDtypeStruct``\s."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((1, *a.shape[1:]), a.dtype), x)


class EpochOrders:
    """The order of each epoch on one device, an argument of the fused epoch (it was ~15 of the
    digits epoch's ~90 kernels: ~0.2 s of its compile). With a Threefry run key (the default),
    NumPy computes it on the host (:func:`~jaxnet.train.step.host_order_of_epoch`: the same
    numbers, nothing to compile; ~0.3 ms for 1437 rows), the next epoch's while the device
    trains the one before; with another kind of key a small program computes it when its epoch
    starts."""

    def __init__(self, n: int, batch_size: int, shuffle: bool):
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.type = jax.ShapeDtypeStruct((n,), np.int32)
        self.words = self.epoch = None  # the run key's data, the epoch of the last order
        self.next = self.next_for = None  # the next epoch's order, and the state it starts at

    def of(self, train_state) -> np.ndarray:
        """The order of the epoch that starts at ``train_state``: the one computed ahead when
        ``train_state`` is the state it was computed for (:meth:`ahead`), else computed now."""
        if train_state is self.next_for:  # (used once: a second call computes it again)
            self.next_for, self.epoch = None, self.epoch + 1
            return self.next
        self.words = key_words(train_state.key) if self.shuffle else None
        self.epoch = int(train_state.step) // (self.n // self.batch_size)
        return steps.host_order_of_epoch(self.words, self.epoch, self.n, self.shuffle,
                                         train_state.key)  # fmt: skip

    def ahead(self, next_state) -> None:
        """Compute now the order of the next epoch, which starts at ``next_state`` (not for a
        key of another kind: its program would wait for the epoch the device is training)."""
        if self.shuffle and self.words is None:
            return
        self.next = steps.host_order_of_epoch(self.words, self.epoch + 1, self.n, self.shuffle)
        self.next_for = next_state


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _rows(train_state, n: int, shards: int, batch_size: int, shuffle: bool):
    return steps.sharded_epoch_rows(train_state, n, shards, batch_size, shuffle)


def _epoch_means(logs):
    """The epoch's means over its chunks' per-step logs. The steps are joined first, so the mean
    runs over the same array as in the fused epoch and gives the same bits."""
    return _means(jax.tree.map(lambda *a: jnp.concatenate(a), *logs))


@jax.jit
def _means(logs):
    return steps.epoch_means(logs)


__all__ = ["CHUNK_BYTES", "ArrayFeed", "ChunkFeed", "EpochResult", "Programs", "make_feed"]
