"""The global gradient norm and the log2 |g| histograms: against NumPy and optax, and as
TensorBoard writes them."""

import struct

import jax
import numpy as np
import optax
import pytest

import jaxnet
from jaxnet.diagnostics import GradientMonitor
from jaxnet.diagnostics.stats import HISTOGRAM_EDGES, PackedProbe, log2_histogram, make_probe
from jaxnet.errors import ConfigError


def _numpy_histogram(x):
    x = np.abs(np.asarray(x, np.float64).ravel())
    x = x[np.isfinite(x) & (x >= np.finfo(np.float32).tiny)]  # no zeros, subnormals, NaN/inf
    exponents = np.clip(np.floor(np.log2(x)), HISTOGRAM_EDGES[0], HISTOGRAM_EDGES[-2])
    return np.array([np.sum(exponents == e) for e in HISTOGRAM_EDGES[:-1]])


def test_log2_histogram_matches_numpy_at_the_edges():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.normal(size=500) * 10.0 ** rng.uniform(-15, 3, size=500),
            [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 2.0**-40, 2.0**-41, 255.9, 256.0, 1e30],
            [1.0, -1.0, 0.5, 2.0, 0.75, -3.99],
        ]
    ).astype(np.float32)
    got = np.asarray(log2_histogram(x))
    np.testing.assert_array_equal(got, _numpy_histogram(x))
    one = HISTOGRAM_EDGES.tolist().index(0)  # the bucket [1, 2)
    assert got[one] >= 2 and got[0] >= 2 and got[-1] >= 2  # 2^-41 and 1e30 are clipped in


def test_probe_histograms_and_global_norm_against_numpy_and_optax():
    rng = np.random.default_rng(1)
    grads = {
        "a": {"w": rng.normal(size=(70, 80)) * 1e-3, "b": rng.normal(size=80)},  # large + small
        "b": {"w": rng.normal(size=(80, 3)) * 1e2, "b": np.zeros(3)},
    }
    grads = jax.tree.map(lambda a: np.asarray(a, np.float32), grads)
    params = jax.tree.map(np.ones_like, grads)
    for probe in (make_probe(histograms=True), make_probe(packed=True, histograms=True)):
        result = probe(grads=grads, params=params)
        got = probe.unpack(jax.device_get(result)) if isinstance(probe, PackedProbe) else result
        for name, layer in grads.items():
            flat = np.concatenate([v.ravel() for v in layer.values()])
            np.testing.assert_array_equal(
                got["layers"][name]["grad_histogram"], _numpy_histogram(flat)
            )
        np.testing.assert_allclose(got["grad_global_norm"], optax.tree.norm(grads), rtol=1e-6)
        everything = np.concatenate([v.ravel() for v in jax.tree.leaves(grads)])
        np.testing.assert_allclose(
            got["grad_global_norm"], np.linalg.norm(everything.astype(np.float64)), rtol=1e-6
        )
    assert "grad_histogram" not in make_probe()(grads=grads, params=params)["layers"]["a"]


def _read_events(log_dir):
    """Scalars and histograms from TensorBoard event files (TFRecord framing, Event proto)."""
    from tensorboardX.proto import event_pb2

    scalars, histograms = {}, {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("histo"):
                    histograms.setdefault(value.tag, []).append((event.step, value.histo))
                else:
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars, histograms


def test_tensorboard_logger_writes_the_monitor_histograms_at_each_probed_step(tmp_path):
    pytest.importorskip("tensorboardX")
    from jaxnet.train.logging import TensorBoardLogger

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    recipe = jaxnet.classifier_mlp(2, hidden=(8,))
    monitor = GradientMonitor(recipe.model, every=2, verbose=False, histograms=True)
    jaxnet.fit(
        recipe.model,
        recipe.loss,
        optax.sgd(0.1),
        x,
        y,
        epochs=2,
        batch_size=16,
        verbose=0,
        monitor=monitor,
        callbacks=[TensorBoardLogger(tmp_path, monitor=monitor)],
    )
    scalars, histograms = _read_events(tmp_path)
    history = monitor.history
    assert len(history["step"]) == 6  # 3 of the 6 steps of each epoch
    steps, norms = zip(*scalars["gradients/global_norm"], strict=True)
    np.testing.assert_array_equal(steps, history["step"])
    np.testing.assert_allclose(norms, history["grad_global_norm"], rtol=1e-6)
    reported = monitor.report()["history"]["grad_global_norm"]
    np.testing.assert_allclose(reported, history["grad_global_norm"], rtol=1e-6)
    for layer, stats in history["layers"].items():
        if "grad_histogram" not in stats:
            continue
        written = histograms[f"gradients/{layer}"]
        assert [step for step, _ in written] == history["step"].astype(int).tolist()
        for (_, histo), counts in zip(written, stats["grad_histogram"], strict=True):
            np.testing.assert_array_equal(histo.bucket, counts)
            np.testing.assert_array_equal(histo.bucket_limit, HISTOGRAM_EDGES[1:])
            assert histo.num == counts.sum()
    with pytest.raises(ConfigError, match="histograms=True"):
        TensorBoardLogger(tmp_path, monitor=GradientMonitor(recipe.model))
