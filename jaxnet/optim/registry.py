"""Optimizers by name: the one table the command line, studies and configs all read.

>>> from jaxnet import optim
>>> opt = optim.get("nesterov", 0.01)  # sgd(0.01, momentum=0.9, nesterov=True)
>>> "adamw" in optim.NAMES
True
"""

from __future__ import annotations

import inspect
from typing import Any

from jaxnet.errors import ConfigError
from jaxnet.optim import alias
from jaxnet.optim.base import GradientTransformation, ScalarOrSchedule

# name -> (optimizer, its defaults that differ from the function's own)
_TABLE = {
    "sgd": (alias.sgd, {}),
    "momentum": (alias.sgd, {"momentum": 0.9}),
    "nesterov": (alias.sgd, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (alias.adagrad, {}),
    "rmsprop": (alias.rmsprop, {}),
    "adadelta": (alias.adadelta, {}),
    "adam": (alias.adam, {}),
    "adamw": (alias.adamw, {}),
    "nadam": (alias.nadam, {}),
    "adamax": (alias.adamax, {}),
    "lion": (alias.lion, {}),
    "lamb": (alias.lamb, {}),
}

NAMES: tuple[str, ...] = tuple(_TABLE)
"""The names :func:`get` knows (also the command line's ``--optimizer`` choices)."""


def get(name: str, learning_rate: ScalarOrSchedule, **kwargs: Any) -> GradientTransformation:
    """The optimizer called ``name`` (one of :data:`NAMES`) with this learning rate.

    ``momentum`` and ``nesterov`` are :func:`sgd` with ``momentum=0.9`` (and ``nesterov=True``);
    every other name is the function of that name in :mod:`jaxnet.optim`, with its defaults.

    Args:
      name: an optimizer name from :data:`NAMES`.
      learning_rate: a float, a JAX array (e.g. one rate per model of a ``vmap``-ped grid) or a
        schedule ``count -> rate``.
      **kwargs: the optimizer's other arguments (``momentum=0.5``, ``weight_decay=1e-2``, ...).

    Raises:
      ConfigError: an unknown name (the message lists :data:`NAMES`), or an argument the
        optimizer does not take (the message lists those it takes).
      OptimizerError: an argument out of range.

    Example:
      >>> from jaxnet import optim
      >>> optim.get("adamw", 1e-3, weight_decay=0.1)  # doctest: +ELLIPSIS
      GradientTransformation(init=<function ...>, update=<function ...>)
    """
    if name not in _TABLE:
        raise ConfigError(f"unknown optimizer {name!r}; choose from {list(NAMES)}", ("optim.get",))
    factory, defaults = _TABLE[name]
    takes = [p for p in inspect.signature(factory).parameters if p != "learning_rate"]
    unknown = sorted(set(kwargs) - set(takes))
    if unknown:
        raise ConfigError(
            f"{name} takes no argument {', '.join(map(repr, unknown))}; it takes {takes}",
            ("optim.get",),
        )
    return factory(learning_rate, **{**defaults, **kwargs})
