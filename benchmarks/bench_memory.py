"""Peak anonymous memory (RssAnon) of ``fit`` over memory-mapped data sets of growing size.

One epoch of ``Dense(32) -> Dense(1)`` on 1024 features, batch 512, automatic chunks (64 MiB),
after a first run on a small file of the same width (compiling); each figure is the peak of
``RssAnon`` above its value just before ``fit``, sampled every millisecond from a thread. The
files go to ``--out`` (a temporary folder by default)::

    python benchmarks/bench_memory.py --sizes 100 400
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_memory as probe  # noqa: E402  (the test's memmap and sampler)

import jaxnet  # noqa: E402
from jaxnet import losses, optim  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400], help="MiB of data")
    parser.add_argument("--out", default=None, help="folder for the .npy files")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="jaxnet-memory-"))
    out.mkdir(parents=True, exist_ok=True)
    probe.FEATURES = 1024
    model = jaxnet.serial(jaxnet.layers.Dense(32), jaxnet.layers.Dense(1))

    def train(x, y):
        jaxnet.fit(model, losses.binary_cross_entropy, optim.sgd(1e-3), x, y, epochs=1,
                   batch_size=512, verbose=0)  # fmt: skip

    train(*probe.memmap(out, 70000))
    print("| data (MiB) | peak RssAnon above start (MiB) | epoch (s) |\n|---:|---:|---:|")
    for megabytes in args.sizes:
        x, y = probe.memmap(out, megabytes * 2**20 // (1024 * 4))
        start = time.perf_counter()
        growth = probe.peak_growth(lambda x=x, y=y: train(x, y))
        print(f"| {megabytes} | {growth / 2**20:.0f} | {time.perf_counter() - start:.1f} |")


if __name__ == "__main__":
    main()
