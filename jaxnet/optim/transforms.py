r"""Gradient transformations: one update rule each, composed into optimizers by :func:`chain`.

Every rule is written as its equation, with the same arithmetic as optax's version, so jaxnet and
optax agree to float32 rounding step after step. Notation: :math:`g_t` the incoming update
(a gradient, or the output of the previous transformation), :math:`t` the step count starting at 1,
:math:`\eta` the learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnet.errors import OptimizerError, check_range
from jaxnet.optim.base import (
    NO_PARAMS_MSG,
    EmptyState,
    GradientTransformation,
    ScalarOrSchedule,
    Schedule,
    add_promoted,
    canonicalize_dtype,
    check_tree_match,
    identity,
    init_empty_state,
    promote,
    reject_complex,
    safe_increment,
    with_extra_args_support,
)

# Intervals for `check_range`: decay rates live in [0, 1), step sizes and epsilons in [0, inf).
DECAY = {"low": 0, "high": 1, "high_open": True, "error": OptimizerError}
NON_NEGATIVE = {"low": 0, "high": math.inf, "high_open": True, "error": OptimizerError}

# --------------------------------------------------------------------------------------------
# Small helpers shared by the rules.


def _zeros(params, dtype=None):
    return jax.tree.map(lambda p: jnp.zeros_like(p, dtype=dtype), params)


def _full(params, value):
    return jax.tree.map(lambda p: jnp.full_like(p, value), params)


def _float_dtype():
    return jax.dtypes.canonicalize_dtype(jnp.float64)  # float32 unless x64 is enabled


def _count0() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def bias_corrected(moment, decay, count):
    """Divide by ``1 - decay**count``, computed in float32 then cast to the moment's dtype."""
    correction = 1 - decay ** jnp.asarray(count, dtype=_float_dtype())
    return jax.tree.map(lambda m: m / correction.astype(m.dtype), moment)


def _cast(tree, dtype):
    return tree if dtype is None else jax.tree.map(lambda t: t.astype(dtype), tree)


def _need_params(name, params):
    if params is None:
        raise OptimizerError(NO_PARAMS_MSG, (name,))


def abs_sq(x: jax.Array) -> jax.Array:
    r""":math:`|x|^2` element-wise: ``x**2`` for real ``x``, :math:`\operatorname{Re}(\bar x x)` for
    complex ``x`` (real-valued, where ``x * x`` would be complex and wrong), as optax."""
    return x**2 if jnp.isrealobj(x) else (x.conj() * x).real


# --------------------------------------------------------------------------------------------
# Scaling by a constant, a learning rate or a schedule.


def scale(step_size: float | jax.Array) -> GradientTransformation:
    r"""Multiply updates by a fixed ``step_size``: :math:`u = s\,g`."""

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        return jax.tree.map(lambda g: step_size * g, updates), state

    return GradientTransformation(init_empty_state, update)


class ScaleByScheduleState(NamedTuple):
    """Step count for a scheduled step size."""

    count: jax.Array  # int32, shape ()


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    r"""Multiply updates by ``step_size_fn(count)``: :math:`u_t = s(t-1)\,g_t`.

    The step size is cast to each update's dtype before multiplying (as optax does).
    """

    def init(params):
        del params
        return ScaleByScheduleState(count=_count0())

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        step_size = step_size_fn(state.count)
        updates = jax.tree.map(lambda g: jnp.array(step_size, dtype=g.dtype) * g, updates)
        return updates, ScaleByScheduleState(count=safe_increment(state.count))

    return GradientTransformation(init, update)


class ScaleByLearningRateState(NamedTuple):
    """Step count and the learning rate, carried as an array.

    ``learning_rate`` is the (positive) rate used by the latest update; before the first update,
    the rate the first update will use. For a constant rate it is also the value the next update
    uses, so :func:`set_hyperparameter` changes it without recompiling, and under ``vmap`` each
    model can carry its own rate.
    """

    count: jax.Array  # int32, shape ()
    learning_rate: jax.Array  # float, shape ()


