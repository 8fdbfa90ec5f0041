"""A study of 8 configurations x 8 seeds of the digits MLP (64-100-100-10, batch 32): wall time.

    python benchmarks/bench_study.py [--epochs 10] [--seeds 8] [--no-diagnose]

Two shapes of "8 configurations", each a full :func:`jaxnet.studies.run_study` (data split,
training, held-out evaluation, statistics, diagnostics at init unless ``--no-diagnose``):

- ``8 learning rates``: Adam at 8 learning rates -> ONE compiled program trains all 64 models;
- ``8 activations``: 8 activation functions -> 8 programs (code differs), each training 8 seeds.

The target is under 2 minutes for each. The compilation cache starts empty (a temporary folder),
so identical programs (e.g. the initialisation shared by activations with the same initialiser)
compile once per run, as with ``python -m jaxnet.studies``; ``--no-cache`` turns it off. The
one-model row is the scale: training the 64 models one at a time costs about 64x it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

from jaxnet.compilation import enable_compilation_cache  # noqa: E402
from jaxnet.studies import Study, run_study  # noqa: E402

BASE = {"hidden": (100, 100), "optimizer": "adam", "batch_size": 32}
LEARNING_RATES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2)
ACTIVATIONS = ("logistic", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "swish")
TARGET_SECONDS = 120.0


def studies(seeds: int):
    return {
        "8 learning rates (1 program)": Study(
            "bench_lr", tuple({"learning_rate": r} for r in LEARNING_RATES), base=BASE, seeds=seeds
        ),
        "8 activations (8 programs)": Study(
            "bench_act", tuple({"activation": a} for a in ACTIVATIONS), base=BASE, seeds=seeds
        ),
        "1 model (for scale)": Study("bench_one", ({},), base=BASE, seeds=1),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--no-diagnose", action="store_true")
    parser.add_argument("--no-cache", action="store_true", help="no compilation cache at all")
    args = parser.parse_args(argv)
    if not args.no_cache:  # a fresh, empty cache: identical programs compile once per run
        enable_compilation_cache(tempfile.mkdtemp(prefix="bench_study_cache_"))
    print(f"machine: {common.machine()}")
    rows = []
    for label, study in studies(args.seeds).items():
        start = time.perf_counter()
        result = run_study(study, epochs=args.epochs, diagnose=not args.no_diagnose, verbose=0)
        seconds = time.perf_counter() - start
        cells = result["cells"]
        compile_s = sum(c["compile_seconds"] for c in cells[:: cells[0]["cells_in_program"]])
        models = len(cells) * len(result["study"]["seeds"])
        mean_metric = sum(c["summary"]["test_accuracy"]["mean"] for c in cells) / len(cells)
        verdict = "yes" if seconds < TARGET_SECONDS else "NO"
        rows.append([label, models, result["programs"], seconds, compile_s, mean_metric, verdict])
        print(rows[-1], flush=True)
    header = [
        "study",
        "models",
        "programs",
        "wall s",
        "compile s",
        "mean test acc",
        "< 2 min",
    ]
    print(f"\n{args.epochs} epochs of {result['data']['n_train']} digits, batch 32:\n")
    print(common.table(header, rows))


if __name__ == "__main__":
    main()
