"""Charts and text for results-driven contracting, and the monthly provider progress report.

The report is built the same way as the stat-session briefing packet: HTML from the shared
renderer (:mod:`citystat.display.report`: ``render_html``, ``chart_svg``, ``table_html``), printed to
PDF by ``html_to_pdf``. The same chart builders feed the Streamlit pages, so the page and the
printed report show the same pictures.

    html = build_provider_report_html(stat, "Harbor House", date(2026, 10, 1))
    pdf = html_to_pdf(html)

Plain-language conventions used everywhere (page, report):
- O/E = observed ÷ expected. Expected is what an average provider in the system would have
  achieved with this provider's clients. For exits, below 1 means fewer exits than clients
  like these usually have.
- A provider is flagged only when the 95 % interval of O/E excludes 1.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import TYPE_CHECKING, Any

import altair as alt
import polars as pl

from citystat.display.charts import UNITS, format_value
from citystat.display.report import Section, chart_svg, escape, figure_html, html_to_pdf, render_html, table_html
from citystat.results.data import ProviderResults, provider_results, provider_trend
from citystat.results.expressions import MONTH
from citystat.results.models import ContractMetric, ProviderContract
from citystat.display.format import format_day

if TYPE_CHECKING:
    from citystat.api import CityStat
    from citystat.results.abtest import ExperimentResult

__all__ = ["HOW_OE", "HOW_FLAG", "build_provider_report_html", "provider_report_pdf",
           "report_filename", "oe_trend_chart", "value_trend_chart", "oe_compare_chart",
           "payment_chart", "effect_chart", "fmt", "oe_text", "flag_text", "rank_change_text",
           "month_label", "parse_month"]

HOW_OE = ("**O/E = observed ÷ expected.** *Expected* is what an average provider in the system "
          "would have achieved with this provider's own clients (a model of the outcome on client "
          "characteristics, fitted across all providers). 1 means as expected. For exits to "
          "permanent housing, below 1 means fewer exits than clients like these usually have; "
          "for returns and length of stay (lower is better), below 1 is good.")
HOW_FLAG = ("A provider is **flagged only when the 95 % interval excludes 1**, i.e. when the gap "
            "from expected is too large to be chance. Small caseloads give wide intervals and "
            "are rarely flagged.")
HOW_ADJUSTED = ("*Adjusted* = O/E × the system's value: what this provider would show with an "
                "average caseload. Ranks: 1 = best. When the adjusted rank differs from the raw "
                "rank, adjustment changed the picture: ▲ moved up because its clients are harder "
                "than most, ▼ moved down because they are easier.")
FLAG_COLOURS = {"better": "#2E7D32", "worse": "#C62828", "not flagged": "#1F4E79"}


# --------------------------------------------------------------------------- text helpers

def fmt(value: Any, unit: str | None) -> str:
    """A metric value as text (unknown units shown as plain numbers)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format_value(float(value), unit if unit in UNITS else "number")


def oe_text(oe: Any, low: Any, high: Any) -> str:
    """``0.69 (0.63–0.76)``; no interval -> just the ratio."""
    if oe is None or (isinstance(oe, float) and math.isnan(oe)):
        return "—"
    if low is None or high is None:
        return f"{oe:.2f}"
    return f"{oe:.2f} ({low:.2f}–{high:.2f})"


def flag_text(flag: str | None) -> str:
    return {"better": "▲ better than expected", "worse": "▼ worse than expected"}.get(flag or "", "—")


def rank_change_text(change: Any) -> str:
    if change is None:
        return "—"
    if change > 0:
        return f"▲ {change}"
    if change < 0:
        return f"▼ {-change}"
    return "="


def month_label(month: date) -> str:
    return month.strftime("%B %Y")


