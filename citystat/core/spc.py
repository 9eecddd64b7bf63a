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

and the signal of the moving-range chart, which CityStat numbers 4 (``MR_RULE``; it is not
Western Electric's rule 4):

4. a moving range above the upper range limit ``3.268 × mR̄`` -- a sudden jump. It flags the
   *later* point of the pair, the period in which the jump was seen.

"Beyond" and "outside" are strict everywhere: a point exactly on a limit, on a half-way line
or a moving range exactly equal to ``3.268 × mR̄`` is routine variation, not a signal.

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
WINDOW, WINDOW_HITS = 4, 3  # rule 3: 3 of 4
MR_RULE = 4  # CityStat's number for the moving-range signal (a sudden jump)


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

    @property
    def natural_lower(self) -> float:
        """The lower limit before clipping to a floor (``centre − 2.660 × mR̄``)."""
        return self.centre - NPL_FACTOR * self.mr_bar

    @property
    def natural_upper(self) -> float:
        """The upper limit before clipping to a ceiling (``centre + 2.660 × mR̄``)."""
        return self.centre + NPL_FACTOR * self.mr_bar

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
    """The Wheeler rules (1, 2, 3) and the moving-range signal (4) fired at each point of one phase.

    Rule 2 marks every point of a run of eight or more; rule 3 marks the points beyond the
    half-way line in each qualifying window of four; rule 4 marks the later point of a
    moving range above ``limits.mr_upper``. Missing points get no rules.

    >>> limits = Limits(centre=10.0, mr_bar=1.0, lower=7.34, upper=12.66, mr_upper=3.268)
    >>> [sorted(r) for r in detect_signals([10, 11, 13, 9.5], limits)]
    [[], [], [1], [4]]
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
    for start in range(0, len(xs) - WINDOW + 1):
        for beyond in (above, below):
            window = range(start, start + WINDOW)
            if sum(beyond[j] for j in window) >= WINDOW_HITS:
                for j in window:
                    if beyond[j]:
                        fired[positions[j]].add(3)

    # Rule 4: a moving range above the upper range limit flags the later point of the pair.
    for i, mr in enumerate(moving_ranges(values)):
        if mr is not None and mr > limits.mr_upper:
            fired[i].add(MR_RULE)

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
    MR_RULE: "Sudden jump: the change from the period before is above the upper range limit",
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


# --- signals in plain words -----------------------------------------------------------------
#
# What "signal" means, once, for every view (card, table, chart, packet):
#
# * A *point* signals when any rule (1, 2, 3 or the sudden jump 4) fires at it; that is
#   ``PointResult.signal`` and the diamond on the chart.
# * A *signal* (the ``Signal`` below) is one episode: successive flagged points of one rule on
#   one side -- a run of 8 weeks above the centre is one signal "since" its first week, not
#   eight.
# * The KPI is *signalling now* when its latest plotted point signals (``signal_now``). A run
#   that is still going on includes the latest point, so "8 weeks in a row worse ... since
#   14 Sep" is a signal now; a run that ended before the latest point is a *recent* signal,
#   reported as such and never as "now". A latest point inside the limits that does not
#   extend a run is "no signal now", whatever happened before.

Way = str  # "above" | "below" (the usual level, rules 1-3) or "up" | "down" (a jump, rule 4)
Verdict = str  # "good" | "bad" | "neutral"

# Rule order for the headline when the latest point fires several: a sustained run says most
# (since when), then a point outside the limits, a jump, and the early warning of rule 3.
_HEADLINE_ORDER = {2: 0, 1: 1, MR_RULE: 2, 3: 3}


@dataclass(frozen=True)
class Signal:
    """One signal episode of a KPI, in the terms a sentence needs.

    ``start``/``end`` are indices into the series (the same indices as the periods' labels);
    ``points`` is how many plotted points the rule flagged, ``span`` how many plotted points
    lie from ``start`` to ``end`` (they differ only for rule 3, where a point inside the
    half-way line can sit between flagged ones). ``way`` is ``"above"``/``"below"`` the usual
    level for rules 1-3 and ``"up"``/``"down"`` for a jump; ``verdict`` says whether that way is
    good, bad or neutral for the KPI's direction.
    """

    rule: int
    start: int
    end: int
    points: int
    span: int
    way: Way
    verdict: Verdict


def verdict_for(way: Way, direction: str) -> Verdict:
    """Is movement ``way`` good or bad for a KPI whose ``direction`` is higher/lower/neutral?

    >>> verdict_for("above", "lower"), verdict_for("up", "higher"), verdict_for("down", "neutral")
    ('bad', 'good', 'neutral')
    """
    if direction not in ("higher", "lower", "neutral"):
        raise ValueError(f"direction must be higher, lower or neutral, not {direction!r}")
    if direction == "neutral":
        return "neutral"
    upward = way in ("above", "up")
    return "good" if upward == (direction == "higher") else "bad"


def _point_way(rule: int, point: PointResult, previous: float | None) -> Way:
    assert point.value is not None and point.centre is not None
    if rule == MR_RULE:
        return "up" if previous is not None and point.value > previous else "down"
    return "above" if point.value > point.centre else "below"


def signals(points: Sequence[PointResult], direction: str) -> list[Signal]:
    """The signal episodes of a chart (output of ``process_behaviour``), oldest first.

    Successive flagged points of rules 1 and 2 on the same side form one episode (a missing
    period does not break it, as it does not break a rule-2 run); for rule 3, flagged points on
    the same side with at most one plotted point between them; each jump (rule 4) is its own
    episode. Episodes never cross a phase break.

    >>> pts = process_behaviour([10, 11, 10, 11, 10, 11, 10, 11, 15, 15], baseline_points=8)
    >>> [(s.rule, s.start, s.end, s.way, s.verdict) for s in signals(pts, "lower")]
    [(1, 8, 9, 'above', 'bad'), (4, 8, 8, 'up', 'bad')]
    """
    plotted = [i for i, p in enumerate(points) if p.value is not None]
    order = {i: k for k, i in enumerate(plotted)}  # series index -> plotted position
    out: list[Signal] = []
    open_: dict[tuple[int, Way], list[int]] = {}  # (rule, way) -> flagged series indices

    def close(key: tuple[int, Way]) -> None:
        idx = open_.pop(key)
        rule, way = key
        out.append(Signal(rule=rule, start=idx[0], end=idx[-1], points=len(idx),
                          span=order[idx[-1]] - order[idx[0]] + 1, way=way,
                          verdict=verdict_for(way, direction)))

    previous: PointResult | None = None
    for i in plotted:
        point = points[i]
        if previous is not None and previous.phase != point.phase:
            for key in list(open_):
                close(key)
        prior_value = points[i - 1].value if i > 0 else None
        fired = {(rule, _point_way(rule, point, prior_value)) for rule in point.rules}
        for key in list(open_):
            rule, _ = key
            gap = order[i] - order[open_[key][-1]]  # plotted points since the episode's last one
            if key in fired:
                if rule == MR_RULE:
                    close(key)  # each jump is its own episode
            elif rule != 3 or gap >= 2:
                close(key)  # the run has ended (rule 3 tolerates one unflagged point between)
        for key in sorted(fired):
            open_.setdefault(key, []).append(i)
        previous = point
    for key in list(open_):
        close(key)
    return sorted(out, key=lambda s: (s.start, s.rule, s.end))


@dataclass(frozen=True)
class SignalNow:
    """Is the KPI signalling now, and how -- the one answer every view shows.

    ``latest`` is the index of the latest plotted point (None when nothing is plotted).
    ``now`` holds the signals that include it, headline first (a run, then outside the limits,
    then a jump, then rule 3); ``recent`` the signals that ended within the ``recent_points``
    plotted points before it, newest first. ``verdict`` is that of the signal now -- "bad" if
    any signal now is bad, else "good" if any is good, else "neutral" -- or None when there is
    no signal now.
    """

    latest: int | None
    now: tuple[Signal, ...]
    recent: tuple[Signal, ...]

    @property
    def signalling(self) -> bool:
        return bool(self.now)

    @property
    def verdict(self) -> Verdict | None:
        verdicts = {s.verdict for s in self.now}
        for v in ("bad", "good", "neutral"):
            if v in verdicts:
                return v
        return None


def signal_now(points: Sequence[PointResult], direction: str, recent_points: int = 8) -> SignalNow:
    """Whether the latest plotted point signals, and which signals ended shortly before it.

    Pass the chart up to the period being reviewed (the "as of" period): the latest plotted
    point is the last non-missing value of ``points``.

    >>> pts = process_behaviour([10, 11] * 4 + [13, 13, 13, 13, 13, 13, 13, 13], baseline_points=8)
    >>> now = signal_now(pts, "higher")
    >>> now.signalling, [(s.rule, s.start) for s in now.now], now.verdict
    (True, [(2, 7), (3, 8)], 'good')
    """
    plotted = [i for i, p in enumerate(points) if p.value is not None]
    if not plotted:
        return SignalNow(latest=None, now=(), recent=())
    latest = plotted[-1]
    window_start = plotted[max(0, len(plotted) - 1 - recent_points)]
    found = signals(points, direction)
    now = sorted((s for s in found if s.end == latest), key=lambda s: _HEADLINE_ORDER[s.rule])
    recent = sorted((s for s in found if window_start <= s.end < latest),
                    key=lambda s: (-s.end, _HEADLINE_ORDER[s.rule]))
    return SignalNow(latest=latest, now=tuple(now), recent=tuple(recent))


def _plural(n: int, grain: str) -> str:
    return f"{n} {grain}" if n == 1 else f"{n} {grain}s"


def _at(index: int, labels: Sequence[str], grain: str, latest: int) -> str:
    if index == latest:
        return "on the latest day" if grain == "day" else f"this {grain}"
    return f"on {labels[index]}" if grain == "day" else f"in the {grain} of {labels[index]}"


def _since(signal: Signal, labels: Sequence[str], latest: int) -> str:
    if signal.end == latest:
        return f"since {labels[signal.start]}"
    return f"from {labels[signal.start]} to {labels[signal.end]}"


_COMPARE = {("good", "above"): "better", ("good", "below"): "better",
            ("bad", "above"): "worse", ("bad", "below"): "worse",
            ("neutral", "above"): "higher", ("neutral", "below"): "lower"}


def describe_signal(signal: Signal, labels: Sequence[str], grain: str = "week",
                    latest: int | None = None) -> str:
    """One signal in plain English, with no rule numbers.

    ``labels`` are the periods' labels by series index ("14 Sep"), ``grain`` the period noun
    ("day", "week", "month", "quarter", "year"), ``latest`` the index of the latest plotted
    point (default: the last label) -- it decides "this week" and "since" versus "from ... to".

    >>> labels = [f"{d} Sep" for d in range(1, 31)]
    >>> describe_signal(Signal(2, 13, 20, 8, 8, "below", "bad"), labels, "week", latest=20)
    '8 weeks in a row worse than the usual level since 14 Sep — a real change, not noise'
    >>> describe_signal(Signal(1, 20, 20, 1, 1, "above", "good"), labels, "week", latest=20)
    'Above the upper process limit this week — better than routine variation explains'
    >>> describe_signal(Signal(4, 20, 20, 1, 1, "up", "neutral"), labels, "week", latest=20)
    'A sudden jump up this week: the change from last week is larger than routine week-to-week variation'
    """
    latest = len(labels) - 1 if latest is None else latest
    compare = _COMPARE.get((signal.verdict, signal.way), "")
    if signal.rule == MR_RULE:
        move = "jump up" if signal.way == "up" else "drop"
        verdict = "" if signal.verdict == "neutral" else f" ({'better' if signal.verdict == 'good' else 'worse'})"
        before = f"last {grain}" if signal.end == latest else f"the {grain} before"
        return (f"A sudden {move} {_at(signal.end, labels, grain, latest)}{verdict}: the change from "
                f"{before} is larger than routine {grain}-to-{grain} variation")
    if signal.rule == 1:
        limit = "above the upper process limit" if signal.way == "above" else "below the lower process limit"
        tail = f" — {compare} than routine variation explains"
        if signal.points == 1:
            return limit[0].upper() + limit[1:] + f" {_at(signal.end, labels, grain, latest)}{tail}"
        return f"{_plural(signal.points, grain)} in a row {limit} {_since(signal, labels, latest)}{tail}"
    if signal.rule == 2:
        level = f"{compare} than" if signal.verdict != "neutral" else signal.way
        return (f"{_plural(signal.points, grain)} in a row {level} the usual level "
                f"{_since(signal, labels, latest)} — a real change, not noise")
    if signal.rule == 3:
        side = "upper" if signal.way == "above" else "lower"
        level = f"{compare} than the usual level" if signal.verdict != "neutral" else f"{signal.way} the usual level"
        return (f"{signal.points} of {max(signal.span, WINDOW)} {grain}s {_since(signal, labels, latest)} "
                f"close to the {side} process limit — {level}, an early sign of a real change")
    raise ValueError(f"unknown rule {signal.rule}")


def describe_signal_now(status: SignalNow, labels: Sequence[str], grain: str = "week") -> str:
    """The card/packet sentence: the signal now, or "no signal" and the latest recent one.

    >>> describe_signal_now(SignalNow(latest=3, now=(), recent=()), ["a", "b", "c", "d"])
    'No signal this week: the latest value is within routine variation.'
    """
    if status.latest is None:
        return "No values to judge yet."
    latest = status.latest
    if status.now:
        return ". ".join(describe_signal(s, labels, grain, latest) for s in status.now) + "."
    when = "on the latest day" if grain == "day" else f"this {grain}"
    text = f"No signal {when}: the latest value is within routine variation."
    if status.recent:
        earlier = describe_signal(status.recent[0], labels, grain, latest)
        text += f" Earlier: {earlier[0].lower() + earlier[1:]}."
    return text
