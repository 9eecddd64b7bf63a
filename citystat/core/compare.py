"""Comparisons with a reference period (the period before, the same period last year)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from citystat.core.periods import same_period_last_year, shift_period


@dataclass(frozen=True)
class Comparison:
    """``current`` against ``reference``.

    ``delta`` = current − reference; ``pct_change`` = delta / |reference| (a ratio: 0.05 is
    +5 %), None when the reference is 0. ``better`` is True/False by the metric's direction
    and None when the direction is neutral, a value is missing, or nothing changed (no change
    is neither better nor worse, so the UI shows no green or red arrow).
    """

    current: float | None
    reference: float | None
    delta: float | None
    pct_change: float | None
    better: bool | None


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def compare(current: float | None, reference: float | None, direction: str) -> Comparison:
    """Compare ``current`` with ``reference`` for a metric with ``direction``.

    >>> compare(0.9, 0.8, "higher").better, compare(0.9, 0.8, "lower").better
    (True, False)
    >>> round(compare(110.0, 100.0, "neutral").pct_change, 6)
    0.1
    """
    if direction not in ("higher", "lower", "neutral"):
        raise ValueError(f"direction must be higher, lower or neutral, got {direction!r}")
    if _missing(current) or _missing(reference):
        cur = None if _missing(current) else current
        ref = None if _missing(reference) else reference
        return Comparison(cur, ref, None, None, None)
    assert current is not None and reference is not None
    delta = current - reference
    pct = delta / abs(reference) if reference != 0 else None
    better: bool | None
    if direction == "neutral" or delta == 0:
        better = None
    elif direction == "higher":
        better = delta > 0
    else:
        better = delta < 0
    return Comparison(current, reference, delta, pct, better)


def compare_with_prior_and_last_year(
    values: Mapping[date, float | None],
    start: date,
    grain: str,
    direction: str,
    fy_start_month: int = 7,
) -> tuple[Comparison, Comparison]:
    """``(vs the period before, vs the same period last year)`` for the period at ``start``.

    ``values`` maps period starts to values at ``grain``; absent periods count as missing.
    """
    current = values.get(start)
    prior = values.get(shift_period(start, grain, -1, fy_start_month))
    last_year = values.get(same_period_last_year(start, grain, fy_start_month))
    return compare(current, prior, direction), compare(current, last_year, direction)
