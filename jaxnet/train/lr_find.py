"""Learning-rate range tests: many rates trained at once (:func:`lr_find`), or one sweeping run.

:func:`lr_find` trains ``num`` copies of the model from the same initial weights, one per rate
spread log-uniformly over ``[min_lr, max_lr]``, in one :func:`~jaxnet.train.many.fit_many`
program (the rate is an array, one entry per copy), and suggests the rate whose loss fell the
most in the budget without rising on the way. :func:`lr_sweep` is Smith's classic test — one run
whose rate grows exponentially at every step — with PyTorch Lightning's suggestion (the steepest
descent of the smoothed loss); docs/lr_find.md compares the two::

    found = lr_find(model, losses.sparse_categorical_cross_entropy, optim.adam, x, y)
    found.suggestion, found.plot("out/lr_find.png")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import optim
from jaxnet.errors import ConfigError, check_range
from jaxnet.objective import make_loss
from jaxnet.plots import figure_class
from jaxnet.train.data import output_shape, place, prepare
from jaxnet.train.many import fit_many
from jaxnet.train.step import create_train_state, take_rows


def _figure():

    return figure_class()(figsize=(5.6, 3.8), layout="constrained")


def _save(figure, path):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    return figure


@dataclass
class LRFinding:
    """What :func:`lr_find` returns.

    Attributes:
      rates: ``(num,)`` the learning rates, increasing.
      losses: ``(epochs, num)`` the mean training loss of each epoch of each copy.
      initial_loss: the loss of the initial weights (shared by every copy), in training mode, on
        up to 1024 training examples.
      stable: ``(num,)`` whether the copy's loss stayed finite and no epoch rose above
        ``(1 + rise)`` x the best before it, the initial loss included.
      suggestion: the stable rate with the lowest final loss (all copies start from the same
        weights, so also the steepest stable descent), or ``None`` if no copy was stable.
    """

    rates: np.ndarray
    losses: np.ndarray
    initial_loss: float
    stable: np.ndarray
    suggestion: float | None

    def plot(self, path=None, *, title: str | None = None):
        """Loss after each epoch against the rate (log scale), the suggestion marked; a PNG at
        ``path`` if given. Returns the ``matplotlib.figure.Figure``."""
        figure = _figure()
        ax = figure.subplots()
        epochs = len(self.losses)
        for epoch, values in enumerate(self.losses, start=1):
            last = epoch == epochs
            ax.plot(
                self.rates,
                values,
                "-o" if last else "-",
                ms=3,
                lw=1.8 if last else 0.8,
                alpha=1.0 if last else 0.45,
                label=f"after epoch {epoch}" if last or epoch == 1 else None,
            )
        unstable = ~self.stable
        if unstable.any():
            final = np.where(np.isfinite(self.losses[-1]), self.losses[-1], np.nan)
            ax.plot(self.rates[unstable], final[unstable], "x", color="gray", label="unstable")
        ax.axhline(self.initial_loss, color="gray", lw=0.8, ls=":", label="initial loss")
        if self.suggestion is not None:
            ax.axvline(
                self.suggestion,
                color="red",
                ls="--",
                lw=1,
                label=f"suggestion {self.suggestion:.2g}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        finite = self.losses[np.isfinite(self.losses)]
        if finite.size:  # diverged copies would squash the rest: cut at 3x the initial loss
            ax.set_ylim(top=max(3 * self.initial_loss, finite.min() * 10))
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss (epoch mean)")
        ax.set_title(title or f"{len(self.rates)} rates trained at once")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        return _save(figure, path)


def log_rates(min_lr: float, max_lr: float, num: int) -> np.ndarray:
    """``num`` rates spread log-uniformly from ``min_lr`` to ``max_lr`` (both included)."""
    check_range("lr_find", "min_lr", min_lr, 0.0, low_open=True)
    check_range("lr_find", "max_lr", max_lr, min_lr, low_open=True)
    check_range("lr_find", "num", num, 2)
    return np.geomspace(min_lr, max_lr, num)


def stable_runs(losses: np.ndarray, rise: float = 0.1, initial: float = np.inf) -> np.ndarray:
    """``(num,)``: finite at every epoch, and no epoch above ``(1 + rise)`` x the best before it
    (``initial``, the loss before training, counting as the best before the first)."""
    losses = np.asarray(losses, np.float64)
    finite = np.all(np.isfinite(losses), axis=0)
    start = np.full((1, losses.shape[1]), initial)
    best = np.minimum.accumulate(np.where(np.isfinite(losses), losses, np.inf), axis=0)
    best_before = np.minimum(np.concatenate([start, best[:-1]]), initial)
    return finite & ~np.any(losses > (1.0 + rise) * best_before, axis=0)


def suggest(rates, losses, rise: float = 0.1, initial: float = np.inf):
    """``(suggested rate, stable)``: the stable rate with the lowest final loss."""
    stable = stable_runs(losses, rise, initial)
    if not stable.any():
        return None, stable
    final = np.where(stable, np.asarray(losses, np.float64)[-1], np.inf)
    return float(rates[int(np.argmin(final))]), stable


def initial_loss(model, loss_fn: Callable, x, y, seed: int = 0, limit: int = 1024) -> float:
    """The training-mode loss of the weights ``seed`` initialises, on up to ``limit`` examples
    (what :func:`~jaxnet.train.many.fit_many` starts every copy from)."""
    data = prepare(x, y, batch_size=1, owner="lr_find")
    key = jax.random.key(seed)
    ts = create_train_state(model, optim.identity(), data.input_shape, key)
    data = place(data, output_shape(model, ts.params, ts.state, data.x))
    xs, ys = jax.tree.map(lambda a: a[:limit], (data.x, data.y))
    _, (_, _, loss, _) = make_loss(model, loss_fn)(ts.params, ts.state, xs, ys, key)
    return float(loss)


def lr_find(
    model,
    loss_fn: Callable,
    optimizer_fn: Callable,
    x,
    y,
    *,
    min_lr: float = 1e-5,
    max_lr: float = 1.0,
    num: int = 24,
    epochs: int = 3,
    batch_size: int = 32,
    seed: int = 0,
    rise: float = 0.1,
    verbose: int = 0,
) -> LRFinding:
    """A learning-rate range test: ``num`` copies, one per rate, trained at once.

    Every copy starts from the weights ``seed`` gives and sees the same batches; copy ``i`` trains
    with ``optimizer_fn(rates[i])`` for ``epochs`` epochs, all of them one ``fit_many`` program
    (``optimizer_fn`` receives its rate as a traced array: ``optim.adam``, ``lambda r:
    optax.sgd(r, momentum=0.9)``, ...). Unlike Smith's sweep (:func:`lr_sweep`), each rate gets
    the whole budget, so a loss is the result of training at that rate rather than of the rates
    before it, and nothing has to be smoothed.

    Args:
      model, loss_fn, x, y, batch_size: as for :func:`~jaxnet.train.fit.fit`.
      optimizer_fn: ``optimizer_fn(learning_rate) -> GradientTransformation``.
      min_lr, max_lr, num: the rates, ``np.geomspace(min_lr, max_lr, num)``.
      epochs: the budget of every copy.
      rise: a copy whose epoch loss rises above ``(1 + rise)`` x its best earlier epoch (or the
        initial loss) is unstable (it diverges or oscillates) and is not suggested.

    Returns:
      :class:`LRFinding`: the rates, each copy's loss per epoch, the initial loss, which copies
      were stable, the suggestion (the stable rate with the lowest final loss) and ``plot()``.

    ::

        found = lr_find(model, losses.mse, optim.adam, x, y, epochs=2)
        optimizer = optim.adam(found.suggestion)
    """
    rates = log_rates(min_lr, max_lr, num)
    check_range("lr_find", "rise", rise, 0.0)
    result = fit_many(
        model,
        loss_fn,
        lambda learning_rate: optimizer_fn(learning_rate),
        x,
        y,
        seeds=(seed,),
        grid={"learning_rate": rates},
        epochs=epochs,
        batch_size=batch_size,
        data_seed=seed,
        verbose=verbose,
    )
    losses = np.asarray(result.history["loss"], np.float64)
    start = initial_loss(model, loss_fn, x, y, seed)
    suggestion, stable = suggest(rates, losses, rise, start)
    return LRFinding(rates, losses, start, stable, suggestion)


# ----------------------------------------------------------------------------------- the sweep


@dataclass
class LRSweep:
    """What :func:`lr_sweep` returns: per step until the stop, the ``rates``, the batch
    ``losses`` and their ``smoothed`` values; ``suggestion`` by Lightning's current rule and
    ``suggestion_log`` by its earlier one (:func:`steepest`)."""

    rates: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float | None
    suggestion_log: float | None

    def plot(self, path=None, *, title: str | None = None):
        """Smoothed loss against the rate (log scale), the suggestion marked."""
        figure = _figure()
        ax = figure.subplots()
        ax.plot(self.rates, self.losses, lw=0.6, alpha=0.4, label="batch loss")
        ax.plot(self.rates, self.smoothed, lw=1.6, label="smoothed")
        marks = ((self.suggestion, "--", "d/d lr"), (self.suggestion_log, ":", "d/d log lr"))
        for rate, style, rule in marks:
            if rate is not None:
                ax.axvline(rate, color="red", ls=style, lw=1, label=f"{rule}: {rate:.2g}")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.5 * np.nanmax(self.smoothed))
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title(title or "exponential sweep (one run)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        return _save(figure, path)


def smooth(losses: np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Lightning's smoothing of the sweep's batch losses: ``a_t = beta a_{t-1} + (1 - beta) l_t``
    reported as ``a_t / (1 - beta^(t + 1))`` for ``t = 1, 2, ...`` (its debiasing counts the
    optimizer steps already taken, one ahead of the loss)."""
    out, average = [], 0.0
    for t, loss in enumerate(np.asarray(losses, np.float64), start=1):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (t + 1)))
    return np.asarray(out)


