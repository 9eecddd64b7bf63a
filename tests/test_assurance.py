"""Assurance (meets / misses / hit and miss) against hand-worked boundary cases."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import citystat.core.assurance as assurance_module
from citystat.core.assurance import (
    ASSURANCE_LABELS,
    ASSURANCE_SENTENCES,
    assurance_for,
    assurance_now,
    describe_assurance,
)
from citystat.core.spc import process_behaviour

CASES = json.loads((Path(__file__).parent / "fixtures" / "spc" / "assurance" / "cases.json").read_text())["cases"]


CASE_IDS = [f"{c['direction']}-{c['target']}-{c['expected']}-{i}" for i, c in enumerate(CASES)]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_assurance_cases(case: dict) -> None:
    got = assurance_for(case["lower"], case["upper"], case["target"], case["direction"],
                    floor=case["floor"], ceiling=case["ceiling"])
    assert got == case["expected"], case["why"]


def test_nan_target_is_no_target_and_bad_direction_is_an_error() -> None:
    assert assurance_for(1.0, 2.0, float("nan"), "higher") == "no_target"
    with pytest.raises(ValueError, match="direction"):
        assurance_for(1.0, 2.0, 1.5, "up")


def test_assurance_now_uses_the_latest_phase() -> None:
    # phase 1: 0.5/-0.5 alternating -> limits -2.66 .. 2.66; phase 2 (index 8) has 3 points: no limits
    values = [0.5, -0.5] * 4 + [5.0, 5.5, 5.0]
    assert assurance_now(process_behaviour(values, phase_starts=[8], baseline_points=8), 0.0, "higher") \
        == "not_enough_data"
    points = process_behaviour(values[:8], baseline_points=8)
    assert assurance_now(points, -2.66, "higher") == "meets"
    assert assurance_now(points, 2.7, "higher") == "misses"
    assert assurance_now(points, 1.0, "lower") == "hit_and_miss"
    assert assurance_now([], 1.0, "lower") == "not_enough_data"


def test_sentences() -> None:
    assert set(ASSURANCE_SENTENCES) == set(ASSURANCE_LABELS)
    assert describe_assurance("meets").startswith("Consistently meets the target")
    assert describe_assurance("misses").startswith("Consistently misses the target")
    assert "a change to the process is needed" in describe_assurance("hit_and_miss")
    assert "not more effort" in describe_assurance("hit_and_miss")


def test_assurance_doctests() -> None:
    assert doctest.testmod(assurance_module).failed == 0
