"""Learning-rate schedules: functions ``count -> value``, usable wherever a learning rate is.

``count`` is the number of updates done so far (0 at the first update), an ``int32`` array inside
a compiled step. Each schedule matches optax's schedule of the same name value for value.

Example:
  >>> from jaxnet import optim
  >>> schedule = optim.warmup_cosine_decay_schedule(0.0, 1e-3, warmup_steps=100, decay_steps=1000)
  >>> opt = optim.adam(learning_rate=schedule)
  >>> [round(float(schedule(t)), 6) for t in (0, 50, 100, 550, 1000)]
  [0.0, 0.0005, 0.001, 0.0005, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxnet.errors import OptimizerError, check_range
from jaxnet.optim.base import Schedule


def _as_float(count):
    """The step count as a float array (exact below 2**24 steps), so the arithmetic below never
    mixes integers and floats (it also runs under ``jax_numpy_dtype_promotion='strict'``)."""
    return jnp.asarray(count, dtype=jax.dtypes.canonicalize_dtype(jnp.float64))


def constant_schedule(value: float) -> Schedule:
    r""":math:`\eta(t) = \eta_0` for every step."""
    return lambda count: value


def polynomial_schedule(
    init_value: float,
    end_value: float,
    power: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule:
    r"""Polynomial interpolation from ``init_value`` to ``end_value`` over ``transition_steps``.

    .. math::
        \eta(t) = (\eta_0 - \eta_1)\left(1 - \frac{s}{T}\right)^p + \eta_1,
        \qquad s = \operatorname{clip}(t - t_0, 0, T)

    A non-positive ``transition_steps`` gives the constant ``init_value``; a negative
    ``transition_begin`` is treated as 0 (as in optax).
    """
    if transition_steps <= 0:
        return lambda count: init_value
    transition_begin = max(transition_begin, 0)

    # Under jit, XLA's CPU pow(0, p) is NaN for fractional p (optax's schedule has this bug too);
    # the guard gives the limit value 0 once the transition is over.
    guard_zero = isinstance(power, (int, float)) and power > 0

    def schedule(count):
        count = jnp.clip(_as_float(count) - transition_begin, 0, transition_steps)
        frac = 1 - count / transition_steps
        decay = frac**power
        if guard_zero:
            decay = jnp.where(frac > 0, decay, 0.0)
        return (init_value - end_value) * decay + end_value

    return schedule


def linear_schedule(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    r"""Linear ramp from ``init_value`` to ``end_value`` over ``transition_steps``, then constant.

    .. math:: \eta(t) = \eta_0 + (\eta_1 - \eta_0)\,\operatorname{clip}(t - t_0, 0, T)/T

    Example:
      >>> from jaxnet import optim
      >>> warmup = optim.linear_schedule(0.0, 1.0, transition_steps=4)
      >>> [float(warmup(t)) for t in range(6)]
      [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def piecewise_constant_schedule(
    init_value: float, boundaries_and_scales: dict[int, float] | None = None
) -> Schedule:
    r"""Multiply the value by ``scale`` once ``count`` passes each ``boundary``.

    .. math:: \eta(t) = \eta_0 \prod_{b_i \le t} s_i

    A boundary ``b`` takes effect at ``count == b``, i.e. from the ``(b+1)``-th update on.

    Example:
      >>> from jaxnet import optim
      >>> schedule = optim.piecewise_constant_schedule(1.0, {2: 0.1})
      >>> [round(float(schedule(t)), 3) for t in range(4)]
      [1.0, 1.0, 0.1, 0.1]
    """
    if boundaries_and_scales is not None and any(s < 0.0 for s in boundaries_and_scales.values()):
        raise OptimizerError(
            f"every scale must be >= 0, got {boundaries_and_scales}",
            ("piecewise_constant_schedule",),
        )

    def schedule(count):
        value = init_value
        for boundary, scale in sorted((boundaries_and_scales or {}).items()):
            before = jnp.maximum(0.0, jnp.sign(boundary - _as_float(count)))  # 1 until the boundary
            value = value * before + (1 - before) * scale * value
        return value

    return schedule


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    r"""Exponential decay: multiply by ``decay_rate`` every ``transition_steps``.

    .. math:: \eta(t) = \eta_0\, r^{(t - t_0)/T}
        \quad(\text{staircase: } r^{\lfloor (t-t_0)/T \rfloor}),
        \qquad \eta(t) = \eta_0 \text{ for } t \le t_0

    clipped below at ``end_value`` (above, if ``decay_rate > 1``). A non-positive
    ``transition_steps`` or a zero ``decay_rate`` gives the constant ``init_value``.

    Example:
      >>> from jaxnet import optim
      >>> schedule = optim.exponential_decay(1.0, transition_steps=10, decay_rate=0.5)
      >>> float(schedule(10)), float(schedule(20))
      (0.5, 0.25)
    """
    if transition_steps <= 0 or decay_rate == 0:
        return lambda count: init_value
    transition_begin = max(transition_begin, 0)
    clip_fn = jnp.maximum if decay_rate < 1.0 else jnp.minimum

    def schedule(count):
        steps = _as_float(count) - transition_begin
        p = steps / transition_steps
        if staircase:
            p = jnp.floor(p)
        value = jnp.where(steps <= 0, init_value, init_value * jnp.power(decay_rate, p))
        if end_value is not None:
            value = clip_fn(value, end_value)
        return value

    return schedule


def cosine_decay_schedule(
    init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> Schedule:
    r"""Cosine decay from ``init_value`` to ``alpha * init_value`` over ``decay_steps``.

    .. math::
        \eta(t) = \eta_0\left((1-\alpha)\left(\tfrac12\left(1 + \cos\frac{\pi
        \min(t, T)}{T}\right)\right)^{p} + \alpha\right)

    References:
      Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
    """
    check_range(
        "cosine_decay_schedule", "decay_steps", decay_steps, 0, low_open=True, error=OptimizerError
    )

    def schedule(count):
        steps = float(decay_steps)  # a float, so large counts do not overflow int32
        count = jnp.minimum(_as_float(count), steps)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * count / steps))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[i]`` from ``boundaries[i-1]`` on, each with its count restarted at 0."""

    def schedule(count):
        value = schedules[0](count)
        for boundary, next_schedule in zip(boundaries, schedules[1:], strict=True):
            value = jnp.where(count < boundary, value, next_schedule(count - boundary))
        return value

    return schedule


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    r"""Linear warm-up from ``init_value`` to ``peak_value``, then cosine decay to ``end_value``.

    ``decay_steps`` counts the whole schedule, warm-up included (optax's convention), so it must
    exceed ``warmup_steps``.

    .. math::
        \eta(t) = \begin{cases} \eta_0 + (\eta_{peak} - \eta_0)\, t / W & t < W \\
        \text{cosine decay from } \eta_{peak} \text{ to } \eta_{end}
        \text{ over } T - W \text{ steps} & t \ge W \end{cases}
    """
    if not decay_steps > warmup_steps:
        raise OptimizerError(
            "decay_steps (the total length, warm-up included) must be > "
            f"warmup_steps={warmup_steps}, got {decay_steps}",
            ("warmup_cosine_decay_schedule",),
        )
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    return join_schedules(
        [
            linear_schedule(init_value, peak_value, warmup_steps),
            cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent),
        ],
        [warmup_steps],
    )


__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "exponential_decay",
    "join_schedules",
    "linear_schedule",
    "piecewise_constant_schedule",
    "polynomial_schedule",
    "warmup_cosine_decay_schedule",
]
