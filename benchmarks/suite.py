"""The benchmark suite: jaxnet against hand-written JAX and other libraries, one run, one process.

    python benchmarks/suite.py [--quick] [--only a,b,c,d,e] [--out results.json]

Workloads (same layers, data, loss and Adam settings — lr 1e-3, b1 0.9, b2 0.999, eps 1e-8 — for
every peer):

  (a) digits MLP 64-100-100-10, batch 32: dispatch-bound;
  (b) MNIST-sized MLP 784-1024-1024-10, batch 256, synthetic data of MNIST's shape: compute-bound;
  (c) a small CNN on the 8x8 digits: conv 16 -> pool -> conv 32 -> pool -> dense 10, batch 32;
  (d) 16 copies of (a) trained at once: fit_many against training them one after another;
  (e) a GRU(64) over sequences of 20 steps x 8 features, then dense 10, batch 32.

Method: every peer runs in this process; the first call compiles (warm-up, not timed); then epochs
are timed with ``block_until_ready`` (or the library's equivalent), in rounds that alternate the
peers so that load from other processes hits them alike; a row reports the median epoch.
FLOPs per training step are ``6 * weight_uses * batch`` (2 forward + 4 backward per multiply-add),
where ``weight_uses`` counts each weight and bias once per use per example: the parameter count for
an MLP, ``params * output positions`` for a convolution, ``params * time steps`` for the GRU.
Peak is the best rate of a float32 2048x2048 ``jnp.dot`` on the same device, sampled at the start,
between workloads and at the end; every fraction uses the highest sample (load from other processes
only ever lowers it). The tables are printed at the end, once that peak is known.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports Keras

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402
from peers import PEERS, Skip, build  # noqa: E402
from peers.spec import Workload, flops_per_step  # noqa: E402

from jaxnet.compilation import clear_programs  # noqa: E402

WORKLOAD_PEERS = list(PEERS)
LIBRARIES = [
    "jax",
    "jaxlib",
    "optax",
    "flax",
    "equinox",
    "dm-haiku",
    "keras",
    "scikit-learn",
    "torch",
    "numpy",
]


def matmul_peak(repeats: int = 10, n: int = 2048) -> float:
    """GFLOP/s of a float32 ``n x n`` matrix product: the best of ``repeats`` (the capability).

    The best rather than the median, because other processes' load only ever slows it down.
    """
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dot(a, a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times) / 1e9


def workloads(quick: bool) -> dict[str, Workload]:
    x_digits, _, y_digits, _ = common.digits()
    n = len(x_digits) // 32 * 32  # every peer runs the same number of full batches
    x_digits, y_digits = x_digits[:n], y_digits[:n].astype(np.int32)
    rng = np.random.default_rng(0)
    x_mnist = rng.normal(size=(2048, 784)).astype(np.float32)
    y_mnist = np.argmax(x_mnist @ rng.normal(size=(784, 10)), axis=1).astype(np.int32)
    x_seq = rng.normal(size=(1024, 20, 8)).astype(np.float32)
    y_seq = (np.digitize(x_seq[:, :, 0].sum(axis=1), np.linspace(-8, 8, 9))).astype(np.int32)
    dense = lambda units, act="relu": ("dense", units, act)  # noqa: E731
    return {
        "a": Workload(
            "a",
            "(a) digits MLP 64-100-100-10, batch 32",
            (dense(100), dense(100), dense(10, None)),
            x_digits,
            y_digits,
            32,
        ),
        "b": Workload(
            "b",
            "(b) MNIST-sized MLP 784-1024-1024-10, batch 256 (synthetic data)",
            (dense(1024), dense(1024), dense(10, None)),
            x_mnist,
            y_mnist,
            256,
        ),
        "c": Workload(
            "c",
            "(c) CNN on 8x8 digits: conv3x3(16)-pool-conv3x3(32)-pool-dense(10), batch 32",
            (
                ("conv", 16, 3, "relu"),
                ("maxpool", 2),
                ("conv", 32, 3, "relu"),
                ("maxpool", 2),
                ("flatten",),
                dense(10, None),
            ),
            x_digits.reshape(-1, 8, 8, 1),
            y_digits,
            32,
        ),
        "e": Workload(
            "e",
            "(e) GRU(64) over 20 steps x 8 features, dense 10, batch 32 (synthetic)",
            (("gru", 64), dense(10, None)),
            x_seq,
            y_seq,
            32,
        ),
    }


REPEATS = {"a": (20, 5), "b": (6, 2), "c": (10, 3), "e": (10, 3)}  # epochs timed: (full, quick)


def measure_peers(workload: Workload, peers: list[str], epochs: int, rounds: int) -> dict:
    """Per peer: {"times": [...]} or {"skip": reason}. Peers alternate within each round."""
    runners, results = {}, {}
    for peer in peers:
        try:
            runner = build(peer, workload)
            runner.epoch_times(1)  # compile and warm up
            runners[peer] = runner
            results[peer] = {"times": [], "note": runner.note}
        except Skip as skip:
            results[peer] = {"skip": str(skip)}
        except Exception as error:  # a peer's failure must not sink the suite
            traceback.print_exc(limit=2)
            results[peer] = {"skip": f"failed: {type(error).__name__}: {str(error)[:80]}"}
    per_round = max(1, epochs // rounds)
    for _ in range(rounds):
        for peer, runner in runners.items():
            results[peer]["times"] += runner.epoch_times(per_round)
    return results


def end_to_end(workload: Workload, peers: list[str], epochs: int) -> dict:
    """Seconds to build, compile and train ``epochs`` epochs from scratch, per peer."""
    results = {}
    for peer in peers:
        clear_programs()  # from scratch: not the programs the steady-state runs compiled
        start = time.perf_counter()
        try:
            build(peer, workload).epoch_times(epochs)
            results[peer] = {"seconds": time.perf_counter() - start}
        except Skip as skip:
            results[peer] = {"skip": str(skip)}
        except Exception as error:
            results[peer] = {"skip": f"failed: {type(error).__name__}: {str(error)[:80]}"}
    return results


def steady_rows(workload: Workload, results: dict, peak: float) -> list[dict]:
    flops = flops_per_step(workload)
    reference = results.get("jaxnet_fit", {}).get("times")
    reference_rate = workload.steps / statistics.median(reference) if reference else None
    rows = []
    for peer, result in results.items():
        row = {"peer": peer, "label": PEERS.get(peer, peer)}
        if "skip" in result:
            rows.append(row | {"skip": result["skip"]})
            continue
        seconds = statistics.median(result["times"])
        rate = workload.steps / seconds
        rows.append(
            row
            | {
                "ms_per_epoch": seconds * 1e3,
                "steps_per_s": rate,
                "gflops": rate * flops / 1e9,
                "fraction_of_peak": rate * flops / 1e9 / peak,
                "speed_vs_jaxnet": rate / reference_rate if reference_rate else None,
                "epochs_timed": len(result["times"]),
                "note": result.get("note", ""),
            }
        )
    return rows


def steady_table(rows: list[dict]) -> str:
    header = ["peer", "ms/epoch", "steps/s", "GFLOP/s", "% of peak", "speed vs jaxnet.fit", "note"]
    lines = []
    for r in rows:
        if "skip" in r:
            lines.append([r["label"], "-", "-", "-", "-", "-", f"skipped: {r['skip']}"])
        else:
            ratio = "-" if r["speed_vs_jaxnet"] is None else f"{r['speed_vs_jaxnet']:.2f}x"
            lines.append(
                [
                    r["label"],
                    f"{r['ms_per_epoch']:.1f}",
                    f"{r['steps_per_s']:.0f}",
                    f"{r['gflops']:.1f}",
                    f"{100 * r['fraction_of_peak']:.1f}%",
                    ratio,
                    r["note"],
                ]
            )
    return common.table(header, lines)


def e2e_table(results: dict, epochs: int) -> str:
    reference = results.get("jaxnet_fit", {}).get("seconds")
    lines = []
    for peer, r in results.items():
        if "skip" in r:
            lines.append([PEERS.get(peer, peer), "-", "-", f"skipped: {r['skip']}"])
        else:
            ratio = f"{r['seconds'] / reference:.2f}x" if reference else "-"
            lines.append([PEERS.get(peer, peer), f"{r['seconds']:.2f}", ratio, ""])
    return common.table(
        [
            f"{epochs} epochs from scratch (compile included)",
            "seconds",
            "time vs jaxnet.fit",
            "note",
        ],
        lines,
    )


E2E_PEERS = ["jaxnet_fit", "hand_scan", "flax_linen", "equinox", "keras", "sklearn", "torch"]


def measure_standard(workload: Workload, quick: bool) -> dict:
    """Raw timings of every peer on ``workload`` (and, for (a), the end-to-end runs)."""
    epochs = REPEATS[workload.key][1 if quick else 0]
    raw = {
        "epochs": epochs,
        "steady": measure_peers(workload, WORKLOAD_PEERS, epochs, 1 if quick else 3),
    }
    if workload.key == "a":
        raw["e2e_epochs"] = 20 if quick else 50
        raw["end_to_end"] = end_to_end(workload, E2E_PEERS, raw["e2e_epochs"])
    return raw


def report_standard(workload: Workload, raw: dict, peak: float) -> dict:
    """Print the workload's tables; return its rows for the JSON."""
    rows = steady_rows(workload, raw["steady"], peak)
    flops = flops_per_step(workload)
    out = {
        "title": workload.title,
        "steps_per_epoch": workload.steps,
        "flops_per_step": flops,
        "rows": rows,
    }
    print(f"\n## {workload.title}\n")
    print(
        f"{workload.steps} steps/epoch, {flops / 1e6:.2f} MFLOP/step; "
        f"median of {raw['epochs']} epochs per peer\n"
    )
    print(steady_table(rows))
    if "end_to_end" in raw:
        out["end_to_end"] = {"epochs": raw["e2e_epochs"], "results": raw["end_to_end"]}
        print()
        print(e2e_table(raw["end_to_end"], raw["e2e_epochs"]))
    return out


def versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument("--only", default="a,b,c,d,e", help="comma-separated workloads")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--peers", help="comma-separated peer modules (default: all)")
    args = parser.parse_args(argv)
    global WORKLOAD_PEERS
    if args.peers:
        WORKLOAD_PEERS = [p for p in args.peers.split(",") if p]
    only = [k.strip() for k in args.only.split(",") if k.strip()]

    peak = matmul_peak()
    info = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": common.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "versions": versions(),
        "matmul_peak_gflops": peak,
        "quick": args.quick,
    }
    print(f"# jaxnet benchmark suite — {info['date']}\n")
    print(
        f"{info['machine']}; {info['cpu_count']} CPUs; load average at start "
        f"{info['load_average'][0]:.1f}"
    )
    print(", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    results = {"info": info, "workloads": {}}
    all_workloads = workloads(args.quick)
    unknown = [key for key in only if key != "d" and key not in all_workloads]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; choose from a,b,c,d,e")
    from peers import many_models

    peaks, raw = [peak], {}
    for key in only:  # measure everything first, sampling the peak between workloads
        print(f"measuring ({key}) ...", flush=True)
        peaks.append(matmul_peak())
        if key == "d":
            raw[key] = many_models.measure(all_workloads["a"], args.quick)
        else:
            raw[key] = measure_standard(all_workloads[key], args.quick)
    peaks.append(matmul_peak())
    peak = max(peaks)
    info["matmul_peak_samples_gflops"] = peaks
    info["matmul_peak_gflops"] = peak
    print(
        f"\nmatmul peak: {peak:.1f} GFLOP/s, the best of {len(peaks)} samples through the run "
        f"({min(peaks):.1f} at the worst); every '% of peak' below uses it"
    )
    for key in only:
        if key == "d":
            results["workloads"][key] = many_models.report(
                all_workloads["a"], raw[key], args.quick, peak
            )
        else:
            results["workloads"][key] = report_standard(all_workloads[key], raw[key], peak)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=float))
        print(f"\nwrote {args.out}")
    return results


if __name__ == "__main__":
    main()
