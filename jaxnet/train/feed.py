"""How an epoch's batches reach the compiled steps: :func:`make_feed` picks one of two feeds.

- :class:`ArrayFeed`: arrays are moved to the device once. A short epoch is one compiled program
  that shuffles, gathers and trains (:func:`~jaxnet.train.step.make_epoch`); a long one runs the
  same steps as a few chunk programs (:func:`~jaxnet.train.step.make_chunk`) so progress can be
  shown while it runs (see :func:`auto_steps_per_execution`).
- :class:`ChunkFeed`: a :mod:`~jaxnet.train.sources` source is read in chunks of ``K`` batches.
  The host gathers chunk ``c + 1`` and starts its transfer while chunk ``c`` trains, so the
  device waits for data only when reading is slower than training. ``K`` is
  ``steps_per_execution`` (Keras's name) or comes from a memory budget, :data:`CHUNK_BYTES`.

Both run an epoch as ``run_epoch(train_state, start, on_chunk) -> (train_state, logs, probes,
probed, flags)`` (``probed``: the positions in the epoch of the probed steps; ``flags``: the
non-finite guard's, computed inside a fused epoch). The chunks of an epoch
are the same steps on the same batches as the fused program: the parameters are bit-identical,
and so are the epoch's logs (the mean of the same per-step values).
"""

from __future__ import annotations

import collections
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.compilation import Compiling, same_types
from jaxnet.errors import DataError
from jaxnet.train import parallel
from jaxnet.train import step as steps
from jaxnet.train.data import Data, checked, match_targets, output_shape, place, prepare, to_numpy
from jaxnet.train.guard import finite_flags
from jaxnet.train.sources import RandomAccess, Stream, as_source

