"""sessions.yaml: the stat-session calendar, its dates (checked by hand against a calendar) and its errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from citystat.registry.loader import load_registry
from citystat.session.calendar import SessionsFileError, load_calendar, load_default_calendar
from tests.conftest import PROJECT_ROOT
from tests.support.cities import make_city

GOOD = """\
sessions:
  - id: ops_weekly
    department: ops
    cadence: weekly
    weekday: tuesday
    time: "09:00"
    starts: 2026-01-01
    analyst: {name: Ana Lyst, email: ana@testville.example.gov}
    attendees:
      - {name: Ops Chief, email: ops@testville.example.gov}
  - id: health_first_tue
    department: health
    cadence: monthly
    weekday: tuesday
    week_of_month: first
    time: "14:30"
    starts: 2026-01-01
    analyst: {name: Ana Lyst, email: ana@testville.example.gov}
    attendees: [{name: Health Chief, email: health@testville.example.gov}]
  - id: public_biweekly
    topic: public
    cadence: every_other_week
    weekday: friday
    time: "08:00"
    starts: 2026-01-09
    analyst: {name: Ana Lyst, email: ana@testville.example.gov}
    attendees: [{name: Mayor, email: mayor@testville.example.gov}]
  - id: ops_last_fri
    department: ops
    cadence: monthly
    weekday: friday
    week_of_month: last
    time: "16:00"
    starts: 2026-01-01
    analyst: {name: Ana Lyst, email: ana@testville.example.gov}
    attendees: [{name: Ops Chief, email: ops@testville.example.gov}]
  - id: ops_day_15
    department: ops
    cadence: monthly
    day_of_month: 15
    time: "10:00"
    starts: 2026-01-01
    ends: 2026-03-31
    analyst: {name: Ana Lyst, email: ana@testville.example.gov}
    attendees: [{name: Ops Chief, email: ops@testville.example.gov}]