def stop_index(smoothed: np.ndarray, factor: float = 4.0) -> int:
    """How many steps the sweep keeps: Lightning stops at the first step after the first whose
    smoothed loss exceeds ``factor`` x the best so far (that step included)."""
    best = math.inf
    for t, value in enumerate(smoothed, start=1):
        if t > 1 and value > factor * best:
            return t
        if t == 1 or value < best:
            best = value
    return len(smoothed)


def steepest(rates, smoothed, skip_begin: int = 10, skip_end: int = 1, log: bool = False):
    """The rate where the smoothed loss falls fastest, ignoring the first ``skip_begin`` and last
    ``skip_end`` points and non-finite ones (``None`` with fewer than 2 points left).

    ``log=False`` is PyTorch Lightning's current rule, the steepest descent per unit of rate
    (``np.gradient`` with the rates as coordinates, as its ``torch.gradient(losses,
    spacing=[lrs])``); ``log=True`` its earlier rule (and fastai's "steep"), per step of the
    log-spaced sweep (``np.gradient(losses)``).
    """
    index = np.arange(len(rates))[skip_begin : len(rates) - skip_end]
    keep = index[np.isfinite(smoothed[index])]
    if len(keep) < 2:
        return None
    gradient = np.gradient(smoothed[keep]) if log else np.gradient(smoothed[keep], rates[keep])
    return float(rates[keep[int(np.argmin(gradient))]])


