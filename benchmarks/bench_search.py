"""Model selection end to end: a cross-validated digits MLP grid, one program vs cell by cell.

    python benchmarks/bench_search.py [--quick] [--cells 12 48] [--cpus N [N ...]]

The grid: ``learning_rate_init`` x ``alpha`` (12 cells; 48 adds ``beta_1`` x ``random_state``)
over ``MLPClassifier(hidden_layer_sizes=(100,), max_iter=30)`` on digits (1797 x 64, pixels
scaled to [0, 1]), 5-fold stratified CV, no refit. Each row runs in a fresh process (imports
excluded, compiling included: end to end, cold) and prints the wall time of ``fit``:

  - ``jaxnet.sklearn.search.GridSearchCV`` over ``jaxnet.sklearn.MLPClassifier``: every
    (cell x fold) in one vmapped program, its models split over one CPU device per core (two
    on a two-core machine: ``XLA_FLAGS=--xla_force_host_platform_device_count=2``,
    ``n_devices=-1``);
  - scikit-learn's ``GridSearchCV`` over the same jaxnet estimator, cell by cell;
  - scikit-learn's ``GridSearchCV`` over scikit-learn's ``MLPClassifier``, with ``n_jobs=2``
    and cell by cell;
  - skorch 1.4 (``NeuralNetClassifier`` over a PyTorch MLP of the same shape, Adam with
    ``weight_decay`` for alpha, batch 200, 30 epochs) with ``n_jobs=2``, when installed;
  - jaxnet's search again in a process that has run it once: its programs compiled, what is
    left is training and scoring. The first row minus this one is what compiling costs; this
    row is the floor of any cold run of the first.

Two figures per row: wall time, and CPU time (user + system, every thread, plus joblib's
worker processes for the ``n_jobs=2`` rows) — on a machine shared with other jobs the CPU
time is the fairer comparison; on an idle two-core machine the wall time is the user's.
Ratios are against the first row. The best cell's mean test accuracy is printed beside each
row (the jaxnet rows must agree to 1e-4: same computation; the others are other programs).
``--cpus 1 2`` runs the tables on the first CPU only, then on the first two (jaxnet's search on
one CPU device per core): how each row scales with the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

CONTENDERS = [
    "jaxnet search (1 program, {devices})",
    "sklearn GridSearchCV(jaxnet MLPClassifier)",
    "sklearn GridSearchCV(sklearn MLPClassifier, n_jobs=2)",
    "sklearn GridSearchCV(sklearn MLPClassifier)",
    "sklearn GridSearchCV(skorch, n_jobs=2)",
    "jaxnet search, programs compiled (a second search in the process)",
]


def grid(cells: int) -> dict:
    g = {"learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2], "alpha": [1e-4, 1e-3, 1e-2]}
    if cells == 48:
        g = {**g, "beta_1": [0.8, 0.9], "random_state": [0, 1]}
    elif cells != 12:
        raise SystemExit("--cells takes 12 or 48")
    return g


def data(quick: bool):
    import numpy as np
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return (x[:600], y[:600]) if quick else (x, y)


def run_one(index: int, cells: int, quick: bool) -> dict:
    """Fit the contender ``index``'s search; return its time and best mean test score."""
    warnings.filterwarnings("ignore")
    from sklearn import model_selection

    x, y = data(quick)
    max_iter = 5 if quick else 30
    g = grid(cells)
    if index in (0, 5):
        from jaxnet.sklearn import MLPClassifier
        from jaxnet.sklearn.search import GridSearchCV

        estimator = MLPClassifier(hidden_layer_sizes=(100,), max_iter=max_iter, random_state=0)
        search = GridSearchCV(estimator, g, cv=5, refit=False, n_devices=-1)
        if index == 5:  # the same search once before, unmeasured: every program is compiled
            GridSearchCV(estimator, g, cv=5, refit=False, n_devices=-1).fit(x, y)
    elif index == 1:
        from jaxnet.sklearn import MLPClassifier

        estimator = MLPClassifier(hidden_layer_sizes=(100,), max_iter=max_iter, random_state=0)
        search = model_selection.GridSearchCV(estimator, g, cv=5, refit=False)
    elif index in (2, 3):
        from sklearn.neural_network import MLPClassifier

        estimator = MLPClassifier(hidden_layer_sizes=(100,), max_iter=max_iter, random_state=0)
        n_jobs = 2 if index == 2 else None
        search = model_selection.GridSearchCV(estimator, g, cv=5, refit=False, n_jobs=n_jobs)
    else:
        search, x, y, g = _skorch_search(x, y, g, max_iter)
    start, cpu = time.perf_counter(), time.process_time()
    search.fit(x, y)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu + (_workers_cpu() if index in (2, 4) else 0.0)
    return {
        "seconds": seconds,
        "cpu": cpu,
        "best": float(search.cv_results_["mean_test_score"].max()),
    }


