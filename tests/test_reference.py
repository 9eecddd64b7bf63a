"""The registry reference is generated from the models, is committed up to date, and covers every field."""

from __future__ import annotations

import argparse
import re
import typing

from pydantic import BaseModel

from citystat.analyst import reference
from citystat.registry.models import RegistryFile

from .conftest import PROJECT_ROOT


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from RegistryFile, found from the Python annotations (not the JSON schema)."""
    found: dict[str, type[BaseModel]] = {}

    def visit(annotation) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ not in found:
                found[annotation.__name__] = annotation
                for field in annotation.model_fields.values():
                    visit(field.annotation)
        for argument in typing.get_args(annotation):
            visit(argument)

    visit(root)
    return found


def _section(text: str, name: str) -> str:
    match = re.search(rf"^## {name}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no section for {name}"
    return match.group(1)


def test_committed_reference_is_what_the_models_give():
    committed = (PROJECT_ROOT / "docs" / "registry-reference.md").read_text(encoding="utf-8")
    assert committed == reference.registry_reference(), "run `python -m citystat reference` and commit the result"


def test_every_field_of_every_model_is_documented_in_its_section():
    text = reference.registry_reference()
    models = _models(RegistryFile)
    assert {"City", "Department", "Source", "QualityChecks", "Metric", "Measure", "Target", "Bands",
            "ProcessChange"} <= set(models)
    for name, model in models.items():
        section = _section(text, name)
        for field_name, field in model.model_fields.items():
            key = field.alias or field_name
            row = re.search(rf"^\| `{re.escape(key)}` \|(.*)$", section, flags=re.M)
            assert row, f"{name}.{key} missing from the reference"
            if field.description:
                assert field.description.replace("|", "\\|") in row.group(1), f"{name}.{key} description"
            assert ("**required**" in row.group(1)) == field.is_required(), f"{name}.{key} required flag"


def test_enum_values_and_where_models_appear_are_listed():
    text = reference.registry_reference()
    assert "`metrics[].targets[]`" in _section(text, "Target")
    assert "`metrics[].measure`, `metrics[].numerator`, `metrics[].denominator`" in _section(text, "Measure")
    assert "- **Aggregation**: `count`, `count_distinct`, `sum`, `avg`, `median`, `percentile`, `min`, `max`" in text
    assert "| `from` | date (YYYY-MM-DD) | **required** |" in _section(text, "Target")


def test_reference_command_writes_and_checks(tmp_path, capsys):
    target = tmp_path / "ref.md"
    assert reference.run_reference(argparse.Namespace(output=str(target), check=True)) == 1
    assert "out of date" in capsys.readouterr().err
    assert reference.run_reference(argparse.Namespace(output=str(target), check=False)) == 0
    assert target.read_text() == reference.registry_reference()
    assert reference.run_reference(argparse.Namespace(output=str(target), check=True)) == 0
    parser = argparse.ArgumentParser()
    reference.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["reference", "--check", "--output", str(target)])
    assert args.run(args) == 0