def parse_month(text: str) -> date:
    """``2026-10`` -> ``date(2026, 10, 1)``; a clear error otherwise."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month {text!r} must look like YYYY-MM, e.g. 2026-10")
    return date(int(match.group(1)), int(match.group(2)), 1)


def _axis(unit: str | None) -> alt.Axis:
    if unit == "percent":
        return alt.Axis(format="%", title=None)
    return alt.Axis(title=unit if unit and unit != "number" else None)


# --------------------------------------------------------------------------- charts

def value_trend_chart(trend: pl.DataFrame, *, title: str, unit: str | None,
                      target: float | None = None, height: int = 220) -> alt.LayerChart:
    """Raw and risk-adjusted value by month, with the contract's target as a dashed line."""
    long = (trend.select(MONTH, pl.col("raw_value").alias("Raw"), pl.col("adjusted_value").alias("Adjusted"))
            .unpivot(index=MONTH, variable_name="series", value_name="value")
            .drop_nulls("value"))
    names = ["Raw", "Adjusted"] + (["Target"] if target is not None else [])
    colour = alt.Color("series:N", scale=alt.Scale(domain=names, range=["#1F4E79", "#E07B00", "#555555"][:len(names)]),
                       legend=alt.Legend(title=None, orient="top"))
    base = alt.Chart(long).encode(
        x=alt.X(f"{MONTH}:T", title=None, axis=alt.Axis(format="%b %Y", labelAngle=0, grid=False)),
        y=alt.Y("value:Q", axis=_axis(unit), scale=alt.Scale(zero=False)),
        color=colour,
        tooltip=[alt.Tooltip(f"{MONTH}:T", title="Month", format="%B %Y"), "series:N",
                 alt.Tooltip("value:Q", format=".1%" if unit == "percent" else ",.1f")])
    layers: list[Any] = [base.mark_line(point=True).properties(name="value_lines")]
    if target is not None:
        rule = alt.Chart(pl.DataFrame({"value": [target], "series": ["Target"]})).mark_rule(
            strokeDash=[6, 4]).encode(y="value:Q", color=colour).properties(name="target_rule")
        layers.append(rule)
    return alt.layer(*layers).properties(title=title, height=height)


def oe_trend_chart(trend: pl.DataFrame, *, title: str, height: int = 200) -> alt.LayerChart:
    """O/E by month with its 95 % interval as a band, the line at 1, flagged months coloured."""
    data = (trend.filter(pl.col("oe_ratio").is_not_null())
            .select(MONTH, "oe_ratio", "ci_low", "ci_high", "n",
                    pl.col("flag").fill_null("not flagged").alias("flag")))
    x = alt.X(f"{MONTH}:T", title=None, axis=alt.Axis(format="%b %Y", labelAngle=0, grid=False))
    # A month with a handful of clients has an interval up to 5 or more; cut the axis at 2.5 (or
    # the largest O/E) so that one tiny month does not flatten every other month into a line.
    top = max(1.5, min(2.5, max(data.get_column("ci_high").drop_nulls().to_list() or [1.5])),
              max(data.get_column("oe_ratio").to_list() or [0.0]) * 1.1)
    scale = alt.Scale(domain=[0, round(top, 2)], clamp=True)
    base = alt.Chart(data).encode(x=x)
    band = base.mark_area(opacity=0.2, color="#1F4E79").encode(
        y=alt.Y("ci_low:Q", title="O/E (observed ÷ expected)", scale=scale), y2="ci_high:Q").properties(name="ci_band")
    line = base.mark_line(color="#1F4E79").encode(y="oe_ratio:Q").properties(name="oe_line")
    points = base.mark_point(filled=True, size=50).encode(
        y="oe_ratio:Q",
        color=alt.Color("flag:N", scale=alt.Scale(domain=list(FLAG_COLOURS), range=list(FLAG_COLOURS.values())),
                        legend=alt.Legend(title="Flag", orient="top")),
        tooltip=[alt.Tooltip(f"{MONTH}:T", title="Month", format="%B %Y"),
                 alt.Tooltip("oe_ratio:Q", title="O/E", format=".2f"),
                 alt.Tooltip("ci_low:Q", title="95 % low", format=".2f"),
                 alt.Tooltip("ci_high:Q", title="95 % high", format=".2f"),
                 alt.Tooltip("n:Q", title="Clients"), "flag:N"]).properties(name="oe_points")
    one = alt.Chart(pl.DataFrame({"one": [1.0]})).mark_rule(strokeDash=[4, 3], color="#555").encode(
        y="one:Q").properties(name="expected_rule")
    return alt.layer(band, one, line, points).properties(title=title, height=height)


