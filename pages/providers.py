"""Provider scorecards: contracted providers side by side, raw and risk-adjusted, and each
provider's trend month by month; the monthly progress report as HTML or PDF."""

from datetime import date

import polars as pl
import streamlit as st

from citystat.auth import Role
from citystat.display.report import html_to_pdf
from citystat.results.data import provider_results, provider_trend, side_by_side
from citystat.results.report import (HOW_ADJUSTED, HOW_FLAG, HOW_OE, build_provider_report_html, fmt,
                                     flag_text, month_label, oe_compare_chart, oe_text, oe_trend_chart,
                                     oe_trend_summary, rank_change_text, report_filename, value_trend_chart,
                                     value_trend_summary)
from citystat.ui.context import city
from citystat.ui.charts import show_chart
from citystat.ui.guard import require_role
from citystat.ui.widgets import problems_notice
from citystat.display.format import format_day

require_role(Role.STAFF)
stat = city()
st.title("Provider scorecards")
st.caption("Results-driven contracting: each contracted provider's outcomes, raw and adjusted for "
           "how hard its clients are to serve, compared with every other provider.")

with st.spinner("Fitting the risk models (only when the data or contracts change)…"):
    results = provider_results(stat)

problems_notice(results.problems, "the contracts concerned")
if not results.contracts:
    st.info("No provider contract to show. Declare contracts in contracts.yaml next to metrics.yaml.")
    st.stop()

metrics = {}
for contract in results.contracts:
    for metric in contract.metrics:
        metrics.setdefault(metric.id, metric)

TO_DATE = "to_date"
months = results.months
default_month = results.latest_complete_month or months[-1]
period_options = [TO_DATE] + list(reversed(months))


def period_name(option) -> str:
    if option == TO_DATE:
        return "Contract period to date"
    return month_label(option) + ("" if results.is_complete(option) else " (partial month)")


metric_id = st.segmented_control("Metric", list(metrics), default=next(iter(metrics)), required=True,
                                 format_func=lambda m: metrics[m].title, key="metric", width="stretch")
period = st.selectbox("Period", period_options, index=period_options.index(default_month),
                      format_func=period_name, key="period", width=320,
                      help="One month (each month is compared with the whole system that month) or "
                           "the whole contract period so far.")
metric = metrics[metric_id]
unit = metric.unit

with st.expander("How to read this: O/E, flags and adjusted ranks", expanded=False):
    st.markdown(HOW_OE + "\n\n" + HOW_FLAG + "\n\n" + HOW_ADJUSTED)

frame = results.overall if period == TO_DATE else results.monthly
table = side_by_side(frame, metric_id, None if period == TO_DATE else period)
st.subheader(f"{metric.title} · {period_name(period)}")
st.caption(("Higher" if metric.direction == "higher" else "Lower") + " is better"
           + (f" · target {fmt(metric.target, unit)}" if metric.target is not None else " · no target")
           + " · O/E = observed ÷ expected: "
           + ("below 1 means fewer exits than clients like these usually have"
              if metric.direction == "higher" else "below 1 means better than clients like these usually do")
           + " · flagged only when the 95 % interval excludes 1")
if table.is_empty():
    st.info("No provider has data for this metric in this period"
            + (" (returns are known only 12 months after an exit)." if metric_id.startswith("return") else "."))
