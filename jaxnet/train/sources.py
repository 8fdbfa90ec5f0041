"""Data that does not sit on the device: random-access sources and streams of batches.

Besides arrays, ``fit``, ``evaluate`` and ``predict`` read

- a **random-access source**: a pair of memory-mapped arrays (``np.load(path, mmap_mode="r")``,
  ``np.memmap``), or ``x=source, y=None`` for any object with ``len(source)`` and
  ``source[indices] -> (x_batch, y_batch)`` (NumPy). An object that answers one index at a time
  (Grain's ``MapDataset`` of ``(x, y)`` records, a PyTorch ``Dataset``) is read record by record
  and stacked;
- a **stream**: ``x=iterable, y=None`` yielding ``(x_batch, y_batch)`` batches (a generator,
  Grain's ``IterDataset``, PyTorch's ``DataLoader``), with ``steps_per_epoch``.

Both are read in chunks of batches (:mod:`jaxnet.train.feed`). A random-access source is visited
in the order the in-memory path uses, so it trains bit-identically to the same arrays in memory;
a stream's order is its own.

::

    x = np.load("features.npy", mmap_mode="r"); y = np.load("labels.npy", mmap_mode="r")
    ts, history = fit(model, loss, opt, x, y, epochs=5)          # never all in memory at once
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxnet.errors import ConfigError, DataError
from jaxnet.train import step as steps
from jaxnet.train.arrays import to_numpy


class EpochPlan(NamedTuple):
    """Which batches an epoch reads, from its step ``start`` on, in chunks of ``k`` batches:
    step ``first_step + i`` trains batch ``i`` of ``n_batches``; ``order`` (a random-access
    source's rows in the epoch's order) and ``columns`` (the positions in each batch this process
    reads) matter to random-access sources only."""

    first_step: int
    start: int
    n_batches: int
    k: int
    batch_size: int
    columns: Any
    order: Any


class Chunk(NamedTuple):
    """``k`` batches joined on the leading axis (NumPy ``x``, ``y``), the steps that train them,
    and where a stream stands after them (``None`` for a random-access source)."""

    steps: list
    x: Any
    y: Any
    position: Any = None


class RandomAccess:
    """Batches by index from arrays-like ``x``, ``y`` (sliced together), or from one
    ``source[indices] -> (x, y)`` when ``y`` is ``None``. ``start``/``stop`` select a range."""

    def __init__(self, x, y=None, start: int = 0, stop: int | None = None):
        self.x, self.y = x, y
        if y is not None and len(y) != len(x):
            raise DataError(
                f"x and y have different numbers of examples: {len(x)} and {len(y)}", ("data",)
            )
        self.start, self.stop = start, len(x) if stop is None else stop
        if len(self) <= 0:
            raise DataError("the data source is empty", ("data",))

    def __len__(self) -> int:
        return self.stop - self.start

    def take(self, indices):
        """``(x, y)`` of the examples at ``indices`` (in that order), as NumPy arrays."""
        indices = np.asarray(indices) + self.start
        if self.y is not None:
            return np.asarray(self.x[indices]), np.asarray(self.y[indices])
        try:
            batch = self.x[indices]
        except (TypeError, IndexError, KeyError, ValueError):  # one record per index (Grain)
            records = [self.x[int(i)] for i in indices]
            batch = tuple(np.stack(column) for column in zip(*records, strict=True))
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise DataError(
                f"source[indices] must return an (x, y) pair, got {type(batch).__name__}",
                ("data",),
            )
        return np.asarray(batch[0]), np.asarray(batch[1])

    def split(self, fraction: float):
        """``(head, tail)``: the last ``fraction`` of the examples held out, as Keras does."""
        middle = self.start + len(self) - validation_count(len(self), fraction)
        return (
            RandomAccess(self.x, self.y, self.start, middle),
            RandomAccess(self.x, self.y, middle, self.stop),
        )

    # -- read by the feed (jaxnet.train.feed) ---------------------------------------------------
    per_process = False  # a batch index names the global batch's rows

    def first_batch(self, batch_size: int, owner: str):
        """``(batches per epoch, batch size, the first batch)``."""
        if len(self) < batch_size:
            raise DataError(f"batch_size={batch_size} is larger than the {len(self)} training "
                            "examples", (owner,))  # fmt: skip
        return len(self) // batch_size, batch_size, self.take(np.arange(batch_size))

    def order(self, train_state, batch_size: int, shuffle: bool):
        """The examples in the order of ``train_state``'s epoch (the in-memory path's order)."""
        return steps.epoch_order_on_host(train_state, len(self), batch_size, shuffle)

    def chunks(self, plan: EpochPlan):
        """The epoch's chunks (:class:`Chunk`): ``k`` batches read at once (one ``take`` of their
        rows, this process's columns of each batch)."""
        rows = np.asarray(plan.order)[: plan.n_batches * plan.batch_size]
        rows = rows.reshape(plan.n_batches, plan.batch_size)
        for i in range(plan.start, plan.n_batches, plan.k):
            group = range(i, min(i + plan.k, plan.n_batches))
            # (no local name holds the chunk while the generator waits: it is freed once used)
            yield Chunk(
                [plan.first_step + j for j in group],
                *self.take(rows[i : group.stop, plan.columns].reshape(-1)),
            )

    def in_order(self, batch_size: int):
        """Every example in order, :data:`CHUNK_EXAMPLES` at a time, or fewer where that many
        would take more than :data:`CHUNK_BYTES` (rounded to whole batches, at least one)."""
        example = batch_bytes(self.take(np.arange(1)))
        size = _in_order_batches(example * batch_size, batch_size) * batch_size
        for start in range(0, len(self), size):
            yield self.take(np.arange(start, min(start + size, len(self))))

    def restore(self, position) -> None:
        """A random-access epoch is found again from the step count alone."""
        if position is not None:
            raise DataError("the checkpoint holds a stream position but the data is a "
                            "random-access source", ("data",))  # fmt: skip


