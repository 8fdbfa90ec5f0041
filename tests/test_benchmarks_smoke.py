"""Smoke test of the benchmark suite: it imports, and one tiny workload runs for jaxnet only."""

import sys
from pathlib import Path

import jax
import numpy as np

import jaxnet

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import suite  # noqa: E402
from peers import jaxnet_model  # noqa: E402
from peers.spec import Workload, flops_per_step, weight_uses  # noqa: E402


def tiny_workload():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=64).astype(np.int32)
    return Workload("t", "tiny", (("dense", 8, "relu"), ("dense", 3, None)), x, y, 16, classes=3)


def test_mlp_flops_are_six_times_params_times_batch():
    workload = tiny_workload()
    params, _ = jaxnet.init_model(jaxnet_model.model(workload), jax.random.key(0), (6,))
    assert weight_uses(workload) == jaxnet.count_params(params) == 6 * 8 + 8 + 8 * 3 + 3
    assert flops_per_step(workload) == 6 * jaxnet.count_params(params) * 16


def test_conv_and_gru_weight_uses_count_every_position_and_time_step():
    conv = Workload(
        "c",
        "",
        (("conv", 4, 3, "relu"),),
        np.zeros((2, 5, 5, 2), np.float32),
        np.zeros(2, np.int32),
        2,
    )
    assert weight_uses(conv) == (3 * 3 * 2 + 1) * 4 * 5 * 5
    gru = Workload(
        "g", "", (("gru", 4),), np.zeros((2, 7, 3), np.float32), np.zeros(2, np.int32), 2
    )
    assert weight_uses(gru) == 7 * (3 * 4 * (3 + 4) + 4 * 4)


def test_one_tiny_workload_runs_for_jaxnet_and_makes_a_table():
    workload = tiny_workload()
    results = suite.measure_peers(workload, ["jaxnet_epoch", "no_such_peer"], epochs=2, rounds=1)
    assert len(results["jaxnet_epoch"]["times"]) == 2
    assert "skip" in results["no_such_peer"]
    rows = suite.steady_rows(workload, results, peak=100.0)
    row = rows[0]
    assert row["steps_per_s"] == workload.steps / np.median(results["jaxnet_epoch"]["times"])
    assert np.isclose(row["gflops"], row["steps_per_s"] * flops_per_step(workload) / 1e9)
    table = suite.steady_table(rows)
    assert "jaxnet jit(make_epoch)" in table and "skipped" in table
