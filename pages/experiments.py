"""Evaluation: A/B tests of service changes, per arm, effect with 95 % interval, power, a
plain-language verdict, and the "what works" log of every experiment."""

import polars as pl
import streamlit as st

from citystat.auth import Role
from citystat.results.abtest import format_p
from citystat.results.data import experiment_results
from citystat.results.report import effect_chart
from citystat.ui.context import city
from citystat.ui.charts import show_chart
from citystat.ui.guard import require_role
from citystat.ui.widgets import problems_notice
from citystat.files.csv import csv_text
from citystat.display.format import format_day

require_role(Role.STAFF)
stat = city()
st.title("Experiments")
st.caption("Randomized A/B tests of service changes: did the change work, and was the test big enough to tell?")

data = experiment_results(stat)
problems_notice(data.problems, "the experiments concerned")
if not data.experiments:
    st.info("No experiment to show. Declare experiments in experiments.yaml next to metrics.yaml.")
    st.stop()

departments = {d.id: d.name for d in stat.registry.departments.values()}
experiments = {e.id: e for e in data.experiments}
wanted = st.query_params.get("experiment")
ids = list(experiments)
experiment_id = st.selectbox("Experiment", ids, index=ids.index(wanted) if wanted in ids else 0,
                             format_func=lambda e: experiments[e].title, key="experiment")
st.query_params["experiment"] = experiment_id
experiment = experiments[experiment_id]
result = data.result(experiment_id)

st.subheader(experiment.title)
st.caption(f"{departments.get(experiment.department, experiment.department)} · status: {experiment.status} · "
           f"{format_day(experiment.start)} to {format_day(experiment.end)}" if experiment.end else
           f"{departments.get(experiment.department, experiment.department)} · status: {experiment.status} · "
           f"from {format_day(experiment.start)}")
st.markdown(f"**Hypothesis.** {experiment.hypothesis}")

verdict_box = {"worked": st.success, "backfired": st.error}.get(result.result, st.info)
verdict_box(f"**Verdict: {result.result}.** {result.verdict}")

if result.control is None or result.treatment is None:
    st.stop()

proportion = experiment.outcome_kind == "proportion"


def shown(value: float) -> str:
    return f"{value:.1%}" if proportion else f"{value:,.2f}{' ' + experiment.unit if experiment.unit else ''}"


st.subheader("Per arm")
arms = pl.DataFrame([
    {"Arm": arm.label, "Role": role, "Participants (n)": arm.n,
     ("Outcome rate" if proportion else "Outcome mean"): shown(arm.value),
     **({"Yes": arm.successes} if proportion else {"Std. dev.": f"{arm.sd:,.2f}"})}
    for arm, role in ((result.control, "control"), (result.treatment, "treatment"))])
st.dataframe(arms, hide_index=True, width="stretch")

st.subheader("Effect")
points = 100 if proportion else 1
unit_word = " points" if proportion else (f" {experiment.unit}" if experiment.unit else "")
cards = st.columns(3)
cards[0].metric("Effect (treatment − control)", f"{result.effect * points:+.1f}{unit_word}", border=True,
                help="Percentage points for a rate." if proportion else None)
cards[1].metric("95 % confidence interval",
                f"{result.ci_low * points:.1f} – {result.ci_high * points:.1f}", border=True,
                help=f"In{unit_word or ' the outcome units'}: the range of effects consistent with the "
                     "data. If it excludes 0 the effect is statistically significant.")
cards[2].metric("p-value", format_p(result.p_value), border=True,
                help=f"Chance of a difference at least this large if the change did nothing. "
                     f"Below {experiment.alpha:g} counts as significant.")
show_chart(effect_chart(result, minimum_effect=experiment.minimum_detectable_effect
                        * (1 if experiment.direction == "higher" else -1), unit=experiment.unit),
           "The estimated effect with its 95 % confidence interval against zero and the smallest effect "
           "worth detecting; the cards above give the same figures.", width="stretch", height=170)

st.subheader("Was the sample large enough?")
mde = (f"{experiment.minimum_detectable_effect * 100:g} percentage points" if proportion
       else f"{experiment.minimum_detectable_effect:g}{unit_word}")
if result.large_enough:
    st.success(f"Yes. With {result.control.n:,} and {result.treatment.n:,} participants the test had a "
               f"{result.achieved_power:.0%} chance of detecting the hoped-for effect of {mde} "
               f"(designed for {experiment.power:.0%}; about {result.required_n_per_arm:,} per arm needed).")
else:
    st.warning(f"No. With {result.control.n:,} and {result.treatment.n:,} participants the test had only a "
               f"{result.achieved_power:.0%} chance of detecting the hoped-for effect of {mde}; about "
               f"{result.required_n_per_arm:,} per arm were needed for {experiment.power:.0%}. "
               "A \"no effect\" result from a test this small is inconclusive.")

st.divider()
st.subheader("What works: every experiment and its result")
log = data.log.select(
    pl.col("title").alias("Experiment"),
    pl.col("department").replace_strict(departments, default=pl.col("department")).alias("Department"),
    pl.col("status").alias("Status"),
    (pl.col("n_control") + pl.col("n_treatment")).alias("Participants"),
    pl.struct("effect", "ci_low", "ci_high", "outcome_kind").map_elements(
        lambda r: "—" if r["effect"] is None else (
            f"{r['effect'] * 100:+.1f} pts ({r['ci_low'] * 100:+.1f} to {r['ci_high'] * 100:+.1f})"
            if r["outcome_kind"] == "proportion" else
            f"{r['effect']:+,.2f} ({r['ci_low']:+,.2f} to {r['ci_high']:+,.2f})"),
        return_dtype=pl.String).alias("Effect (95 % CI)"),
    pl.col("p_value").map_elements(format_p, return_dtype=pl.String).alias("p-value"),
    pl.col("large_enough").map_elements(lambda v: "—" if v is None else ("yes" if v else "no"),
                                        return_dtype=pl.String, skip_nulls=False).alias("Large enough"),
    pl.col("result").alias("Result"),
    pl.col("verdict").alias("Verdict"),
)
st.dataframe(log, hide_index=True, width="stretch",
             column_config={"Verdict": st.column_config.TextColumn(width="large")})
st.download_button("Download the log (CSV)", csv_text(data.log), file_name="what_works_log.csv",
                   mime="text/csv", icon=":material/download:", on_click="ignore")
