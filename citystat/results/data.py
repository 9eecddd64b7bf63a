"""The results pages' data: contracts and experiments, their sources read through the engine,
the fitted scorecards, Pay for Success status and experiment results, cached per fingerprint.

Why a cache: the provider scorecards fit one logistic (or log-link) model per metric, over all
providers, once for the whole period and once with a month term. That takes seconds, and a
Streamlit page reruns on every click. Results are therefore kept in a module-level dict keyed
by :func:`results_fingerprint` (the engine's fingerprint of the registry and the extracts,
plus the text of contracts.yaml and experiments.yaml): an edited extract or YAML is picked up
on the next call, an unchanged one is never refitted. The dict is per process, so the pages,
the CLI and a notebook all share it.

contracts.yaml and experiments.yaml live next to the registry file (``registry.root``). Each
source they name must be a registry source id; it is read with ``SELECT * FROM "<id>"``
through :class:`citystat.kpis.engine.Engine` (the id is checked against the registry first and
quoted as an identifier; nothing typed by a user reaches the SQL). What is cheap to check
against the registry is checked (the source exists and is readable, the columns exist, the
expressions evaluate on the source's columns), and each problem names the file, the line and
the contract or experiment; the pages show the list plainly and leave the broken item out.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import polars as pl

from citystat.core.kept import KeptValues
from citystat.core.periods import latest_complete_period, period_end
from citystat.kpis.engine import QueryError, quote_identifier
from citystat.registry.loader import Problem
from citystat.results.abtest import ExperimentResult, analyse_experiment, what_works_log
from citystat.results.expressions import MONTH, metric_rows
from citystat.results.models import (ContractsFile, Experiment, ExperimentsFile,
                                     PayForSuccessContract, ProviderContract, ResultsConfigError,
                                     load_contracts, load_experiments)
from citystat.results.pfs import PfsResult, pfs_status
from citystat.results.risk import contract_scorecards

if TYPE_CHECKING:
    from citystat.api import CityStat

CONTRACTS_FILE = "contracts.yaml"
EXPERIMENTS_FILE = "experiments.yaml"
_CACHE_SIZE = 12  # a few fingerprints per kind: enough for a live reload, bounded memory


class SourceUnavailableError(ValueError):
    """A contract or experiment names a source the registry lacks or the engine cannot read."""


# --------------------------------------------------------------------------- paths and sources

def contracts_path(stat: "CityStat") -> Path:
    """contracts.yaml next to the registry file."""
    return stat.registry.root / CONTRACTS_FILE


def experiments_path(stat: "CityStat") -> Path:
    """experiments.yaml next to the registry file."""
    return stat.registry.root / EXPERIMENTS_FILE


def load_source(stat: "CityStat", source_id: str, *, limit_zero: bool = False) -> pl.DataFrame:
    """A registry source as a Polars frame, read through the engine (``limit_zero``: schema only).

    The id must be a registry source the engine could open; the error says which file names it
    and why it cannot be read.
    """
    registry = stat.registry
    if source_id not in registry.sources:
        raise SourceUnavailableError(f"there is no source {source_id!r} in {registry.path.name} "
                                     f"(sources: {', '.join(sorted(registry.sources))})")
    engine = stat.engine
    if source_id not in engine.available:
        reasons = [p.message for p in engine.problems if p.entry == f"source {source_id}"]
        raise SourceUnavailableError(f"source {source_id!r} cannot be read"
                                     + (f": {reasons[0]}" if reasons else " (see Data health)"))
    sql = f"SELECT * FROM {quote_identifier(source_id)}" + (" LIMIT 0" if limit_zero else "")
    return engine.query(sql, context=f"source {source_id}")


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "missing"


def results_fingerprint(stat: "CityStat") -> str:
    """Changes when the registry, any extract, contracts.yaml or experiments.yaml changes."""
    return (f"{stat.engine.fingerprint()}-{_file_digest(contracts_path(stat))}"
            f"-{_file_digest(experiments_path(stat))}")


# --------------------------------------------------------------------------- cache

_cache = KeptValues(_CACHE_SIZE)


def _cached(stat: "CityStat", kind: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per (registry file, kind, fingerprint); concurrent callers wait for it
    (two sessions opening the page at once fit the models once)."""
    return _cache.get((str(stat.registry_path), kind, results_fingerprint(stat)), compute)


def clear_cache() -> None:
    """Forget every cached result (tests, or to time a cold fit)."""
    _cache.clear()