def validation_count(n: int, fraction: float, owner: str = "data") -> int:
    """How many of ``n`` examples ``validation_split=fraction`` holds out (the last ones, before
    shuffling, as Keras does); both parts must keep at least one example."""
    n_tail = int(round(n * fraction))
    if not 0.0 < fraction < 1.0 or n_tail in (0, n):
        raise DataError(
            f"validation_split={fraction} leaves {n - n_tail} training and {n_tail} "
            f"validation examples out of {n}; both must be at least 1",
            (owner,),
        )
    return n_tail


class Stream:
    """``steps_per_epoch`` batches per epoch from an iterable of ``(x, y)`` batches.

    A re-iterable (a list, a Grain dataset, a PyTorch ``DataLoader``) starts afresh each epoch;
    an iterator (a generator) continues where the previous epoch stopped. :meth:`first` peeks at
    the first batch without losing it. An iterator with ``get_state``/``set_state`` (Grain's)
    has its position read after every chunk (:meth:`state`) and restored on resume
    (:meth:`restore`), so a checkpoint taken in the middle of an epoch continues there.
    """

    def __init__(self, iterable, steps_per_epoch: int):
        self.iterable, self.steps_per_epoch = iterable, int(steps_per_epoch)
        self.once = iter(iterable) is iterable  # an iterator: one pass shared by all epochs
        self._peeked = self._current = self._restore = self.signature = None

    def first(self):
        """The first batch (kept for the first epoch of an iterator)."""
        if self._peeked is None:
            self._peeked = next(iter(self.iterable), None)
            if self._peeked is None:
                raise DataError("the stream of batches is empty", ("data",))
        return self._peeked

    def epoch(self):
        """An iterator over the next epoch's batches."""
        self._current = iter(self.iterable)
        peeked, self._peeked = self._peeked if self.once else None, None
        if self._restore is not None:  # a resumed run: continue where the checkpoint was taken
            self._current.set_state(self._restore)
            peeked, self._restore = None, None
        if peeked is None:
            return self._current
        return itertools.chain([peeked], self._current)  # (closing it leaves the iterator open)

    def state(self):
        """The position of the epoch's iterator (its ``get_state()``), or ``None``."""
        get_state = getattr(self._current, "get_state", None)
        return None if get_state is None else get_state()

    def restore(self, state) -> None:
        """Continue the next epoch from ``state`` (a :meth:`state` saved in a checkpoint)."""
        if state is not None and not hasattr(iter(self.iterable), "set_state"):
            raise DataError("the checkpoint holds a stream position but this stream's iterator "
                            "has no set_state", ("data",))  # fmt: skip
        self._restore = state

    def split(self, fraction: float):
        del fraction
        raise DataError("validation_split needs arrays or a random-access source; pass "
                        "validation_data with a stream", ("data",))  # fmt: skip

    # -- read by the feed (jaxnet.train.feed) ---------------------------------------------------
    per_process = True  # a stream yields this process's rows of every batch

    def first_batch(self, batch_size: int, owner: str):
        """``(batches per epoch, batch size, the first batch)``: the stream's own batch size."""
        del batch_size, owner
        x, y = self.first()
        return self.steps_per_epoch, len(jax.tree.leaves(np.asarray(y))[0]), (x, y)

    def order(self, train_state, batch_size: int, shuffle: bool):
        """``None``: a stream has its own order."""
        del train_state, batch_size, shuffle

    def chunks(self, plan: EpochPlan):
        """The epoch's chunks (:class:`Chunk`): ``k`` batches of the stream at a time, joined, each
        with the stream's position after it."""
        iterator, group = self.epoch(), []
        for i in range(plan.start, plan.n_batches):
            step = plan.first_step + i
            batch = next(iterator, None)
            if batch is None:
                raise DataError(f"the stream ended after {i} of steps_per_epoch="
                                f"{plan.n_batches} batches (step {step})", ("data",))  # fmt: skip
            group.append((step, self._same_shapes(batch, step)))
            batch = None
            if len(group) == plan.k or i == plan.n_batches - 1:
                yield self._chunk(group)  # (which empties group: nothing held while waiting)

    def _chunk(self, group: list) -> Chunk:
        """The ``(step, (x, y))`` batches of ``group`` as one :class:`Chunk`; ``group`` is
        emptied."""
        group_steps, batches = zip(*group, strict=True)
        group.clear()
        return Chunk(list(group_steps), *_joined(list(batches)), self.state())

    def in_order(self, batch_size: int):
        """One epoch's batches, joined into chunks as :meth:`RandomAccess.in_order` reads them
        (one program call and one piece of the outputs per chunk, not per batch)."""
        del batch_size
        iterator, group, k = self.epoch(), [], None
        for i in range(self.steps_per_epoch):
            batch = next(iterator, None)
            if batch is None:
                raise DataError(f"the stream ended after {i} of steps={self.steps_per_epoch} "
                                "batches", ("data",))  # fmt: skip
            group.append(jax.tree.map(np.asarray, (batch[0], batch[1])))
            batch = None
            if k is None:  # batches per chunk, from the first
                rows = len(jax.tree.leaves(group[0])[0])
                k = _in_order_batches(batch_bytes(group[0]), rows)
            if len(group) == k or i == self.steps_per_epoch - 1:
                yield _joined(group)

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


