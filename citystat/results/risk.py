"""Risk-adjusted provider comparison (indirect standardisation), as contracted-services
programmes such as Seattle's do it.

Why: a provider that takes harder clients (chronically homeless, disabled, many prior
episodes) will have fewer exits to permanent housing even if it does its job as well as
anyone. Comparing raw rates punishes it. So we

1. fit ONE model of the outcome on client characteristics across *all* providers
   (logistic regression for yes/no outcomes, via statsmodels; never hand-written fitting);
2. for each provider, *expected* = the sum of its clients' predicted values: what an average
   provider would have achieved with this provider's clients;
3. compare *observed* with expected: the O/E ratio (1 = as expected), with a confidence
   interval, and flag a provider only when the interval excludes 1.

The provider itself is deliberately not a covariate: the model describes the system-wide
average, and the O/E ratio is how far each provider sits from it. A consequence worth
knowing in the provider meeting: when one large provider is truly worse it pulls the system
average down, so average providers can show O/E slightly above 1 (and, with big caseloads,
a "better" flag). The comparison is always "against the system as it is", not against an
ideal.

Direction ("which way is better") is a property of the outcome and is declared per metric in
contracts.yaml: exits to permanent housing — higher is better; returns to homelessness within
12 months — lower is better; length of stay — lower is better (HUD System Performance
Measure 1, "length of time homeless", treats shorter as better).

Rows with a null outcome or a null covariate are left out of both fitting and the O/E sums
(a client who cannot be predicted cannot be compared). ``returned_within_12m`` is null unless
the exit was at least 365 days before the data end, so those exits drop out by construction.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import polars as pl
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

from citystat.results.expressions import MONTH, OUTCOME, metric_rows
from citystat.results.models import ContractMetric, ProviderContract

Family = Literal["binomial", "poisson"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MONTH_KEY = "month_key"


class RiskModelError(ValueError):
    """The risk model cannot be fitted (bad covariate, too little data, no variation...)."""


@dataclass(frozen=True)
class RiskModel:
    """A fitted system-wide model: predicts what an average provider achieves for a client."""

    outcome: str
    covariates: tuple[str, ...]
    family: Family
    formula: str
    result: Any  # statsmodels GLMResultsWrapper
    n: int
    overall_mean: float  # observed mean outcome over the fitted rows (a rate for binomial)
    overall_median: float

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Predicted probability (binomial) or mean (poisson) for each row of ``frame``."""
        return np.asarray(self.result.predict(_to_pandas(frame, self.outcome, self.covariates)),
                          dtype=float)


def fit_risk_model(frame: pl.DataFrame, outcome: str, covariates: list[str] | tuple[str, ...],
                   family: Family = "binomial") -> RiskModel:
    """Fit the outcome on client characteristics with a statsmodels GLM.

    ``family='binomial'`` (logit link) for a 0/1 outcome. ``family='poisson'`` (log link) for a
    non-negative continuous outcome such as days: Poisson *quasi*-likelihood is consistent for
    the mean whatever the outcome's distribution, tolerates zeros (a Gamma model does not),
    and its log link makes covariates act multiplicatively, which suits skewed durations. Its
    standard errors are not used; O/E intervals come from residuals (see
    :func:`expected_mean_by_provider`).

    Booleans enter as 0/1, numbers linearly, strings (and categoricals) as categories
    (``C(name)``, reference level = first in sort order).
    """
    for name in (outcome, *covariates):
        if name not in frame.columns:
            raise RiskModelError(f"column {name!r} is not in the data (columns: {sorted(frame.columns)})")
        if not _NAME.match(name):
            raise RiskModelError(f"column name {name!r} must be a plain identifier to use in a model")
    rows = frame.select([outcome, *covariates]).drop_nulls()
    if rows.height < len(covariates) + 10:
        raise RiskModelError(f"only {rows.height} complete rows to fit {outcome!r} on {len(covariates)} covariates")
    y = rows.get_column(outcome).cast(pl.Float64)
    if family == "binomial" and not y.is_in([0.0, 1.0]).all():
        raise RiskModelError(f"{outcome!r} must be 0/1 (true/false) for a logistic model")
    if family == "poisson" and (y < 0).any():
        raise RiskModelError(f"{outcome!r} must be non-negative for a log-link mean model")
    if y.n_unique() < 2:
        raise RiskModelError(f"{outcome!r} has no variation; nothing to adjust")
    terms = [f"C({c})" if _is_categorical(rows.schema[c]) else c for c in covariates]
    formula = f"{outcome} ~ " + (" + ".join(terms) if terms else "1")
    glm_family = sm.families.Binomial() if family == "binomial" else sm.families.Poisson()
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=sm.tools.sm_exceptions.PerfectSeparationWarning)
        try:
            model = smf.glm(formula, data=_to_pandas(rows, outcome, covariates), family=glm_family)
            result = model.fit(scale="X2" if family == "poisson" else None)
        except (sm.tools.sm_exceptions.PerfectSeparationWarning, np.linalg.LinAlgError,
                ValueError) as exc:
            raise RiskModelError(f"cannot fit {formula!r}: {exc}") from exc
    return RiskModel(outcome=outcome, covariates=tuple(covariates), family=family, formula=formula,
                     result=result, n=rows.height, overall_mean=float(y.mean()),
                     overall_median=float(y.median()))


