"""fit_many across devices: 16 digits MLPs on one device, and split over one CPU device per core.

Starts JAX with ``--xla_force_host_platform_device_count=<cores>`` (one CPU device per core), so
every row runs in the same process: ``fit`` x 16 one after another (4 measured, scaled to 16),
``fit_many`` on device 0, and ``fit_many(mesh=models_mesh())`` with the models split across the
devices. Steady-state epoch time of all 16 models, median of the timed epochs.

    python benchmarks/bench_many.py [--epochs 10]
"""

from __future__ import annotations

import os

CORES = os.cpu_count() or 1
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={CORES}"
)

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import jaxnet  # noqa: E402
from jaxnet import losses, optim  # noqa: E402
from jaxnet.train.parallel import models_mesh  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import digits_mlp  # noqa: E402

MODELS, BATCH = 16, 32


def main(epochs: int = 10) -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = (x[:1408] / 16).astype(np.float32), y[:1408].astype(np.int32)
    loss, steps = losses.sparse_categorical_cross_entropy, len(x) // BATCH
    common = dict(epochs=epochs, batch_size=BATCH, verbose=0)

    def many(mesh):
        kw = dict(seeds=range(MODELS), mesh=mesh, **common)
        result = jaxnet.fit_many(digits_mlp(), loss, optim.adam(1e-3), x, y, **kw)
        return statistics.median(result.epoch_seconds[1:])

    def sequential():
        times = []
        for seed in range(4):
            _, history = jaxnet.fit(digits_mlp(), loss, optim.adam(1e-3), x, y, seed=seed, **common)
            times.append(statistics.median(history["time"][1:]))
        return statistics.median(times) * MODELS

    rows = {}
    for _ in range(2):  # two rounds, alternated; the faster of each row
        for name, run in [
            ("fit x 16, one after another", sequential),
            ("fit_many, one device", lambda: many(None)),
            (f"fit_many, models split over {CORES} CPU devices", lambda: many(models_mesh())),
        ]:
            rows[name] = min(rows.get(name, float("inf")), run())
    base = rows["fit x 16, one after another"]
    print(f"16 digits MLPs 64-100-100-10, batch {BATCH}, Adam; {steps} steps/epoch; {CORES} cores")
    print("\n| 16 models | ms/epoch (all) | model-steps/s | speed vs fit x 16 |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows.items():
        rate = MODELS * steps / seconds
        print(f"| {name} | {1e3 * seconds:.1f} | {rate:.0f} | {base / seconds:.2f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    main(parser.parse_args().epochs)
