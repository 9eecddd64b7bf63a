"""Results-driven contracting and evaluation (issue 5): pure statistics over Polars frames.

- :mod:`models`: contracts.yaml / experiments.yaml models and line-keeping loaders;
- :mod:`risk`: risk-adjusted provider scorecards (logistic O/E with exact intervals);
- :mod:`pfs`: Pay for Success outcomes, payments and caps;
- :mod:`abtest`: A/B test effects, intervals, power and plain-language verdicts.

Nothing here imports streamlit or duckdb: callers load the extracts and pass frames in.
"""

from citystat.results.abtest import (ExperimentResult, analyse_experiment, difference_in_means,
                                     two_proportions, what_works_log)
from citystat.results.models import (ContractsFile, ExperimentsFile, ResultsConfigError,
                                     load_contracts, load_experiments)
from citystat.results.pfs import PfsResult, payment_for, payment_schedule, pfs_status
from citystat.results.risk import (RiskModel, contract_scorecards, expected_by_provider,
                                   expected_by_provider_month, expected_mean_by_provider,
                                   fit_risk_model, metric_by_provider)

__all__ = [
    "ContractsFile", "ExperimentResult", "ExperimentsFile", "PfsResult", "ResultsConfigError",
    "RiskModel", "analyse_experiment", "contract_scorecards", "difference_in_means",
    "expected_by_provider", "expected_by_provider_month", "expected_mean_by_provider",
    "fit_risk_model", "load_contracts", "load_experiments", "metric_by_provider", "payment_for",
    "payment_schedule", "pfs_status", "two_proportions", "what_works_log",
]
