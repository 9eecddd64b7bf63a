"""Assurance: can the process, as it runs, meet its target?

Variation (is there a signal?) says whether something changed. Assurance, as in the NHS
"Making Data Count" charts, compares the target with the process limits of the current phase:
the limits are where routine values fall, so

* target outside the limits on the *bad* side of the whole band (higher is better and the
  target is at or below the lower limit): every routine value meets it -- **consistently
  meets**;
* target outside the limits on the *good* side (higher is better and the target is above the
  upper limit): no routine value reaches it -- **consistently misses**, and only a change to
  the process will help;
* target inside the limits: the KPI meets it some periods and misses it others at random --
  **hit and miss**. Praise or blame from period to period is noise; a change to the process
  is needed, not more effort.

Mirror all of this for lower is better. There is no assurance for a neutral KPI, without a
target, or without limits (too few values for a baseline).

Boundary cases, decided so that "meets" means what status means (``>=`` the target when
higher is better, ``<=`` when lower is better):

* target exactly on the limit on the bad side (higher is better, target == lower limit):
  every routine value is at or above the target -- **consistently meets**;
* target exactly on the limit on the good side (higher is better, target == upper limit):
  routine values are at most the target and a value exactly on a natural limit is practically
  never seen -- **consistently misses**;
* except when that good-side limit was clipped to a physical bound (``floor``/``ceiling``,
  e.g. 100 %): values pile up at the bound, so a target of exactly 100 % is reached in some
  periods -- **hit and miss**. Pass the same ``floor``/``ceiling`` the limits were clipped to.

>>> assurance_for(lower=0.80, upper=0.90, target=0.95, direction="higher")
'misses'
>>> assurance_for(lower=0.80, upper=0.90, target=0.80, direction="higher")
'meets'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from citystat.core.spc import PointResult

MEETS, MISSES, HIT_AND_MISS = "meets", "misses", "hit_and_miss"
NO_TARGET, NEUTRAL, NOT_ENOUGH_DATA = "no_target", "neutral", "not_enough_data"
ASSURED = (MEETS, MISSES, HIT_AND_MISS)

# Short labels for a table column beside status.
ASSURANCE_LABELS = {
    MEETS: "Consistently meets target",
    MISSES: "Consistently misses target",
    HIT_AND_MISS: "Hit and miss",
    NO_TARGET: "No target",
    NEUTRAL: "No target (watched)",
    NOT_ENOUGH_DATA: "Not enough data",
}

ASSURANCE_SENTENCES = {
    MEETS: ("Consistently meets the target: even the worst routine value (the process limit on "
            "the bad side) meets it, so the process as it runs will keep meeting it."),
    MISSES: ("Consistently misses the target: the target lies beyond the process limits, so as the "
             "process runs it will not be met — only a change to the process will help."),
    HIT_AND_MISS: ("Hit and miss: the target lies inside the process limits, so the KPI will meet it "
                   "in some periods and miss it in others at random — a change to the process is "
                   "needed to meet it reliably, not more effort."),
    NO_TARGET: "No assurance: the KPI has no target.",
    NEUTRAL: "No assurance: the KPI is watched without a target (neither higher nor lower is better).",
    NOT_ENOUGH_DATA: "No assurance yet: too few values to compute process limits.",
}


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def assurance_for(
    lower: float | None,
    upper: float | None,
    target: float | None,
    direction: str,
    *,
    floor: float | None = None,
    ceiling: float | None = None,
) -> str:
    """``"meets"``, ``"misses"`` or ``"hit_and_miss"``, else why not (see the module doc).

    ``lower``/``upper`` are the current phase's process limits as drawn (clipped); the reasons
    for no assurance are ``"neutral"``, ``"no_target"`` and ``"not_enough_data"``, checked in
    that order.

    >>> assurance_for(0.5, 1.0, 1.0, "higher", ceiling=1.0)  # upper clipped to 100 %
    'hit_and_miss'
    >>> assurance_for(2.0, 9.0, 1.0, "lower")
    'misses'
    """
    if direction not in ("higher", "lower", "neutral"):
        raise ValueError(f"direction must be higher, lower or neutral, not {direction!r}")
    if direction == "neutral":
        return NEUTRAL
    if _missing(target):
        return NO_TARGET
    if _missing(lower) or _missing(upper):
        return NOT_ENOUGH_DATA
    assert target is not None and lower is not None and upper is not None
    if direction == "higher":
        if target <= lower:
            return MEETS
        if target > upper or (target == upper and upper != ceiling):
            return MISSES
        return HIT_AND_MISS
    if target >= upper:
        return MEETS
    if target < lower or (target == lower and lower != floor):
        return MISSES
    return HIT_AND_MISS


def assurance_now(
    points: Sequence["PointResult"],
    target: float | None,
    direction: str,
    *,
    floor: float | None = None,
    ceiling: float | None = None,
) -> str:
    """Assurance with the limits of the latest point's phase (the current process).

    ``target`` is the target in force for the latest period. A latest phase too short for
    limits gives ``"not_enough_data"``, even if an older phase had limits: the old process is
    not the one running now.
    """
    if not points:
        return assurance_for(None, None, target, direction)
    last = points[-1]
    return assurance_for(last.lower, last.upper, target, direction, floor=floor, ceiling=ceiling)


def describe_assurance(kind: str) -> str:
    """The plain sentence for an assurance result.

    >>> describe_assurance("hit_and_miss").split(":")[0]
    'Hit and miss'
    """
    return ASSURANCE_SENTENCES[kind]