def _float_array(value) -> jax.Array:
    value = jnp.asarray(value)
    dtype = value.dtype if jnp.issubdtype(value.dtype, jnp.floating) else float
    return jnp.array(value, dtype=jax.dtypes.canonicalize_dtype(dtype))


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule | None = None, *, flip_sign: bool = True
) -> GradientTransformation:
    r"""Multiply updates by :math:`-\eta` (or :math:`+\eta` with ``flip_sign=False``).

    .. math:: u_t = -\eta_t\, g_t

    Args:
      learning_rate: a float, a JAX array, or a schedule ``count -> rate``; ``None`` means no
        scaling.
      flip_sign: multiply by ``-learning_rate`` (default), turning a descent direction into an
        update for :func:`apply_updates`.

    Unlike optax, a constant rate given as a Python (or NumPy) number lives in the state
    (``ScaleByLearningRateState.learning_rate``), not in the compiled program: changing it with
    :func:`set_hyperparameter` never recompiles (optax issue 577), it can differ per model under
    ``vmap``, and :func:`get_hyperparameter` reads it back. A rate given as a JAX array (a
    tracer inside ``optax.inject_hyperparams`` or a ``fit_many`` grid, or a concrete array) is
    instead an input of every update: each update uses it and writes it to the state, so the
    hyper-parameters that ``inject_hyperparams`` carries are what the step takes, and a
    :func:`set_hyperparameter` on the inner state is overwritten (change the rate of such an
    optimizer through its own input, e.g. ``state.hyperparams``). A schedule is recomputed from
    the step count at each update. The arithmetic is optax's: the rate is cast to each update's
    dtype and multiplied in.
    """
    if learning_rate is None:
        return identity()
    check_range("scale_by_learning_rate", "learning_rate", learning_rate, **NON_NEGATIVE)
    sign = -1 if flip_sign else 1

    if callable(learning_rate):
        schedule = learning_rate

        def init(params):
            del params
            return ScaleByLearningRateState(_count0(), _float_array(schedule(_count0())))

        def update(updates, state, params=None, **extra_args):
            del params, extra_args
            rate = schedule(state.count)
            step_size = sign * rate
            updates = jax.tree.map(lambda g: jnp.array(step_size, dtype=g.dtype) * g, updates)
            rate = jnp.asarray(rate, dtype=state.learning_rate.dtype)
            return updates, ScaleByLearningRateState(safe_increment(state.count), rate)

        return GradientTransformation(init, update)

    given = isinstance(learning_rate, jax.Array)  # an input of each update (traced or not)

    def init_constant(params):
        del params
        return ScaleByLearningRateState(_count0(), _float_array(learning_rate))

    def update_constant(updates, state, params=None, **extra_args):
        del params, extra_args
        rate = state.learning_rate
        if given:
            rate = jnp.asarray(learning_rate, rate.dtype)
        updates = jax.tree.map(lambda g: (sign * rate).astype(g.dtype) * g, updates)
        return updates, ScaleByLearningRateState(safe_increment(state.count), rate)

    return GradientTransformation(init_constant, update_constant)


# --------------------------------------------------------------------------------------------
# Momentum.


class TraceState(NamedTuple):
    """The momentum buffer (velocity)."""

    trace: Any


