"""The optimizer menu: each one is a :func:`chain` of rules from :mod:`jaxnet.optim.transforms`.

Names, argument names and defaults are optax's, and so is the arithmetic: a jaxnet optimizer and
the optax optimizer of the same name produce the same updates and states (to float32 rounding).

Every ``learning_rate`` may be a float, a JAX array, or a schedule (``count -> rate``, see
:mod:`jaxnet.optim.schedules`). It is kept in the state, so :func:`get_hyperparameter` reads it
back and :func:`set_hyperparameter` changes it without recompiling.

An optimizer only composes: each argument is checked once, by the transformation that uses it, and
:func:`named` puts the optimizer's name in front of that transformation's errors
(``adam/scale_by_adam: b1 must be in [0, 1), got 1.5``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxnet.errors import check_range
from jaxnet.optim.base import GradientTransformation, ScalarOrSchedule, chain, named
from jaxnet.optim.transforms import (
    DECAY,
    add_decayed_weights,
    scale,
    scale_by_adadelta,
    scale_by_adam,
    scale_by_adamax,
    scale_by_lbfgs,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
    scale_by_trust_ratio,
    trace,
)

MaskOrFn = Any | Callable[[Any], Any] | None


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    .. math::
        v_t = g_t + \mu\, v_{t-1}, \qquad
        \theta_t = \theta_{t-1} - \eta\, v_t
        \quad(\text{Nesterov: } \theta_t = \theta_{t-1} - \eta\,(g_t + \mu v_t))

    Args:
      learning_rate: :math:`\eta`, a float, array or schedule.
      momentum: :math:`\mu` in ``[0, 1)``; ``None`` for plain SGD.
      nesterov: use Nesterov's look-ahead form of momentum.
      accumulator_dtype: dtype of the momentum buffer (default: the gradients').

    Warning:
      The momentum buffer is a *sum* (PyTorch and optax), not an average (some textbooks use
      :math:`v_t = \mu v_{t-1} + (1-\mu) g_t`): the effective step is :math:`\eta/(1-\mu)`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.sgd(learning_rate=0.1, momentum=0.9)
      >>> params = jnp.array([1.0, 2.0])
      >>> state = opt.init(params)
      >>> grads = jax.grad(lambda p: jnp.sum(p**2))(params)
      >>> updates, state = opt.update(grads, state)
      >>> optim.apply_updates(params, updates)
      Array([0.8, 1.6], dtype=float32)

    References:
      Robbins and Monro, 1951; Polyak, 1964; Sutskever et al., ICML 2013.
    """

    def build():
        rules = []
        if momentum is not None:
            check_range("trace", "momentum", momentum, **DECAY)  # the user's name for its decay
            rules.append(trace(momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype))
        return chain(*rules, scale_by_learning_rate(learning_rate))

    return named("sgd", build)


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
) -> GradientTransformation:
    r"""AdaGrad: per-coordinate steps shrinking with the sum of all past squared gradients.

    .. math::
        G_t = G_{t-1} + g_t^2, \qquad \theta_t = \theta_{t-1} - \eta\, g_t/\sqrt{G_t + \epsilon}

    Coordinates with large or frequent gradients get small steps, rare ones large steps -- good
    for sparse features. Since :math:`G_t` only grows, the step decays towards zero and AdaGrad
    often stops before reaching the minimum of a deep network's loss; RMSProp fixes that.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.adagrad(learning_rate=1.0)
      >>> state = opt.init(jnp.zeros(2))
      >>> updates, state = opt.update(jnp.array([3.0, -4.0]), state)
      >>> [round(float(u), 3) for u in updates]
      [-0.994, 0.997]

    References:
      Duchi et al., "Adaptive Subgradient Methods for Online Learning and Stochastic
      Optimization", JMLR 2011.
    """
    return named(
        "adagrad",
        lambda: chain(
            scale_by_rss(initial_accumulator_value=initial_accumulator_value, eps=eps),
            scale_by_learning_rate(learning_rate),
        ),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""RMSProp: divide by the root of a moving average of squared gradients.

    .. math::
        \nu_t = \rho\,\nu_{t-1} + (1-\rho)\, g_t^2, \qquad
        \theta_t = \theta_{t-1} - \eta\, \frac{g_t}{\sqrt{\nu_t + \epsilon}}

    ``centered=True`` divides by the standard deviation instead,
    :math:`\sqrt{\nu_t - \mu_t^2 + \epsilon}` with :math:`\mu_t` the moving average of
    :math:`g_t`. ``momentum`` applies heavy-ball momentum to the *scaled* step (after the learning
    rate, as in optax and TensorFlow).

    Args:
      learning_rate: :math:`\eta`.
      decay: :math:`\rho` in ``[0, 1)``: how much of the past average to keep (0.9 remembers about
        the last 10 steps).
      eps: added inside the square root (outside with ``eps_in_sqrt=False``).
      initial_scale: initial value of :math:`\nu` (TensorFlow uses 1.0, PyTorch 0.0).
      eps_in_sqrt: where ``eps`` goes.
      centered: divide by the centred second moment.
      momentum: optional momentum coefficient in ``[0, 1)``.
      nesterov: Nesterov form of that momentum.
      bias_correction: divide the averages by :math:`1-\rho^t`.

    Warning:
      PyTorch's RMSprop adds ``eps`` outside the square root; this one (like optax and
      TensorFlow) adds it inside unless ``eps_in_sqrt=False``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.rmsprop(learning_rate=0.01)
      >>> state = opt.init(jnp.zeros(2))
      >>> updates, state = opt.update(jnp.array([1.0, -1.0]), state)
      >>> [round(float(u), 4) for u in updates]
      [-0.0316, 0.0316]

    References:
      Tieleman and Hinton, Lecture 6.5, "Neural Networks for Machine Learning", 2012;
      Graves, "Generating Sequences With Recurrent Neural Networks", 2013 (centred form).
    """

    def build():
        scaling = scale_by_stddev if centered else scale_by_rms
        rules = [
            scaling(
                decay=decay,
                eps=eps,
                initial_scale=initial_scale,
                eps_in_sqrt=eps_in_sqrt,
                bias_correction=bias_correction,
            ),
            scale_by_learning_rate(learning_rate),
        ]
        if momentum is not None:
            check_range("trace", "momentum", momentum, **DECAY)  # the user's name for its decay
            rules.append(trace(decay=momentum, nesterov=nesterov))
        return chain(*rules)

    return named("rmsprop", build)


def adadelta(
    learning_rate: ScalarOrSchedule | None = None,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: MaskOrFn = None,
) -> GradientTransformation:
    r"""AdaDelta: RMSProp whose numerator is the RMS of past updates, so no learning rate is needed.

    .. math::
        E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) g_t^2, \quad
        \Delta_t = \frac{\sqrt{E[\Delta^2]_{t-1}+\epsilon}}{\sqrt{E[g^2]_t+\epsilon}}\, g_t,
        \quad \theta_t = \theta_{t-1} - \eta\,\Delta_t

    Args:
      learning_rate: :math:`\eta`; ``None`` (the paper's form) applies no scaling -- but then
        the update *adds* :math:`\Delta_t` (no sign flip), exactly as optax does, so pass a
        learning rate (1.0 reproduces the paper's descent) to minimise.
      rho: decay of both averages, in ``[0, 1)``.
      eps: inside both square roots; it also sets the size of the very first steps.
      weight_decay: L2 weight decay added to the gradient *before* the scaling.
      weight_decay_mask: which leaves to decay (pytree of bools or function of the params).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.adadelta(learning_rate=1.0)
      >>> params = jnp.zeros(1)
      >>> state = opt.init(params)
      >>> updates, state = opt.update(jnp.array([1.0]), state, params)
      >>> [round(float(u), 5) for u in updates]
      [-0.00316]

    References:
      Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012.
    """
    return named(
        "adadelta",
        lambda: chain(
            add_decayed_weights(weight_decay, mask=weight_decay_mask),
            scale_by_adadelta(rho=rho, eps=eps),
            scale_by_learning_rate(learning_rate),
        ),
    )


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""Adam: momentum on the gradient divided by the root of a moving average of its square.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \\
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \qquad \hat v_t = \frac{v_t}{1-\beta_2^t},
        \qquad \theta_t = \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t +
        \epsilon_{root}} + \epsilon}

    Args:
      learning_rate: :math:`\eta`.
      b1: :math:`\beta_1` in ``[0, 1)``, decay of the first moment (momentum).
      b2: :math:`\beta_2` in ``[0, 1)``, decay of the second moment.
      eps: :math:`\epsilon`, added outside the square root.
      eps_root: :math:`\epsilon_{root}`, added inside (keeps meta-gradients finite).
      mu_dtype: dtype of the first moment (e.g. ``jnp.bfloat16`` to save memory).
      nesterov: use Nesterov momentum (NAdam, see :func:`nadam`).

    Warning:
      :math:`\epsilon` goes *outside* the square root, as in the paper's Algorithm 1, optax and
      PyTorch. TensorFlow/Keras add an "epsilon hat" to the un-corrected denominator instead;
      with the same ``eps`` value the two differ in the first steps and whenever gradients are
      tiny.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.adam(learning_rate=0.1)
      >>> state = opt.init(jnp.zeros(2))
      >>> updates, state = opt.update(jnp.array([3.0, -0.001]), state)
      >>> # the first step is -lr * sign(g), whatever the gradient's size
      >>> [round(float(u), 4) for u in updates]
      [-0.1, 0.1]

    References:
      Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    return named(
        "adam",
        lambda: chain(
            scale_by_adam(
                b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
            ),
            scale_by_learning_rate(learning_rate),
        ),
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: MaskOrFn = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""AdamW: Adam with weight decay applied to the parameters, not mixed into the gradient.

    .. math::
        \theta_t = \theta_{t-1} - \eta\left(\frac{\hat m_t}{\sqrt{\hat v_t +
        \epsilon_{root}} + \epsilon} + \lambda\, \theta_{t-1}\right)

    with :math:`\hat m_t, \hat v_t` as in :func:`adam`.

    Args:
      weight_decay: :math:`\lambda`, a float or schedule. Note it is multiplied by the learning
        rate (optax's and PyTorch's convention; the paper's uses a separate schedule).
      mask: which leaves to decay: a pytree of bools with the params' structure, or a function
        ``params -> pytree of bools``; commonly excludes biases and normalisation scales.
      Others: as in :func:`adam`.

    Warning:
      Adam with an L2 penalty in the loss is *not* AdamW: there the penalty's gradient is divided
      by :math:`\sqrt{\hat v_t}`, so weights with large gradients are barely decayed.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxnet import optim
      >>> params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
      >>> opt = optim.adamw(1e-3, weight_decay=0.1,
      ...                   mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
      >>> state = opt.init(params)
      >>> zeros = jax.tree.map(jnp.zeros_like, params)
      >>> updates, state = opt.update(zeros, state, params)
      >>> updates["b"], updates["w"][0]  # only the matrix decays: -lr * weight_decay * w
      (Array([-0., -0.], dtype=float32), Array([-0.0001, -0.0001], dtype=float32))

    References:
      Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    return named(
        "adamw",
        lambda: chain(
            scale_by_adam(
                b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov
            ),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        ),
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""NAdam: Adam with Nesterov momentum -- the first moment looks one step ahead.

    .. math::
        \hat m_t = \frac{\beta_1 m_t}{1-\beta_1^{t+1}} + \frac{(1-\beta_1) g_t}{1-\beta_1^t},
        \qquad \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t +
        \epsilon_{root}} + \epsilon}

    Same as ``adam(..., nesterov=True)`` (and ``optax.nadam``).

    Warning:
      Dozat's Algorithm 2 also multiplies :math:`\hat v_t` by :math:`\beta_2` and uses a
      momentum schedule; like optax, this omits both. PyTorch's NAdam keeps the schedule, so it
      differs.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.nadam(learning_rate=0.1)
      >>> state = opt.init(jnp.zeros(1))
      >>> updates, state = opt.update(jnp.array([2.0]), state)
      >>> # larger than Adam's first step (0.1): the look-ahead term
      >>> [round(float(u), 4) for u in updates]
      [-0.1474]

    References:
      Dozat, "Incorporating Nesterov Momentum into Adam", ICLR workshop 2016.
    """
    return named(
        "nadam",
        lambda: chain(
            scale_by_adam(
                b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=True
            ),
            scale_by_learning_rate(learning_rate),
        ),
    )


def adamax(
    learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    r"""AdaMax: Adam with the root-mean-square replaced by a decaying maximum of ``|g|``.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        u_t = \max(|g_t| + \epsilon, \beta_2 u_{t-1}), \quad
        \theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}\,\frac{m_t}{u_t}

    Warning:
      Here (optax) ``eps`` is added to :math:`|g_t|` inside the max; PyTorch adds it the same way,
      the paper has no ``eps``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.adamax(learning_rate=0.1)
      >>> state = opt.init(jnp.zeros(1))
      >>> updates, state = opt.update(jnp.array([5.0]), state)
      >>> [round(float(u), 4) for u in updates]
      [-0.1]

    References:
      Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.1.
    """
    return named(
        "adamax",
        lambda: chain(
            scale_by_adamax(b1=b1, b2=b2, eps=eps), scale_by_learning_rate(learning_rate)
        ),
    )


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-3,
    mask: MaskOrFn = None,
) -> GradientTransformation:
    r"""Lion: step by the sign of an interpolation of momentum and gradient, plus weight decay.

    .. math::
        c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        \theta_t = \theta_{t-1} - \eta\,(\operatorname{sign}(c_t) + \lambda\theta_{t-1}),
        \qquad m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

    Every coordinate moves by :math:`\pm\eta`, so use a learning rate 3-10x smaller than for
    AdamW. Only one moment is stored (half Adam's memory).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.lion(learning_rate=0.01, weight_decay=0.0)
      >>> params = jnp.array([1.0, 1.0])
      >>> state = opt.init(params)
      >>> updates, state = opt.update(jnp.array([5.0, -1e-3]), state, params)
      >>> updates
      Array([-0.01,  0.01], dtype=float32)

    References:
      Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
    """
    return named(
        "lion",
        lambda: chain(
            scale_by_lion(b1=b1, b2=b2, mu_dtype=mu_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        ),
    )


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: MaskOrFn = None,
) -> GradientTransformation:
    r"""LAMB: AdamW's direction rescaled per leaf (layer) by ``||param|| / ||direction||``.

    .. math::
        r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon} + \lambda
        \theta_{t-1}, \qquad
        \theta_t = \theta_{t-1} - \eta\, \frac{\|\theta_{t-1}\|}{\|r_t\|}\, r_t

    Each layer's step is a fixed fraction :math:`\eta` of its weight norm, which keeps very
    large batches stable. The ratio is 1 where a norm is zero.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxnet import optim
      >>> opt = optim.lamb(learning_rate=0.1)
      >>> params = jnp.array([3.0, 4.0])  # norm 5
      >>> state = opt.init(params)
      >>> updates, state = opt.update(jnp.array([1.0, 1.0]), state, params)
      >>> jnp.linalg.norm(updates).round(3)  # 0.1 * 5
      Array(0.5, dtype=float32)

    References:
      You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
      ICLR 2020.
    """
    return named(
        "lamb",
        lambda: chain(
            scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root),
            add_decayed_weights(weight_decay=weight_decay, mask=mask),
            scale_by_trust_ratio(),
            scale_by_learning_rate(learning_rate),
        ),
    )


def lbfgs(
    learning_rate: ScalarOrSchedule | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: Any = "zoom",
) -> GradientTransformation:
    r"""L-BFGS: a quasi-Newton direction (:func:`scale_by_lbfgs`) and a line search on its length.

    .. math:: w_{k+1} = w_k - \eta_k P_k g_k

    with :math:`P_k` the limited-memory inverse-Hessian approximation and :math:`\eta_k` from
    the line search (or ``learning_rate`` without one). A deterministic, full-batch method:
    ``update`` takes optax's extra arguments ``value``, ``grad`` and ``value_fn``
    (``value_fn(params) -> loss``), which the line search evaluates.

    Args:
      learning_rate: a fixed step before the line search (``None``: 1, optax's default).
      memory_size: how many past differences approximate the inverse Hessian.
      scale_init_precond: scale the initial approximation by the latest curvature.
      linesearch: ``"zoom"`` (optax's ``scale_by_zoom_linesearch`` with 20 steps, the strong
        Wolfe conditions; optax's default), any line-search transformation, or ``None``.

    Example::

        opt = optim.lbfgs()
        state = opt.init(params)
        value, grad = jax.value_and_grad(f)(params)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
        params = optim.apply_updates(params, updates)

    References:
      Nocedal and Wright, "Numerical Optimization", 1999, Algorithm 7.5.
    """
    if linesearch == "zoom":
        import optax

        linesearch = optax.scale_by_zoom_linesearch(
            max_linesearch_steps=20, initial_guess_strategy="one"
        )

    def build():
        rules = [scale_by_lbfgs(memory_size=memory_size, scale_init_precond=scale_init_precond)]
        if learning_rate is None:
            rules.append(scale(-1.0))
        else:
            rules.append(scale_by_learning_rate(learning_rate))
        if linesearch is not None:
            rules.append(linesearch)
        return chain(*rules)

    return named("lbfgs", build)
