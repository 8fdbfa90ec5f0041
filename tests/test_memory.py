"""Reading a data source holds chunks in memory, never the data set: the process's peak memory
while ``fit``, ``evaluate``, ``predict`` and ``fit_many`` read a memory-mapped array, a
random-access object, a Grain ``MapDataset`` or a generator does not grow with the data.

The process's own memory is ``RssAnon`` (``/proc/self/status``): a memory map's pages are file
pages and do not count there. It is sampled from a thread while a function runs, against the value
just before (the C heap's free pages handed back first). Each function first runs once at each
size, which compiles what is kept between calls for that size (the shuffle of ``n`` rows).
``benchmarks/bench_memory.py`` measures the same workloads at sizes up to gigabytes.
"""

import ctypes
import gc
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import pytest

import jaxnet
from jaxnet import losses, optim
from jaxnet.core import init_model
from jaxnet.train import sources

STATUS = Path("/proc/self/status")
pytestmark = pytest.mark.skipif(not STATUS.exists(), reason="needs Linux's /proc")

FEATURES, BATCH, STEPS = 1024, 128, 4  # a chunk: 4 batches of 128 x 1024 float32 = 2 MiB
CHUNK_BYTES = STEPS * BATCH * FEATURES * 4
SEEDS = (0, 1)  # fit_many's models


def rss_anon() -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon")


def trim() -> None:
    """Collect garbage and return the C heap's free pages to the system (glibc; elsewhere only
    the first)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def fixed_mmap_threshold(nbytes: int = 2**20) -> None:
    """glibc's malloc: every block of ``nbytes`` or more (a chunk's arrays) in its own mapping,
    returned to the system when freed. By default the threshold follows the largest block freed,
    up to 32 MiB, and freed chunks then stay in the heap, so a peak would depend on the order of
    frees. (It stays set for the rest of the process: blocks of 1 MiB or more are rare in tests.)
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, nbytes)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def peak_growth(run) -> tuple[int, Any]:
    """``(largest RssAnon above its value before run(), run's result)``, sampled every
    millisecond. The C heap's free memory is handed back first (glibc's ``malloc_trim``), so the
    figure does not depend on what ran before."""
    trim()
    start, peak, done = rss_anon(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.001)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        result = run()
    finally:
        done.set()
        thread.join()
    return max(peak[0], rss_anon()) - start, result


def memmap(folder: Path, rows: int, features: int = FEATURES):
    """Memory-mapped ``x`` (``rows x features`` float32, normal) and ``y`` (0/1 float32)."""
    paths = folder / f"x{rows}x{features}.npy", folder / f"y{rows}x{features}.npy"
    if not paths[0].exists():
        rng = np.random.default_rng(rows)
        x = np.lib.format.open_memmap(paths[0], "w+", np.float32, (rows, features))
        for start in range(0, rows, 8192):  # written in pieces: the writer itself stays small
            x[start : start + 8192] = rng.normal(size=(min(8192, rows - start), features))
        x.flush()
        np.save(paths[1], rng.integers(0, 2, rows).astype(np.float32))
        del x
    return np.load(paths[0], mmap_mode="r"), np.load(paths[1], mmap_mode="r")


# -- the sources: (memory-mapped x, y, batch size) -> (x, y, steps) as fit and the others take them
class Indexed:
    """A minimal random-access source: ``len`` and ``source[indices] -> (x, y)``."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, indices):
        return self.x[indices], self.y[indices]


class Records(Indexed):
    """One ``(x, y)`` record per index, as Grain's data sources answer."""

    def __getitem__(self, index):
        return self.x[int(index)], self.y[int(index)]


def grain_source(x, y, batch):
    grain = pytest.importorskip("grain")
    return grain.MapDataset.source(Records(x, y)), None, None


def grain_stream(x, y, batch):
    """Grain's ``IterDataset``: records read ahead by threads (500 by default), then batched."""
    grain = pytest.importorskip("grain")
    records = grain.MapDataset.source(Records(x, y)).to_iter_dataset()
    return records.batch(batch), None, len(x) // batch


def generator(x, y, batch):
    def batches():
        for start in range(0, len(x) - batch + 1, batch):
            yield x[start : start + batch], y[start : start + batch]

    return batches(), None, len(x) // batch


SOURCES = {
    "memmap": lambda x, y, batch: (x, y, None),
    "random-access": lambda x, y, batch: (Indexed(x, y), None, None),
    "grain": grain_source,
    "grain-stream": grain_stream,
    "generator": generator,
}
# Grain's threaded stream reads about 10 s' worth here per function: benchmarks/bench_memory.py
# measures it (--sources grain-stream), the tests the other four.
TESTED = ["memmap", "random-access", "grain", "generator"]


