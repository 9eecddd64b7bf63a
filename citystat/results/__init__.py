"""Results-driven contracting and evaluation: provider scorecards, Pay for Success, A/B tests.

- :mod:`models`: contracts.yaml / experiments.yaml models and line-keeping loaders;
- :mod:`risk`: risk-adjusted provider scorecards (logistic O/E with exact intervals);
- :mod:`pfs`: Pay for Success outcomes, payments and caps;
- :mod:`abtest`: A/B test effects, intervals, power and plain-language verdicts.

The statistics (:mod:`risk`, :mod:`pfs`, :mod:`abtest`) import neither Streamlit nor DuckDB and work
on Polars frames; :mod:`data` reads the extracts through the engine and hands them those frames.
"""

import importlib

# Imported on first use, so that `python -m citystat <command>` does not load statsmodels.
_HOMES = {
    "abtest": ("ExperimentResult", "analyse_experiment", "difference_in_means", "two_proportions",
               "what_works_log"),
    "models": ("ContractsFile", "ExperimentsFile", "ResultsConfigError", "load_contracts", "load_experiments"),
    "pfs": ("PfsResult", "payment_for", "payment_schedule", "pfs_status"),
    "risk": ("RiskModel", "contract_scorecards", "expected_by_provider", "expected_by_provider_month",
             "expected_mean_by_provider", "fit_risk_model", "metric_by_provider"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"citystat.results.{_WHERE[name]}"), name)
    raise AttributeError(name)


__all__ = [
    "ContractsFile", "ExperimentResult", "ExperimentsFile", "PfsResult", "ResultsConfigError",
    "RiskModel", "analyse_experiment", "contract_scorecards", "difference_in_means",
    "expected_by_provider", "expected_by_provider_month", "expected_mean_by_provider",
    "fit_risk_model", "load_contracts", "load_experiments", "metric_by_provider", "payment_for",
    "payment_schedule", "pfs_status", "two_proportions", "what_works_log",
]
