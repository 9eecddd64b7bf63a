"""The stat-session calendar (sessions.yaml): who meets when, who attends, who prepares it.

CitiStat's rhythm (Baltimore City Code Art. 1 §61-4) is a calendar: each department (or a
cross-department topic) meets weekly, every other week or monthly at a set weekday and time;
the analysts' packet reaches the attendees 48 hours before, the follow-up memo within two
days after. ``sessions.yaml`` sits next to ``metrics.yaml``::

    app_url: https://citystat.riverton.example.gov     # optional: links in the e-mails
    sessions:
      - id: pw_weekly
        department: pw                 # or  topic: cityscore  (metrics with that tag)
        cadence: weekly                # weekly | every_other_week | monthly
        weekday: monday
        time: "09:30"                  # local time in the registry's city.timezone
        starts: 2026-01-05             # first session on or after this day
        analyst: {name: Ana Lyst, email: ana@riverton.example.gov}
        attendees:
          - {name: Director of Public Works, email: publicworks@riverton.example.gov}
      - id: fire_monthly
        department: fire
        cadence: monthly
        weekday: tuesday
        week_of_month: first           # "first Tuesday"; or  day_of_month: 15
        time: "14:00"

Problems name the file, line and session id (the registry loader's line helpers).
Occurrences are computed in the city's time zone and returned as aware datetimes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from citystat.registry.loader import RegistryError
from citystat.registry.yamlfile import Problem, YamlFileError, parse_yaml, read_text, validated_entries
from citystat.registry.yamlfile import line_of as _line

if TYPE_CHECKING:  # pragma: no cover
    from citystat.registry.loader import Registry

SESSIONS_FILE = "sessions.yaml"
ID_PATTERN = r"^[a-z][a-z0-9_]*$"
EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKS_OF_MONTH = ("first", "second", "third", "fourth", "last")
CADENCE_TEXT = {"weekly": "every week", "every_other_week": "every other week", "monthly": "every month"}


class SessionsFileError(RegistryError):
    """sessions.yaml cannot be used; ``.problems`` name file, line and session."""


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, description="How the person is addressed.")
    email: str = Field(description="Where the packet and the memo are sent.")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if not EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


class SessionSeries(BaseModel):
    """One recurring stat session: a department's (or a topic's) meetings and their people."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN, max_length=64, description="Stable id; part of each delivery's key.")
    department: str | None = Field(None, description="Department id from metrics.yaml whose KPIs are reviewed.")
    topic: str | None = Field(None, description="Or: a metric tag; the session reviews every KPI with it.")
    title: str | None = Field(None, description="Shown in e-mails; default: the department's name or the topic.")
    cadence: Literal["weekly", "every_other_week", "monthly"] = Field(description="How often it meets.")
    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] | None = Field(
        None, description="Day of the week (required except for monthly sessions on a day_of_month).")
    week_of_month: Literal["first", "second", "third", "fourth", "last"] | None = Field(
        None, description="Monthly: which of the month's weekdays (first Tuesday, last Friday...).")
    day_of_month: int | None = Field(None, ge=1, le=28, description="Monthly: a day of the month instead.")
    time: str = Field(description="Local start time HH:MM in the city's time zone.")
    duration_minutes: int = Field(60, ge=5, le=600, description="How long it lasts; the memo is due after it ends.")
    starts: date = Field(description="The first session is on or after this day (every-other-week counts from it).")
    ends: date | None = Field(None, description="No session after this day.")
    analyst: Person = Field(description="The analyst who prepares the packet (receives a copy).")
    attendees: list[Person] = Field(min_length=1, description="Who receives the packet and the memo.")

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", str(value)):
            raise ValueError(f"time {value!r} must be HH:MM on a 24-hour clock, e.g. \"09:30\"")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "SessionSeries":
        if (self.department is None) == (self.topic is None):
            raise ValueError("give either a department or a topic (a metric tag), not both or neither")
        if self.cadence == "monthly":
            if (self.week_of_month is None) == (self.day_of_month is None):
                raise ValueError("a monthly session needs week_of_month (with weekday) or day_of_month, not both")
            if self.week_of_month is not None and self.weekday is None:
                raise ValueError("week_of_month needs a weekday (e.g. first tuesday)")
        else:
            if self.weekday is None:
                raise ValueError(f"a {self.cadence.replace('_', ' ')} session needs a weekday")
            if self.week_of_month is not None or self.day_of_month is not None:
                raise ValueError("week_of_month and day_of_month are for monthly sessions only")
        if self.ends is not None and self.ends < self.starts:
            raise ValueError(f"ends ({self.ends}) is before starts ({self.starts})")
        return self

    # -- when ----------------------------------------------------------------------------
    @property
    def start_time(self) -> time:
        hour, minute = map(int, self.time.split(":"))
        return time(hour, minute)

    @property
    def recipients(self) -> list[str]:
        """Attendees then the analyst, each address once."""
        return list(dict.fromkeys([p.email for p in self.attendees] + [self.analyst.email]))

    def cadence_text(self) -> str:
        if self.cadence == "monthly" and self.day_of_month:
            when = f"on day {self.day_of_month} of each month"
        elif self.cadence == "monthly":
            when = f"on the {self.week_of_month} {self.weekday.title()} of each month"
        else:
            when = f"{CADENCE_TEXT[self.cadence]} on {self.weekday.title()}"
        return f"{when} at {self.time}"

    def dates(self, first: date, last: date) -> list[date]:
        """Session days from `first` to `last` (inclusive), in order."""
        first = max(first, self.starts)
        if self.ends is not None:
            last = min(last, self.ends)
        out: list[date] = []
        if first > last:
            return out
        if self.cadence in ("weekly", "every_other_week"):
            target = WEEKDAYS.index(self.weekday)
            anchor = self.starts + timedelta(days=(target - self.starts.weekday()) % 7)
            step = 7 if self.cadence == "weekly" else 14
            if anchor < first:
                anchor += timedelta(days=step * -(-(first - anchor).days // step))
            day = anchor
            while day <= last:
                out.append(day)
                day += timedelta(days=step)
            return out
        year, month = first.year, first.month
        while date(year, month, 1) <= last:
            day = self._monthly_day(year, month)
            if first <= day <= last:
                out.append(day)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out

    def _monthly_day(self, year: int, month: int) -> date:
        if self.day_of_month:
            return date(year, month, self.day_of_month)
        target = WEEKDAYS.index(self.weekday)
        if self.week_of_month == "last":
            nxt = date(year + (month == 12), month % 12 + 1, 1)
            day = nxt - timedelta(days=1)
            return day - timedelta(days=(day.weekday() - target) % 7)
        day = date(year, month, 1)
        day += timedelta(days=(target - day.weekday()) % 7)
        return day + timedelta(weeks=WEEKS_OF_MONTH.index(self.week_of_month))


@dataclass(frozen=True)
class Occurrence:
    """One session of a series: its local date and its start and end as aware datetimes."""

    series: SessionSeries
    day: date
    starts_at: datetime  # aware, in the city's time zone
    ends_at: datetime

    @property
    def key(self) -> str:
        return f"{self.series.id}:{self.day.isoformat()}"


@dataclass
class Calendar:
    path: Path
    timezone: str
    series: dict[str, SessionSeries] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    app_url: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def occurrence(self, series: SessionSeries, day: date) -> Occurrence:
        start = datetime.combine(day, series.start_time, self.zone)
        return Occurrence(series, day, start, start + timedelta(minutes=series.duration_minutes))

    def occurrences(self, since: datetime, until: datetime) -> list[Occurrence]:
        """Every session starting from `since` up to `until` (aware datetimes), by start."""
        first = since.astimezone(self.zone).date() - timedelta(days=1)
        last = until.astimezone(self.zone).date() + timedelta(days=1)
        found = [self.occurrence(s, d) for s in self.series.values() for d in s.dates(first, last)]
        return sorted((o for o in found if since <= o.starts_at <= until), key=lambda o: (o.starts_at, o.series.id))

    def for_department(self, department: str) -> list[SessionSeries]:
        return [s for s in self.series.values() if s.department == department]

    def for_topic(self, topic: str) -> list[SessionSeries]:
        return [s for s in self.series.values() if s.topic == topic]

    def first_on_or_after(self, series: list[SessionSeries], day: date, within_days: int = 62) -> date | None:
        """The first session day of any of `series` on or after `day` (None if none soon)."""
        found = [d for s in series for d in s.dates(day, day + timedelta(days=within_days))]
        return min(found) if found else None

    def next_and_past(self, series: list[SessionSeries], now: datetime, *, past: int = 3,
                      horizon_days: int = 400) -> tuple[Occurrence | None, list[Occurrence]]:
        """The next session of any of `series` after `now`, and the last `past` ones, newest first."""
        found = [self.occurrence(s, d) for s in series
                 for d in s.dates(now.astimezone(self.zone).date() - timedelta(days=horizon_days),
                                  now.astimezone(self.zone).date() + timedelta(days=horizon_days))]
        upcoming = sorted((o for o in found if o.ends_at > now), key=lambda o: o.starts_at)
        held = sorted((o for o in found if o.ends_at <= now), key=lambda o: o.starts_at, reverse=True)
        return (upcoming[0] if upcoming else None), held[:past]


def default_sessions_path(registry: "Registry") -> Path:
    """sessions.yaml next to metrics.yaml (like contracts.yaml and alerts.yaml)."""
    return registry.root / SESSIONS_FILE


def load_calendar(path: str | Path, registry: "Registry") -> Calendar:
    """Load sessions.yaml and check it against the registry; a missing file is an empty calendar.

    Raises `SessionsFileError` (every problem with file and line) when anything is wrong.
    """
    path = Path(path)
    file = str(path)
    calendar = Calendar(path=path, timezone=registry.city.timezone)
    if not path.exists():
        return calendar
    try:
        doc = parse_yaml(read_text(path), file)
    except YamlFileError as exc:
        raise SessionsFileError(exc.problems) from None
    if doc is None:
        return calendar
    if not isinstance(doc, CommentedMap) or "sessions" not in doc:
        raise SessionsFileError([Problem(file, 1, None, "expected a top-level 'sessions:' list")])
    problems: list[Problem] = []
    for key in doc:
        if key not in ("sessions", "app_url"):
            problems.append(Problem(file, _line(doc, key), None,
                                    f"unknown top-level key {key!r}; only 'sessions' and 'app_url' are allowed"))
    app_url = doc.get("app_url")
    if app_url is not None:
        if not isinstance(app_url, str) or not re.match(r"^https?://[^\s<>\"']+$", app_url):
            problems.append(Problem(file, _line(doc, "app_url"), None, "app_url must be an http(s) address"))
        else:
            calendar.app_url = app_url.rstrip("/")
    section = doc["sessions"] or []
    if not isinstance(section, CommentedSeq):
        raise SessionsFileError([Problem(file, _line(doc, "sessions"), None, "'sessions' must be a list")])
    tags = {t for m in registry.metrics.values() for t in m.tags}
    for found in validated_entries(section, "session", SessionSeries, file, problems):
        series, node, line, entry = found.item, found.node, found.line, found.name
        if series.department is not None and series.department not in registry.departments:
            problems.append(Problem(file, _line(node, "department") or line, entry,
                                    f"department {series.department!r} is not in metrics.yaml; known: "
                                    + ", ".join(sorted(registry.departments))))
            continue
        if series.topic is not None and series.topic not in tags:
            problems.append(Problem(file, _line(node, "topic") or line, entry,
                                    f"no metric in metrics.yaml has the tag {series.topic!r}"))
            continue
        calendar.series[series.id] = series
        calendar.lines[series.id] = line or 0
    if problems:
        raise SessionsFileError(problems)
    return calendar


def load_default_calendar(registry: "Registry") -> Calendar:
    return load_calendar(default_sessions_path(registry), registry)


def session_title(series: SessionSeries, registry: "Registry") -> str:
    if series.title:
        return series.title
    if series.department:
        return registry.departments[series.department].name
    return f"Topic: {series.topic}"


def now_utc() -> datetime:
    return datetime.now(UTC)
