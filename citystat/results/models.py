"""contracts.yaml and experiments.yaml: pydantic models and loaders that keep line numbers.

Results-driven contracting and evaluation are declared by analysts in two YAML files next to
metrics.yaml. They are parsed with ruamel.yaml in round-trip mode so that every mapping and
sequence remembers the line it came from; pydantic then validates the plain data, and any
error is mapped back to the deepest YAML node it names. The error therefore says *which file,
which line, which contract or experiment, which field*: "contracts.yaml:41: contract
'roca_pfs', field outcomes[0].price_per_unit: Input should be greater than 0".

Outcome and filter expressions are SQL *expressions* over the source extract (not queries):
``exit_destination = 'permanent'``, ``exited_at - entered_at``. They are evaluated in Polars
(``pl.sql_expr``) by :mod:`citystat.results.frames`, and are written so that the same text is
valid DuckDB too. They are never pasted into a query string by this package.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from citystat.registry.yamlfile import Problem, YamlFileError, model_at, plain, read_yaml, unknown_key_message

Direction = Literal["higher", "lower"]
MAX_METRICS_PER_CONTRACT = 5  # the domain's "about five": more than that and nobody reviews them


class ResultsConfigError(YamlFileError, ValueError):
    """A problem in contracts.yaml or experiments.yaml, located by file, line, item id and field.

    Top-level keys starting with ``x-`` are ignored, so they can hold YAML anchors to reuse.
    `problems` holds it as the one `Problem` type every YAML loader uses.
    """

    def __init__(self, file: str | Path, line: int | None, item_id: str | None,
                 message: str, field: str | None = None, kind: str = "item") -> None:
        self.file = str(file)
        self.line = line
        self.item_id = item_id
        self.field = field
        self.message = message.removeprefix("Value error, ")
        entry = f"{kind} {item_id}" if item_id else None
        super().__init__([Problem(self.file, line, entry, f"field {field}: {self.message}" if field else self.message)])
        where = f"{self.file}:{line}" if line is not None else self.file
        parts = ([f"{kind} '{item_id}'"] if item_id else []) + ([f"field {field}"] if field else [])
        self.args = (f"{where}: {', '.join(parts) + ': ' if parts else ''}{self.message}",)

    def __str__(self) -> str:
        return self.args[0]

    @classmethod
    def from_problem(cls, problem: Problem) -> "ResultsConfigError":
        return cls(problem.file, problem.line, None, problem.message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- provider contracts

class Period(_Strict):
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> "Period":
        if self.end < self.start:
            raise ValueError(f"period end {self.end} is before start {self.start}")
        return self


class ContractMetric(_Strict):
    """One outcome measured for every provider in the source and compared across them.

    ``filter`` picks the rows the metric is about (its denominator), e.g. exits only;
    ``outcome`` is evaluated on those rows. Rows whose outcome is null are excluded (e.g.
    ``returned_within_12m`` is null for exits less than 365 days before the data end).
    ``kind``: ``rate`` (boolean outcome: share true), ``mean`` or ``median`` (numeric).
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    outcome: str
    kind: Literal["rate", "mean", "median"]
    direction: Direction
    filter: str | None = None
    date_column: str | None = None  # overrides the contract's; the date that places a row in a month
    target: float | None = None
    unit: str | None = None
    risk_adjust: bool = False
    covariates: list[str] = Field(default_factory=list)
    description: str | None = None

    @model_validator(mode="after")
    def _covariates_when_adjusting(self) -> "ContractMetric":
        if self.risk_adjust and not self.covariates:
            raise ValueError("risk_adjust is true but no covariates are listed")
        return self