def oe_compare_chart(table: pl.DataFrame, *, title: str, height: int | None = None) -> alt.LayerChart:
    """Every provider's O/E with its 95 % interval (a forest plot), sorted as in ``table``."""
    data = table.filter(pl.col("oe_ratio").is_not_null()).select(
        "provider", "oe_ratio", "ci_low", "ci_high", pl.col("flag").fill_null("not flagged"))
    order = data.get_column("provider").to_list()
    # provider names whole (Vega cuts axis labels at 180 px by default)
    y = alt.Y("provider:N", sort=order, title=None, axis=alt.Axis(labelLimit=320))
    base = alt.Chart(data).encode(y=y)
    bars = base.mark_rule(strokeWidth=2, color="#888").encode(
        x=alt.X("ci_low:Q", title="O/E with 95 % interval (1 = as expected)", scale=alt.Scale(zero=False)),
        x2="ci_high:Q").properties(name="ci_rules")
    points = base.mark_point(filled=True, size=80).encode(
        x="oe_ratio:Q",
        color=alt.Color("flag:N", scale=alt.Scale(domain=list(FLAG_COLOURS), range=list(FLAG_COLOURS.values())),
                        legend=alt.Legend(title="Flag", orient="top")),
        tooltip=["provider:N", alt.Tooltip("oe_ratio:Q", title="O/E", format=".2f"),
                 alt.Tooltip("ci_low:Q", format=".2f"), alt.Tooltip("ci_high:Q", format=".2f"),
                 "flag:N"]).properties(name="oe_points")
    one = alt.Chart(pl.DataFrame({"one": [1.0]})).mark_rule(strokeDash=[4, 3], color="#555").encode(
        x="one:Q").properties(name="expected_rule")
    return alt.layer(bars, one, points).properties(title=title, height=height or 34 * max(len(order), 3))


def payment_chart(schedule: pl.DataFrame, *, cap: float, achieved: float | None,
                  title: str) -> alt.LayerChart:
    """Payment by outcome level (relative effect), the contract's cap, and where results stand."""
    data = schedule.select("relative_effect", "payment", "payment_within_contract_cap", "units")
    x = alt.X("relative_effect:Q", title="Improvement on the control group (relative effect)",
              axis=alt.Axis(format="%"))
    line = alt.Chart(data).mark_line(point=True, color="#1F4E79", interpolate="step-after").encode(
        x=x, y=alt.Y("payment_within_contract_cap:Q", title="Payment ($)", axis=alt.Axis(format="$,.2s")),
        tooltip=[alt.Tooltip("relative_effect:Q", title="Improvement", format=".0%"),
                 alt.Tooltip("units:Q", title="Units", format=",.0f"),
                 alt.Tooltip("payment_within_contract_cap:Q", title="Payment", format="$,.0f")]
    ).properties(name="payment_line")
    cap_rule = alt.Chart(pl.DataFrame({"cap": [cap], "label": [f"Contract cap ${cap:,.0f}"]}))
    layers: list[Any] = [line, cap_rule.mark_rule(color="#C62828", strokeDash=[6, 4]).encode(y="cap:Q")
                         .properties(name="cap_rule"),
                         cap_rule.mark_text(align="left", dx=4, dy=-6, color="#C62828").encode(
                             y="cap:Q", x=alt.value(0), text="label:N").properties(name="cap_label")]
    if achieved is not None and not math.isnan(achieved):
        now = pl.DataFrame({"relative_effect": [achieved], "label": [f"Results to date: {achieved:.1%}"]})
        layers.append(alt.Chart(now).mark_rule(color="#2E7D32").encode(x="relative_effect:Q")
                      .properties(name="achieved_rule"))
        layers.append(alt.Chart(now).mark_text(align="right", dx=-4, dy=10, color="#2E7D32").encode(
            x="relative_effect:Q", y=alt.value(0), text="label:N").properties(name="achieved_label"))
    return alt.layer(*layers).properties(title=title, height=260)


