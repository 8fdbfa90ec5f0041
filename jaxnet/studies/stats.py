"""Statistics of a study: mean, standard error, Student-t interval, ranking with ties.

Pure Python/NumPy, no SciPy: the t-distribution's CDF for an integer number of degrees of freedom
is a finite trigonometric sum (Abramowitz and Stegun, 26.7.3-4), and its quantile is found by
bisection on it.

>>> summarize([0.96, 0.97, 0.95, 0.97])
Summary(mean=0.962..., standard_error=0.00478..., low=0.9472..., high=0.9777..., n=4)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jaxnet.errors import ConfigError
from jaxnet.metrics import check_mode


class Summary(NamedTuple):
    """``mean ± standard_error`` of ``n`` values and the t-interval ``[low, high]``."""

    mean: float
    standard_error: float
    low: float
    high: float
    n: int


def standard_error(values) -> float:
    """``std(values, ddof=1) / sqrt(n)``; ``nan`` for fewer than 2 values."""
    values = np.asarray(values, np.float64)
    if values.size < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(values.size))


def t_two_sided_probability(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's ``T`` with ``df`` (integer >= 1) degrees of freedom.

    With ``theta = atan(t / sqrt(df))`` (A&S 26.7.3-4): for odd ``df`` it is
    ``2/pi (theta + sin(theta) sum_k c_k cos^(2k+1)(theta))``, for even ``df``
    ``sin(theta) sum_k d_k cos^(2k)(theta)``, both sums finite.
    """
    if df < 1 or int(df) != df:
        raise ConfigError(f"degrees of freedom must be an integer >= 1, got {df}", ("studies",))
    if t <= 0:
        return 0.0
    if math.isinf(t):
        return 1.0
    theta = math.atan(t / math.sqrt(df))
    sin, cos = math.sin(theta), math.cos(theta)
    if df % 2 == 1:
        total, term = 0.0, cos  # cos, 2/3 cos^3, (2*4)/(3*5) cos^5, ... up to cos^(df-2)
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= cos * cos * (2 * k) / (2 * k + 1)
        return 2.0 / math.pi * (theta + sin * total)
    total, term = 0.0, 1.0  # 1, 1/2 cos^2, (1*3)/(2*4) cos^4, ... up to cos^(df-2)
    for k in range(1, df // 2 + 1):
        total += term
        term *= cos * cos * (2 * k - 1) / (2 * k)
    return sin * total


def t_critical(df: int, confidence: float = 0.95) -> float:
    """The ``t`` with ``P(|T| <= t) = confidence`` (e.g. 12.706 for ``df=1``, 2.262 for 9)."""
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence}", ("studies",))
    low, high = 0.0, 1.0
    while t_two_sided_probability(high, df) < confidence:
        low, high = high, 2.0 * high
    for _ in range(100):  # bisection to float precision
        middle = 0.5 * (low + high)
        if t_two_sided_probability(middle, df) < confidence:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, standard error and the ``confidence`` t-interval ``mean ± t_{n-1} * se``.

    With one value the standard error is ``nan`` and the interval is ``(-inf, inf)`` (nothing is
    known about the spread). Non-finite values (a diverged seed) make the mean non-finite.
    """
    values = np.asarray(values, np.float64).reshape(-1)
    if values.size == 0:
        raise ConfigError("summarize needs at least one value", ("studies",))
    mean = float(np.mean(values))
    se = standard_error(values)
    if values.size < 2:
        return Summary(mean, se, -math.inf, math.inf, 1)
    half = t_critical(values.size - 1, confidence) * se
    return Summary(mean, se, mean - half, mean + half, int(values.size))


def clearly_better(a: Summary, b: Summary, mode: str = "max") -> bool:
    """``a`` beats ``b`` with non-overlapping intervals (a finite mean beats a non-finite one)."""
    if not math.isfinite(a.mean):
        return False
    if not math.isfinite(b.mean):
        return True
    return a.low > b.high if mode == "max" else a.high < b.low


def rank_with_ties(summaries: Sequence[Summary], mode: str = "max") -> list[int]:
    """Rank = 1 + the number of cells *clearly better* (non-overlapping t-intervals).

    Cells whose intervals overlap tie. When the ties form clean groups this is standard
    competition ranking ("1, 2, 2, 4"); when overlap is not transitive (A overlaps B, B overlaps
    C, A is clearly above C) each cell still gets the rank its own evidence supports (1, 1, 2).
    A non-finite mean (diverged training) ranks below every finite one.

    >>> rank_with_ties([Summary(0.9, 0, 0.89, 0.91, 8), Summary(0.8, 0, 0.7, 0.85, 8),
    ...                 Summary(0.82, 0, 0.8, 0.84, 8)])
    [1, 2, 2]
    """
    check_mode(mode, "studies")
    return [1 + sum(clearly_better(other, s, mode) for other in summaries) for s in summaries]
