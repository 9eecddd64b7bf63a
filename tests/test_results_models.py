"""contracts.yaml / experiments.yaml: the bundled files load, and bad input is located by
file, line, id and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from citystat.results.models import ResultsConfigError, load_contracts, load_experiments

PROVIDER = """\
provider_contracts:
  - id: hs_one
    provider: Harbor House
    service: Emergency shelter
    source: homeless_enrollments
    date_column: exited_at
    period: {start: 2024-07-01, end: 2025-06-30}
    metrics:
      - id: exits
        title: Exits to permanent housing
        outcome: "exit_destination = 'permanent'"
        kind: rate
        direction: higher
"""

PFS = """\
pay_for_success:
  - id: roca_like
    title: Youth justice PFS
    population: {description: Young men 17-24, size: 929}
    source: pfs_participants
    evaluation_design: Randomized control trial
    investment: 21760000
    payment_cap: 27000000
    outcomes:
      - id: bed_days
        title: Jail bed-days avoided
        column: jail_bed_days
        kind: mean
        direction: lower
        paid: true
        price_per_unit: -5
"""

EXPERIMENT = """\
experiments:
  - id: letters
    title: Reminder letters
    department: fin
    source: reminder_letters
    assignment_column: arm
    control_label: control
    treatment_label: reminder
    outcome_column: paid_on_time
    outcome_kind: proportion
    treatment_name: Reminder letters
    outcome_label: on-time payment
    start: 2025-10-01
    end: 2025-09-01
    hypothesis: Letters help.
    minimum_detectable_effect: 0.03
"""


def write(tmp_path: Path, text: str, name: str = "contracts.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_contracts_file() -> None:
    contracts = load_contracts("contracts.yaml")
    providers = {c.provider for c in contracts.provider_contracts}
    from devtools.sample.schemas import PROVIDERS
    assert providers == set(PROVIDERS)
    for c in contracts.provider_contracts:
        assert 1 <= len(c.metrics) <= 5
        ids = {m.id: m for m in c.metrics}
        assert ids["exits_to_permanent"].direction == "higher"
        assert ids["returns_within_12m"].direction == "lower"
        assert ids["length_of_stay"].direction == "lower"
    roca = contracts.pfs_contract("roca_pfs")
    assert roca.population.size == 929
    assert (roca.investment, roca.payment_cap) == (21_760_000, 27_000_000)
    assert next(o for o in roca.outcomes if o.id == "incarceration").target_relative_effect == 0.40
    assert [o.id for o in roca.outcomes if o.paid] == ["jail_bed_days", "employment"]


def test_valid_minimal_files(tmp_path: Path) -> None:
    assert load_contracts(write(tmp_path, PROVIDER)).provider_contract("hs_one").provider_column == "provider"
    fixed = EXPERIMENT.replace("end: 2025-09-01", "end: 2025-12-31")
    exp = load_experiments(write(tmp_path, fixed, "experiments.yaml")).experiment("letters")
    assert (exp.alpha, exp.power, exp.status) == (0.05, 0.8, "running")


def test_bad_price_names_file_line_contract_and_field(tmp_path: Path) -> None:
    with pytest.raises(ResultsConfigError) as err:
        load_contracts(write(tmp_path, PFS))
    e = err.value
    assert (Path(e.file).name, e.line, e.item_id) == ("contracts.yaml", 16, "roca_like")
    assert e.field == "outcomes[0].price_per_unit"
    assert str(e).startswith(f"{e.file}:16: contract 'roca_like', field outcomes[0].price_per_unit: ")
    assert "greater than 0" in str(e)


def test_too_many_metrics(tmp_path: Path) -> None:
    metric = PROVIDER[PROVIDER.index("      - id: exits"):]
    six = PROVIDER + "".join(metric.replace("id: exits", f"id: exits{i}") for i in range(5))
    with pytest.raises(ResultsConfigError, match=r"contracts.yaml:8: contract 'hs_one', field metrics:.*at most 5"):
        load_contracts(write(tmp_path, six))


def test_unknown_field_points_at_its_line(tmp_path: Path) -> None:
    text = PROVIDER.replace("        kind: rate\n", "        kind: rate\n        colour: red\n")
    with pytest.raises(ResultsConfigError, match=r":13: contract 'hs_one', field metrics\[0\]: unknown key 'colour'"):
        load_contracts(write(tmp_path, text))


def test_missing_field_points_at_the_item(tmp_path: Path) -> None:
    text = PROVIDER.replace("    service: Emergency shelter\n", "")
    with pytest.raises(ResultsConfigError, match=r":2: contract 'hs_one', field service: Field required"):
        load_contracts(write(tmp_path, text))


def test_duplicate_ids(tmp_path: Path) -> None:
    second = PROVIDER.split("provider_contracts:\n")[1]
    with pytest.raises(ResultsConfigError, match=r":14: contract 'hs_one': id is already used on line 2"):
        load_contracts(write(tmp_path, PROVIDER + second))


def test_risk_adjust_without_covariates(tmp_path: Path) -> None:
    text = PROVIDER.replace("        direction: higher\n", "        direction: higher\n        risk_adjust: true\n")
    with pytest.raises(ResultsConfigError, match=r":9: contract 'hs_one', field metrics\[0\]: .*no covariates"):
        load_contracts(write(tmp_path, text))


def test_experiment_end_before_start(tmp_path: Path) -> None:
    with pytest.raises(ResultsConfigError, match=r"experiments.yaml:2: experiment 'letters': end 2025-09-01 is before start 2025-10-01$"):
        load_experiments(write(tmp_path, EXPERIMENT, "experiments.yaml"))


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    # the parser fails at the end of the file; the error points at the line where the sequence opened
    with pytest.raises(ResultsConfigError,
                       match=r"contracts.yaml:3: YAML syntax: parsing a flow sequence opened here is not closed"):
        load_contracts(write(tmp_path, "provider_contracts:\n  - id: x\n    provider: [unclosed\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ResultsConfigError, match="nope.yaml: cannot read file"):
        load_contracts(tmp_path / "nope.yaml")
