"""XmR limits and Wheeler rules, checked against hand-worked fixtures and Boston's real data."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import pytest

from citystat.core.spc import (
    Limits,
    detect_signals,
    format_rules,
    moving_ranges,
    process_behaviour,
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
