"""What a scikit-learn estimator trains, and the compiled programs that train it.

The estimators in :mod:`jaxnet.sklearn` are thin shells: from their parameters they build a
:class:`Training` (``MLPClassifier._training(n_features)``, ``NeuralNetClassifier._training(...)``)
and hand it to the programs here. A grid search reuses the same object:

- ``training.model``: a jaxnet :class:`~jaxnet.Layer`, ``(batch, features) -> (batch, outputs)``
  raw outputs (logits for classifiers);
- ``training.loss(outputs, y) -> (batch,)``: the per-example data loss;
- ``training.penalty(params) -> scalar``: the weight penalty, scaled per batch by
  ``hyper["alpha"] / batch_weight`` (scikit-learn's MLP: ``0.5 * sum W**2`` over the kernels);
- ``training.optimizer(hyper) -> GradientTransformation``: built from a mapping of numeric
  hyper-parameters that may be arrays (traced inside ``jit``, one value per model under
  ``vmap``), so a sweep over them compiles once;
- ``training.hyper``: those hyper-parameters' values as floats (``learning_rate``, ``alpha``,
  ``beta_1``, ...);
- ``training.output(outputs)``: outputs -> predictions (softmax, logistic, identity, exp);
- ``training.signature``: the static structure, hashable; equal signatures share compiled
  programs (:func:`programs`), so refitting the same structure on other data or with other
  numeric hyper-parameters does not compile again.

Data reach the programs padded to power-of-two buckets (:func:`bucket`): rows and batches are
masked by per-example weights (weight 0 = padding), and features are padded with zero columns
whose kernel rows start at zero and stay zero (their gradient is ``x * delta = 0`` plus
``alpha * 0``), so many data shapes share one program.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet.compilation import jit_rarely_run
from jaxnet.core import apply_with_outputs
from jaxnet.optim import apply_updates
from jaxnet.train.step import take_rows


class Training(NamedTuple):
    """What to train: model, per-example loss, penalty, optimizer factory (see the module)."""

    model: Any
    loss: Callable
    penalty: Callable
    optimizer: Callable
    hyper: Mapping[str, float]
    output: Callable
    signature: Hashable
    report: Callable | None = None  # the per-example loss reported (None: ``loss``)


def bucket(n: int, minimum: int = 256) -> int:
    """The smallest power of two ``>= max(n, minimum)``: the padded size of ``n`` rows."""
    return max(minimum, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


def batch_bucket(n: int, minimum: int = 1) -> int:
    """The smallest ``2**k`` or ``3 * 2**(k-1)`` ``>= max(n, minimum)``: the padded number of
    batches of an epoch, or of rows of a batch (at most a third of a padded step is padding, and
    few sizes: programs are shared)."""
    n = max(n, minimum, 1)
    power = 1 << max(0, math.ceil(math.log2(n)))
    return power * 3 // 4 if power >= 4 and power * 3 // 4 >= n else power


def bucket_features(n_features: int) -> int:
    """The padded width of ``n_features`` columns (at least 32: small tables share programs)."""
    return bucket(n_features, 32)


def as_hyper(values: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Hyper-parameters as float32 scalars (one compiled program for every value; NumPy, so
    making them compiles nothing)."""
    return {k: np.asarray(v, np.float32) for k, v in values.items()}


def pad_rows(a: np.ndarray, rows: int, columns: int | None = None) -> np.ndarray:
    """``a`` as float32 padded with zeros to ``rows`` rows (and, 2-D, ``columns`` columns)."""
    shape = (rows, *a.shape[1:]) if columns is None else (rows, columns)
    out = np.zeros(shape, np.float32)
    out[tuple(slice(0, s) for s in a.shape)] = a
    return out