class ProviderContract(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    provider: str
    service: str
    source: str
    provider_column: str = "provider"
    date_column: str
    period: Period
    department: str | None = None
    description: str | None = None
    metrics: list[ContractMetric] = Field(min_length=1, max_length=MAX_METRICS_PER_CONTRACT)

    @field_validator("metrics")
    @classmethod
    def _unique_metric_ids(cls, metrics: list[ContractMetric]) -> list[ContractMetric]:
        seen: set[str] = set()
        for m in metrics:
            if m.id in seen:
                raise ValueError(f"metric id '{m.id}' is declared twice")
            seen.add(m.id)
        return metrics


# --------------------------------------------------------------------------- pay for success

class PaymentTier(_Strict):
    """Pays ``payment`` once the effect reaches ``at_least`` (highest tier reached wins)."""

    at_least: float
    payment: float = Field(ge=0)


class PfsOutcome(_Strict):
    """An outcome measured against the control group, and how (if at all) it is paid.

    ``effect`` is always expressed as "better for the treatment group" (positive = good):
    for ``direction: lower`` it is control − treatment, for ``higher`` treatment − control.
    ``units`` = effect × treated participants evaluated (e.g. jail bed-days avoided).
    Payment is one of: ``price_per_unit`` × units (optionally only once the relative effect
    reaches ``minimum_relative_effect``), or a ``tiers`` schedule on the relative effect.
    ``target_relative_effect`` (e.g. 0.40 = a 40 % cut) is what the contract aims for.
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    column: str
    kind: Literal["proportion", "mean"]
    direction: Direction
    unit: str = "unit"
    paid: bool = False
    price_per_unit: float | None = Field(default=None, gt=0)
    minimum_relative_effect: float = 0.0
    tiers: list[PaymentTier] = Field(default_factory=list)
    payment_cap: float | None = Field(default=None, gt=0)
    baseline: float | None = None
    target_relative_effect: float | None = None

    @model_validator(mode="after")
    def _payment_rule(self) -> "PfsOutcome":
        if self.paid and self.price_per_unit is None and not self.tiers:
            raise ValueError("a paid outcome needs price_per_unit or tiers")
        if self.price_per_unit is not None and self.tiers:
            raise ValueError("give either price_per_unit or tiers, not both")
        if not self.paid and (self.price_per_unit is not None or self.tiers):
            raise ValueError("price_per_unit/tiers given but paid is false")
        levels = [t.at_least for t in self.tiers]
        if levels != sorted(levels) or len(set(levels)) != len(levels):
            raise ValueError("tiers must be in increasing order of at_least, without repeats")
        return self


class Population(_Strict):
    description: str
    size: int = Field(gt=0)


class ScheduleItem(_Strict):
    on: date
    event: str


class PayForSuccessContract(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    department: str | None = None
    intermediary: str | None = None
    service_provider: str | None = None
    investors: list[str] = Field(default_factory=list)
    evaluator: str | None = None
    population: Population
    source: str
    arm_column: str = "arm"
    treatment_label: str = "treatment"
    control_label: str = "control"
    evaluable_column: str | None = None  # boolean: outcome observed (follow-up complete)
    evaluation_design: str
    investment: float = Field(gt=0)
    payment_cap: float = Field(gt=0)
    outcomes: list[PfsOutcome] = Field(min_length=1)
    schedule: list[ScheduleItem] = Field(default_factory=list)
    description: str | None = None

    @model_validator(mode="after")
    def _arms_differ(self) -> "PayForSuccessContract":
        if self.treatment_label == self.control_label:
            raise ValueError("treatment_label and control_label must differ")
        ids = [o.id for o in self.outcomes]
        if len(set(ids)) != len(ids):
            raise ValueError("outcome ids must be unique")
        return self


class ContractsFile(_Strict):
    provider_contracts: list[ProviderContract] = Field(default_factory=list)
    pay_for_success: list[PayForSuccessContract] = Field(default_factory=list)

    def provider_contract(self, contract_id: str) -> ProviderContract:
        return _by_id(self.provider_contracts, contract_id, "provider contract")

    def pfs_contract(self, contract_id: str) -> PayForSuccessContract:
        return _by_id(self.pay_for_success, contract_id, "Pay for Success contract")


# --------------------------------------------------------------------------- experiments

class Experiment(_Strict):
    """A randomized A/B test of a service change.

    ``minimum_detectable_effect`` is the smallest effect worth finding, on the outcome's own
    scale (0.03 = 3 percentage points for a proportion), used for the power check.
    ``treatment_name`` and ``outcome_label`` make the plain-language verdict read naturally:
    "<treatment_name> raised <outcome_label> by ...".
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    department: str
    source: str
    assignment_column: str
    control_label: str
    treatment_label: str
    outcome_column: str
    outcome_kind: Literal["proportion", "mean"]
    direction: Direction = "higher"
    treatment_name: str
    outcome_label: str
    unit: str | None = None
    date_column: str | None = None
    start: date
    end: date | None = None
    hypothesis: str
    minimum_detectable_effect: float = Field(gt=0)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    power: float = Field(default=0.8, gt=0, lt=1)
    status: Literal["planned", "running", "complete"] = "running"

    @model_validator(mode="after")
    def _checks(self) -> "Experiment":
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.control_label == self.treatment_label:
            raise ValueError("control_label and treatment_label must differ")
        if self.outcome_kind == "proportion" and self.minimum_detectable_effect >= 1:
            raise ValueError("minimum_detectable_effect for a proportion is a share (0.03 = 3 points)")
        return self


class ExperimentsFile(_Strict):
    experiments: list[Experiment] = Field(default_factory=list)

    def experiment(self, experiment_id: str) -> Experiment:
        return _by_id(self.experiments, experiment_id, "experiment")


def _by_id(items: list[Any], item_id: str, kind: str) -> Any:
    for item in items:
        if item.id == item_id:
            return item
    raise KeyError(f"no {kind} with id '{item_id}'")


# --------------------------------------------------------------------------- loading

_ITEM_KIND = {"provider_contracts": "contract", "pay_for_success": "contract",
              "experiments": "experiment"}


def load_contracts(path: str | Path) -> ContractsFile:
    """Read and validate contracts.yaml; errors name file, line, contract id and field."""
    return _load(Path(path), ContractsFile)


def load_experiments(path: str | Path) -> ExperimentsFile:
    """Read and validate experiments.yaml; errors name file, line, experiment id and field."""
    return _load(Path(path), ExperimentsFile)


def _load(path: Path, model: type[BaseModel]) -> Any:
    try:
        doc = read_yaml(path, empty=CommentedMap())
    except YamlFileError as exc:
        raise ResultsConfigError.from_problem(exc.problems[0]) from None
    _check_unique_ids(path, doc)
    # Top-level keys starting with "x-" hold YAML anchors to reuse (e.g. a shared metric set).
    data = {k: v for k, v in plain(doc).items() if not k.startswith("x-")}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line, item_id, kind = _locate(doc, loc)
        message = err["msg"]
        if err["type"] == "extra_forbidden" and loc:
            message = unknown_key_message(str(loc[-1]), model_at(model, loc[:-1]))
            loc = loc[:-1]
        raise ResultsConfigError(path, line, item_id, message, field=_field_name(loc), kind=kind) from exc


def _check_unique_ids(path: Path, doc: CommentedMap) -> None:
    for section, kind in _ITEM_KIND.items():
        items = doc.get(section)
        if not isinstance(items, CommentedSeq):
            continue
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if isinstance(item, CommentedMap) and isinstance(item.get("id"), str):
                line = item.lc.line + 1
                if item["id"] in seen:
                    raise ResultsConfigError(
                        path, line, item["id"],
                        f"id is already used on line {seen[item['id']]}", kind=kind)
                seen[item["id"]] = line


def _locate(doc: CommentedMap, loc: tuple[Any, ...]) -> tuple[int | None, str | None, str]:
    """Line of the deepest YAML node on ``loc``, and the id of the top-level item it is in."""
    node: Any = doc
    line: int | None = None
    item_id: str | None = None
    kind = "item"
    for depth, key in enumerate(loc):
        if isinstance(node, CommentedMap) and key in node:
            line = node.lc.key(key)[0] + 1
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            line = node.lc.item(key)[0] + 1
            node = node[key]
            if depth == 1:
                kind = _ITEM_KIND.get(str(loc[0]), "item")
                if isinstance(node, CommentedMap) and isinstance(node.get("id"), str):
                    item_id = node["id"]
        else:
            break  # a missing field: report the line of the mapping that lacks it
    return line, item_id, kind


def _field_name(loc: tuple[Any, ...]) -> str | None:
    """``('pay_for_success', 0, 'outcomes', 1, 'price_per_unit')`` -> ``outcomes[1].price_per_unit``."""
    rest = loc[2:] if len(loc) >= 2 and isinstance(loc[1], int) else loc
    out = ""
    for key in rest:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or None