def _is_array_data(value) -> bool:
    return isinstance(value, np.ndarray | list | tuple | Mapping | numbers.Number) or (
        hasattr(value, "__array__") and hasattr(value, "shape")
    )


def as_source(x, y, steps_per_epoch: int | None = None, owner: str = "fit"):
    """``x``/``y`` as a :class:`RandomAccess` or :class:`Stream`, or ``None`` for in-memory arrays.

    Memory-mapped arrays become a source (they are never copied whole into memory); other arrays,
    lists and pytrees of them are in-memory data.
    """
    if isinstance(x, np.memmap) or isinstance(y, np.memmap):
        if y is None:
            raise DataError("a memory-mapped x needs its y", (owner,))
        return RandomAccess(x, y)
    if y is not None or _is_array_data(x):
        return None
    if hasattr(x, "__len__") and hasattr(x, "__getitem__"):
        return RandomAccess(x)
    if isinstance(x, Iterable):
        if steps_per_epoch is None:
            raise ConfigError(
                "a stream of batches needs steps_per_epoch (how many batches make an epoch)",
                (owner,),
            )
        return Stream(x, steps_per_epoch)
    raise DataError(
        "x must be an array, a pytree of arrays, a random-access source or an iterable of "
        f"(x, y) batches; got {type(x).__name__} with y=None",
        (owner,),
    )


CHUNK_BYTES = 64 * 2**20  # default memory budget of a chunk (a few are alive: docs/data.md)
CHUNK_EXAMPLES = 8192  # examples read at once when a source is read in order (predict, evaluate)


def _joined(batches: list):
    """A list of ``(x, y)`` batches joined on the leading axis (NumPy); the list is emptied, so
    a generator that yields the result holds no batch while it waits."""
    joined = jax.tree.map(lambda *a: np.concatenate(a), *batches)
    batches.clear()
    return joined


def _in_order_batches(nbytes: int, rows: int) -> int:
    """Batches of ``rows`` examples (``nbytes`` each batch) per chunk when a source is read in
    order: :data:`CHUNK_EXAMPLES` examples, or fewer where they would take more than
    :data:`CHUNK_BYTES`; at least one batch."""
    return max(1, min(CHUNK_EXAMPLES, CHUNK_BYTES * rows // nbytes) // rows)


def batch_bytes(batch) -> int:
    """Bytes of the arrays in ``batch`` (at least 1)."""
    return max(1, sum(np.asarray(a).nbytes for a in jax.tree.leaves(batch)))


def inputs_source(x, steps: int | None = None):
    """``x`` as a source of inputs for inference (``predict``), or ``None`` for arrays."""
    if isinstance(x, np.memmap):
        return RandomAccess(x, np.zeros(len(x), np.int8))
    return as_source(x, None, steps, owner="predict")


def read_in_order(source, batch_size: int = 256):
    """The whole source in its own order, as NumPy ``(x, y)`` chunks (streams: one epoch):
    :meth:`RandomAccess.in_order` or :meth:`Stream.in_order`."""
    yield from map(_as_numpy, source.in_order(batch_size))  # (holds no chunk between reads)


def _as_numpy(chunk):
    return to_numpy(chunk[0], "x"), to_numpy(chunk[1], "y")