def lr_sweep(
    model,
    loss_fn: Callable,
    optimizer_fn: Callable,
    x,
    y,
    *,
    min_lr: float = 1e-8,
    max_lr: float = 1.0,
    steps: int = 100,
    batch_size: int = 32,
    seed: int = 0,
    beta: float = 0.98,
    stop_factor: float = 4.0,
) -> LRSweep:
    """Smith's range test as PyTorch Lightning runs it: one copy, ``steps`` steps, the rate at
    step ``i`` is ``min_lr (max_lr / min_lr)^(i / (steps - 1))``; the loss of each batch (before
    its update) is smoothed (:func:`smooth`), the sweep stops when it diverges
    (:func:`stop_index`), and the suggestion is the steepest descent (:func:`steepest`).

    The steps run as one compiled ``lax.scan`` (the rate is a traced input of
    ``optimizer_fn``); batches cycle through shuffled epochs of ``(x, y)``.
    """
    if steps < 3:
        raise ConfigError(f"steps must be >= 3, got {steps}", ("lr_sweep",))
    rates = log_rates(min_lr, max_lr, steps)
    data = prepare(x, y, batch_size=batch_size, owner="lr_sweep")
    key = jax.random.key(seed)
    ts = create_train_state(model, optimizer_fn(min_lr), data.input_shape, key)
    data = place(data, output_shape(model, ts.params, ts.state, data.x))
    per_epoch = data.n // batch_size
    epochs = -(-steps // per_epoch)
    orders = [np.random.default_rng(seed + e).permutation(data.n) for e in range(epochs)]
    rows = np.concatenate([o[: per_epoch * batch_size] for o in orders])
    rows = jnp.asarray(rows[: steps * batch_size].reshape(steps, batch_size))
    objective = make_loss(model, loss_fn)

    def step(carry, item):
        params, state, opt_state, i = carry
        index, rate = item
        x = jax.tree.map(lambda a: take_rows(a, index), data.x)
        batch = x, jax.tree.map(lambda a: jnp.take(a, index, axis=0), data.y)
        step_key = jax.random.fold_in(key, i)
        grads, (_, state, loss, _) = jax.grad(objective, has_aux=True)(
            params, state, *batch, step_key
        )
        updates, opt_state = optimizer_fn(rate).update(grads, opt_state, params)
        params = jax.tree.map(lambda p, u: (p + u).astype(p.dtype), params, updates)
        return (params, state, opt_state, i + 1), loss

    run = jax.jit(lambda carry, items: jax.lax.scan(step, carry, items)[1])
    carry = (ts.params, ts.state, ts.opt_state, jnp.int32(0))
    losses = np.asarray(run(carry, (rows, jnp.asarray(rates, jnp.float32))), np.float64)
    smoothed = smooth(losses, beta)
    kept = stop_index(smoothed, stop_factor)
    rates, losses, smoothed = rates[:kept], losses[:kept], smoothed[:kept]
    suggestions = steepest(rates, smoothed), steepest(rates, smoothed, log=True)
    return LRSweep(rates, losses, smoothed, *suggestions)