def exact_poisson_interval(observed: float, expected: float, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Garwood) interval for the O/E ratio, treating the observed count as Poisson.

    Why this method: it is the standard interval for a standardised ratio (SMR) from
    indirect standardisation, it is exact (never too narrow) for small counts, where the
    normal approximation fails, and it needs only scipy's chi-square quantiles:
    lower = chi2(alpha/2; 2·O)/2 / E, upper = chi2(1 − alpha/2; 2·O + 2)/2 / E.
    E is treated as fixed: it comes from a model fitted on every provider's clients, so its
    own uncertainty is small next to the provider's count. For common outcomes (rates near
    50 %) a Poisson count is more variable than a sum of Bernoulli trials, so the interval is
    somewhat conservative — which is the right side to err on when a flag goes in front of a
    provider meeting: we flag only gaps that are clearly real.
    """
    if expected <= 0:
        return (math.nan, math.nan)
    low = 0.0 if observed <= 0 else stats.chi2.ppf(alpha / 2, 2 * observed) / 2
    high = stats.chi2.ppf(1 - alpha / 2, 2 * observed + 2) / 2
    return (float(low / expected), float(high / expected))


def exact_poisson_p_value(observed: float, expected: float) -> float:
    """Two-sided exact Poisson test of O against mean E (the test the Garwood interval inverts)."""
    if expected <= 0:
        return math.nan
    k = int(round(observed))
    lower_tail = stats.poisson.cdf(k, expected)
    upper_tail = stats.poisson.sf(k - 1, expected)
    return float(min(1.0, 2 * min(lower_tail, upper_tail)))


def flag_for(ci_low: float | None, ci_high: float | None, direction: str) -> str | None:
    """"better"/"worse" only when the O/E interval excludes 1; None otherwise."""
    if ci_low is None or ci_high is None or math.isnan(ci_low) or math.isnan(ci_high):
        return None
    if ci_low > 1:
        return "better" if direction == "higher" else "worse"
    if ci_high < 1:
        return "worse" if direction == "higher" else "better"
    return None


def expected_by_provider(frame: pl.DataFrame, model: RiskModel, provider_column: str,
                         direction: str = "higher", alpha: float = 0.05) -> pl.DataFrame:
    """Observed vs expected for a yes/no outcome, one row per provider.

    Columns: provider, n, observed, expected, oe_ratio, ci_low, ci_high (exact Poisson, see
    :func:`exact_poisson_interval`), p_value, raw_rate, adjusted_rate (= O/E × the overall
    rate, clipped to 1: the rate this provider would show with an average caseload),
    raw_rank, adjusted_rank (1 = best, in the metric's direction), flag.
    """
    return _binary_table(_predicted(frame, model, provider_column), [provider_column], model,
                         direction, alpha, rank_within=[]).rename({provider_column: "provider"})


def expected_by_provider_month(frame: pl.DataFrame, model: RiskModel, provider_column: str,
                               date_column: str, direction: str = "higher",
                               alpha: float = 0.05) -> pl.DataFrame:
    """The same table per provider and month (``month`` = first day); ranks are within month.

    The caller chooses the standard through the model: fitted on client characteristics
    over all months, every month is judged against one fixed system average; with the month
    as a covariate too (what :func:`metric_by_provider` does for monthly tables), each
    provider-month is judged against the system in that same month.
    """
    rows = _predicted(frame, model, provider_column).with_columns(
        pl.col(date_column).cast(pl.Date).dt.truncate("1mo").alias(MONTH))
    table = _binary_table(rows, [provider_column, MONTH], model, direction, alpha, rank_within=[MONTH])
    return table.rename({provider_column: "provider"}).sort(["provider", MONTH])


def expected_mean_by_provider(frame: pl.DataFrame, model: RiskModel, provider_column: str,
                              direction: str = "lower", alpha: float = 0.05,
                              group_columns: tuple[str, ...] = ()) -> pl.DataFrame:
    """Observed vs expected for a numeric outcome (e.g. length of stay in days).

    O = sum of outcomes, E = sum of predictions from the log-link mean model, O/E = the ratio
    of the provider's mean to what an average provider would have had with these clients.
    Interval: a normal interval on log(O/E) with the variance of O estimated from the
    residuals, Var(O) ≈ Σ(yᵢ − μᵢ)² — robust to the outcome's distribution (no assumption
    that days are Poisson or Gamma), and the log scale keeps the interval positive and
    respects the skew of a ratio. Needs n ≥ 20 for the normal approximation; smaller groups
    get no interval and are never flagged.

    Also raw_mean, raw_median, adjusted_mean (= O/E × overall mean) and adjusted_median
    (= O/E × overall median; under a log link with a constant shape every quantile scales by
    the same factor, so the median scales with the mean).
    """
    keys = [provider_column, *group_columns]
    rows = _predicted(frame, model, provider_column)
    z = stats.norm.ppf(1 - alpha / 2)
    table = (
        rows.group_by(keys)
        .agg(n=pl.len(), observed=pl.col(OUTCOME).sum(), expected=pl.col("predicted").sum(),
             raw_mean=pl.col(OUTCOME).mean(), raw_median=pl.col(OUTCOME).median(),
             residual_ss=((pl.col(OUTCOME) - pl.col("predicted")) ** 2).sum())
        .with_columns(oe_ratio=pl.col("observed") / pl.col("expected"))
        .with_columns(se_log=(pl.col("residual_ss").sqrt() / pl.col("observed")))
    )
    ok = (pl.col("n") >= 20) & (pl.col("observed") > 0)
    table = table.with_columns(
        ci_low=pl.when(ok).then(pl.col("oe_ratio") * (-z * pl.col("se_log")).exp()),
        ci_high=pl.when(ok).then(pl.col("oe_ratio") * (z * pl.col("se_log")).exp()),
        p_value=pl.when(ok).then(pl.col("oe_ratio").log() / pl.col("se_log")),
    ).with_columns(
        p_value=pl.col("p_value").map_batches(
            lambda s: pl.Series(2 * stats.norm.sf(np.abs(s.to_numpy())), dtype=pl.Float64),
            return_dtype=pl.Float64),
        adjusted_mean=pl.col("oe_ratio") * model.overall_mean,
        adjusted_median=pl.col("oe_ratio") * model.overall_median,
    ).drop("residual_ss", "se_log")
    table = _ranks_and_flags(table, "raw_mean", direction, rank_within=list(group_columns))
    return table.rename({provider_column: "provider"}).sort(["provider", *group_columns])


def _predicted(frame: pl.DataFrame, model: RiskModel, provider_column: str) -> pl.DataFrame:
    if provider_column not in frame.columns:
        raise RiskModelError(f"provider column {provider_column!r} is not in the data")
    rows = frame.drop_nulls([model.outcome, *model.covariates, provider_column])
    predicted = model.predict(rows) if rows.height else np.array([], dtype=float)
    return rows.with_columns(pl.col(model.outcome).cast(pl.Float64).alias(OUTCOME),
                             pl.Series("predicted", predicted, dtype=pl.Float64))


def _binary_table(rows: pl.DataFrame, keys: list[str], model: RiskModel, direction: str,
                  alpha: float, rank_within: list[str]) -> pl.DataFrame:
    table = rows.group_by(keys).agg(n=pl.len(), observed=pl.col(OUTCOME).sum(),
                                    expected=pl.col("predicted").sum())
    intervals = [exact_poisson_interval(o, e, alpha) for o, e in
                 zip(table["observed"].to_list(), table["expected"].to_list())]
    p_values = [exact_poisson_p_value(o, e) for o, e in
                zip(table["observed"].to_list(), table["expected"].to_list())]
    table = table.with_columns(
        oe_ratio=pl.col("observed") / pl.col("expected"),
        ci_low=pl.Series([i[0] for i in intervals], dtype=pl.Float64),
        ci_high=pl.Series([i[1] for i in intervals], dtype=pl.Float64),
        p_value=pl.Series(p_values, dtype=pl.Float64),
        raw_rate=pl.col("observed") / pl.col("n"),
    ).with_columns(adjusted_rate=(pl.col("oe_ratio") * model.overall_mean).clip(upper_bound=1.0))
    return _ranks_and_flags(table, "raw_rate", direction, rank_within)


def _rank(column: str, direction: str, within: list[str] | tuple[str, ...]) -> pl.Expr:
    """1 = best in the metric's direction; ties share the better rank."""
    expr = pl.col(column).rank(method="min", descending=direction == "higher").cast(pl.Int64)
    return expr.over(list(within)) if within else expr


