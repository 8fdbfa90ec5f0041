"""``fit``'s ``ema=`` and ``accumulate=``: the optimizer wrapped to average weights or gradients.

- ``accumulate=k``: :func:`jaxnet.optim.multi_steps` — the optimizer steps every ``k`` batches on
  the mean of their gradients (a ``k`` times larger batch in the memory of one).
- ``ema=decay``: the optimizer state also carries the exponential moving average of the weights
  after every update (:func:`with_ema`, on :func:`jaxnet.optim.ema`); validation scores the
  average (:func:`evaluating`) and ``fit`` returns it as the train state's ``params``
  (:class:`SwapEMAWeights`), as Keras does with ``use_ema=True`` (and ``SwapEMAWeights`` for
  evaluation). Checkpoints hold the trained weights and the average (in ``opt_state``), so a
  resumed run continues both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from jaxnet import optim
from jaxnet.errors import OptimizerError, check_range
from jaxnet.optim.accumulation import find_state
from jaxnet.optim.base import NO_PARAMS_MSG
from jaxnet.optim.transforms import DECAY
from jaxnet.train.callbacks import Callback, Loop


class WithEmaState(NamedTuple):
    """The wrapped optimizer's state and the average of the weights (an ``EmaState``)."""

    inner: Any
    average: optim.EmaState


def with_ema(optimizer, decay: float, debias: bool = True) -> optim.GradientTransformation:
    r"""``optimizer`` whose state also carries the EMA of the weights after each update.

    With :math:`w_t` the weights after update :math:`t`:
    :math:`e_t = \beta e_{t-1} + (1 - \beta) w_t`, :math:`e_0 = 0`, and the average is
    :math:`e_t / (1 - \beta^t)` (``debias``): the mean of :math:`w_1..w_t` weighted by
    :math:`\beta^{t-i}` (so after one update it is :math:`w_1`). This is ``optax.ema`` applied
    to the weights; Keras's ``use_ema`` starts from :math:`w_1` instead of debiasing, which
    weighs :math:`w_1` by :math:`\beta^{t-1}` rather than :math:`(1-\beta)\beta^{t-1}/(1-\beta^t)`.
    Read it with :func:`ema_params`.
    """
    check_range("with_ema", "decay", decay, **DECAY)
    optimizer = optim.with_extra_args_support(optimizer)
    average = optim.ema(decay, debias=debias)

    def init(params):
        return WithEmaState(optimizer.init(params), average.init(params))

    def update(updates, state, params=None, **extra_args):
        if params is None:
            raise OptimizerError(NO_PARAMS_MSG, ("with_ema",))
        updates, inner = optimizer.update(updates, state.inner, params, **extra_args)
        _, ema_state = average.update(optim.apply_updates(params, updates), state.average)
        return updates, WithEmaState(inner, ema_state)

    return optim.GradientTransformation(init, update)


def ema_params(opt_state, decay: float, debias: bool = True):
    """The average of the weights that a :func:`with_ema` optimizer state carries."""
    return optim.ema_value(opt_state, decay, debias)


def wrap_optimizer(optimizer, *, ema: float | None = None, accumulate: int = 1):
    """``optimizer`` with ``fit``'s ``ema`` and ``accumulate`` applied (either may be off).

    The average is taken over the optimizer's steps, so with both it is updated once every
    ``accumulate`` batches, when the weights change.
    """
    if ema is not None:
        optimizer = with_ema(optimizer, ema)
    return optimizer if accumulate == 1 else optim.multi_steps(optimizer, accumulate)


def evaluating(validate: Callable, ema: float | None) -> Callable:
    """``validate(params, state)`` as ``run(train_state)``, on the average when ``ema`` is set."""
    if ema is None:
        return lambda ts: validate(ts.params, ts.state)
    return lambda ts: validate(ema_params(ts.opt_state, ema), ts.state)


class SwapEMAWeights(Callback):
    """At the end of training, put the average of the weights in the train state's ``params``.

    ``fit(ema=decay)`` adds it after the other callbacks, so it averages the state that they
    settled on (the best epoch's, with ``EarlyStopping(restore_best=True)``). The optimizer state
    keeps the average, so ``ema_params(ts.opt_state, decay)`` still reads it.
    """

    def __init__(self, decay: float):
        self.decay = decay

    def on_train_end(self, loop: Loop) -> None:
        ts = loop.train_state
        if int(find_state(ts.opt_state, optim.EmaState).count) > 0:  # an update was averaged
            loop.train_state = ts._replace(params=ema_params(ts.opt_state, self.decay))


def ema_callbacks(ema: float | None) -> list:
    """``[SwapEMAWeights(ema)]``, or ``[]`` without ``ema``."""
    return [] if ema is None else [SwapEMAWeights(ema)]
