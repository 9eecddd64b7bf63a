"""Pay for Success: outcomes to date against target, the payment each outcome level triggers,
payments due so far and the cap."""

import polars as pl
import streamlit as st

from citystat.auth import Role
from citystat.display.charts import format_value
from citystat.results.abtest import format_p
from citystat.results.data import pfs_results
from citystat.results.pfs import payment_schedule
from citystat.results.report import payment_chart
from citystat.ui.context import city
from citystat.ui.charts import show_chart
from citystat.ui.guard import require_role
from citystat.ui.widgets import problems_notice
from citystat.display.format import format_day

require_role(Role.STAFF)
stat = city()
st.title("Pay for Success")
st.caption("Investors fund a programme; the city repays only for outcomes independently measured "
           "against a randomized control group.")

data = pfs_results(stat)
problems_notice(data.problems, "the contracts concerned")
if not data.contracts:
    st.info("No Pay for Success contract to show. Declare one under pay_for_success in contracts.yaml.")
    st.stop()

contracts = {c.id: c for c in data.contracts}
contract_id = st.selectbox("Contract", list(contracts), format_func=lambda c: contracts[c].title) \
    if len(contracts) > 1 else next(iter(contracts))
contract = contracts[contract_id]
result = data.results[contract_id]


def money(value: float) -> str:
    return format_value(value, "currency")


st.subheader(contract.title)
people = [f"Population: {contract.population.description} ({contract.population.size:,})"]
people += [f"provider: {contract.service_provider}"] if contract.service_provider else []
people += [f"intermediary: {contract.intermediary}"] if contract.intermediary else []
people += [f"evaluator: {contract.evaluator}"] if contract.evaluator else []
st.caption(" · ".join(people))
if contract.description:
    st.markdown(contract.description)

cards = st.columns(2) + st.columns(2)
cards[0].metric("Treatment participants", f"{result.treatment_enrolled:,}", border=True,
                help=f"Enrolled in the programme; {result.treatment_evaluated:,} have completed follow-up "
                     f"(control group evaluated: {result.control_evaluated:,}).")
cards[1].metric("Payments due so far", money(result.payments_due), border=True,
                help="Sum of the payments triggered by each paid outcome, held to the contract cap.")
cards[2].metric("Payment cap", money(result.payment_cap), border=True,
                help=f"Investment: {money(result.investment)}. Headroom left under the cap: "
                     f"{money(result.headroom)}.")
cards[3].metric("Investment", money(result.investment), border=True)
st.progress(min(result.payments_due / result.payment_cap, 1.0),
            text=f"{money(result.payments_due)} due of the {money(result.payment_cap)} cap "
                 f"({result.payments_due / result.payment_cap:.0%})"
                 + (" — the cap applies" if result.cap_applied else ""))
st.caption(f"To date: outcomes of the {result.treatment_evaluated:,} treatment and "
           f"{result.control_evaluated:,} control participants whose follow-up is complete. "
           "Payments grow as more participants complete follow-up.")

st.subheader("Outcomes to date against target")


def level(outcome, value: float) -> str:
    return f"{value:.1%}" if outcome.kind == "proportion" else f"{value:,.1f} {outcome.unit}s"


rows = []
for o in result.outcomes:
    declared = next(d for d in contract.outcomes if d.id == o.outcome_id)
    rows.append({
        "Outcome": o.title,
        "Better when": "lower" if o.direction == "lower" else "higher",
        "Treatment": level(declared, o.treatment_value), "Control": level(declared, o.control_value),
        "Improvement": "—" if o.relative_effect is None else f"{o.relative_effect:.1%}",
        "Target": "—" if o.target_relative_effect is None else f"{o.target_relative_effect:.0%} improvement",
        "Target met": "—" if o.target_met is None else ("yes" if o.target_met else "not yet"),
        "Outcome units": f"{o.units:,.0f} {o.unit}s" if o.paid else "—",
        "p-value": format_p(o.p_value),
        "Payment triggered": money(o.payment_triggered) if o.paid else "not paid",
    })
st.dataframe(pl.DataFrame(rows), hide_index=True, width="stretch")
st.caption("Improvement = how much better the treatment group did than the control group, as a share of "
           "the control group's level (a 40 % cut in incarceration = 0.40). Units = the improvement × "
           "treatment participants evaluated (e.g. jail bed-days avoided).")

st.subheader("What each outcome level would pay")
paid = [o for o in contract.outcomes if o.paid]
if not paid:
    st.info("No outcome in this contract is paid.")
else:
    tabs = st.tabs([o.title for o in paid])
    for tab, outcome in zip(tabs, paid):
        now = next(r for r in result.outcomes if r.outcome_id == outcome.id)
        schedule = payment_schedule(contract, outcome.id, now.control_value, now.treatment_n)
        with tab:
            rule = (f"${outcome.price_per_unit:,.2f} per {outcome.unit}"
                    + (f", paid once the improvement reaches {outcome.minimum_relative_effect:.1%}"
                       if outcome.minimum_relative_effect else "")
                    if outcome.price_per_unit is not None else "tiered payments")
            st.caption(f"Payment rule: {rule}. Control group level {level(outcome, now.control_value)}; "
                       f"{now.treatment_n:,} treatment participants evaluated.")
            show_chart(payment_chart(schedule, cap=contract.payment_cap, achieved=now.relative_effect,
                                     title=f"{outcome.title}: payment by improvement on the control group"),
                       f"{outcome.title}: the payment due at each level of improvement on the control group; "
                       "the table below lists it.", width="stretch", height=340)
            st.dataframe(schedule.select(
                pl.col("relative_effect").map_elements(lambda v: f"{v:.1%}", return_dtype=pl.String)
                .alias("Improvement"),
                pl.col("treatment_value").map_elements(lambda v: level(outcome, v), return_dtype=pl.String)
                .alias("Treatment level"),
                pl.col("units").map_elements(lambda v: f"{v:,.0f}", return_dtype=pl.String)
                .alias(f"{outcome.unit.capitalize()}s"),
                pl.col("payment_within_contract_cap").map_elements(money, return_dtype=pl.String)
                .alias("Payment"),
                pl.col("meets_target").map_elements(lambda v: "—" if v is None else ("yes" if v else ""),
                                                    return_dtype=pl.String, skip_nulls=False)
                .alias("Meets target")), hide_index=True, width="stretch")

if contract.schedule:
    st.subheader("Schedule")
    st.dataframe(pl.DataFrame([{"Date": format_day(s.on), "Event": s.event} for s in contract.schedule]),
                 hide_index=True, width="stretch")
st.caption("Evaluation: " + contract.evaluation_design)
