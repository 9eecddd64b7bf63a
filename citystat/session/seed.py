"""A lived-in sample city: past sessions, commitments, stories, annotations and alerts.

``data/sample_state.json`` (written by ``python -m devtools.sample.history``) holds the history
of the bundled sample city with every date as a number of days from the sample data's last
day, so it stays consistent with the extracts. ``load_seed`` writes it into an EMPTY state
store through the store's own functions (so the audit trail has it, as actor
``sample-history`` unless an entry names who wrote it), then sets the seeded rows' timestamps to the dates they describe.

The app loads it on first start when the registry is the bundled sample city, the state store
is empty and either the store is the default local one or ``CITYSTAT_SAMPLE_HISTORY=1``
(``CITYSTAT_SAMPLE_HISTORY=0`` turns it off). ``python -m citystat seed-sample`` loads it
into any empty store.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from citystat import config

if TYPE_CHECKING:  # pragma: no cover
    from citystat.api import CityStat
    from citystat.store import Store

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_REGISTRY = PROJECT_ROOT / "metrics.yaml"
SAMPLE_STATE = PROJECT_ROOT / "data" / "sample_state.json"
ACTOR = "sample-history"


class SeedError(RuntimeError):
    """The seed cannot be loaded (the store is not empty, or the file is not a seed)."""


def is_empty(store: "Store") -> bool:
    """No session, commitment, story, annotation or alert yet."""
    from citystat.store import schema

    with store.engine.connect() as conn:
        for table in (schema.sessions, schema.commitments, schema.narratives, schema.annotations, schema.alerts):
            if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar():
                return False
    return True


def _moment(end_day: date, offset: float) -> datetime:
    """`offset` days (may be fractional) after midnight UTC of the data's last day."""
    return datetime.combine(end_day, time(0), UTC) + timedelta(days=offset)


def load_seed(store: "Store", seed: dict[str, Any], end_day: date, *, fy_start_month: int = 7) -> dict[str, int]:
    """Write the history into an empty store; returns how many rows of each kind were added."""
    from citystat.core.periods import period_start
    from citystat.store import schema

    if not isinstance(seed, dict) or seed.get("format") != "citystat-sample-history/1":
        raise SeedError("not a CityStat sample history (expected format citystat-sample-history/1)")
    if not is_empty(store):
        raise SeedError(f"the state store {store.url} already holds sessions, commitments, stories, "
                        "annotations or alerts; the sample history only goes into an empty store")

    def day(offset: int) -> date:
        return end_day + timedelta(days=int(offset))

    stamps: list[tuple[sa.Table, int, dict]] = []
    sessions: dict[str, int] = {}
    for s in seed["sessions"]:
        row = store.create_session(s.get("department"), day(s["day"]), topic=s.get("topic"), actor=ACTOR)
        sessions[s["key"]] = row.id
        made = _moment(end_day, s["day"] + 0.6)
        stamps.append((schema.sessions, row.id, {"created_at": made, "updated_at": made}))
    for c in seed["commitments"]:
        session_day = next(s["day"] for s in seed["sessions"] if s["key"] == c["session"])
        row = store.create_commitment(sessions[c["session"]], c["what"], c["owner"], day(session_day + c["due_in"]),
                                      metric_id=c.get("metric_id"), department=c["department"],
                                      actor=c.get("by") or ACTOR)
        made = _moment(end_day, session_day + 0.6)
        values = {"created_at": made, "updated_at": made}
        if c["status"] != "open":
            closed = _moment(end_day, c["closed"] + 0.7)
            row = store.update_commitment(row.id, expected_version=row.version, actor=c.get("by") or ACTOR,
                                          status=c["status"], note=c["note"])
            values.update(closed_at=closed, updated_at=closed)
        stamps.append((schema.commitments, row.id, values))
    for n in seed["narratives"]:
        start = period_start(day(n["period"]), n["grain"], fy_start_month)
        row = store.save_narrative(n["metric_id"], n["grain"], start, n["what_happened"], n["why"], n["whats_next"],
                                   actor=n.get("by") or ACTOR)
        written = _moment(end_day, n["written"] + 0.5)
        stamps.append((schema.narratives, row.id, {"created_at": written, "updated_at": written}))
    for a in seed["annotations"]:
        row = store.add_annotation(a["metric_id"], day(a["day"]), a["text"], actor=a.get("by") or ACTOR)
        stamps.append((schema.annotations, row.id, {"created_at": _moment(end_day, a["day"] + 0.5),
                                                    "updated_at": _moment(end_day, a["day"] + 0.5)}))
    for a in seed["alerts"]:
        alert, _ = store.raise_alert(a["rule_id"], a["key"], a["summary"], actor="alert-rules",
                                     department=a.get("department"), payload=a.get("payload"),
                                     raised_at=_moment(end_day, a["raised"]))
        store.mark_notified(alert.id, actor="mailer", at=_moment(end_day, a["raised"] + 0.01))
        if a.get("acknowledged") is not None:
            store.acknowledge(alert.id, actor=a["acknowledged_by"])
            stamps.append((schema.alerts, alert.id, {"acknowledged_at": _moment(end_day, a["acknowledged"])}))

    def stamp(conn: sa.Connection) -> None:
        for table, row_id, values in stamps:
            conn.execute(table.update().where(table.c.id == row_id).values(**values))

    store._write(stamp)
    return {"sessions": len(seed["sessions"]), "commitments": len(seed["commitments"]),
            "narratives": len(seed["narratives"]), "annotations": len(seed["annotations"]),
            "alerts": len(seed["alerts"])}


