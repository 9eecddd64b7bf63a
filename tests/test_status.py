"""Status colours against hand-worked cases of the 10 % rule."""

from __future__ import annotations

import doctest

import pytest

import citystat.core.status as status_module
from citystat.core.status import STATUS_COLOURS, STATUS_LABELS, Status, status_for

ON, RISK, OFF, NODATA, NOTARGET = (
    Status.ON_TRACK, Status.AT_RISK, Status.OFF_TRACK, Status.NO_DATA, Status.NO_TARGET,
)


@pytest.mark.parametrize(
    ("value", "target", "direction", "expected"),
    [
        # higher is better, target 0.80: band = 0.08, at risk down to 0.72
        (0.85, 0.80, "higher", ON),
        (0.80, 0.80, "higher", ON),
        (0.76, 0.80, "higher", RISK),
        (0.72, 0.80, "higher", RISK),  # exactly 10 % short: still yellow (0.8*0.9 has float noise)
        (0.7199, 0.80, "higher", OFF),
        (17 / 20, 0.85, "higher", ON),  # a computed ratio equal to the target
        # lower is better, target 4 days: band 0.4, at risk up to 4.4
        (3.0, 4.0, "lower", ON),
        (4.0, 4.0, "lower", ON),
        (4.4, 4.0, "lower", RISK),
        (4.41, 4.0, "lower", OFF),
        # a negative target (net backlog change, higher is better): band = 10 % of |−50| = 5
        (-50.0, -50.0, "higher", ON),
        (-54.0, -50.0, "higher", RISK),
        (-56.0, -50.0, "higher", OFF),
        (-40.0, -50.0, "higher", ON),
        # a zero target (zero traffic deaths): the relative band is empty
        (0.0, 0.0, "lower", ON),
        (1.0, 0.0, "lower", OFF),
        # no target / neutral
        (5.0, None, "higher", NOTARGET),
        (5.0, 4.0, "neutral", NOTARGET),
        (5.0, float("nan"), "lower", NOTARGET),
        # no data beats everything
        (None, 4.0, "lower", NODATA),
        (float("nan"), 4.0, "higher", NODATA),
        (None, None, "neutral", NODATA),
    ],
)
def test_status_for(value, target, direction, expected) -> None:
    assert status_for(value, target, direction) == expected


def test_custom_relative_band() -> None:
    # 5 % band around 0.90: at risk down to 0.855
    assert status_for(0.86, 0.90, "higher", at_risk_within=0.05) == RISK
    assert status_for(0.85, 0.90, "higher", at_risk_within=0.05) == OFF
    assert status_for(0.89, 0.90, "higher", at_risk_within=0.0) == OFF


def test_absolute_band_replaces_relative_band() -> None:
    # zero target with a yellow zone of 2 units
    assert status_for(2.0, 0.0, "lower", at_risk_within_abs=2.0) == RISK
    assert status_for(3.0, 0.0, "lower", at_risk_within_abs=2.0) == OFF
    # target 100: relative band would be 10, absolute band 3 wins
    assert status_for(95.0, 100.0, "higher", at_risk_within_abs=3.0) == OFF
    assert status_for(97.0, 100.0, "higher", at_risk_within_abs=3.0) == RISK


def test_too_few_cases_is_no_data() -> None:
    assert status_for(1.0, 0.8, "higher", n=2, min_n=10) == NODATA
    assert status_for(1.0, 0.8, "higher", n=None, min_n=10) == NODATA
    assert status_for(1.0, 0.8, "higher", n=10, min_n=10) == ON
    assert status_for(1.0, 0.8, "higher", n=2) == ON  # no minimum set


def test_bad_direction_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="direction must be one of"):
        status_for(1.0, 1.0, "up")
    with pytest.raises(ValueError, match="at_risk_within_abs"):
        status_for(0.5, 1.0, "higher", at_risk_within_abs=-1)


def test_status_values_and_labels() -> None:
    assert [s.value for s in Status] == ["on_track", "at_risk", "off_track", "no_data", "no_target"]
    assert STATUS_LABELS[Status.NO_DATA] == "Not enough data"
    assert STATUS_LABELS[Status.ON_TRACK] == "On track"
    assert set(STATUS_COLOURS) == set(Status) == set(STATUS_LABELS)
    assert Status("at_risk") is Status.AT_RISK and Status.AT_RISK == "at_risk"


def _relative_luminance(hex_colour: str) -> float:
    """WCAG 2.1 relative luminance."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_colours_are_readable_on_white_and_distinct() -> None:
    for status, colour in STATUS_COLOURS.items():
        contrast = 1.05 / (_relative_luminance(colour) + 0.05)
        assert contrast >= 3.0, f"{status} colour {colour} has contrast {contrast:.2f} on white"
    assert len(set(STATUS_COLOURS.values())) == len(STATUS_COLOURS)


def test_docstring_examples() -> None:
    result = doctest.testmod(status_module)
    assert result.failed == 0 and result.attempted > 0
