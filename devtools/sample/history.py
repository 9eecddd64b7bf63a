"""`python -m devtools.sample.history [--out data/sample_state.json]`: the sample city's past.

Writes the history the app loads into an empty state store for the bundled sample city
(``citystat.session.seed``): the stat sessions held in the last nine weeks (from
``sessions.yaml``), commitments made at them (done, dropped, open, overdue), the stories behind
the curves of the KPIs that moved, annotations, and alerts raised by the real rules in
``alerts.yaml`` (older ones acknowledged). Every date is stored as days from the sample data's
last day, so the history stays consistent with the extracts.

The commitments and stories follow the shifts the generator puts in the data
(``devtools.sample.shifts``): the graffiti crew moved to leaf collection, two ambulances out of
service, the second pothole crew.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta
from pathlib import Path

from devtools.sample.build import DEFAULT_END

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OUT = PROJECT_ROOT / "data" / "sample_state.json"
WEEKS_BACK = 9

D = date  # short, for the tables below


# (series, session day, department, what, owner, due, metric, status, closed on, note)
COMMITMENTS = [
    ("pw_weekly", D(2026, 9, 21), "pw", "Report on the graffiti backlog since the crew moved to leaf collection",
     "Streets Division Chief", D(2026, 10, 5), "graffiti_days_to_close", "done", D(2026, 10, 5),
     "Presented on 5 Oct: 212 open graffiti requests, most in District 5."),
    ("pw_weekly", D(2026, 10, 5), "pw", "Trial a missed-pickup text alert on one route",
     "Sanitation Superintendent", D(2026, 10, 30), "missed_trash_requests", "dropped", D(2026, 10, 26),
     "Dropped: the vendor cannot send texts before January; back in the FY27 budget request."),
    ("pw_weekly", D(2026, 10, 12), "pw", "Fix the 14 streetlights on the District 4 arterial that missed their SLA",
     "Street Lighting Manager", D(2026, 10, 30), "streetlight_on_time", "done", D(2026, 10, 28),
     "All 14 repaired by 28 Oct."),
    ("pw_weekly", D(2026, 10, 19), "pw",
     "Borrow one general crew two days a week for graffiti in District 5 until leaf season ends",
     "Streets Division Chief", D(2026, 11, 6), "graffiti_days_to_close", "open", None, None),
    ("pw_weekly", D(2026, 10, 26), "pw", "Sweep the three dumping hot spots on Mill Road every week",
     "Sanitation Superintendent", D(2026, 11, 13), "illegal_dumping_on_time", "open", None, None),
    ("pw_weekly", D(2026, 11, 2), "pw", "Bring a costed plan to restore the graffiti crew",
     "Director of Public Works", D(2026, 11, 23), "graffiti_days_to_close", "open", None, None),
    ("pw_weekly", D(2026, 11, 9), "pw", "Find out why streetlight repairs in District 2 miss the 5-day SLA",
     "Street Lighting Manager", D(2026, 11, 20), "streetlight_on_time", "open", None, None),
    ("fire_biweekly", D(2026, 9, 30), "fire", "Review the dispatch script for cardiac calls",
     "Communications Manager", D(2026, 10, 21), "dispatch_within_60s", "done", D(2026, 10, 20),
     "New script live on 20 Oct."),
    ("fire_biweekly", D(2026, 10, 14), "fire", "Get the two ambulances out for repair back in service",
     "EMS Deputy Chief", D(2026, 11, 4), "ems_response_p90", "open", None, None),
    ("fire_biweekly", D(2026, 10, 28), "fire", "Lease a replacement ambulance while the repairs wait for parts",
     "Fire Chief", D(2026, 11, 18), "ems_response_p90", "open", None, None),
    ("csc_weekly", D(2026, 10, 20), "csc", "Retrain the evening shift on closing duplicate requests",
     "311 Director", D(2026, 11, 3), "requests_311_on_time", "done", D(2026, 11, 2),
     "Done: 18 agents trained on 29 Oct and 2 Nov."),
    ("csc_weekly", D(2026, 11, 3), "csc", "Publish the status of open requests in the 311 app",
     "311 Director", D(2026, 11, 24), "digital_channel_share", "open", None, None),
    ("health_monthly", D(2026, 9, 15), "health", "Call every family with an elevated lead test not yet inspected",
     "Lead Program Manager", D(2026, 10, 15), "lead_followup_30d", "open", None, None),
    ("health_monthly", D(2026, 10, 20), "health", "Send the list of new lead cases to Housing every Monday",
     "Lead Program Manager", D(2026, 11, 2), "lead_followup_30d", "done", D(2026, 11, 2),
     "Weekly list running since 26 Oct."),
    ("dbs_monthly", D(2026, 10, 1), "dbs", "Add a second plan reviewer for residential permits",
     "Plan Review Manager", D(2026, 12, 1), "permit_review_days", "open", None, None),
    ("housing_monthly", D(2026, 11, 12), "housing", "Inspect the 9 complaints older than 30 days",
     "Chief Housing Inspector", D(2026, 11, 19), "housing_complaint_days", "open", None, None),
    ("cityscore_monthly", D(2026, 11, 6), "fire", "Brief the Mayor on EMS response times with a recovery date",
     "EMS Deputy Chief", D(2026, 11, 20), "ems_response_p90", "open", None, None),
]

# (metric, grain, a day in the period, written on, what happened, why, what's next)
NARRATIVES = [
    ("graffiti_days_to_close", "week", D(2026, 11, 9), D(2026, 11, 13),
     "Graffiti now takes about **6 days** to remove, twice the usual 3; the run above the centre line began in "
     "mid-September.",
     "The graffiti crew was moved to leaf collection on 14 September. Requests wait for a general crew, "
     "and District 5 has most of them.",
     "One general crew works graffiti two days a week until leaf season ends; a costed plan to restore the "
     "crew comes to the 23 November session."),
    ("ems_response_p90", "week", D(2026, 11, 9), D(2026, 11, 12),
     "The 90th-percentile EMS response is about **11.5 minutes**, against a target of 10.",
     "Two ambulances have been out of service for repairs since 5 October; parts are back-ordered.",
     "A leased ambulance is expected before 18 November."),
    ("pothole_on_time", "week", D(2026, 11, 9), D(2026, 11, 12),
     "Potholes are repaired on time about 88 % of the time, steady since the second crew started.",
     "The second pothole crew (September 2025) holds the backlog down.",
     "Keep both crews through the winter freeze-thaw season."),
    ("lead_followup_30d", "month", D(2026, 10, 1), D(2026, 11, 4),
     "Most children with an elevated lead test had a home inspection within 30 days in October.",
     "The weekly list of new cases to Housing, running since 26 October, shortens the hand-off.",
     "Follow up the families not yet reached by phone."),
]

# (metric, day, text)
ANNOTATIONS = [
    ("graffiti_days_to_close", D(2026, 9, 14), "Graffiti crew moved to leaf collection"),
    ("ems_response_p90", D(2026, 10, 5), "Two ambulances out of service for repairs"),
    ("dispatch_within_60s", D(2026, 10, 20), "New cardiac-call dispatch script"),
]


def _analysts() -> dict[str, str]:
    from citystat.registry.loader import load_registry
    from citystat.session.calendar import load_default_calendar

    calendar = load_default_calendar(load_registry(PROJECT_ROOT / "metrics.yaml"))
    return {s.id: s.analyst.name for s in calendar.series.values()}


def _owners() -> dict[str, str]:
    from citystat.registry.loader import load_registry

    return {m.id: m.owner for m in load_registry(PROJECT_ROOT / "metrics.yaml").metrics.values()}


def past_sessions(end: date) -> list[dict]:
    """Sessions held in the last WEEKS_BACK weeks up to the data's last day, from sessions.yaml."""
    from datetime import UTC, datetime, time

    from citystat.registry.loader import load_registry
    from citystat.session.calendar import load_default_calendar

    registry = load_registry(PROJECT_ROOT / "metrics.yaml")
    calendar = load_default_calendar(registry)
    since = datetime.combine(end - timedelta(weeks=WEEKS_BACK), time(0), UTC)
    until = datetime.combine(end, time(23, 59), UTC)
    return [{"key": f"{o.series.id}:{(o.day - end).days}", "series": o.series.id, "department": o.series.department,
             "topic": o.series.topic, "day": (o.day - end).days}
            for o in calendar.occurrences(since, until)]


