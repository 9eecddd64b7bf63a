"""Process-behaviour (XmR) charts: telling signal from noise.

Weekly numbers wiggle; reacting to every wiggle wastes the stat session. An XmR chart draws
the natural process limits of routine variation, computed from a baseline:

* moving range ``mR_i = |x_i − x_(i−1)|``; ``mR̄`` = mean moving range;
* centre ``x̄`` = mean of the baseline values;
* natural process limits ``x̄ ± 2.660 × mR̄``; upper range limit ``3.268 × mR̄``.

(2.660 = 3 / d2 with d2 = 1.128 for ranges of two; 3.268 = D4 for n = 2.)

Wheeler's detection rules, all judged against the limits of the point's own phase:

1. a point outside the natural process limits;
2. eight or more successive points on the same side of the centre line (a point exactly on
   the centre line belongs to neither side and breaks the run);
3. three out of four successive points beyond the half-way line between the centre and a
   natural limit (``x̄ ± 1.330 × mR̄``, i.e. 1.5 sigma), all on the same side.

Limits are computed once from a baseline and held fixed: recomputing them every period would
let a sustained shift drag the limits along and hide itself. They are recomputed only at
declared phase breaks (after a change in the process has been confirmed). A lower limit below
a physical floor (0 requests, 0 %) is clipped to the floor, and an upper limit above a
ceiling (100 %) to the ceiling; the half-way lines for rule 3 stay at 1.330 × mR̄ because they
describe the spread of the process, which clipping does not change.

Missing values (None/NaN) are not points. Moving ranges are taken only between two
*adjacent* positions that both hold a value: a gap breaks the chain, because the difference
across a gap spans two periods and would overstate routine variation. For rules 2 and 3 the
missing point is simply absent ("successive" means successive plotted points), so a run
continues across a gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NPL_FACTOR = 2.660  # natural process limits: centre ± 2.660 × mR̄
MR_FACTOR = 3.268  # upper range limit: 3.268 × mR̄
HALF_FACTOR = NPL_FACTOR / 2  # rule 3 lines: centre ± 1.330 × mR̄
RUN_LENGTH = 8  # rule 2


def _present(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


@dataclass(frozen=True)
class Limits:
    """XmR limits computed from a baseline."""

    centre: float
    mr_bar: float
    lower: float
    upper: float
    mr_upper: float

    @property
    def upper_half(self) -> float:
        """Rule-3 line above the centre (half-way to the natural, unclipped upper limit)."""
        return self.centre + HALF_FACTOR * self.mr_bar

    @property
    def lower_half(self) -> float:
        """Rule-3 line below the centre (half-way to the natural, unclipped lower limit)."""
        return self.centre - HALF_FACTOR * self.mr_bar

    def outside(self, value: float) -> bool:
        """True when ``value`` is strictly outside the limits (rule 1)."""
        return value > self.upper or value < self.lower


def moving_ranges(values: Sequence[float | None]) -> list[float | None]:
    """``|x_i − x_(i−1)|`` at each position; None for the first point and next to a gap."""
    out: list[float | None] = [None] * len(values)
    for i in range(1, len(values)):
        a, b = values[i - 1], values[i]
        if _present(a) and _present(b):
            out[i] = abs(float(b) - float(a))  # type: ignore[arg-type]
    return out


def xmr_limits(
    values: Sequence[float | None], floor: float | None = None, ceiling: float | None = None
) -> Limits:
    """XmR limits from baseline ``values`` (missing values skipped; see the module doc).

    >>> xmr_limits([10, 12, 11, 13]).centre, xmr_limits([10, 12, 11, 13]).mr_bar
    (11.5, 1.6666666666666667)
    """
    present = [float(v) for v in values if _present(v)]  # type: ignore[arg-type]
    ranges = [r for r in moving_ranges(values) if r is not None]
    if len(present) < 2 or not ranges:
        raise ValueError(
            "XmR limits need at least two adjacent baseline values (one moving range); "
            f"got {len(present)} values and {len(ranges)} moving ranges"
        )
    if floor is not None and ceiling is not None and floor > ceiling:
        raise ValueError(f"floor {floor} is above ceiling {ceiling}")
    centre = sum(present) / len(present)
    mr_bar = sum(ranges) / len(ranges)
    lower = centre - NPL_FACTOR * mr_bar
    upper = centre + NPL_FACTOR * mr_bar
    if floor is not None:
        lower = max(lower, floor)
    if ceiling is not None:
        upper = min(upper, ceiling)
    return Limits(centre=centre, mr_bar=mr_bar, lower=lower, upper=upper, mr_upper=MR_FACTOR * mr_bar)


def detect_signals(values: Sequence[float | None], limits: Limits) -> list[frozenset[int]]:
    """The Wheeler rules (1, 2, 3) fired at each point of one phase.

    Rule 2 marks every point of a run of eight or more; rule 3 marks the points beyond the
    half-way line in each qualifying window of four. Missing points get no rules.
    """
    fired: list[set[int]] = [set() for _ in values]
    positions = [i for i, v in enumerate(values) if _present(v)]
    xs = [float(values[i]) for i in positions]  # type: ignore[arg-type]

    for pos, x in zip(positions, xs):
        if limits.outside(x):
            fired[pos].add(1)

    # Rule 2: runs on one side of the centre. side is +1 above, -1 below, 0 on the line.
    sides = [(x > limits.centre) - (x < limits.centre) for x in xs]
    run_side, run_begin = 0, 0
    for k, side in enumerate([*sides, 0]):  # the trailing 0 closes the last run
        if side != run_side or side == 0:
            if run_side != 0 and k - run_begin >= RUN_LENGTH:
                for j in range(run_begin, k):
                    fired[positions[j]].add(2)
            run_side, run_begin = side, k

    # Rule 3: 3 of 4 successive points beyond a half-way line, same side.
    above = [x > limits.upper_half for x in xs]
    below = [x < limits.lower_half for x in xs]
    for start in range(0, len(xs) - 3):
        for beyond in (above, below):
            window = range(start, start + 4)
            if sum(beyond[j] for j in window) >= 3:
                for j in window:
                    if beyond[j]:
                        fired[positions[j]].add(3)

    return [frozenset(f) for f in fired]


@dataclass(frozen=True)
class PointResult:
    """One point of a process-behaviour chart.

    ``centre``/``lower``/``upper``/``mr_upper`` are those of the point's phase (None when the
    phase had too few values for a baseline). ``mr`` is the point's moving range (None at the
    start of a phase and next to a gap). ``in_baseline`` marks the values the limits came from.
    """

    value: float | None
    phase: int
    centre: float | None
    lower: float | None
    upper: float | None
    mr: float | None
    mr_upper: float | None
    rules: frozenset[int]
    signal: bool
    in_baseline: bool


def format_rules(rules: frozenset[int] | set[int]) -> str:
    """Rules as the KPI frame stores them: ``frozenset({3, 1})`` -> ``"1,3"``."""
    return ",".join(str(r) for r in sorted(rules))


RULE_DESCRIPTIONS = {
    1: "Rule 1: outside the natural process limits",
    2: "Rule 2: 8 or more successive points on one side of the centre line",
    3: "Rule 3: 3 of 4 successive points beyond the half-way line, same side",
}


def process_behaviour(
    values: Sequence[float | None],
    phase_starts: Sequence[int] = (),
    baseline_points: int = 20,
    min_baseline: int = 6,
    floor: float | None = None,
    ceiling: float | None = None,
) -> list[PointResult]:
    """XmR chart for a whole series split into phases at ``phase_starts`` (point indices).

    Each phase's limits come from its first ``baseline_points`` non-missing values and are
    held fixed for the rest of the phase. A phase with fewer than ``min_baseline`` values gets
    no limits and no signals: limits from a handful of points would flag noise. Runs (rule 2)
    and windows (rule 3) never cross a phase break, and the first moving range of a phase is
    not computed across the break.
    """
    if baseline_points < 2 or min_baseline < 2:
        raise ValueError("baseline_points and min_baseline must be at least 2")
    n = len(values)
    bad = [p for p in phase_starts if not 0 <= p < n]
    if bad:
        raise ValueError(f"phase start indices {bad} are outside the series of {n} points")
    starts = sorted({0, *phase_starts}) if n else []
    results: list[PointResult] = []
    for phase, begin in enumerate(starts):
        end = starts[phase + 1] if phase + 1 < len(starts) else n
        segment = list(values[begin:end])
        present_at = [i for i, v in enumerate(segment) if _present(v)]
        ranges = moving_ranges(segment)
        limits: Limits | None = None
        baseline_end = 0
        if len(present_at) >= min_baseline:
            used = present_at[: baseline_points]
            baseline_end = used[-1] + 1
            try:
                limits = xmr_limits(segment[:baseline_end], floor=floor, ceiling=ceiling)
            except ValueError:
                limits = None  # e.g. every baseline value next to a gap: no moving range
        rules = detect_signals(segment, limits) if limits else [frozenset()] * len(segment)
        for i, v in enumerate(segment):
            results.append(
                PointResult(
                    value=float(v) if _present(v) else None,  # type: ignore[arg-type]
                    phase=phase,
                    centre=limits.centre if limits else None,
                    lower=limits.lower if limits else None,
                    upper=limits.upper if limits else None,
                    mr=ranges[i],
                    mr_upper=limits.mr_upper if limits else None,
                    rules=rules[i],
                    signal=bool(rules[i]),
                    in_baseline=limits is not None and i < baseline_end and _present(v),
                )
            )
    return results
