"""CityStat's pure core: period arithmetic, targets, status, XmR, CityScore, comparisons.

Imports neither Streamlit nor DuckDB, so it runs in milliseconds in tests and notebooks.
"""

from citystat.core.cityscore import BOSTON_FORMULAS, boston_score, city_score, metric_score
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
    RULE_DESCRIPTIONS,
    Limits,
    PointResult,
    detect_signals,
    format_rules,
    moving_ranges,
    process_behaviour,
    xmr_limits,
)
from citystat.core.status import STATUS_COLOURS, STATUS_LABELS, Status, status_for
from citystat.core.targets import target_for

__all__ = [
    "BOSTON_FORMULAS", "GRAINS", "RULE_DESCRIPTIONS", "STATUS_COLOURS", "STATUS_LABELS",
    "Comparison", "Grain", "Limits", "PointResult", "Status",
    "boston_score", "city_score", "compare_with_prior_and_last_year",
    "detect_signals", "fiscal_year", "format_rules", "latest_complete_period", "metric_score",
    "moving_ranges", "period_end", "period_label", "period_start", "periods_between",
    "process_behaviour", "same_period_last_year", "shift_period", "status_for", "target_for",
    "xmr_limits",
]