def _ranks_and_flags(table: pl.DataFrame, raw_column: str, direction: str,
                     rank_within: list[str]) -> pl.DataFrame:
    flags = [flag_for(lo, hi, direction) for lo, hi in
             zip(table["ci_low"].to_list(), table["ci_high"].to_list())]
    return table.with_columns(pl.col("n").cast(pl.Int64),
                              raw_rank=_rank(raw_column, direction, rank_within),
                              adjusted_rank=_rank("oe_ratio", direction, rank_within),
                              flag=pl.Series(flags, dtype=pl.String))


def _is_categorical(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, (pl.Enum, pl.Categorical))


def _to_pandas(frame: pl.DataFrame, outcome: str, covariates: tuple[str, ...] | list[str]):
    """Pandas for statsmodels' formulas: booleans as 0/1, categories as plain strings."""
    cols = [c for c in (outcome, *covariates) if c in frame.columns]
    casts = []
    for c in cols:
        dtype = frame.schema[c]
        if dtype == pl.Boolean:
            casts.append(pl.col(c).cast(pl.Int8))
        elif _is_categorical(dtype):
            casts.append(pl.col(c).cast(pl.String))
        else:
            casts.append(pl.col(c).cast(pl.Float64))
    return frame.select(casts).to_pandas()


# --------------------------------------------------------------------------- scorecards

