"""Errors raised by jaxnet: each names the layer (or argument), the expected and the received value.

All subclass :class:`ValueError` or :class:`TypeError` (:class:`WriteError`: :class:`OSError`), so
``except ValueError`` keeps working.
"""

from __future__ import annotations

import operator

import jax
import numpy as np


class JaxnetError(Exception):
    """Base class. ``path`` is the layer path, e.g. ``("mlp", "dense_0")``; empty if no layer."""

    def __init__(self, detail: str, path: tuple[str, ...] = ()):
        super().__init__(detail)
        self.detail = detail
        self.path = tuple(path)

    def __str__(self) -> str:
        where = "/".join(self.path)
        return f"{where}: {self.detail}" if where else self.detail


class ShapeError(JaxnetError, ValueError):
    """An array has the wrong shape for a layer, loss or data set."""


class DTypeError(JaxnetError, TypeError):
    """An array has the wrong dtype (e.g. integers fed to a Dense layer)."""


class DataError(JaxnetError, ValueError):
    """Unusable training data: non-finite values, labels out of range, empty, mismatched lengths."""


class ConfigError(JaxnetError, ValueError):
    """A constructor argument is out of range or unknown (a rate of 1.5, an unknown name)."""


class ArgumentTypeError(ConfigError, TypeError):
    """An argument of the wrong type: a float where a count goes, a string where a function or an
    optimizer goes, one callback where a list goes. Also a :class:`ConfigError` and a
    :class:`TypeError`."""


class OptimizerError(JaxnetError, ValueError):
    """A bad optimizer argument, or gradients that do not match the optimizer state.

    The path names the optimizer and the transformation, e.g.
    ``adam/scale_by_adam: b1 must be in [0, 1), got 1.5``.
    """


class WriteError(JaxnetError, OSError):
    """A file could not be written: a full disk (``ENOSPC``), a file-size limit (``EFBIG``), an
    I/O error (``EIO``), a missing or read-only folder. Names the path and the system's reason;
    ``errno``, ``strerror`` and ``filename`` are set as on the ``OSError`` it replaces, so
    ``except OSError`` keeps working. The file that was there before is unchanged
    (:mod:`jaxnet.atomic`)."""


def rescope(error: JaxnetError, parent: str, child: str) -> JaxnetError:
    """Re-label an error raised in ``child`` (named first in ``error.path``) under ``parent``."""
    error.path = (parent, child) + error.path[1:]
    return error


def check_range(
    owner: str | tuple[str, ...],
    name: str,
    value,
    low=None,
    high=None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    error: type[JaxnetError] = ConfigError,
):
    """Raise ``error`` unless ``low <= value <= high`` (ends open where asked); return ``value``.

    ``None`` for ``low`` or ``high`` means no bound. ``value`` may be a number or an array (checked
    element-wise; NaN is never in range). ``None``, callables (schedules) and traced values are not
    checked: they have no value yet. The error's path is ``owner`` (a name or a path).

    Example:
      >>> check_range("dropout", "rate", 1.5, 0, 1, high_open=True)
      Traceback (most recent call last):
      ...
      jaxnet.errors.ConfigError: dropout: rate must be in [0, 1), got 1.5
    """
    if value is None or callable(value) or isinstance(value, jax.core.Tracer):
        return value
    path = (owner,) if isinstance(owner, str) else tuple(owner)
    interval = (
        f"{'(' if low_open or low is None else '['}{'-inf' if low is None else _number(low)}, "
        f"{'inf' if high is None else _number(high)}{')' if high_open else ']'}"
    )
    try:
        values = np.asarray(value)
        if values.dtype.kind in "USOcMm":  # text, objects, complex, dates: not numbers
            raise TypeError
        values = values.astype(np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise error(f"{name} must be a number in {interval}, got {value!r}", path) from None
    ok = np.ones(values.shape, bool)
    if low is not None:
        ok &= values > low if low_open else values >= low
    if high is not None:
        ok &= values < high if high_open else values <= high
    if not ok.all():
        if np.ndim(value) == 0:
            got = repr(value) if isinstance(value, (int, float)) else _number(values[0])
        else:
            bad = ", ".join(_number(v) for v in values[~ok][:5])
            got = f"[{bad}] (the values out of range, of {values.size})"
        raise error(f"{name} must be in {interval}, got {got}", path)
    return value


def check_int(owner: str | tuple[str, ...], name: str, value, low=None, high=None) -> int:
    """``value`` as an ``int`` if it is an integer (``int``, a NumPy or JAX integer, not a bool)
    in ``[low, high]``; else :class:`ArgumentTypeError` (not an integer) or :class:`ConfigError`
    (out of range). For counts: epochs, batch sizes, units, seeds.

    Example:
      >>> check_int("fit", "epochs", 2.5, 0)
      Traceback (most recent call last):
      ...
      jaxnet.errors.ArgumentTypeError: fit: epochs must be an integer, got 2.5 (float)
    """
    path = (owner,) if isinstance(owner, str) else tuple(owner)
    try:
        if isinstance(value, bool | np.bool_):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        got = f"{value!r} ({type(value).__name__})"
        raise ArgumentTypeError(f"{name} must be an integer, got {got}", path) from None
    check_range(path, name, number, low, high)
    return number


def _number(x) -> str:
    """``1``, ``0.5``, ``1e-08``, ``inf``: a bound or value as a short string."""
    return f"{float(x):g}"