def _single_threaded_blas():
    """Fit with one BLAS thread: on a busy 2-core server multithreaded OpenBLAS made the
    monthly fits ~4x slower (15 s instead of 3.5 s). A no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up
        from contextlib import nullcontext
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# --------------------------------------------------------------------------- config + validation

def _line_of(path: Path, item_id: str) -> int | None:
    """The line that declares ``id: <item_id>`` (the loaders keep lines only for errors)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for number, text in enumerate(lines, start=1):
        stripped = text.strip().lstrip("-").strip()
        if stripped.startswith("id:") and stripped[3:].split("#")[0].strip().strip("'\"") == item_id:
            return number
    return None


def _config_problem(exc: ResultsConfigError) -> Problem:
    entry = None
    if exc.item_id:
        entry = f"{'experiment' if Path(exc.file).name == EXPERIMENTS_FILE else 'contract'} {exc.item_id}"
    message = f"field {exc.field}: {exc.message}" if exc.field else exc.message
    return Problem(exc.file, exc.line, entry, message)


def _columns_problems(stat: "CityStat", path: Path, kind: str, item_id: str, source: str,
                      columns: dict[str, str | None]) -> tuple[list[Problem], pl.DataFrame | None]:
    """Source exists and is readable; each named column is in it. Returns the empty schema frame."""
    line = _line_of(path, item_id)
    entry = f"{kind} {item_id}"
    try:
        empty = load_source(stat, source, limit_zero=True)
    except (SourceUnavailableError, QueryError) as exc:
        return [Problem(str(path), line, entry, f"source: {exc}")], None
    problems = [Problem(str(path), line, entry,
                        f"{field_name}: column {column!r} is not in source {source!r} "
                        f"(columns: {', '.join(empty.columns)})")
                for field_name, column in columns.items() if column and column not in empty.columns]
    return problems, empty


def validate_provider_contract(stat: "CityStat", path: Path, contract: ProviderContract) -> list[Problem]:
    columns: dict[str, str | None] = {"provider_column": contract.provider_column,
                                      "date_column": contract.date_column}
    for i, metric in enumerate(contract.metrics):
        columns[f"metrics[{i}].date_column"] = metric.date_column
        for j, covariate in enumerate(metric.covariates):
            columns[f"metrics[{i}].covariates[{j}]"] = covariate
    problems, empty = _columns_problems(stat, path, "contract", contract.id, contract.source, columns)
    problems += _department_problem(stat, path, "contract", contract.id, contract.department)
    if empty is None or problems:
        return problems
    for metric in contract.metrics:  # expressions type-check on an empty frame of the right schema
        try:
            metric_rows(empty, outcome=metric.outcome, kind=metric.kind, filter=metric.filter,
                        owner=f"metric '{metric.id}'",
                        date_column=metric.date_column or contract.date_column)
        except ValueError as exc:
            problems.append(Problem(str(path), _line_of(path, contract.id), f"contract {contract.id}",
                                    str(exc)))
    return problems


def validate_pfs_contract(stat: "CityStat", path: Path, contract: PayForSuccessContract) -> list[Problem]:
    columns: dict[str, str | None] = {"arm_column": contract.arm_column,
                                      "evaluable_column": contract.evaluable_column}
    for i, outcome in enumerate(contract.outcomes):
        columns[f"outcomes[{i}].column"] = outcome.column
    problems, _ = _columns_problems(stat, path, "contract", contract.id, contract.source, columns)
    return problems + _department_problem(stat, path, "contract", contract.id, contract.department)


def validate_experiment(stat: "CityStat", path: Path, experiment: Experiment) -> list[Problem]:
    columns = {"assignment_column": experiment.assignment_column,
               "outcome_column": experiment.outcome_column, "date_column": experiment.date_column}
    problems, _ = _columns_problems(stat, path, "experiment", experiment.id, experiment.source, columns)
    return problems + _department_problem(stat, path, "experiment", experiment.id, experiment.department)


def _department_problem(stat: "CityStat", path: Path, kind: str, item_id: str,
                        department: str | None) -> list[Problem]:
    departments = stat.registry.departments
    if department is None or department in departments:
        return []
    return [Problem(str(path), _line_of(path, item_id), f"{kind} {item_id}",
                    f"department: {department!r} is not a department in {stat.registry.path.name} "
                    f"({', '.join(sorted(departments))})")]


