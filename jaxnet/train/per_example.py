"""Per-example gradients with ``vmap(grad)``, and DP-SGD-style per-example clipping."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxnet.core import Layer


def per_example_gradients(
    model: Layer, loss_fn: Callable, params, state, x, y, *, key=None, train: bool = False
):
    """Gradients of the loss of each example separately: a params-shaped pytree whose leaves
    have a leading example axis ``(n, *leaf.shape)``.

    Each example runs as a batch of one (``vmap`` over examples of ``grad``), so layers that mix
    examples (BatchNorm in training mode) see only that example. Example ``i`` runs with the key
    ``jax.random.fold_in(key, i)``, so with ``train=True`` every example draws its own dropout
    mask, as the examples of a batch do. For a mean-reduced loss, the mean over the example axis
    is then exactly the gradient of the batch's loss when example ``i`` is given the mask drawn
    from ``fold_in(key, i)`` — a batch gradient with independent per-example masks, though not
    with the particular masks ``model.apply(params, state, x, key=key)`` would draw for the
    whole batch at once. Without randomness (``train=False`` or no dropout) it is the batch
    gradient, full stop.

    >>> from jaxnet import Dense, init_model, losses
    >>> model = Dense(2)
    >>> params, state = init_model(model, jax.random.key(0), (3,))
    >>> x, y = jnp.ones((5, 3)), jnp.zeros((5, 2))
    >>> g = per_example_gradients(model, losses.mse, params, state, x, y)
    >>> g["w"].shape                # (n, in, out)
    (5, 3, 2)
    """

    def one(x_i, y_i, i):
        def loss(p):
            x_b, y_b = jax.tree.map(lambda a: a[None], (x_i, y_i))
            key_i = None if key is None else jax.random.fold_in(key, i)
            predictions, _ = model.apply(p, state, x_b, key=key_i, train=train)
            return loss_fn(predictions, y_b)

        return jax.grad(loss)(params)

    n = jax.tree.leaves(x)[0].shape[0]
    return jax.vmap(one)(x, y, jnp.arange(n))


def per_example_norms(grads) -> jax.Array:
    """Global L2 norm of each example's gradient, shape ``(n,)``."""
    squares = [jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree.leaves(grads)]
    return jnp.sqrt(sum(squares))


def clipped_mean_gradient(grads, l2_norm_clip: float):
    """Clip every example's gradient to global norm ``<= l2_norm_clip`` and average (DP-SGD's
    clipping step, Abadi et al. 2016; add calibrated noise yourself for privacy).

    Returns ``(mean_gradient, norms_before_clipping)``.
    """
    norms = per_example_norms(grads)
    factors = jnp.minimum(1.0, l2_norm_clip / jnp.maximum(norms, 1e-12))
    clipped = jax.tree.map(lambda g: g * factors.reshape(-1, *([1] * (g.ndim - 1))), grads)
    return jax.tree.map(lambda g: jnp.mean(g, axis=0), clipped), norms


__all__ = ["clipped_mean_gradient", "per_example_gradients", "per_example_norms"]