else:
    flagged = table.filter(pl.col("flag").is_not_null())
    moved = table.filter(pl.col("rank_change").fill_null(0) != 0)
    cards = st.columns(3)
    cards[0].metric("Providers", table.height, border=True)
    cards[1].metric("Flagged (significant gap)", flagged.height, border=True,
                    help="Flagged only when the 95 % interval of O/E excludes 1.")
    cards[2].metric("Rank changed by adjustment", moved.height, border=True,
                    help="Providers whose adjusted rank differs from their raw rank.")
    shown = table.select(
        pl.col("provider").alias("Provider"), pl.col("service").alias("Service"),
        pl.col("n").alias("Clients"),
        pl.col("raw_value").map_elements(lambda v: fmt(v, unit), return_dtype=pl.String).alias("Raw"),
        pl.col("adjusted_value").map_elements(lambda v: fmt(v, unit), return_dtype=pl.String).alias("Adjusted"),
        pl.struct("oe_ratio", "ci_low", "ci_high").map_elements(
            lambda r: oe_text(r["oe_ratio"], r["ci_low"], r["ci_high"]), return_dtype=pl.String
        ).alias("O/E (95 % CI)"),
        pl.col("flag").map_elements(flag_text, return_dtype=pl.String, skip_nulls=False).alias("Flag"),
        pl.col("raw_rank").alias("Raw rank"), pl.col("adjusted_rank").alias("Adjusted rank"),
        pl.col("rank_change").map_elements(rank_change_text, return_dtype=pl.String, skip_nulls=False)
        .alias("Rank change"),
        pl.col("meets_target").map_elements(lambda v: "—" if v is None else ("yes" if v else "no"),
                                            return_dtype=pl.String, skip_nulls=False).alias("Meets target"),
    )
    st.dataframe(shown, hide_index=True, width="stretch", key="side_by_side",
                 column_config={"Service": st.column_config.TextColumn(width="small"),
                                "Flag": st.column_config.TextColumn(width="medium"),
                                "Clients": st.column_config.NumberColumn(width="small"),
                                "Raw rank": st.column_config.NumberColumn(width="small"),
                                "Adjusted rank": st.column_config.NumberColumn(width="small")})
    st.caption("Sorted by adjusted rank (1 = best). Rank change: ▲ adjustment moved the provider up "
               "(its clients are harder to serve than most), ▼ moved it down.")
    if table.get_column("oe_ratio").drop_nulls().len():
        # an explicit height: without it Streamlit drew layered charts at about a quarter height
        show_chart(oe_compare_chart(table, title="Observed ÷ expected by provider (1 = as expected)"),
                   f"Observed ÷ expected with its 95 % interval for each of the {table.height} providers; "
                   "the table above lists the same figures.", width="stretch", height=34 * table.height + 110)

st.divider()
st.subheader("A provider month by month")
providers = results.providers
provider = st.selectbox("Provider", providers, key="provider",
                        index=providers.index(st.query_params["provider"])
                        if st.query_params.get("provider") in providers else 0)
st.query_params["provider"] = provider
contract = results.contract_for(provider)
st.caption(f"{contract.service} · contract {contract.id} · "
           f"{format_day(contract.period.start)} to {format_day(contract.period.end)}")
tabs = st.tabs([m.title for m in contract.metrics])
for tab, m in zip(tabs, contract.metrics):
    with tab:
        trend = provider_trend(results.monthly, provider, m.id)
        if trend.is_empty():
            st.info("No month has data for this metric yet.")
            continue
        latest = trend.row(-1, named=True)
        show_chart(value_trend_chart(trend, title=f"{m.title}: raw and adjusted", unit=m.unit, target=m.target),
                   value_trend_summary(trend, title=m.title, unit=m.unit, target=m.target), width="stretch",
                   height=300)
        if trend.get_column("oe_ratio").drop_nulls().len():
            show_chart(oe_trend_chart(trend, title="Observed ÷ expected with 95 % interval (1 = as expected)"),
                       oe_trend_summary(trend, title=m.title), width="stretch", height=280)
        st.caption(f"Latest month with data: {month_label(latest['month'])}: raw {fmt(latest['raw_value'], m.unit)}, "
                   f"adjusted {fmt(latest['adjusted_value'], m.unit)}, O/E "
                   f"{oe_text(latest['oe_ratio'], latest['ci_low'], latest['ci_high'])}, "
                   f"{flag_text(latest['flag']).lower() if latest['flag'] else 'not flagged'}. Each month is "
                   "compared with the whole system in the same month.")

st.divider()
st.subheader("Monthly progress report")
report_month: date = st.selectbox("Report month", list(reversed(months)),
                                  index=list(reversed(months)).index(default_month),
                                  format_func=period_name, key="report_month")
st.caption(f"{provider}'s metrics, targets, adjusted results and twelve-month trends, built like the "
           "stat-session packets. The file is made when you click.")


def _html() -> str:
    return build_provider_report_html(stat, provider, report_month, results=results)


buttons = st.columns(2)
buttons[0].download_button("Report (HTML)", _html, file_name=report_filename(provider, report_month, "html"),
                           mime="text/html", icon=":material/download:", on_click="ignore", key="report_html")
buttons[1].download_button("Report (PDF)", lambda: html_to_pdf(_html()),
                           file_name=report_filename(provider, report_month, "pdf"),
                           mime="application/pdf", icon=":material/download:", on_click="ignore", key="report_pdf")
st.caption(f"Risk models fitted in {results.seconds:.1f} s; kept until the extracts or contracts.yaml change.")
