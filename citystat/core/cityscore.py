"""Boston-style CityScore: one number for the city.

Each metric's score is actual ÷ target when higher is better and target ÷ actual when lower
is better, so 1.0 means on target and above 1 means beating it, whichever the direction. The
CityScore is the plain mean of the available metric scores (Boston computes it for day, week,
month and quarter windows).

:func:`boston_score` reproduces the formulas Boston names in its published ``metric_logic``
column (Analyze Boston "CityScore Full Metric List"). In that data set the columns that feed
each formula are:

==============================================================  ===============  ==================
metric_logic                                                    numerator_value  denominator_value
==============================================================  ===============  ==================
``sum(numerator_value)/sum(denominator_value)/target``          successes        cases
``average(sum(numerator_value)/sum(denominator_value))/target`` successes/day    cases/day
``target / median``                                             the target       the median
``historical_average / current_average``                        historical mean  current mean
``current_average / historical_average``                        current mean     historical mean
==============================================================  ===============  ==================

e.g. 311 call centre, week: 4686 / 5339 / 0.95 = 0.92389 (the published week score).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

SUM_RATIO_OVER_TARGET = "sum(numerator_value)/sum(denominator_value)/target"
MEAN_RATIO_OVER_TARGET = "average(sum(numerator_value)/sum(denominator_value))/target"
TARGET_OVER_MEDIAN = "target / median"
HISTORICAL_OVER_CURRENT = "historical_average / current_average"
CURRENT_OVER_HISTORICAL = "current_average / historical_average"

BOSTON_FORMULAS: tuple[str, ...] = (
    SUM_RATIO_OVER_TARGET,
    MEAN_RATIO_OVER_TARGET,
    TARGET_OVER_MEDIAN,
    HISTORICAL_OVER_CURRENT,
    CURRENT_OVER_HISTORICAL,
)

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


def _total(x: Number | Sequence[Number]) -> float | None:
    if isinstance(x, (int, float)) or x is None:
        return None if _missing(x) else float(x)
    parts = [p for p in x if not _missing(p)]
    return float(sum(parts)) if parts else None  # type: ignore[arg-type]


def boston_score(
    metric_logic: str,
    numerator: Number | Sequence[Number],
    denominator: Number | Sequence[Number],
    target: Number = None,
) -> float | None:
    """Score one Boston metric for one window with the formula named by ``metric_logic``.

    ``numerator`` and ``denominator`` take Boston's ``numerator_value`` / ``denominator_value``
    (see the module docstring for what they hold under each formula). For the two
    ``.../target`` formulas they may also be sequences of daily values: the ``sum`` formula
    sums them; the ``average`` formula averages the daily ratios (days with no cases are
    skipped). For ``target / median`` Boston publishes the target as the numerator; if the
    numerator is missing, ``target`` is used. Returns None when the source lacks a value or a
    division by zero would be needed (Boston publishes no score then either).
    """
    logic = " ".join(metric_logic.split())
    if logic == SUM_RATIO_OVER_TARGET:
        ratio = _divide(_total(numerator), _total(denominator))
        return _divide(ratio, target)
    if logic == MEAN_RATIO_OVER_TARGET:
        nums = [numerator] if not isinstance(numerator, Sequence) else list(numerator)
        dens = [denominator] if not isinstance(denominator, Sequence) else list(denominator)
        if len(nums) != len(dens):
            raise ValueError(
                f"{metric_logic!r}: {len(nums)} daily numerators but {len(dens)} denominators"
            )
        ratios = [r for r in (_divide(a, b) for a, b in zip(nums, dens)) if r is not None]
        mean = sum(ratios) / len(ratios) if ratios else None
        return _divide(mean, target)
    if isinstance(numerator, Sequence) or isinstance(denominator, Sequence):
        raise ValueError(f"{metric_logic!r} takes single numbers, not sequences")
    if logic == TARGET_OVER_MEDIAN:
        published_target = target if _missing(numerator) else numerator
        return _divide(published_target, denominator)
    if logic in (HISTORICAL_OVER_CURRENT, CURRENT_OVER_HISTORICAL):
        # Boston's numerator already holds the first-named average, so both are num / den.
        return _divide(numerator, denominator)
    raise ValueError(
        f"unknown Boston metric_logic {metric_logic!r}; expected one of: {', '.join(BOSTON_FORMULAS)}"
    )
