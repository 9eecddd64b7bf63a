"""Boston's published CityScore formulas, to check CityStat's scores against Boston's own numbers.

`boston_score` reproduces the formulas Boston names in its published ``metric_logic``
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

from collections.abc import Sequence

from citystat.core.cityscore import Number, _divide, _missing

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
