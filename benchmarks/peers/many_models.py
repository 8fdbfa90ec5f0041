"""Workload (d): 16 models of workload (a) trained at once, against training them one by one.

Rows (all models see the same data; steady state is one epoch of all 16 models, compile excluded):

- ``jaxnet fit_many``: one vmapped program (its epoch time is ``result.epoch_seconds``);
- ``jaxnet fit x 16``: 16 calls of ``fit`` one after another (the first compiles; the others
  find its programs compiled, ``jaxnet.compilation.compile_cached``);
- ``hand-written scan x 16``: one compiled hand-written epoch, called for each model in turn;
- ``hand-written naive vmap``: ``jax.vmap`` of the hand-written epoch, each model its own order;
- ``hand-written vmap, shared order``: the same with one order for all models (fit_many's layout).
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np

import jaxnet
from jaxnet.compilation import clear_programs
from jaxnet.train.many import fit_many
from peers import hand_model, jaxnet_model
from peers.spec import Workload, flops_per_step

MODELS = 16


def _median_epoch(run_epoch, repeats: int) -> float:
    run_epoch()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_epoch()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def jaxnet_fit_many(workload: Workload, epochs: int) -> dict:
    model = jaxnet_model.model(workload)

    def run(n):
        start = time.perf_counter()
        result = fit_many(
            model,
            jaxnet_model.LOSS,
            jaxnet_model.optimizer(),
            workload.x,
            workload.y,
            seeds=range(MODELS),
            epochs=n,
            batch_size=workload.batch,
            verbose=0,
        )
        return time.perf_counter() - start, result

    run(1)  # warm up the process (first-call costs), as every other row had
    clear_programs()  # compile included: not the programs the warm-up compiled
    total, result = run(1 + epochs)
    return {
        "epoch_seconds": statistics.median(result.epoch_seconds[1:]),
        "end_to_end_measured": total,
        "end_to_end_epochs": 1 + epochs,
        "compile_seconds": result.compile_seconds,
    }


def jaxnet_fit_sequential(workload: Workload, epochs: int, models: int) -> dict:
    model = jaxnet_model.model(workload)
    clear_programs()  # the first fit compiles, as a script's first fit does
    fits, epoch_times = [], []
    for seed in range(models):
        start = time.perf_counter()
        _, history = jaxnet.fit(
            model,
            jaxnet_model.LOSS,
            jaxnet_model.optimizer(),
            workload.x,
            workload.y,
            epochs=1 + epochs,
            batch_size=workload.batch,
            seed=seed,
            verbose=0,
        )
        fits.append(time.perf_counter() - start)
        epoch_times.append(statistics.median(history["time"][1:]))
    later = statistics.median(fits[1:]) if len(fits) > 1 else fits[0]
    return {  # (fewer than MODELS run: the later fits' median stands for the ones not run)
        "epoch_seconds": sum(epoch_times) * MODELS / models,
        "end_to_end_measured": fits[0] + later * (MODELS - 1),
        "end_to_end_epochs": 1 + epochs,
        "models_run": models,
    }


def hand_written(workload: Workload, repeats: int, epochs: int) -> dict:
    epoch = hand_model.make_scan_epoch(workload)
    x, y = jax.device_put((workload.x, workload.y))
    n = len(workload.x)
    carries = [hand_model.initial_carry(workload, seed) for seed in range(MODELS)]
    stacked = jax.tree.map(lambda *a: np.stack(a), *carries)
    keys = jax.random.split(jax.random.key(1), MODELS)

    @jax.jit
    def one(carry, index):
        return epoch(carry, x, y, jax.random.permutation(jax.random.fold_in(keys[0], index), n))

    @jax.jit
    def naive(carry, index):
        orders = jax.vmap(lambda k: jax.random.permutation(jax.random.fold_in(k, index), n))(keys)
        return jax.vmap(epoch, in_axes=(0, None, None, 0))(carry, x, y, orders)

    @jax.jit
    def shared(carry, index):
        order = jax.random.permutation(jax.random.fold_in(keys[0], index), n)
        return jax.vmap(epoch, in_axes=(0, None, None, None))(carry, x, y, order)

    rows = {}
    for name, program, runs in [
        ("hand_sequential", one, None),
        ("hand_naive_vmap", naive, stacked),
        ("hand_shared_vmap", shared, stacked),
    ]:
        start = time.perf_counter()
        if runs is None:
            compiled = program.lower(carries[0], 0).compile()

            def run_epoch(compiled=compiled):
                jax.block_until_ready([compiled(c, 0) for c in carries])
        else:
            compiled = program.lower(runs, 0).compile()

            def run_epoch(compiled=compiled, runs=runs):
                jax.block_until_ready(compiled(runs, 0))

        compile_seconds = time.perf_counter() - start
        seconds = _median_epoch(run_epoch, repeats)
        rows[name] = {
            "epoch_seconds": seconds,
            "compile_seconds": compile_seconds,
            "end_to_end": compile_seconds + (1 + epochs) * seconds,
            "end_to_end_epochs": 1 + epochs,
        }
    return rows


LABELS = {
    "jaxnet_fit_many": "jaxnet fit_many (one program)",
    "jaxnet_fit_x16": "jaxnet fit x 16, one after another",
    "hand_sequential": "hand-written scan x 16, one after another",
    "hand_naive_vmap": "hand-written naive vmap (own orders)",
    "hand_shared_vmap": "hand-written vmap, shared order",
}


def measure(workload: Workload, quick: bool) -> dict:
    """Every row's raw timings (seconds)."""
    epochs = 3 if quick else 10
    return {
        "jaxnet_fit_many": jaxnet_fit_many(workload, epochs),
        "jaxnet_fit_x16": jaxnet_fit_sequential(workload, epochs, 4 if quick else MODELS),
        **hand_written(workload, 5 if quick else 15, epochs),
    }