def _workers_cpu() -> float:
    """CPU seconds of joblib's worker processes (``n_jobs=2``): shut down and reaped, so the
    operating system has added their time to this process's children."""
    import resource

    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _skorch_search(x, y, g, max_iter):
    import numpy as np
    import torch
    from sklearn import model_selection
    from skorch import NeuralNetClassifier

    torch.set_num_threads(1)

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = torch.nn.Linear(64, 100), torch.nn.Linear(100, 10)

        def forward(self, x):
            return self.out(torch.relu(self.hidden(x)))

    net = NeuralNetClassifier(
        MLP, criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam, max_epochs=max_iter,
        batch_size=200, train_split=None, verbose=0,
    )  # fmt: skip
    skorch_grid = {"lr": g["learning_rate_init"], "optimizer__weight_decay": g["alpha"]}
    if "beta_1" in g:  # the same number of cells (skorch's module has no seed parameter)
        skorch_grid["optimizer__betas"] = [(b, 0.999) for b in g["beta_1"]]
        skorch_grid["optimizer__eps"] = [1e-8, 1e-7]
    search = model_selection.GridSearchCV(net, skorch_grid, cv=5, refit=False, n_jobs=2)
    return search, x.astype(np.float32), y.astype(np.int64), skorch_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 rows, 5 epochs")
    parser.add_argument("--cells", type=int, nargs="+", default=[12, 48])
    parser.add_argument("--only", type=int, nargs="+", help="rows to run (0-based), default all")
    parser.add_argument("--cpus", type=int, nargs="+", help="run on the first N CPUs, each N")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pin", type=int, nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        if args.pin:
            os.sched_setaffinity(0, args.pin)  # before JAX sizes its thread pools
        print(json.dumps(run_one(args.one, args.cells[0], args.quick)))
        return

    import common

    for n in args.cpus or [None]:
        run_tables(args, common.cpu_set(n), pin=n is not None)


def run_tables(args, cpu_set: list[int], pin: bool) -> None:
    """The tables of ``args.cells``, every process on ``cpu_set`` (pinned there if ``pin``)."""
    import common

    cpus = len(cpu_set)
    print(f"machine: {common.machine()}, {cpus} CPUs", flush=True)
    for cells in args.cells:
        print(f"\n{cells} cells x 5 folds, {'5' if args.quick else '30'} epochs, end to end:")
        print("| search | wall s | vs jaxnet | CPU s | vs jaxnet | best mean score |")
        print("|---|---|---|---|---|---|")
        base = base_cpu = None
        for index, name in enumerate(CONTENDERS):
            name = name.format(devices=f"{cpus} device{'s' if cpus > 1 else ''}")
            if args.only is not None and index not in args.only:
                continue
            if index == 4 and not _installed("skorch", "torch"):
                print(f"| {name} | not installed | | | | |", flush=True)
                continue
            env = dict(os.environ)
            if index in (0, 5):  # one CPU device per core
                env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={cpus}"
            command = [sys.executable, __file__, "--one", str(index), "--cells", str(cells)]
            command += ["--pin", *map(str, cpu_set)] if pin else []
            command += ["--quick"] if args.quick else []
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode:
                print(f"| {name} | failed: {done.stderr.strip().splitlines()[-1]} | | | | |")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            seconds, cpu = result["seconds"], result["cpu"]
            if index == 0:
                base, base_cpu = seconds, cpu
            ratio = f"{seconds / base:.1f}x" if base else ""
            cpu_ratio = f"{cpu / base_cpu:.1f}x" if base_cpu else ""
            row = [name, f"{seconds:.2f}", ratio, f"{cpu:.2f}", cpu_ratio, f"{result['best']:.4f}"]
            print("| " + " | ".join(row) + " |", flush=True)


def _installed(*names) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(n) is not None for n in names)


if __name__ == "__main__":
    main()
