"""Change attribution: hand-worked tables (fixtures/attribution), exact sums, direction-aware sentences."""

from __future__ import annotations

import doctest
import json
import math
import random
from pathlib import Path

import pytest

import citystat.core.attribution as attribution_module
from citystat.core.attribution import (
    attribute_change,
    describe_contribution,
    drivers,
    explain_change,
    percentage_points,
)

CASES = sorted((Path(__file__).parent / "fixtures" / "attribution").glob("*.json"))

FORMATS = {
    "percent": (lambda x: f"{x * 100:.1f}%", percentage_points),
    "count": (lambda x: f"{x:,.0f}", lambda d: f"{abs(d):,.0f}"),
    "days": (lambda x: f"{x:.1f} days", lambda d: f"{abs(d):.1f} days"),
    "min": (lambda x: f"{x:.1f} min", lambda d: f"{abs(d):.1f} min"),
}


def _figures(rows: list, kind: str) -> dict:
    if kind in ("rate", "avg"):
        return {r[0]: (r[1], r[2]) for r in rows}
    return {r[0]: r[1] for r in rows}


def _run(case: dict):
    given = case["input"]
    return attribute_change(
        given["kind"], _figures(given["before"], given["kind"]), _figures(given["after"], given["kind"]),
        empty_label=given.get("empty_label", "(not recorded)"),
        total_before=given.get("total_before"), total_after=given.get("total_after"),
        centred=given.get("centred", False))


def _close(got, want) -> bool:
    if want is None or got is None:
        return got is want
    if isinstance(want, bool):
        return got is want
    return math.isclose(got, want, abs_tol=5e-7)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_attribution_matches_hand_worked_table(path: Path) -> None:
    case = json.loads(path.read_text())
    assert case["worked"]
    given, expected = case["input"], case["expected"]
    att = _run(case)
    for key in ("total_before", "total_after", "total_change"):
        assert _close(getattr(att, key), expected[key]), key
    assert att.decomposable == expected.get("decomposable", True)
    by_value = {c.value: c for c in att.contributions}
    for value, fields in expected["contributions"].items():
        for key, want in fields.items():
            assert _close(getattr(by_value[value], key), want), (value, key, getattr(by_value[value], key), want)

    # the contributions add up exactly to the total change, and each splits exactly
    if att.decomposable and att.total_change is not None:
        assert math.fsum(c.contribution for c in att.contributions) == pytest.approx(att.total_change, abs=1e-12)
        for c in att.contributions:
            if c.rate_effect is not None:
                assert c.rate_effect + c.mix_effect == pytest.approx(c.contribution, abs=1e-12)

    assert [c.value for c in drivers(att)] == expected["drivers"]
    fmt, fmt_change = FORMATS[given["format"]]
    labels = given["labels"]
    args = dict(kpi=given["kpi"], label=lambda v: labels.get(v, v), fmt=fmt, fmt_change=fmt_change, noun=given["noun"])
    assert explain_change(att, given["direction"], **args) == expected["headline"]
    for value, sentence in expected.get("sentences", {}).items():
        assert describe_contribution(att, by_value[value], **args) == sentence


def test_fixtures_include_the_three_traps() -> None:
    names = {p.stem for p in CASES}
    assert {"rate_channel_trap", "avg_lower_is_better", "count_by_channel"} <= names


def test_worsening_never_names_an_improvement() -> None:
    """On random tables, every driver of a change moved the KPI the way the total moved."""
    rng = random.Random(7)
    for _ in range(300):
        kind = rng.choice(["count", "rate", "avg"])
        values = [f"v{i}" for i in range(rng.randint(1, 6))]

        def table() -> dict:
            out = {}
            for v in values:
                if rng.random() < 0.15:
                    continue  # absent in this period
                d = rng.randint(0, 50)
                out[v] = (rng.randint(0, d), d) if kind != "count" else rng.randint(0, 50)
            return out

        for centred in (False, True):
            att = attribute_change(kind, table(), table(), centred=centred)
            change = att.total_change
            if change is None:
                continue
            assert math.fsum(c.contribution for c in att.contributions) == pytest.approx(change, abs=1e-9)
            for c in drivers(att):
                assert c.contribution * change > 0


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="kind"):
        attribute_change("mode", {}, {})
    with pytest.raises(ValueError, match="cannot be merged"):
        attribute_change("median", {None: 1.0, "(not recorded)": 2.0}, {})
    with pytest.raises(ValueError, match="direction"):
        explain_change(attribute_change("count", {"a": 1}, {"a": 2}), "up", kpi="x")


def test_numerator_without_denominator_is_exact_but_not_split() -> None:
    att = attribute_change("rate", {"a": (2, 0), "b": (5, 10)}, {"a": (0, 0), "b": (6, 10)})
    # before: N = 7, D = 10, R = 0.7; after 0.6. a: 0 - 2/10 = -0.2; b: 6/10 - 5/10 = 0.1
    a, b = att.contributions
    assert a.contribution == pytest.approx(-0.2) and a.rate_effect is None and a.mix_effect is None
    assert b.contribution == pytest.approx(0.1)
    assert att.total_change == pytest.approx(-0.1)


def test_attribution_doctests() -> None:
    assert doctest.testmod(attribution_module).failed == 0