def effect_chart(result: "ExperimentResult", *, minimum_effect: float, unit: str | None = None) -> alt.LayerChart:
    """The effect (treatment − control) with its 95 % interval, zero, and the hoped-for effect."""
    percent = result.outcome_kind == "proportion"
    scale = 100.0 if percent else 1.0
    title = "Effect, percentage points" if percent else f"Effect{f' ({unit})' if unit else ''}"
    data = pl.DataFrame({"what": ["Effect"], "effect": [result.effect * scale],
                         "low": [result.ci_low * scale], "high": [result.ci_high * scale]})
    refs = pl.DataFrame({"x": [0.0, minimum_effect * scale],
                         "label": ["no effect", "hoped-for effect"]})
    y = alt.Y("what:N", title=None, axis=None)
    interval = alt.Chart(data).mark_rule(strokeWidth=3, color="#1F4E79").encode(
        x=alt.X("low:Q", title=title), x2="high:Q", y=y).properties(name="ci_rule")
    point = alt.Chart(data).mark_point(filled=True, size=120, color="#1F4E79").encode(
        x="effect:Q", y=y, tooltip=[alt.Tooltip("effect:Q", format=".2f"), alt.Tooltip("low:Q", format=".2f"),
                                    alt.Tooltip("high:Q", format=".2f")]).properties(name="effect_point")
    rules = alt.Chart(refs).mark_rule(strokeDash=[4, 3], strokeWidth=2).encode(
        x="x:Q", color=alt.Color("label:N", scale=alt.Scale(domain=["no effect", "hoped-for effect"],
                                                            range=["#555", "#E07B00"]),
                                 legend=alt.Legend(title=None, orient="top"))).properties(name="reference_rules")
    return alt.layer(rules, interval, point).properties(height=120)


# --------------------------------------------------------------------------- the progress report

