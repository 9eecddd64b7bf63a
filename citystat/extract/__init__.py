"""Extracts: bring a city's data (CSV, Excel, PostgreSQL, open-data portals) into month-partitioned
Parquet that the registry reads, declared in extracts.yaml and run by `citystat extract` (cron)."""

from .loader import ExtractsConfig, load_extracts
from .readers import BadRow, ExtractError
from .runner import BadRowsError, RunResult, read_state, run_extract

__all__ = ["BadRow", "BadRowsError", "ExtractError", "ExtractsConfig", "RunResult", "load_extracts", "read_state",
           "run_extract"]