"""


@pytest.fixture
def registry(tmp_path):
    return load_registry(make_city(tmp_path))


def write(registry, text: str) -> Path:
    path = registry.root / "sessions.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_dates_of_each_cadence_match_the_calendar(registry):
    calendar = load_calendar(write(registry, GOOD), registry)
    s = calendar.series
    # January 2026 begins on a Thursday.
    assert s["ops_weekly"].dates(date(2026, 1, 1), date(2026, 1, 31)) == [
        date(2026, 1, 6), date(2026, 1, 13), date(2026, 1, 20), date(2026, 1, 27)]
    assert s["health_first_tue"].dates(date(2026, 1, 1), date(2026, 4, 30)) == [
        date(2026, 1, 6), date(2026, 2, 3), date(2026, 3, 3), date(2026, 4, 7)]
    assert s["public_biweekly"].dates(date(2026, 1, 20), date(2026, 2, 28)) == [
        date(2026, 1, 23), date(2026, 2, 6), date(2026, 2, 20)]   # every other Friday from 9 Jan
    assert s["ops_last_fri"].dates(date(2026, 1, 1), date(2026, 3, 31)) == [
        date(2026, 1, 30), date(2026, 2, 27), date(2026, 3, 27)]
    assert s["ops_day_15"].dates(date(2026, 1, 1), date(2026, 12, 31)) == [
        date(2026, 1, 15), date(2026, 2, 15), date(2026, 3, 15)]   # ends 31 March


def test_times_are_local_to_the_city_and_daylight_saving_is_kept(registry):
    calendar = load_calendar(write(registry, GOOD), registry)
    weekly = calendar.series["ops_weekly"]
    winter = calendar.occurrence(weekly, date(2026, 3, 3))    # CST, UTC-6
    summer = calendar.occurrence(weekly, date(2026, 3, 10))   # CDT from 8 March, UTC-5
    assert winter.starts_at.astimezone(UTC) == datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    assert summer.starts_at.astimezone(UTC) == datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
    upcoming, past = calendar.next_and_past([weekly], datetime(2026, 2, 25, 12, tzinfo=UTC), past=2)
    assert upcoming.day == date(2026, 3, 3)
    assert [o.day for o in past] == [date(2026, 2, 24), date(2026, 2, 17)]
    assert weekly.recipients == ["ops@testville.example.gov", "ana@testville.example.gov"]
    assert weekly.cadence_text() == "every week on Tuesday at 09:00"


def test_occurrences_between_two_moments_in_start_order(registry):
    calendar = load_calendar(write(registry, GOOD), registry)
    found = calendar.occurrences(datetime(2026, 2, 2, tzinfo=UTC), datetime(2026, 2, 8, tzinfo=UTC))
    assert [o.key for o in found] == ["ops_weekly:2026-02-03", "health_first_tue:2026-02-03",
                                      "public_biweekly:2026-02-06"]


def test_no_file_is_an_empty_calendar(registry):
    assert load_calendar(registry.root / "sessions.yaml", registry).series == {}


@pytest.mark.parametrize("text, line, needle", [
    (GOOD.replace('time: "09:00"', 'time: "9am"'), 6, "HH:MM"),
    (GOOD.replace("department: ops\n    cadence: weekly", "department: roads\n    cadence: weekly"), 3,
     "department 'roads' is not in metrics.yaml"),
    (GOOD.replace("topic: public", "topic: nosuchtag"), 21, "tag 'nosuchtag'"),
    (GOOD.replace("email: ana@testville.example.gov}\n    attendees:\n      - {name: Ops Chief",
                  "email: not-an-address}\n    attendees:\n      - {name: Ops Chief", 1), 8,
     "'not-an-address' is not an e-mail address"),
    (GOOD.replace("    week_of_month: first\n", ""), 11, "monthly session needs week_of_month"),
    (GOOD.replace("cadence: weekly", "cadence: daily"), 4, "cadence"),
    (GOOD.replace("    weekday: tuesday\n    time: \"09:00\"", "    time: \"09:00\"", 1), 2, "needs a weekday"),
    (GOOD + "  - id: ops_weekly\n    department: ops\n    cadence: weekly\n    weekday: monday\n"
            "    time: \"09:00\"\n    starts: 2026-01-01\n    analyst: {name: A, email: a@b.example}\n"
            "    attendees: [{name: B, email: b@b.example}]\n", 46, "duplicate session id 'ops_weekly'"),
    (GOOD.replace("    starts: 2026-01-01\n", "    starts: 2026-01-01\n    room: 12\n", 1), 8, "room"),
    (GOOD.replace("starts: 2026-01-01", "starts: 2026-02-30", 1), 7, "'2026-02-30' is not a real date"),
    ("sessions:\n  - id: x\n\tdepartment: ops\n", 3, "YAML"),
    ("- just a list\n", 1, "top-level 'sessions:'"),
])
def test_mistakes_name_the_file_and_line(registry, text, line, needle):
    path = write(registry, text)
    with pytest.raises(SessionsFileError) as caught:
        load_calendar(path, registry)
    problems = caught.value.problems
    assert any(needle in p.message and p.line == line and p.file == str(path) for p in problems), \
        [str(p) for p in problems]


def test_the_sample_city_calendar_loads(sample_city):
    calendar = load_default_calendar(sample_city.registry)
    assert calendar.path == PROJECT_ROOT / "sessions.yaml"
    pw = calendar.for_department("pw")
    assert [s.id for s in pw] == ["pw_weekly"]
    # the sample data ends Sun 2026-11-15: the next Public Works session is Mon 16 Nov, 09:30 Chicago
    upcoming, past = calendar.next_and_past(pw, datetime(2026, 11, 15, 18, tzinfo=UTC))
    assert upcoming.starts_at.isoformat() == "2026-11-16T09:30:00-06:00"
    assert [o.day for o in past] == [date(2026, 11, 9), date(2026, 11, 2), date(2026, 10, 26)]
    assert calendar.for_topic("cityscore")[0].title == "CityScore review with the Mayor"


def test_validate_reports_a_broken_calendar(registry, capsys):
    from citystat.cli import main

    write(registry, GOOD.replace("department: ops\n    cadence: weekly", "department: roads\n    cadence: weekly"))
    code = main(["validate", str(registry.path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "sessions.yaml:3 [session ops_weekly]: department 'roads' is not in metrics.yaml" in err
