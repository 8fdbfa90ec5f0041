"""The logged quantity a callback watches (``EarlyStopping``, ``ReduceLROnPlateau``): its name,
whether smaller or larger is better, and the best value so far."""

from __future__ import annotations

import math

from jaxnet.errors import ConfigError, check_range
from jaxnet.metrics import check_mode, direction, is_better


class Monitored:
    """``logs[monitor]`` watched for improvement by more than ``min_delta``.

    ``mode``: ``"min"``, ``"max"`` or ``"auto"`` (by name, :func:`jaxnet.metrics.direction`:
    losses and errors go down, accuracies up). ``owner`` names the callback in errors.

    >>> watched = Monitored("val_accuracy", owner="EarlyStopping")
    >>> watched.mode, watched.improved({"val_accuracy": 0.5}), watched.best
    ('max', True, 0.5)
    >>> watched.improved({"val_accuracy": 0.4}), watched.best
    (False, 0.5)
    """

    def __init__(self, monitor: str, mode: str = "auto", min_delta: float = 0.0, *, owner: str):
        check_range(owner, "min_delta", min_delta, 0.0)
        if mode != "auto":
            check_mode(mode, owner)
        self.name, self.owner, self.min_delta = monitor, owner, min_delta
        self.mode = direction(monitor) if mode == "auto" else mode
        self.reset()

    def reset(self) -> None:
        """Forget the best value (a new run)."""
        self.best = math.inf if self.mode == "min" else -math.inf

    def value(self, logs: dict) -> float:
        """``logs[monitor]``, or an error listing the logged names."""
        if self.name not in logs:
            raise ConfigError(
                f"monitor={self.name!r} is not logged; logged names are {sorted(logs)} "
                "(val_* names need validation_data or validation_split)",
                (self.owner,),
            )
        return float(logs[self.name])

    def improved(self, logs: dict) -> bool:
        """Whether ``logs[monitor]`` beats the best value; if so it becomes the best."""
        value = self.value(logs)
        if is_better(value, self.best, self.mode, self.min_delta):
            self.best = value
            return True
        return False