SCORECARD_COLUMNS = ["contract_id", "provider", "metric_id", "metric_title", "kind", "direction",
                     "n", "raw_value", "adjusted_value", "expected", "oe_ratio", "ci_low",
                     "ci_high", "p_value", "raw_rank", "adjusted_rank", "flag", "target",
                     "meets_target"]


def metric_by_provider(frame: pl.DataFrame, metric: ContractMetric, provider_column: str,
                       date_column: str, period: tuple[date, date] | None = None,
                       by_month: bool = False, alpha: float = 0.05,
                       owner: str = "metric") -> pl.DataFrame:
    """One declared metric for every provider in ``frame`` (and month, if ``by_month``).

    Columns: provider[, month], metric_id, kind, n, raw_value, adjusted_value, expected,
    oe_ratio, ci_low, ci_high, p_value, raw_rank, adjusted_rank, flag. Without
    ``risk_adjust`` the adjusted columns are null and ranks are raw only.
    """
    rows = metric_rows(frame, outcome=metric.outcome, kind=metric.kind, filter=metric.filter,
                       owner=f"{owner} '{metric.id}'",
                       date_column=metric.date_column or date_column, period=period)
    groups = (MONTH,) if by_month else ()
    keys = ["provider", *groups]
    if rows.height == 0:
        return pl.DataFrame(schema={**{k: pl.Date for k in keys}, "provider": pl.String,
                                    "metric_id": pl.String, "kind": pl.String, "n": pl.Int64,
                                    **{c: pl.Float64 for c in ("raw_value", "adjusted_value",
                                       "expected", "oe_ratio", "ci_low", "ci_high", "p_value")},
                                    "raw_rank": pl.Int64, "adjusted_rank": pl.Int64,
                                    "flag": pl.String}).select(*keys, pl.exclude(keys))
    rows = rows.rename({provider_column: "provider"}) if provider_column != "provider" else rows
    quiet = rows.head(0)
    if metric.risk_adjust and by_month:
        # A month whose outcome never varies (all exits temporary, say) cannot enter a model
        # with a month term (perfect separation); it is shown raw, without O/E or flag.
        varies = rows.group_by(MONTH).agg(pl.col(OUTCOME).n_unique() > 1).filter(pl.col(OUTCOME))
        quiet = rows.join(varies.select(MONTH), on=MONTH, how="anti")
        rows = rows.join(varies.select(MONTH), on=MONTH, how="semi")
    if metric.risk_adjust and rows.height:
        family: Family = "binomial" if metric.kind == "rate" else "poisson"
        covariates = list(metric.covariates)
        if by_month:
            # Month as a covariate: each provider-month is compared with the whole system in
            # the same month, so system-wide movements (seasons, policy changes, and the
            # edges of the data window, where only short stays have ended yet) are not
            # mistaken for provider effects. The raw value still shows the absolute trend.
            rows = rows.with_columns(pl.col(MONTH).cast(pl.String).alias(_MONTH_KEY))
            covariates.append(_MONTH_KEY)
        model = fit_risk_model(rows, OUTCOME, covariates, family=family)
        if metric.kind == "rate":
            table = (expected_by_provider_month(rows, model, "provider", MONTH, metric.direction, alpha)
                     if by_month else expected_by_provider(rows, model, "provider", metric.direction, alpha))
            table = table.rename({"raw_rate": "raw_value", "adjusted_rate": "adjusted_value"})
        else:
            table = expected_mean_by_provider(rows, model, "provider", metric.direction, alpha, groups)
            raw, adjusted = (("raw_mean", "adjusted_mean") if metric.kind == "mean"
                             else ("raw_median", "adjusted_median"))
            table = table.rename({raw: "raw_value", adjusted: "adjusted_value"})
            if metric.kind == "median":  # rank what is shown: the median, not the mean
                table = table.with_columns(raw_rank=_rank("raw_value", metric.direction, groups))
        if by_month:
            table = _adjust_to_month_system(table, rows, metric.kind)
    else:
        table = _raw_table(rows, keys, metric)
    if quiet.height:
        table = pl.concat([table, _raw_table(quiet, keys, metric)], how="diagonal_relaxed")
        table = table.with_columns(raw_rank=_rank("raw_value", metric.direction, groups))
    for col in ("adjusted_value", "expected", "oe_ratio", "ci_low", "ci_high", "p_value"):
        if col not in table.columns:
            table = table.with_columns(pl.lit(None, dtype=pl.Float64).alias(col))
    if "adjusted_rank" not in table.columns:
        table = table.with_columns(adjusted_rank=pl.lit(None, dtype=pl.Int64))
    if "flag" not in table.columns:
        table = table.with_columns(flag=pl.lit(None, dtype=pl.String))
    return table.select(
        *keys, pl.lit(metric.id).alias("metric_id"), pl.lit(metric.kind).alias("kind"),
        pl.col("n").cast(pl.Int64), "raw_value", "adjusted_value", "expected", "oe_ratio",
        "ci_low", "ci_high", "p_value", "raw_rank", "adjusted_rank", "flag",
    ).sort(keys)


