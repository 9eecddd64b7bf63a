"""Dated targets: which target is in force for a period.

Targets change on dates ("0.80 from 2023-07-01, 0.85 from 2025-07-01"), usually at the start
of a fiscal year. A period is judged against the target in force on its *first day*
(``period_start``), not its last: a week or month is one unit of reporting, so it must carry
one target, and the target in force when the period began is the one the department was
planning against while doing the work. Using the first day also makes the answer the same at
every grain for periods that start on the change date, and a target that starts mid-period
takes effect from the next period, never retroactively.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date


def target_for(targets: Sequence[tuple[date, float | None]], period_start: date) -> float | None:
    """The value of the latest target whose start date is on or before ``period_start``.

    ``targets`` are ``(from_date, value)`` pairs in any order. A later entry with value
    ``None`` ends the previous target (no target from then on). Returns ``None`` when no
    target has started yet.

    >>> ts = [(date(2025, 7, 1), 0.85), (date(2023, 7, 1), 0.80)]
    >>> target_for(ts, date(2025, 6, 30)), target_for(ts, date(2025, 7, 1))
    (0.8, 0.85)
    >>> target_for(ts, date(2020, 1, 1)) is None
    True
    """
    best_from: date | None = None
    best_value: float | None = None
    for starts, value in targets:
        if starts <= period_start and (best_from is None or starts >= best_from):
            best_from, best_value = starts, value
    if best_value is not None and isinstance(best_value, float) and math.isnan(best_value):
        return None
    return best_value
