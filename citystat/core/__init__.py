"""CityStat's pure core: period arithmetic, targets, status, XmR, assurance, CityScore,
comparisons and change attribution.

Imports neither Streamlit nor DuckDB, so it runs in milliseconds in tests and notebooks.
"""

from citystat.core.assurance import ASSURANCE_LABELS, assurance_for, assurance_now, describe_assurance
from citystat.core.attribution import (
    Attribution,
    Contribution,
    attribute_change,
    describe_contribution,
    drivers,
    explain_change,
    percentage_points,
)
from citystat.core.cityscore import city_score, metric_score
# `compare` (the function) is not re-exported: it would shadow the submodule citystat.core.compare.
from citystat.core.compare import Comparison, compare_with_prior_and_last_year
from citystat.core.periods import (
    GRAINS,
    Grain,
    fiscal_year,
    latest_complete_period,
    period_end,
    period_label,
    period_start,
    periods_between,
    same_period_last_year,
    shift_period,
)
from citystat.core.spc import (
    MR_RULE,
    RULE_DESCRIPTIONS,
    Limits,
    PointResult,
    Signal,
    SignalNow,
    describe_signal,
    describe_signal_now,
    detect_signals,
    format_rules,
    moving_ranges,
    process_behaviour,
    signal_now,
    signals,
    verdict_for,
    xmr_limits,
)
from citystat.core.status import STATUS_COLOURS, STATUS_LABELS, Status, status_for
from citystat.core.targets import target_for

__all__ = [
    "ASSURANCE_LABELS", "GRAINS", "MR_RULE", "RULE_DESCRIPTIONS", "STATUS_COLOURS",
    "STATUS_LABELS",
    "Attribution", "Comparison", "Contribution", "Grain", "Limits", "PointResult", "Signal", "SignalNow",
    "Status",
    "assurance_for", "assurance_now", "attribute_change", "city_score",
    "compare_with_prior_and_last_year", "describe_assurance", "describe_contribution", "describe_signal",
    "describe_signal_now", "detect_signals", "drivers", "explain_change", "fiscal_year", "format_rules",
    "latest_complete_period", "metric_score", "moving_ranges", "percentage_points", "period_end",
    "period_label", "period_start", "periods_between", "process_behaviour", "same_period_last_year",
    "shift_period", "signal_now", "signals", "status_for", "target_for", "verdict_for", "xmr_limits",
]