def load_contracts_for(stat: "CityStat") -> tuple[ContractsFile | None, list[Problem]]:
    path = contracts_path(stat)
    if not path.is_file():
        return None, [Problem(str(path), None, None, f"no {CONTRACTS_FILE} next to "
                              f"{stat.registry.path.name}: no contracts to show", "warning")]
    try:
        return load_contracts(path), []
    except ResultsConfigError as exc:
        return None, [_config_problem(exc)]


def load_experiments_for(stat: "CityStat") -> tuple[ExperimentsFile | None, list[Problem]]:
    path = experiments_path(stat)
    if not path.is_file():
        return None, [Problem(str(path), None, None, f"no {EXPERIMENTS_FILE} next to "
                              f"{stat.registry.path.name}: no experiments to show", "warning")]
    try:
        return load_experiments(path), []
    except ResultsConfigError as exc:
        return None, [_config_problem(exc)]


# --------------------------------------------------------------------------- provider scorecards

@dataclass(frozen=True)
class ProviderResults:
    """Every contracted provider's metrics: whole period (``overall``) and by month (``monthly``).

    Columns: :data:`citystat.results.risk.SCORECARD_COLUMNS` (+ ``month`` in ``monthly``) plus
    ``unit`` and ``service``. ``seconds`` is how long the (cold) computation took.
    """

    contracts: list[ProviderContract]
    overall: pl.DataFrame
    monthly: pl.DataFrame
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    data_end: date | None = None  # the last day with data (latest contract date in the sources)

    @property
    def latest_complete_month(self) -> date | None:
        """The last month whose last day is on or before the data end (the default month)."""
        if self.data_end is None:
            return None
        month = latest_complete_period(self.data_end, "month")
        months = [m for m in self.months if m <= month]
        return months[-1] if months else None

    def is_complete(self, month: date) -> bool:
        return self.data_end is not None and period_end(month, "month") <= self.data_end

    @property
    def providers(self) -> list[str]:
        return [c.provider for c in self.contracts]

    def contract_for(self, provider: str) -> ProviderContract:
        for contract in self.contracts:
            if contract.provider == provider:
                return contract
        raise KeyError(f"no contract for provider {provider!r} (providers: {', '.join(self.providers)})")

    @property
    def months(self) -> list[date]:
        if self.monthly.is_empty():
            return []
        return sorted(self.monthly.get_column(MONTH).unique().to_list())


def provider_results(stat: "CityStat") -> ProviderResults:
    """The provider scorecards, fitted once per fingerprint (see the module docstring)."""
    return _cached(stat, "providers", lambda: compute_provider_results(stat))


def compute_provider_results(stat: "CityStat") -> ProviderResults:
    started = time.perf_counter()
    contracts_file, problems = load_contracts_for(stat)
    path = contracts_path(stat)
    good: list[ProviderContract] = []
    for contract in contracts_file.provider_contracts if contracts_file else []:
        found = validate_provider_contract(stat, path, contract)
        problems += found
        if not [p for p in found if p.severity == "error"]:
            good.append(contract)
    frames: dict[str, pl.DataFrame] = {}
    for source in sorted({c.source for c in good}):
        frames[source] = load_source(stat, source)
    overall, monthly, good, failed = _scorecards(good, frames)
    problems += [Problem(str(path), _line_of(path, cid), f"contract {cid}", message)
                 for cid, message in failed]
    extra = pl.DataFrame({"contract_id": [c.id for c in good],
                          "service": [c.service for c in good]}, schema={"contract_id": pl.String,
                                                                         "service": pl.String})
    units = pl.DataFrame([{"contract_id": c.id, "metric_id": m.id, "unit": m.unit or "number"}
                          for c in good for m in c.metrics],
                         schema={"contract_id": pl.String, "metric_id": pl.String, "unit": pl.String})

    def decorate(frame: pl.DataFrame) -> pl.DataFrame:
        if frame.is_empty():
            return frame
        return frame.join(extra, on="contract_id", how="left").join(
            units, on=["contract_id", "metric_id"], how="left")

    ends = [frames[c.source].get_column(c.date_column).cast(pl.Date).max() for c in good]
    ends = [e for e in ends if e is not None]
    return ProviderResults(contracts=good, overall=decorate(overall), monthly=decorate(monthly),
                           problems=problems, seconds=time.perf_counter() - started,
                           data_end=max(ends) if ends else None)