# -- the functions: each runs once over (x, y, steps) and returns the bytes of what it must keep
class Workload(NamedTuple):
    """One model and its settings; ``steps``: steps per chunk (``None``: the automatic budget)."""

    model: Any
    params: Any
    state: Any
    batch: int
    steps: int | None


def workload(features: int, batch: int = BATCH, steps: int | None = STEPS, hidden=()):
    layers = [jaxnet.layers.Dense(units) for units in (*hidden, 1)]
    model = jaxnet.serial(*layers) if len(layers) > 1 else layers[0]
    params, state = init_model(model, jax.random.key(0), (features,))
    return Workload(model, params, state, batch, steps)


def run_fit(w: Workload, x, y, steps) -> int:
    jaxnet.fit(w.model, losses.binary_cross_entropy, optim.sgd(1e-3), x, y, epochs=1,
               batch_size=w.batch, steps_per_execution=w.steps, steps_per_epoch=steps,
               verbose=0)  # fmt: skip
    return 0


def run_fit_many(w: Workload, x, y, steps) -> int:
    jaxnet.fit_many(w.model, losses.binary_cross_entropy, optim.sgd(1e-3), x, y, seeds=SEEDS,
                    epochs=1, batch_size=w.batch, steps_per_execution=w.steps,
                    steps_per_epoch=steps, verbose=0)  # fmt: skip
    return 0


def run_evaluate(w: Workload, x, y, steps) -> int:
    """Scored over all predictions at once: the predictions and targets (4 bytes each) exist."""
    jaxnet.evaluate(w.model, w.params, w.state, x, y, losses.binary_cross_entropy,
                    batch_size=w.batch, steps=steps)  # fmt: skip
    n = steps * w.batch if steps else len(x)
    return 2 * 4 * n


def run_predict(w: Workload, x, y, steps) -> int:
    """The outputs (``n x 1`` float32) are what predict returns."""
    del y
    return jaxnet.predict(w.model, w.params, w.state, x, batch_size=w.batch, steps=steps).nbytes


FUNCTIONS = {"fit": run_fit, "evaluate": run_evaluate, "predict": run_predict,
             "fit_many": run_fit_many}  # fmt: skip


def measure(w: Workload, function: str, source: str, x, y) -> int:
    """Peak RssAnon growth of ``function`` over ``source`` made of ``(x, y)``, net of the output
    it must keep (:data:`FUNCTIONS`)."""
    data = SOURCES[source](x, y, w.batch)
    growth, kept = peak_growth(lambda: FUNCTIONS[function](w, *data))
    return growth - kept


# -- the test -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memory")
    return {megabytes: memmap(folder, megabytes * 2**20 // (FEATURES * 4)) for megabytes in (4, 24)}


@pytest.fixture(scope="module")
def model():
    with pytest.MonkeyPatch.context() as patch:  # predict and evaluate: chunks of fit's size
        patch.setattr(sources, "CHUNK_EXAMPLES", STEPS * BATCH)
        fixed_mmap_threshold()
        yield workload(FEATURES)


@pytest.fixture(scope="module")
def baselines():
    """Each function's peak on one chunk of arrays in memory, by function (filled lazily)."""
    return {}


# Every function over memory-mapped arrays, every other kind of source under fit (chunks in a
# shuffled order), and a generator under predict (a stream's batches joined into chunks in order);
# benchmarks/bench_memory.py measures all sixteen pairs at sizes up to gigabytes.
PAIRS = [(function, "memmap") for function in FUNCTIONS]
PAIRS += [("fit", source) for source in TESTED[1:]] + [("predict", "generator")]


@pytest.mark.parametrize(("function", "source"), PAIRS)
def test_peak_memory_does_not_grow_with_the_data(files, model, baselines, function, source):
    if function not in baselines:  # once per function, whatever the source:
        for megabytes in (4, 24):  # compiles what is kept between calls for each size
            measure(model, function, "memmap", *files[megabytes])  # (the shuffle of n rows)
        # ("memmap" passes x and y as they are: here arrays in memory.)
        arrays = tuple(np.array(a[: STEPS * BATCH]) for a in files[4])
        measure(model, function, "memmap", *arrays)  # compiles the in-memory programs
        baselines[function] = measure(model, function, "memmap", *arrays)
    growth = {
        megabytes: measure(model, function, source, *files[megabytes]) for megabytes in (4, 24)
    }
    # 20 MiB more data (10 more chunks) cost less than 5 chunks more (measured: 2.5 at most; each
    # call compiles its programs, which varies by a few MiB): a few chunks are in memory whatever
    # the data set's size. (Read ahead whole, the data would cost 20 MiB more.)
    assert growth[24] - growth[4] < 5 * CHUNK_BYTES, growth
    assert growth[24] < baselines[function] + 8 * CHUNK_BYTES, (growth, baselines)
