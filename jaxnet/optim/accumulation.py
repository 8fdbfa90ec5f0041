"""Averaging over steps: an exponential moving average (:func:`ema`) and gradient accumulation
(:func:`multi_steps`).

Both match optax's (``optax.ema``, ``optax.MultiSteps``) step for step, states included, and keep
their state in NamedTuples whose fields :func:`~jaxnet.optim.lookup` finds by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.errors import OptimizerError, check_range
from jaxnet.optim.base import (
    GradientTransformation,
    add_promoted,
    canonicalize_dtype,
    check_tree_match,
    promoted_dtype,
    safe_increment,
    with_extra_args_support,
)
from jaxnet.optim.transforms import DECAY, bias_corrected

# --------------------------------------------------------------------------------------------
# Exponential moving average.


class EmaState(NamedTuple):
    """Step count and the (not debiased) moving average."""

    count: jax.Array  # int32, shape ()
    ema: Any


def ema(decay: float, debias: bool = True, accumulator_dtype: Any = None) -> GradientTransformation:
    r"""Exponential moving average of what passes through (gradients, or parameters).

    .. math::
        e_t = \beta\, e_{t-1} + (1-\beta)\, x_t, \quad e_0 = 0, \qquad
        u_t = \frac{e_t}{1-\beta^t} \;\text{(debias)} \;\text{or}\; e_t

    ``update`` returns :math:`u_t`; the state keeps :math:`e_t` (``EmaState.ema``) and
    :math:`t` (``EmaState.count``). Since :math:`e_0 = 0`, :math:`e_t` is biased towards zero for
    the first :math:`\sim 1/(1-\beta)` steps; the debiased :math:`u_t` is the weighted average of
    :math:`x_1..x_t` with weights :math:`\propto \beta^{t-i}` (so :math:`u_1 = x_1`).

    Used on parameters -- ``avg, ema_state = ema.update(params, ema_state)`` after each step --
    it is the Polyak-style averaged model that often evaluates better than the last iterate;
    :func:`ema_value` reads that average back from the state by name.

    Args:
      decay: :math:`\beta` in ``[0, 1)``; the average spans about :math:`1/(1-\beta)` steps.
      debias: divide by :math:`1-\beta^t`.
      accumulator_dtype: dtype of :math:`e_t` in the state (default: the inputs').

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> average = optim.ema(0.5)
      >>> state = average.init(jnp.zeros(1))
      >>> out, state = average.update(jnp.array([2.0]), state)  # u_1 = x_1
      >>> out, state = average.update(jnp.array([4.0]), state)  # (0.5*4 + 0.25*2) / 0.75
      >>> out, state.ema
      (Array([3.3333333], dtype=float32), Array([2.5], dtype=float32))

    See also ``optax.ema``, which this equals step for step.
    """
    check_range("ema", "decay", decay, **DECAY)
    accumulator_dtype = canonicalize_dtype(accumulator_dtype)

    def init(params):
        zeros = jax.tree.map(lambda p: jnp.zeros_like(p, dtype=accumulator_dtype), params)
        return EmaState(count=jnp.zeros([], jnp.int32), ema=zeros)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("ema", updates, state.ema, "ema state")
        new_ema = jax.tree.map(
            lambda x, e: add_promoted((1 - decay) * x, decay * e), updates, state.ema
        )
        count = safe_increment(state.count)
        updates = bias_corrected(new_ema, decay, count) if debias else new_ema
        if accumulator_dtype is not None:
            new_ema = jax.tree.map(lambda e: e.astype(accumulator_dtype), new_ema)
        return updates, EmaState(count=count, ema=new_ema)

    return GradientTransformation(init, update)


def ema_value(opt_state: Any, decay: float, debias: bool = True) -> Any:
    r"""The average held by the first :class:`EmaState` inside ``opt_state``, debiased.

    Equals what the latest ``ema(decay, debias).update`` returned: :math:`e_t / (1-\beta^t)`
    (or :math:`e_t`), in the state's dtype. ``opt_state`` may be an :class:`EmaState` or any
    nesting of tuples, lists, dicts and NamedTuples holding one (a chain, a training state).

    Raises:
      OptimizerError: no :class:`EmaState` in ``opt_state``.
    """
    found = find_state(opt_state, EmaState)
    if found is None:
        raise OptimizerError("no EmaState in the optimizer state", ("ema_value",))
    return bias_corrected(found.ema, decay, found.count) if debias else found.ema


def find_state(tree: Any, kind: type) -> Any:
    """The first instance of ``kind`` in ``tree``, depth first, or ``None``."""
    if isinstance(tree, kind):
        return tree
    children = tree.values() if isinstance(tree, dict) else tree
    if isinstance(tree, (tuple, list, dict)):
        for child in children:
            found = find_state(child, kind)
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------------------------
# Gradient accumulation.


class MultiStepsState(NamedTuple):
    """Gradient accumulation's state (optax's ``MultiStepsState`` less its ``skip_state``)."""

    mini_step: jax.Array  # int32, shape (): gradients accumulated since the last inner update
    gradient_step: jax.Array  # int32, shape (): inner updates made so far
    inner_opt_state: Any  # the wrapped optimizer's state
    acc_grads: Any  # the mean of this round's gradients, float32 or wider


def multi_steps(
    optimizer: GradientTransformation, every_k_schedule: int | Callable[[jax.Array], Any]
) -> GradientTransformation:
    r"""Gradient accumulation: apply ``optimizer`` every ``k`` steps to the mean of ``k`` gradients.

    .. math::
        \bar g_j = \bar g_{j-1} + \frac{g_j - \bar g_{j-1}}{j}, \quad j = 1..k, \qquad
        u = \begin{cases} \text{optimizer}(\bar g_k) & j = k \\ 0 & j < k \end{cases}

    ``k`` mini-batches of size ``B`` then make one step of the optimizer on the gradient of a
    batch of ``kB`` (for a loss that is a mean over examples), with the memory of a batch of
    ``B``. Between inner steps the updates are zeros and the optimizer's state does not move; its
    step count (and so any schedule) counts inner steps. The running mean (Welford's) keeps the
    sum from growing.

    Args:
      optimizer: the wrapped optimizer (jaxnet's or optax's).
      every_k_schedule: ``k >= 1``, or a function of the inner step count returning ``k`` (a
        batch size that grows during training).

    The state is a :class:`MultiStepsState`: ``mini_step``, ``gradient_step``,
    ``inner_opt_state`` and ``acc_grads``, so ``optim.lookup(state, "mu")`` still finds the
    inner optimizer's fields. Unlike optax's default (always float32), the accumulator is
    float32 *or wider*: float64 and complex gradients keep their precision and imaginary part.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.multi_steps(optim.sgd(1.0), every_k_schedule=2)
      >>> state = opt.init(jnp.zeros(1))
      >>> u1, state = opt.update(jnp.array([1.0]), state)
      >>> u2, state = opt.update(jnp.array([3.0]), state)
      >>> u1, u2  # nothing, then -lr * mean(1, 3)
      (Array([0.], dtype=float32), Array([-2.], dtype=float32))

    See also ``optax.MultiSteps(optimizer, every_k_schedule).gradient_transformation()``, which
    this equals step for step (updates and the inner state).
    """
    if callable(every_k_schedule):
        schedule = every_k_schedule
    else:
        check_range("multi_steps", "every_k_schedule", every_k_schedule, 1, error=OptimizerError)
        if int(every_k_schedule) != every_k_schedule:
            raise OptimizerError(
                f"every_k_schedule must be an integer or a schedule, got {every_k_schedule!r}",
                ("multi_steps",),
            )

        def schedule(gradient_step):
            del gradient_step
            return every_k_schedule

    optimizer = with_extra_args_support(optimizer)

    def init(params):
        acc_grads = jax.tree.map(
            lambda p: jnp.zeros_like(p, dtype=promoted_dtype(p.dtype, jnp.float32)), params
        )
        return MultiStepsState(
            mini_step=jnp.zeros([], jnp.int32),
            gradient_step=jnp.zeros([], jnp.int32),
            inner_opt_state=optimizer.init(params),
            acc_grads=acc_grads,
        )

    def update(updates, state, params=None, **extra_args):
        check_tree_match("multi_steps", updates, state.acc_grads, "accumulated gradients")
        k = schedule(state.gradient_step)
        n = state.mini_step
        acc_grads = jax.tree.map(
            lambda g, a: a + (g.astype(a.dtype) - a) / (n + 1).astype(a.dtype),
            updates,
            state.acc_grads,
        )
        mean_grads = jax.tree.map(lambda a, g: a.astype(g.dtype), acc_grads, updates)
        inner_updates, inner_state = optimizer.update(
            mean_grads, state.inner_opt_state, params, **extra_args
        )
        emit = n == k - 1
        new_state = MultiStepsState(
            mini_step=safe_increment(n) % k,
            gradient_step=jnp.where(emit, safe_increment(state.gradient_step), state.gradient_step),
            inner_opt_state=jax.tree.map(
                lambda old, new: jnp.where(emit, new, old).astype(old.dtype),
                state.inner_opt_state,
                inner_state,
            ),
            acc_grads=jax.tree.map(lambda a: jnp.where(emit, jnp.zeros_like(a), a), acc_grads),
        )
        updates = jax.tree.map(lambda u: jnp.where(emit, u, jnp.zeros_like(u)), inner_updates)
        return updates, new_state

    return GradientTransformation(init, update)
