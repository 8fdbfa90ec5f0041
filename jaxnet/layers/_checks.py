"""Input checks shared by layers; they run at trace time, so a compiled step pays nothing."""

from __future__ import annotations

import jax.numpy as jnp

from jaxnet.errors import DTypeError, ShapeError


def check_floating(layer: str, x) -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise DTypeError(f"expected a floating-point input, got dtype {x.dtype}", (layer,))


def check_last_axis(layer: str, x, expected: int) -> None:
    if x.ndim < 1 or x.shape[-1] != expected:
        raise ShapeError(
            f"expected input with {expected} features on the last axis, got shape {tuple(x.shape)}",
            (layer,),
        )


def check_rank(layer: str, shape, rank: int, what: str) -> None:
    """``shape`` (batch axis excluded) must have ``rank`` axes, e.g. ``(height, width, chan)``."""
    if len(shape) != rank:
        raise ShapeError(
            f"expected inputs of shape (batch, {what}) i.e. {rank} axes after the batch axis, "
            f"got per-example shape {tuple(shape)}",
            (layer,),
        )
