"""Smoke test of the benchmark suite: it imports, and one tiny workload runs for jaxnet only."""

import os
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxnet
from jaxnet.layers import conv, pooling

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import bench_cold  # noqa: E402
import bench_paths  # noqa: E402
import common  # noqa: E402
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


def test_bench_paths_off_forms_compute_what_the_fast_paths_compute():
    """bench_paths.py times each fast path against a plain form: they must be the same function."""
    rng = np.random.default_rng(1)
    x = jax.numpy.asarray(rng.normal(size=(3, 8, 6, 4)), jax.numpy.float32)
    w = jax.numpy.asarray(rng.normal(size=(3, 3, 2, 6)), jax.numpy.float32)
    args = ((2, 1), ((1, 1), (0, 2)), (1, 2), 2)

    def conv_loss(f):
        return lambda x, w: jax.numpy.sum(jax.numpy.sin(f(x, w, *args)))

    fast = jax.grad(conv_loss(conv.convolve), argnums=(0, 1))(x, w)
    plain = jax.grad(conv_loss(bench_paths._plain_convolve), argnums=(0, 1))(x, w)
    for a, b in zip(fast, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    for kind in ("max", "avg"):

        def pooled(f, kind=kind):
            return jax.value_and_grad(lambda x: jax.numpy.sum(f(kind, x, (2, 3)) ** 2))(x)

        (fast_value, fast_grad), (value, grad) = map(
            pooled, (pooling._tiled, bench_paths._plain_tiled)
        )
        np.testing.assert_allclose(fast_value, value, rtol=1e-5)
        np.testing.assert_allclose(fast_grad, grad, rtol=1e-5, atol=1e-6)
    key = jax.random.key(3)
    with jax.threefry_partitionable(True):  # jax's default, which the benchmark runs with
        plain = jax.jit(lambda k: jax.random.bernoulli(k, 0.7, (5, 9)))(key)
    np.testing.assert_array_equal(bench_paths.dropout.bernoulli(key, 0.7, (5, 9)), plain)


def test_cpu_set_is_the_first_n_cpus_and_a_cold_run_stays_on_them():
    allowed = sorted(os.sched_getaffinity(0))
    assert common.cpu_set(None) == allowed and common.cpu_set(1) == allowed[:1]
    for wrong in (0, len(allowed) + 1):
        with pytest.raises(SystemExit, match="--cpus"):
            common.cpu_set(wrong)
    # the child pins itself before anything imports JAX; it reports the CPUs it may use
    child = bench_cold.run_child("", "", 1, allowed[:1], "sorted(os.sched_getaffinity(0))")
    assert child["accuracy"] == allowed[:1]
