"""Extracts: bring a city's data (CSV, Excel, PostgreSQL, open-data portals) into month-partitioned
Parquet that the registry reads, declared in extracts.yaml and run by `citystat extract` (cron)."""

from citystat.extract.loader import ExtractsConfig, load_extracts
from citystat.extract.readers import BadRow, ExtractError
from citystat.extract.runner import BadRowsError, RunResult, read_state, run_extract

__all__ = ["BadRow", "BadRowsError", "ExtractError", "ExtractsConfig", "RunResult", "load_extracts", "read_state",
           "run_extract"]