def _adjust_to_month_system(table: pl.DataFrame, rows: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Monthly adjusted value = O/E × the whole system's value in that same month.

    Why: with the month as a covariate, O/E compares a provider-month with the system in that
    month, so the adjusted value must be scaled by that month's system value too. Scaling by
    the all-months value (as the overall table does) put, e.g., a 19-day median stay in the
    first month of data (when only short stays had ended) next to an "adjusted" 69 days.
    """
    statistic = pl.col(OUTCOME).median() if kind == "median" else pl.col(OUTCOME).mean()
    system = rows.group_by(MONTH).agg(statistic.alias("_system"))
    adjusted = pl.col("oe_ratio") * pl.col("_system")
    if kind == "rate":
        adjusted = adjusted.clip(upper_bound=1.0)
    return (table.join(system, on=MONTH, how="left")
            .with_columns(adjusted_value=adjusted).drop("_system"))


def _raw_table(rows: pl.DataFrame, keys: list[str], metric: ContractMetric) -> pl.DataFrame:
    agg = {"rate": pl.col(OUTCOME).mean(), "mean": pl.col(OUTCOME).mean(),
           "median": pl.col(OUTCOME).median()}[metric.kind]
    groups = [k for k in keys if k != "provider"]
    return (rows.group_by(keys).agg(n=pl.len(), raw_value=agg)
            .with_columns(raw_rank=_rank("raw_value", metric.direction, groups)))


def contract_scorecards(contracts: list[ProviderContract], frames: dict[str, pl.DataFrame],
                        by_month: bool = False, alpha: float = 0.05) -> pl.DataFrame:
    """Every contracted provider's declared metrics, side by side, raw and risk-adjusted.

    Each metric is computed once per (source, definition, period) across *all* providers in
    the source — the risk model must see everyone — and each contract keeps its provider's
    rows. ``target``/``meets_target`` come from the contract (met = raw value on the right
    side of the target). Columns: :data:`SCORECARD_COLUMNS` (+ ``month`` when ``by_month``).
    """
    cache: dict[tuple[str, str, date, date], pl.DataFrame] = {}
    parts: list[pl.DataFrame] = []
    for contract in contracts:
        if contract.source not in frames:
            raise KeyError(f"contract '{contract.id}': no data for source '{contract.source}'")
        period = (contract.period.start, contract.period.end)
        for metric in contract.metrics:
            key = (contract.source, metric.model_dump_json(), *period)
            if key not in cache:
                cache[key] = metric_by_provider(
                    frames[contract.source], metric, contract.provider_column,
                    contract.date_column, period, by_month, alpha, owner=f"contract '{contract.id}' metric")
            mine = cache[key].filter(pl.col("provider") == contract.provider)
            target = pl.lit(metric.target, dtype=pl.Float64)
            meets = (pl.col("raw_value") >= target) if metric.direction == "higher" else (pl.col("raw_value") <= target)
            parts.append(mine.with_columns(
                contract_id=pl.lit(contract.id), metric_title=pl.lit(metric.title),
                direction=pl.lit(metric.direction), target=target,
                meets_target=meets if metric.target is not None else pl.lit(None, dtype=pl.Boolean)))
    columns = SCORECARD_COLUMNS[:2] + ([MONTH] if by_month else []) + SCORECARD_COLUMNS[2:]
    if not parts:
        return pl.DataFrame(schema={c: pl.String for c in columns})
    return pl.concat([p.select(columns) for p in parts], how="vertical_relaxed")