def trace(
    decay: float, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    r"""Heavy-ball momentum: keep a decaying sum of past updates.

    .. math::
        v_t = g_t + \beta v_{t-1}, \qquad
        u_t = v_t \;\text{or, with Nesterov,}\; u_t = g_t + \beta v_t

    Note this is a *sum* (``trace``), not an average: at steady state it is
    :math:`g/(1-\beta)`, as in PyTorch's SGD and optax.

    References:
      Polyak, 1964; Sutskever et al., "On the importance of initialization and momentum in deep
      learning", ICML 2013 (the Nesterov form).
    """
    check_range("trace", "decay", decay, **DECAY)
    accumulator_dtype = canonicalize_dtype(accumulator_dtype)

    def init(params):
        return TraceState(trace=_zeros(params, accumulator_dtype))

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("trace", updates, state.trace, "momentum state")
        velocity = jax.tree.map(lambda g, v: add_promoted(g, decay * v), updates, state.trace)
        if nesterov:
            updates = jax.tree.map(lambda g, v: add_promoted(g, decay * v), updates, velocity)
        else:
            updates = velocity
        return updates, TraceState(trace=_cast(velocity, accumulator_dtype))

    return GradientTransformation(init, update)


# --------------------------------------------------------------------------------------------
# Adaptive scalings.


class ScaleByRssState(NamedTuple):
    """Running sum of squared gradients (AdaGrad)."""

    sum_of_squares: Any


def scale_by_rss(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7
) -> GradientTransformation:
    r"""AdaGrad's scaling: divide by the root of the sum of all squared gradients so far.

    .. math::
        G_t = G_{t-1} + g_t^2, \qquad u_t = g_t / \sqrt{G_t + \epsilon}
        \quad (u_t = 0 \text{ where } G_t = 0)

    References:
      Duchi et al., "Adaptive Subgradient Methods for Online Learning and Stochastic
      Optimization", JMLR 2011.
    """
    check_range(
        "scale_by_rss", "initial_accumulator_value", initial_accumulator_value, **NON_NEGATIVE
    )
    check_range("scale_by_rss", "eps", eps, **NON_NEGATIVE)

    def init(params):
        return ScaleByRssState(sum_of_squares=_full(params, initial_accumulator_value))

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_rss", updates, state.sum_of_squares, "sum_of_squares state")
        sum_sq = jax.tree.map(
            lambda g, s: add_promoted(abs_sq(g), s), updates, state.sum_of_squares
        )
        updates = jax.tree.map(
            lambda s, g: jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g, sum_sq, updates
        )
        return updates, ScaleByRssState(sum_of_squares=sum_sq)

    return GradientTransformation(init, update)


class ScaleByRmsState(NamedTuple):
    """Exponential moving average of squared gradients (RMSProp)."""

    nu: Any


class ScaleByRmsWithCountState(NamedTuple):
    """RMSProp's average plus a step count, for bias correction."""

    count: jax.Array
    nu: Any


def scale_by_rms(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""RMSProp's scaling: divide by the root of a moving average of squared gradients.

    .. math::
        \nu_t = \rho\,\nu_{t-1} + (1-\rho)\,g_t^2, \qquad
        u_t = g_t / \sqrt{\hat\nu_t + \epsilon}

    with :math:`\hat\nu_t = \nu_t/(1-\rho^t)` if ``bias_correction`` else :math:`\nu_t`, and
    :math:`u_t = g_t/(\sqrt{\hat\nu_t} + \epsilon)` if ``eps_in_sqrt=False``.

    Warning:
      Here ``eps`` is *inside* the square root by default (optax, TensorFlow); PyTorch's RMSprop
      puts it outside. ``scale_by_rms(b2, eps_in_sqrt=False, bias_correction=True)`` equals
      ``scale_by_adam(b1=0, b2=b2)``.

    References:
      Tieleman and Hinton, Lecture 6.5 of "Neural Networks for Machine Learning", 2012.
    """
    check_range("scale_by_rms", "decay", decay, **DECAY)
    check_range("scale_by_rms", "eps", eps, **NON_NEGATIVE)
    check_range("scale_by_rms", "initial_scale", initial_scale, **NON_NEGATIVE)

    def init(params):
        nu = _full(params, initial_scale)
        if bias_correction:
            return ScaleByRmsWithCountState(count=_count0(), nu=nu)
        return ScaleByRmsState(nu=nu)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_rms", updates, state.nu, "nu state")
        nu = jax.tree.map(
            lambda g, v: add_promoted((1 - decay) * abs_sq(g), decay * v), updates, state.nu
        )
        if bias_correction:
            count = safe_increment(state.count)
            nu_hat = bias_corrected(nu, decay, count)
        else:
            nu_hat = nu
        if eps_in_sqrt:
            scaling = jax.tree.map(lambda v: jax.lax.rsqrt(v + eps), nu_hat)
        else:
            scaling = jax.tree.map(lambda v: 1 / (jnp.sqrt(v) + eps), nu_hat)
        updates = jax.tree.map(lambda s, g: s * g, scaling, updates)
        if bias_correction:
            return updates, ScaleByRmsWithCountState(count=count, nu=nu)
        return updates, ScaleByRmsState(nu=nu)

    return GradientTransformation(init, update)


class ScaleByStddevState(NamedTuple):
    """Moving averages of gradients and squared gradients (centred RMSProp)."""

    mu: Any
    nu: Any


class ScaleByStddevWithCountState(NamedTuple):
    """Centred RMSProp's averages plus a step count, for bias correction."""

    count: jax.Array
    mu: Any
    nu: Any


def scale_by_stddev(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""Centred RMSProp's scaling: divide by a running estimate of the gradient's std. deviation.

    .. math::
        \mu_t = \rho\,\mu_{t-1} + (1-\rho)\,g_t, \quad
        \nu_t = \rho\,\nu_{t-1} + (1-\rho)\,g_t^2, \quad
        u_t = g_t / \sqrt{\hat\nu_t - \hat\mu_t^2 + \epsilon}

    References:
      Graves, "Generating Sequences With Recurrent Neural Networks", 2013, eq. 38-41.
    """
    check_range("scale_by_stddev", "decay", decay, **DECAY)
    check_range("scale_by_stddev", "eps", eps, **NON_NEGATIVE)
    check_range("scale_by_stddev", "initial_scale", initial_scale, **NON_NEGATIVE)

    def init(params):
        mu, nu = _zeros(params), _full(params, initial_scale)
        if bias_correction:
            return ScaleByStddevWithCountState(count=_count0(), mu=mu, nu=nu)
        return ScaleByStddevState(mu=mu, nu=nu)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_stddev", updates, state.nu, "nu state")
        mu = jax.tree.map(lambda g, m: add_promoted((1 - decay) * g, decay * m), updates, state.mu)
        nu = jax.tree.map(
            lambda g, v: add_promoted((1 - decay) * abs_sq(g), decay * v), updates, state.nu
        )
        if bias_correction:
            count = safe_increment(state.count)
            mu_hat, nu_hat = bias_corrected(mu, decay, count), bias_corrected(nu, decay, count)
        else:
            mu_hat, nu_hat = mu, nu
        if eps_in_sqrt:
            scaling = jax.tree.map(
                lambda m, v: jax.lax.rsqrt(add_promoted(v, -abs_sq(m)) + eps), mu_hat, nu_hat
            )
        else:
            scaling = jax.tree.map(
                lambda m, v: 1 / (jnp.sqrt(add_promoted(v, -abs_sq(m))) + eps), mu_hat, nu_hat
            )
        updates = jax.tree.map(lambda s, g: s * g, scaling, updates)
        if bias_correction:
            return updates, ScaleByStddevWithCountState(count=count, mu=mu, nu=nu)
        return updates, ScaleByStddevState(mu=mu, nu=nu)

    return GradientTransformation(init, update)


class ScaleByAdamState(NamedTuple):
    """Adam's step count and first (``mu``) and second (``nu``) moment estimates."""

    count: jax.Array  # int32, shape ()
    mu: Any
    nu: Any


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""Adam's scaling: bias-corrected first moment over the root of the second moment.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \\
        \hat m_t = m_t / (1-\beta_1^t), \quad \hat v_t = v_t / (1-\beta_2^t), \quad
        u_t = \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)

    With ``nesterov=True`` (NAdam), :math:`\hat m_t = \beta_1 m_t/(1-\beta_1^{t+1})
    + (1-\beta_1) g_t/(1-\beta_1^t)`.

    Warning:
      :math:`\epsilon` is added *outside* the square root, as in the paper's Algorithm 1, optax
      and PyTorch. Some implementations add it inside (or to the un-corrected :math:`v_t`, as
      TensorFlow's "epsilon hat"); those differ early in training and when gradients are tiny.

    References:
      Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015;
      Dozat, "Incorporating Nesterov Momentum into Adam", ICLR workshop 2016.
    """
    check_range("scale_by_adam", "b1", b1, **DECAY)
    check_range("scale_by_adam", "b2", b2, **DECAY)
    check_range("scale_by_adam", "eps", eps, **NON_NEGATIVE)
    check_range("scale_by_adam", "eps_root", eps_root, **NON_NEGATIVE)
    mu_dtype = canonicalize_dtype(mu_dtype)

    def init(params):
        return ScaleByAdamState(count=_count0(), mu=_zeros(params, mu_dtype), nu=_zeros(params))

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_adam", updates, state.nu, "nu state")
        mu = jax.tree.map(lambda g, m: add_promoted((1 - b1) * g, b1 * m), updates, state.mu)
        nu = jax.tree.map(
            lambda g, v: add_promoted((1 - b2) * abs_sq(g), b2 * v), updates, state.nu
        )
        count = safe_increment(state.count)
        if nesterov:
            mu_hat = jax.tree.map(
                lambda m, g: b1 * m + (1 - b1) * g,
                bias_corrected(mu, b1, safe_increment(count)),
                bias_corrected(updates, b1, count),
            )
        else:
            mu_hat = bias_corrected(mu, b1, count)
        # Dozat's Algorithm 2 also multiplies nu_hat by b2; optax and others omit it, so do we.
        nu_hat = bias_corrected(nu, b2, count)
        updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        mu = _cast(mu, mu_dtype)
        nu = jax.tree.map(lambda v, old: v.astype(old.dtype), nu, state.nu)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init, update)


def scale_by_adamax(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    r"""AdaMax's scaling: Adam with the second moment replaced by a decaying infinity norm.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \max(|g_t| + \epsilon, \beta_2 v_{t-1}), \quad
        u_t = \frac{m_t}{(1-\beta_1^t)\, v_t}

    The state reuses :class:`ScaleByAdamState` (``nu`` holds :math:`v_t`).

    References:
      Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.1.
    """
    check_range("scale_by_adamax", "b1", b1, **DECAY)
    check_range("scale_by_adamax", "b2", b2, **DECAY)
    check_range("scale_by_adamax", "eps", eps, **NON_NEGATIVE)

    def init(params):
        return ScaleByAdamState(count=_count0(), mu=_zeros(params), nu=_zeros(params))

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_adamax", updates, state.nu, "nu state")
        count = safe_increment(state.count)
        mu = jax.tree.map(lambda g, m: add_promoted((1 - b1) * g, b1 * m), updates, state.mu)
        nu = jax.tree.map(
            lambda g, v: jnp.maximum(*promote(jnp.abs(g) + eps, b2 * v)), updates, state.nu
        )
        mu_hat = bias_corrected(mu, b1, count)
        updates = jax.tree.map(lambda m, v: m / v, mu_hat, nu)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init, update)


class ScaleByLionState(NamedTuple):
    """Lion's step count and momentum."""

    count: jax.Array
    mu: Any


def scale_by_lion(
    b1: float = 0.9, b2: float = 0.99, mu_dtype: Any = None
) -> GradientTransformation:
    r"""Lion's scaling: the sign of an interpolation of momentum and gradient.

    .. math::
        u_t = \operatorname{sign}(\beta_1 m_{t-1} + (1-\beta_1) g_t), \qquad
        m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

    Every coordinate moves by exactly the learning rate, so Lion wants a learning rate 3-10x
    smaller than AdamW's (and a correspondingly larger weight decay).

    References:
      Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
    """
    check_range("scale_by_lion", "b1", b1, 0, 1, error=OptimizerError)
    check_range("scale_by_lion", "b2", b2, **DECAY)
    mu_dtype = canonicalize_dtype(mu_dtype)

    def init(params):
        reject_complex("scale_by_lion", params)  # sign() of a complex number is z/|z|, not +-1
        return ScaleByLionState(count=_count0(), mu=_zeros(params, mu_dtype))

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_lion", updates, state.mu, "mu state")
        direction = jax.tree.map(
            lambda g, m: jnp.sign(add_promoted((1.0 - b1) * g, b1 * m)), updates, state.mu
        )
        mu = jax.tree.map(lambda g, m: add_promoted((1 - b2) * g, b2 * m), updates, state.mu)
        mu = _cast(mu, mu_dtype)
        return direction, ScaleByLionState(count=safe_increment(state.count), mu=mu)

    return GradientTransformation(init, update)


class ScaleByAdaDeltaState(NamedTuple):
    """AdaDelta's averages of squared gradients (``e_g``) and squared updates (``e_x``)."""

    e_g: Any
    e_x: Any


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    r"""AdaDelta's scaling: ratio of RMS past updates to RMS gradients (units match the params).

    .. math::
        E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) g_t^2, \quad
        u_t = \frac{\sqrt{E[\Delta x^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\, g_t,
        \quad E[\Delta x^2]_t = \rho E[\Delta x^2]_{t-1} + (1-\rho) u_t^2

    References:
      Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012.
    """
    check_range("scale_by_adadelta", "rho", rho, **DECAY)
    check_range("scale_by_adadelta", "eps", eps, **NON_NEGATIVE)

    def init(params):
        reject_complex("scale_by_adadelta", params)  # as optax, which squares with g**2
        return ScaleByAdaDeltaState(e_g=_zeros(params), e_x=_zeros(params))

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_match("scale_by_adadelta", updates, state.e_g, "e_g state")
        e_g = jax.tree.map(lambda g, e: (1 - rho) * g**2 + rho * e, updates, state.e_g)
        updates = jax.tree.map(
            lambda g, eg, ex: (jnp.sqrt(ex + eps) / jnp.sqrt(eg + eps)) * g,
            updates,
            e_g,
            state.e_x,
        )
        e_x = jax.tree.map(lambda u, e: (1 - rho) * u**2 + rho * e, updates, state.e_x)
        return updates, ScaleByAdaDeltaState(e_g=e_g, e_x=e_x)

    return GradientTransformation(init, update)


def _safe_norm(x, min_norm):
    """``max(||x||, min_norm)`` whose gradient is 0, not NaN, where ``||x|| <= min_norm``."""
    norm = jnp.linalg.norm(x, keepdims=True)
    x = jnp.where(norm <= min_norm, jnp.ones_like(x), x)
    norm = jnp.squeeze(norm)
    return jnp.where(norm <= min_norm, min_norm, jnp.linalg.norm(x))


def scale_by_trust_ratio(
    min_norm: float = 0.0, trust_coefficient: float = 1.0, eps: float = 0.0
) -> GradientTransformation:
    r"""Layer-wise trust ratio (LARS/LAMB): rescale each leaf by ``||param|| / ||update||``.

    .. math:: u_t = g_t \cdot c\,\frac{\max(\|\theta\|, n_0)}{\max(\|g_t\|, n_0) + \epsilon}

    The ratio is 1 where either norm is zero (fresh zero-initialised biases still move).

    References:
      You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
      ICLR 2020.
    """
    check_range("scale_by_trust_ratio", "min_norm", min_norm, **NON_NEGATIVE)
    check_range("scale_by_trust_ratio", "eps", eps, **NON_NEGATIVE)

    def update(updates, state, params=None, **extra_args):
        del extra_args
        _need_params("scale_by_trust_ratio", params)
        check_tree_match("scale_by_trust_ratio", updates, params, "params")

        def scale_leaf(u, p):
            param_norm = _safe_norm(p, min_norm)
            update_norm = _safe_norm(u, min_norm)
            ratio = jnp.divide(*promote(trust_coefficient * param_norm, update_norm + eps))
            zero_norm = jnp.logical_or(param_norm == 0.0, update_norm == 0.0)
            scale = jnp.where(zero_norm, *promote(jnp.array(1.0, dtype=p.dtype), ratio))
            return jnp.multiply(*promote(u, scale))

        return jax.tree.map(scale_leaf, updates, params), state

    return GradientTransformation(init_empty_state, update)


# --------------------------------------------------------------------------------------------
# Weight decay, masking, clipping.


class WeightDecayScheduleState(NamedTuple):
    """Step count for a scheduled weight decay."""

    count: jax.Array


class MaskedNode(NamedTuple):
    """Stands in for a masked-out leaf: a pytree node with no children, so maps skip it."""


class MaskedState(NamedTuple):
    """The inner transformation's state, over the unmasked leaves only."""

    inner_state: Any


def masked(
    inner: GradientTransformation, mask: Any | Callable[[Any], Any]
) -> GradientTransformation:
    """Apply ``inner`` only where ``mask`` is ``True``; pass other updates through unchanged.

    Args:
      inner: the transformation to restrict.
      mask: a pytree of bools with the structure of the params (or a prefix of it), or a
        function ``params -> such a pytree``. Must be static (Python bools) under ``jit``.

    Example (no weight decay on 1-D parameters such as biases):
      >>> import jax
      >>> from jaxnet import optim
      >>> decay = optim.masked(optim.add_decayed_weights(1e-4), lambda p: jax.tree.map(
      ...     lambda x: x.ndim > 1, p))
    """

    inner = with_extra_args_support(inner)

    def mask_tree(tree):
        return mask(tree) if callable(mask) else mask

    def select(tree, m):
        return jax.tree.map(lambda keep, x: x if keep else MaskedNode(), m, tree)

    def init(params):
        return MaskedState(inner_state=inner.init(select(params, mask_tree(params))))

    def update(updates, state, params=None, **extra_args):
        m = mask_tree(updates)
        masked_params = None if params is None else select(params, m)
        new_updates, inner_state = inner.update(
            select(updates, m), state.inner_state, masked_params, **extra_args
        )
        updates = jax.tree.map(lambda keep, new, old: new if keep else old, m, new_updates, updates)
        return updates, MaskedState(inner_state=inner_state)

    return GradientTransformation(init, update)


def add_decayed_weights(
    weight_decay: ScalarOrSchedule = 0.0, mask: Any | Callable[[Any], Any] = None
) -> GradientTransformation:
    r"""Add decoupled weight decay to the update: :math:`u_t = g_t + \lambda\,\theta`.

    Placed *after* the adaptive scaling (AdamW), the decay is not divided by
    :math:`\sqrt{\hat v}`, unlike an L2 penalty added to the loss.

    Args:
      weight_decay: :math:`\lambda`, a float or a schedule ``count -> float``.
      mask: which leaves to decay: a pytree of bools or a function of the params; ``None``
        decays every leaf.

    References:
      Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    check_range("add_decayed_weights", "weight_decay", weight_decay, **NON_NEGATIVE)

    def init(params):
        del params
        if callable(weight_decay):
            return WeightDecayScheduleState(count=_count0())
        return EmptyState()

    def update(updates, state, params=None, **extra_args):
        del extra_args
        _need_params("add_decayed_weights", params)
        check_tree_match("add_decayed_weights", updates, params, "params")
        if callable(weight_decay):
            new_state = WeightDecayScheduleState(count=safe_increment(state.count))
            decay = weight_decay(state.count)
        else:
            new_state = state
            if isinstance(weight_decay, (int, float)) and weight_decay == 0.0:
                return updates, new_state  # nothing to add; skip the work
            decay = weight_decay
        return jax.tree.map(lambda g, p: g + decay * p, updates, params), new_state

    transform = GradientTransformation(init, update)
    return transform if mask is None else masked(transform, mask)


def clip(max_delta: float) -> GradientTransformation:
    r"""Clip every update element to :math:`[-\delta, \delta]`."""
    check_range("clip", "max_delta", max_delta, **NON_NEGATIVE)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        reject_complex("clip", updates)  # complex numbers have no order to clip by
        return jax.tree.map(lambda g: jnp.clip(g, -max_delta, max_delta), updates), state

    return GradientTransformation(init_empty_state, update)


def global_norm(updates) -> jax.Array:
    r""":math:`\sqrt{\sum_i \|g_i\|^2}` over all leaves of a pytree."""
    total = 0
    for leaf in jax.tree.leaves(updates):
        total = total + jnp.sum(abs_sq(leaf))
    return jnp.sqrt(total)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    r"""Rescale all updates together so their global norm is at most ``max_norm``.

    .. math:: u = g \cdot \min\left(1, \frac{c}{\|g\|}\right),
        \qquad \|g\| = \sqrt{\textstyle\sum_i \|g_i\|^2}

    References:
      Pascanu et al., "On the difficulty of training Recurrent Neural Networks", ICML 2013.
    """
    check_range("clip_by_global_norm", "max_norm", max_norm, **NON_NEGATIVE)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        norm = global_norm(updates)
        keep = norm < max_norm
        updates = jax.tree.map(
            lambda g: jax.lax.select(keep, g, (g / norm.astype(g.dtype)) * max_norm), updates
        )
        return updates, state

    return GradientTransformation(init_empty_state, update)


# --------------------------------------------------------------------------------------------
# Quasi-Newton.


class ScaleByLbfgsState(NamedTuple):
    """L-BFGS's memory: the last params and updates, and the last ``m`` differences of each
    (stacked on a leading axis of size ``m``, a ring buffer) with their weights
    :math:`\\rho_j = 1 / (\\delta u_j^\\top \\delta w_j)`."""

    count: jax.Array
    params: Any
    updates: Any
    diff_params_memory: Any
    diff_updates_memory: Any
    weights_memory: jax.Array


def _vdot(a, b):
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return sum(jnp.vdot(x, y).real for x, y in pairs)


def scale_by_lbfgs(memory_size: int = 10, scale_init_precond: bool = True):
    r"""L-BFGS's direction: the update times an approximation of the inverse Hessian.

    With :math:`\delta w_j = w_{j+1} - w_j` and :math:`\delta u_j = u_{j+1} - u_j` the last
    ``memory_size`` differences of params and incoming updates (gradients),
    :math:`\rho_j = 1 / (\delta u_j^\top \delta w_j)`, the two-loop recursion computes
    :math:`P_k u_k` for

    .. math::
        P_{k,j+1} = V_j^\top P_{k,j} V_j + \rho_j\, \delta w_j \delta w_j^\top, \quad
        V_j = I - \rho_j\, \delta u_j \delta w_j^\top, \quad
        P_{k,k-m} = \gamma_k I

    with :math:`\gamma_k = \delta w_{k-1}^\top \delta u_{k-1} / \|\delta u_{k-1}\|^2`
    (``scale_init_precond``; else 1) and, at the first step,
    :math:`\gamma_0 = \min(1, 1/\|u_0\|)` (optax's choice). Chain it with a line search
    (:func:`jaxnet.optim.lbfgs`); updates are *descent directions* before the sign flip.

    References:
      Nocedal and Wright, "Numerical Optimization", 1999, Algorithms 7.4 and 7.5;
      Liu and Nocedal, "On the limited memory BFGS method for large scale optimization", 1989.
    """
    from jaxnet.errors import check_int

    check_int("scale_by_lbfgs", "memory_size", memory_size, 1)

    def init(params):
        def stacked(p):
            return jnp.zeros((memory_size, *p.shape), p.dtype)

        return ScaleByLbfgsState(
            count=_count0(),
            params=_zeros(params),
            updates=_zeros(params),
            diff_params_memory=jax.tree.map(stacked, params),
            diff_updates_memory=jax.tree.map(stacked, params),
            weights_memory=jnp.zeros(memory_size, _float_dtype()),
        )

    def update(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise OptimizerError(NO_PARAMS_MSG, ("scale_by_lbfgs",))
        index, previous = state.count % memory_size, (state.count - 1) % memory_size
        # 1. Remember the newest differences (none before the first step).
        started = state.count > 0
        diff_params = jax.tree.map(lambda p, q: jnp.where(started, p - q, 0), params, state.params)
        diff_updates = jax.tree.map(
            lambda u, v: jnp.where(started, u - v, 0), updates, state.updates
        )
        curvature = _vdot(diff_updates, diff_params)
        weight = jnp.where(curvature == 0.0, 0.0, 1.0 / jnp.where(curvature == 0, 1, curvature))
        memory_w = jax.tree.map(
            lambda m, d: m.at[previous].set(d), state.diff_params_memory, diff_params
        )
        memory_u = jax.tree.map(
            lambda m, d: m.at[previous].set(d), state.diff_updates_memory, diff_updates
        )
        rhos = state.weights_memory.at[previous].set(jnp.where(started, weight, 0.0))
        # 2. The initial inverse-Hessian scale gamma.
        if scale_init_precond:
            norm_u = _vdot(diff_updates, diff_updates)
            gamma = jnp.where(norm_u > 0.0, curvature / jnp.where(norm_u > 0, norm_u, 1), 1.0)
            first = jnp.minimum(1.0, 1.0 / jnp.sqrt(_vdot(updates, updates)))
            gamma = jnp.where(started, gamma, first)
        else:
            gamma = 1.0
        # 3. The two-loop recursion, newest difference first, then oldest first.
        order = (index + jnp.arange(memory_size)) % memory_size

        def backward(vector, j):
            dw, du = jax.tree.map(lambda m: m[j], (memory_w, memory_u))
            alpha = rhos[j] * _vdot(dw, vector)
            return jax.tree.map(lambda v, d: (v - alpha * d).astype(v.dtype), vector, du), alpha

        vector, alphas = jax.lax.scan(backward, updates, order, reverse=True)
        vector = jax.tree.map(lambda v: (gamma * v).astype(v.dtype), vector)

        def forward(vector, j_alpha):
            j, alpha = j_alpha
            dw, du = jax.tree.map(lambda m: m[j], (memory_w, memory_u))
            beta = rhos[j] * _vdot(du, vector)
            return jax.tree.map(
                lambda v, d: (v + (alpha - beta) * d).astype(v.dtype), vector, dw
            ), None

        vector, _ = jax.lax.scan(forward, vector, (order, alphas))
        new_state = ScaleByLbfgsState(
            safe_increment(state.count), params, updates, memory_w, memory_u, rhos
        )
        return vector, new_state

    return GradientTransformation(init, update)