def report_filename(provider: str, month: date, extension: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", provider.lower()).strip("-")
    return f"provider-report-{slug}-{month:%Y-%m}.{extension}"


REPORT_CSS = """
.metric-cards { display: flex; flex-wrap: wrap; gap: .6rem; margin: .8rem 0; }
.metric-cards .tile { border: 1px solid var(--rule); border-radius: 4px; padding: .4rem .6rem; width: 10.5rem; }
.metric-cards .tile .n { font-size: 15pt; font-weight: bold; display: block; }
.metric-cards .tile .l { font-size: 8.5pt; color: var(--muted); display: block; }
.flag-worse { color: var(--off-track); font-weight: bold; }
.flag-better { color: var(--on-track); font-weight: bold; }
.explain { font-size: 9.5pt; color: var(--muted); }
"""


def _row(frame: pl.DataFrame, **where: Any) -> dict | None:
    rows = frame
    for column, value in where.items():
        rows = rows.filter(pl.col(column) == value)
    return rows.row(0, named=True) if rows.height else None


def _flag_html(flag: str | None) -> str:
    if not flag:
        return "—"
    return f'<span class="flag-{escape(flag)}">{escape(flag_text(flag))}</span>'


def _met_text(row: dict | None, metric: ContractMetric) -> str:
    if row is None or metric.target is None or row.get("raw_value") is None:
        return "—"
    return "yes" if row.get("meets_target") else "no"


def _to_date_text(row: dict | None, metric: ContractMetric) -> str:
    if row is None:
        return "—"
    text = f"{fmt(row['raw_value'], metric.unit)} / {fmt(row['adjusted_value'], metric.unit)}"
    return text + (f" {flag_text(row['flag'])}" if row.get("flag") else "")


def _month_window(months: list[date], month: date, count: int = 12) -> list[date]:
    upto = [m for m in months if m <= month]
    return upto[-count:]


def build_provider_report_html(stat: "CityStat", provider: str, month: date, *,
                               page_size: str = "A4", results: ProviderResults | None = None) -> str:
    """The monthly progress report of one provider: every contract metric with its target, this
    month's raw and adjusted result, O/E and flag, rank among providers, the contract-to-date
    figure and a 12-month trend (value and O/E charts).

    Raises KeyError for an unknown provider and ValueError for a month without data, with the
    choices in the message.
    """
    results = results or provider_results(stat)
    contract = results.contract_for(provider)
    if month not in results.months:
        raise ValueError(f"no data for {month:%Y-%m}; months with data: "
                         f"{results.months[0]:%Y-%m} to {results.months[-1]:%Y-%m}" if results.months
                         else "no provider data at all")
    city = stat.registry.city.name
    title = f"{provider} — progress report, {month_label(month)}"
    n_providers = len(results.providers)
    mine_month = results.monthly.filter((pl.col("provider") == provider) & (pl.col(MONTH) == month))
    mine_all = results.overall.filter(pl.col("provider") == provider)
    window = _month_window(results.months, month)

    # charts render in parallel-safe vl-convert; a dozen small SVGs take a few seconds
    sections: list[Section] = [Section("This month at a glance", _summary_html(
        contract, mine_month, mine_all, n_providers, results, month), anchor="summary", page_break=False)]
    for metric in contract.metrics:
        sections.append(Section(metric.title, _metric_html(results, contract, metric, provider, month, window),
                                anchor=f"metric-{metric.id}",
                                subtitle=f"{'Higher' if metric.direction == 'higher' else 'Lower'} is better"
                                         + (f" · target {fmt(metric.target, metric.unit)}"
                                            if metric.target is not None else " · no target")))
    sections.append(Section("How to read this report", _how_html(), anchor="how", page_break=False))
    department = (stat.registry.departments[contract.department].name
                  if contract.department in stat.registry.departments else contract.department)
    partial = "" if results.is_complete(month) else " (partial month: data runs to " \
        f"{results.data_end:%d %B %Y})"
    flags = mine_month.filter(pl.col("flag").is_not_null())
    through = f"{results.data_end:%d %B %Y}" if results.data_end else "—"
    cover = (f'<p class="meta">{escape(city)} · Monthly provider progress report · '
             f'{escape(month_label(month))}{escape(partial)}</p>'
             f'<p class="meta">Contract {escape(contract.id)} · {escape(contract.service)}'
             f'{" · " + escape(department) if department else ""} · contract period '
             f'{format_day(contract.period.start)} to {format_day(contract.period.end)}</p>'
             f'<p class="meta">Compared with all {n_providers} contracted providers · data through '
             f'{escape(through)}</p>')
    cover += _cards_html(contract, mine_month, flags.height)
    return render_html(title, sections, REPORT_CSS, cover_html=cover, subtitle="Monthly provider progress report",
                       footer=f"{city} · {title}", page_size=page_size)


def _cards_html(contract: ProviderContract, mine_month: pl.DataFrame, flagged: int) -> str:
    tiles = []
    for metric in contract.metrics:
        row = _row(mine_month, metric_id=metric.id)
        value = fmt(row["raw_value"], metric.unit) if row else "—"
        tiles.append(f'<div class="tile"><span class="n">{escape(value)}</span>'
                     f'<span class="l">{escape(metric.title)} (this month)</span></div>')
    tiles.append(f'<div class="tile"><span class="n">{flagged}</span>'
                 f'<span class="l">significant gaps flagged this month</span></div>')
    return f'<div class="metric-cards">{"".join(tiles)}</div>'


def _summary_html(contract: ProviderContract, mine_month: pl.DataFrame, mine_all: pl.DataFrame,
                  n_providers: int, results: ProviderResults, month: date) -> str:
    rows = []
    for metric in contract.metrics:
        now = _row(mine_month, metric_id=metric.id)
        todate = _row(mine_all, metric_id=metric.id)
        rank = (f"{now['raw_rank']} → {now['adjusted_rank']} of {n_providers}"
                if now and now.get("adjusted_rank") is not None else
                (f"{now['raw_rank']} of {n_providers}" if now else "—"))
        rows.append((metric.title, fmt(metric.target, metric.unit) if metric.target is not None else "—",
                     fmt(now["raw_value"], metric.unit) if now else "not measured yet",
                     fmt(now["adjusted_value"], metric.unit) if now else "—",
                     oe_text(now["oe_ratio"], now["ci_low"], now["ci_high"]) if now else "—",
                     flag_text(now["flag"]) if now else "—", rank, _met_text(now, metric),
                     _to_date_text(todate, metric)))
    table = table_html(("Metric", "Target", "This month", "Adjusted", "O/E (95 % CI)", "Flag",
                        "Rank raw → adjusted", "Target met", "Contract to date: raw / adjusted"), rows,
                       numeric=("Target", "This month", "Adjusted", "O/E (95 % CI)"),
                       caption=f"{month_label(month)}: results against target and against expected")
    missing = [m.title for m in contract.metrics if _row(mine_month, metric_id=m.id) is None]
    note = ""
    if missing:
        note = (f'<p class="explain">Not measured this month: {escape(", ".join(missing))}. Returns to '
                "homelessness are known only 12 months after an exit, so recent months have none yet.</p>")
    return (table + note + '<p class="explain">Contract to date = every month of the contract period with '
            f"data (through {results.data_end:%d %B %Y}). Ranks: 1 = best of {n_providers}.</p>"
            if results.data_end else table + note)


def _metric_html(results: ProviderResults, contract: ProviderContract, metric: ContractMetric,
                 provider: str, month: date, window: list[date]) -> str:
    trend = provider_trend(results.monthly, provider, metric.id).filter(pl.col(MONTH).is_in(window))
    description = f"<p>{escape(metric.description)}</p>" if metric.description else ""
    if trend.is_empty():
        return description + '<p class="muted">No month in the last twelve has data for this metric yet.</p>'
    value_svg = chart_svg(value_trend_chart(trend, title=f"{metric.title}: raw and adjusted, by month",
                                            unit=metric.unit, target=metric.target), width=600)
    charts = figure_html(value_svg, value_trend_summary(trend, title=metric.title, unit=metric.unit,
                                                        target=metric.target))
    if trend.get_column("oe_ratio").drop_nulls().len():
        oe_svg = chart_svg(oe_trend_chart(trend, title="Observed ÷ expected, with 95 % interval (1 = as expected)"),
                           width=600)
        charts += figure_html(oe_svg, oe_trend_summary(trend, title=metric.title))
    rows = [(month_label(r[MONTH]) + ("" if results.is_complete(r[MONTH]) else " (partial)"),
             f"{r['n']:,}", fmt(r["raw_value"], metric.unit), fmt(r["adjusted_value"], metric.unit),
             _expected_text(r, metric),
             oe_text(r["oe_ratio"], r["ci_low"], r["ci_high"]), flag_text(r["flag"]),
             f"{r['raw_rank']} → {r['adjusted_rank']}" if r["adjusted_rank"] is not None else f"{r['raw_rank']}")
            for r in trend.sort(MONTH, descending=True).iter_rows(named=True)]
    table = table_html(("Month", "Clients", "Raw", "Adjusted", "Expected", "O/E (95 % CI)", "Flag",
                        "Rank raw → adj."), rows,
                       numeric=("Clients", "Raw", "Adjusted", "Expected", "O/E (95 % CI)"),
                       caption="The last twelve months")
    return description + charts + table


def value_trend_summary(trend: pl.DataFrame, *, title: str, unit: str | None, target: float | None) -> str:
    """One sentence for the raw-and-adjusted chart (its text alternative)."""
    rows = [r for r in trend.sort(MONTH).iter_rows(named=True) if r.get("raw_value") is not None]
    if not rows:
        return f"{title}, by month: no values yet."
    first, last = rows[0], rows[-1]
    text = (f"{title}, raw and adjusted, by month, {month_label(first[MONTH])} to {month_label(last[MONTH])}: "
            f"latest raw {fmt(last['raw_value'], unit)}, adjusted {fmt(last.get('adjusted_value'), unit)}")
    return text + (f", against a target of {fmt(target, unit)}." if target is not None else ".")


def oe_trend_summary(trend: pl.DataFrame, *, title: str) -> str:
    """One sentence for the observed ÷ expected chart (its text alternative)."""
    rows = [r for r in trend.sort(MONTH).iter_rows(named=True) if r.get("oe_ratio") is not None]
    if not rows:
        return f"{title}: observed ÷ expected, no values yet."
    last = rows[-1]
    flagged = sum(1 for r in rows if r.get("flag"))
    return (f"{title}: observed ÷ expected by month, {month_label(rows[0][MONTH])} to {month_label(last[MONTH])}; "
            f"latest {oe_text(last['oe_ratio'], last['ci_low'], last['ci_high'])}, {flag_text(last['flag']) if last.get('flag') else 'not flagged'}; "
            f"{flagged} of {len(rows)} months flagged.")


def _expected_text(row: dict, metric: ContractMetric) -> str:
    """Expected as a value on the metric's scale: the share (rates) or mean an average provider
    would have had with these clients."""
    if metric.kind == "median" or row.get("expected") is None or not row.get("n"):
        return "—"
    return fmt(row["expected"] / row["n"], metric.unit)


def _how_html() -> str:
    from citystat.display.report import safe_markdown

    return safe_markdown("\n\n".join([
        HOW_OE, HOW_FLAG, HOW_ADJUSTED,
        "Each month is compared with the whole system *in the same month*, so city-wide swings "
        "(seasons, policy changes) are not blamed on a provider. *Expected* in the monthly table "
        "is the share an average provider would have reached with these clients that month.",
    ]))


def provider_report_pdf(stat: "CityStat", provider: str, month: date, *, page_size: str = "A4") -> bytes:
    """The same report printed to PDF (WeasyPrint, via citystat.display.report.html_to_pdf)."""
    return html_to_pdf(build_provider_report_html(stat, provider, month, page_size=page_size))