CHUNK_BYTES = 64 * 2**20  # default memory budget of one chunk of batches (two are alive at once)
CHUNK_SECONDS = 0.5  # an automatic chunk takes at least this long: a chunk boundary is then cheap
LONG_EPOCH_SECONDS = 1.0  # epochs estimated to take longer are run in chunks (progress shown)
# A fast device's rate, so estimates err towards short steps (and so towards fewer chunks).
FAST_FLOPS = {"cpu": 2e11, "gpu": 1e14, "cuda": 1e14, "rocm": 1e14, "tpu": 2e14}


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
        if not isinstance(source, RandomAccess):
            raise DataError("validation_split needs arrays or a random-access source; "
                            "pass validation_data with a stream", (owner,))  # fmt: skip
        source, validation_data = source.split(validation_split)
    return ChunkFeed(source, batch_size, validation_data, steps_per_execution, shuffle, owner,
                     targets)  # fmt: skip


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
    """What both feeds share: compiling, and running an epoch chunk by chunk."""

    n_batches: int
    k: int | None  # steps per chunk; None: the whole epoch as one fused program
    every = 1  # probe every this many steps (set by compile)
    mesh = None  # data parallelism: the device mesh (set by place)
    compiled_types = None  # the train state (or its shapes) the programs were built for
    positions: collections.deque = collections.deque()  # (a stream's, see ChunkFeed)
    position = None  # where the data stands after the last chunk that trained (a stream's)

    def compile(self, programs: Programs, train_state, **options) -> None:
        """Build (and where the shapes are known, start compiling) the programs for this data;
        ``train_state`` may be its shapes (``jax.ShapeDtypeStruct`` leaves, see
        :meth:`compiled_for`)."""
        start = time.perf_counter()
        self.programs, self.every = programs, options.get("probe_every", 1)
        self.compiled_types = train_state
        # The train state is donated: a chunk updates it in place instead of copying it first
        # (run_epoch copies the epoch's starting state once, which the guard may need back).
        self.run_chunk = jax.jit(programs.chunk(mesh=self.mesh, **options), donate_argnums=0)
        self.compile_seconds = time.perf_counter() - start

    def compiled_for(self, train_state) -> bool:
        """Whether :meth:`compile` was given train states of ``train_state``'s types."""
        return self.compiled_types is not None and same_types(train_state, self.compiled_types)

    def wait_compiled(self) -> float:
        """Seconds spent compiling (lowering, and compiling where it started), once done."""
        return self.compile_seconds

    def run_epoch(self, train_state, start=0, on_chunk=None, prior=None, run_chunk=None,
                  order=None):  # fmt: skip
        """``(train_state, logs, probes, probed)`` of the epoch that ``train_state`` is in, from
        its step ``start`` on (``prior``: the per-step logs of the steps before, when resuming).
        ``on_chunk(train_state, steps_done, logs)`` is called after each chunk (``logs``: a list
        of the per-step logs of the epoch so far). ``order`` replaces the epoch's shuffled order
        of a random-access source (``fit_many``'s order, shared by its models)."""
        chunks = self.chunks(train_state, start, order)  # (reads the key of the state given)
        if run_chunk is None:
            run_chunk, train_state = self.run_chunk, _copy(train_state)
        pending = next(chunks, None)
        logs = [] if prior is None else [jax.tree.map(jnp.asarray, prior)]
        probes, probed, done = [], [], start
        while pending is not None:
            train_state, chunk_logs, chunk_probes = run_chunk(train_state, *pending)
            self.position = self.positions.popleft() if self.positions else None
            k = len(pending[-1])
            pending = next(chunks, None)  # prepare the next chunk while this one trains
            if self.mesh is not None and jax.default_backend() == "cpu":
                # One multi-device program in flight at a time: with more, XLA:CPU's collectives
                # can wait on each other for ever (seen: 2 devices, 78 chunks of an epoch).
                jax.block_until_ready(train_state)
            logs.append(chunk_logs)
            probes.append(chunk_probes)
            probed += [done + i for i in steps.probed_steps(k, self.every)]
            done += k
            if on_chunk is not None:
                on_chunk(train_state, done, logs)
        if probes[0] is not None:
            probes = jax.tree.map(lambda *a: jnp.concatenate(a), *probes)
        return train_state, logs, probes if probed else None, probed

    def restore(self, position) -> None:
        """Continue a stream from ``position`` (``loop.data_position`` of a resumed run)."""
        if position is not None and isinstance(getattr(self, "source", None), Stream):
            self.source.restore(position)

    def probe_epoch(self, train_state, probe) -> dict:
        """``probe``'s result at every step of the epoch that starts at ``train_state``."""
        every, self.every = self.every, 1
        try:
            program = jax.jit(self.programs.chunk(probe=probe, mesh=self.mesh))
            return _Feed.run_epoch(self, train_state, run_chunk=program)[2]
        finally:
            self.every = every


