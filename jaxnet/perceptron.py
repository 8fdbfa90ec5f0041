"""Rosenblatt's perceptron (1957): a threshold unit trained by the perceptron learning rule.

The unit computes ``y_hat = step(x @ w + b)`` with ``step(z) = 1[z >= 0]``. The rule, applied one
example at a time, moves the weights only on a mistake::

    w <- w + lr * (y - y_hat) * x          b <- b + lr * (y - y_hat)

Perceptron convergence theorem (Rosenblatt; Novikoff, 1962): if some hyperplane separates the two
classes with margin ``gamma`` and every (bias-augmented) input has norm at most ``R``, the rule
started from zero makes at most ``(R / gamma)^2`` mistakes, so an epoch with zero errors comes
after finitely many epochs. With no separating hyperplane (XOR) every epoch makes a mistake: an
error-free epoch would leave the weights unchanged and separate the data.

>>> x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
>>> y = np.array([0, 0, 0, 1])                      # AND: linearly separable
>>> w, b, errors = train_perceptron(x, y, epochs=20)
>>> predict(w, b, x)                                # 0/1 labels
Array([0., 0., 0., 1.], dtype=float32)
>>> errors[:6]                                      # mistakes per epoch, then none
Array([2, 3, 3, 2, 1, 0], dtype=int32)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnet import registry
from jaxnet.activations import step
from jaxnet.core import Layer, constructor_info
from jaxnet.errors import DataError, ShapeError, check_int, check_range
from jaxnet.random import permutation


def predict(w, b, x):
    """``step(x @ w + b)``: 0/1 labels, ``(n,)`` for ``w (d,)`` or ``(n, k)`` for ``w (d, k)``."""
    return step(jnp.dot(x, w) + b)


def train_perceptron(x, y, epochs: int = 10, lr: float = 1.0, *, key=None):
    """Train a perceptron with the perceptron learning rule; ``(w, b, errors_per_epoch)``.

    Args:
      x: ``(n, d)`` inputs.
      y: ``(n,)`` labels in {0, 1} (one unit, ``w (d,)``, ``b ()``) or ``(n, k)`` (``k``
        independent units, ``w (d, k)``, ``b (k,)``).
      epochs: passes over the data; the weights start at zero.
      lr: learning rate (with zero initial weights it only scales ``w`` and ``b``, so any
        ``lr > 0`` makes the same mistakes).
      key: if given, the examples are visited in a fresh random order each epoch.

    Returns:
      ``errors_per_epoch`` ``(epochs,)``: mistakes made (= updates) during each epoch; once an
      epoch has zero errors the weights stop changing.

    The whole run is one compiled program: a ``lax.scan`` over epochs around a ``lax.scan`` over
    examples.
    """
    check_int("perceptron", "epochs", epochs, 1)
    check_range("perceptron", "lr", lr, 0.0, low_open=True)
    x = jnp.asarray(x, jnp.float32)
    y_np = np.asarray(y)
    if x.ndim != 2 or y_np.ndim not in (1, 2) or y_np.shape[0] != x.shape[0]:
        raise ShapeError(
            f"expected x (n, d) and y (n,) or (n, k), got {tuple(x.shape)} and {y_np.shape}",
            ("perceptron",),
        )
    if not np.isin(y_np, (0, 1)).all():
        raise DataError(
            f"labels must be 0 or 1, got values {np.unique(y_np)[:5].tolist()}", ("perceptron",)
        )
    y = jnp.asarray(y_np, jnp.float32)
    w = jnp.zeros((x.shape[1], *y.shape[1:]), jnp.float32)
    b = jnp.zeros(y.shape[1:], jnp.float32)
    return _train(x, y, w, b, epochs, lr, key)


@functools.partial(jax.jit, static_argnames=("epochs",))
def _train(x, y, w, b, epochs, lr, key):
    def example(carry, xy):
        w, b = carry
        x_i, y_i = xy
        error = y_i - predict(w, b, x_i)  # 0 when right, +-1 when wrong
        w = w + lr * jnp.multiply.outer(x_i, error) if w.ndim == 2 else w + lr * error * x_i
        return (w, b + lr * error), jnp.sum(jnp.abs(error))

    def epoch(carry, epoch_index):
        if key is None:
            order = jnp.arange(x.shape[0])
        else:
            order = permutation(jax.random.fold_in(key, epoch_index), x.shape[0])
        carry, mistakes = jax.lax.scan(example, carry, (x[order], y[order]))
        return carry, jnp.sum(mistakes).astype(jnp.int32)

    (w, b), errors = jax.lax.scan(epoch, (w, b), jnp.arange(epochs))
    return w, b, errors


@registry.layer
def Perceptron(units: int = 1, name: str = "perceptron") -> Layer:
    """The perceptron as a layer: ``step(x @ w + b)`` with params ``{"w": (d, units), "b"}``.

    Its gradient is zero almost everywhere, so train it with :func:`train_perceptron` (reshape
    ``w`` to ``(d, 1)`` for one unit), not with gradient descent.
    """
    check_int(name, "units", units, 1)

    def init(key, input_shape):
        del key
        if len(input_shape) != 1:
            raise ShapeError(
                f"expected inputs (batch, features), got per-example {input_shape}", (name,)
            )
        params = {"w": jnp.zeros((input_shape[0], units)), "b": jnp.zeros((units,))}
        return (units,), params, {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        return predict(params["w"], params["b"], x), state

    info = {"activation": "step", "kind": "saturating", "units": units}
    return Layer(init, apply, name, info | constructor_info("Perceptron", units=units, name=name))
