"""Data sources: memory-mapped and streamed data against the in-memory fused epoch, and streaming
``fit`` against Keras 3's ``fit`` on a ``PyDataset`` and a PyTorch ``DataLoader`` loop.

    python benchmarks/bench_data.py [--quick] [--only memmap,chunks,stream,processes,orders]

Workloads: the digits MLP 64-100-100-10 (batch 32) and an MNIST-size MLP 784-1024-1024-10
(batch 256, 60,000 synthetic examples: the speed does not depend on the values). Every variant
trains with Adam (1e-3) and reports the median epoch time after a first (compiling) epoch, all in
one process, so the ratios compare like with like. Prints Markdown tables.

- ``memmap``: ``fit`` on ``np.load(..., mmap_mode="r")`` copies of the arrays (read in chunks while
  the previous chunk trains) vs the same arrays in memory (one fused program per epoch).
- ``chunks``: an in-memory epoch cut into chunks (progress while it runs) vs one fused program
  (both interleave their variants over 3 rounds of fits).
- ``stream``: a Python generator of batches into ``fit`` vs Keras ``model.fit(PyDataset)`` (JAX
  backend) vs a PyTorch ``DataLoader`` training loop; the same batches, model and optimizer.
- ``processes``: data-parallel ``fit`` of the MNIST-size MLP: 2 processes x 1 CPU device
  (``python -m jaxnet.launch``) vs 1 process x 2 CPU devices.
- ``orders``: data-parallel ``fit`` of the MNIST-size MLP in one process with 2 CPU devices:
  ``shard_order="global"`` (the one-device batches; the arrays replicated on every device) vs
  ``"per_device"`` (the arrays split by rows, each device shuffling its own), with the bytes of
  training data each device holds, next to ``fit`` on one of the two devices (the fits alternate
  over 3 rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import digits, machine, table  # noqa: E402

WORKLOADS = {  # name: (hidden sizes, batch, examples, features, classes)
    "digits MLP 64-100-100-10, batch 32": ((100, 100), 32, None, 64, 10),
    "MNIST-size MLP 784-1024-1024-10, batch 256": ((1024, 1024), 256, 60_000, 784, 10),
}


def data(name, quick):
    hidden, batch, n, features, classes = WORKLOADS[name]
    if n is None:
        x, _, y, _ = digits()
        return x, y
    n = 12_800 if quick else n
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features)).astype(np.float32)
    return x, rng.integers(0, classes, n).astype(np.int32)


def jaxnet_epoch_seconds(x, y, hidden, batch, epochs, **options):
    return statistics.median(jaxnet_epoch_times(x, y, hidden, batch, epochs, **options))


def jaxnet_epoch_times(x, y, hidden, batch, epochs, **options):
    """Seconds of each epoch after the first (which compiles) of one ``fit``."""
    import optax

    import jaxnet

    layers = []
    for units in hidden:
        layers += [jaxnet.Dense(units, kernel_init="he_normal"), jaxnet.activations.Relu()]
    model = jaxnet.serial(*layers, jaxnet.Dense(10))
    loss = jaxnet.losses.sparse_categorical_cross_entropy
    _, history = jaxnet.fit(model, loss, optax.adam(1e-3), x, y, epochs=epochs, batch_size=batch,
                            verbose=0, **options)  # fmt: skip
    return history["time"][1:]


def keras_epoch_seconds(x, y, hidden, batch, epochs):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return len(x) // batch

        def __getitem__(self, i):
            return x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]

    layers = [keras.Input((x.shape[1],))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    model = keras.Sequential([*layers, keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(Batches(), epochs=epochs, verbose=0, callbacks=[Timer()])
    return statistics.median(times[1:])


def torch_epoch_seconds(x, y, hidden, batch, epochs):
    import torch

    torch.manual_seed(0)
    sizes = [x.shape[1], *hidden, 10]
    flops = 6 * batch * sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if flops < 1e8 else threads)  # as benchmarks/peers/torch.py
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y).long())
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    sizes, layers = [x.shape[1], *hidden], []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], 10))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for xb, yb in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    return statistics.median(times[1:])


def generator(x, y, batch):
    while True:
        for i in range(len(x) // batch):
            yield x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]


ROUNDS = 3  # memmap and chunks: the variants' fits alternate over this many rounds


def bench_memmap(epochs, quick):
    rows = []
    for name, (hidden, batch, *_) in WORKLOADS.items():
        x, y = data(name, quick)
        with tempfile.TemporaryDirectory() as folder:
            np.save(f"{folder}/x.npy", x)
            np.save(f"{folder}/y.npy", y)
            xm = np.load(f"{folder}/x.npy", mmap_mode="r")
            ym = np.load(f"{folder}/y.npy", mmap_mode="r")
            times = {"memory": [], "mapped": []}
            for _ in range(ROUNDS):  # interleaved, so that machine load falls on both alike
                times["memory"] += jaxnet_epoch_times(x, y, hidden, batch, epochs)
                times["mapped"] += jaxnet_epoch_times(xm, ym, hidden, batch, epochs)
            memory, mapped = (statistics.median(times[k]) for k in ("memory", "mapped"))
        rows.append([name, f"{memory * 1e3:.1f}", f"{mapped * 1e3:.1f}", f"{memory / mapped:.2f}x"])
    return table(["workload", "in memory (ms/epoch)", "memory-mapped", "speed vs memory"], rows)


def bench_chunks(epochs, quick):
    name = "MNIST-size MLP 784-1024-1024-10, batch 256"
    hidden, batch, *_ = WORKLOADS[name]
    x, y = data(name, quick)
    variants = {"one fused program": len(x), "automatic": None, "8 steps a chunk": 8,
                "2 steps a chunk": 2}  # fmt: skip
    times = {label: [] for label in variants}
    for _ in range(ROUNDS):  # interleaved, so that machine load falls on all alike
        for label, k in variants.items():
            times[label] += jaxnet_epoch_times(x, y, hidden, batch, epochs, steps_per_execution=k)
    fused = statistics.median(times["one fused program"])
    rows = []
    for label, values in times.items():
        seconds = statistics.median(values)
        rows.append([name, label, f"{seconds * 1e3:.1f}", f"{fused / seconds:.2f}x"])
    return table(["workload", "in-memory epoch as", "ms/epoch", "speed vs fused"], rows)


def bench_stream(epochs, quick):
    rows = []
    for name, (hidden, batch, *_) in WORKLOADS.items():
        x, y = data(name, quick)
        steps = len(x) // batch
        ours = jaxnet_epoch_seconds(generator(x, y, batch), None, hidden, batch, epochs,
                                    steps_per_epoch=steps)  # fmt: skip
        row = [name, f"{ours * 1e3:.1f}"]
        for peer in (keras_epoch_seconds, torch_epoch_seconds):
            try:
                seconds = peer(x, y, hidden, batch, epochs)
            except ImportError as error:
                row.append(f"- ({error.name} not installed)")
                continue
            row.append(f"{seconds * 1e3:.1f} ({seconds / ours:.2f}x slower)")
        rows.append(row)
    header = [
        "workload",
        "jaxnet fit(generator) ms/epoch",
        "Keras fit(PyDataset)",
        "PyTorch DataLoader",
    ]
    return table(header, rows)


PROCESS_SCRIPT = """
import json, sys, statistics
import numpy as np
from jaxnet.train import parallel
parallel.initialize()
import jax, optax, jaxnet
n, epochs, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
x = rng.normal(size=(n, 784)).astype(np.float32); y = rng.integers(0, 10, n).astype(np.int32)
model = jaxnet.serial(jaxnet.Dense(1024), jax.nn.relu, jaxnet.Dense(1024), jax.nn.relu,
                      jaxnet.Dense(10))
