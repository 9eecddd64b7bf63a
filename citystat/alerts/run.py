"""`python -m citystat alerts`: evaluate alert rules, record new alerts once, e-mail the owners.

Run it from cron (e.g. hourly). Each run:

1. loads alerts.yaml (next to metrics.yaml unless ``--rules``) and checks it against the registry;
2. evaluates every enabled rule as of ``--as-of`` (default: the data's last day, never the
   wall clock): a ``sql`` rule's query returns one row per case; a ``kpi_off_track`` /
   ``spc_signal`` rule looks at each watched KPI's latest complete period;
3. records each case with `store.raise_alert`, keyed by rule id + the case's key, so a case
   already raised (by an earlier run, or by another process right now) is never duplicated;
4. sends one e-mail per rule and recipient list listing the rule's alerts nobody has been told
   about yet (new ones, plus any whose e-mail failed on an earlier run), then marks them
   notified. If the relay refuses some recipients but accepts others, the others have the
   message, so the alerts are marked notified anyway (and the refusal is reported).

``--dry-run`` evaluates and prints what would be raised, without writing or sending anything.
Exit code: 0 when every rule ran and every e-mail went out, 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from citystat import config
from citystat.alerts.rules import (AlertRule, AlertRules, AlertRulesError, alert_key, check_references,
                           load_alert_rules, recipients, render_summary)

if TYPE_CHECKING:
    from citystat.api import CityStat
    from citystat.notify import SmtpSettings
    from citystat.store.store import Store

ACTOR = "alert-rules"
MAILER = "mailer"
ALERTS_FILE = "alerts.yaml"
_AS_OF_PARAM = re.compile(r"\$as_of\b")


@dataclass
class RuleOutcome:
    """What one rule did in one run."""

    rule_id: str
    cases: int = 0
    created: list[int] = field(default_factory=list)
    notified: list[int] = field(default_factory=list)
    would_raise: list[str] = field(default_factory=list)   # dry run: summaries of new cases
    errors: list[str] = field(default_factory=list)


@dataclass
class AlertRun:
    as_of: date
    outcomes: list[RuleOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(not o.errors for o in self.outcomes)


def default_rules_path(stat: "CityStat") -> Path:
    return stat.registry.root / ALERTS_FILE


def department_emails(stat: "CityStat") -> dict[str, str | None]:
    return {d.id: d.email for d in stat.registry.departments.values()}


def _plain(value: Any) -> Any:
    """JSON-safe version of a query value (for the alert's payload)."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# --- evaluating rules ------------------------------------------------------------------------

def sql_rule_rows(stat: "CityStat", rule: AlertRule, as_of: date, rules_folder: Path) -> list[dict]:
    """Rows a sql rule returns: one per case needing action. $as_of is bound, never pasted."""
    text = rule.sql if rule.sql is not None else (rules_folder / rule.query).read_text(encoding="utf-8")
    params = {"as_of": as_of} if _AS_OF_PARAM.search(text) else {}
    frame = stat.engine.read_only_query(text, params, context=f"alert rule {rule.id}")
    return list(frame.iter_rows(named=True))


def watched_metrics(stat: "CityStat", rule: AlertRule) -> list:
    registry = stat.registry
    ids = list(rule.metrics) + ([m.id for m in registry.metrics_tagged(rule.tag)] if rule.tag else [])
    failed = stat.rollup.failed_metrics()
    return [registry.metrics[i] for i in dict.fromkeys(ids) if i in registry.metrics and i not in failed]


def kpi_rule_rows(stat: "CityStat", rule: AlertRule, as_of: date) -> list[dict]:
    """One row per watched KPI whose latest complete period (on `as_of`) is off track / signals."""
    from citystat.display.charts import format_value
    from citystat.core.periods import latest_complete_period, period_label

    fy = stat.registry.city.fiscal_year_start_month
    rows = []
    for metric in watched_metrics(stat, rule):
        # the KPI frame holds complete periods only: take its latest one on or before as_of
        # (a KPI whose source lags has its own, earlier, latest complete period)
        latest = latest_complete_period(as_of, metric.grain, fy)
        frame = stat.kpi(metric.id, metric.grain).filter(pl.col("period_start") <= latest)
        if frame.is_empty():
            continue
        current = frame.row(-1, named=True)
        period = current["period_start"]
        hit = current["status"] == "off_track" if rule.kind == "kpi_off_track" else bool(current["signal"])
        if not hit:
            continue
        unit = metric.unit.value
        rows.append({
            "metric_id": metric.id, "period_start": period, "title": metric.title,
            "department": metric.department, "period": period_label(period, metric.grain, fy),
            "value": current["value"], "target": current["target"], "rules": current["rules"],
            "value_text": format_value(current["value"], unit),
            "target_text": format_value(current["target"], unit) if current["target"] is not None else "none",
        })
    return rows


def kpi_summary(rule: AlertRule, row: Mapping[str, Any]) -> str:
    if rule.kind == "kpi_off_track":
        return (f"{row['title']} was off track in {row['period']}: {row['value_text']} "
                f"against a target of {row['target_text']}")
    return (f"{row['title']} fired process-behaviour rule(s) {row['rules']} in {row['period']} "
            f"(value {row['value_text']})")


def evaluate_rule(stat: "CityStat", rule: AlertRule, as_of: date, rules_folder: Path) -> list[tuple[str, str, str | None, dict]]:
    """(key, summary, department, payload) for every case the rule finds."""
    if rule.kind == "sql":
        cases = []
        for row in sql_rule_rows(stat, rule, as_of, rules_folder):
            cases.append((alert_key(rule, row), render_summary(rule, row), rule.department,
                          {k: _plain(v) for k, v in row.items()}))
        return cases
    return [(alert_key(rule, row), kpi_summary(rule, row), rule.department or row["department"],
             {k: _plain(v) for k, v in row.items()})
            for row in kpi_rule_rows(stat, rule, as_of)]


# --- e-mail --------------------------------------------------------------------------------------

def alert_email(rule: AlertRule, alerts: Sequence, as_of: date) -> tuple[str, str]:
    """Subject and plain-text body of one rule's e-mail."""
    count = len(alerts)
    subject = f"[CityStat {rule.severity}] {rule.title} ({count} new)"
    lines = [rule.title, "", rule.description.strip(), "",
             f"{count} new case(s) as of {as_of.isoformat()}:", ""]
    lines += [f"- {a.summary}" for a in alerts]
    lines += ["", "Acknowledge them on the CityStat Alerts page once someone is on it.",
              f"(rule {rule.id}; sent by python -m citystat alerts)"]
    return subject, "\n".join(lines)


def _partial_refusal(exc: Exception) -> bool:
    """send_email raises after delivering to the accepted recipients when only some were refused."""
    return exc.__cause__ is None and "refused some recipients" in str(exc)


def notify_rule(store: "Store", stat: "CityStat", rule: AlertRule, as_of: date, smtp_factory,
                outcome: RuleOutcome) -> None:
    """E-mail the rule's not-yet-notified open alerts, one message per recipient list."""
    from citystat.notify import NotifyError, send_email

    pending = list(reversed(store.list_alerts(status="open", rule_id=rule.id, notified=False)))
    if not pending:
        return
    departments = department_emails(stat)
    groups: dict[tuple[str, ...], list] = {}
    for alert in pending:
        try:
            to = recipients(rule, departments, metric_department=alert.department
                            if rule.notify_metric_department else None)
        except ValueError as exc:
            outcome.errors.append(str(exc))
            continue
        groups.setdefault(tuple(to), []).append(alert)
    for to, alerts in groups.items():
        subject, body = alert_email(rule, alerts, as_of)
        try:
            smtp = smtp_factory()
            send_email(smtp, list(to), subject, body)
        except NotifyError as exc:
            outcome.errors.append(f"rule {rule.id}: {exc}")
            if not _partial_refusal(exc):
                continue  # nobody got it: leave the alerts un-notified so the next run retries
        for alert in alerts:
            store.mark_notified(alert.id, actor=MAILER)
            outcome.notified.append(alert.id)


# --- the run ---------------------------------------------------------------------------------

def run_alerts(stat: "CityStat", store: "Store | None", rules: AlertRules, *, as_of: date | None = None,
               smtp: "SmtpSettings | None" = None, dry_run: bool = False) -> AlertRun:
    """Evaluate every enabled rule, record new alerts, send the e-mails (see the module docstring).

    `smtp` defaults to `SmtpSettings.from_env()`, read only when there is mail to send.
    """
    from citystat.notify import SmtpSettings

    as_of = as_of or stat.rollup.last_data_day()
    if as_of is None:
        return AlertRun(date.min, errors=["the extracts hold no data: nothing to judge alerts on"])
    run = AlertRun(as_of)
    problems = check_references(
        rules, departments=department_emails(stat),
        metric_tags={m.id: m.tags for m in stat.registry.metrics.values()}, query_root=rules.path.parent)
    broken = {p.entry_id for p in problems}
    run.errors += [str(p) for p in problems]
    settings: list = []

    def smtp_factory():
        if not settings:
            settings.append(smtp or SmtpSettings.from_env())
        return settings[0]

    for rule in rules.enabled:
        outcome = RuleOutcome(rule.id)
        run.outcomes.append(outcome)
        if rule.id in broken:
            outcome.errors.append(f"rule {rule.id} skipped: see the problems above")
            continue
        try:
            cases = evaluate_rule(stat, rule, as_of, rules.path.parent)
        except Exception as exc:  # a broken query must not stop the other rules
            outcome.errors.append(f"rule {rule.id}: {getattr(exc, 'message', None) or exc}")
            continue
        outcome.cases = len(cases)
        if dry_run:
            raised = {a.key for a in store.list_alerts(rule_id=rule.id)} if store is not None else set()
            outcome.would_raise = [summary for key, summary, _, _ in cases if key not in raised]
            continue
        for key, summary, department, payload in cases:
            alert, created = store.raise_alert(rule.id, key, summary, actor=ACTOR, department=department,
                                               payload=payload)
            if created:
                outcome.created.append(alert.id)
        notify_rule(store, stat, rule, as_of, smtp_factory, outcome)
    return run


def report_lines(run: AlertRun, dry_run: bool) -> list[str]:
    lines = [f"alerts as of {run.as_of.isoformat()}" + (" (dry run: nothing written or sent)" if dry_run else "")]
    for o in run.outcomes:
        if dry_run:
            lines.append(f"  {o.rule_id}: {o.cases} case(s), {len(o.would_raise)} would be new")
            lines += [f"    + {s}" for s in o.would_raise]
        else:
            lines.append(f"  {o.rule_id}: {o.cases} case(s), {len(o.created)} new, {len(o.notified)} e-mailed")
    return lines


def run_command(args: argparse.Namespace) -> int:
    from citystat.api import CityStat
    from citystat.registry.loader import RegistryError

    try:
        as_of = date.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        print(f"error: --as-of must be a date like 2026-11-15, not {args.as_of!r}", file=sys.stderr)
        return 2
    try:
        stat = CityStat.open(config.registry_path(args.registry)).sync()
    except RegistryError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        rules = load_alert_rules(Path(args.rules) if args.rules else default_rules_path(stat))
    except AlertRulesError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    from citystat.store import open_store

    store = open_store(args.state)
    run = run_alerts(stat, store, rules, as_of=as_of, dry_run=args.dry_run)
    for line in report_lines(run, args.dry_run):
        print(line)
    for error in dict.fromkeys(run.errors + [e for o in run.outcomes for e in o.errors]):
        print(f"error: {error}", file=sys.stderr)
    return 0 if run.ok else 1


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("alerts", help="evaluate alert rules, record new alerts, e-mail the owners")
    parser.add_argument("--as-of", help="judge the rules on this day (default: the data's last day)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be raised; write and send nothing")
    parser.add_argument("--rules", help=f"alert rules file (default: {ALERTS_FILE} next to metrics.yaml)")
    parser.add_argument("--registry", help="path to metrics.yaml (default: $CITYSTAT_REGISTRY or ./metrics.yaml)")
    parser.add_argument("--state", help="state store URL (default: $CITYSTAT_STATE_URL)")
    parser.set_defaults(run=run_command)
