"""Status colours: is a KPI on track against its target?

The convention (LouieStat, Clear Impact): green = meets the target; yellow = misses it by no
more than 10 % of the target; red = misses it by more; grey = not enough data. The direction
("polarity") says whether higher or lower is better; neutral measures are watched without a
target.

Colours are never the only cue: every status also has a text label, and charts use shapes.
"""

from __future__ import annotations

import math
from enum import StrEnum


class Status(StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    NO_DATA = "no_data"
    NO_TARGET = "no_target"


# Green / yellow / red / grey, picked from the Okabe-Ito colour-blind-safe palette (bluish
# green, amber, vermillion) and darkened so that each has at least 3:1 contrast on white
# (WCAG 2.1 non-text contrast), which the pale Okabe-Ito yellow does not.
STATUS_COLOURS: dict[Status, str] = {
    Status.ON_TRACK: "#007A5E",
    Status.AT_RISK: "#B07D00",
    Status.OFF_TRACK: "#D55E00",
    Status.NO_DATA: "#767676",
    Status.NO_TARGET: "#8C8C8C",
}

STATUS_LABELS: dict[Status, str] = {
    Status.ON_TRACK: "On track",
    Status.AT_RISK: "At risk",
    Status.OFF_TRACK: "Off track",
    Status.NO_DATA: "Not enough data",
    Status.NO_TARGET: "No target",
}

DIRECTIONS = ("higher", "lower", "neutral")

# Values computed as ratios (17/20) and targets typed by people (0.85) differ in the last
# bits; without a little slack a KPI exactly on a boundary would flip colour at random.
_EPSILON = 1e-9


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def status_for(
    value: float | None,
    target: float | None,
    direction: str,
    at_risk_within: float = 0.10,
    at_risk_within_abs: float | None = None,
    n: int | None = None,
    min_n: int | None = None,
) -> Status:
    """The status of ``value`` against ``target`` for a metric with ``direction``.

    Rules, in order:

    1. ``NO_DATA`` when the value is missing (None/NaN) or rests on too few cases
       (``n < min_n``) -- a 100 % on-time rate from 2 requests is not a result.
    2. ``NO_TARGET`` when the direction is ``"neutral"`` or no target is in force.
    3. ``ON_TRACK`` when the value meets the target (``>=`` for higher-is-better,
       ``<=`` for lower-is-better).
    4. ``AT_RISK`` when the shortfall is no more than the tolerance band; ``OFF_TRACK``
       otherwise.

    The band is ``at_risk_within × |target|`` (10 % of the target by default), or
    ``at_risk_within_abs`` in the metric's own units when given (it then replaces the
    relative band). The band uses ``|target|`` so that it is always a positive width: for a
    negative target (e.g. a net backlog change of -50) "within 10 %" means within 5 units.
    A target of 0 (zero traffic deaths) has an empty relative band: any miss is off track.
    Metrics with zero targets that want a yellow zone must set ``at_risk_within_abs``.

    >>> status_for(0.78, 0.85, "higher")   # 0.07 short; band 0.085
    <Status.AT_RISK: 'at_risk'>
    >>> status_for(5.0, 4.0, "lower")      # 1.0 over; band 0.4
    <Status.OFF_TRACK: 'off_track'>
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if _missing(value):
        return Status.NO_DATA
    if min_n is not None and (n is None or n < min_n):
        return Status.NO_DATA
    if direction == "neutral" or _missing(target):
        return Status.NO_TARGET
    assert value is not None and target is not None
    shortfall = target - value if direction == "higher" else value - target
    slack = _EPSILON * max(1.0, abs(target))
    if shortfall <= slack:
        return Status.ON_TRACK
    if at_risk_within_abs is not None:
        if at_risk_within_abs < 0:
            raise ValueError(f"at_risk_within_abs must be >= 0, got {at_risk_within_abs}")
        band = at_risk_within_abs
    else:
        if at_risk_within < 0:
            raise ValueError(f"at_risk_within must be >= 0, got {at_risk_within}")
        band = at_risk_within * abs(target)
    if shortfall <= band + slack:
        return Status.AT_RISK
    return Status.OFF_TRACK