def report(workload: Workload, results: dict, quick: bool, peak: float) -> dict:
    """Print the table of :func:`measure`'s ``results``; return its rows."""
    from common import table

    epochs = 3 if quick else 10
    flops = flops_per_step(workload) * workload.steps * MODELS  # one epoch of all models
    base = results["jaxnet_fit_x16"]
    rows, lines = [], []
    for name, r in results.items():
        e2e = r.get("end_to_end_measured", r.get("end_to_end"))
        row = {
            "row": name,
            "label": LABELS[name],
            "epoch_seconds": r["epoch_seconds"],
            "model_steps_per_s": MODELS * workload.steps / r["epoch_seconds"],
            "gflops": flops / r["epoch_seconds"] / 1e9,
            "fraction_of_peak": flops / r["epoch_seconds"] / 1e9 / peak,
            "speed_vs_fit_x16": base["epoch_seconds"] / r["epoch_seconds"],
            "end_to_end_seconds": e2e,
            "end_to_end_epochs": r["end_to_end_epochs"],
            "end_to_end_speed_vs_fit_x16": base["end_to_end_measured"] / e2e,
        }
        rows.append(row | {k: v for k, v in r.items() if k not in row})
        lines.append(
            [
                row["label"],
                f"{1e3 * row['epoch_seconds']:.1f}",
                f"{row['model_steps_per_s']:.0f}",
                f"{row['gflops']:.1f}",
                f"{100 * row['fraction_of_peak']:.1f}%",
                f"{row['speed_vs_fit_x16']:.2f}x",
                f"{e2e:.2f}",
                f"{row['end_to_end_speed_vs_fit_x16']:.2f}x",
            ]
        )
    title = f"(d) {MODELS} digits MLPs (64-100-100-10, batch 32) trained at once"
    print(f"\n## {title}\n")
    print(
        f"steady state: one epoch of all {MODELS} models ({workload.steps} steps each); "
        f"end to end: {1 + epochs} epochs, compile included"
        + ("; fit x 16 extrapolated from 4 models" if quick else "")
        + "\n"
    )
    print(
        table(
            [
                "16 models",
                "ms/epoch (all)",
                "model-steps/s",
                "GFLOP/s",
                "% of peak",
                "speed vs fit x 16",
                "end to end s",
                "e2e speed vs fit x 16",
            ],
            lines,
        )
    )
    return {"title": title, "rows": rows}
