"""Boston-style CityScore: one number for the city.

Each metric's score is actual ÷ target when higher is better and target ÷ actual when lower
is better, so 1.0 means on target and above 1 means beating it, whichever the direction. The
CityScore is the plain mean of the available metric scores (Boston computes it for day, week,
month and quarter windows).

tests/support/boston.py reproduces the formulas Boston names in its published ``metric_logic``
column, and the tests check these scores against Boston's published numbers with it.

e.g. 311 call centre, week: 4686 / 5339 / 0.95 = 0.92389 (the published week score).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Number = float | int | None


def _missing(x: Number) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _divide(a: Number, b: Number) -> float | None:
    """a / b, or None when either is missing or b is zero (Boston publishes no score then)."""
    if _missing(a) or _missing(b) or b == 0:
        return None
    return float(a) / float(b)  # type: ignore[arg-type]


def metric_score(actual: Number, target: Number, direction: str) -> float | None:
    """actual/target (higher is better) or target/actual (lower is better).

    None when the direction is neutral, a value is missing, the division is impossible
    (zero divisor), or a value is negative (a ratio of a negative and a positive number says
    nothing about performance).

    >>> metric_score(0.76, 0.80, "higher"), metric_score(7.5, 6.0, "lower")  # 7.5 min vs 6
    (0.95, 0.8)
    """
    if direction not in ("higher", "lower", "neutral"):
        raise ValueError(f"direction must be higher, lower or neutral, got {direction!r}")
    if direction == "neutral" or _missing(actual) or _missing(target):
        return None
    if actual < 0 or target < 0:  # type: ignore[operator]
        return None
    if direction == "higher":
        return _divide(actual, target)
    return _divide(target, actual)


def city_score(scores: Iterable[Number]) -> float | None:
    """Mean of the available metric scores (missing ones are left out, not counted as 0).

    >>> city_score([1.2, None, 0.8, float("nan")])
    1.0
    """
    present = [float(s) for s in scores if not _missing(s)]  # type: ignore[arg-type]
    return sum(present) / len(present) if present else None
