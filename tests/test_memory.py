"""Training from a memory-mapped data set holds chunks in memory, not the data set.

The process's own memory is ``RssAnon`` (``/proc/self/status``): a memory map's pages are file
pages and do not count there. It is sampled from a thread while ``fit`` runs, against the value
just before; the programs are compiled first on a small file of the same width, so the figures
are the data's alone.
"""

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import jaxnet
from jaxnet import losses, optim

STATUS = Path("/proc/self/status")
pytestmark = pytest.mark.skipif(not STATUS.exists(), reason="needs Linux's /proc")

FEATURES, BATCH, STEPS = 256, 512, 4  # a chunk: 4 batches of 512 x 256 float32 = 2 MiB
CHUNK_BYTES = STEPS * BATCH * FEATURES * 4


def rss_anon() -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon")


def memmap(tmp_path, rows: int):
    rng = np.random.default_rng(rows)
    x = np.lib.format.open_memmap(tmp_path / f"x{rows}.npy", "w+", np.float32, (rows, FEATURES))
    for start in range(0, rows, 8192):  # written in pieces: the test itself stays small
        x[start : start + 8192] = rng.normal(size=(min(8192, rows - start), FEATURES))
    x.flush()
    y = rng.integers(0, 2, rows).astype(np.float32)
    del x
    return np.load(tmp_path / f"x{rows}.npy", mmap_mode="r"), y


def peak_growth(run) -> int:
    """The largest RssAnon above its value before ``run()``, sampled every millisecond."""
    start, peak, done = rss_anon(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.001)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        run()
    finally:
        done.set()
        thread.join()
    return max(peak[0], rss_anon()) - start


def test_memory_of_a_memory_mapped_epoch_is_a_fraction_of_the_data(tmp_path):
    model = jaxnet.serial(jaxnet.layers.Dense(1))

    def train(x, y):
        jaxnet.fit(model, losses.binary_cross_entropy, optim.sgd(1e-3), x, y,
                   epochs=1, batch_size=BATCH, steps_per_execution=STEPS, verbose=0)  # fmt: skip

    train(*memmap(tmp_path, 4 * STEPS * BATCH))  # compiles every program
    growth = {}
    for megabytes in (16, 16, 96):  # (the first run of a size also grows the allocator's heap)
        x, y = memmap(tmp_path, megabytes * 2**20 // (FEATURES * 4))
        growth[megabytes] = peak_growth(lambda x=x, y=y: train(x, y))
    # Not the data set: 80 MiB more data cost well under a quarter of it (measured: about 9 MiB;
    # the epoch read ahead whole would cost 80 MiB or more). Flat is the target, not yet met.
    assert growth[96] - growth[16] < 20 * 2**20, growth
    assert growth[96] < 16 * CHUNK_BYTES, growth