def _scorecards(contracts: list[ProviderContract], frames: dict[str, pl.DataFrame]
                ) -> tuple[pl.DataFrame, pl.DataFrame, list[ProviderContract], list[tuple[str, str]]]:
    """All contracts at once (shared fits); if that fails, one by one to isolate the broken one."""
    with _single_threaded_blas():
        try:
            return (contract_scorecards(contracts, frames), contract_scorecards(contracts, frames, by_month=True),
                    contracts, [])
        except (ValueError, KeyError):
            pass
        overall, monthly, ok, failed = [], [], [], []
        for contract in contracts:
            try:
                overall.append(contract_scorecards([contract], frames))
                monthly.append(contract_scorecards([contract], frames, by_month=True))
                ok.append(contract)
            except (ValueError, KeyError) as exc:
                failed.append((contract.id, str(exc)))
    return (pl.concat(overall, how="vertical_relaxed") if overall else pl.DataFrame(),
            pl.concat(monthly, how="vertical_relaxed") if monthly else pl.DataFrame(), ok, failed)


def side_by_side(frame: pl.DataFrame, metric_id: str, month: date | None = None) -> pl.DataFrame:
    """One metric for every provider, best first by adjusted rank, with ``rank_change``.

    ``rank_change`` = raw rank − adjusted rank: positive when adjustment moves the provider up
    (its clients are harder than most), negative when it moves down, null without adjustment.
    """
    rows = frame.filter(pl.col("metric_id") == metric_id)
    if month is not None:
        rows = rows.filter(pl.col(MONTH) == month)
    return (rows.with_columns(rank_change=(pl.col("raw_rank") - pl.col("adjusted_rank")).cast(pl.Int64))
            .sort([pl.col("adjusted_rank").fill_null(pl.col("raw_rank")), "raw_rank", "provider"]))


def provider_trend(monthly: pl.DataFrame, provider: str, metric_id: str) -> pl.DataFrame:
    """A provider's metric month by month (sorted), for trend charts and the report."""
    return (monthly.filter((pl.col("provider") == provider) & (pl.col("metric_id") == metric_id))
            .sort(MONTH))


# --------------------------------------------------------------------------- pay for success

@dataclass(frozen=True)
class PfsResults:
    contracts: list[PayForSuccessContract]
    results: dict[str, PfsResult]
    problems: list[Problem] = field(default_factory=list)


def pfs_results(stat: "CityStat") -> PfsResults:
    """Every Pay for Success contract's status, cached per fingerprint."""
    return _cached(stat, "pfs", lambda: compute_pfs_results(stat))


def compute_pfs_results(stat: "CityStat") -> PfsResults:
    contracts_file, problems = load_contracts_for(stat)
    path = contracts_path(stat)
    good, results = [], {}
    for contract in contracts_file.pay_for_success if contracts_file else []:
        found = validate_pfs_contract(stat, path, contract)
        problems += found
        if found:
            continue
        try:
            results[contract.id] = pfs_status(contract, load_source(stat, contract.source))
            good.append(contract)
        except ValueError as exc:
            problems.append(Problem(str(path), _line_of(path, contract.id), f"contract {contract.id}", str(exc)))
    return PfsResults(contracts=good, results=results, problems=problems)


# --------------------------------------------------------------------------- experiments

@dataclass(frozen=True)
class ExperimentResults:
    experiments: list[Experiment]
    results: list[ExperimentResult]
    log: pl.DataFrame
    problems: list[Problem] = field(default_factory=list)

    def result(self, experiment_id: str) -> ExperimentResult:
        for r in self.results:
            if r.experiment_id == experiment_id:
                return r
        raise KeyError(f"no experiment {experiment_id!r}")


def experiment_results(stat: "CityStat") -> ExperimentResults:
    """Every experiment analysed, and the "what works" log; cached per fingerprint."""
    return _cached(stat, "experiments", lambda: compute_experiment_results(stat))


def compute_experiment_results(stat: "CityStat") -> ExperimentResults:
    experiments_file, problems = load_experiments_for(stat)
    path = experiments_path(stat)
    good, results = [], []
    for experiment in experiments_file.experiments if experiments_file else []:
        found = validate_experiment(stat, path, experiment)
        problems += found
        if found:
            continue
        try:
            results.append(analyse_experiment(experiment, load_source(stat, experiment.source)))
            good.append(experiment)
        except ValueError as exc:
            problems.append(Problem(str(path), _line_of(path, experiment.id),
                                    f"experiment {experiment.id}", str(exc)))
    return ExperimentResults(experiments=good, results=results, log=what_works_log(results),
                             problems=problems)