def batches_shape(n: int, batch_size: int, min_width: int = 32) -> tuple[int, int]:
    """The shape of :func:`batch_rows`' rows and weights for ``n`` examples."""
    return batch_bucket(-(-n // batch_size)), batch_bucket(batch_size, min_width)


def batch_rows(
    order: np.ndarray, batch_size: int, min_width: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """The epoch's batches as padded index rows and weights, ``(n_batches, batch)`` each.

    ``order`` visits the examples; consecutive runs of ``batch_size`` make the batches and the
    last may be shorter (scikit-learn's ``gen_batches``). The batches and their rows (at least
    ``min_width``) are padded to :func:`batch_bucket` sizes with weight 0, which the step skips.
    """
    n, n_batches = len(order), -(-len(order) // batch_size)
    rows = np.zeros(batches_shape(n, batch_size, min_width), np.int32)
    weights = np.zeros(rows.shape, np.float32)
    flat = np.zeros(n_batches * batch_size, np.int32)
    flat[:n] = order
    mask = np.zeros(n_batches * batch_size, np.float32)
    mask[:n] = 1.0
    rows[:n_batches, :batch_size] = flat.reshape(n_batches, batch_size)
    weights[:n_batches, :batch_size] = mask.reshape(n_batches, batch_size)
    return rows, weights


def objective(training: Training, params, state, hyper, x, y, w, key=None, with_outputs=False):
    """``(total, (reported, new_state))`` of one weighted batch: the mean data loss plus the
    scaled penalty.

    ``reported`` is the loss scikit-learn reports (``training.report``'s mean plus the same
    penalty); ``total`` is what the gradient descends. With a ``key`` the model runs in
    training mode (dropout, batch statistics).
    """
    train = key is not None
    if with_outputs:  # every layer's output too, for a diagnostics probe
        outputs, new_state, layer_outputs = apply_with_outputs(
            training.model, params, state, x, key=key, train=train
        )
    else:
        outputs, new_state = training.model.apply(params, state, x, key=key, train=train)
    n = jnp.maximum(jnp.sum(w), 1.0)
    data = jnp.sum(w * training.loss(outputs, y)) / n
    penalty = hyper["alpha"] * training.penalty(params) / n
    if training.report is not None:
        reported = jnp.sum(w * training.report(outputs, y)) / n
        reported = jax.lax.stop_gradient(reported)
    else:
        reported = data
    if with_outputs:
        return data + penalty, (reported + penalty, new_state, layer_outputs, data)
    return data + penalty, (reported + penalty, new_state)


class Programs(NamedTuple):
    # (params, state, opt_state, hyper, x, y, rows, weights, key) -> (params, state, opt_state,
    # the sum over batches of reported batch loss * batch weight)
    epoch: Callable
    predict: Callable  # (params, state, x) -> predictions
    value_and_grad: Callable  # (params, state, hyper, x, y, w) -> ((total, (reported, _)), grads)
    # (params, state, hyper, x, y, w, max_iter, max_fun, tol) -> (params, reported loss,
    # iterations, function evaluations)
    lbfgs: Callable
    # (params, hyper) -> the optimizer's initial state (compiled for speed of compiling)
    init_optimizer: Callable


_PROGRAMS: dict[Hashable, Programs] = {}


def programs(training: Training, probe: Callable | None = None) -> Programs:
    """The compiled programs of ``training``'s structure (built once per signature).

    With ``probe`` (a :class:`~jaxnet.diagnostics.GradientMonitor`'s), ``epoch`` also returns
    the probe's statistics of the epoch's first step, stacked on a leading axis of 1.
    """
    key = (training.signature, probe is not None)
    found = _PROGRAMS.get(key)
    if found is None:
        found = _PROGRAMS[key] = _build(training, probe)
    return found


def _where(keep, new, old):
    return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, old)


def _build(training: Training, probe: Callable | None = None) -> Programs:
    grad_fn = jax.value_and_grad(functools.partial(objective, training), has_aux=True)
    probed_grad_fn = jax.value_and_grad(
        functools.partial(objective, training, with_outputs=True), has_aux=True
    )

    @jax.jit
    def epoch(params, state, opt_state, hyper, x, y, rows, weights, key):
        optimizer = training.optimizer(hyper)

        def step(carry, item):
            old = carry
            params, state, opt_state = carry
            index, w, i = item
            xb, yb = take_rows(x, index), jnp.take(y, index, axis=0)
            step_key = jax.random.fold_in(key, i)
            (_, (reported, state)), grads = grad_fn(params, state, hyper, xb, yb, w, step_key)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            new = (apply_updates(params, updates), state, opt_state)
            keep = jnp.sum(w) > 0  # a padding batch changes nothing
            return _where(keep, new, old), reported * jnp.sum(w)

        def probed_step(carry, item):
            old = carry
            params, state, opt_state = carry
            index, w, i = item
            xb, yb = take_rows(x, index), jnp.take(y, index, axis=0)
            step_key = jax.random.fold_in(key, i)
            (_, (reported, state, outputs, data)), grads = probed_grad_fn(
                params, state, hyper, xb, yb, w, step_key
            )
            updates, opt_state = optimizer.update(grads, opt_state, params)
            stats = probe(grads=grads, params=params, updates=updates, outputs=outputs, loss=data)
            new = (apply_updates(params, updates), state, opt_state)
            return _where(jnp.sum(w) > 0, new, old), reported * jnp.sum(w), stats

        items = (rows, weights, jnp.arange(rows.shape[0]))
        carry = (params, state, opt_state)
        if probe is None:
            carry, losses = jax.lax.scan(step, carry, items)
            return *carry, jnp.sum(losses)
        carry, first, stats = probed_step(carry, jax.tree.map(lambda a: a[0], items))
        carry, losses = jax.lax.scan(step, carry, jax.tree.map(lambda a: a[1:], items))
        return *carry, first + jnp.sum(losses), jax.tree.map(lambda a: a[None], stats)

    @jax.jit
    def predict(params, state, x):
        outputs, _ = training.model.apply(params, state, x)
        return training.output(outputs)

    @jax.jit
    def value_and_grad(params, state, hyper, x, y, w):
        return grad_fn(params, state, hyper, x, y, w)

    @jax.jit
    def lbfgs(params, state, hyper, x, y, w, max_iter, max_fun, tol):
        return _minimise_lbfgs(training, params, state, hyper, x, y, w, max_iter, max_fun, tol)

    init_optimizer = jit_rarely_run(lambda params, hyper: training.optimizer(hyper).init(params))
    return Programs(epoch, predict, value_and_grad, lbfgs, init_optimizer)


def _minimise_lbfgs(training, params, state, hyper, x, y, w, max_iter, max_fun, tol):
    """Full-batch L-BFGS (:func:`jaxnet.optim.lbfgs`, zoom line search) in one ``while_loop``.

    Stops as scipy's L-BFGS-B does for scikit-learn: after ``max_iter`` iterations, after
    ``max_fun`` objective evaluations, when the largest gradient entry is at most ``tol``, or
    when an iteration lowers the objective by less than ``2.2e-9`` relative (scipy's ``ftol``).
    """
    import optax

    from jaxnet import optim

    optimizer = optim.lbfgs(memory_size=10)  # scipy's L-BFGS-B keeps 10 too

    def total(p):
        return objective(training, p, state, hyper, x, y, w)[0]

    def value_and_grad(p):
        (value, (reported, _)), grads = jax.value_and_grad(
            functools.partial(objective, training), has_aux=True
        )(p, state, hyper, x, y, w)
        return value, reported, grads

    def max_abs(tree):
        return jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in jax.tree.leaves(tree)]))

    def cond(carry):
        _, _, value, _, grads, it, n_fun, stalled = carry
        go = (it < max_iter) & (n_fun < max_fun) & (max_abs(grads) > tol) & ~stalled
        return go & jnp.isfinite(value)

    def body(carry):
        params, opt_state, value, _, grads, it, n_fun, _ = carry
        updates, opt_state = optimizer.update(
            grads, opt_state, params, value=value, grad=grads, value_fn=total
        )
        params = apply_updates(params, updates)
        new_value, reported, grads = value_and_grad(params)
        steps = optax.tree.get(opt_state, "num_linesearch_steps")
        stalled = (value - new_value) <= 2.2e-9 * jnp.maximum(
            jnp.maximum(jnp.abs(value), jnp.abs(new_value)), 1.0
        )
        return params, opt_state, new_value, reported, grads, it + 1, n_fun + steps, stalled

    value, reported, grads = value_and_grad(params)
    carry = (params, optimizer.init(params), value, reported, grads, 0, 1, jnp.array(False))
    params, _, _, reported, _, it, n_fun, _ = jax.lax.while_loop(cond, body, carry)
    return params, reported, it, n_fun


def predict(training: Training, params, state, x: np.ndarray, n_features_padded=None):
    """Predictions for ``x`` (rows padded to a bucket, then cut), as a NumPy array."""
    n = x.shape[0]
    xp = pad_rows(np.asarray(x, np.float32), bucket(n), n_features_padded)
    return np.asarray(programs(training).predict(params, state, xp))[:n]