_, history = jaxnet.fit(model, jaxnet.losses.sparse_categorical_cross_entropy, optax.adam(1e-3),
                        x, y, epochs=epochs, batch_size=256, verbose=0,
                        mesh=parallel.data_parallel_mesh())
if parallel.is_main_process():
    json.dump({"epoch": statistics.median(history["time"][1:]), "devices": jax.device_count()},
              open(out, "w"))
"""


TWO_CPU_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}


def bench_processes(epochs, quick):
    n = 12_800 if quick else 60_000
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "train.py"
        script.write_text(PROCESS_SCRIPT)
        env = dict(os.environ, **TWO_CPU_DEVICES)
        one = [sys.executable, str(script), str(n), str(epochs), f"{folder}/one.json"]
        subprocess.run(one, env=env, check=True, capture_output=True)
        two = [sys.executable, "-m", "jaxnet.launch", "--processes", "2", "--cpu-devices", "1",
               str(script), str(n), str(epochs), f"{folder}/two.json"]  # fmt: skip
        subprocess.run(two, check=True, capture_output=True)
        one = json.loads(Path(f"{folder}/one.json").read_text())
        two = json.loads(Path(f"{folder}/two.json").read_text())
    ratio = two["epoch"] / one["epoch"]
    rows = [
        ["1 process x 2 CPU devices", f"{one['epoch'] * 1e3:.0f}", "1.00x"],
        ["2 processes x 1 CPU device", f"{two['epoch'] * 1e3:.0f}", f"{ratio:.2f}x"],
    ]
    return table(
        ["MNIST-size MLP, batch 256, data parallel", "ms/epoch", "time vs 1 process"], rows
    )


ORDERS_SCRIPT = """
import json, sys, statistics
import numpy as np
import jax, optax, jaxnet
from jaxnet.train import parallel
from jaxnet.train.feed import make_feed
n, epochs, rounds, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
x = rng.normal(size=(n, 784)).astype(np.float32); y = rng.integers(0, 10, n).astype(np.int32)
model = jaxnet.serial(jaxnet.Dense(1024), jax.nn.relu, jaxnet.Dense(1024), jax.nn.relu,
                      jaxnet.Dense(10))