def read_seed(path: Path = SAMPLE_STATE) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedError(f"cannot read the sample history {path}: {exc}") from None


def is_bundled_sample(stat: "CityStat") -> bool:
    return Path(stat.registry.path).resolve() == SAMPLE_REGISTRY and SAMPLE_STATE.exists()


def should_seed_on_start() -> bool:
    """Off with CITYSTAT_SAMPLE_HISTORY=0; on for the default local store, or with =1."""
    wanted = os.environ.get("CITYSTAT_SAMPLE_HISTORY", "").strip().lower()
    if wanted in ("0", "false", "no", "off"):
        return False
    if wanted in ("1", "true", "yes", "on"):
        return True
    return not any(os.environ.get(v, "").strip() for v in ("CITYSTAT_STATE_URL", "CITYSTAT_STATE"))


def seed_on_first_start(stat: "CityStat", store: "Store") -> bool:
    """Load the sample history if this is the bundled sample city and the store is empty."""
    if not (should_seed_on_start() and is_bundled_sample(stat) and is_empty(store)):
        return False
    end_day = stat.rollup.last_data_day()
    if end_day is None:
        return False
    try:
        load_seed(store, read_seed(), end_day, fy_start_month=stat.registry.city.fiscal_year_start_month)
    except SeedError:
        return False  # another process seeded it a moment ago
    return True


def run_command(args: argparse.Namespace) -> int:
    from citystat.api import CityStat
    from citystat.store import open_store

    stat = CityStat.open(config.registry_path(args.registry)).sync()
    end_day = stat.rollup.last_data_day()
    if end_day is None:
        print("error: the extracts hold no data: the history's dates count from the data's last day",
              file=sys.stderr)
        return 1
    store = open_store(args.state)
    try:
        counts = load_seed(store, read_seed(Path(args.file) if args.file else SAMPLE_STATE), end_day,
                           fy_start_month=stat.registry.city.fiscal_year_start_month)
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"loaded the sample history into {store.url} (dates counted back from {end_day}): "
          + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("seed-sample", help="load the sample city's history (sessions, commitments, "
                                                     "stories, alerts) into an empty state store")
    parser.add_argument("--file", help=f"history file (default: {SAMPLE_STATE.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--registry", help="path to metrics.yaml (default: $CITYSTAT_REGISTRY or ./metrics.yaml)")
    parser.add_argument("--state", help="state store URL (default: $CITYSTAT_STATE_URL)")
    parser.set_defaults(run=run_command)
