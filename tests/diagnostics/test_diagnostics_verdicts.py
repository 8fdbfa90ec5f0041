"""Verdicts on networks whose pathology is known by construction, and on synthetic histories."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

import jaxnet
from jaxnet import losses
from jaxnet.diagnostics.stats import stats_at_init
from jaxnet.diagnostics.verdicts import (
    CLIP_REMEDY,
    EMA_REMEDY,
    LR_FIND_REMEDY,
    PLATEAU_REMEDY,
    depth_index,
    diagnose,
    diagnose_at_init,
)

DEPTH, WIDTH = 8, 64
LOSS = losses.sparse_categorical_cross_entropy


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x[:256].astype(np.float32), y[:256].astype(np.int32)


def deep_mlp(activation, kernel_init, bias_init="zeros", depth=DEPTH):
    layers = []
    for _ in range(depth):
        layers.append(jaxnet.Dense(WIDTH, kernel_init=kernel_init, bias_init=bias_init))
        if activation is not None:
            layers.append(jaxnet.Activation(activation))
    layers.append(jaxnet.Dense(10))
    return jaxnet.serial(*layers)


def residual_block(width):
    """``x + Dense(relu(Dense(x)))``: written here because jaxnet.core has no residual yet."""
    inner = jaxnet.serial(
        jaxnet.Dense(width, kernel_init="he_normal"), jaxnet.activations.Relu(), jaxnet.Dense(width)
    )

    def apply(params, state, x, *, key=None, train=False):
        y, state = inner.apply(params, state, x, key=key, train=train)
        return x + y, state

    return jaxnet.Layer(inner.init, apply, "residual", {"residual": True})


def block():
    if not hasattr(jaxnet.core, "residual"):
        return residual_block(WIDTH)
    inner = [
        jaxnet.Dense(WIDTH, kernel_init="he_normal"),
        jaxnet.activations.Relu(),
        jaxnet.Dense(WIDTH),
    ]
    return jaxnet.core.residual(jaxnet.serial(*inner))


def residual_mlp(depth=DEPTH):
    layers = [jaxnet.Dense(WIDTH, kernel_init="he_normal"), jaxnet.activations.Relu()]
    layers += [block() for _ in range(depth // 2)]
    return jaxnet.serial(*layers, jaxnet.Dense(10))


def findings_at_init(model, x, y, seed=0):
    params, state = jaxnet.init_model(model, jax.random.key(seed), x.shape[1:])
    return diagnose_at_init(model, params, state, (x, y), LOSS), params


def by_kind(findings):
    return {f.kind: f for f in findings}


def param_layers(model):
    return [n for n, c in model.info["children"].items() if c.info.get("has_kernel")]


def test_deep_sigmoid_with_unit_variance_init_vanishes_in_the_early_layers(digits):
    x, y = digits
    model = deep_mlp("sigmoid", jaxnet.init.normal(1.0))
    findings, _ = findings_at_init(model, x / 16, y)
    vanishing = by_kind(findings)["vanishing"]
    order = param_layers(model)
    flagged = list(vanishing.layers)
    assert flagged[0] == "dense_0" and order[-1] not in flagged
    assert flagged == order[: len(flagged)]  # a prefix: the earliest layers, not the late ones
    ratios = vanishing.evidence["ratio_to_output"]
    assert all(ratios[n] < 0.1 for n in flagged)
    text = " ".join(vanishing.remedies)
    assert "relu + he_normal" in text and "glorot_uniform instead of normal(1.0)" in text
    assert "BatchNorm" in text and "residual" in text
    assert "sigmoid + normal(1.0)" in vanishing.message


@pytest.mark.parametrize("activation, stddev", [(None, 1.0), ("tanh", 1.0)], ids=["linear", "tanh"])
def test_oversized_init_explodes(digits, activation, stddev):
    x, y = digits
    model = deep_mlp(activation, jaxnet.init.normal(stddev))
    findings, _ = findings_at_init(model, x / 16, y)
    kinds = by_kind(findings)
    assert "exploding" in kinds and "vanishing" not in kinds
    assert "dense_0" in kinds["exploding"].layers
    assert CLIP_REMEDY in kinds["exploding"].remedies
    # the remedy is jaxnet code that runs as printed
    code = CLIP_REMEDY.split(": ", 1)[1]
    clipped = eval(code, {"optim": jaxnet.optim, "optimizer": jaxnet.optim.sgd(0.1)})
    updates, _ = clipped.update({"w": jnp.full(4, 10.0)}, clipped.init({"w": jnp.zeros(4)}))
    np.testing.assert_allclose(np.linalg.norm(updates["w"]), 0.1 * 1.0, rtol=1e-6)


def _numpy_dead_fractions(params, x, names):
    """Forward pass in NumPy: for each ReLU, the fraction of units <= 0 for the whole batch."""
    a, out = np.asarray(x, np.float64), {}
    for name in names:
        if name.startswith("dense"):
            a = a @ np.asarray(params[name]["w"], np.float64) + np.asarray(params[name]["b"])
        else:
            a = np.maximum(a, 0.0)
            out[name] = float(np.mean(np.all(a <= 0, axis=0)))
    return out


@pytest.mark.parametrize("input_scale", [1 / 16, 1.0], ids=["all_dead", "partly_dead"])
def test_negative_biases_kill_relus_with_the_numpy_fraction(digits, input_scale):
    x, y = digits
    x = x * input_scale
    model = deep_mlp("relu", "he_normal", bias_init=jaxnet.init.constant(-5.0), depth=3)
    findings, params = findings_at_init(model, x, y)
    expected = _numpy_dead_fractions(params, x, list(model.info["children"])[:-1])
    flagged = {n: f for n, f in expected.items() if f >= 0.4}
    assert flagged and 0 < min(expected.values())
    dead = by_kind(findings)["dead_relu"]
    assert set(dead.layers) == set(flagged)
    for name, fraction in flagged.items():
        np.testing.assert_allclose(dead.evidence["dead_fraction"][name], fraction)
    assert "mean bias -5" in dead.remedies[0]
    assert any("leaky_relu" in r for r in dead.remedies)
    stats = stats_at_init(
        model, params, jaxnet.init_model(model, jax.random.key(0), (64,))[1], (x, y), LOSS
    )
    for name, fraction in expected.items():  # every layer, flagged or not
        np.testing.assert_allclose(stats["layers"][name]["dead_fraction"], fraction)


HEALTHY = {
    "relu_he": lambda: deep_mlp("relu", "he_normal"),
    "selu_lecun": lambda: deep_mlp("selu", "lecun_normal"),
    "residual": residual_mlp,
}
if hasattr(jaxnet.layers, "normalization"):
    from jaxnet.layers.normalization import BatchNorm

    def batch_norm_mlp():
        layers = []
        for _ in range(DEPTH):
            layers += [
                jaxnet.Dense(WIDTH, kernel_init="he_normal"),
                BatchNorm(),
                jaxnet.activations.Relu(),
            ]
        return jaxnet.serial(*layers, jaxnet.Dense(10))

    HEALTHY["relu_he_batch_norm"] = batch_norm_mlp


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_healthy_networks_raise_no_alarm(digits, name, seed=0):
    x, y = digits
    model = HEALTHY[name]()
    findings, _ = findings_at_init(model, x / 16, y, seed)
    assert findings == [], [str(f) for f in findings]


# ----------------------------------------------------------------- synthetic statistics


def history(layers: dict, loss=None) -> dict:
    """A GradientMonitor-style history from per-layer, per-stat lists."""
    out = {"layers": {n: {k: np.asarray(v) for k, v in s.items()} for n, s in layers.items()}}
    length = len(next(iter(next(iter(layers.values())).values())))
    out["step"] = np.arange(length)
    if loss is not None:
        out["loss"] = np.asarray(loss, float)
    return out


def dense_stats(norm, ratio=1e-3, nonfinite=0.0, steps=1):
    return {
        "grad_norm": [norm] * steps,
        "grad_zero_fraction": [0.0] * steps,
        "grad_nonfinite": [nonfinite] * steps,
        "param_norm": [1.0] * steps,
        "update_ratio": [ratio] * steps,
    }


def test_non_finite_gradients_are_critical_and_first():
    h = history({"dense_0": dense_stats(1.0, nonfinite=3.0), "dense_1": dense_stats(1.0)})
    findings = diagnose(h)
    assert findings[0].kind == "non_finite" and findings[0].severity == "critical"
    assert findings[0].layers == ("dense_0",)


@pytest.mark.parametrize("ratio, kind", [(0.5, "learning_rate_high"), (1e-7, "learning_rate_low")])
def test_update_ratio_far_from_1e_3_blames_the_learning_rate(ratio, kind):
    h = history({f"dense_{i}": dense_stats(1.0, ratio) for i in range(3)})
    assert [f.kind for f in diagnose(h)] == [kind]
    assert not diagnose(history({f"dense_{i}": dense_stats(1.0, 2e-3) for i in range(3)}))


def test_learning_rate_findings_name_the_tools_as_runnable_code():
    layers = {f"dense_{i}": dense_stats(1.0, 0.5) for i in range(3)}
    high = diagnose(history(layers))[0]
    assert LR_FIND_REMEDY in high.remedies and PLATEAU_REMEDY in high.remedies
    low = diagnose(history({f"dense_{i}": dense_stats(1.0, 1e-7) for i in range(3)}))[0]
    assert LR_FIND_REMEDY in low.remedies
    diverging = diagnose(history(layers), loss=[2.3, 1.0, 0.5, 0.4, 0.8, 1.6, 2.5, 3.0])
    assert EMA_REMEDY in by_kind(diverging)["divergence"].remedies
    # the code in them names what exists, with arguments it accepts
    callback = eval(PLATEAU_REMEDY.split(": ", 1)[1].split(" in ")[0], {"jaxnet": jaxnet})
    assert callback.factor == 0.5 and callback.patience == 5
    assert callable(jaxnet.lr_find) and "ema" in inspect.signature(jaxnet.fit).parameters
    call = LR_FIND_REMEDY.split(": ", 1)[1].split(" (")[0]
    assert call.startswith("jaxnet.lr_find(model, loss, optim.adam, x, y).suggestion")


def test_gradients_growing_over_training_are_exploding():
    steps = 20
    growing = dense_stats(1.0, steps=steps)
    growing["grad_norm"] = list(np.logspace(0, 4, steps))
    h = history({"dense_0": growing, "dense_1": dict(growing)})
    kinds = {f.kind: f for f in diagnose(h)}
    assert set(kinds["exploding"].layers) == {"dense_0", "dense_1"}


def test_loss_divergence_and_plateau():
    layers = {"dense_0": dense_stats(1.0), "dense_1": dense_stats(1.0)}
    diverging = [2.3, 1.0, 0.5, 0.4, 0.8, 1.6, 2.5, 3.0]
    assert [f.kind for f in diagnose(history(layers), loss=diverging)] == ["divergence"]
    flat = [2.31, 2.30, 2.30, 2.31, 2.30, 2.30, 2.30, 2.30]
    assert [f.kind for f in diagnose(history(layers), loss=flat)] == ["plateau"]
    learning = [2.3, 1.2, 0.7, 0.5, 0.4, 0.35, 0.33, 0.32]
    assert diagnose(history(layers), loss=learning) == []


def test_findings_serialise_and_depth_orders_numerically():
    names = ["dense_10", "dense_2", "relu_1"]
    assert sorted(names, key=depth_index) == ["relu_1", "dense_2", "dense_10"]
    h = history({"dense_0": dense_stats(1.0, nonfinite=1.0), "dense_1": dense_stats(1.0)})
    import json

    json.dumps([f.to_dict() for f in diagnose(h)], allow_nan=False)
