"""Input checks for the store: every failure is an `InvalidInput` naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from citystat.store.errors import InvalidInput

NAME_MAX = 200        # owners, departments, metric ids, actors, titles
TEXT_MAX = 4_000      # what, notes, narratives, annotations, alert summaries
KEY_MAX = 500         # alert dedupe keys
JSON_MAX = 1_000_000  # serialised alert payloads and notebook cells
EARLIEST_DATE = date(2000, 1, 1)
YEARS_AHEAD = 10


def text(field: str, value: Any, *, max_length: int = TEXT_MAX) -> str:
    """A required, non-blank string; returned unchanged (never stripped or re-encoded)."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be text, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInput(field, "must not be empty")
    if len(value) > max_length:
        raise InvalidInput(field, f"is {len(value):,} characters; the limit is {max_length:,}")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain the NUL character")
    return value


def name(field: str, value: Any) -> str:
    """A required short string: an owner, department, metric id, actor."""
    return text(field, value, max_length=NAME_MAX)


def optional_text(field: str, value: Any, *, max_length: int = TEXT_MAX) -> str | None:
    return None if value is None else text(field, value, max_length=max_length)


def a_date(field: str, value: Any, *, today: date | None = None) -> date:
    """A calendar date (or ISO 'YYYY-MM-DD' text) between 2000 and ten years from today."""
    if isinstance(value, datetime):
        raise InvalidInput(field, f"must be a date, not a date and time ({value.isoformat()})")
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise InvalidInput(field, f"{value!r} is not a YYYY-MM-DD date") from None
    if not isinstance(value, date):
        raise InvalidInput(field, f"must be a date, got {type(value).__name__}")
    today = today or date.today()
    latest = _years_after(today, YEARS_AHEAD)
    if value < EARLIEST_DATE:
        raise InvalidInput(field, f"{value.isoformat()} is before {EARLIEST_DATE.isoformat()}")
    if value > latest:
        raise InvalidInput(field, f"{value.isoformat()} is more than {YEARS_AHEAD} years "
                                  f"ahead (after {latest.isoformat()})")
    return value


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def one_of(field: str, value: Any, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise InvalidInput(field, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def version(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(field, f"must be the row's version number (an integer >= 1), "
                                  f"got {value!r}")
    return value


def identifier(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be an integer id, got {value!r}")
    return value


def json_value(field: str, value: Any) -> Any:
    """Anything JSON can hold, under a size limit; returned unchanged."""
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"must be JSON-serialisable: {exc}") from None
    if len(encoded) > JSON_MAX:
        raise InvalidInput(field, f"is {len(encoded):,} characters as JSON; the limit is "
                                  f"{JSON_MAX:,}")
    if "\\u0000" in encoded:
        raise InvalidInput(field, "must not contain the NUL character")
    return value
