"""Errors raised by jaxnet: each names the layer (or argument), the expected and the received value.

All subclass :class:`ValueError` or :class:`TypeError`, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


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


def rescope(error: JaxnetError, parent: str, child: str) -> JaxnetError:
    """Re-label an error raised in ``child`` (named first in ``error.path``) under ``parent``."""
    error.path = (parent, child) + error.path[1:]
    return error


def check_range(
    owner: str, name: str, value, low=None, high=None, *, high_open=False, low_open=False
):
    """Raise :class:`ConfigError` unless ``low <= value <= high`` (ends open where asked)."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        raise ConfigError(f"{name} must be in {interval}, got {value!r}", (owner,))
    return value