class ArrayFeed(_Feed):
    """Device-resident data: one program per epoch, or chunks of one for long epochs."""

    def __init__(self, data, batch_size: int, steps_per_execution, shuffle: bool, targets=None):
        self.data, self.batch_size, self.shuffle, self.targets = data, batch_size, shuffle, targets
        self.n_batches = data.n // batch_size
        self.k = steps_per_execution and min(int(steps_per_execution), self.n_batches)

    @property
    def input_shape(self):
        return self.data.input_shape

    @property
    def validation(self):
        return self.data.validation

    def place(self, model, params, state, mesh=None) -> None:
        """Check the targets against ``model`` and move everything to the device; with a mesh,
        split the training rows across its devices (validation data is replicated)."""
        self.mesh = mesh
        if mesh is None:
            self.data = place(self.data, model, params, state, None, self.targets)
            return
        parallel.check_batch_size(mesh, self.batch_size)
        data = checked(self.data, model, params, state, self.targets)
        x, y = parallel.shard_rows((data.x, data.y), mesh)
        validation = parallel.put(data.validation, parallel.replicated(mesh))
        self.data = Data(x, y, validation, len(jax.tree.leaves(x)[0]))
        devices = mesh.shape[parallel.DATA_AXIS]
        self.n_batches = self.data.n // devices // (self.batch_size // devices)
        if self.n_batches == 0:
            raise DataError(f"{self.data.n} examples split over {devices} devices leave less than "
                            f"a batch of {self.batch_size} per step", ("fit",))  # fmt: skip

    def compile(self, programs: Programs, train_state, **options) -> None:
        super().compile(programs, train_state, **options)
        if self.k is None:  # the fused epoch, or chunks when it would run long
            epoch = programs.epoch(self.batch_size, self.shuffle, mesh=self.mesh, **options)

            def checked(ts, x, y):  # the guard's checks of both states, in the same program
                new, logs, probes = epoch(ts, x, y)
                return new, logs, probes, (finite_flags(ts), finite_flags(new))

            start = time.perf_counter()
            lowered = jax.jit(checked).lower(train_state, self.data.x, self.data.y)
            self.k = auto_steps_per_execution(lowered, self.n_batches)
            self.compile_seconds += time.perf_counter() - start
            if self.k is None:  # compiles on a worker thread while fit initialises
                self.run_fused = Compiling(lowered)

    def wait_compiled(self) -> float:
        if self.k is None:
            self.run_fused.result()
            return self.compile_seconds + self.run_fused.seconds
        return self.compile_seconds

    def run_epoch(self, train_state, start=0, on_chunk=None, prior=None):
        """``(train_state, logs, probes, probed, flags)`` of one epoch: ``logs`` are the epoch's
        means; ``flags`` the guard's ``(finite before, finite after)``
        (:func:`~jaxnet.train.guard.finite_flags`) when the fused program computed them, else
        ``None``."""
        if self.k is None and not start:
            x, y = self.data.x, self.data.y
            new_state, logs, probes, flags = self.run_fused(train_state, x, y)
            probed = steps.probed_steps(self.n_batches, self.every) if probes is not None else []
            return new_state, logs, probes, probed, flags
        train_state, logs, probes, probed = super().run_epoch(train_state, start, on_chunk, prior)
        return train_state, _epoch_means(logs), probes, probed, None

    def chunks(self, train_state, start: int, order=None):
        """Arguments of each chunk program: the data and ``K`` rows of the epoch's order."""
        del order  # arrays are shuffled on the device
        shards = 1 if self.mesh is None else self.mesh.shape[parallel.DATA_AXIS]
        rows = _rows(train_state, self.data.n, shards, self.batch_size, self.shuffle)
        k = self.k or self.n_batches
        for first in range(start, self.n_batches, k):
            yield self.data.x, self.data.y, rows[first : first + k]


