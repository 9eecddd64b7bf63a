"""The Python API: the same registry and engine the pages use, for notebooks and scripts.

    >>> from citystat import CityStat
    >>> city = CityStat.open("metrics.yaml")            # doctest: +SKIP
    >>> city.metrics().head()                            # doctest: +SKIP
    >>> city.kpi("pothole_on_time", grain="month")       # doctest: +SKIP
    >>> city.chart("pothole_on_time")                    # doctest: +SKIP
    >>> city.sql("SELECT count(*) FROM service_requests")  # doctest: +SKIP

Results are cached by fingerprint (the registry text, its query files and the extracts' sizes
and modification times): an edited extract or YAML is picked up on the next call, without a
restart, and an unchanged one is never recomputed. The rollup is also kept on disk under the
cache directory so a new process (or another app replica) starts warm.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from citystat import config
from citystat.kpis.engine import Engine
from citystat.kpis.frames import (available_periods, city_scores, data_today, default_as_of, kpi_frame, overview,
                                  period_last_day)
from citystat.registry.loader import Problem, Registry, RegistryError, empty_registry, load_registry
from citystat.registry.models import Metric
from citystat.kpis.rollup import Rollup, SourcesChanged, stable_rollup

T = TypeVar("T")
# Derived values kept per (registry, rollup, day): KPI frames of every KPI at a few grains and
# dimensions, and what pages build from them (tables, chart specs) for their filters.
MEMO_ENTRIES = 2048


class CityStat:
    """One city's registry, engine and KPI rollup."""

    def __init__(self, registry_path: str | Path | None = None, *, use_disk_cache: bool = True,
                 replica: bool | None = None, check_interval: float = 0.0, keep_last_good: bool = False):
        from citystat.kpis.replica import published_rollups

        self.registry_path = config.registry_path(registry_path)
        self.use_disk_cache = use_disk_cache
        # replica mode (default: when $CITYSTAT_ROLLUPS is set): serve published rollups only
        self._published = published_rollups(replica)
        self._lock = threading.RLock()
        self._registry: Registry | None = None
        self._engine: Engine | None = None
        self._rollup: Rollup | None = None
        self._registry_key: str | None = None
        # KPI frames and other values derived from (registry, rollup, the city's today): emptied
        # whenever any of the three changes (`_derived`), so nothing computed from an older
        # registry or rollup is ever served.
        self._memo: tuple[Registry, Rollup, date, OrderedDict[tuple, Any]] | None = None
        self.check_interval = check_interval
        self._checked_at = float("-inf")
        # keep_last_good (the app): a registry that does not load leaves the last one that did
        # serving (on first start, an empty city) and `registry_error` says why; without it
        # (scripts, the CLI) RegistryError is raised.
        self.keep_last_good = keep_last_good
        self.registry_error: RegistryError | None = None
        self._failed_text: str | None = None

    @classmethod
    def open(cls, registry_path: str | Path | None = None, **options) -> "CityStat":
        return cls(registry_path, **options)

    # ---- freshness ----------------------------------------------------------------------
    def _registry_changed(self) -> bool:
        try:
            text = self.registry_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return self._registry is None
        if self.registry_error is not None and text == self._failed_text:
            return False  # still the same broken file: keep serving what we serve
        return self._registry is None or text != self._registry.text or \
            self._registry.fingerprint() != self._registry_key

    def _load_registry(self) -> Registry | None:
        """The registry from disk; with keep_last_good, None (keep the current one) when it does
        not load, or an empty city on first start."""
        try:
            registry = load_registry(self.registry_path)
        except RegistryError as exc:
            if not self.keep_last_good:
                raise
            self.registry_error = exc
            try:
                self._failed_text = self.registry_path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                self._failed_text = None
            return empty_registry(self.registry_path) if self._registry is None else None
        self.registry_error = None
        self._failed_text = None
        return registry

    def sync(self, force: bool = False) -> "CityStat":
        """Reload whatever changed on disk (registry, queries, extracts); cheap when nothing did.

        Looking costs a few file stats and a hash of the registry, so it is done at most once
        every `check_interval` seconds unless `force` is given (pages force one look per run).
        """
        if not force and self._rollup is not None and time.monotonic() - self._checked_at < self.check_interval:
            return self
        with self._lock:
            if self._registry_changed() and (registry := self._load_registry()) is not None:
                self._registry = registry
                self._registry_key = self._registry.fingerprint()
                self._engine = Engine(self._registry)
                self._rollup = None
            if self._published is not None:  # replica mode: never compute (citystat/kpis/replica.py)
                self._engine, rollup = self._published.serve(self._registry, self._engine, self._rollup)
                if rollup is not self._rollup:
                    self._rollup = rollup
                self._checked_at = time.monotonic()
                return self
            fingerprint = self._engine.fingerprint()
            if self._rollup is None or self._rollup.fingerprint != fingerprint:
                previous = self._rollup
                self._engine = Engine(self._registry) if self._rollup is not None else self._engine
                self._rollup = self._load_or_compute(fingerprint, previous)
            self._checked_at = time.monotonic()
        return self

    def unchanged(self) -> bool:
        """True when a forced `sync` now would keep everything as it is: the registry file as
        loaded, the extracts (or, for a replica, the published rollup) as the rollup served.
        Costs what sync's own look costs (a few file stats); counts as that look. Pages call it
        to show "Refreshing…" only when there is something to refresh."""
        with self._lock:
            if self._rollup is None or self._registry_changed():
                return False
            if self._published is not None:
                held = self._published.held
                if self._published.check_due() or held is None or held.fingerprint != self._rollup.fingerprint:
                    return False
            elif self._engine.fingerprint() != self._rollup.fingerprint:
                return False
            self._checked_at = time.monotonic()
            return True

    def _load_or_compute(self, fingerprint: str, previous: Rollup | None = None) -> Rollup:
        """The rollup for `fingerprint`: from disk if saved, else refreshed from the previous one.

        Never computes when a rollup for this fingerprint is on disk (page loads stay cheap).
        Otherwise the newest rollup of the same registry (in memory, or named by the disk
        cache's `latest` pointer) lets `refresh_rollup` fold in only newly added files.
        """
        from citystat.kpis.rollup_files import load_latest, load_rollup, save_rollup

        if self.use_disk_cache:
            cached = load_rollup(config.cache_dir(), fingerprint)
            if cached is not None:
                cached.problems = list(self._engine.problems) + cached.problems
                return cached
            if previous is None:
                previous = load_latest(config.cache_dir(), self._registry.fingerprint())
        try:
            self._engine, rollup = stable_rollup(self._engine, previous, lambda: Engine(self._registry))
        except SourcesChanged as exc:
            if previous is None:
                raise
            # keep serving the last consistent rollup (under its own fingerprint: the next
            # sync tries again) and say why the numbers are not the newest
            return dataclasses.replace(previous, how="previous", problems=[Problem(
                str(self.registry_path), None, "rollup", f"{exc}; showing the previous numbers",
                severity="warning")] + [p for p in previous.problems if p.entry != "rollup"])
        if self.use_disk_cache:
            save_rollup(config.cache_dir(), rollup)
        return rollup

    # ---- accessors ----------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        return self.sync()._registry

    @property
    def engine(self) -> Engine:
        return self.sync()._engine

    @property
    def rollup(self) -> Rollup:
        return self.sync()._rollup

    def metric(self, metric_id: str) -> Metric:
        try:
            return self.registry.metrics[metric_id]
        except KeyError:
            raise KeyError(f"no metric {metric_id!r} in {self.registry_path}") from None

    def problems(self):
        """Registry problems and failed queries (the same list the Data health page shows)."""
        seen = list(self.registry.problems) + list(self.rollup.problems)
        return list(dict.fromkeys(seen))

    def metrics(self) -> pl.DataFrame:
        """Every healthy metric with its department, unit, direction, grain and tags."""
        failed = self.rollup.failed_metrics()
        return pl.DataFrame([
            {"id": m.id, "title": m.title, "department": m.department, "unit": m.unit.value,
             "direction": m.direction.value, "grain": m.grain, "kind": m.kind, "tags": ", ".join(m.tags),
             "ok": m.id not in failed}
            for m in self.registry.metrics.values()])

    def kpi(self, metric_id: str, grain: str | None = None, dimension: str = "",
            dimension_value: str | None = None) -> pl.DataFrame:
        """A metric's series as a Polars frame with target, status, process limits and comparisons.

        With a `dimension`, the series of one of its values; `dimension_value=None` (or blank)
        is the group of rows with no value, labelled `city.not_recorded_label`.
        """
        metric = self.metric(metric_id)
        if dimension and dimension not in metric.dimensions:
            raise ValueError(f"metric {metric_id!r} has no dimension {dimension!r}; "
                             f"its dimensions are: {', '.join(metric.dimensions) or 'none'}")
        return self._cached_kpi(self._registry, self._rollup, metric, grain or metric.grain, dimension,
                                dimension_value)

    def breakdown(self, metric_id: str, grain: str, dimension: str, period_start: date) -> pl.DataFrame:
        """Values by dimension for one period, with the prior period's value for comparison."""
        from citystat.core.periods import shift_period

        metric = self.metric(metric_id)
        registry, rollup = self.registry, self.rollup

        def compute() -> pl.DataFrame:
            prior = shift_period(period_start, grain, -1, registry.city.fiscal_year_start_month)
            series = rollup.series(metric.id, grain, dimension)
            now = series.filter(pl.col("period_start") == period_start).select(
                "dimension_value", "value", "numerator", "denominator", "n")
            before = series.filter(pl.col("period_start") == prior).select(
                "dimension_value", pl.col("value").alias("prior_value"))
            return (now.join(before, on="dimension_value", how="full", coalesce=True)
                    .with_columns(change=pl.col("value") - pl.col("prior_value"))
                    .sort("value", descending=True, nulls_last=True))

        return self._derived(registry, rollup, ("breakdown", metric_id, grain, dimension, period_start), compute)

    def chart(self, metric_id: str, grain: str | None = None, annotations=()):
        """The metric's Altair trend chart with target and process limits."""
        from citystat.display.charts import trend_chart

        metric = self.metric(metric_id)
        return trend_chart(self.kpi(metric_id, grain), title=metric.title, unit=metric.unit.value,
                           annotations=annotations, direction=metric.direction.value)

    def sql(self, query: str, row_limit: int | None = None, **params) -> pl.DataFrame:
        """Run a read-only SELECT over the sources (tables named by source id)."""
        return self.engine.read_only_query(query, params, context="sql", row_limit=row_limit)

    def as_of(self, grain: str) -> date | None:
        return default_as_of(self.registry, self.rollup, grain)

    def periods(self, grain: str) -> list[date]:
        return available_periods(self.registry, self.rollup, grain)

    def overview(self, as_of_day: date | None = None, grain: str | None = None,
                 metrics: list[Metric] | None = None, dimension: str = "", dimension_value: str | None = None):
        """Every KPI as of a day (default: the last complete week's last day).

        Kept per (registry, rollup, day) like the KPI frames: every view of the same selection
        gets the same rows (a new list of them)."""
        if as_of_day is None:
            week = self.as_of("week")
            as_of_day = period_last_day(self.registry, week, "week") if week else None
        if as_of_day is None:
            return []
        registry, rollup = self.registry, self.rollup

        def compute():
            return overview(registry, rollup, as_of_day, grain, metrics, dimension, dimension_value,
                            kpi=self._cached_kpi)

        if metrics is not None and any(registry.metrics.get(m.id) is not m for m in metrics):
            return compute()  # metrics of another version of the registry: computed, not kept
        key = ("overview", as_of_day, grain, None if metrics is None else tuple(m.id for m in metrics),
               dimension, dimension_value)
        return list(self._derived(registry, rollup, key, compute))

    def standard_kpis(self, department_id: str, as_of_day: date | None = None):
        """City-wide standard KPIs (tag `standard`, dimension `department`) for one department."""
        metrics = [m for m in self.registry.metrics_tagged("standard") if "department" in m.dimensions]
        return self.overview(as_of_day, metrics=metrics, dimension="department", dimension_value=department_id)

    def city_scores(self, as_of_day: date | None = None) -> pl.DataFrame:
        registry, rollup = self.registry, self.rollup
        return self._derived(registry, rollup, ("city_scores", as_of_day),
                             lambda: city_scores(registry, rollup, as_of_day))

    def _cached_kpi(self, registry: Registry, rollup: Rollup, metric: Metric, grain: str,
                    dimension: str = "", dimension_value: str | None = None) -> pl.DataFrame:
        """`kpi_frame` through this object's cache (no re-sync: the caller already synced)."""
        return self._derived(registry, rollup, ("kpi", metric.id, grain, dimension, dimension_value),
                             lambda: kpi_frame(registry, rollup, metric, grain, dimension, dimension_value))

    def memo(self, key: tuple, compute: Callable[[], T]) -> T:
        """``compute()``, kept until the registry, the rollup or the city's day changes.

        For values derived from them only (a page's table, a chart's spec), computed through
        this object (``stat.registry``, ``stat.overview(...)``...): ``key`` must name everything
        else the value depends on (the KPI, grain, period, filters). Pages share it across
        sessions and reruns, so the same table is built once per rollup, not once per view.
        The value is shared: callers must not change it.
        """
        self.sync()
        return self._derived(self._registry, self._rollup, ("memo",) + tuple(key), compute)

    def _derived(self, registry: Registry, rollup: Rollup, key: tuple, compute: Callable[[], T]) -> T:
        """``compute()`` from ``registry`` and ``rollup``, kept with them (one dict per
        (registry, rollup, day), swapped in one assignment, so a value is only ever stored with
        the objects it was computed from)."""
        today = data_today(registry)
        state = self._memo
        if state is None or state[0] is not registry or state[1] is not rollup or state[2] != today:
            state = self._memo = (registry, rollup, today, OrderedDict())
        values = state[3]
        try:
            return values[key]
        except KeyError:
            pass
        value = compute()
        if self._registry is registry and self._rollup is rollup:  # not reloaded meanwhile
            values[key] = value
            if len(values) > MEMO_ENTRIES:
                try:
                    values.popitem(last=False)
                except KeyError:  # emptied by another thread meanwhile
                    pass
        return value

    # ---- catalog (added for the Registry page and notebooks; see citystat/analyst/reference.py) ----
    def sources(self) -> pl.DataFrame:
        """Every source with its description, columns, rows, time range and last refresh."""
        from citystat.analyst.reference import source_catalog

        return source_catalog(self)
