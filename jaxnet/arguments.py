"""What jaxnet's command lines share: option types, a parser whose errors are one line, and the
output folder check. The ``jaxnet`` command, ``jaxnet.demo`` and ``jaxnet.studies`` import them
from here, so no module needs to import the command line itself.

>>> parser = Parser(prog="demo")
>>> _ = parser.add_argument("--epochs", type=count(1), default=30)
>>> _ = parser.add_argument("--lr", type=number(0), default=1e-3)
>>> parser.parse_args(["--epochs", "5", "--lr", "0.1"])
Namespace(epochs=5, lr=0.1)
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from jaxnet.errors import ConfigError


def count(low: int = 1):
    """An argparse type: an integer ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "count"
    return parse


def number(low: float | None = None, high: float | None = None, *, high_open: bool = False):
    """An argparse type: a finite number in ``[low, high]`` (``[low, high)`` if ``high_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or (low is not None and value < low) or too_high:
            ends = f"[{'-inf' if low is None else f'{low:g}'}, "
            ends += f"{'inf' if high is None else f'{high:g}'}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be a finite number in {ends}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``jaxnet: error: ...``, and status 2."""

    def error(self, message: str):
        self.exit(2, f"jaxnet: error: {message} (see {self.prog} --help)\n")


def output_folder(path, option: str = "--out") -> Path:
    """``path`` as a folder that exists (created if needed), or a ConfigError naming ``option``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file; give a folder for the outputs", ("cli",))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or error
        raise ConfigError(f"{option} {path}: cannot create it ({reason})", ("cli",)) from None
    return path