class ChunkFeed(_Feed):
    """A source read in chunks of ``K`` batches, each trained by one compiled call."""

    def __init__(self, source, batch_size, validation_data, steps_per_execution, shuffle, owner,
                 targets=None):  # fmt: skip
        self.source, self.shuffle, self.validation = source, shuffle, validation_data
        self.targets = targets
        if isinstance(source, Stream):
            self.n_batches = source.steps_per_epoch
            x, y = source.first()
            self.batch_size = len(jax.tree.leaves(np.asarray(y))[0])
        else:
            self.n_batches, self.batch_size = len(source) // batch_size, batch_size
            if self.n_batches == 0:
                raise DataError(f"batch_size={batch_size} is larger than the {len(source)} "
                                "training examples", (owner,))  # fmt: skip
            x, y = source.take(np.arange(batch_size))
        self.sample = (to_numpy(x, "x"), to_numpy(y, "y"))
        self.k = steps_per_execution and min(int(steps_per_execution), self.n_batches)
        self.out_shape = self.signature = self.mesh = self.ahead = None
        self.positions = collections.deque()  # a stream's position after each chunk read

    @property
    def input_shape(self):
        return jax.tree.map(lambda a: a.shape[1:], self.sample[0])

    def place(self, model, params, state, mesh=None) -> None:
        """Remember the model's output shape (to check each batch's targets) and where chunks
        go; array validation data is checked and moved to the device now. With a mesh, each
        process reads only its own devices' part of every batch (a stream yields exactly that
        part in each process)."""
        self.mesh, self.out_shape = mesh, output_shape(model, params, state, self.sample[0])
        self.local = [0] if mesh is None else parallel.local_positions(mesh)
        devices = 1 if mesh is None else mesh.shape[parallel.DATA_AXIS]
        if isinstance(self.source, Stream):  # a stream yields this process's rows of a batch
            self.batch_size = self.batch_size * devices // len(self.local)
        if mesh is not None:
            parallel.check_batch_size(mesh, self.batch_size)
        self.b = self.batch_size // devices  # rows of a batch per device
        validation = self.validation
        if isinstance(validation, tuple) and as_source(*validation) is None:
            sharding = None if mesh is None else parallel.replicated(mesh)
            data = prepare(*validation, batch_size=1)
            data = place(data, model, params, state, sharding, self.targets)
            self.validation = (data.x, data.y)

    def run_epoch(self, train_state, start=0, on_chunk=None, prior=None, run_chunk=None,
                  order=None):  # fmt: skip
        train_state, logs, probes, probed = super().run_epoch(
            train_state, start, on_chunk, prior, run_chunk, order
        )
        return train_state, _epoch_means(logs), probes, probed, None

    # -- reading ---------------------------------------------------------------------------------
    def chunks(self, train_state, start: int, order=None):
        """Arguments of each chunk program: ``K`` batches read from the source and put on the
        device, with the rows that cut them into batches. While the epoch's last chunk trains,
        the first chunk of the next epoch of a random-access source is read already."""
        first_step = _step(train_state) - start
        ahead, self.ahead = self.ahead, None
        following, next_order = first_step + self.n_batches, None
        if isinstance(self.source, RandomAccess) and order is None:
            # The next epoch's order is asked for now, before this epoch's programs: the device
            # runs programs in order, so asked later it would wait for the whole epoch.
            next_state = train_state._replace(step=jnp.asarray(following, jnp.int32))
            next_order = _order(next_state, len(self.source), self.batch_size, self.shuffle)
        if ahead is not None and ahead[0] == (first_step, start) and order is None:
            yield ahead[1]
            yield from ahead[2]
        else:
            yield from self._read(train_state, start, order)
        if next_order is not None:
            rest = self._read(next_state, 0, next_order)
            self.ahead = ((following, 0), next(rest), rest)

    def _read(self, train_state, start: int, order=None):
        """The epoch's chunks from its step ``start`` on, checked and put on the device (a
        stream's position after each chunk is queued for :attr:`position`)."""
        if isinstance(self.source, Stream):
            groups = self._stream_groups(train_state, start)
        else:
            groups = self._random_access_groups(train_state, start, order)
        for group_steps, (x, y) in groups:
            if isinstance(self.source, Stream):
                self.positions.append(self.source.state())
            yield self._put(self._checked(x, y, group_steps))

    def _stream_groups(self, train_state, start: int):
        """``(steps, (x, y))``: ``K`` batches of the stream at a time, joined."""
        first_step, group = _step(train_state) - start, []
        iterator = self.source.epoch()
        for i in range(start, self.n_batches):
            batch = next(iterator, None)
            if batch is None:
                raise DataError(f"the stream ended after {i} of steps_per_epoch="
                                f"{self.n_batches} batches (step {first_step + i})",
                                ("data",))  # fmt: skip
            group.append((first_step + i, self._same_shapes(batch, first_step + i)))
            if self.k is None:
                self.k = max(1, min(self.n_batches, CHUNK_BYTES // _nbytes(group[0][1])))
            if len(group) == self.k or i == self.n_batches - 1:
                group_steps, batches = zip(*group, strict=True)
                yield list(group_steps), jax.tree.map(lambda *a: np.concatenate(a), *batches)
                group = []

    def _random_access_groups(self, train_state, start: int, order=None):
        """``(steps, (x, y))``: ``K`` batches read at once (one ``take`` of their rows), in the
        epoch's order (``order``, or the shuffled order of ``train_state``'s key and epoch)."""
        first_step = _step(train_state) - start
        if order is None:
            order = _order(train_state, len(self.source), self.batch_size, self.shuffle)
        rows = np.asarray(order)[: self.n_batches * self.batch_size]
        rows = rows.reshape(self.n_batches, self.batch_size)
        columns = np.concatenate([np.arange(p * self.b, (p + 1) * self.b) for p in self.local])
        if self.k is None:
            self.k = max(1, min(self.n_batches, CHUNK_BYTES // _nbytes(self.sample)))
        for i in range(start, self.n_batches, self.k):
            group_steps = range(first_step + i, first_step + min(i + self.k, self.n_batches))
            indices = rows[i : i + len(group_steps), columns].reshape(-1)
            yield list(group_steps), jax.tree.map(np.asarray, tuple(self.source.take(indices)))

    def _same_shapes(self, batch, step: int):
        """``batch`` as NumPy ``(x, y)``, refused unless shaped like the first batch."""
        x, y = jax.tree.map(np.asarray, tuple(batch))
        signature = jax.tree.map(lambda a: (a.shape, a.dtype.name), (x, y))
        if self.signature is None:
            self.signature = signature
        elif signature != self.signature:
            raise DataError(
                f"the batch of step {step} has shapes/dtypes {signature}, earlier batches had "
                f"{self.signature}; every batch must have the same shape (drop the last partial "
                "batch, e.g. drop_last=True)",
                ("data",),
            )
        return x, y

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


def auto_steps_per_execution(lowered, n_batches: int) -> int | None:
    """Steps per chunk for an in-memory epoch: ``None`` (one fused program) unless the epoch is
    estimated to run longer than :data:`LONG_EPOCH_SECONDS`, then enough steps for a chunk of
    at least :data:`CHUNK_SECONDS`, preferably a divisor of ``n_batches``.

    The estimate is the step's FLOPs (XLA's cost analysis counts a loop body once: one step) at
    a fast device's rate (:data:`FAST_FLOPS`), so it errs towards fewer, longer chunks: the
    progress bar moves about every half second on such a device (every 2 s on one 4x slower),
    and a chunk boundary (a dispatch and the host's look at the chunk's logs, about 1 ms on a
    CPU) costs well under 1% of a chunk that long.
    """
    try:
        flops = float(lowered.cost_analysis().get("flops", 0.0))
    except Exception:  # noqa: BLE001 - a backend without cost analysis: keep the fused epoch
        return None
    step_seconds = flops / FAST_FLOPS.get(jax.default_backend(), 1e14)
    if step_seconds * n_batches <= LONG_EPOCH_SECONDS:
        return None
    k = max(1, math.ceil(CHUNK_SECONDS / max(step_seconds, 1e-9)))
    if k >= n_batches:
        return None
    # A length that divides the epoch (up to twice as long) spares compiling a shorter last chunk.
    return next((d for d in range(k, min(2 * k, n_batches - 1) + 1) if n_batches % d == 0), k)


def _step(train_state) -> int:
    """The step count (the same for every model of ``fit_many``'s stacked train states)."""
    return int(np.ravel(np.asarray(train_state.step))[0])


@jax.jit
def _copy(tree):
    """A copy of ``tree`` in new buffers (a donated program may then reuse them)."""
    return jax.tree.map(jnp.copy, tree)


def _nbytes(batch) -> int:
    return max(1, sum(a.nbytes for a in jax.tree.leaves(batch)))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _order(train_state, n: int, batch_size: int, shuffle: bool):
    return steps.epoch_order(train_state, n, batch_size, shuffle)


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


__all__ = ["CHUNK_BYTES", "ArrayFeed", "ChunkFeed", "Programs", "make_feed"]
