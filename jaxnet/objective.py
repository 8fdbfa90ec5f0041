"""The objective that training differentiates: the model's loss on a batch plus its penalties.

:func:`make_loss` is shared by the training step (:mod:`jaxnet.train.step`), the learning-rate
finder and the diagnostics at initialisation, so all three differentiate the same function.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxnet.core import Layer, apply_with_outputs
from jaxnet.regularizers import activity_penalty


def cast_floating(tree, dtype):
    """Cast the floating-point leaves of ``tree`` to ``dtype`` (integers, keys untouched)."""

    def cast(a):
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a

    return jax.tree.map(cast, tree)


def make_loss(model: Layer, loss_fn: Callable, penalty: Callable | None = None, compute_dtype=None):
    """``objective(params, state, x, y, key) -> (total_loss, aux)``.

    ``aux = (predictions, new_state, data_loss, outputs)`` where ``outputs`` maps each child of a
    :func:`~jaxnet.serial` model to its output (what diagnostics read).
    ``penalty(params) -> scalar``
    (e.g. an L2 term) is added to the data loss, and so is the activity penalty of every
    :func:`~jaxnet.regularizers.ActivityRegularization` layer, computed from ``outputs``.

    Mixed precision: with ``compute_dtype=jnp.bfloat16`` the forward and backward passes run in
    bfloat16 on a bfloat16 copy of the float32 params (the "master weights"), while the loss, the
    gradients and the state stay float32. bfloat16 has float32's exponent range, so no loss scaling
    is needed (float16 would need it and is not offered).
    """

    def objective(params, state, x, y, key):
        if compute_dtype is None:
            predictions, new_state, outputs = apply_with_outputs(
                model, params, state, x, key=key, train=True
            )
        else:
            low_params, low_state, low_x = cast_floating((params, state, x), compute_dtype)
            predictions, new_state, outputs = apply_with_outputs(
                model, low_params, low_state, low_x, key=key, train=True
            )
            predictions = predictions.astype(jnp.float32)
            new_state = jax.tree.map(lambda new, old: new.astype(old.dtype), new_state, state)
        data_loss = loss_fn(predictions, y)
        total = data_loss if penalty is None else data_loss + penalty(params)
        total = total + activity_penalty(model, outputs)
        return total, (predictions, new_state, data_loss, outputs)

    return objective
