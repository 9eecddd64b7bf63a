"""Typed models of the metric registry (metrics.yaml).

Pure and IO-free: loading the YAML and mapping errors to lines lives in `loader.py`.
Every field carries a description; `docs/registry-reference.md` is generated from these
models (`python -m citystat reference`), so the reference cannot drift from the code.
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from citystat.core.periods import Grain

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
Identifier = Annotated[
    str,
    Field(pattern=ID_PATTERN, max_length=64,
          description="Lower-case letters, digits and underscores, starting with a letter."),
]
ISO_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")


def iso_duration(text: str) -> dt.timedelta:
    """Parse an ISO 8601 duration such as P1D, P1W, P1M or PT6H (months = 30 days, years = 365)."""
    match = ISO_DURATION.match(text)
    if not match:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    groups = match.groups()
    years, months, weeks, days, hours, minutes, seconds = (
        int(g[:-1]) if g else 0 for g in groups[:4] + groups[5:])
    return dt.timedelta(days=years * 365 + months * 30 + weeks * 7 + days, hours=hours, minutes=minutes,
                        seconds=seconds)


class Strict(BaseModel):
    """Base for registry models: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Direction(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"
    NEUTRAL = "neutral"


class Unit(StrEnum):
    PERCENT = "percent"
    COUNT = "count"
    NUMBER = "number"
    DAYS = "days"
    HOURS = "hours"
    MINUTES = "minutes"
    CURRENCY = "currency"
    UG_DL = "ug_dl"
    UG_M3 = "ug_m3"
    RATIO = "ratio"


class Aggregation(StrEnum):
    COUNT = "count"
    COUNT_DISTINCT = "count_distinct"
    SUM = "sum"
    AVG = "avg"
    MEDIAN = "median"
    PERCENTILE = "percentile"
    MIN = "min"
    MAX = "max"



class City(Strict):
    name: str = Field(description="The city's name, shown in titles.")
    timezone: str = Field("UTC", description="IANA time zone of the extracts' naive timestamps.")
    fiscal_year_start_month: int = Field(
        7, ge=1, le=12, description="Month (1-12) the fiscal year starts; FY is named by its end year.")
    contact_email: str | None = Field(None, description="Open-data contact point (DCAT contactPoint).")
    website: str | None = Field(None, description="Public base URL, used in data.json links.")
    license: str = Field("https://opendatacommons.org/licenses/pddl/1-0/",
                         description="Default licence URL for published sources.")
    suppression_threshold: int = Field(
        10, ge=0, le=100, description="Counts from 1 to this value are hidden on public views of sensitive sources.")
    sample_data_until: date | None = Field(
        None, description="For sample or frozen data only: the day the data ends. Freshness is judged "
                          "against that day instead of today, and pages say once that this is sample data.")
    not_recorded_label: str = Field(
        "(not recorded)", min_length=1,
        description="Label of the breakdown group of rows whose dimension value is empty or null.")


class Department(Strict):
    id: Identifier = Field(description="Short id used by metrics, sessions and roles.")
    name: str = Field(description="Full name.")
    head: str | None = Field(None, description="Title of the department head who presents at stat sessions.")
    email: str | None = Field(None, description="Where alerts for this department are sent.")


class QualityChecks(Strict):
    key_columns: dict[str, float] = Field(
        default_factory=dict, description="Column -> largest acceptable share of nulls (0..1).")
    ranges: dict[str, tuple[float | None, float | None]] = Field(
        default_factory=dict, description="Column -> [min, max] plausible values (null = open end).")
    unique: list[str] = Field(default_factory=list, description="Columns whose values must be unique.")
    allowed_values: dict[str, list[str | int | float | bool]] = Field(
        default_factory=dict, description="Column -> the only values it may take.")


class Source(Strict):
    id: Identifier = Field(description="Table name the source gets in SQL.")
    title: str | None = Field(None, description="Human title (defaults to the id).")
    path: str | None = Field(
        None, description="Parquet file, glob or s3:// URL; relative paths resolve against the registry file.")
    sql: str | None = Field(
        None, description="Instead of path: a file in queries/ whose SELECT defines this source over other sources.")
    description: str = Field(description="What one row is and where the data comes from.")
    time_column: str | None = Field(
        None, description="Timestamp or date column that places a row in time (omit for reference tables).")
    refresh: str = Field("P1D", description="Expected refresh as an ISO 8601 duration (P1D daily, P1W weekly).")
    department: str | None = Field(None, description="Department that owns the data.")
    sensitive: bool = Field(False, description="About people: small counts are suppressed on public views.")
    publishable: bool = Field(False, description="Listed in the open-data catalog and downloadable.")
    license: str | None = Field(None, description="Licence URL; defaults to the city's.")
    columns: dict[str, str] = Field(default_factory=dict, description="Column -> plain-language description.")
    checks: QualityChecks = Field(default_factory=QualityChecks, description="Data-quality checks.")

    @field_validator("refresh")
    @classmethod
    def _iso_duration(cls, value: str) -> str:
        if not ISO_DURATION.match(value):
            raise ValueError(f"refresh must be an ISO 8601 duration such as P1D or P1W, not {value!r}")
        return value

    @property
    def refresh_interval(self) -> dt.timedelta:
        """The expected refresh as a timedelta (months count as 30 days, years as 365)."""
        return iso_duration(self.refresh)

    @model_validator(mode="after")
    def _path_or_sql(self) -> "Source":
        if (self.path is None) == (self.sql is None):
            raise ValueError("a source needs exactly one of 'path' or 'sql'")
        return self


class Measure(Strict):
    agg: Aggregation = Field(description="Aggregation applied to `expr` over the period's rows.")
    expr: str | None = Field(None, description="SQL expression over the source's columns (not needed for count).")
    p: float | None = Field(None, gt=0, lt=1, description="Quantile for `percentile` (e.g. 0.9).")
    filter: str | None = Field(None, description="SQL condition: only rows meeting it count in this measure.")

    @model_validator(mode="after")
    def _complete(self) -> "Measure":
        if self.agg == Aggregation.PERCENTILE and self.p is None:
            raise ValueError("agg 'percentile' needs 'p' (e.g. 0.9)")
        if self.agg != Aggregation.PERCENTILE and self.p is not None:
            raise ValueError("'p' is only for agg 'percentile'")
        if self.agg not in (Aggregation.COUNT,) and not self.expr:
            raise ValueError(f"agg '{self.agg}' needs 'expr'")
        return self


class Target(Strict):
    from_: date = Field(alias="from", description="Date from which this target applies.")
    value: float | None = Field(description="The target (null = no target from this date).")
    note: str | None = Field(None, description="Why the target was set or changed.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Bands(Strict):
    at_risk_within: float = Field(
        0.10, ge=0, le=1, description="Yellow when the value is off target by at most this share of the target.")
    at_risk_within_abs: float | None = Field(
        None, ge=0, description="Instead: yellow within this absolute distance of the target.")
    min_count: int = Field(
        1, ge=0, description="Grey (not enough data) when the period has fewer rows (denominator) than this.")


class ProcessChange(Strict):
    date: dt.date = Field(description="Start of a new process phase: XmR limits are recomputed from here.")
    note: str = Field(description="The confirmed change (e.g. 'new pothole crew').")


class Metric(Strict):
    id: Identifier = Field(description="Stable id, used in URLs, sessions and commitments.")
    title: str = Field(min_length=1, max_length=120, description="Short name shown on the dashboard.")
    department: str = Field(description="Owner department id.")
    owner: str = Field(description="Role accountable for the KPI.")
    description: str = Field(description="What it means, in plain language for residents.")
    unit: Unit = Field(description="How values are shown; `percent` values are ratios 0..1.")
    direction: Direction = Field(description="Whether higher or lower is better, or neutral (watched).")
    grain: Grain = Field("week", description="Default period for the dashboard.")
    dimensions: list[str] = Field(default_factory=list, description="Columns of the source to break the KPI down by.")
    tags: list[str] = Field(default_factory=list, description="Free tags; `cityscore` and `public` have meaning.")
    targets: list[Target] = Field(default_factory=list, description="Dated targets; the latest one started applies.")
    bands: Bands = Field(default_factory=Bands, description="Status bands.")
    process_changes: list[ProcessChange] = Field(
        default_factory=list, description="Confirmed shifts after which process limits are recomputed.")
    baseline_points: int = Field(20, ge=6, le=200, description="Points at the start of each phase that set the limits.")
    source: str | None = Field(None, description="Declared form: the source id.")
    time_column: str | None = Field(None, description="Declared form: override the source's time column.")
    filter: str | None = Field(None, description="Declared form: SQL condition applied to every measure.")
    measure: Measure | None = Field(None, description="Declared form: a single aggregate.")
    numerator: Measure | None = Field(None, description="Declared rate: numerator measure.")
    denominator: Measure | None = Field(None, description="Declared rate: denominator measure.")
    sql: str | None = Field(
        None, description="SQL-file form: file in queries/ taking $grain, $start, $end; returns period_start, value.")
    derived: str | None = Field(None, description="Derived form: arithmetic over other metric ids, e.g. 'a - b'.")

    @model_validator(mode="after")
    def _one_form(self) -> "Metric":
        declared = self.measure is not None or self.numerator is not None or self.denominator is not None
        forms = [declared, self.sql is not None, self.derived is not None]
        if sum(forms) != 1:
            raise ValueError("a metric needs exactly one of: measure, numerator+denominator, sql, derived")
        if declared:
            if self.source is None:
                raise ValueError("a declared metric needs 'source'")
            if self.measure is not None and (self.numerator or self.denominator):
                raise ValueError("give either 'measure' or 'numerator'+'denominator', not both")
            if self.measure is None and (self.numerator is None or self.denominator is None):
                raise ValueError("a rate needs both 'numerator' and 'denominator'")
        elif self.source is not None or self.filter is not None:
            raise ValueError("'source' and 'filter' belong to declared metrics only")
        if self.dimensions and not declared:
            raise ValueError("dimensions need a declared measure (put the SQL in a source instead)")
        if self.direction == Direction.NEUTRAL and any(t.value is not None for t in self.targets):
            raise ValueError("a neutral metric is watched, not targeted: remove its targets or set a direction")
        dates = [t.from_ for t in self.targets]
        if len(dates) != len(set(dates)):
            raise ValueError("two targets start on the same date")
        return self

    @property
    def kind(self) -> Literal["rate", "measure", "sql", "derived"]:
        if self.sql:
            return "sql"
        if self.derived:
            return "derived"
        return "measure" if self.measure is not None else "rate"

    @property
    def is_rate(self) -> bool:
        return self.numerator is not None

    def target_list(self) -> list[tuple[date, float | None]]:
        return [(t.from_, t.value) for t in self.targets]


class RegistryFile(Strict):
    """The whole metrics.yaml."""

    city: City = Field(description="City-wide settings.")
    departments: list[Department] = Field(description="Departments that own metrics.")
    sources: list[Source] = Field(description="Extracts (Parquet) or SQL-defined sources.")
    metrics: list[Metric] = Field(description="The KPIs.")
