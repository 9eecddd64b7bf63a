"""CityScore: metric scores, the mean, and every score Boston published."""

from __future__ import annotations

import csv
import doctest
import hashlib
import math
from pathlib import Path

import pytest

import citystat.core.cityscore as cityscore_module
from citystat.core.cityscore import city_score, metric_score
from tests.support.boston import BOSTON_FORMULAS, boston_score

SNAPSHOTS = Path(__file__).parent / "fixtures" / "boston" / "boston_cityscore_metrics_snapshots_2026.csv"
WINDOWS = ("day", "week", "month", "quarter")


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


@pytest.fixture(scope="module")
def snapshot_rows() -> list[dict[str, str]]:
    digest = hashlib.sha256(SNAPSHOTS.read_bytes()).hexdigest()
    assert digest == "96a79530e010af8e8328c6110c102f9faf149bdd850a8f1a1a2f9e5a4398743d"
    with SNAPSHOTS.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 115
    return rows


def test_metric_score() -> None:
    assert metric_score(0.76, 0.80, "higher") == pytest.approx(0.95)
    assert metric_score(0.96, 0.80, "higher") == pytest.approx(1.2)
    assert metric_score(7.5, 6.0, "lower") == pytest.approx(0.8)  # 7.5 minutes against 6
    assert metric_score(4.8, 6.0, "lower") == pytest.approx(1.25)
    assert metric_score(0.0, 0.8, "higher") == 0.0
    assert metric_score(5.0, 4.0, "neutral") is None
    assert metric_score(None, 4.0, "higher") is None
    assert metric_score(float("nan"), 4.0, "higher") is None
    assert metric_score(5.0, None, "lower") is None
    assert metric_score(5.0, 0.0, "higher") is None  # division by zero
    assert metric_score(0.0, 3.0, "lower") is None  # division by zero
    assert metric_score(-1.0, 3.0, "higher") is None
    with pytest.raises(ValueError, match="direction"):
        metric_score(1.0, 1.0, "sideways")


def test_city_score_is_mean_of_available_scores() -> None:
    assert city_score([1.2, 0.8, 1.0]) == pytest.approx(1.0)
    assert city_score([1.5, None, 0.5, float("nan")]) == pytest.approx(1.0)
    assert city_score([]) is None
    assert city_score([None, float("nan")]) is None


def test_boston_worked_example() -> None:
    # SOURCES.md: 311 call center, week: 4686 / 5339 / 0.95 = 0.92389
    score = boston_score("sum(numerator_value)/sum(denominator_value)/target", 4686, 5339, 0.95)
    assert score == pytest.approx(0.92389, abs=5e-6)


def test_boston_formulas_by_hand() -> None:
    sum_logic, mean_logic = BOSTON_FORMULAS[0], BOSTON_FORMULAS[1]
    # daily sequences: sum formula pools them, average formula averages daily ratios
    # pooled: (9 + 1) / (10 + 5) = 0.666667 / 0.8 = 0.833333
    assert boston_score(sum_logic, [9, 1], [10, 5], 0.8) == pytest.approx(10 / 15 / 0.8)
    # averaged: (0.9 + 0.2) / 2 = 0.55 / 0.8 = 0.6875
    assert boston_score(mean_logic, [9, 1], [10, 5], 0.8) == pytest.approx(0.6875)
    # a day without cases is skipped: (0.9) / 0.8 = 1.125
    assert boston_score(mean_logic, [9, 0], [10, 0], 0.8) == pytest.approx(1.125)
    # EMS: target 6 minutes / median 7.5 = 0.8; target taken from the numerator as published
    assert boston_score("target / median", 6.0, 7.5, 6.0) == pytest.approx(0.8)
    assert boston_score("target / median", None, 7.5, 6.0) == pytest.approx(0.8)
    # crime trend: historical 40 / current 50 = 0.8 (more crime now scores below 1)
    assert boston_score("historical_average / current_average", 40.0, 50.0) == pytest.approx(0.8)
    # library users: current 120 / historical 100 = 1.2
    assert boston_score("current_average / historical_average", 120.0, 100.0) == pytest.approx(1.2)
    # no cases, no current crime, no target -> no score
    assert boston_score(sum_logic, 0, 0, 0.8) is None
    assert boston_score("historical_average / current_average", 0.04, 0.0) is None
    assert boston_score(sum_logic, 5, 10, None) is None


def test_unknown_formula_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown Boston metric_logic 'mean / target'"):
        boston_score("mean / target", 1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="2 daily numerators but 1 denominators"):
        boston_score(BOSTON_FORMULAS[1], [1, 2], [3], 0.5)


def test_every_published_boston_score_is_reproduced(snapshot_rows) -> None:
    reproduced, unscored, mismatches = 0, [], []
    for line, row in enumerate(snapshot_rows, start=2):
        assert row["metric_logic"] in BOSTON_FORMULAS, f"line {line}: {row['metric_logic']}"
        for window in WINDOWS:
            published = _number(row[f"{window}_score"])
            ours = boston_score(
                row["metric_logic"],
                _number(row[f"{window}_numerator"]),
                _number(row[f"{window}_denominator"]),
                _number(row["target"]),
            )
            if published is None:
                unscored.append((line, row["metric_name"], window))
                if ours is not None:
                    mismatches.append((line, row["metric_name"], window, None, ours))
                continue
            if ours is None or not math.isclose(ours, published, rel_tol=1e-6, abs_tol=1e-9):
                mismatches.append((line, row["metric_name"], window, published, ours))
            else:
                reproduced += 1
    assert mismatches == []
    # 460 cells: 328 published scores (all reproduced), 132 with an input missing in the source
    assert reproduced == 328
    assert len(unscored) == 132


def test_unscored_cells_lack_an_input(snapshot_rows) -> None:
    """Every window without a published score lacks a numerator, denominator or (for the
    target formulas) a target in the source, so nobody could score it."""
    for line, row in enumerate(snapshot_rows, start=2):
        for window in WINDOWS:
            if _number(row[f"{window}_score"]) is None:
                inputs = (_number(row[f"{window}_numerator"]), _number(row[f"{window}_denominator"]))
                assert None in inputs or inputs[1] == 0, (line, row["metric_name"], window)


def test_city_score_over_latest_snapshot(snapshot_rows) -> None:
    latest = [r for r in snapshot_rows if r["latest_score_flag"] == "1"]
    # 22 metrics, but CITY SERVICES SATISFACTION SURVEYS has two latest rows (07:20:15, 07:20:18)
    assert len(latest) == 23
    week_scores = [
        boston_score(r["metric_logic"], _number(r["week_numerator"]), _number(r["week_denominator"]), _number(r["target"]))
        for r in latest
    ]
    # 19 rows carry a week score (4 metrics are empty); the 19 published week scores, rounded
    # to 6 dp and read off the CSV by hand, are summed below.
    present = [s for s in week_scores if s is not None]
    assert len(present) == 19
    hand_sum = (
        0.980635 + 0.846677 + 0.920419 + 1.250000 + 0.816667 + 1.240672 + 1.230620 + 0.962567
        + 0.795455 + 1.333333 + 1.773381 + 1.231061 + 0.712821 + 1.070652 + 0.801887 + 0.611111
        + 0.100806 + 1.250000 + 1.833333
    )
    assert city_score(week_scores) == pytest.approx(hand_sum / 19, abs=1e-5)


def test_docstring_examples() -> None:
    result = doctest.testmod(cityscore_module)
    assert result.failed == 0 and result.attempted > 0