def sample_alerts(end: date) -> list[dict]:
    """Cases the real KPI rules in alerts.yaml find at the last two weekly checks; the older acknowledged."""
    from citystat.alerts.rules import load_alert_rules
    from citystat.alerts.run import evaluate_rule
    from citystat.api import CityStat

    stat = CityStat.open(PROJECT_ROOT / "metrics.yaml", use_disk_cache=False)
    rules = load_alert_rules(PROJECT_ROOT / "alerts.yaml")
    alerts: dict[tuple[str, str], dict] = {}
    for back, acknowledged in ((7, True), (0, False)):
        as_of = end - timedelta(days=back)
        for rule in rules.enabled:
            if rule.kind == "sql":
                continue
            for key, summary, department, payload in evaluate_rule(stat, rule, as_of, rules.path.parent):
                if (rule.id, key) in alerts:
                    continue
                alerts[(rule.id, key)] = {
                    "rule_id": rule.id, "key": key, "summary": summary, "department": department,
                    "payload": payload, "raised": -back + 1.3,
                    "acknowledged": (-back + 2.4) if acknowledged else None,
                    "acknowledged_by": "Director of Performance" if acknowledged else None}
    return sorted(alerts.values(), key=lambda a: (a["raised"], a["rule_id"], a["key"]))


def history(end: date = DEFAULT_END) -> dict:
    sessions = past_sessions(end)
    by_series_day = {(s["series"], s["day"]): s["key"] for s in sessions}
    commitments = []
    analysts, owners = _analysts(), _owners()
    for series, day, dept, what, owner, due, metric, status, closed, note in COMMITMENTS:
        offset = (day - end).days
        if (series, offset) not in by_series_day:
            raise ValueError(f"{series} does not meet on {day} (sessions.yaml): fix COMMITMENTS")
        commitments.append({"session": by_series_day[(series, offset)], "department": dept, "what": what,
                            "owner": owner, "due_in": (due - day).days, "metric_id": metric, "status": status,
                            "closed": None if closed is None else (closed - end).days, "note": note,
                            "by": analysts[series]})
    return {
        "format": "citystat-sample-history/1",
        "about": "History of the sample city of Riverton; days are counted from the sample data's last day "
                 f"({end.isoformat()} when this file was written). Made by python -m devtools.sample.history.",
        "sessions": sessions,
        "commitments": commitments,
        "narratives": [{"metric_id": m, "grain": g, "period": (d - end).days, "written": (w - end).days,
                        "what_happened": a, "why": b, "whats_next": c, "by": owners[m]}
                       for m, g, d, w, a, b, c in NARRATIVES],
        "annotations": [{"metric_id": m, "day": (d - end).days, "text": t, "by": owners[m]}
                        for m, d, t in ANNOTATIONS],
        "alerts": sample_alerts(end),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.sample.history", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    data = history()
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: " + ", ".join(f"{len(data[k])} {k}" for k in
                                            ("sessions", "commitments", "narratives", "annotations", "alerts")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