loss = jaxnet.losses.sparse_categorical_cross_entropy
mesh = parallel.data_parallel_mesh()
variants = {"one device": {}, "global": {"mesh": mesh},
            "per_device": {"mesh": mesh, "shard_order": "per_device"}}
times, held = {name: [] for name in variants}, {}
for _ in range(rounds):  # interleaved, so that machine load falls on all alike
    for name, options in variants.items():
        ts, history = jaxnet.fit(model, loss, optax.adam(1e-3), x, y, epochs=epochs,
                                 batch_size=256, verbose=0, **options)
        times[name] += history["time"][1:]
for name, options in variants.items():  # the training data each device holds
    feed = make_feed(x, y, batch_size=256)
    feed.place(model, ts.params, ts.state, options.get("mesh"),
               options.get("shard_order", "global"))
    held[name] = feed.data.x.addressable_shards[0].data.nbytes
json.dump({name: {"epoch": statistics.median(times[name]), "bytes": held[name]}
           for name in variants}, open(out, "w"))
"""


def bench_orders(epochs, quick):
    n = 12_800 if quick else 60_000
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "train.py"
        script.write_text(ORDERS_SCRIPT)
        env = dict(os.environ, **TWO_CPU_DEVICES)
        command = [sys.executable, str(script), str(n), str(epochs), str(ROUNDS), f"{folder}/r"]
        subprocess.run(command, env=env, check=True, capture_output=True)
        result = json.loads(Path(f"{folder}/r").read_text())
    per_device = result["per_device"]["epoch"]
    labels = {"one device": "fit on 1 of the 2 devices", "per_device": 'shard_order="per_device"',
              "global": 'shard_order="global" (default)'}  # fmt: skip
    rows = [[labels[name], f"{r['epoch'] * 1e3:.0f}", f"{per_device / r['epoch']:.2f}x",
             f"{r['bytes'] / 2**20:.1f}"] for name, r in result.items()]  # fmt: skip
    header = [f"MNIST-size MLP, batch 256, {n} examples, 2 CPU devices", "ms/epoch",
              "speed vs per_device", "MiB of x per device"]  # fmt: skip
    return table(header, rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="12,800 examples, 3 epochs")
    parser.add_argument("--only", default="memmap,chunks,stream,processes,orders")
    args = parser.parse_args(argv)
    epochs = 3 if args.quick else 4
    print(f"# bench_data ({time.strftime('%Y-%m-%d')}, {machine()}, load {os.getloadavg()[0]:.1f})")
    benches = {"memmap": bench_memmap, "chunks": bench_chunks, "stream": bench_stream,
               "processes": bench_processes, "orders": bench_orders}  # fmt: skip
    for name in args.only.split(","):
        print(f"\n## {name}\n")
        print(benches[name](epochs, args.quick))


if __name__ == "__main__":
    main()
