"""Peak anonymous memory (RssAnon) of fit, evaluate, predict and fit_many over every kind of source.

Each function runs over memory-mapped data of each size read four ways (``tests/test_memory.py``'s
sources): the memory-mapped arrays themselves, a random-access object (``source[indices] ->
(x, y)``), a Grain ``MapDataset`` of ``(x, y)`` records and a generator of batches
(``--sources grain-stream`` adds Grain's threaded ``IterDataset``, slow here). The model is
``Dense(32) -> Dense(1)`` on 1024 float32 features, batch 512, one epoch (``fit_many``: 3 models),
chunks of the automatic 64 MiB budget (``--chunk-mib`` sets another). A figure is the peak of
``RssAnon`` above its value just before the call (sampled every millisecond from a thread), net of
what the function must return or keep (``predict``: its outputs, ``n x 1`` float32; ``evaluate``:
the predictions and targets it scores at once, 8 bytes an example). The chunk programs are
compiled first on a small file (sizes are rounded to whole chunks, so no other chunk length
occurs), and each size is run once before the measured call, which compiles what depends on the
size (the shuffle of ``n`` rows; ``--cold`` measures that first call instead). The in-memory
baseline is the same call, also run twice, on ``--baseline-mib`` of arrays in memory. Files go to
``--out`` (a temporary folder by default) and are deleted at the end unless ``--keep``::

    python benchmarks/bench_memory.py --sizes 64 256
    python benchmarks/bench_memory.py --sizes 200 1000 4000 --out /tmp/jaxnet-mem
    python benchmarks/bench_memory.py --sizes 200 1000 --sources grain-stream
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_memory as probe  # noqa: E402  (the test's sources, functions and sampler)

from jaxnet.train import sources  # noqa: E402

MiB = 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="MiB of data")
    parser.add_argument("--functions", nargs="+", default=list(probe.FUNCTIONS),
                        choices=list(probe.FUNCTIONS))  # fmt: skip
    parser.add_argument("--sources", nargs="+", default=probe.TESTED, choices=list(probe.SOURCES))
    parser.add_argument("--features", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--chunk-mib", type=int, default=sources.CHUNK_BYTES // MiB,
                        help="chunk budget (MiB)")  # fmt: skip
    parser.add_argument("--baseline-mib", type=int, default=16, help="in-memory arrays (MiB)")
    parser.add_argument("--out", default=None, help="folder for the .npy files")
    parser.add_argument("--keep", action="store_true", help="keep the .npy files")
    parser.add_argument("--cold", action="store_true", help="measure each size's first call")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="jaxnet-memory-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        run(args, out)
    finally:
        if not args.keep:
            for path in out.glob("[xy]*x*.npy"):
                path.unlink()
            if not args.out:
                shutil.rmtree(out, ignore_errors=True)


def run(args, out: Path) -> None:
    row = args.features * 4
    steps = max(1, args.chunk_mib * MiB // (args.batch * row))  # batches per chunk
    chunk_rows = steps * args.batch
    sources.CHUNK_EXAMPLES = chunk_rows  # predict and evaluate read chunks of the same size
    sources.CHUNK_BYTES = chunk_rows * row
    w = probe.workload(args.features, args.batch, steps, hidden=(32,))
    probe.SEEDS = (0, 1, 2)  # fit_many's models
    whole = {mib: max(1, round(mib * MiB / row / chunk_rows)) * chunk_rows for mib in args.sizes}
    files = {mib: probe.memmap(out, rows, args.features) for mib, rows in whole.items()}
    small = probe.memmap(out, 2 * chunk_rows, args.features)
    base_rows = args.baseline_mib * MiB // row // args.batch * args.batch
    memory = tuple(np.array(a[:base_rows]) for a in small if len(a) >= base_rows) or None
    if memory is None:
        memory = tuple(np.array(a) for a in probe.memmap(out, base_rows, args.features))
    print(f"chunks: {steps} batches of {args.batch} x {args.features} float32 = "
          f"{chunk_rows * row / MiB:.0f} MiB; sizes rounded to whole chunks: "
          + ", ".join(f"{len(x) * row / MiB:.0f}" for x, _ in files.values()) + " MiB")  # fmt: skip
    sizes = "".join(f" {len(x) * row / MiB:.0f} MiB |" for x, _ in files.values())
    print(f"\n| function | source |{sizes} largest - smallest | s (largest) |")
    print("|---|---|" + "---:|" * (len(files) + 2))
    for function in args.functions:
        probe.measure(w, function, "memmap", *memory)  # compiles
        baseline = probe.measure(w, function, "memmap", *memory)
        print(f"| {function} | in memory, {memory[0].nbytes / MiB:.0f} MiB |"
              f" {baseline / MiB:.0f} |" + " |" * (len(files) + 1), flush=True)  # fmt: skip
        for source in args.sources:
            probe.measure(w, function, source, *small)  # compiles the chunk programs
            peaks = []
            for x, y in files.values():
                if not args.cold:  # compiles what depends on the size (the shuffle of n rows)
                    probe.measure(w, function, source, x, y)
                start = time.perf_counter()
                peaks.append(probe.measure(w, function, source, x, y))
                seconds = time.perf_counter() - start
            cells = "".join(f" {p / MiB:.0f} |" for p in peaks)
            print(f"| {function} | {source} |{cells} {(peaks[-1] - peaks[0]) / MiB:+.0f} | "
                  f"{seconds:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
