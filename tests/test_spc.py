"""XmR limits and Wheeler rules, checked against hand-worked fixtures and Boston's real data."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import pytest

import doctest

import citystat.core.spc as spc
from citystat.core.spc import (
    HALF_FACTOR,
    MR_FACTOR,
    MR_RULE,
    NPL_FACTOR,
    RULE_DESCRIPTIONS,
    Limits,
    Signal,
    SignalNow,
    describe_signal,
    describe_signal_now,
    detect_signals,
    format_rules,
    moving_ranges,
    process_behaviour,
    signal_now,
    signals,
    verdict_for,
    xmr_limits,
)

FIXTURES = Path(__file__).parent / "fixtures"
SPC_CASES = sorted((FIXTURES / "spc").glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", SPC_CASES, ids=[p.stem for p in SPC_CASES])
def test_process_behaviour_matches_hand_worked_fixture(path: Path) -> None:
    case = _load(path)
    given, expected = case["input"], case["expected"]
    points = process_behaviour(
        given["values"],
        phase_starts=given["phase_starts"],
        baseline_points=given["baseline_points"],
        min_baseline=given["min_baseline"],
        floor=given["floor"],
        ceiling=given["ceiling"],
    )
    assert len(points) == len(given["values"])

    phase_of_point = expected.get("phase_of_point", [0] * len(points))
    assert [p.phase for p in points] == phase_of_point
    for point, phase in zip(points, phase_of_point):
        limits = expected["phases"][phase]
        if limits is None:
            assert point.centre is None and point.lower is None and point.upper is None
            assert point.mr_upper is None
            continue
        assert point.centre == pytest.approx(limits["centre"], abs=1e-6)
        assert point.lower == pytest.approx(limits["lower"], abs=1e-6)
        assert point.upper == pytest.approx(limits["upper"], abs=1e-6)
        assert point.mr_upper == pytest.approx(limits["mr_upper"], abs=1e-6)

    wanted_rules = {int(k): frozenset(v) for k, v in expected["rules"].items()}
    got_rules = {i: p.rules for i, p in enumerate(points) if p.rules}
    assert got_rules == wanted_rules
    assert [p.signal for p in points] == [i in wanted_rules for i in range(len(points))]

    if "mr" in expected:
        got_mr = [p.mr for p in points]
        assert [m is None for m in got_mr] == [m is None for m in expected["mr"]]
        assert [m for m in got_mr if m is not None] == pytest.approx(
            [m for m in expected["mr"] if m is not None]
        )


@pytest.mark.parametrize("path", SPC_CASES, ids=[p.stem for p in SPC_CASES])
def test_xmr_limits_of_first_phase_match_fixture(path: Path) -> None:
    case = _load(path)
    given, expected = case["input"], case["expected"]
    phase_end = min([p for p in given["phase_starts"] if p > 0] or [len(given["values"])])
    values = given["values"][:phase_end]
    present = [i for i, v in enumerate(values) if v is not None]
    baseline = values[: present[given["baseline_points"] - 1] + 1] if len(present) >= given["baseline_points"] else values
    limits = xmr_limits(baseline, floor=given["floor"], ceiling=given["ceiling"])
    want = expected["phases"][0]
    assert limits.centre == pytest.approx(want["centre"], abs=1e-6)
    assert limits.mr_bar == pytest.approx(want["mr_bar"], abs=1e-6)
    assert limits.lower == pytest.approx(want["lower"], abs=1e-6)
    assert limits.upper == pytest.approx(want["upper"], abs=1e-6)


def test_fixtures_show_their_working() -> None:
    assert len(SPC_CASES) >= 6
    for path in SPC_CASES:
        case = _load(path)
        assert case["worked"], f"{path.name} has no worked arithmetic"


def test_moving_ranges_do_not_bridge_gaps() -> None:
    assert moving_ranges([1.0, 4.0, None, 6.0, float("nan"), 2.0, 3.5]) == [
        None, 3.0, None, None, None, None, 1.5,
    ]


def test_ceiling_clips_upper_limit() -> None:
    # centre 0.95, mR 0.04 -> natural upper 0.95 + 0.1064 = 1.0564 -> clipped to 1.0
    limits = xmr_limits([0.93, 0.97, 0.93, 0.97], ceiling=1.0)
    assert limits.centre == pytest.approx(0.95)
    assert limits.mr_bar == pytest.approx(0.04)
    assert limits.upper == 1.0
    assert limits.lower == pytest.approx(0.95 - 0.1064)
    assert limits.natural_upper == pytest.approx(1.0564) and limits.natural_lower == limits.lower


def test_point_on_the_centre_breaks_a_run() -> None:
    limits = Limits(centre=0.0, mr_bar=10.0, lower=-26.6, upper=26.6, mr_upper=32.68)
    series = [1.0] * 4 + [0.0] + [1.0] * 4  # 8 above, but split by a point on the centre
    assert all(r == frozenset() for r in detect_signals(series, limits))
    assert all(r == frozenset({2}) for r in detect_signals([1.0] * 8, limits))
    below = detect_signals([-1.0] * 7 + [1.0], limits)
    assert all(r == frozenset() for r in below)


def test_rule_2_run_continues_across_a_missing_point() -> None:
    limits = Limits(centre=0.0, mr_bar=10.0, lower=-26.6, upper=26.6, mr_upper=32.68)
    rules = detect_signals([1.0] * 4 + [None] + [1.0] * 4, limits)
    assert rules[4] == frozenset()
    assert [bool(r) for r in rules] == [True] * 4 + [False] + [True] * 4


def test_short_phase_gets_no_limits_and_no_signals() -> None:
    points = process_behaviour([1, 100, 1, 100, 1], min_baseline=6)
    assert all(p.centre is None and not p.signal for p in points)


def test_bad_phase_start_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="outside the series"):
        process_behaviour([1.0, 2.0, 3.0], phase_starts=[5])


def test_too_few_values_for_limits_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least two"):
        xmr_limits([3.0, None])


def test_format_rules() -> None:
    assert format_rules(frozenset({3, 1})) == "1,3"
    assert format_rules(frozenset()) == ""


BOSTON_DAILY = FIXTURES / "boston" / "boston_cityscore_daily_2016-2019.csv"


def test_boston_daily_cityscore_outliers_are_rule_1_signals() -> None:
    digest = hashlib.sha256(BOSTON_DAILY.read_bytes()).hexdigest()
    assert digest == "b0d69e0b0046764708b4c033b1d2b609908dbf8507fc56a036b673a12c1f984a"
    with BOSTON_DAILY.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 844
    days = [r["etl_load_date"][:10] for r in rows]
    values = [float(r["cty_scr_day_agg"]) if r["cty_scr_day_agg"] else None for r in rows]
    points = process_behaviour(values, floor=0.0)
    by_day = dict(zip(days, points))
    for day, score in (("2019-03-06", 29.23), ("2018-07-13", 29.35)):
        point = by_day[day]
        assert point.value == pytest.approx(score, abs=0.01)
        assert 1 in point.rules, f"{day} ({score}) should be outside the limits"
    # the limits come from the first 20 business days of 2016 and are a sane band around 1.4
    first = points[0]
    assert 1.0 < first.centre < 2.0
    assert first.upper < 5.0
    # a typical day is not a signal: most of the series is routine variation or sustained runs,
    # but not every point is outside the limits
    outside = sum(1 for p in points if 1 in p.rules)
    assert 2 <= outside < len(points) / 2
    assert math.isfinite(first.mr_upper)


# --- rule boundaries, signal episodes and sentences (fixtures/spc/rules) ----------------------

RULE_CASES = sorted((FIXTURES / "spc" / "rules").glob("*.json"))


def test_constants_are_wheelers() -> None:
    assert NPL_FACTOR == 2.660 and MR_FACTOR == 3.268 and HALF_FACTOR == 1.330
    assert MR_RULE == 4 and set(RULE_DESCRIPTIONS) == {1, 2, 3, 4}


@pytest.mark.parametrize("path", RULE_CASES, ids=[p.stem for p in RULE_CASES])
def test_rule_boundary(path: Path) -> None:
    case = _load(path)
    given, expected = case["input"], case["expected"]
    assert case["worked"]
    points = process_behaviour(given["values"], baseline_points=given["baseline_points"])
    limits = expected["limits"]
    last = points[-1]
    assert (last.centre, last.lower, last.upper, last.mr_upper) == pytest.approx(
        (limits["centre"], limits["lower"], limits["upper"], limits["mr_upper"]), abs=1e-12)
    base = xmr_limits(given["values"][: given["baseline_points"]])
    assert (base.mr_bar, base.lower_half, base.upper_half) == pytest.approx(
        (limits["mr_bar"], limits["lower_half"], limits["upper_half"]), abs=1e-12)

    assert {i: sorted(p.rules) for i, p in enumerate(points) if p.rules} == {
        int(k): v for k, v in expected["rules"].items()}
    assert [p.signal for p in points] == [str(i) in expected["rules"] for i in range(len(points))]

    found = signals(points, given["direction"])
    assert [[s.rule, s.start, s.end, s.way, s.verdict] for s in found] == expected["signals"]

    status = signal_now(points, given["direction"])
    assert status.latest == len(points) - 1
    assert status.signalling == bool(points[-1].rules)
    assert describe_signal_now(status, given["labels"], given["grain"]) == expected["now"]


def test_rule_fixtures_cover_every_boundary() -> None:
    names = {p.stem for p in RULE_CASES}
    assert {"rule1_on_limit", "rule1_just_beyond", "rule2_eight", "rule2_seven", "rule3_three_of_four",
            "rule3_two_of_four", "rule3_on_half_line", "jump_at_limit", "jump_just_above"} <= names


def test_jump_flags_the_later_point_and_not_across_a_gap_or_phase() -> None:
    limits = Limits(centre=0.0, mr_bar=1.0, lower=-2.66, upper=2.66, mr_upper=3.268)
    assert [sorted(r) for r in detect_signals([-1.7, 1.7, None, -1.7, 1.7], limits)] == [[], [4], [], [], [4]]
    assert [sorted(r) for r in detect_signals([-1.7, None, 1.7], limits)] == [[], [], []]
    # a phase break: the first moving range of phase 2 is not taken across the break
    points = process_behaviour([0.5, -0.5] * 4 + [9.5, 10.5] * 4, phase_starts=[8], baseline_points=8)
    assert not any(p.rules for p in points)


def test_signal_episodes_group_runs_and_split_jumps() -> None:
    labels = [f"w{i}" for i in range(20)]
    points = process_behaviour([0.5, -0.5] * 4 + [3.0, 3.0, None, 3.0, -0.5, -4.0, 0.0], baseline_points=8)
    found = signals(points, "neutral")
    # 8, 9, (gap), 11 outside the upper limit: one rule-1 episode of 3 points; 13 below
    assert [(s.rule, s.start, s.end, s.points, s.way) for s in found if s.rule == 1] == [
        (1, 8, 11, 3, "above"), (1, 13, 13, 1, "below")]
    assert describe_signal(found[0], labels, "week", latest=14) == (
        "3 weeks in a row above the upper process limit from w8 to w11 — higher than routine variation explains")
    jumps = [(s.start, s.way) for s in found if s.rule == 4]
    # moving ranges: 8 |3+0.5| = 3.5 up; 12 |-0.5-3| = 3.5 down (11 is after a gap, so no range at 11);
    # 13 |-4+0.5| = 3.5 down; 14 |0+4| = 4 up -- all > 3.268, each its own episode
    assert jumps == [(8, "up"), (12, "down"), (13, "down"), (14, "up")]


def test_signal_now_recent_window() -> None:
    # a jump at index 9, then 8 quiet points (10..17): index 9 is the 8th point before the latest
    values = [0.5, -0.5] * 4 + [-1.64, 1.64] + [0.5, -0.5] * 4
    points = process_behaviour(values, baseline_points=8)
    assert [s.end for s in signal_now(points, "higher", recent_points=7).recent] == []
    assert [s.end for s in signal_now(points, "higher", recent_points=8).recent] == [9]
    assert signal_now(process_behaviour([None, None]), "higher") == SignalNow(latest=None, now=(), recent=())


def test_verdicts() -> None:
    assert [verdict_for(w, "higher") for w in ("above", "below", "up", "down")] == ["good", "bad", "good", "bad"]
    assert [verdict_for(w, "lower") for w in ("above", "below", "up", "down")] == ["bad", "good", "bad", "good"]
    assert {verdict_for(w, "neutral") for w in ("above", "below", "up", "down")} == {"neutral"}
    with pytest.raises(ValueError, match="direction"):
        verdict_for("above", "up")


@pytest.mark.parametrize("signal, grain, latest, text", [
    (Signal(1, 5, 5, 1, 1, "below", "neutral"), "day", 5,
     "Below the lower process limit on the latest day — lower than routine variation explains"),
    (Signal(1, 3, 3, 1, 1, "above", "bad"), "month", 5,
     "Above the upper process limit in the month of L3 — worse than routine variation explains"),
    (Signal(1, 3, 3, 1, 1, "above", "bad"), "day", 5,
     "Above the upper process limit on L3 — worse than routine variation explains"),
    (Signal(2, 0, 5, 6, 6, "below", "neutral"), "quarter", 5,
     "6 quarters in a row below the usual level since L0 — a real change, not noise"),
    (Signal(2, 0, 4, 8, 8, "above", "good"), "week", 5,
     "8 weeks in a row better than the usual level from L0 to L4 — a real change, not noise"),
    (Signal(3, 1, 5, 4, 5, "below", "bad"), "week", 5,
     "4 of 5 weeks since L1 close to the lower process limit — worse than the usual level, "
     "an early sign of a real change"),
    (Signal(3, 2, 4, 3, 3, "above", "neutral"), "week", 5,
     "3 of 4 weeks from L2 to L4 close to the upper process limit — above the usual level, "
     "an early sign of a real change"),
    (Signal(4, 2, 2, 1, 1, "down", "good"), "day", 5,
     "A sudden drop on L2 (better): the change from the day before is larger than routine day-to-day variation"),
])
def test_sentence_templates(signal: Signal, grain: str, latest: int, text: str) -> None:
    assert describe_signal(signal, [f"L{i}" for i in range(6)], grain, latest) == text


def test_spc_doctests() -> None:
    assert doctest.testmod(spc).failed == 0


BOSTON_SHARED = Path("/work/shared/realdata/boston_cityscore_daily_2016-2019.csv")


def test_boston_daily_cityscore_sudden_jumps() -> None:
    """Moving ranges above the upper range limit on Boston's daily CityScore, with limits as the
    product computes them: the first 20 values, floor 0, no phase breaks."""
    path = BOSTON_DAILY if BOSTON_DAILY.exists() else BOSTON_SHARED
    if not path.exists():
        pytest.skip(f"Boston daily CityScore not found at {BOSTON_DAILY} or {BOSTON_SHARED}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    values = [float(r["cty_scr_day_agg"]) for r in rows]
    points = process_behaviour(values, floor=0.0)

    # the upper range limit worked out here without the module: 3.268 x mean of the first 19 ranges
    ranges = [abs(b - a) for a, b in zip(values, values[1:])]
    url = 3.268 * sum(ranges[:19]) / 19
    expected = [i + 1 for i, r in enumerate(ranges) if r > url]
    jumps = [i for i, p in enumerate(points) if MR_RULE in p.rules]
    assert jumps == expected
    assert len(jumps) == 20
    not_outside = [i for i in jumps if 1 not in points[i].rules]
    assert len(not_outside) == 12  # the later point is inside the natural process limits
    alone = [rows[i]["etl_load_date"][:10] for i in jumps if points[i].rules == {MR_RULE}]
    assert len(alone) == 3  # no rule 1, 2 or 3 at the point: only the jump says something happened


def test_rule_3_episodes_split_after_two_quiet_points() -> None:
    # baseline 0.5/-0.5 (limits +/-2.66, half-way +/-1.33); then beyond 1.33 at 8, 9, 11 and 14, 15, 17
    # windows 8..11 and 14..17 hold 3 beyond each; 12 and 13 lie between: two episodes, not one.
    values = [0.5, -0.5] * 4 + [1.5, 1.5, -0.5, 1.5, -0.5, -0.5, 1.5, 1.5, -0.5, 1.5]
    points = process_behaviour(values, baseline_points=8)
    found = signals(points, "higher")
    assert [(s.rule, s.start, s.end, s.points, s.span) for s in found] == [(3, 8, 11, 3, 4), (3, 14, 17, 3, 4)]
    labels = [f"L{i}" for i in range(18)]
    assert describe_signal_now(signal_now(points, "higher"), labels) == (
        "3 of 4 weeks since L14 close to the upper process limit — better than the usual level, "
        "an early sign of a real change.")
