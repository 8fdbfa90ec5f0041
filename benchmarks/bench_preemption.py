"""Preemption timing: SIGTERM to a training process -> checkpoint saved -> process exited.

    python benchmarks/bench_preemption.py [--repeats 3] [--quick]

A child process trains an MLP (512-512 on 20,000 synthetic examples of 64 features, batch 128:
156 steps an epoch) with ``checkpoint_dir`` for a few epochs. Once it is training in its second
epoch the benchmark sends SIGTERM and measures, from the signal: when the checkpoint's manifest
was written and when the process exited (median of ``--repeats``), and its exit status. Rows:
epochs as one fused program (the signal is acted on at the epoch's end), epochs in chunks of
``K`` steps (at the next chunk's end), and two processes under ``python -m jaxnet.launch``
(SIGTERM to the launcher, which passes it on; the processes agree on the step with a collective).
A chunk's (or fused epoch's) duration, as the child measures it (its second epoch's time over
its chunks), is printed beside: the signal comes a third of one after an epoch's end.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import sys, time
    from jaxnet.train import parallel

    parallel.initialize()
    import jax, numpy as np, jaxnet
    from jaxnet import optim

    directory, k = sys.argv[1], int(sys.argv[2]) or None
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 64)).astype(np.float32)
    y = (x[:, :10].argmax(axis=1)).astype(np.int32)
    model = jaxnet.serial(jaxnet.Dense(512), jax.nn.relu, jaxnet.Dense(512), jax.nn.relu,
                          jaxnet.Dense(10))
    mesh = parallel.data_parallel_mesh() if jax.process_count() > 1 else None

    class Report:  # a chunk's duration: the second epoch's over its chunks
        start = None

        def on_epoch_end(self, epoch, logs, loop):
            now = time.perf_counter()
            if epoch == 1 and jax.process_index() == 0:
                chunks = -(-loop.steps_per_epoch // k) if k else 1
                print("TRAINING", (now - self.start) / chunks, flush=True)
            self.start = now

    jaxnet.fit(model, jaxnet.losses.sparse_categorical_cross_entropy, optim.adam(1e-3), x, y,
               epochs=1000, batch_size=128, verbose=0, steps_per_execution=k, mesh=mesh,
               checkpoint_dir=directory, callbacks=[Report()])
    """
)


def one_run(k: int, processes: int) -> dict:
    """Start the child, SIGTERM it (or its launcher) while it trains, and time what follows."""
    with tempfile.TemporaryDirectory() as folder:
        script, directory = Path(folder) / "train.py", Path(folder) / "run"
        script.write_text(CHILD)
        command = [sys.executable, str(script), str(directory), str(k)]
        if processes > 1:
            command = [sys.executable, "-m", "jaxnet.launch", "--processes", str(processes),
                       "--cpu-devices", "1", *command[1:]]  # fmt: skip
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=env)  # fmt: skip
        lines = iter(child.stdout.readline, "")  # (gloo prints on stdout too)
        line = next((line for line in lines if line.startswith("TRAINING")), "")
        if not line:
            child.terminate()  # (the launcher passes it on)
            raise RuntimeError(f"the child did not train: {child.communicate(timeout=60)[1]}")
        chunk = float(line.split()[1])
        time.sleep(chunk / 3)  # into the next chunk
        before = {p.name for p in directory.glob("*.json")}
        signalled = time.time()
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=300)
        exited = time.time()
        new = [p for p in directory.glob("*.json") if p.name not in before]
        saved = max((p.stat().st_mtime for p in new), default=float("nan"))
        return {"chunk": chunk, "saved": saved - signalled, "exited": exited - signalled,
                "status": child.returncode}  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat, two rows")
    args = parser.parse_args(argv)
    rows = [("fused epochs", 0, 1), ("chunks of 16 steps", 16, 1), ("chunks of 64 steps", 64, 1),
            ("2 processes, chunks of 16", 16, 2)]  # fmt: skip
    repeats = 1 if args.quick else args.repeats
    if args.quick:
        rows = rows[1:2] + rows[3:]
    print(f"SIGTERM during fit: median of {repeats} run(s), seconds from the signal\n")
    print("| run | chunk or epoch (s) | -> checkpoint saved | -> process exited | status |")
    print("|---|---:|---:|---:|---:|")
    for name, k, processes in rows:
        runs = [one_run(k, processes) for _ in range(repeats)]
        median = {key: statistics.median(r[key] for r in runs) for key in ("chunk", "saved",
                                                                            "exited")}  # fmt: skip
        statuses = ", ".join(map(str, sorted({r["status"] for r in runs})))
        print(f"| {name} | {median['chunk']:.2f} | {median['saved']:.2f} | "
              f"{median['exited']:.2f} | {statuses} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
