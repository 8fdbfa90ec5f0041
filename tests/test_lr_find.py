"""Learning-rate range tests against closed forms: full-batch gradient descent on a linear
least-squares problem, simulated in NumPy, and the suggestion rules by hand."""

import jax
import numpy as np
import optax
import pytest

import jaxnet
from jaxnet import losses, optim
from jaxnet.train.lr_find import (
    lr_find,
    lr_sweep,
    smooth,
    steepest,
    stop_index,
    suggest,
)
from jaxnet.train.step import create_train_state


def _problem(n=64):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 3)).astype(np.float32) * np.array([1.0, 2.0, 0.5], np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3 + 0.1 * rng.normal(size=(n, 1))
    return x, y.astype(np.float32)


def _gradient_descent(x, y, w, b, rates):
    """Full-batch GD on mean((xw + b - y)^2) in float64; the loss before each step."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
    out = []
    for rate in rates:
        residual = x @ w + b - y
        out.append(np.mean(residual**2))
        w = w - rate * 2 * x.T @ residual / len(x)
        b = b - rate * 2 * residual.mean(axis=0)
    return np.array(out)


def _init(model, seed=0):
    params = create_train_state(model, optim.sgd(0.1), (3,), jax.random.key(seed)).params
    return params["dense_0"]["w"], params["dense_0"]["b"]


def test_parallel_losses_are_gradient_descent_at_each_rate():
    """batch_size = n: one step per epoch, so each copy's epoch loss is the loss before its
    e-th step of gradient descent at its own rate."""
    x, y = _problem()
    model = jaxnet.serial(jaxnet.Dense(1))
    found = lr_find(
        model,
        losses.mse,
        optim.sgd,
        x,
        y,
        min_lr=1e-3,
        max_lr=1.0,
        num=12,
        epochs=6,
        batch_size=len(x),
    )
    w, b = _init(model)
    expected = np.stack([_gradient_descent(x, y, w, b, [r] * 6) for r in found.rates], axis=1)
    np.testing.assert_allclose(found.rates, np.geomspace(1e-3, 1.0, 12))
    np.testing.assert_allclose(found.losses, expected, rtol=2e-4)
    np.testing.assert_allclose(found.initial_loss, expected[0, 0], rtol=1e-5)  # before step 1
    # gradient descent on a quadratic is stable iff rate < 2 / largest Hessian eigenvalue
    x64 = np.c_[x, np.ones(len(x))].astype(np.float64)
    largest = np.linalg.eigvalsh(2 * x64.T @ x64 / len(x)).max()
    assert found.stable[found.rates < 1.5 / largest].all()
    assert not found.stable[found.rates > 2.2 / largest].any()
    best = np.argmin(np.where(found.stable, expected[-1], np.inf))
    assert found.suggestion == found.rates[best]
    figure = found.plot()
    assert figure.axes[0].get_xscale() == "log"


def test_suggestion_rules_by_hand():
    rates = np.array([0.1, 0.2, 0.4, 0.8])
    losses = np.array(
        [
            [2.0, 1.5, 1.0, 3.0],
            [1.8, 1.2, 0.7, 2.0],
            [1.7, 1.0, 0.75, 0.9],  # rate 0.4 rose 7% above its best, within rise=0.1
        ]
    )
    suggestion, stable = suggest(rates, losses, rise=0.1)
    assert stable.tolist() == [True, True, True, True]
    assert suggestion == 0.4  # lowest final loss among the stable: 0.75
    suggestion, stable = suggest(rates, losses, rise=0.05)
    assert stable.tolist() == [True, True, False, True] and suggestion == 0.8
    losses[1, 3] = np.nan
    assert suggest(rates, losses, rise=0.05)[0] == 0.2
    # the initial loss is the best before the first epoch: 0.1 and 0.8 started above 1.1 x 1.6
    suggestion, stable = suggest(rates, losses, rise=0.1, initial=1.6)
    assert stable.tolist() == [False, True, True, False] and suggestion == 0.4


def test_sweep_rules_by_hand():
    losses = np.array([3.0, 2.0, 2.5, 1.0, 9.0])
    beta = 0.5
    a1 = 0.5 * 3.0
    a2 = 0.5 * a1 + 0.5 * 2.0
    np.testing.assert_allclose(smooth(losses, beta)[:2], [a1 / (1 - 0.25), a2 / (1 - 0.125)])
    # stops at the first point (after the first) above 4x the best so far, kept
    assert stop_index(np.array([1.0, 0.5, 1.9, 2.1, 0.1])) == 4
    assert stop_index(np.array([1.0, 0.9, 0.8])) == 3
    rates = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    smoothed = np.array([5.0, 4.0, 3.9, 3.8, 0.5])
    # np.gradient on the rates: one-sided at the ends, (4 - 5) / 1 = -1 and (0.5 - 3.8) / 8;
    # inside, second order on uneven steps h1, h2: at 2 (h 1, 2): -2/3 5 + 1/2 4 + 1/6 3.9 =
    # -0.683; at 4 (2, 4): -1/3 4 + 1/4 3.9 + 1/12 3.8 = -0.042; at 8: -1/6 3.9 + 1/8 3.8 +
    # 1/24 0.5 = -0.154. Steepest: -1 at rate 1.
    assert steepest(rates, smoothed, skip_begin=0, skip_end=0) == 1.0
    # per step: -1, (3.9 - 5) / 2, (3.8 - 4) / 2, (0.5 - 3.9) / 2, -3.3: steepest at rate 16
    assert steepest(rates, smoothed, skip_begin=0, skip_end=0, log=True) == 16.0
    assert steepest(rates, smoothed, skip_begin=1, skip_end=1) == 2.0  # among 2, 4, 8
    assert steepest(rates, smoothed, skip_begin=4, skip_end=1) is None


@pytest.mark.parametrize("optimizer_fn", [optim.sgd, optax.sgd])
def test_sweep_is_gradient_descent_with_a_growing_rate(optimizer_fn):
    """Full batches: the sweep's batch losses are GD's with rate i at step i."""
    x, y = _problem()
    model = jaxnet.serial(jaxnet.Dense(1))
    sweep = lr_sweep(
        model, losses.mse, optimizer_fn, x, y, min_lr=1e-4, max_lr=3.0, steps=40, batch_size=len(x)
    )
    rates = np.geomspace(1e-4, 3.0, 40)
    w, b = _init(model)
    expected = _gradient_descent(x, y, w, b, rates)
    kept = len(sweep.rates)
    assert 10 < kept < 40  # the large rates diverge and stop the sweep
    np.testing.assert_allclose(sweep.rates, rates[:kept])
    lowest = int(np.argmin(expected))  # past it, float32 rounding grows with the divergence
    np.testing.assert_allclose(sweep.losses[:lowest], expected[:lowest], rtol=1e-4)
    np.testing.assert_allclose(sweep.losses, expected[:kept], rtol=1e-2)
    assert sweep.suggestion == steepest(sweep.rates, smooth(expected[:kept]))
    assert sweep.plot() is not None
