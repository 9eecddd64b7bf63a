"""Alert rules (alerts.yaml): typed models and a loader that names file, line and rule.

Why rules live in YAML: an analyst adds "tell Housing when a lead-poisoned child's home is
not inspected within 30 days" without touching Python. A rule returns *the rows that need
action*; each row becomes one alert, de-duplicated by its key so cron can run the rule every
hour without e-mailing the same case twice.

Rule kinds:

* ``sql`` - a query (``query: queries/<file>.sql`` or inline ``sql:``) returning one row per
  case; ``key_columns`` form the dedupe key. Bound parameters: ``$as_of`` (DATE).
* ``kpi_off_track`` - a KPI (by ``metrics:`` ids or ``tag:``) whose latest complete period
  turned ``off_track``; key = metric id + period.
* ``spc_signal`` - a KPI whose latest complete period fires a Wheeler rule; key likewise.

Pure: parsing and validation only; evaluating rules is the alerts runner's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from citystat.registry.yamlfile import Problem, YamlFileError, line_of, parse_yaml, read_text, validated_entries

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
DEPARTMENT_CHANNEL = re.compile(r"^email:(?P<dept>[a-z][a-z0-9_]*)$")


class AlertRule(BaseModel):
    """One alert rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN, max_length=64, description="Stable id; part of every alert's key.")
    title: str = Field(min_length=1, description="Short title, used as the e-mail subject.")
    description: str = Field("", description="What the rule finds and what the owner should do.")
    department: str | None = Field(
        None, pattern=ID_PATTERN,
        description="Owner department id (from metrics.yaml). KPI rules with "
                    "notify_metric_department may omit it: each metric's department owns its alert.")
    channel: list[str] = Field(
        default_factory=list,
        description="Where to send: e-mail addresses and/or 'email:<department id>'. "
                    "Default: the owner department's e-mail.")
    kind: Literal["sql", "kpi_off_track", "spc_signal"] = Field(description="How the rule finds cases.")
    query: str | None = Field(None, description="kind sql: a file in queries/ returning one row per case.")
    sql: str | None = Field(None, description="kind sql: inline SQL instead of a file.")
    key_columns: list[str] = Field(
        default_factory=list, description="kind sql: columns that identify a case (the dedupe key).")
    summary: str | None = Field(
        None, description="kind sql: one-line text per case, with {column} placeholders.")
    metrics: list[str] = Field(default_factory=list, description="KPI kinds: metric ids to watch.")
    tag: str | None = Field(None, description="KPI kinds: watch every metric with this tag.")
    notify_metric_department: bool = Field(
        False, description="KPI kinds: also e-mail the department that owns each metric.")
    severity: Literal["info", "warning", "critical"] = Field("warning", description="How urgent.")
    enabled: bool = Field(True, description="Disabled rules are loaded and validated but not run.")

    @field_validator("channel", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("channel")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        for item in value:
            if not (EMAIL.match(item) or DEPARTMENT_CHANNEL.match(item)):
                raise ValueError(f"channel {item!r} is neither an e-mail address nor 'email:<department id>'")
        return value

    @model_validator(mode="after")
    def _fits_kind(self) -> "AlertRule":
        if self.department is None and not self.notify_metric_department:
            raise ValueError("'department' (the owner) is required unless a KPI rule sets "
                             "notify_metric_department: true")
        if self.kind == "sql":
            if (self.query is None) == (self.sql is None):
                raise ValueError("a sql rule needs exactly one of 'query' (a file in queries/) or 'sql'")
            if not self.key_columns:
                raise ValueError("a sql rule needs 'key_columns' naming the columns that identify a case")
            if self.query is not None and not self.query.endswith(".sql"):
                raise ValueError(f"query {self.query!r} must be a .sql file")
            if self.metrics or self.tag or self.notify_metric_department:
                raise ValueError("'metrics', 'tag' and 'notify_metric_department' belong to "
                                 "kpi_off_track and spc_signal rules")
        else:
            if not self.metrics and not self.tag:
                raise ValueError(f"a {self.kind} rule needs 'metrics' (ids) or 'tag'")
            if self.query or self.sql or self.key_columns or self.summary:
                raise ValueError(f"'query', 'sql', 'key_columns' and 'summary' belong to sql rules, "
                                 f"not {self.kind}")
        return self

    @property
    def recipients_spec(self) -> list[str]:
        """Channel entries, defaulting to the owner department's e-mail."""
        if self.channel:
            return list(self.channel)
        return [f"email:{self.department}"] if self.department else []


AlertProblem = Problem  # entry "rule <id>"; str() reads "alerts.yaml:7 [rule <id>]: ..."


class AlertRulesError(YamlFileError):
    """alerts.yaml has problems; `.problems` lists each with file, line and rule id."""


@dataclass(frozen=True)
class AlertRules:
    path: Path
    rules: tuple[AlertRule, ...]
    lines: Mapping[str, int] = field(default_factory=dict)

    def get(self, rule_id: str) -> AlertRule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(f"no alert rule {rule_id!r} in {self.path}")

    @property
    def enabled(self) -> tuple[AlertRule, ...]:
        return tuple(r for r in self.rules if r.enabled)


def parse_alert_rules(text: str, file: str = "alerts.yaml") -> AlertRules:
    """Parse alerts.yaml text; raises `AlertRulesError` listing every problem."""
    try:
        data = parse_yaml(text, file)
    except YamlFileError as exc:
        raise AlertRulesError(exc.problems) from None
    if data is None:
        return AlertRules(Path(file), ())
    if not isinstance(data, CommentedMap) or "rules" not in data:
        raise AlertRulesError([Problem(file, 1, None, "expected a top-level 'rules:' list")])
    extra = [k for k in data if k != "rules"]
    problems: list[Problem] = []
    if extra:
        problems.append(Problem(file, line_of(data, extra[0]), None,
                                f"unknown top-level key(s) {extra}; only 'rules' is allowed"))
    items = data["rules"] or []
    if not isinstance(items, CommentedSeq):
        raise AlertRulesError([Problem(file, line_of(data, "rules"), None, "'rules' must be a list")])
    rules: list[AlertRule] = []
    lines: dict[str, int] = {}
    for entry in validated_entries(items, "rule", AlertRule, file, problems):
        lines[entry.item.id] = entry.line
        rules.append(entry.item)
    if problems:
        raise AlertRulesError(problems)
    return AlertRules(Path(file), tuple(rules), lines)


def load_alert_rules(path: str | Path) -> AlertRules:
    """Load and validate alerts.yaml."""
    path = Path(path)
    try:
        text = read_text(path)
    except YamlFileError as exc:
        raise AlertRulesError(exc.problems) from None
    rules = parse_alert_rules(text, str(path))
    return AlertRules(path, rules.rules, rules.lines)


def check_references(rules: AlertRules, *, departments: Mapping[str, str | None],
                     metric_tags: Mapping[str, Sequence[str]], query_root: str | Path) -> list[Problem]:
    """Cross-check rules against the registry: departments, metrics, tags and query files.

    `departments` maps id -> e-mail (None when the department has none); `metric_tags` maps
    metric id -> its tags; `query_root` is the folder `query:` paths are relative to.
    """
    problems = []
    root = Path(query_root)
    all_tags = {t for tags in metric_tags.values() for t in tags}

    def add(rule: AlertRule, message: str) -> None:
        problems.append(Problem(str(rules.path), rules.lines.get(rule.id), f"rule {rule.id}", message))

    for rule in rules.rules:
        if rule.department is not None and rule.department not in departments:
            add(rule, f"department {rule.department!r} is not in metrics.yaml")
        for spec in rule.recipients_spec:
            match = DEPARTMENT_CHANNEL.match(spec)
            if match:
                dept = match["dept"]
                if dept not in departments:
                    add(rule, f"channel {spec!r}: no department {dept!r}")
                elif not departments[dept]:
                    add(rule, f"channel {spec!r}: department {dept!r} has no e-mail in metrics.yaml")
        for metric in rule.metrics:
            if metric not in metric_tags:
                add(rule, f"metric {metric!r} is not in metrics.yaml")
        if rule.tag and rule.tag not in all_tags:
            add(rule, f"no metric has the tag {rule.tag!r}")
        if rule.query and not (root / rule.query).is_file():
            add(rule, f"query file {rule.query!r} not found under {root}")
    return problems


def recipients(rule: AlertRule, departments: Mapping[str, str | None],
               metric_department: str | None = None) -> list[str]:
    """E-mail addresses for a rule, resolving 'email:<dept>' through `departments`.

    For KPI rules with `notify_metric_department`, pass the metric's department to add it.
    """
    out: list[str] = []
    specs = list(rule.recipients_spec)
    if rule.notify_metric_department and metric_department:
        specs.append(f"email:{metric_department}")
    for spec in specs:
        match = DEPARTMENT_CHANNEL.match(spec)
        if match:
            address = departments.get(match["dept"])
            if not address:
                raise ValueError(f"rule {rule.id}: department {match['dept']!r} has no e-mail address")
            out.append(address)
        else:
            out.append(spec)
    if not out:
        raise ValueError(f"rule {rule.id}: nobody to notify (no channel, department or metric department)")
    return list(dict.fromkeys(out))


def _key_part(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def alert_key(rule: AlertRule, row: Mapping[str, Any]) -> str:
    """Stable dedupe key of one case, e.g. ``child_id=12|test_id=34``.

    KPI rules use ``metric_id`` and ``period_start`` from the row.
    """
    columns = rule.key_columns if rule.kind == "sql" else ["metric_id", "period_start"]
    missing = [c for c in columns if c not in row]
    if missing:
        raise ValueError(f"rule {rule.id}: the query did not return key column(s) {missing}; "
                         f"it returned {list(row)}")
    return "|".join(f"{c}={_key_part(row[c])}" for c in columns)


def render_summary(rule: AlertRule, row: Mapping[str, Any]) -> str:
    """The one-line text of a case: the rule's `summary` template, or title + key."""
    if rule.summary:
        try:
            return rule.summary.format_map(dict(row))
        except (KeyError, ValueError, IndexError) as exc:
            raise ValueError(f"rule {rule.id}: summary {rule.summary!r} cannot be filled from "
                             f"columns {list(row)}: {exc}") from None
    return f"{rule.title}: {alert_key(rule, row)}"
